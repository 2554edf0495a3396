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
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import keras
import numpy as np

from ..core.errors import MnistCnnError
from ..core.system import usable_cores
from ..data.prepare import PreparedData, normalize, prepare_data
from ..data.registry import DATASETS, Dataset
from ..evaluation.evaluate import write_evaluation
from ..evaluation.plots import plot_curves
from ..evaluation.report import write_report, write_summary
from ..inference.keras_file import load_saved_model
from ..inference.runtimes import predict_probabilities
from ..runs.config import TrainConfig
from ..runs.run import Run, TrainState, history_columns
from . import tensorboard_logs
from .augment import augmenter
from .batchnorm import FusedBatchNormalization, fused_copy
from .callbacks import (
    AveragedWeights,
    HistoryLogger,
    ResumableEarlyStopping,
    RunCheckpoint,
    load_checkpoint,
    save_model,
)
from .models import build_model
from .whitening import whiten

log = logging.getLogger(__name__)

# A reloaded model.keras must predict what the in-memory model does, up to float noise.
RELOAD_TOLERANCE = 1e-5
RELOAD_PROBE = 1000  # test images the reloaded model is compared on


def make_batches(x: np.ndarray, y: np.ndarray, batch_size: int, shuffle_seed: int | None = None,
                 augment: keras.Sequential | None = None, autotune: bool = False,
                 epochs: int | None = None, first_epoch: int = 0) -> Any:
    """An in-memory `tf.data` pipeline of (images, labels) batches; uint8 images are scaled to
    [0, 1] per batch (float32 ones are taken as they are).

    With `shuffle_seed` and `epochs`, the batches of epochs `first_epoch`..`epochs - 1`
    follow one another in one stream (`fit` then needs `steps_per_epoch`), and the order of
    epoch e depends on (shuffle_seed, e) alone: a resumed run sees the very batches an
    uninterrupted one would. With `shuffle_seed` alone, one epoch reshuffled at every pass;
    with neither, the data in order (validation).

    Two stalls shape it (benchmarks/README.md, "Where the time goes"): NumPy arrays given
    to `fit` make Keras rebuild and reshuffle its pipeline at every epoch start, where a
    dataset built once does not; and tf.data's autotuner runs a thread that a dropped
    iterator waits for.
    The pipeline is a shuffle, a batch and at most one map, so fixed settings lose nothing:
    autotuning is off, the map uses one call per core and two batches are prefetched
    (`autotune=True` restores TF's defaults, for `benchmarks/profile_epoch.py` to compare).
    """
    import tensorflow as tf  # noqa: PLC0415  (the backend; Keras already imported it)

    def scaled(images: Any) -> Any:  # uint8 pixels are kept as such and scaled batch by batch
        return tf.cast(images, tf.float32) / 255.0 if images.dtype == tf.uint8 else images

    if shuffle_seed is not None and epochs is not None:
        images, labels = tf.constant(x), tf.constant(y)

        def one_epoch(epoch: Any) -> Any:  # stateless: the order is a function of (seed, epoch) alone
            seed = tf.stack([tf.constant(shuffle_seed, tf.int64), epoch])
            order = tf.random.experimental.stateless_shuffle(tf.range(len(x), dtype=tf.int64), seed=seed)
            return tf.data.Dataset.from_tensor_slices(order).batch(batch_size)

        dataset = tf.data.Dataset.range(first_epoch, epochs).flat_map(one_epoch).map(
            lambda index: (scaled(tf.gather(images, index)), tf.gather(labels, index)))
    elif shuffle_seed is not None:
        dataset = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(
            len(x), seed=shuffle_seed, reshuffle_each_iteration=True).batch(batch_size)
    else:
        dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch_size)
    if x.dtype == np.uint8 and not (shuffle_seed is not None and epochs is not None):
        dataset = dataset.map(lambda images, labels: (scaled(images), labels))
    if augment is not None:
        dataset = dataset.map(lambda images, labels: (augment(images, training=True), labels),
                              num_parallel_calls=tf.data.AUTOTUNE if autotune else usable_cores())
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


def recalibration_sample(x_train: np.ndarray, seed: int, size: int = 4096) -> np.ndarray:
    """The fixed training images (un-augmented, float32 in [0, 1]) that re-estimate batch norm for
    averaged weights."""
    if len(x_train) > size:
        x_train = x_train[np.sort(np.random.default_rng(seed).choice(len(x_train), size, replace=False))]
    return x_train.astype(np.float32) / 255.0 if x_train.dtype == np.uint8 else x_train


