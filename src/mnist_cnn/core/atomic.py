"""Atomic file writes: write a temporary file beside the target, then `os.replace` it.

A crash or SIGKILL mid-write leaves at worst a stray `.tmp-*` file, never a half-written
file under its final name, and never damages the previous version of that file.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

from .errors import MnistCnnError

TEMP_PREFIX = ".tmp-"  # every temporary file starts so: `Run.clean_temp_files` finds a kill's leftovers


def normal_file_mode() -> int:
    """0o666 less the umask: the mode `open()` would give a new file (mkstemp gives 0600)."""
    mask = os.umask(0)  # reading the umask means setting it; put it straight back
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def atomic_path(final: Path) -> Iterator[Path]:
    """Yield a temporary path in `final`'s folder (same suffix); on success replace `final` with it.

    An OSError on the way (a full disk, a read-only or missing folder) becomes one
    MnistCnnError naming `final`; the previous `final`, if any, is left as it was.
    """
    final = Path(final)
    tmp: Path | None = None
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{final.stem}-", suffix=final.suffix,
                                        dir=final.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        os.chmod(tmp, normal_file_mode())
        yield tmp
        with open(tmp, "rb+") as f:  # flush to disk before the rename makes it visible
            os.fsync(f.fileno())
        os.replace(tmp, final)
    except OSError as e:
        raise MnistCnnError(f"cannot write {final}: {e.strerror or e}; free some disk space or pick a "
                            f"writable folder") from None
    finally:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


def write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: Path, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, value: Any) -> None:
    write_text(path, json.dumps(value, indent=2, sort_keys=False) + "\n")
