"""Test stand-ins for the two seams the ops commands reach through: Pulumi and stack outputs.

`MemoryPulumi` implements the same `ops.pulumi_cli.Pulumi` interface over in-memory stacks. It
never pretends to deploy anything: `up` and `destroy_and_remove` only record that they were
asked for, which is what the command logic under test decides.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ops.__main__ import main
from ops.context import Deps
from ops.errors import OpsError


@dataclass
class MemoryStack:
    config: dict[str, str] = field(default_factory=dict)  # the local Pulumi.<stack>.yaml
    deployed_config: dict[str, str] | None = None  # the config of the last deployment
    outputs: dict[str, Any] = field(default_factory=dict)
    resources: list[dict[str, Any]] = field(default_factory=list)  # `pulumi stack export`


@dataclass
class MemoryPulumi:
    stacks: dict[str, MemoryStack] = field(default_factory=dict)
    calls: list[tuple[str, ...]] = field(default_factory=list)
    fail_refresh: set[str] = field(default_factory=set)

    def _stack(self, stack: str) -> MemoryStack:
        if stack not in self.stacks:
            raise OpsError(f"`pulumi stack` failed: no stack named '{stack}' found.")
        return self.stacks[stack]

    def stack_outputs(self, stack: str) -> dict[str, Any]:
        self.calls.append(("outputs", stack))
        return dict(self._stack(stack).outputs)

    def config(self, stack: str) -> dict[str, str]:
        return dict(self._stack(stack).config)

    def config_set(self, stack: str, key: str, value: str) -> None:
        self.calls.append(("config_set", stack, key, value))
        self._stack(stack).config[key] = value

    def config_refresh(self, stack: str) -> None:
        self.calls.append(("config_refresh", stack))
        target = self._stack(stack)
        if stack in self.fail_refresh or target.deployed_config is None:
            raise OpsError(f"`pulumi config refresh` failed: stack {stack} has no deployment.")
        target.config = dict(target.deployed_config)

    def stack_exists(self, stack: str) -> bool:
        return stack in self.stacks

    def stack_init(self, stack: str, copy_config_from: str) -> None:
        self.calls.append(("stack_init", stack, copy_config_from))
        template = self._stack(copy_config_from)
        self.stacks[stack] = MemoryStack(config=dict(template.config))

    def config_copy(self, source: str, dest: str) -> None:
        self.calls.append(("config_copy", source, dest))
        self._stack(dest).config.update(self._stack(source).config)

    def stack_rm(self, stack: str) -> None:
        self.calls.append(("stack_rm", stack))
        if self._stack(stack).deployed_config is not None:
            raise OpsError(f"`pulumi stack rm` failed: {stack} still has resources.")
        del self.stacks[stack]

    def stack_names(self) -> list[str]:
        return list(self.stacks)

    def up(self, stack: str, env: Mapping[str, str] | None = None) -> None:
        self.calls.append(("up", stack))
        target = self._stack(stack)
        target.deployed_config = dict(target.config)

    def destroy_and_remove(self, stack: str) -> None:
        self.calls.append(("destroy_and_remove", stack))
        del self.stacks[stack]

    def stack_export(self, stack: str) -> dict[str, Any]:
        self.calls.append(("stack_export", stack))
        resources = [dict(r) for r in self._stack(stack).resources]
        return {"version": 3, "deployment": {"manifest": {}, "resources": resources}}

    def state_delete(self, stack: str, urn: str, *, force: bool = False) -> None:
        """As the CLI: refuses a URN that is missing, protected without force, or still the
        parent, provider or dependency of another resource in the state."""
        self.calls.append(("state_delete", stack, urn, *(["--force"] if force else [])))
        resources = self._stack(stack).resources
        target = next((r for r in resources if r["urn"] == urn), None)
        if target is None:
            raise OpsError(f"`pulumi state delete` failed: No such resource {urn!r} exists.")
        if target.get("protect") and not force:
            raise OpsError(f"`pulumi state delete` failed: {urn} is protected.")
        for r in resources:
            refs = {r.get("parent"), str(r.get("provider") or "").rsplit("::", 1)[0]}
            refs |= set(r.get("dependencies") or [])
            if urn in refs:
                raise OpsError(f"`pulumi state delete` failed: {r['urn']} depends on {urn}.")
        resources.remove(target)


@dataclass
class Run:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


class Cli:
    """Runs `python -m ops` in-process with the test seams, capturing both streams."""

    def __init__(self, pulumi: MemoryPulumi, deps: Deps) -> None:
        self.pulumi = pulumi
        self.deps = deps

    def __call__(self, *argv: str) -> Run:
        out, err = io.StringIO(), io.StringIO()
        self.deps.out, self.deps.err = out, err
        code = main(list(argv), self.deps)
        return Run(code, out.getvalue(), err.getvalue())


def current_event_loop() -> asyncio.AbstractEventLoop | None:
    """The thread's current event loop, or None when asyncio.run() left it unset."""
    try:
        return asyncio.get_event_loop_policy().get_event_loop()
    except RuntimeError:
        return None
