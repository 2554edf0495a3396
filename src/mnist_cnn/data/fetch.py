"""Downloads: put a verified copy of a registered dataset into the user cache.

Mirrors are tried in order, the user's own first (`--mirror`, `$MNIST_CNN_MIRROR`). Each
file is streamed into a temporary file in the target folder, its uncompressed payload is
checked against the pinned SHA-256, and only then is it renamed into place, so a final
name never holds a bad file. An exclusive `flock` on `<folder>/.lock` makes a second
process wait for the first and then find the files already there. Standard library only;
nothing touches the network or the disk at import.
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import hashlib
import http.client
import logging
import os
import socket
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

from ..core.atomic import normal_file_mode
from ..core.errors import CacheWriteError, ConfigError, DownloadError
from ..core.version import __version__
from .idx import is_gzip, open_payload
from .registry import DATASETS, DatasetSpec, find_file, search_dirs, user_cache_dir

try:
    import fcntl
except ImportError:  # Windows: no flock; concurrent fetches there are not serialised
    fcntl = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

TIMEOUT_S = 30.0  # seconds without a byte (connect or read) before a mirror counts as stalled
RETRIES = 2  # extra attempts on one mirror after a transient failure (timeout, reset, 5xx, truncation)
BACKOFF_S = 1.0  # wait before retry n is BACKOFF_S * 2**(n-1)
CHUNK_BYTES = 1 << 16  # read/write/hash granularity
MIRROR_ENV = "MNIST_CNN_MIRROR"  # comma-separated user mirrors, tried before the registry's
OFFLINE_ENV = "MNIST_CNN_OFFLINE"  # "1" (or true/yes/on): never touch the network
LOCK_FILE = ".lock"
TMP_PREFIX = ".tmp-"
MAX_DOWNLOAD_BYTES = 256 * 1024 * 1024  # a file of a dataset whose size the registry does not list

# (url, bytes received, Content-Length or None, finished) -> None; the CLI draws a bar with it.
Progress = Callable[[str, int, "int | None", bool], None]


@dataclass(frozen=True)
class FetchOptions:
    timeout_s: float = TIMEOUT_S
    retries: int = RETRIES
    backoff_s: float = BACKOFF_S

    @classmethod
    def from_module(cls) -> FetchOptions:
        """The module's current constants (read at call time, so tests can shorten them)."""
        return cls(TIMEOUT_S, RETRIES, BACKOFF_S)


@dataclass(frozen=True)
class FileStatus:
    file_name: str
    status: str  # "ok" (already there and verified) or "downloaded"
    path: Path
    url: str | None = None


class _MirrorFailed(Exception):
    """One attempt on one mirror failed; `transient` failures are retried on the same mirror."""

    def __init__(self, reason: str, transient: bool) -> None:
        super().__init__(reason)
        self.transient = transient


def is_offline(flag: bool | None = None) -> bool:
    """`--offline` if given, else `$MNIST_CNN_OFFLINE` set to 1/true/yes/on."""
    if flag is not None:
        return flag
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def mirror_urls(spec: DatasetSpec, user_mirrors: Sequence[str] = ()) -> list[str]:
    """Base URLs for `spec`, in the order tried: `user_mirrors`, `$MNIST_CNN_MIRROR`, the registry's.

    A user mirror is laid out like `--data-dir` (URL/<dataset>/<file>.gz); a URL already ending
    in /<dataset>/ is used as is. Registry mirrors hold the files directly.
    """
    env = [m.strip() for m in os.environ.get(MIRROR_ENV, "").split(",") if m.strip()]
    urls: list[str] = []
    for base in [*user_mirrors, *env]:
        check_mirror(base)
        base = base.rstrip("/") + "/"
        if urllib.parse.urlsplit(base).path.rstrip("/").rsplit("/", 1)[-1] != spec.name:
            base += f"{spec.name}/"
        urls.append(base)
    urls.extend(m.rstrip("/") + "/" for m in spec.mirrors)
    return list(dict.fromkeys(urls))  # a mirror given twice is tried once


def check_mirror(url: str) -> None:
    """ConfigError unless `url` is an http(s) URL with a host, or a file:// URL."""
    try:
        parts = urllib.parse.urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError for a port that is not a number)
    except ValueError as e:
        raise ConfigError(f"mirror {url!r} is not a valid URL ({e}); pass e.g. --mirror "
                          f"http://10.0.0.5/datasets/ or file:///media/usb/datasets/") from None
    if not ((parts.scheme in ("http", "https") and parts.hostname) or parts.scheme == "file"):
        raise ConfigError(f"mirror {url!r} is not an http://, https:// or file:// URL; pass e.g. --mirror "
                          f"http://10.0.0.5/datasets/ or file:///media/usb/datasets/")


