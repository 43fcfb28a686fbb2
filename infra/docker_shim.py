#!/usr/bin/env python3
"""A docker CLI for wrangler on top of podman: `WRANGLER_DOCKER_BIN=infra/docker_shim.py`.

wrangler (4.124) builds, inspects and pushes the container image by running `docker ...`.
Podman 4.3 (Debian 12) takes most of those commands as they are; this adapter rewrites the
few it does not and passes everything else through to `podman` (or `$MOLT_PODMAN_BIN`):

- `build`: drops `--provenance=...` and `--load` (podman has neither; its builds always land
  in local storage), writes a Dockerfile given on stdin (`-f -`) to a temporary file (podman
  reads `/dev/stdin`, which fails when stdin is a socket, as under Node), and adds
  `--format=docker` unless a format is given: Docker's builder keeps HEALTHCHECK, podman's
  default OCI format drops it.
- `push REF`: pushes, then pulls `REF@<pushed digest>` back. A push compresses the layers, so
  the registry's manifest digest differs from the local one; docker records the pushed digest
  in `RepoDigests` and wrangler reads it from there (`image inspect --format '{{ json
  .RepoDigests }}'`). The pull reuses every local layer and only records that digest.
- `image inspect REF --format '{{ json .RepoDigests }}'`: drops the digests the registry
  says it does not have (checked with `manifest inspect`). Docker's RepoDigests name pushed or
  pulled manifests only; podman's also pair every name with local manifest digests no registry
  ever saw, and wrangler takes the first entry of the right repository as the image to deploy.
- `manifest inspect -v REF@sha256:...`: podman has no `-v`; its output is the bare manifest,
  wrapped here as docker's verbose form (`{"Ref", "Descriptor": {"digest", "mediaType"},
  "SchemaV2Manifest" | "OCIManifest"}`), which wrangler reads to skip pushing an image the
  registry already has. A tag reference with `-v` is refused: podman re-indents the manifest,
  so its digest cannot be recovered from the output.
- `pull localhost/NAME`: podman names an image built here `localhost/NAME`, a registry that
  does not exist, so such a pull can only be answered from local storage: 0 when podman has
  the image, a one-line error naming it otherwise. `wrangler dev` pulls its egress sidecar
  image on every start, which the local stack builds (devstack.egress). Any other pull is
  podman's.

Podman's own settings come from the environment (CONTAINERS_CONF, CONTAINERS_STORAGE_CONF,
CONTAINERS_REGISTRIES_CONF). Registry credentials from `docker login` land in podman's auth
file; podman 4.3's `manifest inspect` ignores REGISTRY_AUTH_FILE, so isolate credentials with
XDG_RUNTIME_DIR (the auth file is `$XDG_RUNTIME_DIR/containers/auth.json`) instead.

Standard library only: it runs as a subprocess of wrangler, outside the project's venv.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass

PODMAN_ENV = "MOLT_PODMAN_BIN"
DIGEST_MARK = "@sha256:"
REPO_DIGESTS = "{{ json .RepoDigests }}"
LOCAL_REGISTRY = "localhost/"  # podman's name for images built on this machine


@dataclass
class Plan:
    """What to run for one docker invocation. `kind` is "exec" (replace this process with
    podman), "build" (needs the Dockerfile from stdin first), "push", "digests", "manifest"
    or "local" (an image only local storage can have)."""

    kind: str
    args: list[str]
    stdin_dockerfile: bool = False
    ref: str = ""


def plan(argv: list[str]) -> Plan:
    """Translate docker arguments (without the program name) into podman's."""
    if not argv:
        return Plan("exec", [])
    command, rest = argv[0], argv[1:]
    if command == "build":
        return _plan_build(rest)
    if command == "push":
        if len(rest) == 1 and not rest[0].startswith("-"):
            return Plan("push", ["push", *rest], ref=rest[0])
        return Plan("exec", argv)  # flags wrangler does not send: podman judges them
    if command == "pull" and len(rest) == 1 and rest[0].startswith(LOCAL_REGISTRY):
        return Plan("local", ["image", "exists", rest[0]], ref=rest[0])
    if argv[:2] == ["image", "inspect"] and argv[3:] == ["--format", REPO_DIGESTS]:
        return Plan("digests", ["image", "inspect", argv[2], "--format", REPO_DIGESTS], ref=argv[2])
    if argv[:2] == ["manifest", "inspect"]:
        verbose = {"-v", "--verbose"} & set(argv[2:])
        rest = [a for a in argv[2:] if a not in {"-v", "--verbose", "--insecure"}]
        if verbose and len(rest) == 1 and not rest[0].startswith("-"):
            return Plan("manifest", ["manifest", "inspect", rest[0]], ref=rest[0])
        return Plan("exec", ["manifest", "inspect", *rest])
    return Plan("exec", list(argv))


