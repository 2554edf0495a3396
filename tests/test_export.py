"""`mnist-cnn export` and running `.onnx` files: parity with Keras, metadata, hostile files, one-line errors.

The exports of the session's small trained model (conftest `trained_model`) are checked
by the export itself on the whole MNIST test set, and again here, independently, with
each runtime's own API on a few hundred images. Hostile ONNX files are built with the
onnx package in memory (no TensorFlow needed for those tests).
"""

from __future__ import annotations

import errno
import io
import json
import os
import re
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_DATA
from PIL import Image
from test_predict import variant

from mnist_cnn.cli.main import main
from mnist_cnn.core.errors import MnistCnnError, ModelFileError
from mnist_cnn.data.idx import load_split
from mnist_cnn.data.prepare import normalize
from mnist_cnn.data.registry import get_spec
from mnist_cnn.export import export
from mnist_cnn.inference.predict import Predictor
from mnist_cnn.inference.runtimes import InferenceModel, OnnxModel

onnx = pytest.importorskip("onnx", reason="the [export] extra is not installed")
ort = pytest.importorskip("onnxruntime", reason="the [export] extra is not installed")

RECHECK = slice(7000, 7300)  # test images re-checked here, runtime by runtime
MAX_ABS_DIFF = 1e-4


def one_line(text: str) -> str:
    text = text.strip()
    assert text.count("\n") == 0 and "Traceback" not in text, text
    return text


def leftovers(folder: Path) -> list[str]:
    """Temporary files or folders an export left (staging folders, atomic writes)."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith((export.STAGING_PREFIX, ".tmp-")))


@pytest.fixture(scope="module")
def test_set() -> tuple[np.ndarray, np.ndarray]:
    """MNIST test images (uint8 (N, 28, 28)) and labels."""
    images, labels, _ = load_split(get_spec("mnist"), SHARED_DATA / "mnist", "test")
    return images, labels.astype(int)


@pytest.fixture(scope="module")
def exports(trained_model: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, export.ExportResult]:
    """The trained model exported to every format, each checked by `export_model` on 10,000 test images."""
    folder = tmp_path_factory.mktemp("exports")
    outs = {"onnx": folder / "digits.onnx", "savedmodel": folder / "digits_savedmodel",
            "litert": folder / "digits.tflite"}
    return {fmt: export.export_model(trained_model, fmt, out, data_dir=SHARED_DATA, offline=True)
            for fmt, out in outs.items()}


@pytest.fixture(scope="module")
def keras_probabilities(trained_model: Path, test_set) -> np.ndarray:
    import keras

    model = keras.models.load_model(trained_model)
    return np.asarray(model.predict(normalize(test_set[0][RECHECK]), verbose=0))


def run_natively(fmt: str, path: Path, images: np.ndarray) -> np.ndarray:
    """Each runtime through its own API, not this package's backends."""
    if fmt == "onnx":
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return session.run(["probabilities"], {"images": images})[0]
    import tensorflow as tf

    if fmt == "savedmodel":
        serve = tf.saved_model.load(str(path)).signatures["serving_default"]
        return serve(images=tf.constant(images))["probabilities"].numpy()
    interpreter = tf.lite.Interpreter(model_path=str(path))
    return interpreter.get_signature_runner("serving_default")(images=images)["probabilities"]


@pytest.mark.slow
@pytest.mark.parametrize("fmt", export.FORMATS)
def test_each_export_matches_the_keras_model(exports, keras_probabilities, test_set, fmt):
    result = exports[fmt]
    parity = result.parity
    assert parity.images == 10_000 and parity.dataset == "mnist" and parity.passed
    assert parity.top1_agreement == 1.0 and parity.disagreements == 0 and parity.max_abs_diff <= MAX_ABS_DIFF
    # Independently: the file through its runtime's own API, against Keras, on 300 other images.
    got = run_natively(fmt, result.path, normalize(test_set[0][RECHECK]))
    assert (got.argmax(1) == keras_probabilities.argmax(1)).all()
    assert np.abs(got - keras_probabilities).max() <= MAX_ABS_DIFF
    # The record and card travel with it: class names, preprocessing, parity, how to run it.
    record = json.loads(result.metadata_path.read_text())
    assert record["model"]["class_names"] == [str(i) for i in range(10)]
    assert record["model"]["preprocessing"] == "digit" and record["model"]["parameters"] == 34_826
    assert record["parity"]["max_abs_diff"] == parity.max_abs_diff
    card = result.card_path.read_text()
    for needle in ("## Input and output", "float32 (N, 28, 28, 1)", "keras-example", "| top-1 agreement | 100.00%",
                   "## How to run it", record["file"]):
        assert needle in card, needle
    assert leftovers(result.path.parent) == []


