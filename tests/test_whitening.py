"""The frozen whitening stem: its kernel whitens the patches it sees, training sets it from
the data and never changes it, and a saved `fast` model keeps it."""

from __future__ import annotations

import json

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from mnist_cnn.cli.main import main  # noqa: E402
from mnist_cnn.training.models import build_model  # noqa: E402
from mnist_cnn.training.whitening import EPS, whiten, whitening_kernel, whitening_layers  # noqa: E402


def correlated_images(n: int = 400, size: int = 12, channels: int = 1, seed: int = 0) -> np.ndarray:
    """Smooth random images: neighbouring pixels strongly correlated, as in real ones."""
    rng = np.random.default_rng(seed)
    noise = rng.random((n, size + 2, size + 2, channels)).astype(np.float32)
    return (noise[:, :-2, :-2] + noise[:, 1:-1, 1:-1] + noise[:, 2:, 2:]) / 3  # (n, size, size, channels)


def second_moment(outputs: np.ndarray) -> np.ndarray:
    flat = outputs.reshape(-1, outputs.shape[-1]).astype(np.float64)
    return flat.T @ flat / len(flat)


@pytest.mark.parametrize("channels", [1, 2])
def test_the_kernel_whitens_the_patches_a_keras_convolution_sees(channels):
    images = correlated_images(channels=channels)
    kernel = whitening_kernel(images, (3, 3), (2, 2), filters=8)
    assert kernel.shape == (3, 3, channels, 8) and kernel.dtype == np.float32
    np.testing.assert_allclose(kernel[..., 4:], -kernel[..., :4])  # each direction and its negative
    # Keras' own convolution with this kernel (its layout, not ours) gives decorrelated features
    conv = keras.layers.Conv2D(8, 3, strides=2, padding="valid", use_bias=False)
    conv.build(images.shape)
    conv.kernel.assign(kernel)
    moment = second_moment(keras.ops.convert_to_numpy(conv(images))[..., :4])
    off_diagonal = moment - np.diag(np.diag(moment))
    assert np.abs(off_diagonal).max() < 1e-3
    assert np.all(np.diag(moment) > 0.5) and np.all(np.diag(moment) < 1.0)  # lambda / (lambda + eps)
    # the leading directions come first: the strongest (the mean brightness) is whitened least by eps
    assert np.diag(moment)[0] == pytest.approx(np.diag(moment).max())


def test_without_eps_each_direction_has_unit_scale():
    moment = second_moment(keras.ops.convert_to_numpy(
        keras.ops.conv(correlated_images(), whitening_kernel(correlated_images(), (2, 2), (1, 1), 8, eps=0.0),
                       strides=1, padding="valid")))
    np.testing.assert_allclose(np.diag(moment), 1.0, rtol=1e-3)


@pytest.mark.parametrize("filters", [7, 0, 20])
def test_an_impossible_filter_count_is_refused(filters):
    with pytest.raises(ValueError, match="even number of filters up to 18"):
        whitening_kernel(correlated_images(n=10), (3, 3), (1, 1), filters)


@pytest.mark.parametrize("images", [np.zeros((3, 12, 12, 1), np.float32), np.ones((1, 4, 4, 1), np.float32)],
                         ids=["blank", "one-flat-image"])
def test_degenerate_images_give_a_finite_kernel(images):
    # a blank or flat dataset has (nearly) no variance in most directions: eps keeps the kernel finite
    kernel = whitening_kernel(images, (4, 4), (2, 2), 16)
    assert np.isfinite(kernel).all() and np.abs(kernel).max() <= 1 / np.sqrt(EPS) + 1e-3


