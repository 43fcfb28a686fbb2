"""`upgrade`: move a stack to another OpenClaw version, rehearsed first, rolled back on failure.

Preflight (the stack is not touched): that exact OpenClaw version is installed under
`.cache/openclaw-versions/<version>` (npm, the exact version, reused on the next run), the
stack's OpenClaw config is rendered by the runtime's own renderer from the container settings
the stack deploys (`infra.wiring.worker_bindings` over the stack's settings, secrets replaced by
stand-ins: the rendered config refers to secrets, it never holds them), and that version's
`openclaw config validate` judges it the way the runtime does at boot
(`sandbox_runtime.openclaw_cli.ConfigCheck`). A refusal prints OpenClaw's own messages.

Deploy: `openclawVersion` is set in the stack config and `pulumi up` runs (the normal deploy
path) with `MOLT_OPENCLAW_REHEARSED` naming the version: the Worker deploy refuses a version
change without it, so a hand-edited `openclawVersion` cannot skip this preflight. The admin
status (`/api/admin/status` through the Worker and Access, as `ops smoke`
reads it) is polled until the runtime reports phase `ready` with the expected
`openclaw_version`; if that does not happen within `--wait`, `openclawVersion` goes back to the
previous version, `pulumi up` runs again, and the command says why and exits 1.

The pre-upgrade snapshot is kept (`ops backup keep`: pruning never removes it until `ops
backup unkeep`) once the rehearsal has passed. On a rollback, before the previous version is
deployed again, it becomes the newest generation again, and whatever the new version recorded
is kept beside it (what changed is printed: SQLite schemas by name, other files counted).

`--check` lists the registry's versions newer than the stack's and runs the preflight on the
newest (or on `--to`), changing nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import os
import re
import secrets
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import httpx

from contract import OPENCLAW_REHEARSED_VAR
from infra import settings as infra_settings

from .context import Commands, Deps, run_async
from .errors import Console, OpsError
from .init import NS, load_settings
from .outputs import SERVICE_TOKEN_ID, SERVICE_TOKEN_SECRET
from .pulumi_cli import ROOT, PulumiCli, check_stack_name
from .smoke import CheckFailed, ServiceToken, SmokeTarget, _status, service_token_from

VERSION_KEY = f"{NS}:openclawVersion"
CACHE = ROOT / ".cache"
VERSIONS_DIR = CACHE / "openclaw-versions"
SNAPSHOT_NOW_PATH = "/api/admin/snapshots/now"
NPM_TIMEOUT_S = 900.0


# --- versions --------------------------------------------------------------------------------


def version_problems(version: str) -> list[str]:
    """The settings loader's rule for `openclawVersion` (an exact version, no ranges)."""
    values = {VERSION_KEY: version, f"{NS}:accountId": "0" * 32}
    try:
        load_settings("check", values, [])
    except infra_settings.SettingsError as err:
        return [p for p in err.problems if p.startswith(f"{VERSION_KEY}:")]
    return []


def version_key(version: str) -> tuple[tuple[int, ...], int, str]:
    """Orders calendar versions: 2026.9.1-beta.1 < 2026.9.1 < 2026.9.2 < 2026.10.1."""
    match = re.match(r"^(\d+(?:\.\d+)*)(.*)$", version)
    if not match:
        return ((), 0, version)
    numbers = tuple(int(n) for n in match.group(1).split("."))
    suffix = match.group(2)
    return (numbers, 0 if suffix else 1, suffix)


def newer_versions(published: list[str], current: str, *, prereleases: bool = False) -> list[str]:
    newer = [v for v in published if version_key(v) > version_key(current)]
    if not prereleases:
        newer = [v for v in newer if version_key(v)[1] == 1]
    return sorted(newer, key=version_key)


def node_env(env: Mapping[str, str]) -> dict[str, str]:
    """The environment npm runs in: the bootstrap's Node first on PATH."""
    out = dict(env)
    tools = CACHE / "tools.json"
    if tools.exists():
        node = json.loads(tools.read_text()).get("node")
        if node:
            out["PATH"] = f"{Path(node).parent}{os.pathsep}{out.get('PATH', '')}"
    return out


