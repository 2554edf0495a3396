"""SHA-256 of bytes and of files: the one digest every check in the package uses."""

from __future__ import annotations

import hashlib
from pathlib import Path


def sha256_hex(payload: bytes) -> str:
    """The SHA-256 of `payload`, as 64 lowercase hex digits."""
    return hashlib.sha256(payload).hexdigest()


def sha256_file(path: Path) -> str:
    """The SHA-256 of a file's bytes, read in chunks (bounded memory). OSError if unreadable."""
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
