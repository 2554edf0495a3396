"""Atomic writes and the callbacks that commit a run's state every epoch."""

from __future__ import annotations

import pytest

from mnist_cnn.core import atomic
from mnist_cnn.runs.run import Run, TrainState
from mnist_cnn.training.callbacks import HistoryLogger, ResumableEarlyStopping, RunCheckpoint, load_checkpoint


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


@pytest.mark.parametrize("fused", [False, True])
def test_recalibration_averages_each_batch_norm_layers_batch_statistics(fused):
    import keras
    import numpy as np

    from mnist_cnn.training.batchnorm import FusedBatchNormalization
    from mnist_cnn.training.callbacks import recalibrate_batch_norm

    norm = FusedBatchNormalization if fused else keras.layers.BatchNormalization
    inner = keras.Sequential([keras.Input((4, 4, 3)), norm(momentum=0.9)])  # nested: found too
    model = keras.Sequential([keras.Input((4, 4, 3)), norm(momentum=0.99), inner])
    rng = np.random.default_rng(0)
    images = (rng.standard_normal((96, 4, 4, 3)) * [1.0, 2.0, 3.0] + [5.0, -1.0, 0.5]).astype(np.float32)
    weights_before = [w.numpy().copy() for w in model.trainable_weights]
    recalibrate_batch_norm(model, images, batch_size=32)
    # Only the moving statistics change: scales and offsets stay as they were.
    assert all(np.array_equal(a, b.numpy()) for a, b in zip(weights_before, model.trainable_weights))

    batches = images.reshape(3, 32 * 16, 3)  # three batches, per channel
    first = model.layers[0]
    np.testing.assert_allclose(first.moving_mean.numpy(), batches.mean(1).mean(0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(first.moving_variance.numpy(), batches.var(1).mean(0), rtol=1e-4)
    # The second layer sees the first's training-mode output: about zero mean, unit variance.
    second = inner.layers[0]
    np.testing.assert_allclose(second.moving_mean.numpy(), 0.0, atol=1e-3)
    np.testing.assert_allclose(second.moving_variance.numpy(), 1.0, atol=1e-2)
    assert (first.momentum, second.momentum) == (0.99, 0.9)  # put back for training
    estimated = first.moving_mean.numpy().copy()
    recalibrate_batch_norm(model, images[:0])  # no images: the statistics stay, nothing fails
    np.testing.assert_array_equal(first.moving_mean.numpy(), estimated)


def test_averaged_weights_get_their_own_batch_norm_statistics_and_the_raw_weights_get_theirs_back():
    import keras
    import numpy as np

    from mnist_cnn.training.callbacks import AveragedWeights, recalibrate_batch_norm

    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((64, 4)).astype(np.float32) * 3 + 2, rng.integers(0, 3, 64)
    keras.utils.set_random_seed(2)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8), keras.layers.BatchNormalization(),
                              keras.layers.Dense(3)])
    model.compile(keras.optimizers.Adam(0.05, use_ema=True, ema_momentum=0.9),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)  # the raw weights move, their statistics follow
    norm = model.layers[1]
    raw = [v.numpy().copy() for v in (norm.moving_mean, norm.moving_variance)]
    raw_weights = [w.numpy().copy() for w in model.trainable_weights]

    swap = AveragedWeights(images=x, batch_size=16)
    swap.set_model(model)
    swap.on_test_begin()  # the average goes in, with statistics estimated for it
    averaged = [v.numpy().copy() for v in (norm.moving_mean, norm.moving_variance)]
    assert not np.allclose(averaged[0], raw[0], atol=1e-3)
    expected = keras.models.clone_model(model)
    expected.set_weights(model.get_weights())
    recalibrate_batch_norm(expected, x, batch_size=16)
    np.testing.assert_allclose(averaged[0], expected.layers[1].moving_mean.numpy(), rtol=1e-5, atol=1e-6)
    swap.on_test_end()  # the raw weights come back with their own statistics
    np.testing.assert_array_equal(norm.moving_mean.numpy(), raw[0])
    np.testing.assert_array_equal(norm.moving_variance.numpy(), raw[1])
    assert all(np.array_equal(a, w.numpy()) for a, w in zip(raw_weights, model.trainable_weights))
    swap.images = x * 10  # were they estimated again, from these, they would differ
    swap.on_epoch_end(0)  # the same average again (the checkpoint's): the same statistics, not re-estimated
    np.testing.assert_array_equal(norm.moving_mean.numpy(), averaged[0])
    swap.on_epoch_begin(1)
    np.testing.assert_array_equal(norm.moving_mean.numpy(), raw[0])
