"""`mnist-cnn calibrate` for a digit model: train the writing scorer, then fit the five-feature rule.

The rule fitted after training (`calibrate.calibrate_split`) measures four things of each
input; on sets it never saw it leaves about 1% of Fashion-MNIST test images and of noise
through, and refuses 1.2-2% of digits sent enlarged or photographed (benchmarks/README.md,
"Not a digit"). Here small CNNs (`writing_model`, 14,081 weights each) learn "writing or
not" from the pixels the classifier sees; the mean logit of MEMBERS of them, trained from
different seeds, joins the rule as a fifth feature (`inference.writing`). Everything is
fitted on training data of the two datasets:

- digits: FIT_DIGITS of the run's *training* split, half raw, a quarter enlarged, a quarter
  as written (`forms`): the forms people send, so that none of them reads as "not writing";
- negatives: the other dataset's *training* images (raw, and enlarged), noise and
  scribbles of the calibration's seed;
- the threshold: the run's *validation* digits (never trained on, by the classifier or the
  scorer), each sent in all three forms, placed so that at most WRITING_TARGET_REFUSED of
  each form is refused.

Measured on unseen sets by `benchmarks/refusal.py`. It costs about 2.5 minutes on 2 cores,
so `train` keeps the quick four-feature rule and says how to get this one.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from ..core.atomic import atomic_path, normal_file_mode
from ..core.errors import MnistCnnError
from ..inference import acceptance
from ..inference.writing import WRITING_FILE, WritingScorer
from ..runs.run import utc_now
from . import negatives
from .forms import as_pixels, enlarged, every_form, sample, sent_forms
from .negatives import SEED, generated_negatives
from .prepared import Preprocessed, inked, refused_share, run_model

if TYPE_CHECKING:
    from ..inference.predict import Predictor

log = logging.getLogger(__name__)

FIT_DIGITS = 9000  # training digits the scorer and the rule learn from (in three forms)
VALIDATION_DIGITS = 6000  # validation digits the threshold is placed on (each in all three forms)
FIT_NEGATIVES = 3000  # of the other dataset's training images, raw; as many enlarged
FIT_NOISE = 3000
FIT_SCRIBBLES = 2000
EPOCHS = 12
# Scorers trained from different seeds differ most on the rare odd digits that place the
# threshold; their mean logit varies less (measured: benchmarks/README.md, "The writing score").
MEMBERS = 3
WIDTHS = (16, 32, 32)  # channels of each member's three convolutions
BATCH_SIZE = 128
LEARNING_RATE = 2e-3
# Per form of validation digits: 0.4% leaves room for test digits being refused about twice as
# often as held-out training ones (measured: benchmarks/results/writing-score-*.json).
WRITING_TARGET_REFUSED = 0.004


def writing_model(seed: int = SEED, name: str = "writing_scorer") -> Any:
    """The scorer's architecture: three small convolutions, global average pooling, one logit."""
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((28, 28, 1)),
                              keras.layers.Conv2D(WIDTHS[0], 3, padding="same", activation="relu"),
                              keras.layers.MaxPooling2D(),
                              keras.layers.Conv2D(WIDTHS[1], 3, padding="same", activation="relu"),
                              keras.layers.MaxPooling2D(),
                              keras.layers.Conv2D(WIDTHS[2], 3, padding="same", activation="relu"),
                              keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(1)], name=name)
    model.compile(keras.optimizers.Adam(LEARNING_RATE), keras.losses.BinaryCrossentropy(from_logits=True))
    return model


def train_scorer(digits: np.ndarray, negative: np.ndarray, seed: int = SEED, epochs: int = EPOCHS,
                 members: int = MEMBERS) -> Any:
    """float32 (N, 28, 28) preprocessed digits and negatives -> a trained scorer: the mean logit of
    `members` `writing_model`s, each trained from its own seed, as one Keras model (one call)."""
    import keras

    x = np.concatenate([digits, negative])[..., np.newaxis]
    y = np.r_[np.ones(len(digits)), np.zeros(len(negative))].astype(np.float32)
    trained = []
    for member in range(members):
        model = writing_model(seed + 1000 * member, f"writing_scorer_{member}" if members > 1 else "writing_scorer")
        model.fit(x, y, batch_size=BATCH_SIZE, epochs=epochs, shuffle=True, verbose=0)
        trained.append(model)
    if members == 1:
        return trained[0]
    images = keras.Input((28, 28, 1))
    mean = keras.layers.Average()([model(images) for model in trained])
    return keras.Model(images, mean, name="writing_scorer")


