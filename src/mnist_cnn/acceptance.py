""""Not a digit": whether an input looks like one of the model's classes at all, and why not.

The rule is a small second model, a logistic regression over three measurements of each
preprocessed image (what the model saw) and the model's answer for it:

- margin: the largest log-probability minus the mean of all of them, i.e. how far the
  winning logit stands above the others (softmax is shift-invariant, so this is the same
  as max logit - mean logit, yet needs only probabilities: any backend, Keras or ONNX);
- coverage: the share of the 28x28 input brighter than 0.5. Digits are pen strokes (about
  15%); a photo of a thing (Fashion-MNIST) prepared as a digit becomes a filled shape;
- stroke: the typical width of those bright parts (`preprocess.stroke_width`), about 2-3 px
  for a digit at MNIST's scale, far more for a filled shape.

It is fitted on digits of the model's own training split against Fashion-MNIST's
*training* images (MNIST's for a Fashion-MNIST model), and its threshold is set so that
TARGET_REFUSED of the *validation* digits are refused. Why these and not maximum
softmax probability, energy or a Mahalanobis distance on the penultimate layer: the
measurements are in benchmarks/README.md ("Not a digit"). In short, for the default `cnn`
at 1% of digits refused, this rule refused ~96% of Fashion-MNIST, energy 85%, softmax
probability 58%, Mahalanobis distances on the (PCA-reduced) penultimate layer under 2%;
and it needs only what every backend gives. Its weak spot is a model trained with label
smoothing (the `strong` recipe), whose probabilities say less: see the same section.

The fitted numbers live in the run folder as `acceptance.json` (`Run.acceptance`),
written by `mnist-cnn calibrate` (`calibrate.calibrate_model`) and at the end of training.
Without that file, everything is accepted and answers say `calibrated: false`.
NumPy here; scikit-learn only while fitting. No I/O at import.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .errors import RunFileError
from .preprocess import SIDE, stroke_width

FORMAT = "mnist-cnn acceptance 2"  # bump when the file's meaning changes (2: the stroke feature)
FEATURES = ("margin", "coverage", "stroke")
COVERAGE_LEVEL = 0.5  # pixels of the 28x28 input above this count as covered
# Share of validation digits the threshold refuses: under the 1% goal, with room for the
# difference between validation and test (a binomial s.d. of ~0.13 points at 6,000 digits).
TARGET_REFUSED = 0.009
FILLED_QUANTILE = 0.99  # coverage above this quantile of validation digits is called a filled shape
LOG_FLOOR = 1e-30  # probabilities are clipped here before the log (float32 softmax underflows to 0)


@dataclass(frozen=True)
class Verdict:
    """Whether one input looks like one of the model's classes; a one-line reason when not."""

    accepted: bool
    reason: str | None = None
    score: float | None = None  # the rule's score (None when uncalibrated); accepted iff >= threshold


ACCEPTED_UNCALIBRATED = Verdict(True)


