"""Waiting /predict requests answered together (`serve --batch`): each answer as if alone, bad
images failing only their own request, order kept, cancelled and killed requests handled
(real worker processes, a trained model)."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mnist_cnn.core.errors import ImageError, MnistCnnError
from mnist_cnn.serving.workers import (DEFAULT_BATCH, WorkerDied, WorkerPool, predict_json, predict_json_together,
                                       read_json, spec_of)
from tests.conftest import png_bytes


@pytest.fixture(scope="module")
def predictor(trained_model: Path):
    from mnist_cnn.inference.predict import Predictor

    predictor = Predictor.from_path(trained_model)
    predictor.serve_with("litert")
    return predictor


@pytest.fixture()
def pool(predictor):
    """One worker answering up to 4 waiting /predict requests at once."""
    pool = WorkerPool(spec_of(predictor), 1, batch=4)
    pool.start()
    yield pool
    pool.close()


def alone(predictor, *args) -> dict | str:
    """predict_json's answer as a dict, or its error's message."""
    try:
        return json.loads(predict_json(predictor, *args))
    except MnistCnnError as e:
        return f"{type(e).__name__}: {e}"


def same(answer: dict | str, expected: dict | str) -> bool:
    """Equal answers; probabilities to float rounding (a batch's model call may sum in another order)."""
    if isinstance(answer, str) or isinstance(expected, str):
        return answer == expected
    rest = {k: v for k, v in answer.items() if k not in ("probabilities", "probability", "top")}
    rest_expected = {k: v for k, v in expected.items() if k not in ("probabilities", "probability", "top")}
    return (rest == rest_expected and np.allclose(answer["probabilities"], expected["probabilities"], atol=1e-6)
            and [t["class"] for t in answer["top"]] == [t["class"] for t in expected["top"]])


def test_requests_answered_together_answer_as_alone(predictor, digit_pngs):
    square = np.zeros((28, 28))
    square[2:26, 2:26] = 255  # refused by a calibrated rule; its reason in the request's language
    requests = [(digit_pngs[0], "a", 3), (b"not an image", "b", 3), (digit_pngs[1], "c", 10, "pt-BR"),
                (png_bytes(np.zeros((28, 28))), "d", 1), (png_bytes(square), "e", 2, "pt-BR"),
                (digit_pngs[2], "f", 1, "en"),
                (digit_pngs[3], "g", 3, "xx"),
                (np.asarray(Image.open(io.BytesIO(digit_pngs[4])), dtype=np.float32), "h", 3)]  # JSON pixels
    together = predict_json_together(predictor, requests)
    assert len(together) == len(requests)
    for (kind, value), request in zip(together, requests):
        answer = json.loads(value) if kind == "ok" else f"{type(value).__name__}: {value}"
        assert same(answer, alone(predictor, *request)), request[1]
    kinds = [kind for kind, _ in together]
    assert kinds == ["ok", "error", "ok", "error", "ok", "ok", "error", "ok"]  # only the bad ones fail
    assert isinstance(together[1][1], ImageError) and "blank" in str(together[3][1])
    assert len(json.loads(together[2][1])["top"]) == 10 and len(json.loads(together[5][1])["top"]) == 1
    refused = json.loads(together[4][1])
    assert not refused["accepted"] and refused["reason"].startswith("não ")  # the trained model is calibrated


def test_a_shared_call_that_fails_answers_each_request_alone(predictor, digit_pngs, monkeypatch):
    """A model giving NaN for one image must fail that request only, not the requests beside it."""
    from mnist_cnn.inference import predict as predict_module

    real = predict_module.predict_probabilities
    nan_row = 1

    def some_nan(backend, batch):
        out = np.array(real(backend, batch), dtype=np.float64)
        if len(batch) > 1:
            out[nan_row] = np.nan
        elif np.array_equal(batch[0], predictor.preprocess(digit_pngs[nan_row])[..., np.newaxis]):
            out[0] = np.nan
        return out

    monkeypatch.setattr(predict_module, "predict_probabilities", some_nan)
    together = predict_json_together(predictor, [(d, "x", 3) for d in digit_pngs[:3]])
    assert [kind for kind, _ in together] == ["ok", "error", "ok"]
    assert "non-finite" in str(together[1][1])


def test_a_bug_on_one_image_fails_only_its_request(predictor, digit_pngs, monkeypatch):
    """An unexpected exception (a bug, not a bad image) in the shared path: the worker answers each
    request alone, so only the image that hits it gets an error (the server's 500)."""
    from mnist_cnn.serving.workers import _answer_all

    real = predictor.preprocess

    def buggy(source):
        if source == digit_pngs[1]:
            raise ValueError("a bug")
        return real(source)

    monkeypatch.setattr(predictor, "preprocess", buggy)
    answers = _answer_all(predictor, [(predict_json, (d, "x", 3)) for d in digit_pngs[:3]])
    assert [kind for kind, _ in answers] == ["ok", "error", "ok"]
    assert isinstance(answers[1][1], RuntimeError) and "ValueError" in str(answers[1][1])


def run_in_pool(pool: WorkerPool, calls: list[tuple], cancel: int | None = None) -> list:
    """Start every call at once on the pool's event loop (in order), cancel call `cancel` while it
    waits, and return each result or exception."""
    async def main():
        tasks = [asyncio.ensure_future(pool.run(*call)) for call in calls]
        await asyncio.sleep(0)  # every call has queued (the first went to the idle worker)
        if cancel is not None:
            tasks[cancel].cancel()
        return await asyncio.gather(*tasks, return_exceptions=True)

    return asyncio.run(asyncio.wait_for(main(), 120))


def test_waiting_requests_go_to_the_worker_together_and_in_order(pool, predictor, digit_pngs):
    calls = [(predict_json, digit_pngs[i % 8], f"n{i}", 3) for i in range(9)]
    results = run_in_pool(pool, calls)
    for result, call in zip(results, calls):
        assert same(json.loads(result), alone(predictor, *call[1:])), call[2]
    assert [json.loads(r)["source"] for r in results] == [f"n{i}" for i in range(9)]
    # the first went alone to the idle worker; the other 8 waited and went 4 at a time
    assert pool.batch_sizes == {1: 1, 4: 2}


def test_a_number_is_never_read_in_a_batch(pool, predictor, digit_pngs):
    calls = [(predict_json, digit_pngs[0], "p0", 3), (predict_json, digit_pngs[1], "p1", 3),
             (read_json, digit_pngs[3], "r"),
             (predict_json, digit_pngs[2], "p2", 3), (predict_json, digit_pngs[4], "p3", 3)]
    results = run_in_pool(pool, calls)
    assert [json.loads(r)["source"] for r in results] == ["p0", "p1", "r", "p2", "p3"]
    assert json.loads(results[2]) == json.loads(read_json(predictor, digit_pngs[3], "r"))
    assert pool.batch_sizes == {1: 3, 2: 1}  # p0 | p1 | the read | p2 + p3


def test_a_request_cancelled_while_waiting_is_skipped(pool, predictor, digit_pngs):
    calls = [(predict_json, digit_pngs[i], f"n{i}", 3) for i in range(5)]
    results = run_in_pool(pool, calls, cancel=2)
    assert isinstance(results[2], asyncio.CancelledError)
    assert [json.loads(results[i])["source"] for i in (0, 1, 3, 4)] == ["n0", "n1", "n3", "n4"]
    assert pool.batch_sizes == {1: 1, 3: 1}  # the cancelled one was never sent


def test_a_worker_killed_while_answering_a_batch_fails_only_that_batch(pool, predictor, digit_pngs):
    bar = np.zeros((4000, 4000))
    bar[1000:3000, 1900:2100] = 255
    slow = png_bytes(bar)  # 20 KB, small enough to share a batch, but 16 MP: about half a second of work
    assert len(slow) < 64 * 1024
    calls = [(predict_json, digit_pngs[0], "first", 3), (predict_json, slow, "slow", 3),
             *[(predict_json, digit_pngs[i], f"n{i}", 3) for i in range(1, 4)]]

    async def main():
        first = asyncio.ensure_future(pool.run(*calls[0]))
        waiting = [asyncio.ensure_future(pool.run(*call)) for call in calls[1:]]
        await first  # now the other four are with the worker, as one batch
        assert pool.batch_sizes == {1: 1, 4: 1}
        os.kill(pool.pids()[0], signal.SIGKILL)
        died = await asyncio.gather(*waiting, return_exceptions=True)
        # the replacement answers the next request
        deadline = time.monotonic() + 120
        while not pool.pids() and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        after = await pool.run(predict_json, digit_pngs[5], "after", 3)
        return first.result(), died, after

    first, died, after = asyncio.run(asyncio.wait_for(main(), 180))
    assert json.loads(first)["source"] == "first"
    assert all(isinstance(d, WorkerDied) for d in died), died
    assert json.loads(after)["source"] == "after"


@pytest.mark.parametrize("batch", ["0", "65", "x"])
def test_bad_batch_flag_is_one_line(trained_model, batch):
    result = subprocess.run([sys.executable, "-m", "mnist_cnn", "serve", str(trained_model), "--port", "0",
                             "--batch", batch], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "--batch" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) <= 3  # argparse: usage + one line; ours: one line


def test_the_cli_default_batch_is_the_pools():
    from mnist_cnn.cli.main import build_parser

    assert build_parser().parse_args(["serve"]).batch == DEFAULT_BATCH
    assert build_parser().parse_args(["serve", "--batch", "1"]).batch == 1


@pytest.mark.parametrize("cores, workers", [(1, 0), (2, 2), (3, 3), (16, 4)])
def test_default_workers_is_one_per_core_at_most_four(monkeypatch, cores, workers):
    from mnist_cnn.core import system
    from mnist_cnn.serving.workers import default_workers

    monkeypatch.setattr(system, "default_threads", lambda: cores)
    assert default_workers() == workers


def test_a_large_upload_goes_alone(pool, predictor, digit_pngs):
    """A photo-sized upload costs a worker far more than the per-call share a batch saves: it never
    holds small requests behind it in one worker."""
    digit = np.pad(np.asarray(Image.open(io.BytesIO(digit_pngs[5]))), 300)  # on 628x628 ...
    big = png_bytes(digit + np.random.default_rng(1).integers(0, 3, digit.shape).astype(np.uint8))  # ... faint noise
    assert len(big) > 64 * 1024
    calls = [(predict_json, digit_pngs[0], "p0", 3), (predict_json, digit_pngs[1], "p1", 3),
             (predict_json, big, "big", 3),
             (predict_json, digit_pngs[2], "p2", 3), (predict_json, digit_pngs[4], "p3", 3)]
    results = run_in_pool(pool, calls)
    assert [json.loads(r)["source"] for r in results] == ["p0", "p1", "big", "p2", "p3"]
    assert pool.batch_sizes == {1: 3, 2: 1}  # p0 | p1 | big | p2 + p3


def test_a_request_that_cannot_be_sent_fails_alone(pool, predictor, digit_pngs):
    """Arguments that do not pickle fail their own request (the server's 500), not the pool."""
    import threading

    calls = [(predict_json, digit_pngs[0], "p0", 3), (predict_json, digit_pngs[1], "p1", 3),
             (predict_json, digit_pngs[2], threading.Lock(), 3), (read_json, digit_pngs[3], "r")]
    results = run_in_pool(pool, calls)
    assert json.loads(results[0])["source"] == "p0" and json.loads(results[1])["source"] == "p1"
    assert isinstance(results[2], RuntimeError) and "cannot send" in str(results[2])
    assert json.loads(results[3])["source"] == "r"
