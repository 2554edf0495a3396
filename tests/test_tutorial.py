"""The tutorial notebooks: one source, twin languages, chapters in the seed's order, and they run.

The execution test runs the Portuguese notebook top to bottom in quick mode (3,000 training
images, one epoch) in a fresh kernel, failing on any cell error; CI runs it on the real MNIST.
The English twin runs the same code (checked cell by cell below) with the package's default
language, which every other test speaks, so running it too would spend half a minute of the
suite proving nothing new.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[1]
SEED_CHAPTERS = ["0", "1", "1.1", "1.2", "2", "2.1", "3", "4", "5", "5.1", "5.2", "6", "6.1", "7", "8", "8.1", "9", "10",
                 "11"]


def load_builder():
    spec = importlib.util.spec_from_file_location("build_tutorials", REPO / "notebooks" / "build_tutorials.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


builder = load_builder()


def code_cells(nb) -> list[str]:
    return [cell.source for cell in nb.cells if cell.cell_type == "code"]


def test_twins_share_their_code_and_translate_all_prose():
    en, pt = builder.build("en"), builder.build("pt")
    assert [c.cell_type for c in en.cells] == [c.cell_type for c in pt.cells]
    assert len(code_cells(en)) >= 20
    # The same code but for the language each notebook speaks in (set once, in the first cell).
    assert 'LANG = "en"' in code_cells(en)[0] and 'LANG = "pt-BR"' in code_cells(pt)[0]
    assert [c.replace('LANG = "en"', "") for c in code_cells(en)] == [c.replace('LANG = "pt-BR"', "")
                                                                        for c in code_cells(pt)]
    untranslated = [c.source[:60] for c, d in zip(en.cells, pt.cells) if c.cell_type == "markdown"
                    and c.source == d.source]
    assert untranslated == []


def test_every_code_cell_is_followed_by_an_explanation():
    cells = builder.build("en").cells
    for index, cell in enumerate(cells):
        if cell.cell_type == "code":
            assert index + 1 < len(cells) and cells[index + 1].cell_type == "markdown", cell.source[:80]


def test_every_chapter_ends_with_exercises_whose_solutions_are_collapsed():
    cells = builder.build("en").cells
    questions = [i for i, c in enumerate(cells) if c.cell_type == "markdown" and c.source.startswith("**Exercise.**")]
    assert len(questions) >= 10
    for i in questions:
        solution = cells[i + 1]
        assert solution.cell_type == "code" and solution.metadata["jupyter"]["source_hidden"] is True
    chapters_with_exercises = set()
    chapter = None
    for cell in cells:
        heading = re.match(r"## (\d+)\. ", cell.source) if cell.cell_type == "markdown" else None
        chapter = heading.group(1) if heading else chapter
        if cell.cell_type == "markdown" and cell.source.startswith("**Exercise.**"):
            chapters_with_exercises.add(chapter)
    assert chapters_with_exercises == {str(n) for n in range(12)}
    assert all(not c.metadata.get("jupyter", {}).get("source_hidden") for c in cells
               if c.cell_type == "code" and c not in [cells[i + 1] for i in questions])


def test_a_fashion_mnist_chapter_after_the_mnist_path():
    for lang in ("en", "pt"):
        sources = [c.source for c in builder.build(lang).cells]
        start = next(i for i, s in enumerate(sources) if s.startswith("## 10. ") and "Fashion-MNIST" in s)
        chapter = "\n".join(sources[start:])
        assert 'load_dataset("fashion-mnist")' in chapter and 'resolve_model("fashion-mnist")' in chapter
        assert "aug_flip" in chapter and "confusion_matrix.png" in chapter


@pytest.mark.parametrize("lang", ["en", "pt"])
def test_chapters_follow_the_seed_order(lang):
    headings = [m.group(1) for c in builder.build(lang).cells if c.cell_type == "markdown"
                for m in re.finditer(r"^#{2,3} (\d+(?:\.\d+)?)\.? ", c.source, re.MULTILINE)]
    assert headings == SEED_CHAPTERS


def test_cells_call_the_package_instead_of_copying_training_code():
    source = "\n".join(code_cells(builder.build("en")))
    for copied in (".fit(", ".compile(", "Conv2D(", "Dense(", "GradientTape", "to_categorical"):
        assert copied not in source
    for api in ("load_dataset(", "normalize(", "encode_labels(", "build_model(", "compile_model(", "train(",
                "compute_metrics(", "load_saved_model(", "to_mnist(", "explain.feature_maps("):
        assert api in source


@pytest.mark.parametrize("lang", ["en", "pt"])
def test_stored_notebooks_are_built_from_the_source(lang):
    stored = nbformat.read(builder.NOTEBOOKS[lang], as_version=4)
    nbformat.validate(stored)
    assert builder.cell_sources(stored) == builder.cell_sources(builder.build(lang)), (
        "notebooks are out of date: run python notebooks/build_tutorials.py")


@pytest.mark.slow
def test_the_portuguese_notebook_runs_top_to_bottom_in_quick_mode(shared_data, isolated_env, monkeypatch):
    from test_messages import leftover_english

    monkeypatch.setenv("MNIST_CNN_DATA_DIR", str(shared_data))
    # A full local run (build_tutorials.py --execute) may have left notebooks/runs: only new entries count.
    beside_before = set((REPO / "notebooks").glob("runs/*"))
    nb = builder.execute(builder.build("pt"), quick=True)  # raises CellExecutionError on any error
    outputs = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
    from mnist_cnn.core.messages import text

    assert text("quick_mode", "pt-BR") in outputs and text("exit_code", "pt-BR", code=0) in outputs, outputs[-2000:]
    assert "I0000" not in outputs  # TensorFlow's start-up chatter is tidied away
    stored = nbformat.writes(nb)
    for folder in (REPO, shared_data, isolated_env, Path.home()):  # no folder of the machine that ran it
        assert str(folder) not in stored, folder
    displays = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "display_data"]
    assert displays and all("text/plain" not in o.data for o in displays if "image/png" in o.data)
    assert not re.search(r"<(IPython\.core\.display\.Image|Figure size)[^>]*>", stored)
    # No English label of the message table in what the Portuguese notebook prints.
    printed = "".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs
                      if o.get("name") == "stdout")
    assert leftover_english(printed) == set(), leftover_english(printed)
    explained = list((isolated_env / "runs").glob("*/my_digit-explained.png"))
    assert len(explained) == 1  # in the runs folder, not beside the notebook
    assert set((REPO / "notebooks").glob("runs/*")) == beside_before


def test_outputs_write_a_data_folder_reached_through_a_link_relative(tmp_path, monkeypatch):
    real = tmp_path / "real" / "data"
    (real / "fashion-mnist").mkdir(parents=True)
    link = tmp_path / "shared"
    link.symlink_to(tmp_path / "real")
    monkeypatch.setenv("MNIST_CNN_DATA_DIR", str(link / "data"))
    for printed in (f"de {link / 'data' / 'fashion-mnist'}", f"de {real / 'fashion-mnist'}"):
        tidied = builder._relative(printed)
        assert tidied == "de $MNIST_CNN_DATA_DIR/fashion-mnist", tidied
        assert str(tmp_path) not in tidied


def stored_outputs(lang: str) -> tuple[str, str]:
    """(stdout, stderr) text of every code cell's stored outputs."""
    nb = nbformat.read(builder.NOTEBOOKS[lang], as_version=4)
    streams = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "stream"]
    return ("".join(o.text for o in streams if o.name == "stdout"),
            "".join(o.text for o in streams if o.name == "stderr"))


