"""infra/docker_shim.py: the docker invocations wrangler makes, as podman runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from infra import docker_shim
from infra.docker_shim import plan

SHIM = Path(docker_shim.__file__)
DIGEST = "sha256:" + "d" * 64
REF = "127.0.0.1:5000/acct/app-sandbox:1a2b3c4d"

# wrangler 4.124's build command (containers-shared constructBuildCommand) for our container.
WRANGLER_BUILD = [
    "build", "--load", "-t", "app-sandbox:1a2b3c4d", "--platform", "linux/amd64",
    "--provenance=false", "--build-arg", "OPENCLAW_VERSION=2026.9.6", "--network", "host",
    "-f", "-", "/src/container",
]  # fmt: skip


def test_build_drops_what_podman_lacks_and_reads_the_dockerfile_from_stdin() -> None:
    p = plan(WRANGLER_BUILD)
    assert p.kind == "build" and p.stdin_dockerfile
    assert p.args == [
        "build", "--format=docker", "-t", "app-sandbox:1a2b3c4d", "--platform", "linux/amd64",
        "--build-arg", "OPENCLAW_VERSION=2026.9.6", "--network", "host", "/src/container",
    ]  # fmt: skip


def test_build_keeps_an_explicit_format_and_a_dockerfile_path() -> None:
    p = plan(["build", "--format", "oci", "-f", "Containerfile", "--provenance", "."])
    assert p.args == ["build", "--format", "oci", "-f", "Containerfile", "."]
    assert not p.stdin_dockerfile
    assert plan(["build", "--file=-", "."]).stdin_dockerfile


def test_push_manifest_and_digests_are_rewritten_everything_else_passes_through() -> None:
    assert plan(["push", REF]) == docker_shim.Plan("push", ["push", REF], ref=REF)
    assert plan(["push", "--tls-verify=false", REF]).kind == "exec"
    ref = f"127.0.0.1:5000/acct/app@{DIGEST}"
    assert plan(["manifest", "inspect", "-v", ref]).kind == "manifest"
    assert plan(["manifest", "inspect", ref]).kind == "exec"
    inspect = ["image", "inspect", REF, "--format", "{{ json .RepoDigests }}"]
    assert plan(inspect).kind == "digests"
    for argv in (
        ["image", "inspect", REF, "--format", "{{ .Size }} {{ len .RootFS.Layers }}"],
        ["login", "--password-stdin", "--username", "v1", "127.0.0.1:5000"],
        ["tag", "a:1", REF],
        ["image", "rm", "a:1"],
        ["info"],
        [],
    ):
        assert plan(argv) == docker_shim.Plan("exec", argv)


def test_verbose_manifest_is_dockers_shape() -> None:
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
    }
    out = json.loads(docker_shim.verbose_manifest(f"r/a@{DIGEST}", json.dumps(manifest, indent=4)))
    assert out == {
        "Ref": f"r/a@{DIGEST}",
        "Descriptor": {"mediaType": manifest["mediaType"], "digest": DIGEST},
        "SchemaV2Manifest": manifest,
    }
    oci = json.loads(docker_shim.verbose_manifest(f"r/a@{DIGEST}", '{"schemaVersion": 2}'))
    assert "OCIManifest" in oci


FAKE_PODMAN = """\
import json, os, sys
args = sys.argv[1:]
entry = {"args": args}
if args[0] == "build":
    path = args[args.index("--file") + 1]
    entry["dockerfile"] = open(path).read()
elif args[0] == "push":
    open(args[args.index("--digestfile") + 1], "w").write("DIGEST\\n")
elif args[0] == "login":
    entry["stdin"] = sys.stdin.read()
elif args[:2] == ["manifest", "inspect"]:
    if "missing" in args[2]:
        sys.exit(print("Error: reading manifest: manifest unknown", file=sys.stderr) or 125)
    if "nocreds" in args[2]:
        sys.exit(print("Error: unauthorized: authentication required", file=sys.stderr) or 125)
    oci = "application/vnd.oci.image.manifest.v1+json"
    print(json.dumps({"schemaVersion": 2, "mediaType": oci}, indent=4))
elif args[:2] == ["image", "inspect"]:
    names = ["localhost/app", "r/missing", "r/nocreds", "r/app"]
    print(json.dumps([f"{n}@sha256:{i}" for i, n in enumerate(names, 1)]))
with open(os.environ["FAKE_LOG"], "a") as log:
    log.write(json.dumps(entry) + "\\n")
