"""`load_dataset`: a registered dataset by name (found, else fetched and verified) or your own data.

The one entry point above the registry, the IDX reader, the fetcher and custom formats,
so none of them needs to import another's caller. Nothing runs at import.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable, Sequence

from ..core.errors import DataError, DatasetNotFoundError
from .idx import load_split
from .registry import Dataset, DatasetSpec, get_spec, is_custom, locate, user_cache_dir

log = logging.getLogger(__name__)


def load_dataset(name: str = "mnist", data_dir: Path | None = None, *, mirrors: Sequence[str] = (),
                 offline: bool | None = None, progress: Callable[..., None] | None = None) -> Dataset:
    """Locate, verify and load a dataset: a registered name or a path to custom data.

    A registered dataset is looked for as `search_dirs` says; if no folder has it, it is
    downloaded into the user cache (`mirrors` first; never when `offline`, which defaults to
    `$MNIST_CNN_OFFLINE`). A corrupt copy in the user cache is reported and fetched again.
    A path is read by `data.custom.load_custom` (IDX folder, `.npz`, or image folders).
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
