"""The Pulumi CLI behind one small interface, so tests can stand in for it.

Every call is an argument list (never a shell string) and carries `--stack`, so no command
depends on which stack happens to be selected. Secrets are never passed on a command line:
`config_set_secret` hands the value to `pulumi config set --secret` on its standard input.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

import contract

from .errors import OpsError

ROOT = Path(__file__).resolve().parent.parent
PROJECT = contract.PROJECT
INSTALL_HINT = "install it (https://www.pulumi.com/docs/iac/download-install/) and log in first"


def check_stack_name(stack: str) -> str:
    """The program's own stack-name rule: ops never acts on a stack the program cannot deploy."""
    problem = contract.stack_name_problem(stack)
    if problem:
        raise OpsError(f"{problem} (e.g. dev, staging, prod, pr-12).")
    return stack


class Pulumi(Protocol):
    """What the ops commands need from Pulumi; `PulumiCli` runs the real CLI."""

    def stack_outputs(self, stack: str) -> dict[str, Any]: ...

    def config(self, stack: str) -> dict[str, str]:
        """Plain config values by full key (`moltworker:ephemeral`); secrets are absent."""
        ...

    def config_set(self, stack: str, key: str, value: str) -> None: ...

    def config_refresh(self, stack: str) -> None:
        """Rewrite the local stack file from the stack's last deployment."""
        ...

    def stack_exists(self, stack: str) -> bool: ...

    def stack_init(self, stack: str, copy_config_from: str) -> None: ...

    def config_copy(self, source: str, dest: str) -> None:
        """Copy every config value of `source` into `dest` (secrets re-encrypted for it)."""
        ...

    def stack_rm(self, stack: str) -> None:
        """Remove a stack that has no resources; the CLI refuses one that has any."""
        ...

    def stack_names(self) -> list[str]: ...

    def up(self, stack: str, env: Mapping[str, str] | None = None) -> None:
        """`pulumi up`; `env` is added to the environment of that one run."""
        ...

    def destroy_and_remove(self, stack: str) -> None: ...

    def stack_export(self, stack: str) -> dict[str, Any]:
        """The stack's state (`pulumi stack export`): {version, deployment: {resources}}."""
        ...

    def state_delete(self, stack: str, urn: str, *, force: bool = False) -> None:
        """Forget one resource in the state; the cloud object is left as it is."""
        ...


