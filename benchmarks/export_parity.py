"""How closely each export answers what its Keras model answers, and how large it is.

Exports each model to every format `mnist-cnn export` writes (into a temporary folder, so
nothing beside the model changes), with the check the command itself runs on the model's
whole test set, and keeps what the command printed: top-1 agreement, the largest
probability difference, the runtime that ran the export, and the file sizes.

    python benchmarks/export_parity.py                     # the shipped mnist and fashion-mnist
    python benchmarks/export_parity.py runs/RUN/model.keras --formats onnx litert

Writes `results/export-<time>.json`: a row per model and format, each naming the model by
its SHA-256 (`common.model_record`).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from common import data_dir, model_record, write_result

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
FORMATS = ("onnx", "savedmodel", "litert")


def size_bytes(path: Path) -> int:
    """A file's size, or a folder's (SavedModel): the sum of its files."""
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def measure(model: str, formats: list[str], folder: Path) -> list[dict]:
    from mnist_cnn.export.export import SUFFIXES, export_model
    from mnist_cnn.inference.shipped import resolve_model

    rows = []
    keras_bytes = resolve_model(model).stat().st_size
    for fmt in formats:
        result = export_model(model, fmt, folder / f"{Path(str(model)).stem}-{fmt}{SUFFIXES.get(fmt, '')}", data_dir=data_dir())
        parity = result.parity
        row = {**model_record(model), "format": fmt, "runtime": parity.runtime, "dataset": parity.dataset,
               "images": parity.images, "top1_agreement": parity.top1_agreement,
               "disagreements": parity.disagreements, "max_abs_diff": parity.max_abs_diff,
               "test_accuracy": result.record["model"]["test_metrics"].get("accuracy")
               if result.record["model"].get("test_metrics") else None,
               "export_bytes": size_bytes(result.path), "keras_bytes": keras_bytes}
        rows.append(row)
        print(f"{model} {fmt:10} agreement {parity.top1_agreement:.2%} ({parity.disagreements} differ), "
              f"max |diff| {parity.max_abs_diff:.1e}, {row['export_bytes'] / 1e3:,.0f} KB", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="*", default=["mnist", "fashion-mnist"])
    parser.add_argument("--formats", nargs="+", choices=FORMATS, default=list(FORMATS))
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="export-parity-") as tmp:
        for model in args.models:
            rows += measure(model, args.formats, Path(tmp))
    print(write_result("export", {"rows": rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
