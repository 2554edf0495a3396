"""Throughput and latency of `POST /predict` through the real `mnist-cnn serve`, beside `GET /healthz`.

For each model, runtime, worker count and batch asked, starts `mnist-cnn serve MODEL --runtime R
--workers W --batch B` on a free port and loads it with one of two clients (`--cycles N`: every
setting N times, the settings taking turns, for a side-by-side comparison):

- `--client ab` (default; Debian's `apache2-utils`): alternating `ab -k -c C` rounds on
  /healthz (the HTTP stack's own ceiling) and /predict (a raw `image/png` body: MNIST test
  digit 0), so both see the same machine state; reports the median requests/s of each,
  their ratio, /predict's p50 and p99 latency, failed requests, and where the CPU went:
  milliseconds per request of the server process, its worker processes and `ab` (from
  /proc and getrusage), which says what a faster /predict has to cut.
- `--client httpx`: an asyncio httpx client timing each request from send to full
  response at concurrency 1 and C, uploading as the page does (multipart `file`): the
  page's 280x280 drawing and a 28x28 digit; p50/p99 and requests/s.

Writes benchmarks/results/ab-<UTC time>.json or api-<UTC time>.json (with the CPU model).
Run it alone: this machine has 2 cores, and any other load skews it. Nothing here is
asserted by the tests.

    python benchmarks/bench_ab.py [--models mnist M.keras M.onnx] [--runtimes auto keras] [--workers 0 2]
                                  [--batches 1 4] [--cycles 3] [--requests 4000] [--rounds 3] [--client ab|httpx]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import RESULTS, digit_png, drawing_png, model_record, start_server, write_result

from mnist_cnn.serving.workers import DEFAULT_BATCH as BATCH_DEFAULT

WARMUP_REQUESTS = 50  # httpx client: before timing, so graphs are traced and connections open


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds process `pid` has used so far (Linux /proc); 0 if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def children_of(pid: int) -> list[int]:
    """Live processes whose parent is `pid`: the server's worker processes."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                found.append(int(entry.name))
    return found


def ab(url: str, requests: int, concurrency: int, body: Path | None = None,
       server_pid: int | None = None) -> dict[str, float]:
    """One `ab` round; with `server_pid`, also the CPU ms per request of the server, its workers and ab."""
    command = ["ab", "-q", "-k", "-n", str(requests), "-c", str(concurrency)]
    if body is not None:
        command += ["-p", str(body), "-T", "image/png"]
    if server_pid is not None:
        workers = children_of(server_pid)
        before = (cpu_seconds(server_pid), sum(cpu_seconds(w) for w in workers),
                  resource.getrusage(resource.RUSAGE_CHILDREN))
    out = subprocess.run([*command, url], check=False, capture_output=True, text=True, timeout=600).stdout

    def number(pattern: str) -> float:
        match = re.search(pattern, out, re.MULTILINE)
        if not match:
            raise RuntimeError(f"ab output lacks {pattern!r}:\n{out[-2000:]}")
        return float(match.group(1))

    found = {"requests_per_s": number(r"^Requests per second:\s+([\d.]+)"),
             "p50_ms": number(r"^\s+50%\s+(\d+)"), "p99_ms": number(r"^\s+99%\s+(\d+)"),
             "failed": number(r"^Failed requests:\s+(\d+)"),
             "non_2xx": float(re.search(r"^Non-2xx responses:\s+(\d+)", out, re.MULTILINE).group(1))
             if "Non-2xx" in out else 0.0}
    if server_pid is not None:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)  # ab, reaped by subprocess.run
        per_request = 1000.0 / requests
        found["cpu_ms_per_request"] = {
            "server": round((cpu_seconds(server_pid) - before[0]) * per_request, 3),
            "workers": round((sum(cpu_seconds(w) for w in workers) - before[1]) * per_request, 3),
            "ab": round((usage.ru_utime + usage.ru_stime - before[2].ru_utime - before[2].ru_stime) * per_request, 3)}
    return found


