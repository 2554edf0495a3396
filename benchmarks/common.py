"""What the benchmark scripts share: where results go and how they are stamped, the data, the
images a request sends, and a real `mnist-cnn serve` to measure.

Every result file records the command, the UTC time and the machine (CPU model with
"(AMX)" where it has bfloat16 matrix units, core count, versions): numbers differ by CPU.
A model is recorded so that anyone can find it again: a shipped model by its name, a file by
its SHA-256, its path relative to the repository (or, outside it, only its run folder and
file name: an absolute path names one machine's temporary folder) and the training settings
of the run folder it sits in. Scripts run as `python benchmarks/NAME.py`, so this folder is
on `sys.path` already.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

RESULTS = Path(__file__).resolve().parent / "results"
REPO = RESULTS.parents[1]
SERVER_START_TIMEOUT_S = 120.0


def utc_stamp() -> str:
    """e.g. 20261204T170000Z: the time part of result file names."""
    from mnist_cnn.runs.run import utc_stamp as stamp

    return stamp()


def environment() -> dict[str, Any]:
    """The machine and versions a number was measured on (imports Keras: call it once a run is done)."""
    from mnist_cnn.runs.run import environment as env

    return env()


def portable_path(path: str | Path) -> str:
    """`path` as a result file records it: relative to the repository when inside it, else its
    last two parts (`RUN_FOLDER/model.keras`), never an absolute path of this machine."""
    resolved = Path(path).expanduser().resolve()
    if resolved.is_relative_to(REPO):
        return resolved.relative_to(REPO).as_posix()
    return Path(*resolved.parts[-2:]).as_posix()


def command_line(argv: list[str] | None = None) -> str:
    """The command that made a result (`sys.argv` by default), with every absolute path in it
    made portable as `portable_path` does: `bench_ab.py --models mnist 20261127T214819Z-mnist-cnn/model.keras`."""
    argv = sys.argv if argv is None else argv
    words = [Path(argv[0]).name]
    for word in argv[1:]:
        flag, equals, value = word.partition("=") if word.startswith("--") else ("", "", word)
        if value.startswith(("/", "~")):
            value = portable_path(value)
        words.append(f"{flag}{equals}{value}")
    return " ".join(words)


def model_record(model: str | Path) -> dict[str, Any]:
    """A model as a result names it, so that a figure can be matched to the model it was measured on:
    a shipped name as given, a file by `portable_path`; always the SHA-256 of the file measured; and,
    when the file sits in a run folder, the settings it was trained with (`config.json`'s `config`)."""
    from mnist_cnn.core.hashing import sha256_file
    from mnist_cnn.inference.shipped import BUNDLED_MODELS, resolve_model

    path = resolve_model(model)
    record: dict[str, Any] = {"model": str(model) if str(model) in BUNDLED_MODELS else portable_path(path),
                              "model_sha256": sha256_file(path)}
    config = path.parent / "config.json"
    try:
        record["model_settings"] = json.loads(config.read_text(encoding="utf-8"))["config"]
    except (OSError, ValueError, KeyError, TypeError):
        pass  # a model outside a run folder (an export, a copied file): its digest still names it
    return record


def write_result(stem: str, payload: dict[str, Any], folder: Path = RESULTS, suffix: str = "") -> Path:
    """`folder/<stem>-<UTC time><suffix>.json` holding `payload` plus the command and the machine; its path."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{stem}-{utc_stamp()}{suffix}.json"
    record = {"command": command_line(), "environment": environment(),
              "load_average_before": os.getloadavg(), **payload}
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path


def data_dir() -> Path | None:
    """`MNIST_CNN_DATA_DIR` if set; None lets the package search its usual places (cache, system copies)."""
    value = os.environ.get("MNIST_CNN_DATA_DIR")
    return Path(value) if value else None


def png_bytes(image: np.ndarray | Image.Image) -> bytes:
    buffer = io.BytesIO()
    (image if isinstance(image, Image.Image) else Image.fromarray(image)).save(buffer, format="PNG")
    return buffer.getvalue()


def digit_png() -> bytes:
    """MNIST test image 0 (a 7) as a 28x28 PNG, found as the package finds data; a drawn bar if absent."""
    from mnist_cnn.core.errors import MnistCnnError
    from mnist_cnn.data.idx import load_split
    from mnist_cnn.data.registry import get_spec, locate

    try:
        images, _, _ = load_split(get_spec("mnist"), locate("mnist", data_dir()), "test")
        image = images[0]
    except MnistCnnError:  # no copy of MNIST here: the cost of a request does not depend on the digit
        image = np.zeros((28, 28), np.uint8)
        image[4:24, 12:16] = 255
    return png_bytes(image)


def drawing_png() -> bytes:
    """A 7 drawn as on the page: 280x280, black 19-px strokes on white (what the page uploads)."""
    image = Image.new("L", (280, 280), 255)
    ImageDraw.Draw(image).line([(85, 55), (200, 55), (150, 140), (120, 230)], fill=0, width=19, joint="curve")
    return png_bytes(image)


def start_server(model: Path | str, *options: str) -> tuple[subprocess.Popen, str]:
    """`mnist-cnn serve MODEL --port 0 OPTIONS...` in a child process, answering /healthz; (process, base URL).

    The server's ready line is kept as `process.first_line` (it names the runtime and workers).
    Stop it with SIGINT, as Ctrl-C would.
    """
    import httpx

    command = [sys.executable, "-m", "mnist_cnn", "serve", str(model), "--port", "0", *options]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = process.first_line = process.stdout.readline()
    match = re.search(r"http://127\.0\.0\.1:\d+", line)
    if not match:
        process.kill()
        raise RuntimeError(f"server did not start: {line!r}")
    # uvicorn's access log goes to stdout: keep draining it, or the server blocks once the pipe fills.
    threading.Thread(target=lambda: process.stdout.read(), daemon=True).start()
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            httpx.get(match.group(0) + "/healthz", timeout=1)
            return process, match.group(0)
        except httpx.TransportError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("server never answered /healthz")
