"""The HTTP API against a real uvicorn on 127.0.0.1: answers, docs, and every bad input a clean 4xx.

After each bad request the server must still answer (checked in every test of that kind).
"""

from __future__ import annotations

import io
import socket
import threading
from pathlib import Path
from typing import Iterator

import httpx
import numpy as np
import pytest
from conftest import SHARED_DATA
from PIL import Image

from servers import running_server
from test_preprocess import png_header_only

from mnist_cnn.data.idx import load_split
from mnist_cnn.data.registry import get_spec
from mnist_cnn.inference.predict import Predictor

pytest.importorskip("fastapi", reason="the [serve] extra is not installed")


@pytest.fixture(scope="module")
def base_url(trained_model: Path) -> Iterator[str]:
    from mnist_cnn.serving.app import create_app

    with running_server(create_app(Predictor.from_path(trained_model))) as url:
        yield url


@pytest.fixture(scope="module")
def client(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=30) as c:
        yield c


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    images, labels, _ = load_split(get_spec("mnist"), SHARED_DATA / "mnist", "test")
    return images[6000:6020], labels[6000:6020].astype(int)


def png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def test_healthz_and_model(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    model = client.get("/model").json()
    assert model["classes"] == [str(i) for i in range(10)]
    assert model["dataset"] == "mnist" and model["parameters"] == 34_826 and model["name"] == "keras_example"
    assert 0.9 < model["test_metrics"]["accuracy"] <= 1


def test_uploaded_digits_are_read(client, digits):
    images, labels = digits
    answers = [client.post("/predict", files={"file": ("d.png", png(255 - image), "image/png")})
               for image in images]
    assert all(a.status_code == 200 for a in answers)
    bodies = [a.json() for a in answers]
    assert sum(b["predicted"] == str(label) for b, label in zip(bodies, labels)) >= 18
    body = bodies[0]
    assert len(body["top"]) == 3 and body["top"][0]["class"] == body["predicted"]
    assert len(body["probabilities"]) == 10 and sum(body["probabilities"]) == pytest.approx(1, abs=1e-4)
    seen = np.array(body["image"])
    assert seen.shape == (28, 28) and seen.max() == 255 and seen[0].max() == 0


def test_raw_image_body_json_pixels_and_top_k(client, digits):
    image, label = digits[0][0], str(digits[1][0])
    raw = client.post("/predict?top_k=10", content=png(image), headers={"content-type": "image/png"}).json()
    assert raw["predicted"] == label and len(raw["top"]) == 10
    as_json = client.post("/predict", json={"image": image.tolist()}).json()
    assert as_json["predicted"] == label
    assert as_json["probabilities"] == pytest.approx(raw["probabilities"], abs=1e-5)  # one path for both


def test_a_refusal_gives_its_reason_in_the_language_asked_for(client):
    """`lang` chooses the language of `reason`; without it Accept-Language does; a bad `lang` is a 422."""
    filled = np.zeros((28, 28), np.uint8)
    filled[2:26, 2:26] = 255  # a filled square: the plain checks refuse it (the test model is uncalibrated)

    def ask(path: str, **headers: str) -> httpx.Response:
        return client.post(path, content=png(filled), headers={"content-type": "image/png", **headers})

    english = ask("/predict").json()
    assert not english["accepted"] and english["reason"].startswith("not a digit: ink covers")
    browser = ask("/predict", **{"accept-language": "pt-BR,pt;q=0.9,en;q=0.8"}).json()
    assert browser["reason"].startswith("não é um dígito: a tinta cobre") and "ink" not in browser["reason"]
    assert browser["predicted"] == english["predicted"]  # only the words change
    assert ask("/predict?lang=en", **{"accept-language": "pt-BR"}).json()["reason"] == english["reason"]
    assert ask("/predict", **{"accept-language": "de-DE,fr;q=0.5"}).json()["reason"] == english["reason"]
    number = ask("/read?lang=pt-BR").json()
    assert not number["accepted"] and number["reason"].startswith("marca 1 de 1: não é um dígito")
    assert number["digits"][0]["reason"].startswith("não é um dígito")
    for path in ("/predict?lang=xx", "/read?lang=klingon"):
        bad = ask(path)
        assert bad.status_code == 422 and "unknown language" in bad.json()["detail"] and "lang=pt-BR" in bad.json()[
            "detail"]
    assert client.get("/healthz").status_code == 200


def test_openapi_and_offline_docs(client):
    schema = client.get("/openapi.json").json()
    assert {"/predict", "/model", "/healthz"} <= set(schema["paths"])
    body = schema["paths"]["/predict"]["post"]["requestBody"]["content"]
    assert {"multipart/form-data", "application/json"} <= set(body)
    docs = client.get("/docs").text
    assert "cdn." not in docs and "/static-offline-docs/swagger-ui-bundle.js" in docs
    bundle = client.get("/static-offline-docs/swagger-ui-bundle.js")
    assert bundle.status_code == 200 and len(bundle.content) > 100_000  # served here, not from a CDN


def test_the_page_and_its_files_are_served(client):
    page = client.get("/")
    assert page.status_code == 200 and '<canvas id="pad"' in page.text
    for name in ("app.js", "style.css"):
        assert client.get(f"/static/{name}").status_code == 200
    assert "http" not in client.get("/static/app.js").text.replace("http://127.0.0.1", "")  # no CDN


TRUNCATED = png(np.full((64, 64), 255, np.uint8) - np.eye(64, dtype=np.uint8) * 255)[:60]
GRID = [[0] * 28 for _ in range(28)]


def json_with(token: str) -> str:
    """JSON text of a 28x28 image of zeros with one pixel written as `token` (NaN, 1e999, ...)."""
    rows = [["0"] * 28 for _ in range(28)]
    rows[5][5] = token
    return '{"image": [' + ",".join("[" + ",".join(row) + "]" for row in rows) + "]}"


JSON = {"content-type": "application/json"}


def tiff(array: np.ndarray, mode: str) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array, mode=mode).save(buffer, format="TIFF")
    return buffer.getvalue()