@pytest.mark.slow
def test_onnx_carries_names_and_metadata(exports):
    model = onnx.load(str(exports["onnx"].path))
    props = {p.key: p.value for p in model.metadata_props}
    assert json.loads(props["mnist_cnn.class_names"]) == [str(i) for i in range(10)]
    assert props["mnist_cnn.preprocessing"] == "digit" and props["mnist_cnn.dataset"] == "mnist"
    assert [i.name for i in model.graph.input] == ["images"]
    assert [o.name for o in model.graph.output] == ["probabilities"]
    extra = exports["savedmodel"].path / "assets.extra" / "mnist_cnn.json"
    assert json.loads(extra.read_text())["model"]["class_names"] == [str(i) for i in range(10)]


@pytest.mark.slow
def test_cli_export_reports_parity_and_replaces_only_when_checked(capsys, trained_model, tmp_path):
    out = tmp_path / "m.onnx"
    args = ["export", str(trained_model), "--format", "onnx", "-o", str(out), "--data-dir", str(SHARED_DATA),
            "--offline"]
    assert main(args) == 0
    report = capsys.readouterr().out
    assert "top-1 agreement 100.00% (0 differ)" in report and "10,000 images" in report
    diff = float(re.search(r"largest probability difference ([0-9.e+-]+)", report).group(1))
    assert diff <= MAX_ABS_DIFF
    assert out.is_file() and (tmp_path / "m.onnx.json").is_file() and (tmp_path / "m.onnx.md").is_file()
    # An export that disagrees with Keras is refused in one line and leaves the earlier one alone.
    before = out.read_bytes()
    real = export.predict_probabilities

    def wrong(model, images, batch_size=1000):
        probabilities = real(model, images, batch_size)
        if isinstance(model, InferenceModel):  # the export's runtime, not the Keras model it is compared with
            return np.roll(probabilities, 1, axis=1)  # every answer shifted by one class
        return probabilities

    with pytest.MonkeyPatch.context() as m:
        m.setattr(export, "predict_probabilities", wrong)
        assert main(args) == 2
    error = one_line(capsys.readouterr().err)
    assert "disagrees with the Keras model" in error and "nothing was written" in error
    assert out.read_bytes() == before and leftovers(tmp_path) == []


@pytest.mark.slow
@pytest.mark.parametrize("setup, message", [
    ("missing-folder", "does not exist; create it"),
    ("read-only", "Read-only file system"),
    ("wrong-suffix", "does not end in .onnx"),
    ("folder-in-the-way", "exists and is not a SavedModel"),
    ("missing-model", "does not exist; pass a model.keras"),
    ("onnx-as-source", "is not a .keras file"),
])
def test_cli_export_user_errors_are_one_line(capsys, trained_model, tmp_path, monkeypatch, setup, message):
    fmt, model, out = "onnx", trained_model, tmp_path / "m.onnx"
    if setup == "missing-folder":
        out = tmp_path / "nope" / "m.onnx"
    elif setup == "read-only":
        def read_only(*args, **kwargs):  # what mkdtemp meets on a read-only mount (root ignores chmod)
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))

        monkeypatch.setattr(export.tempfile, "mkdtemp", read_only)
    elif setup == "wrong-suffix":
        out = tmp_path / "m.bin"
    elif setup == "folder-in-the-way":
        fmt, out = "savedmodel", tmp_path / "mine"
        out.mkdir()
        (out / "keep.txt").write_text("not an export")
    elif setup == "missing-model":
        model = tmp_path / "nope.keras"
    elif setup == "onnx-as-source":
        model = tmp_path / "model.onnx"
        model.write_bytes(b"not even onnx")
    code = main(["export", str(model), "--format", fmt, "-o", str(out), "--data-dir", str(SHARED_DATA),
                 "--offline"])
    assert code == 2
    assert message in one_line(capsys.readouterr().err)
    assert not (tmp_path / "m.onnx").exists() and leftovers(tmp_path) == []
    if setup == "folder-in-the-way":
        assert (out / "keep.txt").read_text() == "not an export"


