"""The writing score: how much a preprocessed 28x28 input looks like handwriting, from small CNNs.

The "not a digit" rule (`acceptance`) measures four things of each input and the model's
answer. They tell a photographed thing or a filled shape from a pen stroke, but not every
kind of noise or doodle from a digit: on unseen sets they left 1% of Fashion-MNIST test
images and of noise images through while refusing 1.2-2% of digits sent enlarged or
photographed. A fifth feature learned from the pixels closes that gap (measured in
benchmarks/README.md, "The writing score"): the mean logit of three CNNs of 14,081 weights,
trained by `mnist-cnn calibrate` (`refusal.writing`) on the model's training digits in the
forms people send them against Fashion-MNIST training images, noise and scribbles, stored
as one Keras model: one logit out, higher for writing.

It is stored beside the model as `writing.keras`; the rule's file names it and its digest
(`acceptance.write`), so a rule never runs with another scorer than the one it was fitted
with. Keras loads it only when the first image is judged; `serve` calls it on LiteRT.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..core.errors import ModelFileError
from .preprocess import SIDE
from .side_model import SideModel, probe_batch

WRITING_FILE = "writing.keras"  # beside a model whose rule uses the writing score


class WritingScorer:
    """The writing score's model: float32 (N, 28, 28) preprocessed images -> (N,) logits."""

    def __init__(self, model: Any, source: Path | str = "writing scorer") -> None:
        shape = tuple(model.input_shape[1:]), tuple(model.output_shape[1:])
        if shape != ((SIDE, SIDE, 1), (1,)):
            raise ModelFileError(f"{source} is not a writing scorer: it takes {shape[0]} and gives {shape[1]}, not "
                                 f"({SIDE}, {SIDE}, 1) and (1,); run `mnist-cnn calibrate MODEL` again")
        self.model = model
        self.source = str(source)
        self._side = SideModel(model, source, "writing scorer")

    @classmethod
    def load(cls, path: Path) -> "WritingScorer":
        from .keras_file import load_keras_file

        return cls(load_keras_file(path), path)

    @classmethod
    def converted(cls, path: Path) -> "WritingScorer":
        """The LiteRT file another process converted and checked (`litert_file`), without Keras."""
        scorer = cls.__new__(cls)
        scorer.model, scorer.source = None, str(path)
        scorer._side = SideModel.converted(path, "writing scorer")
        if scorer._side.shape != (SIDE, SIDE, 1):
            raise ModelFileError(f"{path} is not a writing scorer: it takes {scorer._side.shape}")
        return scorer

    @property
    def litert_file(self) -> Path | None:
        """The LiteRT file it answers from (after `use_litert`), for other processes to open."""
        return self._side.litert_file

    def use_litert(self) -> bool:
        """Answer from LiteRT (float) if it scores a probe as Keras does; else keep Keras (logged)."""
        return self._side.use_litert(probe_batch(SIDE, SIDE))

    def scores(self, images: np.ndarray) -> np.ndarray:
        """float (N, 28, 28) -> float64 (N,) logits: higher looks more like writing."""
        batch = np.asarray(images, dtype=np.float32).reshape(-1, SIDE, SIDE, 1)
        if not len(batch):
            return np.zeros(0)
        return self._side.logits(batch)[:, 0]
