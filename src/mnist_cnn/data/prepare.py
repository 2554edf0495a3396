"""From a dataset to model-ready arrays (steps 1.1 and 1.2): pixels to [0, 1], labels encoded, a
seeded stratified validation split. NumPy only; the test split is never touched here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

import numpy as np

from ..core.errors import ConfigError
from .registry import Dataset


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


@dataclass(frozen=True)
class PreparedData:
    """Model-ready arrays: images float32 (N, 28, 28, 1) in [0, 1] (uint8 0..255 if prepared with
    `scale=False`), labels per `config.labels`."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    train_index: np.ndarray  # rows of the dataset's (limited) training split in x_train, in order
    val_index: np.ndarray  # ... and in x_val


class SplitSettings(Protocol):
    """What `prepare_data` reads of a run's settings (`TrainConfig` has these fields)."""

    train_limit: int | None  # use only the first N training images (None: all)
    val_fraction: float  # share of each class held out for validation
    seed: int  # the split's seed
    labels: Literal["onehot", "sparse"]  # label encoding, as the loss expects


def split_rows(config: SplitSettings, dataset: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """(train, validation) rows of `dataset`'s training images, as `prepare_data` splits them."""
    labels = dataset.train_labels
    if config.train_limit is not None:
        labels = labels[: config.train_limit]
    return stratified_split(labels, config.val_fraction, config.seed)


def prepare_data(config: SplitSettings, dataset: Dataset, *, scale: bool = True) -> PreparedData:
    """Steps 1.1 and 1.2: normalise pixels, encode labels, hold out a stratified validation split.

    `scale=False` keeps the pixels uint8 (N, 28, 28, 1) for a pipeline that scales each batch
    as it goes (training does: a quarter of the memory, and the same float32 values).
    """
    images, labels = dataset.train_images, dataset.train_labels
    if config.train_limit is not None:
        images, labels = images[: config.train_limit], labels[: config.train_limit]
    train_idx, val_idx = split_rows(config, dataset)
    x = normalize(images) if scale else images[..., np.newaxis]  # -> float32 (or uint8) (N, 28, 28, 1)
    y = encode_labels(labels, dataset.num_classes, config.labels)
    return PreparedData(x[train_idx], y[train_idx], x[val_idx], y[val_idx], train_idx, val_idx)
