"""Seconds per training epoch of a model in float32 and in bfloat16, with Keras' batch norm
and with the fused one (`--fused-batch-norm`), side by side.

    python benchmarks/precision_speed.py --models wide resnet --batch-sizes 128 512 --rounds 3
    python benchmarks/precision_speed.py --models wide strong --batch-norm keras fused

Times training steps on random 28x28 images (the speed of a step does not depend on the
pixels) for each model x batch size x variant (precision, batch norm), reversing the
variants' order every other round so that a change in the machine's load hits all of
them; prints one JSON line per measurement, then a Markdown table of the medians over
rounds (each measurement is the median step) scaled to an epoch of 54,000 images
(Fashion-MNIST's training split). No augmentation and no validation: the model's
arithmetic alone. Run it with nothing else on the cores. bfloat16 pays only where the
CPU has bfloat16 matrix units (Intel AMX); the table's header names the processor.
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


def seconds_per_epoch(model_name: str, precision: str, batch_norm: str, batch_size: int, steps: int) -> float:
    """The median step of `steps` training steps, scaled to an epoch of EPOCH_IMAGES images.

    Fed by the package's own input pipeline (`train.make_batches`): handing `fit` NumPy
    arrays adds Keras' per-call pipeline set-up and its stalls, which swamped the step
    time in an earlier version of this script (identical epochs for different models).
    """
    import keras
    import numpy as np

    from mnist_cnn.runs.config import TrainConfig
    from mnist_cnn.training.train import build_for_training, compile_model, make_batches

    class StepClock(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            self.start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            self.seconds.append(time.perf_counter() - self.start)

    config = TrainConfig(model=model_name, precision=precision, batch_size=batch_size,
                         fused_batch_norm=batch_norm == "fused")
    model = compile_model(build_for_training(config, 10), config, steps)
    rng = np.random.default_rng(0)
    n = batch_size * steps
    x = rng.random((n, 28, 28, 1), dtype=np.float32)
    y = keras.utils.to_categorical(rng.integers(0, 10, n), 10)
    batches = make_batches(x, y, batch_size)
    model.fit(batches.take(3), verbose=0)  # trace and warm up
    clock = StepClock()
    clock.seconds = []
    model.fit(batches, verbose=0, callbacks=[clock])
    return statistics.median(clock.seconds) / batch_size * EPOCH_IMAGES


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=["wide"])
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[512])
    parser.add_argument("--precisions", nargs="+", choices=("float32", "bfloat16"), default=["float32", "bfloat16"])
    parser.add_argument("--batch-norm", nargs="+", choices=("keras", "fused"), default=["keras"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=30, help="timed steps per measurement")
    args = parser.parse_args()

    from mnist_cnn.runs.run import environment

    cpu = environment()["cpu"]
    variants = [(precision, norm) for precision in args.precisions for norm in args.batch_norm]
    times: dict[tuple[str, int, tuple[str, str]], list[float]] = {}
    for round_ in range(args.rounds):
        for name in args.models:
            for batch in args.batch_sizes:
                for variant in variants if round_ % 2 == 0 else variants[::-1]:
                    s = seconds_per_epoch(name, *variant, batch, args.steps)
                    times.setdefault((name, batch, variant), []).append(s)
                    print(json.dumps({"model": name, "batch_size": batch, "precision": variant[0],
                                      "batch_norm": variant[1], "round": round_, "s_per_epoch": round(s, 1),
                                      "cpu": cpu}), flush=True)
    print(f"\nmedians of {args.rounds} rounds, seconds per epoch of {EPOCH_IMAGES:,} images, {cpu}:\n")
    labels = [f"{precision}, {norm} BN" for precision, norm in variants]
    print("| model | batch | " + " | ".join(labels) + f" | speed-up over {labels[0]} |")
    print("|---|---|" + "---|" * (len(variants) + 1))
    for name in args.models:
        for batch in args.batch_sizes:
            medians = [statistics.median(times[(name, batch, variant)]) for variant in variants]
            ratios = ", ".join(f"{medians[0] / m:.2f}" for m in medians[1:]) or "-"
            print(f"| `{name}` | {batch} | " + " | ".join(f"{m:.1f}" for m in medians) + f" | {ratios} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
