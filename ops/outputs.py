"""A deployed stack's outputs: read once, typed on access, secrets registered for redaction.

Two sources share one shape: the Pulumi CLI (`pulumi stack output --json --show-secrets`) and a
JSON file of the same content (`--outputs-file`, for a machine without Pulumi and for tests).
The names below are the ones `__main__.py` exports; change them together.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from .errors import OpsError, Redactor
from .pulumi_cli import Pulumi

# Output names exported by the Pulumi program (__main__.py).
URL = "workerUrl"
ACCESS_TEAM_DOMAIN = "accessTeamDomain"
R2_ENDPOINT = "r2Endpoint"
R2_BUCKET = "bucket"
R2_ACCESS_KEY_ID = "r2AccessKeyId"
R2_SECRET_ACCESS_KEY = "r2SecretAccessKey"  # noqa: S105 - an output name, not a value
SNAPSHOT_KEY = "snapshotKey"
SNAPSHOT_KEEP = "snapshotKeep"
GATEWAY_TOKEN = "gatewayToken"  # noqa: S105 - an output name, not a value
SERVICE_TOKEN_ID = "accessClientId"  # noqa: S105 - an output name, not a value
SERVICE_TOKEN_SECRET = "accessClientSecret"  # noqa: S105 - an output name, not a value
EPHEMERAL = "ephemeral"
SECRET_OUTPUTS = (
    R2_ACCESS_KEY_ID,
    R2_SECRET_ACCESS_KEY,
    SNAPSHOT_KEY,
    SERVICE_TOKEN_ID,
    SERVICE_TOKEN_SECRET,
    GATEWAY_TOKEN,
)


@dataclass
class StackOutputs:
    stack: str
    values: dict[str, Any]
    source: str
    redact: Redactor

    def __post_init__(self) -> None:
        # Registered before any command runs, so not even an error message can leak them.
        self.register_secrets(*SECRET_OUTPUTS)

    @classmethod
    def from_pulumi(cls, pulumi: Pulumi, stack: str, redact: Redactor) -> StackOutputs:
        return cls(stack, pulumi.stack_outputs(stack), f"stack {stack!r}", redact)

    @classmethod
    def from_file(cls, path: Path, stack: str, redact: Redactor) -> StackOutputs:
        try:
            text = path.read_text()
        except OSError as exc:
            raise OpsError(
                f"cannot read the outputs file {path}: {exc.strerror}; write it with "
                f"`pulumi stack output --json --show-secrets --stack {stack} > {path}`."
            ) from None
        try:
            values = json.loads(text)
        except json.JSONDecodeError:
            raise OpsError(
                f"{path} is not JSON: write it with `pulumi stack output --json --show-secrets`."
            ) from None
        if not isinstance(values, dict):
            raise OpsError(f"{path} must hold a JSON object of stack outputs.")
        return cls(stack, values, f"outputs file {path}", redact)

    def _missing(self, name: str, why: str) -> OpsError:
        return OpsError(
            f"stack output {name!r} is {why} in {self.source}: deploy the stack with this "
            f"version of the program (`pulumi up --stack {self.stack}`) and check "
            f"`pulumi stack output --stack {self.stack}`."
        )

    def text(self, name: str, *, secret: bool = False) -> str:
        value = self.values.get(name)
        if value is None or value == "":
            raise self._missing(name, "missing")
        if not isinstance(value, str):
            raise self._missing(name, f"not a string ({type(value).__name__})")
        if secret:
            self.redact.add(value)
        return value

    def optional_text(self, name: str, *, secret: bool = False) -> str | None:
        if self.values.get(name) in (None, ""):
            return None
        return self.text(name, secret=secret)

    def integer(self, name: str, default: int) -> int:
        value = self.values.get(name, default)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._missing(name, "not a whole number")
        return value

    def flag(self, name: str) -> bool:
        value = self.values.get(name)
        if not isinstance(value, bool):
            raise self._missing(name, "missing or not true/false")
        return value

    def url(self, name: str = URL) -> str:
        value = self.text(name).rstrip("/")
        parts = urlsplit(value)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise self._missing(name, f"not an http(s) URL ({value!r})")
        return value

    def register_secrets(self, *names: str) -> None:
        """Redact these outputs even in commands that do not use them."""
        for name in names:
            value = self.values.get(name)
            if isinstance(value, str):
                self.redact.add(value)