@pytest.mark.parametrize("lang", ["en", "pt"])
def test_stored_outputs_state_todays_facts(lang):
    """What the stored notebooks print agrees with the package as it is: the registered models, every
    TrainConfig setting, the shipped Fashion-MNIST model's accuracy; and no warning is stored."""
    import dataclasses
    import json

    from mnist_cnn.inference.shipped import bundled_path
    from mnist_cnn.runs.config import TrainConfig
    from mnist_cnn.training.models import MODELS

    stdout, stderr = stored_outputs(lang)
    assert str(list(MODELS)) in stdout
    config_line = next(line for line in stdout.splitlines() if line.startswith("TrainConfig("))
    missing = [f.name for f in dataclasses.fields(TrainConfig) if f"{f.name}=" not in config_line]
    assert missing == []
    accuracy = json.loads((bundled_path("fashion-mnist").parent / "metrics.json").read_text())["test"]["accuracy"]
    assert f"(fashion-mnist): {accuracy:.2%}" in stdout
    assert not re.search(r"(?i)warning|0x[0-9a-f]{8,}", stdout + stderr), stderr[-1000:]


def test_the_stored_portuguese_notebook_prints_no_english():
    from test_messages import leftover_english

    stdout, _ = stored_outputs("pt")
    for english in ("full run", "quick mode", "range:", "sum of row", "(row, column)", "written to", "exit code"):
        assert english not in stdout, english
    assert leftover_english(stdout) == set()
