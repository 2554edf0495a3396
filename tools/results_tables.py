"""The figures the docs quote, generated from the files that hold them.

    python tools/results_tables.py            # rewrite the generated blocks in README.md and docs/
    python tools/results_tables.py --check    # exit 1 (and say where) if a block differs from the files

A block sits between `<!-- generated: NAME -->` and `<!-- end: NAME -->` and names the
file(s) it was made from and the CPU model recorded in them. Sources:

- the shipped models: each one's `metrics.json`, `config.json` and digest, and the newest
  `benchmarks/results/refusal-*.json` and `read-numbers-*.json` that record that digest;
- side by side: the newest full `benchmarks/results/compare-*.json` comparing the
  contenders a block asks for;
- seed tables: the run folders `benchmarks/results/training/GROUP-seedN/` (`tools/seed_table.py`);
- test-time augmentation: every `benchmarks/results/tta-*.json`;
- training speed: the newest `benchmarks/results/precision-speed-*.txt`;
- the whole command: every `benchmarks/results/whole-command-*.json`;
- serving throughput: every `benchmarks/results/ab-*.json`;
- tuning `fast`: the newest `benchmarks/results/fast-hand-vs-tuned-*.md`;
- export parity and sizes: the newest `benchmarks/results/export-*.json`.

The test suite runs `--check`, so a figure edited by hand, or a new result not carried into
the docs, fails.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import benchmark_tables as tables

REPO = Path(__file__).resolve().parents[1]
PRETRAINED = REPO / "src" / "mnist_cnn" / "pretrained"
RESULTS = REPO / "benchmarks" / "results"
README, USING, RESULTS_PAGE = REPO / "README.md", REPO / "docs" / "using.md", REPO / "docs" / "results.md"
SERVING, TUNING, EXPORT = (REPO / "docs" / name for name in ("serving.md", "tuning.md", "export.md"))

# The seed tables' rows: (run group under benchmarks/results/training/, what it changed), in order.
DIGIT_STEPS = [
    ("strong-mnist", "`strong`: 20 epochs, shift, rotation and zoom as three Keras layers in a row"),
    ("strong-ema-mnist", "`strong` + weight averaging 0.999, 25 epochs"),
    ("strong-aug15-mnist", "`strong` with rotation 15 degrees, shift and zoom 15%, 25 epochs"),
    ("strong-onewarp-mnist", "`strong` with shift, rotation and zoom as one warp"),
    ("strong-fused-onewarp-mnist", "`strong`, one warp, fused batch norm: 3.5x cheaper to serve than `wide`; "
                                   "**seed 1 is the shipped `mnist`**"),
    ("wide-mnist", "`wide`: a wider residual network, bfloat16, AdamW at batch 512, 20 epochs, the three layers"),
    ("wide-aug20-mnist", "+ rotation 20 degrees, shift 20% (An et al.'s), the three layers"),
    ("wide-elastic-mnist", "+ elastic distortion after the three layers"),
    ("wide-onewarp-mnist", "shift, rotation and zoom as one warp (one resampling: sharper strokes)"),
    ("wide-onewarp-elastic05-mnist", "+ elastic distortion 0.5 inside the warp"),
    ("wide-fused30-onewarp-mnist", "fused batch norm (cheaper epochs), 30 epochs"),
    ("wide-fused30-aug15-mnist", "+ rotation 15 degrees, shift and zoom 15% inside the warp"),
    ("wide-fused30-ema999-mnist", "+ weight averaging 0.999"),
    ("wide-fused30-ema999-recal-mnist", "+ weight averaging, batch norm re-estimated for the average"),
    ("wide-fused36-mnist", "36 epochs instead of 30"),
    ("wide-fused30-val05-mnist", "**5% held out for validation instead of 10%: the `wide` recipe now**"),
    ("wide-fused30-val05-extra-mnist", "the same recipe, a fourth seed run afterwards"),
]
CLOTHES_STEPS = [
    ("strong-fashion-mnist", "`strong`: flips, shifts, erasing 0.25, 20 epochs"),
    ("resnet-fashion-mnist", "`resnet`: wider at 14x14 and 7x7, residual blocks, 18 epochs"),
    ("wide-fashion-mnist", ("`wide`: 1.5x wider again, bfloat16, AdamW at batch 512, whole-pixel shifts, no erasing, "
                           "20 epochs")),
    ("wide-erasing-fashion-mnist", "+ erasing 0.25"),
    ("deep-fashion-mnist", "`deep` instead of `wide`: depth instead of width, about the same cost"),
    ("wide-fused27-fashion-mnist", "fused batch norm (cheaper epochs), 27 epochs"),
    ("wide-fused34-fashion-mnist", "**34 epochs: the `wide` recipe now**"),
]
DEFAULT_STEPS = [("cnn-mnist", "`cnn`: the `default` recipe's model until 2026-12-07"),
                 ("compact-mnist", "**`compact`: the `default` recipe now**"),
                 ("cnn-fashion-mnist", "clothes, `cnn`"),
                 ("compact-fashion-mnist", "clothes, `compact`")]
FAST_STEPS = [("fast-kerasbn-mnist", "Keras' batch norm layer (before the 24x24 crop)"),
              ("fast-fusedbn-mnist", "fused batch norm (before the 24x24 crop)"),
              ("fast-fusedbn-before-whitening-mnist", "the recipe of 2026-12-07 (24x24 crop), beside the next row"),
              ("fast-whitened-mnist", "a frozen whitening stem, pooling before batch norm, batch 256"),
              ("fast-whitened-pooled-mnist", "the same, an hour later, beside the next row"),
              ("fast-whitened-strided-mnist", "**block 2 a stride-2 convolution: the `fast` recipe now**")]


def _json(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def shipped(name: str) -> dict[str, Any]:
    folder = PRETRAINED / name
    metrics, config = _json(folder / "metrics.json"), _json(folder / "config.json")
    return {"name": name, "architecture": config["config"]["model"], "accuracy": metrics["test"]["accuracy"],
            "train_s": metrics["training"]["train_seconds_total"],
            "cpu": tables.cpu_family(config.get("environment", {}).get("cpu")),
            "sha256": (folder / "model.keras.sha256").read_text(encoding="ascii").split()[0]}


def measured_on(kind: str, sha256: str, holding: str | None = None,
                reader: str | None = None) -> list[tuple[Path, dict[str, Any]]]:
    """The results files of `kind` measured on the model with digest `sha256`, newest first (holding
    the key `holding`, if given: `read-numbers-*-tune.json` files share the stem but not the goals'
    sets; read with the touching-digit reader of digest `reader`, if given: a trial of another
    reader is not what ships)."""
    found = []
    for path in sorted(RESULTS.glob(f"{kind}-*.json"), reverse=True):  # names sort by their UTC time
        record = _json(path)
        if record.get("model_sha256") != sha256 or (holding is not None and holding not in record):
            continue
        if "against" in record:  # a comparison of two readers (`--against`), not the goals' measurement
            continue
        if reader is None or (record.get("reader") or {}).get("sha256") == reader:
            found.append((path, record))
    return found


def newest(kind: str, sha256: str, holding: str | None = None,
           reader: str | None = None) -> tuple[Path, dict[str, Any]] | None:
    """The newest of `measured_on`'s files, or None."""
    found = measured_on(kind, sha256, holding, reader)
    return found[0] if found else None


