"""Inference backends: one small interface over a Keras model, an ONNX Runtime session and the exports.

An `InferenceModel` has `.name`, `.num_classes`, `.runtime`, `.count_params()` and is
called on a float32 (N, 28, 28, 1) batch of preprocessed images (pixels in [0, 1]) to give
float32 (N, num_classes) probabilities. `Predictor` runs whichever `load_model` returns
(`.keras` or `.onnx`); `export` checks each export through the same interface
(`SavedModelRunner`, `LiteRtModel`). Every model file from outside is checked here once:
one image-shaped input, one probability vector out. Nothing is imported or read at import:
Keras, ONNX Runtime and TensorFlow load only with a model.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import MnistCnnError, ModelFileError, first_line
from ..core.system import default_threads, quiet_stderr, version_of
from ..data.registry import INPUT_SHAPE
from ..runs.run import ModelInfo

INPUT_NAME = "images"  # the exports' input and output names (ONNX, SavedModel signature, LiteRT)
OUTPUT_NAME = "probabilities"
MAX_ONNX_BYTES = 256 * 1024 * 1024  # our largest model is a few MB; refuse a huge file unread
METADATA_PREFIX = "mnist_cnn."  # ONNX metadata_props keys written by `export`
EXTRA_HINT = "pip install 'mnist-cnn[export]'"


class InferenceModel:
    """A loaded classifier: batch float32 (N, 28, 28, 1) in [0, 1] -> float32 (N, num_classes)."""

    name: str
    num_classes: int
    runtime: str  # e.g. "onnxruntime 1.32.0": what runs it, for reports and GET /model
    info: ModelInfo | None = None  # what the file itself says of its dataset and classes (ONNX metadata)
    # (kind, file) that `reload` turns into the same model in another process (serve's
    # workers); None for a model that exists only in memory.
    source_file: tuple[str, Path] | None = None

    def count_params(self) -> int | None:
        raise NotImplementedError

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class KerasModel(InferenceModel):
    """A `keras.Model`, checked by `keras_file.check_classifier`."""

    def __init__(self, model: Any, source: str | Path | None = None) -> None:
        from .keras_file import check_classifier  # Keras is loaded already: the model is one

        check_classifier(model, source or f"model {model.name!r}")
        self.model = model
        self.name = model.name
        self.num_classes = int(model.output_shape[-1])
        self.runtime = f"keras {(version_of('keras') or 'unknown')}"

    def count_params(self) -> int:
        return int(self.model.count_params())

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        # predict() builds a dataset per call, which would dominate a one-image API request;
        # predict_on_batch runs the compiled graph directly.
        return np.asarray(self.model.predict_on_batch(batch), dtype=np.float32)


class OnnxModel(InferenceModel):
    """An ONNX Runtime session on CPU, checked like a Keras model: one image in, probabilities out."""

    def __init__(self, model_bytes: bytes, source: Path, threads: int | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise MnistCnnError(f"running {source} needs ONNX Runtime (onnxruntime is not installed); "
                                f"{EXTRA_HINT}") from None
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or default_threads()
        options.inter_op_num_threads = 1  # a chain of convs has no parallel branches
        # Idle pool threads would otherwise spin on the CPU between requests, starving the server.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3  # errors only: its warnings are not the user's business
        try:  # from bytes: no external-data file next to it is ever opened
            self.session = ort.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
        except Exception as e:  # ORT raises its own types (InvalidProtobuf, Fail, InvalidGraph, ...)
            raise ModelFileError(f"cannot load {source} as an ONNX model ({first_line(e)}); pass a .onnx "
                                 f"written by `mnist-cnn export`") from None
        self._input, self._output, self._batch_size = _check_onnx_signature(self.session, source)
        meta = self.session.get_modelmeta()
        props = dict(meta.custom_metadata_map)
        self.info = info_from_metadata(props, source)
        self.name = props.get(METADATA_PREFIX + "name") or meta.graph_name or source.stem
        self._parameters = _int_or_none(props.get(METADATA_PREFIX + "parameters"))
        self.runtime = f"onnxruntime {ort.__version__}"
        probe = self(np.zeros((1, *INPUT_SHAPE), np.float32))[0]
        _check_probabilities(probe, source)
        self.num_classes = int(probe.shape[0])

    @classmethod
    def load(cls, path: Path, threads: int | None = None) -> "OnnxModel":
        path = Path(path)
        if not path.is_file():
            raise ModelFileError(f"model file {path} does not exist; pass a .onnx written by `mnist-cnn export`")
        with open(path, "rb") as f:
            model_bytes = f.read(MAX_ONNX_BYTES + 1)  # one byte over is enough to refuse it
        if len(model_bytes) > MAX_ONNX_BYTES:
            raise ModelFileError(f"{path} is over the {MAX_ONNX_BYTES:,}-byte limit for a model; it is not a "
                                 f"model of this package")
        model = cls(model_bytes, path, threads)
        model.source_file = ("onnx", path)
        return model

    def count_params(self) -> int | None:
        """From the export's metadata; None for a foreign file (ONNX Runtime does not count them)."""
        return self._parameters

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        if self._batch_size is None:
            return np.asarray(self.session.run([self._output], {self._input: batch})[0], dtype=np.float32)
        # A file exported with a fixed batch size: run it chunk by chunk, the last one zero-padded.
        size, outputs = self._batch_size, []
        for start in range(0, len(batch), size):
            chunk = batch[start:start + size]
            padded = np.concatenate([chunk, np.zeros((size - len(chunk), *INPUT_SHAPE), np.float32)])
            outputs.append(self.session.run([self._output], {self._input: padded})[0][:len(chunk)])
        return np.asarray(np.concatenate(outputs), dtype=np.float32)


