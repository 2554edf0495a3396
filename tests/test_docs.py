"""The documentation: the MkDocs site builds without a warning, the README stays a short front
page, and neither reads as a lab log (session numbers, issue names, machine nicknames)."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, load_benchmark_script

README_MAX_LINES = 200
PAGES = ["README.md"] + sorted(page.relative_to(REPO).as_posix() for page in (REPO / "docs").rglob("*.md"))
# Pages a user reads: the site's, the front page and the benchmarks' page (how to run them).
USER_PAGES = [*PAGES, "benchmarks/README.md"]

# Words of a work log, not of user documentation: where a figure depends on the machine, the
# pages name its CPU ("Intel Xeon with AMX", "AMD EPYC") instead.
LAB_LOG = [
    r"\bsessions?[ -]\d",  # "session 11", "since session 11", an anchor "...-session-11"
    r"\b(a|the|this|that|previous|later|earlier) session\b",
    r"\bquiet\b(?! log line)",  # "the quiet VM", "quiet, side by side"
    r"\bAMX VM\b",
    r"\b(the shared|the same|this project's) 2-core VM\b",
    r"\b(performance|accuracy|speed)[ -]issue",  # "the performance issue's goals", its anchor
    r"(?<![\w&])#\d\d",  # an issue number such as #12
    r"\bthe issue's\b",  # "the goal": goals are stated, not attributed to a tracker
    r"\bANCHORS\.md\b",  # a file outside the repository
]


def test_readme_is_a_short_front_page():
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines: move detail into docs/"


@pytest.mark.parametrize("page", USER_PAGES)
def test_no_lab_log_words(page):
    text = (REPO / page).read_text(encoding="utf-8")
    found = [(number, line) for number, line in enumerate(text.splitlines(), 1)
             if any(re.search(pattern, line, flags=re.IGNORECASE) for pattern in LAB_LOG)]
    assert found == []


def test_every_page_is_in_the_navigation():
    nav = (REPO / "mkdocs.yml").read_text(encoding="utf-8")
    missing = [page for page in PAGES if page != "README.md" and page.removeprefix("docs/") not in nav]
    assert missing == []


def test_mkdocs_builds_the_site_strictly(tmp_path):
    missing = [name for name in ("mkdocs", "material", "mkdocstrings_handlers.python")
               if importlib.util.find_spec(name.split(".")[0]) is None
               or (name.count(".") and importlib.util.find_spec(name) is None)]
    if missing:
        pytest.skip(f"the docs builder is not installed ({', '.join(missing)}): pip install -e '.[dev]'")
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file",
                           str(REPO / "mkdocs.yml"), "--site-dir", str(site)],
                          cwd=REPO, env=env, check=False, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "WARNING" not in done.stderr, done.stderr
    # The API reference was generated from the docstrings, not left as `:::` lines.
    reference = (site / "reference" / "inference" / "index.html").read_text(encoding="utf-8")
    assert 'id="mnist_cnn.inference.predict.Predictor"' in reference
    assert ":::" not in reference


def test_shipped_model_figures_in_the_docs_are_the_files_figures(monkeypatch):
    """README and docs quote the shipped models from metrics.json and the newest results for their digest
    (`tools/results_tables.py`); a figure changed by hand fails here."""
    tables = load_benchmark_script("results_tables", "tools")
    assert tables.differences() == []
    # `--check` is what CI runs: it says nothing and exits 0 while every block matches its files.
    assert tables.main(["--check"]) == 0
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    using = (REPO / "docs" / "using.md").read_text(encoding="utf-8")
    refused = re.search(r"\| Fashion-MNIST test images refused \| (\*\*[0-9.]+%\*\*) \|", using)
    assert "**99.72%**" in readme and refused  # the figures the mutations below change
    edited = {"README.md": readme.replace("**99.72%**", "**99.74%**")}
    assert tables.differences(edited) == ["README.md: block 'shipped-models' differs from the files it is made from"]
    edited = {"using.md": using.replace(refused.group(1), "**12.3%**")}
    assert tables.differences(edited) == [
        "docs/using.md: block 'shipped-mnist-measured' differs from the files it is made from"]
    assert using.count("| 99.53% (epoch 20) |") == 1
    edited = {"using.md": using.replace("| 99.53% (epoch 20) |", "| 99.63% (epoch 20) |")}
    assert tables.differences(edited) == ["docs/using.md: block 'shipped-table' differs from the files it is made from"]


def test_a_newer_trial_of_another_reader_is_not_quoted_as_the_shipped_models(monkeypatch, tmp_path):
    """A read_numbers result made with a reader that does not ship (a training trial) must not
    replace the shipped model's figures in the docs or its card, however new it is."""
    import json
    import shutil

    tables = load_benchmark_script("results_tables", "tools")
    ship = load_benchmark_script("ship_pretrained", "tools")
    results = REPO / "benchmarks" / "results"
    for path in [*results.glob("read-numbers-*.json"), *results.glob("refusal-*.json")]:
        shutil.copy(path, tmp_path)
    shipped_reader = tables.shipped_reader_sha256("mnist")
    digest = tables.shipped("mnist")["sha256"]
    _, quoted = tables.newest("read-numbers", digest, "separate", shipped_reader)
    trial = {**quoted, "reader": {"file": "trial/reader.keras", "sha256": "f" * 64}}
    trial["touching"] = {**quoted["touching"], "exact": 0.123}
    (tmp_path / "read-numbers-29991231T235959Z.json").write_text(json.dumps(trial))
    # Nor does a comparison of the shipped reader with a candidate (`read_numbers.py --against`).
    against = {**quoted, "against": {"file": "trial/reader.keras", "sha256": "f" * 64}}
    against["touching"] = {**quoted["touching"], "exact": 0.123}
    (tmp_path / "read-numbers-29991231T235958Z-against.json").write_text(json.dumps(against))
    before = tables.block_shipped_mnist_measured()
    monkeypatch.setattr(tables, "RESULTS", tmp_path)
    assert tables.block_shipped_mnist_measured() == before and "12.3%" not in before
    monkeypatch.setattr(ship, "REPO", tmp_path.parent)  # the card reads REPO/benchmarks/results
    (tmp_path.parent / "benchmarks").mkdir(exist_ok=True)
    (tmp_path.parent / "benchmarks" / "results").symlink_to(tmp_path)
    line = ship.numbers_read(digest, shipped_reader)
    assert line is not None and "12.3%" not in line and shipped_reader[:12] in line
    assert "12.3%" in ship.numbers_read(digest, None)  # what it quoted before: the newest of any reader


