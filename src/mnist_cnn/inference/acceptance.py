""""Not a digit": whether an input looks like one of the model's classes at all, and why not.

The rule is a small second model, a logistic regression over four measurements of each
preprocessed image (what the model saw) and the model's answer for it:

- margin: the largest log-probability minus the mean of all of them, i.e. how far the
  winning logit stands above the others (softmax is shift-invariant, so this is the same
  as max logit - mean logit, yet needs only probabilities: any backend, Keras or ONNX);
- coverage: the share of the 28x28 input brighter than 0.5. Digits are pen strokes (about
  15%); a photo of a thing (Fashion-MNIST) prepared as a digit becomes a filled shape;
- stroke: the typical width of those bright parts (`preprocess.stroke_width`), about 2-3 px
  for a digit at MNIST's scale, far more for a filled shape;
- core: the mean brightness of the ink's core, the inked pixels (above INK_FLOOR) whose
  whole 3x3 neighbourhood is inked. A pen stroke's core is solid, however blurred its rim
  (a photographed or resampled digit); a photographed thing keeps its shading inside;
- writing (rules of format 4, written by `mnist-cnn calibrate`): the mean logit of small
  CNNs trained to tell writing from things, noise and doodles (`writing`), stored beside
  the model as writing.keras. The four measurements above leave some noise and photos through;
  this one learns what they miss.

It is fitted on digits of the model's own training split against Fashion-MNIST's
*training* images (MNIST's for a Fashion-MNIST model) plus generated scribbles, and its
threshold is set so that TARGET_REFUSED of the *validation* digits are refused. Why
these and not maximum softmax probability, energy or a Mahalanobis distance on the
penultimate layer: scores from the model alone tell things from digits less well, and a
label-smoothed model's probabilities say less still, while coverage, stroke and core
measure the image itself, whatever the model. The core rather than all the ink's mean
brightness: a rescaled or slanted digit's blurred rim would read as shading
(measurements: benchmarks/README.md, "Not a digit"). All four need only what every
backend gives.

The fitted numbers live in the run folder as `acceptance.json` (`Run.acceptance`),
written by `mnist-cnn calibrate` (`refusal.calibrate.calibrate_model`) and at the end of training.
Files of the previous format (the first three features) are still read and applied.
Without that file, everything is accepted and answers say `calibrated: false`.
NumPy here; scikit-learn only while fitting. No I/O at import.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..core.atomic import write_json
from ..core.errors import RunFileError
from ..core.hashing import sha256_file
from ..core.messages import DEFAULT_LANG, class_label, text
from ..runs.run import Run
from .preprocess import SIDE, erode3, stroke_width, stroke_widths
from .writing import WRITING_FILE

FORMAT = "mnist-cnn acceptance 3"  # bump when the file's meaning changes (2: stroke; 3: core; 4: writing)
FEATURES = ("margin", "coverage", "stroke", "core")  # what every rule measures (after training, too)
WRITING_FORMAT = "mnist-cnn acceptance 4"
WRITING_FEATURES = (*FEATURES, "writing")  # ... and `mnist-cnn calibrate`'s rule for a digit model
# What each format's files hold; older ones are still applied (their rule uses fewer features).
READABLE = {"mnist-cnn acceptance 2": FEATURES[:3], FORMAT: FEATURES, WRITING_FORMAT: WRITING_FEATURES}
COVERAGE_LEVEL = 0.5  # pixels of the 28x28 input above this count as covered
INK_FLOOR = 0.1  # pixels of the 28x28 input above this count as inked (for `core`)
# Share of validation digits the threshold refuses: under the 1% goal, with room for the
# difference between validation and test (a binomial s.d. of ~0.13 points at 6,000 digits).
TARGET_REFUSED = 0.009
FILLED_QUANTILE = 0.99  # coverage above this quantile of validation digits is called a filled shape
LOG_FLOOR = 1e-30  # probabilities are clipped here before the log (float32 softmax underflows to 0)


@dataclass(frozen=True)
class Reason:
    """Why an input was refused, in no language yet: a message key of `core.messages` and its values.

    A value that is itself a Reason is rendered in the same language; `closest` is a class
    name, shown as the language names it (Fashion-MNIST's in Portuguese for pt-BR).
    """

    key: str
    values: dict[str, Any] = field(default_factory=dict)

    def text(self, lang: str = DEFAULT_LANG) -> str:
        values = {name: value.text(lang) if isinstance(value, Reason) else value for name, value in self.values.items()}
        if "closest" in values:
            values["closest"] = class_label(str(values["closest"]), lang)
        return text(self.key, lang, **values)


@dataclass(frozen=True)
class Verdict:
    """Whether one input looks like one of the model's classes; why not, when not."""

    accepted: bool
    why: Reason | None = None
    score: float | None = None  # the rule's score (None when uncalibrated); accepted iff >= threshold

    def reason_in(self, lang: str = DEFAULT_LANG) -> str | None:
        """The reason as one line in `lang` (`core.messages.LANGUAGES`); None when accepted."""
        return None if self.why is None else self.why.text(lang)

    @property
    def reason(self) -> str | None:
        return self.reason_in(DEFAULT_LANG)


ACCEPTED_UNCALIBRATED = Verdict(True)

# Without a calibrated rule, a digit model still refuses what is plainly not writing. Both
# limits lie beyond every MNIST training digit (coverage at most 0.40, stroke at most 6.7 px
# after preprocessing): a filled area or a field of specks, never a pen stroke.
PLAIN_MAX_COVERAGE = 0.45  # share of the 28x28 input above COVERAGE_LEVEL
PLAIN_MAX_STROKE_PX = 8.0  # typical width of the covered parts, in pixels of the 28x28 input
# Scattered dots: salt-and-pepper noise prepared as a digit leaves dots that the calibrated
# rule, which sees coverage and stroke width but not shape, took for thin strokes. A written
# digit's covered pixels are a few large 8-connected pieces; each limit lies beyond every one
# of MNIST's 60,000 training digits (at most 7 pieces; the largest at least 9 px, and at
# least 27% of the covered pixels; medians 1, 101 px and 100%).
PLAIN_MAX_PIECES = 7
PLAIN_MIN_PIECE_PX = 9
PLAIN_MIN_PIECE_SHARE = 0.25


def plain_ink_verdicts(images: np.ndarray) -> list[Verdict]:
    """The checks of an uncalibrated digit model: (N, 28, 28) preprocessed images -> a Verdict each."""
    found = features(images, np.ones((len(images), 2)), ("coverage", "stroke"))
    verdicts = []
    for (coverage, stroke), pieces in zip(found, ink_pieces(images)):
        if coverage > PLAIN_MAX_COVERAGE:
            why = Reason("plain_coverage", {"coverage": float(coverage)})
        elif stroke > PLAIN_MAX_STROKE_PX:
            why = Reason("plain_stroke", {"stroke": float(stroke)})
        elif _is_scattered(pieces):
            why = _scattered(pieces)
        else:
            verdicts.append(ACCEPTED_UNCALIBRATED)
            continue
        verdicts.append(Verdict(False, Reason("plain_refused", {"why": why})))
    return verdicts


def refuse_scattered(images: np.ndarray, verdicts: list[Verdict]) -> list[Verdict]:
    """A calibrated rule's verdicts on a digit model's inputs, with scattered dots refused too."""
    return [Verdict(False, Reason("refused", {"why": _scattered(pieces)}), verdict.score)
            if verdict.accepted and _is_scattered(pieces) else verdict
            for verdict, pieces in zip(verdicts, ink_pieces(images))]


def _is_scattered(pieces: np.ndarray) -> bool:
    count, largest, covered = (int(v) for v in pieces)
    return count > PLAIN_MAX_PIECES or largest < PLAIN_MIN_PIECE_PX or largest < PLAIN_MIN_PIECE_SHARE * covered


def _scattered(pieces: np.ndarray) -> Reason:
    count, largest, covered = (int(v) for v in pieces)
    return Reason("why_scattered", {"pieces": count, "pixels": largest, "covered": covered})


def ink_pieces(images: np.ndarray) -> np.ndarray:
    """(N, 3) per 28x28 input: how many 8-connected pieces its covered pixels form, the largest
    one's size and all covered pixels (0, 0, 0 for none)."""
    from scipy import ndimage  # SciPy is slow to import: only once an image is judged

    structure = np.ones((3, 3), dtype=bool)
    found = np.zeros((len(images), 3), dtype=np.int64)
    for i, image in enumerate(np.asarray(images).reshape(len(images), SIDE, SIDE)):
        labels, count = ndimage.label(image > COVERAGE_LEVEL, structure=structure)
        if count:
            sizes = np.bincount(labels.ravel())[1:]
            found[i] = count, sizes.max(), sizes.sum()
    return found


def features(images: np.ndarray, probabilities: np.ndarray, names: Sequence[str] = FEATURES,
             writing: np.ndarray | None = None) -> np.ndarray:
    """float (N, 28, 28) model inputs + (N, classes) probabilities -> float64 (N, len(names)), in `names` order.

    `writing`: the writing scorer's (N,) logits for these inputs, needed when "writing" is named.
    """
    if "writing" in names and (writing is None or len(writing) != len(probabilities)):
        raise ValueError(f"the writing feature needs the writing scorer's {len(probabilities)} scores, got "
                         f"{None if writing is None else len(writing)}")
    log_p = np.log(np.maximum(np.asarray(probabilities, dtype=np.float64), LOG_FLOOR))
    pixels = np.asarray(images, dtype=np.float64).reshape(len(log_p), SIDE, SIDE)
    covered = pixels > COVERAGE_LEVEL
    columns = {
        "margin": lambda: log_p.max(axis=1) - log_p.mean(axis=1),
        "coverage": lambda: covered.reshape(len(log_p), -1).mean(axis=1),
        "stroke": lambda: _measured(stroke_width, stroke_widths, covered),
        "core": lambda: _measured(core_brightness, core_brightnesses, pixels),
        "writing": lambda: np.asarray(writing, dtype=np.float64),
    }
    return np.column_stack([columns[name]() for name in names]) if len(log_p) else np.zeros((0, len(names)))


FEATURE_CHUNK = 1024  # images measured at once: the erosions' temporaries stay a few MB for any set
STACK_FROM = 8  # fewer images are measured one by one: a served image's measurements take half the time


def _measured(one: Callable[[np.ndarray], float], stacked: Callable[[np.ndarray], np.ndarray],
              images: np.ndarray) -> np.ndarray:
    """A per-image measurement of every image: `stacked` (a stack (n, H, W) -> (n,)) in slices of
    FEATURE_CHUNK images, or `one` (an image -> a float) for fewer than STACK_FROM; the same
    numbers either way (a mean's last bit aside: the stack sums in another order)."""
    if len(images) < STACK_FROM:
        return np.array([one(image) for image in images], dtype=np.float64)
    return np.concatenate([stacked(images[i:i + FEATURE_CHUNK]) for i in range(0, len(images), FEATURE_CHUNK)])


def core_brightness(image: np.ndarray) -> float:
    """Mean brightness of the inked pixels whose 3x3 neighbourhood is all inked; 1.0 if none (thin strokes)."""
    core = erode3(image > INK_FLOOR)
    return float(image[core].mean()) if core.any() else 1.0


def core_brightnesses(images: np.ndarray) -> np.ndarray:
    """`core_brightness` of each image of a stack (N, H, W) in one pass: float64 (N,)."""
    images = np.asarray(images, dtype=np.float64)
    core = erode3(images > INK_FLOOR)
    count = np.count_nonzero(core, axis=(-2, -1))
    total = images.sum(axis=(-2, -1), where=core)  # no masked copy of the stack
    return np.where(count == 0, 1.0, total / np.maximum(count, 1))


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
    feature_names: tuple[str, ...] = FEATURES  # which `features` the vectors above are of (older files: fewer)

    @property
    def uses_writing(self) -> bool:
        """Whether it needs the writing scorer stored beside the model (`writing.WRITING_FILE`)."""
        return "writing" in self.feature_names

    def scores(self, images: np.ndarray, probabilities: np.ndarray, writing: np.ndarray | None = None) -> np.ndarray:
        """(N,) scores; higher looks more like the training classes. `writing`: see `features`."""
        return self._scores(features(images, probabilities, self.feature_names, writing))

    def _scores(self, found: np.ndarray) -> np.ndarray:
        x = (found - np.asarray(self.mean)) / np.asarray(self.scale)
        return self.bias + x @ np.asarray(self.weights)

    def verdicts(self, images: np.ndarray, probabilities: np.ndarray, class_names: Sequence[str],
                 writing: np.ndarray | None = None) -> list[Verdict]:
        """One Verdict per image; a refused one says which measurement gave it away most."""
        found = features(images, probabilities, self.feature_names, writing)
        scores = self._scores(found)
        # Each feature's share of the score: the most negative one names the reason.
        shares = (found - np.asarray(self.mean)) / np.asarray(self.scale) * np.asarray(self.weights)
        verdicts = []
        for score, values, share, p in zip(scores, found, shares, probabilities):
            if score >= self.threshold:
                verdicts.append(Verdict(True, None, float(score)))
                continue
            measured = dict(zip(self.feature_names, values))
            why = self._reason(self.feature_names[int(np.argmin(share))], measured, p, class_names)
            verdicts.append(Verdict(False, Reason("refused", {"why": why}), float(score)))
        return verdicts

    def _reason(self, feature: str, measured: dict[str, float], p: np.ndarray, class_names: Sequence[str]) -> Reason:
        coverage = float(measured["coverage"])
        if coverage > self.filled_coverage:
            return Reason("why_filled", {"coverage": coverage, "limit": self.filled_coverage})
        if feature == "stroke":
            return Reason("why_stroke", {"stroke": float(measured["stroke"])})
        if feature == "core":
            return Reason("why_core", {"core": float(measured["core"])})
        if feature == "writing":
            return Reason("why_not_writing", {"score": float(measured["writing"])})
        best = int(np.argmax(p))
        return Reason("why_no_class", {"closest": str(class_names[best]), "probability": float(p[best])})

    # -- the file ------------------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        record = asdict(self)
        names = record.pop("feature_names")
        record = {"format": next(f for f, n in READABLE.items() if n == tuple(names)), "features": list(names),
                  **record}
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
        names = READABLE.get(record.get("format"))  # type: ignore[arg-type]
        if names is None or record.get("features") != list(names):
            raise bad(f"format {record.get('format')!r}, features {record.get('features')!r}; this version "
                      f"reads {FORMAT!r} with {list(FEATURES)}")
        values: dict[str, Any] = {"feature_names": names}
        for key in ("mean", "scale", "weights"):
            vector = record.get(key)
            if not (isinstance(vector, list) and len(vector) == len(names) and all(_finite(v) for v in vector)):
                raise bad(f"{key!r} must be {len(names)} finite numbers")
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
        target_refused: float = TARGET_REFUSED, validation_forms: np.ndarray | None = None,
        feature_names: tuple[str, ...] = FEATURES) -> Acceptance:
    """Fit the rule: digits (the classes) against negatives, threshold from held-out validation digits.

    Each argument is `features(...)` of a set: (N, len(feature_names)). The logistic regression weights
    both sets equally (balanced), so the threshold, not the sets' sizes, sets the trade-off.
    `validation_forms`: a label per validation image (how it was sent: raw, enlarged, ...); the
    threshold then refuses at most `target_refused` of *each* form, not only of all together.
    """
    from sklearn.linear_model import LogisticRegression  # slow to import: only when fitting

    mean = np.concatenate([digit_features, negative_features]).mean(axis=0)
    scale = np.concatenate([digit_features, negative_features]).std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)  # a constant feature carries no weight either way
    x = (np.concatenate([digit_features, negative_features]) - mean) / scale
    y = np.r_[np.ones(len(digit_features)), np.zeros(len(negative_features))]
    model = LogisticRegression(class_weight="balanced", max_iter=1000).fit(x, y)
    weights, bias = model.coef_[0], float(model.intercept_[0])
    validation_scores = bias + ((validation_features - mean) / scale) @ weights
    # "lower" picks an actual validation score, so at most target_refused of them fall below it.
    forms = np.zeros(len(validation_scores)) if validation_forms is None else np.asarray(validation_forms)
    threshold = min(float(np.quantile(validation_scores[forms == form], target_refused, method="lower"))
                    for form in np.unique(forms))
    filled = float(np.quantile(validation_features[:, 1], FILLED_QUANTILE))
    return Acceptance(tuple(map(float, mean)), tuple(map(float, scale)), tuple(map(float, weights)), bias,
                      threshold, filled, target_refused, feature_names=tuple(feature_names))