async def httpx_load(url: str, body: bytes, concurrency: int, requests: int) -> dict[str, float]:
    """`requests` uploads of `body` from `concurrency` concurrent clients: p50/p99 ms and requests/s."""
    import httpx
    import numpy as np

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

        for _ in range(WARMUP_REQUESTS):
            await client.post("/predict", files={"file": ("d.png", body, "image/png")})
        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    ms = np.array(latencies) * 1000
    return {"requests": len(ms), "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "mean_ms": float(ms.mean()), "requests_per_s": len(ms) / elapsed}


def serve(model: str, runtime: str, workers: int | None, batch: int | None) -> tuple[subprocess.Popen, str, int]:
    """Start `mnist-cnn serve`; its process, URL and the number of worker processes it reports."""
    options = ["--runtime", runtime, *(["--workers", str(workers)] if workers is not None else []),
               *(["--batch", str(batch)] if batch is not None else [])]
    process, url = start_server(model, *options)
    count = re.search(r"(\d+) worker processes", process.first_line)
    return process, url, int(count.group(1)) if count else 0


def stop(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


def median_cpu(rounds: list[dict]) -> dict[str, float]:
    """Median CPU ms per request of each process group over `rounds`."""
    return {part: statistics.median(r["cpu_ms_per_request"][part] for r in rounds)
            for part in ("server", "workers", "ab")}


def ab_rows(url: str, body: Path, args: argparse.Namespace, server_pid: int) -> dict:
    ab(f"{url}/predict", 200, args.concurrency, body)  # warm-up
    health, predict = [], []
    for _ in range(args.rounds):
        health.append(ab(f"{url}/healthz", args.requests, args.concurrency, server_pid=server_pid))
        predict.append(ab(f"{url}/predict", args.requests, args.concurrency, body, server_pid))
    healthz_rps = statistics.median(r["requests_per_s"] for r in health)
    predict_rps = statistics.median(r["requests_per_s"] for r in predict)
    return {"healthz_rps": healthz_rps, "predict_rps": predict_rps, "ratio": round(predict_rps / healthz_rps, 3),
            "predict_p50_ms": statistics.median(r["p50_ms"] for r in predict),
            "predict_p99_ms": statistics.median(r["p99_ms"] for r in predict),
            "failed": sum(r["failed"] + r["non_2xx"] for r in predict + health),
            # Where the CPU goes per request: the server process, its workers, the client.
            "healthz_cpu_ms": median_cpu(health), "predict_cpu_ms": median_cpu(predict),
            "rounds": {"healthz": health, "predict": predict}}


def httpx_rows(url: str, args: argparse.Namespace) -> list[dict]:
    rows = []
    for image, body in (("280x280 drawing PNG", drawing_png()), ("28x28 PNG", digit_png())):
        for concurrency in sorted({1, args.concurrency}):
            result = asyncio.run(httpx_load(url, body, concurrency, args.requests))
            rows.append({"image": image, "bytes": len(body), "concurrency": concurrency, **result})
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="+", default=["mnist"],
                        help=".keras/.onnx files or shipped names (default mnist)")
    parser.add_argument("--runtimes", nargs="+", default=["auto"], help="serve --runtime values (default auto)")
    parser.add_argument("--workers", nargs="+", type=int, default=None,
                        help="serve --workers values (default: serve's own default)")
    parser.add_argument("--batches", nargs="+", type=int, default=None,
                        help="serve --batch values (default: serve's own default)")
    parser.add_argument("--cycles", type=int, default=1,
                        help="run every setting this many times, the settings taking turns (default 1)")
    parser.add_argument("--client", choices=("ab", "httpx"), default="ab")
    parser.add_argument("--requests", type=int, default=None, help="per round (default: ab 4000, httpx 600)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="ab rounds per endpoint (median reported)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the results file (default results/)")
    args = parser.parse_args()
    args.requests = args.requests or (4000 if args.client == "ab" else 600)
    if args.client == "ab" and shutil.which("ab") is None:
        print("ab not found: apt-get install apache2-utils", file=sys.stderr)
        return 2

    rows = []
    with tempfile.TemporaryDirectory() as folder:
        body = Path(folder) / "digit.png"
        body.write_bytes(digit_png())
        settings = [(m, r, w, b) for m in args.models for r in args.runtimes for w in (args.workers or [None])
                    for b in (args.batches or [None])] * args.cycles
        for model, runtime, workers, batch in settings:
            process, url, worker_count = serve(model, runtime, workers, batch)
            try:
                found = ab_rows(url, body, args, process.pid) if args.client == "ab" else {"rows": httpx_rows(url, args)}
            finally:
                stop(process)
            rows.append({**model_record(model), "runtime": runtime, "workers": worker_count,
                         "batch": BATCH_DEFAULT if batch is None else batch, **found})

    if args.client == "ab":
        print("| model | runtime | workers | batch | /healthz req/s | /predict req/s | ratio | /predict p50 ms | p99 ms "
              "| failed |")
        print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in rows:
            print(f"| {Path(r['model']).name} | {r['runtime']} | {r['workers']} | {r['batch']} | {r['healthz_rps']:,.0f} | "
                  f"{r['predict_rps']:,.0f} | {r['ratio']:.2f} | {r['predict_p50_ms']:.0f} | {r['predict_p99_ms']:.0f} | "
                  f"{r['failed']:.0f} |")
        print("\nCPU ms per request (median of rounds): server process, its workers, ab")
        for r in rows:
            for endpoint in ("healthz", "predict"):
                cpu = r[f"{endpoint}_cpu_ms"]
                print(f"  {Path(r['model']).name} {r['runtime']} {r['workers']} workers, batch {r['batch']} /{endpoint}: "
                      f"server {cpu['server']:.3f}, workers {cpu['workers']:.3f}, ab {cpu['ab']:.3f}")
    else:
        print("| model | runtime | workers | batch | image | concurrency | p50 ms | p99 ms | requests/s |")
        print("|---|---|---:|---:|---|---:|---:|---:|---:|")
        for r in rows:
            for row in r["rows"]:
                print(f"| {Path(r['model']).name} | {r['runtime']} | {r['workers']} | {r['batch']} | {row['image']} | "
                      f"{row['concurrency']} | {row['p50_ms']:.1f} | {row['p99_ms']:.1f} | {row['requests_per_s']:.0f} |")
    out = write_result("ab" if args.client == "ab" else "api", {
        "client": args.client, "concurrency": args.concurrency, "requests": args.requests, "rows": rows}, args.out)
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
