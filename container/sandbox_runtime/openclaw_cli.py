"""Running OpenClaw's CLI: argument lists only, secrets only through the environment."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .openclaw_config import AIG_HEADER_VAR, render, write_config
from .settings import PROVIDERS, Settings

log = logging.getLogger("openclaw")

# Variables the gateway and its CLI may see. The runtime's own secrets (control key, snapshot
# key, store credentials, CDP secret) are deliberately absent: the agent's tools inherit this
# environment.
_PASSTHROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "NODE_EXTRA_CA_CERTS")


def openclaw_env(settings: Settings) -> dict[str, str]:
    env = {name: settings.env[name] for name in _PASSTHROUGH if name in settings.env}
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    env.setdefault("HOME", str(settings.runtime_dir / "home"))
    env.update(
        OPENCLAW_STATE_DIR=str(settings.state_dir),
        OPENCLAW_CONFIG_PATH=str(settings.config_path),
        # The config is rendered from env every boot; edits through the UI would be lost at the
        # next boot, so OpenClaw is told up front that the file is managed.
        OPENCLAW_CONFIG_READONLY="1",
        # Without it every CLI call starts Node twice (the launcher re-executes itself only to add
        # a warning flag), and a gateway restart for an update could hand over to a detached
        # child outside the supervisor's process group.
        OPENCLAW_NO_RESPAWN="1",
        OPENCLAW_GATEWAY_TOKEN=settings.env["OPENCLAW_GATEWAY_TOKEN"],
    )
    wanted = [key_var for _, key_var in PROVIDERS.values()]
    for channel in settings.channels:
        wanted.extend(channel.token_vars)
    for name in wanted:
        if value := settings.secret(name):
            env[name] = value
    if token := settings.secret("AI_GATEWAY_TOKEN"):
        env[AIG_HEADER_VAR] = f"Bearer {token}"
    return env


@dataclass(frozen=True)
class CliResult:
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    def error_message(self) -> str:
        """OpenClaw's own one-line reason for a failure (from its JSON envelope or stderr)."""
        try:
            data = json.loads(self.stdout)
        except ValueError:
            data = None
        if isinstance(data, dict):
            error = data.get("error")
            if isinstance(error, dict) and isinstance(error.get("message"), str):
                return error["message"]
        lines = [line.strip() for line in self.stderr.splitlines() if line.strip()]
        return lines[0] if lines else f"exited with {self.returncode}"


class CliTimeout(Exception):
    pass


class CliCall:
    """A started `openclaw` process; `result()` collects it, and kills it when cancelled."""

    def __init__(self, proc: asyncio.subprocess.Process, command: str, timeout: float) -> None:
        self._proc = proc
        self._command = command
        self._timeout = timeout
        self._deadline = time.monotonic() + timeout
        self._communicating = asyncio.ensure_future(proc.communicate())

    async def result(self) -> CliResult:
        try:
            out, err = await asyncio.wait_for(
                asyncio.shield(self._communicating), max(0.0, self._deadline - time.monotonic())
            )
        except TimeoutError:
            await self.cancel()
            raise CliTimeout(
                f"openclaw {self._command} did not finish within {self._timeout:.0f}s"
            ) from None
        except asyncio.CancelledError:
            await self.cancel()
            raise
        assert self._proc.returncode is not None
        return CliResult(
            self._proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")
        )

    async def cancel(self) -> None:
        if self._proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.kill()
        with contextlib.suppress(Exception):
            await self._communicating


