"""Reading a number: every digit in an image, left to right, each with its class, probability and box.

`read_number(predictor, source)` runs the single-digit path in two halves around the
segmentation: `preprocess.find_ink` once on the whole image (grayscale, paper and polarity,
contrast, noise and specks), `segment.segment_digits` to cut the ink into digits, then
`preprocess.mnist_from_ink` on each digit (crop, thicken, fit 20 px, centre), so a digit in
a number is prepared exactly as it would be alone. Digits that touch are read by the
model's touching-digit reader when it has one (`touching`; the shipped `mnist` does),
else the model itself judges candidate cuts of them. Boxes are in the input image's pixels, whatever scale the
preprocessing worked at. The CLI (`predict --number`) and the API (`POST /read`) both call
this. Nothing runs at import.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
from PIL import Image

from ..core.errors import ImageError, MnistCnnError
from ..core.messages import DEFAULT_LANG, check_lang, text
from ..data.imagefile import decode_image, gray_from_array, read_image_bytes, to_gray
from .preprocess import find_ink, mnist_from_ink, to_uint8
from .segment import segment_digits
from .touching import strip_from_ink

if TYPE_CHECKING:
    from .predict import Predictor

MAX_DIGITS = 32  # more separate marks than this is a page of text or noise, not one number
EXIF_ORIENTATION = 0x0112  # values 5-8 rotate by 90 degrees: width and height swap


@dataclass(frozen=True, eq=False)  # eq=False: arrays have no single truth value
class DigitReading:
    """One digit of a number."""

    class_name: str
    index: int
    probability: float
    box: tuple[int, int, int, int]  # (x, y, width, height) in the input image's pixels
    accepted: bool  # whether it looks like one of the model's classes at all
    reason: str | None  # one line when not accepted
    image: np.ndarray  # uint8 (28, 28): what the model saw

    def to_dict(self, include_image: bool = False) -> dict[str, Any]:
        x, y, width, height = self.box
        result: dict[str, Any] = {"class": self.class_name, "index": self.index, "probability": self.probability,
                                  "box": {"x": x, "y": y, "width": width, "height": height},
                                  "accepted": self.accepted, "reason": self.reason}
        if include_image:
            result["image"] = self.image.tolist()
        return result


@dataclass(frozen=True)
class NumberReading:
    """All digits found in one image, left to right, and the string they spell."""

    source: str
    digits: tuple[DigitReading, ...]
    size: tuple[int, int]  # (width, height) of the input image, the boxes' frame
    calibrated: bool  # whether acceptance came from a calibration (else every digit is accepted)
    lang: str = DEFAULT_LANG  # the language of the reasons

    @property
    def text(self) -> str:
        return "".join(d.class_name for d in self.digits)

    @property
    def accepted(self) -> bool:
        return all(d.accepted for d in self.digits)

    @property
    def reason(self) -> str | None:
        refused = [(i, d) for i, d in enumerate(self.digits, start=1) if not d.accepted]
        if not refused:
            return None
        i, first = refused[0]
        more = text("mark_more", self.lang, others=len(refused) - 1) if len(refused) > 1 else ""
        return text("mark_refused", self.lang, index=i, count=len(self.digits), more=more, why=first.reason)

    def to_dict(self, include_images: bool = False) -> dict[str, Any]:
        return {"source": self.source, "number": self.text, "accepted": self.accepted, "reason": self.reason,
                "calibrated": self.calibrated, "size": {"width": self.size[0], "height": self.size[1]},
                "digits": [d.to_dict(include_images) for d in self.digits]}


def _input_size(data: bytes) -> tuple[int, int]:
    """The (width, height) of the image as stored, after its camera rotation.

    Usually the decoded size; but a big JPEG is decoded at reduced scale (draft mode), and
    the boxes must still be in the user's pixels. Reads the header only: `decode_image` has
    decoded these bytes already, so they are a valid image of an allowed format.
    """
    with Image.open(io.BytesIO(data)) as header:
        width, height = header.size
        rotated = header.getexif().get(EXIF_ORIENTATION) in (5, 6, 7, 8)
    return (height, width) if rotated else (width, height)


def load_gray(source: bytes | Path | Image.Image | np.ndarray, max_bytes: int,
              max_pixels: int) -> tuple[np.ndarray, tuple[int, int]]:
    """Any image `preprocess` takes -> (float32 (H, W) grayscale in [0, 1], its (width, height) as input)."""
    if isinstance(source, np.ndarray):
        gray = gray_from_array(source)
        return gray, (gray.shape[1], gray.shape[0])
    if isinstance(source, Image.Image):
        return to_gray(source), source.size
    if isinstance(source, (bytes, bytearray)):
        im = decode_image(bytes(source), max_bytes, max_pixels)
        return to_gray(im), _input_size(bytes(source))
    path = Path(source)
    try:
        payload = read_image_bytes(path, max_bytes)
        im = decode_image(payload, max_bytes, max_pixels)
        return to_gray(im), _input_size(payload)
    except ImageError as e:
        raise type(e)(f"{path}: {e}") from None


def read_number(predictor: "Predictor", source: bytes | Path | Image.Image | np.ndarray,
                name: str = "image", lang: str = DEFAULT_LANG) -> NumberReading:
    """Every digit in `source`, left to right, with its class, probability, box and acceptance
    (a refusal's reason in `lang`).

    Raises ImageError (unreadable, too large, more than MAX_DIGITS marks), EmptyImageError
    (no ink) or MnistCnnError (a model not trained on digits).
    """
    check_lang(lang)
    if predictor.style != "digit":
        raise MnistCnnError("reading a number needs a digit model; this one was trained on "
                            f"{predictor.info.dataset or 'items, not digits'}: send one item to /predict instead")
    gray, size = load_gray(source, predictor.max_bytes, predictor.max_pixels)
    ink, factor = find_ink(gray)
    # Input pixels per ink pixel, per axis: the pooling factor times any JPEG draft reduction.
    scale_x, scale_y = factor * size[0] / gray.shape[1], factor * size[1] / gray.shape[0]

    # A crop's 28 x 28 image and the model's probabilities, by its pixels: a digit the model
    # judged whole while segmenting is read from here, not prepared and run a second time.
    seen: dict[tuple[tuple[int, ...], bytes], tuple[np.ndarray, np.ndarray]] = {}

    def classify(crops: list[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
        keys = [(c.shape, c.tobytes()) for c in crops]
        new = {key: crop for key, crop in zip(keys, crops) if key not in seen}
        if new:
            images = np.stack([mnist_from_ink(c) for c in new.values()])
            seen.update(zip(new, zip(images, predictor.probabilities(images))))
        return [seen[key] for key in keys]

    def confidence(crops: list[np.ndarray]) -> np.ndarray:  # the model judges candidate cuts
        return np.array([p.max() for _, p in classify(crops)])

    def read_touching(inks: list[np.ndarray]) -> list[list[tuple[int, float, float]]]:
        prepared = [strip_from_ink(i) for i in inks]
        found = predictor.read_strips(np.stack([strip for strip, _ in prepared]))
        return [[(d.digit, d.probability, layout.ink_column(d.centre)) for d in digits]
                for digits, (_, layout) in zip(found, prepared)]

    reader = read_touching if predictor.reader_file is not None else None
    segments = segment_digits(ink, confidence, reader)
    if len(segments) > MAX_DIGITS:
        raise ImageError(f"found {len(segments)} separate marks, more than the {MAX_DIGITS} digits a number may "
                            f"have here; crop the image to the number")
    classified = classify([s.ink for s in segments])
    images = np.stack([image for image, _ in classified])  # (N, 28, 28)
    probabilities = np.stack([p for _, p in classified])
    for k, segment in enumerate(segments):
        if segment.read_as is not None:  # the reader saw this digit whole, where the cut may not have
            probabilities[k] = reader_probabilities(*segment.read_as, predictor.num_classes)
    verdicts = predictor.acceptance_of(images, probabilities)
    digits = []
    for segment, p, image, verdict in zip(segments, probabilities, images, verdicts):
        left, top, right, bottom = segment.box
        x, y = int(left * scale_x), int(top * scale_y)
        box = (x, y, min(size[0], int(np.ceil(right * scale_x))) - x, min(size[1], int(np.ceil(bottom * scale_y))) - y)
        best = int(np.argmax(p))
        digits.append(DigitReading(predictor.class_names[best], best, float(p[best]), box, verdict.accepted,
                                   verdict.reason_in(lang), to_uint8(image)))
    return NumberReading(name, tuple(digits), size, predictor.calibrated, lang)


def reader_probabilities(digit: int, probability: float, num_classes: int) -> np.ndarray:
    """The reader's answer for one digit as a probability vector: `probability` on `digit`, the rest
    shared evenly. The "not a digit" rule then weighs the reader's certainty with the cut's ink."""
    p = np.full(num_classes, (1.0 - probability) / max(1, num_classes - 1))
    p[digit] = probability
    return p


def read_inputs(predictor: "Predictor", inputs: Sequence[tuple[str, Any]],
                lang: str = DEFAULT_LANG) -> tuple[list[NumberReading], list[dict[str, str]]]:
    """`mnist-cnn predict --number` as a function: (name, source) pairs -> readings and per-image errors.

    An image that cannot be read becomes an error entry ({"source", "error"}), as in `predict_inputs`.
    """
    readings, errors = [], []
    for name, source in inputs:
        try:
            readings.append(read_number(predictor, source, name, lang))
        except ImageError as e:
            errors.append({"source": name, "error": str(e) if str(e).startswith(name) else f"{name}: {e}"})
    return readings, errors


def format_reading(reading: NumberReading) -> str:
    """One line: `name: 2024  (2 0.998, 0 0.991, 2 0.975, 4 0.999)` plus why, if refused."""
    digits = ", ".join(f"{d.class_name} {d.probability:.3f}" for d in reading.digits)
    refused = "" if reading.accepted else f"  [{text('not_accepted', reading.lang)}: {reading.reason}]"
    return f"{reading.source}: {reading.text}  ({digits}){refused}"
