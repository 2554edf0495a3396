"""Markdown tables of the benchmark results in `benchmarks/results/`, for `results_tables.py`.

Each function reads the newest file(s) that match, returns a table with a line naming its
source file(s) and the CPU model recorded in them, and never edits a result. Figures are
rounded as the docs quote them: accuracy in per cent with two decimals, spreads as the
standard deviation over seeds in points.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

import seed_table

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
TEST_IMAGES = 10_000  # MNIST's and Fashion-MNIST's test sets: errors per 10,000 = errors
CONTENDERS = {  # compare.py's contenders as the docs name them
    "keras-example": "keras-io convnet as published",
    "pytorch-example": "pytorch/examples `mnist`, re-implemented",
    "fast": "`fast`",
    "cnn": "`default` (`cnn`)",  # the contender's name until `compact` became the default model
    "default": "`default` (`compact`)",
    "strong": "`strong`",
    "wide": "`wide`",
}


def _json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def source(path: Path) -> str:
    return f"`{path.relative_to(REPO).as_posix()}`"


def cpu_recorded(names: list[str | None]) -> str:
    """The CPU model(s) as the files record them, or that they do not (files older than that field)."""
    found = sorted({name for name in names if name})
    missing = sum(1 for name in names if not name)
    if not found:
        return "CPU model not recorded"
    text = "CPU model recorded: " + " / ".join(found)
    return text + (f" (not recorded for {missing} of {len(names)})" if missing else "")


def pct(share: float, digits: int = 2) -> str:
    return f"{100 * share:.{digits}f}%"


def mean_std(shares: list[float]) -> str:
    spread = f" ± {100 * statistics.stdev(shares):.2f}" if len(shares) > 1 else ""
    return f"{pct(statistics.mean(shares))}{spread}"


def seconds_range(values: list[float], digits: int | None = None) -> str:
    """`1,199-1,246 s`; two decimals under 100 s unless `digits` says otherwise."""
    low, high = min(values), max(values)
    digits = (2 if high < 100 else 0) if digits is None else digits
    return f"{low:,.{digits}f} s" if low == high else f"{low:,.{digits}f}-{high:,.{digits}f} s"


def seeds_named(seeds: list[int]) -> str:
    if len(seeds) == 1:
        return f"seed {seeds[0]}"
    consecutive = seeds == list(range(seeds[0], seeds[0] + len(seeds)))
    return f"seeds {seeds[0]}-{seeds[-1]}" if consecutive else f"seeds {', '.join(map(str, seeds))}"


# Side by side: compare.py

def newest_compare(contenders: list[str], exact: bool) -> tuple[Path, dict[str, Any]]:
    """The newest full (not --quick) compare-*.json holding these contenders (`exact`: only these)."""
    for path in sorted(RESULTS.glob("compare-*.json"), reverse=True):  # names sort by their UTC time
        record = _json(path)
        have = {row["contender"] for row in record.get("summary", [])}
        if not record.get("quick") and (have == set(contenders) if exact else have >= set(contenders)):
            return path, record
    raise SystemExit(f"no full benchmarks/results/compare-*.json compares {', '.join(contenders)}: run "
                     f"python benchmarks/compare.py --contenders {' '.join(contenders)}")


def _settings(runs: list[dict[str, Any]]) -> str:
    """Precision and batch norm of a contender's runs, from the settings each run recorded."""
    if not runs or runs[0]["contender"] == "pytorch-example":
        return "float32 (PyTorch)"
    config = runs[0].get("config") or {}
    norm = ("no batch norm" if runs[0]["contender"] == "keras-example"
            else "fused batch norm" if config.get("fused_batch_norm") else "Keras' batch norm")
    return f"{config.get('precision') or 'float32'}, {norm}"


