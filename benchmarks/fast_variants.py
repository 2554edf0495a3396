"""One training run of a candidate for the `fast` recipe: how long each epoch takes, how
steady its steps are, and the test accuracy after each epoch. Prints one JSON line (per-epoch
step statistics go to stderr). This is how the variants in benchmarks/README.md ("How `fast`
got to one epoch") were measured; the recipe itself is then checked with compare.py.

    python benchmarks/fast_variants.py --variant stem24 --epochs 1 --batch-size 128 --label-smoothing 0.1
    python benchmarks/fast_variants.py --variant base --epochs 2 --batch-size 256 --bf16

    python benchmarks/fast_variants.py --variant crop24-white8-poolfirst-s2 --batch-size 256 --learning-rate 0.04 \
        --label-smoothing 0.1 --fused-batch-norm                     # today's `fast`

The JSON line has the validation accuracy after each epoch (`val_accuracy`): choose among
candidates on it. The test set is also scored after each epoch with the clock stopped, to
see the curve; the recipe's goal is then measured over 10 seeds with `mnist-cnn train`.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def variants():
    """Candidate feature extractors (a dense softmax is added on top), by name. A layer named
    "whiten_N" is frozen and set from the training images (`training.whitening`)."""
    from keras import layers

    count = iter(range(100))

    def whiten(keep, kernel=4, strides=2):  # set by `training.whitening.whiten` before training
        return [layers.Conv2D(2 * keep, kernel, strides=strides, padding="same", use_bias=False, trainable=False,
                              name=f"whiten_{next(count)}"), layers.ReLU()]

    def cbr(filters, kernel, strides=1):
        return [layers.Conv2D(filters, kernel, strides=strides, padding="same", use_bias=False),
                layers.BatchNormalization(momentum=0.9), layers.ReLU()]

    def cpbr(filters, kernel):  # pooled before batch norm and ReLU: both then see a quarter of the values
        return [layers.Conv2D(filters, kernel, padding="same", use_bias=False), layers.MaxPooling2D(),
                layers.BatchNormalization(momentum=0.9), layers.ReLU()]

    pool = layers.MaxPooling2D
    return {
        "base": lambda: [*cbr(16, 3), pool(), *cbr(32, 3), pool(), *cbr(64, 3), pool()],  # the old `fast`
        "n12": lambda: [*cbr(12, 3), pool(), *cbr(24, 3), pool(), *cbr(48, 3), pool()],
        "pool-first": lambda: [pool(), *cbr(32, 3), pool(), *cbr(64, 3), pool()],  # no 28x28 stage
        "stem16": lambda: [*cbr(16, 4, 2), *cbr(32, 3), pool(), *cbr(64, 3), pool()],
        "stem16-48": lambda: [*cbr(16, 4, 2), *cbr(32, 3), pool(), *cbr(48, 3), pool()],
        "stem32-one-stage": lambda: [*cbr(32, 4, 2), pool(), *cbr(64, 3), pool()],
        "stem24": lambda: [*cbr(24, 4, 2), *cbr(32, 3), pool(), *cbr(64, 3), pool()],  # the `fast` model
        # MNIST's digits fit a 20x20 box centred by mass in 28x28: the border is mostly blank.
        "crop24-stem24": lambda: [layers.Cropping2D(2), *cbr(24, 4, 2), *cbr(32, 3), pool(), *cbr(64, 3), pool()],
        "crop22-stem24": lambda: [layers.Cropping2D(3), *cbr(24, 4, 2), *cbr(32, 3), pool(), *cbr(64, 3), pool()],
        "crop22-stem16": lambda: [layers.Cropping2D(3), *cbr(16, 4, 2), *cbr(32, 3), pool(), *cbr(64, 3), pool()],
        "crop24-stem16": lambda: [layers.Cropping2D(2), *cbr(16, 4, 2), *cbr(32, 3), pool(), *cbr(64, 3), pool()],
        "crop24-stem24-24": lambda: [layers.Cropping2D(2), *cbr(24, 4, 2), *cbr(24, 3), pool(), *cbr(64, 3), pool()],
        "crop20-stem24": lambda: [layers.Cropping2D(4), *cbr(24, 4, 2), *cbr(32, 3), pool(), *cbr(64, 3), pool()],
        # airbench's frozen whitening stem: no gradient flows below block 1, so its input
        # gradient and the stem's own backward pass are never computed.
        "crop24-white16": lambda: [layers.Cropping2D(2), *whiten(16), *cbr(32, 3), pool(), *cbr(64, 3), pool()],
        "crop24-white12": lambda: [layers.Cropping2D(2), *whiten(12), *cbr(32, 3), pool(), *cbr(64, 3), pool()],
        "crop24-white8": lambda: [layers.Cropping2D(2), *whiten(8), *cbr(32, 3), pool(), *cbr(64, 3), pool()],
        "crop24-white8-48": lambda: [layers.Cropping2D(2), *whiten(8), *cbr(48, 3), pool(), *cbr(64, 3), pool()],
        "crop24-white8-32-96": lambda: [layers.Cropping2D(2), *whiten(8), *cbr(32, 3), pool(), *cbr(96, 3), pool()],
        "crop24-white8-poolfirst": lambda: [layers.Cropping2D(2), *whiten(8), *cpbr(32, 3), *cpbr(64, 3)],
        "crop24-white8-poolfirst-32-48": lambda: [layers.Cropping2D(2), *whiten(8), *cpbr(32, 3), *cpbr(48, 3)],
        "crop24-white8-poolfirst-24-64": lambda: [layers.Cropping2D(2), *whiten(8), *cpbr(24, 3), *cpbr(64, 3)],
        "crop24-white8-poolfirst-24-48": lambda: [layers.Cropping2D(2), *whiten(8), *cpbr(24, 3), *cpbr(48, 3)],
        # block 2 strided instead of pooled: a quarter of its arithmetic
        "crop24-white8-poolfirst-s2": lambda: [layers.Cropping2D(2), *whiten(8), *cpbr(32, 3), *cbr(64, 3, 2)],
        "crop24-white8-poolfirst-s2-96": lambda: [layers.Cropping2D(2), *whiten(8), *cpbr(32, 3), *cbr(96, 3, 2)],
        "crop24-white8-s2-s2": lambda: [layers.Cropping2D(2), *whiten(8), *cbr(32, 3, 2), *cbr(64, 3, 2)],
        "crop24-white8-s2-s2-48-96": lambda: [layers.Cropping2D(2), *whiten(8), *cbr(48, 3, 2), *cbr(96, 3, 2)],
        # block 1 frozen too (a second whitening, of its 3x3x16 input patches; PCANet's idea):
        # then only block 2 and the classifier train, and no gradient reaches below block 2
        "crop24-white8-white16-pf": lambda: [layers.Cropping2D(2), *whiten(8), *whiten(16, 3, 1), pool(),
                                             *cpbr(64, 3)],
        "crop24-white8-white16-pf-96": lambda: [layers.Cropping2D(2), *whiten(8), *whiten(16, 3, 1), pool(),
                                                *cpbr(96, 3)],
        "crop24-white12-poolfirst": lambda: [layers.Cropping2D(2), *whiten(12), *cpbr(32, 3), *cpbr(64, 3)],
        "crop24-white12-24": lambda: [layers.Cropping2D(2), *whiten(12), *cbr(24, 3), pool(), *cbr(64, 3), pool()],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", default="stem24")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=1e-2)
    parser.add_argument("--warmup-epochs", type=float, default=0.25)
    parser.add_argument("--beta-1", type=float, default=0.8)
    parser.add_argument("--beta-2", type=float, default=0.99)
    parser.add_argument("--label-smoothing", type=float, default=0.0)
    parser.add_argument("--bf16", action="store_true", help="Keras mixed_bfloat16 policy")
    parser.add_argument("--steps-per-execution", type=int, default=1)
    parser.add_argument("--inter-op-threads", type=int, default=0, help="0: TensorFlow's default")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-limit", type=int, help="train on the first N training images only")
    parser.add_argument("--fused-batch-norm", action="store_true", help="the package's fused batch norm, as `fast`")
    parser.add_argument("--whiten-eps", type=float,
                        help="added to each eigenvalue of a whitening stem (default: the package's, as `fast`)")
    parser.add_argument("--data-dir", type=Path)
    args = parser.parse_args()

    import keras
    import tensorflow as tf

    from mnist_cnn.data.load import load_dataset
    from mnist_cnn.data.prepare import normalize, prepare_data
    from mnist_cnn.runs.config import TrainConfig
    from mnist_cnn.training.train import make_batches
    from mnist_cnn.training.whitening import EPS, whiten

    if args.inter_op_threads:
        tf.config.threading.set_inter_op_parallelism_threads(args.inter_op_threads)
    if args.bf16:
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    keras.utils.set_random_seed(args.seed)
    dataset = load_dataset("mnist", args.data_dir)
    data = prepare_data(TrainConfig(seed=args.seed, labels="sparse", train_limit=args.train_limit), dataset)
    x_test, y_test = normalize(dataset.test_images), dataset.test_labels
    y_train, y_val = data.y_train, data.y_val
    if args.label_smoothing:  # Keras smooths one-hot targets only
        y_train, y_val = keras.utils.to_categorical(y_train, 10), keras.utils.to_categorical(y_val, 10)
        loss = keras.losses.CategoricalCrossentropy(label_smoothing=args.label_smoothing)
    else:
        loss = keras.losses.SparseCategoricalCrossentropy()

    model = keras.Sequential([keras.Input((28, 28, 1)), *variants()[args.variant](), keras.layers.Flatten(),
                              keras.layers.Dense(10, activation="softmax", dtype="float32")])
    whiten(model, data.x_train, EPS if args.whiten_eps is None else args.whiten_eps)
    if args.fused_batch_norm:
        from mnist_cnn.training.batchnorm import fused_copy

        model = fused_copy(model)
    steps = -(-len(data.x_train) // args.batch_size)
    warmup = int(args.warmup_epochs * steps)
    schedule = keras.optimizers.schedules.CosineDecay(
        args.learning_rate / 20, decay_steps=max(1, args.epochs * steps - warmup),
        warmup_target=args.learning_rate, warmup_steps=warmup)
    model.compile(keras.optimizers.Adam(schedule, beta_1=args.beta_1, beta_2=args.beta_2), loss,
                  metrics=["accuracy"], steps_per_execution=args.steps_per_execution)

    class Clock(keras.callbacks.Callback):
        """Epoch and step times; the test set is scored at each epoch end, outside the clock."""

        def __init__(self) -> None:
            super().__init__()
            self.train_s, self.epoch_s, self.curve = 0.0, [], []

        def on_epoch_begin(self, epoch, logs=None):
            self.start = self.last = time.perf_counter()
            self.steps = []

        def on_train_batch_end(self, batch, logs=None):
            now = time.perf_counter()
            self.steps.append(now - self.last)
            self.last = now

        def on_epoch_end(self, epoch, logs=None):
            elapsed = time.perf_counter() - self.start
            self.train_s += elapsed
            self.epoch_s.append(round(elapsed, 2))
            accuracy = float((model.predict(x_test, batch_size=1000, verbose=0).argmax(1) == y_test).mean())
            self.curve.append([round(self.train_s, 2), accuracy])
            print(f"epoch {epoch + 1}: {elapsed:.2f} s, median step {1000 * statistics.median(self.steps):.1f} ms "
                  f"(per {args.steps_per_execution} batch(es)), first {self.steps[0]:.2f} s, "
                  f"after the last {elapsed - sum(self.steps):.2f} s (validation), test {accuracy:.4f}",
                  file=sys.stderr, flush=True)

    clock = Clock()
    history = model.fit(make_batches(data.x_train, y_train, args.batch_size, shuffle_seed=args.seed),
                        epochs=args.epochs, validation_data=make_batches(data.x_val, y_val, args.batch_size),
                        verbose=0, callbacks=[clock])
    print(json.dumps({**vars(args), "data_dir": str(args.data_dir), "params": model.count_params(),
                      "epoch_s": clock.epoch_s, "curve": clock.curve,
                      "val_accuracy": [round(v, 4) for v in history.history["val_accuracy"]],
                      "train_s": round(clock.train_s, 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
