"""Per-image inference latency of one model in Keras, ONNX Runtime and LiteRT, on one core, in one run.

Exports the model with `mnist-cnn export` (each export checked against Keras on the test
set), then times each runtime on real preprocessed MNIST test images through the same
`backends` objects `predict` and `serve` call: batch 1 (an API request) and a batch of
1,000. The runtimes take turns call by call, so machine noise falls on all of them alike.
Prints a Markdown table of medians and 90th percentiles (ms per call) and writes
benchmarks/results/runtimes-<UTC time>.json. Nothing here is asserted by the tests.

    python benchmarks/bench_runtimes.py [--model runs/<run>/model.keras] [--calls 500] [--data-dir DIR]

Without --model it times an untrained `cnn` (the default architecture; weights do not
change the cost). One core: the process is pinned to one CPU and every runtime gets one
thread. Run it alone: any other load on the machine skews it.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import RESULTS, model_record, write_result

from mnist_cnn.data.load import load_dataset
from mnist_cnn.data.prepare import normalize

WARMUP_CALLS = 30
BATCHES = (1, 1000)  # one API request; a bulk job


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, help="a model.keras (default: an untrained --architecture)")
    parser.add_argument("--architecture", default="cnn", help="architecture to time without --model (default cnn)")
    parser.add_argument("--calls", type=int, default=500, help="timed calls per runtime at batch 1 (default 500)")
    parser.add_argument("--data-dir", type=Path, help="folder holding mnist/ (default: the usual search)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the JSON result")
    return parser.parse_args()


def one_core() -> int:
    """Pin this process to one CPU and make TensorFlow use one thread; returns the CPU."""
    cpu = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpu})
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    return cpu


def time_calls(runtimes: dict, batch: np.ndarray, calls: int) -> dict[str, list[float]]:
    """Milliseconds per call of each runtime on `batch`, the runtimes taking turns."""
    for model in runtimes.values():
        for _ in range(WARMUP_CALLS):
            model(batch)
    times: dict[str, list[float]] = {name: [] for name in runtimes}
    order = list(runtimes)
    for call in range(calls):
        for name in order[call % len(order):] + order[:call % len(order)]:  # rotate who goes first
            start = time.perf_counter()
            runtimes[name](batch)
            times[name].append((time.perf_counter() - start) * 1000)
    return times


def main() -> int:
    args = parse_args()
    cpu = one_core()
    import keras

    from mnist_cnn.export.export import export_model
    from mnist_cnn.inference.runtimes import KerasModel, LiteRtModel, OnnxModel
    from mnist_cnn.training.models import build_model

    dataset = load_dataset("mnist", args.data_dir)
    images = normalize(dataset.test_images)  # float32 (N, 28, 28, 1) in [0, 1]
    with tempfile.TemporaryDirectory() as tmp:
        model_path = args.model
        if model_path is None:
            model_path = Path(tmp) / "model.keras"
            build_model(args.architecture).save(model_path)
        exports = {fmt: export_model(model_path, fmt, Path(tmp) / f"m{suffix}", data_dir=args.data_dir)
                   for fmt, suffix in (("onnx", ".onnx"), ("litert", ".tflite"))}
        runtimes = {"keras": KerasModel(keras.models.load_model(model_path)),
                    "onnxruntime": OnnxModel.load(exports["onnx"].path, threads=1),
                    "litert": LiteRtModel(exports["litert"].path, threads=1)}
        labels = {name: model.runtime for name, model in runtimes.items()}
        rows = []
        for size in BATCHES:
            calls = args.calls if size == 1 else max(5, args.calls // 50)
            times = time_calls(runtimes, images[:size], calls)
            for name, ms in times.items():
                rows.append({"runtime": labels[name], "batch": size, "calls": calls,
                             "median_ms": float(np.median(ms)), "p90_ms": float(np.percentile(ms, 90)),
                             "median_us_per_image": float(np.median(ms)) * 1000 / size})
    print(f"model {args.model or 'untrained ' + args.architecture}, one core (CPU {cpu}), one thread per runtime; "
          f"parity: " + ", ".join(f"{fmt} {r.parity.max_abs_diff:.1e}" for fmt, r in exports.items()))
    print("| runtime | batch | calls | median ms | p90 ms | median µs per image |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['runtime']} | {row['batch']} | {row['calls']} | {row['median_ms']:.3f} | {row['p90_ms']:.3f} "
              f"| {row['median_us_per_image']:.1f} |")
    model = model_record(args.model) if args.model else {"model": f"untrained {args.architecture}"}
    result = write_result("runtimes", {**model, "rows": rows,
                                       "parity": {fmt: r.parity.max_abs_diff for fmt, r in exports.items()}}, args.out)
    print(f"written to {result}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
