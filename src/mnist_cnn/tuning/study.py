"""Hyperparameter studies with Optuna: every trial is an ordinary training run.

A trial's settings are the study's base settings (`recipes.resolve_config`: defaults ->
recipe -> config file -> flags) with the search space's values on top (`tuning.space`); it
trains with `train.train` into its own run folder, `RUNS/tune/<study>/trial-NNNN/`, and its
value is the validation accuracy of the kept epoch (`best_val_accuracy`). The test set
plays no part in any choice made here. A study's budget is a total over all its workers:
N trials finished (complete or pruned), exactly. Storage and dead workers:
`tuning.storage`; results: `tuning.report`. Optuna, Keras and TensorFlow are imported inside
functions; nothing here prints or touches disk at import.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal

from ..core.errors import ConfigError
from ..data.registry import Dataset
from ..runs.config import TrainConfig
from .space import OUTPUT_ONLY, Space, suggest
from .storage import (
    TuneError,
    check_study_name,
    fail_dead_trials,
    make_storage,
    optuna_module,
    retry_callback,
    study_dir,
)

log = logging.getLogger(__name__)

TRIAL_DIR = "trial-{number:04d}"  # a trial's run folder inside its study's folder
STUDY_RECORD = "mnist_cnn"  # the study's user attribute holding its base settings and space
POLL_S = 2.0  # how often a worker with nothing to run looks for finished, dead or waiting trials
Pruner = Literal["median", "hyperband", "none"]
PRUNERS: tuple[str, ...] = ("median", "hyperband", "none")


class _OverBudget(Exception):
    """A trial created after the study's N trials were all taken (two workers asked at once)."""


def make_pruner(name: Pruner, epochs: int) -> Any:
    """Median (skipping the first 5 trials and the first epoch, whose value mostly says how
    far warm-up got), Hyperband over epochs, or none."""
    optuna = optuna_module()
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=1)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(epochs, 1), reduction_factor=3)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise ConfigError(f"unknown pruner {name!r}: choose one of {', '.join(PRUNERS)}")


# -- running a study ------------------------------------------------------------------------


@dataclass(frozen=True)
class TrialOutcome:
    """What one finished trial of this worker came to, and where the study stands."""

    number: int
    state: str  # "complete", "pruned", "failed" or "over budget" (not run: the study was full)
    value: float | None  # validation accuracy (pruned: the last epoch's)
    epochs: int  # epochs reported before it ended
    best_value: float | None  # the study's best so far (complete trials)
    best_number: int | None
    finished: int  # complete + pruned trials of the whole study
    run_dir: str | None


def run_study(name: str, base: TrainConfig, dataset: Dataset, space: Space, *, trials: int, runs_dir: Path,
              storage: Any = None, timeout_s: float | None = None, pruner: Pruner = "median",
              on_trial: Callable[[TrialOutcome], None] | None = None) -> Any:
    """Work on study `name` until it holds `trials` finished trials (all workers together),
    or `timeout_s` passes; returns the study. Creates the study or joins it.

    `storage` is `tuning.storage.make_storage(...)`'s (None: the embedded journal of `runs_dir`);
    trial run folders go to `RUNS/tune/<name>/`.

    Several processes may run this on one study at once: each takes one trial at a time
    while the budget has room, otherwise waits for the others' running trials to end, so
    the study ends with exactly `trials` finished ones. A trial whose worker died (no
    heartbeat; on the embedded store, its process gone) is failed and run again.
    """
    optuna = optuna_module()
    storage = storage if storage is not None else make_storage(None, runs_dir)
    study = optuna.create_study(study_name=check_study_name(name), storage=storage, direction="maximize",
                                load_if_exists=True, sampler=optuna.samplers.TPESampler(constant_liar=True),
                                pruner=make_pruner(pruner, base.epochs))
    _check_same_settings(study, base, space)
    folder = study_dir(runs_dir, name)
    retry = retry_callback(optuna)

    def objective(trial: Any) -> float:
        return _objective(trial, study, base, space, dataset, folder, trials)

    callbacks = [lambda s, t: on_trial(_outcome(s, t))] if on_trial else []
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while deadline is None or time.monotonic() < deadline:
        fail_dead_trials(study, storage, retry)
        step = _next_step(study, trials)
        if step == "done":
            break
        if step == "wait":  # the budget is taken by running trials: one may still fail and free a place
            time.sleep(POLL_S)
            continue
        # One trial per call: the budget is checked again before each one.
        study.optimize(objective, n_trials=1, catch=(_OverBudget,), callbacks=callbacks, gc_after_trial=True)
    return study


