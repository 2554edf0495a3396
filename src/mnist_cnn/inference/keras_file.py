"""The one loader of `.keras` files: safe mode, a cap on the unpacked size, and a check that the
model is an image classifier (one (28, 28, 1) input, one probability vector out).

Keras is imported with this module; import it only when a model is loaded.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import keras
import numpy as np

from ..core.errors import ModelFileError, first_line
from ..data.registry import INPUT_SHAPE


def load_saved_model(path: Path, num_classes: int | None = None) -> keras.Model:
    """Load a `.keras` file in safe mode (no arbitrary code) and check it is a usable classifier.

    Refused with a one-line ModelFileError: a missing file, another format, a zip whose
    members would unpack past MAX_MODEL_UNPACKED_BYTES (checked before anything is
    decompressed), anything Keras cannot load, and a model that is not one image-shaped
    input -> one probability vector (`check_classifier`), of `num_classes` classes if given.
    """
    model = load_keras_file(path)
    check_classifier(model, path, num_classes)
    return model


def load_keras_file(path: Path) -> keras.Model:
    """Any `.keras` file, loaded as `load_saved_model` loads one, without the classifier check
    (the touching-digit reader's output is a sequence, not one probability vector)."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"model file {path} does not exist; pass the model.keras of a run folder")
    if path.suffix != ".keras":
        raise ModelFileError(f"{path} is not a .keras file; pass a model saved by `mnist-cnn train` (model.keras)")
    _check_archive(path)
    try:
        model = keras.models.load_model(path, safe_mode=True)
    except Exception as e:  # Keras raises many types (ValueError, BadZipFile, OSError, ...)
        raise ModelFileError(f"cannot load {path} as a Keras model ({first_line(e)}); pass a model.keras "
                             f"written by `mnist-cnn train`") from None
    return model

MAX_MODEL_UNPACKED_BYTES = 512 * 1024 * 1024  # our largest model unpacks to ~4 MB; a zip bomb to GBs


def _check_archive(path: Path) -> None:
    """A .keras file is a zip: refuse one whose members declare more than the cap, unread."""
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise ModelFileError(f"cannot load {path}: not a valid .keras (zip) file ({type(e).__name__}); pass a "
                             f"model.keras written by `mnist-cnn train`") from None
    # Keras writes a handful of flat names; a member leaving the archive's folder ("../x", "/x")
    # is an attack on whoever unpacks it (zipfile would only warn and skip it).
    escaping = [m.filename for m in members
                if m.filename.startswith(("/", "\\")) or ".." in m.filename.replace("\\", "/").split("/")]
    if escaping:
        raise ModelFileError(f"{path} holds a member named {escaping[0][:80]!r}, outside the archive; it is not a "
                             f"model of this package")
    declared = sum(member.file_size for member in members)
    if declared > MAX_MODEL_UNPACKED_BYTES:
        raise ModelFileError(f"{path} would unpack to {declared:,} bytes, over the {MAX_MODEL_UNPACKED_BYTES:,}-byte "
                             f"limit for a model; it is not a model of this package")


def check_classifier(model: keras.Model, source: Path | str, num_classes: int | None = None) -> None:
    """One input of shape (28, 28, 1), one output of >= 2 class probabilities, finite weights.

    The output is probed on a blank image: it must be finite, non-negative and sum to 1 (a
    softmax), so every answer later is a probability. ModelFileError names the problem.
    """
    where = f"{source}"
    if len(model.inputs) != 1 or tuple(model.inputs[0].shape[1:]) != INPUT_SHAPE:
        shapes = ", ".join(str(tuple(t.shape[1:])) for t in model.inputs)
        raise ModelFileError(f"{where} takes input(s) of shape {shapes}, not one {INPUT_SHAPE} image; pass a "
                             f"model trained by `mnist-cnn train`")
    if len(model.outputs) != 1 or len(model.outputs[0].shape) != 2 or (model.outputs[0].shape[1] or 0) < 2:
        shapes = ", ".join(str(tuple(t.shape[1:])) for t in model.outputs)
        raise ModelFileError(f"{where} has output(s) of shape {shapes}, not one vector of >= 2 class "
                             f"probabilities; pass a classifier trained by `mnist-cnn train`")
    classes = int(model.outputs[0].shape[1])
    if num_classes is not None and classes != num_classes:
        raise ModelFileError(f"{where} predicts {classes} classes but the dataset has {num_classes}; pass the "
                             f"--dataset the model was trained on")
    if not all(np.isfinite(np.asarray(w)).all() for w in model.weights):
        raise ModelFileError(f"{where} has NaN or infinite weights (training diverged); train it again, "
                             f"e.g. with a lower --learning-rate")
    probe = np.asarray(model(np.zeros((1, *INPUT_SHAPE), np.float32), training=False), dtype=np.float64)[0]
    if not (np.isfinite(probe).all() and probe.min() >= -1e-6 and abs(probe.sum() - 1) < 1e-3):
        raise ModelFileError(f"{where} does not output class probabilities (no softmax: outputs sum to "
                             f"{probe.sum():.3g}); pass a classifier trained by `mnist-cnn train`")
