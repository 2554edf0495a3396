"""Search spaces for `mnist-cnn tune`: which `TrainConfig` fields a study varies, and over what.

A space is a TOML table over TrainConfig fields, one entry per searched field:

    learning_rate = { low = 2e-3, high = 5e-2, log = true }   # float range, log scale
    warmup_epochs = { low = 0.0, high = 0.5, step = 0.05 }     # float range on a grid
    epochs = { low = 2, high = 8 }                              # int range (int fields)
    batch_size = { choices = [64, 128, 256] }                   # categorical
    schedule = { choices = ["cosine", "constant"] }

Everything is checked here, once, before any trial: unknown fields, unknown keys, wrong
types, empty or inverted ranges, log scales through zero, and bounds or choices that
`TrainConfig` itself refuses. Each recipe has a built-in space (`DEFAULT_SPACES`). Pure
Python, no Optuna: `suggest` is handed an Optuna trial by `tune`. No I/O at import.
"""

from __future__ import annotations

import math
import types
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

from ..core.errors import ConfigError
from ..core.files import read_settings
from ..runs.config import TrainConfig

Space = dict[str, dict[str, Any]]  # field -> {"low", "high", "log"?, "step"?} or {"choices": [...]}
RANGE_KEYS = {"low", "high", "log", "step"}
# Settings that change what a run writes, not what it learns: a study's workers may differ in them.
OUTPUT_ONLY = ("tensorboard", "lang")
# Fields a search must not vary: they change the validation split that trials are compared
# on (dataset, seed, val_fraction, train_limit), or nothing that the objective sees.
NOT_SEARCHABLE = {
    "dataset": "the data", "seed": "the validation split", "val_fraction": "the validation split",
    "train_limit": "the validation split", "recipe": "nothing (it only names the starting preset)",
    "deterministic": "nothing the objective sees", **{name: "nothing the objective sees" for name in OUTPUT_ONLY},
}

# Built-in spaces around each recipe's hand-tuned settings (recipes.py), the settings the
# result is most sensitive to (docs/training.md, "Why the recipes are as they are").
DEFAULT_SPACES: dict[str, Space] = {
    "fast": {  # one epoch stays one epoch: the recipe's point is its time budget
        "learning_rate": {"low": 5e-3, "high": 1e-1, "log": True},  # the recipe's 0.04 well inside
        "batch_size": {"choices": [64, 128, 256]},
        "warmup_epochs": {"low": 0.0, "high": 0.5},
        "adam_beta_1": {"low": 0.6, "high": 0.95},
        "adam_beta_2": {"low": 0.9, "high": 0.999},
        "label_smoothing": {"low": 0.0, "high": 0.2},
    },
    "default": {
        "learning_rate": {"low": 5e-4, "high": 1e-2, "log": True},
        "batch_size": {"choices": [64, 128, 256]},
        "warmup_epochs": {"low": 0.0, "high": 2.0},
        "adam_beta_1": {"low": 0.8, "high": 0.95},
        "label_smoothing": {"low": 0.0, "high": 0.2},
    },
    "strong": {
        "learning_rate": {"low": 5e-4, "high": 5e-3, "log": True},
        "warmup_epochs": {"low": 0.0, "high": 3.0},
        "label_smoothing": {"low": 0.0, "high": 0.2},
        "aug_shift": {"low": 0.0, "high": 0.15},
        "aug_rotation_deg": {"low": 0.0, "high": 20.0},
        "aug_zoom": {"low": 0.0, "high": 0.2},
    },
    "wide": {  # regularisation first: the wide model ends ahead on its training data (docs/training.md, "Why the recipes are as they are")
        "learning_rate": {"low": 1e-3, "high": 1e-2, "log": True},
        "weight_decay": {"low": 0.0, "high": 0.2},
        "warmup_epochs": {"low": 0.0, "high": 3.0},
        "label_smoothing": {"low": 0.0, "high": 0.2},
        "aug_erasing": {"low": 0.0, "high": 0.5},
        "aug_crop": {"choices": [0, 2, 3, 4]},
    },
}


def default_space(recipe: str | None) -> Space:
    """The built-in space of `recipe` (the `default` recipe's when None)."""
    return {name: dict(spec) for name, spec in DEFAULT_SPACES[recipe or "default"].items()}


def load_space(path: Path) -> Space:
    """Read a space from a TOML file (unchecked: `check_space` checks it against the base settings)."""
    return read_settings(path, "search space", fix="check the --space path")


def check_space(space: Any, base: TrainConfig, where: str = "search space") -> Space:
    """`space` checked field by field against `base` (the settings a trial starts from); returns it.

    Every problem is one ConfigError naming the field and what to write instead.
    """
    if not isinstance(space, dict) or not space:
        raise ConfigError(f"{where} is empty: give at least one field, e.g. learning_rate = "
                          f"{{ low = 1e-3, high = 1e-2, log = true }}")
    hints = get_type_hints(TrainConfig)
    for name, spec in space.items():
        if name not in hints:
            raise ConfigError(f"{where}: unknown field {name!r}; searchable fields are "
                              f"{', '.join(f for f in hints if f not in NOT_SEARCHABLE)}")
        if name in NOT_SEARCHABLE:
            raise ConfigError(f"{where}: {name} cannot be searched (it changes {NOT_SEARCHABLE[name]}); "
                              f"set it with --{name.replace('_', '-')} instead")
        _check_field(name, spec, _field_kind(hints[name]), base, where)
    return space


