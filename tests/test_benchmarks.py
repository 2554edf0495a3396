"""The side-by-side benchmark's quick mode runs end to end (its numbers are not asserted)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, load_benchmark_script

pytestmark = pytest.mark.slow
COMPARE = Path(__file__).resolve().parents[1] / "benchmarks" / "compare.py"


def test_quick_compare_writes_json_markdown_and_plot(shared_data, tmp_path):
    pytest.importorskip("torch", reason="PyTorch is not installed: the benchmark's PyTorch contender needs "
                                        "the bench extra (make install-bench, or pip install -e '.[bench]')")
    # Every contender is a child process that imports TensorFlow and trains: the smoke test runs
    # the two published baselines and our cheapest recipe, one child each, in two parts. The
    # other recipes take the same code path with other settings (their settings: test_recipes;
    # bfloat16, fused batch norm and augmentation in training: test_train).
    done = subprocess.run([sys.executable, str(COMPARE), "--quick", "--data-dir", str(shared_data),
                           "--out", str(tmp_path), "--contenders", "fast", "pytorch-example"],
                          check=False, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    (result,) = tmp_path.glob("compare-*-quick.json")
    report = json.loads(result.read_text())
    assert [row["contender"] for row in report["summary"]] == ["pytorch-example", "fast"]  # not the flag's order
    assert result.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"
    assert "| fast |" in result.with_suffix(".md").read_text()
    assert not list(tmp_path.glob("*.partial.json"))  # the runs-so-far file goes once the results are written

    # A run in parts: the second part measures keras-example and joins the first part's runs,
    # replacing any earlier run of its own contender (a stale one is planted); --keep-runs
    # keeps its run folder.
    stale = {**report["runs"][0], "contender": "keras-example", "seed": 99}
    first_part = tmp_path / "first-part.json"
    first_part.write_text(json.dumps({**report, "runs": [*report["runs"], stale]}))
    done = subprocess.run([sys.executable, str(COMPARE), "--quick", "--data-dir", str(shared_data),
                           "--out", str(tmp_path / "part2"), "--contenders", "keras-example", "--first-seed", "7",
                           "--include", str(first_part), "--keep-runs", str(tmp_path / "runs")],
                          check=False, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    (kept,) = (tmp_path / "runs").iterdir()
    assert kept.name.endswith("-mnist-keras-example")
    assert json.loads((kept / "config.json").read_text())["config"]["seed"] == 7
    assert (kept / "model.keras").stat().st_size > 0 and (kept / "history.csv").read_text().count("\n") == 2
    (joined,) = (tmp_path / "part2").glob("compare-*-quick.json")
    joined = json.loads(joined.read_text())
    assert [(r["contender"], r["seed"]) for r in joined["runs"]] == [("keras-example", 7), ("pytorch-example", 0),
                                                                     ("fast", 0)]  # the benchmark's order
    assert [row["contender"] for row in joined["summary"]] == ["keras-example", "pytorch-example", "fast"]
    for row in joined["runs"]:
        assert len(row["curve"]) == 1 and row["epochs"] == 1
        assert row["train_images_per_s"] > 0 and row["inference_images_per_s"] > 0 and row["peak_rss_mb"] > 0
    # The two published baselines learn something in one epoch on 4.5k images.
    assert all(row["final_accuracy"] > 0.5 for row in joined["runs"] if row["contender"] != "fast")


def test_the_benchmark_runs_every_contender_unless_told_otherwise():
    module = load_benchmark_script("compare")
    assert list(module.CONTENDERS) == ["keras-example", "pytorch-example", "fast", "default", "strong", "wide"]
    recipes = {spec for kind, spec, _ in module.CONTENDERS.values() if kind == "keras" and isinstance(spec, str)}
    assert recipes == {"fast", "default", "strong", "wide"}  # each a recipe that exists
    from mnist_cnn.training.recipes import RECIPES

    assert recipes <= set(RECIPES)


def test_including_a_missing_or_foreign_file_fails_before_training(tmp_path):
    missing = subprocess.run([sys.executable, str(COMPARE), "--include", str(tmp_path / "nope.json")],
                             check=False, capture_output=True, text=True, timeout=120)
    assert missing.returncode != 0 and "cannot include" in missing.stderr and "nope.json" in missing.stderr
    quick = tmp_path / "quick.json"
    quick.write_text(json.dumps({"quick": True, "runs": []}))
    mixed = subprocess.run([sys.executable, str(COMPARE), "--include", str(quick)],
                           check=False, capture_output=True, text=True, timeout=120)
    assert mixed.returncode != 0 and "is a quick run and this one is full" in mixed.stderr


def test_a_pytorch_contender_without_torch_stops_before_training_with_the_fix(tmp_path):
    # Hide torch whether or not it is installed: a module of that name that fails to import.
    (tmp_path / "torch.py").write_text("raise ImportError(\"No module named 'torch'\")\n")
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    done = subprocess.run([sys.executable, str(COMPARE), "--contenders", "fast", "pytorch-example",
                           "--out", str(tmp_path / "out")], check=False, capture_output=True, text=True, timeout=120, env=env)
    message = done.stderr.strip()
    assert done.returncode != 0 and "\n" not in message and "Traceback" not in message
    assert "pytorch-example needs PyTorch" in message and "pip install -e '.[bench]'" in message
    assert "--contenders fast" in message  # how to run without it
    assert not (tmp_path / "out").exists()  # nothing trained, nothing written


def test_tta_shift_moves_pixels_and_fills_the_border_black():
    import numpy as np

    module = load_benchmark_script("ensemble_tta")
    images = np.zeros((1, 28, 28, 1), dtype=np.float32)
    images[0, 0, 5] = images[0, 27, 27] = 1.0
    down_left = module.shifted(images, 1, -1)
    assert down_left[0, 1, 4] == 1.0 and down_left.sum() == 1.0  # one pixel moved, one pushed off the edge
    np.testing.assert_array_equal(module.shifted(images, 0, 0), images)


def test_tta_views_start_with_the_image_and_mirror_only_when_asked():
    import numpy as np

    module = load_benchmark_script("ensemble_tta")
    images = np.zeros((2, 28, 28, 1), dtype=np.float32)
    images[:, 3, 0] = 1.0  # a pixel at the left edge
    plain = module.views(images)
    assert len(plain) == 5 and all(v[:, :, 27].sum() == 0 for v in plain)  # never mirrored
    np.testing.assert_array_equal(plain[0], images)
    mirrored = module.views(images, flip=True)
    assert len(mirrored) == 10
    np.testing.assert_array_equal(mirrored[:5], plain)
    assert mirrored[5][0, 3, 27, 0] == 1.0 and mirrored[5].sum() == 2.0  # the pixel moved to the right edge


def test_seed_table_groups_seeds_and_reports_mean_and_spread(tmp_path, monkeypatch):
    seed_table = load_benchmark_script("seed_table", "tools")
    for seed, accuracy in [(0, 0.95), (1, 0.94), (2, 0.96)]:
        folder = tmp_path / f"wide-fashion-mnist-seed{seed}"
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps({"config": {"seed": seed}, "environment": {"cpu": "X"}}))
        (folder / "metrics.json").write_text(json.dumps({"test": {"accuracy": accuracy}, "training": {
            "best_val_accuracy": 0.9, "best_epoch": 20, "epochs_run": 20, "train_seconds_total": 1000.0 + seed}}))
    (tmp_path / "half-finished-seed0").mkdir()  # no metrics.json: not counted
    monkeypatch.setattr(seed_table, "TRAINING", tmp_path)
    text = seed_table.table(seed_table.rows("wide"))
    assert "| `wide-fashion-mnist` | 3 | 95.00% ± 1.00 | 94.00% | 96.00% | 1,001 s |" in text
    assert text.count("| `wide-fashion-mnist-seed") == 3 and "half-finished" not in text


def test_precision_speed_times_both_precisions_and_batch_norms_and_leaves_the_policy_as_found():
    import keras

    precision_speed = load_benchmark_script("precision_speed")
    for precision, norm in (("float32", "keras"), ("bfloat16", "fused")):  # each precision, each batch norm
        assert precision_speed.seconds_per_epoch("cnn", precision, norm, batch_size=16, steps=3) > 0
    assert keras.mixed_precision.global_policy().name == "float32"


def test_profile_step_sums_a_trace_by_op_type(shared_data, tmp_path):
    """A real trace of two `fit` steps of `fast`: convolutions and their gradients show up by type."""
    done = subprocess.run([sys.executable, str(COMPARE.with_name("profile_step.py")), "--recipe", "fast",
                           "--dataset", "mnist", "--steps", "2", "--data-dir", str(shared_data),
                           "--logdir", str(tmp_path)], check=False, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = {line.split(" | ")[0].strip("| "): line for line in done.stdout.splitlines() if line.startswith("| ")}
    assert any("Conv2DBackpropFilter" in name for name in rows) and any(name.endswith("Conv2D") for name in rows)
    assert "EagerLocalExecute" not in done.stdout  # whole-function wrappers are not ops
    assert list(tmp_path.rglob("*.xplane.pb"))


def test_results_name_a_model_by_its_digest_and_a_path_that_means_something_elsewhere(tmp_path, monkeypatch):
    """A result file names the model it measured by SHA-256, by a path relative to the repository
    (outside it: the run folder and file name) and by the settings of its run; never by an absolute
    path such as the temporary folder it sat in. The command is recorded the same way."""
    common = load_benchmark_script("common")
    run = tmp_path / "20261127T190744Z-mnist-cnn"
    run.mkdir()
    (run / "model.keras").write_bytes(b"a model file")
    (run / "config.json").write_text(json.dumps({"config": {"recipe": "default", "seed": 0}}))
    record = common.model_record(run / "model.keras")
    assert record == {"model": "20261127T190744Z-mnist-cnn/model.keras",
                      "model_sha256": hashlib.sha256(b"a model file").hexdigest(),
                      "model_settings": {"recipe": "default", "seed": 0}}
    shipped = common.model_record("mnist")  # a shipped model by its name, with the digest it ships with
    digest = (REPO / "src" / "mnist_cnn" / "pretrained" / "mnist" / "model.keras.sha256").read_text().split()[0]
    assert shipped["model"] == "mnist" and shipped["model_sha256"] == digest
    inside = common.model_record(REPO / "src" / "mnist_cnn" / "pretrained" / "mnist" / "model.keras")
    assert inside["model"] == "src/mnist_cnn/pretrained/mnist/model.keras"  # in the repository: relative to it

    monkeypatch.setattr(common, "environment", lambda: {"cpu": "a test CPU"})  # no Keras import for this
    monkeypatch.setattr(sys, "argv", [str(REPO / "benchmarks" / "refusal.py"), str(run / "model.keras"),
                                      "--data-dir", str(REPO / "data"), f"--out={tmp_path / 'results'}"])
    written = common.write_result("refusal", record, folder=tmp_path / "results")
    text = written.read_text()
    assert str(tmp_path) not in text and not any(f'"/{top}/' in text or f" /{top}/" in text
                                                  for top in ("tmp", "work", "home", "root", "Users"))
    saved = json.loads(text)
    assert saved["command"] == (f"refusal.py 20261127T190744Z-mnist-cnn/model.keras --data-dir data "
                                f"--out={tmp_path.name}/results")
    assert saved["model_sha256"] == record["model_sha256"] and saved["environment"] == {"cpu": "a test CPU"}


def test_mcnemar_counts_only_the_numbers_one_reader_reads_and_the_other_does_not():
    read_numbers = load_benchmark_script("read_numbers")
    both_right, neither = [True] * 50, [False] * 50
    even = read_numbers.mcnemar(both_right + neither + [True, False], both_right + neither + [False, True])
    assert even == {"only_first_right": 1, "only_second_right": 1, "p_value": 1.0}
    lopsided = read_numbers.mcnemar([False] * 10 + both_right, [True] * 10 + both_right)
    assert lopsided["only_first_right"] == 0 and lopsided["only_second_right"] == 10
    assert lopsided["p_value"] == pytest.approx(2 * 0.5 ** 10)  # two-sided exact binomial
    assert read_numbers.mcnemar(both_right, both_right)["p_value"] == 1.0  # no discordant pair: no evidence


@pytest.mark.parametrize("flags, message", [
    (["--against", "missing/reader.keras"], "no such file"),
    (["--against", "src/mnist_cnn/pretrained/mnist/reader.keras", "--tune"], "leave out --tune"),
    (["--against", "src/mnist_cnn/pretrained/mnist/model.keras"], "model.keras"),  # a classifier, not a reader
])
def test_read_numbers_against_refuses_what_it_cannot_compare(flags, message):
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "read_numbers.py"), "mnist", *flags],
                          check=False, capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 2 and message in done.stderr


@pytest.mark.parametrize("content", [b"", b"not a zip at all", b"PK\x03\x04" + b"\0" * 20])  # empty, junk, truncated
def test_read_numbers_against_a_broken_reader_file_is_one_line(tmp_path, content):
    broken = tmp_path / "reader.keras"
    broken.write_bytes(content)
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "read_numbers.py"), "mnist",
                           "--against", str(broken)], check=False, capture_output=True, text=True, timeout=120, cwd=REPO)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("read_numbers.py: error: --against") and "cannot load" in done.stderr


def test_whole_command_refuses_a_baseline_that_is_no_checkout_before_running_anything(tmp_path):
    baseline, out = tmp_path / "not-a-checkout", tmp_path / "results"
    baseline.mkdir()
    done = subprocess.run([sys.executable, str(COMPARE.with_name("whole_command.py")), "--contenders", "fast",
                           "--baseline", str(baseline), "--rounds", "1", "--out", str(out)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 2
    assert f"--baseline {baseline}: no src/mnist_cnn in it" in done.stderr
    assert not out.exists()  # no results file, no run


def test_whole_command_names_a_baseline_row_by_its_commit_and_the_docs_say_whose_code_it_ran(monkeypatch):
    whole = load_benchmark_script("whole_command")
    tables = load_benchmark_script("benchmark_tables", folder="tools")
    assert whole.label("fast", None) == "fast"
    if (REPO / ".git").exists():  # a checkout: its rows carry its short commit
        commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()
        assert whole.label("fast", REPO / "src") == f"fast@{commit}"
    rows = [{"contender": name, "onednn": "1", "wall_s": wall, "train_s": 10.0, "outside_training_s": wall - 10,
             "peak_rss_mb": 900.0, "test_accuracy": 0.99}
            for name, wall in (("fast", 20.0), ("fast@abc1234", 25.0), ("fast", 22.0), ("fast@abc1234", 24.0))]
    table = whole.summarise(rows, ["fast", "fast@abc1234"], ["1"])
    assert [(r["contender"], r["wall_s_median"], r["wall_ratio_to_first"]) for r in table] == [
        ("fast", 21.0, 1.0), ("fast@abc1234", 24.5, 1.17)]
    assert tables.contender_name("fast@abc1234") == "`mnist-cnn train --recipe fast`, the code of `abc1234`"
    assert tables.contender_name("keras-io-9") == "keras-io convnet, 9 epochs, as its own script"


@pytest.mark.parametrize("environment, shown", [
    ({"cpu": "AMD EPYC", "cpu_features": ["avx2", "fma"]}, "AMD EPYC, AVX2, no AVX-512"),
    ({"cpu": "Intel(R) Xeon(R) Processor (AMX)", "cpu_features": ["avx2", "avx512f", "amx_tile"]}, "Intel Xeon with AMX"),
    ({"cpu": "Intel(R) Xeon(R) Platinum", "cpu_features": ["avx2", "avx512f", "avx512_vnni"]},
     "Intel Xeon, AVX-512 VNNI"),
    ({"cpu": "AMD EPYC"}, "AMD EPYC"),  # files older than the features field
    ({}, "unknown CPU"),
])
def test_timing_tables_name_the_cpu_family_beside_its_vector_units(environment, shown):
    tables = load_benchmark_script("benchmark_tables", folder="tools")
    assert tables.where_ran(environment) == shown


def test_backend_speed_skips_a_backend_it_cannot_import_and_records_why(tmp_path, monkeypatch, capsys):
    backend_speed = load_benchmark_script("backend_speed")
    ran: list[str] = []

    def fake_run(command: list[str], **kwargs: object) -> subprocess.CompletedProcess:
        backend = command[command.index("--child") + 1]
        ran.append(backend)
        if backend == "torch":  # not installed: the child dies importing it
            return subprocess.CompletedProcess(command, 1, "", "Traceback ...\nModuleNotFoundError: No module named 'torch'\n")
        line = {"backend": backend, "import_s": 3.0, "first_step_s": 1.5, "other_steps_s": 7.0,
                "after_steps_s": 0.1, "epoch_s": 8.6, "test_accuracy": 0.99}
        return subprocess.CompletedProcess(command, 0, "a log line\n" + json.dumps(line) + "\n", "")

    monkeypatch.setattr(backend_speed.subprocess, "run", fake_run)
    def write_result(stem: str, payload: dict, folder: Path) -> Path:  # no machine record: no Keras import
        (folder / "r.json").write_text(json.dumps(payload))
        return folder / "r.json"

    monkeypatch.setattr(backend_speed, "write_result", write_result)
    assert backend_speed.main(["--backends", "tensorflow", "torch", "--rounds", "2", "--out", str(tmp_path)]) == 0
    assert ran == ["tensorflow", "torch", "tensorflow"]  # turns reversed in round 2; a skipped one is not retried
    result = json.loads((tmp_path / "r.json").read_text())
    assert [r["backend"] for r in result["runs"]] == ["tensorflow", "tensorflow"]
    assert result["skipped"] == {"torch": "ModuleNotFoundError: No module named 'torch'"}
    assert result["medians"]["tensorflow"]["epoch_s"] == 8.6 and "torch" not in result["medians"]
    assert "torch: skipped (ModuleNotFoundError" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        backend_speed.main(["--rounds", "0"])
