"""Throughput of `POST /predict` against `GET /healthz` (the HTTP stack's own ceiling), with ApacheBench.

Starts `mnist-cnn serve MODEL --runtime R --workers W` for each model, runtime and worker
count asked, then alternates `ab -k -c 8` rounds on /healthz and on /predict (a raw
`image/png` body: a 28x28 MNIST test digit) so both see the same machine state, and
reports for each server the median requests/s of each, their ratio, /predict's p50 and
p99 latency and failed requests.
Writes benchmarks/results/ab-<UTC time>.json. Needs Debian's `apache2-utils` (ab). Run it
alone: this machine has 2 cores, and any other load skews it. Nothing here is asserted by tests.

    python benchmarks/bench_ab.py [--models mnist M.keras M.onnx] [--runtimes auto keras] [--workers 0 2]
                                  [--requests 4000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import io
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

RESULTS_DIR = Path(__file__).resolve().parent / "results"
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def digit_png() -> bytes:
    """A real MNIST test digit (test image 0, a 7) as a 28x28 PNG; a drawn bar if the data is not here."""
    try:
        from mnist_cnn.data.idx import load_split
        from mnist_cnn.data.registry import get_spec

        images, _, _ = load_split(get_spec("mnist"), Path(os.environ.get("MNIST_CNN_DATA_DIR", SHARED_DATA)) / "mnist",
                                  "test")
        image = images[0]
    except Exception:  # noqa: BLE001  (a benchmark input, not a result)
        image = np.zeros((28, 28), np.uint8)
        image[4:24, 12:16] = 255
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def ab(url: str, requests: int, concurrency: int, body: Path | None = None) -> dict[str, float]:
    command = ["ab", "-q", "-k", "-n", str(requests), "-c", str(concurrency)]
    if body is not None:
        command += ["-p", str(body), "-T", "image/png"]
    out = subprocess.run([*command, url], capture_output=True, text=True, timeout=600).stdout

    def number(pattern: str) -> float:
        match = re.search(pattern, out, re.MULTILINE)
        if not match:
            raise RuntimeError(f"ab output lacks {pattern!r}:\n{out[-2000:]}")
        return float(match.group(1))

    return {"requests_per_s": number(r"^Requests per second:\s+([\d.]+)"),
            "p50_ms": number(r"^\s+50%\s+(\d+)"), "p99_ms": number(r"^\s+99%\s+(\d+)"),
            "failed": number(r"^Failed requests:\s+(\d+)"),
            "non_2xx": float(re.search(r"^Non-2xx responses:\s+(\d+)", out, re.MULTILINE).group(1))
            if "Non-2xx" in out else 0.0}


def serve(model: str, runtime: str, workers: int | None) -> tuple[subprocess.Popen, str, int]:
    """Start `mnist-cnn serve`; its process, URL and the number of worker processes it reports."""
    from bench_api import start_server  # noqa: PLC0415  (beside this script)

    options = ["--runtime", runtime, *(["--workers", str(workers)] if workers is not None else [])]
    process, url = start_server(model, *options)
    count = re.search(r"(\d+) worker processes", process.first_line)
    return process, url, int(count.group(1)) if count else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["mnist"],
                        help=".keras/.onnx files or shipped names (default mnist)")
    parser.add_argument("--runtimes", nargs="+", default=["auto"], help="serve --runtime values (default auto)")
    parser.add_argument("--workers", nargs="+", type=int, default=None,
                        help="serve --workers values (default: serve's own default)")
    parser.add_argument("--requests", type=int, default=4000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if shutil.which("ab") is None:
        print("ab not found: apt-get install apache2-utils", file=sys.stderr)
        return 2

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        body = Path(folder) / "digit.png"
        body.write_bytes(digit_png())
        settings = [(m, r, w) for m in args.models for r in args.runtimes for w in (args.workers or [None])]
        for model, runtime, workers in settings:
            process, url, worker_count = serve(model, runtime, workers)
            try:
                ab(f"{url}/predict", 200, args.concurrency, body)  # warm-up
                health, predict = [], []
                for _ in range(args.rounds):
                    health.append(ab(f"{url}/healthz", args.requests, args.concurrency))
                    predict.append(ab(f"{url}/predict", args.requests, args.concurrency, body))
            finally:
                process.send_signal(signal.SIGINT)
                process.wait(timeout=30)
            healthz_rps = statistics.median(r["requests_per_s"] for r in health)
            predict_rps = statistics.median(r["requests_per_s"] for r in predict)
            rows.append({"model": model, "runtime": runtime, "workers": worker_count,
                         "healthz_rps": healthz_rps, "predict_rps": predict_rps,
                         "ratio": round(predict_rps / healthz_rps, 3),
                         "predict_p50_ms": statistics.median(r["p50_ms"] for r in predict),
                         "predict_p99_ms": statistics.median(r["p99_ms"] for r in predict),
                         "failed": sum(r["failed"] + r["non_2xx"] for r in predict + health),
                         "rounds": {"healthz": health, "predict": predict}})

    print("| model | runtime | workers | /healthz req/s | /predict req/s | ratio | /predict p50 ms | p99 ms | failed |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {Path(r['model']).name} | {r['runtime']} | {r['workers']} | {r['healthz_rps']:,.0f} | {r['predict_rps']:,.0f} | {r['ratio']:.2f} | "
              f"{r['predict_p50_ms']:.0f} | {r['predict_p99_ms']:.0f} | {r['failed']:.0f} |")
    RESULTS_DIR.mkdir(exist_ok=True)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS_DIR / f"ab-{stamp}.json"
    out.write_text(json.dumps({"command": " ".join(sys.argv), "machine": platform.platform(),
                               "cpu_count": os.cpu_count(), "load_average_before": os.getloadavg(),
                               "concurrency": args.concurrency, "requests": args.requests, "rows": rows}, indent=2))
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
