"""`Predictor` and `mnist-cnn predict` on real MNIST digits saved as ordinary image files.

Uses the session's small trained model (conftest `trained_model`, ~96% test accuracy).
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_DATA
from PIL import Image

from mnist_cnn.cli.main import main
from mnist_cnn.core.errors import ModelFileError
from mnist_cnn.data.idx import load_split
from mnist_cnn.data.registry import get_spec
from mnist_cnn.inference.predict import Predictor

N_DIGITS = 300  # real test digits per variant


@pytest.fixture(scope="module")
def predictor(trained_model: Path) -> Predictor:
    return Predictor.from_path(trained_model)


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    """MNIST test digits 5000.. (not the 2,000 the model's metrics used), uint8, and labels."""
    images, labels, _ = load_split(get_spec("mnist"), SHARED_DATA / "mnist", "test")
    return images[5000:5000 + N_DIGITS], labels[5000:5000 + N_DIGITS].astype(int)


def variant(image: np.ndarray, name: str, rng: np.random.Generator) -> Image.Image:
    """One MNIST digit as people's files look: polarity, scale, position and canvas vary."""
    if name == "white-on-black":
        return Image.fromarray(image)
    if name == "black-on-white":
        return Image.fromarray(255 - image)
    if name == "shifted":  # same size, moved off-centre on a 48x48 white page
        top, left = rng.integers(0, 20, size=2)
        page = np.full((48, 48), 255, np.uint8)
        page[top:top + 28, left:left + 28] = 255 - image
        return Image.fromarray(page)
    # larger canvas: 5x bigger, anti-aliased, off-centre on a 400x300 page
    big = Image.fromarray(255 - image).resize((140, 140), Image.Resampling.BICUBIC)
    page = Image.new("L", (400, 300), 255)
    page.paste(big, tuple(int(v) for v in rng.integers(0, 150, size=2)))
    return page


@pytest.mark.parametrize("name", ["white-on-black", "black-on-white", "shifted", "larger-canvas"])
def test_saved_mnist_digits_are_read_as_accurately_as_the_test_set(predictor, digits, tmp_path, name):
    images, labels = digits
    rng = np.random.default_rng(0)
    paths = []
    for i, image in enumerate(images):
        paths.append(tmp_path / f"{i:03d}.png")
        variant(image, name, rng).save(paths[-1])
    predictions = predictor.predict(paths, top_k=3)
    accuracy = np.mean([p.top[0]["index"] == label for p, label in zip(predictions, labels)])
    raw_accuracy = np.mean(predictor.probabilities(images / 255.0).argmax(axis=1) == labels)
    # The files must read as well as the raw arrays do, give or take a few digits in 300.
    assert accuracy >= raw_accuracy - 0.02, (name, accuracy, raw_accuracy)
    assert accuracy >= 0.9
    first = predictions[0]
    assert first.image.shape == (28, 28) and first.image.dtype == np.uint8
    assert len(first.top) == 3 and first.probabilities.sum() == pytest.approx(1.0, abs=1e-4)


def test_predictor_reads_class_names_and_metrics_from_the_run(predictor, trained_model, tmp_path):
    info = predictor.describe()
    assert info["classes"] == [str(i) for i in range(10)]
    assert info["dataset"] == "mnist" and info["parameters"] == 34_826
    assert 0.9 < info["test_metrics"]["accuracy"] <= 1.0
    # Without a run folder: classes fall back to 0..N-1, no metrics.
    alone = tmp_path / "model.keras"
    shutil.copy(trained_model, alone)
    bare = Predictor.from_path(alone)
    assert bare.class_names == tuple(str(i) for i in range(10)) and bare.describe()["test_metrics"] is None
    # Fashion-MNIST names from config.json are used as given.
    fashion = list(get_spec("fashion-mnist").class_names)
    (tmp_path / "config.json").write_text(json.dumps({"config": {"dataset": "fashion-mnist"},
                                                      "data": {"class_names": fashion}}))
    fashion_predictor = Predictor.from_path(alone)
    assert fashion_predictor.class_names == tuple(fashion)
    assert fashion_predictor.describe()["preprocessing"] == "fashion" and predictor.style == "digit"


def test_models_that_cannot_be_served_are_refused(tmp_path):
    import keras

    unsafe = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Lambda(lambda x: x * 2),
                               keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")])
    unsafe.save(tmp_path / "lambda.keras")
    with pytest.raises(ModelFileError, match="cannot load"):  # safe mode: no pickled Python code
        Predictor.from_path(tmp_path / "lambda.keras")
    colour = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Flatten(), keras.layers.Dense(10)])
    with pytest.raises(ModelFileError, match="takes input.s. of shape"):
        Predictor(colour)


