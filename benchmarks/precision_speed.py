"""Seconds per training epoch of a model in float32 and in bfloat16, side by side.

    python benchmarks/precision_speed.py --models wide resnet --batch-sizes 128 512 --rounds 3

Times `fit` on random 28x28 images (the speed of a step does not depend on the pixels)
for each model x batch size x precision, alternating precisions round by round so that a
change in the machine's load hits both; prints one JSON line per measurement and then a
Markdown table of medians scaled to an epoch of 54,000 images (Fashion-MNIST's training
split). No augmentation and no validation: this is the model's arithmetic alone. Run it
with nothing else on the cores. bfloat16 pays only where the CPU has bfloat16 matrix
units (Intel AMX); the table's header names the processor.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

EPOCH_IMAGES = 54_000


def seconds_per_epoch(model_name: str, precision: str, batch_size: int, steps: int) -> float:
    import keras
    import numpy as np

    from mnist_cnn.config import TrainConfig
    from mnist_cnn.train import build_for_training, compile_model

    config = TrainConfig(model=model_name, precision=precision, batch_size=batch_size)
    model = compile_model(build_for_training(config, 10), config, steps)
    rng = np.random.default_rng(0)
    n = batch_size * steps
    x = rng.random((n, 28, 28, 1), dtype=np.float32)
    y = keras.utils.to_categorical(rng.integers(0, 10, n), 10)
    model.fit(x[: batch_size * 3], y[: batch_size * 3], batch_size=batch_size, verbose=0)  # trace and warm up
    start = time.perf_counter()
    model.fit(x, y, batch_size=batch_size, verbose=0, shuffle=False)
    return (time.perf_counter() - start) / n * EPOCH_IMAGES


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["wide"])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[512])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=30, help="timed steps per measurement")
    args = parser.parse_args()

    from mnist_cnn.runs import environment

    cpu = environment()["cpu"]
    times: dict[tuple[str, int, str], list[float]] = {}
    for round_ in range(args.rounds):
        for name in args.models:
            for batch in args.batch_sizes:
                for precision in ("float32", "bfloat16") if round_ % 2 == 0 else ("bfloat16", "float32"):
                    s = seconds_per_epoch(name, precision, batch, args.steps)
                    times.setdefault((name, batch, precision), []).append(s)
                    print(json.dumps({"model": name, "batch_size": batch, "precision": precision, "round": round_,
                                      "s_per_epoch": round(s, 1), "cpu": cpu}), flush=True)
    print(f"\nmedians of {args.rounds} rounds, seconds per epoch of {EPOCH_IMAGES:,} images, {cpu}:\n")
    print("| model | batch | float32 | bfloat16 | float32 / bfloat16 |\n|---|---|---|---|---|")
    for name in args.models:
        for batch in args.batch_sizes:
            f32 = statistics.median(times[(name, batch, "float32")])
            bf16 = statistics.median(times[(name, batch, "bfloat16")])
            print(f"| `{name}` | {batch} | {f32:.1f} | {bf16:.1f} | {f32 / bf16:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
