"""Latency and throughput of `POST /predict` for one image, model warm, through the real command.

Starts `mnist-cnn serve` in a child process on 127.0.0.1 (a free port), sends warm-up
requests, then times N requests at concurrency 1 and 8 from an asyncio httpx client:
p50/p99 latency (ms, send to full response) and requests/s. Each request uploads one
image as multipart `file`, as the page does: a 280x280 PNG drawing (what the page sends)
and a 28x28 MNIST-style PNG. Prints a Markdown table and writes
benchmarks/results/api-<UTC time>.json. Nothing here is asserted by the tests.

    python benchmarks/bench_api.py [--model runs/<run>/model.keras] [--requests 600]

Without --model it times an untrained `cnn` (the default architecture; weights do not
change the cost). Run it alone: this machine has 2 cores, and any other load skews it.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import io
import json
import os
import platform
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

RESULTS_DIR = Path(__file__).resolve().parent / "results"
CONCURRENCIES = (1, 8)
WARMUP_REQUESTS = 50


def drawing_png() -> bytes:
    """A 7 drawn like on the page: 280x280, black 19-px strokes on white."""
    im = Image.new("L", (280, 280), 255)
    ImageDraw.Draw(im).line([(85, 55), (200, 55), (150, 140), (120, 230)], fill=0, width=19, joint="curve")
    buffer = io.BytesIO()
    im.save(buffer, format="PNG")
    return buffer.getvalue()


def mnist_png() -> bytes:
    """A 28x28 white-on-black digit-like image (a vertical bar), as MNIST files look."""
    image = np.zeros((28, 28), np.uint8)
    image[4:24, 12:16] = 255
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def untrained_model(folder: Path, architecture: str) -> Path:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from mnist_cnn.models import build_model

    path = folder / "model.keras"
    build_model(architecture).save(path)
    return path


async def run_load(url: str, body: bytes, concurrency: int, requests: int) -> dict[str, float]:
    import httpx

    latencies: list[float] = []
    remaining = requests
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:
        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                start = time.perf_counter()
                response = await client.post("/predict", files={"file": ("d.png", body, "image/png")})
                latencies.append(time.perf_counter() - start)
                if response.status_code != 200:
                    raise RuntimeError(f"HTTP {response.status_code}: {response.text}")

        for _ in range(WARMUP_REQUESTS):  # warm: graph traced, connections open, caches hot
            await client.post("/predict", files={"file": ("d.png", body, "image/png")})
        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    ms = np.array(latencies) * 1000
    return {"requests": len(ms), "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "mean_ms": float(ms.mean()), "requests_per_s": len(ms) / elapsed}


def start_server(model: Path | str, *options: str) -> tuple[subprocess.Popen, str]:
    """`mnist-cnn serve MODEL --port 0 OPTIONS...` in a child process, answering; (process, base URL).

    The process's first line is kept as `process.first_line` (it names the runtime and workers)."""
    command = [sys.executable, "-m", "mnist_cnn", "serve", str(model), "--port", "0", *options]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    line = process.first_line = process.stdout.readline()
    match = re.search(r"http://127\.0\.0\.1:\d+", line)
    if not match:
        process.kill()
        raise RuntimeError(f"server did not start: {line!r}")
    # uvicorn's access log goes to stdout: keep draining it, or the server blocks once the pipe fills.
    threading.Thread(target=lambda: process.stdout.read(), daemon=True).start()
    import httpx

    for _ in range(200):
        try:
            httpx.get(match.group(0) + "/healthz", timeout=1)
            return process, match.group(0)
        except httpx.TransportError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("server never answered /healthz")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, help="a model.keras (default: an untrained --architecture)")
    parser.add_argument("--architecture", default="cnn", help="model built when --model is not given")
    parser.add_argument("--requests", type=int, default=600, help="timed requests per row")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or untrained_model(Path(tmp), args.architecture)
        process, url = start_server(model)
        rows = []
        try:
            for image_name, body in (("280x280 drawing PNG", drawing_png()), ("28x28 PNG", mnist_png())):
                for concurrency in CONCURRENCIES:
                    result = asyncio.run(run_load(url, body, concurrency, args.requests))
                    rows.append({"image": image_name, "bytes": len(body), "concurrency": concurrency, **result})
        finally:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()

    print(f"POST /predict, one image per request, model {args.model or 'untrained ' + args.architecture}, "
          f"{args.requests} requests per row after {WARMUP_REQUESTS} warm-up\n")
    print("| image | concurrency | p50 ms | p99 ms | requests/s |")
    print("|---|---:|---:|---:|---:|")
    for row in rows:
        print(f"| {row['image']} | {row['concurrency']} | {row['p50_ms']:.1f} | {row['p99_ms']:.1f} | "
              f"{row['requests_per_s']:.0f} |")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS_DIR / f"api-{stamp}.json"
    out.write_text(json.dumps({
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]), "model": str(args.model or args.architecture),
        "rows": rows, "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                                  "python": platform.python_version(), "load_average": os.getloadavg()},
        "created_utc": stamp}, indent=2) + "\n")
    print(f"\nwritten to {out}")


if __name__ == "__main__":
    main()
