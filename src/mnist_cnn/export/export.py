"""`mnist-cnn export` as a function: a `.keras` model -> ONNX, TensorFlow SavedModel or LiteRT, checked.

Every export is loaded back with its own runtime (ONNX Runtime; the SavedModel's serving
signature; the LiteRT interpreter), run on the whole test set of the model's dataset and
compared with the Keras model; it is reported done only if the top-1 answers agree on
every image and no probability differs by more than MAX_ABS_DIFF. Files are built in a
temporary folder beside the target and renamed into place only after that check, so a
failed or interrupted export never leaves a file under a final name. Beside the model go
the export record (`<export>.json`: class names, preprocessing, parity, versions) and a
model card (`<export>.md`); a SavedModel keeps them inside its folder (`assets.extra/`,
`MODEL_CARD.md`). Keras, TensorFlow and tf2onnx are imported only by `export_model`.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..core.atomic import write_json, write_text
from ..core.errors import MnistCnnError, ModelFileError
from ..core.hashing import sha256_file
from ..core.version import __version__
from ..data.load import load_dataset
from ..data.prepare import normalize
from ..data.registry import INPUT_SHAPE
from ..inference.convert import write_litert, write_onnx, write_saved_model
from ..inference.runtimes import (
    EXTRA_HINT,
    INPUT_NAME,
    OUTPUT_NAME,
    InferenceModel,
    LiteRtModel,
    OnnxModel,
    SavedModelRunner,
    info_to_metadata,
    predict_probabilities,
    version_of,
)
from ..inference.shipped import resolve_model
from ..runs.run import ModelInfo, Run, dataset_style, utc_now
from .modelcard import model_card

log = logging.getLogger(__name__)

Format = Literal["onnx", "savedmodel", "litert"]
FORMATS: tuple[Format, ...] = ("onnx", "savedmodel", "litert")
SUFFIXES = {"onnx": ".onnx", "litert": ".tflite"}  # file formats; a SavedModel is a folder
SAVEDMODEL_DEFAULT_SUFFIX = "_savedmodel"  # default folder: <model stem>_savedmodel beside the model
SAVEDMODEL_EXTRA = ("assets.extra", "mnist_cnn.json")  # TF Serving's place for files the graph does not use
SAVEDMODEL_CARD = "MODEL_CARD.md"
# Not atomic.TEMP_PREFIX: a run folder's `.tmp-*` leftovers are files that resuming deletes one by one.
STAGING_PREFIX = ".partial-export-"  # the folder an export is built and checked in, beside the target
MIN_AGREEMENT = 1.0  # share of test images whose top-1 class must match the Keras model's
MAX_ABS_DIFF = 1e-4  # largest allowed |p_export - p_keras| over every image and class


class ExportError(MnistCnnError):
    """An export that cannot be written or does not match its Keras model."""


@dataclass(frozen=True)
class Parity:
    """How closely an export's probabilities match the Keras model's on a test set."""

    dataset: str
    images: int
    runtime: str  # what ran the export, e.g. "onnxruntime 1.32.0"
    top1_agreement: float  # share of images with the same top-1 class
    disagreements: int
    max_abs_diff: float  # over every image and class
    max_abs_diff_goal: float = MAX_ABS_DIFF

    @property
    def passed(self) -> bool:
        return self.top1_agreement >= MIN_AGREEMENT and self.max_abs_diff <= self.max_abs_diff_goal


@dataclass(frozen=True)
class ExportResult:
    format: Format
    path: Path  # the exported file, or the SavedModel folder
    metadata_path: Path  # the export record (JSON)
    card_path: Path  # the model card (Markdown)
    parity: Parity
    record: dict[str, Any]


def compare(dataset: str, runtime: str, expected: np.ndarray, got: np.ndarray) -> Parity:
    """Keras probabilities vs an export's, both (N, classes)."""
    differ = int((expected.argmax(axis=1) != got.argmax(axis=1)).sum())
    return Parity(dataset, len(expected), runtime, 1 - differ / len(expected), differ,
                  float(np.abs(expected.astype(np.float64) - got).max()))


