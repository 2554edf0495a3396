"""Downloads against a real HTTP server on 127.0.0.1: fallback, verification, retries, lock, offline.

Most tests fetch the tiny registered dataset (fast); one fetches real MNIST from ../shared/data.
After every failure the cache folder must hold no file under a final name and no temp file.
"""

from __future__ import annotations

import errno
import gzip
import io
import logging
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import REPO

from mnist_cnn.cli.data import progress_printer
from mnist_cnn.cli.main import main
from mnist_cnn.core.errors import CacheWriteError, DatasetNotFoundError, DownloadError
from mnist_cnn.data import fetch
from mnist_cnn.data.idx import IdxFormatError
from mnist_cnn.data.load import load_dataset
from mnist_cnn.data.registry import DATASETS, DatasetSpec, user_cache_dir

TINY_FILES = [f"{name}.gz" for name in DATASETS["mnist"].files.values()]


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch):
    """Short timeouts and back-off so failure paths take milliseconds, not the defaults' seconds."""
    monkeypatch.setattr(fetch, "TIMEOUT_S", 0.5)
    monkeypatch.setattr(fetch, "BACKOFF_S", 0.01)


@pytest.fixture
def tiny_mirror(tiny_dataset, http_mirror):
    """A server whose /<mode>/tiny/<file>.gz serves the tiny dataset (or a broken variant)."""
    return http_mirror(tiny_dataset)


def cache_dir(name: str = "tiny") -> Path:
    return user_cache_dir() / name


def final_files(folder: Path) -> list[str]:
    """Everything in `folder` but the lock file: downloaded files and any temp leftovers."""
    return sorted(p.name for p in folder.iterdir() if p.name != fetch.LOCK_FILE) if folder.exists() else []


def test_fetch_real_mnist_from_a_loopback_mirror(shared_data, http_mirror, capsys):
    server = http_mirror(shared_data)
    assert main(["data", "fetch", "mnist", "--mirror", server.url("ok")]) == 0
    assert final_files(cache_dir("mnist")) == sorted(TINY_FILES)
    assert "4 files verified" in capsys.readouterr().out
    mode = (cache_dir("mnist") / TINY_FILES[0]).stat().st_mode & 0o777
    assert mode & 0o044  # readable by others like any cached file, not mkstemp's 0600
    loaded = load_dataset("mnist", offline=True)  # now found in the cache, no network
    assert loaded.source == cache_dir("mnist") and loaded.sha256 == DATASETS["mnist"].sha256
    # A second fetch re-hashes and downloads nothing.
    before = len(server.requests)
    assert main(["data", "fetch", "mnist", "--mirror", server.url("ok")]) == 0
    assert len(server.requests) == before
    assert "already verified" in capsys.readouterr().out


def test_load_dataset_fetches_on_first_use(tiny_mirror):
    loaded = load_dataset("tiny", mirrors=[tiny_mirror.url("ok")])
    assert loaded.train_images.shape == (120, 28, 28) and loaded.source == cache_dir()
    assert final_files(cache_dir()) == sorted(TINY_FILES)


def test_a_raw_file_served_as_gz_is_stored_and_read_as_raw(tiny_dataset, http_mirror, tmp_path):
    # Some servers decompress on the way: `.gz` URLs answering raw IDX bytes still verify,
    # and land under the name that says what they hold, for every later reader.
    served = tmp_path / "served" / "tiny"
    served.mkdir(parents=True)
    for name in TINY_FILES:
        (served / name).write_bytes(gzip.decompress((tiny_dataset / "tiny" / name).read_bytes()))
    server = http_mirror(served.parent)
    assert main(["data", "fetch", "tiny", "--mirror", server.url("ok")]) == 0
    assert final_files(cache_dir()) == sorted(name.removesuffix(".gz") for name in TINY_FILES)
    loaded = load_dataset("tiny", offline=True)
    assert loaded.source == cache_dir() and loaded.sha256 == DATASETS["tiny"].sha256


def test_a_file_url_mirror_works_for_air_gapped_copies(tiny_dataset):
    results = fetch.fetch_dataset(DATASETS["tiny"], mirrors=[tiny_dataset.as_uri()])
    assert [r.url for r in results] == [f"{tiny_dataset.as_uri()}/tiny/{f}" for f in TINY_FILES]
    assert final_files(cache_dir()) == sorted(TINY_FILES)


def test_user_mirror_layout_env_order_and_dedup(monkeypatch):
    spec = DatasetSpec("mnist", "m", (), {}, {}, mirrors=("https://registry.example/mnist/",))
    monkeypatch.setenv("MNIST_CNN_MIRROR", "http://env.example/data, http://flag.example/")
    urls = fetch.mirror_urls(spec, ["http://flag.example/", "file:///media/usb/mnist"])
    assert urls == ["http://flag.example/mnist/", "file:///media/usb/mnist/", "http://env.example/data/mnist/",
                    "https://registry.example/mnist/"]


