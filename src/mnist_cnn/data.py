"""Datasets: the registry, where copies are looked for, IDX parsing, verification, splits.

NumPy only: no Keras import, no network and no disk access at import time.
Images come out `uint8 (N, 28, 28)` in 0..255 and labels `uint8 (N,)`; `normalize` and
`encode_labels` turn them into what a model eats.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import os
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable, Literal, Sequence

import numpy as np

from .errors import ChecksumError, ConfigError, DataError, DatasetNotFoundError, IdxFormatError

log = logging.getLogger(__name__)

IMAGE_SIZE = 28
SPLITS = ("train", "test")
KINDS = ("images", "labels")
# IDX header: two zero bytes, a type code, the number of dimensions, then one
# big-endian uint32 per dimension.  0x08 is unsigned byte, the only type MNIST uses.
IDX_UBYTE = 0x08
IDX_NDIM = {"images": 3, "labels": 1}
GZIP_MAGIC = b"\x1f\x8b"  # every gzip stream starts with these two bytes (RFC 1952)
SYSTEM_DATA_DIR = Path("/usr/share/datasets")
MAX_PAYLOAD_BYTES = 1 << 30  # an IDX payload read into memory: MNIST's largest is 47 MB
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


def sha256_hex(payload: bytes) -> str:
    return hashlib.sha256(payload).hexdigest()


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


def load_dataset(name: str = "mnist", data_dir: Path | None = None, *, mirrors: Sequence[str] = (),
                 offline: bool | None = None, progress: Callable[..., None] | None = None) -> Dataset:
    """Locate, verify and load a dataset: a registered name or a path to custom data.

    A registered dataset is looked for as `search_dirs` says; if no folder has it, it is
    downloaded into the user cache (`mirrors` first; never when `offline`, which defaults to
    `$MNIST_CNN_OFFLINE`). A corrupt copy in the user cache is reported and fetched again.
    A path is read by `custom.load_custom` (IDX folder, `.npz`, or image folders).
    """
    if is_custom(name):
        from .custom import load_custom  # noqa: PLC0415  (Pillow only when needed)

        return load_custom(Path(name))
    spec = get_spec(name)
    fetch_args = {"mirrors": mirrors, "offline": offline, "progress": progress}
    try:
        folder = locate(name, data_dir)
    except DatasetNotFoundError as missing:
        from . import fetch  # noqa: PLC0415  (no network code unless a download is needed)

        if fetch.is_offline(offline):
            raise DatasetNotFoundError(f"{missing} (offline mode is on: --offline or {fetch.OFFLINE_ENV}=1, "
                                       f"so nothing was downloaded)") from None
        log.info("%s not found locally; downloading it into %s", spec.title, user_cache_dir() / name)
        fetch.fetch_dataset(spec, **fetch_args)
        folder = locate(name, data_dir)
    try:
        return _read_folder(spec, folder)
    except DataError as bad:
        if folder != user_cache_dir() / name:
            raise  # never rewrite files the user put somewhere themselves
        from . import fetch  # noqa: PLC0415

        log.info("%s; re-checking the cached files", bad)
        fetch.fetch_dataset(spec, **fetch_args)  # re-hashes each file, replaces the bad ones
        return _read_folder(spec, folder)


def _read_folder(spec: DatasetSpec, folder: Path) -> Dataset:
    log.info("loading %s from %s", spec.name, folder)
    train_images, train_labels, train_digests = load_split(spec, folder, "train")
    test_images, test_labels, test_digests = load_split(spec, folder, "test")
    return Dataset(name=spec.name, class_names=spec.class_names, train_images=train_images,
                   train_labels=train_labels, test_images=test_images, test_labels=test_labels,
                   source=folder, sha256={**train_digests, **test_digests})


def normalize(images: np.ndarray) -> np.ndarray:
    """uint8 (N, 28, 28) in 0..255 -> float32 (N, 28, 28, 1) in [0, 1]."""
    return (images.astype(np.float32) / 255.0)[..., np.newaxis]


def encode_labels(labels: np.ndarray, num_classes: int, mode: str = "onehot") -> np.ndarray:
    """"onehot": float32 (N, num_classes) for categorical_crossentropy; "sparse": int32 (N,)."""
    if mode == "sparse":
        return labels.astype(np.int32)
    if mode == "onehot":
        return np.eye(num_classes, dtype=np.float32)[labels]
    raise ConfigError(f"unknown label mode {mode!r}: choose onehot or sparse")


def stratified_split(labels: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices (train, validation) holding out `val_fraction` of each class, chosen by `seed`.

    Hand-written rather than scikit-learn's StratifiedShuffleSplit to keep this module
    NumPy-only; each class contributes round(val_fraction * count) images (at least one).
    Both index arrays come back shuffled.
    """
    if not 0 < val_fraction < 1:
        raise ConfigError(f"invalid val_fraction = {val_fraction!r}: expected a number in (0, 1)")
    rng = np.random.default_rng(seed)
    train_parts, val_parts = [], []
    for cls in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == cls))
        if len(members) < 2:
            raise ConfigError(f"class {cls} has {len(members)} training image(s); a stratified validation "
                              f"split needs at least 2 per class (raise --train-limit)")
        n_val = min(len(members) - 1, max(1, round(val_fraction * len(members))))
        val_parts.append(members[:n_val])
        train_parts.append(members[n_val:])
    return rng.permutation(np.concatenate(train_parts)), rng.permutation(np.concatenate(val_parts))