def per_machine(found: list[tuple[Path, dict[str, Any]]]) -> list[tuple[Path, dict[str, Any]]]:
    """The newest file of each kind of machine (CPU family and vector units), newest first: a time
    differs by machine, so the docs give each machine's figure side by side."""
    seen: dict[str, tuple[Path, dict[str, Any]]] = {}
    for path, record in found:
        seen.setdefault(tables.where_ran(record.get("environment", {})), (path, record))
    return list(seen.values())


def shipped_reader_sha256(name: str) -> str | None:
    digest_file = PRETRAINED / name / "reader.keras.sha256"
    return digest_file.read_text(encoding="ascii").split()[0] if digest_file.is_file() else None


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


def block_shipped_table() -> str:
    """docs/using.md's table of the shipped models: the command that made each, its accuracy, its rule."""
    from mnist_cnn.runs.config import TrainConfig
    from mnist_cnn.training.recipes import train_command

    rows = ["| name | model | test accuracy | made with | best validation accuracy | training | not a digit |",
            "|---|---|---|---|---|---|---|"]
    for name in ("mnist", "fashion-mnist"):
        model, folder = shipped(name), PRETRAINED / name
        record, metrics = _json(folder / "config.json"), _json(folder / "metrics.json")
        stored = _json(folder / "acceptance.json")
        calibrated = (f"calibrated with a writing score to refuse at most {pct(stored['target_refused'])} of its "
                      f"validation digits in each form they are sent in" if "writing" in stored["features"] else
                      f"calibrated to refuse {pct(stored['target_refused'])} of its validation images")
        measured = newest("refusal", model["sha256"])
        rule = (f"{calibrated}; on data it was not fitted on: [Numbers and non-digits](#numbers-and-non-digits)"
                if measured else f"{calibrated}; not yet measured on data it was not fitted on")
        rows.append(f"| `{name}` | `{model['architecture']}` | {pct(model['accuracy'], 2)} | "
                    f"`{train_command(TrainConfig(**record['config']))}` | "
                    f"{pct(metrics['training']['best_val_accuracy'], 2)} (epoch {metrics['training']['best_epoch']}) | "
                    f"{model['train_s']:,.0f} s ({model['cpu']}) | {rule} |")
    return "\n".join(rows)


