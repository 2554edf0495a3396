"""`mnist-cnn serve`: the HTTP API and draw-a-digit page, its guards, its worker processes, and `serve()` that runs them.

`from mnist_cnn.serving import serve` is the Python form of the command; it is loaded on
first use, so importing a worker module does not import FastAPI.
"""

from __future__ import annotations

from typing import Any

__all__ = ["serve", "open_server", "Server"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import server

        return getattr(server, name)
    raise AttributeError(f"module 'mnist_cnn.serving' has no attribute {name!r}")
