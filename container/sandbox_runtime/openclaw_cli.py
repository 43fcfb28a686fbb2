"""Running OpenClaw's CLI: argument lists only, secrets only through the environment."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass
from typing import Any

from .openclaw_config import AIG_HEADER_VAR
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


class OpenClawCli:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def run(self, *args: str, timeout: float = 30.0) -> CliResult:
        """Run `openclaw <args>`; argv carries no secret (the token is in the env)."""
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
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise CliTimeout(f"openclaw {args[0]} did not finish within {timeout:.0f}s") from None
        assert proc.returncode is not None
        return CliResult(
            proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")
        )

    async def validate_config(self) -> list[str]:
        """Problems OpenClaw's own validator finds in the rendered config (empty when valid)."""
        result = await self.run("config", "validate", "--json", timeout=60)
        try:
            data = result.json()
        except ValueError:
            data = None
        if result.returncode == 0 and isinstance(data, dict) and data.get("valid") is True:
            for warning in data.get("warnings") or []:
                if isinstance(warning, dict):
                    log.warning(
                        "OpenClaw config warning: %s: %s",
                        warning.get("path"),
                        warning.get("message"),
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
