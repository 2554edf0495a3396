"""Images as a calibration reads them: through `preprocess` as `predict` prepares them, blank ones
counted apart (`predict` refuses those before the model), then the model's probabilities.

Shared by the quick rule (`calibrate`) and the writing score (`writing`). Nothing at import.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterable

import numpy as np

from ..core.errors import EmptyImageError
from ..inference import acceptance

if TYPE_CHECKING:
    from ..inference.predict import Predictor


def inked(prepare: Callable[[Any], np.ndarray], sources: Iterable[Any]) -> tuple[np.ndarray, list[int], int]:
    """Each source through `prepare`, those with no ink left out: (float32 (N, 28, 28), the indices of
    the sources kept, how many were left out)."""
    images, kept, blank = [], [], 0
    for index, source in enumerate(sources):
        try:
            images.append(prepare(source))
            kept.append(index)
        except EmptyImageError:
            blank += 1
    return (np.stack(images) if images else np.zeros((0, 28, 28), np.float32)), kept, blank


@dataclass(frozen=True)
class Preprocessed:
    """A set of images already through `preprocess`: those with ink (float32 (N, 28, 28)), and how many had none."""

    images: np.ndarray
    blank: int


def preprocess_set(sources: Iterable[Any], style: str) -> Preprocessed:
    """Each source as `predict` prepares it (the slow part of calibrating: ~0.3 ms an image)."""
    from ..inference.preprocess import preprocess

    images, _, blank = inked(lambda source: preprocess(source, style=style), sources)  # type: ignore[arg-type]
    return Preprocessed(images, blank)


def run_model(predictor: "Predictor", sources: Iterable[Any] | Preprocessed) -> tuple[np.ndarray, np.ndarray, int]:
    """Preprocess each source as `predict` would (unless it is `Preprocessed` already) and run the
    model in batches: (images (N, 28, 28), probabilities (N, C), how many had no ink and were left out)."""
    if not isinstance(sources, Preprocessed):
        images, _, blank = inked(predictor.preprocess, sources)
        sources = Preprocessed(images, blank)
    if not len(sources.images):
        return sources.images, np.zeros((0, predictor.num_classes)), sources.blank
    # the predictor runs it in bounded batches
    return sources.images, predictor.probabilities(sources.images), sources.blank


def refused_share(rule: acceptance.Acceptance, found: np.ndarray, blank: int = 0) -> float:
    """Share of a set refused: scored under the threshold, or blank (refused before the model)."""
    total = len(found) + blank
    if total == 0:
        return float("nan")
    return float(((rule._scores(found) < rule.threshold).sum() + blank) / total)
