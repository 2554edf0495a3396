"""The figures the docs quote about the shipped models, generated from the files that hold them.

    python tools/results_tables.py            # rewrite the generated blocks in README.md and docs/
    python tools/results_tables.py --check    # exit 1 (and say where) if a block differs from the files

Sources: each shipped model's `metrics.json` and `config.json` (accuracy, training time, CPU)
and its digest (`model.keras.sha256`); the newest `benchmarks/results/refusal-*.json` and
`read-numbers-*.json` that record that same digest (measured on data the rule was not
fitted on). A block sits between `<!-- generated: NAME -->` and `<!-- end: NAME -->`; the
test suite runs `--check`, so a figure edited by hand, or a model shipped without
measuring it again, fails.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PRETRAINED = REPO / "src" / "mnist_cnn" / "pretrained"
RESULTS = REPO / "benchmarks" / "results"
DOCS = {"shipped-models": REPO / "README.md", "shipped-mnist-measured": REPO / "docs" / "using.md"}


def _json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def _cpu(name: str | None) -> str:
    """A CPU as the docs name it: its family, with "with AMX" where it has bfloat16 matrix units."""
    if not name:
        return "unknown CPU"
    family = "Intel Xeon" if "Xeon" in name else "AMD EPYC" if "EPYC" in name else name
    return f"{family} with AMX" if "AMX" in name else family


def shipped(name: str) -> dict[str, Any]:
    folder = PRETRAINED / name
    metrics, config = _json(folder / "metrics.json"), _json(folder / "config.json")
    return {"name": name, "architecture": config["config"]["model"], "accuracy": metrics["test"]["accuracy"],
            "train_s": metrics["training"]["train_seconds_total"],
            "cpu": _cpu(config.get("environment", {}).get("cpu")),
            "sha256": (folder / "model.keras.sha256").read_text(encoding="ascii").split()[0]}


def newest(kind: str, sha256: str) -> tuple[Path, dict[str, Any]] | None:
    """The newest results file of `kind` measured on the model with digest `sha256`."""
    for path in sorted(RESULTS.glob(f"{kind}-*.json"), reverse=True):  # names sort by their UTC time
        record = _json(path)
        if record.get("model_sha256") == sha256:
            return path, record
    return None


def pct(share: float, digits: int = 1) -> str:
    return f"{100 * share:.{digits}f}%"


def block_shipped_models() -> str:
    rows = ["| shipped model | architecture | MNIST test accuracy | Fashion-MNIST test accuracy | training time |",
            "|---|---|---|---|---|"]
    for name, column in (("mnist", 0), ("fashion-mnist", 1)):
        model = shipped(name)
        cells = ["", ""]
        cells[column] = f"**{pct(model['accuracy'], 2)}**"
        rows.append(f"| `{name}` | `{model['architecture']}` | {cells[0]} | {cells[1]} | "
                    f"{model['train_s']:,.0f} s ({model['cpu']}) |")
    return "\n".join(rows)


def block_shipped_mnist_measured() -> str:
    model = shipped("mnist")
    refusal, reading = newest("refusal", model["sha256"]), newest("read-numbers", model["sha256"])
    if refusal is None or reading is None:
        missing = "refusal.py" if refusal is None else "read_numbers.py"
        raise SystemExit(f"no {missing} result for the shipped mnist model (sha256 {model['sha256'][:12]}): run "
                         f"python benchmarks/{missing} mnist")
    (refusal_path, r), (reading_path, n) = refusal, reading
    share = {name: value["share"] for name, value in r["refused"].items()}
    lines = [
        f"Measured on the shipped `mnist` (SHA-256 `{model['sha256'][:12]}`), on data its rule was not fitted on:",
        "",
        "| | result | goal |",
        "|---|---|---|",
        f"| numbers of 2-6 separate MNIST test digits read exactly | **{pct(n['separate']['exact'])}** "
        f"(touching digits: {pct(n['touching']['exact'])}) | >= 97% |",
        f"| Fashion-MNIST test images refused | **{pct(share['fashion-mnist test'])}** | >= 95% |",
        f"| MNIST test digits refused | **{pct(share['mnist test'], 2)}** (digits rescaled and slanted as written: "
        f"{pct(share['mnist test as written'])}) | <= 1% |",
        f"| noise / scribbles / letters refused | {pct(share['noise'])} / {pct(share['scribbles'])} / "
        f"{pct(share['letters'])} | |",
        "",
        f"(`benchmarks/results/{reading_path.name}`, `benchmarks/results/{refusal_path.name}`; "
        f"{_cpu(r['environment'].get('cpu'))})",
    ]
    return "\n".join(lines)


BLOCKS = {"shipped-models": block_shipped_models, "shipped-mnist-measured": block_shipped_mnist_measured}


def pattern(name: str) -> re.Pattern[str]:
    return re.compile(rf"(<!-- generated: {name} -->\n)(.*?)(\n<!-- end: {name} -->)", re.DOTALL)


def differences(texts: dict[str, str] | None = None) -> list[str]:
    """The blocks whose text differs from what the files say (`texts`: file name -> text, default on disk)."""
    found = []
    for name, render in BLOCKS.items():
        path = DOCS[name]
        text = (texts or {}).get(path.name) or path.read_text(encoding="utf-8")
        match = pattern(name).search(text)
        if match is None:
            found.append(f"{path.relative_to(REPO)}: no generated block {name!r}")
        elif match.group(2) != render():
            found.append(f"{path.relative_to(REPO)}: block {name!r} differs from the files it is made from")
    return found


def write() -> None:
    for name, render in BLOCKS.items():
        path = DOCS[name]
        text = path.read_text(encoding="utf-8")
        new, count = pattern(name).subn(lambda m: m.group(1) + render() + m.group(3), text)
        if count != 1:
            raise SystemExit(f"{path}: expected one block {name!r}, found {count}")
        path.write_text(new, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only compare; exit 1 if a block is out of date")
    args = parser.parse_args(argv)
    if args.check:
        problems = differences()
        for problem in problems:
            print(problem, file=sys.stderr)
        return 1 if problems else 0
    write()
    return 0


if __name__ == "__main__":
    sys.exit(main())