def test_falls_back_from_failing_mirrors_to_a_good_one(tiny_mirror):
    mirrors = [tiny_mirror.url("404"), tiny_mirror.url("500"), tiny_mirror.url("corrupt"), tiny_mirror.url("ok")]
    results = fetch.fetch_dataset(DATASETS["tiny"], mirrors=mirrors)
    assert [r.status for r in results] == ["downloaded"] * 4
    assert all(r.url.startswith(tiny_mirror.url("ok")) for r in results)
    first = TINY_FILES[0]
    assert tiny_mirror.gets(f"/404/tiny/{first}") == 1  # a 404 is final: not retried
    assert tiny_mirror.gets(f"/500/tiny/{first}") == fetch.RETRIES + 1  # a 500 may pass: retried
    assert tiny_mirror.gets(f"/corrupt/tiny/{first}") == 1
    load_dataset("tiny", offline=True)  # what landed verifies


def test_a_transient_error_is_retried_on_the_same_mirror(tiny_mirror):
    results = fetch.fetch_dataset(DATASETS["tiny"], mirrors=[tiny_mirror.url("flaky")])
    assert all(r.url.startswith(tiny_mirror.url("flaky")) for r in results)
    assert tiny_mirror.gets(f"/flaky/tiny/{TINY_FILES[0]}") == 2


@pytest.mark.parametrize("mode, reason", [
    ("corrupt", "served bad data: SHA-256 of its contents"),
    ("notgzip", "served bad data: SHA-256"),
    ("truncated", "truncated transfer"),
    ("403", "HTTP 403"),
    ("404", "HTTP 404"),
    ("500", "HTTP 500"),
    ("slow", "timed out"),
])
def test_every_mirror_failing_is_one_line_and_leaves_nothing(tiny_mirror, capsys, mode, reason):
    url = tiny_mirror.url(mode)
    code = main(["data", "fetch", "tiny", "--mirror", url])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and "Traceback" not in err
    assert reason in err and f"{url}tiny/{TINY_FILES[0]}" in err  # which mirror, which file
    assert "--mirror URL" in err and "--data-dir" in err  # what to do
    assert final_files(cache_dir()) == []  # no bad file under a final name, no temp file


def test_connection_refused_and_dns_failure(tiny_dataset, closed_port_url, capsys):
    mirrors = [closed_port_url, "http://no-such-mirror.invalid/"]
    assert main(["data", "fetch", "tiny", "--mirror", mirrors[0], "--mirror", mirrors[1]]) == 2
    err = capsys.readouterr().err
    assert "connection refused" in err and "host not found (DNS lookup failed)" in err
    assert final_files(cache_dir()) == []


def test_no_mirror_at_all(tiny_dataset):
    with pytest.raises(DownloadError, match="no mirror configured"):
        fetch.fetch_dataset(DATASETS["tiny"])


def test_truncated_transfer_is_retried_then_rejected(tiny_mirror):
    with pytest.raises(DownloadError, match="truncated transfer"):
        fetch.fetch_dataset(DATASETS["tiny"], mirrors=[tiny_mirror.url("truncated")])
    assert tiny_mirror.gets(f"/truncated/tiny/{TINY_FILES[0]}") == fetch.RETRIES + 1
    assert final_files(cache_dir()) == []


