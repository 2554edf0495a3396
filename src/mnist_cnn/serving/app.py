"""The HTTP API and the draw-a-digit page: `create_app(predictor)` builds a FastAPI app.

Routes: `POST /predict` (an image upload in the multipart field `file`, a raw `image/*`
body, or JSON `{"image": 28x28 numbers 0..255}`), `POST /read` (the same inputs: every
digit of a number, left to right, with boxes; `numbers.read_number`), `GET /model`,
`GET /healthz`, the page
at `/` (files in `static/`, no CDN) and OpenAPI docs at `/docs` (Swagger UI served from
the `fastapi-offline` package, so it works without internet) and `/openapi.json`.

Every bad input is a 4xx with `{"detail": "<one line>"}`, never a 500: bodies over the cap
are cut off while they stream in (413), decoding runs under byte and pixel caps, and each
image's work runs in worker processes (`serving.workers`; or threads) so the event loop
keeps answering. The app holds no global
state: the predictor is passed in. Import this module only when serving (FastAPI is an extra).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, Any, Callable, Sequence

import anyio
import anyio.to_thread
import numpy as np
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from pydantic import ValidationError
from starlette.datastructures import UploadFile
from starlette.requests import ClientDisconnect

from ..core.errors import ImageTooLargeError, MnistCnnError, first_line
from ..core.messages import LANGUAGES, lang_from_header
from ..core.version import __version__
from ..inference.predict import DEFAULT_TOP_K, Predictor
from .guards import BODY_TIMEOUT_S, BodySizeLimit, HeadLimit, HostCheck
from .schema import ImageJSON, NumberJSON, PredictionJSON
from .workers import WorkerDied, WorkerPool, predict_json, read_json

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).with_name("static")
MULTIPART_OVERHEAD_BYTES = 64 * 1024  # boundary and part headers on top of the image itself
# Images read at once: more gains nothing on a few cores, and each big image may take
# a few hundred MB while decoded, so this also bounds memory (others wait their turn).
MAX_CONCURRENT_IMAGES = 4


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a pixel value")


def _pixels_from_json(body: bytes) -> np.ndarray:
    """JSON `{"image": [[...28 numbers...] x 28]}` -> float (28, 28); HTTPException on anything else."""
    try:
        document = json.loads(body, parse_constant=_reject_constant)  # NaN/Infinity are not JSON
    except RecursionError:  # [[[[... deeper than Python's stack: not an image either
        raise HTTPException(400, "JSON nested too deeply; send {\"image\": 28 rows of 28 numbers 0..255}")
    except ValueError as e:
        raise HTTPException(400, f"body is not valid JSON ({first_line(e)}); send {{\"image\": 28x28 numbers 0..255}}")
    try:
        return np.asarray(ImageJSON.model_validate(document).image, dtype=np.float32)
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        raise HTTPException(422, f"{where}: {first['msg']}; send {{\"image\": 28 rows of 28 numbers "
                                 f"0..255}}") from None


_PREDICT_BODY = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "required": ["file"],
                                       "properties": {"file": {"type": "string", "format": "binary"}}}},
    "image/png": {"schema": {"type": "string", "format": "binary"}},
    "application/json": {"schema": ImageJSON.model_json_schema()},
}}}
_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"description": text} for code, text in [
        (400, "malformed JSON or multipart body"), (413, "body or image over the size/pixel limit"),
        (415, "unsupported content type"), (422, "not a readable image, blank image, or bad pixel array")]}


def create_app(predictor: Predictor, default_top_k: int = DEFAULT_TOP_K,
               allowed_hosts: Sequence[str] | None = None, body_timeout_s: float = BODY_TIMEOUT_S,
               pool: WorkerPool | None = None) -> FastAPI:
    """The API and page around one loaded `predictor`; uploads are capped at its `max_bytes`.

    `allowed_hosts`: accepted `Host` headers (e.g. ["digits.example.org"]); others get 400,
    which defeats DNS rebinding against a server on a private address. None: any host.
    `pool`: worker processes that do each image's work (`serving.workers`); None: threads of
    this process do it with `predictor`.
    """
    max_image_bytes = predictor.max_bytes
    workers = anyio.CapacityLimiter(MAX_CONCURRENT_IMAGES)
    app = FastAPIOffline(title="mnist-cnn", version=__version__,
                         description="Read handwritten digits (or Fashion-MNIST items) with a trained CNN. "
                                     "The page at / lets you draw one.")
    app.add_middleware(BodySizeLimit, max_bytes=max_image_bytes + MULTIPART_OVERHEAD_BYTES, timeout_s=body_timeout_s)
    if allowed_hosts is not None:  # an empty list is an error, never "any host"
        if not list(allowed_hosts):
            raise MnistCnnError("allowed_hosts is empty: name at least one host, or pass None to accept any")
        app.add_middleware(HostCheck, allowed_hosts=list(allowed_hosts))
    app.add_middleware(HeadLimit)  # added last, so it runs first

    @app.exception_handler(RequestValidationError)
    async def one_line_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        # FastAPI's default echoes the input back, which may hold NaN and fail to serialise.
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        where = ".".join(str(part) for part in first["loc"])
        return JSONResponse({"detail": f"{where}: {first['msg']}"}, status_code=422)

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Liveness: the model is loaded and the server answers."""
        return {"status": "ok"}

    @app.get("/model")
    async def model_info() -> dict[str, Any]:
        """Name, dataset, class names, parameter count and the run's test metrics."""
        return predictor.describe()

    async def answer(request: Request, task: Callable[..., bytes], *args: Any) -> Response:
        """Read the request's image, run `task(predictor, source, name, *args)` off the event loop, answer its JSON."""
        try:
            source, name = await _read_image(request)
        except ClientDisconnect:  # the client gave up mid-upload: nobody to answer, nothing to log loudly
            log.info("client %s disconnected during its upload", request.client.host if request.client else "?")
            return Response(status_code=400)
        try:
            # Decoding and the model are CPU work: worker processes (or threads) keep the event loop free.
            if pool is not None:
                body = await pool.run(task, source, name, *args)
            else:
                body = await anyio.to_thread.run_sync(task, predictor, source, name, *args, limiter=workers)
        except WorkerDied as e:
            raise HTTPException(503, str(e)) from None
        except ImageTooLargeError as e:
            raise HTTPException(413, str(e)) from None
        except MnistCnnError as e:  # an unreadable image, or a model that cannot score it
            raise HTTPException(422, str(e)) from None
        # The task wrote the JSON: no re-validation of hundreds of numbers (the response model is for the docs).
        return Response(body, media_type="application/json")

    @app.post("/predict", response_model=PredictionJSON, responses=_ERRORS, openapi_extra=_PREDICT_BODY)
    async def predict(request: Request,
                      top_k: Annotated[int, Query(ge=1, le=1000)] = default_top_k,
                      lang: Annotated[str | None, Query(description=_LANG_HELP)] = None) -> Response:
        """Top-k classes for one image, with all probabilities, the 28x28 image the model saw, and whether
        it looks like one of the model's classes at all (`accepted`, `reason`)."""
        return await answer(request, predict_json, top_k, _language(request, lang))

    @app.post("/read", response_model=NumberJSON, responses=_ERRORS, openapi_extra=_PREDICT_BODY)
    async def read(request: Request,
                   lang: Annotated[str | None, Query(description=_LANG_HELP)] = None) -> Response:
        """Every digit of a number, left to right: the string, and per digit its class, probability,
        box (in the uploaded image's pixels), acceptance and the 28x28 image the model saw."""
        return await answer(request, read_json, _language(request, lang))

    return app