def test_whiten_sets_the_fast_stem_from_the_images_as_the_model_sees_them():
    model = build_model("fast")
    (layer,) = whitening_layers(model)
    assert layer.name == "whiten" and not layer.trainable
    assert all(weight is not layer.kernel for weight in model.trainable_weights)
    images = (correlated_images(n=50, size=28) * 255).astype(np.uint8)
    whiten(model, images)
    # the stem sees the cropped image scaled to [0, 1]: its kernel is that input's whitening
    expected = whitening_kernel(images[:, 2:-2, 2:-2].astype(np.float32) / 255.0, (4, 4), (2, 2), 16, EPS)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer.kernel), expected, rtol=1e-4, atol=1e-5)
    # floats in [0, 1] are taken as they are: the same kernel
    again = whiten(build_model("fast"), images.astype(np.float32) / 255.0)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(whitening_layers(again)[0].kernel), expected,
                               rtol=1e-4, atol=1e-5)


def test_models_without_a_whitening_layer_are_left_alone():
    model = build_model("compact")
    before = [w.copy() for w in model.get_weights()]
    whiten(model, np.zeros((4, 28, 28, 1), np.uint8))
    for old, new in zip(before, model.get_weights()):
        np.testing.assert_array_equal(old, new)


def test_training_sets_the_stem_and_never_changes_it(tiny_dataset, isolated_env):
    assert main(["train", "--recipe", "fast", "--dataset", "tiny", "--data-dir", str(tiny_dataset),
                 "--epochs", "2", "--batch-size", "32"]) == 0
    (run_dir,) = list((isolated_env / "runs").iterdir())
    saved = keras.models.load_model(run_dir / "model.keras")
    stem = saved.get_layer("whiten")
    assert not stem.trainable
    fresh = build_model("fast")
    from mnist_cnn.data.load import load_dataset
    from mnist_cnn.data.prepare import prepare_data
    from mnist_cnn.runs.config import TrainConfig

    config = json.loads((run_dir / "config.json").read_text())["config"]
    data = prepare_data(TrainConfig(**config), load_dataset("tiny", tiny_dataset), scale=False)
    whiten(fresh, data.x_train)  # what training set it to, from its own training split
    np.testing.assert_allclose(keras.ops.convert_to_numpy(stem.kernel),
                               keras.ops.convert_to_numpy(fresh.get_layer("whiten").kernel), rtol=1e-5, atol=1e-6)
    # ... while the layers after it did learn
    assert not np.allclose(keras.ops.convert_to_numpy(saved.get_layer("block1_conv").kernel),
                           keras.ops.convert_to_numpy(fresh.get_layer("block1_conv").kernel))


def test_stacked_whitening_layers_are_set_in_order_each_from_what_it_sees():
    model = keras.Sequential([keras.Input((12, 12, 1)),
                              keras.layers.Conv2D(8, 2, use_bias=False, trainable=False, name="whiten_a"),
                              keras.layers.ReLU(),
                              keras.layers.Conv2D(6, 2, use_bias=False, trainable=False, name="whiten_b"),
                              keras.layers.Conv2D(4, 2, use_bias=False, trainable=False, name="whitened"),  # not one
                              keras.layers.Flatten(), keras.layers.Dense(2)])
    assert [layer.name for layer in whitening_layers(model)] == ["whiten_a", "whiten_b"]
    untouched = keras.ops.convert_to_numpy(model.get_layer("whitened").kernel).copy()
    images = correlated_images(n=60)
    whiten(model, images, eps=1e-3)
    first = keras.ops.convert_to_numpy(model.get_layer("whiten_a").kernel)
    np.testing.assert_allclose(first, whitening_kernel(images, (2, 2), (1, 1), 8, 1e-3), rtol=1e-4, atol=1e-5)
    seen = np.maximum(keras.ops.convert_to_numpy(keras.ops.conv(images, first, strides=1, padding="valid")), 0)
    # the second whitens what the first gives it (compared by effect: eigenvectors' signs are arbitrary)
    second = keras.ops.convert_to_numpy(model.get_layer("whiten_b").kernel)
    outputs = keras.ops.convert_to_numpy(keras.ops.conv(seen, second, strides=1, padding="valid"))
    moment = second_moment(outputs[..., :3])
    assert np.abs(moment - np.diag(np.diag(moment))).max() < 1e-3 and np.all(np.diag(moment) > 0.5)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(model.get_layer("whitened").kernel), untouched)
