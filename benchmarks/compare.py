"""Side-by-side benchmark: our recipes against what users would otherwise run.

Contenders, each trained on the same 54k-image split of MNIST (seeded, stratified):
  keras-example    the keras-io convnet as published (Adam 1e-3, batch 128, 15 epochs)
  pytorch-example  pytorch/examples mnist re-implemented (Adadelta 1.0, StepLR 0.7, batch 64, 14 epochs)
  fast, default, strong, wide  our recipes (`mnist-cnn train --recipe NAME`; results files
                   before 2026-12-07 name `default` "cnn", its model then)

After every epoch the clock stops and the test set is scored, for the time-to-accuracy
curve only (never for selection; our final models are chosen on validation loss). Each
(contender, seed) runs in its own process so peak RSS is its own. Reports per contender:
time to 99.0% test accuracy (median over seeds), final accuracy (mean ± std), training
images/s (median epoch), inference images/s (batch 1000), peak RSS. Writes JSON,
Markdown and a PNG of test accuracy against training time to benchmarks/results/.

    python benchmarks/compare.py --quick                 # smoke: 5k + 2k test images, 1 epoch, 1 seed
    python benchmarks/compare.py                         # full: about 1.5 hours on 2 cores (strong dominates)
    python benchmarks/compare.py --contenders fast keras-example --seeds 5
    python benchmarks/compare.py --contenders wide --keep-runs runs/compare   # keep each run's folder
    python benchmarks/compare.py --contenders strong --seeds 1 --first-seed 2 \
        --include results/compare-A.json       # a run in parts: add rows of an earlier part

Run it on an otherwise idle machine: on 2 cores any other load skews every number.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import RESULTS

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

TARGET = 0.99
QUICK_TRAIN_LIMIT = 5000
QUICK_TEST_LIMIT = 2000  # a smoke test scores the first 2,000 test images, in every contender
KERAS_EXAMPLE = {"model": "keras-example", "epochs": 15, "batch_size": 128, "schedule": "constant",
                 "learning_rate": 1e-3, "patience": 15}
CONTENDERS = {  # name -> (kind, recipe or config, default number of seeds in full mode)
    "keras-example": ("keras", KERAS_EXAMPLE, 1),
    "pytorch-example": ("torch", None, 1),
    "fast": ("keras", "fast", 5),
    "default": ("keras", "default", 1),
    "strong": ("keras", "strong", 3),
    "wide": ("keras", "wide", 3),
}


def inference_images_per_s(predict, images, repeats: int = 5, quick: bool = False) -> float:
    if quick:  # a smoke test needs the code path, not a stable number
        images, repeats = images[:2000], 2
    predict(images[:1000])  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        predict(images)
        times.append(time.perf_counter() - start)
    return len(images) / statistics.median(times)


def run_keras(name: str, seed: int, quick: bool, dataset, keep_runs: Path | None = None) -> dict:
    import keras
    import numpy as np

    from mnist_cnn.data.prepare import normalize
    from mnist_cnn.inference.runtimes import predict_probabilities
    from mnist_cnn.runs.run import Run
    from mnist_cnn.training.recipes import resolve_config
    from mnist_cnn.training.train import train

    _, spec, _ = CONTENDERS[name]
    # A contender is a recipe name or a dict of settings; either way the package's one resolver applies.
    recipe, settings = (spec, {}) if isinstance(spec, str) else (None, dict(spec))
    if quick:
        settings.update(epochs=1, train_limit=QUICK_TRAIN_LIMIT)
    config = resolve_config(recipe, overrides={**settings, "dataset": "mnist", "seed": seed})
    x_test, y_test = normalize(dataset.test_images), dataset.test_labels

    class TestCurve(keras.callbacks.Callback):
        """Accumulates training time per epoch; scores the test set with the clock stopped."""

        def __init__(self) -> None:
            super().__init__()
            self.train_s, self.curve, self.epoch_s = 0.0, [], []

        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            elapsed = time.perf_counter() - self._start
            self.train_s += elapsed
            self.epoch_s.append(elapsed)
            accuracy = float((predict_probabilities(self.model, x_test).argmax(1) == y_test).mean())
            self.curve.append([round(self.train_s, 2), accuracy])

    curve = TestCurve()
    with tempfile.TemporaryDirectory() as scratch:
        # With keep_runs the run folder stays, named as `mnist-cnn train` would name it.
        run_dir = Run.create(keep_runs, "mnist", config.model).path if keep_runs else Path(scratch)
        result = train(config, dataset, run_dir, verbose=0, extra_callbacks=[curve])
    n_train = result.metrics["training"]["train_images_per_s"]  # per median epoch, from the run
    return {"curve": curve.curve, "final_accuracy": result.metrics["test"]["accuracy"],
            "epochs": len(curve.curve), "train_images_per_s": n_train,
            "inference_images_per_s": inference_images_per_s(
                lambda x: predict_probabilities(result.model, x), np.asarray(x_test), quick=quick),
            "config": config.to_dict()}


def run_torch(seed: int, quick: bool, dataset) -> dict:
    import numpy as np
    import torch
    import torch_reference as ref

    from mnist_cnn.data.prepare import normalize, stratified_split

    torch.set_num_threads(os.cpu_count() or 1)
    labels = dataset.train_labels[:QUICK_TRAIN_LIMIT] if quick else dataset.train_labels
    train_idx, _ = stratified_split(labels, 0.1, seed)  # the same split our models train on
    x_train, y_train = normalize(dataset.train_images)[train_idx], labels[train_idx]
    x_test, y_test = normalize(dataset.test_images), dataset.test_labels
    clock = {"train_s": 0.0, "start": time.perf_counter(), "epoch_s": []}
    curve = []

    def on_epoch_end(epoch, net):
        elapsed = time.perf_counter() - clock["start"]
        clock["train_s"] += elapsed
        clock["epoch_s"].append(elapsed)
        accuracy = float((ref.predict_probabilities(net, x_test).argmax(1) == y_test).mean())
        curve.append([round(clock["train_s"], 2), accuracy])
        clock["start"] = time.perf_counter()

    net = ref.train(x_train, y_train, seed, epochs=1 if quick else ref.EPOCHS, on_epoch_end=on_epoch_end)
    return {"curve": curve, "final_accuracy": curve[-1][1], "epochs": len(curve),
            "train_images_per_s": round(len(x_train) / statistics.median(clock["epoch_s"]), 1),
            "inference_images_per_s": inference_images_per_s(lambda x: ref.predict_probabilities(net, x),
                                                             np.asarray(x_test), quick=quick),
            "config": {"optimizer": "Adadelta", "learning_rate": ref.LEARNING_RATE, "gamma": ref.GAMMA,
                       "batch_size": ref.BATCH_SIZE, "epochs": ref.EPOCHS, "seed": seed}}


def child(name: str, seed: int, quick: bool, data_dir: Path | None, keep_runs: Path | None = None) -> dict:
    from mnist_cnn.data.load import load_dataset

    dataset = load_dataset("mnist", data_dir)
    if quick:
        dataset = dataclasses.replace(dataset, test_images=dataset.test_images[:QUICK_TEST_LIMIT],
                                      test_labels=dataset.test_labels[:QUICK_TEST_LIMIT])
    kind = CONTENDERS[name][0]
    row = run_torch(seed, quick, dataset) if kind == "torch" else run_keras(name, seed, quick, dataset, keep_runs)
    reached = [t for t, accuracy in row["curve"] if accuracy >= TARGET]
    row.update(contender=name, seed=seed, time_to_target_s=reached[0] if reached else None,
               peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1))
    return row


def summarise(rows: list[dict]) -> list[dict]:
    table = []
    for name in dict.fromkeys(r["contender"] for r in rows):
        runs = [r for r in rows if r["contender"] == name]
        accuracies = [r["final_accuracy"] for r in runs]
        times = [r["time_to_target_s"] for r in runs]
        table.append({
            "contender": name, "seeds": len(runs),
            "accuracy_mean": statistics.mean(accuracies),
            "accuracy_std": statistics.stdev(accuracies) if len(runs) > 1 else 0.0,
            "time_to_99_median_s": statistics.median(times) if all(t is not None for t in times) else None,
            "reached_99": f"{sum(t is not None for t in times)}/{len(runs)}",
            "train_images_per_s": statistics.median(r["train_images_per_s"] for r in runs),
            "inference_images_per_s": statistics.median(r["inference_images_per_s"] for r in runs),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
            "epochs": runs[0]["epochs"],
        })
    baseline = next((t for t in table if t["contender"] == "keras-example"), None)
    for t in table:
        t["speedup_vs_keras_example"] = (
            round(baseline["time_to_99_median_s"] / t["time_to_99_median_s"], 2)
            if baseline and baseline["time_to_99_median_s"] and t["time_to_99_median_s"] else None)
    return table


def markdown(table: list[dict]) -> str:
    lines = ["| contender | seeds | epochs | test accuracy (mean ± std) | time to 99.0% (median) | "
             "x keras-example | train img/s | inference img/s | peak RSS MB |", "|" + "---|" * 9]
    for t in table:
        time_to = "not reached" if t["time_to_99_median_s"] is None else f"{t['time_to_99_median_s']:.1f} s"
        lines.append(f"| {t['contender']} | {t['seeds']} | {t['epochs']} | {100 * t['accuracy_mean']:.2f}% ± "
                     f"{100 * t['accuracy_std']:.2f} | {time_to} ({t['reached_99']}) | "
                     f"{t['speedup_vs_keras_example'] or '-'} | {t['train_images_per_s']:,.0f} | "
                     f"{t['inference_images_per_s']:,.0f} | {t['peak_rss_mb']:,.0f} |")
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 5))
    ax = fig.subplots()
    colours = {}
    for r in rows:
        colour = colours.setdefault(r["contender"], f"C{len(colours)}")
        t, accuracy = zip(*([[0.0, 0.1]] + r["curve"]))
        ax.plot(t, accuracy, "o-", color=colour, alpha=0.7, ms=3,
                label=r["contender"] if r["seed"] == min(x["seed"] for x in rows if x["contender"] == r["contender"])
                else None)
    ax.axhline(TARGET, color="grey", ls="--", lw=1)
    ax.set(xlabel="training time (s, test scoring excluded)", ylabel="test accuracy", ylim=(0.97, 1.0),
           title="MNIST test accuracy against training time")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.savefig(path, dpi=100, bbox_inches="tight")


def included_rows(paths: list[Path], quick: bool) -> list[dict]:
    """The runs of earlier parts of a benchmark run in parts; a quick part never joins a full one."""
    rows = []
    for path in paths:
        try:
            earlier = json.loads(path.read_text())
            runs = earlier["runs"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise SystemExit(f"cannot include {path} ({e}); pass a compare-*.json this script wrote")
        if earlier.get("quick") != quick:
            raise SystemExit(f"cannot include {path}: it is a {'quick' if earlier.get('quick') else 'full'} run "
                             f"and this one is {'quick' if quick else 'full'}")
        rows += runs
    return rows


def torch_missing(contenders: list[str]) -> str | None:
    """Why the run cannot start when it includes a PyTorch contender and torch is not installed."""
    torch_runs = [name for name in contenders if CONTENDERS[name][0] == "torch"]
    if not torch_runs:
        return None
    try:
        import torch  # noqa: F401  (checked here, not an hour later in a child process)
    except ImportError:
        others = " ".join(name for name in contenders if name not in torch_runs) or "fast"
        return (f"{', '.join(torch_runs)} needs PyTorch, which is not installed; install it with "
                f"`pip install -e '.[bench]'` (or `make install-bench`), or leave it out: --contenders {others}")
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contenders", nargs="+", default=list(CONTENDERS), choices=list(CONTENDERS))
    parser.add_argument("--seeds", type=int, help="seeds per contender (default: fast 5, strong 3, others 1)")
    parser.add_argument("--first-seed", type=int, default=0, help="seeds run from this one up (default 0)")
    parser.add_argument("--include", type=Path, nargs="+", default=[],
                        help="results JSON of earlier parts of the same benchmark, on the same machine: "
                             "their runs join this one's table (except those of contenders run now)")
    parser.add_argument("--quick", action="store_true", help="5k training and 2k test images, 1 epoch, 1 seed: a smoke test")
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--keep-runs", type=Path, metavar="DIR",
                        help="keep each Keras contender's run folder (model, history, report) under DIR")
    parser.add_argument("--child", choices=list(CONTENDERS), help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.seed, args.quick, args.data_dir, args.keep_runs)))
        return 0

    # A contender run now replaces its runs from the included parts (a re-measured part).
    rows = [r for r in included_rows(args.include, args.quick) if r["contender"] not in args.contenders]
    if problem := torch_missing(args.contenders):
        raise SystemExit(problem)
    from mnist_cnn.runs.run import environment, utc_stamp

    stem = f"compare-{utc_stamp()}{'-quick' if args.quick else ''}"
    args.out.mkdir(parents=True, exist_ok=True)
    # Each finished run is saved at once: a run stopped midway keeps what it measured and
    # goes on with `--include` of this file alone (it holds the included runs too).
    partial = args.out / f"{stem}.partial.json"
    for name in args.contenders:
        seeds = 1 if args.quick else (args.seeds or CONTENDERS[name][2])
        for seed in range(args.first_seed, args.first_seed + seeds):
            cmd = [sys.executable, __file__, "--child", name, "--seed", str(seed)]
            cmd += ["--quick"] if args.quick else []
            cmd += ["--data-dir", str(args.data_dir)] if args.data_dir else []
            cmd += ["--keep-runs", str(args.keep_runs.resolve())] if args.keep_runs else []
            done = subprocess.run(cmd, capture_output=True, text=True)
            if done.returncode != 0:
                print(done.stderr[-3000:], file=sys.stderr)
                return 1
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            partial.write_text(json.dumps({"quick": args.quick, "runs": rows}, indent=2) + "\n")
            print(f"{name} seed {seed}: accuracy {rows[-1]['final_accuracy']:.4f}, "
                  f"time to 99% {rows[-1]['time_to_target_s']}", file=sys.stderr, flush=True)

    # One order, however the parts came; an included file's retired name ("cnn") goes last.
    order = list(CONTENDERS)
    rows.sort(key=lambda r: order.index(r["contender"]) if r["contender"] in order else len(order))
    table = summarise(rows)
    (args.out / f"{stem}.json").write_text(json.dumps(
        {"quick": args.quick, "environment": environment(), "included": [p.name for p in args.include],
         "summary": table, "runs": rows}, indent=2) + "\n")
    (args.out / f"{stem}.md").write_text(markdown(table))
    plot(rows, args.out / f"{stem}.png")
    partial.unlink(missing_ok=True)
    print(markdown(table))
    print(f"written to {args.out / stem}.{{json,md,png}}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
