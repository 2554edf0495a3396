"""Every registered architecture builds, has its pinned size, and survives a .keras round trip."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from mnist_cnn.core.errors import ConfigError, ModelFileError  # noqa: E402
from mnist_cnn.inference.keras_file import load_saved_model  # noqa: E402
from mnist_cnn.training.models import MODELS, build_model

# Changing an architecture changes these on purpose: update them in the same commit.
PINNED_PARAMS = {"keras-example": 34_826, "compact": 57_578, "cnn": 156_074, "fast": 29_450, "strong": 279_722, "resnet": 464_810,
                 "wide": 1_021_762, "deep": 830_274}


def test_every_model_is_pinned():
    assert set(PINNED_PARAMS) == set(MODELS)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_builds_with_pinned_params_and_softmax_output(name):
    model = build_model(name)
    assert model.count_params() == PINNED_PARAMS[name]
    out = model.predict(np.random.default_rng(0).random((3, 28, 28, 1), dtype=np.float32), verbose=0)
    assert out.shape == (3, 10)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_other_class_counts(name):
    assert build_model(name, num_classes=4).output_shape == (None, 4)


def test_unknown_model():
    with pytest.raises(ConfigError, match="unknown model 'resnet152'.*cnn"):
        build_model("resnet152")


def test_keras_round_trip_predicts_the_same(tmp_path):
    model = build_model("cnn")
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    x = np.random.default_rng(1).random((5, 28, 28, 1), dtype=np.float32)
    model.save(tmp_path / "m.keras")
    loaded = load_saved_model(tmp_path / "m.keras")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


@pytest.mark.parametrize("content, name, message", [
    (b"not a zip at all", "model.keras", "cannot load"),
    (None, "missing.keras", "does not exist"),
    (b"{}", "model.h5", "not a .keras file"),
])
def test_bad_model_files(tmp_path, content, name, message):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ModelFileError, match=message):
        load_saved_model(path)
