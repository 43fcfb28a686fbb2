"""Local container images with Debian's podman: the stand-in base and the real sandbox image.

The production Dockerfile starts from a digest-pinned base on Docker Hub, which this kind of
machine cannot reach. The suite therefore builds a stand-in for it from Debian packages
(mmdebstrap), and builds the real `container/Dockerfile` on top of it with the same build
arguments and platform the deploy path uses (`infra.build.image_build_args`, `IMAGE_PLATFORM`).
The production default of `BASE_IMAGE` is untouched.

Everything podman keeps lives under `.cache/containers/` (its own containers.conf and
storage.conf, handed over by `CONTAINERS_CONF` / `CONTAINERS_STORAGE_CONF`), so the tests, the
benchmarks, `wrangler` (through the docker adapter) and the local stack share one image store
and a checkout never touches the machine's own podman state. Both images are tagged by a hash
of their inputs: an unchanged recipe or context is a lookup, not a rebuild.

    .cache/venv/bin/python -m devstack.images base      # prints the stand-in base's reference
    .cache/venv/bin/python -m devstack.images sandbox   # builds if needed, prints the reference
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from infra.build import IMAGE_PLATFORM, image_build_args, image_fingerprint

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / ".cache"
CONTAINERS = CACHE / "containers"
CONTEXT = ROOT / "container"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
APT_SOURCES = Path("/etc/apt/sources.list.d/debian.sources")

BASE_REPOSITORY = "localhost/moltworker-base"
SANDBOX_REPOSITORY = "localhost/moltworker-sandbox"
# The stand-in's suite: Debian 12's python3 (3.11.2) lacks tarfile's extraction filters that
# container/build/fetch_verified.py relies on; trixie's (3.13) has them, like the pinned base's.
BASE_SUITE = "trixie"
BASE_PACKAGES = ("python3", "python3-pip", "ca-certificates", "passwd")
# The pinned base (python:*-slim) lets pip install system-wide and trusts only public CAs. The
# stand-in matches the first (Debian's pip refuses system installs, PEP 668) and, because builds
# here go through a TLS-intercepting proxy, trusts the machine's CA bundle, which npm and Node
# read only through NODE_EXTRA_CA_CERTS.
BASE_CONTAINERFILE = """\
FROM {imported}
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
RUN rm -f /usr/lib/python3*/EXTERNALLY-MANAGED
ENV NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
"""

CONTAINERS_CONF = """\
# Written by devstack/images.py. crun and the default ulimits fail on this kind of machine
# (cgroups v1, root); runc with cgroupfs works.
[containers]
default_ulimits = []

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
"""

STORAGE_CONF = """\
# Written by devstack/images.py: images and layers stay inside this checkout's .cache/.
[storage]
driver = "overlay"
graphroot = "{graphroot}"
runroot = "{runroot}"
"""


class ImagesError(Exception):
    """A problem building or finding a local image, as one sentence with the fix."""


def podman_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment every podman call of the project runs with (config under .cache/)."""
    CONTAINERS.mkdir(parents=True, exist_ok=True)
    conf = CONTAINERS / "containers.conf"
    storage = CONTAINERS / "storage.conf"
    # runroot holds locks and mount state: on a tmpfs-like path, one per checkout.
    tag = hashlib.sha256(str(CONTAINERS).encode()).hexdigest()[:12]
    wanted = {
        conf: CONTAINERS_CONF,
        storage: STORAGE_CONF.format(
            graphroot=CONTAINERS / "storage", runroot=f"/run/moltworker-containers-{tag}"
        ),
    }
    for path, text in wanted.items():
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
    env = dict(os.environ if base is None else base)
    env["CONTAINERS_CONF"] = str(conf)
    env["CONTAINERS_STORAGE_CONF"] = str(storage)
    return env


def require_podman() -> str:
    found = shutil.which("podman")
    if not found:
        raise ImagesError(
            "podman is needed to build and run the sandbox image: run `python3 "
            "scripts/bootstrap.py --containers` as root (it installs Debian's podman), or "
            "`apt-get install podman`"
        )
    if os.geteuid() != 0:
        raise ImagesError(
            "podman runs here as root only (rootless podman needs subuid ranges and a user "
            "session this setup does not configure): run the command as root"
        )
    return found


def podman(*args: str, capture: bool = True, check: bool = True) -> subprocess.CompletedProcess:
    cmd = [require_podman(), *args]
    result = subprocess.run(  # noqa: S603 - argument list
        cmd, env=podman_env(), capture_output=capture, text=True, check=False
    )
    if check and result.returncode != 0:
        detail = (result.stderr or "").strip().splitlines()[-1:] if capture else []
        raise ImagesError(
            f"`podman {' '.join(args[:3])} ...` exited with {result.returncode}"
            + (f": {detail[0]}" if detail else "; see the output above")
        )
    return result


def image_exists(ref: str) -> bool:
    return podman("image", "exists", ref, check=False).returncode == 0


