"""Keras callbacks that make a run survive interruption.

`RunCheckpoint` writes, at the end of every epoch and always atomically, in this order:
`history.csv`, `best.keras` (when validation loss improved) and `last.keras` (weights and
optimizer state). A run killed at any moment therefore has a consistent `last.keras` to
resume from; the epoch it completed is read back from the optimizer's step counter, and
`history.csv` rows past it are dropped.
"""

from __future__ import annotations

import csv
import io
import math
import time
from pathlib import Path
from typing import Any

import keras

from .atomic import atomic_path, write_text

HISTORY_FILE = "history.csv"
BEST_CHECKPOINT = "best.keras"
LAST_CHECKPOINT = "last.keras"


def read_history(path: Path) -> list[dict[str, float]]:
    """Rows of `history.csv` as dicts of floats (`epoch` counts from 1)."""
    if not path.exists():
        return []
    with open(path, newline="", encoding="utf-8") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def history_columns(rows: list[dict[str, float]]) -> dict[str, list[float]]:
    """Rows -> one list per column, the shape `plots.plot_curves` takes."""
    return {key: [row[key] for row in rows] for key in (rows[0] if rows else {})}


def write_history(path: Path, rows: list[dict[str, float]]) -> None:
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    write_text(path, buffer.getvalue())


def save_model(model: keras.Model, path: Path) -> None:
    """`model.save` through a temporary file, so `path` is always a complete model or absent."""
    with atomic_path(path) as tmp:
        model.save(tmp)


class RunCheckpoint(keras.callbacks.Callback):
    """Per-epoch history (with wall time and learning rate), best and last checkpoints."""

    def __init__(self, run_dir: Path, rows: list[dict[str, float]] | None = None, monitor: str = "val_loss"):
        super().__init__()
        self.run_dir = Path(run_dir)
        self.rows = list(rows or [])  # rows of epochs already completed (when resuming)
        self.monitor = monitor
        self.best = min((r[monitor] for r in self.rows), default=math.inf)
        self._epoch_start = 0.0

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self._epoch_start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        logs = dict(logs or {})
        row = {"epoch": epoch + 1, **{k: float(v) for k, v in sorted(logs.items()) if k != "learning_rate"}}
        row["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        row["epoch_time_s"] = round(time.perf_counter() - self._epoch_start, 3)
        self.rows.append(row)
        write_history(self.run_dir / HISTORY_FILE, self.rows)
        if row.get(self.monitor, math.inf) < self.best:
            self.best = row[self.monitor]
            save_model(self.model, self.run_dir / BEST_CHECKPOINT)
        save_model(self.model, self.run_dir / LAST_CHECKPOINT)


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """Keras' EarlyStopping, started from the state recorded in `history.csv` when resuming.

    Best weights are restored from `best.keras` after training (not kept in memory), so
    they survive an interruption too.
    """

    def __init__(self, rows: list[dict[str, float]], monitor: str = "val_loss", patience: int = 4):
        super().__init__(monitor=monitor, patience=patience, restore_best_weights=False)
        self._rows = rows

    def on_train_begin(self, logs: Any = None) -> None:
        super().on_train_begin(logs)
        if self._rows:
            values = [r[self.monitor] for r in self._rows]
            best_index = min(range(len(values)), key=values.__getitem__)
            self.best = values[best_index]
            self.best_epoch = best_index
            self.wait = len(values) - 1 - best_index

    @staticmethod
    def should_stop(rows: list[dict[str, float]], patience: int, monitor: str = "val_loss") -> bool:
        """Whether the completed epochs in `rows` already used up the patience."""
        if not rows:
            return False
        values = [r[monitor] for r in rows]
        return len(values) - 1 - values.index(min(values)) >= patience
