"""Shared fixtures: an isolated environment for every test, tiny IDX datasets, the real data.

No test touches the home folder or the network: the autouse fixture points HOME, the
user cache, the runs folder and the data variable at the test's tmp_path, empties the
registry's public mirror lists, and refuses to resolve any host but the loopback one.
Download tests use `http_mirror`, a real HTTP server on 127.0.0.1 with broken variants.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import http.server
import os
import socket
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from mnist_cnn.data import registry
from mnist_cnn.data.load import load_dataset
from mnist_cnn.data.prepare import normalize
from mnist_cnn.data.registry import DATASETS, DatasetSpec

REPO = Path(__file__).resolve().parents[1]
# Real MNIST / Fashion-MNIST as laid out beside the repo (CI sets MNIST_CNN_TEST_DATA).
SHARED_DATA = Path(os.environ.get("MNIST_CNN_TEST_DATA", REPO.parent / "shared" / "data"))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def load_benchmark_script(name: str, folder: str = "benchmarks"):
    """benchmarks/NAME.py (or FOLDER/NAME.py) as a module: the scripts are not a package, and find
    their helper (`common`) beside them, as `python benchmarks/NAME.py` does."""
    import importlib.util
    import sys

    if str(REPO / folder) not in sys.path:
        sys.path.insert(0, str(REPO / folder))
    spec = importlib.util.spec_from_file_location(name, REPO / folder / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / ".cache"))
    monkeypatch.setenv("MNIST_CNN_RUNS_DIR", str(tmp_path / "runs"))
    for variable in ("MNIST_CNN_DATA_DIR", "MNIST_CNN_MIRROR", "MNIST_CNN_OFFLINE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setattr(registry, "SYSTEM_DATA_DIR", tmp_path / "system-datasets")
    for name, spec in list(DATASETS.items()):  # no test may reach a public mirror
        monkeypatch.setitem(DATASETS, name, dataclasses.replace(spec, mirrors=()))
    monkeypatch.setattr(socket, "getaddrinfo", _loopback_only_getaddrinfo)
    monkeypatch.chdir(tmp_path)
    return tmp_path


_real_getaddrinfo = socket.getaddrinfo
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1", None}


def _loopback_only_getaddrinfo(host, *args, **kwargs):
    """Resolve loopback names only; any other host fails as a DNS lookup would."""
    if host not in LOOPBACK_HOSTS:
        raise socket.gaierror(socket.EAI_NONAME, f"tests resolve no host but 127.0.0.1 (asked for {host!r})")
    return _real_getaddrinfo(host, *args, **kwargs)


def idx_bytes(array: np.ndarray) -> bytes:
    """Encode a uint8 array as an IDX payload (magic 0x0000 08 ndim, big-endian dims)."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.astype(np.uint8).tobytes()


def png_bytes(image: np.ndarray) -> bytes:
    """A 2-D array of 0..255 values as the bytes of an 8-bit grayscale PNG (an upload)."""
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(image).astype(np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="session")
def digit_pngs() -> list[bytes]:
    """The first 8 MNIST test digits as PNG uploads (0 is a 7)."""
    from mnist_cnn.data.idx import load_split
    from mnist_cnn.data.registry import get_spec

    if not (SHARED_DATA / "mnist").is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (set MNIST_CNN_TEST_DATA)")
    images, _, _ = load_split(get_spec("mnist"), SHARED_DATA / "mnist", "test")
    return [png_bytes(images[i]) for i in range(8)]


def make_tiny_arrays(n_train: int = 120, n_test: int = 40, num_classes: int = 10, seed: int = 0):
    """Images whose class is readable from a bright square's position, so tiny models can learn."""
    rng = np.random.default_rng(seed)

    def split(n: int):
        labels = np.arange(n) % num_classes
        rng.shuffle(labels)
        images = rng.integers(0, 30, size=(n, 28, 28), dtype=np.uint8)
        for i, label in enumerate(labels):
            r, c = divmod(int(label), 4)
            images[i, 2 + 7 * r: 7 + 7 * r, 2 + 7 * c: 7 + 7 * c] = 255
        return images, labels.astype(np.uint8)

    return split(n_train), split(n_test)


def write_idx_folder(folder: Path, arrays, compress: bool = True) -> dict[str, str]:
    """Write the four standard IDX files; returns file name -> SHA-256 of the payload."""
    folder.mkdir(parents=True, exist_ok=True)
    (train_x, train_y), (test_x, test_y) = arrays
    contents = {"train-images-idx3-ubyte": train_x, "train-labels-idx1-ubyte": train_y,
                "t10k-images-idx3-ubyte": test_x, "t10k-labels-idx1-ubyte": test_y}
    digests = {}
    for name, array in contents.items():
        payload = idx_bytes(array)
        digests[name] = hashlib.sha256(payload).hexdigest()
        if compress:
            (folder / f"{name}.gz").write_bytes(gzip.compress(payload))
        else:
            (folder / name).write_bytes(payload)
    return digests