def _check_onnx_signature(session: Any, source: Path) -> tuple[str, str, int | None]:
    """(input name, output name, fixed batch size or None); ModelFileError unless one image in, one vector out."""
    inputs, outputs = session.get_inputs(), session.get_outputs()
    shapes = ", ".join(f"{i.shape} {i.type}" for i in inputs)
    if len(inputs) != 1 or inputs[0].type != "tensor(float)" or len(inputs[0].shape) != 4 \
            or tuple(inputs[0].shape[1:]) != INPUT_SHAPE:
        raise ModelFileError(f"{source} takes input(s) {shapes}, not one float (N, 28, 28, 1) image batch; "
                             f"pass a .onnx written by `mnist-cnn export`")
    shapes = ", ".join(f"{o.shape} {o.type}" for o in outputs)
    if len(outputs) != 1 or outputs[0].type != "tensor(float)" or len(outputs[0].shape) != 2 \
            or (isinstance(outputs[0].shape[1], int) and outputs[0].shape[1] < 2):
        raise ModelFileError(f"{source} has output(s) {shapes}, not one (N, classes) probability vector; "
                             f"pass a .onnx written by `mnist-cnn export`")
    batch = inputs[0].shape[0]
    return inputs[0].name, outputs[0].name, batch if isinstance(batch, int) and batch > 0 else None


def _check_probabilities(probe: np.ndarray, source: Path | str) -> None:
    """A blank image's output must be a softmax (as `keras_file.check_classifier` demands of Keras models)."""
    probe = np.asarray(probe, dtype=np.float64)
    if probe.ndim != 1 or probe.shape[0] < 2:
        raise ModelFileError(f"{source} outputs shape {probe.shape} per image, not >= 2 class probabilities; "
                             f"pass a classifier exported by `mnist-cnn export`")
    if not (np.isfinite(probe).all() and probe.min() >= -1e-6 and abs(probe.sum() - 1) < 1e-3):
        raise ModelFileError(f"{source} does not output class probabilities (no softmax: outputs sum to "
                             f"{probe.sum():.3g}); pass a classifier exported by `mnist-cnn export`")


def info_to_metadata(info: ModelInfo, name: str, parameters: int) -> dict[str, str]:
    """ModelInfo -> ONNX metadata_props (strings; lists and dicts as JSON)."""
    values: dict[str, Any] = {"name": name, "parameters": parameters, "dataset": info.dataset,
                              "class_names": list(info.class_names), "preprocessing": info.style,
                              "architecture": info.architecture, "test_metrics": info.test_metrics}
    return {METADATA_PREFIX + key: value if isinstance(value, str) else json.dumps(value)
            for key, value in values.items() if value is not None}