def block_shipped_mnist_measured() -> str:
    model = shipped("mnist")
    refusal = newest("refusal", model["sha256"])
    reading = newest("read-numbers", model["sha256"], "separate", shipped_reader_sha256("mnist"))
    if refusal is None or reading is None:
        missing = "refusal.py" if refusal is None else "read_numbers.py"
        raise SystemExit(f"no {missing} result for the shipped mnist model (sha256 {model['sha256'][:12]}): run "
                         f"python benchmarks/{missing} mnist")
    (refusal_path, r), (reading_path, n) = refusal, reading
    share = {name: value["share"] for name, value in r["refused"].items()}
    # The times on one core, each machine's newest beside the others (the accuracies are the same
    # numbers everywhere: the composed numbers are seeded).
    timed = per_machine([(path, record) for path, record in measured_on(
        "read-numbers", model["sha256"], "separate", shipped_reader_sha256("mnist"))
        if record.get("threads") == 1 and record.get("runtime") == n.get("runtime")])
    times = "; ".join(f"{1000 * t['touching']['seconds_per_number']:.1f} ms touching, "
                      f"{1000 * t['separate']['seconds_per_number']:.1f} ms apart "
                      f"({tables.where_ran(t['environment'])}, `{path.name}`)" for path, t in timed)
    lines = [
        f"Measured on the shipped `mnist` (SHA-256 `{model['sha256'][:12]}`), on data its rule was not fitted on:",
        "",
        "| | result | goal |",
        "|---|---|---|",
        f"| numbers of 2-6 separate MNIST test digits read exactly | **{pct(n['separate']['exact'])}** | >= 98% |",
        (f"| numbers of {_lengths(n['touching'])} touching or overlapping MNIST test digits read exactly | "
         f"**{pct(n['touching']['exact'])}** ({_reader_of(n)}{_without_reader(model['sha256'])}) | >= 97% |"),
        (f"| time per number (whole `read_number`, {_threads(n)}) | {times} | <= 5 ms on one core |"
         if timed else f"| time per number | not measured on one core (`read_numbers.py --threads 1`) | "
                       f"<= 5 ms on one core |"),
        f"| Fashion-MNIST test images refused | **{pct(share['fashion-mnist test'])}** | >= 99% |",
        (f"| MNIST test digits refused | **{pct(share['mnist test'], 2)}** (enlarged to 84 px: "
         f"{pct(share['mnist test enlarged to 84 px'])}; rescaled and slanted as written: "
         f"{pct(share['mnist test as written'])}) | <= 1% |"),
        (f"| blank / noise / inverted noise refused | {pct(share['blank'], 2)} / {pct(share['noise'], 2)} / "
         f"{pct(share['noise inverted'], 2)} | >= 99.9% |"),
        (f"| scribbles / letters (not shaped like digits: all but {r['letters_left_out']}) refused | "
         f"{pct(share['scribbles'])} / {pct(share['letters'])} | |"),
        "",
        (f"(`benchmarks/results/{reading_path.name}`, {tables.cpu_family(n['environment'].get('cpu'))}; "
         f"`benchmarks/results/{refusal_path.name}`, {tables.cpu_family(r['environment'].get('cpu'))})"),
    ]
    return "\n".join(lines)


