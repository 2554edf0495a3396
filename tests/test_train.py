"""End to end: the real CLI on real MNIST subsets, evaluation of the saved model, and resume.

These take tens of seconds each; they are the proof that every artifact is produced.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, make_tiny_arrays, write_idx_folder

from mnist_cnn.cli.main import main
from mnist_cnn.runs.run import Run

pytestmark = pytest.mark.slow

METRIC_KEYS = {"num_images", "accuracy", "loss", "errors", "macro", "weighted", "per_class", "confusion_matrix"}


def only_run(runs_dir: Path) -> Path:
    (run_dir,) = list(runs_dir.iterdir())
    return run_dir


def test_train_writes_every_artifact_and_learns(shared_data, isolated_env, capsys):
    code = main(["train", "--data-dir", str(shared_data), "--train-limit", "5000", "--epochs", "2",
                 "--runs-dir", str(isolated_env / "runs"), "--seed", "3"])
    assert code == 0
    run_dir = only_run(isolated_env / "runs")
    assert run_dir.name.endswith("-mnist-compact")  # dataset and the default model
    for name in Run.ARTIFACTS:
        assert (run_dir / name).stat().st_size > 0, name
    assert not list(run_dir.glob(".tmp-*"))  # no half-written leftovers

    metrics = json.loads((run_dir / "metrics.json").read_text())
    test = metrics["test"]
    assert METRIC_KEYS <= set(test)
    assert test["num_images"] == 10_000 and len(test["per_class"]) == 10
    assert test["accuracy"] > 0.8, test["accuracy"]  # chance is 0.1
    assert sum(map(sum, test["confusion_matrix"])) == 10_000
    assert metrics["training"]["reload_max_abs_diff"] <= 1e-5

    config = json.loads((run_dir / "config.json").read_text())
    assert config["config"]["train_limit"] == 5000 and config["config"]["seed"] == 3
    assert config["data"]["num_train"] + config["data"]["num_val"] == 5000
    assert len(config["data"]["sha256"]) == 4 and config["environment"]["keras"]
    if Path("/proc/cpuinfo").exists():  # which processor: bfloat16 speeds differ by the chip's matrix units
        assert config["environment"]["cpu"] and isinstance(config["environment"]["cpu_features"], list)
    report = (run_dir / "report.md").read_text()
    for picture in ("curves.png", "confusion_matrix.png", "misclassified.png"):
        assert f"]({picture})" in report
    summary = (run_dir / "summary.txt").read_text()
    assert "Model before training" in summary and "test accuracy" in summary
    assert (run_dir / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    out = capsys.readouterr().out
    assert "test accuracy" in out and str(run_dir) in out

    # evaluate recomputes the same accuracy from model.keras alone, into its own folder.
    assert main(["evaluate", str(run_dir / "model.keras"), "--data-dir", str(shared_data),
                 "--out", str(isolated_env / "eval")]) == 0
    again = json.loads((isolated_env / "eval" / "metrics.json").read_text())["test"]
    assert again["accuracy"] == test["accuracy"]
    assert again["confusion_matrix"] == test["confusion_matrix"]
    assert (isolated_env / "eval" / "report.md").exists()


def test_sparse_labels_and_keras_example(shared_data, isolated_env):
    assert main(["train", "--data-dir", str(shared_data), "--train-limit", "6000", "--epochs", "2",
                 "--model", "keras-example", "--labels", "sparse"]) == 0
    metrics = json.loads((only_run(isolated_env / "runs") / "metrics.json").read_text())
    # Two epochs of 43 steps (~0.9 here); 900 images for one epoch gave only ~0.48.
    assert metrics["test"]["accuracy"] > 0.8, metrics["test"]["accuracy"]


def start_training(argv: list[str], runs_dir: Path) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "mnist_cnn", "train", *argv, "--runs-dir", str(runs_dir)]
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ.copy())


def kill_when(proc: subprocess.Popen, runs_dir: Path, pattern: str, timeout_s: float = 240) -> None:
    """SIGKILL `proc` as soon as a file matching `pattern` appears under `runs_dir`."""
    try:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not list(runs_dir.glob(pattern)):
            assert proc.poll() is None, "training ended before it could be interrupted"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()


def assert_complete(run_dir: Path) -> dict:
    """Every artifact present and valid; returns metrics.json."""
    for name in Run.ARTIFACTS:
        assert (run_dir / name).stat().st_size > 0, name
    assert not list(run_dir.rglob(".tmp-*"))
    for picture in ("curves.png", "confusion_matrix.png", "misclassified.png"):
        assert (run_dir / picture).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "test accuracy" in (run_dir / "summary.txt").read_text()
    assert "## Per class" in (run_dir / "report.md").read_text()
    return json.loads((run_dir / "metrics.json").read_text())


def test_resume_after_sigkill(shared_data, isolated_env):
    """Kill a 3-epoch run with SIGKILL after its first epoch, then finish it with --resume."""
    runs_dir = isolated_env / "runs"
    proc = start_training(["--data-dir", str(shared_data), "--train-limit", "2000", "--epochs", "3",
                           "--patience", "5"], runs_dir)
    kill_when(proc, runs_dir, "*/state.json")
    run_dir = only_run(runs_dir)
    assert not (run_dir / "metrics.json").exists()
    seconds_before = {r["epoch"]: r["epoch_time_s"] for r in Run(run_dir).read_history()}

    assert main(["train", "--resume", str(run_dir), "--data-dir", str(shared_data)]) == 0
    rows = Run(run_dir).read_history()
    assert [r["epoch"] for r in rows] == [1, 2, 3]  # continued, no epoch lost or repeated
    for epoch, seconds in seconds_before.items():  # carried-over rows keep their own timings
        if epoch <= 1:
            assert rows[epoch - 1]["epoch_time_s"] == seconds
    metrics = assert_complete(run_dir)
    assert metrics["training"]["epochs_run"] == 3 and metrics["training"]["resumed"] is True
    assert {p.name for p in (run_dir / "checkpoints").iterdir()} <= {"epoch-0001.keras", "epoch-0002.keras", "epoch-0003.keras"}
    # A finished run cannot be resumed again, unless it is asked to train longer.
    assert main(["train", "--resume", str(run_dir), "--data-dir", str(shared_data)]) == 2


@pytest.fixture
def tiny_idx_folder(isolated_env) -> Path:
    """A custom IDX dataset folder a subprocess can train on in seconds."""
    folder = isolated_env / "tiny-idx"
    write_idx_folder(folder, make_tiny_arrays(n_train=200, n_test=40))
    return folder


@pytest.mark.parametrize("kill_at", ["config.json", "history.csv", "state.json", "model.keras", "metrics.json"])
def test_kill_at_each_step_then_resume_writes_every_artifact(tiny_idx_folder, isolated_env, kill_at):
    """SIGKILL as soon as `kill_at` appears; `--resume` then completes the run, whatever was missing."""
    runs_dir = isolated_env / "runs"
    proc = start_training(["--dataset", str(tiny_idx_folder), "--epochs", "2", "--model", "fast"], runs_dir)
    kill_when(proc, runs_dir, f"*/{kill_at}")
    run_dir = only_run(runs_dir)
    (run_dir / ".tmp-report-left-by-kill.md").write_text("half")  # as a kill mid-write leaves
    assert main(["train", "--resume", str(run_dir)]) == 0
    metrics = assert_complete(run_dir)
    assert metrics["training"]["epochs_run"] == 2
    assert [r["epoch"] for r in Run(run_dir).read_history()] == [1, 2]


def limit_file_size(max_bytes: int):
    """For subprocess preexec_fn: writes past `max_bytes` fail with EFBIG, as on a full disk."""
    import resource

    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # an error from write(), not a killed process
        resource.setrlimit(resource.RLIMIT_FSIZE, (max_bytes, max_bytes))
    return apply


def cli_with_limit(argv: list[str], max_bytes: int) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mnist_cnn", *argv], preexec_fn=limit_file_size(max_bytes),
                          capture_output=True, text=True, env=os.environ.copy(), timeout=300)


def test_full_disk_is_one_line_and_leaves_no_half_file(tiny_idx_folder, isolated_env, trained_model, shared_data):
    cases = [
        (["train", "--dataset", str(tiny_idx_folder), "--epochs", "1", "--model", "fast",
          "--runs-dir", str(isolated_env / "runs")], 200_000, isolated_env / "runs"),
        (["evaluate", str(trained_model), "--data-dir", str(shared_data), "--out", str(isolated_env / "eval")],
         20_000, isolated_env / "eval"),
        (["predict", str(trained_model), str(REPO / "notebooks" / "my_digit.png"),
          "--save-preprocessed", str(isolated_env / "seen")], 100, isolated_env / "seen"),
    ]
    for argv, max_bytes, out in cases:
        done = cli_with_limit(argv, max_bytes)
        err = done.stderr.strip().splitlines()
        assert done.returncode == 2, done.stderr[-2000:]
        assert "cannot write" in err[-1] and "Traceback" not in done.stderr, err[-1]
        assert not list(out.rglob(".tmp-*"))  # no half-written file, under any name


def test_resume_after_training_finished_but_nothing_else(tiny_dataset, isolated_env, capsys):
    """The state a kill between the last epoch and model.keras leaves: only training files."""
    runs_dir = isolated_env / "runs"
    assert main(["train", "--dataset", "tiny", "--data-dir", str(tiny_dataset), "--epochs", "2"]) == 0
    run_dir = only_run(runs_dir)
    first = json.loads((run_dir / "metrics.json").read_text())
    for name in Run.ARTIFACTS:
        if name not in ("config.json", "history.csv"):
            (run_dir / name).unlink()
    assert main(["train", "--resume", str(run_dir), "--data-dir", str(tiny_dataset)]) == 0
    again = assert_complete(run_dir)
    assert again["test"]["confusion_matrix"] == first["test"]["confusion_matrix"]  # the same best weights


def test_resume_trains_longer_and_refuses_other_settings(tiny_dataset, isolated_env, capsys):
    assert main(["train", "--dataset", "tiny", "--data-dir", str(tiny_dataset), "--epochs", "2",
                 "--patience", "9"]) == 0
    run_dir = only_run(isolated_env / "runs")
    capsys.readouterr()
    assert main(["train", "--resume", str(run_dir), "--model", "fast"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "--model cannot change when resuming" in err
    assert main(["train", "--resume", str(run_dir), "--runs-dir", "elsewhere"]) == 2
    assert "cannot be used with --resume" in capsys.readouterr().err
    assert main(["train", "--resume", str(run_dir), "--data-dir", str(tiny_dataset), "--epochs", "4"]) == 0
    assert "epochs: 2 -> 4" in capsys.readouterr().out
    assert [r["epoch"] for r in Run(run_dir).read_history()] == [1, 2, 3, 4]
    record = json.loads((run_dir / "config.json").read_text())
    assert record["config"]["epochs"] == 4 and record["resumed"][0]["changed"]["epochs"] == {"from": 2, "to": 4}
    assert json.loads((run_dir / "metrics.json").read_text())["training"]["epochs_run"] == 4


def test_resumed_batches_are_the_uninterrupted_ones():
    """Epoch e's order depends on (seed, e) alone, so a resumed run sees the same batches."""
    import numpy as np

    from mnist_cnn.training.train import make_batches

    x = np.arange(100, dtype=np.float32).reshape(100, 1, 1, 1)

    def orders(first_epoch: int) -> list[list[int]]:
        labels = [np.asarray(y).tolist() for _, y in make_batches(x, np.arange(100), 32, shuffle_seed=4,
                                                                  epochs=3, first_epoch=first_epoch)]
        flat = [i for batch in labels for i in batch]
        return [flat[i: i + 100] for i in range(0, len(flat), 100)]

    whole, resumed = orders(0), orders(1)
    assert len(whole) == 3 and resumed == whole[1:]
    assert all(sorted(epoch) == list(range(100)) for epoch in whole)
    assert whole[0] != whole[1]


