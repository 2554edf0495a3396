"""Digits in the forms people send them: the rule must accept these, not only MNIST's own 28x28 arrays.

- raw: the dataset's 28x28 arrays, white ink on black;
- enlarged: dark ink on light paper, resized (bilinear) to 84 px, as a screenshot or a
  digit saved from an image editor arrives;
- as written: rescaled to 36-90 px, slanted, dark on grainy paper, rendered as
  `data.compose` renders the digits of numbers (resampled twice, so blurrier than MNIST's own).

`calibrate` fits the writing scorer on digits in all three (`sent_forms`) and places the
threshold on validation digits each sent in every form (`every_form`);
`benchmarks/refusal.py` scores test digits in them. Pillow and NumPy; nothing at import.
"""

from __future__ import annotations

import numpy as np

FORMS = ("raw", "enlarged to 84 px", "as written")


def sample(images: np.ndarray, count: int, seed: int) -> np.ndarray:
    """A fixed sample of `count` images (all if fewer), in their order."""
    picks = np.random.default_rng(seed).permutation(len(images))[:count]
    return images[np.sort(picks)]


def as_pixels(x: np.ndarray) -> np.ndarray:
    """(N, 28, 28[, 1]) uint8, or float in [0, 1] -> (N, 28, 28) 0..255."""
    if x.dtype == np.uint8:
        return x.reshape(len(x), *x.shape[1:3])
    return np.round(np.asarray(x, dtype=np.float32).reshape(len(x), *x.shape[1:3]) * 255.0)


def enlarged(images: np.ndarray, side: int = 84) -> list[np.ndarray]:
    """MNIST-style digits (uint8 (N, 28, 28), white on black) as a person's file holds them: dark on
    light, enlarged (bilinear) to `side` px."""
    from PIL import Image

    return [np.asarray(Image.fromarray(255 - image).resize((side, side), Image.Resampling.BILINEAR))
            for image in images]


def written_digits(images: np.ndarray, count: int | None = None, seed: int = 1) -> list[np.ndarray]:
    """The first `count` (default: all) digits as people's pages show them: 36-90 px tall, slanted by
    up to 0.2, dark on grainy paper."""
    from ..data.compose import PAPER_NOISE, render_digit

    rng = np.random.default_rng(seed)
    out = []
    for digit in images[:count]:
        ink = render_digit(digit, int(rng.integers(36, 91)), float(rng.uniform(-0.2, 0.2)))
        paper = np.pad(ink, int(0.3 * ink.shape[0]))
        out.append(np.clip(255 - 255 * paper + rng.normal(0, PAPER_NOISE, paper.shape), 0, 255).astype(np.uint8))
    return out


def sent_forms(images: np.ndarray, seed: int) -> tuple[list[np.ndarray], np.ndarray]:
    """uint8 (N, 28, 28) digits -> half of them raw, a quarter enlarged, a quarter as written, and
    each one's form (a FORMS name per image)."""
    half, three = len(images) // 2, 3 * len(images) // 4
    sources = list(images[:half]) + enlarged(images[half:three]) + written_digits(images[three:], seed=seed)
    forms = np.array([FORMS[0]] * half + [FORMS[1]] * (three - half) + [FORMS[2]] * (len(images) - three))
    return sources, forms


def every_form(images: np.ndarray, seed: int) -> tuple[list[np.ndarray], np.ndarray]:
    """uint8 (N, 28, 28) digits -> each of them in every form (3N images), and each one's form."""
    sources = list(images) + enlarged(images) + written_digits(images, seed=seed)
    return sources, np.repeat(np.array(FORMS), len(images))
