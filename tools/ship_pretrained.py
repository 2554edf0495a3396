"""Copy a finished run's model into the package as a pretrained model: `mnist-cnn predict NAME ...`.

    python tools/ship_pretrained.py RUN_DIR NAME      # NAME: mnist or fashion-mnist
    python tools/ship_pretrained.py --card-only NAME  # rewrite a shipped model's card

Writes src/mnist_cnn/pretrained/NAME/: `model.keras` (without optimizer state), `config.json`
and `metrics.json` (what `runs.Run.model_info` reads: dataset, class names, preprocessing,
test scores), the run's `acceptance.json` ("not a digit") if it has one, the model's SHA-256
(`model.keras.sha256`, checked whenever the name is used) and `MODEL_CARD.md`. The copy names no folder of the machine that trained it: the data
source becomes the dataset's name. Refuses a run that is not finished or that was
trained on another dataset than NAME. `--card-only` rewrites `MODEL_CARD.md` of the model
already shipped as NAME from its own files: after a recipe's settings change, its
"made with" command must spell out what the recipe no longer gives.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mnist_cnn.core.hashing import sha256_file
from mnist_cnn.runs.config import TrainConfig
from mnist_cnn.training.recipes import train_command

REPO = Path(__file__).resolve().parents[1]
TARGET = REPO / "src" / "mnist_cnn" / "pretrained"


def card(name: str, record: dict, metrics: dict, digest: str) -> str:
    config, data, env = record["config"], record["data"], record.get("environment", {})
    test, training = metrics["test"], metrics.get("training", {})
    command = train_command(TrainConfig(**config))  # with every flag the recipe does not give
    return "\n".join([
        f"# Pretrained model: {name}", "",
        f"- architecture `{config['model']}`, recipe `{config.get('recipe')}`, seed {config['seed']}",
        (f"- trained on {data['num_train']:,} {data['name']} training images, selected on {data['num_val']:,} "
         f"validation images (best epoch {training.get('best_epoch')} of {training.get('epochs_run')})"),
        (f"- test accuracy **{100 * test['accuracy']:.2f}%** on the {test['num_images']:,} test images "
         f"(macro F1 {test['macro']['f1']:.4f}), scored once after training"),
        f"- preprocessing of people's images: `{data.get('preprocessing', 'digit')}`",
        f"- made with: `{command}` (Keras {env.get('keras')}, TensorFlow {env.get('tensorflow')})",
        f"- file: `model.keras`, SHA-256 `{digest}` (checked at every use; also in `model.keras.sha256`)", "",
        "## Limits", "", LIMITS[name], "",
        "Use it by name: `mnist-cnn predict " + name + " photo.png`, `mnist-cnn evaluate " + name +
        f" --dataset {config['dataset']}`, `Predictor.from_path(resolve_model(\"{name}\"))`.", ""])


LIMITS = {
    "mnist": "Handwritten digits 0-9, one per image (or one per connected ink group with `--number`), "
             "prepared MNIST-style: dark or light ink on plain paper, roughly upright. It knows no letters or "
             "other symbols; its \"not a digit\" rule (`acceptance.json`) refuses most things that are not digits "
             "(Fashion-MNIST items, noise, many letters) but not all: a letter shaped like a digit (O, l, S, Z) "
             "is read as that digit. Measured on MNIST's test set, US census staff and students' handwriting "
             "of the 1990s: other hands, pens and scanners may do worse.",
    "fashion-mnist": "Photos of one clothing item or shoe on a plain background, of Zalando's ten "
                     "Fashion-MNIST classes, centred and upright as product photos are. It confuses "
                     "shirts, T-shirts, pullovers and coats most (`mnist-cnn evaluate fashion-mnist --dataset "
                     "fashion-mnist --out DIR` draws the confusion matrix); items "
                     "outside the ten classes are still given one of them unless its \"not a digit\" rule "
                     "refuses them. Measured on Fashion-MNIST's test set only.",
}


def strip_optimizer(source: Path, target: Path) -> None:
    """Save the model without its optimizer state (a third of the file: Adam's two moments per
    weight) and check the copy predicts exactly what the original does."""
    import keras
    import numpy as np

    model = keras.models.load_model(source, compile=False)
    model.save(target)
    probe = np.random.default_rng(0).random((64, 28, 28, 1), dtype=np.float32)
    copy = keras.models.load_model(target)
    if not np.array_equal(model.predict(probe, verbose=0), copy.predict(probe, verbose=0)):
        raise SystemExit(f"{target} does not predict like {source}")


def rewrite_card(name: str) -> int:
    target = TARGET / name
    try:
        record = json.loads((target / "config.json").read_text())
        metrics = json.loads((target / "metrics.json").read_text())
        digest = (target / "model.keras.sha256").read_text().split()[0]
        actual = sha256_file(target / "model.keras")
    except (OSError, ValueError, IndexError) as error:
        print(f"no shipped {name} model to rewrite the card of: {error} (ship one first)", file=sys.stderr)
        return 2
    if digest != actual:
        print(f"{target / 'model.keras'} does not match its model.keras.sha256", file=sys.stderr)
        return 2
    (target / "MODEL_CARD.md").write_text(card(name, record, metrics, digest))
    print(f"rewrote {target / 'MODEL_CARD.md'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", type=Path, nargs="?")
    parser.add_argument("name", choices=("mnist", "fashion-mnist"))
    parser.add_argument("--card-only", action="store_true", help="rewrite the shipped NAME's model card only")
    args = parser.parse_args(argv)
    if args.card_only:
        return rewrite_card(args.name)
    if args.run_dir is None:
        parser.error("RUN_DIR is needed unless --card-only")

    record = json.loads((args.run_dir / "config.json").read_text())
    metrics = json.loads((args.run_dir / "metrics.json").read_text())
    if record["config"]["dataset"] != args.name:
        print(f"{args.run_dir} was trained on {record['config']['dataset']}, not {args.name}", file=sys.stderr)
        return 2
    record["data"]["source"] = args.name  # not the folder of the machine that trained it
    record["environment"].pop("platform", None)
    target = TARGET / args.name
    target.mkdir(parents=True, exist_ok=True)
    strip_optimizer(args.run_dir / "model.keras", target / "model.keras")
    (target / "config.json").write_text(json.dumps(record, indent=2) + "\n")
    (target / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    digest = sha256_file(target / "model.keras")
    (target / "model.keras.sha256").write_text(f"{digest}  model.keras\n")  # checked by resolve_model
    (target / "MODEL_CARD.md").write_text(card(args.name, record, metrics, digest))
    calibration = args.run_dir / "acceptance.json"  # the "not a digit" rule, if the run was calibrated
    if calibration.is_file():
        rule = json.loads(calibration.read_text())
        # The copy predicts exactly as the original (checked above): the rule holds for it, by its new digest.
        rule["details"]["model_sha256"] = digest
        (target / "acceptance.json").write_text(json.dumps(rule, indent=2) + "\n")
    print(f"shipped {args.run_dir} as {target} (test accuracy {metrics['test']['accuracy']:.4f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
