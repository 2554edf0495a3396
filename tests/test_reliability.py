"""Hostile inputs an adversarial audit found, each kept: exactly one line on stderr and exit 2 from the
CLI, one-line JSON 4xx from the API, and nothing left behind that a re-run would trip on."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_DATA

from mnist_cnn.cli.main import main
from test_custom import png_header_only


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
