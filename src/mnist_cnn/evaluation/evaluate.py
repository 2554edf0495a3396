"""Metrics: run a model over a split and score its predictions with scikit-learn.

`compute_metrics` is pure (arrays in, dict out) so it can be checked against hand-computed
values; `predict_probabilities` is the one place a model is run over a split; `evaluate`
is `mnist-cnn evaluate` as a function. Keras is imported only by `evaluate`.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sklearn import metrics as skm

from ..core.atomic import TEMP_PREFIX
from ..core.errors import MnistCnnError
from ..core.messages import DEFAULT_LANG, check_lang
from ..data.load import load_dataset
from ..data.prepare import normalize
from ..data.registry import Dataset
from ..inference.runtimes import predict_probabilities
from ..runs.run import Run, utc_stamp
from .plots import plot_confusion_matrix, plot_misclassified


def compute_metrics(labels: np.ndarray, probabilities: np.ndarray, class_names: tuple[str, ...]) -> dict[str, Any]:
    """Accuracy, log loss, precision/recall/F1 (macro, weighted, per class) and the confusion matrix.

    `labels`: int (N,) true classes; `probabilities`: (N, num_classes) rows summing to 1.
    """
    class_ids = list(range(len(class_names)))
    predicted = probabilities.argmax(axis=1)
    precision, recall, f1, support = skm.precision_recall_fscore_support(
        labels, predicted, labels=class_ids, zero_division=0)
    result: dict[str, Any] = {
        "num_images": int(len(labels)),
        "accuracy": float(skm.accuracy_score(labels, predicted)),
        "loss": float(skm.log_loss(labels, probabilities, labels=class_ids)),
        "errors": int((predicted != labels).sum()),
    }
    for average in ("macro", "weighted"):
        p, r, f, _ = skm.precision_recall_fscore_support(labels, predicted, labels=class_ids,
                                                         average=average, zero_division=0)
        result[average] = {"precision": float(p), "recall": float(r), "f1": float(f)}
    result["per_class"] = {
        name: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
               "support": int(support[i])}
        for i, name in enumerate(class_names)
    }
    result["confusion_matrix"] = skm.confusion_matrix(labels, predicted, labels=class_ids).tolist()
    return result


def classification_report(labels: np.ndarray, probabilities: np.ndarray, class_names: tuple[str, ...]) -> str:
    """scikit-learn's text report (precision, recall, F1, support per class), 4 decimals."""
    return skm.classification_report(labels, probabilities.argmax(axis=1), labels=list(range(len(class_names))),
                                     target_names=list(class_names), digits=4, zero_division=0)


def write_evaluation(out: Run, dataset: Dataset, probabilities: np.ndarray,
                     extra: dict[str, Any] | None = None, lang: str = DEFAULT_LANG) -> dict[str, Any]:
    """Score test-set `probabilities` and write metrics.json, the text report and two plots into `out`.

    Returns the metrics dict as written (`test` metrics plus any `extra` sections).
    """
    labels = dataset.test_labels.astype(np.int64)
    metrics: dict[str, Any] = {
        "dataset": dataset.name,
        "class_names": list(dataset.class_names),
        "test": compute_metrics(labels, probabilities, dataset.class_names),
        **(extra or {}),
    }
    out.write_json(Run.metrics, metrics)
    out.write_text(Run.classification_report, classification_report(labels, probabilities, dataset.class_names))
    plot_confusion_matrix(metrics["test"]["confusion_matrix"], dataset.class_names, out.confusion, lang=lang)
    plot_misclassified(dataset.test_images, labels, probabilities, dataset.class_names, out.misclassified, lang=lang)
    return metrics


@dataclass(frozen=True)
class Evaluation:
    out_dir: Path
    metrics: dict[str, Any]


