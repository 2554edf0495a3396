"""IDX parsing, verification, dataset location and splits (data.py)."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
from conftest import idx_bytes, make_tiny_arrays, write_idx_folder

from mnist_cnn.core.errors import ChecksumError, ConfigError, DatasetNotFoundError, IdxFormatError
from mnist_cnn.data.idx import is_gzip, parse_idx
from mnist_cnn.data.load import load_dataset
from mnist_cnn.data.prepare import encode_labels, normalize, stratified_split
from mnist_cnn.data.registry import DATASETS, locate, search_dirs, user_cache_dir


def test_parse_idx_round_trip():
    images = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    parsed = parse_idx(idx_bytes(images), "images")
    assert parsed.dtype == np.uint8 and parsed.shape == (2, 28, 28)
    np.testing.assert_array_equal(parsed, images)
    labels = np.array([3, 1, 4], dtype=np.uint8)
    np.testing.assert_array_equal(parse_idx(idx_bytes(labels), "labels"), labels)


@pytest.mark.parametrize("mutate, message", [
    (lambda b: b"\x08\x03" + b[2:], "magic"),  # not starting with two zero bytes
    (lambda b: b[:3] + b"\x01" + b[4:], "magic"),  # labels header where images expected
    (lambda b: b[:2] + b"\x0d" + b[3:], "type 0x0d"),  # float32 element type
    (lambda b: b[:-5], "truncated"),  # payload shorter than the header says
    (lambda b: b + b"\x00", "truncated or padded"),
    (lambda b: b[:7], "too short"),
])
def test_parse_idx_rejects_bad_payloads(mutate, message):
    good = idx_bytes(np.zeros((3, 28, 28), dtype=np.uint8))
    with pytest.raises(IdxFormatError, match=message):
        parse_idx(mutate(good), "images")


def test_parse_idx_rejects_wrong_image_size():
    with pytest.raises(IdxFormatError, match="32x32 images"):
        parse_idx(idx_bytes(np.zeros((1, 32, 32), dtype=np.uint8)), "images")


def test_load_dataset_reads_gz_and_raw(tiny_dataset, tmp_path):
    ds = load_dataset("tiny", data_dir=tiny_dataset)
    assert ds.train_images.shape == (120, 28, 28) and ds.train_images.dtype == np.uint8
    assert ds.test_labels.shape == (40,) and ds.num_classes == 10
    assert set(ds.sha256) == set(DATASETS["tiny"].files.values())
    # The same payloads uncompressed verify too: digests pin contents, not the gzip bytes.
    write_idx_folder(tmp_path / "raw" / "tiny", make_tiny_arrays(), compress=False)
    raw = load_dataset("tiny", data_dir=tmp_path / "raw")
    np.testing.assert_array_equal(raw.train_images, ds.train_images)


def test_search_order_data_dir_then_env_then_cache_then_system(tiny_dataset, tmp_path, monkeypatch):
    env_root = tmp_path / "env"
    write_idx_folder(env_root / "tiny", make_tiny_arrays())
    monkeypatch.setenv("MNIST_CNN_DATA_DIR", str(env_root))
    assert locate("tiny", data_dir=tiny_dataset) == tiny_dataset / "tiny"
    assert locate("tiny") == env_root / "tiny"
    monkeypatch.delenv("MNIST_CNN_DATA_DIR")
    cache = user_cache_dir() / "tiny"
    write_idx_folder(cache, make_tiny_arrays())
    assert locate("tiny") == cache
    assert str(tmp_path) in str(cache)  # the autouse fixture keeps us out of the real home


def test_missing_dataset_lists_every_place_and_the_fix(tiny_dataset, tmp_path):
    # Offline, so the search result is final (online it would go on to fetch: see test_fetch.py).
    with pytest.raises(DatasetNotFoundError) as err:
        load_dataset("tiny", data_dir=tmp_path / "nowhere", offline=True)
    message = str(err.value)
    assert "\n" not in message
    for place in search_dirs("tiny", tmp_path / "nowhere"):
        assert str(place[1]) in message
    assert "--data-dir" in message and "MNIST_CNN_DATA_DIR" in message


def test_unknown_dataset_name():
    with pytest.raises(ConfigError, match="unknown dataset 'digits'.*mnist"):
        load_dataset("digits")


def test_truncated_gzip_is_reported_and_left_untouched(tiny_dataset):
    path = tiny_dataset / "tiny" / "train-images-idx3-ubyte.gz"
    broken = path.read_bytes()[:-100]
    path.write_bytes(broken)
    with pytest.raises(IdxFormatError, match="corrupt or truncated gzip"):
        load_dataset("tiny", data_dir=tiny_dataset)
    assert path.read_bytes() == broken  # reading never rewrites the user's files


def test_not_gzip_at_all(tiny_dataset):
    # No gzip magic, so it is read as raw bytes, which are not the published file either.
    (tiny_dataset / "tiny" / "t10k-labels-idx1-ubyte.gz").write_bytes(b"hello, I am not gzip")
    with pytest.raises(ChecksumError, match="t10k-labels.*does not match.*copy or download it again"):
        load_dataset("tiny", data_dir=tiny_dataset)


def swap_compression(folder: Path) -> tuple[Path, Path]:
    """Raw bytes under a `.gz` name, gzip bytes under a plain name: names that lie about contents."""
    raw_named_gz = folder / "train-images-idx3-ubyte.gz"
    raw_named_gz.write_bytes(gzip.decompress(raw_named_gz.read_bytes()))
    labels = folder / "t10k-labels-idx1-ubyte.gz"
    gzip_named_plain = folder / "t10k-labels-idx1-ubyte"
    labels.rename(gzip_named_plain)
    return raw_named_gz, gzip_named_plain


def test_gzip_is_told_by_content_by_every_reader(tiny_dataset, capsys):
    from mnist_cnn.cli.main import main
    from mnist_cnn.data import fetch

    expected = load_dataset("tiny", data_dir=tiny_dataset)
    raw_named_gz, gzip_named_plain = swap_compression(tiny_dataset / "tiny")
    assert not is_gzip(raw_named_gz) and is_gzip(gzip_named_plain)
    # `train` and `evaluate` read through load_dataset ...
    loaded = load_dataset("tiny", data_dir=tiny_dataset)
    np.testing.assert_array_equal(loaded.train_images, expected.train_images)
    np.testing.assert_array_equal(loaded.test_labels, expected.test_labels)
    assert loaded.sha256 == expected.sha256
    # ... and `data list` / `data verify` agree with it.
    assert main(["data", "list", "--data-dir", str(tiny_dataset)]) == 0
    assert "tiny            verified" in capsys.readouterr().out
    assert main(["data", "verify", "tiny", "--data-dir", str(tiny_dataset)]) == 0
    out = capsys.readouterr().out
    assert f"ok   {raw_named_gz}" in out and f"ok   {gzip_named_plain}" in out and "BAD" not in out
    # A fetch re-hashes files in place the same way: offline, all verify and nothing is needed.
    statuses = fetch.fetch_dataset(DATASETS["tiny"], folder=tiny_dataset / "tiny", offline=True)
    assert [s.status for s in statuses] == ["ok"] * 4


def test_checksum_mismatch(tiny_dataset):
    path = tiny_dataset / "tiny" / "train-labels-idx1-ubyte.gz"
    payload = bytearray(gzip.decompress(path.read_bytes()))
    payload[-1] = (payload[-1] + 1) % 10  # one label changed: valid IDX, wrong contents
    path.write_bytes(gzip.compress(bytes(payload)))
    with pytest.raises(ChecksumError, match="train-labels.*SHA-256"):
        load_dataset("tiny", data_dir=tiny_dataset)


def test_image_label_count_mismatch(tiny_dataset, monkeypatch):
    (train_x, train_y), test = make_tiny_arrays()
    digests = write_idx_folder(tiny_dataset / "tiny", ((train_x, train_y[:-1]), test))
    monkeypatch.setitem(DATASETS["tiny"].sha256, "train-labels-idx1-ubyte", digests["train-labels-idx1-ubyte"])
    with pytest.raises(IdxFormatError, match="120 images but 119 labels"):
        load_dataset("tiny", data_dir=tiny_dataset)


def test_real_datasets_verify(shared_data):
    for name in ("mnist", "fashion-mnist"):
        ds = load_dataset(name, data_dir=shared_data)
        assert ds.train_images.shape == (60000, 28, 28) and ds.test_images.shape == (10000, 28, 28)
        assert ds.sha256 == DATASETS[name].sha256
    counts = np.bincount(load_dataset("mnist", data_dir=shared_data).test_labels)
    assert counts.tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_normalize_and_encode():
    images = np.array([[[0] * 28] * 28, [[255] * 28] * 28], dtype=np.uint8)
    x = normalize(images)
    assert x.dtype == np.float32 and x.shape == (2, 28, 28, 1)
    assert x.min() == 0.0 and x.max() == 1.0
    labels = np.array([2, 0], dtype=np.uint8)
    np.testing.assert_array_equal(encode_labels(labels, 3, "onehot"), [[0, 0, 1], [1, 0, 0]])
    assert encode_labels(labels, 3, "sparse").tolist() == [2, 0]
    with pytest.raises(ConfigError):
        encode_labels(labels, 3, "binary")


def test_stratified_split_is_seeded_disjoint_and_stratified():
    labels = np.repeat(np.arange(10), [50, 60, 70, 80, 90, 100, 110, 120, 130, 140])
    train_a, val_a = stratified_split(labels, 0.1, seed=1)
    train_b, val_b = stratified_split(labels, 0.1, seed=1)
    _, val_c = stratified_split(labels, 0.1, seed=2)
    np.testing.assert_array_equal(val_a, val_b)
    np.testing.assert_array_equal(train_a, train_b)
    assert not np.array_equal(np.sort(val_a), np.sort(val_c))
    assert len(np.intersect1d(train_a, val_a)) == 0 and len(train_a) + len(val_a) == len(labels)
    # Every class keeps its share: round(0.1 * count) images in validation.
    assert np.bincount(labels[val_a]).tolist() == [5, 6, 7, 8, 9, 10, 11, 12, 13, 14]
    # Not the last rows (Keras' validation_split would take indices 990..1049).
    assert val_a.min() < 100


def test_stratified_split_needs_two_per_class():
    with pytest.raises(ConfigError, match="class 1 has 1"):
        stratified_split(np.array([0, 0, 0, 1]), 0.5, seed=0)


def test_import_writes_nothing_connects_nowhere_and_skips_tensorflow():
    import subprocess
    import sys

    code = """
import sys
events = []
def hook(event, args):
    if event == "open" and isinstance(args[1], str) and any(c in args[1] for c in "wax+"):
        events.append(("write", args[0]))
    if event.startswith("socket."):
        events.append((event, args))
sys.addaudithook(hook)
import mnist_cnn, mnist_cnn.data.load, mnist_cnn.data.prepare, mnist_cnn.runs.config, mnist_cnn.cli.main, mnist_cnn.data.fetch, mnist_cnn.data.custom, mnist_cnn.data.cards, mnist_cnn.core.files, mnist_cnn.core.system
assert not events, events
assert "tensorflow" not in sys.modules and "keras" not in sys.modules
"""
    subprocess.run([sys.executable, "-c", code], check=True)
