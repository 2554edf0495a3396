"""Converting a Keras model to the other runtimes' files (SavedModel, LiteRT, ONNX) and, for
serving, to a faster runtime checked against Keras on a probe batch.

`export` writes its files with these writers; `Predictor.serve_with` uses `for_serving`.
TensorFlow and tf2onnx are imported only inside the functions.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import warnings
import weakref
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import MnistCnnError, first_line
from ..core.system import quiet_stderr
from ..core.version import __version__
from ..data.registry import INPUT_SHAPE
from .runtimes import INPUT_NAME, OUTPUT_NAME, InferenceModel, KerasModel, LiteRtModel, OnnxModel

log = logging.getLogger(__name__)

ONNX_OPSET = 17  # pinned so a tf2onnx upgrade cannot change the file; ONNX Runtime >= 1.13 runs it


RUNTIMES = ("auto", "keras", "litert", "onnx")  # `serve --runtime`: what runs a .keras model's calls


SERVING_TOLERANCE = 1e-4  # a converted model must match Keras to this on the probe (probabilities)

# Dynamic-range LiteRT (int8 weights, activations quantised on the fly, float in and out) runs
# the `wide` model (the shipped `mnist` until 2026-12-07) about 4x faster per image on one
# AMD EPYC VM (its vector units not recorded) and hardly faster on an AVX2-only one
# (benchmarks/README.md, "Where a number ran"). It serves only a model whose
# record (QUANTIZED_RECORD beside the file, for its SHA-256) shows top-1 agreement with the
# float model of at least MIN_AGREEMENT on its test set; `quantized_parity` measures that.
QUANTIZED_RECORD = "quantized.json"
MIN_AGREEMENT = 0.999
QUANTIZED_TOLERANCE = 0.05  # on the probe: same top class, probabilities within this


def probe_images(count: int = 64, seed: int = 0) -> np.ndarray:
    """float32 (count, 28, 28, 1): blank, noise and random strokes, to compare two runtimes of one model."""
    rng = np.random.default_rng(seed)
    images = np.zeros((count, *INPUT_SHAPE), np.float32)
    images[count // 4: count // 2] = rng.random((count // 2 - count // 4, *INPUT_SHAPE), dtype=np.float32)
    rows, cols = np.indices((28, 28))
    for image in images[count // 2:]:  # thick lines at random angles: digit-like ink
        for _ in range(rng.integers(1, 4)):
            angle, offset = rng.uniform(0, np.pi), rng.uniform(-6, 6)
            distance = np.abs((cols - 14) * np.cos(angle) + (rows - 14) * np.sin(angle) - offset)
            image[..., 0] = np.maximum(image[..., 0], np.clip(2.0 - distance, 0, 1))
    return images


def for_serving(model: InferenceModel, runtime: str = "auto", quantized: dict[str, Any] | None = None) -> InferenceModel:
    """`model` converted to a faster runtime for one-image calls, if it is a Keras model and `runtime` asks.

    For one image, a Keras call's framework overhead far outweighs its arithmetic; LiteRT
    (inside TensorFlow, no extra package) or ONNX Runtime (the [export] extra) call the same
    graph with little overhead (benchmarks/README.md, "Inference runtimes"). The converted
    model must give the same probabilities on a probe batch (within SERVING_TOLERANCE, same
    top class); otherwise, and for "auto" when conversion fails, the Keras model serves. An
    explicit runtime that fails is an error. With "auto" and a `quantized` parity record
    (`quantized_record`), the LiteRT file is dynamic-range int8, checked on the probe within
    QUANTIZED_TOLERANCE; if that fails, float LiteRT serves.
    """
    if runtime == "auto" and quantized is not None and isinstance(model, KerasModel):
        try:
            return _litert_for_serving(model, quantize=True)  # parity on the test set: the record
        except (MnistCnnError, RuntimeError, ValueError, OSError) as e:
            log.warning("serving in float: the quantised model failed its check (%s)", first_line(e))
    if runtime not in RUNTIMES:
        raise MnistCnnError(f"unknown runtime {runtime!r}: choose one of {', '.join(RUNTIMES)}")
    if runtime == "keras" or not isinstance(model, KerasModel):
        return model
    # The converted file outlives this call: serve's worker processes load it again. It is
    # removed with the converted model, or at exit.
    folder = tempfile.mkdtemp(prefix="mnist-cnn-serve-")
    try:
        with quiet_stderr():
            if runtime == "onnx":
                import tensorflow as tf

                from .convert import write_onnx  # noqa: PLC0415

                path = Path(folder) / "model.onnx"
                write_onnx(model.model, path, [tf.TensorSpec((None, *INPUT_SHAPE), tf.float32, name=INPUT_NAME)],
                            {})
                converted: InferenceModel = OnnxModel.load(path)
            else:
                from .convert import write_litert  # noqa: PLC0415

                path = Path(folder) / "model.tflite"
                write_litert(model.model, path, Path(folder))
                converted = LiteRtModel(path, threads=1)  # one image a call: more threads only contend with the server
        probe = probe_images()
        expected, got = model(probe), converted(probe)
        difference = float(np.abs(expected - got).max())
        if difference > SERVING_TOLERANCE or not (expected.argmax(1) == got.argmax(1)).all():
            raise MnistCnnError(f"the {runtime} conversion differs from the Keras model by {difference:.1e}")
    except (MnistCnnError, ImportError, RuntimeError, ValueError, OSError) as e:
        shutil.rmtree(folder, ignore_errors=True)
        if runtime != "auto":
            raise MnistCnnError(f"cannot serve with --runtime {runtime} ({first_line(e)}); use --runtime keras") from None
        log.warning("serving with Keras: the LiteRT conversion failed (%s)", first_line(e))
        return model
    weakref.finalize(converted, shutil.rmtree, folder, ignore_errors=True)
    converted.name, converted.info = model.name, model.info
    converted.count_params = model.count_params  # type: ignore[method-assign]  (the same weights)
    log.info("serving with %s (max |difference| from Keras on the probe %.1e)", converted.runtime, difference)
    return converted


def _litert_for_serving(model: KerasModel, quantize: bool) -> InferenceModel:
    """`model` as a dynamic-range LiteRT model, checked on the probe (same top class, within
    QUANTIZED_TOLERANCE); its file lives until the model is dropped."""
    folder = tempfile.mkdtemp(prefix="mnist-cnn-serve-")
    try:
        with quiet_stderr():
            path = Path(folder) / "model.tflite"
            write_litert(model.model, path, Path(folder), quantize=quantize)
            converted = LiteRtModel(path, threads=1)
        probe = probe_images()
        expected, got = model(probe), converted(probe)
        difference = float(np.abs(expected - got).max())
        if difference > QUANTIZED_TOLERANCE or not (expected.argmax(1) == got.argmax(1)).all():
            raise MnistCnnError(f"the quantised model differs from the Keras model by {difference:.1e} on the probe")
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    weakref.finalize(converted, shutil.rmtree, folder, ignore_errors=True)
    converted.name, converted.info = model.name, model.info
    converted.runtime += ", dynamic-range int8"
    converted.count_params = model.count_params  # type: ignore[method-assign]  (the same weights)
    log.info("serving with %s (max |difference| from Keras on the probe %.1e)", converted.runtime, difference)
    return converted


def write_saved_model(keras_model: Any, path: Path) -> None:
    """A SavedModel with one `serving_default` signature: images (N, 28, 28, 1) -> probabilities
    (or whatever one batch of the model's own input shape gives, for the touching-digit reader)."""
    import keras
    import tensorflow as tf

    shape = tuple(keras_model.input_shape[1:])
    signature = [tf.TensorSpec((None, *shape), tf.float32, name=INPUT_NAME)]  # any batch size
    archive = keras.export.ExportArchive()
    archive.track(keras_model)
    # A named output, so a TF Serving answer and the signature read "probabilities", not "output_0".
    archive.add_endpoint("serve", lambda images: {OUTPUT_NAME: keras_model(images, training=False)},
                         input_signature=signature)
    archive.write_out(str(path), verbose=False)


def write_litert(keras_model: Any, path: Path, staging: Path, quantize: bool = False) -> None:
    """A .tflite file at `path`, through a SavedModel in `staging` (as Keras' own format="litert" does);
    `quantize`: dynamic-range int8 weights (float input and output)."""
    import tensorflow as tf

    saved = staging / "savedmodel"
    write_saved_model(keras_model, saved)
    converter = tf.lite.TFLiteConverter.from_saved_model(str(saved))
    if quantize:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]  # no representative data: dynamic range
    path.write_bytes(converter.convert())