def info_from_metadata(props: dict[str, str], source: Path | str) -> ModelInfo | None:
    """ONNX metadata_props -> ModelInfo; None for a file `export` did not write (no class names)."""
    if METADATA_PREFIX + "class_names" not in props:
        return None
    try:
        names = json.loads(props[METADATA_PREFIX + "class_names"])
        metrics = json.loads(props.get(METADATA_PREFIX + "test_metrics", "null"))
    except ValueError:
        names = metrics = None
    style = props.get(METADATA_PREFIX + "preprocessing", "digit")
    if not (isinstance(names, list) and all(isinstance(n, str) for n in names)) \
            or not isinstance(metrics, (dict, type(None))) or style not in ("digit", "fashion"):
        raise ModelFileError(f"{source} has damaged mnist_cnn metadata (class names, metrics or preprocessing); "
                             f"export the model again with `mnist-cnn export`")
    return ModelInfo(props.get(METADATA_PREFIX + "dataset"), tuple(names), style,
                     props.get(METADATA_PREFIX + "architecture"), metrics)


class SavedModelRunner(InferenceModel):
    """A TensorFlow SavedModel's `serving_default` signature (what TF Serving runs)."""

    def __init__(self, path: Path) -> None:
        import tensorflow as tf

        try:
            signature = tf.saved_model.load(str(path)).signatures["serving_default"]
        except Exception as e:  # OSError, KeyError, ValueError, ...: all "not a usable SavedModel"
            raise ModelFileError(f"cannot load {path} as a SavedModel ({first_line(e)}); export it again") from None
        inputs = signature.structured_input_signature[1]
        outputs = signature.structured_outputs
        if len(inputs) != 1 or len(outputs) != 1 or \
                tuple(next(iter(inputs.values())).shape[1:]) != INPUT_SHAPE:
            raise ModelFileError(f"{path}'s serving signature is {inputs} -> {outputs}, not one (N, 28, 28, 1) "
                                 f"image batch -> one probability vector; export it again")
        self._fn, self._tf = signature, tf
        self._input, self._output = next(iter(inputs)), next(iter(outputs))
        self.name, self.runtime = Path(path).name, f"tensorflow {tf.__version__}"
        self.num_classes = int(next(iter(outputs.values())).shape[-1])

    def count_params(self) -> None:
        return None

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        result = self._fn(**{self._input: self._tf.constant(batch, dtype=self._tf.float32)})
        return np.asarray(result[self._output].numpy(), dtype=np.float32)


def open_interpreter(path: Path, threads: int | None, content: bytes) -> tuple[Any, str]:
    """A LiteRT interpreter of `content` (the bytes of the .tflite file `path`), tensors allocated
    (`ai_edge_litert` if installed, else TensorFlow's), and what runs it. ModelFileError (one
    line) if it cannot be loaded."""
    try:
        from ai_edge_litert.interpreter import Interpreter
        runtime = f"ai-edge-litert {(version_of('ai-edge-litert') or 'unknown')}"
    except ImportError:
        import tensorflow as tf

        Interpreter, runtime = tf.lite.Interpreter, f"tensorflow {tf.__version__} (tf.lite)"
    try:
        with warnings.catch_warnings(), quiet_stderr():  # a deprecation note; the XNNPACK "INFO" line
            warnings.simplefilter("ignore")
            interpreter = Interpreter(model_content=content, num_threads=threads or default_threads())
            interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as e:
        raise ModelFileError(f"cannot load {path} as a LiteRT model ({first_line(e)}); export it again") from None
    return interpreter, runtime


MAX_BATCH_SIZES = 8  # interpreters kept for one model, one per batch size ...
MAX_KEPT_BATCH = 64  # ... of at most this many images; others share one interpreter, resized as needed