def features(images: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
    """float (N, 28, 28) model inputs + (N, classes) probabilities -> float64 (N, 3): margin, coverage, stroke."""
    log_p = np.log(np.maximum(np.asarray(probabilities, dtype=np.float64), LOG_FLOOR))
    margin = log_p.max(axis=1) - log_p.mean(axis=1)
    covered = np.asarray(images, dtype=np.float64).reshape(len(log_p), SIDE, SIDE) > COVERAGE_LEVEL
    coverage = covered.reshape(len(log_p), -1).mean(axis=1)
    stroke = np.array([stroke_width(mask) for mask in covered], dtype=np.float64)
    return np.column_stack([margin, coverage, stroke])


@dataclass(frozen=True)
class Acceptance:
    """A fitted rule: score = bias + weights . (features - mean) / scale; accepted iff score >= threshold."""

    mean: tuple[float, ...]
    scale: tuple[float, ...]
    weights: tuple[float, ...]
    bias: float
    threshold: float
    filled_coverage: float  # coverage above this reads as a filled shape (for the reason)
    target_refused: float = TARGET_REFUSED
    details: dict[str, Any] = field(default_factory=dict)  # what it was fitted on, what it refuses (measured)

    def scores(self, images: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
        """(N,) scores; higher looks more like the training classes."""
        return self._scores(features(images, probabilities))

    def _scores(self, found: np.ndarray) -> np.ndarray:
        x = (found - np.asarray(self.mean)) / np.asarray(self.scale)
        return self.bias + x @ np.asarray(self.weights)

    def verdicts(self, images: np.ndarray, probabilities: np.ndarray,
                 class_names: Sequence[str]) -> list[Verdict]:
        """One Verdict per image; refused ones say whether the shape or the answer gave them away."""
        found = features(images, probabilities)
        scores = self._scores(found)
        verdicts = []
        for score, (_, coverage, _), p in zip(scores, found, probabilities):
            if score >= self.threshold:
                verdicts.append(Verdict(True, None, float(score)))
                continue
            best = int(np.argmax(p))
            if coverage > self.filled_coverage:
                why = (f"a filled shape, not pen strokes: ink covers {coverage:.0%} of the 28x28 image, the model's "
                       f"classes at most {self.filled_coverage:.0%}")
            else:
                why = f"no class stands out (the closest, {class_names[best]}, at {float(p[best]):.0%})"
            verdicts.append(Verdict(False, f"does not look like any of the model's classes: {why}", float(score)))
        return verdicts

    # -- the file ------------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        record = {"format": FORMAT, "features": list(FEATURES), **asdict(self)}
        for key in ("mean", "scale", "weights"):
            record[key] = list(record[key])
        return record

    @classmethod
    def from_json(cls, record: Any, path: Path) -> "Acceptance":
        """Validate a parsed acceptance.json; RunFileError naming `path` for anything off."""
        def bad(what: str) -> RunFileError:
            return RunFileError(f"{path} is damaged ({what}); delete it or run `mnist-cnn calibrate MODEL` again")

        if not isinstance(record, dict):
            raise bad(f"a JSON {type(record).__name__}, not an object")
        if record.get("format") != FORMAT or record.get("features") != list(FEATURES):
            raise bad(f"format {record.get('format')!r}, features {record.get('features')!r}; this version "
                      f"reads {FORMAT!r} with {list(FEATURES)}")
        values: dict[str, Any] = {}
        for key in ("mean", "scale", "weights"):
            vector = record.get(key)
            if not (isinstance(vector, list) and len(vector) == len(FEATURES) and all(_finite(v) for v in vector)):
                raise bad(f"{key!r} must be {len(FEATURES)} finite numbers")
            values[key] = tuple(float(v) for v in vector)
        if min(values["scale"]) <= 0:
            raise bad("'scale' must be positive")
        for key in ("bias", "threshold", "filled_coverage", "target_refused"):
            if not _finite(record.get(key)):
                raise bad(f"{key!r} must be a finite number")
            values[key] = float(record[key])
        details = record.get("details", {})
        if not isinstance(details, dict):
            raise bad("'details' must be an object")
        return cls(**values, details=details)


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def fit(digit_features: np.ndarray, negative_features: np.ndarray, validation_features: np.ndarray,
        target_refused: float = TARGET_REFUSED) -> Acceptance:
    """Fit the rule: digits (the classes) against negatives, threshold from held-out validation digits.

    Each argument is `features(...)` of a set: (N, 3). The logistic regression weights both
    sets equally (balanced), so the threshold, not the sets' sizes, sets the trade-off.
    """
    from sklearn.linear_model import LogisticRegression  # seconds to import: only when fitting

    mean = np.concatenate([digit_features, negative_features]).mean(axis=0)
    scale = np.concatenate([digit_features, negative_features]).std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)  # a constant feature carries no weight either way
    x = (np.concatenate([digit_features, negative_features]) - mean) / scale
    y = np.r_[np.ones(len(digit_features)), np.zeros(len(negative_features))]
    model = LogisticRegression(class_weight="balanced", max_iter=1000).fit(x, y)
    weights, bias = model.coef_[0], float(model.intercept_[0])
    validation_scores = bias + ((validation_features - mean) / scale) @ weights
    # "lower" picks an actual validation score, so at most target_refused of them fall below it.
    threshold = float(np.quantile(validation_scores, target_refused, method="lower"))
    filled = float(np.quantile(validation_features[:, 1], FILLED_QUANTILE))
    return Acceptance(tuple(map(float, mean)), tuple(map(float, scale)), tuple(map(float, weights)), bias,
                      threshold, filled, target_refused)


def read(path: Path) -> Acceptance | None:
    """The rule stored at `path`; None if there is none; RunFileError (naming it) if it is damaged."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        reason = getattr(e, "strerror", None) or type(e).__name__
        raise RunFileError(f"cannot read {path} ({reason}); delete it or run `mnist-cnn calibrate MODEL` "
                           f"again") from None
    try:
        record = json.loads(text)
    except (ValueError, RecursionError):
        raise RunFileError(f"{path} is damaged (not valid JSON); delete it or run `mnist-cnn calibrate MODEL` "
                           f"again") from None
    return Acceptance.from_json(record, Path(path))
