"""Every training default in one place, validated.

`TrainConfig` is frozen: a run's settings never change after it starts, and the resolved
config is written to the run's `config.json`. CLI flags default to None, meaning "not
overridden", so the values here are the only defaults. No I/O at import.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import re
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

from ..core.errors import ConfigError
from ..core.files import MAX_SETTINGS_BYTES, read_settings
from ..core.messages import LANGUAGES

LabelMode = Literal["onehot", "sparse"]
Schedule = Literal["cosine", "constant"]
Precision = Literal["float32", "bfloat16"]
LABEL_MODES: tuple[str, ...] = ("onehot", "sparse")
SCHEDULES: tuple[str, ...] = ("cosine", "constant")
PRECISIONS: tuple[str, ...] = ("float32", "bfloat16")


# Upper bounds of the integer settings: far beyond any real run, low enough that no value
# overflows a tensor shape, a schedule's step count or an int64 on its way through TF.
MAX_EPOCHS = 10_000
MAX_BATCH_SIZE = 65_536
MAX_IMAGES = 100_000_000


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run. Defaults: the `compact` model, 99.3% on MNIST (99.28-99.36% over seeds 0-2)."""

    dataset: str = "mnist"  # registered name (see `mnist-cnn data list`) or a path to custom data
    model: str = "compact"  # registered architecture (see `mnist-cnn models`)
    epochs: int = 8  # upper bound; early stopping may end sooner
    batch_size: int = 128  # images per optimizer step
    learning_rate: float = 2e-3  # peak Adam learning rate (reached after warm-up)
    schedule: Schedule = "cosine"  # "cosine": linear warm-up then cosine decay to 0; "constant"
    warmup_epochs: float = 1.0  # linear warm-up from learning_rate / 20 (cosine only; at most 1/4 of training)
    labels: LabelMode = "onehot"  # "onehot" + categorical_crossentropy, or "sparse" + sparse_categorical_crossentropy
    label_smoothing: float = 0.0  # only with onehot labels; 0.1 spreads 10% of the target mass
    val_fraction: float = 0.1  # share of the training set held out, stratified by class
    patience: int = 4  # epochs without a lower validation loss before early stopping
    seed: int = 0  # seeds the split, weight init and shuffling
    deterministic: bool = False  # TF op determinism: repeatable to the bit, somewhat slower
    tensorboard: bool = False  # write TensorBoard event files into RUN/tensorboard/
    train_limit: int | None = None  # keep only the first N training images (smoke runs)
    adam_beta_1: float = 0.9  # Adam's first-moment decay; lower (0.8) reacts faster in very short runs
    adam_beta_2: float = 0.999  # Adam's second-moment decay
    weight_decay: float = 0.0  # decoupled (AdamW) decay per unit of learning rate, e.g. 0.05; batch-norm and bias parameters are spared
    precision: Precision = "float32"  # "bfloat16": mixed precision, faster on CPUs with AMX (bf16 matrix units); model.keras is float32 either way
    fused_batch_norm: bool = True  # batch norm as one fused TensorFlow op while training: faster (a fifth of `cnn`'s epoch in float32), same model file
    ema_momentum: float = 0.0  # 0: off; e.g. 0.999: validation, checkpoints and model.keras use a moving average of the weights
    # Augmentation of training images only (random each step; validation and test untouched).
    augment: bool = False  # turn the settings below on
    aug_shift: float = 0.1  # max translation, as a fraction of 28 px (0.1 = 2.8 px)
    aug_rotation_deg: float = 10.0  # max rotation either way, degrees
    aug_zoom: float = 0.1  # max zoom in or out, as a fraction
    aug_crop: int = 0  # pad-and-crop: shift by whole pixels, up to N each way (no blur; clothes); 0: off
    aug_elastic: float = 0.0  # max strength of elastic distortion (digits), 0..1; 1: Simard et al.'s alpha 34 px, sigma 4 px; 0: off
    aug_one_warp: bool = False  # shift, rotation, zoom and elastic in one resampling (blurs once, not three times)
    aug_erasing: float = 0.0  # probability of erasing a random rectangle (useful for Fashion-MNIST)
    aug_flip: bool = False  # mirror left-right at random: for clothes (Fashion-MNIST), never for digits
    lang: str = "en"  # language of the run's plots, summary and report: en or pt-BR
    recipe: str | None = None  # the named preset these settings started from (informational)

    def __post_init__(self) -> None:
        for f in fields(self):  # nan and inf pass range checks like `x >= 0`: refuse them first
            value = getattr(self, f.name)
            _check(not isinstance(value, float) or math.isfinite(value), f.name, value, "a finite number")
        _check(1 <= self.epochs <= MAX_EPOCHS, "epochs", self.epochs, f"an integer from 1 to {MAX_EPOCHS:,}")
        _check(1 <= self.batch_size <= MAX_BATCH_SIZE, "batch_size", self.batch_size,
               f"an integer from 1 to {MAX_BATCH_SIZE:,}")
        _check(0 < self.learning_rate < 10, "learning_rate", self.learning_rate, "a number in (0, 10)")
        _check(self.schedule in SCHEDULES, "schedule", self.schedule, f"one of {', '.join(SCHEDULES)}")
        _check(0 <= self.warmup_epochs <= MAX_EPOCHS, "warmup_epochs", self.warmup_epochs,
               f"a number from 0 to {MAX_EPOCHS:,}")
        _check(self.labels in LABEL_MODES, "labels", self.labels, f"one of {', '.join(LABEL_MODES)}")
        _check(0 <= self.label_smoothing < 1, "label_smoothing", self.label_smoothing, "a number in [0, 1)")
        _check(self.label_smoothing == 0 or self.labels == "onehot", "label_smoothing",
               self.label_smoothing, "0 with --labels sparse (Keras smooths one-hot targets only)")
        _check(0 < self.val_fraction < 1, "val_fraction", self.val_fraction, "a number in (0, 1)")
        _check(1 <= self.patience <= MAX_EPOCHS, "patience", self.patience, f"an integer from 1 to {MAX_EPOCHS:,}")
        _check(0 <= self.seed < 2**32, "seed", self.seed, "an integer from 0 to 2**32 - 1")
        _check(0 <= self.adam_beta_1 < 1, "adam_beta_1", self.adam_beta_1, "a number in [0, 1)")
        _check(0 <= self.adam_beta_2 < 1, "adam_beta_2", self.adam_beta_2, "a number in [0, 1)")
        _check(0 <= self.weight_decay < 1, "weight_decay", self.weight_decay, "a number in [0, 1)")
        _check(self.precision in PRECISIONS, "precision", self.precision, f"one of {', '.join(PRECISIONS)}")
        _check(0 <= self.ema_momentum < 1, "ema_momentum", self.ema_momentum, "a number in [0, 1) (0: off)")
        _check(0 <= self.aug_shift < 0.5, "aug_shift", self.aug_shift, "a fraction in [0, 0.5)")
        _check(0 <= self.aug_rotation_deg <= 45, "aug_rotation_deg", self.aug_rotation_deg, "degrees in [0, 45]")
        _check(0 <= self.aug_zoom < 0.5, "aug_zoom", self.aug_zoom, "a fraction in [0, 0.5)")
        _check(0 <= self.aug_crop <= 8, "aug_crop", self.aug_crop, "whole pixels in [0, 8]")
        _check(0 <= self.aug_elastic <= 1, "aug_elastic", self.aug_elastic, "a strength in [0, 1]")
        _check(0 <= self.aug_erasing <= 1, "aug_erasing", self.aug_erasing, "a probability in [0, 1]")
        _check(self.lang in LANGUAGES, "lang", self.lang, f"one of {', '.join(LANGUAGES)}")
        _check(self.train_limit is None or 20 <= self.train_limit <= MAX_IMAGES, "train_limit", self.train_limit,
               f"an integer from 20 (enough for a stratified split) to {MAX_IMAGES:,}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with `changes` applied; None values mean "keep", as CLI flags do."""
        check_keys(changes)
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})