@pytest.mark.slow
def test_onnx_predictor_answers_as_the_keras_one(exports, trained_model, test_set, tmp_path):
    onnx_predictor, keras_predictor = Predictor.from_path(exports["onnx"].path), Predictor.from_path(trained_model)
    assert onnx_predictor.class_names == keras_predictor.class_names and onnx_predictor.style == "digit"
    described = onnx_predictor.describe()
    assert described["parameters"] == 34_826 and described["name"] == "keras_example"
    assert described["runtime"].startswith("onnxruntime") and described["dataset"] == "mnist"
    images, labels = test_set[0][RECHECK], test_set[1][RECHECK]
    rng = np.random.default_rng(0)
    paths = []
    for i, image in enumerate(images):  # real digits as people's files: black on white, or larger and off-centre
        paths.append(tmp_path / f"{i:03d}.png")
        variant(image, "black-on-white" if i % 2 else "larger-canvas", rng).save(paths[-1])
    paths.append(photo_of_a_digit(images[0], tmp_path / "photo.jpg"))
    got, expected = onnx_predictor.predict(paths), keras_predictor.predict(paths)
    assert [p.top[0]["index"] for p in got] == [p.top[0]["index"] for p in expected]
    assert np.abs(np.stack([p.probabilities for p in got]) - np.stack([p.probabilities for p in expected])).max() \
        <= MAX_ABS_DIFF
    assert np.mean([p.top[0]["index"] == label for p, label in zip(got, labels)]) >= 0.9
    assert got[-1].top[0]["index"] == labels[0]  # the photo


def photo_of_a_digit(image: np.ndarray, path: Path) -> Path:
    """An MNIST digit as a phone photo: big, dark on grey paper lit unevenly, grainy, JPEG."""
    ink = np.asarray(Image.fromarray(image).resize((300, 300), Image.Resampling.BICUBIC), np.float64) / 255
    page = np.zeros((600, 800))
    page[150:450, 250:550] = ink
    light = np.linspace(150, 230, 800)[np.newaxis, :]  # brighter to the right
    photo = light * (1 - 0.8 * page) + np.random.default_rng(1).normal(0, 3, page.shape)
    Image.fromarray(np.clip(photo, 0, 255).astype(np.uint8)).convert("RGB").save(path, quality=85)
    return path


@pytest.mark.slow
def test_cli_predict_reads_a_digit_with_the_onnx_file(capsys, exports, test_set, tmp_path):
    path = tmp_path / "digit.png"
    Image.fromarray(255 - test_set[0][0]).save(path)
    assert main(["predict", str(exports["onnx"].path), str(path), "--top-k", "2"]) == 0
    assert capsys.readouterr().out.startswith(f"{path}: {test_set[1][0]} (")


@pytest.mark.slow
def test_serve_runs_the_onnx_file(exports, test_set):
    pytest.importorskip("fastapi", reason="the [serve] extra is not installed")
    import httpx
    from servers import running_server

    from mnist_cnn.serving.app import create_app

    buffer = io.BytesIO()
    Image.fromarray(test_set[0][1]).save(buffer, format="PNG")
    with running_server(create_app(Predictor.from_path(exports["onnx"].path))) as url:
        described = httpx.get(f"{url}/model", timeout=30).json()
        answer = httpx.post(f"{url}/predict", files={"file": ("d.png", buffer.getvalue(), "image/png")},
                            timeout=30).json()
    assert described["runtime"].startswith("onnxruntime") and described["classes"] == [str(i) for i in range(10)]
    assert answer["index"] == test_set[1][1]


# -- hostile and foreign ONNX files: built in memory, no TensorFlow -------------------------------

def onnx_classifier(path: Path, input_shape=("N", 28, 28, 1), softmax: bool = True,
                    metadata: dict[str, str] | None = None) -> Path:
    """A tiny valid ONNX model: flatten, one dense layer, softmax (or not) -> (N, 10)."""
    from onnx import TensorProto, helper, numpy_helper

    features = int(np.prod(input_shape[1:]))
    weights = numpy_helper.from_array(np.random.default_rng(0).normal(0, 0.01, (features, 10)).astype(np.float32),
                                      "w")
    nodes = [helper.make_node("Flatten", ["x"], ["flat"]), helper.make_node("MatMul", ["flat", "w"], ["logits"])]
    nodes.append(helper.make_node("Softmax", ["logits"], ["p"]) if softmax
                 else helper.make_node("Identity", ["logits"], ["p"]))
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, input_shape)],
                              [helper.make_tensor_value_info("p", TensorProto.FLOAT, ("N", 10))], [weights])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # what ONNX Runtime of any recent version reads
    if metadata:
        helper.set_model_props(model, metadata)
    onnx.save(model, str(path))
    return path


def test_a_foreign_onnx_classifier_runs_with_fallback_names(tmp_path):
    predictor = Predictor.from_path(onnx_classifier(tmp_path / "tiny.onnx", input_shape=(1, 28, 28, 1)))
    assert predictor.class_names == tuple(str(i) for i in range(10)) and predictor.describe()["parameters"] is None
    probabilities = predictor.probabilities(np.random.default_rng(0).random((3, 28, 28), np.float32))
    assert probabilities.shape == (3, 10) and np.allclose(probabilities.sum(1), 1, atol=1e-5)  # fixed batch 1: looped
    # No metadata: the run folder beside the file names the classes.
    names = list(get_spec("fashion-mnist").class_names)
    (tmp_path / "config.json").write_text(json.dumps({"config": {"dataset": "fashion-mnist"},
                                                      "data": {"class_names": names}}))
    fashion = Predictor.from_path(tmp_path / "tiny.onnx")
    assert fashion.class_names == tuple(names) and fashion.style == "fashion"