def save_scorer(model: Any, folder: Path) -> Path:
    """`folder/writing.keras`, written whole or not at all (`core.atomic`)."""
    with atomic_path(Path(folder) / WRITING_FILE) as temp:
        model.save(temp)
        os.chmod(temp, normal_file_mode())  # Keras writes the file anew, private (0600); as any other file
    return Path(folder) / WRITING_FILE


def _prepared(predictor: "Predictor", sources: Sequence[Any], forms: np.ndarray | None = None):
    """Preprocess as `predict` would: (images, probabilities, forms of those kept, how many were blank)."""
    images, kept, blank = inked(predictor.preprocess, sources)
    _, probabilities, _ = run_model(predictor, Preprocessed(images, blank))
    return images, probabilities, None if forms is None else np.asarray(forms)[kept], blank


def calibrate_with_writing(predictor: "Predictor", x_train: np.ndarray, x_val: np.ndarray,
                           negative_images: np.ndarray, negative_name: str, model_path: Path,
                           seed: int = SEED, epochs: int = EPOCHS) -> acceptance.Acceptance:
    """Train and store the writing scorer beside `model_path`, fit the five-feature rule, measure it.

    `x_train`, `x_val`: the run's split (uint8, or float in [0, 1]); `negative_images`: the other
    dataset's training images. Returns the rule (`acceptance.write` stores it next).
    """
    began = time.perf_counter()
    fit_sources, _ = sent_forms(as_pixels(sample(x_train, FIT_DIGITS, seed)), seed)
    held_sources, held_forms = every_form(as_pixels(sample(x_val, VALIDATION_DIGITS, seed)), seed + 2)
    things = sample(negative_images, 2 * FIT_NEGATIVES, seed)
    negative_sets = {f"{negative_name} train": list(things[:FIT_NEGATIVES]),
                     f"{negative_name} train enlarged": enlarged(255 - things[FIT_NEGATIVES:]),
                     "noise (fitted)": negatives.noise_images(FIT_NOISE, seed),
                     "scribbles (fitted)": negatives.scribble_images(FIT_SCRIBBLES, seed)}
    digits, digits_p, _, _ = _prepared(predictor, fit_sources)
    held, held_p, held_forms, held_blank = _prepared(predictor, held_sources, held_forms)
    found = {name: _prepared(predictor, sources) for name, sources in negative_sets.items()}
    negative = np.concatenate([images for images, *_ in found.values()])
    if not len(digits) or not len(negative) or len(held) < 100:
        raise MnistCnnError("calibration needs digits, validation digits and negatives with ink in them; "
                            "got too few of one kind")
    log.info("training the writing scorer on %d digits and %d negatives", len(digits), len(negative))
    started = time.perf_counter()
    model = train_scorer(digits, negative, seed, epochs, MEMBERS)
    training_s = time.perf_counter() - started
    scorer = WritingScorer(model)

    def features(images: np.ndarray, probabilities: np.ndarray) -> np.ndarray:
        return acceptance.features(images, probabilities, acceptance.WRITING_FEATURES, scorer.scores(images))

    negative_p = np.concatenate([p for _, p, _, _ in found.values()])
    rule = acceptance.fit(features(digits, digits_p), features(negative, negative_p), features(held, held_p),
                          WRITING_TARGET_REFUSED, held_forms, acceptance.WRITING_FEATURES)

    def refused(images: np.ndarray, probabilities: np.ndarray, blank: int) -> float:
        return round(refused_share(rule, features(images, probabilities), blank), 4)

    shares = {"validation": refused(held, held_p, held_blank),
              **{f"validation {form}": refused(held[held_forms == form], held_p[held_forms == form], 0)
                 for form in np.unique(held_forms)},
              **{name: refused(images, p, blank) for name, (images, p, _, blank) in found.items()}}
    for name, sources in generated_negatives(seed + 1).items():
        images, p, _, blank = _prepared(predictor, sources)
        shares[name] = refused(images, p, blank)
    save_scorer(model, Path(model_path).resolve().parent)
    details = {"calibrated_utc": utc_now(),
               "images": {"fit digits": len(digits), **{name: len(v[0]) for name, v in found.items()},
                          "validation": len(held)},
               "fitted on": ["fit digits", *found], "refused": shares,
               "writing_scorer": {"parameters": int(model.count_params()), "epochs": epochs, "members": MEMBERS,
                                  "training_s": round(training_s, 1)},
               "seconds": round(time.perf_counter() - began, 1)}
    return replace(rule, details=details)
