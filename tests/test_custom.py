"""Custom datasets: IDX folders, Keras-style .npz and image folders, loaded, described and trained on."""

from __future__ import annotations

import gzip
import hashlib
import json
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import idx_bytes, make_tiny_arrays
from PIL import Image

from mnist_cnn.cli.main import main
from mnist_cnn.core.errors import DatasetFormatError, DatasetNotFoundError
from mnist_cnn.data.custom import load_custom
from mnist_cnn.data.load import load_dataset
from mnist_cnn.data.registry import is_custom

CLASSES = ("cat", "dog", "fish", "owl")  # sorted, as folder names are read


def small_arrays(n_train: int = 200, n_test: int = 40):
    return make_tiny_arrays(n_train=n_train, n_test=n_test, num_classes=len(CLASSES), seed=1)


def write_npz(path: Path, **overrides) -> Path:
    (x_train, y_train), (x_test, y_test) = small_arrays()
    arrays = {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test, **overrides}
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return path


def write_image_folders(root: Path, n_train: int = 200, n_test: int = 40) -> Path:
    """train/<class>/*.png and test/<class>/*, some as RGB JPEG at 56x56 to exercise conversion."""
    (x_train, y_train), (x_test, y_test) = small_arrays(n_train, n_test)
    for split, images, labels in (("train", x_train, y_train), ("test", x_test, y_test)):
        for i, (image, label) in enumerate(zip(images, labels)):
            folder = root / split / CLASSES[label]
            folder.mkdir(parents=True, exist_ok=True)
            picture = Image.fromarray(image)
            if i % 5 == 0:
                picture.convert("RGB").resize((56, 56)).save(folder / f"{i}.jpg", quality=95)
            else:
                picture.save(folder / f"{i}.png")
    return root


def write_odd_idx_folder(folder: Path) -> dict[str, str]:
    """EMNIST-style names and a classes.txt; returns file name -> payload digest."""
    folder.mkdir(parents=True)
    (x_train, y_train), (x_test, y_test) = small_arrays()
    files = {"letters-train-images.idx3-ubyte": x_train, "letters-train-labels.idx1-ubyte": y_train,
             "letters-test-images.idx3-ubyte": x_test, "letters-test-labels.idx1-ubyte": y_test}
    digests = {}
    for name, array in files.items():
        payload = idx_bytes(array)
        (folder / name).write_bytes(payload)
        digests[name] = hashlib.sha256(payload).hexdigest()
    (folder / "classes.txt").write_text("\n".join(CLASSES) + "\n")
    return digests


def test_npz_loads_with_names_float_pixels_and_channel_axis(tmp_path):
    (x_train, y_train), (x_test, y_test) = small_arrays()
    path = write_npz(tmp_path / "my data.npz", x_train=(x_train / 255.0)[..., None].astype(np.float32),
                     y_train=y_train.astype(np.int64)[:, None], class_names=np.array(CLASSES))
    ds = load_custom(path)
    assert ds.name == "my-data" and ds.class_names == CLASSES and ds.num_classes == 4
    assert ds.train_images.dtype == np.uint8 and ds.train_images.shape == (200, 28, 28)
    np.testing.assert_array_equal(ds.train_images, x_train)  # 0..1 floats scaled back exactly
    np.testing.assert_array_equal(ds.test_labels, y_test)
    assert ds.sha256 == {"my data.npz": hashlib.sha256(path.read_bytes()).hexdigest()}


def test_number_of_classes_comes_from_the_data(tmp_path):
    (x_train, y_train), (x_test, y_test) = make_tiny_arrays(n_train=60, n_test=30, num_classes=3)
    ds = load_custom(write_npz(tmp_path / "three.npz", x_train=x_train, y_train=y_train,
                               x_test=x_test, y_test=y_test))
    assert ds.class_names == ("0", "1", "2") and ds.num_classes == 3


