"""Ship a trained touching-digit reader beside a shipped digit model: copy it, write its LiteRT twin.

    python tools/ship_reader.py build/reader-w32/reader.keras [--model mnist] [--data-dir DIR]

Copies READER.keras and the record `train-reader` wrote beside it (reader.json) into
`src/mnist_cnn/pretrained/MODEL/`, writes the twin that `predict` and `serve` read with
(`training.reader.write_checked_twin`: int8 when it reads the record's test strips as the
reader does, else float), and the SHA-256 file the package checks the reader against. The
record keeps how the reader was trained and what it read; the twin's fields are rewritten.
A reader trained before twins were int8 can be shipped again the same way.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from mnist_cnn.core.atomic import atomic_path, write_json
from mnist_cnn.core.errors import MnistCnnError
from mnist_cnn.core.hashing import sha256_file
from mnist_cnn.data.load import load_dataset
from mnist_cnn.inference.touching import READER_FILE, TouchingReader
from mnist_cnn.training.reader import make_strips, write_checked_twin

MAX_CHECK_STRIPS = 100_000  # strips the twin is checked on, at most (a record asking more is not train-reader's)
PRETRAINED = Path(__file__).resolve().parent.parent / "src" / "mnist_cnn" / "pretrained"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("reader", type=Path, help="a reader.keras written by `mnist-cnn train-reader`")
    parser.add_argument("--model", default="mnist", help="the shipped digit model it reads for (default mnist)")
    parser.add_argument("--data-dir", type=Path)
    args = parser.parse_args(argv)
    record_file = args.reader.with_suffix(".json")
    if not args.reader.is_file() or not record_file.is_file():
        parser.error(f"{args.reader}: needs the reader and the reader.json `train-reader` wrote beside it")
    try:
        record = json.loads(record_file.read_text(encoding="utf-8"))
        seed, check_strips = int(record["config"]["seed"]), int(record["test_strips"])
        if not 1 <= check_strips <= MAX_CHECK_STRIPS:
            raise ValueError(f"test_strips {check_strips} is not from 1 to {MAX_CHECK_STRIPS:,}")
    except (OSError, ValueError, TypeError, KeyError) as e:
        parser.error(f"{record_file} is not the record `train-reader` wrote ({type(e).__name__}: {e}); train again")
    folder = PRETRAINED / args.model
    if not folder.is_dir():
        parser.error(f"--model {args.model}: no shipped model in {folder}")
    try:
        model = TouchingReader.load(args.reader).model  # refuses a file that is not a reader, before any copy
    except MnistCnnError as e:
        parser.error(str(e).splitlines()[0])
    dataset = load_dataset("mnist", args.data_dir)
    strips, _ = make_strips(dataset.test_images, dataset.test_labels, check_strips, seed + 1)

    target = folder / READER_FILE
    with atomic_path(target) as partial:  # a killed copy leaves the shipped reader whole
        shutil.copyfile(args.reader, partial)
    twin, about = write_checked_twin(model, target, strips)
    for stale in ("litert", "litert_sha256", "litert_strips_read_alike"):
        record.pop(stale, None)
    record.update(about)
    record["reader_sha256"] = sha256_file(target)
    write_json(target.with_suffix(".json"), record)
    target.with_name(READER_FILE + ".sha256").write_text(f"{record['reader_sha256']}  {READER_FILE}\n")
    print(f"shipped {target} with its {about['litert'] or 'no'} LiteRT twin"
          + (f" ({about['litert_strips_read_alike']:.2%} of {len(strips):,} test strips read alike)"
             if "litert_strips_read_alike" in about else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