def _npm(args: list[str], env: Mapping[str, str], cwd: Path | None = None) -> str:
    try:
        # npm is looked up on PATH with the bootstrap's Node first, as scripts/bootstrap.py does.
        result = subprocess.run(  # noqa: S603 - argument list, no shell
            ["npm", *args],  # noqa: S607
            cwd=cwd,
            env=node_env(env),
            capture_output=True,
            text=True,
            timeout=NPM_TIMEOUT_S,
            check=False,
        )
    except FileNotFoundError:
        raise OpsError("npm was not found: run `python3 scripts/bootstrap.py` first.") from None
    except subprocess.TimeoutExpired:
        raise OpsError(
            f"`npm {' '.join(args[:2])}` took longer than {NPM_TIMEOUT_S:.0f}s: check the "
            "registry is reachable (npm config get registry)."
        ) from None
    if result.returncode != 0:
        lines = [line for line in (result.stderr or result.stdout).splitlines() if line.strip()]
        raise OpsError(
            f"`npm {' '.join(args[:2])}` failed: {lines[-1] if lines else 'no output'}; check "
            "the registry is reachable (npm config get registry) and the version exists "
            "(`python -m ops upgrade --check`)."
        )
    return result.stdout


def published_versions(env: Mapping[str, str]) -> list[str]:
    out = _npm(["view", "openclaw", "versions", "--json"], env)
    try:
        versions = json.loads(out)
    except json.JSONDecodeError:
        raise OpsError("`npm view openclaw versions --json` did not print JSON.") from None
    if isinstance(versions, str):
        versions = [versions]
    if not isinstance(versions, list):
        raise OpsError("`npm view openclaw versions --json` did not print a list.")
    return [v for v in versions if isinstance(v, str)]


def installed_openclaw(version: str, env: Mapping[str, str]) -> Path:
    """The `openclaw` launcher of exactly this version, installed once under .cache/."""
    problems = version_problems(version)
    if problems:
        raise OpsError(problems[0])
    if version == infra_settings.default_openclaw_version():
        # The pinned version is the one the bootstrap already installed.
        tools = json.loads((CACHE / "tools.json").read_text())
        return Path(tools["openclaw"])
    prefix = VERSIONS_DIR / version
    binary = prefix / "node_modules" / ".bin" / "openclaw"
    stamp = prefix / ".installed"
    if binary.exists() and stamp.exists() and stamp.read_text().strip() == version:
        return binary
    prefix.mkdir(parents=True, exist_ok=True)
    (prefix / "package.json").write_text(
        json.dumps({"private": True, "dependencies": {"openclaw": version}}, indent=2) + "\n"
    )
    _npm(["install", "--no-audit", "--no-fund", "--omit=dev", "--save-exact"], env, cwd=prefix)
    if not binary.exists():
        raise OpsError(f"openclaw@{version} did not install its CLI at {binary}.")
    stamp.write_text(version + "\n")
    return binary


# --- the preflight ---------------------------------------------------------------------------


def stack_settings(cli: PulumiCli, stack: str) -> infra_settings.Settings:
    values = cli.config(stack)
    secret_keys = cli.config_secret_keys(stack)
    for key in secret_keys:
        values.setdefault(key, "stand-in")
    try:
        return load_settings(stack, values, secret_keys)
    except infra_settings.SettingsError as err:
        raise OpsError(f"{err} (fix them first: `python -m ops doctor --stack {stack}`)") from None


