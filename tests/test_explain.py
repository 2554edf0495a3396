"""explain: filters, feature maps and saliency on small models, the picture, and the CLI command."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
from matplotlib.text import Text
from PIL import Image, ImageDraw

from mnist_cnn.cli.main import main
from mnist_cnn.evaluation import explain
from mnist_cnn.training.models import build_model

CLASS_NAMES = [str(i) for i in range(10)]


@pytest.fixture(scope="module")
def digit() -> np.ndarray:
    """A bar of ink, float32 (28, 28) in [0, 1], like a preprocessed "1"."""
    image = np.zeros((28, 28), np.float32)
    image[5:23, 12:16] = 1.0
    return image


@pytest.fixture(scope="module")
def dense_only() -> keras.Model:
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),
                             keras.layers.Dense(10, activation="softmax")], name="dense_only")


def figure_texts(fig) -> str:
    return "\n".join(t.get_text() for t in fig.findobj(Text))


@pytest.mark.parametrize("name, shapes, filters", [
    ("compact", [("stem_conv", (14, 14, 24)), ("block1_conv", (14, 14, 32)), ("block2_conv", (7, 7, 64))], (4, 4, 24)),
    ("cnn", [("block1_conv", (28, 28, 32)), ("block2_conv", (14, 14, 64)), ("block3_conv", (7, 7, 128))], (3, 3, 32)),
    ("keras-example", [(None, (26, 26, 32)), (None, (11, 11, 64))], (3, 3, 32)),
])
def test_feature_maps_one_per_conv_layer_with_its_shape(name, shapes, filters, digit):
    model = build_model(name)
    maps = explain.feature_maps(model, digit)
    assert [m.shape for _, m in maps] == [s for _, s in shapes]
    assert [n for n, _ in maps] == [c.name for c in explain.conv_layers(model)]
    if name != "keras-example":  # taken after BN + ReLU: what the next layer receives, never negative
        assert all(m.min() >= 0 for _, m in maps)
    assert explain.first_layer_filters(model).shape == filters


def test_saliency_is_a_nonnegative_nonzero_map_scaled_to_one(digit):
    heat = explain.saliency(build_model("cnn"), digit, class_index=1)
    assert heat.shape == (28, 28) and heat.dtype == np.float32
    assert heat.min() >= 0 and heat.max() == pytest.approx(1.0)
    assert np.count_nonzero(heat) > 28


def test_saliency_of_a_linear_model_is_its_weights(dense_only, digit):
    # d(logit_c)/d(pixel) of a softmax-regression model is exactly the weight column W[:, c].
    weights = dense_only.layers[-1].get_weights()[0][:, 3].reshape(28, 28)
    expected = np.abs(weights) / np.abs(weights).max()
    np.testing.assert_allclose(explain.saliency(dense_only, digit, 3, samples=1), expected, atol=1e-6)


def test_model_without_conv_layers_still_gets_a_picture_with_the_message(dense_only, digit, tmp_path):
    assert explain.first_layer_filters(dense_only) is None
    assert explain.feature_maps(dense_only, digit) == []
    fig = explain.explain_figure(dense_only, digit, CLASS_NAMES)
    assert explain.NO_CONV_MESSAGE in figure_texts(fig)
    assert "prediction:" in figure_texts(fig) and "saliency" in figure_texts(fig)
    path = explain.save_figure(fig, tmp_path / "dense.png")
    assert Image.open(path).size[0] > 400
    assert explain.NO_CONV_MESSAGE in figure_texts(explain.plot_feature_maps([]))


def test_one_figure_saver_for_every_picture(tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    from mnist_cnn.evaluation import plots

    assert explain.save_figure is plots.save_figure  # `explain.save_figure` stays public for its callers
    calls = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, path: calls.append(path) or path)
    plots.plot_curves({"loss": [1.0, 0.5], "accuracy": [0.5, 0.9]}, tmp_path / "curves.png")
    assert calls == [tmp_path / "curves.png"]  # the plots go through it too
    monkeypatch.undo()

    path = tmp_path / "kept.png"
    path.write_bytes(b"the previous picture")
    fig = Figure()
    fig.subplots().plot([0, 1])

    def crash(target, *args, **kwargs):
        Path(target).write_bytes(b"half a picture")  # a write that dies halfway
        raise RuntimeError("renderer died")

    monkeypatch.setattr(fig, "savefig", crash)
    with pytest.raises(RuntimeError):
        explain.save_figure(fig, path)
    assert path.read_bytes() == b"the previous picture" and not list(tmp_path.glob(".tmp-*"))


def test_explain_figure_names_every_conv_layer(digit):
    texts = figure_texts(explain.explain_figure(build_model("cnn"), digit, CLASS_NAMES, title="a bar"))
    assert all(f"block{i}_conv" in texts for i in (1, 2, 3)) and "a bar" in texts
    assert explain.NO_CONV_MESSAGE not in texts


def test_notebook_plots_draw_one_panel_per_item(digit):
    model = build_model("keras-example")
    assert len(explain.plot_filters(explain.first_layer_filters(model)).axes) == 32
    fig = explain.plot_saliency(model, np.stack([digit, digit.T]), [1, 7], CLASS_NAMES)
    assert len(fig.axes) == 2  # each saliency map is overlaid on its image, one panel per image
    assert "true 7" in figure_texts(fig)


# ---- the command ------------------------------------------------------------------------------


@pytest.fixture
def saved_model(tmp_path: Path) -> Path:
    path = tmp_path / "model.keras"
    build_model("keras-example").save(path)
    return path


def draw_digit_png(path: Path, blank: bool = False) -> Path:
    """A dark 1 on white paper, off-centre, 120x90 px: a user's photo, not MNIST-shaped."""
    im = Image.new("L", (120, 90), 235)
    if not blank:
        ImageDraw.Draw(im).line([(80, 10), (75, 80)], fill=30, width=7)
    im.save(path)
    return path