NAN_TIFF = tiff(np.where(np.eye(40, dtype=bool), np.nan, 1.0).astype(np.float32), "F")
BAD_REQUESTS = {
    # name: (request keyword arguments, expected status, words in the detail)
    "non-image bytes": ({"files": {"file": ("x.png", b"hello, not a png", "image/png")}}, 422, "not a readable image"),
    "truncated image": ({"files": {"file": ("x.png", TRUNCATED, "image/png")}}, 422, "truncated or corrupt"),
    "decompression bomb": ({"files": {"file": ("x.png", png_header_only(50_000, 50_000), "image/png")}},
                           413, "pixel limit"),
    "blank image": ({"files": {"file": ("x.png", png(np.full((50, 50), 255, np.uint8)), "image/png")}},
                    422, "blank"),
    "empty file": ({"files": {"file": ("x.png", b"", "image/png")}}, 422, "empty"),
    "no file field": ({"files": {"other": ("x.png", b"abc", "image/png")}}, 422, "'file'"),
    "wrong content type": ({"content": b"hello", "headers": {"content-type": "text/plain"}}, 415, "text/plain"),
    "no content type": ({"content": b"hello"}, 415, "content type"),
    "broken multipart": ({"content": b"--x\r\ngarbage", "headers": {"content-type": "multipart/form-data"}},
                         400, ""),
    "invalid json": ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 400, "JSON"),
    "json NaN": ({"content": json_with("NaN"), "headers": JSON}, 400, "NaN"),
    "json Infinity": ({"content": json_with("-Infinity"), "headers": JSON}, 400, "Infinity"),
    "json overflow to inf": ({"content": json_with("1e999"), "headers": JSON}, 422, "image.5.5"),
    "json out of range": ({"content": json_with("300"), "headers": JSON}, 422, "less than or equal to 255"),
    "json negative": ({"content": json_with("-1"), "headers": JSON}, 422, "greater than or equal to 0"),
    "json wrong shape": ({"json": {"image": [[0] * 28] * 27}}, 422, "28"),
    "json ragged": ({"json": {"image": [[0] * 28] * 27 + [[0] * 5]}}, 422, "28"),
    "json no image key": ({"json": {"pixels": GRID}}, 422, "image"),
    "json a list": ({"json": GRID}, 422, ""),
    "json strings": ({"json": {"image": [["a"] * 28] * 28}}, 422, "number"),
    "json numbers as strings": ({"content": json_with('"255"'), "headers": JSON}, 422, "image.5.5"),
    "json booleans": ({"content": json_with("true"), "headers": JSON}, 422, "image.5.5"),
    "json nested too deeply": ({"content": b"[" * 200_000 + b"]" * 200_000, "headers": JSON}, 400, "nested"),
    "float tiff with NaN": ({"files": {"file": ("x.tif", NAN_TIFF, "image/tiff")}}, 422, "NaN"),
    "json blank": ({"json": {"image": GRID}}, 422, "blank"),
    "top_k zero": ({"files": {"file": ("x.png", b"abc", "image/png")}, "params": {"top_k": 0}}, 422, "top_k"),
}