def container_env(s: infra_settings.Settings) -> dict[str, str]:
    """The settings the stack's Worker hands the container, secrets replaced by stand-ins.

    Built by the same `worker_bindings` the program deploys with; the resources it reads from
    only contribute names and URLs, so stand-ins of the right shape take their place.
    """
    from infra import wiring  # here, not on top: it loads the Cloudflare provider (slow)

    stand_in = SimpleNamespace(
        gateway_token="",
        control_secret="",
        cdp_secret="",
        snapshot_key="",
        access_key_id="",
        secret_access_key="",
        token="",
        aud="",
        team_domain="",
        endpoint=f"https://{s.account_id}.r2.cloudflarestorage.com",
        bucket_name=f"{s.resource_prefix}-data",
        base_url=f"https://gateway.ai.cloudflare.com/v1/{s.account_id}/{s.resource_prefix}",
    )
    worker_secrets, worker_vars = wiring.worker_bindings(
        s, cast(Any, stand_in), cast(Any, stand_in), cast(Any, stand_in), cast(Any, stand_in)
    )
    env = {name: value for name, value in worker_vars.items() if isinstance(value, str)}
    for name in worker_secrets:
        env[name] = secrets.token_hex(24)
    env["MOLT_SNAPSHOT_KEY"] = base64.b64encode(secrets.token_bytes(32)).decode()
    # What the Worker adds when it starts the container (worker/src/sandbox.ts).
    env["MOLT_PUBLIC_ORIGIN"] = f"https://{s.hostname}"
    env["MOLT_CDP_UPSTREAM"] = f"wss://{s.hostname}/cdp"
    return env


@dataclass(frozen=True)
class Verdict:
    version: str
    reported_version: str | None
    issues: list[str]
    # What the rehearsal boots with: the judged container settings (stand-in secrets) and the
    # launcher that judged them.
    container: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)
    openclaw: Path | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        return not self.issues


def validate_config(env: Mapping[str, str], openclaw: Path, version: str) -> Verdict:
    """Render the config with the runtime's renderer and ask that OpenClaw to validate it."""
    from sandbox_runtime.openclaw_cli import ConfigCheck, ValidatorFailed
    from sandbox_runtime.settings import ConfigError
    from sandbox_runtime.settings import load_settings as runtime_settings

    with tempfile.TemporaryDirectory(prefix="molt-upgrade-") as scratch:
        tmp = Path(scratch)
        run_env = dict(node_env(os.environ))
        run_env.update(env)
        run_env.update(
            {
                "HOME": str(tmp / "home"),
                "MOLT_OPENCLAW_BIN": str(openclaw),
                "MOLT_STATE_DIR": str(tmp / "state"),
                "MOLT_RUNTIME_DIR": str(tmp / "run"),
            }
        )
        for name in ("home", "state", "run"):
            (tmp / name).mkdir()
        try:
            runtime = runtime_settings(run_env)
        except ConfigError as err:
            raise OpsError(f"the runtime refuses the stack's container settings: {err}") from None

        async def check() -> Verdict:
            config_check = await ConfigCheck.start(runtime)
            try:
                issues = await config_check.issues()
            except ValidatorFailed as exc:
                await config_check.cancel()
                raise OpsError(f"openclaw@{version} could not validate the config: {exc}") from None
            reported = await config_check.openclaw_version()
            return Verdict(version, reported, issues)

        return run_async(check())


@dataclass(frozen=True)
class Rehearsal:
    """Boot the runtime on a copy of the stack's state (`state`: None boots an empty state)."""

    state: Path | None
    timeout_s: float


def preflight(
    cli: PulumiCli,
    stack: str,
    version: str,
    env: Mapping[str, str],
    console: Console,
) -> Verdict:
    """Install that version and judge the config the stack renders with it (nothing touched)."""
    s = stack_settings(cli, stack)
    console.print(f"preflight: installing openclaw@{version} (cached under .cache/)")
    openclaw = installed_openclaw(version, env)
    container = container_env(s)
    verdict = validate_config(container, openclaw, version)
    verdict = replace(verdict, container=container, openclaw=openclaw)
    if verdict.reported_version and verdict.reported_version != version:
        verdict = replace(
            verdict,
            issues=[f"the installed launcher reports {verdict.reported_version}, not {version}"],
        )
    if not verdict.ok:
        console.print(f"preflight: openclaw@{version} refuses the config {stack} renders:")
        for issue in verdict.issues:
            console.print(f"  {issue}")
        return verdict
    console.print(f"preflight: openclaw@{version} accepts the config {stack} renders")
    return verdict


