"""Hostile inputs an adversarial audit found, each kept: exactly one line on stderr and exit 2 from the
CLI, one-line JSON 4xx from the API, and nothing left behind that a re-run would trip on."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_DATA
from test_custom import png_header_only

from mnist_cnn.cli.main import main


def one_line_error(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err  # nothing printed before (or after) the error
    return lines[0]


@pytest.mark.parametrize("extra", [[], ["--number"]])
def test_an_image_past_pillows_bomb_warning_is_one_line_for_predict(capsys, tmp_path, trained_model, extra):
    bomb = tmp_path / "huge.png"
    bomb.write_bytes(png_header_only(30_000, 30_000))  # 900 MP: Pillow warns, our 25 MP cap refuses
    assert main(["predict", str(trained_model), str(bomb), *extra]) == 2
    line = one_line_error(capsys)
    assert "pixel" in line and "limit" in line and "Warning" not in line


def test_an_image_past_pillows_bomb_warning_is_one_line_for_data_info(capsys, tmp_path):
    root = tmp_path / "folders"
    for split in ("train", "test"):
        for label in ("a", "b"):
            (root / split / label).mkdir(parents=True)
            for i in range(3):
                (root / split / label / f"{i}.png").write_bytes(png_header_only(8, 8))
    (root / "train" / "a" / "huge.png").write_bytes(png_header_only(30_000, 30_000))
    assert main(["data", "info", str(root)]) == 2
    assert "Warning" not in one_line_error(capsys)


def test_a_keras_archive_with_a_member_outside_it_is_one_line(capsys, tmp_path, trained_model):
    hostile = tmp_path / "model.keras"
    with zipfile.ZipFile(trained_model) as source, zipfile.ZipFile(hostile, "w") as target:
        for member in source.infolist():
            target.writestr(member, source.read(member))
        target.writestr("../../escape.txt", b"x")
    assert main(["predict", str(hostile), str(Path(__file__).parents[1] / "notebooks" / "my_digit.png")]) == 2
    line = one_line_error(capsys)
    assert "../../escape.txt" in line and "outside the archive" in line
    assert not (tmp_path.parent / "escape.txt").exists()


def mismatched_run(trained_model: Path, folder: Path) -> Path:
    """A copy of the 10-class test model beside a run that names 5 classes."""
    import json
    import shutil

    shutil.copytree(trained_model.parent, folder)
    config = json.loads((folder / "config.json").read_text())
    config["data"]["class_names"] = ["a", "b", "c", "d", "e"]
    (folder / "config.json").write_text(json.dumps(config))
    return folder / "model.keras"


@pytest.mark.parametrize("command", ["predict", "predict-number", "evaluate", "calibrate", "serve", "explain"])
def test_a_model_whose_class_count_disagrees_with_its_run_is_one_answer_everywhere(
        capsys, tmp_path, trained_model, command):
    model = mismatched_run(trained_model, tmp_path / "run")
    digit = str(Path(__file__).parents[1] / "notebooks" / "my_digit.png")
    argv = {"predict": ["predict", str(model), digit], "predict-number": ["predict", str(model), digit, "--number"],
            "evaluate": ["evaluate", str(model), "--data-dir", str(SHARED_DATA), "--offline"],
            "calibrate": ["calibrate", str(model), "--data-dir", str(SHARED_DATA), "--offline"],
            "serve": ["serve", str(model), "--port", "0"],
            "explain": ["explain", str(model), digit, "-o", str(tmp_path / "x.png")]}[command]
    assert main(argv) == 2
    line = one_line_error(capsys)
    assert "predicts 10 classes" in line and "names 5" in line and "do not belong together" in line
    assert not (model.parent / "acceptance.json").exists()  # calibrate wrote no rule for it


def test_a_model_reached_through_a_link_keeps_its_run_and_its_refusal_rule(tmp_path):
    from mnist_cnn.inference.predict import Predictor
    from mnist_cnn.inference.shipped import bundled_path

    shipped = bundled_path("mnist")  # a run folder with its calibrated rule
    link = tmp_path / "elsewhere" / "my-model.keras"
    link.parent.mkdir()
    link.symlink_to(shipped)
    direct, linked = Predictor.from_path(shipped), Predictor.from_path(link)
    assert linked.info.dataset == "mnist" and linked.calibrated and linked.acceptance == direct.acceptance
    noise = (np.random.default_rng(0).random((1000, 1000)) > 0.5).astype(np.uint8) * 255
    assert not linked.predict([noise])[0].accepted  # the rule is on: random noise is not a digit
    # ... with what lies beside the file it points to: the writing scorer and the touching-digit reader.
    assert linked.writing_file == direct.writing_file is not None
    assert linked.reader_file == direct.reader_file is not None


@pytest.mark.parametrize("argv, words", [
    (["train", "--epochs", str(10**30)], "epochs"),
    (["train", "--batch-size", str(10**30)], "batch_size"),
    (["train", "--patience", str(10**30)], "patience"),
    (["train", "--train-limit", str(10**30)], "train_limit"),
    (["train", "--warmup-epochs", "1e30"], "warmup_epochs"),
    (["tune", "run", "--study", "s", "--trials", str(10**30)], "--trials"),
    (["data", "samples", "mnist", "-o", "x.png", "--per-class", str(10**30)], "--per-class"),
])
def test_values_with_no_sane_upper_bound_are_one_line_errors(capsys, tmp_path, argv, words):
    code = None
    try:
        code = main(argv)
    except SystemExit as stop:  # argparse's own one-line refusal
        code = stop.code
    assert code == 2
    line = one_line_error(capsys)
    assert words in line and "Traceback" not in line


def test_a_search_space_reaching_past_the_bounds_or_nested_deep_is_one_line(capsys, tmp_path):
    pytest.importorskip("optuna")
    huge, deep = tmp_path / "huge.toml", tmp_path / "deep.toml"
    huge.write_text(f"epochs = {{ low = 1, high = {10**30} }}\n")
    deep.write_text("epochs = " + "[" * 5000 + "]" * 5000 + "\n")
    for space, words in ((huge, "epochs"), (deep, "nested")):
        assert main(["tune", "run", "--study", "s", "--space", str(space), "--runs-dir", str(tmp_path)]) == 2
        line = one_line_error(capsys)
        assert words in line and str(space) in line, line


def test_without_a_calibrated_rule_plain_ink_checks_still_refuse_what_is_not_writing(trained_model):
    from mnist_cnn.data.idx import load_split
    from mnist_cnn.data.registry import get_spec
    from mnist_cnn.inference.numbers import read_number
    from mnist_cnn.inference.predict import Predictor

    predictor = Predictor.from_path(trained_model)
    assert not predictor.calibrated
    rng = np.random.default_rng(0)
    noise = ((rng.random((1000, 1000)) > 0.5) * 255).astype(np.uint8)
    prediction = predictor.predict([noise])[0]
    assert not prediction.accepted and not prediction.calibrated
    assert "no calibrated" in prediction.reason and "\n" not in prediction.reason
    reading = read_number(predictor, noise)
    assert reading.digits and not any(digit.accepted for digit in reading.digits)
    # ... while real digits pass them: the limits lie beyond every MNIST training digit.
    images, _, _ = load_split(get_spec("mnist"), SHARED_DATA / "mnist", "test")
    accepted = [p.accepted for p in predictor.predict(list(images[:2000]))]
    assert np.mean(accepted) >= 0.999


def test_a_training_refused_at_its_first_batch_leaves_no_run_folder(capsys, tmp_path, tiny_dataset, monkeypatch):
    from mnist_cnn.core.errors import MnistCnnError
    from mnist_cnn.training import train as training

    def refuse(*args, **kwargs):
        raise MnistCnnError("refused at the first batch")

    monkeypatch.setattr(training, "make_batches", refuse)
    runs = tmp_path / "runs"
    assert main(["train", "--dataset", "tiny", "--data-dir", str(tiny_dataset), "--model", "keras-example",
                 "--epochs", "1", "--runs-dir", str(runs)]) == 2
    assert "refused at the first batch" in capsys.readouterr().err
    assert not runs.exists() or list(runs.iterdir()) == []


def test_a_killed_evaluation_leaves_nothing_and_a_rerun_replaces_only_its_own_folder(tmp_path, trained_model,
                                                                                     monkeypatch):
    from mnist_cnn.core.errors import MnistCnnError
    from mnist_cnn.evaluation import evaluate as evaluation
    from mnist_cnn.evaluation import report

    work = tmp_path / "work"
    work.mkdir()
    out = work / "eval"

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(report, "write_report", killed)
        with pytest.raises(KeyboardInterrupt):
            evaluation.evaluate(trained_model, out=out, data_dir=SHARED_DATA, offline=True)
    assert list(work.iterdir()) == []  # no half folder, no staging, no .tmp-* file
    first = evaluation.evaluate(trained_model, out=out, data_dir=SHARED_DATA, offline=True)
    assert sorted(p.name for p in out.iterdir()) == sorted(evaluation.EVALUATION_FILES)
    again = evaluation.evaluate(trained_model, out=out, data_dir=SHARED_DATA, offline=True)  # replaced whole
    assert again.metrics["test"] == first.metrics["test"] and sorted(p.name for p in work.iterdir()) == ["eval"]
    (out / "notes.txt").write_text("mine")  # a folder holding the user's own files: they stay
    evaluation.evaluate(trained_model, out=out, data_dir=SHARED_DATA, offline=True)
    assert (out / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in out.iterdir()) == sorted([*evaluation.EVALUATION_FILES, "notes.txt"])
    assert sorted(p.name for p in work.iterdir()) == ["eval"]  # no staging left beside it
    (work / "a-file").write_text("x")
    with pytest.raises(MnistCnnError, match="is a file"):
        evaluation.evaluate(trained_model, out=work / "a-file", data_dir=SHARED_DATA, offline=True)


def test_predict_prints_a_refusal_in_the_language_asked_for(trained_model, tmp_path, capsys):
    from PIL import Image

    from mnist_cnn.cli.main import main

    filled = np.full((56, 56), 255, np.uint8)
    filled[4:52, 4:52] = 0  # a filled black square on white paper: plainly not writing
    path = tmp_path / "square.png"
    Image.fromarray(filled).save(path)
    assert main(["predict", str(trained_model), str(path), "--lang", "pt-BR"]) == 0
    out = capsys.readouterr().out
    assert "[não aceito: não é um dígito: a tinta cobre" in out and "not accepted" not in out
    assert main(["predict", str(trained_model), str(path), "--number", "--lang", "pt-BR"]) == 0
    assert "[não aceito: marca 1 de 1: não é um dígito" in capsys.readouterr().out
    assert main(["predict", str(trained_model), str(path)]) == 0
    assert "[not accepted: not a digit: ink covers" in capsys.readouterr().out
    with pytest.raises(SystemExit) as stop:  # argparse: one usage line, exit 2
        main(["predict", str(trained_model), str(path), "--lang", "xx"])
    assert stop.value.code == 2 and "invalid choice: 'xx'" in capsys.readouterr().err
