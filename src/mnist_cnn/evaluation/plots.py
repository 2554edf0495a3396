"""Pictures of a run, one function each, drawn with matplotlib's Figure API.

No pyplot: figures are plain objects (thread-safe in a server, no global state) written
atomically as PNG. Importing this module selects nothing and touches no disk.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from matplotlib.figure import Figure

from ..core.atomic import atomic_path
from ..core.messages import DEFAULT_LANG, class_labels, text

DPI = 100
CELL_GAP = 6  # image pixels between the mistakes' cells, side by side
CELL_TITLE = 12  # ... and above each cell, for its two-line title


def save_figure(fig: Figure, path: Path, *, trim: bool = True) -> Path:
    """Write `fig` as PNG atomically (a crash never leaves half a picture under `path`).

    The one figure saver: every picture of the package (these plots, `explain`'s) goes through it.
    `trim` crops the margins to what is drawn (one more layout pass); a figure laid out
    with fixed margins skips it.
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=DPI, bbox_inches="tight" if trim else None)
    return path


def plot_curves(history: dict[str, Sequence[float]], path: Path, lang: str = DEFAULT_LANG) -> Path:
    """Train vs validation loss and accuracy per epoch (from `history.csv` columns).

    A validation curve that rises while the training curve keeps falling is overfitting;
    both curves still falling at the end means more epochs would help (underfitting).
    """
    epochs = np.arange(1, len(history["loss"]) + 1)
    fig = Figure(figsize=(10, 4))
    for ax, metric in zip(fig.subplots(1, 2), ("loss", "accuracy")):
        ax.plot(epochs, history[metric], "o-", label=text("train", lang))
        if f"val_{metric}" in history:
            ax.plot(epochs, history[f"val_{metric}"], "s-", label=text("validation", lang))
        ax.set(title=text(metric.capitalize(), lang), xlabel=text("epoch", lang), ylabel=text(metric, lang))
        ax.grid(alpha=0.3)
        ax.legend()
    if "val_loss" in history and len(history["val_loss"]):
        best = int(np.argmin(history["val_loss"]))
        fig.axes[0].axvline(best + 1, color="grey", ls="--", lw=1, label=text("best_restored", lang))
        fig.axes[0].legend()
    fig.tight_layout()
    return save_figure(fig, path)


def plot_confusion_matrix(matrix: Sequence[Sequence[int]], class_names: Sequence[str], path: Path,
                          lang: str = DEFAULT_LANG) -> Path:
    """Counts of true (rows) vs predicted (columns) classes; off-diagonal cells are the mistakes."""
    class_names = class_labels(class_names, lang)
    cm = np.asarray(matrix)
    n = len(class_names)
    size = max(5.0, 0.6 * n + 2)
    fig = Figure(figsize=(size, size * 0.85))
    ax = fig.subplots()
    # Colour by log(1 + count) so a few errors stay visible beside ~1000 correct answers.
    im = ax.imshow(np.log1p(cm), cmap="Blues")
    ticks = np.arange(n)
    ax.set_xticks(ticks, labels=class_names, rotation=45 if max(map(len, class_names)) > 2 else 0, ha="right")
    ax.set_yticks(ticks, labels=class_names)
    ax.set(xlabel=text("predicted", lang), ylabel=text("true", lang), title=text("confusion_title", lang))
    threshold = np.log1p(cm).max() / 2
    for i in range(n):
        for j in range(n):
            if cm[i, j]:
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", fontsize=8,
                        color="white" if np.log1p(cm[i, j]) > threshold else "black")
    fig.colorbar(im, ax=ax, label=text("log_count", lang))
    fig.tight_layout()
    return save_figure(fig, path)


def plot_misclassified(images: np.ndarray, labels: np.ndarray, probabilities: np.ndarray,
                       class_names: Sequence[str], path: Path, max_images: int = 25, lang: str = DEFAULT_LANG) -> Path:
    """A grid of the most confident mistakes: image, true class, predicted class, confidence.

    `images`: uint8 or float (N, 28, 28[, 1]); `labels`: (N,); `probabilities`: (N, C).
    One axes holds every cell (an image each, its title above): matplotlib lays out and draws
    25 axes three to four times slower. Each image is drawn on its own, at its own size
    (one grid image resampled to the whole picture takes tens of MB more).
    """
    class_names = class_labels(class_names, lang)
    predicted = probabilities.argmax(axis=1)
    confidence = probabilities.max(axis=1)
    wrong = np.flatnonzero(predicted != labels)
    wrong = wrong[np.argsort(-confidence[wrong])][:max_images]
    cols = 5
    rows = max(1, int(np.ceil(len(wrong) / cols)))
    side = int(np.squeeze(images[0]).shape[0]) if len(images) else 28
    cell_w, cell_h = side + CELL_GAP, side + CELL_TITLE  # in image pixels: a margin, then a two-line title above
    width, height = cols * cell_w, rows * cell_h
    width_in = cols * 1.9
    title_in = 0.45
    fig = Figure(figsize=(width_in, height * width_in / width + title_in))
    fig_height = fig.get_figheight()
    ax = fig.add_axes((0.0, 0.0, 1.0, 1 - title_in / fig_height))
    ax.set_axis_off()
    ax.set_xlim(0, width)
    ax.set_ylim(height, 0)  # rows downwards, as in an image
    fig.suptitle(text("mistakes_title", lang, shown=len(wrong), total=int((predicted != labels).sum())),
                 y=1 - 0.1 / fig_height, va="top")
    if len(wrong) == 0:
        ax.text(0.02, 0.5, text("no_mistakes", lang), fontsize=12, transform=ax.transAxes)
    for k, i in enumerate(wrong):
        row, col = divmod(k, cols)
        top, left = row * cell_h + CELL_TITLE, col * cell_w + CELL_GAP / 2
        ax.imshow(np.squeeze(images[i]), cmap="gray", interpolation="nearest",
                  extent=(left, left + side, top + side, top))
        ax.text(left + side / 2, top - 1, text("mistake", lang, true=class_names[labels[i]],
                                               pred=class_names[predicted[i]], confidence=confidence[i]),
                fontsize=8, ha="center", va="bottom")
    ax.set_aspect("auto")  # imshow asks for square pixels; the figure's shape gives them already
    return save_figure(fig, path, trim=False)


def plot_samples(images: np.ndarray, labels: np.ndarray, class_names: Sequence[str], path: Path,
                 per_class: int = 8, seed: int = 0, title: str = "", lang: str = DEFAULT_LANG) -> Path:
    """A grid of example images: one row per class, `per_class` images chosen at random by `seed`.

    `images`: uint8 (N, 28, 28); `labels`: (N,). A class with fewer images leaves blank cells.
    """
    class_names = class_labels(class_names, lang)
    rng = np.random.default_rng(seed)
    rows = len(class_names)
    fig = Figure(figsize=(per_class * 0.9 + 1.2, rows * 0.95 + 0.6))
    axes = np.asarray(fig.subplots(rows, per_class, squeeze=False))
    for row, name in enumerate(class_names):
        members = np.flatnonzero(labels == row)
        chosen = rng.choice(members, size=min(per_class, len(members)), replace=False)
        for col, ax in enumerate(axes[row]):
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if col < len(chosen):
                ax.imshow(images[chosen[col]], cmap="gray", vmin=0, vmax=255)
        axes[row, 0].set_ylabel(f"{name}\n({len(members)})", rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle(title or text("samples_title", lang, per_class=per_class))
    fig.tight_layout()
    return save_figure(fig, path)
