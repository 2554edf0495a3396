"""`serve --runtime`: a Keras model's calls moved to LiteRT / ONNX Runtime, only when the answers match."""

from __future__ import annotations

import numpy as np
import pytest

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


def test_a_quantised_model_serves_only_with_a_record_of_test_set_parity_for_its_file(tmp_path):
    """`quantized.json` counts only for the very file (SHA-256) and at >= 99.9% top-1 agreement."""
    import json

    from mnist_cnn.core.hashing import sha256_file
    from mnist_cnn.inference.convert import MIN_AGREEMENT, QUANTIZED_RECORD, quantized_record

    model = tmp_path / "model.keras"
    model.write_bytes(b"weights")
    record = {"model_sha256": sha256_file(model), "top1_agreement": 1.0}

    def with_record(**changes):
        (tmp_path / QUANTIZED_RECORD).write_text(json.dumps({**record, **changes}))
        return quantized_record(model)

    assert quantized_record(model) is None  # no record: float
    assert with_record() is not None
    assert with_record(top1_agreement=MIN_AGREEMENT - 0.0005) is None
    assert with_record(top1_agreement="1.0") is None
    assert with_record(model_sha256="0" * 64) is None  # another model's record
    (tmp_path / QUANTIZED_RECORD).write_text("{not json")
    assert quantized_record(model) is None
    link = tmp_path / "elsewhere" / "model.keras"
    link.parent.mkdir()
    link.symlink_to(model)
    assert with_record() is not None and quantized_record(link) is not None  # the record beside the target


def test_the_shipped_digit_model_serves_quantised_and_answers_as_keras_does(shared_data):
    """Its record (tools/ship_pretrained.py --quantized) shows test-set parity; served, the int8 model
    gives Keras' top class on the probe and on real test digits."""
    from mnist_cnn.data.load import load_dataset
    from mnist_cnn.inference.convert import MIN_AGREEMENT, quantized_record

    predictor = Predictor.from_path("mnist")
    record = quantized_record(predictor.file)
    assert record is not None and record["images"] == 10_000 and record["top1_agreement"] >= MIN_AGREEMENT
    digits = load_dataset("mnist", shared_data).test_images[:300].astype(np.float32) / 255
    before = predictor.probabilities(digits)
    predictor.serve_with("auto")
    assert "int8" in predictor.backend.runtime
    after = predictor.probabilities(digits)
    assert (after.argmax(1) == before.argmax(1)).all()
    assert np.abs(after - before).max() < 0.05
    fashion = Predictor.from_path("fashion-mnist")
    assert quantized_record(fashion.file) is None  # its record shows 99.79% agreement: it stays float


def test_a_litert_model_answers_every_batch_size_alike_with_few_interpreters(monkeypatch, tmp_path):
    """One interpreter per small batch size (no tensor resizing between a number's calls), the
    rest shared: each image's answer is the same whatever batch it comes in, and the count of
    interpreters stays bounded however many sizes are asked for."""
    from pathlib import Path

    import mnist_cnn
    from mnist_cnn.inference import runtimes

    twin = Path(mnist_cnn.__file__).parent / "pretrained" / "mnist" / "reader.tflite"
    opened = []
    original = runtimes.open_interpreter

    def counting(path, threads, content):
        opened.append(path)
        return original(path, threads, content)

    monkeypatch.setattr(runtimes, "open_interpreter", counting)
    monkeypatch.setattr(runtimes, "MAX_BATCH_SIZES", 3)
    monkeypatch.setattr(runtimes, "MAX_KEPT_BATCH", 4)
    copy = tmp_path / "reader.tflite"  # a converted file a server made, removed while it serves
    copy.write_bytes(twin.read_bytes())
    interpreters = runtimes.SizedInterpreters(copy, 1)
    copy.unlink()  # later sizes open from the bytes read at the start
    strips = np.random.default_rng(0).random((9, 28, 112, 1)).astype(np.float32)
    alone = np.concatenate([interpreters(strips[i:i + 1]) for i in range(len(strips))])
    for size in (2, 3, 9, 4, 2, 6, 3, 9, 5, 1):  # kept: 1 (the first), 2, 3; shared: the rest
        together = interpreters(strips[:size])
        assert together.shape == (size, *alone.shape[1:])
        assert np.allclose(together, alone[:size], atol=1e-5), size
    assert len(opened) == 4  # the first, two more kept sizes, one shared: not one per size
    with pytest.raises(MnistCnnError, match="cannot load .* as a LiteRT model"):  # gone before it was read
        runtimes.SizedInterpreters(copy, 1)
    for damaged in (b"", twin.read_bytes()[:1000], b"TFL3" + bytes(64)):  # empty, truncated, garbage
        copy.write_bytes(damaged)
        with pytest.raises(MnistCnnError, match="cannot load .* as a LiteRT model"):
            runtimes.SizedInterpreters(copy, 1)
