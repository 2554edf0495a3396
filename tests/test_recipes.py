"""Recipes resolve into valid configs, flags override them, and augmentation behaves."""

from __future__ import annotations

import json
import shlex

import numpy as np
import pytest

from mnist_cnn.cli.main import build_parser, main
from mnist_cnn.cli.train import config_overrides
from mnist_cnn.core.errors import ConfigError
from mnist_cnn.runs.config import TrainConfig
from mnist_cnn.training.models import MODELS
from mnist_cnn.training.recipes import RECIPES, recipe_settings, resolve_config, train_command


@pytest.mark.parametrize("name", sorted(RECIPES))
@pytest.mark.parametrize("dataset", ["mnist", "fashion-mnist"])
def test_every_recipe_is_a_valid_config_with_a_registered_model(name, dataset):
    config = TrainConfig().replace(**recipe_settings(name, dataset))
    assert config.model in MODELS and config.recipe == name


def test_strong_recipe_erases_and_flips_only_on_fashion():
    fashion, digits = recipe_settings("strong", "fashion-mnist"), recipe_settings("strong", "mnist")
    assert fashion["aug_erasing"] > 0 and fashion["aug_flip"] is True
    assert "aug_erasing" not in digits and not TrainConfig().replace(**digits).aug_flip  # a mirrored 2 is no 2


def test_unknown_recipe():
    with pytest.raises(ConfigError, match="unknown recipe 'turbo'"):
        recipe_settings("turbo", "mnist")


def test_flags_override_the_recipe(tiny_dataset, isolated_env):
    assert main(["train", "--recipe", "fast", "--dataset", "tiny", "--data-dir", str(tiny_dataset),
                 "--epochs", "1", "--batch-size", "32"]) == 0
    (run_dir,) = list((isolated_env / "runs").iterdir())
    config = json.loads((run_dir / "config.json").read_text())["config"]
    assert config["recipe"] == "fast" and config["model"] == "fast"
    assert config["epochs"] == 1 and config["batch_size"] == 32  # flags win
    assert config["learning_rate"] == RECIPES["fast"].settings["learning_rate"]  # recipe kept


def test_augmenter_changes_images_not_shapes_or_range():
    pytest.importorskip("keras")
    from mnist_cnn.training.train import augmenter, make_batches

    assert augmenter(TrainConfig()) is None
    augment = augmenter(TrainConfig(augment=True, aug_erasing=0.5, seed=1))
    images = np.zeros((64, 28, 28, 1), dtype=np.float32)
    images[:, 10:18, 10:18] = 1.0
    labels = np.arange(64)
    (batch_x, batch_y), = list(make_batches(images, labels, 64, augment=augment).take(1))
    batch_x = np.asarray(batch_x)
    assert batch_x.shape == images.shape
    assert batch_x.min() >= 0.0 and batch_x.max() <= 1.0 + 1e-6
    np.testing.assert_array_equal(np.asarray(batch_y), labels)  # labels untouched
    changed = np.abs(batch_x - images).reshape(64, -1).max(axis=1) > 0.1
    assert changed.mean() > 0.5  # most images moved, rotated, zoomed or erased


def test_flip_mirrors_some_images_left_right_only():
    pytest.importorskip("keras")
    from mnist_cnn.training.train import augmenter, make_batches

    config = TrainConfig(augment=True, aug_flip=True, aug_shift=0.0, aug_rotation_deg=0.0, aug_zoom=0.0, seed=3)
    images = np.zeros((64, 28, 28, 1), dtype=np.float32)
    images[:, 4:24, 2:6] = 1.0  # a bar near the left edge
    (batch_x, _), = list(make_batches(images, np.arange(64), 64, augment=augmenter(config)).take(1))
    batch_x = np.asarray(batch_x)
    mirrored = np.all(batch_x == images[:, :, ::-1], axis=(1, 2, 3))
    untouched = np.all(batch_x == images, axis=(1, 2, 3))
    assert np.all(mirrored | untouched)  # a flip or nothing: no shift, no vertical flip
    assert 0.2 < mirrored.mean() < 0.8  # about half


def test_crop_shifts_whole_pixels_without_blur():
    """--aug-crop N: each image moves by whole pixels, at most N each way, so no pixel value is
    interpolated (bilinear shifts would blur the texture of clothes)."""
    pytest.importorskip("keras")
    from mnist_cnn.training.train import augmenter, make_batches

    config = TrainConfig(augment=True, aug_crop=3, aug_shift=0.0, aug_rotation_deg=0.0, aug_zoom=0.0, seed=4)
    rng = np.random.default_rng(0)
    image = np.zeros((28, 28, 1), dtype=np.float32)
    image[6:22, 6:22] = rng.random((16, 16, 1), dtype=np.float32)  # texture away from the edges
    images = np.repeat(image[None], 64, axis=0)
    (batch_x, _), = list(make_batches(images, np.arange(64), 64, augment=augmenter(config)).take(1))
    shifts = set()
    for out in np.asarray(batch_x):
        found = [(dy, dx) for dy in range(-3, 4) for dx in range(-3, 4)
                 if np.array_equal(out, np.roll(image, (dy, dx), axis=(0, 1)))]
        assert len(found) == 1, "not a whole-pixel shift of the original"
        shifts.add(found[0])
    assert len(shifts) > 10  # many different shifts, up to 3 px each way


def test_wide_recipe_mirrors_clothes_never_digits():
    fashion = recipe_settings("wide", "fashion-mnist")
    digits = recipe_settings("wide", "mnist")
    assert fashion["aug_flip"] is True and fashion["aug_crop"] > 0 and fashion["aug_shift"] == 0
    assert not TrainConfig().replace(**digits).aug_flip and TrainConfig().replace(**digits).aug_crop == 0
    assert fashion["precision"] == digits["precision"] == "bfloat16"
    # Digits train on 57,000 images and select on 3,000; clothes keep the default 10% held out.
    assert digits["val_fraction"] == 0.05 and TrainConfig().replace(**fashion).val_fraction == 0.1


@pytest.mark.parametrize("config", [
    TrainConfig(),
    TrainConfig().replace(**{**recipe_settings("wide", "mnist"), "seed": 2, "aug_shift": 0.2,
                             "aug_rotation_deg": 20.0}),
    TrainConfig().replace(**{**recipe_settings("strong", "fashion-mnist"), "dataset": "fashion-mnist",
                             "aug_flip": False, "ema_momentum": 0.999, "train_limit": 500,
                             "learning_rate": 1e-5}),
])
def test_train_command_rebuilds_the_config(config):
    """The command a model card quotes gives back the very settings, through the real CLI parser."""
    command = train_command(config)
    args = build_parser().parse_args(shlex.split(command)[1:])
    assert resolve_config(args.recipe, None, config_overrides(args)) == config
    if config.recipe == "wide":
        assert command == ("mnist-cnn train --recipe wide --dataset mnist --seed 2 "
                           "--aug-shift 0.2 --aug-rotation-deg 20")
    if config.recipe == "strong":  # a flag switched off by the command is spelled --no-...
        assert "--no-aug-flip" in command and "--ema-momentum 0.999" in command
