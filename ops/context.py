"""What a command reaches outside the process (the seams tests replace), the stack outputs, and
the options every stack command shares."""

from __future__ import annotations

import argparse
import asyncio
import os
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO, TypeAlias, TypeVar

import httpx

from .errors import Console
from .outputs import StackOutputs
from .pulumi_cli import Pulumi, PulumiCli, check_stack_name

if TYPE_CHECKING:
    import cloudflare

# What a command module's `register(commands)` adds its subcommands to (ops/__main__.py).
Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def _default_pulumi(args: argparse.Namespace, console: Console) -> Pulumi:
    return PulumiCli(binary=args.pulumi, cwd=Path(args.project_dir), emit=console.print)


def _default_cloudflare(token: str) -> cloudflare.Cloudflare:
    import cloudflare  # imported only for the one command that needs it

    return cloudflare.Cloudflare(api_token=token, timeout=30.0, max_retries=2)


@dataclass
class Deps:
    """Everything a command reaches outside the process; tests replace these."""

    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    out: TextIO | None = None
    err: TextIO | None = None
    pulumi: Callable[[argparse.Namespace, Console], Pulumi] = _default_pulumi
    http_transport: httpx.BaseTransport | None = None
    cloudflare: Callable[[str], cloudflare.Cloudflare] = _default_cloudflare
    github_transport: httpx.BaseTransport | None = None


T = TypeVar("T")


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    # Not asyncio.run: it leaves the thread without a current loop, and the Pulumi SDK's
    # Outputs (the settings loader makes some) need one afterwards.
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(coro)
    finally:
        loop.close()


def stack_outputs(args: argparse.Namespace, deps: Deps, console: Console) -> StackOutputs:
    """From `--outputs-file` when given, else `pulumi stack output --json --show-secrets`."""
    stack = check_stack_name(args.stack)
    if args.outputs_file:
        return StackOutputs.from_file(Path(args.outputs_file), stack, console.redact)
    return StackOutputs.from_pulumi(deps.pulumi(args, console), stack, console.redact)


def add_stack_options(parser: argparse.ArgumentParser, *, outputs: bool) -> None:
    """`--stack`, and with `outputs` the `--outputs-file` that `stack_outputs` reads."""
    parser.add_argument("--stack", required=True, help="stack name: dev, staging, prod or pr-<n>")
    if outputs:
        parser.add_argument(
            "--outputs-file",
            help="read the stack outputs from this JSON file (`pulumi stack output --json "
            "--show-secrets`) instead of running the Pulumi CLI",
        )