@pytest.mark.parametrize("name", BAD_REQUESTS)
def test_bad_input_is_a_clean_4xx_and_the_server_keeps_serving(client, name):
    kwargs, status, words = BAD_REQUESTS[name]
    answer = client.post("/predict", **kwargs)
    assert answer.status_code == status, answer.text
    detail = answer.json()["detail"]
    assert isinstance(detail, str) and "\n" not in detail and words in detail
    assert client.get("/healthz").status_code == 200


def test_uploads_over_the_cap_are_refused(client):
    # Declared size over the cap: refused before a byte of the body is read.
    answer = client.post("/predict", files={"file": ("big.png", b"\0" * (6 * 1024 * 1024), "image/png")})
    assert answer.status_code == 413 and "limit" in answer.json()["detail"]
    # No declared size (chunked transfer): counted as it streams in.
    chunks = (b"\0" * (512 * 1024) for _ in range(24))  # 12 MiB
    answer = client.post("/predict", content=chunks, headers={"content-type": "image/png"})
    assert answer.status_code == 413 and "limit" in answer.json()["detail"]
    assert client.get("/healthz").status_code == 200


def test_the_body_cap_stops_reading_at_the_limit():
    """The middleware itself: the app never pulls a chunk past the cap, whatever the client sends."""
    import asyncio

    from fastapi.responses import PlainTextResponse

    from mnist_cnn.serving.guards import BodySizeLimit

    pulled = 0
    sent: list[dict] = []

    async def receive() -> dict:
        nonlocal pulled
        pulled += 1
        return {"type": "http.request", "body": b"\0" * 1000, "more_body": pulled < 1000}  # 1 MB in all

    async def send(message: dict) -> None:
        sent.append(message)

    async def app(scope, receive, send) -> None:  # reads the whole body, as a form parser would
        while (await receive()).get("more_body"):
            pass
        await PlainTextResponse("read it all")(scope, receive, send)

    scope = {"type": "http", "method": "POST", "path": "/", "headers": [], "query_string": b""}
    asyncio.run(BodySizeLimit(app, max_bytes=10_000)(scope, receive, send))
    assert pulled == 11  # 11 chunks of 1,000 bytes: the one over 10,000 ends it
    assert sent[0]["status"] == 413


