"""Reading digits that touch: a strip of ink in, the digits it holds out, with where each one lies.

Connected components separate digits that stand apart (`segment`); a component that
holds several touching or overlapping digits has no clean place to cut, so a model reads
it whole instead. The model (`training/reader.py` trains it) is segmentation-free: a
small CNN looks at the component scaled to a STRIP_HEIGHT x STRIP_WIDTH strip and
scores, for each of its COLUMNS bands of BAND columns, "digit 0-9 or nothing here" (CTC, the
Connectionist Temporal Classification of Graves et al. 2006). The string is read off
the bands: the best class per band, repeats merged, "nothing" dropped (greedy decoding).
Each digit's band positions give its place in the ink, so the caller can cut the ink
there (at the column of least ink between two digits' centres) for boxes and images.

Why CTC and not a length classifier plus one classifier per position: the same weights
read a digit wherever it stands in the strip, so every digit of every training strip
teaches them, and the number of digits is not capped by a head count (measured in
benchmarks/README.md, "Reading touching digits").

`strip_from_ink` is the one preparation training and reading share. NumPy and Pillow;
a reader is loaded when a `TouchingReader` is made: from its LiteRT twin when `reader.json`
vouches for it (no Keras), else with Keras.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from ..core.errors import ModelFileError
from ..core.hashing import sha256_file
from .preprocess import INK_LEVEL, MIN_STROKE_PX, TARGET_STROKE_PX, _bounding_box, _dilate, _max_pool, stroke_width
from .side_model import SideModel, probe_batch

log = logging.getLogger(__name__)

STRIP_HEIGHT = 28  # the strip the reader sees (px): MNIST's height ...
STRIP_WIDTH = 112  # ... and room for four MNIST-sized digits side by side
STRIP_INK = 20  # the ink's height in the strip, as MNIST fits a digit's longer side into 20 px
STRIP_MARGIN = 2  # px kept free at the strip's left and right ends
BAND = 4  # strip columns per output band: the model pools the width by 4 (a reader says its own)
COLUMNS = STRIP_WIDTH // BAND
BLANK = 0  # CTC's "nothing here" class; digit d is class d + 1
READER_FILE = "reader.keras"  # beside a digit model: its touching-digit reader, if it has one
# Beside a reader: the same reader converted to LiteRT when it was trained, in int8 (dynamic
# range) when that reads the test strips as the reader does (`training.reader.write_checked_twin`).
# Converting at first use costs 1 s for a conv reader but 8 s for a GRU one (its 28 unrolled
# steps), and a GRU's first Keras call 1.4 s of tracing. The twin answers alone when reader.json
# names both files' digests (`trusted_twin`), after a probe against the reader otherwise (which
# only a float twin passes), and is converted afresh (float) if it is missing or differs.
LITERT_SUFFIX = ".tflite"


def litert_twin(reader_file: Path) -> Path:
    """Where the LiteRT twin of the reader at `reader_file` lies (reader.keras -> reader.tflite)."""
    return reader_file.with_suffix(LITERT_SUFFIX)


def write_litert_twin(model: Any, reader_file: Path, quantize: bool = False) -> Path:
    """Convert a reader's Keras `model` (saved at `reader_file`) to its LiteRT twin, atomically;
    `quantize`: dynamic-range int8 weights (float in and out)."""
    import tempfile

    from ..core.atomic import atomic_path
    from ..core.system import quiet_stderr
    from .convert import write_litert

    twin = litert_twin(reader_file)
    with tempfile.TemporaryDirectory(prefix="mnist-cnn-reader-") as staging, atomic_path(twin) as partial, \
            quiet_stderr():
        write_litert(model, partial, Path(staging), quantize=quantize)
    return twin


@dataclass(frozen=True)
class StripLayout:
    """Where the ink went in the strip: ink column = left + (strip column - offset) / scale."""

    left: int  # the ink crop's first column in the ink image
    top: int
    offset: int  # the strip column where the crop's column 0 landed
    scale: float  # strip px per ink px

    def ink_column(self, strip_column: float) -> float:
        return self.left + (strip_column - self.offset) / self.scale


def strip_from_ink(ink: np.ndarray) -> tuple[np.ndarray, StripLayout]:
    """Ink (float (h, w), white on black, 0 = none) -> float32 (STRIP_HEIGHT, STRIP_WIDTH) and its layout.

    Crop to the ink, fit its height to STRIP_INK px (or its width to the strip, if wider),
    keep thin strokes as `mnist_from_ink` does (max-pool a big crop, dilate a pen line),
    centre it. The caller makes sure there is ink.
    """
    ink = np.asarray(ink, dtype=np.float32)
    rows, cols = _bounding_box(ink)
    image = ink[rows, cols]
    pooled = 1
    if image.shape[0] > 4 * STRIP_INK:  # a big photo's strokes survive max-pooling, not averaging
        pooled = math.ceil(image.shape[0] / (4 * STRIP_INK))
        image = _max_pool(image, pooled)
    def fit(shape: tuple[int, ...]) -> float:  # strip px per (pooled) ink px
        return min(STRIP_INK / shape[0], (STRIP_WIDTH - 2 * STRIP_MARGIN) / shape[1])

    scale = fit(image.shape)
    width = stroke_width(image > INK_LEVEL)
    grown = 0
    if width * scale < MIN_STROKE_PX:
        grown = math.ceil((TARGET_STROKE_PX / scale - width) / 2)
        image = _dilate(image, grown)  # grows by `grown` px on every side
        scale = fit(image.shape)
    height_px, width_px = (max(1, round(n * scale)) for n in image.shape)
    resized = Image.fromarray(image, mode="F").resize((width_px, height_px), Image.Resampling.LANCZOS)
    fitted = np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)
    if fitted.max() > 0:
        fitted /= fitted.max()
    strip = np.zeros((STRIP_HEIGHT, STRIP_WIDTH), np.float32)
    top, offset = (STRIP_HEIGHT - height_px) // 2, (STRIP_WIDTH - width_px) // 2
    strip[max(0, top):top + height_px, offset:offset + width_px] = fitted[max(0, -top):STRIP_HEIGHT - top]
    # strip column s <- pooled column (s - offset) / scale - grown <- ink column of the crop times `pooled`
    layout = StripLayout(cols.start - grown * pooled, rows.start, offset, scale / pooled)
    return strip, layout


@dataclass(frozen=True)
class StripDigit:
    """One digit read from a strip: its class, the model's probability and its bands' centre (strip px)."""

    digit: int
    probability: float
    centre: float


def decode(probabilities: np.ndarray, band: int = BAND) -> list[StripDigit]:
    """One strip's (bands, 11) probabilities -> its digits, left to right (greedy CTC decoding);
    `band` strip columns per band."""
    best = probabilities.argmax(axis=1)
    digits: list[StripDigit] = []
    start = 0
    for end in range(1, len(best) + 1):
        if end < len(best) and best[end] == best[start]:
            continue
        if best[start] != BLANK:  # a run of one class is one digit
            run = probabilities[start:end, best[start]]
            digits.append(StripDigit(int(best[start]) - 1, float(run.max()),
                                     float((start + end) / 2 * band)))
        start = end
    return digits


def trusted_twin(reader_file: Path) -> Path | None:
    """The LiteRT twin of the reader at `reader_file` if the record beside it (`reader.json`,
    written by `train-reader` after checking the twin against the reader on a probe) names
    the SHA-256 of both files as they are; else None."""
    twin = litert_twin(reader_file)
    try:
        record = json.loads(reader_file.with_suffix(".json").read_text(encoding="utf-8"))
        vouched = (isinstance(record, dict) and twin.is_file()
                   and record.get("reader_sha256") == sha256_file(reader_file)
                   and record.get("litert_sha256") == sha256_file(twin))
    except (OSError, ValueError):  # no record, not JSON, a file unreadable
        return None
    return twin if vouched else None


class TouchingReader:
    """A touching-digit reader: strips in, digits out. Loaded from a `.keras` file (`load`), or
    from its vouched-for LiteRT twin without Keras (`open`)."""

    def __init__(self, model: Any, source: Path | str = "reader", side: SideModel | None = None) -> None:
        if side is None:
            shape = tuple(model.input_shape[1:3]), tuple(model.output_shape[1:])
        else:  # a LiteRT file alone
            shape = side._interpreter.input_shape[:2], side._interpreter.output_shape
        bands = shape[1][0] if len(shape[1]) == 2 else None
        if shape[0] != (STRIP_HEIGHT, STRIP_WIDTH) or shape[1][-1:] != (11,) or not bands or STRIP_WIDTH % bands:
            raise ModelFileError(f"{source} is not a touching-digit reader: it takes {shape[0]} and gives {shape[1]}, "
                                 f"not ({STRIP_HEIGHT}, {STRIP_WIDTH}) and (bands, 11)")
        self.band = STRIP_WIDTH // bands  # strip columns per band
        self.model = model  # None when it runs from its LiteRT twin alone
        self.source = str(source)
        self._side = side or SideModel(model, source, "touching-digit reader")

    @classmethod
    def load(cls, path: Path) -> "TouchingReader":
        from .keras_file import load_keras_file

        return cls(load_keras_file(path), path)

    @classmethod
    def open(cls, path: Path, litert: bool = False) -> "TouchingReader":
        """The reader at `path` for reading: from its LiteRT twin when the record beside it vouches
        for both files (no Keras: a GRU reader's first Keras call costs 1.4 s of tracing); else
        loaded with Keras and, with `litert`, moved to LiteRT (`use_litert`)."""
        twin = trusted_twin(Path(path))
        if twin is not None:
            try:
                return cls(None, path, SideModel.converted(twin, "touching-digit reader"))
            except ModelFileError as e:
                log.warning("%s: %s; reading with Keras", twin, str(e).splitlines()[0][:200])
        reader = cls.load(Path(path))
        if litert:
            reader.use_litert()
        return reader

    def use_litert(self) -> None:
        """Make the calls on LiteRT (float), which has far less overhead per call than Keras,
        if it reads a probe of strips as Keras does; else keep Keras (logged). The LiteRT twin
        beside the reader's file (`litert_twin`) is used when it reads the probe alike."""
        if self._side.on_litert:  # opened from its twin, or moved already
            return
        probe = probe_batch(STRIP_HEIGHT, STRIP_WIDTH)
        twin = litert_twin(Path(self.source))
        if Path(self.source).suffix == ".keras" and twin.is_file():
            try:
                self._side.open_litert(twin, probe)
                return
            except (ValueError, OSError, ModelFileError) as e:  # unreadable, or not this reader's twin: convert
                log.warning("%s is not %s converted (%s); converting it afresh", twin, self.source,
                            str(e).splitlines()[0][:200])
        self._side.use_litert(probe)

    def probabilities(self, strips: np.ndarray) -> np.ndarray:
        """float32 (N, STRIP_HEIGHT, STRIP_WIDTH) -> (N, bands, 11) class probabilities per band."""
        logits = self._side.logits(strips[..., np.newaxis])
        exp = np.exp(logits - logits.max(axis=-1, keepdims=True))  # the model gives logits, as CTC wants
        return (exp / exp.sum(axis=-1, keepdims=True)).astype(np.float32)

    def read(self, strips: np.ndarray) -> list[list[StripDigit]]:
        return [decode(p, self.band) for p in self.probabilities(strips)]
