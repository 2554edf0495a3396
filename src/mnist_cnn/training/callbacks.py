"""Keras callbacks that make a run survive interruption, one job each.

At the end of every epoch, in this order: `HistoryLogger` appends the epoch's row to
`history.csv`; `RunCheckpoint` saves the weights and optimizer state to
`checkpoints/epoch-NNNN.keras` and then commits `state.json` (the epoch, the best epoch
and its validation loss, the checkpoint files); `ResumableEarlyStopping` decides whether
to stop. Every write is atomic and `state.json` is written last, so a run killed at any
moment resumes from the last committed epoch: history rows past it are dropped and
checkpoint files it does not name are deleted.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np

from ..core.atomic import atomic_path
from ..runs.run import Run, TrainState


def save_model(model: keras.Model, path: Path) -> None:
    """`model.save` through a temporary file, so `path` is always a complete model or absent."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        model.save(tmp)


def load_checkpoint(model: keras.Model, path: Path) -> None:
    """Weights and optimizer state (step count, moments) of a checkpoint into a compiled `model`.

    The model is built and compiled from the run's settings first, so a resumed run that
    trains for more epochs gets a learning-rate schedule for its new length.
    """
    if model.optimizer is not None and not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)  # its variables must exist to be filled
    model.load_weights(path)


def batch_norm_layers(model: keras.Model) -> list[keras.layers.BatchNormalization]:
    """Every batch-norm layer of `model`, nested models included, in call order."""
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            found.append(layer)
        elif isinstance(layer, keras.Model):
            found.extend(batch_norm_layers(layer))
    return found


def recalibrate_batch_norm(model: keras.Model, images: np.ndarray, batch_size: int = 512) -> None:
    """Set every batch-norm layer's moving statistics to those of `images` under the current weights.

    Forward passes in training mode, one per batch, as training computes them (the weights do
    not change); each layer's moving mean and variance become the plain average of its batch
    statistics over the batches (momentum k / (k + 1) at the k-th), not the exponential
    average training keeps. A model whose weights were replaced (a moving average of them)
    needs this: the statistics training gathered describe the activations of other weights.
    """
    layers = batch_norm_layers(model)
    momenta = [layer.momentum for layer in layers]
    try:
        for k, start in enumerate(range(0, len(images), batch_size)):
            for layer in layers:
                layer.momentum = k / (k + 1)  # 0 first: the first batch's statistics replace the old
            model(images[start:start + batch_size], training=True)
    finally:
        for layer, momentum in zip(layers, momenta):
            layer.momentum = momentum


class AveragedWeights(keras.callbacks.SwapEMAWeights):
    """`ema_momentum`: the optimizer's moving average of the weights is what the run is judged and kept by.

    Keras' SwapEMAWeights (swap_on_epoch) puts the averaged weights into the model for each
    validation and from the end of each epoch to the start of the next, so the callbacks
    after this one (history, checkpoint, early stopping) and `finish` see the average, and
    training goes on with the raw weights. A checkpoint written at an epoch's end therefore
    holds the two swapped (average in the model, raw weights in the optimizer's slot): a run
    resumed from one starts swapped, and this callback is told so (`from_checkpoint`), else
    it would train the average and average the raw weights.

    Batch norm's moving statistics are not weights the optimizer averages: they follow the
    raw weights, and with them the average can score near chance for many epochs. Given
    `images` (a fixed sample of training images), each swap to the average re-estimates the
    statistics for it (`recalibrate_batch_norm`, once per epoch: validation and the
    checkpoint share them) and the swap back restores the raw weights' own. A resumed run
    has only the checkpoint's statistics (the average's) for its raw weights; training
    replaces them within a few hundred steps (momentum 0.99).
    """

    def __init__(self, from_checkpoint: bool = False, images: np.ndarray | None = None,
                 batch_size: int = 512) -> None:
        super().__init__(swap_on_epoch=True)
        self._ema_weights_in_model = from_checkpoint
        self.images, self.batch_size = images, batch_size
        self._raw_statistics: list[np.ndarray] | None = None  # held while the average is in the model
        self._average_statistics: list[np.ndarray] | None = None  # this epoch's, once estimated

    def _statistics(self) -> list[keras.Variable]:
        return [v for layer in batch_norm_layers(self.model) for v in (layer.moving_mean, layer.moving_variance)]

    def _swap_variables(self) -> None:
        # Keras' hooks call this before flipping `_ema_weights_in_model`: the flag says which way.
        to_average = not self._ema_weights_in_model
        super()._swap_variables()
        if self.images is None:
            return
        statistics = self._statistics()
        if to_average:
            self._raw_statistics = [keras.ops.convert_to_numpy(v) for v in statistics]
            if self._average_statistics is None:
                recalibrate_batch_norm(self.model, self.images, self.batch_size)
                self._average_statistics = [keras.ops.convert_to_numpy(v) for v in statistics]
            else:
                for variable, value in zip(statistics, self._average_statistics):
                    variable.assign(value)
        elif self._raw_statistics is not None:
            for variable, value in zip(statistics, self._raw_statistics):
                variable.assign(value)
            self._raw_statistics = None

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self._average_statistics = None  # training moves the average: estimate again at the next swap
        super().on_epoch_begin(epoch, logs)

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        # As Keras', minus its copy of the average over the raw weights after the last epoch:
        # that checkpoint must keep the raw weights for `--resume --epochs MORE`. The run's
        # model is the best checkpoint's average anyway (`train.finish`).
        if not self._ema_weights_in_model:
            self._swap_variables()
            self._ema_weights_in_model = True


