"""What the writing score costs per image: the shipped scorer (the mean of its members) and one member alone.

    python benchmarks/writing_cost.py [MODEL] [--calls 2000]

Loads the `writing.keras` beside MODEL (default: the shipped mnist), converts it to LiteRT
as `serve` does (`WritingScorer.use_litert`, one thread), and times one-image calls: the
whole scorer and its first member converted alone. Reports the median microseconds per call
of each. Writes `results/writing-cost-<time>.json` with the CPU model. Run it alone.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from common import RESULTS, model_record, write_result

from mnist_cnn.inference.shipped import resolve_model
from mnist_cnn.inference.writing import WRITING_FILE, WritingScorer


def median_us(scorer: WritingScorer, calls: int) -> float:
    image = np.random.default_rng(0).random((1, 28, 28)).astype(np.float32)
    scorer.scores(image)  # the first call allocates
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        scorer.scores(image)
        times.append(time.perf_counter() - started)
    return 1e6 * statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", nargs="?", default="mnist")
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    whole = WritingScorer.load(resolve_model(args.model).resolve().with_name(WRITING_FILE))
    members = [layer for layer in whole.model.layers if hasattr(layer, "layers")]  # the nested CNNs, if any
    scorers = {f"scorer ({max(1, len(members))} members)": whole}
    if members:
        scorers["one member"] = WritingScorer(members[0])
    record = {"calls": args.calls, "median_us_per_image": {}, "parameters": {}}
    for name, scorer in scorers.items():
        if not scorer.use_litert():
            sys.exit(f"{name} could not be converted to LiteRT")
        record["median_us_per_image"][name] = round(median_us(scorer, args.calls), 1)
        record["parameters"][name] = int(scorer.model.count_params())
        print(f"{name:22} {record['parameters'][name]:>7,} parameters  "
              f"{record['median_us_per_image'][name]:7.1f} us an image (LiteRT, one thread)")
    path = write_result("writing-cost", {**model_record(args.model), **record}, args.out)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