class PulumiCli:
    """Runs `pulumi` in the project directory; output of long commands is streamed."""

    def __init__(
        self,
        binary: str = "pulumi",
        cwd: Path = ROOT,
        env: Mapping[str, str] | None = None,
        emit: Callable[[str], None] = print,
        timeout_s: float = 60.0,
    ) -> None:
        self.binary = binary
        self.cwd = cwd
        self.env = dict(env if env is not None else os.environ)
        self.emit = emit
        self.timeout_s = timeout_s

    def _run(self, args: list[str], stdin: str = "") -> str:
        cmd = [self.binary, *args, "--non-interactive"]
        try:
            result = subprocess.run(  # noqa: S603 - argument list, no shell
                cmd,
                cwd=self.cwd,
                env=self.env,
                # Never the caller's terminal: `config set` without a value reads stdin.
                input=stdin,
                capture_output=True,
                text=True,
                timeout=self.timeout_s,
                check=False,
            )
        except FileNotFoundError:
            raise OpsError(
                f"the Pulumi CLI ({self.binary!r}) was not found: {INSTALL_HINT}."
            ) from None
        except subprocess.TimeoutExpired:
            raise OpsError(
                f"`pulumi {' '.join(args[:3])}` did not answer within {self.timeout_s:.0f}s: "
                "check the state backend is reachable (`pulumi whoami -v`)."
            ) from None
        if result.returncode != 0:
            raise OpsError(_failure(args, result.stderr or result.stdout))
        return result.stdout

    def _stream(self, args: list[str], env: Mapping[str, str] | None = None) -> None:
        cmd = [self.binary, *args, "--non-interactive"]
        try:
            proc = subprocess.Popen(  # noqa: S603 - argument list, no shell
                cmd,
                cwd=self.cwd,
                env={**self.env, **(env or {})},
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        except FileNotFoundError:
            raise OpsError(
                f"the Pulumi CLI ({self.binary!r}) was not found: {INSTALL_HINT}."
            ) from None
        assert proc.stdout is not None
        tail: list[str] = []
        for line in proc.stdout:
            self.emit(line.rstrip("\n"))
            tail = [*tail[-19:], line]
        if proc.wait() != 0:
            raise OpsError(_failure(args, "".join(tail)))

    def stack_outputs(self, stack: str) -> dict[str, Any]:
        out = self._run(["stack", "output", "--json", "--show-secrets", "--stack", stack])
        return _json_object(out, f"`pulumi stack output --json --stack {stack}`")

    def config(self, stack: str) -> dict[str, str]:
        out = self._run(["config", "--json", "--stack", stack])
        raw = _json_object(out, f"`pulumi config --json --stack {stack}`")
        values: dict[str, str] = {}
        for key, entry in raw.items():
            if isinstance(entry, dict) and not entry.get("secret") and "value" in entry:
                value = entry["value"]
                # Normally a string; a typed YAML value may come back as a JSON boolean.
                values[key] = str(value).lower() if isinstance(value, bool) else str(value)
        return values

    def config_set(self, stack: str, key: str, value: str) -> None:
        self._run(["config", "set", "--stack", stack, key, value])

    def config_set_secret(self, stack: str, key: str, value: str) -> None:
        # The CLI reads a value missing from the command line from a non-terminal stdin and
        # strips one trailing newline (pkg/cmd/pulumi/config/config_set.go).
        self._run(["config", "set", "--secret", "--stack", stack, key], stdin=value + "\n")

    def config_set_list(self, stack: str, key: str, values: list[str]) -> None:
        """Replace a list value: the old list goes first so no stale item survives."""
        self.config_rm(stack, key)
        for i, value in enumerate(values):
            self._run(["config", "set", "--path", "--stack", stack, f"{key}[{i}]", value])

    def config_rm(self, stack: str, key: str) -> None:
        # Removing an absent key succeeds, so callers need not check first.
        self._run(["config", "rm", "--stack", stack, key])

    def config_secret_keys(self, stack: str) -> set[str]:
        """Keys that hold a secret (values not decrypted: `--show-secrets` is not passed)."""
        out = self._run(["config", "--json", "--stack", stack])
        raw = _json_object(out, f"`pulumi config --json --stack {stack}`")
        return {k for k, e in raw.items() if isinstance(e, dict) and e.get("secret")}

    def config_refresh(self, stack: str) -> None:
        self._run(["config", "refresh", "--force", "--stack", stack])

    def whoami(self) -> str:
        """The logged-in user; fails with the login hint when no backend is logged in."""
        return self._run(["whoami"]).strip()

    def stack_create(self, stack: str) -> None:
        self._run(["stack", "init", stack])

    def stack_exists(self, stack: str) -> bool:
        return stack in self.stack_names()

    def stack_init(self, stack: str, copy_config_from: str) -> None:
        self._run(["stack", "init", stack, "--copy-config-from", copy_config_from])

    def config_copy(self, source: str, dest: str) -> None:
        self._run(["config", "cp", "--stack", source, "--dest", dest])

    def stack_rm(self, stack: str) -> None:
        # No --force: Pulumi then refuses to remove a stack that still has resources.
        self._run(["stack", "rm", "--yes", "--stack", stack])

    def stack_names(self) -> list[str]:
        out = self._run(["stack", "ls", "--json"])
        try:
            rows = json.loads(out)
        except json.JSONDecodeError:
            raise OpsError(
                "`pulumi stack ls --json` did not print JSON; upgrade the Pulumi CLI."
            ) from None
        if not isinstance(rows, list):
            raise OpsError("`pulumi stack ls --json` did not print a list; upgrade the Pulumi CLI.")
        names = []
        for row in rows:
            if isinstance(row, dict) and isinstance(row.get("name"), str):
                names.append(short_stack_name(row["name"]))
        return names

    def up(self, stack: str, env: Mapping[str, str] | None = None) -> None:
        self._stream(["up", "--yes", "--skip-preview", "--stack", stack], env)

    def destroy_and_remove(self, stack: str) -> None:
        self._stream(["destroy", "--yes", "--remove", "--stack", stack])

    def stack_export(self, stack: str) -> dict[str, Any]:
        # Without --show-secrets: secret values stay encrypted in what this process reads.
        out = self._run(["stack", "export", "--stack", stack])
        return _json_object(out, f"`pulumi stack export --stack {stack}`")

    def state_delete(self, stack: str, urn: str, *, force: bool = False) -> None:
        # --force only lifts `protect` for this state edit; no provider is called.
        self._run(
            ["state", "delete", urn, "--stack", stack, "--yes", *(["--force"] if force else [])]
        )


def short_stack_name(name: str) -> str:
    """`organization/moltworker/pr-12` (DIY backends list project-scoped names) -> `pr-12`."""
    parts = name.split("/")
    if len(parts) == 3 and parts[1] != PROJECT:
        return ""  # another project's stack in the same backend: never ours to touch
    return parts[-1]


def _json_object(text: str, what: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        raise OpsError(f"{what} did not print JSON; upgrade the Pulumi CLI.") from None
    if not isinstance(value, dict):
        raise OpsError(f"{what} did not print a JSON object; upgrade the Pulumi CLI.")
    return value


def _failure(args: list[str], output: str) -> str:
    lines = [line.strip() for line in output.strip().splitlines() if line.strip()]
    detail = lines[-1] if lines else "no output"
    hint = ""
    lowered = output.lower()
    if "no stack named" in lowered or "stack not found" in lowered:
        hint = " List the stacks with `pulumi stack ls`."
    elif "passphrase" in lowered:
        hint = " Set PULUMI_CONFIG_PASSPHRASE (or PULUMI_CONFIG_PASSPHRASE_FILE) for this stack."
    elif "login" in lowered or "credentials" in lowered or "403" in lowered:
        hint = " Log in to the state backend (`pulumi login ...`, see docs/operations.md)."
    return f"`pulumi {' '.join(args[:3])}` failed: {detail}.{hint}"
