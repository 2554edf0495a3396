"""Training: config + dataset + run folder -> a trained, saved and evaluated model.

The notebook's steps, in order: prepare the data (normalise, encode labels, hold out a
stratified validation split), build and summarise the model, compile it, fit it with
early stopping and checkpoints, restore the best weights, save `model.keras`, check the
saved file predicts like the model in memory, then evaluate on the test set (once) and
write metrics, plots and the report. Keras is imported here, never by `data` or `config`.
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import keras
import numpy as np

from . import runs
from .callbacks import (BEST_CHECKPOINT, HISTORY_FILE, LAST_CHECKPOINT, ResumableEarlyStopping, RunCheckpoint,
                        history_columns, read_history, save_model, write_history)
from .config import TrainConfig
from .data import Dataset, encode_labels, normalize, stratified_split
from .errors import MnistCnnError
from .evaluate import predict_probabilities, write_evaluation
from .models import build_model
from .plots import plot_curves
from .report import write_report, write_summary

log = logging.getLogger(__name__)

# A reloaded model.keras must predict what the in-memory model does, up to float noise.
RELOAD_TOLERANCE = 1e-5


@dataclass(frozen=True)
class PreparedData:
    """Model-ready arrays: images float32 (N, 28, 28, 1) in [0, 1], labels per `config.labels`."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray


def prepare_data(config: TrainConfig, dataset: Dataset) -> PreparedData:
    """Steps 1.1 and 1.2: normalise pixels, encode labels, hold out a stratified validation split."""
    images, labels = dataset.train_images, dataset.train_labels
    if config.train_limit is not None:
        images, labels = images[: config.train_limit], labels[: config.train_limit]
    train_idx, val_idx = stratified_split(labels, config.val_fraction, config.seed)
    x = normalize(images)  # uint8 (N, 28, 28) -> float32 (N, 28, 28, 1)
    y = encode_labels(labels, dataset.num_classes, config.labels)
    return PreparedData(x[train_idx], y[train_idx], x[val_idx], y[val_idx])


def augmenter(config: TrainConfig) -> keras.Sequential | None:
    """Random flips, shifts, rotations, zooms and erasing for training batches, or None.

    Built from Keras preprocessing layers, applied in the input pipeline rather than inside
    the model, so saved models carry no augmentation. Empty areas are filled with black,
    the MNIST background. Flips are opt-in (`aug_flip`): a mirrored digit is a different
    (or no) digit, while a mirrored shirt is still a shirt.
    """
    if not config.augment:
        return None
    fill = {"fill_mode": "constant", "fill_value": 0.0, "seed": config.seed}
    steps: list[keras.layers.Layer] = []
    if config.aug_flip:
        steps.append(keras.layers.RandomFlip("horizontal", seed=config.seed))
    if config.aug_shift:
        steps.append(keras.layers.RandomTranslation(config.aug_shift, config.aug_shift, **fill))
    if config.aug_rotation_deg:
        steps.append(keras.layers.RandomRotation(config.aug_rotation_deg / 360.0, **fill))
    if config.aug_zoom:
        steps.append(keras.layers.RandomZoom((-config.aug_zoom, config.aug_zoom), **fill))
    if config.aug_erasing:
        steps.append(keras.layers.RandomErasing(factor=config.aug_erasing, fill_value=0.0,
                                                value_range=(0.0, 1.0), seed=config.seed))
    return keras.Sequential(steps, name="augment") if steps else None


