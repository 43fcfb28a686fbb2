"""Deterministic inputs built from the working tree: the Worker bundle and the image fingerprint.

Both are keyed by a hash of their *inputs*, so an unchanged tree gives byte-identical resource
inputs (no diff, no rebuild) and a changed file gives a new hash.
"""

from __future__ import annotations

import hashlib
import os
import re
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


# The sandbox image is built for this platform with these arguments by the deploy path and by
# the local image builds (devstack/images.py), so what the suite boots is what deploys.
IMAGE_PLATFORM = "linux/amd64"


def image_build_args(openclaw_version: str) -> dict[str, str]:
    return {"OPENCLAW_VERSION": openclaw_version}


class BuildError(Exception):
    pass


def _files(
    root: Path, include: Iterable[str] | None = None, skip: Callable[[str], bool] | None = None
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
            dirnames[:] = sorted(dirnames)
            for f in sorted(filenames):
                path = Path(dirpath) / f
                if skip is None or not skip(path.relative_to(root).as_posix()):
                    found.append(path)
    return sorted(found)


def _generated(rel: str) -> bool:
    """Build and tool output inside a source tree (never an input of the Worker bundle)."""
    parts = rel.split("/")
    return rel.endswith(_SKIP_SUFFIXES) or any(
        p in _SKIP_DIRS or p.endswith(".egg-info") for p in parts[:-1]
    )


def tree_hash(
    root: Path,
    include: Iterable[str] | None = None,
    skip: Callable[[str], bool] | None = _generated,
    extra: str = "",
) -> str:
    """SHA-256 over relative paths, modes and contents (not mtimes: checkouts change those)."""
    h = hashlib.sha256(extra.encode())
    for path in _files(root, include, skip):
        h.update(path.relative_to(root).as_posix().encode() + b"\0")
        h.update(b"x" if os.access(path, os.X_OK) else b"-")
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def _docker_pattern(pattern: str) -> re.Pattern[str]:
    """Docker's .dockerignore match (Go filepath.Match plus `**`), as a regex."""
    out, i = "", 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out, i = out + "(.*/)?", i + 3  # any number of directories, including none
            continue
        if pattern.startswith("**", i):
            out, i = out + ".*", i + 2
            continue
        out += {"*": "[^/]*", "?": "[^/]"}.get(c, re.escape(c))
        i += 1
    return re.compile(f"^{out}$")


def dockerignore(context: Path) -> Callable[[str], bool] | None:
    """A predicate for files Docker leaves out of the build context, or None.

    The fingerprint must change whenever Docker's context does (else a changed image would not
    be rebuilt and rolled out), so this errs on the side of including: with any `!` exception in
    the file nothing is treated as ignored.
    """
    path = context / ".dockerignore"
    if not path.exists():
        return None
    lines = [ln.strip() for ln in path.read_text().splitlines()]
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    if any(ln.startswith("!") for ln in lines):
        return None
    patterns = [_docker_pattern(os.path.normpath(ln).lstrip("/")) for ln in lines]

    def ignored(rel: str) -> bool:
        parts = rel.split("/")
        # Docker drops a path when the pattern matches it or any directory above it.
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        return any(p.match(prefix) for p in patterns for prefix in prefixes)

    return ignored


def image_fingerprint(context: Path, build_args: str, platform: str) -> str:
    """Hash of what decides the sandbox image: its build context, build arguments and platform."""
    if not (context / "Dockerfile").is_file():
        raise BuildError(f"no Dockerfile in {context}; the sandbox image is built from it")
    return tree_hash(context, skip=dockerignore(context), extra=f"{build_args}|{platform}")


def project_relative(path: Path) -> str:
    """`path` relative to the project when it is inside it: the provider runs there, and state
    stays the same on every machine."""
    try:
        return path.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return str(path)


# Module content types of the Workers upload API, by file extension of wrangler's output.
MODULE_TYPES = {
    ".js": "application/javascript+module",
    ".mjs": "application/javascript+module",
    ".cjs": "application/javascript",
    ".wasm": "application/wasm",
    ".map": "application/source-map",
    ".txt": "text/plain",
    ".html": "text/plain",
    ".bin": "application/octet-stream",
}


@dataclass(frozen=True)
class Module:
    name: str  # path relative to the bundle directory, as the code imports it
    content_type: str
    sha256: str


@dataclass(frozen=True)
class WorkerBundle:
    directory: Path
    main_module: str
    sha256: str  # of the main module's bytes, what the Worker version records
    inputs_hash: str
    # Every file wrangler emitted (chunks, wasm, source maps), the main module first.
    modules: tuple[Module, ...] = ()

    def relative(self, path: Path) -> str:
        return project_relative(path)


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


def _modules(directory: Path, main: str) -> tuple[Module, ...]:
    found = []
    for path in _files(directory):
        rel = path.relative_to(directory).as_posix()
        if rel in (".complete", "README.md"):  # our marker, wrangler's note
            continue
        content_type = MODULE_TYPES.get(path.suffix)
        if content_type is None:
            raise BuildError(
                f"the Worker bundle has {rel}, a file type the Workers upload cannot carry"
            )
        found.append(Module(rel, content_type, hashlib.sha256(path.read_bytes()).hexdigest()))
    found.sort(key=lambda m: (m.name != main, m.name))
    return tuple(found)


def _bundle(directory: Path, inputs_hash: str) -> WorkerBundle:
    main = _main_module(directory)
    modules = _modules(directory, main)
    return WorkerBundle(directory, main, modules[0].sha256, inputs_hash, modules)


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
        return _bundle(prebuilt, tree_hash(prebuilt))
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
        _prune(cache, keep=KEEP_BUNDLES)
    return _bundle(outdir, inputs)


KEEP_BUNDLES = 5


def _prune(cache: Path, keep: int) -> None:
    """Drop all but the `keep` newest finished bundles (switching branches reuses those)."""
    done = [d for d in cache.iterdir() if (d / ".complete").exists()]
    done.sort(key=lambda d: (d / ".complete").stat().st_mtime, reverse=True)
    for old in done[keep:]:
        shutil.rmtree(old, ignore_errors=True)
