"""The "not a digit" calibration's inputs, preprocessed in a second process while training runs.

Calibrating after training reads about 8,000 images, and preparing each as `predict` would
(grayscale, paper, crop, fit 20 px, centre) is most of its time: 2-3 s, a quarter of a
`--recipe fast` run outside its training. None of that needs the trained model, and while
the main process imports TensorFlow (one core, several seconds) the other core is idle. So
`training.session` forks a child before TensorFlow loads: it computes the run's split as
`prepare_data` will, samples and prepares the same sets `calibrate.split_sources` would,
and hands them back through a pipe. After training, `Preparing.result` takes them only if
they are of exactly the split and preprocessing the model was trained with (a digest of
the sampled digits, the style); otherwise, or on any failure of the child, calibration
prepares its inputs itself as before: this can make a run faster, never different.

Fork only: a process forked after TensorFlow started its threads can deadlock, so nothing
is started once TensorFlow is imported, nor where fork does not exist. Nothing runs at import.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import sys
import time
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .calibrate import MIN_VALIDATION, CalibrationSources, negative_dataset, split_digest, split_sources

if TYPE_CHECKING:
    from ..data.prepare import SplitSettings
    from ..data.registry import Dataset

log = logging.getLogger(__name__)

WAIT_S = 120.0  # how long the parent waits for inputs the child has not sent yet (it needs ~3 s)


class Preparing:
    """A child process preparing one run's calibration inputs; `result` once, then `close`."""

    def __init__(self, process: BaseProcess, conn: Connection) -> None:
        self._process, self._conn = process, conn

    def result(self, digest: str, style: str, wait_s: float = WAIT_S) -> CalibrationSources | None:
        """The prepared sets if the child made them for split `digest` and `style`; None otherwise."""
        started = time.monotonic()
        try:
            if not self._conn.poll(wait_s):
                log.info("calibration inputs not ready after %.0f s: preparing them here", wait_s)
                return None
            sent = self._conn.recv()
        except (EOFError, OSError):  # the child died before sending
            sent = None
        finally:
            self.close()
        log.debug("calibration inputs: waited %.2f s for them (%s)", time.monotonic() - started,
                  "none sent" if sent is None else "received")
        if sent is None:
            return None
        sent_digest, sent_style, sources = sent
        if (sent_digest, sent_style) != (digest, style):
            log.info("calibration inputs were prepared for another split or style: preparing them here")
            return None
        return sources

    def close(self) -> None:
        """Stop the child if it still runs and reap it (idempotent)."""
        if self._process.is_alive():
            self._process.terminate()
        self._process.join(timeout=5)
        self._conn.close()


def start_preparing(config: "SplitSettings", dataset: "Dataset", style: str) -> Preparing | None:
    """Fork the child that prepares `config`'s calibration inputs; None where that is not safe or useful."""
    if "tensorflow" in sys.modules or "fork" not in multiprocessing.get_all_start_methods():
        return None
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(send, config, dataset, style), daemon=True,
                              name="mnist-cnn-calibration-inputs")
    for stream in (sys.stdout, sys.stderr):  # the child's exit flushes what it inherited: print it once
        stream.flush()
    try:
        process.start()
    except OSError as e:  # no memory or process slots left: calibrate the slow way
        log.info("could not start the calibration-inputs process (%s): preparing them after training", e)
        receive.close()
        send.close()
        return None
    send.close()
    return Preparing(process, receive)


def _child(conn: Connection, config: "SplitSettings", dataset: "Dataset", style: str) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the process group: the parent stops us
    try:
        os.nice(5)  # training comes first when both want a core
    except OSError:
        pass
    started = time.monotonic()
    try:
        prepared = _prepare(config, dataset, style)
        log.debug("calibration inputs prepared in %.2f s", time.monotonic() - started)
        conn.send(prepared)  # blocks until the parent reads it, after training
    except Exception as e:  # noqa: BLE001  (any failure: the parent prepares the inputs itself)
        log.debug("calibration inputs not prepared: %s", e)
        try:
            conn.send(None)
        except OSError:
            pass
    finally:
        conn.close()


def _prepare(config: "SplitSettings", dataset: "Dataset", style: str) -> tuple[str, str, CalibrationSources] | None:
    from ..data.idx import load_split
    from ..data.prepare import split_rows
    from ..data.registry import get_spec, locate

    train_rows, val_rows = split_rows(config, dataset)
    negative_name = negative_dataset(style)
    if negative_name == dataset.name or len(val_rows) < MIN_VALIDATION:
        return None  # calibration after training will say why it does not run
    folder = locate(negative_name, Path(dataset.source).parent if dataset.source else None)  # never a download
    negatives, _, _ = load_split(get_spec(negative_name), folder, "train")
    x_train, x_val = dataset.train_images[train_rows], dataset.train_images[val_rows]
    sources: Any = split_sources(x_train, x_val, negatives, negative_name)
    return split_digest(x_train, x_val), style, sources.preprocessed(style)
