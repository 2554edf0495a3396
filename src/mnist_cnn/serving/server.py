"""`serve()`: the whole life of `mnist-cnn serve`, for the CLI, the tests and the benchmarks alike.

`open_server` checks the settings, binds the socket first (a busy port fails in one line
before TensorFlow loads), loads the model, moves its calls to the fastest runtime that
gives the same answers, starts the worker processes, freezes the long-lived objects out
of the garbage collector's sight and builds the app; `Server.run` serves until Ctrl-C and
`Server.close` releases the workers and the socket. `serve` is the three in one. The HTTP
routes live in `app`, the workers in `workers`. Import only when serving (FastAPI and
uvicorn are an extra).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import ipaddress
import logging
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from fastapi import FastAPI

from ..core.errors import MnistCnnError
from ..core.system import quiet_tensorflow
from ..inference.convert import RUNTIMES
from ..inference.predict import Predictor
from .app import MULTIPART_OVERHEAD_BYTES, create_app
from .guards import LoadShed, parse_hosts
from .workers import DEFAULT_BATCH, MAX_BATCH, WorkerPool, default_workers, spec_of

log = logging.getLogger(__name__)

HEADER_TIMEOUT_S = 10.0  # a request's line and headers must arrive within this, from its first byte on
KEEP_ALIVE_S = 5  # an idle kept-alive connection is closed after this
MAX_CONNECTIONS = 200  # more concurrent connections (or requests) are answered 503 at once
LISTEN_BACKLOG = 1024  # connections the kernel queues before accept: a burst of clients waits, not refused
CONNECTION_CEILING_MIN = 256  # open connections uvicorn accepts at least, whatever --max-connections
DRAIN_BYTES = 8 * 1024 * 1024  # a shed request's body read before its 503 (the default upload cap and more)
MAX_UPLOAD_MB = 1024  # --max-upload-mb's ceiling: a digit is kilobytes; this only stops nonsense
MAX_WORKERS = 64  # --workers' ceiling: each worker holds a model
STARTUP_TIMEOUT_S = 60.0  # `Server.in_thread` waits this long for uvicorn to listen


def check_settings(max_upload_mb: float, max_connections: int, workers: int | None,
                   batch: int = DEFAULT_BATCH) -> None:
    """One-line errors for settings no server can run with (NaN and infinity included)."""
    if not 0 < max_upload_mb <= MAX_UPLOAD_MB:  # no comparison holds for nan
        raise MnistCnnError(f"--max-upload-mb {max_upload_mb} must be a number in (0, {MAX_UPLOAD_MB}]")
    if max_connections < 1:
        raise MnistCnnError(f"--max-connections {max_connections} must be >= 1")
    if workers is not None and not 0 <= workers <= MAX_WORKERS:
        raise MnistCnnError(f"--workers {workers} must be between 0 and {MAX_WORKERS} (0: no worker processes)")
    if not 1 <= batch <= MAX_BATCH:
        raise MnistCnnError(f"--batch {batch} must be between 1 and {MAX_BATCH} (1: one request at a time)")


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on host:port; MnistCnnError (one line) if the address is taken or invalid."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # proto=IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say TCP, and
        # without it Nagle + delayed ACK add ~40 ms to every response.
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(LISTEN_BACKLOG)
    except (OSError, OverflowError) as e:
        raise MnistCnnError(f"cannot listen on {host}:{port} ({getattr(e, 'strerror', None) or e}); "
                            f"pass another --port or --host") from None
    return sock


def guarded_protocol(header_timeout_s: float = HEADER_TIMEOUT_S) -> type:
    """uvicorn's h11 protocol plus a deadline for each request's line and headers.

    uvicorn closes a kept-alive connection that stays silent, but every byte that arrives
    restarts that timer and nothing bounds the time a request's head may take: a client
    sending a header byte every few seconds (slowloris) holds its connection forever. Here
    the head of every request must be complete within `header_timeout_s` of the
    connection's start or of the previous response, else the connection is closed.
    (Written by hand: uvicorn has no such setting; a reverse proxy in front would have one.)
    """
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    class GuardedH11Protocol(H11Protocol):
        _head_timer: asyncio.TimerHandle | None = None

        def _arm_head_timer(self) -> None:
            self._cancel_head_timer()
            self._head_timer = self.loop.call_later(header_timeout_s, self._head_timeout)

        def _cancel_head_timer(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def _head_timeout(self) -> None:
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                log.info("closing a connection from %s: no complete request head in %g s",
                         self.client[0] if self.client else "?", header_timeout_s)
                self.transport.close()

        def connection_made(self, transport: Any) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm_head_timer()

        def handle_events(self) -> None:
            super().handle_events()
            if self.conn.their_state is not h11.IDLE:  # the head is in: the body has its own deadline
                self._cancel_head_timer()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
                self._arm_head_timer()

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_head_timer()
            super().connection_lost(exc)

    return GuardedH11Protocol


def connection_ceiling(max_requests: int) -> int:
    """Open connections past which uvicorn refuses new ones: well above the requests in flight
    (a burst of clients gets LoadShed's JSON 503, not a reset), well below a process's 1,024
    file descriptors at the default limit."""
    return max(4 * max_requests, CONNECTION_CEILING_MIN)


def server_config(app: FastAPI, log_level: str = "info", access_log: bool = True,
                  max_connections: int = MAX_CONNECTIONS, header_timeout_s: float = HEADER_TIMEOUT_S,
                  max_body_bytes: int = DRAIN_BYTES) -> Any:
    """uvicorn's settings for serving `app`: the guarded protocol, keep-alive, and the limits.

    Past `max_connections` requests in flight, `LoadShed` answers a JSON 503 with Retry-After
    (after reading the body, so the client gets the answer); uvicorn's own cap, a plain 503
    and a closed connection, is a ceiling on connections (idle ones too) far above it.
    """
    import uvicorn

    shed = LoadShed(app, max_connections, max_body_bytes)
    return uvicorn.Config(shed, log_level=log_level, access_log=access_log, http=guarded_protocol(header_timeout_s),
                          timeout_keep_alive=KEEP_ALIVE_S, limit_concurrency=connection_ceiling(max_connections))


def start_workers(predictor: Predictor, workers: int | None, batch: int = DEFAULT_BATCH) -> WorkerPool | None:
    """A started WorkerPool (each worker answering up to `batch` waiting /predict requests together), or
    None for threads (0 workers, or a model with no file to load again)."""
    count = default_workers() if workers is None else workers
    if count == 0:
        return None
    spec = spec_of(predictor)
    if spec is None:
        log.warning("the model has no file the workers could load: serving with threads")
        return None
    pool = WorkerPool(spec, count, batch)
    pool.start()
    return pool


@dataclass
class Server:
    """A bound socket, an app and (optionally) its worker pool: `run` serves, `close` releases.

    Build one with `open_server`, or around any app (tests do) with the socket from `bind`.
    """

    app: FastAPI
    sock: socket.socket
    pool: WorkerPool | None = None
    max_connections: int = MAX_CONNECTIONS
    header_timeout_s: float = HEADER_TIMEOUT_S
    log_level: str = "info"
    access_log: bool = True
    description: str = ""  # what is served, for the ready line
    max_body_bytes: int = DRAIN_BYTES  # the upload cap: how much of a shed request's body is read
    _uvicorn: Any = field(default=None, repr=False)

    @property
    def url(self) -> str:
        host, port = self.sock.getsockname()[:2]
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    @property
    def exposed(self) -> bool:
        """Whether other machines can reach it (not a loopback address)."""
        return not ipaddress.ip_address(self.sock.getsockname()[0]).is_loopback

    def run(self) -> None:
        """Serve until Ctrl-C or `stop` (a normal end, not an error)."""
        import uvicorn

        self._uvicorn = uvicorn.Server(server_config(self.app, self.log_level, self.access_log, self.max_connections,
                                                     self.header_timeout_s, self.max_body_bytes))
        try:
            self._uvicorn.run(sockets=[self.sock])
        except KeyboardInterrupt:  # uvicorn shuts down cleanly, then re-raises the signal it caught
            pass

    def stop(self) -> None:
        """Ask a running `run` to finish its requests and return."""
        if self._uvicorn is not None:
            self._uvicorn.should_exit = True

    @contextlib.contextmanager
    def in_thread(self) -> Iterator[str]:
        """`run` in a background thread until the block ends; yields the base URL once it listens."""
        thread = threading.Thread(target=self.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while self._uvicorn is None or not self._uvicorn.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise MnistCnnError("the server did not start")
            time.sleep(0.02)
        try:
            yield self.url
        finally:
            self.stop()
            thread.join(timeout=10)

    def close(self) -> None:
        if self.pool is not None:
            self.pool.close()
        self.sock.close()

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_server(model: str | Path | Predictor = "mnist", *, host: str = "127.0.0.1", port: int = 8000,
                max_upload_mb: float = 5.0, allowed_hosts: str | Sequence[str] | None = None,
                runtime: str = "auto", max_connections: int = MAX_CONNECTIONS, workers: int | None = None,
                batch: int = DEFAULT_BATCH, header_timeout_s: float = HEADER_TIMEOUT_S, log_level: str = "info",
                access_log: bool = True) -> Server:
    """Everything `mnist-cnn serve` does before it answers: the settings checked, the socket bound,
    the model loaded and converted, the workers started, the garbage collector told to skip the
    long-lived objects. `model`: a path, a shipped model's name, or a loaded Predictor."""
    check_settings(max_upload_mb, max_connections, workers, batch)
    hosts = parse_hosts(allowed_hosts)
    if runtime not in RUNTIMES:
        raise MnistCnnError(f"unknown runtime {runtime!r}: choose one of {', '.join(RUNTIMES)}")
    sock = bind(host, port)  # first: a busy port fails in one line, before TensorFlow loads
    pool = None
    try:
        if isinstance(model, Predictor):
            predictor, name = model, model.file or model.backend.name
        else:
            if Path(model).suffix != ".onnx":  # an ONNX model serves on ONNX Runtime alone: no TF start-up
                quiet_tensorflow()
            predictor, name = Predictor.from_path(Path(model), max_bytes=int(max_upload_mb * 1024 * 1024)), str(model)
        predictor.serve_with(runtime)
        pool = start_workers(predictor, workers, batch)
        app = create_app(predictor, allowed_hosts=hosts, pool=pool)
    except BaseException:
        if pool is not None:
            pool.close()
        sock.close()
        raise
    # TensorFlow and Keras leave hundreds of thousands of long-lived objects: without this,
    # every full garbage collection walks them all while requests wait (benchmarks/README.md,
    # "Serving throughput with ApacheBench").
    gc.collect()
    gc.freeze()
    where = f"{predictor.backend.runtime}, " + (f"{pool.workers} worker processes, batch {pool.batch}" if pool else "no workers")
    return Server(app, sock, pool, max_connections, header_timeout_s, log_level, access_log,
                  description=f"{name} ({where})", max_body_bytes=predictor.max_bytes + MULTIPART_OVERHEAD_BYTES)


def serve(model: str | Path | Predictor = "mnist", *, on_ready: Callable[[Server], None] | None = None,
          **settings: Any) -> None:
    """`mnist-cnn serve` as a function: `open_server(model, **settings)`, then serve until Ctrl-C, then close.

    `on_ready(server)` is called once it listens (the CLI prints the address there);
    without it the address is logged.
    """
    with open_server(model, **settings) as server:
        if on_ready is not None:
            on_ready(server)
        else:
            log.info("serving %s on %s", server.description, server.url)
            if server.exposed:
                log.warning("%s is reachable from other machines; the API has no authentication", server.url)
        server.run()