def evaluate(model_path: Path, dataset: str | None = None, out: Path | None = None, *,
             data_dir: Path | None = None, lang: str = DEFAULT_LANG, **source: Any) -> Evaluation:
    """Score a saved model on a test set; write metrics, plots and a report into a new folder.

    `dataset` defaults to the one the model's run was trained on (else mnist); `out` to
    `evaluate-<dataset>-<UTC time>/` beside the model. `source` goes to `load_dataset`
    (mirrors, offline, progress). The model is checked against the dataset's class count
    before any folder is made.
    """
    from ..inference.open_model import open_model  # noqa: PLC0415  (Keras: seconds to import)
    from .report import write_report  # noqa: PLC0415

    check_lang(lang)  # before any slow work
    opened = open_model(model_path, rule=False)  # a bad file fails before any data is read or fetched
    model, model_path = opened.model, opened.path
    data = load_dataset(opened.dataset(dataset), data_dir, **source)
    opened.check_classes(data.num_classes, data.name)
    out_dir = Path(out) if out is not None else model_path.parent / f"evaluate-{data.name}-{utc_stamp()}"
    check_output_folder(out_dir)
    probabilities = predict_probabilities(model, normalize(data.test_images))
    staging = stage_folder(out_dir)  # written whole, then moved into place: a kill leaves no half folder
    try:
        report_to = Run(staging)
        metrics = write_evaluation(report_to, data, probabilities,
                                   extra={"model": model.name, "model_file": str(model_path.resolve())}, lang=lang)
        write_report(report_to, lang=lang)
        commit_folder(staging, out_dir)
    except OSError as e:
        raise MnistCnnError(f"cannot write {out_dir}: {e.strerror or e}; free some disk space or pass --out to a "
                            f"writable folder") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Evaluation(out_dir, metrics)


STAGING_PREFIX = ".partial-"  # beside the output folder: an evaluation being written
REPLACED_PREFIX = ".replaced-"  # beside it: the earlier evaluation, until the new one is in place
EVALUATION_FILES = {Run.metrics, Run.classification_report, Run.confusion, Run.misclassified, Run.report}


def check_output_folder(out_dir: Path) -> None:
    """`--out` must be a folder (or not exist yet). Leftovers of a killed evaluation are cleaned, or the
    earlier evaluation put back if the kill came between the two renames of `commit_folder`."""
    for leftover in out_dir.parent.glob(f"{STAGING_PREFIX}{out_dir.name}-*"):
        shutil.rmtree(leftover, ignore_errors=True)
    for replaced in out_dir.parent.glob(f"{REPLACED_PREFIX}{out_dir.name}-*"):
        if out_dir.is_dir():  # the new one made it into place before the kill
            shutil.rmtree(replaced, ignore_errors=True)
        else:  # killed between the two renames: the earlier evaluation comes back
            replaced.rename(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise MnistCnnError(f"--out {out_dir} is a file; pass a folder for the evaluation")


def stage_folder(out_dir: Path) -> Path:
    try:
        out_dir.parent.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f"{STAGING_PREFIX}{out_dir.name}-", dir=out_dir.parent))
    except OSError as e:
        raise MnistCnnError(f"cannot create output folder {out_dir}: {e.strerror}; pass --out to a writable "
                            f"folder") from None


def commit_folder(staging: Path, out_dir: Path) -> None:
    """Put the finished `staging` folder in `out_dir`'s place: by renaming folders when `out_dir` is new or
    holds only an earlier evaluation (it is whole or absent), else file by file into it, the report last,
    so the user's other files stay and a report is never older than the metrics beside it."""
    if out_dir.is_dir() and any(p.name not in EVALUATION_FILES and not p.name.startswith(TEMP_PREFIX)
                                for p in out_dir.iterdir()):
        for name in sorted(p.name for p in staging.iterdir() if p.name != Run.report) + [Run.report]:
            (staging / name).replace(out_dir / name)
        for leftover in out_dir.glob(f"{TEMP_PREFIX}*"):
            leftover.unlink(missing_ok=True)
        return
    if out_dir.is_dir():
        aside = Path(tempfile.mkdtemp(prefix=f"{REPLACED_PREFIX}{out_dir.name}-", dir=out_dir.parent))
        aside.rmdir()
        out_dir.rename(aside)
        staging.rename(out_dir)
        shutil.rmtree(aside, ignore_errors=True)
    else:
        staging.rename(out_dir)