def default_output(model_path: Path, fmt: Format) -> Path:
    """Beside the model: model.onnx, model.tflite, model_savedmodel/."""
    if fmt == "savedmodel":
        return model_path.with_name(model_path.stem + SAVEDMODEL_DEFAULT_SUFFIX)
    return model_path.with_suffix(SUFFIXES[fmt])


def output_files(out: Path, fmt: Format) -> tuple[Path, Path]:
    """(export record, model card) of an export at `out`."""
    if fmt == "savedmodel":
        return out.joinpath(*SAVEDMODEL_EXTRA), out / SAVEDMODEL_CARD
    return out.with_name(out.name + ".json"), out.with_name(out.name + ".md")


def export_model(model: str | Path, fmt: Format, out: Path | None = None, dataset: str | None = None, *,
                 data_dir: Path | None = None, **source: Any) -> ExportResult:
    """Export `model` (a .keras file or bundled name) to `fmt` at `out`, check it, and only then commit it.

    `dataset` (default: the model's run, else mnist) is the test set the export is checked
    on; `source` goes to `load_dataset` (mirrors, offline, progress). ExportError (one
    line) for a bad target, a missing converter, or an export below the parity goals.
    """
    from ..inference.open_model import open_model

    if fmt not in FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    model_path = resolve_model(model)
    if not model_path.is_file():  # before the target check, whose folder would be the model's
        raise ModelFileError(f"model file {model_path} does not exist; pass a model.keras written by "
                             f"`mnist-cnn train`")
    out = Path(out) if out is not None else default_output(model_path, fmt)
    _check_target(out, fmt)
    if fmt == "onnx":
        _require_onnx_packages()
    try:  # made first, so an unwritable folder fails before the slow work
        staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=out.parent))
    except OSError as e:
        raise ExportError(f"cannot write into {out.parent}: {e.strerror}; pass -o a path in a writable "
                          f"folder") from None
    try:
        opened = open_model(model_path, rule=False, keras_only=True)  # a bad file fails before any data is read
        keras_model = opened.keras_model()
        data = load_dataset(opened.dataset(dataset), data_dir, **source)
        opened.check_classes(data.num_classes, data.name)
        info = _model_info(opened.run, data)
        images = normalize(data.test_images)  # uint8 (N, 28, 28) -> float32 (N, 28, 28, 1) in [0, 1]
        expected = predict_probabilities(keras_model, images)
        parameters = int(keras_model.count_params())
        built = staging / out.name
        runner = _build(keras_model, fmt, built, staging, info_to_metadata(info, keras_model.name, parameters))
        parity = compare(data.name, runner.runtime, expected, predict_probabilities(runner, images))
        if not parity.passed:
            raise ExportError(f"the {fmt} export disagrees with the Keras model on {data.name}'s test set "
                              f"(top-1 agreement {parity.top1_agreement:.2%}, largest probability difference "
                              f"{parity.max_abs_diff:.1e}; goal {goal_text()}); nothing was "
                              f"written: report it with the model and `pip freeze`")
        record = _record(fmt, out, model_path, keras_model.name, parameters, info, parity)
        metadata_path, card_path = output_files(out, fmt)
        staged_meta, staged_card = output_files(built, fmt)
        staged_meta.parent.mkdir(parents=True, exist_ok=True)
        write_json(staged_meta, record)
        write_text(staged_card, model_card(record))
        _commit(built, out, fmt, staging)
    except OSError as e:
        raise ExportError(f"cannot write {out}: {e.strerror or e}; free some disk space or pick a writable "
                          f"folder") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ExportResult(fmt, out, metadata_path, card_path, parity, record)


def goal_text() -> str:
    """The parity goal in words: "100%, <= 1e-4"."""
    return f"{MIN_AGREEMENT:.0%}, <= {MAX_ABS_DIFF:.0e}".replace("e-0", "e-")