def compile_model(model: keras.Model, config: TrainConfig, steps: int) -> keras.Model:
    """Step 3: optimizer (Adam + schedule), loss matching the label encoding, accuracy metric."""
    if config.labels == "onehot":
        loss = keras.losses.CategoricalCrossentropy(label_smoothing=config.label_smoothing)
    else:
        loss = keras.losses.SparseCategoricalCrossentropy()
    ema = {"use_ema": True, "ema_momentum": config.ema_momentum} if config.ema_momentum > 0 else {}
    decay = {"weight_decay": config.weight_decay} if config.weight_decay > 0 else {}
    optimizer = keras.optimizers.Adam(learning_rate(config, steps), beta_1=config.adam_beta_1,
                                      beta_2=config.adam_beta_2, **ema, **decay)
    if decay:  # decaying batch-norm scales and biases only fights the normalisation
        optimizer.exclude_from_weight_decay(var_names=["gamma", "beta", "bias"])
    model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"])
    return model


def build_for_training(config: TrainConfig, num_classes: int) -> keras.Model:
    """`config.model`, its layers computing in bfloat16 (weights kept in float32) and its batch
    norm fused (`batchnorm.FusedBatchNormalization`) if asked."""
    if config.precision == "float32":
        model = build_model(config.model, num_classes)
    else:
        previous = keras.mixed_precision.global_policy()
        keras.mixed_precision.set_global_policy("mixed_bfloat16")  # read by layers as they are built
        try:
            model = build_model(config.model, num_classes)
        finally:
            keras.mixed_precision.set_global_policy(previous)
    return fused_copy(model) if config.fused_batch_norm else model


def portable_copy(model: keras.Model) -> keras.Model:
    """`model` itself if it is made of plain Keras layers computing in float32, else such a twin
    holding the same weights (fused batch norm becomes Keras' own, which it is a drop-in for).

    A mixed-precision model keeps its weights in float32 already; only the layers' compute
    type changes. The saved model is float32 and plain so that it loads with Keras alone,
    runs at full speed and precision on any CPU, converts to ONNX and LiteRT, and predicts
    as its test metrics say.
    """
    def portable(layer: keras.layers.Layer) -> keras.layers.Layer:
        cls = keras.layers.BatchNormalization if isinstance(layer, FusedBatchNormalization) else layer.__class__
        return cls.from_config({**layer.get_config(), "dtype": "float32"})

    if all(layer.dtype_policy.name == "float32" and not isinstance(layer, FusedBatchNormalization)
           for layer in model.layers):
        return model
    twin = keras.models.clone_model(model, clone_function=portable)
    twin.set_weights(model.get_weights())
    return twin


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
    split: tuple[np.ndarray, np.ndarray] | None = None  # (train, validation) rows of the training images used


def data_info(config: TrainConfig, dataset: Dataset, data: PreparedData) -> dict[str, Any]:
    """What config.json records of the data: where from, digests, classes, split sizes, preprocessing."""
    spec = DATASETS.get(dataset.name)
    return {"name": dataset.name, "source": str(dataset.source), "sha256": dataset.sha256,
            "class_names": list(dataset.class_names), "num_train": len(data.x_train),
            "num_val": len(data.x_val), "num_test": len(dataset.test_labels),
            "preprocessing": spec.style if spec is not None and spec.name == config.dataset else "digit"}


