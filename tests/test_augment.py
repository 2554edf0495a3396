"""Elastic distortion: a smooth field, independent in x and y, of Simard's size, on whole batches."""

from __future__ import annotations

import numpy as np
import pytest

from mnist_cnn.config import TrainConfig
from mnist_cnn.errors import ConfigError

keras = pytest.importorskip("keras")


def displacement(batch: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The (dx, dy) field one call drew, read back from images whose pixels hold their own
    column (channel 0) and row (channel 1): bilinear sampling of a linear ramp is exact."""
    from mnist_cnn.augment import ElasticDistortion
    from mnist_cnn.train import make_batches

    rows, cols = np.mgrid[0:28, 0:28].astype(np.float32) / 27
    images = np.repeat(np.stack([cols, rows], axis=-1)[None], batch, axis=0)
    layer = ElasticDistortion(factor=(1.0, 1.0), scale=(1.0, 1.0), value_range=(0.0, 1.0), fill_mode="constant",
                              fill_value=-1.0, seed=seed)  # strength exactly 1; outside the image reads -1
    (out, _), = list(make_batches(images, np.arange(batch), batch, augment=keras.Sequential([layer])).take(1))
    out = np.asarray(out)
    inner = (slice(None), slice(6, 22), slice(6, 22))  # away from the borders, where the ramps are clipped
    return (out[..., 0] * 27 - cols * 27)[inner], (out[..., 1] * 27 - rows * 27)[inner]


def test_elastic_field_is_smooth_independent_and_of_simards_size():
    dx, dy = displacement()
    spread = float(np.std(np.concatenate([dx.ravel(), dy.ravel()])))
    assert 0.7 < spread < 2.5  # Simard's alpha 34, sigma 4: ~1.4 px
    step = np.abs(np.diff(dx, axis=2)).mean()  # between neighbouring pixels
    assert step < 0.25 * spread  # a smooth bend, not pixel noise
    assert abs(np.corrcoef(dx.ravel(), dy.ravel())[0, 1]) < 0.5  # not all along one diagonal
    per_image = dx.reshape(len(dx), -1).mean(axis=1)
    assert np.std(per_image) > 0.05  # each image gets its own field


def test_elastic_distortion_keeps_shapes_range_and_ink(shared_data):
    from mnist_cnn.data import load_dataset
    from mnist_cnn.train import augmenter, make_batches

    digits = load_dataset("mnist", shared_data).train_images[:64].astype(np.float32)[..., None] / 255
    config = TrainConfig(augment=True, aug_shift=0.0, aug_rotation_deg=0.0, aug_zoom=0.0, aug_elastic=1.0, seed=5)
    assert [layer.__class__.__name__ for layer in augmenter(config).layers] == ["ElasticDistortion"]
    (out, _), = list(make_batches(digits, np.arange(64), 64, augment=augmenter(config)).take(1))
    out = np.asarray(out)
    assert out.shape == digits.shape and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    ink = out.sum(axis=(1, 2, 3)) / digits.sum(axis=(1, 2, 3))
    assert np.all((ink > 0.7) & (ink < 1.3))  # bent, not erased or smeared
    assert np.mean(np.abs(out - digits).reshape(64, -1).max(axis=1) > 0.1) > 0.5  # most images changed


def test_no_elastic_layer_unless_asked():
    from mnist_cnn.train import augmenter

    names = [layer.__class__.__name__ for layer in augmenter(TrainConfig(augment=True)).layers]
    assert "ElasticDistortion" not in names


@pytest.mark.parametrize("value", [-0.1, 1.5, float("nan")])
def test_elastic_strength_out_of_range_is_refused(value):
    with pytest.raises(ConfigError, match="aug_elastic"):
        TrainConfig(aug_elastic=value)
