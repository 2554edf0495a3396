"""Reading people's image files safely: decoding under byte and pixel caps, grayscale.

Step 1 and 2 of the preprocessing described in `preprocess` (which re-exports these),
and the one reader of image files in the package (custom image-folder datasets too):
any Pillow-readable raster format of the allowed list, any size and mode, refused
before decoding when the header claims too many pixels. Nothing runs at import.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from ..core.errors import ImageError, ImageTooLargeError, first_line

DEFAULT_MAX_BYTES = 5 * 1024 * 1024  # largest accepted image file / upload (5 MiB)
DEFAULT_MAX_PIXELS = 25_000_000  # largest decoded image (25 MP, ~100 MB as float32); bombs claim billions
ALLOWED_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF", "PPM")  # no EPS: it runs Ghostscript
JPEG_DRAFT_SIDE = 1024  # big JPEGs are decoded at 1/2..1/8 scale, but never below this (px)
JPEG_MAX_REDUCTION = 8  # the smallest JPEG draft scale is 1/8 per side


def decode_image(data: bytes, max_bytes: int = DEFAULT_MAX_BYTES,
                 max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode image bytes (first frame of an animation), refusing oversized input before decoding.

    Raises ImageTooLargeError (too many bytes or pixels) or ImageError (not an image of an
    allowed format, truncated, corrupt).
    """
    if len(data) > max_bytes:
        raise ImageTooLargeError(f"image is {len(data):,} bytes, over the {max_bytes:,}-byte limit; "
                                 f"send a smaller file (a digit needs only a few KB)")
    if not data:
        raise ImageError("image is empty (0 bytes); send a PNG, JPEG, WebP or GIF file")
    # Pillow refuses images over 2 x MAX_IMAGE_PIXELS inside open(), before the JPEG draft
    # could shrink them: raise its limit to what a 1/8-scale draft can bring under ours.
    # Safe: every image's header size is checked against `max_pixels` below, before decoding.
    Image.MAX_IMAGE_PIXELS = max(Image.MAX_IMAGE_PIXELS or 0, max_pixels * JPEG_MAX_REDUCTION ** 2 // 2)
    with warnings.catch_warnings():
        # Pillow warns (to stderr) about images between its limit and twice it; the check below
        # against `max_pixels` is stricter, so its warning would only print a line before ours.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return _decode(data, max_pixels)


def _decode(data: bytes, max_pixels: int) -> Image.Image:
    try:
        im = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except Image.DecompressionBombError:  # Pillow's own cap (far above ours) fires inside open()
        raise ImageTooLargeError(f"image dimensions are over Pillow's pixel limit (and the "
                                 f"{max_pixels:,}-pixel limit here); scale it down first") from None
    except Exception:  # Pillow raises UnidentifiedImageError, SyntaxError, ValueError, ...
        raise ImageError(f"not a readable image (allowed: {', '.join(ALLOWED_FORMATS)}); "
                         f"send a PNG, JPEG, WebP or GIF file") from None
    if im.format == "JPEG":
        im.draft("L", (JPEG_DRAFT_SIDE, JPEG_DRAFT_SIDE))  # decode big photos at reduced scale
    width, height = im.size  # from the header (after draft: the reduced size); nothing decoded yet
    if width * height > max_pixels:
        raise ImageTooLargeError(f"image is {width}x{height} = {width * height:,} pixels, over the "
                                 f"{max_pixels:,}-pixel limit; scale it down first")
    try:
        im.load()
        ImageOps.exif_transpose(im, in_place=True)  # photos: apply the camera's rotation (no copy when none)
        return im
    except Exception as e:  # truncated data raises OSError; corrupt chunks SyntaxError, zlib.error ...
        raise ImageError(f"cannot decode the image ({first_line(e, 120)}); the file is truncated or "
                         f"corrupt, send it again or re-save it") from None


def read_image_bytes(path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> bytes:
    """A file's bytes, refused by its size before it is read.

    Raises ImageTooLargeError or ImageError; like `decode_image`'s, their messages leave
    naming the file to the caller.
    """
    try:
        size = Path(path).stat().st_size
        if size > max_bytes:
            raise ImageTooLargeError(f"file is {size:,} bytes, over the {max_bytes:,}-byte limit; "
                                     f"scale it down first")
        return Path(path).read_bytes()
    except OSError as e:
        raise ImageError(f"cannot read the file ({e.strerror}); check the path") from None


def read_image_file(path: Path, max_bytes: int = DEFAULT_MAX_BYTES,
                    max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """`decode_image` on a file, checking its size before reading it; errors name the file."""
    try:
        return decode_image(read_image_bytes(path, max_bytes), max_bytes, max_pixels)
    except ImageError as e:
        raise type(e)(f"{path}: {e}") from None


def to_gray(im: Image.Image) -> np.ndarray:
    """Any Pillow image -> float32 (H, W) luminance in [0, 1], transparency composited.

    ImageError for pixels that are not numbers (NaN or infinite in a float TIFF/PFM) and for
    modes Pillow cannot turn into luminance (a LAB or CMYK-less exotic TIFF).
    """
    try:
        return _to_gray(im)
    except ImageError:
        raise
    except (ValueError, OSError, TypeError) as e:
        raise ImageError(f"cannot read the colours of this {im.mode} image ({type(e).__name__}); re-save it "
                         f"as an 8-bit PNG or JPEG") from None


def _to_gray(im: Image.Image) -> np.ndarray:
    if im.mode in ("I", "I;16", "I;16B", "I;16L", "F"):  # 16-bit or float scans
        values = np.asarray(im, dtype=np.float32)
        if not np.isfinite(values).all():
            raise ImageError("the image holds NaN or infinite pixel values; re-save it as an 8-bit PNG or JPEG")
        return np.clip(values / (65535.0 if values.max() > 255 else 255.0), 0.0, 1.0)
    if im.mode == "LAB":  # Pillow has no LAB -> L conversion; L* (0..255) is the lightness itself
        return np.asarray(im.getchannel(0), dtype=np.float32) / 255.0
    has_alpha = im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info
    if not has_alpha:
        return np.asarray(im.convert("L"), dtype=np.float32) / 255.0
    rgba = im.convert("RGBA")
    luminance = np.asarray(rgba.convert("L"), dtype=np.float32) / 255.0
    alpha = np.asarray(rgba.getchannel("A"), dtype=np.float32) / 255.0
    opaque = alpha > 0.5
    # Light ink on a transparent background would vanish on white: composite it onto black.
    background = 0.0 if opaque.any() and float(np.median(luminance[opaque])) > 0.5 else 1.0
    return luminance * alpha + background * (1.0 - alpha)


def gray_from_array(values: np.ndarray) -> np.ndarray:
    """A 2-D array of 0..255 values (e.g. a raw MNIST image) -> float32 (H, W) in [0, 1]."""
    values = np.asarray(values, dtype=np.float32)
    if values.ndim != 2 or min(values.shape) < 1:
        raise ImageError(f"expected a 2-D array of pixels, got shape {values.shape}")
    if not np.isfinite(values).all() or values.min() < 0 or values.max() > 255:
        raise ImageError("pixel values must be finite numbers from 0 to 255")
    return values / 255.0
