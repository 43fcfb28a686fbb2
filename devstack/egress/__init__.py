"""The local stand-in for workerd's egress sidecar, and its images (see sidecar.py).

`egress_image()` is the program on the Debian-made base (`devstack.images.base_image()`), tagged
by a hash of its inputs like the other local images. `relay_image()` adds one stack's relay table
as an environment variable on top: workerd creates the sidecar with its own flags and no
environment of ours, so the image is the only channel into it; the layer has no files, builds in
about a second and is removed with the stack.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
from pathlib import Path

from .sidecar import RELAYS_VAR, Relay

HERE = Path(__file__).resolve().parent
SIDECAR = HERE / "sidecar.py"
CONTAINERFILE = HERE / "Containerfile"
EGRESS_REPOSITORY = "localhost/moltworker-egress"
RELAY_REPOSITORY = "localhost/moltworker-egress-relays"

__all__ = ["Relay", "egress_image", "relay_image"]


def _key(*parts: bytes) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part + b"\0")
    return digest.hexdigest()[:16]


def egress_image(base: str | None = None) -> str:
    """The sidecar image, built once per (program, recipe, base) and then looked up."""
    from devstack import images

    base = base or images.base_image()
    key = _key(SIDECAR.read_bytes(), CONTAINERFILE.read_bytes(), base.encode())
    ref = f"{EGRESS_REPOSITORY}:{key}"
    if images.image_exists(ref):
        return ref
    with tempfile.TemporaryDirectory(prefix="molt-egress-") as tmp:
        for source in (SIDECAR, CONTAINERFILE):
            shutil.copyfile(source, Path(tmp) / source.name)
        images.podman("build", "--quiet", f"--build-arg=BASE_IMAGE={base}", "-t", ref, tmp)
    return ref


def relay_image(relays: list[Relay], base: str | None = None) -> str:
    """`egress_image()` plus `MOLT_EGRESS_RELAYS` for one stack's relays."""
    from devstack import images

    parent = egress_image(base)
    table = ",".join(f"{r.listen}={r.target}" for r in relays)
    ref = f"{RELAY_REPOSITORY}:{_key(parent.encode(), table.encode())}"
    if images.image_exists(ref):
        return ref
    with tempfile.TemporaryDirectory(prefix="molt-egress-relays-") as tmp:
        (Path(tmp) / "Containerfile").write_text(f"FROM {parent}\nENV {RELAYS_VAR}={table}\n")
        images.podman("build", "--quiet", "-t", ref, tmp)
    return ref