def rehearse(verdict: Verdict, rehearsal: Rehearsal, console: Console) -> Verdict:
    """Boot what `verdict` accepted under the runtime on `rehearsal.state`."""
    assert verdict.ok and verdict.openclaw is not None, "rehearse a config that was accepted"
    version = verdict.version
    what = "a copy of the stack's state" if rehearsal.state else "an empty state"
    console.print(f"rehearsal: booting openclaw@{version} under the runtime on {what}")
    failure = rehearse_boot(
        verdict.container, verdict.openclaw, rehearsal.state, rehearsal.timeout_s
    )
    if failure is not None:
        console.print(f"rehearsal: openclaw@{version} did not start: {failure}")
        return replace(verdict, issues=[failure])
    console.print(f"rehearsal: openclaw@{version} is ready on it")
    return verdict


# --- the boot rehearsal ----------------------------------------------------------------------

# Channels reach Telegram/Discord/Slack as soon as the gateway starts; their config was judged by
# the validator above, and the rehearsal boots without them so it needs no network.
OFFLINE_DROP = (
    "TELEGRAM_BOT_TOKEN",
    "DISCORD_BOT_TOKEN",
    "SLACK_BOT_TOKEN",
    "SLACK_APP_TOKEN",
    "TELEGRAM_DM_POLICY",
    "DISCORD_DM_POLICY",
    "SLACK_DM_POLICY",
    "MOLT_CDP_UPSTREAM",
)


def fetch_state(outputs: Any, into: Path, console: Console) -> str | None:
    """Restore the stack's newest generation (verified, decrypted) into `into`; its id."""
    from . import backup

    with backup._manager(outputs) as (manager, _scratch), backup._store_errors(outputs.stack):
        result = run_async(manager.restore())
        into.mkdir(parents=True, exist_ok=True)
        if manager.state_dir.exists():
            shutil.copytree(manager.state_dir, into, symlinks=True, dirs_exist_ok=True)
    if result.snapshot is None:
        console.print(f"rehearsal: {outputs.stack}'s store holds no snapshot yet (empty state)")
        return None
    console.print(
        f"rehearsal: restored snapshot {result.snapshot.id} of {outputs.stack} "
        f"({result.files} files) into a scratch copy"
    )
    return result.snapshot.id


# --- the pre-upgrade generation: kept, and the newest again on a rollback -------------------


def keep_snapshot(outputs: Any, ident: str, version: str, console: Console) -> None:
    from . import backup

    backup.backup_keep(outputs, ident, f"before the upgrade to openclaw {version}", console)


def state_schema(tree: Path) -> dict[str, str]:
    """Relative path -> schema (user_version and sqlite_master) of each SQLite database."""
    from sandbox_runtime.snapshots.scan import SQLITE_HEADER

    found: dict[str, str] = {}
    for path in sorted(tree.rglob("*")):
        if path.is_symlink() or not path.is_file():
            continue
        with path.open("rb") as handle:
            if handle.read(len(SQLITE_HEADER)) != SQLITE_HEADER:
                continue
        # immutable: a scratch copy with no -wal; nothing may be written next to it.
        db = sqlite3.connect(f"{path.as_uri()}?mode=ro&immutable=1", uri=True)
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            rows = db.execute(
                "SELECT type, name, tbl_name, coalesce(sql, '') FROM sqlite_master "
                "ORDER BY type, name"
            ).fetchall()
        except sqlite3.DatabaseError as exc:
            rows, version = [("unreadable", str(exc), "", "")], -1
        finally:
            db.close()
        found[path.relative_to(tree).as_posix()] = json.dumps([version, rows])
    return found


