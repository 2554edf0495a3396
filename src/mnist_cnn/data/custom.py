"""Custom datasets: a folder of IDX files, a Keras-style `.npz`, or folders of class-named images.

Each comes back as the same `Dataset` the registry gives: images `uint8 (N, 28, 28)` in
0..255, labels `uint8 (N,)` in 0..num_classes-1. Class names and their number come from
the data. Custom data has no published digest, so `Dataset.sha256` holds the digests of
what was read, for the run's `config.json`. Image files are read by `data.imagefile` (the
package's one capped decoder, so its byte and pixel limits hold here too), imported only
for image folders.
"""

from __future__ import annotations

import hashlib
import logging
import re
import zipfile
import zlib
from pathlib import Path
from typing import Sequence

import numpy as np

from ..core.errors import DatasetFormatError, DatasetNotFoundError, ImageError, ImageTooLargeError, first_line
from ..core.hashing import sha256_file, sha256_hex
from .idx import parse_idx, read_payload
from .registry import IMAGE_SIZE, KINDS, SPLITS, Dataset

log = logging.getLogger(__name__)

NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
NPZ_CLASS_NAMES_KEY = "class_names"  # optional: one name per label value
CLASSES_FILE = "classes.txt"  # optional beside IDX files: one class name per line, in label order
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
MAX_CLASSES = 256  # labels are stored as uint8
MAX_NPZ_BYTES = 4 * 1024**3  # arrays an .npz may declare: all of MNIST as float64 is ~0.4 GB
MAX_CLASSES_FILE_BYTES = 1_000_000  # classes.txt: at most 256 names
# "train-images-idx3-ubyte.gz", "t10k-labels.idx1-ubyte", "test_images.idx": split word, then kind word.
_IDX_NAME = re.compile(r"(?P<split>train|t10k|test).*?(?P<kind>images|labels|idx3|idx1)", re.IGNORECASE)
_IDX_SPLIT = {"train": "train", "t10k": "test", "test": "test"}
_IDX_KIND = {"images": "images", "idx3": "images", "labels": "labels", "idx1": "labels"}


