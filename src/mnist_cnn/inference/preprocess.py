"""MNIST-style preprocessing of any image: the one path the CLI, the API and the page share.

MNIST's digits were made by scanning black-on-white handwriting, fitting each digit into
a 20x20 box keeping its aspect ratio (anti-aliased, hence the grey edges) and pasting it
into a 28x28 field so that its centre of mass sits at the centre. A model trained on that
reads other images well only if they go through the same steps, which `to_mnist` does:

1. decode (`decode_image`, in `data.imagefile`): PNG, JPEG, WebP, GIF (first frame), BMP, TIFF, PNM; any size
   and mode. Bytes are capped before reading and pixels before decoding (`im.size` is
   known from the header), so a small file claiming a huge image is refused unread.
   Big JPEG photos are decoded at 1/2..1/8 scale (JPEG draft mode), which the cap counts.
2. grayscale in [0, 1] (`to_gray`): transparent pixels are composited onto white, or
   onto black when the opaque ink itself is light, so either ink survives.
3. polarity: if the image border is light (paper), invert, so ink is white on black.
   Images over SHRINK_SIDE px are first pooled down, keeping the darkest (or, on dark
   paper, the lightest) pixel of each block, so pen lines survive and memory stays small.
   Uneven lighting (a photo's shadow or vignette) is divided out first: the paper's
   level is estimated per region on a coarse grid and normalised (`flatten_paper`).
4. contrast: subtract the background level (the border's median) and stretch so the
   ink's typical peak becomes 1; anything under NOISE_LEVEL (paper grain, JPEG noise)
   becomes 0, and so does any isolated speck (a pen line, however thin, has inked
   neighbours). No ink left -> EmptyImageError (a guess on a blank image would be noise).
5. crop to the ink's bounding box.
6. keep thin strokes: a large crop is max-pooled (not averaged) to at most WORK_SIDE px,
   so a 1-px pen line stays at full strength; if the strokes are still thinner than
   MIN_STROKE_PX would be at 20 px, they are dilated to TARGET_STROKE_PX.
7. resize so the longer side is 20 px, keeping the aspect ratio (Lanczos, anti-aliased).
8. paste into 28x28 and shift (whole pixels) so the centre of mass is at row 14,
   column 14, where MNIST's own digits have it on average.

The result is float32 (28, 28) in [0, 1], white ink on black, like `data.prepare.normalize`'s
output per image; `model_input` adds the batch and channel axes.

Steps 3-4 are `find_ink` and steps 5-8 `mnist_from_ink`: `numbers` runs the first on a
whole image of several digits and the second on each digit it finds, so a digit read
from a number is prepared exactly as a digit read alone.

Each step has a name (`STEPS`, in order per style). `preprocess_steps` returns every
intermediate image as a `Step`, recorded by the very code `preprocess` runs (its `steps`
argument), so the last step is exactly what the model sees.

Fashion-MNIST was made differently (Zalando's README): product photos trimmed to the
item, the longer edge resized to 28 px, centred by geometry, negated; no stroke or
contrast steps. `to_fashion_mnist` follows that recipe; `preprocess(..., style="fashion")`
picks it, and a `Predictor` does so for models trained on fashion-mnist. Pillow and NumPy only:
no Keras here, and nothing runs at import.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..core.errors import EmptyImageError

# Steps 1-2 live in imagefile; re-exported here, the one public preprocessing API.
from ..data.imagefile import (
    DEFAULT_MAX_BYTES,
    DEFAULT_MAX_PIXELS,
    decode_image,
    gray_from_array,
    read_image_file,
    to_gray,
)
from ..data.registry import Style  # noqa: F401  (which recipe: MNIST digits or Fashion-MNIST items; re-exported)

FASHION_TRIM_LEVEL = 0.05  # Fashion-MNIST: pixels within 5% of the background are trimmed away
SIDE = 28  # output image side (px)
BOX = 20  # the digit's longer side inside the 28x28 field (px), as in MNIST
CENTRE = 14.0  # where MNIST digits' centre of mass lies (row and column, pixel indices)
MIN_CONTRAST = 0.1  # ink must differ from the background by >= 10% of full scale
NOISE_LEVEL = 0.15  # after stretching, values below this are background noise
SPECK_NEIGHBOURS = 3  # ink pixels with fewer inked pixels in their 3x3 block (self included) are noise
INK_LEVEL = 0.5  # after stretching, values above this count as stroke for width estimates
BORDER_FRACTION = 0.03  # the border strip used to judge the background (share of the side)
FLATTEN_MIN_SIDE = 64  # smaller images (MNIST-sized, icons) are taken as evenly lit (px)
FLATTEN_GRID = 16  # the paper's level is estimated on a grid of about this many blocks per side
UNEVEN_LIGHTING = 0.08  # paper levels spreading more than this across the grid get flattened
SHRINK_SIDE = 1024  # larger images are min/max-pooled to at most this side first (px)
WORK_SIDE = 4 * BOX  # crops larger than this are max-pooled down to it before thinning checks
MIN_STROKE_PX = 1.5  # thinner strokes (at the 20-px scale) get dilated ...
TARGET_STROKE_PX = 2.5  # ... to about this, MNIST's typical stroke width at 20 px

# Each style's steps in order: name -> one line on what that step's image shows.
STEPS: dict[Style, dict[str, str]] = {
    "digit": {
        "decoded": "the input as decoded, as luminance (camera rotation applied, big JPEGs at reduced scale)",
        "gray": "grayscale in [0, 1], transparent pixels composited onto white (black under light ink)",
        "polarity": "white ink on black: huge images pooled down, uneven lighting flattened, light paper inverted",
        "contrast": "background level subtracted, ink stretched to 1, faint noise and isolated specks set to 0",
        "crop": "cropped to the ink's bounding box",
        "thickened": f"strokes kept: large crops max-pooled to <= {WORK_SIDE} px, thin strokes dilated",
        "fit": f"resized so the longer side is {BOX} px, aspect kept (Lanczos), brightest pixel 1",
        "centred": f"pasted into {SIDE}x{SIDE}, centre of mass at ({CENTRE:g}, {CENTRE:g}): what the model sees",
    },
    "fashion": {
        "decoded": "the input as decoded, as luminance (camera rotation applied, big JPEGs at reduced scale)",
        "gray": "grayscale in [0, 1], transparent pixels composited onto white (black under a light item)",
        "polarity": "light item on black: uneven lighting flattened, light backgrounds negated",
        "background": "background level subtracted, the rest stretched to [0, 1]",
        "crop": "trimmed to where the item differs from the background",
        "fit": f"longer edge resized to {SIDE} px, aspect kept (Lanczos)",
        "centred": f"centred by geometry in {SIDE}x{SIDE}: what the model sees",
    },
}
STEP_NAMES: dict[Style, tuple[str, ...]] = {style: tuple(steps) for style, steps in STEPS.items()}


@dataclass(frozen=True, eq=False)  # eq=False: arrays have no single truth value
class Step:
    """One named stage of the preprocessing and the image it produced."""

    name: str  # a key of STEPS[style]
    description: str  # one line: what this image shows
    image: np.ndarray  # float32 (H, W) in [0, 1]; (28, 28) for the last step


def _record(steps: list[Step] | None, style: Style, name: str, image: np.ndarray) -> None:
    """Append a copy of `image` as step `name` when a caller collects steps (else free)."""
    if steps is not None:
        steps.append(Step(name, STEPS[style][name], np.array(image, dtype=np.float32)))


def _quantile(values: np.ndarray, q: float) -> float:
    """np.quantile(values, q) (linear interpolation) by one np.partition: the same number, without
    np.median's and np.percentile's generic machinery, which costs more than the sort on the
    few hundred pixels of a served 28x28 image."""
    flat = np.ravel(values)
    position = q * (flat.size - 1)
    low = math.floor(position)
    high = min(low + 1, flat.size - 1)
    part = np.partition(flat, (low, high))
    return float(part[low] + (part[high] - part[low]) * (position - low))


def _border(gray: np.ndarray) -> np.ndarray:
    width = max(1, round(BORDER_FRACTION * min(gray.shape)))
    return np.concatenate([gray[:width].ravel(), gray[-width:].ravel(),
                           gray[:, :width].ravel(), gray[:, -width:].ravel()])


def _max_pool(image: np.ndarray, factor: int) -> np.ndarray:
    """(H, W) -> (ceil(H/f), ceil(W/f)), each output pixel the max of its f x f block."""
    h, w = image.shape
    # Edge padding: a partial block at the border keeps its own pixels' max, whatever the sign.
    padded = np.pad(image, ((0, -h % factor), (0, -w % factor)), mode="edge")
    return padded.reshape(padded.shape[0] // factor, factor, padded.shape[1] // factor, factor).max(axis=(1, 3))


def flatten_paper(gray: np.ndarray, light_paper: bool) -> np.ndarray:
    """Divide out uneven lighting so the paper has one level (1 if light, 0 if dark).

    The paper's level per block is a high percentile of the block (ink is a minority),
    then the brightest of each block's neighbours (blocks inside a thick stroke have no
    paper), interpolated back to full size. Evenly lit and small images come back unchanged;
    a border whose eight half-sides all have one level counts as evenly lit (no grid needed).
    """
    if min(gray.shape) < FLATTEN_MIN_SIDE:
        return gray
    h, w = gray.shape
    strip = max(1, round(BORDER_FRACTION * min(h, w)))
    halves = [gray[:strip, :w // 2], gray[:strip, w // 2:], gray[-strip:, :w // 2], gray[-strip:, w // 2:],
              gray[:h // 2, :strip], gray[h // 2:, :strip], gray[:h // 2, -strip:], gray[h // 2:, -strip:]]
    border_levels = [_quantile(half, 0.5) for half in halves]  # medians
    if max(border_levels) - min(border_levels) < UNEVEN_LIGHTING / 2:
        return gray
    paper = gray if light_paper else 1.0 - gray  # paper bright, ink dark
    block = math.ceil(max(gray.shape) / FLATTEN_GRID)
    padded = np.pad(paper, ((0, -h % block), (0, -w % block)), mode="edge")
    blocks = padded.reshape(padded.shape[0] // block, block, padded.shape[1] // block, block)
    levels = np.percentile(blocks, 90, axis=(1, 3)).astype(np.float32)  # (rows, cols) of blocks
    levels = _dilate(levels, 1)[1:-1, 1:-1]  # max over each block's 3x3 neighbourhood
    if float(levels.max() - levels.min()) < UNEVEN_LIGHTING:
        return gray
    background = np.asarray(Image.fromarray(levels, mode="F").resize((w, h), Image.Resampling.BILINEAR))
    flat = np.clip(paper / np.maximum(background, 1e-3), 0.0, 1.0)
    return flat if light_paper else 1.0 - flat


def _dilate(image: np.ndarray, radius: int) -> np.ndarray:
    """Grey dilation with a (2r+1)^2 square, separable; the output grows by r on every side."""
    padded = np.pad(image, 2 * radius)
    h, w = padded.shape
    size = 2 * radius + 1
    rows = np.max([padded[:, i:w - size + 1 + i] for i in range(size)], axis=0)
    return np.max([rows[i:h - size + 1 + i, :] for i in range(size)], axis=0)


def _box3(image: np.ndarray, reduce: np.ufunc, fill: float) -> np.ndarray:
    """`reduce` (np.add, np.minimum) over each pixel's 3x3 block, `fill` outside the image.

    On the last two axes, so a stack (N, H, W) is one call. Separable: along rows, then
    along columns, on one padded copy (np.pad's generality costs more than the arithmetic
    on a served 28x28 digit).
    """
    *rest, h, w = image.shape
    padded = np.full((*rest, h + 2, w + 2), fill, dtype=image.dtype)
    padded[..., 1:-1, 1:-1] = image
    rows = reduce(reduce(padded[..., :-2], padded[..., 1:-1]), padded[..., 2:])
    return reduce(reduce(rows[..., :-2, :], rows[..., 1:-1, :]), rows[..., 2:, :])


def erode3(mask: np.ndarray) -> np.ndarray:
    """A boolean mask (H, W) or stack (N, H, W) eroded by a 3x3 square: True where the pixel and all
    8 neighbours are True."""
    return _box3(np.asarray(mask, dtype=bool), np.minimum, False)


def stroke_width(ink: np.ndarray) -> float:
    """Typical stroke width in px of a boolean ink mask: 2 * area / (pixels lost to a 3x3 erosion).

    Exact for strokes >= 3 px (erosion peels one pixel off each side); 1- and 2-px strokes
    both read as 2, which is fine for deciding whether to thicken.
    """
    area = int(np.count_nonzero(ink))  # one image alone: twice as fast as `stroke_widths` of a stack of one
    if area == 0:
        return 0.0
    eroded = erode3(ink)
    return 2.0 * area / max(area - int(np.count_nonzero(eroded)), 1)


def stroke_widths(masks: np.ndarray) -> np.ndarray:
    """`stroke_width` of each mask of a stack (N, H, W) in one pass: float64 (N,), 0 where a mask is empty."""
    masks = np.asarray(masks, dtype=bool)
    area = np.count_nonzero(masks, axis=(-2, -1))
    lost = area - np.count_nonzero(erode3(masks), axis=(-2, -1))
    return np.where(area == 0, 0.0, 2.0 * area / np.maximum(lost, 1))


def drop_specks(image: np.ndarray) -> np.ndarray:
    """Zero ink pixels with fewer than SPECK_NEIGHBOURS inked pixels in their 3x3 block.

    One noisy pixel far from the digit would otherwise stretch the bounding box over the
    whole page; a stroke pixel, even on a 1-px line, has at least two inked neighbours.
    """
    counts = _box3((image > 0).astype(np.uint8), np.add, 0)
    return np.where(counts >= SPECK_NEIGHBOURS, image, 0.0).astype(image.dtype)


def _bounding_box(image: np.ndarray) -> tuple[slice, slice]:
    rows, cols = np.nonzero(image.any(axis=1))[0], np.nonzero(image.any(axis=0))[0]
    return slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1)


def to_mnist(gray: np.ndarray, steps: list[Step] | None = None) -> np.ndarray:
    """Grayscale float (H, W) in [0, 1], either polarity -> float32 (28, 28) in [0, 1], MNIST-style.

    Steps 3-8 of the module docstring (`find_ink`, then `mnist_from_ink`); with a `steps`
    list, appends each one's image to it ("polarity" to "centred"). Raises EmptyImageError
    when there is no ink.
    """
    ink, _ = find_ink(gray, steps)
    return mnist_from_ink(ink, steps)


def find_ink(gray: np.ndarray, steps: list[Step] | None = None) -> tuple[np.ndarray, int]:
    """Steps 3-4: grayscale (H, W), either polarity -> (ink, factor), the ink white on black.

    `ink` is float32 (h, w) in [0, 1] with background, faint noise and isolated specks at 0;
    `factor` is how many input pixels one ink pixel spans per side (1 unless a huge image
    was pooled down), so positions in `ink` times `factor` are input pixel coordinates.
    Shared by single digits (`to_mnist`) and numbers (`numbers`). Raises EmptyImageError.
    """
    gray = np.asarray(gray, dtype=np.float32)
    light_paper = _quantile(_border(gray), 0.5) > 0.5
    factor = 1
    if max(gray.shape) > SHRINK_SIDE:  # keep the ink's extreme per block: lines survive
        factor = math.ceil(max(gray.shape) / SHRINK_SIDE)
        gray = -_max_pool(-gray, factor) if light_paper else _max_pool(gray, factor)
    gray = flatten_paper(gray, light_paper)
    if light_paper:  # make the ink white on black
        gray = 1.0 - gray
    _record(steps, "digit", "polarity", gray)
    background = _quantile(_border(gray), 0.5)
    ink_values = gray[gray > background + MIN_CONTRAST]
    if ink_values.size == 0:
        raise EmptyImageError("the image is blank (no ink found); draw or photograph a digit, dark on "
                              "light or light on dark")
    peak = _quantile(ink_values, 0.95)  # not max: one hot pixel must not set the scale
    image = np.clip((gray - background) / max(peak - background, 1e-6), 0.0, 1.0)
    image[image < NOISE_LEVEL] = 0.0
    image = drop_specks(image)
    _record(steps, "digit", "contrast", image)
    if not image.any():
        raise EmptyImageError("the image holds only scattered specks, no strokes; draw or photograph a "
                              "digit, dark on light or light on dark")
    return image, factor


def mnist_from_ink(image: np.ndarray, steps: list[Step] | None = None) -> np.ndarray:
    """Steps 5-8: an ink image from `find_ink` (or part of one) -> float32 (28, 28), MNIST-style.

    Crop to the ink, keep thin strokes, fit the longer side to 20 px, centre the mass at
    (14, 14). Each digit of a number goes through exactly this. EmptyImageError without ink.
    """
    image = np.asarray(image, dtype=np.float32)
    if not image.any():
        raise EmptyImageError("no ink to read here; draw or photograph a digit, dark on light or light on dark")
    image = image[_bounding_box(image)]
    _record(steps, "digit", "crop", image)

    longer = max(image.shape)
    if longer > WORK_SIDE:
        image = _max_pool(image, math.ceil(longer / WORK_SIDE))
        image = image[_bounding_box(image)]
    scale = BOX / max(image.shape)  # this size -> the 20-px box
    width = stroke_width(image > INK_LEVEL)
    if width * scale < MIN_STROKE_PX:
        radius = math.ceil((TARGET_STROKE_PX / scale - width) / 2)
        image = _dilate(image, radius)
        image = image[_bounding_box(image)]
        scale = BOX / max(image.shape)
    _record(steps, "digit", "thickened", image)

    # (h, w) -> longer side 20 px, aspect kept
    height, width_px = (max(1, round(n * scale)) for n in image.shape)
    resized = Image.fromarray(image.astype(np.float32), mode="F").resize(
        (width_px, height), Image.Resampling.LANCZOS)
    digit = np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)
    if digit.max() > 0:
        digit /= digit.max()  # MNIST strokes saturate; anti-aliasing must not dim a thin digit
    _record(steps, "digit", "fit", digit)

    total = float(digit.sum())
    centre_row = float(digit.sum(axis=1) @ np.arange(digit.shape[0])) / total
    centre_col = float(digit.sum(axis=0) @ np.arange(digit.shape[1])) / total
    # Whole-pixel shift (no blur); clamped so the 20-px box stays inside the field.
    top = int(np.clip(round(CENTRE - centre_row), 0, SIDE - digit.shape[0]))
    left = int(np.clip(round(CENTRE - centre_col), 0, SIDE - digit.shape[1]))
    out = np.zeros((SIDE, SIDE), np.float32)
    out[top:top + digit.shape[0], left:left + digit.shape[1]] = digit
    _record(steps, "digit", "centred", out)
    return out


def to_fashion_mnist(gray: np.ndarray, steps: list[Step] | None = None) -> np.ndarray:
    """Grayscale float (H, W), either polarity -> float32 (28, 28) in [0, 1], Fashion-MNIST-style.

    Dark-on-light photos are negated; the background level is subtracted; the item is
    trimmed to where it differs from the background, its longer edge resized to 28 px
    (Lanczos) and the shorter edge centred. With a `steps` list, appends each stage's image
    ("polarity" to "centred"). Raises EmptyImageError for a blank image.
    """
    gray = np.asarray(gray, dtype=np.float32)
    light_background = _quantile(_border(gray), 0.5) > 0.5
    gray = flatten_paper(gray, light_background)
    if light_background:
        gray = 1.0 - gray
    _record(steps, "fashion", "polarity", gray)
    background = _quantile(_border(gray), 0.5)
    item = np.clip((gray - background) / max(1.0 - background, 1e-6), 0.0, 1.0)
    _record(steps, "fashion", "background", item)
    mask = drop_specks(np.where(item > FASHION_TRIM_LEVEL, item, 0.0))
    if not mask.any():
        raise EmptyImageError("the image is blank (nothing differs from its background); photograph "
                              "one item on a plain background")
    item = item[_bounding_box(mask)]
    _record(steps, "fashion", "crop", item)
    scale = SIDE / max(item.shape)  # longer edge -> 28 px
    height, width = (max(1, round(n * scale)) for n in item.shape)
    resized = Image.fromarray(item, mode="F").resize((width, height), Image.Resampling.LANCZOS)
    fitted = np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)
    _record(steps, "fashion", "fit", fitted)
    out = np.zeros((SIDE, SIDE), np.float32)
    # An odd margin's extra pixel goes before the item, as in Fashion-MNIST's own images.
    top, left = (SIDE - height + 1) // 2, (SIDE - width + 1) // 2
    out[top:top + height, left:left + width] = fitted
    _record(steps, "fashion", "centred", out)
    return out


def _luminance(im: Image.Image) -> np.ndarray:
    """The decoded pixels as float32 (H, W) luminance in [0, 1], alpha ignored (for the "decoded" step)."""
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info:
        return np.asarray(im.convert("RGBA").convert("L"), dtype=np.float32) / 255.0
    return to_gray(im)  # no alpha: the same pixels


def preprocess(source: bytes | Path | Image.Image | np.ndarray, max_bytes: int = DEFAULT_MAX_BYTES,
               max_pixels: int = DEFAULT_MAX_PIXELS, style: Style = "digit",
               steps: list[Step] | None = None) -> np.ndarray:
    """Image bytes, an image file, a Pillow image or a 0..255 array -> float32 (28, 28) in [0, 1].

    `style` picks the recipe: "digit" (MNIST, `to_mnist`) or "fashion" (`to_fashion_mnist`).
    With a `steps` list, every step of STEPS[style] is appended to it as it happens (on an
    error, the steps done so far stay there).
    """
    style = "fashion" if style == "fashion" else "digit"
    if isinstance(source, np.ndarray):
        gray = gray_from_array(source)
        _record(steps, style, "decoded", gray)
    else:
        if isinstance(source, (bytes, bytearray)):
            im = decode_image(bytes(source), max_bytes, max_pixels)
        elif isinstance(source, Image.Image):
            im = source
        else:
            im = read_image_file(Path(source), max_bytes, max_pixels)
        if steps is not None:
            _record(steps, style, "decoded", _luminance(im))
        gray = to_gray(im)
    _record(steps, style, "gray", gray)
    return to_fashion_mnist(gray, steps) if style == "fashion" else to_mnist(gray, steps)


def preprocess_steps(source: bytes | Path | Image.Image | np.ndarray, max_bytes: int = DEFAULT_MAX_BYTES,
                     max_pixels: int = DEFAULT_MAX_PIXELS, style: Style = "digit") -> list[Step]:
    """`preprocess`, keeping every intermediate image: one Step per name in STEP_NAMES[style].

    The last step's image is exactly `preprocess`'s result. Raises what `preprocess` raises.
    """
    steps: list[Step] = []
    preprocess(source, max_bytes, max_pixels, style, steps)
    return steps


def model_input(images: np.ndarray) -> np.ndarray:
    """float32 (28, 28) or (N, 28, 28) -> (N, 28, 28, 1), the shape every model here takes."""
    images = np.asarray(images, dtype=np.float32)
    return (images[np.newaxis] if images.ndim == 2 else images)[..., np.newaxis]


def to_uint8(image: np.ndarray) -> np.ndarray:
    """float (28, 28) in [0, 1] -> uint8 0..255, for saving and for JSON responses."""
    return np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)