def debian_mirror() -> str:
    """The machine's own Debian mirror, as apt is configured (deb822 `URIs:` of the main suite)."""
    if APT_SOURCES.exists():
        for line in APT_SOURCES.read_text().splitlines():
            match = re.match(r"\s*URIs:\s*(\S+)", line)
            if match and not match.group(1).rstrip("/").endswith("-security"):
                return match.group(1)
    raise ImagesError(
        f"no Debian mirror found in {APT_SOURCES}: the stand-in base image is built from "
        "Debian packages with mmdebstrap and uses the machine's apt mirror"
    )


def base_key() -> str:
    h = hashlib.sha256()
    for part in (BASE_SUITE, *BASE_PACKAGES, BASE_CONTAINERFILE):
        h.update(part.encode() + b"\0")
    h.update(CA_BUNDLE.read_bytes() if CA_BUNDLE.exists() else b"<no ca bundle>")
    return h.hexdigest()[:16]


def base_image() -> str:
    """The Debian-made stand-in for the pinned base, built once and cached."""
    ref = f"{BASE_REPOSITORY}:{base_key()}"
    if image_exists(ref):
        return ref
    images = CACHE / "images"
    images.mkdir(parents=True, exist_ok=True)
    tarball = images / f"debian-{BASE_SUITE}-{base_key()}.tar"
    if not tarball.exists():
        mmdebstrap = shutil.which("mmdebstrap")
        if not mmdebstrap:
            raise ImagesError(
                "mmdebstrap is needed to build the stand-in base image: run `python3 "
                "scripts/bootstrap.py --containers` as root, or `apt-get install mmdebstrap`"
            )
        print(f"images: building the {BASE_SUITE} base with mmdebstrap", file=sys.stderr)
        partial = tarball.with_suffix(".partial")
        result = subprocess.run(  # noqa: S603 - argument list
            [
                mmdebstrap,
                "--quiet",
                "--variant=minbase",
                "--format=tar",
                f"--include={','.join(BASE_PACKAGES)}",
                BASE_SUITE,
                str(partial),
                debian_mirror(),
            ],
            check=False,
        )
        if result.returncode != 0:
            partial.unlink(missing_ok=True)
            raise ImagesError(f"mmdebstrap exited with {result.returncode}; see its output above")
        partial.rename(tarball)
    imported = f"{BASE_REPOSITORY}-rootfs:{base_key()}"
    if not image_exists(imported):
        podman("import", str(tarball), imported)
    with tempfile.TemporaryDirectory(prefix="molt-base-") as tmp:
        context = Path(tmp)
        shutil.copyfile(CA_BUNDLE, context / "ca-certificates.crt")
        (context / "Containerfile").write_text(BASE_CONTAINERFILE.format(imported=imported))
        podman("build", "--quiet", "--network=host", "-t", ref, str(context))
    return ref


def sandbox_image(*, base: str | None = None) -> str:
    """`container/Dockerfile` built on the stand-in base, as the deploy path builds it."""
    version = (CONTEXT / "openclaw.version").read_text().strip()
    base = base or base_image()
    fingerprint = image_fingerprint(CONTEXT, version, IMAGE_PLATFORM)
    key = hashlib.sha256(f"{fingerprint}|{base}".encode()).hexdigest()[:16]
    ref = f"{SANDBOX_REPOSITORY}:{key}"
    if image_exists(ref):
        return ref
    build_args = [
        f"--build-arg={name}={value}"
        for name, value in {**image_build_args(version), "BASE_IMAGE": base}.items()
    ]
    print(f"images: building {ref} from {CONTEXT.relative_to(ROOT)}/", file=sys.stderr)
    podman(
        "build",
        # Docker format keeps the HEALTHCHECK (OCI image configs have no field for it).
        "--format=docker",
        "--network=host",
        f"--platform={IMAGE_PLATFORM}",
        *build_args,
        "-t",
        ref,
        str(CONTEXT),
        capture=False,
    )
    _drop_old_tags(SANDBOX_REPOSITORY, keep=KEEP_SANDBOX_IMAGES)
    return ref


# Every change under container/ is a new image; older ones only take disk (their shared layers,
# and the build stage's, stay as the cache of the next build).
KEEP_SANDBOX_IMAGES = 4


def _drop_old_tags(repository: str, keep: int) -> None:
    listed = podman(
        "images", "--filter", f"reference={repository}", "--format", "{{.Repository}}:{{.Tag}}"
    )
    refs = [line for line in listed.stdout.split() if line.startswith(f"{repository}:")]
    # `podman images` lists newest first.
    for ref in refs[keep:]:
        podman("rmi", ref, check=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("image", choices=["base", "sandbox"])
    args = parser.parse_args()
    try:
        print(base_image() if args.image == "base" else sandbox_image())
    except ImagesError as exc:
        sys.exit(f"images: {exc}")


if __name__ == "__main__":
    main()
