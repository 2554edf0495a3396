"""Calibrating the "not a digit" rule of a trained model: the data it is fitted on, measured, stored.

`calibrate` fits `acceptance`'s rule from arrays (any images `preprocess` takes);
`calibrate_model` is `mnist-cnn calibrate MODEL`: it finds the model's own training and
validation split through its run folder (the same `data.prepare.prepare_data` split, so the
threshold is set on digits the model never trained on), Fashion-MNIST's *training* images
as the negatives (MNIST's for a Fashion-MNIST model; never a test split) plus generated
scribbles, measures what the fitted rule refuses of other generated noise, scribbles and
letters too (`negatives`), and
writes `acceptance.json` into the run folder. `calibrate_after_training` is the same at
the end of `train.train`, when the negatives are already on disk. Nothing runs at import.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Protocol, Sequence

import numpy as np

from ..core.errors import MnistCnnError
from ..inference import acceptance
from ..runs.run import Run, utc_now
from . import negatives
from .forms import as_pixels, sample
from .negatives import SEED
from .prepared import Preprocessed, preprocess_set, refused_share, run_model

if TYPE_CHECKING:
    from ..data.registry import Dataset
    from ..inference.predict import Predictor

log = logging.getLogger(__name__)

# How many images of each kind. The rule has four weights, so a couple of thousand images a
# side fit it as well as more; the threshold's 1% quantile rests on ~30 validation digits
# below it. Preprocessing every image as `predict` would is most of calibration's time
# (~0.3 ms an image), so these counts are what calibration costs; after a training, a child
# process prepares them while TensorFlow loads (`background`).
FIT_DIGITS = 2000  # training-split images the rule is fitted on
FIT_NEGATIVES = 2000  # negative images of the other dataset it is fitted against
FIT_SCRIBBLES = 300  # ... and generated scribbles
MIN_VALIDATION = 1000  # fewer validation images cannot place a threshold near 1% (10 images below it)
MAX_VALIDATION = 3000  # validation digits the threshold is placed on (a fixed sample of larger splits)


def measure(predictor: "Predictor", sources: Iterable[Any]) -> tuple[np.ndarray, int]:
    """(features (N, len(FEATURES)), images with no ink) of `sources`: blank images are left out of the
    features, as `predict` refuses them before the model."""
    stacked, probabilities, blank = run_model(predictor, sources)
    if not len(stacked):
        return np.zeros((0, len(acceptance.FEATURES))), blank
    return acceptance.features(stacked, probabilities), blank


def calibrate(predictor: "Predictor", fit_digits: Sequence[Any], fit_negatives: Sequence[Any] | dict[str, Sequence[Any]],
              validation: Sequence[Any], measured: dict[str, Sequence[Any]] | None = None,
              target_refused: float = acceptance.TARGET_REFUSED,
              negatives_name: str = "fit negatives") -> acceptance.Acceptance:
    """Fit the rule for `predictor` and measure it: digits vs negatives, threshold on `validation`.

    Images are anything `preprocess` takes (uint8 arrays, bytes, paths). `fit_negatives`: one
    set (named `negatives_name`) or several named sets, fitted on together. `measured`: more
    named sets of negatives, only scored. Each set's refused share lands in `details`.
    """
    count = len(validation.images) + validation.blank if isinstance(validation, Preprocessed) else len(validation)
    if count < MIN_VALIDATION // 10:
        raise MnistCnnError(f"{count} validation images cannot place a threshold; calibrate with at "
                            f"least {MIN_VALIDATION // 10} (better {MIN_VALIDATION}+)")
    negative_sets = fit_negatives if isinstance(fit_negatives, dict) else {negatives_name: fit_negatives}
    digits, _ = measure(predictor, fit_digits)
    negatives_found = {name: measure(predictor, sources) for name, sources in negative_sets.items()}
    negative = np.concatenate([found for found, _ in negatives_found.values()])
    held_out, held_out_blank = measure(predictor, validation)
    if not len(digits) or not len(negative):
        raise MnistCnnError("calibration needs digits and negatives with ink in them; got none of one kind")
    rule = acceptance.fit(digits, negative, held_out, target_refused)
    refused = {"validation": refused_share(rule, held_out, held_out_blank),
               **{name: refused_share(rule, found, blank) for name, (found, blank) in negatives_found.items()}}
    for name, sources in (measured or {}).items():
        refused[name] = refused_share(rule, *measure(predictor, sources))
    details = {"calibrated_utc": utc_now(),
               "images": {"fit digits": len(digits), **{name: len(found) for name, (found, _) in negatives_found.items()},
                          "validation": len(held_out)},
               "fitted on": ["fit digits", *negatives_found],
               "refused": {name: round(share, 4) for name, share in refused.items()}}
    return replace(rule, details=details)


def negative_dataset(style: str) -> str:
    """Which dataset's training images are the negatives: Fashion-MNIST for digits, MNIST for items."""
    return "mnist" if style == "fashion" else "fashion-mnist"


