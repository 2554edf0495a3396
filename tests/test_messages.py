"""One message table per language: complete, and no English left in a Portuguese figure or summary."""

from __future__ import annotations

import re
import string

import numpy as np
import pytest

from mnist_cnn.core import messages
from mnist_cnn.core.errors import ConfigError


def placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def test_every_table_has_every_key_with_the_same_placeholders():
    for lang, table in messages.TABLES.items():
        assert set(table) == set(messages.EN), lang
        for key, template in table.items():
            assert placeholders(template) == placeholders(messages.EN[key]), (lang, key)
    with pytest.raises(ConfigError, match="unknown language 'fr'"):
        messages.text("loss", "fr")


def english_words() -> set[str]:
    """Words of the English table that its Portuguese twin does not use (so they must not appear)."""
    def words(value: str) -> set[str]:
        return {w.lower() for w in re.findall(r"[A-Za-z]{4,}", re.sub(r"\{[^}]*\}", "", value))}

    english = set().union(*(words(v) for v in messages.EN.values()))
    return english - set().union(*(words(v) for v in messages.PT_BR.values()))


def figure_texts(fig) -> str:
    found = []
    for artist in fig.findobj():
        for getter in ("get_text", "get_label"):
            if hasattr(artist, getter):
                value = getattr(artist, getter)()
                if isinstance(value, str) and not value.startswith("_"):
                    found.append(value)
    return "\n".join(found)


def leftover_english(texts: str) -> set[str]:
    """English words of the message table left in `texts` (identifiers and Keras' own tables aside)."""
    texts = "\n".join(line for line in texts.splitlines()  # Keras' model summary box; TensorFlow's own notes
                      if not re.search("[\u2500-\u257f]|params:|^Model: |^WARNING:", line))
    # Code, not words: block1_conv, model=..., 'model', file and folder names, Python's True and False.
    texts = re.sub(r"\S*[-_/.]\S*[A-Za-z]\S*|\b\w+=|'[^'\n]*'|\b(True|False)\b", "", texts)
    from mnist_cnn.training.models import MODELS

    names = set(MODELS)  # a model's name (`wide`, `deep`) is an identifier, printed bare in tables
    return {w for w in re.findall(r"[A-Za-z]{4,}", texts) if w.lower() in english_words() and w not in names}


def test_portuguese_figures_hold_no_english_label(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    from mnist_cnn.evaluation import plots

    captured: list[Figure] = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, path, **_: captured.append(fig) or path)
    history = {"loss": [0.5, 0.3], "val_loss": [0.4, 0.35], "accuracy": [0.8, 0.9], "val_accuracy": [0.85, 0.88]}
    plots.plot_curves(history, tmp_path / "c.png", lang="pt-BR")
    plots.plot_confusion_matrix([[5, 1], [2, 7]], ["a", "b"], tmp_path / "m.png", lang="pt-BR")
    images = np.zeros((4, 28, 28), np.uint8)
    probabilities = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3], [0.4, 0.6]])
    plots.plot_misclassified(images, np.array([1, 0, 0, 1]), probabilities, ["a", "b"], tmp_path / "x.png",
                             lang="pt-BR")
    plots.plot_samples(images, np.array([0, 1, 0, 1]), ["a", "b"], tmp_path / "s.png", per_class=2, lang="pt-BR")
    assert len(captured) == 4
    for fig in captured:
        texts = figure_texts(fig)
        assert leftover_english(texts) == set(), texts


def test_portuguese_explain_figures_hold_no_english_label():
    import keras

    from mnist_cnn.evaluation import explain
    from mnist_cnn.training.models import build_model

    keras.utils.set_random_seed(0)
    model = build_model("fast")
    image = np.zeros((28, 28), np.float32)
    image[6:22, 12:16] = 1.0
    figures = [explain.explain_figure(model, image, [str(i) for i in range(10)], lang="pt-BR"),
               explain.plot_filters(explain.first_layer_filters(model), lang="pt-BR"),
               explain.plot_feature_maps(explain.feature_maps(model, image), lang="pt-BR"),
               explain.plot_saliency(model, image[None], [1], [str(i) for i in range(10)], lang="pt-BR")]
    for fig in figures:
        texts = figure_texts(fig)
        assert leftover_english(texts) == set(), texts


