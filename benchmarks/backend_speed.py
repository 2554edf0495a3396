"""Keras backends side by side: one `fast` epoch under TensorFlow and under JAX, same model, same data.

    python benchmarks/backend_speed.py [--backends tensorflow tensorflow-xla jax] [--rounds 2] [--seed 0]

Each run is a fresh process (a Keras backend is fixed once Keras is imported) that trains the
`fast` architecture (its frozen stem whitened first) for one epoch of 54,000 MNIST training
images as the `fast` recipe does (its batch size, Adam betas, warmup then cosine to 0 and
label smoothing, read from the recipe) from in-memory arrays, then scores the 10,000 test images. Keras' own batch
norm in all, since the recipe's fused batch norm is TensorFlow's; `tensorflow-xla` is TensorFlow
with the train step compiled by XLA (`jit_compile=True`; Keras' default under TensorFlow is a
traced graph without XLA, and under JAX always XLA). The backends take turns,
`--rounds` times. Prints one JSON line per run and writes `results/backend-speed-<time>.json`:
per run the first step (tracing or compiling), the other steps, what `fit` spends around
the steps (`after_steps_s`: from the last step to the end of `fit`; the first step includes what comes before it), the epoch
and the accuracy;
then medians per backend. JAX is not a dependency of the package: `pip install "jax[cpu]"`
first, or a backend that cannot be imported is reported and skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import RESULTS, data_dir, write_result

TRAIN_IMAGES = 54_000  # the fast recipe's training split (MNIST's 60,000 less a tenth for validation)


BACKENDS = ("tensorflow", "tensorflow-xla", "jax", "torch")


def child(backend: str, seed: int) -> dict:
    """One epoch under `backend` in this process (KERAS_BACKEND is set before Keras is imported)."""
    keras_backend = backend.removesuffix("-xla")
    os.environ["KERAS_BACKEND"] = keras_backend
    import numpy as np

    started = time.perf_counter()
    import keras

    from mnist_cnn.data.load import load_dataset
    from mnist_cnn.training.models import fast
    from mnist_cnn.training.recipes import RECIPES
    from mnist_cnn.training.whitening import whiten

    import_s = time.perf_counter() - started
    recipe = RECIPES["fast"].settings  # the recipe's own numbers, so the two cannot drift apart
    batch = recipe["batch_size"]
    dataset = load_dataset("mnist", data_dir())
    order = np.random.default_rng(seed).permutation(len(dataset.train_images))[:TRAIN_IMAGES]
    x = (dataset.train_images[order].astype(np.float32) / 255.0)[..., None]
    y = np.eye(10, dtype=np.float32)[dataset.train_labels[order]]
    keras.utils.set_random_seed(seed)
    steps = -(-len(x) // batch)
    warmup = int(steps * recipe["warmup_epochs"])
    schedule = keras.optimizers.schedules.CosineDecay(0.0, steps - warmup, warmup_target=recipe["learning_rate"],
                                                      warmup_steps=warmup)
    model = whiten(fast(), x)  # its frozen stem set from the images, as `mnist-cnn train` does
    model.compile(optimizer=keras.optimizers.Adam(schedule, beta_1=recipe["adam_beta_1"], beta_2=recipe["adam_beta_2"]),
                  loss=keras.losses.CategoricalCrossentropy(label_smoothing=recipe["label_smoothing"]),
                  metrics=["accuracy"], jit_compile=True if backend.endswith("-xla") else "auto")

    ends: list[float] = []

    class StepClock(keras.callbacks.Callback):
        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            ends.append(time.perf_counter())

    start = time.perf_counter()
    model.fit(x, y, batch_size=batch, epochs=recipe["epochs"], shuffle=True, verbose=0, callbacks=[StepClock()])
    epoch_s = time.perf_counter() - start
    test_x = (dataset.test_images.astype(np.float32) / 255.0)[..., None]
    predicted = model.predict(test_x, batch_size=1000, verbose=0).argmax(axis=1)
    return {"backend": backend, "keras": keras.__version__, "backend_version": _version(keras_backend),
            "import_s": round(import_s, 2), "first_step_s": round(ends[0] - start, 3),
            "other_steps_s": round(ends[-1] - ends[0], 2), "after_steps_s": round(epoch_s - (ends[-1] - start), 2),
            "epoch_s": round(epoch_s, 2),
            "steps": len(ends), "test_accuracy": float((predicted == dataset.test_labels).mean())}


def _version(backend: str) -> str:
    module = __import__(backend)
    return getattr(module, "__version__", "unknown")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", nargs="+", default=["tensorflow", "jax"], choices=BACKENDS)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--child", choices=BACKENDS, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.seed)), flush=True)
        return 0
    if args.rounds < 1:
        parser.error(f"--rounds {args.rounds}: give at least 1")

    runs, skipped = [], {}
    for round_ in range(args.rounds):
        order = args.backends if round_ % 2 == 0 else list(reversed(args.backends))
        for backend in order:
            if backend in skipped:
                continue
            done = subprocess.run([sys.executable, __file__, "--child", backend, "--seed", str(args.seed)],
                                  capture_output=True, text=True)
            lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
            if done.returncode or not lines:
                last = (done.stderr.strip().splitlines() or ["no output"])[-1]
                skipped[backend] = last[:300]
                print(f"{backend}: skipped ({last[:200]})", flush=True)
                continue
            runs.append({"round": round_, **json.loads(lines[-1])})
            print(json.dumps(runs[-1]), flush=True)
    medians = {}
    for backend in args.backends:
        mine = [r for r in runs if r["backend"] == backend]
        if mine:
            medians[backend] = {key: statistics.median(r[key] for r in mine)
                                for key in ("import_s", "first_step_s", "other_steps_s", "after_steps_s", "epoch_s", "test_accuracy")}
            print(f"{backend:10} median epoch {medians[backend]['epoch_s']:.2f} s (first step "
                  f"{medians[backend]['first_step_s']:.2f} s, the rest {medians[backend]['other_steps_s']:.2f} s, after "
                  f"them {medians[backend]['after_steps_s']:.2f} s), "
                  f"import {medians[backend]['import_s']:.2f} s, test accuracy {medians[backend]['test_accuracy']:.2%}")
    path = write_result("backend-speed", {"seed": args.seed, "rounds": args.rounds, "runs": runs,
                                          "medians": medians, "skipped": skipped}, args.out)
    print(f"wrote {path}")
    return 0 if runs else 1


if __name__ == "__main__":
    sys.exit(main())