def test_image_folders_load_as_28x28_grayscale(tmp_path):
    ds = load_custom(write_image_folders(tmp_path / "pets"))
    assert ds.class_names == CLASSES and ds.train_images.shape == (200, 28, 28)
    assert ds.train_images.dtype == np.uint8 and ds.test_images.shape == (40, 28, 28)
    assert np.bincount(ds.train_labels).tolist() == [50, 50, 50, 50]
    assert set(ds.sha256) == {"train/", "test/"}
    # The digest pins contents: change one pixel of one image and it changes.
    before = ds.sha256["train/"]
    first = sorted((tmp_path / "pets" / "train" / "cat").glob("*.png"))[0]
    Image.fromarray(np.zeros((28, 28), dtype=np.uint8)).save(first)
    assert load_custom(tmp_path / "pets").sha256["train/"] != before


def test_idx_folder_with_any_names_and_class_file(tmp_path):
    digests = write_odd_idx_folder(tmp_path / "letters")
    ds = load_dataset(str(tmp_path / "letters"))
    assert ds.class_names == CLASSES and ds.sha256 == digests and ds.source == tmp_path / "letters"


def test_registered_names_win_over_same_named_folders(tmp_path):
    (tmp_path / "mnist").mkdir()  # tmp_path is the working directory
    assert not is_custom("mnist")
    assert is_custom("mnist/") and is_custom("x.npz") and not is_custom("cifar")


@pytest.mark.parametrize("overrides, message", [
    ({"y_test": None}, "lacks y_test"),
    ({"y_train": np.zeros(199, dtype=np.uint8)}, "200 images but 199 labels"),
    ({"x_test": np.zeros((40, 32, 32), dtype=np.uint8)}, r"shape \(40, 32, 32\)"),
    ({"y_train": np.zeros(200, dtype=np.uint8)}, "single class"),
    ({"y_test": np.full(40, -1)}, "class ids -1"),
    ({"x_train": np.full((200, 28, 28), 300.0)}, "pixel values 300"),
    ({"y_train": np.array([None] * 200, dtype=object)}, "object array"),
])
def test_bad_npz_is_one_clear_error(tmp_path, overrides, message):
    with pytest.raises(DatasetFormatError, match=message):
        load_custom(write_npz(tmp_path / "bad.npz", **overrides))


