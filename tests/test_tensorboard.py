"""`train --tensorboard`: event files with per-epoch scalars, the graph and the test-set pictures."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from mnist_cnn.cli.main import main
from mnist_cnn.runs.run import Run

EPOCHS = 2


def read_events(folder: Path) -> tuple[dict[str, list[tuple[int, float]]], dict[str, str]]:
    """({tag: [(step, value)]} of the per-epoch scalars, {tag: TensorBoard plugin}) of the events in `folder`."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util import tensor_util

    events = EventAccumulator(str(folder), size_guidance={"tensors": 0})
    events.Reload()
    # TF2 writes scalars, images and the model as tensor summaries, told apart by their plugin.
    tags = {tag: events.SummaryMetadata(tag).plugin_data.plugin_name for tag in events.Tags()["tensors"]}
    scalars = {tag: [(e.step, float(tensor_util.make_ndarray(e.tensor_proto))) for e in events.Tensors(tag)]
               for tag, plugin in tags.items() if plugin == "scalars" and tag.startswith("epoch_")}
    return scalars, tags


@pytest.mark.slow
def test_train_tensorboard_writes_loss_accuracy_lr_per_epoch_and_the_pictures(tiny_dataset, isolated_env):
    pytest.importorskip("tensorboard", reason="the tensorboard package is not installed: pip install -e "
                                              "'.[tensorboard]' (the dev extra has it)")
    code = main(["train", "--dataset", "tiny", "--data-dir", str(tiny_dataset), "--model", "keras-example",
                 "--epochs", str(EPOCHS), "--patience", "5", "--tensorboard"])
    assert code == 0
    (run_dir,) = (isolated_env / "runs").iterdir()
    run = Run(run_dir)
    history = run.read_history()
    assert len(history) == EPOCHS

    train, train_tags = read_events(run.tensorboard / "train")
    validation, _ = read_events(run.tensorboard / "validation")
    for scalars, prefix in ((train, ""), (validation, "val_")):
        for metric in ("loss", "accuracy"):
            logged = scalars[f"epoch_{metric}"]
            assert [step for step, _ in logged] == list(range(EPOCHS))  # one value per epoch
            # The very numbers history.csv holds for each epoch.
            assert [value for _, value in logged] == pytest.approx([row[prefix + metric] for row in history],
                                                                   rel=1e-5)
    assert [value for _, value in train["epoch_learning_rate"]] == pytest.approx(
        [row["learning_rate"] for row in history], rel=1e-5)
    assert train_tags.get("keras") == "graph_keras_model"  # write_graph: the model's graph, as Keras 3 writes it

    _, test_tags = read_events(run.tensorboard / "test")
    assert test_tags == {"confusion_matrix": "images", "misclassified": "images"}
    assert run.model.is_file() and run.report.is_file()  # everything else of a run is still there


def test_tensorboard_without_the_package_is_a_one_line_error_before_training(tiny_dataset, isolated_env,
                                                                           monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as if not installed: find_spec answers None
    code = main(["train", "--dataset", "tiny", "--data-dir", str(tiny_dataset), "--epochs", "1", "--tensorboard"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0
    assert err.startswith("mnist-cnn train: error:") and "pip install 'mnist-cnn[tensorboard]'" in err
    runs = isolated_env / "runs"
    assert not runs.exists() or not any(Run(p).history.exists() for p in runs.iterdir())  # nothing trained