class OpenClawCli:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def start(self, *args: str, timeout: float = 30.0) -> CliCall:
        """Start `openclaw <args>`; argv carries no secret (the token is in the env)."""
        log.info("running openclaw %s", " ".join(args))
        proc = await asyncio.create_subprocess_exec(
            self.settings.openclaw_bin,
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=openclaw_env(self.settings),
            cwd=str(self.settings.runtime_dir),
        )
        return CliCall(proc, args[0] if args else "", timeout)

    async def run(self, *args: str, timeout: float = 30.0) -> CliResult:
        return await (await self.start(*args, timeout=timeout)).result()

    async def validate_config(self) -> list[str]:
        """Problems OpenClaw's own validator finds in the rendered config (empty when valid)."""
        return validation_issues(await self.run(*VALIDATE_ARGS, timeout=VALIDATE_TIMEOUT_S))


VALIDATE_ARGS = ("config", "validate", "--json")
_VERSION_RE = re.compile(r"(?:^|\s)v?(\d+(?:\.\d+)+[^\s()]*)")
VALIDATE_TIMEOUT_S = 60.0


def validation_issues(result: CliResult) -> list[str]:
    """The issues in `openclaw config validate --json` output; warnings are logged, not issues."""
    try:
        data = result.json()
    except ValueError:
        data = None
    if result.returncode == 0 and isinstance(data, dict) and data.get("valid") is True:
        for warning in data.get("warnings") or []:
            if isinstance(warning, dict):
                log.warning(
                    "OpenClaw config warning: %s: %s", warning.get("path"), warning.get("message")
                )
        return []
    if isinstance(data, dict) and isinstance(data.get("issues"), list):
        issues = [
            f"{issue.get('path', '?')}: {issue.get('message', 'invalid')}"
            for issue in data["issues"]
            if isinstance(issue, dict)
        ]
        if issues:
            return issues
    return [result.error_message()]


class ValidatorFailed(Exception):
    """OpenClaw's validator gave no verdict; the message names the cause and the fix."""


class ConfigCheck:
    """The rendered config, and OpenClaw's verdict on it, started as the first thing in a boot.

    The config depends only on the settings, and OpenClaw's validator is a Node start-up (most of
    a second), so it runs while the rest of the runtime loads and the state is restored; the
    gateway still starts only once it has passed.
    """

    def __init__(self, path: Path, validation: CliCall | OSError, version: CliCall | None) -> None:
        self.path = path
        self._validation = validation
        self._version = version

    @classmethod
    async def start(cls, settings: Settings) -> ConfigCheck:
        """Render and write the config, then start the validator; OSError if it cannot write."""
        path = write_config(settings, render(settings))
        log.info("rendered OpenClaw config to %s (mode 0600)", path)
        cli = OpenClawCli(settings)
        try:
            validation: CliCall | OSError = await cli.start(
                *VALIDATE_ARGS, timeout=VALIDATE_TIMEOUT_S
            )
        except OSError as exc:
            return cls(path, exc, None)
        version: CliCall | None = None
        with contextlib.suppress(OSError):
            version = await cli.start("--version", timeout=30)
        return cls(path, validation, version)

    async def issues(self) -> list[str]:
        """What OpenClaw rejects in the config; empty when the gateway may start.

        Raises ValidatorFailed when there is no verdict (OpenClaw cannot be run or hangs).
        """
        if isinstance(self._validation, OSError):
            raise ValidatorFailed(
                f"cannot run {self._validation.filename or 'openclaw'}: "
                f"{self._validation.strerror or self._validation}; set MOLT_OPENCLAW_BIN to "
                "OpenClaw's launcher"
            )
        try:
            return validation_issues(await self._validation.result())
        except CliTimeout as exc:
            raise ValidatorFailed(str(exc)) from None

    async def openclaw_version(self) -> str | None:
        """OpenClaw's version as its `--version` prints it, or None when it cannot tell."""
        if self._version is None:
            return None
        with contextlib.suppress(Exception):
            result = await self._version.result()
            # "OpenClaw 2026.9.6 (eb377ac)"
            found = _VERSION_RE.search(result.stdout)
            if result.returncode == 0 and found:
                return found.group(1)
        return None

    async def cancel(self) -> None:
        for call in (self._validation, self._version):
            if isinstance(call, CliCall):
                await call.cancel()
