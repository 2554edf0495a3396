"""Using a trained model: `Predictor` loads it once and reads images the way MNIST was made.

Every image goes through `preprocess.preprocess` (steps documented there), the one path
the CLI, the API and the page share, so what is served is what was trained on: MNIST's
recipe, or Fashion-MNIST's for models trained on fashion-mnist. The model is a `.keras`
file or an `.onnx` export (run by ONNX Runtime, `runtimes`): same preprocessing, same
answers. Class names and preprocessing come from the ONNX file's metadata, else the run
folder beside the model (`config.json`), else 0..N-1.
Nothing runs at import; Keras or ONNX Runtime is imported only when a model is loaded.
"""

from __future__ import annotations

import io
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Sequence

import numpy as np
from PIL import Image

from ..core.atomic import write_bytes
from ..core.errors import ImageError, MnistCnnError, ModelOutputError
from ..core.messages import DEFAULT_LANG, check_lang
from ..runs.run import ModelInfo
from .acceptance import ACCEPTED_UNCALIBRATED, Acceptance, Verdict, plain_ink_verdicts, refuse_scattered
from .preprocess import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_PIXELS,
    Step,
    Style,
    model_input,
    preprocess,
    preprocess_steps,
    to_uint8,
)
from .runtimes import predict_probabilities
from .touching import READER_FILE, StripDigit, TouchingReader
from .writing import WRITING_FILE, WritingScorer

log = logging.getLogger(__name__)

DEFAULT_TOP_K = 3  # classes listed per image
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".ppm", ".pgm", ".pnm"}


@dataclass(frozen=True)
class Prediction:
    """The model's answer for one image."""

    source: str  # file name, "-" for stdin, "upload", ...
    probabilities: np.ndarray  # float (num_classes,), sums to 1
    class_names: tuple[str, ...]
    image: np.ndarray  # uint8 (28, 28): what the model saw, white ink on black
    top_k: int = DEFAULT_TOP_K
    accepted: bool = True  # whether the input looks like one of the model's classes at all (`acceptance`)
    reason: str | None = None  # one line, when not accepted
    calibrated: bool = False  # whether `accepted` came from a calibration (else it is always True)

    @property
    def top(self) -> list[dict[str, Any]]:
        """The top-k classes, most probable first: {"class", "index", "probability"}."""
        order = np.argsort(-self.probabilities, kind="stable")[:self.top_k]
        return [{"class": self.class_names[i], "index": int(i), "probability": float(self.probabilities[i])}
                for i in order]

    def to_dict(self, include_image: bool = False) -> dict[str, Any]:
        best = self.top[0]
        result: dict[str, Any] = {"source": self.source, "predicted": best["class"], "index": best["index"],
                                  "probability": best["probability"], "top": self.top,
                                  "probabilities": [float(p) for p in self.probabilities],
                                  "accepted": self.accepted, "reason": self.reason, "calibrated": self.calibrated}
        if include_image:
            result["image"] = self.image.tolist()
        return result


