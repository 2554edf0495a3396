"""TrainConfig validation and config files (config.py)."""

from __future__ import annotations

import json

import pytest

from mnist_cnn.core.errors import ConfigError
from mnist_cnn.runs.config import TrainConfig, load_config_file


def test_defaults_are_valid_and_frozen():
    config = TrainConfig()
    assert config.model == "compact" and config.dataset == "mnist"
    with pytest.raises(AttributeError):
        config.epochs = 3  # type: ignore[misc]


@pytest.mark.parametrize("field, value", [
    ("epochs", 0), ("batch_size", 0), ("learning_rate", 0.0), ("learning_rate", -1.0),
    ("val_fraction", 1.5), ("val_fraction", 0.0), ("labels", "binary"), ("schedule", "step"),
    ("patience", 0), ("seed", -1), ("train_limit", 5), ("label_smoothing", 1.0),
    ("ema_momentum", 1.0), ("ema_momentum", -0.1), ("ema_momentum", float("nan")),
    ("weight_decay", -0.1), ("weight_decay", 1.0), ("weight_decay", float("inf")), ("precision", "float16"),
    ("aug_crop", -1), ("aug_crop", 9),
])
def test_invalid_values_name_the_field_and_value(field, value):
    with pytest.raises(ConfigError, match=f"invalid {field} = {value!r}"):
        TrainConfig(**{field: value})


def test_label_smoothing_needs_onehot():
    with pytest.raises(ConfigError, match="sparse"):
        TrainConfig(labels="sparse", label_smoothing=0.1)


def test_replace_keeps_values_given_as_none():
    config = TrainConfig().replace(epochs=3, seed=None)
    assert config.epochs == 3 and config.seed == TrainConfig().seed


def test_replace_rejects_unknown_keys():
    with pytest.raises(ConfigError, match="unknown config key.*epoch\\b"):
        TrainConfig().replace(epoch=3)


def test_toml_and_json_files(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text('epochs = 3\nlearning_rate = 1\nlabels = "sparse"\ntrain_limit = 500\n')
    values = load_config_file(toml)
    assert values == {"epochs": 3, "learning_rate": 1.0, "labels": "sparse", "train_limit": 500}
    assert TrainConfig().replace(**values).learning_rate == 1.0
    js = tmp_path / "c.json"
    js.write_text(json.dumps({"batch_size": 64, "deterministic": True}))
    assert load_config_file(js) == {"batch_size": 64, "deterministic": True}


@pytest.mark.parametrize("text, message", [
    ("epochz = 3", "unknown config key.*epochz"),
    ('epochs = "3"', "invalid epochs"),
    ("deterministic = 1", "invalid deterministic"),
    ("epochs = 2.5", "invalid epochs"),
    ("epochs = [", "not valid TOML"),
])
def test_bad_config_files(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config_file(path)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config_file(tmp_path / "absent.toml")