def payload_sha256(path: Path) -> str:
    """SHA-256 of the uncompressed contents of `path` (gzip told apart as `data.idx.is_gzip` does), streamed."""
    with open_payload(path) as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def check_file(path: Path, expected: str | None) -> str | None:
    """None if `path`'s payload has the `expected` digest, else what is wrong with it."""
    try:
        digest = payload_sha256(path)
    except (gzip.BadGzipFile, EOFError, zlib.error) as e:
        return f"corrupt or truncated gzip data ({e})"
    except OSError as e:
        return f"unreadable ({e.strerror or e})"
    if expected is not None and digest != expected:
        return f"SHA-256 of its contents is {digest[:12]}…, expected {expected[:12]}…"
    return None


@dataclass(frozen=True)
class FileCheck:
    name: str  # the registry's file name (without .gz)
    path: Path
    problem: str | None  # None: the payload matches its published SHA-256


def verify_files(spec: DatasetSpec, folder: Path) -> list[FileCheck]:
    """Re-hash each of `spec`'s files in `folder` (`mnist-cnn data verify` as a function)."""
    checks = []
    for file_name in spec.files.values():
        path = find_file(folder, file_name)
        checks.append(FileCheck(file_name, path or folder / file_name,
                                check_file(path, spec.sha256.get(file_name)) if path else "missing"))
    return checks


@dataclass(frozen=True)
class DatasetStatus:
    spec: DatasetSpec
    found: tuple[str, Path] | None  # (where it came from, folder), or None when no folder holds it
    bad_files: tuple[str, ...] = ()  # files there whose contents do not verify


def dataset_status(data_dir: Path | None = None) -> list[DatasetStatus]:
    """Each registered dataset: the first folder holding it and whether its files verify (`data list`)."""
    statuses = []
    for name, spec in DATASETS.items():
        found = next(((label, folder) for label, folder in search_dirs(name, data_dir)
                      if all(find_file(folder, f) for f in spec.files.values())), None)
        bad = () if found is None else tuple(
            c.name for c in verify_files(spec, found[1]) if c.problem is not None)
        statuses.append(DatasetStatus(spec, found, bad))
    return statuses


def _describe(error: BaseException) -> tuple[str, bool]:
    """A short reason for a network error, and whether retrying the same mirror may help."""
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}", error.code >= 500 or error.code == 429
    reason = error.reason if isinstance(error, urllib.error.URLError) else error
    if isinstance(reason, socket.gaierror):
        return "host not found (DNS lookup failed)", False
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return "timed out", True
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused", False  # nothing listens there; retrying will not change that
    if isinstance(reason, http.client.IncompleteRead):
        return f"truncated transfer ({len(reason.partial)} bytes)", True
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror.lower(), True
    return str(reason) or type(reason).__name__, True


def download_cap(payload_bytes: int | None) -> int:
    """The most bytes a mirror may send for a file whose uncompressed payload has `payload_bytes`.

    A gzip of the payload is never much larger than the payload itself (deflate's worst case
    adds ~0.03%), so anything longer is not the file: it is cut off, not stored.
    """
    return MAX_DOWNLOAD_BYTES if payload_bytes is None else payload_bytes + payload_bytes // 100 + 4096


def _download(url: str, tmp: Path, options: FetchOptions, progress: Progress | None,
              max_bytes: int = MAX_DOWNLOAD_BYTES) -> tuple[int, int | None]:
    """Stream `url` into `tmp`; returns (bytes, Content-Length); _MirrorFailed if the mirror failed.

    A mirror that declares or sends more than `max_bytes` is cut off (not retried).
    """
    request = urllib.request.Request(url, headers={"User-Agent": f"mnist-cnn/{__version__}"})
    try:
        with urllib.request.urlopen(request, timeout=options.timeout_s) as response, \
                open(tmp, "wb", buffering=0) as out:  # unbuffered: a full disk fails in _write, not at close
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            if total is not None and total > max_bytes:
                raise _MirrorFailed(f"declares {total:,} bytes, more than the file can be ({max_bytes:,})", False)
            done = 0
            while chunk := response.read(CHUNK_BYTES):
                done += len(chunk)
                if done > max_bytes:
                    raise _MirrorFailed(f"sent over {max_bytes:,} bytes, more than the file can be", False)
                _write(out, chunk, tmp)
                if progress:
                    progress(url, done, total, False)
    except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
        reason, transient = _describe(e)
        raise _MirrorFailed(reason, transient) from None
    # http.client returns a short body silently when the server closes early.
    if total is not None and done != total:
        raise _MirrorFailed(f"truncated transfer ({done} of {total} bytes)", True)
    return done, total


def _write(out, chunk: bytes, tmp: Path) -> None:
    view = memoryview(chunk)
    try:
        while view:  # a raw write may take only part of the chunk
            view = view[out.write(view):]
    except OSError as e:
        raise _cache_write_error(tmp.parent, e) from None


def _cache_write_error(folder: Path, error: OSError) -> CacheWriteError:
    if error.errno == errno.ENOSPC:
        fix = "free some disk space there"
    else:
        fix = "make it writable"
    return CacheWriteError(f"cannot write downloads to {folder}: {error.strerror or error}; {fix}, or set "
                           f"XDG_CACHE_HOME to a writable folder, or put the files in --data-dir DIR/<dataset>/")