@pytest.fixture
def tiny_dataset(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A registered dataset "tiny" (120 train / 40 test images) under tmp_path/data/tiny; returns tmp_path/data."""
    root = tmp_path / "data"
    digests = write_idx_folder(root / "tiny", make_tiny_arrays())
    spec = DatasetSpec(name="tiny", title="tiny test set", class_names=tuple("abcdefghij"),
                            files=dict(DATASETS["mnist"].files), sha256=digests)
    monkeypatch.setitem(DATASETS, "tiny", spec)
    return root


@pytest.fixture
def shared_data() -> Path:
    if not (SHARED_DATA / "mnist").is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (set MNIST_CNN_TEST_DATA)")
    return SHARED_DATA


class _MirrorHandler(http.server.BaseHTTPRequestHandler):
    """GET /<mode>/<path under the served root>; the mode picks a good or a broken answer.

    ok: the file; 403/404/500: that status; corrupt: a valid gzip of a changed payload;
    notgzip: garbage bytes; truncated: the announced length, half the bytes, then close;
    slow: the file after `server.delay_s`; throttled: the file in slow chunks; flaky: 500
    the first time each path is asked for, then the file; bloated: the file plus 1 MiB,
    declared; bloated-nolength: the same without a Content-Length.
    """

    server: "MirrorServer"

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        mode, _, rest = self.path.lstrip("/").partition("/")
        with self.server.lock:
            self.server.requests.append(self.path)
            first_time = self.server.seen.setdefault(self.path, 0) == 0
            self.server.seen[self.path] += 1
        if mode.isdigit():
            self.send_error(int(mode))
            return
        file = (self.server.root / rest).resolve()
        if not file.is_relative_to(self.server.root.resolve()) or not file.is_file():
            self.send_error(404)
            return
        body = file.read_bytes()
        if mode == "corrupt":
            payload = bytearray(gzip.decompress(body))
            payload[-1] ^= 0xFF  # valid gzip, valid IDX, wrong contents
            body = gzip.compress(bytes(payload))
        elif mode == "notgzip":
            body = b"<html>this is not a dataset</html>" + b"\x00" * len(body)
        elif mode == "slow":
            time.sleep(self.server.delay_s)
        elif mode == "flaky" and first_time:
            self.send_error(500)
            return
        elif mode.startswith("bloated"):  # the file, then a megabyte more than it can hold
            body += b"\0" * (1 << 20)
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        if mode != "bloated-nolength":
            self.send_header("Content-Length", str(len(body)))
        else:
            self.close_connection = True  # the body ends when the connection does
        self.end_headers()
        if mode == "truncated":
            self.wfile.write(body[: len(body) // 2])
            self.close_connection = True
            return
        step = 1 << 16
        for start in range(0, len(body), step):
            self.wfile.write(body[start: start + step])
            if mode == "throttled":
                time.sleep(self.server.delay_s)


class MirrorServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, root: Path) -> None:
        super().__init__(("127.0.0.1", 0), _MirrorHandler)
        self.root = Path(root)
        self.requests: list[str] = []
        self.seen: dict[str, int] = {}
        self.lock = threading.Lock()
        self.delay_s = 2.0

    def handle_error(self, request, client_address) -> None:
        # A client that gives up mid-body (a timeout, a full disk) breaks the pipe; socketserver
        # would print that traceback to stderr, which tests read for the CLI's one-line errors.
        pass

    def url(self, mode: str = "ok") -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{mode}/"

    def gets(self, suffix: str) -> int:
        """How many requests asked for a path ending in `suffix`."""
        return sum(path.endswith(suffix) for path in self.requests)


@pytest.fixture
def http_mirror():
    """A factory: http_mirror(root) starts a MirrorServer serving `root` (stopped after the test)."""
    servers: list[MirrorServer] = []

    def start(root: Path) -> MirrorServer:
        server = MirrorServer(root)
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def closed_port_url() -> str:
    """A loopback URL nothing listens on (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


TRAINED_MODEL_IMAGES = 12_000  # enough for ~96% test accuracy after 2 epochs of keras-example
TRAINED_MODEL_EPOCHS = 2


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`model.keras` of keras-example trained briefly on real MNIST, in a run-like folder.

    Beside it: `config.json` (dataset, class names) and `metrics.json` (test accuracy on
    the first 2,000 test images). Trained once per session: about 20-30 s on 2 cores.
    """
    import json

    if not (SHARED_DATA / "mnist").is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (set MNIST_CNN_TEST_DATA)")
    import keras

    from mnist_cnn.training.models import build_model

    dataset = load_dataset("mnist", data_dir=SHARED_DATA)
    keras.utils.set_random_seed(0)
    model = build_model("keras-example")
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(normalize(dataset.train_images[:TRAINED_MODEL_IMAGES]),
              dataset.train_labels[:TRAINED_MODEL_IMAGES].astype("int32"),
              epochs=TRAINED_MODEL_EPOCHS, batch_size=64, verbose=0)
    loss, accuracy = model.evaluate(normalize(dataset.test_images[:2000]),
                                    dataset.test_labels[:2000].astype("int32"), verbose=0)
    run_dir = tmp_path_factory.mktemp("run")
    model.save(run_dir / "model.keras")
    (run_dir / "config.json").write_text(json.dumps({
        "config": {"dataset": "mnist", "model": "keras-example"},
        "data": {"class_names": list(dataset.class_names)}}))
    (run_dir / "metrics.json").write_text(json.dumps({"test": {"accuracy": accuracy, "loss": loss,
                                                               "num_images": 2000}}))
    return run_dir / "model.keras"