def train(config: TrainConfig, dataset: Dataset, run_dir: Path, *, verbose: int | str = "auto",
          resume: bool = False, changed: dict[str, tuple[Any, Any]] | None = None,
          extra_callbacks: Sequence[keras.callbacks.Callback] = ()) -> TrainResult:
    """Train `config.model` on `dataset` and write every artifact into `run_dir`.

    `verbose` is Keras' fit verbosity (1: progress bar, 2: one line per epoch, 0: silent).
    `extra_callbacks` run before the run's own (the benchmark times epochs with one).
    With `resume=True`, `run_dir` holds a run of `config` (from `recipes.resume_config`,
    whose `changed` settings are recorded): temporary files a kill left are removed,
    training continues after the last committed epoch with the same data order, and
    whatever a finished training lacks (model, metrics, plots, report) is written.
    """
    run = Run(run_dir)
    if config.tensorboard:
        tensorboard_logs.check_available()  # before any work: the fix is an install
    try:
        run.path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise MnistCnnError(f"cannot create run folder {run.path}: {e.strerror}; pass --runs-dir to a "
                            f"writable folder") from None
    try:
        seed_everything(config)
        data = prepare_data(config, dataset, scale=False)  # uint8: make_batches scales each batch
        steps = steps_per_epoch(config, len(data.x_train))
        # A frozen whitening stem is set from the data first (a resumed run's checkpoint then restores it as saved).
        model = compile_model(whiten(build_for_training(config, dataset.num_classes), data.x_train), config, steps)
        state, rows = (run.resume_point(dataset.name, dataset.source, dataset.sha256) if resume
                       else (None, []))
        if state is not None:
            try:
                load_checkpoint(model, run.path / state.last_checkpoint)
            except ValueError:  # Keras: the saved weights' shapes do not fit the model built now
                raise MnistCnnError(
                    f"{run.path / state.last_checkpoint} does not fit the {config.model!r} model of this version "
                    f"of mnist-cnn (its architecture changed since the run was made); the run cannot be resumed: "
                    f"start a new run") from None
            log.info("resuming %s after epoch %d", run.path, state.epoch)
        if resume and changed:  # only once the checkpoint is known to fit: a refused resume changes nothing
            run.record_resume(config, changed)
        if not resume:
            run.write_config(config, data_info(config, dataset, data))
        if state is None:
            run.prune_checkpoints(set())  # an epoch killed before its first commit
            state = TrainState(epoch=0, best_epoch=0, best_val_loss=None, last_checkpoint=None,
                               best_checkpoint=None, shuffle_seed=config.seed)
        summary_before = model_summary(model)

        start = time.perf_counter()
        if state.epoch < config.epochs and state.wait < config.patience:
            model.fit(
                make_batches(data.x_train, data.y_train, config.batch_size, shuffle_seed=state.shuffle_seed,
                             augment=augmenter(config), epochs=config.epochs, first_epoch=state.epoch),
                steps_per_epoch=steps,  # one stream over all epochs: Keras keeps its iterator
                validation_data=make_batches(data.x_val, data.y_val, config.batch_size),
                epochs=config.epochs, initial_epoch=state.epoch, verbose=verbose,
                shuffle=False,  # the dataset orders each epoch itself
                callbacks=[*extra_callbacks,
                           # first: validation, the history, checkpoints and early stopping see the average
                           *([AveragedWeights(from_checkpoint=state.last_checkpoint is not None,
                                              images=recalibration_sample(data.x_train, config.seed),
                                              batch_size=config.batch_size)]
                             if config.ema_momentum > 0 else []),
                           HistoryLogger(run, rows), RunCheckpoint(run, state),
                           ResumableEarlyStopping(state, patience=config.patience),
                           *([tensorboard_logs.tensorboard_callback(run)] if config.tensorboard else [])],
            )
    except BaseException:
        if not resume and run.discard_uncommitted():  # failed before its first epoch: no half run left
            log.info("removed %s: training stopped before its first epoch was committed", run.path)
        raise
    fit_seconds = time.perf_counter() - start
    result = finish(run, dataset, model, summary_before, fit_seconds, len(data.x_train), resumed=resume,
                    lang=config.lang)
    result.split = (data.train_index, data.val_index)
    return result


def finish(run: Run, dataset: Dataset, model: keras.Model, summary_before: str, fit_seconds: float,
           num_train: int, resumed: bool = False, lang: str = "en") -> TrainResult:
    """After training: restore the best epoch's weights, save and check model.keras, then test once
    and write metrics, plots, summary and report. Safe to repeat: everything is derived from
    the committed state and history, so a resumed run completes whatever a kill left out."""
    state = run.read_state()
    if state is not None and state.best_checkpoint:  # the lowest validation loss, never chosen on test
        model.load_weights(run.path / state.best_checkpoint)
    model = portable_copy(model)
    save_model(model, run.model)
    summary_after = model_summary(model)

    x_test = normalize(dataset.test_images)
    probabilities = predict_probabilities(model, x_test)
    reload_diff = check_reload(run.model, x_test, probabilities)

    history = run.read_history()
    if history:
        plot_curves(history_columns(history), run.curves, lang=lang)
    best = next((r for r in history if state and r["epoch"] == state.best_epoch), {})
    seconds = [r["epoch_time_s"] for r in history]
    training = {
        "epochs_run": len(history), "best_epoch": int(best.get("epoch", 0)),
        "best_val_loss": best.get("val_loss"), "best_val_accuracy": best.get("val_accuracy"),
        "fit_seconds_this_session": round(fit_seconds, 2),
        "epoch_time_s_median": float(np.median(seconds)) if seconds else None,
        "train_seconds_total": round(sum(seconds), 2),
        "train_images_per_s": round(num_train / float(np.median(seconds)), 1) if seconds else None,
        "reload_max_abs_diff": reload_diff,
        "resumed": resumed,
    }
    metrics = write_evaluation(run, dataset, probabilities, extra={"training": training}, lang=lang)
    write_summary(run, summary_before, summary_after, metrics, lang=lang)
    write_report(run, lang=lang)
    return TrainResult(run.path, model, metrics, summary_before, summary_after)


def check_reload(path: Path, x_test: np.ndarray, expected: np.ndarray) -> float:
    """Load the saved model and compare its predictions on the first RELOAD_PROBE test images with the
    in-memory model's: a file that did not save right differs on any of them."""
    reloaded = load_saved_model(path)  # the safe loader every model file goes through
    probe = slice(0, RELOAD_PROBE)
    diff = float(np.abs(predict_probabilities(reloaded, x_test[probe]) - expected[probe]).max())
    if diff > RELOAD_TOLERANCE:
        raise MnistCnnError(f"{path} predicts differently from the trained model (max difference {diff:.2e}); "
                            f"the file did not save correctly, run training again")
    return diff
