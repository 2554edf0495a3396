"""The multi-seed results table: one row per kept training run, then mean and spread per group.

    python tools/seed_table.py                       # every run under results/training/
    python tools/seed_table.py wide-fashion-mnist    # runs whose folder starts so

Reads each run folder's `config.json` and `metrics.json` (copied from a finished run:
`cp RUN/{config.json,metrics.json,history.csv,curves.png,report.md} results/training/NAME-seedN/`)
and prints Markdown. A group is a folder name without its `-seedN` end. Test accuracy is
scored once per run, after selection on validation; training time is the sum of the
epochs' wall times (validation included), which depends on the machine's load: the
`cpu` column says which processor, and whether the run was alone is in the text around
the table.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
from pathlib import Path

TRAINING = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "training"


def rows(prefix: str = "") -> list[dict]:
    found = []
    for folder in sorted(TRAINING.iterdir()):
        match = re.fullmatch(r"(.+)-seed(\d+)", folder.name)
        if not match or not folder.name.startswith(prefix) or not (folder / "metrics.json").exists():
            continue
        record = json.loads((folder / "config.json").read_text())
        metrics = json.loads((folder / "metrics.json").read_text())
        training = metrics.get("training", {})
        found.append({
            "group": match[1], "seed": record["config"]["seed"], "folder": folder.name,
            "test": metrics["test"]["accuracy"], "val": training.get("best_val_accuracy"),
            "best_epoch": training.get("best_epoch"), "epochs": training.get("epochs_run"),
            "seconds": training.get("train_seconds_total"),
            "cpu": record.get("environment", {}).get("cpu") or "not recorded",
        })
    return found


def table(found: list[dict]) -> str:
    lines = ["| run | seed | test accuracy | best epoch (val accuracy) | training time | cpu |",
             "|---|---|---|---|---|---|"]
    for r in found:
        val = f"{100 * r['val']:.2f}%" if r["val"] is not None else "?"
        lines.append(f"| `{r['folder']}` | {r['seed']} | {100 * r['test']:.2f}% | {r['best_epoch']} of "
                     f"{r['epochs']} ({val}) | {r['seconds']:,.0f} s | {r['cpu']} |")
    lines += ["", "| group | seeds | test accuracy, mean ± std | min | max | training time, median |",
              "|---|---|---|---|---|---|"]
    groups: dict[str, list[dict]] = {}
    for r in found:
        groups.setdefault(r["group"], []).append(r)
    for group, members in groups.items():
        tests = [100 * r["test"] for r in members]
        spread = f" ± {statistics.stdev(tests):.2f}" if len(tests) > 1 else ""
        lines.append(f"| `{group}` | {len(members)} | {statistics.mean(tests):.2f}%{spread} | {min(tests):.2f}% | "
                     f"{max(tests):.2f}% | {statistics.median(r['seconds'] for r in members):,.0f} s |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("prefix", nargs="?", default="", help="only run folders whose name starts with this")
    args = parser.parse_args()
    found = rows(args.prefix)
    if not found:
        print(f"no run folder under {TRAINING} starts with {args.prefix!r}", file=sys.stderr)
        return 1
    print(table(found))
    return 0


if __name__ == "__main__":
    sys.exit(main())
