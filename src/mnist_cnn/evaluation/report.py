"""The human-readable side of a run: `summary.txt` and `report.md`, built from files on disk.

`write_report` reads only the artifacts in the folder (config.json, metrics.json,
history.csv and the PNGs), so it can rebuild the report of any finished run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..core.messages import DEFAULT_LANG, text
from ..runs.run import Run


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}%"


def results_lines(metrics: dict[str, Any], lang: str = DEFAULT_LANG) -> list[str]:
    """A few lines of headline test metrics, shared by summary.txt, the CLI and the notebooks."""
    test = metrics["test"]
    lines = [
        text("results_accuracy", lang, accuracy=_pct(test["accuracy"]), errors=test["errors"],
             images=test["num_images"]),
        text("results_loss", lang, loss=test["loss"]),
        text("results_macro", lang, p=test["macro"]["precision"], r=test["macro"]["recall"], f=test["macro"]["f1"]),
        text("results_weighted", lang, p=test["weighted"]["precision"], r=test["weighted"]["recall"],
             f=test["weighted"]["f1"]),
    ]
    training = metrics.get("training")
    if training:
        lines.insert(0, text("results_epochs", lang, epochs=training["epochs_run"], best=training["best_epoch"],
                             val_loss=training["best_val_loss"] or float("nan"),
                             val_acc=_pct(training["best_val_accuracy"]),
                             seconds=training["train_seconds_total"],
                             per_epoch=training["epoch_time_s_median"] or 0.0))
    return lines


def write_summary(run: Run, before: str, after: str, metrics: dict[str, Any], lang: str = DEFAULT_LANG) -> None:
    """Steps 2.1 and 5.1: the architecture before training, then the results after it."""
    run.write_text(Run.summary, "\n".join([text("summary_before", lang), before, "", text("summary_after", lang),
                                           *results_lines(metrics, lang), "", after, ""]))


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return out + [""]


def write_report(run: Run, lang: str = DEFAULT_LANG) -> Path:
    """Write `report.md` in `lang`: headline, metrics tables, plots, config, data digests, versions.

    Needs metrics.json; config.json and history.csv add their sections when present
    (an evaluation folder has neither).
    """
    metrics = run.read_json(Run.metrics) or {}
    record = run.read_config() if run.config.is_file() else {}
    config, data, env = record.get("config", {}), record.get("data", {}), record.get("environment", {})
    test = metrics["test"]

    def t(key: str, **values: Any) -> str:
        return text(key, lang, **values)

    md = [f"# {t('report_title', model=config.get('model') or metrics.get('model') or t('model'), dataset=metrics['dataset'])}",
          "", t("report_lead", folder=run.path.name, accuracy=_pct(test["accuracy"]), errors=test["errors"],
                images=test["num_images"]), ""]
    md += [f"## {t('test_metrics')}", ""]
    md += _table([t("metric"), t("macro"), t("weighted")],
                 [[t(m), f"{test['macro'][m]:.4f}", f"{test['weighted'][m]:.4f}"] for m in ("precision", "recall", "f1")])
    md += [t("accuracy_loss", accuracy=test["accuracy"], loss=test["loss"]), ""]

    training = metrics.get("training")
    if training:
        md += [f"## {t('training')}", ""] + [f"- {line}" for line in results_lines(metrics, lang)[:1]] + [
            f"- {t('images_per_s', value=training['train_images_per_s'])}",
            f"- {t('reload_check', diff=training['reload_max_abs_diff'])}", ""]
    history = run.read_history()
    if history:
        md += [f"![{t('curves_alt')}]({Run.curves})", "", t("curves_hint"), ""]
        md += _table([t("epoch"), t("loss"), t("accuracy"), t("val_loss"), t("val_accuracy"), t("lr"), t("seconds")],
                     [[int(r["epoch"]), f"{r['loss']:.4f}", f"{r['accuracy']:.4f}", f"{r['val_loss']:.4f}",
                       f"{r['val_accuracy']:.4f}", f"{r['learning_rate']:.2e}", f"{r['epoch_time_s']:.1f}"]
                      for r in history])

    md += [f"## {t('per_class')}", ""]
    md += _table([t("class"), t("precision"), t("recall"), t("f1"), t("support")],
                 [[name, f"{v['precision']:.4f}", f"{v['recall']:.4f}", f"{v['f1']:.4f}", v["support"]]
                  for name, v in test["per_class"].items()])
    md += [f"![{t('confusion_alt')}]({Run.confusion})", "", f"![{t('mistakes_alt')}]({Run.misclassified})", "",
           t("full_report", file=Run.classification_report), ""]

    if config:
        md += [f"## {t('configuration')}", ""] + _table([t("setting"), t("value")],
                                                        [[k, f"`{v}`"] for k, v in config.items()])
    if data:
        md += [f"## {t('data')}", "", t("data_lead", source=data.get("source"), train=data.get("num_train"),
                                        val=data.get("num_val"), test=data.get("num_test")), ""]
        md += _table([t("file"), t("sha256")], [[k, f"`{v}`"] for k, v in data.get("sha256", {}).items()])
    if env:
        md += [f"## {t('environment')}", ""] + _table(["", t("version")], [[k, f"`{v}`"] for k, v in env.items()])
    return run.write_text(Run.report, "\n".join(md))