@contextlib.contextmanager
def _temp_file(folder: Path) -> Iterator[Path]:
    """A fresh temporary file in `folder`, removed afterwards unless it was renamed away."""
    try:
        fd, name = tempfile.mkstemp(prefix=TMP_PREFIX, dir=folder)
        os.close(fd)
    except OSError as e:
        raise _cache_write_error(folder, e) from None
    tmp = Path(name)
    try:
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Hold an exclusive lock on `folder` (released when the process ends, even by SIGKILL)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        lock = open(folder / LOCK_FILE, "a")
    except OSError as e:
        raise _cache_write_error(folder, e) from None
    with lock:
        if fcntl is not None:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                log.warning("another mnist-cnn process is downloading into %s; waiting for it", folder)
                fcntl.flock(lock, fcntl.LOCK_EX)
        # Holding the lock, any temporary file left here belongs to a fetch that died.
        for stale in folder.glob(f"{TMP_PREFIX}*"):
            stale.unlink(missing_ok=True)
        yield


def _fetch_file(spec: DatasetSpec, file_name: str, folder: Path, urls: Sequence[str],
                options: FetchOptions, progress: Progress | None) -> FileStatus:
    failures: list[str] = []
    for base in urls:
        url = f"{base}{file_name}.gz"
        for attempt in range(options.retries + 1):
            if attempt:
                time.sleep(options.backoff_s * 2 ** (attempt - 1))
            with _temp_file(folder) as tmp:
                try:
                    done, total = _download(url, tmp, options, progress,
                                            download_cap(spec.sizes.get(file_name)))
                    problem = check_file(tmp, spec.sha256.get(file_name))
                    if problem:
                        raise _MirrorFailed(f"served bad data: {problem}", transient=False)
                except _MirrorFailed as failed:
                    log.info("%s: %s", url, failed)  # the final error lists every failure
                    if failed.transient and attempt < options.retries:
                        continue
                    failures.append(f"{url}: {failed}")
                    break
                try:
                    with open(tmp, "rb") as f:
                        os.fsync(f.fileno())  # on disk before the rename makes it visible
                    os.chmod(tmp, normal_file_mode())
                    # Named for what it holds, so the name never contradicts the contents.
                    final = folder / (f"{file_name}.gz" if is_gzip(tmp) else file_name)
                    os.replace(tmp, final)
                except OSError as e:
                    raise _cache_write_error(folder, e) from None
                log.info("downloaded %s from %s", final, url)
                if progress:  # "finished" only for a verified file that is in place
                    progress(url, done, total, True)
                return FileStatus(file_name, "downloaded", final, url)
    if not urls:
        failures.append("no mirror configured")
    raise DownloadError(f"could not download {spec.name} {file_name}.gz: {'; '.join(failures)}. Fix: check "
                        f"the network (or proxy), pass --mirror URL of a copy laid out as "
                        f"URL/{spec.name}/{file_name}.gz (or set {MIRROR_ENV}), or put the files in "
                        f"--data-dir DIR/{spec.name}/")


def fetch_dataset(spec: DatasetSpec, *, mirrors: Sequence[str] = (), offline: bool | None = None,
                  folder: Path | None = None, options: FetchOptions | None = None,
                  progress: Progress | None = None) -> list[FileStatus]:
    """Make `folder` (default: the user cache for `spec`) hold all of `spec`'s files, verified.

    Files already there are re-hashed; a missing or corrupt one is (re)downloaded. Offline,
    nothing is downloaded and a missing or corrupt file is a DownloadError saying what to do.
    """
    folder = Path(folder) if folder is not None else user_cache_dir() / spec.name
    offline = is_offline(offline)
    options = options or FetchOptions.from_module()
    urls = mirror_urls(spec, mirrors)
    results: list[FileStatus] = []
    with _locked(folder):
        for file_name in spec.files.values():
            existing = find_file(folder, file_name)
            if existing is not None:
                problem = check_file(existing, spec.sha256.get(file_name))
                if problem is None:
                    results.append(FileStatus(file_name, "ok", existing))
                    continue
                if offline:
                    raise DownloadError(f"{existing} is corrupt ({problem}) and offline mode is on "
                                        f"(--offline or {OFFLINE_ENV}=1); delete it and copy a good file "
                                        f"there, or run `mnist-cnn data fetch {spec.name}` online")
                log.warning("%s is corrupt (%s); downloading it again", existing, problem)
                try:
                    existing.unlink()  # a failed download then leaves it missing, not bad
                except OSError as e:
                    raise _cache_write_error(folder, e) from None
            elif offline:
                raise DownloadError(f"{folder / file_name}.gz is missing and offline mode is on (--offline or "
                                    f"{OFFLINE_ENV}=1), so nothing was downloaded; copy the files into "
                                    f"{folder} (or pass --data-dir), or go online and run "
                                    f"`mnist-cnn data fetch {spec.name}`")
            results.append(_fetch_file(spec, file_name, folder, urls, options, progress))
    return results
