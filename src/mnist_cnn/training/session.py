"""`mnist-cnn train` as a function: start a run or resume one, train it, then what follows training.

`plan_training` makes the one choice between a new run (recipe -> config file -> flags)
and a resumed one (its recorded settings, only the resumable ones changed) before any
data or TensorFlow loads; `start_or_resume` creates the run folder, calls `train` and
then, after it returns, writes the TensorBoard test images and calibrates the "not a
digit" rule. The CLI, `resume` and the notebooks call these; nothing else decides.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ..core.errors import MnistCnnError
from ..core.system import quiet_tensorflow
from ..data.load import load_dataset
from ..data.registry import Dataset
from ..refusal.background import start_preparing
from ..refusal.calibrate import calibrate_after_training
from ..runs.config import TrainConfig
from ..runs.run import Run, dataset_style, default_runs_dir
from . import tensorboard_logs
from .recipes import resolve_config, resume_config

if TYPE_CHECKING:  # train imports TensorFlow: only once training starts
    from .train import TrainResult

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingPlan:
    """What a training will do: its settings, and the run it resumes (None: a new run)."""

    config: TrainConfig
    run: Run | None = None
    changed: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # resumed settings: {name: (old, new)}

    @property
    def resuming(self) -> bool:
        return self.run is not None


def plan_training(*, recipe: str | None = None, config_file: Path | None = None,
                  overrides: dict[str, Any] | None = None, resume: Path | None = None) -> TrainingPlan:
    """A new run's settings (defaults -> `recipe` -> `config_file` -> `overrides`), or, with `resume`,
    that run's recorded settings with only the resumable `overrides` applied. Reads no data."""
    if resume is None:
        return TrainingPlan(resolve_config(recipe, config_file, overrides))
    if recipe is not None or config_file is not None:
        raise MnistCnnError("--recipe and --config cannot be used with --resume: a resumed run keeps its folder "
                            "and settings")
    run = Run.open(resume)
    config, changed = resume_config(run.train_config(), overrides)
    run.check_resumable(config)
    return TrainingPlan(config, run, changed)


def start_or_resume(plan: TrainingPlan, dataset: Dataset, runs_dir: Path | None = None, *,
                    verbose: int | str = "auto", on_start: Callable[[Run], None] | None = None) -> TrainResult:
    """Train as `plan` says on `dataset`, then add the TensorBoard test images (if asked) and the
    "not a digit" rule (if the other dataset is on disk; never fails the run).

    A new run's folder is created under `runs_dir` (default: `MNIST_CNN_RUNS_DIR` or runs/)
    only after the model name is known to build; `on_start(run)` is told the folder.
    """
    config = plan.config
    if config.tensorboard:
        tensorboard_logs.check_available()  # before any work: the fix is an install
    # Before TensorFlow loads (a fork is safe only then): the calibration's inputs are prepared
    # on the core that TensorFlow's import leaves idle (refusal/background.py).
    preparing = start_preparing(config, dataset, dataset_style(dataset.name))
    try:
        quiet_tensorflow()  # TensorFlow's start-up notes are not the user's business
        from .models import build_model  # Keras: only once training is certain
        from .train import train

        build_model(config.model)  # an unknown name fails here, before a run folder exists
        run = plan.run or Run.create(runs_dir or default_runs_dir(), dataset.name, config.model)
        if on_start is not None:
            on_start(run)
        result = train(config, dataset, run.path, verbose=verbose, resume=plan.resuming, changed=plan.changed)
        if config.tensorboard:
            tensorboard_logs.write_test_images(run, step=result.metrics["training"]["epochs_run"])
        train_rows, val_rows = result.split  # the split train() used: the rule's threshold is set on validation
        calibrate_after_training(run, dataset, dataset.train_images[train_rows], dataset.train_images[val_rows],
                                 model=result.model, prepared=preparing)
    finally:
        if preparing is not None:
            preparing.close()
    return result


def resume(run_dir: Path, *, data_dir: Path | None = None, verbose: int | str = "auto",
           **changes: Any) -> TrainResult:
    """Finish an interrupted run, or train a finished one longer: `resume(run, epochs=20)`.

    `changes` may set only the resumable settings (epochs, patience, lang); the data is
    found as `load_dataset` finds it (`data_dir` first).
    """
    plan = plan_training(overrides=changes, resume=run_dir)
    return start_or_resume(plan, load_dataset(plan.config.dataset, data_dir), verbose=verbose)
