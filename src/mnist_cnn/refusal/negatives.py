"""Images that are not digits, made on demand: what the "not a digit" rule is calibrated and scored against.

Three kinds, each uint8 grayscale, dark marks on light paper (as people upload them), at
various sizes, seeded so that every measurement can be repeated:

- `noise_images`: uniform, Gaussian and salt-and-pepper noise, and smooth blotches;
- `scribble_images`: one to four random curvy pen strokes, loops and dots: what a person
  doodles, not what they write;
- `letter_images`: Latin letters rendered from the TrueType fonts installed on this
  machine (Debian's fonts-dejavu-core / fonts-liberation), slightly rotated and scaled,
  leaving out the letters a digit model cannot be expected to refuse (`DIGIT_LIKE_LETTERS`).

Fashion-MNIST's training images are the fourth kind (real photos of things); `acceptance`
reads them through `data`. Pillow and NumPy only; nothing runs or is read at import.
"""

from __future__ import annotations

import string
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

FONT_DIRS = (Path("/usr/share/fonts/truetype"), Path("/usr/share/fonts/opentype"))
FONT_FAMILIES = ("DejaVu", "Liberation")  # Debian's fonts-dejavu-core and fonts-liberation
# Letters left out of the negatives because they *are* digits to a reader: each is read as
# its look-alike (O o D as 0, l i as 1, Z z as 2, S s as 5, q as 9) and accepted in >= 90% of
# its renderings by both the default `cnn` and the `strong` model (`benchmarks/refusal.py`
# prints the refused share per letter; benchmarks/README.md, "Not a digit"). Look-alikes the
# models do refuse often (I, J, j, B, G, g, b, T, Q) stay in: counting them is fair.
DIGIT_LIKE_LETTERS = "OoDliZzSsq"
NEGATIVE_LETTERS = "".join(c for c in string.ascii_letters if c not in DIGIT_LIKE_LETTERS)
SIDES = (28, 64, 160)  # image sizes (px) the generators pick from
SEED = 0  # what a calibration fits on is drawn with this seed; what it measures, with SEED + 1
MEASURE_GENERATED = 200  # noise and scribble images each, measured by a calibration (not fitted on)
MEASURE_FONTS = 8  # fonts whose letters are measured (spread over those found; every letter of each)


def noise_images(count: int, seed: int = 0) -> list[np.ndarray]:
    """`count` noise images (uint8, square, a side from SIDES): four kinds in turn."""
    rng = np.random.default_rng(seed)
    images = []
    for i in range(count):
        side = int(rng.choice(SIDES))
        kind = i % 4
        if kind == 0:  # uniform static
            image = rng.integers(0, 256, (side, side))
        elif kind == 1:  # grey paper with strong Gaussian grain
            image = rng.normal(rng.uniform(120, 230), rng.uniform(20, 60), (side, side))
        elif kind == 2:  # salt and pepper on white
            image = np.full((side, side), 255.0)
            image[rng.random((side, side)) < rng.uniform(0.02, 0.2)] = 0
        else:  # smooth blotches: low-resolution noise scaled up
            coarse = rng.uniform(0, 255, (int(rng.integers(2, 6)),) * 2).astype(np.float32)
            image = np.asarray(Image.fromarray(coarse, mode="F").resize((side, side), Image.Resampling.BICUBIC))
        images.append(np.clip(image, 0, 255).astype(np.uint8))
    return images


def scribble_images(count: int, seed: int = 0) -> list[np.ndarray]:
    """`count` doodles: 1-4 random smooth strokes (random walks with momentum), loops and dots."""
    rng = np.random.default_rng(seed)
    images = []
    for _ in range(count):
        side = int(rng.choice(SIDES[1:]))
        im = Image.new("L", (side, side), 255)
        draw = ImageDraw.Draw(im)
        width = max(1, round(side * rng.uniform(0.02, 0.08)))
        for _ in range(int(rng.integers(1, 5))):
            kind = rng.random()
            if kind < 0.15:  # a dot or a blob
                x, y, r = *rng.uniform(0.2, 0.8, 2) * side, rng.uniform(0.02, 0.12) * side
                draw.ellipse((x - r, y - r, x + r, y + r), fill=0)
                continue
            point = rng.uniform(0.15, 0.85, 2) * side
            heading = rng.uniform(0, 2 * np.pi)
            turn = rng.normal(0, 0.6)  # a steady turn makes curls and loops
            points = [tuple(point)]
            for _ in range(int(rng.integers(8, 40))):
                turn = 0.8 * turn + rng.normal(0, 0.4)
                heading += turn
                point = np.clip(point + side * 0.04 * np.array([np.cos(heading), np.sin(heading)]), 2, side - 3)
                points.append(tuple(point))
            draw.line(points, fill=0, width=width, joint="curve")
        images.append(np.asarray(im, dtype=np.uint8))
    return images


def find_fonts(families: tuple[str, ...] = FONT_FAMILIES) -> list[Path]:
    """The installed .ttf files of `families` (sorted); [] where none is installed."""
    found: list[Path] = []
    for folder in FONT_DIRS:
        if folder.is_dir():
            found += [p for p in folder.rglob("*.ttf") if p.name.startswith(families)]
    return sorted(found)


def letter_images(fonts: list[Path], letters: str = NEGATIVE_LETTERS, seed: int = 0,
                  per_glyph: int = 1) -> list[tuple[str, np.ndarray]]:
    """Each letter in each font, `per_glyph` times: (letter, uint8 image) with dark ink on white.

    Glyphs are drawn at a random size (40-120 px), rotated by up to 10 degrees, on paper
    with a margin; fonts that fail to load are skipped.
    """
    rng = np.random.default_rng(seed)
    out: list[tuple[str, np.ndarray]] = []
    for font_path in fonts:
        for letter in letters:
            for _ in range(per_glyph):
                size = int(rng.integers(40, 121))
                try:
                    font = ImageFont.truetype(str(font_path), size)
                except OSError:
                    break
                left, top, right, bottom = font.getbbox(letter)
                if right <= left or bottom <= top:
                    continue
                margin = size // 3
                im = Image.new("L", (right - left + 2 * margin, bottom - top + 2 * margin), 255)
                ImageDraw.Draw(im).text((margin - left, margin - top), letter, font=font, fill=0)
                im = im.rotate(rng.uniform(-10, 10), resample=Image.Resampling.BILINEAR, expand=True, fillcolor=255)
                out.append((letter, np.asarray(im, dtype=np.uint8)))
    return out


def generated_negatives(seed: int = SEED) -> dict[str, list[np.ndarray]]:
    """The made-up negatives every calibration is measured on: noise, scribbles, letters (if fonts exist)."""
    sets = {"noise": noise_images(MEASURE_GENERATED, seed),
            "scribbles": scribble_images(MEASURE_GENERATED, seed)}
    fonts = find_fonts()
    fonts = fonts[::-(-len(fonts) // MEASURE_FONTS)] if fonts else fonts  # every k-th: families stay mixed
    if fonts:
        sets["letters"] = [image for _, image in letter_images(fonts, seed=seed)]
    return sets