# One figure of each kind of source behind docs/results.md, as the generated blocks print it.
RESULTS_FIGURES = [
    ("compare-recipes", "| 62.4 s (1/1) |", "| 52.4 s (1/1) |"),  # compare-*.json
    ("compare-fast", "3.5 s (3.5-3.7; 5/5)", "3.6 s (3.5-3.7; 5/5)"),
    ("seeds-fast-batch-norm", "7.52-8.08 s", "7.52-7.98 s"),  # run folders under results/training/
    ("seeds-digits", "averages 99.723%", "averages 99.733%"),
    ("seeds-clothes", "| 94.61% ± 0.06 (94.56, 94.59, 94.67) |", "| 94.71% ± 0.06 (94.56, 94.59, 94.67) |"),
    ("test-time-augmentation", "| 95.04% |", "| 95.14% |"),  # tta-*.json
    ("training-speed", "| 2.60 |", "| 2.70 |"),  # precision-speed-*.txt
    ("whole-command", "| 89.2 s |", "| 79.2 s |"),  # whole-command-*.json
]


@pytest.mark.parametrize(("block", "figure", "edited"), RESULTS_FIGURES, ids=[b for b, _, _ in RESULTS_FIGURES])
def test_results_page_figures_are_the_result_files_figures(block, figure, edited):
    """Every table on docs/results.md is generated from the result files it names; a figure changed
    by hand is reported by `results_tables.py --check`, which names the block."""
    tables = load_benchmark_script("results_tables", "tools")
    text = (REPO / "docs" / "results.md").read_text(encoding="utf-8")
    start, end = text.index(f"<!-- generated: {block} -->"), text.index(f"<!-- end: {block} -->")
    assert text[start:end].count(figure) == 1, f"{figure!r} is no longer in block {block!r}: update this test"
    changed = text[:start] + text[start:end].replace(figure, edited) + text[end:]
    assert tables.differences({"results.md": changed}) == [
        f"docs/results.md: block {block!r} differs from the files it is made from"]


