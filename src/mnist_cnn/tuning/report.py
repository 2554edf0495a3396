"""What a study found: the best trial's settings as a config file, a table of trials, two pictures.

`write_best_config` writes the best trial's full settings as TOML that `train --config`
reads back to the very same `TrainConfig`. `trial_rows` is `tune show`'s table;
`draw_study` draws the optimization history and the parameter importances with
matplotlib's Figure API (no pyplot) into the study's folder. Never prints; Optuna is
imported by the functions that need it. No I/O at import.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..core.atomic import write_text
from ..evaluation.plots import save_figure
from ..runs.config import TrainConfig
from .storage import TuneError, optuna_module

HISTORY_PNG = "history.png"  # in the study's folder: value of each trial and the best so far
IMPORTANCE_PNG = "importance.png"  # in the study's folder: how much each searched setting mattered
MIN_TRIALS_FOR_IMPORTANCE = 3  # complete trials before importances say anything
CLIP_FROM_TRIALS = 8  # from this many complete trials, the history's axis leaves the worst quarter out


def best_settings(study: Any) -> tuple[TrainConfig, Any]:
    """The best complete trial's full settings and the trial itself."""
    try:
        trial = study.best_trial
    except ValueError:
        raise TuneError(f"study {study.study_name!r} has no complete trial yet; run `mnist-cnn tune run "
                        f"--study {study.study_name}` first") from None
    try:
        return TrainConfig(**trial.user_attrs["config"]), trial
    except (KeyError, TypeError) as e:
        raise TuneError(f"trial {trial.number} of {study.study_name!r} records settings this version cannot read "
                        f"({e}); its run folder's config.json has them") from None


def config_toml(config: TrainConfig, comments: Sequence[str] = ()) -> str:
    """`config` as TOML that `train --config` reads back to the same settings (None: left out, the default)."""

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return json.dumps(v)  # a JSON string is a valid TOML basic string
        return repr(v)  # ints, and finite floats (TrainConfig refuses others): 0.01, 1e-05

    lines = [f"# {c}" for c in comments]
    lines += [f"{k} = {value(v)}" for k, v in config.to_dict().items() if v is not None]
    return "\n".join(lines) + "\n"


def write_best_config(study: Any, path: Path) -> tuple[Path, Any]:
    """Write the best trial's settings to `path` (TOML, atomically); returns (path, trial)."""
    config, trial = best_settings(study)
    comments = [f"best trial {trial.number} of study {study.study_name}: validation accuracy {trial.value:.4f}",
                f"run folder: {trial.user_attrs.get('run_dir')}", f"train with: mnist-cnn train --config {path}"]
    write_text(Path(path), config_toml(config, comments))
    return Path(path), trial


def trial_rows(study: Any) -> list[dict[str, Any]]:
    """One row per trial: number, state, value, epochs, seconds, searched values, retry of, run folder."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        seconds = (t.datetime_complete - t.datetime_start).total_seconds() \
            if t.datetime_complete and t.datetime_start else None
        rows.append({"number": t.number, "state": "over budget" if t.user_attrs.get("over_budget")
                     else t.state.name.lower(), "value": t.value, "epochs": len(t.intermediate_values),
                     "seconds": seconds, "params": dict(t.params), "retry_of": t.system_attrs.get("failed_trial"),
                     "run_dir": t.user_attrs.get("run_dir")})
    return rows


def draw_study(study: Any, folder: Path) -> tuple[list[Path], str | None]:
    """history.png (and importance.png once enough trials completed) in `folder`; returns (paths, why not)."""
    from optuna.trial import TrialState  # noqa: PLC0415

    folder.mkdir(parents=True, exist_ok=True)
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    pruned = study.get_trials(deepcopy=False, states=(TrialState.PRUNED,))
    paths = [plot_history(complete, pruned, folder / HISTORY_PNG)]
    if len(complete) < MIN_TRIALS_FOR_IMPORTANCE:
        return paths, f"importances need {MIN_TRIALS_FOR_IMPORTANCE} complete trials ({len(complete)} so far)"
    importances = optuna_module().importance.get_param_importances(study)
    if not importances:
        return paths, "importances need a searched setting that varied across complete trials"
    paths.append(plot_importances(importances, folder / IMPORTANCE_PNG))
    return paths, None


def plot_history(complete: Sequence[Any], pruned: Sequence[Any], path: Path) -> Path:
    """Validation accuracy of each trial by number, pruned ones at their last epoch, and the best so far."""
    fig = Figure(figsize=(8, 4.5))
    ax = fig.subplots()
    trials = sorted(complete, key=lambda t: t.number)
    ax.plot([t.number for t in trials], [t.value for t in trials], "o", label="complete")
    last = [(t.number, t.intermediate_values[max(t.intermediate_values)]) for t in pruned if t.intermediate_values]
    if last:
        ax.plot(*zip(*last), "x", color="grey", label="pruned (last epoch)")
    best, steps = float("-inf"), []
    for t in trials:
        best = max(best, t.value)
        steps.append((t.number, best))
    ylabel = "validation accuracy"
    if steps:
        ax.step(*zip(*steps), where="post", color="C3", label="best so far")
        # The interesting band is near the top: a few hopeless settings would squash it.
        values = sorted(t.value for t in trials)
        low = values[len(values) // 4] if len(values) >= CLIP_FROM_TRIALS else values[0]
        ax.set_ylim(low - 0.002, values[-1] + 0.002)
        hidden = sum(v < low for v in values)
        ylabel += f" ({hidden} lower trials below the axis)" if hidden else ""
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(title="Optimization history", xlabel="trial", ylabel=ylabel)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right")
    return save_figure(fig, path)


def plot_importances(importances: dict[str, float], path: Path) -> Path:
    """One bar per searched setting: its share of the variation in validation accuracy (Optuna's estimate)."""
    names = list(importances)[::-1]  # most important on top
    fig = Figure(figsize=(7, 0.5 * len(names) + 1.5))
    ax = fig.subplots()
    ax.barh(names, [importances[n] for n in names], color="C0")
    for y, name in enumerate(names):
        ax.text(importances[name], y, f" {importances[name]:.2f}", va="center")
    ax.set(title="Parameter importances", xlabel="importance (sums to 1)", xlim=(0, 1.1))
    return save_figure(fig, path)