_LANG_HELP = (f"language of a refusal's reason: {', '.join(LANGUAGES)}; without it, the request's "
              f"Accept-Language header chooses (English when it names none of these)")


def _language(request: Request, lang: str | None) -> str:
    """The `lang` parameter if given (422 if not one of ours), else what Accept-Language prefers."""
    if lang is None:
        return lang_from_header(request.headers.get("accept-language"))
    if lang not in LANGUAGES:
        raise HTTPException(422, f"unknown language {lang[:40]!r}; pass lang={' or lang='.join(LANGUAGES)}, or "
                                 f"leave it out to follow Accept-Language")
    return lang


async def _read_image(request: Request) -> tuple[bytes | np.ndarray, str]:
    """The image of a /predict request: (bytes or a 28x28 array, a name); HTTPException if none."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    source: bytes | np.ndarray
    if content_type == "multipart/form-data":
        form = await request.form(max_files=1, max_fields=8, max_part_size=64 * 1024)
        upload = form.get("file")
        if not isinstance(upload, UploadFile):
            raise HTTPException(422, "multipart body has no file field named 'file'; "
                                     "send it as -F file=@digit.png")
        source, name = await upload.read(), upload.filename or "upload"
    elif content_type == "application/json":
        source, name = _pixels_from_json(await request.body()), "json"
    elif content_type.startswith("image/"):
        source, name = await request.body(), "upload"
    else:
        raise HTTPException(415, f"unsupported content type {content_type or '(none)'!r}; send "
                                 f"multipart/form-data (field 'file'), image/*, or application/json")
    return source, name