@pytest.mark.parametrize("flags", [["--no-fused-batch-norm"], []])
def test_deterministic_runs_repeat_exactly(tiny_dataset, isolated_env, flags):
    histories = []
    for runs in ("a", "b"):
        assert main(["train", "--dataset", "tiny", "--data-dir", str(tiny_dataset), "--epochs", "2",
                     "--deterministic", "--seed", "7", "--runs-dir", str(isolated_env / runs), *flags]) == 0
        run_dir = only_run(isolated_env / runs)
        rows = (run_dir / "history.csv").read_text().splitlines()
        histories.append([line.rsplit(",", 1)[0] for line in rows])  # drop the wall-time column
    assert histories[0] == histories[1]
    assert len(histories[0]) == 3  # header + 2 epochs


@pytest.mark.parametrize("mode", [{"shuffle_seed": 3, "epochs": 2}, {"shuffle_seed": 3}, {}])
def test_uint8_images_are_scaled_per_batch_to_exactly_the_normalised_floats(mode):
    """Training keeps pixels uint8 (a quarter of the memory) and scales each batch: the model must
    see the very float32 values `normalize` gives, in every kind of pipeline."""
    import numpy as np

    from mnist_cnn.data.prepare import normalize
    from mnist_cnn.training.train import make_batches

    pixels = np.random.default_rng(0).integers(0, 256, (50, 28, 28), dtype=np.uint8)
    labels = np.arange(50)
    for images, rows in make_batches(pixels[..., np.newaxis], labels, 16, **mode):
        assert images.dtype.name == "float32"
        np.testing.assert_array_equal(np.asarray(images), normalize(pixels[np.asarray(rows)]))


