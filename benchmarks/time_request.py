"""In-process cost of one `/predict` answer: decode, preprocess, model call, "not a digit" rule, JSON.

    python benchmarks/time_request.py [MODEL] [--runtime auto|keras|litert|onnx] [--calls 3000]

Loads MODEL (default: the shipped mnist) as `serve` does, builds the Predictor a worker
process builds (one thread), and times `serving.workers.predict_json` on a 28x28 PNG of
MNIST test digit 0 (a drawn bar if the data is not found), the same for 4 requests answered
together (as `serve --batch 4` answers waiting ones), then its parts: preprocessing alone,
the model call alone, and the model call's cost per image in a batch of 8. Prints medians
of 5 repeats, in ms, and writes `results/request-cost-<time>.json` (with the machine: the model call's cost depends on the
CPU's vector units, which a VM's model name does not say). Run it alone.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from common import RESULTS, digit_png, model_record, write_result

from mnist_cnn.inference.predict import Predictor
from mnist_cnn.inference.runtimes import reload
from mnist_cnn.serving.workers import predict_json, predict_json_together


BATCH = 8  # images in one model call, as a worker batching the requests of `ab -c 8` would make
TOGETHER = 4  # requests a worker answers together (serve's default --batch)


def per_call_ms(function, calls: int) -> float:
    for _ in range(min(200, calls)):
        function()
    times = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(calls):
            function()
        times.append(1e3 * (time.perf_counter() - start) / calls)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", nargs="?", default="mnist")
    parser.add_argument("--runtime", default="auto")
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    served = Predictor.from_path(args.model)
    served.serve_with(args.runtime)
    predictor = Predictor(reload(served.backend.source_file, threads=1), served.info)
    predictor.acceptance = served.acceptance
    # the rule's writing scorer, as a worker gets it: the file the server converted once
    predictor.writing_file, predictor.writing_litert = served.writing_file, served.writing_litert
    png = digit_png()
    image = predictor.preprocess(png)[np.newaxis]
    batch = np.repeat(image, BATCH, axis=0)
    together = [(png, "upload", 3)] * TOGETHER
    rows = {"whole answer (predict_json)": (lambda: predict_json(predictor, png, "upload", 3), 1),
            # what `serve --batch` does with waiting requests: one model call and one rule for all
            f"whole answer per request, {TOGETHER} together": (lambda: predict_json_together(predictor, together),
                                                              TOGETHER),
            "preprocessing": (lambda: predictor.preprocess(png), 1),
            "model call": (lambda: predictor.probabilities(image), 1),
            # what micro-batching across requests could save at most: the call's cost per image
            f"model call per image, batch of {BATCH}": (lambda: predictor.probabilities(batch), BATCH)}
    print(f"{args.model} on {served.backend.runtime}, one thread")
    ms = {}
    for name, (function, images) in rows.items():
        ms[name] = round(per_call_ms(function, max(1, args.calls // images)) / images, 4)
        print(f"{name:40} {ms[name]:.3f} ms")
    path = write_result("request-cost", {**model_record(args.model), "runtime": served.backend.runtime,
                                         "threads": 1, "calls": args.calls, "median_ms_of_5": ms}, args.out)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