def _field_kind(hint: Any) -> Any:
    if get_origin(hint) in (Union, types.UnionType):  # `int | None`: a search gives a value
        return next(a for a in get_args(hint) if a is not type(None))
    return hint


def _fits(value: Any, kind: Any) -> bool:
    if get_origin(kind) is Literal:
        return value in get_args(kind)
    if kind is bool:
        return isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return isinstance(value, kind)


def _check_field(name: str, spec: Any, kind: Any, base: TrainConfig, where: str) -> None:
    at = f"{where}: {name}"
    literal = get_origin(kind) is Literal
    type_name = f"one of {', '.join(map(repr, get_args(kind)))}" if literal else kind.__name__
    if not isinstance(spec, dict):
        raise ConfigError(f"{at} = {spec!r} is not a table: write {name} = {{ low = A, high = B }} or "
                          f"{name} = {{ choices = [A, B] }}")
    if "choices" in spec:
        choices = spec["choices"]
        if set(spec) != {"choices"}:
            raise ConfigError(f"{at}: choices cannot be mixed with {', '.join(sorted(set(spec) - {'choices'}))}; "
                              f"give either choices or a range")
        if not isinstance(choices, list) or not choices:
            raise ConfigError(f"{at}: choices must be a non-empty list, e.g. choices = [64, 128]")
        if kind is float:  # a TOML integer in a float field's choices means that float
            choices = spec["choices"] = [float(c) if _fits(c, float) else c for c in choices]
        bad = [c for c in choices if not _fits(c, kind)]
        if bad:
            raise ConfigError(f"{at}: choice {bad[0]!r} is not {type_name if literal else 'a ' + type_name}")
        if len(set(choices)) != len(choices):
            raise ConfigError(f"{at}: choices repeat a value; list each once")
        values = choices
    else:
        unknown = sorted(set(spec) - RANGE_KEYS)
        if unknown or not {"low", "high"} <= set(spec):
            raise ConfigError(f"{at}: a range needs low and high (optional: log, step); "
                              f"{'unknown key ' + repr(unknown[0]) if unknown else 'missing low or high'}")
        if kind not in (int, float):
            raise ConfigError(f"{at} takes {type_name if literal else type_name + ' values'}: give choices = [...], "
                              f"not a range")
        low, high, step, log = spec["low"], spec["high"], spec.get("step"), spec.get("log", False)
        for key, value in (("low", low), ("high", high)) + ((("step", step),) if step is not None else ()):
            if not _fits(value, kind):
                raise ConfigError(f"{at}: {key} = {value!r} is not a{'n integer' if kind is int else ' number'}")
        if not isinstance(log, bool):
            raise ConfigError(f"{at}: log = {log!r} must be true or false")
        if not low < high:
            raise ConfigError(f"{at}: low ({low}) must be below high ({high}); for one value, set the flag instead")
        if log and low <= 0:
            raise ConfigError(f"{at}: a log scale needs low > 0 (got {low})")
        if step is not None and (step <= 0 or log):
            raise ConfigError(f"{at}: step must be > 0 and cannot go with log = true")
        if kind is float:
            spec.update(low=float(low), high=float(high), **({"step": float(step)} if step is not None else {}))
        values = [low, high]
    for value in values:  # TrainConfig's own checks: a range ending where no run can go fails now
        try:
            base.replace(**{name: value})
        except ConfigError as e:
            raise ConfigError(f"{at}: {e}") from None


def pin(space: Space, flags: dict[str, Any]) -> tuple[Space, list[str]]:
    """Drop from `space` the fields a command-line flag fixed; returns (space, pinned fields).

    A flag is the user's explicit choice for this study, so it wins over the search.
    """
    pinned = sorted(name for name in space if flags.get(name) is not None)
    return {k: v for k, v in space.items() if k not in pinned}, pinned


def suggest(trial: Any, space: Space) -> dict[str, Any]:
    """One value per field from an Optuna trial (a retried trial gets its recorded values back)."""
    values: dict[str, Any] = {}
    for name, spec in space.items():
        if "choices" in spec:
            values[name] = trial.suggest_categorical(name, spec["choices"])
        elif isinstance(spec["low"], float):
            values[name] = trial.suggest_float(name, spec["low"], spec["high"], log=spec.get("log", False),
                                               step=spec.get("step"))
        else:
            values[name] = trial.suggest_int(name, spec["low"], spec["high"], log=spec.get("log", False),
                                             step=spec.get("step") or 1)
    return values


def describe(space: Space) -> str:
    """One line: `learning_rate 0.002..0.05 (log), batch_size {64, 128, 256}`."""
    parts = []
    for name, spec in space.items():
        if "choices" in spec:
            parts.append(f"{name} {{{', '.join(str(c) for c in spec['choices'])}}}")
        else:
            scale = " (log)" if spec.get("log") else (f" step {spec['step']:g}" if spec.get("step") else "")
            parts.append(f"{name} {spec['low']:g}..{spec['high']:g}{scale}")
    return ", ".join(parts)