def dataset_name(path: Path) -> str:
    """A file-name-safe short name for run folders: the path's stem, e.g. "letters" for letters.npz."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", Path(path).stem).strip("-.") or "custom"


def load_custom(path: Path) -> Dataset:
    """Load custom data from `path` (see the module docstring for the three layouts)."""
    path = Path(path)
    if path.is_file() and path.suffix == ".npz":
        return load_npz(path)
    if path.is_dir() and (path / "train").is_dir():
        return load_image_folders(path)
    if path.is_dir():
        return load_idx_folder(path)
    if path.exists():
        raise DatasetFormatError(f"{path} is neither a .npz file nor a folder; pass a folder of IDX files, "
                                 f"a .npz with {', '.join(NPZ_KEYS)}, or a folder with train/ and test/")
    raise DatasetNotFoundError(f"{path} does not exist; pass a folder of IDX files, a .npz file with "
                               f"{', '.join(NPZ_KEYS)}, or a folder with train/ and test/ image folders")


def _finish(path: Path, images: dict[str, np.ndarray], labels: dict[str, np.ndarray],
            class_names: Sequence[str] | None, digests: dict[str, str]) -> Dataset:
    """Check label ranges and class count, name the classes, build the Dataset."""
    for split in SPLITS:
        if len(images[split]) != len(labels[split]):
            raise DatasetFormatError(f"{path}: the {split} split has {len(images[split])} images but "
                                     f"{len(labels[split])} labels; they must pair up one to one")
        if len(images[split]) == 0:
            raise DatasetFormatError(f"{path}: the {split} split is empty; it needs at least one image per class")
    num_classes = int(max(labels[s].max() for s in SPLITS)) + 1
    if class_names is None:
        class_names = [str(i) for i in range(num_classes)]
    elif len(class_names) < num_classes:
        raise DatasetFormatError(f"{path}: labels go up to {num_classes - 1} but only {len(class_names)} class "
                                 f"names are given; list one name per label value")
    if len(class_names) < 2 or len(np.unique(labels["train"])) < 2:
        raise DatasetFormatError(f"{path}: the training split has a single class; a classifier needs at "
                                 f"least two (add images of another class)")
    return Dataset(name=dataset_name(path), class_names=tuple(class_names),
                   train_images=images["train"], train_labels=labels["train"],
                   test_images=images["test"], test_labels=labels["test"],
                   source=path, sha256=digests)


def _as_labels(values: np.ndarray, where: str) -> np.ndarray:
    """Integer class ids (N,) or (N, 1) in 0..255 -> uint8 (N,)."""
    values = np.asarray(values)
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim != 1 or not (np.issubdtype(values.dtype, np.integer) or values.dtype == bool):
        raise DatasetFormatError(f"{where} must be integer class ids of shape (N,); got {values.dtype} "
                                 f"{values.shape} (one-hot labels: take argmax first)")
    if values.size and (values.min() < 0 or values.max() >= MAX_CLASSES):
        raise DatasetFormatError(f"{where} holds class ids {values.min()}..{values.max()}; expected 0..255")
    return values.astype(np.uint8)


def _as_images(values: np.ndarray, where: str) -> np.ndarray:
    """(N, 28, 28) or (N, 28, 28, 1), uint8 0..255 or float 0..1 -> uint8 (N, 28, 28)."""
    values = np.asarray(values)
    if values.ndim == 4 and values.shape[-1] == 1:
        values = values[..., 0]  # (N, 28, 28, 1) -> (N, 28, 28)
    if values.ndim != 3 or values.shape[1:] != (IMAGE_SIZE, IMAGE_SIZE):
        raise DatasetFormatError(f"{where} has shape {values.shape}; expected (N, {IMAGE_SIZE}, {IMAGE_SIZE}) "
                                 f"grayscale images (resize them first)")
    if values.dtype == np.uint8:
        return values
    if not (np.issubdtype(values.dtype, np.integer) or np.issubdtype(values.dtype, np.floating)) or values.size == 0:
        raise DatasetFormatError(f"{where} has dtype {values.dtype}; expected uint8 pixels 0..255 (or floats 0..1)")
    if np.issubdtype(values.dtype, np.floating) and not np.isfinite(values).all():
        bad = int((~np.isfinite(values)).sum())
        raise DatasetFormatError(f"{where} holds {bad:,} NaN or infinite pixel values; fix or drop those images")
    low, high = float(values.min()), float(values.max())
    if np.issubdtype(values.dtype, np.floating) and low >= 0 and high <= 1:
        values = values * 255.0  # floats in [0, 1]: the usual normalised form
    elif low < 0 or high > 255:
        raise DatasetFormatError(f"{where} holds pixel values {low:g}..{high:g}; expected 0..255 (or 0..1)")
    return np.rint(values).astype(np.uint8)


def load_npz(path: Path) -> Dataset:
    """A Keras-style `.npz` (`keras.datasets.mnist.load_data` layout) with `x_train, y_train, x_test, y_test`."""
    arrays = read_npz(path, (*NPZ_KEYS, NPZ_CLASS_NAMES_KEY))
    missing = [k for k in NPZ_KEYS if k not in arrays]
    if missing:
        raise DatasetFormatError(f"{path} lacks {', '.join(missing)} (it has {', '.join(arrays) or 'nothing'}); "
                                 f"save it with numpy.savez(path, {', '.join(f'{k}=...' for k in NPZ_KEYS)})")
    images = {s: _as_images(arrays[f"x_{s}"], f"{path}: x_{s}") for s in SPLITS}
    labels = {s: _as_labels(arrays[f"y_{s}"], f"{path}: y_{s}") for s in SPLITS}
    names = [str(n) for n in arrays[NPZ_CLASS_NAMES_KEY].ravel()] if NPZ_CLASS_NAMES_KEY in arrays else None
    digest = sha256_file(path)
    return _finish(path, images, labels, names, {path.name: digest})


def read_npz(path: Path, keys: Sequence[str], max_bytes: int = MAX_NPZ_BYTES) -> dict[str, np.ndarray]:
    """The arrays `keys` of an `.npz` that are present, read under a size cap, never unpickled.

    Each member's header (shape, dtype) is read first: an object array, or arrays declaring
    more than `max_bytes` in all (a 73 GiB header in a 1 KB file), are refused before any
    allocation. A damaged zip (bad CRC, truncated) is a DatasetFormatError, as is anything
    `numpy.load` itself would choke on.
    """
    fix = "save it again with numpy.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)"
    arrays: dict[str, np.ndarray] = {}
    try:
        with zipfile.ZipFile(path) as archive:
            members = {info.filename.removesuffix(".npy"): info for info in archive.infolist()}
            declared = 0
            for key in (k for k in keys if k in members):
                with archive.open(members[key]) as f:
                    version = np.lib.format.read_magic(f)
                    shape, _, dtype = (np.lib.format.read_array_header_1_0(f) if version == (1, 0)
                                       else np.lib.format.read_array_header_2_0(f))
                if dtype.hasobject:
                    raise DatasetFormatError(f"{path}: {key} is an object array (pickled Python objects), which "
                                             f"is never loaded; store plain numeric or string arrays")
                declared += int(np.prod(shape, dtype=np.float64)) * dtype.itemsize
                if declared > max_bytes:
                    raise DatasetFormatError(f"{path} declares arrays of over {max_bytes:,} bytes; an MNIST-sized "
                                             f"dataset needs well under that (is the file damaged?)")
            for key in (k for k in keys if k in members):
                with archive.open(members[key]) as f:
                    arrays[key] = np.lib.format.read_array(f, allow_pickle=False)
    except FileNotFoundError:
        raise DatasetNotFoundError(f"{path} does not exist; pass an existing .npz file") from None
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, OSError, RuntimeError) as e:
        reason = first_line(e, 120)
        raise DatasetFormatError(f"cannot read {path} as .npz ({reason}); {fix}") from None
    return arrays


def load_idx_folder(folder: Path) -> Dataset:
    """Four IDX files (gzipped or not) with any names that say train/t10k/test and images/labels."""
    found: dict[tuple[str, str], list[Path]] = {}
    for path in sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")):
        match = _IDX_NAME.search(path.name)
        if match:
            key = (_IDX_SPLIT[match["split"].lower()], _IDX_KIND[match["kind"].lower()])
            found.setdefault(key, []).append(path)
    images: dict[str, np.ndarray] = {}
    labels: dict[str, np.ndarray] = {}
    digests: dict[str, str] = {}
    for split in SPLITS:
        for kind in KINDS:
            paths = found.get((split, kind), [])
            if len(paths) != 1:
                problem = "no file" if not paths else f"{len(paths)} files ({', '.join(p.name for p in paths)})"
                raise DatasetNotFoundError(
                    f"{folder} has {problem} for the {split} {kind}; a custom IDX folder needs exactly four "
                    f"files named like train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
                    f"t10k-labels-idx1-ubyte (.gz optional)")
            payload = read_payload(paths[0])
            array = parse_idx(payload, kind, source=str(paths[0]))
            (images if kind == "images" else labels)[split] = array
            digests[paths[0].name] = sha256_hex(payload)
    return _finish(folder, images, labels, _read_class_names(folder / CLASSES_FILE), digests)


def _read_class_names(path: Path) -> list[str] | None:
    """classes.txt: one name per line (blank lines skipped), or None when the file is absent."""
    if not path.is_file():
        return None
    try:
        if path.stat().st_size > MAX_CLASSES_FILE_BYTES:
            raise DatasetFormatError(f"{path} is over {MAX_CLASSES_FILE_BYTES:,} bytes; it should hold one class "
                                     f"name per line")
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DatasetFormatError(f"{path} is not UTF-8 text; save it as UTF-8, one class name per line") from None
    except OSError as e:
        raise DatasetFormatError(f"cannot read {path}: {e.strerror}; check its permissions") from None
    return [name.strip() for name in text.splitlines() if name.strip()]


def load_image_folders(root: Path) -> Dataset:
    """`root/train/<class>/*.png|jpg` and `root/test/<class>/...`, converted to 28x28 grayscale.

    Classes are the sub-folder names of train/, sorted; test/ may omit classes but not add any.
    Images are resized as they are (no inversion): MNIST-style data is a light shape on black.
    """
    if not (root / "test").is_dir():
        raise DatasetNotFoundError(f"{root} has train/ but no test/ folder; add test/<class>/ images "
                                   f"(a few per class) beside train/")
    class_names = sorted(p.name for p in (root / "train").iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(class_names) < 2:
        raise DatasetFormatError(f"{root / 'train'} has {len(class_names)} class folder(s) "
                                 f"({', '.join(class_names) or 'none'}); a classifier needs at least two")
    images: dict[str, np.ndarray] = {}
    labels: dict[str, np.ndarray] = {}
    digests: dict[str, str] = {}
    for split in SPLITS:
        split_dir = root / split
        extra = sorted(p.name for p in split_dir.iterdir() if p.is_dir() and p.name not in class_names
                       and not p.name.startswith("."))
        if extra:
            raise DatasetFormatError(f"{split_dir} has class folder(s) {', '.join(extra)} that train/ lacks; "
                                     f"add them to train/ or remove them")
        arrays, ids, tree = [], [], hashlib.sha256()
        for label, name in enumerate(class_names):
            files = sorted(p for p in (split_dir / name).glob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
            if split == "train" and not files:
                raise DatasetFormatError(f"{split_dir / name} holds no .png/.jpg images; add some or remove "
                                         f"the folder")
            for file in files:
                raw, image = _read_image(file)
                arrays.append(image)
                ids.append(label)
                # Digest of the split: every file's relative path and contents, in sorted order.
                tree.update(f"{name}/{file.name}\0".encode() + hashlib.sha256(raw).digest())
        if not arrays:
            raise DatasetFormatError(f"{split_dir} holds no .png/.jpg images in its class folders; add some")
        images[split] = np.stack(arrays)  # list of (28, 28) -> (N, 28, 28)
        labels[split] = np.asarray(ids, dtype=np.uint8)
        digests[f"{split}/"] = tree.hexdigest()
    return _finish(root, images, labels, class_names, digests)


def _read_image(path: Path) -> tuple[bytes, np.ndarray]:
    """An image file's bytes (for the digest) and its pixels as uint8 (28, 28), grayscale.

    Decoded by `data.imagefile` under its byte and pixel caps, with EXIF rotation applied and
    transparency composited; then only resized (Lanczos), never inverted or centred: the
    MNIST preprocessing is for people's photos, not for training data.
    """
    from PIL import Image

    from .imagefile import decode_image, read_image_bytes, to_gray

    try:
        raw = read_image_bytes(path)
        gray = to_gray(decode_image(raw))  # float32 (H, W) in [0, 1]
    except ImageTooLargeError as e:
        # imagefile's messages read "problem; fix", the fix worded for someone uploading one image.
        problem = str(e).partition("; ")[0]
        raise DatasetFormatError(f"image {path} is too large ({problem}); scale it down (28x28 is "
                                 f"enough) or remove it") from None
    except ImageError as e:
        problem = str(e).partition("; ")[0]
        raise DatasetFormatError(f"cannot read image {path} ({problem}); replace or remove the file") from None
    image = Image.fromarray(np.rint(gray * 255.0).astype(np.uint8))  # (H, W) uint8 -> mode "L"
    if image.size != (IMAGE_SIZE, IMAGE_SIZE):
        image = image.resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.LANCZOS)
    return raw, np.asarray(image, dtype=np.uint8)
