"""The console's static files (console/static/), read once and kept in memory with their gzip form.

About 90 kB of files (25 kB gzipped): read and compressed on the first console request, in a thread (so
the event loop never waits on the disk), and never on the path of a model call. Each file gets a strong
ETag (a hash of its bytes), so a browser revalidates with one small request and a deploy takes effect at
the next load. The vendored chart library is named by its version (vendor/uplot-<version>.*), so it can be
cached for a year without ever going stale.
"""

from __future__ import annotations

import gzip
import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path

STATIC = Path(__file__).parent / "static"

MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
}
# Files named by their content's version: cached for a year, never revalidated.
IMMUTABLE_PREFIX = "vendor/"
# Not worth a Content-Encoding below this (gzip's own header and a round of inflate cost more).
GZIP_MIN_BYTES = 512


@dataclass(frozen=True)
class Asset:
    path: str  # relative to static/, with forward slashes
    body: bytes
    gzipped: bytes | None  # None: not worth compressing
    media_type: str
    etag: str

    @property
    def immutable(self) -> bool:
        return self.path.startswith(IMMUTABLE_PREFIX)


def _asset(root: Path, file: Path) -> Asset | None:
    media_type = MEDIA_TYPES.get(file.suffix)
    if media_type is None:
        return None  # licences and anything else without a media type here are not served
    body = file.read_bytes()
    packed = gzip.compress(body, compresslevel=9, mtime=0) if len(body) >= GZIP_MIN_BYTES else None
    digest = hashlib.sha256(body).hexdigest()[:20]
    return Asset(
        path=file.relative_to(root).as_posix(),
        body=body,
        gzipped=packed if packed is not None and len(packed) < len(body) else None,
        media_type=media_type,
        etag=f'"{digest}"',
    )


def load(root: Path = STATIC) -> dict[str, Asset]:
    """Every servable file under `root`, by its path relative to it."""
    assets = {}
    for file in sorted(root.rglob("*")):
        if file.is_file():
            asset = _asset(root, file)
            if asset is not None:
                assets[asset.path] = asset
    return assets


class AssetCache:
    """The assets, loaded at most once per process (the first caller loads, the others wait for it)."""

    def __init__(self, root: Path = STATIC) -> None:
        self.root = root
        self._assets: dict[str, Asset] | None = None
        self._lock = threading.Lock()

    def get(self) -> dict[str, Asset]:
        """Blocking (it may read the files): call it from a thread."""
        with self._lock:
            if self._assets is None:
                self._assets = load(self.root)
            return self._assets

    @property
    def loaded(self) -> dict[str, Asset] | None:
        return self._assets
