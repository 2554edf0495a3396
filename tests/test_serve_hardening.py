"""The server under hostile clients: slow heads and bodies, idle sockets, floods, disconnects, odd hosts.

Each test runs the server exactly as `mnist-cnn serve` configures it (`serving.server.Server`),
with shortened timeouts, and checks it still answers afterwards. Bounded: no test holds
more than a few hundred sockets or waits more than a few seconds.
"""

from __future__ import annotations

import io
import logging
import socket
import time
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

import httpx
import numpy as np
import pytest
from PIL import Image
from servers import running_server

from mnist_cnn.inference.predict import Predictor

pytest.importorskip("fastapi", reason="the [serve] extra is not installed")

HEADER_TIMEOUT_S = 1.0
BODY_TIMEOUT_S = 1.0


@pytest.fixture(scope="module")
def predictor(trained_model: Path) -> Predictor:
    return Predictor.from_path(trained_model)


@pytest.fixture(scope="module")
def guarded(predictor) -> Iterator[tuple[str, int]]:
    from mnist_cnn.serving.app import create_app

    app = create_app(predictor, body_timeout_s=BODY_TIMEOUT_S)
    with running_server(app, header_timeout_s=HEADER_TIMEOUT_S, max_connections=64) as url:
        parts = urlsplit(url)
        yield parts.hostname, parts.port


def connect(address: tuple[str, int]) -> socket.socket:
    sock = socket.create_connection(address, timeout=10)
    return sock


def closed_by_server(sock: socket.socket, within_s: float) -> bool:
    """True if the server closes `sock` within `within_s` (recv returns b"" or the socket resets)."""
    sock.settimeout(within_s)
    try:
        while True:
            data = sock.recv(4096)
            if not data:
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


def healthy(address: tuple[str, int]) -> bool:
    return httpx.get(f"http://{address[0]}:{address[1]}/healthz", timeout=10).status_code == 200


def test_a_silent_connection_is_closed(guarded):
    sock = connect(guarded)
    assert closed_by_server(sock, HEADER_TIMEOUT_S + 3)
    assert healthy(guarded)


def test_a_slowloris_head_is_closed_even_while_bytes_trickle_in(guarded):
    sock = connect(guarded)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    deadline = time.monotonic() + HEADER_TIMEOUT_S + 3
    closed = False
    while time.monotonic() < deadline and not closed:
        try:
            sock.sendall(b"X-a: b\r\n")  # a header line now and then, never the blank line
        except (BrokenPipeError, ConnectionResetError):
            closed = True
            break
        closed = closed_by_server(sock, 0.3)
    assert closed
    assert healthy(guarded)


def test_a_slow_body_gets_408(guarded):
    sock = connect(guarded)
    sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 1000\r\n\r\n"
                 b"\x89PNG")
    sock.settimeout(BODY_TIMEOUT_S + 5)
    answer = b""
    while chunk := sock.recv(4096):  # the head and the body may come in separate segments
        answer += chunk
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"not complete after" in answer
    assert healthy(guarded)


def test_kept_alive_requests_still_work_after_the_head_timer(guarded):
    """The timer restarts for each request on a kept-alive connection; a quick client is never cut."""
    with httpx.Client(base_url=f"http://{guarded[0]}:{guarded[1]}", timeout=10) as client:
        for _ in range(3):
            assert client.get("/healthz").status_code == 200
            time.sleep(HEADER_TIMEOUT_S * 0.6)


def test_a_flood_of_half_open_connections_is_shed_and_the_server_recovers(guarded):
    socks = []
    for _ in range(200):
        sock = connect(guarded)
        sock.sendall(b"GET / HTTP/1.1\r\n")  # a request line, then nothing
        socks.append(sock)
    with httpx.Client(timeout=10) as client:  # over max_connections: 503 at once, not a hang
        status = client.get(f"http://{guarded[0]}:{guarded[1]}/healthz").status_code
    assert status in (200, 503)
    assert all(closed_by_server(sock, HEADER_TIMEOUT_S + 5) for sock in socks)
    for sock in socks:
        sock.close()
    assert healthy(guarded)


def test_a_client_that_disconnects_mid_upload_is_one_quiet_line(guarded, caplog):
    caplog.set_level(logging.INFO)
    sock = connect(guarded)
    sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 100000\r\n\r\n"
                 + b"\0" * 5000)
    time.sleep(0.2)
    sock.close()
    time.sleep(0.5)
    assert healthy(guarded)
    assert not [r for r in caplog.records if r.exc_info or "Exception in ASGI application" in r.getMessage()]


def test_allowed_hosts(predictor):
    from mnist_cnn.serving.app import create_app

    with running_server(create_app(predictor, allowed_hosts=["digits.example.org", "*.example.net"])) as url:
        refused = httpx.get(f"{url}/healthz", headers={"host": "evil.example.com"})
        assert refused.status_code == 400  # in the API's own form, as every other refusal
        assert refused.headers["content-type"] == "application/json"
        assert "evil.example.com" in refused.json()["detail"] and "digits.example.org" in refused.json()["detail"]
        for host in ("digits.example.org", "digits.example.org:8000", "a.example.net", "DIGITS.example.org"):
            assert httpx.get(f"{url}/healthz", headers={"host": host}).status_code == 200, host
        assert httpx.get(f"{url}/healthz", headers={"host": "example.net"}).status_code == 400