def state_changes(before: Path, after: Path) -> list[str]:
    """What differs between two state trees, for the rollback's message."""

    def files(tree: Path) -> dict[str, Path]:
        return {
            p.relative_to(tree).as_posix(): p
            for p in tree.rglob("*")
            if p.is_file() and not p.is_symlink()
        }

    def digest(path: Path) -> str:
        with path.open("rb") as handle:
            return hashlib.file_digest(handle, "sha256").hexdigest()

    old, new = files(before), files(after)
    old_schema, new_schema = state_schema(before), state_schema(after)
    schemas = sorted(
        k for k in old_schema.keys() & new_schema.keys() if old_schema[k] != new_schema[k]
    )
    changed = [
        k for k in old.keys() & new.keys() if k not in schemas and digest(old[k]) != digest(new[k])
    ]
    found = [f"the schema of {k}" for k in schemas]
    for count, what in (
        (len(changed), "changed"),
        (len(new.keys() - old.keys()), "added"),
        (len(old.keys() - new.keys()), "removed"),
    ):
        if count:
            found.append(f"{count} file{'s' if count != 1 else ''} {what}")
    return found


def restore_for_rollback(outputs: Any, kept: str, version: str, console: Console) -> None:
    """Make the pre-upgrade generation the newest again, keeping what the new version wrote.

    A rollback only follows a version that never reported ready, so what it wrote is its own
    start-up work: SQLite migrations, and format changes to JSON or Markdown files that no
    check of ours could tell from ordinary content. The previous version boots on the state it
    wrote; the new version's generation is kept (never pruned) so nothing is lost. HEAD moves
    even when nothing was recorded since the snapshot: the failing container runs until the
    deploy replaces it and would write its migrated state at SIGTERM; now it meets 412.
    """
    from . import backup

    async def work(manager: Any, scratch: Path) -> tuple[str | None, list[str], Any]:
        listed = await manager.list()
        newest = listed[0].id if listed else None
        changes: list[str] = []
        if newest is not None and newest != kept:
            await manager.extract(kept)
            before = scratch / "before"
            await asyncio.to_thread(shutil.copytree, manager.state_dir, before, symlinks=True)
            await manager.extract(newest)
            changes = await asyncio.to_thread(state_changes, before, manager.state_dir)
            await manager.keep_generation(
                newest, f"written by openclaw {version} before its rollback"
            )
        await manager.extract(kept)
        info = await manager.import_tree(manager.state_dir, f"rollback to {kept}", force=True)
        return newest, changes, info

    newest, changes, info = backup._run(outputs, work)
    if newest is None or newest == kept:
        console.print(f"rollback: nothing was recorded since snapshot {kept}")
    else:
        what = ", ".join(changes) if changes else "no file content"
        console.warn(
            f"rollback: openclaw {version} changed the state ({what}) in snapshot {newest}, "
            f"which is kept: `python -m ops backup list --stack {outputs.stack}`"
        )
    console.print(
        f"rollback: the pre-upgrade snapshot {kept} is the newest again (as {info.id}); the "
        "previous version boots on the state it wrote"
    )


