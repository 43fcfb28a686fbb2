"""Run every check CI runs, in order, and stop at the first failure.

Called by `make test` after the bootstrap; runs inside the project's virtual environment.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def tools_env() -> dict[str, str]:
    tools = json.loads((ROOT / ".cache" / "tools.json").read_text())
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(BIN), str(Path(tools["node"]).parent), env.get("PATH", "")])
    # pyright's PyPI wrapper fetches the pyright npm package on first use; keep it in the cache.
    env.setdefault("PYRIGHT_PYTHON_CACHE_DIR", str(ROOT / ".cache" / "pyright"))
    return env


def step(name: str, cmd: list[str], *, cwd: Path = ROOT) -> None:
    print(f"\n== {name}: {' '.join(cmd)}", flush=True)
    started = time.monotonic()
    result = subprocess.run(cmd, cwd=cwd, env=tools_env(), check=False)  # noqa: S603
    took = time.monotonic() - started
    if result.returncode != 0:
        print(f"== {name} failed (exit {result.returncode}) after {took:.0f}s", flush=True)
        sys.exit(result.returncode)
    print(f"== {name} ok ({took:.0f}s)", flush=True)


def main() -> None:
    step("ruff format", [str(BIN / "ruff"), "format", "--check", "."])
    step("ruff check", [str(BIN / "ruff"), "check", "."])
    step("pyright", [str(BIN / "pyright")])
    worker = ROOT / "worker"
    if (worker / "package.json").exists():
        step(
            "worker checks (tsc, lint, vitest in workerd)",
            ["npm", "run", "--silent", "check"],
            cwd=worker,
        )
    step("pytest", [str(BIN / "python"), "-m", "pytest", *sys.argv[1:]])


if __name__ == "__main__":
    main()
