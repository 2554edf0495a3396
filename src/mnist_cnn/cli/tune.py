"""The `mnist-cnn tune` subcommands: run a study, write its best settings, show its trials.

Part of the CLI (it prints); `cli/main.py` wires it in. `tune run` takes every flag `train`
takes (generated from `TrainConfig`), plus the study's own. Handlers parse, call the
library (`tune`, `tuning.space`, `tuning.storage`, `tuning.report`) and print: one line per
finished trial. Optuna is imported only when a tune command runs.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any, Callable

from ..core.system import quiet_tensorflow
from ..training.recipes import RECIPES
from ..tuning.study import PRUNERS
from . import data as cli_data
from .train import add_config_flags, config_overrides

EPILOGS = {
    "tune": "example:\n  mnist-cnn tune run --study fast1 --recipe fast --trials 40\n"
            "  mnist-cnn tune best --study fast1 -o best.toml && mnist-cnn train --config best.toml\n"
            "  mnist-cnn tune show --study fast1",
    "run": "example:\n  mnist-cnn tune run --study fast1 --recipe fast --trials 40\n"
           "  mnist-cnn tune run --study big --recipe default --space space.toml --pruner hyperband \\\n"
           "      --storage postgresql://tuner@db.example/optuna --trials 200   # on every machine\n"
           "  mnist-cnn tune run --study smoke --recipe fast --train-limit 2000 --trials 4 --tensorboard",
    "best": "example:\n  mnist-cnn tune best --study fast1 -o best.toml\n"
            "  mnist-cnn tune best --study big --storage postgresql://tuner@db.example/optuna -o big.toml",
    "show": "example:\n  mnist-cnn tune show --study fast1\n"
            "  mnist-cnn tune show --study big --storage postgresql://tuner@db.example/optuna",
}
TUNE_HELP = "Search training settings with Optuna: every trial is a training run."


def add_tune_command(sub: argparse._SubParsersAction, parser_class: type) -> None:
    add_action = cli_data.command_group(sub, "tune", TUNE_HELP, EPILOGS, parser_class)

    def action(name: str, help_text: str, handler: Callable[[argparse.Namespace], int]) -> argparse.ArgumentParser:
        p = add_action(name, help_text, handler)
        p.add_argument("--study", required=True, metavar="NAME", help="the study's name (also its folder's)")
        p.add_argument("--storage", metavar="URL",
                       help="a database URL Optuna supports, e.g. postgresql://USER@HOST/DB, for workers on several "
                            "machines (default: the embedded store RUNS_DIR/tune/studies.journal)")
        p.add_argument("--runs-dir", type=Path, help="where run folders go (default $MNIST_CNN_RUNS_DIR or ./runs)")
        return p

    r = action("run", "Start or join a study and run trials until it has --trials finished ones.",
               run_tune)
    r.add_argument("--trials", type=cli_data.positive_int, default=20, metavar="N",
                   help="finished trials the study should hold, counting every worker's (default 20)")
    r.add_argument("--timeout", type=cli_data.positive_int, metavar="S", help="start no trial after S seconds in this worker")
    r.add_argument("--space", type=Path, metavar="FILE",
                   help="a TOML search space over the settings (default: the recipe's built-in space)")
    r.add_argument("--pruner", choices=PRUNERS, default="median",
                   help="stop hopeless trials after an epoch (default median)")
    r.add_argument("--heartbeat-s", type=cli_data.positive_int, metavar="S",
                   help="with --storage: each worker stamps its trial every S seconds; a trial unstamped for 3*S "
                        "is failed and retried (default 20)")
    r.add_argument("--recipe", help=f"start from a named preset: {', '.join(RECIPES)} (see `mnist-cnn models`)")
    r.add_argument("--config", type=Path, metavar="FILE", help="a .toml or .json file of settings, as for train")
    cli_data.add_source_flags(r)
    add_config_flags(r)

    b = action("best", "Write the best trial's full settings as a config file for `train --config`.", _cmd_best)
    b.add_argument("-o", "--out", type=Path, required=True, metavar="FILE.toml", help="where to write the settings")
    action("show", "Print the study's trials and draw its history and parameter importances.", _cmd_show)


def _quiet_optuna(args: argparse.Namespace) -> None:
    """Optuna logs every trial (and failures with tracebacks); the CLI prints its own line instead."""
    from ..tuning.storage import optuna_module

    optuna = optuna_module()
    optuna.logging.set_verbosity(optuna.logging.INFO if args.verbose else optuna.logging.ERROR)
    if not args.verbose:  # each trial builds a new model in this process: TF's retracing warnings are expected
        logging.getLogger("tensorflow").setLevel(logging.ERROR)


def _runs_dir(args: argparse.Namespace) -> Path:
    from ..runs.run import default_runs_dir

    return args.runs_dir or default_runs_dir()


def run_tune(args: argparse.Namespace) -> int:
    from ..data.load import load_dataset
    from ..tuning.prepare import prepare_study
    from ..tuning.space import describe

    _quiet_optuna(args)
    plan = prepare_study(args.study, _runs_dir(args), recipe=args.recipe, config_file=args.config,
                         overrides=config_overrides(args), space_file=args.space, storage_url=args.storage,
                         heartbeat_s=args.heartbeat_s)
    dataset = load_dataset(plan.base.dataset, args.data_dir, **cli_data.source_kwargs(args))
    quiet_tensorflow()
    from ..training.models import build_model
    from ..tuning.study import run_study

    for model in plan.architectures():
        build_model(model)  # an unknown name fails here, before any trial
    print(f"study {args.study}: {args.trials} trials in {plan.where}; run folders in {plan.folder}", flush=True)
    print(f"searching: {describe(plan.space)}" + (f" (fixed by flags: {', '.join(plan.pinned)})" if plan.pinned else ""),
          flush=True)
    study = run_study(args.study, plan.base, dataset, plan.space, trials=args.trials, runs_dir=_runs_dir(args),
                      storage=plan.storage, timeout_s=args.timeout, pruner=args.pruner, on_trial=_print_outcome)
    _print_best(study, args)
    return 0


def _print_outcome(outcome: Any) -> None:
    value = "" if outcome.value is None else f"  val_accuracy {outcome.value:.4f}"
    epochs = f" after epoch {outcome.epochs}" if outcome.state == "pruned" else ""
    best = "" if outcome.best_value is None else f"  best {outcome.best_value:.4f} (trial {outcome.best_number})"
    print(f"trial {outcome.number} {outcome.state}{epochs}{value}{best}  [{outcome.finished} finished]"
          + (f"  {outcome.run_dir}" if outcome.run_dir and outcome.state != "over budget" else ""), flush=True)


def _print_best(study: Any, args: argparse.Namespace) -> None:
    from optuna.trial import TrialState

    finished = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    print(f"study {args.study}: {finished} of {args.trials} trials finished")
    if complete:
        best = study.best_trial
        print(f"best: trial {best.number}, val_accuracy {best.value:.4f}, {best.user_attrs.get('run_dir')}")
        print(f"next: mnist-cnn tune best --study {args.study}{_where(args)} -o best.toml")


def _where(args: argparse.Namespace) -> str:
    """The storage and runs-dir flags to repeat in a follow-up command (a password shown as ***)."""
    from ..tuning.storage import describe_storage

    storage = describe_storage(args.storage, _runs_dir(args)) if args.storage else None
    return "".join(f" {name} {value}" for name, value in (("--storage", storage), ("--runs-dir", args.runs_dir))
                   if value is not None)


def _cmd_best(args: argparse.Namespace) -> int:
    from ..tuning.report import write_best_config
    from ..tuning.storage import load_study

    _quiet_optuna(args)
    study = load_study(args.study, args.storage, _runs_dir(args))
    path, trial = write_best_config(study, args.out)
    print(f"best trial {trial.number} of {args.study}: val_accuracy {trial.value:.4f} "
          f"({', '.join(f'{k}={v:.4g}' if isinstance(v, float) else f'{k}={v}' for k, v in trial.params.items())})")
    print(f"written to {path}; train with: mnist-cnn train --config {path}")
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    from ..tuning.report import draw_study, trial_rows
    from ..tuning.storage import load_study, study_dir

    _quiet_optuna(args)
    study = load_study(args.study, args.storage, _runs_dir(args))
    rows = trial_rows(study)
    names = sorted({name for row in rows for name in row["params"]})
    print_table(rows, names)
    paths, missing = draw_study(study, study_dir(_runs_dir(args), args.study))
    print(f"drawn: {', '.join(str(p) for p in paths)}" + (f" ({missing})" if missing else ""))
    return 0


def print_table(rows: list[dict[str, Any]], names: list[str], out: Any = None) -> None:
    """Trials as aligned columns: number, state, value, epochs, seconds, then one per searched setting."""
    out = out or sys.stdout

    def cell(value: Any) -> str:
        if value is None:
            return "-"
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    header = ["trial", "state", "val_accuracy", "epochs", "seconds", *names, "retry_of", "run folder"]
    table = [[str(r["number"]), r["state"], "-" if r["value"] is None else f"{r['value']:.4f}", str(r["epochs"]),
              "-" if r["seconds"] is None else f"{r['seconds']:.1f}", *(cell(r["params"].get(n)) for n in names),
              cell(r["retry_of"]), cell(r["run_dir"])] for r in rows]
    widths = [max(len(row[i]) for row in [header, *table]) for i in range(len(header))]
    for row in [header, *table]:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip(), file=out)
