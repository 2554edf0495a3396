"""MNIST-style preprocessing: any image lands centred, 20 px tall, white on black, like MNIST.

No model here (no TensorFlow): these run in a couple of seconds, except the one slow test
of `mnist-cnn predict --steps`, which uses the session's small trained model.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from conftest import REPO, SHARED_DATA
from PIL import Image, ImageDraw

from mnist_cnn.cli.main import main
from mnist_cnn.core.errors import EmptyImageError, ImageError, ImageTooLargeError, MnistCnnError
from mnist_cnn.data.idx import load_split
from mnist_cnn.data.registry import get_spec
from mnist_cnn.inference.predict import save_preprocessing_steps
from mnist_cnn.inference.preprocess import (
    STEP_NAMES,
    STEPS,
    decode_image,
    gray_from_array,
    preprocess,
    preprocess_steps,
    stroke_width,
)

MNIST_INK_PIXELS = 96  # mean count of pixels > 0.5 in an MNIST test digit (measured)


@pytest.fixture(scope="module")
def mnist_digits() -> tuple[np.ndarray, np.ndarray]:
    """The first 200 real MNIST test digits, uint8 (200, 28, 28), and their labels."""
    if not (SHARED_DATA / "mnist").is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (set MNIST_CNN_TEST_DATA)")
    spec = get_spec("mnist")
    images, labels, _ = load_split(spec, SHARED_DATA / "mnist", "test")
    return images[:200], labels[:200]


def encode(image: Image.Image | np.ndarray, fmt: str = "PNG", **options) -> bytes:
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def centre_of_mass(image: np.ndarray) -> tuple[float, float]:
    rows, cols = np.indices(image.shape)
    return float((rows * image).sum() / image.sum()), float((cols * image).sum() / image.sum())


def box_size(image: np.ndarray, level: float = 0.1) -> tuple[int, int]:
    rows, cols = np.nonzero(image > level)
    return int(np.ptp(rows)) + 1, int(np.ptp(cols)) + 1


def assert_mnist_like(image: np.ndarray) -> None:
    assert image.shape == (28, 28) and image.dtype == np.float32
    assert image.min() >= 0.0 and image.max() == pytest.approx(1.0)
    row, col = centre_of_mass(image)
    assert abs(row - 14) <= 1 and abs(col - 14) <= 1, (row, col)
    assert 18 <= max(box_size(image)) <= 22, box_size(image)
    border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
    assert border.mean() < 0.05  # background stays black (a digit may touch one edge, as in MNIST)
    assert image.mean() < 0.35  # white ink on black, not the reverse


def draw_seven(size: tuple[int, int], width: int, offset=(0, 0), ink=0, paper=255, mode="L") -> Image.Image:
    """A hand-drawn-looking 7 on a canvas of `size`, its box 40% of the shorter side."""
    im = Image.new(mode, size, paper)
    side = 0.4 * min(size)
    x0, y0 = size[0] / 2 - side / 2 + offset[0], size[1] / 2 - side / 2 + offset[1]
    ImageDraw.Draw(im).line([(x0, y0), (x0 + side * 0.7, y0), (x0 + side * 0.3, y0 + side)], fill=ink, width=width)
    return im


def test_real_mnist_digits_pass_through_nearly_unchanged(mnist_digits):
    images, _ = mnist_digits
    # 0..255 arrays, already white-on-black, 20 px, centred: at most a 1-px re-centring
    # (when MNIST's own centre of mass sits half a pixel off) changes them.
    differences = [np.abs(preprocess(image) - image / 255.0).mean() for image in images[:100]]
    assert np.median(differences) < 0.01 and max(differences) < 0.1


@pytest.mark.parametrize("transform", ["black-on-white", "upscaled-off-centre", "rgba-transparent", "jpeg"])
def test_transformed_mnist_digits_come_back_as_the_original(mnist_digits, transform):
    images, _ = mnist_digits
    differences = []
    for image in images[:20]:
        if transform == "black-on-white":
            source = encode(255 - image)
        elif transform == "upscaled-off-centre":  # 4x bigger, black on white, in a corner of a big canvas
            big = np.kron(255 - image, np.ones((4, 4), np.uint8))
            source = encode(np.pad(big, ((10, 300), (250, 20)), constant_values=255))
        elif transform == "rgba-transparent":  # black ink whose background is fully transparent
            rgba = np.zeros((28, 28, 4), np.uint8)
            rgba[..., 3] = image
            source = encode(Image.fromarray(rgba, "RGBA"))
        else:
            source = encode(np.kron(255 - image, np.ones((3, 3), np.uint8)), "JPEG", quality=85)
        out = preprocess(source)
        assert_mnist_like(out)
        differences.append(np.abs(out - image / 255.0).mean())
    # Resampling blurs a little and re-centring may move a digit 1 px; nothing more.
    assert np.median(differences) < 0.03 and max(differences) < 0.12, transform


def test_fashion_items_follow_fashion_mnists_own_recipe():
    if not (SHARED_DATA / "fashion-mnist").is_dir():
        pytest.skip(f"Fashion-MNIST not found at {SHARED_DATA}")
    images, _, _ = load_split(get_spec("fashion-mnist"), SHARED_DATA / "fashion-mnist", "test")
    own, digit_recipe = [], []
    for image in images[:20]:
        # As a product photo: dark item on white, 5x larger, off-centre on a bigger page.
        photo = Image.new("L", (300, 260), 255)
        photo.paste(Image.fromarray(255 - image).resize((140, 140), Image.Resampling.BICUBIC), (30, 100))
        own.append(np.abs(preprocess(encode(photo), style="fashion") - image / 255.0).mean())
        digit_recipe.append(np.abs(preprocess(encode(photo)) - image / 255.0).mean())
    # Longer edge 28 px, centred by geometry, no contrast games: back to nearly the original
    # (resampling blur may widen the trimmed item by a pixel).
    assert np.median(own) < 0.07
    assert np.median(digit_recipe) > 2 * np.median(own)  # the digit recipe (20-px box) would not be


@pytest.mark.parametrize("size, width, offset", [
    ((300, 300), 12, (0, 0)),  # ordinary
    ((600, 400), 14, (-170, 90)),  # off-centre, wide canvas
    ((12, 12), 1, (0, 0)),  # tiny: upscaled
    ((4000, 3000), 40, (500, -400)),  # huge photo-sized canvas
])
def test_drawn_digits_land_centred_with_mnist_statistics(size, width, offset):
    out = preprocess(draw_seven(size, width, offset))
    assert_mnist_like(out)


def test_big_jpeg_photos_are_decoded_at_reduced_scale():
    photo = encode(draw_seven((6000, 4500), 40).convert("RGB"), "JPEG", quality=90)  # 27 MP > the cap
    im = decode_image(photo)
    assert max(im.size) <= 2048  # draft mode: 1/2..1/8 scale, so the pixel cap is met
    assert_mnist_like(preprocess(photo))


def test_a_huge_image_is_handled():
    # Its speed is no unit test's business (the machine is shared); that it works is.
    assert_mnist_like(preprocess(encode(draw_seven((4000, 4000), 30))))


@pytest.mark.parametrize("size, ink, paper", [
    ((800, 800), 0, 255),
    ((5000, 4000), 0, 255),  # pooled down before anything else: the line must survive that too
    ((5000, 4000), 255, 0),  # light ink on dark paper takes the other pooling
])
def test_thin_strokes_are_thickened_to_mnist_weight(size, ink, paper):
    # A 1-px pen line on a big canvas shrinks to 0.05 px at 20 px: without thickening, nothing is left.
    thin = draw_seven(size, 1, ink=ink, paper=paper)
    assert stroke_width(np.asarray(thin) == ink) <= 2
    out = preprocess(thin)
    assert_mnist_like(out)
    ink = int((out > 0.5).sum())
    assert MNIST_INK_PIXELS / 3 <= ink <= MNIST_INK_PIXELS * 1.5, ink


def test_thick_strokes_are_not_thickened_further():
    out = preprocess(draw_seven((300, 300), 14))
    thin_out = preprocess(draw_seven((300, 300), 1))
    assert (out > 0.5).sum() >= (thin_out > 0.5).sum() * 0.8  # both MNIST-weight, thick not bloated
    assert (out > 0.5).sum() <= MNIST_INK_PIXELS * 1.5


@pytest.mark.parametrize("mode, ink, paper", [
    ("RGB", (20, 20, 120), (250, 245, 230)),  # blue pen on cream paper
    ("LA", (255, 255), (0, 0)),  # white ink on a transparent background
    ("RGBA", (0, 0, 0, 255), (255, 255, 255, 0)),  # black ink on transparent
    ("P", 1, 0),  # palette image
    ("1", 0, 1),  # bilevel scan
    ("I;16", 0, 65535),  # 16-bit grayscale scan
])
def test_any_mode_reads_the_same_digit(mode, ink, paper):
    reference = preprocess(draw_seven((200, 200), 10))
    im = draw_seven((200, 200), 10, ink=ink, paper=paper, mode=mode)
    if mode == "P":
        im.putpalette([255, 255, 255, 0, 0, 0] + [0] * 762)
    out = preprocess(encode(im))
    assert_mnist_like(out)
    assert np.abs(out - reference).mean() < 0.03, mode


@pytest.mark.parametrize("fmt", ["GIF", "WEBP", "BMP", "TIFF"])
def test_other_formats_decode(fmt):
    reference = preprocess(draw_seven((200, 200), 10))
    out = preprocess(encode(draw_seven((200, 200), 10).convert("RGB"), fmt))
    assert np.abs(out - reference).mean() < 0.03, fmt


def test_animated_gif_uses_the_first_frame():
    frames = [draw_seven((100, 100), 6), Image.new("L", (100, 100), 255)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    assert_mnist_like(preprocess(buffer.getvalue()))


def test_faint_paper_noise_is_dropped():
    rng = np.random.default_rng(0)
    page = np.asarray(draw_seven((300, 300), 12), dtype=np.float64)
    noisy = np.clip(page - rng.uniform(0, 25, page.shape), 0, 255).astype(np.uint8)  # grainy grey paper
    out = preprocess(noisy)
    assert_mnist_like(out)
    assert np.abs(out - preprocess(page.astype(np.uint8))).mean() < 0.03


@pytest.mark.parametrize("light", [True, False])
def test_a_photo_with_a_shadow_reads_like_a_scan(light):
    # Paper lit from the right: 65% as bright on the left. Without flattening, the shadow
    # is darker than the paper's median and reads as ink over half the page.
    clean = np.asarray(draw_seven((900, 700), 30, ink=0 if light else 255, paper=255 if light else 0), float)
    lighting = np.linspace(0.65, 1.0, 900)[np.newaxis, :]
    shaded = clean * lighting if light else 255 - (255 - clean) * lighting
    noisy = shaded + np.random.default_rng(0).normal(0, 6, clean.shape)
    photo = encode(Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).convert("RGB"), "JPEG", quality=80)
    out = preprocess(photo)
    assert_mnist_like(out)
    assert np.abs(out - preprocess(clean.astype(np.uint8))).mean() < 0.04


def test_isolated_specks_do_not_move_the_crop():
    page = np.asarray(draw_seven((400, 400), 14)).copy()
    clean = preprocess(page)
    page[[5, 390, 200, 20], [5, 390, 10, 380]] = 0  # four dust specks near the corners
    assert np.abs(preprocess(page) - clean).max() < 1e-6
    dust_only = np.full((400, 400), 255, np.uint8)
    dust_only[[5, 390, 200], [5, 390, 10]] = 0
    with pytest.raises(EmptyImageError, match="specks"):
        preprocess(dust_only)


@pytest.mark.parametrize("fill", [0, 255, 128])
def test_a_blank_image_is_an_error_not_a_guess(fill):
    with pytest.raises(EmptyImageError, match="blank"):
        preprocess(encode(Image.new("L", (100, 100), fill)))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims width x height but holds almost no data (a decompression bomb's header)."""
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("width, height", [(6_000, 6_000), (100_000, 100_000)])
def test_decompression_bombs_are_refused_before_decoding(width, height, monkeypatch):
    from PIL import ImageFile

    def no_decoding(self):
        raise AssertionError("the pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)  # decoding a PNG goes through here
    with pytest.raises(ImageTooLargeError, match="pixel limit"):
        decode_image(png_header_only(width, height))


@pytest.mark.parametrize("payload, error, message", [
    (b"", ImageError, "empty"),
    (b"this is not an image at all", ImageError, "not a readable image"),
    (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n", ImageError, "not a readable image"),
    (b"\0" * (5 * 1024 * 1024 + 1), ImageTooLargeError, "byte limit"),
])
def test_bad_bytes_are_one_line_errors(payload, error, message):
    with pytest.raises(error, match=message) as info:
        decode_image(payload)
    assert "\n" not in str(info.value)


def test_a_truncated_image_is_an_error():
    whole = encode(draw_seven((300, 300), 10).convert("RGB"), "PNG")
    with pytest.raises(ImageError, match="truncated or corrupt"):
        decode_image(whole[: len(whole) // 2])


@pytest.mark.parametrize("values, message", [
    (np.full((28, 28), np.nan), "finite"),
    (np.full((28, 28), 300.0), "0 to 255"),
    (np.full((28, 28), -1.0), "0 to 255"),
    (np.zeros((28, 28, 3)), "2-D"),
])
def test_pixel_arrays_are_validated(values, message):
    with pytest.raises(ImageError, match=message):
        gray_from_array(values)


def shaded_photo(size=(900, 700), width=30) -> bytes:
    """A photo-like JPEG: a drawn 7 on paper lit from the right (65% as bright on the left), with grain."""
    clean = np.asarray(draw_seven(size, width), float)
    shaded = clean * np.linspace(0.65, 1.0, size[0])[np.newaxis, :]
    noisy = shaded + np.random.default_rng(0).normal(0, 6, clean.shape)
    return encode(Image.fromarray(np.clip(noisy, 0, 255).astype(np.uint8)).convert("RGB"), "JPEG", quality=80)


def test_steps_are_named_in_order_for_each_style():
    assert STEP_NAMES["digit"] == ("decoded", "gray", "polarity", "contrast", "crop", "thickened", "fit", "centred")
    assert STEP_NAMES["fashion"] == ("decoded", "gray", "polarity", "background", "crop", "fit", "centred")
    for style, steps in STEPS.items():
        assert all(description and "\n" not in description for description in steps.values()), style


@pytest.mark.parametrize("style", ["digit", "fashion"])
def test_the_last_step_is_exactly_what_preprocess_returns(mnist_digits, style):
    images, _ = mnist_digits
    rgba = np.zeros((28, 28, 4), np.uint8)
    rgba[..., 3] = images[2]  # black ink on a transparent background
    sources = [encode(255 - image) for image in images[:5]]  # real MNIST digits as black-on-white PNGs
    sources += [images[5],  # a raw 0..255 array
                encode(np.pad(np.kron(255 - images[6], np.ones((4, 4), np.uint8)), ((10, 300), (250, 20)),
                              constant_values=255)),  # upscaled, off-centre
                encode(Image.fromarray(rgba, "RGBA")),
                shaded_photo(),  # photo-like: shadow, grain, JPEG
                encode(draw_seven((5000, 4000), 1)),  # huge, 1-px line: pooled, then thickened
                REPO / "notebooks" / "my_digit.png"]
    for index, source in enumerate(sources):
        steps = preprocess_steps(source, style=style)
        assert tuple(step.name for step in steps) == STEP_NAMES[style], index
        assert [step.description for step in steps] == [STEPS[style][step.name] for step in steps]
        for step in steps:
            assert step.image.ndim == 2 and step.image.dtype == np.float32, (index, step.name)
            assert 0.0 <= step.image.min() and step.image.max() <= 1.0, (index, step.name)
        assert np.array_equal(steps[-1].image, preprocess(source, style=style)), index
        assert steps[-1].image.shape == (28, 28)


def test_steps_show_the_recipe_at_work():
    steps = {step.name: step.image for step in preprocess_steps(shaded_photo())}
    assert np.median(steps["gray"]) > 0.5 and np.median(steps["polarity"]) < 0.2  # paper inverted to black
    assert np.median(steps["contrast"]) == 0.0 and steps["contrast"].max() == 1.0  # background 0, ink stretched
    assert steps["crop"].shape < steps["contrast"].shape and steps["crop"][0].any()  # the ink touches the crop
    assert max(steps["fit"].shape) == 20


def test_steps_done_before_an_error_are_kept():
    blank = encode(Image.new("L", (100, 100), 255))
    with pytest.raises(EmptyImageError):
        preprocess_steps(blank)
    collected = []
    with pytest.raises(EmptyImageError):
        preprocess(blank, steps=collected)
    assert [step.name for step in collected] == ["decoded", "gray", "polarity"]


def test_saved_steps_are_grayscale_pngs_at_their_own_size(tmp_path):
    steps = preprocess_steps(draw_seven((300, 200), 12))
    paths = save_preprocessing_steps(tmp_path / "seen", "seven", steps)
    assert [p.name for p in paths] == [f"{n:02d}-{s.name}.png" for n, s in enumerate(steps, start=1)]
    assert all(p.parent == tmp_path / "seen" / "seven" for p in paths)
    for path, step in zip(paths, steps):
        with Image.open(path) as im:
            assert im.mode == "L" and im.size == step.image.shape[::-1]
            assert np.abs(np.asarray(im) / 255.0 - step.image).max() <= 0.5 / 255 + 1e-6
    assert list((tmp_path / "seen" / "seven").glob(".tmp-*")) == []  # atomic writes leave no temp files
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(MnistCnnError, match="cannot create .*file.*writable folder") as info:
        save_preprocessing_steps(tmp_path / "file", "seven", steps)
    assert "\n" not in str(info.value)


def test_cli_steps_without_save_preprocessed_is_a_one_line_error(capsys, tmp_path):
    image = tmp_path / "seven.png"
    draw_seven((100, 100), 6).save(image)
    assert main(["predict", str(tmp_path / "model.keras"), str(image), "--steps"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--steps" in err and "--save-preprocessed" in err
    assert "\n" not in err and "Traceback" not in err


@pytest.mark.slow
def test_cli_predict_writes_every_step(capsys, trained_model, mnist_digits, tmp_path):
    images, labels = mnist_digits
    digit = tmp_path / "in" / "digit.png"
    digit.parent.mkdir()
    Image.fromarray(255 - images[0]).save(digit)
    photo = REPO / "notebooks" / "my_digit.png"
    out = tmp_path / "seen"
    assert main(["predict", str(trained_model), str(digit), str(photo), "--save-preprocessed", str(out),
                 "--steps"]) == 0
    assert capsys.readouterr().out.startswith(f"{digit}: {labels[0]} (")
    expected = [f"{n:02d}-{name}.png" for n, name in enumerate(STEP_NAMES["digit"], start=1)]
    for stem in ("digit", "my_digit"):
        assert sorted(p.name for p in (out / stem).iterdir()) == expected, stem
        with Image.open(out / stem / expected[-1]) as last, Image.open(out / f"{stem}.png") as seen:
            assert np.array_equal(np.asarray(last), np.asarray(seen))  # the last step is what the model saw
    with Image.open(out / "my_digit" / "01-decoded.png") as decoded:
        assert decoded.size == (240, 200)  # written at its real size
