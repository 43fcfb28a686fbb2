"""Deterministic inputs built from the working tree: the Worker bundle and the image fingerprint.

Both are keyed by a hash of their *inputs*, so an unchanged tree gives byte-identical resource
inputs (no diff, no rebuild) and a changed file gives a new hash.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import shutil
import subprocess
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUNDLE_CACHE = ROOT / ".cache" / "worker-bundle"
# What decides the Worker bundle; node_modules is covered by the lockfile.
WORKER_INPUTS = ("src", "package.json", "package-lock.json", "wrangler.jsonc", "tsconfig.json")
_SKIP_DIRS = {"node_modules", "__pycache__", ".pytest_cache", ".wrangler", "dist", ".git"}
_SKIP_SUFFIXES = (".pyc",)


class BuildError(Exception):
    pass


def _files(
    root: Path, include: Iterable[str] | None = None, ignore: list[str] | None = None
) -> list[Path]:
    starts = [root / name for name in include] if include else [root]
    found: list[Path] = []
    for start in starts:
        if start.is_file():
            found.append(start)
            continue
        if not start.is_dir():
            continue
        for dirpath, dirnames, filenames in os.walk(start):
            dirnames[:] = sorted(
                d for d in dirnames if d not in _SKIP_DIRS and not d.endswith(".egg-info")
            )
            for f in sorted(filenames):
                path = Path(dirpath) / f
                rel = path.relative_to(root).as_posix()
                if f.endswith(_SKIP_SUFFIXES) or any(fnmatch.fnmatch(rel, p) for p in ignore or []):
                    continue
                found.append(path)
    return sorted(found)


def tree_hash(
    root: Path,
    include: Iterable[str] | None = None,
    ignore: list[str] | None = None,
    extra: str = "",
) -> str:
    """SHA-256 over relative paths, modes and contents (not mtimes: checkouts change those)."""
    h = hashlib.sha256(extra.encode())
    for path in _files(root, include, ignore):
        h.update(path.relative_to(root).as_posix().encode() + b"\0")
        h.update(b"x" if os.access(path, os.X_OK) else b"-")
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def dockerignore(context: Path) -> list[str]:
    path = context / ".dockerignore"
    if not path.exists():
        return []
    patterns = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "!")):
            patterns.append(line.rstrip("/"))
            patterns.append(line.rstrip("/") + "/*")
    return patterns


def image_fingerprint(context: Path, openclaw_version: str, platform: str) -> str:
    """Hash of what decides the sandbox image: its build context, OpenClaw pin and platform."""
    if not (context / "Dockerfile").is_file():
        raise BuildError(f"no Dockerfile in {context}; the sandbox image is built from it")
    return tree_hash(context, ignore=dockerignore(context), extra=f"{openclaw_version}|{platform}")


@dataclass(frozen=True)
class WorkerBundle:
    directory: Path
    main_module: str
    sha256: str  # of the main module's bytes, what the Worker version records
    inputs_hash: str

    def relative(self, path: Path) -> str:
        # Relative to the project: the provider runs there, and state stays machine-independent.
        try:
            return path.relative_to(ROOT).as_posix()
        except ValueError:
            return str(path)


Bundler = Callable[[Path, Path], None]


def wrangler_bundler(worker_dir: Path, outdir: Path) -> None:
    """`wrangler deploy --dry-run --outdir`: wrangler's own bundling, exactly as it would deploy."""
    worker_dir, outdir = worker_dir.resolve(), outdir.resolve()  # wrangler runs in worker_dir
    wrangler = worker_dir / "node_modules" / "wrangler" / "bin" / "wrangler.js"
    if not wrangler.exists():
        raise BuildError(f"wrangler is not installed in {worker_dir}; run `npm ci` there first")
    node = shutil.which("node")
    if node is None:
        raise BuildError("node is not on PATH; install Node 24 (or run `make test` once)")
    result = subprocess.run(  # noqa: S603 - fixed argument list, no shell
        [node, str(wrangler), "deploy", "--dry-run", "--outdir", str(outdir)],
        cwd=worker_dir,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "WRANGLER_SEND_METRICS": "false"},
    )
    if result.returncode != 0:
        tail = "\n".join(result.stderr.strip().splitlines()[-15:])
        raise BuildError(f"`wrangler deploy --dry-run` failed in {worker_dir}:\n{tail}")


def _main_module(directory: Path) -> str:
    for candidate in ("index.js", "worker.js", "index.mjs"):
        if (directory / candidate).is_file():
            return candidate
    raise BuildError(f"no index.js in the Worker bundle {directory}")


def worker_bundle(
    worker_dir: Path,
    prebuilt: Path | None = None,
    bundler: Bundler = wrangler_bundler,
    cache: Path = BUNDLE_CACHE,
) -> WorkerBundle:
    """The Worker bundle for these sources, built at most once per distinct input tree."""
    if prebuilt is not None:
        if not prebuilt.is_dir():
            raise BuildError(f"workerBundleDir {prebuilt} does not exist")
        main = _main_module(prebuilt)
        digest = hashlib.sha256((prebuilt / main).read_bytes()).hexdigest()
        return WorkerBundle(prebuilt, main, digest, tree_hash(prebuilt))
    if not (worker_dir / "src").is_dir():
        raise BuildError(f"no Worker sources in {worker_dir}/src")
    inputs = tree_hash(worker_dir, include=WORKER_INPUTS)
    outdir = cache / inputs[:32]
    if not (outdir / ".complete").exists():
        staging = cache / f".staging-{inputs[:32]}-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        bundler(worker_dir, staging)
        _main_module(staging)
        (staging / ".complete").write_text(inputs)
        shutil.rmtree(outdir, ignore_errors=True)
        staging.rename(outdir)
    main = _main_module(outdir)
    digest = hashlib.sha256((outdir / main).read_bytes()).hexdigest()
    return WorkerBundle(outdir, main, digest, inputs)
