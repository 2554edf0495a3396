""""Not a digit": the rule's features and fit, its file (round trip and hostile versions), and a calibrated model.

The unit tests need no model. The slow ones calibrate a copy of the session's small model
on a small subset of real data (MNIST training digits against Fashion-MNIST training
images) and check that it refuses a Fashion-MNIST test image and accepts a digit, in the
library, the CLI and the API.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_DATA

from mnist_cnn.cli.main import main
from mnist_cnn.core.errors import RunFileError
from mnist_cnn.data.load import load_dataset
from mnist_cnn.inference import acceptance
from mnist_cnn.inference.preprocess import stroke_widths
from mnist_cnn.refusal import calibrate
from mnist_cnn.runs.run import Run


def test_features_are_margin_coverage_stroke_and_core():
    images = np.zeros((3, 28, 28), np.float32)
    images[0, :7] = 1.0  # a quarter of the field covered, solid
    images[2, :7] = np.tile([0.3, 0.7], 14)  # the same band, shaded in stripes
    images[2, 6] = 1.0  # ... with a solid lower row (a rim)
    probabilities = np.array([[0.5, 0.5] + [0.0] * 8, [0.1] * 10, [0.1] * 10])
    found = acceptance.features(images, probabilities)
    assert acceptance.FEATURES == ("margin", "coverage", "stroke", "core")
    assert found.shape == (3, 4)
    assert found[0, 1] == pytest.approx(0.25) and found[1, 1] == 0.0
    assert found[0, 2] > 4 and found[1, 2] == 0.0  # a 7-px band is a thick stroke; no ink, no stroke
    assert found[1, 0] == pytest.approx(0.0)  # all classes equal: nothing stands out
    assert found[0, 0] == pytest.approx(np.log(0.5) - (2 * np.log(0.5) + 8 * np.log(acceptance.LOG_FLOOR)) / 10)
    # core: inked pixels with all 8 neighbours inked (rows 0-5 here: the field's edge counts as
    # uninked, so row 0 and columns 0 and 27 are rim), their mean brightness; none -> 1.0
    assert found[0, 3] == pytest.approx(1.0) and found[1, 3] == 1.0
    assert found[2, 3] == pytest.approx(0.5)  # rows 1-5, columns 1-26: stripes of 0.3 and 0.7
    assert np.array_equal(acceptance.features(images, probabilities, ("core", "margin")), found[:, [3, 0]])


def test_a_blurred_rim_keeps_a_solid_core():
    stroke = np.zeros((28, 28), np.float32)
    stroke[4:24, 11:17] = 1.0
    blurred = stroke.copy()
    blurred[4:24, [10, 17]] = 0.4  # a soft rim on both sides
    assert acceptance.core_brightness(stroke) == acceptance.core_brightness(blurred) == pytest.approx(1.0)


def test_the_stacked_measurements_equal_one_image_at_a_time(monkeypatch):
    # `features` measures a whole stack at once; each image alone must give the same numbers,
    # blank ones (no ink, no core) included, whatever the ink's shape.
    rng = np.random.default_rng(7)
    images = (rng.random((64, 28, 28)) * (rng.random((64, 28, 28)) > rng.random((64, 1, 1)))).astype(np.float32)
    images[0] = 0.0
    images[1, 5:20, 8:12] = 1.0
    widths = stroke_widths(images > acceptance.COVERAGE_LEVEL)
    cores = acceptance.core_brightnesses(images)
    for image, width, core in zip(images, widths, cores):
        mask = image > acceptance.COVERAGE_LEVEL
        area = np.count_nonzero(mask)
        eroded = mask.copy()  # the 3x3 erosion, written out: every neighbour (the field's edge is uninked)
        padded = np.pad(mask, 1)
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                eroded &= padded[1 + dy:29 + dy, 1 + dx:29 + dx]
        assert width == (0.0 if area == 0 else 2.0 * area / max(area - np.count_nonzero(eroded), 1))
        # in float64, as `features` measures it; the stack sums in another order
        assert acceptance.core_brightness(image.astype(np.float64)) == pytest.approx(core, rel=1e-12, abs=0)
    assert widths[0] == 0.0 and cores[0] == 1.0
    # `features` measures in slices (bounded memory): the slices' seams change nothing
    probabilities = np.full((64, 10), 0.1)
    whole = acceptance.features(images, probabilities, ("stroke", "core"))
    monkeypatch.setattr(acceptance, "FEATURE_CHUNK", 10)
    assert np.array_equal(acceptance.features(images, probabilities, ("stroke", "core")), whole)
    assert np.array_equal(whole, np.column_stack([widths, cores]))
    # a few images (a served one) are measured one by one: the same numbers
    few = acceptance.features(images[:acceptance.STACK_FROM - 1], probabilities[:acceptance.STACK_FROM - 1],
                              ("stroke", "core"))
    assert np.allclose(few, whole[:acceptance.STACK_FROM - 1], rtol=1e-12, atol=0)

def synthetic_rule(target: float = 0.01) -> tuple[acceptance.Acceptance, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)

    def digit_like(n: int) -> np.ndarray:  # margin, coverage, stroke, core
        return np.column_stack([rng.normal(15, 4, n), rng.normal(0.15, 0.04, n), rng.normal(2.5, 0.4, n),
                                rng.normal(0.95, 0.03, n)])

    digits, validation = digit_like(3000), digit_like(2000)
    items = np.column_stack([rng.normal(4, 3, 3000), rng.normal(0.45, 0.1, 3000), rng.normal(8, 2, 3000),
                             rng.normal(0.6, 0.1, 3000)])
    return acceptance.fit(digits, items, validation, target), validation, items


def score(rule: acceptance.Acceptance, found: np.ndarray) -> np.ndarray:
    return rule.bias + ((found - np.asarray(rule.mean)) / np.asarray(rule.scale)) @ np.asarray(rule.weights)


def test_fit_refuses_the_target_share_of_validation_and_most_negatives():
    rule, validation, items = synthetic_rule(0.01)
    assert (score(rule, validation) < rule.threshold).mean() <= 0.01
    assert (score(rule, validation) < rule.threshold).mean() > 0.005
    assert (score(rule, items) < rule.threshold).mean() > 0.9
    assert rule.weights[0] > 0 > max(rule.weights[1:3])  # a clear winner helps, a filled shape hurts
    assert rule.weights[3] > 0  # a solid core helps


def test_verdicts_give_one_line_reasons():
    rule, _, _ = synthetic_rule()
    images = np.zeros((3, 28, 28), np.float32)
    images[0, 5:25, 12:15] = 1.0  # a stroke
    images[1, 4:24, 4:24] = 1.0  # a filled square
    images[2, 4:24, 10:16] = 1.0  # strokes of a digit's usual coverage (15%)
    probabilities = np.full((3, 10), 1e-12)
    probabilities[0, 1] = probabilities[1, 1] = 1.0  # confident
    probabilities[2] = 0.1  # undecided
    names = [str(i) for i in range(10)]
    accepted, filled, undecided = rule.verdicts(images, probabilities, names)
    assert accepted.accepted and accepted.reason is None
    assert not filled.accepted and "filled shape" in filled.reason and "\n" not in filled.reason
    assert not undecided.accepted and "no class stands out" in undecided.reason
    # the measurement that weighs most against the score names the reason; a filled shape comes first
    thin = {"margin": 1.0, "coverage": 0.1, "stroke": 6.0, "core": 0.4}
    assert "strokes about 6 px wide" in rule._reason("stroke", thin, probabilities[2], names).text()
    assert "shading" in rule._reason("core", thin, probabilities[2], names).text() and "40%" in rule._reason(
        "core", thin, probabilities[2], names).text()
    assert "filled shape" in rule._reason("core", {**thin, "coverage": 0.6}, probabilities[2], names).text()


def test_scattered_dots_are_refused_and_no_mnist_training_digit_is_that_scattered():
    """Salt-and-pepper noise prepared as a digit leaves dots the rule took for thin strokes; no
    written digit is that scattered: each limit lies beyond every MNIST training digit."""
    images = np.zeros((4, 28, 28), np.float32)
    images[0, 4:24:4, 4:24:4] = 1.0  # 25 separate dots: too many pieces
    images[1, 5:25, 13:15] = 1.0  # a stroke: one piece of 40 px
    images[2, 4:7, 4:6] = images[2, 20:23, 20:22] = 1.0  # two pieces of 6 px: the largest too small
    images[3, 2:4, 2:7] = 1.0  # a 10-px piece ...
    for row in range(8, 26, 4):
        images[3, row:row + 2, 10:14] = 1.0  # ... beside five of 8 px: 20% of the ink is too little
    assert ink_rows(images) == [[25, 1, 25], [1, 40, 40], [2, 6, 12], [6, 10, 50]]
    plain = acceptance.plain_ink_verdicts(images)
    assert [v.accepted for v in plain] == [False, True, False, False]
    assert plain[0].reason.startswith("not a digit: scattered dots, not strokes: the ink lies in 25 separate pieces")
    assert plain[0].reason_in("pt-BR").startswith("não é um dígito: pontos espalhados")
    rule_said = [acceptance.Verdict(True, None, 1.5)] * 4
    judged = acceptance.refuse_scattered(images, rule_said)
    assert [v.accepted for v in judged] == [False, True, False, False]
    assert judged[0].score == 1.5 and judged[0].reason.startswith("does not look like any of the model's classes")
    if not (SHARED_DATA / "mnist").is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (set MNIST_CNN_TEST_DATA)")
    train = load_dataset("mnist", SHARED_DATA).train_images.astype(np.float32) / 255
    assert not any(v.accepted is False for v in acceptance.refuse_scattered(train, [acceptance.Verdict(True)] * len(train)))


def ink_rows(images: np.ndarray) -> list[list[int]]:
    return [[int(v) for v in row] for row in acceptance.ink_pieces(images)]


def test_reasons_are_written_in_the_language_asked_for():
    """The same verdict, rendered from the message table: English by default, Portuguese on request,
    with the closest class named as the language names it; an unknown language is one clear error."""
    from mnist_cnn.core.errors import ConfigError
    from mnist_cnn.data.registry import get_spec

    rule, _, _ = synthetic_rule()
    images = np.zeros((2, 28, 28), np.float32)
    images[0, 4:24, 4:24] = 1.0  # a filled square
    images[1, 4:24, 10:16] = 1.0  # strokes, but no class stands out
    probabilities = np.full((2, 10), 0.1)
    names = get_spec("fashion-mnist").class_names
    filled, undecided = rule.verdicts(images, probabilities, names)
    assert filled.reason == filled.reason_in("en") and filled.reason.startswith("does not look like")
    portuguese = filled.reason_in("pt-BR")
    assert portuguese.startswith("não parece nenhuma das classes do modelo: uma forma preenchida")
    assert "filled" not in portuguese and "\n" not in portuguese
    assert "the closest, T-shirt/top" in undecided.reason
    assert "a mais próxima, camiseta/top" in undecided.reason_in("pt-BR")
    with pytest.raises(ConfigError, match="unknown language 'xx'"):
        filled.reason_in("xx")


def test_the_file_round_trips(tmp_path):
    rule, _, _ = synthetic_rule()
    rule = acceptance.Acceptance(**{**rule.__dict__, "details": {"refused": {"validation": 0.01}}})
    path = tmp_path / Run.acceptance
    path.write_text(json.dumps(rule.to_json()))
    assert acceptance.read(path) == rule
    assert acceptance.read(tmp_path / "missing.json") is None  # no file: uncalibrated, not an error


@pytest.mark.parametrize("damage, words", [
    (lambda r: "{not json", "not valid JSON"),
    (lambda r: json.dumps([1, 2]), "not an object"),
    (lambda r: json.dumps({**r, "format": "something else"}), "format"),
    (lambda r: json.dumps({**r, "features": ["margin", "coverage"]}), "features"),
    (lambda r: json.dumps({**r, "format": "mnist-cnn acceptance 1"}), "format"),  # an older file: recalibrate
    (lambda r: json.dumps({**r, "weights": [1.0]}), "'weights'"),
    (lambda r: json.dumps({**r, "mean": [1.0, "x", 2.0]}), "'mean'"),
    (lambda r: json.dumps({**r, "scale": [1.0, 0.0, 1.0, 1.0]}), "'scale' must be positive"),
    (lambda r: json.dumps({**r, "format": "mnist-cnn acceptance 2"}), "features"),  # 2 had three features
    (lambda r: json.dumps({**r, "threshold": float("nan")}), "'threshold'"),  # json writes NaN; it is refused
    (lambda r: json.dumps({**r, "bias": True}), "'bias'"),
    (lambda r: json.dumps({**r, "details": []}), "'details'"),
    (lambda r: "[" * 100_000, "not valid JSON"),
])
def test_a_damaged_file_is_a_one_line_error_naming_it(tmp_path, damage, words):
    rule, _, _ = synthetic_rule()
    path = tmp_path / Run.acceptance
    path.write_text(damage(rule.to_json()))
    with pytest.raises(RunFileError) as caught:
        acceptance.read(path)
    message = str(caught.value)
    assert str(path) in message and words in message and "\n" not in message
    assert "mnist-cnn calibrate" in message  # the fix


def test_a_file_of_the_previous_format_is_still_applied(tmp_path):
    """Run folders calibrated before the ink and edges features keep their three-feature rule."""
    rule, _validation, _items = synthetic_rule()
    record = {**rule.to_json(), "format": "mnist-cnn acceptance 2", "features": ["margin", "coverage", "stroke"],
              "mean": list(rule.mean[:3]), "scale": list(rule.scale[:3]), "weights": list(rule.weights[:3])}
    path = tmp_path / Run.acceptance
    path.write_text(json.dumps(record))
    old = acceptance.read(path)
    assert old.feature_names == ("margin", "coverage", "stroke")
    images = np.zeros((2, 28, 28), np.float32)
    images[0, 5:25, 12:15] = 1.0
    images[1, 4:24, 4:24] = 1.0
    probabilities = np.full((2, 10), 1e-12)
    probabilities[:, 1] = 1.0
    found = acceptance.features(images, probabilities)[:, :3]
    expected = old.bias + ((found - np.asarray(old.mean)) / np.asarray(old.scale)) @ np.asarray(old.weights)
    assert np.allclose(old.scores(images, probabilities), expected)
    assert json.loads(json.dumps(old.to_json()))["format"] == "mnist-cnn acceptance 2"  # written back as read


def test_an_unreadable_file_is_an_error_too(tmp_path):
    (tmp_path / Run.acceptance).mkdir()  # a folder where the file should be
    with pytest.raises(RunFileError, match="cannot read"):
        acceptance.read(tmp_path / Run.acceptance)


# -- a calibrated model -----------------------------------------------------------------------------


@pytest.fixture
def model_copy(trained_model: Path, tmp_path: Path) -> Path:
    """The session's model and its run files in a folder of this test's own (calibration writes there)."""
    folder = tmp_path / "run"
    shutil.copytree(trained_model.parent, folder)
    return folder / trained_model.name


@pytest.fixture(scope="module")
def real() -> dict[str, np.ndarray]:
    if not (SHARED_DATA / "fashion-mnist").is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (set MNIST_CNN_TEST_DATA)")
    mnist = load_dataset("mnist", SHARED_DATA)
    fashion = load_dataset("fashion-mnist", SHARED_DATA)
    # The session model trained on the first 12,000 training digits: fit and validate on later ones.
    return {"fit": mnist.train_images[20_000:21_000], "validation": mnist.train_images[30_000:31_000],
            "negatives": fashion.train_images[:1000], "fashion_test": fashion.test_images[:200],
            "digits_test": mnist.test_images[:200]}


@pytest.mark.slow
def test_a_calibrated_model_refuses_fashion_and_accepts_digits(model_copy, real, tmp_path, capsys):
    from PIL import Image

    from mnist_cnn.inference.predict import Predictor

    uncalibrated = Predictor.from_path(model_copy)
    assert not uncalibrated.calibrated
    (answer,) = uncalibrated.predict([real["fashion_test"][0]])
    assert answer.accepted and answer.to_dict()["calibrated"] is False  # no file: everything accepted

    rule = calibrate.calibrate(uncalibrated, real["fit"], real["negatives"], real["validation"],
                               {"noise": calibrate.negatives.noise_images(40)})
    path = acceptance.write(rule, model_copy)
    assert path == model_copy.parent / Run.acceptance
    assert set(rule.details["refused"]) == {"validation", "fit negatives", "noise"}
    assert rule.feature_names == acceptance.FEATURES

    predictor = Predictor.from_path(model_copy)
    assert predictor.calibrated and predictor.acceptance.threshold == pytest.approx(rule.threshold)
    fashion = predictor.predict(list(real["fashion_test"]))
    digits = predictor.predict(list(real["digits_test"]))
    # The session's model is small and briefly trained (a calibrated `cnn` refused ~96% of them:
    # benchmarks/results/refusal-20261127T201350Z.json); it still tells most items from digits.
    assert np.mean([not p.accepted for p in fashion]) > 0.5
    assert np.mean([p.accepted for p in digits]) > 0.95
    refused = next(p for p in fashion if not p.accepted)
    assert refused.to_dict()["calibrated"] is True and "does not look like" in refused.reason

    # The CLI says so too, in its JSON and its text.
    shoe = int(np.flatnonzero([not p.accepted for p in fashion])[0])
    Image.fromarray(255 - real["fashion_test"][shoe]).resize((112, 112)).save(tmp_path / "item.png")
    assert main(["predict", str(model_copy), str(tmp_path / "item.png"), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)["predictions"][0]
    assert record["accepted"] is False and record["calibrated"] is True and record["reason"]
    assert main(["predict", str(model_copy), str(tmp_path / "item.png")]) == 0
    assert "[not accepted: does not look like" in capsys.readouterr().out

    # A stale calibration (the model file changed since) is an error, not a silent mismatch.
    model_copy.write_bytes(model_copy.read_bytes() + b"\0")
    assert main(["predict", str(model_copy), str(tmp_path / "item.png")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "calibrated for another" in err and str(path) in err


@pytest.mark.slow
def test_calibrate_command_writes_the_file_from_the_runs_split(model_copy, monkeypatch, capsys):
    # The session model's config.json names mnist and (added here) the 12,000 images it trained
    # on, so the command's validation split is 1,200 of them: enough for the plumbing.
    config_path = model_copy.parent / Run.config
    config = json.loads(config_path.read_text())
    config["config"]["train_limit"] = 12_000
    config_path.write_text(json.dumps(config))
    monkeypatch.setattr(calibrate, "FIT_DIGITS", 500)
    monkeypatch.setattr(calibrate, "FIT_NEGATIVES", 500)
    monkeypatch.setattr(calibrate.negatives, "MEASURE_GENERATED", 20)
    monkeypatch.setattr(calibrate.negatives, "find_fonts", lambda *a: [])  # letters: measured in benchmarks
    assert main(["calibrate", str(model_copy), "--data-dir", str(SHARED_DATA), "--offline", "--quick"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"wrote {model_copy.parent / Run.acceptance}: refuses ") and "of validation" in out
    stored = acceptance.read(model_copy.parent / Run.acceptance)
    assert 1150 < stored.details["images"]["validation"] < 1250  # 10% of each class of 12,000
    assert stored.details["model_file"] == "model.keras"
    assert set(stored.details["refused"]) >= {"validation", "fashion-mnist train", "noise", "scribbles"}

    (model_copy.parent / Run.acceptance).write_text("{broken")
    assert main(["predict", str(model_copy), str(model_copy)]) == 2  # any command loading it fails, in one line
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "acceptance.json is damaged" in err
    # ... while calibrate itself ignores the damaged file and replaces it.
    assert main(["calibrate", str(model_copy), "--data-dir", str(SHARED_DATA), "--offline", "--quick"]) == 0
    assert acceptance.read(model_copy.parent / Run.acceptance) is not None


def test_calibrate_refuses_a_loose_model_in_one_line(tmp_path, capsys):
    (tmp_path / "model.keras").write_bytes(b"not a model")
    assert main(["calibrate", str(tmp_path / "model.keras"), "--offline"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not in a run folder" in err


@pytest.mark.slow
def test_calibration_after_training_uses_the_model_in_memory_and_bounded_samples(model_copy, real, monkeypatch):
    """`start_or_resume` hands the trained model over (the file is not loaded again), and the
    rule is fitted on the fixed sample sizes whatever the split's size."""
    from mnist_cnn.inference.keras_file import load_saved_model
    from mnist_cnn.inference.predict import Predictor

    model = load_saved_model(model_copy)

    def no_reload(*args, **kwargs):
        raise AssertionError("calibration after training loaded the model file again")

    monkeypatch.setattr(Predictor, "from_path", no_reload)
    dataset = load_dataset("mnist", SHARED_DATA)
    x_train, x_val = dataset.train_images[20_000:26_000], dataset.train_images[30_000:34_000]
    path = calibrate.calibrate_after_training(Run(model_copy.parent), dataset, x_train, x_val, model=model)
    assert path == model_copy.parent / Run.acceptance
    details = acceptance.read(path).details
    assert details["images"]["fit digits"] == calibrate.FIT_DIGITS
    assert details["images"]["validation"] == calibrate.MAX_VALIDATION  # 4,000 given, a fixed sample used
    assert details["images"]["fashion-mnist train"] == calibrate.FIT_NEGATIVES
    assert 0.003 <= details["refused"]["validation"] <= 0.02