def test_explain_command_writes_the_picture_for_a_user_png(capsys, saved_model, tmp_path):
    out = tmp_path / "explained.png"
    assert main(["explain", str(saved_model), str(draw_digit_png(tmp_path / "one.png")), "-o", str(out)]) == 0
    assert f"written to {out}" in capsys.readouterr().out
    with Image.open(out) as picture:
        assert picture.format == "PNG" and picture.size[0] > 400
    assert not list(tmp_path.glob(".tmp-*"))  # written atomically


def test_explain_command_on_a_test_digit(capsys, saved_model, tiny_dataset, tmp_path):
    out = tmp_path / "test3.png"
    argv = ["explain", str(saved_model), "--test-index", "3", "--dataset", "tiny", "--data-dir", str(tiny_dataset)]
    assert main([*argv, "-o", str(out)]) == 0 and out.is_file()
    assert main([*argv[:3], "40", *argv[4:], "-o", str(out)]) == 2  # the tiny set has 40 test images
    assert "out of range" in capsys.readouterr().err


def test_explain_command_on_a_real_mnist_test_digit(capsys, saved_model, shared_data, tmp_path):
    out = tmp_path / "mnist0.png"
    argv = ["explain", str(saved_model), "--test-index", "0", "--data-dir", str(shared_data), "-o", str(out)]
    assert main(argv) == 0
    assert f"written to {out}" in capsys.readouterr().out
    with Image.open(out) as picture:
        assert picture.format == "PNG"


@pytest.mark.parametrize("case, message", [("blank", "blank"), ("missing", "cannot read"),
                                           ("both", "either IMAGE or --test-index"),
                                           ("neither", "either IMAGE or --test-index")])
def test_explain_command_bad_input_is_one_line(capsys, saved_model, tmp_path, case, message):
    image = {"blank": str(draw_digit_png(tmp_path / "blank.png", blank=True)),
             "missing": str(tmp_path / "nope.png"), "both": str(draw_digit_png(tmp_path / "d.png")),
             "neither": None}[case]
    argv = ["explain", str(saved_model), *([image] if image else []),
            *(["--test-index", "0"] if case == "both" else []), "-o", str(tmp_path / "out.png")]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err and "Traceback" not in err
    assert not (tmp_path / "out.png").exists()
