"""HTTP guards in front of the app: which hosts are served, how many requests at once, how large
a request's head and body may be and how slowly the body may come.

Each is a small ASGI middleware answering in the API's own form, `{"detail": "<one line>"}`
with a 4xx (or 503) status, so a refused request reads like every other error. Written by
hand where Starlette's and uvicorn's equivalents answer in plain text (TrustedHostMiddleware,
uvicorn's concurrency limit) or have no such limit (a whole head's size, bodies that stream
in slowly or past a cap).
"""

from __future__ import annotations

import re
from typing import Sequence

import anyio
from fastapi.responses import JSONResponse
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..core.errors import MnistCnnError

BODY_TIMEOUT_S = 30.0  # a request's body must arrive within this of its head (5 MB at ~170 kB/s)
# A host name, an IPv4 address, a bracketed IPv6 address, or a "*." wildcard over a domain.
HOST_PATTERN = re.compile(r"^(\*\.)?[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?$|^\[[0-9A-Fa-f:.]+\]$|^\*$")


def parse_hosts(allowed_hosts: str | Sequence[str] | None) -> list[str] | None:
    """`--allowed-hosts` as a list; None (any host) only when not given. An empty or blank value is an
    error: the Host check never switches itself off."""
    if allowed_hosts is None:
        return None
    items = allowed_hosts.split(",") if isinstance(allowed_hosts, str) else list(allowed_hosts)
    hosts = [h.strip() for h in items]
    if not hosts or any(not h for h in hosts):
        raise MnistCnnError(f"--allowed-hosts {','.join(items)!r} names an empty host; pass host names separated "
                            f"by commas (e.g. digits.example.org), or leave the flag out to accept any host")
    bad = [h for h in hosts if not HOST_PATTERN.match(h)]
    if bad:
        raise MnistCnnError(f"--allowed-hosts: {bad[0][:100]!r} is not a host name; pass names like "
                            f"digits.example.org, *.example.org or 192.0.2.7, separated by commas")
    return hosts


MAX_HEADERS = 100  # a browser sends about 20; an API client fewer
MAX_HEAD_BYTES = 32 * 1024  # all header names and values together (cookies included)


class HeadLimit:
    """431 for a request with more than MAX_HEADERS headers or MAX_HEAD_BYTES of them.

    The HTTP parser bounds a head that arrives slowly, not one that arrives whole; this
    bounds what the app is asked to handle either way.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = scope["headers"]
            size = sum(len(name) + len(value) for name, value in headers)
            if len(headers) > MAX_HEADERS or size > MAX_HEAD_BYTES:
                detail = (f"request has {len(headers):,} headers of {size:,} bytes, over the limit of {MAX_HEADERS} "
                          f"headers and {MAX_HEAD_BYTES:,} bytes; send fewer or shorter headers")
                await JSONResponse({"detail": detail}, status_code=431,
                                   headers={"connection": "close"})(scope, receive, send)
                return
        await self.app(scope, receive, send)


RETRY_AFTER_S = 1  # what a shed request is told to wait before trying again


class LoadShed:
    """Past `max_requests` requests in flight, answer at once: a JSON 503 with Retry-After.

    The request's body is read (up to `max_body_bytes`, within BODY_TIMEOUT_S) before the
    answer, so the client, still uploading, reads a response instead of a reset connection.
    uvicorn's own limit (a plain-text 503) stays as a ceiling on connections, above this one.
    """

    def __init__(self, app: ASGIApp, max_requests: int, max_body_bytes: int) -> None:
        self.app, self.max_requests, self.max_body_bytes = app, max_requests, max_body_bytes
        self.active = 0

    async def _drain(self, receive: Receive) -> None:
        received = 0
        with anyio.move_on_after(BODY_TIMEOUT_S):
            while received <= self.max_body_bytes:
                message = await receive()
                received += len(message.get("body", b""))
                if message["type"] != "http.request" or not message.get("more_body", False):
                    return

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.active >= self.max_requests:
            await self._drain(receive)
            await JSONResponse({"detail": f"the server is busy ({self.max_requests} requests in progress); try "
                                          f"again in {RETRY_AFTER_S} s"}, status_code=503,
                               headers={"retry-after": str(RETRY_AFTER_S)})(scope, receive, send)
            return
        self.active += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.active -= 1


def host_of(header: str) -> str:
    """A Host header without its port: "a.org:8000" -> "a.org", "[::1]:8000" -> "[::1]"."""
    header = header.strip().lower()
    if header.startswith("["):
        return header[:header.find("]") + 1] if "]" in header else header
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


class HostCheck:
    """Serve only requests whose Host header (port aside) is one of `allowed_hosts`; 400 otherwise.

    "*.example.org" admits every subdomain, "*" any host. Refusing unknown hosts defeats DNS
    rebinding against a server on a private address.
    """

    def __init__(self, app: ASGIApp, allowed_hosts: Sequence[str]) -> None:
        self.app = app
        self.allowed = [h.lower() for h in allowed_hosts]

    def _allows(self, host: str) -> bool:
        return any(pattern == "*" or pattern == host or (pattern.startswith("*.") and host.endswith(pattern[1:]))
                   for pattern in self.allowed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        host = host_of(Headers(scope=scope).get("host", ""))
        if self._allows(host):
            await self.app(scope, receive, send)
            return
        shown = host[:100] or "(none)"
        await JSONResponse({"detail": f"host {shown!r} is not served here; use one of "
                                      f"{', '.join(self.allowed)}"}, status_code=400)(scope, receive, send)


class BodyTooLarge(Exception):
    """Raised from `receive` when a request body passes the cap."""


class BodyTooSlow(Exception):
    """Raised from `receive` when a request body is not complete within BODY_TIMEOUT_S."""


class BodySizeLimit:
    """ASGI middleware: refuse bodies over `max_bytes` while they stream in, before buffering them.

    A declared Content-Length over the cap is refused before reading anything; a chunked
    body is counted as it arrives and cut off at the cap.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, timeout_s: float = BODY_TIMEOUT_S) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s

    def _refusal(self) -> JSONResponse:
        return JSONResponse({"detail": f"request body over the {self.max_bytes:,}-byte limit; "
                                       f"send a smaller image"}, status_code=413)

    def _too_slow(self) -> JSONResponse:
        return JSONResponse({"detail": f"request body not complete after {self.timeout_s:g} s; send it "
                                       f"again on a faster connection"}, status_code=408,
                            headers={"connection": "close"})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            await self._refusal()(scope, receive, send)
            return
        received = 0
        started = False
        body_done = False
        deadline = anyio.current_time() + self.timeout_s

        async def counting_receive() -> Message:
            nonlocal received, body_done
            if body_done:  # after the body, receive only waits for a disconnect: no deadline
                return await receive()
            try:
                with anyio.fail_after(max(0.0, deadline - anyio.current_time())):
                    message = await receive()
            except TimeoutError:
                raise BodyTooSlow from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                body_done = not message.get("more_body", False)
                if received > self.max_bytes:
                    raise BodyTooLarge
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except (BodyTooLarge, BodyTooSlow) as e:
            if started:
                raise
            refusal = self._refusal() if isinstance(e, BodyTooLarge) else self._too_slow()
            await refusal(scope, receive, send)