def read(path: Path) -> Acceptance | None:
    """The rule stored at `path`; None if there is none; RunFileError (naming it) if it is damaged."""
    path = Path(path)
    record = Run(path.parent).read_json(path.name, required=False,
                                        fix="delete it or run `mnist-cnn calibrate MODEL` again")
    return None if record is None else Acceptance.from_json(record, path)


def write(rule: Acceptance, model_path: Path) -> Path:
    """Store `rule` beside `model_path` (its run folder's acceptance.json), with the model's digest
    (and the writing scorer's, which must be beside the model already if the rule uses it)."""
    model_path = Path(model_path).resolve()  # beside the file itself, not beside a link to it
    details = {**rule.details, "model_file": model_path.name, "model_sha256": sha256_file(model_path)}
    if rule.uses_writing:
        details.update(writing_file=WRITING_FILE, writing_sha256=sha256_file(model_path.parent / WRITING_FILE))
    path = model_path.parent / Run.acceptance
    write_json(path, replace(rule, details=details).to_json())
    return path


def for_model(model_path: Path) -> Acceptance | None:
    """The calibration stored beside `model_path`; None if none; RunFileError if damaged or stale."""
    model_path = Path(model_path).resolve()  # a link keeps the rule of the file it points to
    path = model_path.parent / Run.acceptance
    rule = read(path)
    if rule is not None and rule.details.get("model_file") == model_path.name \
            and rule.details.get("model_sha256") != sha256_file(model_path):
        raise RunFileError(f"{path} was calibrated for another {model_path.name} (its digest differs: "
                           f"retrained?); run `mnist-cnn calibrate {model_path}` again, or delete it")
    if rule is not None and rule.uses_writing:
        scorer = model_path.parent / WRITING_FILE
        problem = ("is missing" if not scorer.is_file() else
                   "is not the one it was fitted with (its digest differs)"
                   if sha256_file(scorer) != rule.details.get("writing_sha256") else None)
        if problem:
            raise RunFileError(f"{path} uses the writing scorer {scorer}, which {problem}; run "
                               f"`mnist-cnn calibrate {model_path}` again, or delete {path.name}")
    return rule