class HistoryLogger(keras.callbacks.Callback):
    """`history.csv`: one row per epoch with every logged metric, the learning rate and the seconds."""

    def __init__(self, run: Run, rows: list[dict[str, float]] | None = None) -> None:
        super().__init__()
        self.run = run
        self.rows = list(rows or [])  # completed epochs carried over from before a resume, as recorded
        self._epoch_start = 0.0

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self._epoch_start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        logs = dict(logs or {})
        row = {"epoch": epoch + 1, **{k: float(v) for k, v in sorted(logs.items()) if k != "learning_rate"}}
        row["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        row["epoch_time_s"] = round(time.perf_counter() - self._epoch_start, 3)
        self.rows.append(row)
        self.run.write_history(self.rows)


class RunCheckpoint(keras.callbacks.Callback):
    """Save the epoch's checkpoint, then commit `state.json`; keep only the last and the best checkpoint."""

    def __init__(self, run: Run, state: TrainState, monitor: str = "val_loss") -> None:
        super().__init__()
        self.run = run
        self.state = state
        self.monitor = monitor

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        completed = epoch + 1
        path = self.run.checkpoint(completed)
        save_model(self.model, path)
        value = float((logs or {}).get(self.monitor, math.nan))
        state = self.state
        improved = math.isfinite(value) and (state.best_val_loss is None or value < state.best_val_loss)
        name = self.run.relative(path)
        self.state = TrainState(
            epoch=completed,
            best_epoch=completed if improved else state.best_epoch,
            best_val_loss=value if improved else state.best_val_loss,
            last_checkpoint=name,
            best_checkpoint=name if improved else state.best_checkpoint,
            shuffle_seed=state.shuffle_seed,
        )
        self.run.write_state(self.state)  # the commit point
        self.run.prune_checkpoints({n for n in (self.state.last_checkpoint, self.state.best_checkpoint) if n})


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """Keras' EarlyStopping, started from a run's committed state when resuming.

    Best weights are restored from the best checkpoint after training (not kept in memory),
    so they survive an interruption too.
    """

    def __init__(self, state: TrainState, monitor: str = "val_loss", patience: int = 4) -> None:
        super().__init__(monitor=monitor, patience=patience, restore_best_weights=False)
        self._state = state

    def on_train_begin(self, logs: Any = None) -> None:
        super().on_train_begin(logs)
        if self._state.best_epoch:
            self.best = self._state.best_val_loss
            self.best_epoch = self._state.best_epoch - 1  # Keras counts epochs from 0
            self.wait = self._state.wait
