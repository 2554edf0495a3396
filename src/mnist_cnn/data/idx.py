"""IDX files: finding the payload (gzip or not), reading it under a cap, parsing and verifying it.

NumPy only; nothing read at import. Images come out `uint8 (N, 28, 28)` in 0..255 and
labels `uint8 (N,)`.
"""

from __future__ import annotations

import gzip
import logging
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ..core.errors import ChecksumError, DatasetNotFoundError, IdxFormatError
from ..core.hashing import sha256_hex
from .registry import IMAGE_SIZE, KINDS, DatasetSpec, find_file

log = logging.getLogger(__name__)

# IDX header: two zero bytes, a type code, the number of dimensions, then one
# big-endian uint32 per dimension.  0x08 is unsigned byte, the only type MNIST uses.
IDX_UBYTE = 0x08


IDX_NDIM = {"images": 3, "labels": 1}


GZIP_MAGIC = b"\x1f\x8b"  # every gzip stream starts with these two bytes (RFC 1952)


MAX_PAYLOAD_BYTES = 1 << 30  # an IDX payload read into memory: MNIST's largest is 47 MB


def is_gzip(path: Path) -> bool:
    """True when `path` starts with gzip's magic bytes, whatever its name says.

    The one test every reader uses (loading, `data list`/`verify`, downloads, custom IDX
    folders): a raw file named `.gz`, or a gzip file without the suffix, reads the same
    everywhere instead of passing one command and failing the next.
    """
    with open(path, "rb") as f:
        return f.read(len(GZIP_MAGIC)) == GZIP_MAGIC


def open_payload(path: Path) -> BinaryIO:
    """`path` opened for reading its uncompressed bytes (gzip or raw, as `is_gzip` says)."""
    return gzip.open(path, "rb") if is_gzip(path) else open(path, "rb")  # type: ignore[return-value]


def read_payload(path: Path, max_bytes: int = MAX_PAYLOAD_BYTES) -> bytes:
    """The uncompressed bytes of a gzipped or raw file (told apart by content, not by name).

    Read at most `max_bytes` (+1 to notice more): a small gzip that unpacks to gigabytes is
    refused, not held in memory.
    """
    try:
        with open_payload(path) as f:
            payload = f.read(max_bytes + 1)
        if len(payload) > max_bytes:
            raise IdxFormatError(f"{path} unpacks to over {max_bytes:,} bytes, more than any MNIST-style IDX "
                                 f"file; it is not one (replace it)")
        return payload
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        raise IdxFormatError(f"{path} is a corrupt or truncated gzip file ({e}); delete it and "
                             f"copy or download it again") from None
    except OSError as e:
        raise IdxFormatError(f"cannot read {path}: {e.strerror}; check the file and its permissions") from None


def parse_idx(payload: bytes, kind: str, source: str = "<bytes>") -> np.ndarray:
    """Parse an IDX payload of `kind` ("images" or "labels") into a uint8 array.

    Checks the magic number, element type, number of dimensions, image size and that the
    payload holds exactly the elements the header announces.
    """
    ndim = IDX_NDIM[kind]
    header_size = 4 + 4 * ndim
    if len(payload) < header_size:
        raise IdxFormatError(f"{source} is too short ({len(payload)} bytes) to be an IDX {kind} file")
    if payload[0:2] != b"\x00\x00" or payload[3] != ndim:
        raise IdxFormatError(f"{source} has magic {payload[:4].hex()}, not an IDX {kind} file "
                             f"(expected 0000{IDX_UBYTE:02x}{ndim:02x}); check you gave the right file")
    if payload[2] != IDX_UBYTE:
        raise IdxFormatError(f"{source} stores type 0x{payload[2]:02x}; only unsigned bytes (0x08) are supported")
    dims = tuple(int.from_bytes(payload[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    if kind == "images" and dims[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise IdxFormatError(f"{source} holds {dims[1]}x{dims[2]} images; expected "
                             f"{IMAGE_SIZE}x{IMAGE_SIZE}")
    expected = int(np.prod(dims))
    actual = len(payload) - header_size
    if actual != expected:
        raise IdxFormatError(f"{source} header announces {expected} bytes of data but holds {actual}: "
                             f"the file is truncated or padded; replace it")
    return np.frombuffer(payload, dtype=np.uint8, offset=header_size).reshape(dims)


def load_split(spec: DatasetSpec, folder: Path, split: str) -> tuple[np.ndarray, np.ndarray, dict[str, str]]:
    """Read, verify and parse one split; returns images, labels and the payload digests."""
    arrays, digests = {}, {}
    for kind in KINDS:
        file_name = spec.files[(split, kind)]
        path = find_file(folder, file_name)
        if path is None:
            raise DatasetNotFoundError(f"{folder / file_name}(.gz) is missing; put it beside the other files")
        payload = read_payload(path)
        digest = sha256_hex(payload)
        expected = spec.sha256.get(file_name)
        if expected is not None and digest != expected:
            raise ChecksumError(f"{path} does not match the published {spec.name} data (SHA-256 of its "
                                f"contents is {digest[:12]}…, expected {expected[:12]}…); delete it and "
                                f"copy or download it again")
        arrays[kind] = parse_idx(payload, kind, source=str(path))
        digests[file_name] = digest
    images, labels = arrays["images"], arrays["labels"]
    if len(images) != len(labels):
        raise IdxFormatError(f"{split} split in {folder} has {len(images)} images but {len(labels)} labels; "
                             f"the files belong to different datasets")
    if labels.size and labels.max() >= len(spec.class_names):
        raise IdxFormatError(f"{split} labels in {folder} go up to {labels.max()}, but {spec.name} has "
                             f"{len(spec.class_names)} classes")
    return images, labels, digests