def test_an_empty_host_list_never_means_any_host(predictor):
    from mnist_cnn.core.errors import MnistCnnError
    from mnist_cnn.serving.app import create_app

    with pytest.raises(MnistCnnError, match="allowed_hosts is empty"):
        create_app(predictor, allowed_hosts=[])


@pytest.mark.parametrize("value, message", [
    ("", "empty host"), (",,,", "empty host"), ("a.org,", "empty host"),
    ("a b.org", "not a host name"), ("http://a.org", "not a host name"), ("a.org/x", "not a host name"),
])
def test_malformed_allowed_hosts_are_one_line_errors(value, message):
    from mnist_cnn.core.errors import MnistCnnError
    from mnist_cnn.serving.guards import parse_hosts

    with pytest.raises(MnistCnnError, match=message):
        parse_hosts(value)
    assert parse_hosts(" digits.example.org , *.example.net,[::1],192.0.2.7") == [
        "digits.example.org", "*.example.net", "[::1]", "192.0.2.7"]


def test_lab_tiff_is_read_and_nan_never_reaches_json(guarded):
    lab = np.full((60, 60, 3), 128, np.uint8)
    lab[..., 0] = 250
    lab[15:45, 28:33, 0] = 10
    buffer = io.BytesIO()
    Image.fromarray(lab, mode="LAB").save(buffer, format="TIFF")
    answer = httpx.post(f"http://{guarded[0]}:{guarded[1]}/predict", content=buffer.getvalue(),
                        headers={"content-type": "image/tiff"}, timeout=10)
    assert answer.status_code == 200
    assert all(np.isfinite(answer.json()["probabilities"]))


def test_a_chunked_multipart_body_over_the_cap_is_413_not_400(guarded):
    host, port = guarded
    boundary = "x" * 16
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.png\"\r\n"
            f"Content-Type: image/png\r\n\r\n").encode()

    def chunks():  # 20 MB, no Content-Length: the cap must count what streams in
        yield head
        for _ in range(20):
            yield b"\0" * (1024 * 1024)
        yield f"\r\n--{boundary}--\r\n".encode()

    response = httpx.post(f"http://{host}:{port}/predict", content=chunks(), timeout=30,
                          headers={"content-type": f"multipart/form-data; boundary={boundary}"})
    assert response.status_code == 413, response.text
    assert "limit" in response.json()["detail"]


@pytest.mark.parametrize("headers", [
    {"x-big": "a" * 100_000},  # one header of 100 KB
    {f"x-h{i}": "1" for i in range(10_000)},  # ten thousand headers
])
def test_oversized_request_heads_get_431(guarded, headers):
    host, port = guarded
    sock = connect((host, port))
    head = "GET /healthz HTTP/1.1\r\nHost: x\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    try:
        sock.sendall(head.encode())
    except (BrokenPipeError, ConnectionResetError):
        pass
    sock.settimeout(10)
    answer = b""
    try:
        while b"\r\n\r\n" not in answer:
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    except (ConnectionResetError, socket.timeout):
        pass
    sock.close()
    assert answer.startswith(b"HTTP/1.1 431"), answer[:200]
    assert healthy(guarded)


def test_requests_past_the_limit_get_a_json_503_with_retry_after_and_none_a_closed_connection(predictor):
    import io
    import threading

    from PIL import Image

    from mnist_cnn.serving.app import create_app

    noise = (np.random.default_rng(0).random((700, 700)) * 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, format="PNG")  # ~500 KB: uploads overlap
    body = buffer.getvalue()
    results: list[object] = []

    def upload(url: str) -> None:
        try:
            response = httpx.post(f"{url}/predict", files={"file": ("n.png", body, "image/png")}, timeout=60)
            results.append((response.status_code, response.headers.get("retry-after"),
                            response.headers.get("content-type")))
        except httpx.TransportError as e:  # what the audit saw: a reset instead of an answer
            results.append(e)

    with running_server(create_app(predictor), max_connections=4) as url:
        threads = [threading.Thread(target=upload, args=(url,)) for _ in range(60)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert healthy(tuple(urlsplit(url)[1].split(":")[0:1]) + (urlsplit(url).port,))
    errors = [r for r in results if isinstance(r, Exception)]
    assert errors == [] and len(results) == 60
    shed = [r for r in results if r[0] == 503]
    assert shed, results  # 60 uploads at once against 4 in flight: some are shed...
    assert all(r == (503, "1", "application/json") for r in shed), shed  # ... each with a JSON answer and Retry-After
    assert all(r[0] in (200, 422, 503) for r in results), results  # noise may be refused as "not a digit" (422) or read