def compare_table(contenders: list[str], exact: bool = False) -> str:
    path, record = newest_compare(contenders, exact)
    rows = [("| contender | precision, batch norm | seeds | epochs | test accuracy (mean ± std) | "
            "time to 99.0%: median (min-max; seeds there) | x keras-io convnet | train img/s | "
            "inference img/s (batch 1000) | peak RSS MB |"),
            "|---|---|---|---|---|---|---|---|---|---|"]
    for row in record["summary"]:
        runs = [run for run in record["runs"] if run["contender"] == row["contender"]]
        times = [run["time_to_target_s"] for run in runs if run.get("time_to_target_s") is not None]
        shares = [run["final_accuracy"] for run in runs]
        spread = f"{seconds_range(times, 1).removesuffix(' s')}; " if len(times) > 1 else ""
        to_99 = "not reached" if row["time_to_99_median_s"] is None else (
            f"{row['time_to_99_median_s']:.1f} s ({spread}{row['reached_99']})")
        rows.append(f"| {CONTENDERS.get(row['contender'], row['contender'])} | {_settings(runs)} | {row['seeds']} "
                    f"({seeds_named(sorted(run['seed'] for run in runs))}) | {row['epochs']} | {mean_std(shares)} | "
                    f"{to_99} | {row['speedup_vs_keras_example']:.2f} | {row['train_images_per_s']:,.0f} | "
                    f"{row['inference_images_per_s']:,.0f} | {row['peak_rss_mb']:,.0f} |")
    environment = record.get("environment", {})
    parts = f" (with the runs of {', '.join(f'`{name}`' for name in record['included'])})" if record.get(
        "included") else ""
    rows += ["", (f"Source: {source(path)}{parts}; {cpu_recorded([environment.get('cpu')])}, "
                 f"{environment.get('cpu_count', '?')} cores, TensorFlow {environment.get('tensorflow', '?')}. "
                 f"Table and plot beside it: `{path.stem}.md`, `{path.stem}.png`.")]
    return "\n".join(rows)


# Seed tables: benchmarks/results/training

def seed_groups(steps: list[tuple[str, str]], goal: tuple[str, float] | None = None) -> str:
    """One row per run group (`GROUP-seedN` folders): (group, what changed) in the order given;
    with `goal` (group, accuracy), a closing line saying whether that group's mean reaches it."""
    found = seed_table.rows()
    rows = [("| what changed | runs | seeds | test accuracy, mean ± std (per seed) | test errors, mean | "
            "validation accuracy, mean | training time per seed |"),
            "|---|---|---|---|---|---|---|"]
    cpus, folders = [], []
    for group, step in steps:
        members = [run for run in found if run["group"] == group]
        if not members:
            raise SystemExit(f"no run folder benchmarks/results/training/{group}-seedN/ (tools/seed_table.py)")
        tests = [run["test"] for run in members]
        vals = [run["val"] for run in members if run["val"] is not None]
        per_seed = ", ".join(f"{100 * t:.2f}" for t in tests) if len(tests) > 1 else seeds_named([members[0]["seed"]])
        rows.append(f"| {step} | `{group}` | {len(members)} | {mean_std(tests)} ({per_seed}) | "
                    f"{TEST_IMAGES * (1 - statistics.mean(tests)):.1f} | "
                    f"{pct(statistics.mean(vals)) if vals else '?'} | "
                    f"{seconds_range([run['seconds'] for run in members])} |")
        cpus += [None if run["cpu"] == "not recorded" else run["cpu"] for run in members]
        folders += [run["folder"] for run in members]
    if goal:
        group, target = goal
        mean = statistics.mean(run["test"] for run in found if run["group"] == group)
        rows += ["", (f"`{group}` averages {pct(mean, 3)} ({TEST_IMAGES * (1 - mean):.1f} errors per "
                     f"{TEST_IMAGES:,}); the goal, {pct(target)} ({TEST_IMAGES * (1 - target):.1f} errors), is "
                     f"{'met' if mean >= target - 1e-12 else 'not met'}.")]
    rows += ["", (f"Source: the {len(folders)} run folders `benchmarks/results/training/GROUP-seedN/` named in the "
                 f"table (`python tools/seed_table.py GROUP` prints each); {cpu_recorded(cpus)}.")]
    return "\n".join(rows)


# Test-time augmentation: ensemble_tta.py --out

def _model_names(models: list[Any]) -> str:
    names = [model["model"] if isinstance(model, dict) else model for model in models]
    return ", ".join(f"`{name.removesuffix('/model.keras')}`" for name in names)