@pytest.mark.parametrize("setup, message", [
    ("not-onnx", "cannot load .* as an ONNX model"),
    ("wrong-input", r"takes input\(s\) \['N', 32, 32, 3\]"),
    ("no-softmax", "does not output class probabilities"),
    ("damaged-metadata", "damaged mnist_cnn metadata"),
    ("missing", "does not exist"),
])
def test_hostile_onnx_files_are_refused_in_one_line(capsys, tmp_path, setup, message):
    path = tmp_path / "model.onnx"
    if setup == "not-onnx":
        path.write_bytes(b"\x08\x07garbage that is not a protobuf of a model" * 10)
    elif setup == "wrong-input":
        onnx_classifier(path, input_shape=("N", 32, 32, 3))
    elif setup == "no-softmax":
        onnx_classifier(path, softmax=False)
    elif setup == "damaged-metadata":
        onnx_classifier(path, metadata={"mnist_cnn.class_names": "[not json"})
    with pytest.raises(ModelFileError, match=message):
        Predictor.from_path(path)
    image = tmp_path / "digit.png"
    Image.new("L", (28, 28), 0).save(image)
    assert main(["predict", str(path), str(image)]) == 2
    assert re.search(message, one_line(capsys.readouterr().err))


def test_missing_onnxruntime_is_a_one_line_hint(capsys, tmp_path, monkeypatch):
    path = onnx_classifier(tmp_path / "tiny.onnx")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # `import onnxruntime` now raises ImportError
    with pytest.raises(MnistCnnError, match=re.escape("pip install 'mnist-cnn[export]'")):
        OnnxModel.load(path)
    Image.new("L", (28, 28), 0).save(tmp_path / "digit.png")
    assert main(["predict", str(path), str(tmp_path / "digit.png")]) == 2
    assert "onnxruntime is not installed" in one_line(capsys.readouterr().err)


@pytest.mark.slow
def test_missing_tf2onnx_is_a_one_line_hint(capsys, trained_model, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tf2onnx", None)
    code = main(["export", str(trained_model), "--format", "onnx", "-o", str(tmp_path / "m.onnx"),
                 "--data-dir", str(SHARED_DATA), "--offline"])
    assert code == 2
    error = one_line(capsys.readouterr().err)
    assert "tf2onnx is missing" in error and "pip install 'mnist-cnn[export]'" in error
    assert not (tmp_path / "m.onnx").exists() and leftovers(tmp_path) == []


@pytest.mark.slow
def test_explain_needs_keras_and_refuses_an_onnx_file_in_one_line(capsys, exports, tmp_path):
    args = ["explain", str(exports["onnx"].path), "--test-index", "0", "-o", str(tmp_path / "x.png")]
    assert main(args + ["--data-dir", str(SHARED_DATA), "--offline"]) == 2
    assert "is not a .keras file" in one_line(capsys.readouterr().err)


@pytest.mark.slow
def test_evaluate_scores_an_onnx_export_as_its_keras_model(exports, trained_model, tmp_path):
    from mnist_cnn.evaluation.evaluate import evaluate

    scores = {name: evaluate(path, out=tmp_path / name, data_dir=SHARED_DATA, offline=True).metrics["test"]
              for name, path in (("keras", trained_model), ("onnx", exports["onnx"].path))}
    assert scores["onnx"]["errors"] == scores["keras"]["errors"]  # the export gets the same images right
    assert scores["onnx"]["accuracy"] == pytest.approx(scores["keras"]["accuracy"])


@pytest.mark.slow
def test_a_savedmodel_export_replaces_an_earlier_one(exports, trained_model):
    folder = exports["savedmodel"].path
    (folder / "stale.txt").write_text("from the earlier export")
    again = export.export_model(trained_model, "savedmodel", folder, data_dir=SHARED_DATA, offline=True)
    assert again.parity.passed and not (folder / "stale.txt").exists()
    assert (folder / "saved_model.pb").is_file() and (folder / "MODEL_CARD.md").is_file()
    assert leftovers(folder.parent) == []


def test_export_modules_import_without_tensorflow_or_onnxruntime():
    import subprocess

    code = ("import sys; import mnist_cnn.export.export, mnist_cnn.inference.runtimes, mnist_cnn.inference.convert, mnist_cnn.export.modelcard, mnist_cnn.cli.export; "
            "loaded = [m for m in ('tensorflow', 'keras', 'onnxruntime', 'onnx', 'tf2onnx') if m in sys.modules]; "
            "assert not loaded, loaded")
    subprocess.run([sys.executable, "-c", code], check=True)