class Predictor:
    """A loaded model plus its class names; `predict` takes images in any form `preprocess` takes.

    Thread-safe: preprocessing runs in the caller's thread, the model call under a lock.
    """

    acceptance: Acceptance | None = None  # the "not a digit" rule from the run folder; None: uncalibrated

    def __init__(self, model: Any, info: ModelInfo | None = None, max_bytes: int = DEFAULT_MAX_BYTES,
                 max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        from .runtimes import as_inference_model

        self.backend = as_inference_model(model)  # a keras.Model is checked and wrapped here
        self.model = model  # as given: the keras.Model (explain and notebooks use it) or an OnnxModel
        self.info = info or self.backend.info or ModelInfo(dataset=None, class_names=(), style="digit")
        self.num_classes = self.backend.num_classes
        names = self.info.class_names
        if len(names) != self.num_classes:
            if names:
                log.warning("run lists %d class names for a %d-class model; using 0..%d",
                            len(names), self.num_classes, self.num_classes - 1)
            names = tuple(str(i) for i in range(self.num_classes))
        self.class_names = names
        self.style: Style = self.info.style
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels
        self.file: str | None = None  # where the model was loaded from, if from a file
        # A touching-digit reader beside the model file (`touching.READER_FILE`), loaded when a
        # number is first read; None: touching digits are split by this model's judgement alone.
        self.reader_file: Path | None = None
        self.reader_on_litert = False  # set by `serve_with`: the reader then runs on LiteRT too
        self._reader: TouchingReader | None = None
        # The writing scorer beside the model, when its rule uses one (`writing`), loaded at the first
        # judged image; `writing_litert`: a LiteRT file of it to answer from (set by `serve_with`).
        self.writing_file: Path | None = None
        self.writing_litert: Path | None = None
        self._writing: WritingScorer | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_path(cls, model_path: Path, *, acceptance: bool = True, **limits: int) -> "Predictor":
        """Load a `.keras` (safe mode) or `.onnx` file, checked, with what it or its run folder says about it.

        An ONNX export carries its class names and preprocessing in its metadata; without
        them (or for a `.keras`), the run folder beside the file is asked. So is the
        "not a digit" rule (`acceptance.json`), unless `acceptance=False` (calibration itself).
        """
        from .open_model import open_model
        from .runtimes import KerasModel

        opened = open_model(model_path, rule=acceptance)
        loaded = opened.model
        model = loaded.model if isinstance(loaded, KerasModel) else loaded  # Keras users get the keras.Model
        predictor = cls(model, opened.info, **limits)
        predictor.file = str(opened.path)
        predictor.acceptance = opened.rule
        beside = Path(opened.path).resolve()  # a link keeps what lies beside the file it points to
        if opened.rule is not None and opened.rule.uses_writing:
            predictor.writing_file = beside.with_name(WRITING_FILE)  # `open_model` checked its digest
        reader_file = beside.with_name(READER_FILE)
        if predictor.style == "digit" and predictor.num_classes == 10 and reader_file.is_file():
            predictor.reader_file = reader_file
        return predictor

    def touching_reader(self) -> TouchingReader | None:
        """The reader of touching digits that came with this model, loaded once; None if it has none.

        A shipped reader is checked against the digest written beside it (ModelFileError if it fails).
        """
        if self.reader_file is None:
            return None
        with self._lock:
            if self._reader is None:
                from .shipped import DIGEST_SUFFIX, check_digest
                from .touching import TouchingReader

                if self.reader_file.with_name(self.reader_file.name + DIGEST_SUFFIX).exists():
                    check_digest(self.reader_file, "touching-digit reader")
                self._reader = TouchingReader.open(self.reader_file, litert=self.reader_on_litert)
            return self._reader

    def writing_scorer(self) -> WritingScorer:
        """The writing scorer of this model's rule, loaded once: from `writing_litert` (a LiteRT file
        the server converted and checked) when set, else from the .keras file beside the model."""
        if self.writing_file is None:
            raise MnistCnnError("this model's \"not a digit\" rule uses no writing scorer")
        with self._lock:
            if self._writing is None:
                self._writing = (WritingScorer.converted(self.writing_litert) if self.writing_litert is not None
                                 else WritingScorer.load(self.writing_file))
            return self._writing

    def read_strips(self, strips: np.ndarray) -> list[list[StripDigit]]:
        """float32 (N, STRIP_HEIGHT, STRIP_WIDTH) strips -> the digits the touching-digit reader reads in each."""
        reader = self.touching_reader()
        if reader is None:
            raise MnistCnnError("this model has no touching-digit reader beside it (reader.keras); train one "
                                "with `mnist-cnn train-reader`")
        with self._lock:
            return reader.read(strips)

    def serve_with(self, runtime: str = "auto") -> None:
        """Make the model calls on a faster runtime (`convert.for_serving`: LiteRT or ONNX Runtime,
        checked against Keras on a probe batch); the answers stay the same. With "auto", a model
        whose `quantized.json` shows >= 99.9% top-1 agreement on its test set serves in int8."""
        from .convert import for_serving, quantized_record

        from .runtimes import KerasModel

        with self._lock:
            self.backend = for_serving(self.backend, runtime, quantized_record(self.file))
        self.reader_on_litert = not isinstance(self.backend, KerasModel)
        if self.reader_on_litert and self.writing_file is not None:  # convert once; workers open the file
            scorer = self.writing_scorer()
            if scorer.use_litert():
                self.writing_litert = scorer.litert_file

    def describe(self) -> dict[str, Any]:
        """Name, dataset, classes, parameter count and the run's test metrics (for GET /model)."""
        return {"name": self.backend.name, "architecture": self.info.architecture,
                "dataset": self.info.dataset, "preprocessing": self.style,
                "classes": list(self.class_names), "parameters": self.backend.count_params(),
                "runtime": self.backend.runtime, "test_metrics": self.info.test_metrics}

    def probabilities(self, images: np.ndarray) -> np.ndarray:
        """float32 (N, 28, 28) preprocessed images -> (N, num_classes) probabilities."""
        batch = model_input(images)  # (N, 28, 28) -> (N, 28, 28, 1)
        with self._lock:  # one model call at a time; the runtime parallelises inside it
            probabilities = np.asarray(predict_probabilities(self.backend, batch), dtype=np.float64)
        if not np.isfinite(probabilities).all():  # never a NaN in an answer (nor in the API's JSON)
            raise ModelOutputError("the model gave non-finite probabilities for this image; it cannot score "
                                   "it (try another image, or retrain the model)")
        return probabilities

    @property
    def calibrated(self) -> bool:
        return self.acceptance is not None

    def acceptance_of(self, images: np.ndarray, probabilities: np.ndarray) -> list[Verdict]:
        """Whether each preprocessed image (N, 28, 28) looks like one of the classes; all accepted if uncalibrated."""
        if self.acceptance is None:  # a digit model still refuses what is plainly not writing
            return plain_ink_verdicts(images) if self.style == "digit" else [ACCEPTED_UNCALIBRATED] * len(probabilities)
        verdicts = self.acceptance.verdicts(images, probabilities, self.class_names, self._writing_scores(images))
        return refuse_scattered(images, verdicts) if self.style == "digit" else verdicts

    def acceptance_scores(self, images: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
        """The calibrated rule's (N,) scores (accepted iff >= its threshold); MnistCnnError if uncalibrated."""
        if self.acceptance is None:
            raise MnistCnnError("this model has no calibrated \"not a digit\" rule; run `mnist-cnn calibrate MODEL`")
        return self.acceptance.scores(images, probabilities, self._writing_scores(images))

    def _writing_scores(self, images: np.ndarray) -> np.ndarray | None:
        if self.acceptance is None or not self.acceptance.uses_writing:
            return None
        scorer = self.writing_scorer()
        with self._lock:  # one call at a time, as the classifier's: an interpreter is not thread-safe
            return scorer.scores(images)

    def preprocess(self, source: Any) -> np.ndarray:
        """One image (bytes, path, Pillow image or 0..255 array) -> float32 (28, 28)."""
        return preprocess(source, self.max_bytes, self.max_pixels, self.style)

    def predict(self, sources: Sequence[Any], top_k: int = DEFAULT_TOP_K,
                names: Sequence[str] | None = None, lang: str = DEFAULT_LANG) -> list[Prediction]:
        """Preprocess every image, run them as one batch, return one Prediction each.

        Raises ImageError for the first bad image; `names` label the results (default: the paths);
        a refusal's reason is written in `lang` (`core.messages.LANGUAGES`).
        """
        if not sources:
            return []
        images = np.stack([self.preprocess(s) for s in sources])  # (N, 28, 28)
        labels = list(names) if names is not None else [str(s) if isinstance(s, (str, Path)) else "image"
                                                        for s in sources]
        return self.predict_preprocessed(images, labels, top_k, lang)

    def predict_preprocessed(self, images: np.ndarray, names: Sequence[str],
                             top_k: int = DEFAULT_TOP_K, lang: str = DEFAULT_LANG) -> list[Prediction]:
        """float32 (N, 28, 28) from `preprocess` -> one Prediction each; top_k clamped to 1..num_classes."""
        return self.predict_requests(images, names, [top_k] * len(images), [lang] * len(images))

    def predict_requests(self, images: np.ndarray, names: Sequence[str], top_ks: Sequence[int],
                         langs: Sequence[str]) -> list[Prediction]:
        """`predict_preprocessed` for images of different requests: one model call and one rule for all,
        each image with its own top_k and language (a serve worker answering waiting requests together)."""
        for lang in set(langs):
            check_lang(lang)  # an unknown language fails every time, not only when an image is refused
        probabilities = self.probabilities(images)
        verdicts = self.acceptance_of(images, probabilities)
        return [Prediction(name, p, self.class_names, to_uint8(img), max(1, min(int(k), self.num_classes)),
                           v.accepted, v.reason_in(lang), self.calibrated)
                for name, p, img, v, k, lang in zip(names, probabilities, images, verdicts, top_ks, langs)]


def collect_images(arguments: Sequence[str], stdin: BinaryIO | None = None,
                   max_bytes: int = DEFAULT_MAX_BYTES) -> list[tuple[str, bytes | Path]]:
    """Command-line inputs -> (name, source) pairs: files, folders (their images, sorted), `-` (stdin).

    Checks every path before any model is loaded, so a typo fails in a second, not after TF starts.
    """
    inputs: list[tuple[str, bytes | Path]] = []
    for argument in arguments:
        if argument == "-":
            if stdin is None:
                raise ImageError("- (stdin) is not available here; pass a file instead")
            inputs.append(("-", stdin.read(max_bytes + 1)))  # one byte over is enough to refuse it
            continue
        path = Path(argument)
        if path.is_dir():
            found = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise ImageError(f"folder {path} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))}); "
                                 f"pass image files or another folder")
            inputs.extend((str(p), p) for p in found)
        elif path.is_file():
            inputs.append((str(path), path))
        else:
            raise ImageError(f"{path} does not exist; pass image files, folders of them, or - for stdin")
    return inputs


def save_preprocessed(folder: Path, predictions: Sequence[Prediction]) -> list[Path]:
    """Write each prediction's 28x28 model input as `folder/<input name>.png` (unique names)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise MnistCnnError(f"cannot create {folder}: {e.strerror}; pass --save-preprocessed a writable folder")
    written: list[Path] = []
    for prediction in predictions:
        stem = "stdin" if prediction.source == "-" else Path(prediction.source).stem or "image"
        path, n = folder / f"{stem}.png", 1
        while path in written or path.exists():
            path, n = folder / f"{stem}-{n}.png", n + 1
        buffer = io.BytesIO()
        Image.fromarray(prediction.image, mode="L").save(buffer, format="PNG")
        write_bytes(path, buffer.getvalue())
        written.append(path)
    return written


def save_preprocessing_steps(folder: Path, name: str, steps: Sequence[Step]) -> list[Path]:
    """Write each step's image, at its own size, as 8-bit grayscale `folder/<name>/<NN>-<step>.png`.

    NN counts from 01 in the steps' order (`preprocess_steps`); files of an earlier run with
    the same names are replaced. `name` is one folder name, e.g. the input file's stem.
    """
    if not name or Path(name).name != name or name in (".", ".."):
        raise ValueError(f"step folder name {name!r} must be a single folder name")
    target = Path(folder) / name
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise MnistCnnError(f"cannot create {target}: {e.strerror}; pass --save-preprocessed a writable folder")
    written: list[Path] = []
    for number, step in enumerate(steps, start=1):
        path = target / f"{number:02d}-{step.name}.png"
        buffer = io.BytesIO()
        Image.fromarray(to_uint8(step.image), mode="L").save(buffer, format="PNG")
        write_bytes(path, buffer.getvalue())
        written.append(path)
    return written


def predict_inputs(predictor: Predictor, inputs: Sequence[tuple[str, Any]], top_k: int = DEFAULT_TOP_K,
                   save_to: Path | None = None, steps: bool = False,
                   lang: str = DEFAULT_LANG) -> tuple[list[Prediction], list[dict[str, str]]]:
    """`mnist-cnn predict` as a function: (name, source) pairs -> predictions and per-image errors.

    An image that cannot be read becomes an error entry ({"source", "error"}) instead of
    hiding the others' answers. With `save_to`, each model input is written as
    `save_to/<name>.png`; with `steps` too, every preprocessing step as `save_to/<name>/NN-step.png`.
    Refusal reasons are written in `lang`.
    """
    names, images, errors, sources = [], [], [], []
    for name, source in inputs:
        try:
            images.append(predictor.preprocess(source))
            names.append(name)
            sources.append(source)
        except ImageError as e:
            errors.append({"source": name, "error": str(e) if str(e).startswith(name) else f"{name}: {e}"})
    predictions = predictor.predict_preprocessed(np.stack(images), names, top_k, lang) if images else []
    if save_to is not None:
        saved = save_preprocessed(save_to, predictions)
        if steps:  # named like the input's <name>.png; one image's steps in memory at a time
            for path, source in zip(saved, sources):
                found = preprocess_steps(source, predictor.max_bytes, predictor.max_pixels, predictor.style)
                save_preprocessing_steps(save_to, path.stem, found)
    return predictions, errors


def format_prediction(prediction: Prediction) -> str:
    """One line: `name: 7 (0.982)  1 (0.011)  2 (0.004)`."""
    return f"{prediction.source}: " + "  ".join(f"{t['class']} ({t['probability']:.3f})" for t in prediction.top)