@dataclass
class CalibrationSources:
    """Every image set one calibration reads, as `calibrate`'s arguments: raw, or `Preprocessed`."""

    fit_digits: Any
    fit_negatives: dict[str, Any]
    validation: Any
    measured: dict[str, Any] = field(default_factory=dict)

    def preprocessed(self, style: str) -> "CalibrationSources":
        """The same sets through `preprocess` (what `background.start_preparing` does ahead of time)."""
        return CalibrationSources(preprocess_set(self.fit_digits, style),
                                  {name: preprocess_set(s, style) for name, s in self.fit_negatives.items()},
                                  preprocess_set(self.validation, style),
                                  {name: preprocess_set(s, style) for name, s in self.measured.items()})


class PreparedInputs(Protocol):
    """Calibration inputs prepared elsewhere (`background.Preparing`): the sets, if of this split and style."""

    def result(self, digest: str, style: str) -> CalibrationSources | None: ...


def check_validation_size(x_val: np.ndarray) -> None:
    """MnistCnnError (one line, with the fix) if a run's validation split is too small to place a threshold."""
    if len(x_val) < MIN_VALIDATION:
        raise MnistCnnError(f"the run's validation split has {len(x_val)} images, too few to calibrate (at least "
                            f"{MIN_VALIDATION}); train on more data (--train-limit) or a larger --val-fraction")


def split_sources(x_train: np.ndarray, x_val: np.ndarray, negative_images: np.ndarray, negative_name: str,
                  seed: int = SEED) -> CalibrationSources:
    """The sets a calibration on a training split reads: fixed samples of it, the negatives, generated sets."""
    check_validation_size(x_val)
    # Scribbles are fitted on too: pen strokes that are no class, which the other dataset lacks,
    # so a rule fitted without them lets more through (benchmarks/README.md, "Not a digit").
    # The generated sets measured afterwards are drawn with another seed.
    fit_negatives = {f"{negative_name} train": sample(negative_images, FIT_NEGATIVES, seed),
                     "scribbles (fitted)": negatives.scribble_images(FIT_SCRIBBLES, seed)}
    return CalibrationSources(as_pixels(sample(x_train, FIT_DIGITS, seed)), fit_negatives,
                              as_pixels(sample(x_val, MAX_VALIDATION, seed)), negatives.generated_negatives(seed + 1))


def split_digest(x_train: np.ndarray, x_val: np.ndarray, seed: int = SEED) -> str:
    """A digest of the split's digits a calibration reads: equal digests, the same images."""
    import hashlib

    digest = hashlib.sha256()
    for part in (as_pixels(sample(x_train, FIT_DIGITS, seed)), as_pixels(sample(x_val, MAX_VALIDATION, seed))):
        digest.update(np.ascontiguousarray(part, dtype=np.float32).tobytes())
    return digest.hexdigest()


def calibrate_split(predictor: "Predictor", x_train: np.ndarray, x_val: np.ndarray, negative_images: np.ndarray,
                    negative_name: str, seed: int = SEED,
                    sources: CalibrationSources | None = None) -> acceptance.Acceptance:
    """`calibrate` on a training split: uint8 pixels (N, 28, 28), or float (N, 28, 28[, 1]) in [0, 1] as
    `data.prepare.prepare_data` gives. `sources`: the same sets prepared ahead (`split_sources`)."""
    found = sources or split_sources(x_train, x_val, negative_images, negative_name, seed)
    return calibrate(predictor, found.fit_digits, found.fit_negatives, found.validation, found.measured)


