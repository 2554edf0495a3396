"""Datasets: the registry, where copies are looked for, IDX parsing, verification, splits.

NumPy only: no Keras import, no network and no disk access at import time.
Images come out `uint8 (N, 28, 28)` in 0..255 and labels `uint8 (N,)`; `normalize` and
`encode_labels` turn them into what a model eats.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from ..core.errors import ConfigError, DatasetNotFoundError

log = logging.getLogger(__name__)

IMAGE_SIZE = 28
INPUT_SHAPE = (IMAGE_SIZE, IMAGE_SIZE, 1)  # a model's input: (height, width, channels), pixels in [0, 1]
SPLITS = ("train", "test")
KINDS = ("images", "labels")
SYSTEM_DATA_DIR = Path("/usr/share/datasets")
Style = Literal["digit", "fashion"]  # how people's images are prepared for a model of the dataset


@dataclass(frozen=True)
class DatasetSpec:
    """A registered dataset: file names per split and kind, and SHA-256 of each uncompressed file."""

    name: str
    title: str
    class_names: tuple[str, ...]
    files: dict[tuple[str, str], str]  # (split, kind) -> file name without ".gz"
    sha256: dict[str, str]  # file name -> digest of the uncompressed IDX payload
    mirrors: tuple[str, ...] = ()  # base URLs, tried in order (used by the downloader)
    style: Style = "digit"  # `preprocess` recipe for images given to its models: MNIST's or Fashion-MNIST's
    sizes: dict[str, int] = field(default_factory=dict)  # file name -> uncompressed payload bytes (caps downloads)


# header + 60,000 or 10,000 items of 28x28 (images) or 1 byte (labels): the same for both datasets
_STANDARD_SIZES = {"train-images-idx3-ubyte": 47_040_016, "train-labels-idx1-ubyte": 60_008,
                   "t10k-images-idx3-ubyte": 7_840_016, "t10k-labels-idx1-ubyte": 10_008}
_STANDARD_FILES = {
    ("train", "images"): "train-images-idx3-ubyte",
    ("train", "labels"): "train-labels-idx1-ubyte",
    ("test", "images"): "t10k-images-idx3-ubyte",
    ("test", "labels"): "t10k-labels-idx1-ubyte",
}

DATASETS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(
        name="mnist",
        title="MNIST handwritten digits",
        class_names=tuple(str(d) for d in range(10)),
        files=_STANDARD_FILES,
        sha256={
            "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        },
        mirrors=(
            "https://ossci-datasets.s3.amazonaws.com/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
            "http://yann.lecun.com/exdb/mnist/",
        ),
        sizes=_STANDARD_SIZES,
    ),
    "fashion-mnist": DatasetSpec(
        name="fashion-mnist",
        title="Fashion-MNIST (Zalando)",
        class_names=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                     "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
        files=_STANDARD_FILES,
        sha256={
            "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
            "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
            "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
            "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
        },
        mirrors=(
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
            "https://storage.googleapis.com/tensorflow/tf-keras-datasets/",
        ),
        style="fashion",
        sizes=_STANDARD_SIZES,
    ),
}


@dataclass(frozen=True)
class Dataset:
    """A loaded dataset: raw uint8 arrays plus where they came from."""

    name: str
    class_names: tuple[str, ...]
    train_images: np.ndarray  # uint8 (N, 28, 28), 0..255
    train_labels: np.ndarray  # uint8 (N,), 0..num_classes-1
    test_images: np.ndarray
    test_labels: np.ndarray
    source: Path  # folder the files were read from
    sha256: dict[str, str] = field(default_factory=dict)  # file name -> verified payload digest

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def get_spec(name: str) -> DatasetSpec:
    try:
        return DATASETS[name]
    except KeyError:
        raise ConfigError(f"unknown dataset {name!r}: choose one of {', '.join(DATASETS)}, or pass a path to "
                          f"a folder of IDX files, a .npz file or a folder with train/ and test/ image "
                          f"folders") from None


def is_custom(name: str) -> bool:
    """True when `name` means a path to custom data rather than a registered dataset."""
    if name in DATASETS:
        return False  # a registered name wins over a same-named folder in the working directory
    return Path(name).exists() or "/" in name or os.sep in name or name.endswith(".npz")


def user_cache_dir() -> Path:
    """`$XDG_CACHE_HOME/mnist-cnn`, else `~/.cache/mnist-cnn`."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mnist-cnn"


def search_dirs(name: str, data_dir: Path | None = None) -> list[tuple[str, Path]]:
    """The folders a dataset is looked for in, in order, each with where it came from."""
    places: list[tuple[str, Path]] = []
    if data_dir is not None:
        places.append(("--data-dir", Path(data_dir) / name))
    if os.environ.get("MNIST_CNN_DATA_DIR"):
        places.append(("$MNIST_CNN_DATA_DIR", Path(os.environ["MNIST_CNN_DATA_DIR"]) / name))
    places.append(("user cache", user_cache_dir() / name))
    places.append(("system", SYSTEM_DATA_DIR / name))
    return places


def find_file(folder: Path, file_name: str) -> Path | None:
    """`folder/file_name.gz`, else `folder/file_name`; either name may hold gzip or raw bytes."""
    for candidate in (folder / f"{file_name}.gz", folder / file_name):
        if candidate.is_file():
            return candidate
    return None


def locate(name: str, data_dir: Path | None = None) -> Path:
    """The first folder holding all four files of dataset `name`; DatasetNotFoundError if none."""
    spec = get_spec(name)
    places = search_dirs(name, data_dir)
    for _, folder in places:
        if all(find_file(folder, f) for f in spec.files.values()):
            return folder
    tried = "; ".join(f"{folder} ({label})" for label, folder in places)
    raise DatasetNotFoundError(
        f"{spec.title} not found; looked in: {tried}. Fix: put the four files "
        f"({', '.join(f + '.gz' for f in spec.files.values())}) in one of these folders, "
        f"or pass --data-dir DIR (or set MNIST_CNN_DATA_DIR) where DIR/{name}/ holds them"
    )
