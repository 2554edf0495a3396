"""`serve --workers`: the image work in worker processes gives the same answers as threads, survives a
worker's death, and leaves no process behind (real processes, real sockets, a trained model)."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from mnist_cnn.core.errors import MnistCnnError
from mnist_cnn.serving.workers import PredictorSpec, WorkerPool, spec_of
from tests.conftest import png_bytes
from tests.servers import running_server

pytest.importorskip("fastapi")


@pytest.fixture(scope="module")
def served(trained_model: Path):
    """A LiteRT-served predictor and a started pool of two workers that load the same converted file."""
    from mnist_cnn.inference.predict import Predictor

    predictor = Predictor.from_path(trained_model)
    predictor.serve_with("litert")
    pool = WorkerPool(spec_of(predictor), 2)
    pool.start()
    yield predictor, pool
    pool.close()


def children_of(pid: int) -> list[int]:
    """Live processes whose parent is `pid` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                found.append(int(entry.name))
    return found


def test_workers_answer_exactly_as_threads_do(served, digit_pngs):
    from mnist_cnn.serving.app import create_app

    predictor, pool = served
    requests = [dict(content=digit_pngs[0], headers={"content-type": "image/png"}),
                dict(files={"file": ("d.png", digit_pngs[1], "image/png")}),
                dict(json={"image": np.asarray(Image.open(io.BytesIO(digit_pngs[2]))).tolist()})]
    answers = {}
    for mode, app in (("threads", create_app(predictor)), ("workers", create_app(predictor, pool=pool))):
        with running_server(app) as url, httpx.Client(base_url=url, timeout=30) as client:
            answers[mode] = [client.post("/predict?top_k=5", **r) for r in requests]
            answers[mode].append(client.post("/read", content=digit_pngs[3], headers={"content-type": "image/png"}))
            answers[mode].append(client.post("/predict", content=b"not an image",
                                             headers={"content-type": "image/png"}))
            answers[mode].append(client.post("/predict", content=png_bytes(np.zeros((28, 28))),
                                             headers={"content-type": "image/png"}))
            square = np.zeros((28, 28))
            square[2:26, 2:26] = 255  # refused: its reason, in Portuguese, crosses to the worker and back
            answers[mode].append(client.post("/predict", content=png_bytes(square),
                                             headers={"content-type": "image/png", "accept-language": "pt-BR"}))
    for threads, workers in zip(answers["threads"], answers["workers"]):
        assert (threads.status_code, threads.json()) == (workers.status_code, workers.json())
    assert [a.status_code for a in answers["workers"]] == [200, 200, 200, 200, 422, 422, 200]
    assert answers["workers"][6].json()["reason"].startswith("não ")
    assert answers["workers"][0].json()["predicted"] == "7"  # MNIST test image 0
    assert "blank" in answers["workers"][5].json()["detail"]


def test_an_image_over_the_pixel_cap_is_413_from_a_worker(served):
    from mnist_cnn.serving.app import create_app

    predictor, pool = served
    big = png_bytes(np.zeros((6000, 6000)))  # a small file of 36 M pixels: over the 25 M cap
    with running_server(create_app(predictor, pool=pool)) as url:
        response = httpx.post(f"{url}/predict", content=big, headers={"content-type": "image/png"}, timeout=30)
    assert response.status_code == 413 and "pixels" in response.json()["detail"]


def test_a_killed_worker_is_replaced_and_the_server_keeps_answering(served, digit_pngs):
    from mnist_cnn.serving.app import create_app

    predictor, pool = served
    with running_server(create_app(predictor, pool=pool)) as url, httpx.Client(base_url=url, timeout=30) as client:
        assert client.post("/predict", content=digit_pngs[0], headers={"content-type": "image/png"}).status_code == 200
        before = pool.pids()
        os.kill(before[0], signal.SIGKILL)
        codes = [client.post("/predict", content=digit_pngs[0], headers={"content-type": "image/png"}).status_code
                 for _ in range(6)]
        assert set(codes) <= {200, 503}, codes  # a request on the dead worker may get 503, never a 500
        deadline = time.monotonic() + 120
        while (len(pool.pids()) < 2 or before[0] in pool.pids()) and time.monotonic() < deadline:
            client.get("/healthz")
            time.sleep(0.2)
        after = pool.pids()
        assert len(after) == 2 and before[0] not in after
        codes = [client.post("/predict", content=d, headers={"content-type": "image/png"}).status_code
                 for d in digit_pngs]
        assert codes == [200] * len(digit_pngs)


def test_a_worker_that_cannot_load_the_model_is_one_line_before_serving(served, tmp_path):
    predictor, _ = served
    broken = tmp_path / "model.tflite"
    broken.write_bytes(b"not a flatbuffer")
    spec = PredictorSpec(("litert", broken), predictor.info, predictor.max_bytes, predictor.max_pixels, None, None)
    with pytest.raises(MnistCnnError, match="could not load the model") as caught:
        WorkerPool(spec, 1).start()
    assert "\n" not in str(caught.value)


def test_a_model_only_in_memory_has_no_spec(trained_model):
    import keras

    from mnist_cnn.inference.predict import Predictor

    assert spec_of(Predictor(keras.models.load_model(trained_model))) is None


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL])
def test_serve_with_workers_leaves_no_process_behind(trained_model, digit_pngs, stop):
    server = subprocess.Popen([sys.executable, "-m", "mnist_cnn", "serve", str(trained_model), "--port", "0",
                               "--workers", "2"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = server.stdout.readline()
        assert "2 worker processes, batch 4" in line, line  # the default --batch, said where it serves
        url = line.split(" on ")[1].split()[0]
        answer = httpx.post(f"{url}/predict", content=digit_pngs[0], headers={"content-type": "image/png"}, timeout=30)
        assert answer.json()["predicted"] == "7"
        workers = children_of(server.pid)
        assert len(workers) >= 2
        server.send_signal(stop)
        server.wait(timeout=30)
        deadline = time.monotonic() + 20
        while any(Path(f"/proc/{pid}").exists() and "Z" not in (Path(f"/proc/{pid}/stat").read_text()
                                                               .rsplit(")", 1)[1].split()[0])
                  for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        alive = [pid for pid in workers if Path(f"/proc/{pid}").exists()]
        assert not alive or all("Z" in Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[0]
                                for p in alive), f"workers left running: {alive}"
    finally:
        if server.poll() is None:
            server.kill()


def test_bad_workers_flag_is_one_line(trained_model):
    result = subprocess.run([sys.executable, "-m", "mnist_cnn", "serve", str(trained_model), "--port", "0",
                             "--workers", "-1"], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "--workers -1 must be between 0 and 64" in result.stderr
    assert "Traceback" not in result.stderr
    json.dumps(result.stderr)  # one printable message


def test_serve_without_a_model_serves_the_shipped_mnist():
    from mnist_cnn.cli.main import build_parser

    args = build_parser().parse_args(["serve"])
    assert args.model_path == Path("mnist") and args.workers is None
    assert build_parser().parse_args(["serve", "fashion-mnist", "--workers", "0"]).workers == 0
