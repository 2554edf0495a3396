"""RandomWarp: one sampling for shift, rotation, zoom and Simard's elastic field, on whole batches."""

from __future__ import annotations

import numpy as np
import pytest

from mnist_cnn.core.errors import ConfigError
from mnist_cnn.runs.config import TrainConfig

keras = pytest.importorskip("keras")


def source_points(layer, batch: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Where each output pixel read the input (row, column), for one call of `layer`: read back
    from images whose pixels hold their own column (channel 0) and row (channel 1), since bilinear
    sampling of a linear ramp is exact. Outside the image reads -1 (fill_value)."""
    from mnist_cnn.training.train import make_batches

    rows, cols = np.mgrid[0:28, 0:28].astype(np.float32) / 27
    images = np.repeat(np.stack([cols, rows], axis=-1)[None], batch, axis=0)
    (out, _), = list(make_batches(images, np.arange(batch), batch, augment=keras.Sequential([layer])).take(1))
    out = np.asarray(out)
    return out[..., 1] * 27, out[..., 0] * 27


INNER = (slice(None), slice(6, 22), slice(6, 22))  # away from the borders


def test_elastic_field_is_smooth_independent_and_of_simards_size():
    from mnist_cnn.training.augment import RandomWarp

    y, x = source_points(RandomWarp(elastic=(1.0, 1.0), fill_value=-1.0, seed=0))  # strength exactly 1
    rows, cols = np.mgrid[0:28, 0:28]
    dy, dx = (y - rows)[INNER], (x - cols)[INNER]
    spread = float(np.std(np.concatenate([dx.ravel(), dy.ravel()])))
    assert 0.7 < spread < 2.5  # Simard's alpha 34, sigma 4: ~1.4 px
    assert np.abs(np.diff(dx, axis=2)).mean() < 0.25 * spread  # a smooth bend, not pixel noise
    assert abs(np.corrcoef(dx.ravel(), dy.ravel())[0, 1]) < 0.5  # not all along one diagonal
    assert np.std(dx.reshape(len(dx), -1).mean(axis=1)) > 0.05  # each image gets its own field


def test_affine_warp_stays_within_its_ranges():
    """Without elastic, each image's map is exactly one rotation + zoom + shift, within the limits."""
    from mnist_cnn.training.augment import RandomWarp

    y, x = source_points(RandomWarp(rotation_deg=20, shift=0.1, zoom=0.1, fill_value=-1.0, seed=1), batch=64)
    rows, cols = np.mgrid[0:28, 0:28].astype(np.float64) - 13.5
    design = np.stack([rows.ravel(), cols.ravel(), np.ones(784)], axis=1)
    # Output pixels within 7 px of the centre read points at most 1.1 * 7.1 + 4 px from it: inside.
    inside = np.hypot(rows, cols).ravel() <= 7
    angles = []
    for yy, xx in zip(y, x):
        fit_y, res_y, *_ = np.linalg.lstsq(design[inside], yy.ravel()[inside], rcond=None)
        fit_x, res_x, *_ = np.linalg.lstsq(design[inside], xx.ravel()[inside], rcond=None)
        assert np.sqrt((res_y[0] + res_x[0]) / inside.sum()) < 1e-3  # affine to float precision
        (a, b, ty), (c, d, tx) = fit_y, fit_x
        scale, angle = np.hypot(a, c), np.degrees(np.arctan2(c, a))
        assert 0.9 - 1e-4 <= scale <= 1.1 + 1e-4 and abs(angle) <= 20 + 1e-3
        assert np.allclose([b, d], [-np.sin(np.radians(angle)) * scale, np.cos(np.radians(angle)) * scale],
                           atol=1e-4)  # a rotation and one zoom for both axes, no shear
        assert abs(ty - 13.5) <= 2.8 + 1e-3 and abs(tx - 13.5) <= 2.8 + 1e-3  # shift up to 10% of 28 px
        angles.append(angle)
    assert np.std(angles) > 5  # drawn per image


def test_one_warp_blurs_digits_less_than_keras_layers_in_a_row(shared_data):
    from mnist_cnn.data.load import load_dataset
    from mnist_cnn.training.train import augmenter, make_batches

    digits = load_dataset("mnist", shared_data).train_images[:512].astype(np.float32)[..., None] / 255
    chained = TrainConfig(augment=True, seed=5)  # shift 10%, rotation 10 degrees, zoom 10%
    one = chained.replace(aug_one_warp=True)
    assert [layer.__class__.__name__ for layer in augmenter(one).layers] == ["RandomWarp"]
    inked = {}
    for name, config in (("chained", chained), ("one", one)):
        (out, _), = list(make_batches(digits, np.arange(512), 512, augment=augmenter(config)).take(1))
        out = np.asarray(out)
        assert out.shape == digits.shape and out.min() >= 0.0 and out.max() <= 1.0
        assert np.mean(np.abs(out - digits).reshape(512, -1).max(axis=1) > 0.1) > 0.9  # nearly all changed
        inked[name] = np.mean(out > 0.9) / np.mean(digits > 0.9)  # share of fully inked pixels kept
    assert inked["one"] > inked["chained"] + 0.2, inked


def test_elastic_distortion_keeps_ink(shared_data):
    from mnist_cnn.data.load import load_dataset
    from mnist_cnn.training.train import augmenter, make_batches

    digits = load_dataset("mnist", shared_data).train_images[:64].astype(np.float32)[..., None] / 255
    config = TrainConfig(augment=True, aug_shift=0.0, aug_rotation_deg=0.0, aug_zoom=0.0, aug_elastic=1.0, seed=5)
    assert [layer.__class__.__name__ for layer in augmenter(config).layers] == ["RandomWarp"]
    (out, _), = list(make_batches(digits, np.arange(64), 64, augment=augmenter(config)).take(1))
    ink = np.asarray(out).sum(axis=(1, 2, 3)) / digits.sum(axis=(1, 2, 3))
    assert np.all((ink > 0.5) & (ink < 2.0))  # bent (strokes stretch and squeeze), not erased
    assert 0.9 < np.median(ink) < 1.1  # no smearing or thinning on the whole


def test_warp_settings_survive_get_config():
    from mnist_cnn.training.augment import RandomWarp

    layer = RandomWarp(rotation_deg=15, shift=0.1, zoom=0.05, elastic=0.5, seed=3)
    copy = RandomWarp.from_config(layer.get_config())
    assert (copy.rotation_deg, copy.shift, copy.zoom, copy.scale, copy.seed) == (15, 0.1, 0.05, (0.0, 0.5), 3)


def test_chained_layers_stay_as_they_were_unless_asked():
    from mnist_cnn.training.train import augmenter

    names = [layer.__class__.__name__ for layer in augmenter(TrainConfig(augment=True)).layers]
    assert names == ["RandomTranslation", "RandomRotation", "RandomZoom"]  # what earlier runs trained with


def test_one_warp_with_nothing_to_warp_adds_no_resampling():
    """Clothes (flips and whole-pixel crops only) must not be blurred by an identity warp."""
    from mnist_cnn.training.train import augmenter

    config = TrainConfig(augment=True, aug_one_warp=True, aug_shift=0.0, aug_rotation_deg=0.0, aug_zoom=0.0,
                         aug_flip=True, aug_crop=3)
    assert [layer.__class__.__name__ for layer in augmenter(config).layers] == ["RandomFlip", "RandomTranslation"]


@pytest.mark.parametrize("value", [-0.1, 1.5, float("nan")])
def test_elastic_strength_out_of_range_is_refused(value):
    with pytest.raises(ConfigError, match="aug_elastic"):
        TrainConfig(aug_elastic=value)
