"""Download an npm tarball, check it against its pinned SRI integrity, unpack it.

Used by the Dockerfile before Node exists in the image, so standard library only:

    python3 fetch_verified.py <url> <sha512-...> <dest-dir>

The archive's `package/` prefix is stripped; members that would land outside <dest-dir> (absolute
paths, `..`, links pointing out) make the build fail instead of being skipped.
"""

from __future__ import annotations

import base64
import hashlib
import io
import sys
import tarfile
import urllib.request
from pathlib import Path


def fetch(url: str, integrity: str, dest: Path) -> None:
    algorithm, _, expected = integrity.partition("-")
    if algorithm != "sha512" or not expected:
        sys.exit(f"integrity must be an sha512 SRI string, got {integrity!r}")
    if not url.startswith("https://registry.npmjs.org/"):
        sys.exit(f"refusing to download from {url}: only the npm registry is expected")
    with urllib.request.urlopen(url, timeout=300) as response:  # noqa: S310 - https only, checked above
        data = response.read()
    actual = base64.b64encode(hashlib.sha512(data).digest()).decode()
    if actual != expected:
        sys.exit(f"{url}: sha512 mismatch (expected {expected}, got {actual}); refusing to unpack")
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as archive:
        members = []
        for member in archive.getmembers():
            name = member.name.split("/", 1)[1] if "/" in member.name else ""
            if not name:
                continue
            member.name = name
            members.append(member)
        # The "data" filter rejects absolute paths, `..` and links leaving the destination.
        archive.extractall(dest, members=members, filter="data")


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    fetch(sys.argv[1], sys.argv[2], Path(sys.argv[3]))