def make_batches(x: np.ndarray, y: np.ndarray, batch_size: int, shuffle_seed: int | None = None,
                 augment: keras.Sequential | None = None, autotune: bool = False) -> Any:
    """An in-memory `tf.data` pipeline of (images, labels) batches, reshuffled every epoch.

    Two measured stalls shape it (details in benchmarks/README.md):
    - Giving `fit` NumPy arrays lets Keras rebuild and reshuffle its input pipeline at each
      epoch start (a `cnn` epoch took ~52 s instead of ~26 s). A dataset built once does not.
    - tf.data's autotuner runs a background thread that the iterator of the finished epoch
      waits for when Keras drops it: 2.5-8.6 s with both cores idle at the start of many
      epochs after the first (one run's later epochs: ~9.5-10 s instead of ~7 s). The pipeline is a
      shuffle, a batch and at most one map, so fixed settings lose nothing: autotuning is
      off, the map uses one call per core and two batches are prefetched. (`autotune=True`
      restores TF's defaults, for `benchmarks/profile_epoch.py --epoch-start` to compare.)
    """
    import tensorflow as tf  # noqa: PLC0415  (the backend; Keras already imported it)

    dataset = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle_seed is not None:
        dataset = dataset.shuffle(len(x), seed=shuffle_seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size)
    if augment is not None:
        dataset = dataset.map(lambda images, labels: (augment(images, training=True), labels),
                              num_parallel_calls=tf.data.AUTOTUNE if autotune else os.cpu_count() or 1)
    if autotune:
        return dataset.prefetch(tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.autotune.enabled = False
    return dataset.prefetch(2).with_options(options)


def steps_per_epoch(config: TrainConfig, num_train: int) -> int:
    return math.ceil(num_train / config.batch_size)


def learning_rate(config: TrainConfig, steps: int) -> float | keras.optimizers.schedules.LearningRateSchedule:
    """Constant, or a linear warm-up to `config.learning_rate` followed by cosine decay to 0."""
    if config.schedule == "constant":
        return config.learning_rate
    total_steps = config.epochs * steps
    warmup_steps = min(int(config.warmup_epochs * steps), total_steps // 4)  # short runs warm up briefly
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=config.learning_rate / 20 if warmup_steps else config.learning_rate,
        warmup_target=config.learning_rate if warmup_steps else None,
        warmup_steps=warmup_steps,
        decay_steps=max(1, total_steps - warmup_steps),
    )


def compile_model(model: keras.Model, config: TrainConfig, steps: int) -> keras.Model:
    """Step 3: optimizer (Adam + schedule), loss matching the label encoding, accuracy metric."""
    if config.labels == "onehot":
        loss = keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing)
    else:
        loss = keras.losses.SparseCategoricalCrossentropy()
    optimizer = keras.optimizers.Adam(learning_rate(config, steps), beta_1=config.adam_beta_1,
                                      beta_2=config.adam_beta_2)
    model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"])
    return model


def model_summary(model: keras.Model) -> str:
    lines: list[str] = []
    model.summary(print_fn=lambda line, **_: lines.append(line))
    return "\n".join(lines)


def seed_everything(config: TrainConfig) -> None:
    keras.utils.set_random_seed(config.seed)  # Python, NumPy and TensorFlow generators
    if config.deterministic:
        import tensorflow as tf  # noqa: PLC0415

        tf.config.experimental.enable_op_determinism()


@dataclass
class TrainResult:
    run_dir: Path
    model: keras.Model
    metrics: dict[str, Any]
    summary_before: str
    summary_after: str