# The generated blocks on the other pages: (page, block, a figure it prints, the same figure edited).
PAGE_FIGURES = [
    ("serving.md", "serving-throughput", "| auto | 3 | 1 | 1,070 | 0.39 | 7 | 12 | 0 | 5 |",
     "| auto | 3 | 1 | 1,070 | 0.40 | 7 | 12 | 0 | 5 |"),  # ab-*.json: the shipped mnist as int8, 3 workers
    ("export.md", "export-parity", "| 5.4e-07 |", "| 1.4e-07 |"),  # export-*.json
    ("tuning.md", "tuned-fast", "1.20x longer", "1.10x longer"),  # fast-hand-vs-tuned-*.md
]


@pytest.mark.parametrize(("page", "block", "figure", "edited"), PAGE_FIGURES, ids=[b for _, b, _, _ in PAGE_FIGURES])
def test_generated_figures_on_other_pages_are_the_result_files_figures(page, block, figure, edited):
    """Serving, export and tuning figures are generated from their result files; one edited by hand fails."""
    tables = load_benchmark_script("results_tables", "tools")
    text = (REPO / "docs" / page).read_text(encoding="utf-8")
    assert text.count(figure) == 1, f"{figure!r} is no longer in docs/{page}: update this test"
    assert tables.differences({page: text.replace(figure, edited)}) == [
        f"docs/{page}: block {block!r} differs from the files it is made from"]


def test_check_names_the_block_that_drifted(monkeypatch, capsys):
    tables = load_benchmark_script("results_tables", "tools")
    path = REPO / "docs" / "results.md"
    text = path.read_text(encoding="utf-8").replace("| 95.04% |", "| 95.14% |")
    real_read_text = type(path).read_text
    monkeypatch.setattr(type(path), "read_text",
                        lambda self, *a, **k: text if self == path else real_read_text(self, *a, **k))
    assert tables.main(["--check"]) == 1
    assert "block 'test-time-augmentation' differs" in capsys.readouterr().err


def test_a_time_is_quoted_per_machine_newest_first():
    """Each kind of machine keeps its newest figure: an Intel run does not hide the AMD one."""
    tables = load_benchmark_script("results_tables", "tools")
    amd = {"cpu": "AMD EPYC", "cpu_features": ["avx2"]}
    intel = {"cpu": "Intel(R) Xeon(R) Processor (AMX)", "cpu_features": ["avx2", "amx_tile"]}
    found = [(Path("c.json"), {"environment": intel}), (Path("b.json"), {"environment": amd}),
             (Path("a.json"), {"environment": amd})]
    assert [path.name for path, _ in tables.per_machine(found)] == ["c.json", "b.json"]
    assert tables.per_machine([]) == []


def test_a_serving_setting_run_in_several_cycles_is_one_row_of_medians():
    tables = load_benchmark_script("benchmark_tables", "tools")

    def row(workers: int, batch: int | None, ratio: float, rps: float) -> dict:
        found = {"model": "mnist", "runtime": "auto", "workers": workers, "ratio": ratio, "predict_rps": rps,
                 "predict_p50_ms": 7, "predict_p99_ms": 12, "failed": 0, "rounds": {"predict": [{}, {}, {}]}}
        return found if batch is None else {**found, "batch": batch}

    record = {"rows": [row(3, 1, 0.35, 1000), row(3, 4, 0.40, 1100), row(3, 1, 0.37, 1020), row(3, 4, 0.44, 1200),
                       row(3, 1, 0.36, 1010)], "environment": {}}
    cells = tables.serving_rows(Path("ab-x.json"), record)
    assert [c[2:8] for c in cells] == [["3", "1", "1,010", "0.36 (0.35-0.37)", "7", "12"],
                                       ["3", "4", "1,150", "0.42 (0.40-0.44)", "7", "12"]]
    assert [c[9] for c in cells] == ["9", "6"]  # every cycle's rounds
    older = tables.serving_rows(Path("ab-y.json"), {"rows": [row(2, None, 0.3, 900)], "environment": {}})
    assert older[0][3] == "1" and older[0][5] == "0.30"  # no batch recorded: one request at a time
