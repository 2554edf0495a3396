"""Where one training epoch of a model goes: input pipeline, forward pass, full train step.

Times, for one pass over the 54k training images at the recipe's batch size:
  pipeline   iterating the tf.data input pipeline alone (shuffle, batch, prefetch)
  augment    the same with the recipe's augmentation map (only if the recipe augments)
  forward    `model.predict_on_batch`-style forward passes in inference mode
  train      `model.fit` for one epoch (forward + backward + Adam update), after a warm-up epoch
  train+aug  the same reading augmented batches: the epoch as `mnist-cnn train` runs it
Each is the median of --repeats runs. Prints a table; nothing is asserted anywhere.
With --recipe, the model, batch size, precision, optimizer and augmentation are the
recipe's for --dataset (flags --model/--batch-size then override it).

With --epoch-start it also times the start of epochs 2-4 of a 4-epoch `fit`: the first
batch of an epoch minus a median batch, with tf.data autotuning off (our pipeline) and on
(TensorFlow's default), to show the stall `train.make_batches` avoids.

    python benchmarks/profile_epoch.py [--model cnn] [--batch-size 128] [--repeats 3] [--epoch-start]
    python benchmarks/profile_epoch.py --recipe wide --dataset fashion-mnist --repeats 1
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
    parser.add_argument("--model", help="default: the recipe's, else cnn")
    parser.add_argument("--batch-size", type=int, help="default: the recipe's, else 128")
    parser.add_argument("--fused-batch-norm", action=argparse.BooleanOptionalAction,
                        help="batch norm as one fused op (default: the recipe's, else off)")
    parser.add_argument("--recipe", help="profile this recipe's epoch (precision, optimizer, augmentation)")
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--epoch-start", action="store_true", help="also time the start of later epochs")
    args = parser.parse_args()

    import tensorflow as tf

    from mnist_cnn.data.load import load_dataset
    from mnist_cnn.data.prepare import prepare_data
    from mnist_cnn.training.recipes import resolve_config
    from mnist_cnn.training.train import augmenter, build_for_training, compile_model, make_batches, steps_per_epoch

    config = resolve_config(args.recipe, None, {"dataset": args.dataset, "model": args.model,
                                                "batch_size": args.batch_size,
                                                "fused_batch_norm": args.fused_batch_norm})
    if not args.recipe:
        config = config.replace(model=args.model or "cnn", batch_size=args.batch_size or 128)
    dataset = load_dataset(config.dataset, args.data_dir)
    data = prepare_data(config, dataset)
    steps = steps_per_epoch(config, len(data.x_train))
    model = compile_model(build_for_training(config, len(dataset.class_names)), config, steps)
    batches = make_batches(data.x_train, data.y_train, config.batch_size, shuffle_seed=0)
    augment = augmenter(config)
    augmented = (make_batches(data.x_train, data.y_train, config.batch_size, shuffle_seed=0, augment=augment)
                 if augment is not None else None)
    forward = tf.function(lambda x: model(x, training=False))

    def run_pipeline(source=batches):
        for _ in source:
            pass

    def run_forward():
        for x, _ in batches:
            forward(x)

    def run_train(source=batches):
        model.fit(source, epochs=1, verbose=0, shuffle=False)

    stages = [("pipeline", run_pipeline), ("forward", run_forward), ("train", run_train)]
    if augmented is not None:
        stages[1:1] = [("augment", lambda: run_pipeline(augmented))]
        stages.append(("train+aug", lambda: run_train(augmented)))
    run_forward()
    run_train()  # warm-up: traces the functions, builds the optimizer
    rows = [(name, median_time(fn, args.repeats)) for name, fn in stages]
    total = rows[-1][1]
    print(f"recipe {config.recipe}, dataset {config.dataset}, model {config.model}, precision {config.precision}, "
          f"fused batch norm {config.fused_batch_norm}, batch {config.batch_size}, {len(data.x_train)} images, {steps} steps, "
          f"threads intra={tf.config.threading.get_intra_op_parallelism_threads()} "
          f"inter={tf.config.threading.get_inter_op_parallelism_threads()} (0 = all cores)")
    print("| stage | seconds per epoch | share of a training epoch | ms per step |")
    print("|---|---|---|---|")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.2f} | {100 * seconds / total:.0f}% | {1000 * seconds / steps:.1f} |")
    if args.epoch_start:
        print("\n| tf.data autotuning | extra seconds at the start of epochs 2, 3, 4 |\n|---|---|")
        for autotune in (False, True):
            delays = epoch_start_delays(model, make_batches(data.x_train, data.y_train, config.batch_size,
                                                            shuffle_seed=0, autotune=autotune))
            print(f"| {'on (TF default)' if autotune else 'off (ours)'} | {', '.join(f'{d:.2f}' for d in delays)} |")
    return 0


def epoch_start_delays(model, batches, epochs: int = 4) -> list[float]:
    """Per epoch after the first: time to its first batch minus the epoch's median batch."""
    import keras

    class Clock(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.batches: list[list[float]] = []

        def on_epoch_begin(self, epoch, logs=None):
            self.batches.append([])
            self.last = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            now = time.perf_counter()
            self.batches[-1].append(now - self.last)
            self.last = now

    clock = Clock()
    model.fit(batches, epochs=epochs, verbose=0, shuffle=False, callbacks=[clock])
    return [b[0] - statistics.median(b) for b in clock.batches[1:]]


if __name__ == "__main__":
    raise SystemExit(main())
