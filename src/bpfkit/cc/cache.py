"""bpfkit's on-disk cache: ``$XDG_CACHE_HOME/bpfkit`` (default ``~/.cache/bpfkit``), or ``$BPFKIT_CACHE_DIR``.

Entries are written to a temporary name and renamed into place, so concurrent users never see a
partial file.
"""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """The cache root (not created)."""
    explicit = os.environ.get("BPFKIT_CACHE_DIR")
    if explicit:
        return Path(explicit)
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "bpfkit"


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


__all__ = ["cache_dir", "write_atomic"]
