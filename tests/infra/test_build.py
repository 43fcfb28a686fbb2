"""Content hashing of the Worker bundle and the image context: unchanged tree, no diff."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from infra import build

pytestmark = pytest.mark.timeout(30)


def worker_tree(root: Path) -> Path:
    (root / "src").mkdir(parents=True)
    (root / "src" / "index.ts").write_text("export default {};\n")
    (root / "package-lock.json").write_text("{}\n")
    (root / "node_modules" / "x").mkdir(parents=True)
    (root / "node_modules" / "x" / "big.js").write_text("ignored\n")
    return root


class CountingBundler:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, worker_dir: Path, outdir: Path) -> None:
        self.calls += 1
        source = (worker_dir / "src" / "index.ts").read_text()
        (outdir / "index.js").write_text(f"// built\n{source}")


def test_unchanged_tree_is_built_once_and_hashes_the_same(tmp_path: Path) -> None:
    tree = worker_tree(tmp_path / "worker")
    bundler = CountingBundler()
    first = build.worker_bundle(tree, bundler=bundler, cache=tmp_path / "cache")
    os.utime(tree / "src" / "index.ts", (1, 1))  # a checkout changes mtimes, not content
    (tree / "node_modules" / "x" / "big.js").write_text("changed, but covered by the lockfile\n")
    second = build.worker_bundle(tree, bundler=bundler, cache=tmp_path / "cache")
    assert bundler.calls == 1
    assert first == second
    assert first.main_module == "index.js" and len(first.sha256) == 64


def test_changed_source_gives_a_new_bundle(tmp_path: Path) -> None:
    tree = worker_tree(tmp_path / "worker")
    bundler = CountingBundler()
    first = build.worker_bundle(tree, bundler=bundler, cache=tmp_path / "cache")
    (tree / "src" / "index.ts").write_text("export default { changed: true };\n")
    second = build.worker_bundle(tree, bundler=bundler, cache=tmp_path / "cache")
    assert bundler.calls == 2
    assert first.inputs_hash != second.inputs_hash and first.sha256 != second.sha256
    assert first.directory != second.directory and first.directory.exists()


def test_failed_build_leaves_no_half_bundle(tmp_path: Path) -> None:
    tree = worker_tree(tmp_path / "worker")

    def broken(_: Path, __: Path) -> None:
        raise build.BuildError("wrangler exploded")

    with pytest.raises(build.BuildError, match="wrangler exploded"):
        build.worker_bundle(tree, bundler=broken, cache=tmp_path / "cache")
    bundler = CountingBundler()
    build.worker_bundle(tree, bundler=bundler, cache=tmp_path / "cache")
    assert bundler.calls == 1  # the failed attempt was not mistaken for a finished build


def test_prebuilt_bundle_and_missing_sources(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "index.js").write_text("x")
    bundle = build.worker_bundle(tmp_path / "nowhere", prebuilt=tmp_path / "out")
    assert bundle.main_module == "index.js"
    with pytest.raises(build.BuildError, match="no Worker sources"):
        build.worker_bundle(tmp_path / "nowhere")
    with pytest.raises(build.BuildError, match="does not exist"):
        build.worker_bundle(tmp_path, prebuilt=tmp_path / "missing")


def test_wrangler_missing_is_explained(tmp_path: Path) -> None:
    tree = worker_tree(tmp_path / "worker")
    with pytest.raises(build.BuildError, match="run `npm ci` there first"):
        build.worker_bundle(tree, cache=tmp_path / "cache")


def test_image_fingerprint_follows_context_version_and_dockerignore(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / ".dockerignore").write_text("tests\n*.log\n")
    (tmp_path / "app.py").write_text("print(1)\n")
    base = build.image_fingerprint(tmp_path, "2026.9.6", "linux/amd64")
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "t.py").write_text("ignored\n")
    (tmp_path / "debug.log").write_text("ignored\n")
    assert build.image_fingerprint(tmp_path, "2026.9.6", "linux/amd64") == base
    assert build.image_fingerprint(tmp_path, "2026.9.7", "linux/amd64") != base
    (tmp_path / "app.py").write_text("print(2)\n")
    assert build.image_fingerprint(tmp_path, "2026.9.6", "linux/amd64") != base


def test_wrangler_bundler_runs_wrangler_dry_run_from_a_relative_dir(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tree = worker_tree(tmp_path / "worker")
    fake = tree / "node_modules" / "wrangler" / "bin"
    fake.mkdir(parents=True)
    # A stand-in wrangler that records its arguments and writes the bundle where told.
    (fake / "wrangler.js").write_text(
        "const fs = require('fs');\n"
        "const out = process.argv[process.argv.indexOf('--outdir') + 1];\n"
        "fs.writeFileSync(out + '/index.js', 'export default {}');\n"
        "const args = [process.cwd(), ...process.argv.slice(2)];\n"
        "fs.writeFileSync(out + '/args.txt', JSON.stringify(args));\n"
    )
    monkeypatch.chdir(tmp_path)
    bundle = build.worker_bundle(Path("worker"), cache=Path("cache"))
    args = json.loads((bundle.directory / "args.txt").read_text())
    assert args[0] == str(tree.resolve())
    assert args[1:4] == ["deploy", "--dry-run", "--outdir"]
    assert bundle.main_module == "index.js"


def test_dockerignore_matches_like_docker(tmp_path: Path) -> None:
    (tmp_path / ".dockerignore").write_text("# comment\n*.log\n**/__pycache__\nbuild/\n")
    ignored = build.dockerignore(tmp_path)
    assert ignored is not None
    assert ignored("debug.log") and not ignored("sub/debug.log")  # `*` stays in one directory
    assert ignored("__pycache__/x.pyc") and ignored("a/b/__pycache__/x.pyc")
    assert ignored("build/out.bin") and not ignored("src/build.py")
    (tmp_path / ".dockerignore").write_text("*.log\n!keep.log\n")
    assert build.dockerignore(tmp_path) is None  # exceptions: include everything, to be safe


def test_a_file_docker_would_send_always_changes_the_fingerprint(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM scratch\n")
    (tmp_path / ".dockerignore").write_text("*.log\n")
    base = build.image_fingerprint(tmp_path, "1.2.3", "linux/amd64")
    (tmp_path / "dist").mkdir()
    (tmp_path / "dist" / "app.log").write_text("docker sends nested .log files\n")
    assert build.image_fingerprint(tmp_path, "1.2.3", "linux/amd64") != base


def test_every_emitted_module_is_uploaded_main_first(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "chunks").mkdir(parents=True)
    (out / "index.js").write_text("import './chunks/a.js'")
    (out / "index.js.map").write_text("{}")
    (out / "chunks" / "a.js").write_text("export {}")
    (out / "rules.wasm").write_bytes(b"\0asm")
    (out / "README.md").write_text("wrangler's note")
    bundle = build.worker_bundle(tmp_path, prebuilt=out)
    assert [(m.name, m.content_type) for m in bundle.modules] == [
        ("index.js", "application/javascript+module"),
        ("chunks/a.js", "application/javascript+module"),
        ("index.js.map", "application/source-map"),
        ("rules.wasm", "application/wasm"),
    ]
    assert bundle.sha256 == bundle.modules[0].sha256
    (out / "data.sqlite").write_bytes(b"x")
    with pytest.raises(build.BuildError, match=r"data\.sqlite, a file type"):
        build.worker_bundle(tmp_path, prebuilt=out)


def test_the_bundle_cache_keeps_the_newest_few(tmp_path: Path) -> None:
    tree = worker_tree(tmp_path / "worker")
    bundler = CountingBundler()
    dirs = []
    for i in range(build.KEEP_BUNDLES + 2):
        (tree / "src" / "index.ts").write_text(f"export default {{ v: {i} }};\n")
        bundle = build.worker_bundle(tree, bundler=bundler, cache=tmp_path / "cache")
        os.utime(bundle.directory / ".complete", (1000 + i, 1000 + i))
        dirs.append(bundle.directory)
    kept = [d for d in dirs if d.exists()]
    assert kept == dirs[-build.KEEP_BUNDLES :]
