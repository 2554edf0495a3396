"""Metrics against values computed by hand (evaluate.py)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mnist_cnn.evaluation.evaluate import classification_report, compute_metrics


def one_hot_probs(predicted, num_classes, confidence=0.8):
    probs = np.full((len(predicted), num_classes), (1 - confidence) / (num_classes - 1), dtype=np.float64)
    probs[np.arange(len(predicted)), predicted] = confidence
    return probs


def test_metrics_match_hand_computed_values():
    # true:      0 0 0 1 1 2
    # predicted: 0 0 1 1 2 2
    labels = np.array([0, 0, 0, 1, 1, 2])
    predicted = np.array([0, 0, 1, 1, 2, 2])
    m = compute_metrics(labels, one_hot_probs(predicted, 3), ("a", "b", "c"))
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["errors"] == 2 and m["num_images"] == 6
    # class a: TP 2, FP 0, FN 1 -> P 1, R 2/3; b: TP 1, FP 1, FN 1 -> P 1/2, R 1/2; c: TP 1, FP 1, FN 0 -> P 1/2, R 1
    pc = m["per_class"]
    assert pc["a"]["precision"] == pytest.approx(1.0) and pc["a"]["recall"] == pytest.approx(2 / 3)
    assert pc["b"]["precision"] == pytest.approx(0.5) and pc["b"]["recall"] == pytest.approx(0.5)
    assert pc["c"]["precision"] == pytest.approx(0.5) and pc["c"]["recall"] == pytest.approx(1.0)
    assert pc["a"]["f1"] == pytest.approx(0.8) and pc["c"]["f1"] == pytest.approx(2 / 3)
    assert [pc[k]["support"] for k in "abc"] == [3, 2, 1]
    assert m["macro"]["precision"] == pytest.approx((1 + 0.5 + 0.5) / 3)
    assert m["macro"]["f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert m["weighted"]["recall"] == pytest.approx((3 * 2 / 3 + 2 * 0.5 + 1 * 1) / 6)
    assert m["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    # log loss: every true class gets 0.8 when right and 0.1 when wrong
    assert m["loss"] == pytest.approx(-(4 * math.log(0.8) + 2 * math.log(0.1)) / 6)


def test_absent_class_gets_zero_not_a_crash():
    labels = np.array([0, 0, 1])
    m = compute_metrics(labels, one_hot_probs(np.array([0, 0, 1]), 3), ("a", "b", "c"))
    assert m["accuracy"] == 1.0
    assert m["per_class"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}


def test_classification_report_names_classes():
    text = classification_report(np.array([0, 1]), one_hot_probs(np.array([0, 0]), 2), ("cat", "dog"))
    assert "cat" in text and "dog" in text and "0.5000" in text


def mistakes_figure(images: np.ndarray, labels: np.ndarray, probabilities: np.ndarray, tmp_path, monkeypatch):
    from mnist_cnn.evaluation import plots

    captured = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, path, **_: captured.append(fig) or path)
    plots.plot_misclassified(images, labels, probabilities, [str(i) for i in range(10)], tmp_path / "m.png")
    (fig,) = captured
    (ax,) = fig.axes
    return fig, ax


def test_the_mistakes_grid_shows_the_most_confident_mistakes_in_order_each_in_its_cell(tmp_path, monkeypatch):
    from mnist_cnn.evaluation import plots

    rng = np.random.default_rng(0)
    n = 40
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = np.zeros(n, dtype=int)
    confidence = rng.uniform(0.3, 0.99, n)
    probabilities = np.full((n, 10), 0.0)
    predicted = np.where(np.arange(n) < 30, 1 + np.arange(n) % 9, 0)  # 30 mistakes, 10 right answers
    probabilities[np.arange(n), predicted] = confidence
    probabilities += (1 - confidence[:, None]) / 10
    fig, ax = mistakes_figure(images, labels, probabilities, tmp_path, monkeypatch)
    shown = np.argsort(-confidence[:30])[:25]  # the 25 surest of the 30 mistakes, surest first
    titles = [t.get_text() for t in ax.texts]
    assert titles == [f"true 0\npred {predicted[i]} ({probabilities[i].max():.0%})" for i in shown]
    assert fig._suptitle.get_text() == "Most confident mistakes (25 of 30 shown)"
    cell_w, cell_h = 28 + plots.CELL_GAP, 28 + plots.CELL_TITLE
    assert len(ax.images) == 25
    for k, (i, shown_image) in enumerate(zip(shown, ax.images)):
        row, col = divmod(k, 5)
        top, left = row * cell_h + plots.CELL_TITLE, col * cell_w + plots.CELL_GAP / 2
        assert np.array_equal(shown_image.get_array(), images[i])
        assert tuple(shown_image.get_extent()) == (left, left + 28, top + 28, top)  # its cell, in reading order
        assert ax.texts[k].get_position() == (left + 14, top - 1)  # its title just above it


def test_no_mistakes_says_so(tmp_path, monkeypatch):
    probabilities = np.eye(10)[[0, 1, 2]]
    fig, ax = mistakes_figure(np.zeros((3, 28, 28), np.uint8), np.array([0, 1, 2]), probabilities, tmp_path,
                              monkeypatch)
    assert [t.get_text() for t in ax.texts] == ["no mistakes on this split"]
    assert fig._suptitle.get_text() == "Most confident mistakes (0 of 0 shown)"
