"""The writing score: the fifth feature of `mnist-cnn calibrate`'s rule, its scorer file and its runtimes.

Unit tests need no trained model (a tiny untrained scorer will do for files and runtimes);
the slow one calibrates a copy of the session's small model on small samples of real data
and follows the scorer through the library, the CLI, LiteRT and a serve worker.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_DATA

from mnist_cnn.cli.main import main
from mnist_cnn.core.atomic import normal_file_mode
from mnist_cnn.core.errors import ModelFileError, RunFileError
from mnist_cnn.inference import acceptance
from mnist_cnn.inference.writing import WRITING_FILE, WritingScorer
from mnist_cnn.refusal import calibrate, forms, writing
from mnist_cnn.runs.run import Run


def test_the_writing_feature_needs_the_scorers_values():
    images = np.zeros((2, 28, 28), np.float32)
    images[:, 5:20, 12:15] = 1.0
    p = np.full((2, 10), 0.1)
    with pytest.raises(ValueError, match="writing scorer's 2 scores"):
        acceptance.features(images, p, acceptance.WRITING_FEATURES)
    found = acceptance.features(images, p, acceptance.WRITING_FEATURES, np.array([3.5, -2.0]))
    assert found.shape == (2, 5) and list(found[:, 4]) == [3.5, -2.0]
    assert np.array_equal(found[:, :4], acceptance.features(images, p))  # the four are unchanged


def test_the_threshold_holds_for_each_form_of_validation_digits():
    rng = np.random.default_rng(0)
    digits, negative = rng.normal(2, 1, (2000, 5)), rng.normal(-2, 1, (2000, 5))
    # Two forms: the second scores lower (as enlarged digits do); a pooled quantile would refuse
    # far more than the target of it.
    validation = np.concatenate([rng.normal(2, 1, (1000, 5)), rng.normal(1.2, 1, (1000, 5))])
    labels = np.array(["raw"] * 1000 + ["enlarged"] * 1000)
    rule = acceptance.fit(digits, negative, validation, 0.01, labels, acceptance.WRITING_FEATURES)
    scores = rule._scores(validation)
    for form in ("raw", "enlarged"):
        assert (scores[labels == form] < rule.threshold).mean() <= 0.01
    pooled = acceptance.fit(digits, negative, validation, 0.01, None, acceptance.WRITING_FEATURES)
    assert (pooled._scores(validation[labels == "enlarged"]) < pooled.threshold).mean() > 0.015
    assert rule.uses_writing and not acceptance.fit(digits[:, :4], negative[:, :4], validation[:, :4]).uses_writing


def test_a_five_feature_file_round_trips_and_names_its_format(tmp_path):
    rule = acceptance.Acceptance((0.0,) * 5, (1.0,) * 5, (1.0, 0.5, -1.0, 0.5, 2.0), 0.1, -1.0, 0.3,
                                 feature_names=acceptance.WRITING_FEATURES)
    record = rule.to_json()
    assert record["format"] == acceptance.WRITING_FORMAT and record["features"][-1] == "writing"
    path = tmp_path / Run.acceptance
    path.write_text(json.dumps(record))
    assert acceptance.read(path) == rule
    record["weights"] = record["weights"][:4]  # four weights for five features
    path.write_text(json.dumps(record))
    with pytest.raises(RunFileError, match="'weights' must be 5 finite numbers"):
        acceptance.read(path)


@pytest.fixture(scope="module")
def tiny_scorer():
    return writing.writing_model(0)  # untrained: files and runtimes do not care


def test_a_rule_never_runs_with_another_scorer_than_its_own(tmp_path, tiny_scorer):
    model = tmp_path / "model.keras"
    model.write_bytes(b"stands in for a model")
    rule = acceptance.Acceptance((0.0,) * 5, (1.0,) * 5, (1.0,) * 5, 0.0, -1.0, 0.3,
                                 feature_names=acceptance.WRITING_FEATURES)
    with pytest.raises(FileNotFoundError):
        acceptance.write(rule, model)  # the scorer is stored first, then the rule naming its digest
    writing.save_scorer(tiny_scorer, tmp_path)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temp file left
    assert (tmp_path / WRITING_FILE).stat().st_mode & 0o777 == normal_file_mode()  # not private like a temp file
    path = acceptance.write(rule, model)
    stored = json.loads(path.read_text())["details"]
    assert stored["writing_file"] == WRITING_FILE and len(stored["writing_sha256"]) == 64
    assert acceptance.for_model(model) is not None

    scorer = tmp_path / WRITING_FILE
    scorer.write_bytes(scorer.read_bytes() + b"\0")  # replaced by another (or damaged)
    with pytest.raises(RunFileError, match="is not the one it was fitted with") as caught:
        acceptance.for_model(model)
    assert "\n" not in str(caught.value) and "mnist-cnn calibrate" in str(caught.value)
    scorer.unlink()
    with pytest.raises(RunFileError, match="is missing"):
        acceptance.for_model(model)


def test_the_scorer_checks_its_model_and_answers_the_same_on_litert(tiny_scorer):
    import keras

    with pytest.raises(ModelFileError, match="is not a writing scorer"):
        WritingScorer(keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(2)]))
    scorer = WritingScorer(tiny_scorer)
    images = np.random.default_rng(1).random((5, 28, 28)).astype(np.float32)
    on_keras = scorer.scores(images)
    assert on_keras.shape == (5,) and scorer.scores(images[:0]).shape == (0,)
    assert scorer.use_litert() and scorer.litert_file is not None
    assert np.allclose(scorer.scores(images), on_keras, atol=1e-4)
    # A worker opens the server's converted file without Keras, and scores alike at any batch size.
    converted = WritingScorer.converted(scorer.litert_file)
    assert converted.model is None
    assert np.allclose(converted.scores(images), on_keras, atol=1e-4)
    assert np.allclose(converted.scores(images[:1]), on_keras[:1], atol=1e-4)


def test_digits_are_sent_in_three_forms():
    digits = np.zeros((8, 28, 28), np.uint8)
    digits[:, 6:22, 12:16] = 255
    sources, labels = forms.sent_forms(digits, seed=0)
    assert list(labels) == [forms.FORMS[0]] * 4 + [forms.FORMS[1]] * 2 + [forms.FORMS[2]] * 2
    assert sources[0].shape == (28, 28) and sources[4].shape == (84, 84) and sources[6].shape[0] > 28
    assert sources[4].mean() > 128 and sources[6].mean() > 128  # dark ink on light paper


@pytest.fixture
def model_copy(trained_model: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "run"
    shutil.copytree(trained_model.parent, folder)
    return folder / trained_model.name


@pytest.mark.slow
def test_calibrate_trains_the_scorer_and_every_path_applies_it(model_copy, monkeypatch, capsys, tmp_path):
    """`mnist-cnn calibrate` on the session model's split (small samples, one epoch): the scorer
    lands beside the model, the rule names it, and predict, LiteRT and a serve worker agree."""
    from PIL import Image

    from mnist_cnn.inference.predict import Predictor
    from mnist_cnn.refusal import negatives

    config_path = model_copy.parent / Run.config
    config = json.loads(config_path.read_text())
    config["config"]["train_limit"] = 12_000  # a validation split of 1,200 digits
    config_path.write_text(json.dumps(config))
    for name, value in (("FIT_DIGITS", 800), ("VALIDATION_DIGITS", 600), ("FIT_NEGATIVES", 300),
                        ("FIT_NOISE", 300), ("FIT_SCRIBBLES", 200)):
        monkeypatch.setattr(writing, name, value)
    monkeypatch.setattr(writing.calibrate_with_writing, "__defaults__", (calibrate.SEED, 1))  # one epoch
    monkeypatch.setattr(writing, "MEMBERS", 2)  # the mean of scorers, as shipped (3), made cheaper
    monkeypatch.setattr(calibrate.negatives, "MEASURE_GENERATED", 20)
    monkeypatch.setattr(negatives, "find_fonts", lambda *a: [])
    assert main(["calibrate", str(model_copy), "--data-dir", str(SHARED_DATA), "--offline"]) == 0
    out = capsys.readouterr().out
    assert "of validation enlarged to 84 px" in out and "of noise (fitted)" in out
    rule = acceptance.read(model_copy.parent / Run.acceptance)
    assert rule.uses_writing and (model_copy.parent / WRITING_FILE).is_file()
    assert rule.details["writing_scorer"]["epochs"] == 1 and rule.details["writing_scorer"]["members"] == 2
    assert rule.details["images"]["validation"] > 1500  # 600 validation digits, each in the three forms
    for form in forms.FORMS:  # the threshold refuses at most its target of each form it was placed on
        assert rule.details["refused"][f"validation {form}"] <= writing.WRITING_TARGET_REFUSED + 1e-9

    predictor = Predictor.from_path(model_copy)
    assert predictor.writing_file == model_copy.parent / WRITING_FILE
    noise = negatives.noise_images(40, seed=5)
    images, probabilities, _ = calibrate.run_model(predictor, noise)  # the blank ones left out
    keras_scores = predictor.acceptance_scores(images, probabilities)
    verdicts = predictor.acceptance_of(images, probabilities)
    assert [v.score for v in verdicts] == pytest.approx(list(keras_scores))

    # The reason a writing-score refusal gives, in both languages (a rule weighted on writing alone).
    only_writing = acceptance.Acceptance(rule.mean, rule.scale, (0.0, 0.0, 0.0, 0.0, 1.0), 0.0, 1e9,
                                         1.0, feature_names=acceptance.WRITING_FEATURES)
    (verdict,) = only_writing.verdicts(images[:1], probabilities[:1], predictor.class_names, np.array([-4.2]))
    assert "handwriting" in verdict.reason_in("en") and "-4.2" in verdict.reason_in("en")
    assert "escrita à mão" in verdict.reason_in("pt-BR")

    # The CLI refuses by the same rule.
    Image.fromarray(noise[0]).save(tmp_path / "noise.png")
    assert main(["predict", str(model_copy), str(tmp_path / "noise.png"), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)["predictions"][0]
    assert record["calibrated"] is True

    # serve: the server converts the scorer once; a worker opens that file and judges alike.
    pytest.importorskip("orjson", reason="the [serve] extra is not installed")
    from mnist_cnn.serving.workers import _build, spec_of

    predictor.serve_with("litert")
    assert predictor.writing_litert is not None and predictor.writing_litert.is_file()
    worker = _build(spec_of(predictor))
    assert worker.writing_litert == predictor.writing_litert and worker.writing_scorer().model is None
    assert worker.acceptance_scores(images, probabilities) == pytest.approx(list(keras_scores), abs=1e-3)

    # --quick: the four-feature rule, as training fits it.
    assert main(["calibrate", str(model_copy), "--data-dir", str(SHARED_DATA), "--offline", "--quick"]) == 0
    assert not acceptance.read(model_copy.parent / Run.acceptance).uses_writing


def test_threads_share_the_shipped_scorer_safely():
    """`serve` without workers answers from threads: scoring batches of different sizes at once (each
    resizes the LiteRT interpreter) gives every thread the scores it gets alone."""
    from concurrent.futures import ThreadPoolExecutor

    from mnist_cnn.inference.predict import Predictor

    predictor = Predictor.from_path("mnist")
    assert predictor.acceptance.uses_writing  # the shipped rule has the writing score
    predictor.serve_with("litert")
    assert predictor.writing_litert is not None
    rng = np.random.default_rng(0)
    batches = [rng.random((size, 28, 28)).astype(np.float32) for size in (1, 3, 7, 16) * 6]
    probabilities = [np.full((len(b), 10), 0.1) for b in batches]
    alone = [predictor.acceptance_scores(b, p) for b, p in zip(batches, probabilities)]
    with ThreadPoolExecutor(8) as pool:
        together = list(pool.map(predictor.acceptance_scores, batches, probabilities))
    for one, other in zip(alone, together):
        assert np.array_equal(one, other)
