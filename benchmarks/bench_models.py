"""Train each registered model on full MNIST and print accuracy and speed.

Measures, per model: test accuracy, median seconds per epoch, training images/s (median
epoch) and inference images/s (batch 1000, median of 5 passes over the test set), plus
peak RSS of this process. Results go to stdout as a Markdown table and to
benchmarks/results/models-<UTC time>.json. Nothing here is asserted by the tests.

    python benchmarks/bench_models.py [--models cnn keras-example] [--seed 0] [--data-dir DIR]

Each model trains in a child process of its own, so peak RSS is that model's alone.

Run it alone: this machine has 2 cores, and any other load skews every number.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from mnist_cnn.config import TrainConfig  # noqa: E402
from mnist_cnn.data import load_dataset, normalize  # noqa: E402
from mnist_cnn.models import MODELS  # noqa: E402
from mnist_cnn.runs import environment, utc_stamp  # noqa: E402
from mnist_cnn.train import train  # noqa: E402

RESULTS = Path(__file__).parent / "results"
# keras-example is trained as published (constant Adam 1e-3, batch 128, 15 epochs, no early
# stopping); every other model with the package defaults.
SETTINGS = {
    "keras-example": dict(epochs=15, schedule="constant", learning_rate=1e-3, patience=15),
}


def inference_images_per_s(model, images, repeats: int = 5) -> float:
    model.predict(images[:1000], batch_size=1000, verbose=0)  # warm-up: builds the predict function
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.predict(images, batch_size=1000, verbose=0)
        times.append(time.perf_counter() - start)
    return len(images) / sorted(times)[len(times) // 2]


def measure(name: str, seed: int, data_dir: Path | None) -> dict:
    """Train and time one model in this process (so peak RSS is this model's alone)."""
    dataset = load_dataset("mnist", data_dir)
    config = TrainConfig(model=name, seed=seed, **SETTINGS.get(name, {}))
    with tempfile.TemporaryDirectory() as run_dir:
        start = time.perf_counter()
        result = train(config, dataset, Path(run_dir), verbose=0)
        wall_s = time.perf_counter() - start
    training = result.metrics["training"]
    return {
        "model": name, "params": result.model.count_params(), "config": config.to_dict(),
        "test_accuracy": result.metrics["test"]["accuracy"],
        "epochs_run": training["epochs_run"], "best_epoch": training["best_epoch"],
        "train_seconds": training["train_seconds_total"], "run_wall_seconds": round(wall_s, 1),
        "seconds_per_epoch_median": training["epoch_time_s_median"],
        "train_images_per_s": training["train_images_per_s"],
        "inference_images_per_s": round(inference_images_per_s(result.model, normalize(dataset.test_images)), 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--one", choices=list(MODELS), help=argparse.SUPPRESS)  # child process mode
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one, args.seed, args.data_dir)))
        return 0

    rows = []
    for name in args.models:
        cmd = [sys.executable, __file__, "--one", name, "--seed", str(args.seed)]
        if args.data_dir:
            cmd += ["--data-dir", str(args.data_dir)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
        rows.append(json.loads(out.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)

    print("| model | params | epochs | test accuracy | training s | s/epoch (median) | train img/s | "
          "inference img/s | peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} | {r['params']:,} | {r['epochs_run']} | {100 * r['test_accuracy']:.2f}% | "
              f"{r['train_seconds']:.0f} | {r['seconds_per_epoch_median']:.1f} | {r['train_images_per_s']:,.0f} | "
              f"{r['inference_images_per_s']:,.0f} | {r['peak_rss_mb']:,.0f} |")
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"models-{utc_stamp()}.json"
    out.write_text(json.dumps({"machine": platform.processor() or platform.machine(), "environment": environment(),
                               "results": rows}, indent=2) + "\n")
    print(f"\nwritten to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
