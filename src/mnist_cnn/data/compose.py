"""Numbers composed from MNIST digits, with the true box of each digit.

Two users: `benchmarks/read_numbers.py` scores `read_number` on such numbers, and the
touching-digit reader (`training/reader.py`) is trained on them, always from MNIST
*training* digits (the benchmark's goals are scored on *test* digits).

`compose_number` lays digits out left to right on white paper the way people write a
number: a height per number, each digit a little taller or shorter, a slight common
slant plus a little per digit, a wavy baseline and random gaps (small negative gaps let
neighbouring boxes overlap without the ink touching). Whether any two neighbours' ink
touches is recorded: touching digits are scored separately. Pillow and NumPy only; nothing
runs at import.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

INK_LEVEL = 0.15  # ink above this (0..1) counts for boxes and touching, like preprocess.NOISE_LEVEL
HEIGHT_PX = (36, 90)  # a number's digit height range (px)
DIGIT_SCALE = (0.85, 1.15)  # each digit's height relative to the number's
SLANT = 0.15  # common shear (x shift per px of height) in [-SLANT, SLANT] ...
DIGIT_SLANT = 0.05  # ... plus this much per digit
BASELINE = 0.08  # baseline wander, share of the height
GAP = (-0.05, 0.5)  # gap between neighbouring ink boxes, share of the height
TOUCHING_GAP = (-0.3, -0.05)  # gaps that usually make neighbours touch
MARGIN = 0.3  # paper around the number, share of the height
PAPER_NOISE = 4.0  # std of the paper's grain (0..255)


@dataclass
class Composed:
    image: np.ndarray  # uint8 (H, W): black ink on white paper
    labels: list[int]  # the digits, left to right
    boxes: list[tuple[int, int, int, int]]  # (left, top, right, bottom) per digit, right/bottom exclusive
    touching: bool  # some neighbours' ink touches


def render_digit(digit: np.ndarray, height: int, shear: float) -> np.ndarray:
    """uint8 (28, 28) white-on-black MNIST digit -> float (h, w) ink in [0, 1], `height` px tall, slanted."""
    ink = digit.astype(np.float32) / 255.0
    rows, cols = np.nonzero(ink > 0)
    ink = ink[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    scale = height / ink.shape[0]
    width = max(1, round(ink.shape[1] * scale))
    im = Image.fromarray(ink, mode="F").resize((width, height), Image.Resampling.BILINEAR)
    extra = int(np.ceil(abs(shear) * height))
    # x_src = x_dst - extra_offset + shear * (y - height): leans right for shear > 0
    offset = extra if shear > 0 else 0
    im = im.transform((width + extra, height), Image.Transform.AFFINE,
                      (1, shear, -offset, 0, 1, 0) if shear > 0 else (1, shear, 0, 0, 1, 0),
                      resample=Image.Resampling.BILINEAR)
    out = np.clip(np.asarray(im, dtype=np.float32), 0.0, 1.0)
    cols = np.flatnonzero(out.max(axis=0) > 0)
    return out[:, cols.min():cols.max() + 1]


def _layers(digits: list[np.ndarray], rng: np.random.Generator, gap: tuple[float, float], height: int,
            margin: int) -> list[np.ndarray]:
    """Each digit's ink on its own canvas-sized layer (float (H, W) in [0, 1]), laid out as one number."""
    slant = rng.uniform(-SLANT, SLANT)
    inks = [render_digit(d, max(8, round(height * rng.uniform(*DIGIT_SCALE))),
                         slant + rng.uniform(-DIGIT_SLANT, DIGIT_SLANT)) for d in digits]
    lefts, x = [], margin
    for i, ink in enumerate(inks):
        if i:
            x += round(rng.uniform(*gap) * height)
        lefts.append(x)
        x += ink.shape[1]
    lefts = [left + max(0, margin - min(lefts)) for left in lefts]  # a narrow 1 overlapped past the margin
    baseline = margin + round(1.3 * height)
    tops = [baseline - ink.shape[0] + round(rng.uniform(-BASELINE, BASELINE) * height) for ink in inks]
    canvas_w = max(l + ink.shape[1] for l, ink in zip(lefts, inks)) + margin
    canvas_h = max(t + ink.shape[0] for t, ink in zip(tops, inks)) + margin
    layers = []
    for left, top, ink in zip(lefts, tops, inks):
        layer = np.zeros((canvas_h, canvas_w), np.float32)
        layer[top:top + ink.shape[0], left:left + ink.shape[1]] = ink
        layers.append(layer)
    return layers


def compose_number(digits: list[np.ndarray], labels: list[int], rng: np.random.Generator,
                   gap: tuple[float, float] = GAP) -> Composed:
    """MNIST digits (uint8 (28, 28) each) -> one number on paper, with true boxes."""
    height = int(rng.integers(*HEIGHT_PX, endpoint=True))
    layers = _layers(digits, rng, gap, height, round(MARGIN * height))
    masks = [layer > INK_LEVEL for layer in layers]
    boxes = []
    for mask in masks:
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        boxes.append((int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1))
    touching = any(_touch(a, b) for a, b in zip(masks[:-1], masks[1:]))
    ink = np.max(layers, axis=0)
    paper = 255.0 * (1.0 - ink) + rng.normal(0.0, PAPER_NOISE, ink.shape)
    return Composed(np.clip(np.round(paper), 0, 255).astype(np.uint8), list(labels), boxes, touching)


