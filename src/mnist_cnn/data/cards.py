"""Dataset cards: what a loaded dataset holds (counts, classes, balance, pixel statistics).

Pure functions of a `Dataset`: `dataset_card` gives a JSON-ready dict, `card_lines` the
text `mnist-cnn data info` prints. NumPy only, no I/O.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..core.messages import DEFAULT_LANG, text
from .registry import SPLITS, Dataset


def dataset_card(dataset: Dataset) -> dict[str, Any]:
    """Counts per split and class, and pixel mean/std (0..255 scale) per split."""
    splits: dict[str, Any] = {}
    for split in SPLITS:
        images = getattr(dataset, f"{split}_images")  # uint8 (N, 28, 28)
        labels = getattr(dataset, f"{split}_labels")
        counts = np.bincount(labels, minlength=dataset.num_classes)
        splits[split] = {
            "images": int(len(labels)),
            "class_counts": {name: int(c) for name, c in zip(dataset.class_names, counts)},
            # float64 accumulation: a float32 sum over 47M pixels would drift
            "pixel_mean": float(images.mean(dtype=np.float64)),
            "pixel_std": float(images.std(dtype=np.float64)),
        }
    return {"name": dataset.name, "source": str(dataset.source), "num_classes": dataset.num_classes,
            "class_names": list(dataset.class_names), "splits": splits, "sha256": dict(dataset.sha256)}


def card_lines(card: dict[str, Any], lang: str = DEFAULT_LANG) -> list[str]:
    """The card as aligned text: a header, then one row per class with its count and share per split."""
    lines = [text("card_header", lang, name=card["name"], classes=card["num_classes"], source=card["source"])]
    for split, info in card["splits"].items():
        lines.append(text("card_split", lang, split=text(f"split_{split}", lang), images=info["images"],
                          mean=info["pixel_mean"], std=info["pixel_std"]))
    width = max(len(name) for name in card["class_names"])
    header = "".join(f"{text(f'split_{split}', lang):>18}" for split in card["splits"])
    lines.append(f"{text('class', lang):<{width}}{header}")
    for name in card["class_names"]:
        cells = []
        for info in card["splits"].values():
            count = info["class_counts"][name]
            share = count / info["images"] if info["images"] else 0.0
            cells.append(f"{count:>10,} ({share:5.1%})")
        lines.append(f"{name:<{width}}" + "".join(cells))
    for file_name, digest in card["sha256"].items():
        lines.append(f"sha256 {digest}  {file_name}")
    return lines
