"""Worker processes for `serve`: each request's image work runs outside the HTTP process.

A request for one 28x28 digit is mostly Python and NumPy work (decoding, the
preprocessing steps, the "not a digit" rule, the JSON) plus the model call. In one
process all of that holds the interpreter lock that the event loop needs too, so the
server would use one core and spend much of it handing work between threads. Here the HTTP
process only parses requests and writes answers; `WorkerPool` sends each image (bytes or
a pixel array) to one of N processes, each with its own copy of the model, which
returns the finished JSON body (measurements: benchmarks/README.md, "Serving throughput
with ApacheBench").

Workers are started with "spawn" (never fork: the parent has TensorFlow's threads
running) and load the model from its file: a `.keras` model that serves on LiteRT or
ONNX Runtime sends the converted file (`convert.for_serving`), so the conversion
happens once. A worker that dies is replaced; its request gets a 503.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
import pickle
import signal
from collections import Counter, deque
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any, Callable

import numpy as np
import orjson

from ..core.errors import MnistCnnError, first_line
from ..core.messages import DEFAULT_LANG, check_lang
from ..inference.acceptance import Acceptance
from ..inference.predict import Prediction, Predictor
from ..runs.run import ModelInfo

log = logging.getLogger(__name__)

STARTUP_TIMEOUT_S = 300.0  # a worker imports NumPy, Pillow and its runtime (TensorFlow for LiteRT)


DEFAULT_BATCH = 4  # waiting /predict requests a worker answers together (serve --batch)
MAX_BATCH = 64  # --batch's ceiling: a batch is one message and one model call
# Only small uploads go together: a digit or a drawing (a few KB) costs a worker mostly per
# call, which a batch shares; a photo costs tens of ms of its own, and batched it would hold
# the requests behind it in one worker while another worker stood idle.
BATCH_MAX_BYTES = 64 * 1024

MAX_DEFAULT_WORKERS = 4  # each holds a model and its runtime (~60 MB with ai-edge-litert); past this, HTTP limits


def default_workers() -> int:
    """`serve --workers` unless given: one per core this process may use, at most 4; 0 on one core.

    One more than cores had the next image ready while the HTTP process handed an answer
    over; since a free worker takes every waiting request (up to `--batch`), it has its
    next images anyway, and on 2 cores 2 workers served more than 3 (benchmarks/README.md,
    "Serving throughput with ApacheBench"). On one core a worker would only add the
    hand-over to the same core's work.
    """
    from ..core.system import default_threads  # the usable cores, honouring taskset and cgroups

    cores = default_threads()
    return 0 if cores < 2 else min(cores, MAX_DEFAULT_WORKERS)


class WorkerDied(MnistCnnError):
    """A worker process ended while it held a request (killed, out of memory); another replaces it."""


DIED = "a worker process stopped while reading this image; send it again"


@dataclass(frozen=True)
class PredictorSpec:
    """What a worker needs to build the same Predictor: picklable, no model object inside."""

    source_file: tuple[str, Path]  # (kind, file): backends.reload
    info: ModelInfo
    max_bytes: int
    max_pixels: int
    acceptance: Acceptance | None
    file: str | None
    reader_file: Path | None = None  # the touching-digit reader beside the model, loaded at the first /read
    writing_file: Path | None = None  # the writing scorer of the rule, if it uses one ...
    writing_litert: Path | None = None  # ... and the LiteRT file the server converted it to


def spec_of(predictor: Predictor) -> PredictorSpec | None:
    """The spec of `predictor`, or None when its model exists only in memory (no file to load)."""
    source = getattr(predictor.backend, "source_file", None)
    if source is None:
        return None
    return PredictorSpec(source, predictor.info, predictor.max_bytes, predictor.max_pixels,
                         predictor.acceptance, predictor.file, predictor.reader_file, predictor.writing_file,
                         predictor.writing_litert)


# -- the work, as run in a worker (or in a thread of the server when there are no workers) --------------

def _json(document: dict[str, Any]) -> bytes:
    # Compact UTF-8, as Starlette's JSONResponse writes; orjson is far faster than json.dumps
    # on the 784 pixels. It would write NaN as null, but the predictor refuses NaN first.
    return orjson.dumps(document)


def predict_json(predictor: Predictor, source: bytes | np.ndarray, name: str, top_k: int,
                 lang: str = DEFAULT_LANG) -> bytes:
    """The /predict answer for one image, as a JSON body (a refusal's reason in `lang`)."""
    return _prediction_json(predictor.predict([source], top_k, [name], lang)[0])


def _prediction_json(prediction: Prediction) -> bytes:
    return _json(prediction.to_dict(include_image=True))  # the page shows the image the model saw


def predict_json_together(predictor: Predictor, requests: list[tuple[Any, ...]]) -> list[tuple[str, Any]]:
    """Several /predict answers (each request's `predict_json` arguments) from one model call and one
    "not a digit" rule: ("ok", JSON body) or ("error", MnistCnnError) per request, in order.

    Each image is prepared alone, so a bad upload fails only its own request; if the shared call
    fails (a model that gives NaN for one image), each request is answered alone instead.
    """
    answers: list[tuple[str, Any]] = [("error", MnistCnnError("not answered"))] * len(requests)
    ready: list[tuple[int, np.ndarray, str, int, str]] = []
    for i, (source, name, top_k, *rest) in enumerate(requests):
        lang = rest[0] if rest else DEFAULT_LANG
        try:
            check_lang(lang)
            ready.append((i, predictor.preprocess(source), name, top_k, lang))
        except MnistCnnError as e:
            answers[i] = ("error", e)
    if not ready:
        return answers
    indices, images, names, top_ks, langs = zip(*ready)
    try:
        predictions = predictor.predict_requests(np.stack(images), names, top_ks, langs)
    except MnistCnnError:
        for i, image, name, top_k, lang in ready:
            try:
                prediction = predictor.predict_preprocessed(image[np.newaxis], [name], top_k, lang)[0]
                answers[i] = ("ok", _prediction_json(prediction))
            except MnistCnnError as e:
                answers[i] = ("error", e)
        return answers
    for i, prediction in zip(indices, predictions):
        answers[i] = ("ok", _prediction_json(prediction))
    return answers


def read_json(predictor: Predictor, source: bytes | np.ndarray, name: str, lang: str = DEFAULT_LANG) -> bytes:
    """The /read answer (every digit of a number), as a JSON body (a refusal's reason in `lang`)."""
    from ..inference.numbers import read_number

    return _json(read_number(predictor, source, name, lang).to_dict(include_images=True))


def _build(spec: PredictorSpec) -> Predictor:
    from ..inference.runtimes import reload

    predictor = Predictor(reload(spec.source_file, threads=1), spec.info, spec.max_bytes, spec.max_pixels)
    predictor.acceptance, predictor.file, predictor.reader_file = spec.acceptance, spec.file, spec.reader_file
    predictor.reader_on_litert = spec.source_file[0] != "keras"  # as `serve_with` decided in the server
    predictor.writing_file, predictor.writing_litert = spec.writing_file, spec.writing_litert
    if predictor.writing_file is not None:
        predictor.writing_scorer()  # loaded now, not during the first request
    predictor.probabilities(np.zeros((1, 28, 28), np.float32))  # the first call allocates: do it now
    return predictor


def _answer(predictor: Predictor, task: Callable[..., bytes], args: tuple[Any, ...]) -> tuple[str, Any]:
    try:
        return "ok", task(predictor, *args)
    except MnistCnnError as e:
        return "error", e
    except Exception as e:  # noqa: BLE001  (a bug: the server answers 500, the worker lives on)
        log.exception("task %s failed", getattr(task, "__name__", task))
        return "error", RuntimeError(f"{type(e).__name__} in {getattr(task, '__name__', task)}")


Call = tuple[Callable[..., bytes], tuple[Any, ...]]  # a task and its arguments, as a worker receives them


def _answer_all(predictor: Predictor, tasks: list[Call]) -> list[tuple[str, Any]]:
    """One answer per task: several /predict requests together, anything else one at a time."""
    if len(tasks) > 1 and all(task is predict_json for task, _ in tasks):
        try:
            return predict_json_together(predictor, [args for _, args in tasks])
        except Exception:  # noqa: BLE001  (a bug in the shared path: answer each alone rather than fail all)
            log.exception("answering %d requests together failed; answering each alone", len(tasks))
    return [_answer(predictor, task, args) for task, args in tasks]


def _pickled(answers: list[tuple[str, Any]]) -> bytes:
    try:
        return pickle.dumps(answers, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # noqa: BLE001  (an exception that does not pickle: say so in its place)
        safe = []
        for kind, value in answers:
            try:
                pickle.dumps(value)
                safe.append((kind, value))
            except Exception:  # noqa: BLE001
                safe.append(("error", RuntimeError(f"unpicklable {type(value).__name__}")))
        return pickle.dumps(safe, protocol=pickle.HIGHEST_PROTOCOL)


def _worker_main(conn: Connection, spec: PredictorSpec) -> None:
    """A worker process: build the Predictor, say ready (or why not), then answer tasks until the pipe closes.

    Messages are pickles of a list of (task, args) in and a list of ("ok", bytes) or ("error",
    MnistCnnError) out, one per task.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the process group: the server stops us
    try:
        predictor = _build(spec)
    except Exception as e:  # noqa: BLE001  (reported by the server, in one line)
        conn.send(("error", f"a worker could not load the model: {first_line(e)}"))
        return
    conn.send(("ready", os.getpid()))
    while True:
        try:
            tasks = pickle.loads(conn.recv_bytes())
        except (EOFError, OSError):  # the server closed the pipe or died: stop
            return
        try:
            conn.send_bytes(_pickled(_answer_all(predictor, tasks)))
        except OSError:  # the server closed the pipe while these images were read (shutting down): stop
            return


@dataclass(eq=False)
class _Task:
    task: Callable[..., bytes]
    args: tuple[Any, ...]
    future: asyncio.Future[bytes]


def _batchable(task: _Task) -> bool:
    """Whether a waiting request may share a worker's message: a /predict of a small upload."""
    if task.task is not predict_json:
        return False
    source = task.args[0]
    return (len(source) if isinstance(source, (bytes, bytearray)) else getattr(source, "nbytes", 0)) <= BATCH_MAX_BYTES


def _message(tasks: list[_Task]) -> tuple[list[_Task], bytes]:
    """The tasks whose arguments pickle, and their message to a worker; each other one fails alone
    (the server's 500) rather than its batch."""
    try:
        return tasks, pickle.dumps([(t.task, t.args) for t in tasks], protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:  # noqa: BLE001  (find which, below)
        pass
    sendable = []
    for task in tasks:
        try:
            pickle.dumps((task.task, task.args))
            sendable.append(task)
        except Exception as e:  # noqa: BLE001
            task.future.set_exception(RuntimeError(f"cannot send this request to a worker ({type(e).__name__})"))
    return sendable, pickle.dumps([(t.task, t.args) for t in sendable], protocol=pickle.HIGHEST_PROTOCOL)


class _Worker:
    def __init__(self, process: BaseProcess, conn: Connection, pid: int) -> None:
        self.process, self.conn, self.pid = process, conn, pid
        self.pending: list[_Task] = []  # what it is reading now


class WorkerPool:
    """N worker processes, each with the model of `spec`; `run` sends one task and awaits its bytes.

    Hand-written rather than a ProcessPoolExecutor, for speed: the executor moves every
    task through two helper threads and a queue, which costs the HTTP process much of its
    time per request. Here each worker has its own pipe, read by the
    event loop itself (`add_reader`), and a request takes an idle worker or waits for one.

    Requests that wait go together: a worker that comes free takes up to `batch` waiting
    /predict requests of small uploads (`BATCH_MAX_BYTES`) in one message and answers them
    with one model call and one "not a digit" rule (`predict_json_together`), which costs a
    worker about a quarter less per image in batches of 3-4. Nothing waits for a batch to
    fill: an idle worker takes a request at once, so a lone request is answered as before
    (benchmarks/README.md, "Serving throughput with ApacheBench")."""

    def __init__(self, spec: PredictorSpec, workers: int, batch: int = DEFAULT_BATCH) -> None:
        if workers < 1:
            raise MnistCnnError(f"--workers {workers}: a pool needs at least one worker")
        if not 1 <= batch <= MAX_BATCH:
            raise MnistCnnError(f"--batch {batch} must be between 1 and {MAX_BATCH} (1: one request at a time)")
        self.spec, self.workers, self.batch = spec, workers, batch
        self._context = multiprocessing.get_context("spawn")
        self._all: list[_Worker] = []
        self._idle: deque[_Worker] = deque()  # filled on the event loop, at the first request
        self._waiting: deque[_Task] = deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.batch_sizes: Counter[int] = Counter()  # how many messages carried how many requests

    def start(self) -> list[int]:
        """Start every worker and wait until each has loaded the model; their process ids.

        MnistCnnError (one line) if a worker cannot load it, before the server takes requests.
        """
        starting = [self._spawn() for _ in range(self.workers)]  # all start at once, then each is awaited
        try:
            self._all = [self._wait_ready(*pair) for pair in starting]
        except BaseException:
            for process, conn in starting:
                conn.close()
                process.kill()
            raise
        return self.pids()

    def _spawn(self) -> tuple[BaseProcess, Connection]:
        ours, theirs = self._context.Pipe(duplex=True)
        process = self._context.Process(target=_worker_main, args=(theirs, self.spec), daemon=True,
                                        name="mnist-cnn-worker")
        process.start()
        theirs.close()  # the worker holds its end; ours alone must see EOF when it dies
        return process, ours

    def _wait_ready(self, process: BaseProcess, conn: Connection) -> _Worker:
        if not conn.poll(STARTUP_TIMEOUT_S):
            raise MnistCnnError(f"a worker did not load the model within {STARTUP_TIMEOUT_S:g} s; try --workers 0")
        try:
            kind, value = conn.recv()
        except (EOFError, OSError):
            raise MnistCnnError(f"a worker process ended while starting (exit code {process.exitcode}); "
                                f"try --workers 0") from None
        if kind != "ready":
            raise MnistCnnError(f"{value}; try --workers 0")
        return _Worker(process, conn, value)

    def _attach(self) -> None:
        """Bind to the running event loop: readers on every pipe, the idle queue (once per loop)."""
        loop = asyncio.get_running_loop()
        if self._loop is loop:
            return
        self._loop, self._idle = loop, deque(self._all)
        for worker in self._all:
            loop.add_reader(worker.conn.fileno(), self._on_answer, worker)

    def _on_answer(self, worker: _Worker) -> None:
        try:
            answers = pickle.loads(worker.conn.recv_bytes())
        except (EOFError, OSError):  # the worker died (killed, out of memory)
            self._replace(worker)
            return
        except Exception as e:  # noqa: BLE001  (an answer that does not unpickle: its requests fail, not the loop)
            answers = [("error", RuntimeError(f"unreadable answer from a worker ({type(e).__name__})"))]
        tasks, worker.pending = worker.pending, []
        if not isinstance(answers, list) or len(answers) != len(tasks):
            answers = [("error", RuntimeError("a worker answered the wrong number of requests"))] * len(tasks)
        for task, (kind, value) in zip(tasks, answers):
            if task.future.done():  # its request was cancelled (client gone)
                continue
            if kind == "ok":
                task.future.set_result(value)
            else:
                task.future.set_exception(value)
        self._idle.append(worker)
        self._dispatch()

    def _replace(self, worker: _Worker) -> None:
        assert self._loop is not None
        log.error("worker process %d died; starting another", worker.pid)
        self._loop.remove_reader(worker.conn.fileno())
        worker.conn.close()
        for task in worker.pending:
            if not task.future.done():
                task.future.set_exception(WorkerDied(DIED))
        worker.pending = []
        self._all.remove(worker)
        if worker in self._idle:
            self._idle.remove(worker)
        # Starting one is slow: a thread waits for it while the others keep serving.
        self._loop.run_in_executor(None, self._respawn)

    def _respawn(self) -> None:
        try:
            fresh = self._wait_ready(*self._spawn())
        except MnistCnnError as e:
            log.error("could not replace the worker: %s", e)
            return
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._adopt, fresh)

    def _adopt(self, worker: _Worker) -> None:
        self._all.append(worker)
        assert self._loop is not None
        self._loop.add_reader(worker.conn.fileno(), self._on_answer, worker)
        self._idle.append(worker)
        self._dispatch()

    async def run(self, task: Callable[..., bytes], *args: Any) -> bytes:
        """`task(predictor, *args)` in a worker. MnistCnnError as the worker raised it; WorkerDied if it died."""
        self._attach()
        assert self._loop is not None
        waiting = _Task(task, args, self._loop.create_future())
        self._waiting.append(waiting)
        self._dispatch()
        return await waiting.future

    def _dispatch(self) -> None:
        """Give waiting requests to idle workers in order, consecutive small /predict ones up to `batch` at once."""
        while self._idle and self._waiting:
            first = self._waiting.popleft()
            if first.future.done():  # cancelled while it waited (client gone)
                continue
            tasks = [first]
            while (len(tasks) < self.batch and self._waiting and _batchable(first)
                   and _batchable(self._waiting[0])):
                task = self._waiting.popleft()
                if not task.future.done():
                    tasks.append(task)
            tasks, message = _message(tasks)
            if not tasks:
                continue
            worker = self._idle.popleft()
            worker.pending = tasks
            self.batch_sizes[len(tasks)] += 1
            try:
                worker.conn.send_bytes(message)
            except OSError:  # its pipe is gone: the reader sees the EOF and replaces it
                worker.pending = []
                for task in tasks:
                    task.future.set_exception(WorkerDied(DIED))

    def pids(self) -> list[int]:
        """Process ids of the running workers (for tests and diagnostics)."""
        return sorted(w.pid for w in self._all)

    def close(self) -> None:
        """Close every pipe (a worker stops when its pipe closes) and wait for the processes."""
        for worker in self._all:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(worker.conn.fileno())
            worker.conn.close()
        for worker in self._all:
            worker.process.join(timeout=5)
            if worker.process.is_alive():
                worker.process.kill()
        self._all = []
