"""A real server on 127.0.0.1 (a free port) in a background thread, for API and browser tests.

The server is the library's own (`serving.server.Server`: the protocol, limits and
shutdown `mnist-cnn serve` uses), around an app the test built.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator


@contextlib.contextmanager
def running_server(app: Any, **limits: Any) -> Iterator[str]:
    """Serve `app` as `mnist-cnn serve` does until the block ends; yields its base URL, e.g. http://127.0.0.1:41234.

    `limits`: `Server`'s max_connections and header_timeout_s.
    """
    from mnist_cnn.serving.server import Server, bind

    sock = bind("127.0.0.1", 0)  # port 0: the kernel picks a free one, no race with other tests
    with Server(app, sock, log_level="warning", access_log=False, **limits) as server, server.in_thread() as url:
        yield url