def tta_table() -> str:
    paths = sorted(RESULTS.glob("tta-*.json"))
    if not paths:
        raise SystemExit("no benchmarks/results/tta-*.json: run python benchmarks/ensemble_tta.py ... --out FILE")
    rows = [("| models | dataset | views per image | single (mean ± std) | tta (mean ± std) | ensemble | "
            "ensemble + tta |"),
            "|---|---|---|---|---|---|---|"]
    cpus = []
    for path in paths:
        record = _json(path)
        accuracy = record["accuracy"]
        views = len(record["shifts"]) * (2 if record.get("flip") else 1)
        rows.append(f"| {_model_names(record['models'])} | {record['dataset']} | {views} | "
                    f"{mean_std(accuracy['single'])} | {mean_std(accuracy['tta'])} | {pct(accuracy['ensemble'][0])} | "
                    f"{pct(accuracy['ensemble+tta'][0])} |")
        cpus.append(record.get("environment", {}).get("cpu"))
    rows += ["", (f"Sources: {', '.join(source(path) for path in paths)}; {cpu_recorded(cpus)} "
                 f"(accuracy does not depend on it).")]
    return "\n".join(rows)


# Training speed: precision_speed.py's printed lines, saved

def precision_speed_table() -> str:
    paths = sorted(RESULTS.glob("precision-speed-*.txt"))
    if not paths:
        raise SystemExit("no benchmarks/results/precision-speed-*.txt: run python benchmarks/precision_speed.py "
                         "... | tee benchmarks/results/precision-speed-TIME.txt")
    path = paths[-1]
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.startswith("{")]
    measured: dict[tuple[str, int, str], dict[str, list[float]]] = {}
    for line in lines:
        key = (line["model"], line["batch_size"], line.get("batch_norm", "keras"))
        measured.setdefault(key, {}).setdefault(line["precision"], []).append(line["s_per_epoch"])
    rows = ["| model | batch | batch norm | float32, s per epoch | bfloat16, s per epoch | float32 / bfloat16 |",
            "|---|---|---|---|---|---|"]
    for (model, batch, norm), seconds in measured.items():
        f32, bf16 = (statistics.median(seconds[p]) if p in seconds else None for p in ("float32", "bfloat16"))
        ratio = f"{f32 / bf16:.2f}" if f32 and bf16 else ""
        norm_name = "fused" if norm == "fused" else "Keras'"
        rows.append(f"| `{model}` | {batch} | {norm_name} | "
                    f"{f'{f32:.1f}' if f32 else ''} | {f'{bf16:.1f}' if bf16 else ''} | {ratio} |")
    rounds = len({line.get("round") for line in lines})
    rows += ["", (f"Medians of {rounds} rounds, seconds per epoch of 54,000 images. Source: {source(path)}; "
                 f"{cpu_recorded([line.get('cpu') for line in lines[:1]])}.")]
    return "\n".join(rows)


# The whole command: whole_command.py

WHOLE_COMMAND_CONTENDERS = {  # whole_command.py's contenders as the docs name them
    "fast": "`mnist-cnn train --recipe fast`",
    "default": "`mnist-cnn train` (what `make train` runs)",
    "keras-io-9": "keras-io convnet, 9 epochs, as its own script",
}


def contender_name(contender: str) -> str:
    """A whole_command.py contender as the docs name it; `NAME@COMMIT` (`--baseline`) is that code's run."""
    name, _, commit = contender.partition("@")
    shown = WHOLE_COMMAND_CONTENDERS.get(name, f"`{name}`")
    return f"{shown}, the code of `{commit}`" if commit else shown


def vector_units(environment: dict[str, Any]) -> str:
    """The CPU's vector units as a results file records them (`cpu_features`, since 2026-12-06): a time
    per image differs by them more than by the model name (an int8 model: 0.37 ms an image on one
    "AMD EPYC", 1.6 on another)."""
    features = environment.get("cpu_features")
    if features is None:
        return "not recorded"
    if "amx_tile" in features:
        return "AMX"
    return ("AVX-512 VNNI" if "avx512_vnni" in features else "AVX-512" if "avx512f" in features
            else "AVX2, no AVX-512" if "avx2" in features else "no AVX2")


def cpu_family(name: str | None) -> str:
    """A CPU as the docs name it: its family, with "with AMX" where it has bfloat16 matrix units."""
    if not name:
        return "unknown CPU"
    family = "Intel Xeon" if "Xeon" in name else "AMD EPYC" if "EPYC" in name else name
    return f"{family} with AMX" if "AMX" in name else family