def _check_same_settings(study: Any, base: TrainConfig, space: Space) -> None:
    """Every worker of a study must search the same space from the same base settings:
    otherwise its trials are not comparable. Settings of what a run writes may differ."""
    mine = {"base": {k: v for k, v in base.to_dict().items() if k not in OUTPUT_ONLY}, "space": space}
    recorded = study.user_attrs.get(STUDY_RECORD)
    if recorded is None:
        study.set_user_attr(STUDY_RECORD, mine)
    elif recorded != mine:
        differ = sorted({k for part in ("base", "space") for k in {*recorded[part], *mine[part]}
                         if recorded[part].get(k) != mine[part].get(k)})
        raise TuneError(f"study {study.study_name!r} was started with other settings ({', '.join(differ)} differ); "
                        f"give the same --recipe, --config, --space and flags, or another --study")


def _next_step(study: Any, trials: int) -> Literal["run", "wait", "done"]:
    from optuna.trial import TrialState  # noqa: PLC0415

    states = [t.state for t in study.get_trials(deepcopy=False)]
    finished = sum(s in (TrialState.COMPLETE, TrialState.PRUNED) for s in states)
    if finished >= trials:
        return "done"
    if TrialState.WAITING in states or finished + states.count(TrialState.RUNNING) < trials:
        return "run"
    return "wait"


def _over_budget(study: Any, number: int, trials: int) -> bool:
    """Whether `trials` trials numbered before this one already hold or wait for a place.

    Trial numbers are handed out atomically by the storage, so all workers agree on this
    order: of two trials started at the same moment for the last place, only the first
    counts. (Optuna's MaxTrialsCallback only looks after a trial ends, so N workers can
    overshoot by N - 1 trials.)
    """
    from optuna.trial import TrialState  # noqa: PLC0415

    taking = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.WAITING)
    return sum(t.number < number for t in study.get_trials(deepcopy=False, states=taking)) >= trials


def _objective(trial: Any, study: Any, base: TrainConfig, space: Space, dataset: Dataset, folder: Path,
               trials: int) -> float:
    if _over_budget(study, trial.number, trials):
        trial.set_user_attr("over_budget", True)
        raise _OverBudget(f"the study's {trials} trials were taken while trial {trial.number} started")
    trial.set_user_attr("worker", {"host": socket.gethostname(), "pid": os.getpid(), "trial": trial.number})
    try:
        config = base.replace(**suggest(trial, space))
    except ConfigError as e:
        raise ConfigError(f"trial {trial.number}'s settings from the search space: {e}; narrow the space") from None
    run_dir = folder / TRIAL_DIR.format(number=trial.number)
    trial.set_user_attr("run_dir", str(run_dir))
    trial.set_user_attr("config", config.to_dict())
    import keras  # noqa: PLC0415

    from ..training.train import train  # noqa: PLC0415

    keras.backend.clear_session()  # one process trains many models: drop the previous trials' state
    result = train(config, dataset, run_dir, verbose=0, extra_callbacks=[pruning_callback(trial)])
    value = result.metrics["training"]["best_val_accuracy"]
    log.info("trial %d: val_accuracy %s in %s", trial.number, value, run_dir)
    return float(value)


def pruning_callback(trial: Any) -> Any:
    """A Keras callback reporting each epoch's validation accuracy to `trial`, and pruning it.

    The study maximises validation accuracy and Optuna's pruners compare intermediate
    values in the study's direction, so what is reported must be that same quantity
    (higher is better): reporting the validation loss would prune the best trials. The
    decision is made at the end of an epoch but raised at the start of the next one, after
    the run's own callbacks have committed the epoch: a pruned trial leaves a consistent,
    resumable run folder, and the last epoch, already paid for, is never pruned.
    """
    import keras  # noqa: PLC0415
    import optuna  # noqa: PLC0415

    class ReportToTrial(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.verdict: str | None = None

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            value = (logs or {}).get("val_accuracy")
            if value is not None:
                trial.report(float(value), step=epoch + 1)
                if trial.should_prune():
                    self.verdict = f"pruned after epoch {epoch + 1}: validation accuracy {float(value):.4f}"

        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            if self.verdict:
                raise optuna.TrialPruned(self.verdict)

    return ReportToTrial()


def _outcome(study: Any, trial: Any) -> TrialOutcome:
    from optuna.trial import TrialState  # noqa: PLC0415

    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    complete = [t for t in done if t.state == TrialState.COMPLETE]
    best = max(complete, key=lambda t: t.value, default=None)
    state = {TrialState.COMPLETE: "complete", TrialState.PRUNED: "pruned"}.get(trial.state, "failed")
    if trial.user_attrs.get("over_budget"):
        state = "over budget"
    steps = trial.intermediate_values
    value = trial.value if trial.value is not None else (steps[max(steps)] if steps else None)
    return TrialOutcome(trial.number, state, value, len(steps), best.value if best else None,
                        best.number if best else None, len(done), trial.user_attrs.get("run_dir"))