def calibrate_model(model_path: Path, data_dir: Path | None = None, writing: bool = True,
                    **source: Any) -> tuple[Path, acceptance.Acceptance]:
    """`mnist-cnn calibrate MODEL`: fit, measure and store the rule of a model in a run folder.

    A digit model's rule gets the writing score too (`writing.calibrate_with_writing`: a
    scorer trained and stored beside the model), unless `writing=False`: then it is the quick
    four-feature rule that training fits. The data is found (or fetched) as
    `data.load.load_dataset` does; `source` goes to it (`mirrors`, `offline`, `progress`).
    Returns the file written and the rule as stored.
    """
    from ..data.load import load_dataset
    from ..data.prepare import prepare_data
    from ..inference.predict import Predictor
    from ..inference.shipped import resolve_model

    model_path = resolve_model(model_path)  # a shipped model's name works too (its folder holds its run files)
    run = Run.of_model(model_path)
    if run is None:
        raise MnistCnnError(f"{model_path} is not in a run folder (no {Run.config} beside it); calibration needs the "
                            f"run's training and validation split: pass the model.keras of a run")
    config = run.train_config()
    predictor = Predictor.from_path(model_path, acceptance=False)
    dataset = load_dataset(config.dataset, data_dir, **source)
    data = prepare_data(config, dataset)
    negative_name = negative_dataset(predictor.style)
    negative = load_dataset(negative_name, data_dir, **source)
    if writing and predictor.style == "digit":
        from .writing import calibrate_with_writing

        check_validation_size(data.x_val)
        rule = calibrate_with_writing(predictor, data.x_train, data.x_val, negative.train_images, negative_name,
                                      model_path)
    else:
        rule = calibrate_split(predictor, data.x_train, data.x_val, negative.train_images, negative_name)
    path = acceptance.write(rule, model_path)
    return path, acceptance.read(path) or rule


def calibrate_after_training(run: Run, dataset: "Dataset", x_train: np.ndarray, x_val: np.ndarray,
                             model: Any = None, prepared: "PreparedInputs | None" = None) -> Path | None:
    """After training (`training.session`): calibrate the run's model on its split (`x_train`, `x_val`:
    uint8 or [0, 1] images) if the negatives are on disk; else say how. `model`: the trained
    model in memory, which `train` has checked predicts as the saved file does (saves loading it).
    `prepared`: the same sets preprocessed during training (`background.start_preparing`), used
    only if they are of exactly this split and style.

    Never downloads and never fails the training: a problem is logged with the command to run.
    """
    from ..data.idx import load_split
    from ..data.registry import get_spec, locate
    from ..inference.predict import Predictor

    later = f"run `mnist-cnn calibrate {run.model}` to add the \"not a digit\" rule"
    if len(x_val) < MIN_VALIDATION:
        log.info("not calibrating %s: only %d validation images; %s", run.path, len(x_val), later)
        return None
    try:
        negative_name = negative_dataset(run.model_info().style)
        if negative_name == dataset.name:
            log.info("not calibrating %s: it was trained on %s, the negatives' dataset", run.path, negative_name)
            return None
        predictor = (Predictor(model, run.model_info()) if model is not None
                     else Predictor.from_path(run.model, acceptance=False))
        sources = prepared.result(split_digest(x_train, x_val), predictor.style) if prepared is not None else None
        if sources is None:
            folder = locate(negative_name, Path(dataset.source).parent if dataset.source else None)  # no download
            images, _, _ = load_split(get_spec(negative_name), folder, "train")
            sources = split_sources(x_train, x_val, images, negative_name)
        log.info("calibrating the \"not a digit\" rule against %s's training images", negative_name)
        path = acceptance.write(calibrate_split(predictor, x_train, x_val, np.zeros((0, 28, 28), np.uint8),
                                                negative_name, sources=sources), run.model)
        log.info("calibrated the \"not a digit\" rule: %s (`mnist-cnn calibrate %s` adds the writing score: "
                 "fewer photos and less noise let through, fewer digits sent as images refused; about 2.5 minutes)",
                 path, run.model)
        return path
    except MnistCnnError as e:
        log.info("not calibrated: %s; %s", e, later)
        return None