def test_offline_never_touches_the_network(tiny_mirror, capsys, monkeypatch):
    assert main(["train", "--dataset", "tiny", "--offline", "--mirror", tiny_mirror.url("ok")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "offline mode is on" in err and "--data-dir" in err
    monkeypatch.setenv("MNIST_CNN_OFFLINE", "1")
    with pytest.raises(DatasetNotFoundError, match="offline"):
        load_dataset("tiny", mirrors=[tiny_mirror.url("ok")])
    with pytest.raises(DownloadError, match="missing and offline mode is on"):
        fetch.fetch_dataset(DATASETS["tiny"], mirrors=[tiny_mirror.url("ok")])
    assert tiny_mirror.requests == []


def test_corrupt_cached_file_is_reported_and_replaced(tiny_mirror, caplog, capsys):
    fetch.fetch_dataset(DATASETS["tiny"], mirrors=[tiny_mirror.url("ok")])
    bad = cache_dir() / TINY_FILES[1]
    good_bytes = bad.read_bytes()
    bad.write_bytes(good_bytes[:-20])  # a truncated download from some older tool
    # verify reports it, exit 2 with the fix
    assert main(["data", "verify", "tiny"]) == 2
    captured = capsys.readouterr()
    assert f"BAD  {bad}: corrupt or truncated gzip" in captured.out
    assert "1 of 4 files" in captured.err and "mnist-cnn data fetch tiny" in captured.err
    # offline, it cannot be repaired: one clear error, the file left for the user to see
    with pytest.raises(DownloadError, match="corrupt.*offline mode is on"):
        load_dataset("tiny", offline=True)
    # online, loading detects it, says so, and downloads it again
    with caplog.at_level(logging.WARNING, logger="mnist_cnn"):
        loaded = load_dataset("tiny", mirrors=[tiny_mirror.url("ok")])
    assert loaded.train_labels.shape == (120,)
    assert any(str(bad) in r.getMessage() and "corrupt" in r.getMessage() for r in caplog.records)
    assert gzip.decompress(bad.read_bytes()) == gzip.decompress(good_bytes)
    assert tiny_mirror.gets(f"/ok/tiny/{TINY_FILES[1]}") == 2  # only the bad file came again
    assert tiny_mirror.gets(f"/ok/tiny/{TINY_FILES[0]}") == 1


def test_files_found_elsewhere_are_never_rewritten(tiny_dataset, tiny_mirror):
    path = tiny_dataset / "tiny" / TINY_FILES[0]
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(IdxFormatError):
        load_dataset("tiny", data_dir=tiny_dataset, mirrors=[tiny_mirror.url("ok")])
    assert tiny_mirror.requests == []


def test_unwritable_cache_folder(tiny_mirror, monkeypatch, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    with pytest.raises(CacheWriteError, match="cannot write downloads to .*XDG_CACHE_HOME"):
        load_dataset("tiny", mirrors=[tiny_mirror.url("ok")])


def test_read_only_cache_folder(tiny_mirror, monkeypatch):
    cache_dir().mkdir(parents=True)

    def read_only(*args, **kwargs):  # what mkstemp meets on a read-only mount (root ignores chmod)
        raise OSError(errno.EROFS, os.strerror(errno.EROFS))

    monkeypatch.setattr(fetch.tempfile, "mkstemp", read_only)
    with pytest.raises(CacheWriteError, match="Read-only file system; make it writable"):
        fetch.fetch_dataset(DATASETS["tiny"], mirrors=[tiny_mirror.url("ok")])
    assert final_files(cache_dir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_cache_folder_for_real(tiny_mirror):
    cache_dir().mkdir(parents=True)
    cache_dir().chmod(0o555)
    try:
        with pytest.raises(CacheWriteError, match="Permission denied"):
            fetch.fetch_dataset(DATASETS["tiny"], mirrors=[tiny_mirror.url("ok")])
    finally:
        cache_dir().chmod(0o755)


def test_disk_full_while_writing(tiny_mirror, monkeypatch, capsys):
    real_open = open

    class FullDisk:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, chunk):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def fake_open(path, mode="r", *args, **kwargs):
        f = real_open(path, mode, *args, **kwargs)
        return FullDisk(f) if "w" in mode else f

    monkeypatch.setattr(fetch, "open", fake_open, raising=False)
    assert main(["data", "fetch", "tiny", "--mirror", tiny_mirror.url("ok")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "No space left on device; free some disk space" in err
    assert final_files(cache_dir()) == []
    assert len(tiny_mirror.requests) == 1  # a full disk is not the mirror's fault: no retries, no fallback


def test_two_threads_fetching_at_once_download_each_file_once(tiny_mirror):
    tiny_mirror.delay_s = 0.05  # throttled: the first fetch holds the lock for a while
    results: dict[int, list] = {}

    def worker(i: int) -> None:
        results[i] = fetch.fetch_dataset(DATASETS["tiny"], mirrors=[tiny_mirror.url("throttled")])

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert sorted(results) == [0, 1]
    statuses = sorted(r.status for result in results.values() for r in result)
    assert statuses == ["downloaded"] * 4 + ["ok"] * 4  # the second waited, then found them verified
    assert all(tiny_mirror.gets(f"/tiny/{f}") == 1 for f in TINY_FILES)


CHILD = """
import dataclasses, sys
from mnist_cnn.data import fetch
from mnist_cnn.data.registry import DATASETS
spec = dataclasses.replace(DATASETS["mnist"], mirrors=())  # the loopback mirror only
for r in fetch.fetch_dataset(spec, mirrors=[sys.argv[1]]):
    print(r.status, r.file_name)
"""


def test_two_processes_fetching_at_once_do_not_corrupt_each_other(shared_data, http_mirror):
    server = http_mirror(shared_data)
    server.delay_s = 0.003  # about a second for the 11 MB
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), os.environ.get("PYTHONPATH", "")])}
    procs = [subprocess.Popen([sys.executable, "-c", CHILD, server.url("throttled")], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    statuses = sorted(line.split()[0] for out, _ in outputs for line in out.splitlines())
    assert statuses == ["downloaded"] * 4 + ["ok"] * 4
    assert all(server.gets(f"/mnist/{f}") == 1 for f in TINY_FILES)
    assert final_files(cache_dir("mnist")) == sorted(TINY_FILES)
    assert load_dataset("mnist", offline=True).sha256 == DATASETS["mnist"].sha256


class _FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_on_a_tty_and_one_line_per_file_otherwise():
    tty = _FakeTTY()
    show = progress_printer(tty)
    show("http://m/a.gz", 1_000_000, 2_000_000, False)
    show("http://m/a.gz", 2_000_000, 2_000_000, True)
    assert "\ra.gz [" in tty.getvalue() and "2.0/2.0 MB" in tty.getvalue() and "MB/s" in tty.getvalue()
    plain = io.StringIO()
    show = progress_printer(plain)
    show("http://m/a.gz", 1_000_000, 2_000_000, False)
    show("http://m/a.gz", 2_000_000, 2_000_000, True)
    assert plain.getvalue().count("\n") == 1 and plain.getvalue().startswith("downloaded http://m/a.gz (2.0 MB")