def test_batches_cover_the_data_each_epoch_without_autotuning():
    """Every image once per epoch, in a new order; autotuning off (its thread stalled each epoch start)."""
    import numpy as np

    from mnist_cnn.training.train import make_batches

    x = np.arange(100, dtype=np.float32).reshape(100, 1, 1, 1)
    batches = make_batches(x, np.arange(100), 32, shuffle_seed=0)
    assert batches.options().autotune.enabled is False
    epochs = [np.concatenate([np.asarray(labels) for _, labels in batches]) for _ in range(2)]
    for order in epochs:
        assert sorted(order.tolist()) == list(range(100))
    assert epochs[0].tolist() != epochs[1].tolist()  # reshuffled


def test_weight_averaging_keeps_what_validation_saw(tiny_dataset, isolated_env):
    """--ema-momentum: the saved model is the average of the weights that validation scored."""
    import keras

    from mnist_cnn.data.load import load_dataset
    from mnist_cnn.data.prepare import prepare_data
    from mnist_cnn.runs.config import TrainConfig

    assert main(["train", "--dataset", "tiny", "--data-dir", str(tiny_dataset), "--seed", "5", "--epochs", "3",
                 "--ema-momentum", "0.9", "--patience", "9"]) == 0
    run_dir = only_run(isolated_env / "runs")
    record = json.loads((run_dir / "config.json").read_text())
    assert record["config"]["ema_momentum"] == 0.9
    config = TrainConfig(**{k: v for k, v in record["config"].items() if k in TrainConfig.__dataclass_fields__})
    data = prepare_data(config, load_dataset("tiny", tiny_dataset))
    loss = keras.models.load_model(run_dir / "model.keras").evaluate(data.x_val, data.y_val, verbose=0,
                                                                      return_dict=True)["loss"]
    state = Run(run_dir).read_state()
    best = next(r for r in Run(run_dir).read_history() if r["epoch"] == state.best_epoch)
    assert loss == pytest.approx(best["val_loss"], abs=1e-4)


