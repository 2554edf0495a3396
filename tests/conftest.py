"""Shared fixtures: an isolated environment for every test, tiny IDX datasets, the real data.

No test touches the home folder or the network: the autouse fixture points HOME, the
user cache, the runs folder and the data variable at the test's tmp_path.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path

import numpy as np
import pytest

from mnist_cnn import data

REPO = Path(__file__).resolve().parents[1]
# Real MNIST / Fashion-MNIST as laid out beside the repo (CI sets MNIST_CNN_TEST_DATA).
SHARED_DATA = Path(os.environ.get("MNIST_CNN_TEST_DATA", REPO.parent / "shared" / "data"))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.setenv("MNIST_CNN_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.delenv("MNIST_CNN_DATA_DIR", raising=False)
    monkeypatch.setattr(data, "SYSTEM_DATA_DIR", tmp_path / "system-datasets")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode a uint8 array as an IDX payload (magic 0x0000 08 ndim, big-endian dims)."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def make_tiny_arrays(n_train: int = 120, n_test: int = 40, num_classes: int = 10, seed: int = 0):
    """Images whose class is readable from a bright square's position, so tiny models can learn."""
    rng = np.random.default_rng(seed)

    def split(n: int):
        labels = np.arange(n) % num_classes
        rng.shuffle(labels)
        images = rng.integers(0, 30, size=(n, 28, 28), dtype=np.uint8)
        for i, label in enumerate(labels):
            r, c = divmod(int(label), 4)
            images[i, 2 + 7 * r: 7 + 7 * r, 2 + 7 * c: 7 + 7 * c] = 255
        return images, labels.astype(np.uint8)

    return split(n_train), split(n_test)


def write_idx_folder(folder: Path, arrays, compress: bool = True) -> dict[str, str]:
    """Write the four standard IDX files; returns file name -> SHA-256 of the payload."""
    folder.mkdir(parents=True, exist_ok=True)
    (train_x, train_y), (test_x, test_y) = arrays
    contents = {"train-images-idx3-ubyte": train_x, "train-labels-idx1-ubyte": train_y,
                "t10k-images-idx3-ubyte": test_x, "t10k-labels-idx1-ubyte": test_y}
    digests = {}
    for name, array in contents.items():
        payload = idx_bytes(array)
        digests[name] = hashlib.sha256(payload).hexdigest()
        if compress:
            (folder / f"{name}.gz").write_bytes(gzip.compress(payload))
        else:
            (folder / name).write_bytes(payload)
    return digests


@pytest.fixture
def tiny_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A registered dataset "tiny" (120 train / 40 test images) under tmp_path/data/tiny; returns tmp_path/data."""
    root = tmp_path / "data"
    digests = write_idx_folder(root / "tiny", make_tiny_arrays())
    spec = data.DatasetSpec(name="tiny", title="tiny test set", class_names=tuple("abcdefghij"),
                            files=dict(data.DATASETS["mnist"].files), sha256=digests)
    monkeypatch.setitem(data.DATASETS, "tiny", spec)
    return root


@pytest.fixture
def shared_data() -> Path:
    if not (SHARED_DATA / "mnist").is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (set MNIST_CNN_TEST_DATA)")
    return SHARED_DATA


TRAINED_MODEL_IMAGES = 12_000  # enough for ~96% test accuracy after 2 epochs of keras-example
TRAINED_MODEL_EPOCHS = 2


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`model.keras` of keras-example trained briefly on real MNIST, in a run-like folder.

    Beside it: `config.json` (dataset, class names) and `metrics.json` (test accuracy on
    the first 2,000 test images). Trained once per session: about 20-30 s on 2 cores.
    """
    import json

    if not (SHARED_DATA / "mnist").is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (set MNIST_CNN_TEST_DATA)")
    import keras

    from mnist_cnn.models import build_model

    dataset = data.load_dataset("mnist", data_dir=SHARED_DATA)
    keras.utils.set_random_seed(0)
    model = build_model("keras-example")
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(data.normalize(dataset.train_images[:TRAINED_MODEL_IMAGES]),
              dataset.train_labels[:TRAINED_MODEL_IMAGES].astype("int32"),
              epochs=TRAINED_MODEL_EPOCHS, batch_size=64, verbose=0)
    loss, accuracy = model.evaluate(data.normalize(dataset.test_images[:2000]),
                                    dataset.test_labels[:2000].astype("int32"), verbose=0)
    run_dir = tmp_path_factory.mktemp("run")
    model.save(run_dir / "model.keras")
    (run_dir / "config.json").write_text(json.dumps({
        "config": {"dataset": "mnist", "model": "keras-example"},
        "data": {"class_names": list(dataset.class_names)}}))
    (run_dir / "metrics.json").write_text(json.dumps({"test": {"accuracy": accuracy, "loss": loss,
                                                               "num_images": 2000}}))
    return run_dir / "model.keras"
