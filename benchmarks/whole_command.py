"""The whole command as a user meets it: wall time, time outside training and peak memory.

Each contender is one process, started and timed from outside as a shell would: Python and
TensorFlow start-up, data, training, evaluation, plots, report and the "not a digit"
calibration all count. Contenders run interleaved (A B A B ...) so that machine noise
falls on all of them alike; medians are reported, with the ratios to the first contender.

    fast            mnist-cnn train --recipe fast
    default         mnist-cnn train (what `make train` runs)
    keras-io-9      the keras-io convnet as its script runs it, stopped at 9 epochs (its first
                    epoch at 99% test accuracy here): keras_io_convnet.py

For `mnist-cnn train` the run's metrics.json gives the training seconds (the sum of its
epochs), so "outside training" = wall time - training seconds. Peak RSS is the child's
own (`os.wait4`).

    python benchmarks/whole_command.py                               # fast vs keras-io-9, 3 rounds
    python benchmarks/whole_command.py --contenders default --rounds 1
    python benchmarks/whole_command.py --contenders fast default keras-io-9 --rounds 3
    python benchmarks/whole_command.py --contenders fast keras-io-9 --onednn 1 0 --rounds 2
    python benchmarks/whole_command.py --contenders fast --baseline OLD_CHECKOUT --rounds 5

`--onednn` sets TensorFlow's TF_ENABLE_ONEDNN_OPTS for every contender alike, the keras-io
script included: `1` (the default: what `mnist-cnn` asks for on x86) or `0` (TensorFlow's own
kernels: what TensorFlow picks by itself on a CPU without AVX-512 VNNI/BF16 or AMX, where
`mnist-cnn` before 2026-12-07 ran with them). Several values take turns within each round,
and each row records its own. `--baseline DIR` runs each `mnist-cnn` contender a second time
from another checkout's `src/` (e.g. `git worktree add ../base HEAD~1`), named
`<contender>@<its commit>`, in turns with this one: a code change measured side by side.

Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import RESULTS, write_result

from mnist_cnn.core.system import ONEDNN_SWITCH

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # the result's environment record imports Keras
HERE = Path(__file__).resolve().parent
CONTENDERS = {
    "fast": ["-m", "mnist_cnn", "train", "--recipe", "fast"],
    "default": ["-m", "mnist_cnn", "train"],
    "keras-io-9": [str(HERE / "keras_io_convnet.py"), "--epochs", "9"],
}


def run_once(name: str, runs_dir: Path, onednn: str = "1", src: Path | None = None) -> dict:
    """One contender in its own process: wall seconds, peak RSS (MB), training seconds and accuracy.
    `onednn`: TF_ENABLE_ONEDNN_OPTS for the child; `src`: import mnist_cnn from this folder instead."""
    args = [sys.executable, *CONTENDERS[name]]
    if name != "keras-io-9":
        args += ["--runs-dir", str(runs_dir)]
    env = {**os.environ, ONEDNN_SWITCH: onednn}
    if src is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(src), env.get("PYTHONPATH")]))
    start = time.perf_counter()
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise RuntimeError(f"{name} failed ({process.returncode}):\n{output[-3000:]}")
    row = {"contender": label(name, src), "onednn": onednn,
           "wall_s": round(wall, 2), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}
    if name == "keras-io-9":
        row.update(json.loads(output.strip().splitlines()[-1]))  # the script's last line: its own record
    else:
        run = max(runs_dir.iterdir(), key=lambda p: p.stat().st_mtime)
        metrics = json.loads((run / "metrics.json").read_text())
        row.update(train_s=metrics["training"]["train_seconds_total"], test_accuracy=metrics["test"]["accuracy"],
                   calibrated=(run / "acceptance.json").exists())
    row["outside_training_s"] = round(row["wall_s"] - row["train_s"], 2)
    return row


def label(name: str, src: Path | None) -> str:
    """How a row names its contender: `name`, or `name@<commit>` when run from another checkout's `src`."""
    return name if src is None else f"{name}@{commit_of(src)}"


def commit_of(src: Path) -> str:
    """The short commit of the checkout holding `src` ("?" if it is not a git checkout)."""
    found = subprocess.run(["git", "-C", str(src), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    return found.stdout.strip() or "?"


def summarise(rows: list[dict], names: list[str], onednn: list[str]) -> list[dict]:
    """Medians per (oneDNN setting, contender), in the order given; wall ratios to the first row."""
    table = []
    for setting in onednn:
        for name in names:
            mine = [r for r in rows if r["contender"] == name and r["onednn"] == setting]
            table.append({"contender": name, "onednn": setting, "rounds": len(mine),
                          **{f"{key}_median": round(statistics.median(r[key] for r in mine), 2)
                             for key in ("wall_s", "train_s", "outside_training_s", "peak_rss_mb")},
                          "test_accuracy_mean": round(statistics.fmean(r["test_accuracy"] for r in mine), 4)})
    first = table[0]["wall_s_median"]
    for row in table:
        row["wall_ratio_to_first"] = round(row["wall_s_median"] / first, 2)
    return table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contenders", nargs="+", choices=list(CONTENDERS), default=["fast", "keras-io-9"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--onednn", nargs="+", choices=["1", "0"], default=["1"],
                        help="TF_ENABLE_ONEDNN_OPTS for every contender; several take turns (default: 1)")
    parser.add_argument("--baseline", type=Path, metavar="CHECKOUT",
                        help="also run each mnist-cnn contender from this checkout's src/, in turns")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for the results file (default results/)")
    args = parser.parse_args()
    sources: list[Path | None] = [None]
    if args.baseline is not None:
        if not (args.baseline / "src" / "mnist_cnn").is_dir():
            parser.error(f"--baseline {args.baseline}: no src/mnist_cnn in it; pass a checkout of this repository")
        sources.append((args.baseline / "src").resolve())
    # Each contender from each source, in turns; the keras-io script is not mnist-cnn's code.
    jobs = [(name, src) for name in args.contenders for src in (sources if name != "keras-io-9" else [None])]
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="whole-command-") as tmp:
        for round_ in range(args.rounds):
            for setting in args.onednn:
                for k, (name, src) in enumerate(jobs):
                    runs_dir = Path(tmp) / f"{name}-{setting}-{round_}-{k}"
                    runs_dir.mkdir()
                    row = run_once(name, runs_dir, setting, src)
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    table = summarise(rows, [label(name, src) for name, src in jobs], args.onednn)
    first = f"{table[0]['contender']} (oneDNN {table[0]['onednn']})"
    for row in table:
        print(f"{row['contender']:>11} (oneDNN {row['onednn']:>5}): {row['wall_s_median']:7.1f} s whole "
              f"({row['train_s_median']:.1f} s training, {row['outside_training_s_median']:.1f} s outside), "
              f"peak {row['peak_rss_mb_median']:,.0f} MB, {row['test_accuracy_mean']:.2%}, "
              f"x{row['wall_ratio_to_first']:.2f} of {first}")
    print(write_result("whole-command", {"rows": rows, "table": table}, args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