def _plan_build(rest: list[str]) -> Plan:
    out: list[str] = []
    stdin_dockerfile = False
    has_format = False
    i = 0
    while i < len(rest):
        arg = rest[i]
        if arg == "--load" or arg == "--provenance" or arg.startswith("--provenance="):
            i += 1
            continue
        if arg in {"-f", "--file"} and i + 1 < len(rest) and rest[i + 1] == "-":
            stdin_dockerfile = True
            i += 2
            continue
        if arg in {"--file=-", "-f-"}:
            stdin_dockerfile = True
            i += 1
            continue
        if arg == "--format" or arg.startswith("--format="):
            has_format = True
        out.append(arg)
        i += 1
    if not has_format:
        out.insert(0, "--format=docker")
    return Plan("build", ["build", *out], stdin_dockerfile=stdin_dockerfile)


def verbose_manifest(ref: str, manifest_json: str) -> str:
    """docker's `manifest inspect -v` form of a single-image manifest fetched by digest."""
    manifest = json.loads(manifest_json)
    media_type = manifest.get("mediaType", "application/vnd.oci.image.manifest.v1+json")
    key = "SchemaV2Manifest" if "docker" in media_type else "OCIManifest"
    digest = "sha256:" + ref.split(DIGEST_MARK, 1)[1]
    return json.dumps(
        {"Ref": ref, "Descriptor": {"mediaType": media_type, "digest": digest}, key: manifest}
    )


def run(argv: list[str]) -> int:
    podman = os.environ.get(PODMAN_ENV) or "podman"
    p = plan(argv)
    if p.kind == "exec":
        os.execvp(podman, [podman, *p.args])  # noqa: S606 - the whole point: become podman
    if p.kind == "build":
        return _build(podman, p)
    if p.kind == "push":
        return _push(podman, p.ref)
    if p.kind == "digests":
        return _repo_digests(podman, p.args)
    if p.kind == "local":
        return _local_image(podman, p)
    return _manifest(podman, p.ref)


def _build(podman: str, p: Plan) -> int:
    with tempfile.TemporaryDirectory(prefix="docker-shim-") as tmp:
        args = list(p.args)
        if p.stdin_dockerfile:
            dockerfile = os.path.join(tmp, "Dockerfile")
            with open(dockerfile, "wb") as f:
                f.write(sys.stdin.buffer.read())
            args[1:1] = ["--file", dockerfile]
        return subprocess.run([podman, *args], check=False).returncode  # noqa: S603


def _push(podman: str, ref: str) -> int:
    with tempfile.TemporaryDirectory(prefix="docker-shim-") as tmp:
        digest_file = os.path.join(tmp, "digest")
        cmd = [podman, "push", "--digestfile", digest_file, ref]
        pushed = subprocess.run(cmd, check=False)  # noqa: S603
        if pushed.returncode != 0:
            return pushed.returncode
        with open(digest_file) as f:
            digest = f.read().strip()
    repository = ref.rsplit("@", 1)[0]
    if ":" in repository.rsplit("/", 1)[-1]:
        repository = repository.rsplit(":", 1)[0]
    cmd = [podman, "pull", "--quiet", f"{repository}@{digest}"]
    pulled = subprocess.run(cmd, check=False, stdout=subprocess.DEVNULL)  # noqa: S603
    if pulled.returncode != 0:
        print(f"docker_shim: pushed {ref} ({digest}) but could not record it", file=sys.stderr)
    return pulled.returncode


def _known_missing(podman: str, ref: str) -> bool:
    """True when the registry says it has no such manifest. Names podman gives images built
    here (`localhost/...`) are in no registry. A failure that is not "unknown" (e.g. no
    credentials yet: wrangler inspects before it logs in) keeps the entry, as docker would."""
    if ref.startswith(LOCAL_REGISTRY):
        return True
    cmd = [podman, "manifest", "inspect", ref]
    found = subprocess.run(cmd, check=False, capture_output=True, text=True)  # noqa: S603
    return found.returncode != 0 and "manifest unknown" in found.stderr


def _local_image(podman: str, p: Plan) -> int:
    found = subprocess.run([podman, *p.args], check=False)  # noqa: S603
    if found.returncode != 1:  # 0: there; anything else: podman failed and said why
        return found.returncode
    print(
        f"docker_shim: {p.ref} is in no registry and not in podman's local storage; build it "
        "first (for the local stack: python -m devstack --containers builds it)",
        file=sys.stderr,
    )
    return 1


def _repo_digests(podman: str, args: list[str]) -> int:
    result = subprocess.run([podman, *args], check=False, stdout=subprocess.PIPE, text=True)  # noqa: S603
    if result.returncode != 0:
        return result.returncode
    digests = json.loads(result.stdout or "[]") or []
    print(json.dumps([d for d in digests if not _known_missing(podman, d)]))
    return 0


def _manifest(podman: str, ref: str) -> int:
    if DIGEST_MARK not in ref:
        print(
            f"docker_shim: `manifest inspect -v {ref}` needs a digest reference with podman "
            "(it re-indents the manifest, so the digest of a tag cannot be derived)",
            file=sys.stderr,
        )
        return 1
    cmd = [podman, "manifest", "inspect", ref]
    result = subprocess.run(cmd, check=False, stdout=subprocess.PIPE, text=True)  # noqa: S603
    if result.returncode != 0:
        return result.returncode
    print(verbose_manifest(ref, result.stdout))
    return 0


if __name__ == "__main__":
    sys.exit(run(sys.argv[1:]))