def _lengths(scored: dict[str, Any]) -> str:
    lengths = sorted(int(k) for k in scored["exact_by_length"])
    return f"{lengths[0]}-{lengths[-1]}"


def _reader_of(reading: dict[str, Any]) -> str:
    """Which reader read the touching digits: the shipped one (by digest), another, or none."""
    used = reading.get("reader")
    if not used:
        return "no touching-digit reader: cuts judged by the model"
    if used["sha256"] == shipped_reader_sha256("mnist"):
        return f"with the shipped reader, SHA-256 `{used['sha256'][:12]}`"
    return f"with a reader that is not the shipped one, SHA-256 `{used['sha256'][:12]}`"


def _without_reader(sha256: str) -> str:
    """The same sets read without a reader, from the newest such result for the model, if any."""
    for path in sorted(RESULTS.glob("read-numbers-*.json"), reverse=True):
        record = _json(path)
        if record.get("model_sha256") == sha256 and "touching" in record and record.get("reader", 0) is None:
            return (f"; cut by the digit model alone: {pct(record['touching']['exact'])}, "
                    f"`benchmarks/results/{path.name}`")
    return ""


def _threads(reading: dict[str, Any]) -> str:
    threads = reading.get("threads")
    where = f"{threads} thread{'s' if threads > 1 else ''}" if threads else "TensorFlow's default threads"
    return f"{where}, {reading['runtime']}" if reading.get("runtime") else where


# name -> (the page holding the block, what renders it)
BLOCKS = {
    "shipped-models": (README, block_shipped_models),
    "shipped-mnist-measured": (USING, block_shipped_mnist_measured),
    "shipped-table": (USING, block_shipped_table),
    "compare-recipes": (RESULTS_PAGE, lambda: tables.compare_table(
        ["keras-example", "pytorch-example", "fast", "cnn", "strong"])),
    "compare-wide": (RESULTS_PAGE, lambda: tables.compare_table(["wide"])),
    "compare-fast": (RESULTS_PAGE, lambda: tables.compare_table(["keras-example", "fast"], exact=True)),
    "seeds-fast-batch-norm": (RESULTS_PAGE, lambda: tables.seed_groups(FAST_STEPS)),
    "seeds-default": (RESULTS_PAGE, lambda: tables.seed_groups(DEFAULT_STEPS)),
    "seeds-digits": (RESULTS_PAGE, lambda: tables.seed_groups(DIGIT_STEPS, goal=("wide-fused30-val05-mnist", 0.9972))),
    "seeds-clothes": (RESULTS_PAGE, lambda: tables.seed_groups(CLOTHES_STEPS, goal=("wide-fused34-fashion-mnist", 0.945))),
    "test-time-augmentation": (RESULTS_PAGE, tables.tta_table),
    "training-speed": (RESULTS_PAGE, tables.precision_speed_table),
    "whole-command": (RESULTS_PAGE, tables.whole_command_table),
    "serving-throughput": (SERVING, tables.serving_table),
    "tuned-fast": (TUNING, tables.tuned_fast_sentence),
    "export-parity": (EXPORT, tables.export_table),
}


def pattern(name: str) -> re.Pattern[str]:
    return re.compile(rf"(<!-- generated: {name} -->\n)(.*?)(\n<!-- end: {name} -->)", re.DOTALL)


def differences(texts: dict[str, str] | None = None) -> list[str]:
    """The blocks whose text differs from what the files say (`texts`: file name -> text, default on disk)."""
    found = []
    for name, (path, render) in BLOCKS.items():
        text = (texts or {}).get(path.name) or path.read_text(encoding="utf-8")
        match = pattern(name).search(text)
        if match is None:
            found.append(f"{path.relative_to(REPO)}: no generated block {name!r}")
        elif match.group(2) != render():
            found.append(f"{path.relative_to(REPO)}: block {name!r} differs from the files it is made from")
    return found


def write() -> None:
    for name, (path, render) in BLOCKS.items():
        text = path.read_text(encoding="utf-8")
        body = render()
        new, count = pattern(name).subn(lambda m, body=body: m.group(1) + body + m.group(3), text)
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
