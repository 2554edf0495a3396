"""Optional extras on top of trained models: test-time augmentation and an ensemble of seeds.

Reported separately from the recipes' goals (which are single models, no test-time tricks):
  single     each model alone, as `mnist-cnn evaluate` scores it
  tta        each model, softmax averaged over the image and its four 1-pixel shifts
             (with --flip, also over the mirror image of each: for clothes, never for digits)
  ensemble   the models' softmax outputs averaged (one per seed)
  ensemble+tta  both
Nothing is selected on the test set: the shifts and the averaging are fixed in advance.

    python benchmarks/ensemble_tta.py runs/*-mnist-strong/model.keras --dataset mnist
    python benchmarks/ensemble_tta.py runs/*-fashion-mnist-wide/model.keras --dataset fashion-mnist --flip
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SHIFTS = [(0, 0), (1, 0), (-1, 0), (0, 1), (0, -1)]  # (rows, columns); background 0 fills the gap


def shifted(images, dy: int, dx: int):
    """`images` (N, 28, 28, 1) moved by dy rows and dx columns, the uncovered border black."""
    import numpy as np

    out = np.zeros_like(images)
    h, w = images.shape[1:3]
    out[:, max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        images[:, max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out


def views(images, flip: bool = False) -> list:
    """The test-time views of `images`: the image first, then its four 1-pixel shifts; with
    `flip`, the same five views of the left-right mirror image after them."""
    sources = [images, images[:, :, ::-1]] if flip else [images]
    return [shifted(source, dy, dx) for source in sources for dy, dx in SHIFTS]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="+", type=Path, metavar="MODEL.keras")
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--out", type=Path, help="also write the results as JSON here")
    parser.add_argument("--flip", action="store_true",
                        help="tta also averages over the mirror images (clothes; a mirrored digit is another sign)")
    args = parser.parse_args()

    import numpy as np

    from mnist_cnn.core.errors import MnistCnnError
    from mnist_cnn.data.load import load_dataset
    from mnist_cnn.data.prepare import normalize
    from mnist_cnn.inference.keras_file import load_saved_model
    from mnist_cnn.inference.runtimes import predict_probabilities

    try:
        dataset = load_dataset(args.dataset, args.data_dir)
        models = [load_saved_model(path) for path in args.models]
    except MnistCnnError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    x, y = normalize(dataset.test_images), dataset.test_labels
    test_views = views(x, args.flip)
    plain, tta = [], []
    for model in models:
        per_view = [predict_probabilities(model, v) for v in test_views]
        plain.append(per_view[0])
        tta.append(np.mean(per_view, axis=0))

    def accuracy(probabilities) -> float:
        return float((probabilities.argmax(1) == y).mean())

    rows = {
        "single": [accuracy(p) for p in plain],
        "tta": [accuracy(p) for p in tta],
        "ensemble": [accuracy(np.mean(plain, axis=0))],
        "ensemble+tta": [accuracy(np.mean(tta, axis=0))],
    }
    print(f"{args.dataset}, {len(models)} model(s), {len(test_views)} views per image"
          f"{' (shifts and mirror images)' if args.flip else ' (shifts)'}: {', '.join(str(p) for p in args.models)}")
    print("| method | test accuracy (mean ± std over models) | per model |\n|---|---|---|")
    for name, values in rows.items():
        spread = f" ± {100 * statistics.stdev(values):.2f}" if len(values) > 1 else ""
        print(f"| {name} | {100 * statistics.mean(values):.2f}%{spread} | "
              f"{', '.join(f'{100 * v:.2f}' for v in values)} |")
    if args.out:
        from common import command_line, environment, model_record

        args.out.write_text(json.dumps({"command": command_line(), "environment": environment(),
                                        "dataset": args.dataset, "models": [model_record(p) for p in args.models],
                                        "shifts": SHIFTS, "flip": args.flip, "accuracy": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