def quantized_parity(keras_model: Any, images: np.ndarray, labels: np.ndarray, model_sha256: str) -> dict[str, Any]:
    """Run the float model and its dynamic-range LiteRT twin on `images` (float (N, 28, 28, 1) in [0, 1]):
    the record `for_serving` asks for (top-1 agreement, both accuracies, the largest difference)."""
    from .runtimes import predict_probabilities

    with tempfile.TemporaryDirectory(prefix="mnist-cnn-quantize-") as folder, quiet_stderr():
        write_litert(keras_model, Path(folder) / "model.tflite", Path(folder), quantize=True)
        quantized = predict_probabilities(LiteRtModel(Path(folder) / "model.tflite"), images)
    exact = predict_probabilities(KerasModel(keras_model), images)
    return {"format": "mnist-cnn quantized 1", "runtime": "litert dynamic-range int8", "model_sha256": model_sha256,
            "images": int(len(images)),
            "top1_agreement": float((quantized.argmax(1) == exact.argmax(1)).mean()),
            "accuracy_float": float((exact.argmax(1) == labels).mean()),
            "accuracy_quantized": float((quantized.argmax(1) == labels).mean()),
            "max_abs_difference": float(np.abs(quantized - exact).max())}


def quantized_record(model_file: Path | str | None) -> dict[str, Any] | None:
    """The parity record beside `model_file` (a symlink's target folder too) if it is for this very file
    and its agreement is at least MIN_AGREEMENT; else None (the model serves in float)."""
    import json

    from ..core.hashing import sha256_file

    if model_file is None:
        return None
    for folder in dict.fromkeys([Path(model_file).parent, Path(model_file).resolve().parent]):
        try:
            record = json.loads((folder / QUANTIZED_RECORD).read_text())
        except (OSError, ValueError):
            continue
        if (isinstance(record, dict) and record.get("model_sha256") == sha256_file(Path(model_file))
                and isinstance(record.get("top1_agreement"), float) and record["top1_agreement"] >= MIN_AGREEMENT):
            return record
    return None


def write_onnx(keras_model: Any, path: Path, signature: list[Any], metadata: dict[str, str]) -> None:
    """Keras' ONNX export (tf2onnx underneath), then names and metadata set with the onnx package."""
    import onnx

    with warnings.catch_warnings():  # Keras' numpy-2 patch of tf2onnx warns about np.object
        warnings.simplefilter("ignore", FutureWarning)
        keras_model.export(str(path), format="onnx", input_signature=signature, opset_version=ONNX_OPSET,
                           verbose=False)
    proto = onnx.load(str(path))
    old = proto.graph.output[0].name  # tf2onnx names it after the graph's last op ("Identity:0")
    for node in proto.graph.node:
        node.output[:] = [OUTPUT_NAME if name == old else name for name in node.output]
        node.input[:] = [OUTPUT_NAME if name == old else name for name in node.input]
    proto.graph.output[0].name = OUTPUT_NAME
    proto.doc_string = f"mnist-cnn {__version__}: {keras_model.name}, {INPUT_NAME} -> {OUTPUT_NAME}"
    onnx.helper.set_model_props(proto, metadata)
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))
