"""A small Keras model that works beside the classifier (the touching-digit reader, the writing
scorer), called on LiteRT once it is shown to give what Keras gives.

A Keras call costs about a millisecond of fixed overhead, far more than these models' own
arithmetic; a LiteRT interpreter costs tens of microseconds. The conversion is an
optimisation only: if it fails, or the converted file answers a probe batch differently
(beyond float rounding, or with another top class), Keras keeps answering and a warning
says why. Keras and TensorFlow load only when a model does.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import weakref
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

MAX_DIFFERENCE = 1e-3  # largest |LiteRT - Keras| output allowed on the probe (float32 rounding is ~1e-6)


def probe_batch(height: int, width: int, count: int = 16, seed: int = 0) -> np.ndarray:
    """float32 (count, height, width, 1): blank, noise and vertical bars, to compare two runtimes."""
    rng = np.random.default_rng(seed)
    probe = np.zeros((count, height, width, 1), np.float32)
    probe[count // 4: count // 2] = rng.random((count // 2 - count // 4, height, width, 1))
    for image in probe[count // 2:]:
        for start in rng.integers(2, width - 8, size=rng.integers(1, 5)):
            image[4:24, start:start + 3] = 1.0
    return probe


class SideModel:
    """A loaded `keras.Model` with an input of `shape` (without the batch axis); `logits` runs it.

    `converted` opens a LiteRT file that another process converted and checked, without Keras
    (serve's workers: TensorFlow need not load there).
    """

    def __init__(self, model: Any, source: Path | str, what: str) -> None:
        self.model = model
        self.source = str(source)
        self.what = what  # e.g. "touching-digit reader": names it in warnings
        self.shape = tuple(model.input_shape[1:]) if model is not None else ()
        self._interpreter: Any = None  # its LiteRT interpreters (`runtimes.SizedInterpreters`) once on LiteRT
        self.litert_file: Path | None = None  # the converted file, while this object lives

    @classmethod
    def converted(cls, path: Path, what: str) -> "SideModel":
        """The LiteRT file at `path` alone (ModelFileError if it cannot be opened); no Keras behind it."""
        from .runtimes import SizedInterpreters

        side = cls(None, path, what)
        side._interpreter = SizedInterpreters(path, threads=1)
        side.shape = side._interpreter.input_shape
        return side

    @property
    def on_litert(self) -> bool:
        return self._interpreter is not None

    def use_litert(self, probe: np.ndarray) -> bool:
        """Convert to LiteRT (float) and answer from it if it matches Keras on `probe`; else keep Keras (logged)."""
        from ..core.system import quiet_stderr
        from .convert import write_litert

        folder = tempfile.mkdtemp(prefix="mnist-cnn-side-")
        path = Path(folder) / "model.tflite"
        try:
            with quiet_stderr():
                write_litert(self.model, path, Path(folder))
            self.open_litert(path, probe)
        except Exception as e:  # conversion is an optimisation: Keras still answers
            shutil.rmtree(folder, ignore_errors=True)
            log.warning("the %s stays on Keras: %s", self.what, str(e).splitlines()[0][:200])
            return False
        self.litert_file = path
        weakref.finalize(self, shutil.rmtree, folder, ignore_errors=True)
        return True

    def open_litert(self, path: Path, probe: np.ndarray) -> None:
        """Answer from the LiteRT file at `path` (converted from this model, e.g. by another process);
        ValueError, and Keras keeps answering, if it differs from Keras on `probe`."""
        from .runtimes import SizedInterpreters

        interpreters = SizedInterpreters(path, threads=1)  # one request, one core, as the classifier serves
        expected = self._keras(probe)
        self._interpreter = interpreters
        got = self._litert(probe)
        worst = float(np.abs(expected - got).max())
        if worst > MAX_DIFFERENCE or not (expected.argmax(-1) == got.argmax(-1)).all():
            self._interpreter = None
            raise ValueError(f"LiteRT differs from Keras by {worst:.1e} on the probe")

    def _keras(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict_on_batch(batch), dtype=np.float64)

    def _litert(self, batch: np.ndarray) -> np.ndarray:
        return self._interpreter(np.ascontiguousarray(batch, dtype=np.float32)).astype(np.float64)

    def logits(self, batch: np.ndarray) -> np.ndarray:
        """float32 (N, *shape) -> float64 outputs, from LiteRT when it is in use."""
        return self._litert(batch) if self._interpreter is not None else self._keras(batch)