def test_concurrent_requests_all_succeed_and_health_stays_responsive(base_url, digits):
    body = png(255 - digits[0][1])
    results: list[int] = []

    def worker() -> None:
        with httpx.Client(base_url=base_url, timeout=30) as c:
            for _ in range(5):
                results.append(c.post("/predict", files={"file": ("d.png", body, "image/png")}).status_code)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    with httpx.Client(base_url=base_url, timeout=5) as c:
        assert c.get("/healthz").status_code == 200  # the event loop is not blocked by inference
    for t in threads:
        t.join()
    assert results == [200] * 40


def test_cli_serve_refuses_a_busy_port_in_one_line(capsys, trained_model):
    from mnist_cnn.cli.main import main
    from mnist_cnn.serving.server import bind

    taken = bind("127.0.0.1", 0)
    try:
        assert main(["serve", str(trained_model), "--port", str(taken.getsockname()[1])]) == 2
    finally:
        taken.close()
    err = capsys.readouterr().err.strip()
    assert "cannot listen on 127.0.0.1" in err and "--port" in err and "\n" not in err


def test_cli_serve_refuses_a_model_it_cannot_load(capsys, tmp_path):
    from mnist_cnn.cli.main import main

    (tmp_path / "model.keras").write_bytes(b"PK\x03\x04 not a keras file")
    assert main(["serve", str(tmp_path / "model.keras"), "--port", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert "cannot load" in err and "\n" not in err


PYTHON_SERVE = """
import sys
from mnist_cnn.serving import serve
serve(sys.argv[1], port=0, workers=0, on_ready=lambda server: print("serving on", server.url, flush=True))
"""


def _serve_and_ask(command: list[str], digit_png: bytes) -> tuple[dict, dict]:
    """Start a server process, wait for its ready line, ask /model and /predict, stop it with Ctrl-C."""
    import os
    import re
    import signal
    import subprocess
    import sys
    import time

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        line = process.stdout.readline()  # printed once the model is loaded and the socket bound
        url = re.search(r"http://127\.0\.0\.1:\d+", line)
        assert url, line + process.stderr.read()
        with httpx.Client(base_url=url.group(0), timeout=10) as c:
            for _ in range(100):  # uvicorn starts a moment after the line
                try:
                    assert c.get("/healthz").json() == {"status": "ok"}
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            else:
                pytest.fail("server did not answer")
            described = c.get("/model").json()
            answer = c.post("/predict", files={"file": ("d.png", digit_png, "image/png")}).json()
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=20) == 0
    finally:
        process.kill()
        process.wait()
    return described, answer


def test_serve_from_python_and_from_the_cli_behave_the_same(trained_model, digits):
    import sys

    images, _ = digits
    body = png(images[0])
    cli = _serve_and_ask([sys.executable, "-m", "mnist_cnn", "serve", str(trained_model), "--port", "0",
                          "--workers", "0"], body)
    python = _serve_and_ask([sys.executable, "-c", PYTHON_SERVE, str(trained_model)], body)
    assert cli == python  # the same model description and the same answer, to the last digit
    assert cli[0]["dataset"] == "mnist" and cli[1]["source"] == "d.png"


@pytest.mark.parametrize("hosts", ["", ",,,", " , digits.example.org"])
def test_an_empty_allowed_hosts_value_is_refused_never_switched_off(capsys, trained_model, hosts):
    from mnist_cnn.cli.main import main

    assert main(["serve", str(trained_model), "--port", "0", "--allowed-hosts", hosts]) == 2
    err = capsys.readouterr().err.strip()
    assert "--allowed-hosts" in err and "empty host" in err and "\n" not in err


def test_bound_sockets_say_tcp_so_responses_are_not_delayed():
    from mnist_cnn.serving.server import bind

    # asyncio turns Nagle off (TCP_NODELAY) only for sockets whose proto is TCP; with proto 0
    # every response waited ~40 ms for a delayed ACK (measured: 44 ms vs 0.7 ms per request).
    sock = bind("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
    finally:
        sock.close()
