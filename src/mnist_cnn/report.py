"""The human-readable side of a run: `summary.txt` and `report.md`, built from files on disk.

`write_report` reads only the artifacts in the folder (config.json, metrics.json,
history.csv and the PNGs), so it can rebuild the report of any finished run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .runs import Run


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def results_lines(metrics: dict[str, Any]) -> list[str]:
    """A few lines of headline test metrics, shared by summary.txt and the CLI output."""
    test = metrics["test"]
    lines = [
        f"test accuracy   {_pct(test['accuracy'])}  ({test['errors']} errors in {test['num_images']} images)",
        f"test loss       {test['loss']:.4f}",
        f"macro    precision {test['macro']['precision']:.4f}  recall {test['macro']['recall']:.4f}  "
        f"F1 {test['macro']['f1']:.4f}",
        f"weighted precision {test['weighted']['precision']:.4f}  recall {test['weighted']['recall']:.4f}  "
        f"F1 {test['weighted']['f1']:.4f}",
    ]
    training = metrics.get("training")
    if training:
        lines.insert(0, f"epochs run {training['epochs_run']}, best epoch {training['best_epoch']} "
                        f"(val loss {training['best_val_loss']:.4f}, val accuracy "
                        f"{_pct(training['best_val_accuracy'])}), {training['train_seconds_total']:.0f} s "
                        f"training, {training['epoch_time_s_median']:.1f} s/epoch")
    return lines


def write_summary(run: Run, before: str, after: str, metrics: dict[str, Any]) -> None:
    """Steps 2.1 and 5.1: the architecture before training, then the results after it."""
    text = "\n".join([
        "== Model before training ==", before, "",
        "== After training ==", *results_lines(metrics), "", after, "",
    ])
    run.write_text(Run.summary, text)


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return out + [""]


def write_report(run: Run) -> Path:
    """Write `report.md`: headline, metrics tables, plots, config, data digests, versions.

    Needs metrics.json; config.json and history.csv add their sections when present
    (an evaluation folder has neither).
    """
    metrics = run.read_json(Run.metrics) or {}
    record = run.read_config() if run.config.is_file() else {}
    config, data, env = record.get("config", {}), record.get("data", {}), record.get("environment", {})
    test = metrics["test"]
    title = f"{config.get('model', metrics.get('model', 'model'))} on {metrics['dataset']}"
    md = [f"# Run report: {title}", "",
          f"Folder `{run.path.name}`. Test accuracy **{_pct(test['accuracy'])}** "
          f"({test['errors']} of {test['num_images']} test images wrong). "
          f"The test set was used once, after training; the best epoch was chosen on the validation split.", ""]

    md += ["## Test metrics", ""]
    md += _table(["metric", "macro", "weighted"],
                 [[m, f"{test['macro'][m]:.4f}", f"{test['weighted'][m]:.4f}"] for m in ("precision", "recall", "f1")])
    md += [f"Accuracy {test['accuracy']:.4f}, log loss {test['loss']:.4f}.", ""]

    training = metrics.get("training")
    if training:
        md += ["## Training", ""] + [f"- {line}" for line in results_lines(metrics)[:1]] + [
            f"- training images/s (median epoch): {training['train_images_per_s']}",
            f"- saved model reloaded and checked: max |difference| in test probabilities "
            f"{training['reload_max_abs_diff']:.1e}", ""]
    history = run.read_history()
    if history:
        md += [f"![loss and accuracy curves]({Run.curves})", "",
               "Validation loss rising while training loss falls means overfitting; both still falling "
               "at the end means more epochs would help.", ""]
        md += _table(["epoch", "loss", "accuracy", "val loss", "val accuracy", "lr", "seconds"],
                     [[int(r["epoch"]), f"{r['loss']:.4f}", f"{r['accuracy']:.4f}", f"{r['val_loss']:.4f}",
                       f"{r['val_accuracy']:.4f}", f"{r['learning_rate']:.2e}", f"{r['epoch_time_s']:.1f}"]
                      for r in history])

    md += ["## Per class", ""]
    md += _table(["class", "precision", "recall", "F1", "support"],
                 [[name, f"{v['precision']:.4f}", f"{v['recall']:.4f}", f"{v['f1']:.4f}", v["support"]]
                  for name, v in test["per_class"].items()])
    md += [f"![confusion matrix]({Run.confusion})", "", f"![most confident mistakes]({Run.misclassified})", "",
           f"Full text report: [{Run.classification_report}]({Run.classification_report}).", ""]

    if config:
        md += ["## Configuration", ""] + _table(["setting", "value"], [[k, f"`{v}`"] for k, v in config.items()])
    if data:
        md += ["## Data", "", f"Read from `{data.get('source')}`: {data.get('num_train')} training, "
               f"{data.get('num_val')} validation, {data.get('num_test')} test images.", ""]
        md += _table(["file", "SHA-256 of contents"], [[k, f"`{v}`"] for k, v in data.get("sha256", {}).items()])
    if env:
        md += ["## Environment", ""] + _table(["", "version"], [[k, f"`{v}`"] for k, v in env.items()])
    return run.write_text(Run.report, "\n".join(md))