sys.exit(int(os.environ.get("FAKE_EXIT", "0")))
"""


@pytest.fixture
def fake(tmp_path: Path) -> tuple[dict[str, str], Path]:
    podman = tmp_path / "podman"
    podman.write_text(f"#!{sys.executable}\n" + FAKE_PODMAN.replace("DIGEST", DIGEST))
    podman.chmod(0o755)
    log = tmp_path / "log.jsonl"
    env = dict(os.environ, MOLT_PODMAN_BIN=str(podman), FAKE_LOG=str(log))
    return env, log


def shim(env: dict[str, str], *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SHIM), *args], input=stdin, env=env, capture_output=True, text=True, check=False
    )


def calls(log: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_the_shim_is_an_executable_stdlib_script() -> None:
    assert os.access(SHIM, os.X_OK)
    assert SHIM.read_text().startswith("#!/usr/bin/env python3\n")
    imports = {
        line.split()[1].split(".")[0]
        for line in SHIM.read_text().splitlines()
        if line.startswith(("import ", "from "))
    }
    assert imports <= set(sys.stdlib_module_names) | {"__future__"}


def test_build_hands_podman_the_dockerfile_from_stdin(fake: tuple[dict[str, str], Path]) -> None:
    env, log = fake
    result = shim(env, *WRANGLER_BUILD, stdin="FROM scratch\nEXPOSE 8080\n")
    assert result.returncode == 0, result.stderr
    (call,) = calls(log)
    assert call["dockerfile"] == "FROM scratch\nEXPOSE 8080\n"
    args = call["args"]
    assert isinstance(args, list) and args[:2] == ["build", "--file"]
    assert not Path(args[2]).exists()  # the temporary Dockerfile is gone afterwards


def test_push_records_the_pushed_digest_by_pulling_it(fake: tuple[dict[str, str], Path]) -> None:
    env, log = fake
    assert shim(env, "push", REF).returncode == 0
    push, pull = calls(log)
    assert push["args"][:2] == ["push", "--digestfile"] and push["args"][-1] == REF  # type: ignore[index]
    assert pull["args"] == ["pull", "--quiet", f"127.0.0.1:5000/acct/app-sandbox@{DIGEST}"]


def test_failures_keep_podmans_exit_code(fake: tuple[dict[str, str], Path]) -> None:
    env, _ = fake
    env["FAKE_EXIT"] = "3"
    assert shim(env, "push", REF).returncode == 3
    assert shim(env, "info").returncode == 3


def test_repo_digests_drop_what_the_registry_does_not_have(
    fake: tuple[dict[str, str], Path],
) -> None:
    env, _ = fake
    result = shim(env, "image", "inspect", REF, "--format", "{{ json .RepoDigests }}")
    # A check that cannot tell (no credentials yet) keeps the entry.
    assert json.loads(result.stdout) == ["r/nocreds@sha256:3", "r/app@sha256:4"]


def test_manifest_inspect_verbose(fake: tuple[dict[str, str], Path]) -> None:
    env, _ = fake
    result = shim(env, "manifest", "inspect", "-v", f"r/app@{DIGEST}")
    assert json.loads(result.stdout)["Descriptor"]["digest"] == DIGEST
    assert shim(env, "manifest", "inspect", "-v", f"r/missing@{DIGEST}").returncode == 125
    refused = shim(env, "manifest", "inspect", "-v", "r/app:tag")
    assert refused.returncode == 1 and "needs a digest reference" in refused.stderr


def test_login_passes_the_password_on_stdin(fake: tuple[dict[str, str], Path]) -> None:
    env, log = fake
    result = shim(env, "login", "--password-stdin", "--username", "v1", "r", stdin="pw-1")
    assert result.returncode == 0
    (call,) = calls(log)
    assert call == {"args": ["login", "--password-stdin", "--username", "v1", "r"], "stdin": "pw-1"}


def test_pull_of_an_image_built_here_is_answered_from_local_storage(
    fake: tuple[dict[str, str], Path],
) -> None:
    env, log = fake
    local = "localhost/moltworker-egress:0123abcd"
    assert plan(["pull", local]) == docker_shim.Plan("local", ["image", "exists", local], ref=local)
    assert shim(env, "pull", local).returncode == 0
    assert calls(log) == [{"args": ["image", "exists", local]}]  # no registry asked
    env["FAKE_EXIT"] = "1"  # `podman image exists`: not there
    missing = shim(env, "pull", local)
    assert missing.returncode == 1 and f"{local} is in no registry" in missing.stderr
    env["FAKE_EXIT"] = "125"  # podman itself failed: its code, its message
    assert shim(env, "pull", local).returncode == 125


def test_other_pulls_are_podmans() -> None:
    for argv in (["pull", REF], ["pull", "--quiet", "localhost/a:1"], ["pull", "docker.io/a:1"]):
        assert plan(argv) == docker_shim.Plan("exec", argv)