class SizedInterpreters:
    """One LiteRT file's interpreters, one per small batch size, each opened at the first batch of its size.

    An interpreter's tensors have one size at a time, and resizing them (`allocate_tensors`)
    at every change of size cost reading a number up to 8% of its time (its calls come in a
    few small sizes: 4.98 against 4.60 ms a touching number on one core, benchmarks/README.md
    "Reading numbers"). Larger batches, and sizes past the first MAX_BATCH_SIZES, share one
    interpreter resized as before, so memory stays bounded whatever the sizes asked for. The
    file is read once, here: later interpreters open from its bytes, so a server's converted
    file removed while it runs (a /tmp cleaner) costs nothing.
    """

    def __init__(self, path: Path, threads: int | None = None) -> None:
        """Open the file at `path` (ModelFileError, one line, if it cannot be read or loaded)."""
        self.path, self.threads = Path(path), threads
        try:
            self._content = self.path.read_bytes()
        except OSError as e:
            raise ModelFileError(f"cannot load {path} as a LiteRT model ({e.strerror}); export it again") from None
        interpreter, self.runtime = open_interpreter(self.path, threads, self._content)
        inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1:
            raise ModelFileError(f"{path} has {len(inputs)} inputs and {len(outputs)} outputs, not one of each; "
                                 f"export it again")
        (source,), (target,) = inputs, outputs
        self.input, self.output = source["index"], target["index"]
        # one example's shapes (the batch axis left out), as the file declares them
        self.input_shape = tuple(int(n) for n in source["shape"][1:])
        self.output_shape = tuple(int(n) for n in target["shape"][1:])
        self._by_size: dict[int, Any] = {int(source["shape"][0]): interpreter}
        self._shared: Any = None  # the one for every other size, and the size its tensors have now
        self._shared_size = -1

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        """float32 batch -> a copy of the output (the interpreter reuses its buffer)."""
        interpreter = self._by_size.get(len(batch))
        if interpreter is None:
            interpreter = self._for_size(len(batch))
        interpreter.set_tensor(self.input, batch)
        interpreter.invoke()
        return np.array(interpreter.get_tensor(self.output))

    def _for_size(self, size: int) -> Any:
        keep = size <= MAX_KEPT_BATCH and len(self._by_size) < MAX_BATCH_SIZES
        if keep:
            interpreter = open_interpreter(self.path, self.threads, self._content)[0]
        else:
            if self._shared is None:
                self._shared = open_interpreter(self.path, self.threads, self._content)[0]
            interpreter = self._shared
            if self._shared_size == size:
                return interpreter
        interpreter.resize_tensor_input(self.input, [size, *self.input_shape])
        interpreter.allocate_tensors()
        if keep:
            self._by_size[size] = interpreter
        else:
            self._shared_size = size
        return interpreter


class LiteRtModel(InferenceModel):
    """A .tflite file in the LiteRT interpreter (`ai_edge_litert` if installed, else TensorFlow's)."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        self._interpreters = SizedInterpreters(path, threads)  # one input and one output, or ModelFileError
        if self._interpreters.input_shape != INPUT_SHAPE:
            raise ModelFileError(f"{path} is not one (N, 28, 28, 1) image batch -> one probability vector; "
                                 f"export it again")
        self.name, self.runtime = Path(path).stem, self._interpreters.runtime
        self.source_file = ("litert", Path(path))
        self.num_classes = self._interpreters.output_shape[-1]

    def count_params(self) -> None:
        return None

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self._interpreters(np.ascontiguousarray(batch, dtype=np.float32)).astype(np.float32, copy=False)


def load_model(path: Path) -> InferenceModel:
    """A `.keras` (Keras safe mode) or `.onnx` (ONNX Runtime) file -> a checked InferenceModel."""
    path = Path(path)
    if path.suffix == ".onnx":
        return OnnxModel.load(path)
    if path.suffix != ".keras":
        raise ModelFileError(f"{path} is neither a .keras nor a .onnx file; pass a model.keras written by "
                             f"`mnist-cnn train` or a .onnx written by `mnist-cnn export`")
    from .keras_file import load_saved_model  # Keras is slow to import, so only here

    model = KerasModel(load_saved_model(path), path)
    model.source_file = ("keras", path)
    return model


def reload(source_file: tuple[str, Path], threads: int | None = None) -> InferenceModel:
    """The model `InferenceModel.source_file` names, loaded again (e.g. in a worker process)."""
    kind, path = source_file
    if kind == "onnx":
        return OnnxModel.load(path, threads)
    if kind == "litert":
        return LiteRtModel(path, threads)
    if kind == "keras":
        return load_model(path)
    raise MnistCnnError(f"unknown model kind {kind!r} for {path}")


def as_inference_model(model: Any) -> InferenceModel:
    """An InferenceModel as is; anything else is taken for a `keras.Model` and checked."""
    return model if isinstance(model, InferenceModel) else KerasModel(model)


PREDICT_BATCH_SIZE = 1000  # images per model call over a split: large batches are fastest on CPU, memory stays bounded


def predict_probabilities(model: Any, images: np.ndarray, batch_size: int = PREDICT_BATCH_SIZE) -> np.ndarray:
    """The one batched inference: float32 (N, 28, 28, 1) in [0, 1] -> float32 (N, num_classes).

    `model` is an InferenceModel (any runtime) or a `keras.Model` (checked and wrapped).
    """
    runner = as_inference_model(model)
    if len(images) == 0:
        return np.zeros((0, runner.num_classes), np.float32)
    return np.concatenate([runner(images[i:i + batch_size]) for i in range(0, len(images), batch_size)])


def _int_or_none(text: str | None) -> int | None:
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None