def test_weight_averaging_resumes_from_a_checkpoint_with_the_weights_swapped_back(tmp_path):
    """A checkpoint written at an epoch's end holds the average in the model and the raw weights in the
    optimizer: resuming must swap them back (AveragedWeights(from_checkpoint=True)), or training would
    go on from the average. Exact arithmetic: a small dense model, fixed data, no shuffling."""
    import keras
    import numpy as np

    from mnist_cnn.training.callbacks import AveragedWeights, load_checkpoint

    rng = np.random.default_rng(0)
    x, y = rng.random((64, 4), dtype=np.float32), rng.integers(0, 3, 64)

    def model() -> keras.Model:
        keras.utils.set_random_seed(1)
        m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(3)])
        m.compile(keras.optimizers.Adam(0.05, use_ema=True, ema_momentum=0.5),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        return m

    class Save(keras.callbacks.Callback):  # as RunCheckpoint: after the swap at the epoch's end
        def __init__(self, prefix: str) -> None:
            super().__init__()
            self.prefix = prefix

        def on_epoch_end(self, epoch, logs=None):
            self.model.save(tmp_path / f"{self.prefix}-{epoch + 1}.keras")

    def fit(m: keras.Model, first: int, last: int, prefix: str, from_checkpoint: bool = False) -> None:
        m.fit(x, y, batch_size=16, shuffle=False, verbose=0, initial_epoch=first, epochs=last,
              callbacks=[AveragedWeights(from_checkpoint), Save(prefix)])

    fit(model(), 0, 3, "whole")
    fit(model(), 0, 2, "part")
    results = {}
    for flag in (True, False):
        resumed = model()
        load_checkpoint(resumed, tmp_path / "part-2.keras")
        fit(resumed, 2, 3, f"resumed-{flag}", from_checkpoint=flag)
        results[flag] = keras.models.load_model(tmp_path / f"resumed-{flag}-3.keras").get_weights()
    whole = keras.models.load_model(tmp_path / "whole-3.keras").get_weights()
    assert all(np.allclose(a, b, atol=1e-6) for a, b in zip(results[True], whole))
    assert not all(np.allclose(a, b, atol=1e-3) for a, b in zip(results[False], whole))


def test_bfloat16_training_saves_a_float32_model_that_scores_as_reported(tiny_dataset, isolated_env):
    """--precision bfloat16 --fused-batch-norm: layers compute in bfloat16 and batch norm is fused
    while training; model.keras is float32 with Keras' own layers (same weights), and the test
    metrics are that saved model's."""
    import zipfile

    import keras
    import numpy as np

    from mnist_cnn.data.load import load_dataset
    from mnist_cnn.data.prepare import normalize

    assert main(["train", "--dataset", "tiny", "--data-dir", str(tiny_dataset), "--seed", "2", "--epochs", "2",
                 "--precision", "bfloat16", "--fused-batch-norm"]) == 0
    run_dir = only_run(isolated_env / "runs")
    recorded = json.loads((run_dir / "config.json").read_text())["config"]
    assert (recorded["precision"], recorded["fused_batch_norm"]) == ("bfloat16", True)
    with zipfile.ZipFile(run_dir / "model.keras") as archive:
        saved = archive.read("config.json").decode()
    assert '"BatchNormalization"' in saved and "Fused" not in saved and "mnist_cnn" not in saved
    model = keras.models.load_model(run_dir / "model.keras")
    assert {layer.dtype_policy.name for layer in model.layers} == {"float32"}
    assert keras.mixed_precision.global_policy().name == "float32"  # the process-wide policy is left as found
    dataset = load_dataset("tiny", tiny_dataset)
    probabilities = model.predict(normalize(dataset.test_images), verbose=0)
    test = json.loads((run_dir / "metrics.json").read_text())["test"]
    assert test["accuracy"] == float(np.mean(probabilities.argmax(axis=1) == dataset.test_labels))
    picked = probabilities[np.arange(len(probabilities)), dataset.test_labels]
    assert test["loss"] == pytest.approx(float(-np.mean(np.log(np.clip(picked, 1e-7, 1)))), rel=1e-4)


def test_portable_copy_keeps_the_weights_and_computes_in_float32_with_plain_keras_layers():
    import keras
    import numpy as np

    from mnist_cnn.runs.config import TrainConfig
    from mnist_cnn.training.batchnorm import FusedBatchNormalization
    from mnist_cnn.training.train import build_for_training, portable_copy

    mixed = build_for_training(TrainConfig(model="wide", precision="bfloat16", fused_batch_norm=True), 10)
    assert mixed.get_layer("res1a_conv").compute_dtype == "bfloat16"
    assert isinstance(mixed.get_layer("res1a_bn"), FusedBatchNormalization)
    twin = portable_copy(mixed)
    assert all(layer.compute_dtype == "float32" for layer in twin.layers)
    assert type(twin.get_layer("res1a_bn")) is keras.layers.BatchNormalization  # loads with Keras alone
    for a, b in zip(mixed.get_weights(), twin.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    x = np.random.default_rng(0).random((8, 28, 28, 1), dtype=np.float32)
    np.testing.assert_allclose(twin(x), mixed(x), atol=0.05)  # bfloat16 keeps ~3 significant digits
    plain = build_for_training(TrainConfig(model="cnn", fused_batch_norm=False), 10)
    assert portable_copy(plain) is plain
    fused = build_for_training(TrainConfig(model="cnn", fused_batch_norm=True), 10)
    assert portable_copy(fused) is not fused
    assert not any(isinstance(layer, FusedBatchNormalization) for layer in portable_copy(fused).layers)


def test_weight_decay_shrinks_kernels_and_spares_normalisation_and_biases():
    import keras
    import numpy as np

    from mnist_cnn.runs.config import TrainConfig
    from mnist_cnn.training.train import compile_model

    config = TrainConfig(weight_decay=0.1, learning_rate=0.5, schedule="constant")
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), keras.layers.BatchNormalization(),
                              keras.layers.Dense(2, activation="softmax")])
    compile_model(model, config, steps=1)
    decayed = {v.path for v in model.trainable_variables if model.optimizer._use_weight_decay(v)}
    assert decayed == {model.layers[0].kernel.path, model.layers[2].kernel.path}  # not gamma, beta or a bias
    # Zero inputs: the first kernel gets no gradient, so Adam leaves it alone and only the decay acts.
    kernel = model.layers[0].kernel.numpy()
    model.train_on_batch(np.zeros((4, 3), np.float32), keras.utils.to_categorical([0, 1, 0, 1], 2))
    np.testing.assert_allclose(model.layers[0].kernel.numpy(), kernel * (1 - 0.5 * 0.1), rtol=1e-6)


