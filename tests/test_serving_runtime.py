"""`serve --runtime`: a Keras model's calls moved to LiteRT / ONNX Runtime, only when the answers match."""

from __future__ import annotations

import numpy as np
import pytest

pass  # (moved import)
from mnist_cnn.core.errors import MnistCnnError
from mnist_cnn.inference.convert import SERVING_TOLERANCE, probe_images
from mnist_cnn.inference.predict import Predictor
from mnist_cnn.inference.runtimes import LiteRtModel

pytestmark = pytest.mark.slow  # each conversion takes a few seconds


@pytest.fixture(scope="module")
def keras_model():
    import keras

    from mnist_cnn.training.models import build_model

    keras.utils.set_random_seed(0)
    return build_model("fast")


LITERT = "litert"  # "ai-edge-litert 2.3.0", or TensorFlow's "tf.lite" when that package is absent


@pytest.mark.parametrize("runtime, expected", [("auto", LITERT), ("litert", LITERT), ("keras", "keras"),
                                               ("onnx", "onnxruntime")])
def test_served_answers_match_keras(keras_model, runtime, expected):
    if runtime == "onnx":
        pytest.importorskip("onnxruntime")
    predictor = Predictor(keras_model)
    probe = probe_images(32, seed=1)[..., 0]
    before = predictor.probabilities(probe)
    predictor.serve_with(runtime)
    assert expected in predictor.backend.runtime.replace("tf.lite", "litert")
    assert np.abs(predictor.probabilities(probe) - before).max() <= SERVING_TOLERANCE
    assert predictor.describe()["parameters"] == keras_model.count_params()
    assert predictor.describe()["name"] == keras_model.name


def test_a_failed_conversion_falls_back_for_auto_and_is_an_error_when_asked(keras_model, monkeypatch):
    from mnist_cnn.inference import convert

    def broken(*args, **kwargs):
        raise RuntimeError("converter exploded")

    monkeypatch.setattr(convert, "write_litert", broken)
    predictor = Predictor(keras_model)
    predictor.serve_with("auto")
    assert predictor.backend.runtime.startswith("keras")
    with pytest.raises(MnistCnnError, match="cannot serve with --runtime litert .converter exploded"):
        Predictor(keras_model).serve_with("litert")


def test_a_conversion_that_changes_the_answers_is_refused(keras_model, monkeypatch):
    original = LiteRtModel.__call__
    monkeypatch.setattr(LiteRtModel, "__call__", lambda self, batch: original(self, batch)[:, ::-1].copy())
    predictor = Predictor(keras_model)
    predictor.serve_with("auto")  # reversed class order: caught by the probe, Keras keeps serving
    assert predictor.backend.runtime.startswith("keras")
