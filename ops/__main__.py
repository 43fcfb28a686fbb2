"""`python -m ops`: day-2 operations for a deployed moltworker stack (see docs/operations.md).

This module only assembles the command line. Each module named in `COMMAND_MODULES` adds its
own subcommands with `register(commands)` (see `ops.context.Commands`), giving each one a
`handler(args, deps, console) -> int`; a new command module is one more name in the tuple.
Building the parser imports every one of them, so a module keeps imports that take long to load
inside the functions that need them.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from .context import Commands, Deps
from .errors import Console, OpsError, Redactor
from .pulumi_cli import ROOT

# In the order `--help` lists them.
COMMAND_MODULES = (
    "init",
    "smoke",
    "rotate",
    "state_backend",
    "review",
    "backup",
    "doctor",
    "adopt",
    "upgrade",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ops",
        description="Day-2 operations for a deployed moltworker stack. Secrets are never printed.",
    )
    parser.add_argument(
        "--pulumi", default="pulumi", help="the Pulumi CLI binary (default: pulumi)"
    )
    parser.add_argument(
        "--project-dir", default=str(ROOT), help="directory of Pulumi.yaml (default: this checkout)"
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        register: Callable[[Commands], None] = importlib.import_module(f"ops.{name}").register
        register(commands)
    return parser


def main(argv: Sequence[str] | None = None, deps: Deps | None = None) -> int:
    deps = deps or Deps()
    console = Console(Redactor(), deps.out, deps.err)
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args, deps, console)
    except OpsError as exc:
        console.warn(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        console.warn("interrupted")
        return 130


if __name__ == "__main__":
    sys.exit(main())
