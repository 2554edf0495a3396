"""The run folder's owner: one reading policy, model metadata, resume state, leftovers."""

from __future__ import annotations

import json

import pytest

from mnist_cnn.core.errors import MnistCnnError, RunFileError
from mnist_cnn.runs.config import TrainConfig
from mnist_cnn.runs.run import Run, TrainState, dataset_style, history_columns, read_history


def make_run(tmp_path, config=None, data=None) -> Run:
    run = Run(tmp_path / "run")
    run.path.mkdir()
    run.write_json(Run.config, {"config": (config or TrainConfig()).to_dict(),
                                "data": data or {"class_names": list("0123456789")}})
    return run


def test_file_names_live_on_the_class_and_paths_on_the_instance(tmp_path):
    run = Run(tmp_path)
    assert Run.metrics == "metrics.json" and run.metrics == tmp_path / "metrics.json"
    assert set(Run.EVALUATION_ARTIFACTS) < set(Run.ARTIFACTS)
    assert run.checkpoint(3) == tmp_path / "checkpoints" / "epoch-0003.keras"


@pytest.mark.parametrize("content, message", [
    (b"{not json", "is damaged"),
    (b"[]", "holds a JSON list, not an object"),
    (b"\xff\xfe\x00garbage", "is damaged"),
    (b"[" * 100_000 + b"]" * 100_000, "is damaged"),  # nesting past Python's recursion limit
])
def test_one_policy_for_damaged_json(tmp_path, content, message):
    run = make_run(tmp_path)
    run.metrics.write_bytes(content)
    with pytest.raises(RunFileError, match=message) as info:
        run.read_json(Run.metrics)
    assert "\n" not in str(info.value) and str(run.metrics) in str(info.value)


def test_missing_file_is_an_error_only_when_required(tmp_path):
    run = make_run(tmp_path)
    assert run.read_json(Run.metrics, required=False) is None
    with pytest.raises(RunFileError, match="metrics.json is missing"):
        run.read_json(Run.metrics)


def test_open_refuses_non_runs_and_damaged_configs(tmp_path):
    with pytest.raises(RunFileError, match="is not a run folder"):
        Run.open(tmp_path)
    run = make_run(tmp_path)
    assert Run.open(run.path).path == run.path
    run.config.write_text("[]")
    with pytest.raises(RunFileError, match="not an object"):
        Run.open(run.path)
    run.config.write_text('{"config": [1, 2]}')
    with pytest.raises(RunFileError, match="damaged 'config' section"):
        Run.open(run.path)


def test_model_info_knows_dataset_classes_and_preprocessing(tmp_path):
    run = make_run(tmp_path, TrainConfig(dataset="fashion-mnist", model="strong"),
                   {"class_names": ["T-shirt/top", "Trouser"]})
    run.write_json(Run.metrics, {"test": {"accuracy": 0.9, "loss": 0.3, "per_class": {}}})
    info = run.model_info()
    assert info.dataset == "fashion-mnist" and info.style == "fashion" and info.architecture == "strong"
    assert info.class_names == ("T-shirt/top", "Trouser")
    assert info.test_metrics == {"accuracy": 0.9, "loss": 0.3}
    assert Run.of_model(run.path / "model.keras").path == run.path
    assert Run.of_model(tmp_path / "loose.keras") is None
    assert dataset_style("mnist") == "digit" and dataset_style("/data/mine.npz") == "digit"


def test_state_round_trip_and_missing_checkpoint(tmp_path):
    run = make_run(tmp_path)
    assert run.read_state() is None
    run.checkpoint(2).parent.mkdir()
    run.checkpoint(2).write_bytes(b"x")
    state = TrainState(epoch=3, best_epoch=2, best_val_loss=0.25, last_checkpoint="checkpoints/epoch-0002.keras",
                       best_checkpoint="checkpoints/epoch-0002.keras", shuffle_seed=7)
    run.write_state(state)
    assert run.read_state() == state and state.wait == 1
    run.checkpoint(2).unlink()
    with pytest.raises(RunFileError, match="epoch-0002.keras, named by .*state.json, is missing"):
        run.read_state()
    run.state.write_text('{"epoch": 1}')
    with pytest.raises(RunFileError, match="lacks resume fields"):
        run.read_state()


def test_prune_keeps_only_named_checkpoints_and_temp_files_are_cleaned(tmp_path):
    run = make_run(tmp_path)
    run.checkpoints.mkdir()
    for epoch in (1, 2, 3):
        run.checkpoint(epoch).write_bytes(b"x")
    run.prune_checkpoints({"checkpoints/epoch-0001.keras", "checkpoints/epoch-0003.keras"})
    assert sorted(p.name for p in run.checkpoints.iterdir()) == ["epoch-0001.keras", "epoch-0003.keras"]
    leftovers = [run.path / ".tmp-metrics-abc.json", run.checkpoints / ".tmp-epoch-0004-x.keras"]
    for path in leftovers:
        path.write_bytes(b"half")
    assert sorted(run.clean_temp_files()) == sorted(leftovers)
    assert not any(p.exists() for p in leftovers)


def test_check_resumable(tmp_path):
    config = TrainConfig(epochs=2)
    run = make_run(tmp_path, config)
    run.check_resumable(config)  # nothing trained yet: resumable
    run.checkpoints.mkdir()
    run.checkpoint(2).write_bytes(b"x")
    run.write_state(TrainState(2, 2, 0.1, "checkpoints/epoch-0002.keras", "checkpoints/epoch-0002.keras", 0))
    run.check_resumable(config)  # trained, but artifacts missing: resume completes them
    for name in Run.ARTIFACTS:
        (run.path / name).touch()
    with pytest.raises(MnistCnnError, match="already finished .2 epochs"):
        run.check_resumable(config)
    run.check_resumable(config.replace(epochs=4))  # train longer


def test_history_round_trip_keeps_epochs_integral(tmp_path):
    run = make_run(tmp_path)
    rows = [{"epoch": 1, "loss": 0.5, "val_loss": 0.4}, {"epoch": 2, "loss": 0.3, "val_loss": 0.35}]
    run.write_history(rows)
    assert run.read_history() == rows and isinstance(run.read_history()[0]["epoch"], int)
    assert run.history.read_text().splitlines()[1].startswith("1,")
    assert history_columns(rows)["val_loss"] == [0.4, 0.35]
    assert read_history(tmp_path / "absent.csv") == []
    run.history.write_text("epoch,loss\n1,abc\n")
    with pytest.raises(RunFileError, match="history.csv"):
        run.read_history()


def test_record_resume_keeps_what_changed(tmp_path):
    run = make_run(tmp_path, TrainConfig(epochs=2))
    run.record_resume(TrainConfig(epochs=5), {"epochs": (2, 5)})
    record = json.loads(run.config.read_text())
    assert record["config"]["epochs"] == 5
    assert record["resumed"][0]["changed"] == {"epochs": {"from": 2, "to": 5}}
    assert run.train_config().epochs == 5