# Settings a resumed run may change: training longer, waiting longer before stopping early, the
# language of what it writes (none changes what was trained).
RESUMABLE_FIELDS = ("epochs", "patience", "lang")
MAX_CONFIG_BYTES = MAX_SETTINGS_BYTES  # a config file is a few hundred bytes; refuse anything absurd


def field_help() -> dict[str, str]:
    """Each field's comment in this file's `TrainConfig`, the CLI's help text for its flag.

    Read from the source, so the comment beside a default is its only description.
    """
    try:
        source = inspect.getsource(TrainConfig)
    except (OSError, TypeError):  # no source shipped (a frozen build): flags go without help
        return {}
    found = (re.match(r"\s+(\w+): [^=]+=[^#]*#\s*(.+)$", line) for line in source.splitlines())
    return {m[1]: m[2].strip() for m in found if m and m[1] in _TYPES}


def _check(ok: bool, name: str, value: Any, expected: str) -> None:
    if not ok:
        raise ConfigError(f"invalid {name} = {value!r}: expected {expected}")


_TYPES = {f.name: f.type for f in fields(TrainConfig)}


def check_keys(values: dict[str, Any]) -> None:
    unknown = sorted(set(values) - set(_TYPES))
    if unknown:
        raise ConfigError(f"unknown config key(s) {', '.join(unknown)}: known keys are {', '.join(_TYPES)}")


def _coerce(name: str, value: Any) -> Any:
    """Check a value read from a config file against the field's type (JSON has no int/float split)."""
    kind = _TYPES[name]
    if value is None and "None" in kind:
        return None
    if "bool" in kind:
        ok = isinstance(value, bool)
    elif "int" in kind:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif "float" in kind:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    else:  # str and Literal fields
        ok = isinstance(value, str)
    if not ok:
        raise ConfigError(f"invalid {name} = {value!r} in config file: expected {kind}")
    return value


def load_config_file(path: Path) -> dict[str, Any]:
    """Read overrides from a `.toml` or `.json` file; unknown keys and wrong types are errors."""
    values = read_settings(path, "config file")
    if not isinstance(values, dict):
        raise ConfigError(f"config file {path} must hold a table/object of settings")
    check_keys(values)
    return {k: _coerce(k, v) for k, v in values.items()}
