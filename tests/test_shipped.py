"""The models shipped with the package: found by name, checked against their SHA-256, listed by `models`."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import shutil
from pathlib import Path

import pytest
from conftest import load_benchmark_script

from mnist_cnn.cli.main import main
from mnist_cnn.core.errors import ModelFileError
from mnist_cnn.inference import shipped
from mnist_cnn.inference.shipped import BUNDLED_MODELS, bundled_path, resolve_model
from mnist_cnn.runs.config import TrainConfig
from mnist_cnn.training.recipes import RECIPES, train_command


@pytest.mark.parametrize("name", sorted(BUNDLED_MODELS))
def test_each_shipped_model_has_its_files_and_digest(name):
    path = resolve_model(name)  # checks the digest
    folder = path.parent
    for needed in ("model.keras", "model.keras.sha256", "config.json", "metrics.json", "MODEL_CARD.md",
                   "acceptance.json"):
        assert (folder / needed).is_file(), needed
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert (folder / "model.keras.sha256").read_text().split() == [digest, "model.keras"]
    card = (folder / "MODEL_CARD.md").read_text()
    assert digest in card and "## Limits" in card
    accuracy = json.loads((folder / "metrics.json").read_text())["test"]["accuracy"]
    assert f"{100 * accuracy:.2f}%" in card
    settings = TrainConfig(**json.loads((folder / "config.json").read_text())["config"])
    assert f"`{train_command(settings)}`" in card  # the card's command gives the recorded settings
    assert path.stat().st_size < 5 * 1024 * 1024  # saved without optimizer state: a few MB at most
    rule = json.loads((folder / "acceptance.json").read_text())
    assert rule["details"]["model_sha256"] == digest  # the "not a digit" rule is this model's


@pytest.fixture
def tampered(tmp_path, monkeypatch):
    """A copy of the shipped mnist folder that `resolve_model("mnist")` finds instead of the real one."""
    folder = tmp_path / "mnist"
    shutil.copytree(bundled_path("mnist").parent, folder)
    monkeypatch.setattr(shipped, "bundled_path", lambda name: folder / "model.keras")
    return folder


def test_a_changed_shipped_model_is_a_one_line_error(tampered, capsys):
    data = bytearray((tampered / "model.keras").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tampered / "model.keras").write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="fails its SHA-256 check") as caught:
        resolve_model("mnist")
    assert "\n" not in str(caught.value) and "reinstall" in str(caught.value)
    assert main(["predict", "mnist", str(tampered / "config.json")]) == 2  # the CLI: exit 2, one line
    err = capsys.readouterr().err
    assert "fails its SHA-256 check" in err and "Traceback" not in err


def test_a_missing_digest_is_an_error_too(tampered):
    (tampered / "model.keras.sha256").unlink()
    with pytest.raises(ModelFileError, match="missing or unreadable"):
        resolve_model("mnist")


def test_a_card_rewritten_after_a_recipe_change_quotes_the_command_of_today(tampered, monkeypatch, capsys):
    """A recipe's settings change under a shipped model: `--card-only` makes its card's command
    spell out what the recipe no longer gives, and refuses a model that fails its digest."""
    ship = load_benchmark_script("ship_pretrained", "tools")
    monkeypatch.setattr(ship, "TARGET", tampered.parent)
    settings = TrainConfig(**json.loads((tampered / "config.json").read_text())["config"])
    changed = {**RECIPES[settings.recipe].per_dataset.get(settings.dataset, {}), "epochs": settings.epochs + 1}
    monkeypatch.setitem(RECIPES, settings.recipe, dataclasses.replace(
        RECIPES[settings.recipe], per_dataset={**RECIPES[settings.recipe].per_dataset, settings.dataset: changed}))
    (tampered / "MODEL_CARD.md").write_text("stale")
    assert ship.main(["--card-only", "mnist"]) == 0
    card = (tampered / "MODEL_CARD.md").read_text()
    command = train_command(settings)
    assert f"--epochs {settings.epochs}" in command and f"`{command}`" in card
    assert (tampered / "model.keras.sha256").read_text().split()[0] in card
    (tampered / "model.keras").write_bytes(b"not the shipped model")
    assert ship.main(["--card-only", "mnist"]) == 2
    assert "does not match its model.keras.sha256" in capsys.readouterr().err
    (tampered / "config.json").unlink()
    assert ship.main(["--card-only", "mnist"]) == 2
    assert "no shipped mnist model" in capsys.readouterr().err


def test_models_lists_the_shipped_models_with_their_accuracy(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    shipped = out[out.index("shipped"):]
    for name in BUNDLED_MODELS:
        folder = bundled_path(name).parent
        accuracy = json.loads((folder / "metrics.json").read_text())["test"]["accuracy"]
        assert any(line.startswith(name + " ") and f"{100 * accuracy:.2f}%" in line for line in shipped.splitlines())


def test_a_path_is_not_taken_for_a_name(tmp_path):
    assert resolve_model(tmp_path / "mnist") == tmp_path / "mnist"
    assert resolve_model("runs/x/model.keras") == Path("runs/x/model.keras")


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(BUNDLED_MODELS))
def test_evaluate_reproduces_the_published_test_accuracy(name, shared_data, tmp_path):
    """The issue's check: `mnist-cnn evaluate NAME --dataset NAME --out DIR` gives the accuracy
    the model card and metrics.json publish, on the real test set."""
    folder = bundled_path(name).parent
    published = json.loads((folder / "metrics.json").read_text())["test"]
    assert main(["evaluate", name, "--dataset", name, "--data-dir", str(shared_data), "--out", str(tmp_path)]) == 0
    measured = json.loads((tmp_path / "metrics.json").read_text())["test"]
    assert measured["num_images"] == published["num_images"] == 10_000
    assert measured["accuracy"] == pytest.approx(published["accuracy"], abs=1e-4)  # at most one image apart


@pytest.mark.parametrize("name", sorted(BUNDLED_MODELS))
def test_model_cards_are_in_the_hugging_face_form_and_quote_the_shipped_files(name):
    yaml = pytest.importorskip("yaml")
    folder = bundled_path(name).parent
    text = (folder / "MODEL_CARD.md").read_text(encoding="utf-8")
    front, body = text.split("---\n", 2)[1:]
    meta = yaml.safe_load(front)
    assert (meta["license"], meta["library_name"], meta["pipeline_tag"]) == ("mit", "keras", "image-classification")
    accuracy = json.loads((folder / "metrics.json").read_text())["test"]["accuracy"]
    scored = {m["type"]: m["value"] for m in meta["model-index"][0]["results"][0]["metrics"]}
    assert scored["accuracy"] == accuracy and 0 < scored["f1"] <= 1
    for section in ("## Intended use", "## Limits and out-of-scope use", "## Training procedure", "## Compute",
                    "## Evaluation", "## Data", "## File"):
        assert section in body, section
    assert (folder / "model.keras.sha256").read_text().split()[0] in body
    assert re.search(r"over [2-9] seeds", body)  # the seed spread of the recipe it is one seed of
    if name == "fashion-mnist":
        assert "not a digit" not in body and "not one of its ten classes" in body