@pytest.mark.parametrize("model, noted", [(None, True), ("cnn", False)])
def test_training_clothes_on_the_default_model_says_it_was_made_for_digits(shared_data, isolated_env, capsys,
                                                                           model, noted):
    argv = ["train", "--dataset", "fashion-mnist", "--data-dir", str(shared_data), "--train-limit", "100",
            "--epochs", "1", "--runs-dir", str(isolated_env / "runs")] + (["--model", model] if model else [])
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert ("made for digits" in out and "--model cnn" in out) is noted


def test_resume_of_a_run_whose_architecture_changed_is_one_line_and_changes_nothing(
        tiny_dataset, isolated_env, capsys, monkeypatch):
    """A run made before its model's architecture changed (as `fast`'s did on 2026-12-08)."""
    from mnist_cnn.training.models import MODELS

    assert main(["train", "--dataset", "tiny", "--data-dir", str(tiny_dataset), "--epochs", "1",
                 "--model", "fast"]) == 0
    run_dir = only_run(isolated_env / "runs")
    before = {name: (run_dir / name).read_bytes() for name in ("config.json", "history.csv", "state.json")}
    monkeypatch.setitem(MODELS, "fast", MODELS["keras-example"])  # "fast" now builds other shapes
    capsys.readouterr()
    assert main(["train", "--resume", str(run_dir), "--data-dir", str(tiny_dataset), "--epochs", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "does not fit the 'fast' model" in err and "start a new run" in err
    assert {name: (run_dir / name).read_bytes() for name in before} == before  # not even the resume recorded