def rehearse_boot(
    env: Mapping[str, str], openclaw: Path, state: Path | None, timeout_s: float
) -> str | None:
    """Boot the runtime with that OpenClaw on a copy of the state; None once it is ready.

    The copy goes through a local store of its own (the runtime's `dir` store, a fresh key), so
    the runtime restores it exactly as it restores the stack's, and the stack's store is only
    read. Returns why it did not become ready: the runtime's own last lines.
    """
    from sandbox_runtime.snapshots import SnapshotManager, key_from_env, open_store

    from devstack.procs import Child, ChildExited, free_ports, wait_until

    with tempfile.TemporaryDirectory(prefix="molt-rehearsal-") as scratch:
        tmp = Path(scratch)
        gateway, control, cdp = free_ports(3)
        run_env = {k: v for k, v in node_env(os.environ).items() if k in ("PATH", "LANG")}
        run_env.update({k: v for k, v in env.items() if k not in OFFLINE_DROP})
        run_env.update(
            {
                "HOME": str(tmp / "home"),
                "MOLT_OPENCLAW_BIN": str(openclaw),
                "MOLT_STORE": "dir",
                "MOLT_STORE_DIR": str(tmp / "store"),
                "MOLT_SNAPSHOT_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
                "MOLT_STATE_DIR": str(tmp / "state"),
                "MOLT_RUNTIME_DIR": str(tmp / "run"),
                "MOLT_GATEWAY_PORT": str(gateway),
                "MOLT_CONTROL_PORT": str(control),
                "MOLT_CDP_PORT": str(cdp),
            }
        )
        for name in ("home", "store", "seed"):
            (tmp / name).mkdir()
        if state is not None:
            manager = SnapshotManager(
                store=open_store(run_env), key=key_from_env(run_env), state_dir=tmp / "seed"
            )
            run_async(manager.import_tree(state, "upgrade rehearsal"))
        child = Child(
            "runtime",
            [sys.executable, "-m", "sandbox_runtime"],
            env=run_env,
            cwd=tmp,
            log_path=tmp / "runtime.log",
        )
        child.start()
        try:
            wait_until(
                lambda: _phase(control) == "ready",
                timeout=timeout_s,
                what="ready",
                alive=child,
                interval=0.5,
            )
            return None
        except ChildExited:
            return f"the runtime exited with {child.returncode()}:\n{child.log_tail(25)}"
        except TimeoutError:
            tail = child.log_tail(25)
            return f"not ready within {timeout_s:.0f}s; the runtime's last lines:\n{tail}"
        finally:
            child.stop(grace=30)


def _phase(control_port: int) -> str | None:
    try:
        response = httpx.get(f"http://127.0.0.1:{control_port}/healthz", timeout=2)
        body = response.json()
    except (httpx.HTTPError, ValueError):
        return None
    return body.get("phase") if isinstance(body, dict) else None


# --- deploy, wait, roll back -----------------------------------------------------------------

StatusReader = Callable[[], dict[str, Any]]


