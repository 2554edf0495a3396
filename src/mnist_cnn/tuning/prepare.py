"""`prepare_study`: everything a tuning worker settles before any data or TensorFlow loads.

The base settings (recipe -> config file -> flags, as for `train`), the search space (a
TOML file or the recipe's built-in one) checked against them, the settings the flags pin
(taken out of the search), the study's folder and its storage (opened now, so a bad URL
fails in a second). The CLI calls it; so can a script that runs a study itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.errors import ConfigError
from ..runs.config import TrainConfig
from ..training.recipes import resolve_config
from .space import Space, check_space, default_space, load_space, pin
from .storage import DEFAULT_HEARTBEAT_S, describe_storage, make_storage, study_dir


@dataclass(frozen=True)
class StudyPlan:
    name: str
    folder: Path  # where the trials' run folders go
    base: TrainConfig  # the settings every trial starts from
    space: Space  # what is searched
    pinned: list[str]  # searched settings the flags fixed instead
    storage: Any  # an Optuna storage, opened
    where: str  # the storage, in words

    def architectures(self) -> set[str]:
        """Every model a trial may build."""
        return {self.base.model, *self.space.get("model", {}).get("choices", [])}


def prepare_study(name: str, runs_dir: Path, *, recipe: str | None = None, config_file: Path | None = None,
                  overrides: dict[str, Any] | None = None, space_file: Path | None = None,
                  storage_url: str | None = None, heartbeat_s: int | None = None) -> StudyPlan:
    """Check and settle a study's inputs; one-line ConfigError (naming the flag) for anything wrong."""
    if heartbeat_s is not None and storage_url is None:
        raise ConfigError("--heartbeat-s applies to --storage URL only: the embedded store finds dead workers on "
                          "this machine by their process id")
    folder = study_dir(runs_dir, name)  # checks the name
    flags = {k: v for k, v in (overrides or {}).items() if v is not None}
    base = resolve_config(recipe, config_file, flags)
    space = load_space(space_file) if space_file else default_space(base.recipe)
    space, pinned = pin(check_space(space, base, str(space_file or f"{base.recipe or 'default'} space")), flags)
    if not space:
        fixed = ", ".join("--" + n.replace("_", "-") for n in pinned)
        raise ConfigError(f"flags fixed every searched setting ({fixed}); drop one or give a --space with others")
    storage = make_storage(storage_url, runs_dir, heartbeat_s or DEFAULT_HEARTBEAT_S)  # fail fast
    return StudyPlan(name, folder, base, space, pinned, storage, describe_storage(storage_url, runs_dir))