def train(config: TrainConfig, dataset: Dataset, run_dir: Path, *, verbose: int | str = "auto",
          resume: bool = False, extra_callbacks: Sequence[keras.callbacks.Callback] = ()) -> TrainResult:
    """Train `config.model` on `dataset` and write every artifact into `run_dir`.

    `verbose` is Keras' fit verbosity (1: progress bar, 2: one line per epoch, 0: silent).
    `extra_callbacks` run before the run's own (the benchmark times epochs with one).
    With `resume=True`, `run_dir` must hold an interrupted run of the same config: training
    continues after the last completed epoch recorded in `last.keras`.
    """
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(config)
    data = prepare_data(config, dataset)
    steps = steps_per_epoch(config, len(data.x_train))
    data_info = {"name": dataset.name, "source": str(dataset.source), "sha256": dataset.sha256,
                 "class_names": list(dataset.class_names), "num_train": len(data.x_train),
                 "num_val": len(data.x_val), "num_test": len(dataset.test_labels)}

    rows: list[dict[str, float]] = []
    if resume:
        recorded = runs.read_run_config(run_dir).get("data", {}).get("sha256")
        if recorded and recorded != dataset.sha256:
            raise MnistCnnError(f"the {dataset.name} files in {dataset.source} differ from those {run_dir} was "
                                f"trained on; resume with the same data or start a new run")
    if resume and (run_dir / LAST_CHECKPOINT).exists():
        # Weights, optimizer state and schedule continue exactly; the shuffle order restarts
        # from epoch 0's, so a resumed run is close to, not bit-identical with, an uninterrupted one.
        model = keras.models.load_model(run_dir / LAST_CHECKPOINT)
        initial_epoch = int(keras.ops.convert_to_numpy(model.optimizer.iterations)) // steps
        rows = [r for r in read_history(run_dir / HISTORY_FILE) if r["epoch"] <= initial_epoch]
        write_history(run_dir / HISTORY_FILE, rows)
        log.info("resuming %s after epoch %d", run_dir, initial_epoch)
    else:
        initial_epoch = 0
        model = compile_model(build_model(config.model, dataset.num_classes), config, steps)
        runs.write_run_config(run_dir, config, data_info)
    summary_before = model_summary(model)

    start = time.perf_counter()
    if initial_epoch < config.epochs and not ResumableEarlyStopping.should_stop(rows, config.patience):
        model.fit(
            make_batches(data.x_train, data.y_train, config.batch_size, shuffle_seed=config.seed,
                         augment=augmenter(config)),
            validation_data=make_batches(data.x_val, data.y_val, config.batch_size),
            epochs=config.epochs, initial_epoch=initial_epoch, verbose=verbose,
            shuffle=False,  # the dataset reshuffles itself each epoch
            callbacks=[*extra_callbacks, RunCheckpoint(run_dir, rows),
                       ResumableEarlyStopping(rows, patience=config.patience)],
        )
    fit_seconds = time.perf_counter() - start

    # Restore the weights of the epoch with the lowest validation loss (never chosen on test).
    if (run_dir / BEST_CHECKPOINT).exists():
        model.load_weights(run_dir / BEST_CHECKPOINT)
    save_model(model, run_dir / runs.MODEL_FILE)
    summary_after = model_summary(model)

    x_test = normalize(dataset.test_images)
    probabilities = predict_probabilities(model, x_test)
    reload_diff = check_reload(run_dir / runs.MODEL_FILE, x_test, probabilities)

    history = read_history(run_dir / HISTORY_FILE)
    if history:
        plot_curves(history_columns(history), run_dir / runs.CURVES_PNG)
    best = min(history, key=lambda r: r["val_loss"]) if history else {}
    training = {
        "epochs_run": len(history), "best_epoch": int(best.get("epoch", 0)),
        "best_val_loss": best.get("val_loss"), "best_val_accuracy": best.get("val_accuracy"),
        "fit_seconds_this_session": round(fit_seconds, 2),
        "epoch_time_s_median": float(np.median([r["epoch_time_s"] for r in history])) if history else None,
        "train_seconds_total": round(sum(r["epoch_time_s"] for r in history), 2),
        "train_images_per_s": round(len(data.x_train) / float(np.median([r["epoch_time_s"] for r in history])), 1)
        if history else None,
        "reload_max_abs_diff": reload_diff,
        "resumed": resume,
    }
    metrics = write_evaluation(run_dir, dataset, probabilities, extra={"training": training})
    write_summary(run_dir, summary_before, summary_after, metrics)
    write_report(run_dir)
    return TrainResult(run_dir, model, metrics, summary_before, summary_after)


def check_reload(path: Path, x_test: np.ndarray, expected: np.ndarray) -> float:
    """Load the saved model and compare its test predictions with the in-memory model's."""
    reloaded = keras.models.load_model(path)
    diff = float(np.abs(predict_probabilities(reloaded, x_test) - expected).max())
    if diff > RELOAD_TOLERANCE:
        raise MnistCnnError(f"{path} predicts differently from the trained model (max difference {diff:.2e}); "
                            f"the file did not save correctly, run training again")
    return diff
