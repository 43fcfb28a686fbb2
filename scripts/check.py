"""Run every check CI runs, in order, and stop at the first failure.

Called by `make test` after the bootstrap; runs inside the project's virtual environment.
What pytest needs that takes minutes on a clean machine (the stand-in base and the sandbox
image, an older OpenClaw release for the upgrade refusal test) is prepared in the background
while the linters run: each is the same call the tests make, so they find it cached, and each
is waited for (and its log shown on failure) before pytest starts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
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


@dataclass
class Background:
    """A preparation started before the linters and waited for before pytest."""

    slug: str
    name: str
    cmd: list[str]
    log: Path = field(init=False)
    proc: subprocess.Popen[bytes] = field(init=False)
    started: float = field(init=False)

    def __post_init__(self) -> None:
        logs = ROOT / ".cache" / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        self.log = logs / f"prepare-{self.slug}.log"
        print(f"== {self.name} (background, log in {self.log.relative_to(ROOT)})", flush=True)
        self.started = time.monotonic()
        with self.log.open("wb") as out:
            self.proc = subprocess.Popen(  # noqa: S603 - argument list
                self.cmd, cwd=ROOT, env=tools_env(), stdout=out, stderr=subprocess.STDOUT
            )

    def wait(self) -> None:
        code = self.proc.wait()
        took = time.monotonic() - self.started
        if code != 0:
            tail = self.log.read_text(errors="replace").splitlines()[-30:]
            print("\n".join(tail), flush=True)
            print(f"== {self.name} failed (exit {code}) after {took:.0f}s", flush=True)
            sys.exit(code)
        print(f"== {self.name} ok ({took:.0f}s, finished in the background)", flush=True)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait()


def main() -> None:
    python = str(BIN / "python")
    prepared = [
        Background(
            "images",
            "images: the stand-in base and the sandbox",
            [python, "-m", "devstack.images", "sandbox"],
        ),
        Background(
            "openclaw",
            "an older OpenClaw release for the upgrade refusal test",
            [python, "-m", "tests.ops.openclaw_releases"],
        ),
    ]
    try:
        lint()
        for job in prepared:
            job.wait()
    finally:
        for job in prepared:
            job.stop()
    step("pytest", [python, "-m", "pytest", *sys.argv[1:]])


def lint() -> None:
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


if __name__ == "__main__":
    main()
