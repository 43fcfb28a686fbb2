"""Remove the API models of every AWS service but S3 from the installed botocore.

Run in the image after `pip install`:

    python3 prune_botocore.py

botocore loads a service's model from `botocore/data/<service>/` only when a client for that
service is created; the runtime creates S3 clients only (R2's S3 API). The shared files at the
top of `data/` (endpoints, partitions, retry and default configuration) stay. The S3 boot test
of the built image is what proves the rest is not needed. 28 of botocore's 31 MB are these
models.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import botocore

KEEP = {"s3"}


def prune(data: Path) -> int:
    removed = 0
    for child in data.iterdir():
        if child.is_dir() and child.name not in KEEP:
            removed += sum(f.stat().st_size for f in child.rglob("*") if f.is_file())
            shutil.rmtree(child)
    return removed


if __name__ == "__main__":
    data = Path(botocore.__file__).parent / "data"
    if not (data / "s3").is_dir():
        sys.exit(f"prune_botocore: {data} has no s3 model; refusing to prune")
    print(f"prune_botocore: removed {prune(data) / 2**20:.1f} MiB of unused service models")
