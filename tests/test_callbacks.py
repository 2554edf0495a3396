"""Atomic writes and the callbacks that commit a run's state every epoch."""

from __future__ import annotations

import pytest

from mnist_cnn import atomic
from mnist_cnn.callbacks import HistoryLogger, ResumableEarlyStopping, RunCheckpoint, load_checkpoint
from mnist_cnn.runs import Run, TrainState


def test_atomic_write_replaces_whole_file(tmp_path):
    tmp_path = tmp_path / "out"
    tmp_path.mkdir()
    path = tmp_path / "a.json"
    atomic.write_json(path, {"x": 1})
    atomic.write_json(path, {"x": 2})
    assert path.read_text() == '{\n  "x": 2\n}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]
    assert path.stat().st_mode & 0o044  # group/other readable like any normal file


def test_failed_write_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    tmp_path = tmp_path / "out"
    tmp_path.mkdir()
    path = tmp_path / "report.md"
    atomic.write_text(path, "good")
    with pytest.raises(RuntimeError):
        with atomic.atomic_path(path) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash mid-write")
    assert path.read_text() == "good"
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"]


def test_early_stopping_starts_from_the_committed_state():
    state = TrainState(epoch=3, best_epoch=2, best_val_loss=0.3, last_checkpoint=None, best_checkpoint=None,
                       shuffle_seed=0)
    callback = ResumableEarlyStopping(state, patience=3)
    callback.on_train_begin()
    assert callback.best == 0.3 and callback.best_epoch == 1 and callback.wait == 1
    fresh = ResumableEarlyStopping(TrainState(0, 0, None, None, None, 0), patience=3)
    fresh.on_train_begin()
    assert fresh.wait == 0 and fresh.best is None


def test_checkpoint_commits_state_after_each_epoch_and_keeps_last_and_best(tmp_path):
    """Three epochs with val_loss 0.5, 0.4, 0.45: best is epoch 2, last is epoch 3, epoch 1 is pruned."""
    import keras
    import numpy as np

    run = Run(tmp_path)
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    x = np.ones((4, 2), np.float32)
    model.fit(x, np.eye(2, dtype=np.float32)[[0, 1, 0, 1]], epochs=1, verbose=0)  # an optimizer with state
    history = HistoryLogger(run)
    checkpoint = RunCheckpoint(run, TrainState(0, 0, None, None, None, shuffle_seed=5))
    for callback in (history, checkpoint):
        callback.set_model(model)
    for epoch, val_loss in enumerate([0.5, 0.4, 0.45]):
        history.on_epoch_begin(epoch)
        logs = {"loss": 1.0, "val_loss": val_loss}
        history.on_epoch_end(epoch, logs)
        checkpoint.on_epoch_end(epoch, logs)
    state = run.read_state()
    assert (state.epoch, state.best_epoch, state.best_val_loss, state.shuffle_seed) == (3, 2, 0.4, 5)
    assert state.last_checkpoint == "checkpoints/epoch-0003.keras"
    assert state.best_checkpoint == "checkpoints/epoch-0002.keras"
    assert sorted(p.name for p in run.checkpoints.iterdir()) == ["epoch-0002.keras", "epoch-0003.keras"]
    assert [row["epoch"] for row in run.read_history()] == [1, 2, 3]
    restored = keras.Sequential([keras.Input((2,)), keras.layers.Dense(2, activation="softmax")])
    restored.compile(optimizer="adam", loss="categorical_crossentropy")
    load_checkpoint(restored, run.path / state.last_checkpoint)
    assert int(restored.optimizer.iterations) == int(model.optimizer.iterations) == 1
    assert np.allclose(restored.predict(x, verbose=0), model.predict(x, verbose=0))
