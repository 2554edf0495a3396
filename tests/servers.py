"""A real uvicorn server on 127.0.0.1 (a free port) in a background thread, for API and browser tests."""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any, Iterator

STARTUP_TIMEOUT_S = 20.0


@contextlib.contextmanager
def running_server(app: Any, **limits: Any) -> Iterator[str]:
    """Serve `app` as `mnist-cnn serve` does until the block ends; yields its base URL, e.g. http://127.0.0.1:41234.

    `limits`: `serve.server_config`'s max_connections and header_timeout_s.
    """
    import uvicorn

    from mnist_cnn.serve import bind, server_config

    sock = bind("127.0.0.1", 0)  # port 0: the kernel picks a free one, no race with other tests
    port = sock.getsockname()[1]
    server = uvicorn.Server(server_config(app, log_level="warning", access_log=False, **limits))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