def _check_target(out: Path, fmt: Format) -> None:
    """Refuse, before any work, a target that cannot or must not be written."""
    if not out.parent.is_dir():
        raise ExportError(f"folder {out.parent} does not exist; create it or pass -o a path in an existing folder")
    if fmt == "savedmodel":
        if out.exists() and not (out / "saved_model.pb").is_file():
            raise ExportError(f"{out} exists and is not a SavedModel; pass -o a new folder name (an earlier "
                              f"SavedModel export there would be replaced)")
        return
    if out.suffix != SUFFIXES[fmt]:
        raise ExportError(f"{out} does not end in {SUFFIXES[fmt]}; pass -o a path ending in {SUFFIXES[fmt]}")
    if out.is_dir():
        raise ExportError(f"{out} is a folder; pass -o a file path ending in {SUFFIXES[fmt]}")


def _require_onnx_packages() -> None:
    """An ONNX export needs tf2onnx (Keras converts with it), onnx and ONNX Runtime (the check)."""
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
        import tf2onnx  # noqa: F401
    except ImportError as e:
        raise ExportError(f"ONNX export needs the onnx, onnxruntime and tf2onnx packages ({e.name} is missing); "
                          f"{EXTRA_HINT}") from None


def _model_info(run: Run | None, data: Any) -> ModelInfo:
    """The run's answers about the model, else the test dataset's (class names, preprocessing)."""
    info = run.model_info() if run is not None else ModelInfo(data.name, (), dataset_style(data.name))
    names = info.class_names if len(info.class_names) == data.num_classes else tuple(data.class_names)
    return ModelInfo(info.dataset, names, info.style, info.architecture, info.test_metrics)


def _build(keras_model: Any, fmt: Format, path: Path, staging: Path, metadata: dict[str, str]) -> InferenceModel:
    """Write the export at `path` and load it back with its own runtime."""
    import tensorflow as tf

    signature = [tf.TensorSpec((None, *INPUT_SHAPE), tf.float32, name=INPUT_NAME)]  # any batch size
    if fmt == "onnx":
        write_onnx(keras_model, path, signature, metadata)
        return OnnxModel.load(path)
    if fmt == "savedmodel":
        write_saved_model(keras_model, path)
        return SavedModelRunner(path)
    write_litert(keras_model, path, staging)
    return LiteRtModel(path)


def _record(fmt: Format, out: Path, model_path: Path, name: str, parameters: int, info: ModelInfo,
            parity: Parity) -> dict[str, Any]:
    """The export record: written as JSON beside the model and rendered as its model card."""
    import tensorflow as tf

    classes = len(info.class_names)
    return {
        "format": fmt, "file": out.name, "metadata_file": output_files(Path(out.name), fmt)[0].as_posix(),
        "created_utc": utc_now(),
        "source": {"file": str(model_path), "sha256": sha256_file(model_path)},
        "model": {"name": name, "architecture": info.architecture, "parameters": parameters,
                  "dataset": info.dataset, "class_names": list(info.class_names),
                  "preprocessing": info.style, "test_metrics": info.test_metrics},
        "io": {"input": {"name": INPUT_NAME, "dtype": "float32", "shape": [None, *INPUT_SHAPE], "range": [0, 1]},
               "output": {"name": OUTPUT_NAME, "dtype": "float32", "shape": [None, classes]}},
        "parity": asdict(parity),
        "versions": {"mnist-cnn": __version__, "tensorflow": tf.__version__,
                     **{p: (version_of(p) or 'unknown') for p in ("keras", "onnx", "onnxruntime", "tf2onnx")}},
    }


def _commit(built: Path, out: Path, fmt: Format, staging: Path) -> None:
    """Rename the checked export into place: record and card first, the model last."""
    if fmt == "savedmodel":
        if not out.exists():
            built.rename(out)
            return
        replaced = staging / f"replaced-{out.name}"  # an earlier SavedModel export (checked): removed with staging
        out.rename(replaced)
        try:
            built.rename(out)
        except OSError:
            replaced.rename(out)  # keep the earlier export rather than none
            raise
        return
    for staged, final in zip(output_files(built, fmt), output_files(out, fmt)):
        staged.replace(final)
    built.replace(out)
