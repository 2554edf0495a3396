"""The calibration inputs prepared in a forked child while training runs (`refusal/background.py`).

The fork happens only before TensorFlow loads, and this test process has usually loaded it,
so the child is exercised in a fresh interpreter: what it sends must be exactly what
calibration would prepare itself, and anything else must make it fall back.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from conftest import SHARED_DATA

from mnist_cnn.refusal import background, calibrate

needs_data = pytest.mark.skipif(not (SHARED_DATA / "fashion-mnist").is_dir(),
                                reason=f"real data not found at {SHARED_DATA} (set MNIST_CNN_TEST_DATA)")


@needs_data
def test_the_child_prepares_exactly_what_calibration_would_and_leaves_no_process():
    script = textwrap.dedent(f"""
        import multiprocessing, sys
        import numpy as np
        from mnist_cnn.data.load import load_dataset
        from mnist_cnn.data.prepare import split_rows
        from mnist_cnn.data.registry import get_spec, locate
        from mnist_cnn.data.idx import load_split
        from mnist_cnn.refusal import background, calibrate
        from mnist_cnn.runs.config import TrainConfig

        dataset = load_dataset("mnist", {str(SHARED_DATA)!r})
        config = TrainConfig(train_limit=12000, val_fraction=0.1, seed=3)
        preparing = background.start_preparing(config, dataset, "digit")
        assert preparing is not None, "no child started"
        rows = split_rows(config, dataset)
        x_train, x_val = dataset.train_images[rows[0]], dataset.train_images[rows[1]]
        got = preparing.result(calibrate.split_digest(x_train, x_val), "digit")
        assert got is not None, "nothing received"
        assert not multiprocessing.active_children(), "the child was not reaped"
        negatives, _, _ = load_split(get_spec("fashion-mnist"), locate("fashion-mnist", {str(SHARED_DATA)!r}), "train")
        want = calibrate.split_sources(x_train, x_val, negatives, "fashion-mnist").preprocessed("digit")
        pairs = [(got.fit_digits, want.fit_digits), (got.validation, want.validation)]
        pairs += [(got.fit_negatives[k], want.fit_negatives[k]) for k in want.fit_negatives]
        pairs += [(got.measured[k], want.measured[k]) for k in want.measured]
        assert set(got.measured) == set(want.measured) and set(got.fit_negatives) == set(want.fit_negatives)
        for a, b in pairs:
            assert a.blank == b.blank and np.array_equal(a.images, b.images)
        assert "tensorflow" not in sys.modules
        print("same", len(pairs), "sets")
    """)
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env,
                          check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "same 7 sets"


def test_nothing_is_forked_once_tensorflow_is_loaded(monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorflow", sys.modules.get("tensorflow") or object())
    assert background.start_preparing(object(), object(), "digit") is None  # type: ignore[arg-type]


class FakeProcess:
    def __init__(self, alive: bool = False) -> None:
        self.alive, self.terminated, self.joined = alive, False, False

    def is_alive(self) -> bool:
        return self.alive

    def terminate(self) -> None:
        self.terminated, self.alive = True, False

    def join(self, timeout: float | None = None) -> None:
        self.joined = True


def preparing_that_sent(payload: object, alive: bool = False) -> tuple[background.Preparing, FakeProcess]:
    import multiprocessing

    receive, send = multiprocessing.Pipe(duplex=False)
    if payload != "nothing":
        send.send(payload)
    send.close()
    process = FakeProcess(alive)
    return background.Preparing(process, receive), process  # type: ignore[arg-type]


def test_inputs_of_another_split_or_style_or_none_at_all_are_not_used():
    sources = calibrate.CalibrationSources(calibrate.Preprocessed(np.ones((1, 28, 28), np.float32), 0), {}, None)
    preparing, process = preparing_that_sent(("abc", "digit", sources))
    got = preparing.result("abc", "digit")
    assert got is not None and np.array_equal(got.fit_digits.images, sources.fit_digits.images) and process.joined
    for digest, style in (("abd", "digit"), ("abc", "fashion")):
        preparing, _ = preparing_that_sent(("abc", "digit", sources))
        assert preparing.result(digest, style) is None
    preparing, _ = preparing_that_sent(None)  # the child failed and said so
    assert preparing.result("abc", "digit") is None
    preparing, _ = preparing_that_sent("nothing")  # the child died without a word: the pipe closed
    assert preparing.result("abc", "digit") is None
    preparing, process = preparing_that_sent("nothing", alive=True)  # still busy when training is done
    assert preparing.result("abc", "digit", wait_s=0.01) is None and process.terminated
