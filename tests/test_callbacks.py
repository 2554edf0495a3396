"""Atomic writes and the history/early-stopping state used for resuming."""

from __future__ import annotations

import pytest

from mnist_cnn import atomic
from mnist_cnn.callbacks import ResumableEarlyStopping, history_columns, read_history, write_history


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


def test_history_round_trip(tmp_path):
    rows = [{"epoch": 1, "loss": 0.5, "val_loss": 0.4}, {"epoch": 2, "loss": 0.3, "val_loss": 0.35}]
    write_history(tmp_path / "h.csv", rows)
    assert read_history(tmp_path / "h.csv") == rows
    assert history_columns(rows)["val_loss"] == [0.4, 0.35]
    assert read_history(tmp_path / "absent.csv") == []


@pytest.mark.parametrize("val_losses, patience, stop", [
    ([], 2, False),
    ([0.5, 0.4, 0.45], 2, False),  # one epoch without improvement
    ([0.5, 0.4, 0.45, 0.41], 2, True),  # two
    ([0.5, 0.6, 0.7, 0.3], 2, False),  # improved on the last epoch
])
def test_should_stop_from_history(val_losses, patience, stop):
    rows = [{"val_loss": v} for v in val_losses]
    assert ResumableEarlyStopping.should_stop(rows, patience) is stop


def test_early_stopping_state_is_restored():
    rows = [{"val_loss": v} for v in (0.5, 0.3, 0.4)]
    callback = ResumableEarlyStopping(rows, patience=3)
    callback.on_train_begin()
    assert callback.best == 0.3 and callback.best_epoch == 1 and callback.wait == 1
