"""Metrics: run a model over a split and score its predictions with scikit-learn.

`compute_metrics` is pure (arrays in, dict out) so it can be checked against hand-computed
values; `predict_probabilities` is the one place a model is run over a split.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from sklearn import metrics as skm

from .atomic import write_json, write_text
from .data import Dataset
from .plots import plot_confusion_matrix, plot_misclassified
from .runs import CLASSIFICATION_REPORT_FILE, CONFUSION_PNG, METRICS_FILE, MISCLASSIFIED_PNG

PREDICT_BATCH_SIZE = 1000  # images per inference batch; large batches are fastest on CPU


def predict_probabilities(model: Any, images: np.ndarray, batch_size: int = PREDICT_BATCH_SIZE) -> np.ndarray:
    """float32 (N, 28, 28, 1) -> class probabilities float32 (N, num_classes)."""
    return np.asarray(model.predict(images, batch_size=batch_size, verbose=0), dtype=np.float32)


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


def write_evaluation(out_dir: Path, dataset: Dataset, probabilities: np.ndarray,
                     extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Score test-set `probabilities` and write metrics.json, the text report and two plots.

    Returns the metrics dict as written (`test` metrics plus any `extra` sections).
    """
    labels = dataset.test_labels.astype(np.int64)
    metrics: dict[str, Any] = {
        "dataset": dataset.name,
        "class_names": list(dataset.class_names),
        "test": compute_metrics(labels, probabilities, dataset.class_names),
        **(extra or {}),
    }
    write_json(out_dir / METRICS_FILE, metrics)
    write_text(out_dir / CLASSIFICATION_REPORT_FILE, classification_report(labels, probabilities, dataset.class_names))
    plot_confusion_matrix(metrics["test"]["confusion_matrix"], dataset.class_names, out_dir / CONFUSION_PNG)
    plot_misclassified(dataset.test_images, labels, probabilities, dataset.class_names, out_dir / MISCLASSIFIED_PNG)
    return metrics
