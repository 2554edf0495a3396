"""Recipes (named presets of `TrainConfig`) and the one resolver of a run's settings.

`resolve_config` layers defaults -> recipe -> config file -> flags; the CLI, the benchmarks,
the notebooks and tuning all call it, so a setting means the same everywhere.
`resume_config` is its counterpart for `train --resume`. No I/O at import.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..core.errors import ConfigError
from ..data.registry import is_custom
from ..runs.config import RESUMABLE_FIELDS, TrainConfig, check_keys, load_config_file


@dataclass(frozen=True)
class Recipe:
    description: str
    settings: dict[str, Any]
    # Extra settings for one dataset (e.g. random erasing only for Fashion-MNIST).
    per_dataset: dict[str, dict[str, Any]] = field(default_factory=dict)


RECIPES: dict[str, Recipe] = {
    "default": Recipe("the package defaults: compact, 8 epochs, cosine schedule, fused batch norm", {}),
    "fast": Recipe(
        "shortest time to 99% on MNIST: whitened narrow model, fused batch norm, 1 epoch, high peak learning rate",
        # One epoch: warm up for a quarter, cosine to 0; Adam's lowered betas follow the fast
        # start; label smoothing helps even in one epoch; fused batch norm makes the epoch
        # cheaper at the same accuracy (benchmarks/README.md, "`fast` with fused batch norm").
        # Batch 256: with the frozen stem, half the steps at the same accuracy; any peak rate
        # from 0.03 to 0.06 scored alike on validation (benchmarks/README.md).
        {"model": "fast", "epochs": 1, "batch_size": 256, "learning_rate": 4e-2, "warmup_epochs": 0.25,
         "adam_beta_1": 0.8, "adam_beta_2": 0.99, "label_smoothing": 0.1, "patience": 1,
         "fused_batch_norm": True},
    ),
    "strong": Recipe(
        "best accuracy: deeper model, augmentation (digits: shift, rotation, zoom; clothes: flip, shift, erasing), label smoothing, 20 epochs",
        {"model": "strong", "epochs": 20, "batch_size": 128, "learning_rate": 2e-3, "warmup_epochs": 2,
         "label_smoothing": 0.1, "augment": True, "aug_shift": 0.1, "aug_rotation_deg": 10.0,
         "aug_zoom": 0.1, "patience": 20},
        # Clothes are photographed upright and centred: rotations and zooms only blur them
        # (the model underfits with them; benchmarks/README.md), while a mirrored garment
        # is the same garment. So: flips, shifts and random erasing.
        per_dataset={"fashion-mnist": {"aug_flip": True, "aug_rotation_deg": 0.0, "aug_zoom": 0.0,
                                       "aug_erasing": 0.25}},
    ),
    "wide": Recipe(
        "best accuracy: the wide residual model in bfloat16 with fused batch norm, AdamW with batch 512; "
        "digits: shift, rotation, zoom as one warp, 30 epochs, 5% held out; clothes: pad-and-crop and flips, "
        "34 epochs (for CPUs with bf16 matrix units)",
        # Where `strong` is capacity-bound (Fashion-MNIST) a wider model pays; bfloat16 and fused
        # batch norm pay for it on CPUs with AMX. Whole-pixel shifts keep the fabric's texture
        # sharp, where interpolated shifts blur it. Digits: `strong`'s augmentation as one
        # resampling (three in a row blur the strokes), never mirrored. With the cheaper epochs,
        # 30 (digits) and 34 (clothes) fit the goals' 30-minute budget (benchmarks/README.md).
        # Digits hold out 5% (3,000 images) instead of 10% for validation: 3,000 more to train
        # on, and the best epoch is one of the last few either way, so selection loses little.
        # The base's 20 epochs are for other (custom) datasets, for which nothing is tuned.
        {"model": "wide", "precision": "bfloat16", "fused_batch_norm": True, "epochs": 20, "batch_size": 512,
         "learning_rate": 4e-3, "warmup_epochs": 2, "weight_decay": 0.05, "label_smoothing": 0.1, "augment": True,
         "aug_shift": 0.1, "aug_rotation_deg": 10.0, "aug_zoom": 0.1, "patience": 20},
        per_dataset={"mnist": {"aug_one_warp": True, "epochs": 30, "val_fraction": 0.05},
                     "fashion-mnist": {"epochs": 34, "aug_flip": True, "aug_shift": 0.0, "aug_crop": 3,
                                       "aug_rotation_deg": 0.0, "aug_zoom": 0.0}},
    ),
}


def recipe_settings(name: str, dataset: str) -> dict[str, Any]:
    """The settings recipe `name` gives for `dataset`, including `recipe` itself."""
    try:
        recipe = RECIPES[name]
    except KeyError:
        raise ConfigError(f"unknown recipe {name!r}: choose one of {', '.join(RECIPES)} "
                          f"(see `mnist-cnn models`)") from None
    return {**recipe.settings, **recipe.per_dataset.get(dataset, {}), "recipe": name}


def resolve_config(recipe: str | None = None, config_file: Path | None = None,
                   overrides: dict[str, Any] | None = None) -> TrainConfig:
    """Defaults, then the recipe, then a `.toml`/`.json` config file, then `overrides` (None = not set).

    The recipe is `recipe`, else the file's `recipe` key. Per-dataset recipe settings follow
    the dataset the later layers ask for. A custom dataset path is made absolute, so
    `train --resume` and `evaluate` find it from any folder.
    """
    flags = {k: v for k, v in (overrides or {}).items() if v is not None}
    check_keys(flags)
    from_file = load_config_file(Path(config_file)) if config_file is not None else {}
    recipe = recipe or flags.get("recipe") or from_file.get("recipe")
    config = TrainConfig()
    if recipe:
        dataset = flags.get("dataset") or from_file.get("dataset") or config.dataset
        config = config.replace(**recipe_settings(recipe, dataset))
    config = config.replace(**from_file).replace(**flags)
    if is_custom(config.dataset):
        config = config.replace(dataset=str(Path(config.dataset).resolve()))
    return config


def resume_config(recorded: TrainConfig, overrides: dict[str, Any] | None = None
                  ) -> tuple[TrainConfig, dict[str, tuple[Any, Any]]]:
    """The settings a resumed run continues with, and {field: (old, new)} for those that changed.

    Only RESUMABLE_FIELDS may be given: anything else would make the run a different
    experiment, so it is an error, never silently ignored.
    """
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    check_keys(given)
    refused = sorted(set(given) - set(RESUMABLE_FIELDS))
    if refused:
        flags = ", ".join("--" + name.replace("_", "-") for name in refused)
        raise ConfigError(f"{flags} cannot change when resuming (only "
                          f"{', '.join('--' + f for f in RESUMABLE_FIELDS)} can); start a new run instead")
    config = recorded.replace(**given)
    changed = {k: (getattr(recorded, k), v) for k, v in given.items() if getattr(recorded, k) != v}
    return config, changed


def train_command(config: TrainConfig) -> str:
    """The shortest `mnist-cnn train` command that gives `config`: its recipe, dataset and seed,
    then a flag for each setting the recipe does not give (what a model card or report quotes)."""
    base = TrainConfig()
    if config.recipe:
        base = base.replace(**recipe_settings(config.recipe, config.dataset))
    parts = ["mnist-cnn train"] + ([f"--recipe {config.recipe}"] if config.recipe else [])
    parts += [f"--dataset {config.dataset}", f"--seed {config.seed}"]
    for f in fields(TrainConfig):
        value = getattr(config, f.name)
        if f.name in ("recipe", "dataset", "seed") or value == getattr(base, f.name):
            continue
        flag = "--" + f.name.replace("_", "-")
        if isinstance(value, bool):
            parts.append(flag if value else "--no-" + flag[2:])
        else:
            parts.append(f"{flag} {value:g}" if isinstance(value, float) else f"{flag} {value}")
    return " ".join(parts)