def _touch(a: np.ndarray, b: np.ndarray) -> bool:
    """Whether two ink masks are 8-connected to each other (share or neighbour a pixel)."""
    grown = a.copy()
    grown[1:] |= a[:-1]
    grown[:-1] |= a[1:]
    grown[:, 1:] |= grown[:, :-1].copy()
    grown[:, :-1] |= grown[:, 1:].copy()
    return bool((grown & b).any())


def random_numbers(images: np.ndarray, labels: np.ndarray, count: int, seed: int,
                   lengths: tuple[int, int] = (2, 6), gap: tuple[float, float] = GAP) -> list[Composed]:
    """`count` numbers of `lengths` digits drawn at random (with replacement) from `images`."""
    rng = np.random.default_rng(seed)
    numbers = []
    for _ in range(count):
        n = int(rng.integers(lengths[0], lengths[1], endpoint=True))
        picks = rng.integers(0, len(images), size=n)
        numbers.append(compose_number([images[i] for i in picks], [int(labels[i]) for i in picks], rng, gap))
    return numbers


STRIP_HEIGHT_PX = (24, 64)  # the reader's training strips are drawn at these digit heights (px) ...
STRIP_LENGTHS = (1, 2, 3, 4)  # ... with this many digits ...
STRIP_LENGTH_SHARES = (0.1, 0.35, 0.3, 0.25)  # ... this often (single digits teach it when not to split)
STRIP_TOUCHING_SHARE = 0.75  # the rest are laid out with ordinary gaps, some touching by chance
THICKER_SHARE, THINNER_SHARE = 0.25, 0.15  # strokes grown or thinned by one px at the drawn size
# A warped digit (`warp_digit`): an elastic distortion as in Simard et al. 2003 (displacements
# smoothed by a Gaussian of WARP_SIGMA px, scaled by up to WARP_ALPHA), a turn of up to
# WARP_TURN degrees and a width changed by up to WARP_WIDTH: new shapes of the same 60,000
# training digits, which the reader otherwise learns by heart.
WARP_ALPHA, WARP_SIGMA, WARP_TURN, WARP_WIDTH = 34.0, 4.0, 10.0, 0.15


def warp_digit(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """uint8 (28, 28) MNIST digit -> the same digit randomly warped (uint8 (28, 28))."""
    from scipy.ndimage import gaussian_filter, map_coordinates

    size = digit.shape[0]
    alpha = rng.uniform(0.0, WARP_ALPHA)
    dy, dx = (alpha * gaussian_filter(rng.uniform(-1.0, 1.0, digit.shape), WARP_SIGMA, mode="constant")
              for _ in range(2))
    turn = np.deg2rad(rng.uniform(-WARP_TURN, WARP_TURN))
    widen = 1.0 + rng.uniform(-WARP_WIDTH, WARP_WIDTH)
    centre = (size - 1) / 2.0
    y, x = np.mgrid[0:size, 0:size].astype(np.float64) - centre
    # where each output pixel reads from: the inverse of widening, then of turning about the centre
    src_y = np.cos(turn) * y - np.sin(turn) * x / widen + centre + dy
    src_x = np.sin(turn) * y + np.cos(turn) * x / widen + centre + dx
    out = map_coordinates(digit.astype(np.float32), [src_y, src_x], order=1, mode="constant", cval=0.0)
    out = np.clip(np.round(out), 0, 255).astype(np.uint8)
    return out if out.max() > 0 else digit  # a digit warped off its canvas stays as it was


def strip_inks(images: np.ndarray, labels: np.ndarray, count: int, seed: int,
               warp: float = 0.0) -> list[tuple[np.ndarray, list[int]]]:
    """`count` numbers as the touching-digit reader meets them: (ink, digits) each.

    The ink is white on black, float (h, w) in [0, 1], with nothing under INK_LEVEL, as
    `preprocess.find_ink` leaves a photo; stroke widths, sizes, slants and gaps vary, and
    with `warp` > 0 that share of the digits is warped first (`warp_digit`).
    """
    from PIL import ImageFilter

    if not 0.0 <= warp <= 1.0:
        raise ValueError(f"warp must be a share between 0 and 1, not {warp}")
    rng = np.random.default_rng(seed)
    made = []
    for _ in range(count):
        n = int(rng.choice(STRIP_LENGTHS, p=STRIP_LENGTH_SHARES))
        picks = rng.integers(0, len(images), size=n)
        gap = TOUCHING_GAP if rng.random() < STRIP_TOUCHING_SHARE else GAP
        height = int(rng.integers(*STRIP_HEIGHT_PX, endpoint=True))
        digits = [images[i] for i in picks]
        if warp:  # drawn from the generator only when asked: warp 0 makes the strips it always made
            digits = [warp_digit(d, rng) if rng.random() < warp else d for d in digits]
        ink = np.max(_layers(digits, rng, gap, height, 2), axis=0)
        stroke = rng.random()
        if stroke < THICKER_SHARE + THINNER_SHARE:
            grow = ImageFilter.MaxFilter(3) if stroke < THICKER_SHARE else ImageFilter.MinFilter(3)
            thinned = np.asarray(Image.fromarray(ink, mode="F").filter(grow), dtype=np.float32)
            ink = thinned if (thinned > INK_LEVEL).any() else ink
        ink = np.where(ink < INK_LEVEL, 0.0, ink).astype(np.float32)
        made.append((ink, [int(labels[i]) for i in picks]))
    return made
