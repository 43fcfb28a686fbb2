"""Size of the sandbox image, and where it goes.

    .cache/venv/bin/python scripts/bench_image.py

Builds (or finds, by its context fingerprint) `container/Dockerfile` on the Debian-made
stand-in base exactly as the suite does (devstack/images.py), then prints the image's size as
podman stores it (uncompressed), the stand-in base's share of it, and the biggest parts inside:
Node, OpenClaw (with its largest packages) and the Python runtime with its dependencies.
The production base (python:*-slim) differs from the stand-in, so the base's share differs too.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devstack.images import ImagesError, base_image, podman, sandbox_image  # noqa: E402

TARGET_MB = 600
# Sizes in bytes of the parts inside the image (the image has no du-with-options to rely on).
PROBE = r"""
import json, os, sys, glob
def du(path):
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total
out = {"node (/opt/node)": du("/opt/node"), "openclaw (/opt/openclaw)": du("/opt/openclaw")}
# pip's system-wide installs: dist-packages on Debian's python, site-packages on python:*-slim.
site = set(glob.glob("/usr/local/lib/python3*/*-packages"))
out["python deps (site/dist-packages)"] = sum(du(p) for p in site)
nm = "/opt/openclaw/node_modules"
pk = {}
for name in os.listdir(nm):
    full = os.path.join(nm, name)
    if name.startswith("@"):
        for sub in os.listdir(full):
            pk[name + "/" + sub] = du(os.path.join(full, sub))
    elif not name.startswith("."):
        pk[name] = du(full)
out["packages"] = sorted(pk.items(), key=lambda kv: -kv[1])[:8]
dist = "/opt/openclaw/node_modules/openclaw/dist"
entries = [os.path.join(dist, e) for e in os.listdir(dist)]
sizes = [(os.path.basename(e), du(e) if os.path.isdir(e) else os.path.getsize(e)) for e in entries]
out["openclaw dist"] = sorted(sizes, key=lambda kv: -kv[1])[:5]
json.dump(out, sys.stdout)
"""


def size_mb(ref: str) -> float:
    out = podman("image", "inspect", ref, "--format", "{{.Size}}").stdout.strip()
    return int(out) / 1e6


def main() -> None:
    try:
        base = base_image()
        image = sandbox_image(base=base)
    except ImagesError as exc:
        sys.exit(f"bench_image: {exc}")
    total, base_size = size_mb(image), size_mb(base)
    parts = json.loads(podman("run", "--rm", "--entrypoint", "python3", image, "-c", PROBE).stdout)
    print(f"image {image}")
    print(f"  total (uncompressed, as podman stores it) {total:8.1f} MB   target <= {TARGET_MB} MB")
    print(f"  stand-in base {base}        {base_size:8.1f} MB")
    for label in (
        "node (/opt/node)",
        "openclaw (/opt/openclaw)",
        "python deps (site/dist-packages)",
    ):
        print(f"  {label:40s} {parts[label] / 1e6:8.1f} MB")
    print("  largest packages in /opt/openclaw/node_modules:")
    for name, size in parts["packages"]:
        print(f"    {name:38s} {size / 1e6:8.1f} MB")
    print("  largest entries of openclaw/dist:")
    for name, size in parts["openclaw dist"]:
        print(f"    {name:38s} {size / 1e6:8.1f} MB")


if __name__ == "__main__":
    main()
