"""Where one training epoch of a model goes: input pipeline, forward pass, full train step.

Times, for one pass over the 54k training images at the recipe's batch size:
  pipeline   iterating the tf.data input pipeline alone (shuffle, batch, prefetch)
  forward    `model.predict_on_batch`-style forward passes in inference mode
  train      `model.fit` for one epoch (forward + backward + Adam update), after a warm-up epoch
Each is the median of --repeats runs. Prints a table; nothing is asserted anywhere.

    python benchmarks/profile_epoch.py [--model cnn] [--batch-size 128] [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="cnn")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data-dir", type=Path)
    args = parser.parse_args()

    import tensorflow as tf

    from mnist_cnn.config import TrainConfig
    from mnist_cnn.data import load_dataset
    from mnist_cnn.models import build_model
    from mnist_cnn.train import compile_model, make_batches, prepare_data, steps_per_epoch

    config = TrainConfig(model=args.model, batch_size=args.batch_size)
    data = prepare_data(config, load_dataset("mnist", args.data_dir))
    steps = steps_per_epoch(config, len(data.x_train))
    model = compile_model(build_model(config.model), config, steps)
    batches = make_batches(data.x_train, data.y_train, config.batch_size, shuffle_seed=0)
    forward = tf.function(lambda x: model(x, training=False))

    def run_pipeline():
        for _ in batches:
            pass

    def run_forward():
        for x, _ in batches:
            forward(x)

    def run_train():
        model.fit(batches, epochs=1, verbose=0, shuffle=False)

    run_forward()
    run_train()  # warm-up: traces the functions, builds the optimizer
    rows = [(name, median_time(fn, args.repeats)) for name, fn in
            (("pipeline", run_pipeline), ("forward", run_forward), ("train", run_train))]
    total = rows[-1][1]
    print(f"model {config.model}, batch {config.batch_size}, {len(data.x_train)} images, {steps} steps, "
          f"threads intra={tf.config.threading.get_intra_op_parallelism_threads()} "
          f"inter={tf.config.threading.get_inter_op_parallelism_threads()} (0 = all cores)")
    print("| stage | seconds per epoch | share of a training epoch | ms per step |")
    print("|---|---|---|---|")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.2f} | {100 * seconds / total:.0f}% | {1000 * seconds / steps:.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
