"""Tune the `fast` recipe with Optuna, then compare the best settings with the hand-tuned ones.

Step 1 runs (or continues) an Optuna study of the `fast` recipe on MNIST with the embedded
store, exactly as `mnist-cnn tune run --study fast-mnist --recipe fast --trials N` does:
the recipe's built-in space, every trial one epoch, seed 0, scored on the validation split.
Step 2 trains the hand-tuned `fast` recipe and the study's best settings with seeds 1..5,
the two taking turns seed by seed, and reports validation and test accuracy per run and
as mean ± std. The seeds differ from the study's (0), so the validation numbers are not the
very split the study selected on; the test set is read once per run, after training, and
chose nothing. Writes benchmarks/results/tune_fast-<UTC>.{json,md}.

    python benchmarks/tune_fast.py --trials 40                 # study, then the comparison
    python benchmarks/tune_fast.py --trials 40 --skip-study    # comparison only, from the stored study
    python benchmarks/tune_fast.py --quick                     # smoke: 2,000 images, 3 trials, 1 seed

Seconds per run are recorded but this is an accuracy comparison: time it on an idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

from common import RESULTS, command_line, portable_path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

QUICK_TRAIN_LIMIT = 2000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--study", default="fast-mnist", help="the study's name (default fast-mnist)")
    parser.add_argument("--trials", type=int, default=40, help="finished trials the study should hold (default 40)")
    parser.add_argument("--seeds", type=int, default=5, help="seeds per contender in the comparison (default 5)")
    parser.add_argument("--first-seed", type=int, default=1, help="first comparison seed (default 1; the study uses 0)")
    parser.add_argument("--skip-study", action="store_true", help="compare from the stored study, run no trial")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2,000 images, 3 trials, 1 seed")
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--runs-dir", type=Path, default=RESULTS / "tmp" / "tune_fast",
                        help="the study's journal and every run folder (default benchmarks/results/tmp/tune_fast)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where the JSON and Markdown go")
    args = parser.parse_args()
    if args.quick:
        args.trials, args.seeds, args.study = min(args.trials, 3), 1, f"{args.study}-quick"

    from mnist_cnn.data.load import load_dataset
    from mnist_cnn.runs.run import environment, utc_stamp
    from mnist_cnn.training.recipes import resolve_config
    from mnist_cnn.training.train import train
    from mnist_cnn.tuning.report import best_settings
    from mnist_cnn.tuning.space import check_space, default_space
    from mnist_cnn.tuning.storage import load_study, optuna_module
    from mnist_cnn.tuning.study import run_study

    optuna = optuna_module()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    dataset = load_dataset("mnist", args.data_dir)
    hand = resolve_config("fast", overrides={"train_limit": QUICK_TRAIN_LIMIT if args.quick else None})
    if args.skip_study:
        study = load_study(args.study, None, args.runs_dir)
    else:
        def progress(outcome) -> None:
            print(f"trial {outcome.number} {outcome.state}  val_accuracy {outcome.value:.4f}  best "
                  f"{outcome.best_value:.4f} (trial {outcome.best_number})", flush=True)

        study = run_study(args.study, hand, dataset, check_space(default_space("fast"), hand), trials=args.trials,
                          runs_dir=args.runs_dir, pruner="none", on_trial=progress)
    tuned, best = best_settings(study)
    print(f"best: trial {best.number}, val_accuracy {best.value:.4f}, {best.params}", flush=True)

    runs = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        for name, config in (("hand-tuned fast", hand), ("tuned", tuned)):  # taking turns: drift hits both
            run_dir = args.runs_dir / "compare" / f"{name.split()[0]}-seed{seed}"
            result = train(config.replace(seed=seed), dataset, run_dir, verbose=0)
            training = result.metrics["training"]
            runs.append({"contender": name, "seed": seed, "val_accuracy": training["best_val_accuracy"],
                         "test_accuracy": result.metrics["test"]["accuracy"],
                         "train_seconds": training["train_seconds_total"], "run_dir": portable_path(run_dir)})
            print(f"{name:<16} seed {seed}: val {runs[-1]['val_accuracy']:.4f}  test "
                  f"{runs[-1]['test_accuracy']:.4f}", flush=True)

    summary = []
    for name in ("hand-tuned fast", "tuned"):
        mine = [r for r in runs if r["contender"] == name]
        row = {"contender": name, "seeds": len(mine)}
        for key in ("val_accuracy", "test_accuracy"):
            values = [r[key] for r in mine]
            row[f"{key}_mean"] = statistics.fmean(values)
            row[f"{key}_std"] = statistics.stdev(values) if len(values) > 1 else 0.0
        summary.append(row)

    from optuna.trial import TrialState

    states = [t.state for t in study.trials]
    report = {
        "quick": args.quick, "command": command_line(), "environment": environment(),
        "study": {"name": args.study, "complete": states.count(TrialState.COMPLETE),
                  "pruned": states.count(TrialState.PRUNED), "failed": states.count(TrialState.FAIL),
                  "best_trial": best.number, "best_val_accuracy": best.value, "best_params": best.params},
        "settings": {"hand-tuned fast": hand.to_dict(), "tuned": tuned.to_dict()},
        "summary": summary, "runs": runs,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"tune_fast-{utc_stamp()}{'-quick' if args.quick else ''}"
    stem.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))
    print(f"written to {stem}.json and .md")
    return 0


def markdown(report: dict) -> str:
    study = report["study"]
    lines = [(f"# `fast`: hand-tuned vs Optuna's best ({study['name']}: {study['complete']} complete trials, "
              f"best trial {study['best_trial']}, val {study['best_val_accuracy']:.4f} at seed 0)"), "",
             "| contender | seeds | validation accuracy (mean ± std) | test accuracy (mean ± std) |",
             "|---|---|---|---|"]
    for row in report["summary"]:
        lines.append(f"| {row['contender']} | {row['seeds']} | {100 * row['val_accuracy_mean']:.2f}% ± "
                     f"{100 * row['val_accuracy_std']:.2f} | {100 * row['test_accuracy_mean']:.2f}% ± "
                     f"{100 * row['test_accuracy_std']:.2f} |")
    changed = {k: (v, report["settings"]["tuned"][k]) for k, v in report["settings"]["hand-tuned fast"].items()
               if report["settings"]["tuned"][k] != v}
    lines += ["", "Settings the study changed (hand-tuned -> tuned): "
              + ", ".join(f"`{k}` {a!r} -> {b!r}" for k, (a, b) in changed.items()), "",
              "| contender | seed | validation | test |", "|---|---|---|---|"]
    lines += [f"| {r['contender']} | {r['seed']} | {100 * r['val_accuracy']:.2f}% | {100 * r['test_accuracy']:.2f}% |"
              for r in report["runs"]]
    return "\n".join(lines) + f"\n\nCommand: `{report['command']}`\n"


if __name__ == "__main__":
    sys.exit(main())