def test_portuguese_summary_report_and_card(tmp_path):
    from mnist_cnn.data.cards import card_lines
    from mnist_cnn.evaluation.report import results_lines, write_report
    from mnist_cnn.runs.run import Run

    test = {"accuracy": 0.99, "loss": 0.03, "errors": 100, "num_images": 10000,
            "macro": {"precision": 0.99, "recall": 0.99, "f1": 0.99},
            "weighted": {"precision": 0.99, "recall": 0.99, "f1": 0.99},
            "per_class": {"0": {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 5}}}
    metrics = {"dataset": "mnist", "test": test,
               "training": {"epochs_run": 2, "best_epoch": 2, "best_val_loss": 0.04, "best_val_accuracy": 0.98,
                            "train_seconds_total": 20.0, "epoch_time_s_median": 10.0, "train_images_per_s": 5000,
                            "reload_max_abs_diff": 0.0}}
    lines = "\n".join(results_lines(metrics, "pt-BR"))
    assert "acurácia de teste" in lines and leftover_english(lines) == set(), lines
    run = Run(tmp_path)
    run.write_json(Run.metrics, metrics)
    run.write_history([{"epoch": 1, "loss": 0.1, "accuracy": 0.9, "val_loss": 0.1, "val_accuracy": 0.9,
                        "learning_rate": 1e-3, "epoch_time_s": 10.0}])
    report = write_report(run, lang="pt-BR").read_text(encoding="utf-8")
    prose = re.sub(r"`[^`]*`|\([^)]*\.(png|txt)\)", "", report)  # file names and code are not words to translate
    assert "Métricas de teste" in report and leftover_english(prose) == set(), leftover_english(prose)
    card = {"name": "mnist", "source": "mnist", "num_classes": 2, "class_names": ["0", "1"], "sha256": {},
            "splits": {"train": {"images": 2, "class_counts": {"0": 1, "1": 1}, "pixel_mean": 1.0, "pixel_std": 2.0},
                       "test": {"images": 2, "class_counts": {"0": 1, "1": 1}, "pixel_mean": 1.0, "pixel_std": 2.0}}}
    text = "\n".join(card_lines(card, "pt-BR"))
    assert "imagens" in text and leftover_english(text) == set(), text


def test_fashion_class_names_are_shown_in_the_figures_language(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    from mnist_cnn.core.messages import class_label
    from mnist_cnn.data.registry import DATASETS
    from mnist_cnn.evaluation import plots

    names = DATASETS["fashion-mnist"].class_names
    assert [class_label(n, "pt-BR") for n in names][:2] == ["camiseta/top", "calça"]
    assert [class_label(n, "en") for n in names] == list(names) and class_label("7", "pt-BR") == "7"
    captured: list[Figure] = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, path, **_: captured.append(fig) or path)
    plots.plot_confusion_matrix(np.eye(10, dtype=int), names, tmp_path / "c.png", lang="pt-BR")
    labels = [t.get_text() for ax in captured[0].axes for t in ax.get_xticklabels()]
    assert "camiseta/top" in labels and "T-shirt/top" not in labels


@pytest.mark.parametrize(("header", "lang"), [
    ("pt-BR,pt;q=0.9,en;q=0.8", "pt-BR"), ("pt", "pt-BR"), ("PT-pt", "pt-BR"), ("en-US,pt-BR;q=0.5", "en"),
    ("de-DE, pt-BR;q=0.7, en;q=0.3", "pt-BR"), ("fr, *;q=0.1", "en"), ("de", "en"), ("", "en"), (None, "en"),
    ("pt-BR;q=0", "en"), ("pt-BR;q=nan", "en"), ("pt-BR;q=abc, en", "en"), (";;,,;q=", "en"),
    ("en;q=0.2, pt;q=0.9", "pt-BR"), ("x" * 5000, "en"),
])
def test_accept_language_picks_one_of_our_languages_and_never_fails(header, lang):
    assert messages.lang_from_header(header) == lang
