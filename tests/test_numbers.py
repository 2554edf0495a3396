"""Reading numbers: segmentation of composed numbers, boxes in the input's pixels, the CLI and POST /read.

Segmentation tests need no model (they run `segment_digits` on `find_ink`'s output); the
reading, CLI and API tests use the session's small trained model.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_DATA
from PIL import Image, ImageDraw

from mnist_cnn.cli.main import main
from mnist_cnn.core.errors import EmptyImageError, MnistCnnError
from mnist_cnn.data.idx import load_split
from mnist_cnn.data.imagefile import gray_from_array
from mnist_cnn.data.registry import get_spec
from mnist_cnn.inference.numbers import read_number
from mnist_cnn.inference.preprocess import find_ink
from mnist_cnn.inference.segment import segment_digits


@pytest.fixture(scope="module")
def mnist_test() -> tuple[np.ndarray, np.ndarray]:
    if not (SHARED_DATA / "mnist").is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (set MNIST_CNN_TEST_DATA)")
    images, labels, _ = load_split(get_spec("mnist"), SHARED_DATA / "mnist", "test")
    return images, labels


def first_of(mnist_test, label: int, skip: int = 0) -> np.ndarray:
    images, labels = mnist_test
    return images[np.flatnonzero(labels == label)[skip]]


def compose(digits: list[np.ndarray], scale: int = 3, gap: int = 20, raise_px: list[int] | None = None,
            margin: int = 30) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """MNIST digits side by side, `scale` times larger, black on white -> (uint8 image, true (x, y, w, h) boxes)."""
    inks, boxes = [], []
    for digit in digits:
        rows, cols = np.nonzero(digit > 0)
        crop = digit[rows.min():rows.max() + 1, cols.min():cols.max() + 1]
        inks.append(np.kron(crop, np.ones((scale, scale), np.uint8)))
    height = max(ink.shape[0] for ink in inks) + 2 * margin + 40
    width = sum(ink.shape[1] for ink in inks) + gap * (len(inks) - 1) + 2 * margin
    canvas = np.zeros((height, width), np.uint8)
    x = margin
    for i, ink in enumerate(inks):
        y = margin + 20 - (raise_px[i] if raise_px else 0)
        canvas[y:y + ink.shape[0], x:x + ink.shape[1]] = np.maximum(canvas[y:y + ink.shape[0], x:x + ink.shape[1]], ink)
        rows, cols = np.nonzero(ink > 0.15 * 255)
        boxes.append((x + int(cols.min()), y + int(rows.min()), int(np.ptp(cols)) + 1, int(np.ptp(rows)) + 1))
        x += ink.shape[1] + gap
    return 255 - canvas, boxes


def segments_of(image: np.ndarray):
    ink, factor = find_ink(gray_from_array(image))
    assert factor == 1
    return segment_digits(ink)


def iou(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """Intersection over union of two (x, y, width, height) boxes."""
    left, top = max(a[0], b[0]), max(a[1], b[1])
    right, bottom = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    inter = max(0, right - left) * max(0, bottom - top)
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


def as_xywh(box: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
    left, top, right, bottom = box
    return left, top, right - left, bottom - top


def test_separate_digits_come_out_left_to_right_with_their_boxes(mnist_test):
    digits = [first_of(mnist_test, d) for d in (4, 0, 7, 2)]
    image, boxes = compose(digits, raise_px=[0, 25, -10, 15])  # a wandering baseline: order is by x alone
    segments = segments_of(image)
    assert len(segments) == 4
    lefts = [s.box[0] for s in segments]
    assert lefts == sorted(lefts)
    for segment, truth in zip(segments, boxes):
        assert iou(as_xywh(segment.box), truth) > 0.9, (segment.box, truth)
        assert segment.ink.shape == (segment.box[3] - segment.box[1], segment.box[2] - segment.box[0])


def five_with_a_detached_bar(draw: ImageDraw.ImageDraw, x: int, y: int, size: int, width: int) -> None:
    """A 5 whose top bar is written apart, up and to the right, as many people do."""
    draw.line([(x + 0.15 * size, y + 0.15 * size), (x + 0.65 * size, y)], fill=0, width=width)  # the bar, apart
    draw.line([(x, y + 0.22 * size), (x - 0.05 * size, y + 0.5 * size)], fill=0, width=width)  # the stem
    draw.arc([x - 0.1 * size, y + 0.4 * size, x + 0.55 * size, y + size], start=-150, end=140, fill=0, width=width)


def test_a_five_with_a_detached_top_bar_is_one_digit():
    im = Image.new("L", (420, 220), 255)
    draw = ImageDraw.Draw(im)
    five_with_a_detached_bar(draw, 60, 40, 140, 12)
    draw.ellipse([250, 40, 350, 180], outline=0, width=12)  # a 0 beside it
    segments = segments_of(np.asarray(im))
    assert len(segments) == 2
    left, top, right, bottom = segments[0].box
    assert top < 50 and right > 60 + 0.6 * 140  # the bar is inside the 5's box
    assert segments[1].box[0] > 240


def test_a_dotted_one_and_a_serif_one_are_one_digit_each():
    im = Image.new("L", (420, 240), 255)
    draw = ImageDraw.Draw(im)
    draw.ellipse([92, 30, 108, 46], fill=0)  # the dot of an i-like 1 ...
    draw.line([(100, 70), (100, 200)], fill=0, width=12)  # ... over its stem, apart
    draw.line([(250, 60), (280, 40), (280, 200)], fill=0, width=12)  # a 1 with a flag ...
    draw.line([(250, 200), (310, 200)], fill=0, width=12)  # ... and a foot (serif), joined
    segments = segments_of(np.asarray(im))
    assert len(segments) == 2
    assert segments[0].box[1] <= 32  # the dot belongs to the first 1
    assert segments[1].box[0] <= 252 and segments[1].box[2] >= 308  # flag and foot: one digit


def test_broken_bits_stacked_as_tall_as_a_digit_join_their_neighbour_but_a_thin_one_stays():
    im = Image.new("L", (560, 240), 255)
    draw = ImageDraw.Draw(im)
    draw.line([(100, 40), (100, 200)], fill=0, width=12)  # a 1
    draw.line([(122, 60), (124, 80)], fill=0, width=5)  # two short bits of a broken stroke beside it,
    draw.line([(124, 150), (126, 190)], fill=0, width=5)  # one above the other: as tall as a digit
    for left in (180, 330):  # two 0s
        draw.ellipse([left, 40, left + 100, 200], outline=0, width=12)
    draw.line([(490, 40), (490, 200)], fill=0, width=7)  # a thin 1, far from its neighbour
    segments = segments_of(np.asarray(im))
    assert len(segments) == 4  # 1 (with the bits), 0, 0, thin 1
    assert segments[0].box[0] < 100 < 124 < segments[0].box[2]
    assert segments[3].box[0] > 470


def test_specks_and_stray_marks_are_not_digits(mnist_test):
    image, boxes = compose([first_of(mnist_test, 3), first_of(mnist_test, 8)])
    image = image.copy()
    image[5:8, 5:8] = 0  # a 3x3 speck in the corner, far from the number
    image[-12:-8, image.shape[1] // 2: image.shape[1] // 2 + 4] = 0  # a small blot under it
    assert len(segments_of(image)) == 2


def test_blank_and_empty_images_are_refused_as_before():
    with pytest.raises(EmptyImageError):
        segments_of(np.full((100, 300), 255, np.uint8))
    assert segment_digits(np.zeros((10, 10), np.float32)) == []


# -- reading with a model ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def predictor(trained_model: Path):
    from mnist_cnn.inference.predict import Predictor

    return Predictor.from_path(trained_model)


def confident_digits(predictor, mnist_test, labels: tuple[int, ...]) -> list[np.ndarray]:
    """For each label, the first test digit the small model reads right with >= 0.99 alone."""
    from mnist_cnn.inference.preprocess import preprocess

    picked = []
    for label in labels:
        for skip in range(50):
            digit = first_of(mnist_test, label, skip)
            p = predictor.probabilities(preprocess(digit)[None])[0]
            if p.argmax() == label and p.max() >= 0.99:
                picked.append(digit)
                break
    return picked


def test_read_number_reads_a_composed_number(predictor, mnist_test):
    digits = confident_digits(predictor, mnist_test, (3, 0, 1, 9, 6))
    image, boxes = compose(digits)
    reading = read_number(predictor, image, "n.png")
    assert reading.text == "30196"
    assert reading.size == (image.shape[1], image.shape[0])
    assert [iou(d.box, b) > 0.9 for d, b in zip(reading.digits, boxes)] == [True] * 5
    assert all(d.image.shape == (28, 28) and d.image.dtype == np.uint8 for d in reading.digits)
    record = reading.to_dict()
    assert record["number"] == "30196" and record["calibrated"] is False and record["accepted"] is True
    assert set(record["digits"][0]["box"]) == {"x", "y", "width", "height"}


def test_two_touching_digits_are_split_by_the_model(predictor, mnist_test):
    digits = confident_digits(predictor, mnist_test, (4, 7))
    image, _ = compose(digits, gap=-6)  # the 7's ink runs into the 4's
    ink, _ = find_ink(gray_from_array(image))
    from scipy import ndimage

    assert ndimage.label(ink > 0, structure=np.ones((3, 3)))[1] == 1  # the ink is one piece ...
    reading = read_number(predictor, image)
    assert reading.text == "47"  # ... which the model's judgement of the cuts splits in two
    assert reading.digits[0].box[0] + reading.digits[0].box[2] <= reading.digits[1].box[0] + 1  # side by side



def test_no_digit_is_prepared_and_classified_twice(predictor, mnist_test, monkeypatch):
    import mnist_cnn.inference.numbers as numbers

    prepared: list[tuple[tuple[int, ...], bytes]] = []
    real = numbers.mnist_from_ink

    def counting(crop: np.ndarray) -> np.ndarray:
        prepared.append((crop.shape, crop.tobytes()))
        return real(crop)

    monkeypatch.setattr(numbers, "mnist_from_ink", counting)
    image, _ = compose(confident_digits(predictor, mnist_test, (4, 7)), gap=-6)
    assert read_number(predictor, image).text == "47"  # the cuts were judged, then the chosen pieces read
    assert len(prepared) > 2 and len(set(prepared)) == len(prepared)

def test_boxes_are_in_the_input_pixels_of_huge_and_jpeg_draft_images(predictor, mnist_test):
    digits = confident_digits(predictor, mnist_test, (2, 5))
    image, boxes = compose(digits, scale=40, gap=300, margin=700)  # > 1024 px: pooled before reading
    assert min(image.shape) > 2048
    reading = read_number(predictor, image)
    assert reading.text == "25" and reading.size == (image.shape[1], image.shape[0])
    assert all(iou(d.box, b) > 0.9 for d, b in zip(reading.digits, boxes)), [d.box for d in reading.digits]
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=90)  # decoded at reduced scale (draft)
    from mnist_cnn.data.imagefile import decode_image

    assert max(decode_image(buffer.getvalue()).size) < max(image.shape)  # decoded at 1/2 scale or less
    from_jpeg = read_number(predictor, buffer.getvalue())
    assert from_jpeg.text == "25" and from_jpeg.size == reading.size
    assert all(iou(d.box, b) > 0.85 for d, b in zip(from_jpeg.digits, boxes)), [d.box for d in from_jpeg.digits]


@pytest.mark.parametrize("shape", [(1, 3), (2, 8), (1, 40), (3, 3)])
def test_tiny_and_flat_marks_are_read_without_crashing(predictor, shape):
    image = np.full((40, 60), 255, np.uint8)
    image[10:10 + shape[0], 5:5 + shape[1]] = 0  # a dash or dot only a few pixels in size
    try:
        reading = read_number(predictor, image)
    except EmptyImageError:
        return  # too small to be ink: refused as blank, which is fine
    assert reading.digits and all(d.box[2] >= 1 and d.box[3] >= 1 for d in reading.digits)


def test_a_fashion_model_does_not_read_numbers(predictor, mnist_test):
    from dataclasses import replace

    from mnist_cnn.inference.predict import Predictor

    fashion = Predictor(predictor.model, replace(predictor.info, dataset="fashion-mnist", style="fashion"))
    with pytest.raises(MnistCnnError, match="needs a digit model"):
        read_number(fashion, compose([first_of(mnist_test, 1)])[0])


def test_cli_predict_number_json(trained_model, predictor, mnist_test, tmp_path, capsys):
    digits = confident_digits(predictor, mnist_test, (7, 2))
    image, boxes = compose(digits)
    Image.fromarray(image).save(tmp_path / "n.png")
    (tmp_path / "notes.png").write_text("not an image")
    code = main(["predict", str(trained_model), str(tmp_path / "n.png"), str(tmp_path / "notes.png"),
                 "--number", "--json"])
    out, err = capsys.readouterr()
    assert code == 2  # one input could not be read: its error is reported, the other's answer printed
    record = json.loads(out)
    (number,) = record["numbers"]
    assert number["number"] == "72" and number["calibrated"] is False
    assert [d["class"] for d in number["digits"]] == ["7", "2"]
    assert iou(tuple(number["digits"][1]["box"].values()), boxes[1]) > 0.9
    assert record["errors"][0]["source"].endswith("notes.png")
    assert err.count("\n") == 1 and "not a readable image" in err

    assert main(["predict", str(trained_model), str(tmp_path / "n.png"), "--number"]) == 0
    assert capsys.readouterr().out.startswith(f"{tmp_path / 'n.png'}: 72  (7 ")
    assert main(["predict", str(trained_model), str(tmp_path / "n.png"), "--number", "--save-preprocessed",
                 str(tmp_path / "seen")]) == 2
    assert "--number" in capsys.readouterr().err


# -- POST /read -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def client(predictor):
    pytest.importorskip("fastapi", reason="the [serve] extra is not installed")
    import httpx
    from servers import running_server

    from mnist_cnn.serving.app import create_app

    with running_server(create_app(predictor)) as url, httpx.Client(base_url=url, timeout=60) as c:
        yield c


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def test_read_route_answers_the_number_with_boxes_and_images(client, predictor, mnist_test):
    image, boxes = compose(confident_digits(predictor, mnist_test, (5, 8, 0)))
    for response in (client.post("/read", files={"file": ("n.png", png(image), "image/png")}),
                     client.post("/read", content=png(image), headers={"content-type": "image/png"})):
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["number"] == "580" and body["accepted"] is True and body["calibrated"] is False
        assert body["size"] == {"width": image.shape[1], "height": image.shape[0]}
        assert [iou(tuple(d["box"].values()), b) > 0.9 for d, b in zip(body["digits"], boxes)] == [True] * 3
        assert np.asarray(body["digits"][0]["image"]).shape == (28, 28)
    pixels = {"image": np.asarray(Image.fromarray(255 - first_of(mnist_test, 6))).tolist()}  # JSON 28x28 works too
    assert client.post("/read", json=pixels).json()["number"] == "6"
    assert "/read" in client.get("/openapi.json").json()["paths"]


@pytest.mark.parametrize("name, request_args, status, words", [
    ("blank", {"files": {"file": ("b.png", png(np.full((80, 200), 255, np.uint8)), "image/png")}}, 422, "blank"),
    ("not an image", {"files": {"file": ("x.png", b"hello, not a PNG", "image/png")}}, 422, "not a readable image"),
    ("no file field", {"files": {"other": ("x.png", b"x", "image/png")}}, 422, "no file field"),
    ("text body", {"content": b"12", "headers": {"content-type": "text/plain"}}, 415, "unsupported content type"),
    ("huge", {"content": b"\0" * (6 * 1024 * 1024), "headers": {"content-type": "image/png"}}, 413, "limit"),
    ("scattered noise", {"files": {"file": ("s.png", png(np.where(np.random.default_rng(0).random((300, 300)) < 0.003,
                                                                   0, 255).astype(np.uint8)), "image/png")}},
     422, "specks"),
])
def test_hostile_inputs_to_read_get_a_one_line_4xx(client, name, request_args, status, words):
    response = client.post("/read", **request_args)
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and words in detail, detail
    assert client.get("/healthz").status_code == 200  # still serving