def wait_for_version(
    status: StatusReader,
    version: str,
    wait_s: float,
    poll_s: float,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> tuple[bool, str]:
    """(ready with `version`, the last thing seen) after polling for at most `wait_s`."""
    deadline = clock() + wait_s
    seen = "no status"
    while True:
        try:
            body = status()
        except CheckFailed as exc:
            seen = str(exc)
        else:
            gateway = body.get("gateway")
            state = gateway.get("state") if isinstance(gateway, dict) else None
            running = body.get("openclaw_version")
            if body.get("phase") == "ready" and state == "ready" and running == version:
                return True, f"ready with openclaw {version}"
            seen = f"phase={body.get('phase')!r} gateway={state!r} openclaw={running!r}"
            error = body.get("error") or body.get("last_error")
            if isinstance(error, str) and error:
                seen += f" ({error[:300]})"
        if clock() >= deadline:
            return False, seen
        sleep(min(poll_s, max(0.05, deadline - clock())))


def deploy(
    cli: PulumiCli,
    stack: str,
    target: str,
    previous: str,
    status: StatusReader,
    console: Console,
    *,
    wait_s: float,
    poll_s: float,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
    before_rollback: Callable[[], None] | None = None,
) -> bool:
    """True when the stack runs `target`; False after rolling back to `previous`.

    `before_rollback` runs before the previous version is deployed again (the state restore),
    so the container that version starts restores the state it should run on.
    """
    console.print(f"deploy: {VERSION_KEY} {previous} -> {target}, pulumi up")
    cli.config_set(stack, VERSION_KEY, target)
    cli.up(stack, {OPENCLAW_REHEARSED_VAR: target})
    ok, seen = wait_for_version(status, target, wait_s, poll_s, sleep, clock)
    if ok:
        console.print(f"upgraded {stack}: {seen}")
        return True
    console.warn(
        f"openclaw {target} was not ready within {wait_s:.0f}s ({seen}); rolling back to {previous}"
    )
    if before_rollback is not None:
        before_rollback()
    cli.config_set(stack, VERSION_KEY, previous)
    # The version it ran before the attempt, on the state that version wrote.
    cli.up(stack, {OPENCLAW_REHEARSED_VAR: previous})
    back, seen_back = wait_for_version(status, previous, wait_s, poll_s, sleep, clock)
    if back:
        console.warn(f"rolled back {stack} to openclaw {previous}: {seen_back}")
    else:
        console.warn(
            f"rolled back the config of {stack} to {previous}, but the runtime is not ready "
            f"({seen_back}): read the boot phase in /_admin/ and `wrangler tail`"
        )
    return False


@dataclass
class Admin:
    """The Worker's admin API behind Access, with the stack's service token (as ops smoke)."""

    client: httpx.Client
    target: SmokeTarget
    token: ServiceToken

    def status(self) -> dict[str, Any]:
        return _status(self.client, self.target, self.token)

    def snapshot_now(
        self,
        wait_s: float,
        poll_s: float,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> str:
        """A snapshot taken now; its id. Waits while the container wakes (503) or is busy (409)."""
        url = f"{self.target.url}{SNAPSHOT_NOW_PATH}"
        deadline = clock() + wait_s
        while True:
            try:
                response = self.client.post(url, headers=self.token.headers())
            except httpx.HTTPError as exc:
                detail = f"cannot reach {url} ({type(exc).__name__})"
            else:
                if response.status_code == 200:
                    try:
                        ident = response.json().get("id")
                    except (ValueError, AttributeError):
                        ident = None
                    if isinstance(ident, str) and ident:
                        return ident
                    detail = f"{url} answered without a snapshot id"
                elif response.status_code in (409, 503):
                    detail = f"{url} answered {response.status_code}: {response.text[:200]}"
                else:
                    raise OpsError(
                        f"the pre-upgrade snapshot failed ({response.status_code}: "
                        f"{response.text[:200]}); nothing was changed."
                    )
            if clock() >= deadline:
                raise OpsError(
                    f"no pre-upgrade snapshot within {wait_s:.0f}s ({detail}); nothing was changed."
                )
            sleep(min(poll_s, max(0.05, deadline - clock())))


def admin_api(
    outputs: Any, env: Mapping[str, str], console: Console, transport: httpx.BaseTransport | None
) -> Admin:
    client_id = outputs.optional_text(SERVICE_TOKEN_ID, secret=True) or env.get(
        "CF_ACCESS_CLIENT_ID"
    )
    client_secret = outputs.optional_text(SERVICE_TOKEN_SECRET, secret=True) or env.get(
        "CF_ACCESS_CLIENT_SECRET"
    )
    console.redact.add(client_id, client_secret)
    token = service_token_from(client_id, client_secret)
    if token is None:
        raise OpsError(
            "no Access service token for the admin API: `pulumi config set "
            "accessServiceToken true` and `pulumi up`, or set CF_ACCESS_CLIENT_ID / "
            "CF_ACCESS_CLIENT_SECRET."
        )
    target = SmokeTarget(
        url=outputs.url(), team_domain=None, service_token=token, max_snapshot_age_s=0, wait_s=0
    )
    client = httpx.Client(timeout=30.0, transport=transport, follow_redirects=False)
    return Admin(client, target, token)


# --- the command -----------------------------------------------------------------------------


def refused(version: str, stack: str) -> str:
    return (
        f"upgrade refused before deploy: openclaw@{version} does not accept what {stack} "
        "runs (OpenClaw's messages above); the stack was not changed."
    )


def cmd_upgrade(args: argparse.Namespace, deps: Deps, console: Console) -> int:
    from .outputs import StackOutputs

    stack = check_stack_name(args.stack)
    cli = PulumiCli(
        binary=args.pulumi, cwd=Path(args.project_dir), env=deps.env, emit=console.print
    )
    current = stack_settings(cli, stack).sandbox.openclaw_version
    if args.check:
        newer = newer_versions(published_versions(deps.env), current)
        console.print(
            f"{stack} runs openclaw {current} (pinned default: "
            f"{infra_settings.default_openclaw_version()})"
        )
        console.print("newer on the registry: " + (", ".join(newer) if newer else "none"))
        candidate = args.to or (newer[-1] if newer else None)
        if candidate is None:
            return 0
        return 0 if preflight(cli, stack, candidate, deps.env, console).ok else 1
    if not args.to:
        raise OpsError("pass --to <version> (or --check to see what is available).")
    if args.to == current:
        console.print(f"{stack} already deploys openclaw {current}; nothing to do.")
        return 0
    # The config first: it needs nothing from the running stack, and a refusal leaves no trace.
    verdict = preflight(cli, stack, args.to, deps.env, console)
    if not verdict.ok:
        raise OpsError(refused(args.to, stack))
    outputs = StackOutputs.from_pulumi(cli, stack, console.redact)
    admin = admin_api(outputs, deps.env, console, deps.http_transport)
    # The generation the rehearsal boots on, and the one to go back to.
    ident = admin.snapshot_now(args.wait, args.poll_interval)
    console.print(f"snapshot {ident} of {stack} taken before the switch")
    with tempfile.TemporaryDirectory(prefix="molt-upgrade-state-") as scratch:
        state = Path(scratch) / "state"
        fetch_state(outputs, state, console)
        verdict = rehearse(verdict, Rehearsal(state, args.rehearsal_timeout), console)
    if not verdict.ok:
        # Not kept: pruning treats it like any other generation.
        raise OpsError(refused(args.to, stack))
    keep_snapshot(outputs, ident, args.to, console)

    def restore_state() -> None:
        try:
            restore_for_rollback(outputs, ident, args.to, console)
        except OpsError as exc:
            # The version still goes back: a runtime that cannot read the state stops its boot
            # (it never starts empty), and the kept snapshot is there to restore by hand.
            console.warn(
                f"rollback: the pre-upgrade state was not restored ({exc}); after the rollback "
                f"run `python -m ops backup restore {ident} --stack {stack} --yes` and restart"
            )

    ok = deploy(
        cli,
        stack,
        args.to,
        current,
        admin.status,
        console,
        wait_s=args.wait,
        poll_s=args.poll_interval,
        before_rollback=restore_state,
    )
    return 0 if ok else 1


def register(commands: Commands) -> None:
    """Adds `upgrade` to the subcommands (`ops.context.Commands`)."""
    upgrade = commands.add_parser(
        "upgrade",
        help="move a stack to another OpenClaw version: rehearse, deploy, roll back on failure",
        description="Install that exact OpenClaw version under .cache/, render the stack's "
        "config with the runtime's renderer and run its `openclaw config validate` (refused "
        "with OpenClaw's messages); then set openclawVersion, `pulumi up`, and wait for the "
        "admin status to report it ready, else put the previous version back and `pulumi up`.",
    )
    upgrade.add_argument("--stack", required=True, help="stack name: dev, staging, prod or pr-<n>")
    upgrade.add_argument("--to", help="the exact OpenClaw version to move to")
    upgrade.add_argument(
        "--check",
        action="store_true",
        help="list newer versions on the registry and preflight the newest (or --to); "
        "changes nothing",
    )
    upgrade.add_argument(
        "--wait",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="how long the new version has to report ready (default: 300)",
    )
    upgrade.add_argument(
        "--poll-interval", type=float, default=5.0, metavar="SECONDS", help="(default: 5)"
    )
    upgrade.add_argument(
        "--rehearsal-timeout",
        type=float,
        default=180.0,
        metavar="SECONDS",
        help="how long the rehearsal boot on a copy of the state may take (default: 180)",
    )
    upgrade.set_defaults(handler=cmd_upgrade)