def test_not_an_npz(tmp_path):
    path = tmp_path / "fake.npz"
    path.write_bytes(b"hello")
    with pytest.raises(DatasetFormatError, match="cannot read .*fake.npz as .npz"):
        load_custom(path)


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height but holds almost no data (a decompression bomb)."""
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


def two_class_folders(root: Path) -> Path:
    """The smallest valid image-folder dataset: train/a, train/b, test/a, one black PNG each."""
    for split, name in (("train", "a"), ("train", "b"), ("test", "a")):
        (root / split / name).mkdir(parents=True)
        Image.fromarray(np.zeros((28, 28), dtype=np.uint8)).save(root / split / name / "0.png")
    return root


@pytest.mark.parametrize("width, height", [(6_000, 6_000), (30_000, 30_000)])  # our cap; Pillow's bomb error
def test_a_decompression_bomb_in_an_image_folder_is_one_line(tmp_path, width, height):
    root = two_class_folders(tmp_path / "bomb")
    bomb = root / "train" / "b" / "huge.png"
    bomb.write_bytes(png_header_only(width, height))
    assert bomb.stat().st_size < 1000
    with pytest.raises(DatasetFormatError) as info:
        load_custom(root)
    message = str(info.value)
    assert "\n" not in message and str(bomb) in message and "pixel" in message and "scale it down" in message


def test_an_image_over_the_byte_cap_is_refused_before_decoding(tmp_path):
    root = two_class_folders(tmp_path / "big")
    big = root / "train" / "a" / "scan.png"
    big.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * (5 * 1024 * 1024))  # over the 5 MiB cap, never decoded
    with pytest.raises(DatasetFormatError, match=rf"image {big} is too large \(file is [\d,]+ bytes, over "
                                                 rf"the [\d,]+-byte limit\); scale it down"):
        load_custom(root)


def test_image_folders_apply_exif_rotation_and_composite_transparency(tmp_path):
    root = two_class_folders(tmp_path / "turned")
    picture = np.zeros((28, 28), dtype=np.uint8)
    picture[2:10, 2:10] = 255  # a light square in the top-left corner, as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: the camera was turned; shown rotated 90 degrees clockwise
    (root / "train" / "a" / "0.png").unlink()
    Image.fromarray(picture).save(root / "train" / "a" / "photo.jpg", quality=95, exif=exif)
    # Light ink on a transparent background whose hidden colour is white: MNIST-style means black.
    ink = np.full((28, 28, 4), 255, dtype=np.uint8)
    ink[..., 3] = 0
    ink[10:18, 10:18, 3] = 255  # opaque only in the middle
    Image.fromarray(ink).save(root / "train" / "b" / "0.png")
    ds = load_custom(root)
    turned, inked = ds.train_images  # sorted: class a (photo.jpg), then class b
    assert turned[2:10, 18:26].mean() > 200 and turned[2:10, 2:10].mean() < 30  # now top-right
    assert inked[10:18, 10:18].min() == 255 and inked[:8].max() == 0


def test_image_folder_pixels_are_converted_as_before(tmp_path):
    root = two_class_folders(tmp_path / "plain")
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (28, 28), dtype=np.uint8)
    colour = rng.integers(0, 256, (56, 56, 3), dtype=np.uint8)
    Image.fromarray(gray).save(root / "train" / "a" / "0.png")
    Image.fromarray(colour).save(root / "train" / "b" / "0.png")
    ds = load_custom(root)
    np.testing.assert_array_equal(ds.train_images[0], gray)  # no inversion, centring or rescaling
    expected = Image.fromarray(colour).convert("L").resize((28, 28), Image.Resampling.LANCZOS)
    np.testing.assert_array_equal(ds.train_images[1], np.asarray(expected))  # grayscale, then Lanczos


def test_idx_folder_reads_gzip_by_content_not_by_name(tmp_path):
    digests = write_odd_idx_folder(tmp_path / "letters")
    folder = tmp_path / "letters"
    raw = folder / "letters-train-images.idx3-ubyte"
    raw.rename(folder / "letters-train-images.idx3-ubyte.gz")  # raw bytes, gzip name
    labels = folder / "letters-test-labels.idx1-ubyte"
    labels.write_bytes(gzip.compress(labels.read_bytes()))  # gzip bytes, no .gz
    ds = load_custom(folder)
    assert sorted(ds.sha256.values()) == sorted(digests.values())  # same payloads, whatever the names say


def test_image_folder_with_an_unreadable_file(tmp_path):
    root = write_image_folders(tmp_path / "pets", n_train=40, n_test=8)
    broken = root / "train" / "dog" / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(DatasetFormatError, match=f"cannot read image {broken}.*replace or remove"):
        load_custom(root)


@pytest.mark.parametrize("damage, error, message", [
    (lambda root: [p.rename(root / "train" / "cat" / f"d{p.name}") for p in (root / "train" / "dog").iterdir()]
     and None, DatasetFormatError, "no .png/.jpg images"),
    (lambda root: (root / "test" / "zebra").mkdir(), DatasetFormatError, "zebra that train/ lacks"),
    (lambda root: (root / "test").rename(root / "valid"), DatasetNotFoundError, "no test/ folder"),
])
def test_image_folder_layout_errors(tmp_path, damage, error, message):
    root = write_image_folders(tmp_path / "pets", n_train=40, n_test=8)
    damage(root)
    with pytest.raises(error, match=message):
        load_custom(root)


def test_image_folder_with_a_single_class(tmp_path):
    for split in ("train", "test"):
        folder = tmp_path / "one" / split / "cat"
        folder.mkdir(parents=True)
        Image.fromarray(np.zeros((28, 28), dtype=np.uint8)).save(folder / "a.png")
    with pytest.raises(DatasetFormatError, match="1 class folder.*cat.*at least two"):
        load_custom(tmp_path / "one")


def test_idx_folder_missing_a_file_and_missing_path(tmp_path):
    write_odd_idx_folder(tmp_path / "letters")
    (tmp_path / "letters" / "letters-test-labels.idx1-ubyte").unlink()
    with pytest.raises(DatasetNotFoundError, match="no file for the test labels"):
        load_custom(tmp_path / "letters")
    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        load_dataset(str(tmp_path / "nowhere.npz"))


def test_cli_bad_custom_data_exits_2_before_any_run(tmp_path, capsys, isolated_env):
    path = write_npz(tmp_path / "bad.npz", x_test=None)
    assert main(["train", "--dataset", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "lacks x_test" in err and "numpy.savez" in err
    assert not (isolated_env / "runs").exists()


def test_data_info_and_samples_on_custom_data(tmp_path, capsys):
    root = write_image_folders(tmp_path / "pets", n_train=40, n_test=8)
    assert main(["data", "info", str(root)]) == 0
    out = capsys.readouterr().out
    assert "pets: 4 classes" in out and "train: 40 images" in out and "owl" in out and "sha256" in out
    assert main(["data", "info", str(root), "--json"]) == 0
    card = json.loads(capsys.readouterr().out)
    assert card["splits"]["train"]["class_counts"] == {"cat": 10, "dog": 10, "fish": 10, "owl": 10}
    assert 0 < card["splits"]["test"]["pixel_mean"] < 255
    grid = tmp_path / "out" / "grid.png"
    assert main(["data", "samples", str(root), "-o", str(grid), "--per-class", "3"]) == 0
    assert grid.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(grid.parent.glob(".tmp-*"))


def run_folder(runs: Path) -> Path:
    (run_dir,) = list(runs.iterdir())
    return run_dir


TRAIN_FLAGS = ["--epochs", "1", "--model", "keras-example", "--batch-size", "32", "--train-limit", "160"]


@pytest.mark.slow
def test_train_evaluate_and_resume_on_an_npz(tmp_path, isolated_env, monkeypatch):
    path = write_npz(tmp_path / "pets.npz", class_names=np.array(CLASSES))
    assert main(["train", "--dataset", "pets.npz", *TRAIN_FLAGS]) == 0  # relative to the working folder
    run_dir = run_folder(isolated_env / "runs")
    assert run_dir.name.endswith("-pets-keras-example")
    config = json.loads((run_dir / "config.json").read_text())
    assert config["config"]["dataset"] == str(path.resolve())  # absolute: resumable from anywhere
    assert config["data"]["sha256"] == {"pets.npz": hashlib.sha256(path.read_bytes()).hexdigest()}
    assert config["data"]["class_names"] == list(CLASSES)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert list(metrics["test"]["per_class"]) == list(CLASSES) and metrics["test"]["num_images"] == 40

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["evaluate", str(run_dir / "model.keras"), "--dataset", str(path), "--out", str(tmp_path / "eval")]) == 0
    again = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert again["dataset"] == "pets" and again["test"]["accuracy"] == metrics["test"]["accuracy"]
    (run_dir / "metrics.json").unlink()  # as if killed after its last epoch
    assert main(["train", "--resume", str(run_dir)]) == 0  # finds pets.npz from config.json, from elsewhere
    assert (run_dir / "metrics.json").exists()


@pytest.mark.slow
def test_train_on_image_folders(tmp_path, isolated_env):
    root = write_image_folders(tmp_path / "pets")
    assert main(["train", "--dataset", str(root), *TRAIN_FLAGS]) == 0
    run_dir = run_folder(isolated_env / "runs")
    config = json.loads((run_dir / "config.json").read_text())
    assert set(config["data"]["sha256"]) == {"train/", "test/"}
    assert config["data"]["class_names"] == list(CLASSES) and config["data"]["num_test"] == 40
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert len(metrics["test"]["confusion_matrix"]) == 4


@pytest.mark.slow
def test_train_on_an_idx_folder(tmp_path, isolated_env):
    digests = write_odd_idx_folder(tmp_path / "letters")
    assert main(["train", "--dataset", str(tmp_path / "letters"), *TRAIN_FLAGS]) == 0
    config = json.loads((run_folder(isolated_env / "runs") / "config.json").read_text())
    assert config["data"]["sha256"] == digests and config["data"]["name"] == "letters"