def one_line(text: str) -> str:
    text = text.strip()
    assert text.count("\n") == 0 and "Traceback" not in text, text
    return text


def save_digits(folder: Path, digits, count: int = 5) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, image in enumerate(digits[0][:count]):
        paths.append(folder / f"digit{i}-label{digits[1][i]}.png")
        Image.fromarray(255 - image).save(paths[-1])
    return paths


def test_cli_predict_folder_json_and_saved_inputs(capsys, trained_model, digits, tmp_path):
    paths = save_digits(tmp_path / "in", digits)
    code = main(["predict", str(trained_model), str(tmp_path / "in"), "--json", "--top-k", "2",
                 "--save-preprocessed", str(tmp_path / "seen")])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert [p["source"] for p in result["predictions"]] == [str(p) for p in paths]
    assert all(len(p["top"]) == 2 and len(p["probabilities"]) == 10 for p in result["predictions"])
    correct = sum(p["predicted"] == str(label) for p, label in zip(result["predictions"], digits[1]))
    assert correct >= 4 and result["errors"] == []
    saved = sorted((tmp_path / "seen").glob("*.png"))
    assert [p.stem for p in saved] == sorted(p.stem for p in paths)
    assert Image.open(saved[0]).size == (28, 28)


def test_cli_predict_text_and_stdin(capsys, trained_model, digits, tmp_path, monkeypatch):
    path = save_digits(tmp_path, digits, count=1)[0]

    class Stdin:
        buffer = io.BytesIO(path.read_bytes())

    monkeypatch.setattr("sys.stdin", Stdin)
    assert main(["predict", str(trained_model), str(path), "-", "--top-k", "3"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith(f"{path}: {digits[1][0]} (") and lines[0].count("(") == 3
    assert lines[1].startswith(f"-: {digits[1][0]} (")


def test_cli_predict_reports_each_bad_image_and_keeps_the_good(capsys, trained_model, digits, tmp_path):
    good = save_digits(tmp_path, digits, count=1)[0]
    (tmp_path / "notes.png").write_text("not an image")
    Image.new("L", (50, 50), 255).save(tmp_path / "blank.png")
    code = main(["predict", str(trained_model), str(good), str(tmp_path / "notes.png"), str(tmp_path / "blank.png")])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.out.startswith(str(good))
    errors = captured.err.strip().splitlines()
    assert len(errors) == 2 and "notes.png" in errors[0] and "not a readable image" in errors[0]
    assert "blank.png" in errors[1] and "blank" in errors[1]


@pytest.mark.parametrize("setup, message", [
    ("missing-image", "does not exist"),
    ("empty-folder", "holds no images"),
    ("bad-model", "cannot load"),
])
def test_cli_predict_user_errors_are_one_line(capsys, tmp_path, digits, setup, message):
    model, image = tmp_path / "model.keras", save_digits(tmp_path, digits, count=1)[0]
    model.write_bytes(b"PK\x03\x04 not a keras file")
    if setup == "missing-image":
        image = tmp_path / "nope.png"
    elif setup == "empty-folder":
        image = tmp_path / "empty"
        image.mkdir()
    assert main(["predict", str(model), str(image)]) == 2
    assert message in one_line(capsys.readouterr().err)