def where_ran(environment: dict[str, Any]) -> str:
    """`cpu_family` plus its vector units where the file records them: AMD and Intel rows side by side."""
    where, units = cpu_family(environment.get("cpu")), vector_units(environment)
    return where if units == "not recorded" or "AMX" in where else f"{where}, {units}"


def every_file_table(kind: str, script: str, header: list[str], rows_of: Any) -> str:
    """One table over every `results/<kind>-*.json`, oldest first: `rows_of(path, record)` gives each
    file's rows (cells after the run's time), then a line naming the files and their CPUs."""
    paths = sorted(RESULTS.glob(f"{kind}-*.json"))
    if not paths:
        raise SystemExit(f"no benchmarks/results/{kind}-*.json: run python benchmarks/{script}")
    rows = ["| run | " + " | ".join(header) + " |", "|---|" + "---|" * len(header)]
    cpus = []
    for path in paths:
        record = _json(path)
        cpus.append(record.get("environment", {}).get("cpu"))
        rows += [f"| `{path.stem.removeprefix(kind + '-')}` | " + " | ".join(cells) + " |"
                 for cells in rows_of(path, record)]
    rows += ["", f"Sources: {', '.join(source(path) for path in paths)}; {cpu_recorded(cpus)}."]
    return "\n".join(rows)


def whole_command_table() -> str:
    def rows_of(path: Path, record: dict[str, Any]) -> list[list[str]]:
        where = where_ran(record.get("environment", {}))
        # Files before 2026-12-07 left TF_ENABLE_ONEDNN_OPTS unset: TensorFlow chose by the CPU.
        return [[contender_name(row["contender"]), where,
                 row.get("onednn", "unset"), str(row["rounds"]),
                 f"{row['wall_s_median']:.1f} s", f"{row['train_s_median']:.1f} s",
                 f"{row['outside_training_s_median']:.1f} s", f"{row['peak_rss_mb_median']:,.0f} MB",
                 pct(row["test_accuracy_mean"]), f"{row['wall_ratio_to_first']:.2f}x"] for row in record["table"]]

    return every_file_table("whole-command", "whole_command.py",
                            ["command", "CPU", "TF_ENABLE_ONEDNN_OPTS", "rounds",
                             "whole process (median)", "training", "outside training",
                             "peak RSS", "test accuracy", "whole, to the run's first row"], rows_of)


# Serving throughput: bench_ab.py

# What the result files written before the model's digest was recorded served, by the name
# they give it (a shipped name, or a temporary path of a file not kept).
EARLIER_SERVED = {
    ("ab-20261127T204632Z", None): "`strong` (the shipped `mnist` then)",
    ("ab-20261127T220307Z", "mnist"): "`strong` (the shipped `mnist` then)",
    ("ab-20261127T220915Z", "mnist"): "`strong` (the shipped `mnist` then)",
    ("ab-20261127T221030Z", "mnist"): "`strong` (the shipped `mnist` then)",
    ("ab-20261128T103126Z", "mnist"): "`wide` (the shipped `mnist`, earlier weights)",
    ("*", "/tmp/w/runs/20261127T214819Z-mnist-cnn/model.keras"): "`cnn` (a default-recipe run, not kept)",
    ("*", "/tmp/w/cnn.onnx"): "that `cnn`, exported `.onnx`",
    ("*", "/tmp/w/mnist.onnx"): "`strong`, exported `.onnx`",
}


def _served(path: Path, row: dict[str, Any]) -> str:
    if row.get("model_sha256"):
        architecture = (row.get("model_settings") or {}).get("model", "?")
        return f"`{architecture}` (`{row['model']}`, SHA-256 `{row['model_sha256'][:8]}`)"
    key = row.get("model")
    return EARLIER_SERVED.get((path.stem, key)) or EARLIER_SERVED.get(("*", key)) or f"`{key}`"


def serving_rows(path: Path, record: dict[str, Any]) -> list[list[str]]:
    """One row per setting of an ab-*.json file. A file of several cycles (`--cycles`) holds each
    setting once a cycle: its row has the medians of the cycles (the ratio's spread in brackets)
    and all their rounds. Files before 2026-12-08 have no batch: a worker answered one request at a time."""
    settings: dict[tuple, list[dict[str, Any]]] = {}
    for row in record["rows"]:
        key = (_served(path, row), row["runtime"], row.get("workers"), row.get("batch", 1))
        settings.setdefault(key, []).append(row)
    cells = []
    for (served, runtime, workers, batch), rows in settings.items():
        def median(name: str) -> float:
            return statistics.median(r[name] for r in rows)

        ratios = sorted(r["ratio"] for r in rows)
        ratio = f"{median('ratio'):.2f}" + (f" ({ratios[0]:.2f}-{ratios[-1]:.2f})" if len(rows) > 1 else "")
        cells.append([served, runtime, "" if workers is None else str(workers), str(batch),
                      f"{median('predict_rps'):,.0f}", ratio, f"{median('predict_p50_ms'):g}",
                      f"{median('predict_p99_ms'):g}", f"{sum(r['failed'] for r in rows):g}",
                      str(sum(len(r.get("rounds", {}).get("predict", [])) for r in rows)),
                      where_ran(record.get("environment", {}))])
    return cells


def serving_table() -> str:
    return every_file_table("ab", "bench_ab.py", ["model served", "runtime", "workers", "batch", "/predict req/s",
                                                  "ratio to /healthz", "p50 ms", "p99 ms", "failed", "rounds",
                                                  "CPU"],
                            serving_rows)


# Tuning: fast-hand-vs-tuned-*.md (seed runs timed side by side, written as a table)

def _is_seed_row(line: str) -> bool:
    """A seed's row of that table: `| 1 | 99.02% | ...`."""
    cells = line.strip("|").split("|")
    return line.startswith("|") and cells[0].strip().isdigit()


def tuned_fast_sentence() -> str:
    paths = sorted(RESULTS.glob("fast-hand-vs-tuned-*.md"))
    if not paths:
        raise SystemExit("no benchmarks/results/fast-hand-vs-tuned-*.md")
    path = paths[-1]
    median = next(line for line in path.read_text(encoding="utf-8").splitlines() if line.startswith("| median |"))
    hand_acc, hand_s, tuned_acc, tuned_s = (cell.strip() for cell in median.strip("|").split("|")[1:5])
    seeds = sum(1 for line in path.read_text(encoding="utf-8").splitlines() if _is_seed_row(line))
    return (f"A 40-trial study of `fast` found settings worth {tuned_acc} test accuracy against the recipe's "
            f"{hand_acc} (median of {seeds} seeds), but its batch of 64 makes the epoch "
            f"{float(tuned_s) / float(hand_s):.2f}x longer ({float(tuned_s):.1f} s vs {float(hand_s):.1f} s, side "
            f"by side with nothing else running): since `fast` exists for the shortest time to 99%, the recipe "
            f"keeps its hand-tuned settings ({source(path)}; CPU model not recorded).")


# Export parity and sizes: export_parity.py

def _kb(size: int) -> str:
    return f"{size / 1e6:.1f} MB" if size >= 1e6 else f"{size / 1e3:,.0f} KB"


def export_table() -> str:
    paths = sorted(RESULTS.glob("export-*.json"))
    if not paths:
        raise SystemExit("no benchmarks/results/export-*.json: run python benchmarks/export_parity.py")
    path = paths[-1]
    record = _json(path)
    rows = [("| model (test accuracy) | format | runtime | top-1 agreement | largest probability difference | "
             "file size (`.keras`) |"),
            "|---|---|---|---|---|---|"]
    previous = None
    for row in record["rows"]:
        accuracy = f" ({pct(row['test_accuracy'])})" if row.get("test_accuracy") else ""
        name = f"`{row['model']}`{accuracy}, SHA-256 `{row['model_sha256'][:8]}`"
        rows.append(f"| {name if name != previous else ''} | {row['format']} | {row['runtime']} | "
                    f"{pct(row['top1_agreement'])} ({row['disagreements']} of {row['images']:,} differ) | "
                    f"{row['max_abs_diff']:.1e} | {_kb(row['export_bytes'])} ({_kb(row['keras_bytes'])}) |")
        previous = name
    versions = record["environment"]
    rows += ["", (f"Each model's whole test set; Keras {versions.get('keras')}, TensorFlow "
                  f"{versions.get('tensorflow')}. Source: {source(path)}; {cpu_recorded([versions.get('cpu')])}.")]
    return "\n".join(rows)
