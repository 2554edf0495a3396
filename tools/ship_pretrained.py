"""Copy a finished run's model into the package as a pretrained model: `mnist-cnn predict NAME ...`.

    python tools/ship_pretrained.py RUN_DIR NAME      # NAME: mnist or fashion-mnist
    python tools/ship_pretrained.py --card-only NAME  # rewrite a shipped model's card
    python tools/ship_pretrained.py --quantized NAME  # measure int8 serving parity on the test set

Writes src/mnist_cnn/pretrained/NAME/: `model.keras` (without optimizer state), `config.json`
and `metrics.json` (what `runs.Run.model_info` reads: dataset, class names, preprocessing,
test scores), the run's `acceptance.json` ("not a digit") and its `writing.keras` if it has them, the model's SHA-256
(`model.keras.sha256`, checked whenever the name is used) and `MODEL_CARD.md`. The copy names no folder of the machine that trained it: the data
source becomes the dataset's name. Refuses a run that is not finished or that was
trained on another dataset than NAME. `--card-only` rewrites `MODEL_CARD.md` of the model
already shipped as NAME from its own files: after a recipe's settings change, its
"made with" command must spell out what the recipe no longer gives. `--quantized` (also
part of shipping) writes `quantized.json`: the dynamic-range int8 LiteRT model's top-1
agreement with the float model on the whole test set, which `serve` requires (>= 99.9%)
before it serves the quantised model.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

from mnist_cnn.core.hashing import sha256_file
from mnist_cnn.runs.config import TrainConfig
from mnist_cnn.training.recipes import train_command

REPO = Path(__file__).resolve().parents[1]
TARGET = REPO / "src" / "mnist_cnn" / "pretrained"


# The group of seeded training runs each shipped model is one seed of (benchmarks/results/training/).
SEED_GROUPS = {"mnist": "strong-fused-onewarp-mnist", "fashion-mnist": "wide-fused34-fashion-mnist"}
HF_DATASETS = {"mnist": ("MNIST", "ylecun/mnist"), "fashion-mnist": ("Fashion-MNIST", "zalando-datasets/fashion_mnist")}
DATA_LICENSES = {
    "mnist": "MNIST, by Yann LeCun, Corinna Cortes and Christopher J.C. Burges, made from NIST's Special Databases "
             "1 and 3; its authors state no licence (redistributions commonly list CC BY-SA 3.0). Cite LeCun et al., "
             "Gradient-based learning applied to document recognition, Proc. IEEE 86(11), 1998.",
    "fashion-mnist": "Fashion-MNIST: Zalando Research, MIT licence; cite Xiao, Rasul, Vollgraf, Fashion-MNIST: a "
                     "Novel Image Dataset for Benchmarking Machine Learning Algorithms, arXiv:1708.07747, 2017.",
}
HYPERPARAMETERS = ("epochs", "batch_size", "learning_rate", "schedule", "warmup_epochs", "labels", "label_smoothing",
                   "weight_decay", "val_fraction", "patience", "precision", "fused_batch_norm", "augment",
                   "aug_shift", "aug_rotation_deg", "aug_zoom", "aug_one_warp", "aug_crop", "aug_flip", "aug_erasing",
                   "seed")


def seed_spread(name: str) -> str:
    """The test accuracy of the shipped model's seed group: mean ± std and each seed."""
    import statistics

    from seed_table import rows  # beside this script

    found = rows(SEED_GROUPS[name] + "-seed")
    if len(found) < 2:
        return "one seed only"
    tests = [100 * r["test"] for r in found]
    each = ", ".join(f"seed {r['seed']} {100 * r['test']:.2f}%" for r in found)
    return f"{statistics.mean(tests):.2f}% ± {statistics.stdev(tests):.2f} over {len(found)} seeds ({each})"


def refusal_unseen(name: str, digest: str) -> str:
    """What the "not a digit" rule refuses of data it was not fitted on, from the newest refusal result."""
    results = REPO / "benchmarks" / "results"
    for path in sorted(results.glob("refusal-*.json"), reverse=True):
        record = json.loads(path.read_text())
        if record.get("model_sha256") == digest:
            share = {k: v["share"] for k, v in record["refused"].items()}
            return (f"on data the rule was not fitted on (`benchmarks/results/{path.name}`): refuses "
                    f"{100 * share['fashion-mnist test']:.1f}% of Fashion-MNIST test images, "
                    f"{100 * share['noise']:.2f}% of noise, {100 * share['scribbles']:.1f}% of scribbles, "
                    f"{100 * share['letters']:.1f}% of letters, and {100 * share['mnist test']:.2f}% of MNIST test "
                    f"digits{_as_sent(share)}")
    return "not yet measured on data the rule was not fitted on (`benchmarks/refusal.py` is digit-oriented)"


def _as_sent(share: dict[str, float]) -> str:
    """The digits as people send them, for the results that measured them."""
    parts = [f"{100 * share[key]:.1f}% {what}" for key, what in
             (("mnist test enlarged to 84 px", "enlarged to 84 px"),
              ("mnist test as written", "rescaled and slanted as written")) if key in share]
    return f" ({'; '.join(parts)})" if parts else ""


def reader_digest(name: str) -> str | None:
    """The SHA-256 of the touching-digit reader shipped beside model `name`, if it has one."""
    digest_file = TARGET / name / "reader.keras.sha256"
    return digest_file.read_text(encoding="ascii").split()[0] if digest_file.is_file() else None


def numbers_read(digest: str, reader_sha256: str | None) -> str | None:
    """Whole numbers of MNIST test digits read exactly, from the newest read_numbers result for `digest`
    read with the reader that ships beside it (`reader_sha256`; a trial of another reader is not the card's)."""
    for path in sorted((REPO / "benchmarks" / "results").glob("read-numbers-*.json"), reverse=True):
        record = json.loads(path.read_text())
        reader = record.get("reader")
        if (record.get("model_sha256") == digest and "separate" in record and "against" not in record
                and (reader_sha256 is None or (reader or {}).get("sha256") == reader_sha256)):
            lengths = sorted(int(k) for k in record["touching"]["exact_by_length"])
            how = (f"with the touching-digit reader, SHA-256 `{reader['sha256'][:12]}`" if reader
                   else "cut by the model's judgement alone, no reader")
            return (f"{100 * record['separate']['exact']:.1f}% of numbers of 2-6 separate MNIST test digits read "
                    f"exactly; {100 * record['touching']['exact']:.1f}% of numbers of {lengths[0]}-{lengths[-1]} "
                    f"digits that touch or overlap ({how}) (`benchmarks/results/{path.name}`)")
    return None


def card(name: str, record: dict, metrics: dict, digest: str) -> str:
    """MODEL_CARD.md in the Hugging Face form: YAML metadata, then use, training, compute, evaluation, limits."""
    config, data, env = record["config"], record["data"], record.get("environment", {})
    test, training = metrics["test"], metrics.get("training", {})
    command = train_command(TrainConfig(**config))  # with every flag the recipe does not give
    title, hf_id = HF_DATASETS[name]
    other = "a digit" if name == "mnist" else "one of its ten classes"
    metadata = [
        "---", "license: mit", "library_name: keras", "pipeline_tag: image-classification",
        f"tags: [{name}, cnn, keras, tensorflow, image-classification]", f"datasets: [{hf_id}]",
        "metrics: [accuracy, f1]", "model-index:", f"- name: mnist-cnn-{name}", "  results:",
        "  - task: {type: image-classification, name: Image classification}",
        f"    dataset: {{name: {title}, type: {hf_id}, split: test}}", "    metrics:",
        f"    - {{type: accuracy, value: {test['accuracy']}, name: Test accuracy}}",
        f"    - {{type: f1, value: {round(test['macro']['f1'], 4)}, name: Macro F1}}", "---", ""]
    hyper = [f"| `{key}` | `{config[key]}` |" for key in HYPERPARAMETERS if key in config]
    return "\n".join(metadata + [
        f"# {name}: a `{config['model']}` CNN for {title}", "",
        (f"Shipped with mnist-cnn; works by name wherever a model file does: `mnist-cnn predict {name} photo.png`, "
        f"`mnist-cnn serve {name}`, `Predictor.from_path(\"{name}\")`."), "",
        "## Intended use", "", INTENDED[name], "",
        "## Limits and out-of-scope use", "", LIMITS[name], "",
        "## Training procedure", "",
        f"- made with: `{command}` (Keras {env.get('keras')}, TensorFlow {env.get('tensorflow')})",
        (f"- trained on {data['num_train']:,} {data['name']} training images, the best epoch chosen on "
         f"{data['num_val']:,} held-out validation images (epoch {training.get('best_epoch')} of "
         f"{training.get('epochs_run')}); the test set was used once, after training"),
        f"- preprocessing of people's images: `{data.get('preprocessing', 'digit')}` (as `mnist-cnn predict` does)",
        "", "| hyperparameter | value |", "|---|---|", *hyper, "",
        "## Compute", "",
        (f"- {training.get('train_seconds_total', 0):,.0f} s of training ({training.get('epochs_run')} epochs, "
         f"median {training.get('epoch_time_s_median', 0):.1f} s an epoch) on a 2-core CPU VM: "
         f"{env.get('cpu') or 'CPU not recorded'}; no GPU"), "",
        "## Evaluation", "",
        (f"- test accuracy **{100 * test['accuracy']:.2f}%** on the {test['num_images']:,} {title} test images "
         f"(macro F1 {test['macro']['f1']:.4f})"),
        f"- the same recipe over seeds: {seed_spread(name)}",
        f"- \"not {other}\" rule (`acceptance.json`): {refusal_unseen(name, digest)}",
        *([f"- whole numbers: {numbers}"] if name == "mnist" and (numbers := numbers_read(digest, reader_digest(name)))
          else []), "",
        "## Data", "", DATA_LICENSES[name], "",
        "## File", "",
        f"`model.keras` (Keras 3, safe to load), SHA-256 `{digest}`, checked at every use (also in `model.keras.sha256`).",
        *(["", reader_file_line(name)] if reader_file_line(name) else []),
        *(["", writing_file_line(name)] if writing_file_line(name) else []),
        ""])


def reader_file_line(name: str) -> str | None:
    """The card's line on the touching-digit reader shipped beside the model, if there is one."""
    digest, record_file = reader_digest(name), TARGET / name / "reader.json"
    if digest is None or not record_file.is_file():
        return None
    record = json.loads(record_file.read_text())
    config = record["config"]
    flags = " ".join([f"--context {config.get('context', 'conv')}"]
                     + [f"--{name} {config[name]}" for name in ("width", "precision", "warp")
                        if name in config and config[name] not in (16, "float32", 0.0)])
    started = (f", started from the layers of the reader with SHA-256 `{record['init_sha256'][:12]}`"
               if record.get("init_sha256") else "")
    if not (TARGET / name / "reader.tflite").is_file():
        twin = ""
    elif record.get("litert") == "dynamic-range int8":
        twin = (" `reader.tflite` beside it is the same reader converted to LiteRT with int8 weights, which reads "
                f"{100 * record['litert_strips_read_alike']:.1f}% of those strips as the reader does.")
    else:
        twin = " `reader.tflite` beside it is the same reader converted to LiteRT, checked against it on a probe."
    return (f"`reader.keras`: the touching-digit reader (`mnist-cnn train-reader {flags}`, "
            f"{record['parameters']:,} parameters, CTC, trained on {record['strips']:,} numbers composed from MNIST "
            f"training digits in {record['seconds_training']:,.0f} s on "
            f"{record['environment'].get('cpu') or 'an unrecorded CPU'}{started}; "
            f"{100 * record['test_strips_read_exactly']:.1f}% of {record['test_strips']:,} strips of test digits "
            f"read exactly), SHA-256 `{digest}`, checked at first use.{twin}")


def writing_file_line(name: str) -> str | None:
    """The card's line on the writing scorer of the "not a digit" rule, if the model has one."""
    rule = json.loads((TARGET / name / "acceptance.json").read_text())
    if "writing" not in rule["features"]:
        return None
    scorer = rule["details"]["writing_scorer"]
    return (f"`writing.keras`: the writing scorer whose logit is the \"not a digit\" rule's fifth feature "
            f"(`mnist-cnn calibrate`, {scorer['parameters']:,} parameters, {scorer['epochs']} epochs), SHA-256 "
            f"`{rule['details']['writing_sha256']}`, recorded in `acceptance.json` and checked whenever the "
            f"model is opened.")


INTENDED = {
    "mnist": "Reading handwritten digits 0-9 in images people make (photos, scans, drawings on the page of "
             "`mnist-cnn serve`), one digit per image or every digit of a number (`--number`), and teaching "
             "how a CNN does it. Each answer says whether the input looks like a digit at all.",
    "fashion-mnist": "Sorting product-style photos of one clothing item or shoe into Fashion-MNIST's ten "
                     "classes, and teaching how a CNN tells clothes apart. Each answer says whether the input "
                     "looks like one of its ten classes at all.",
}


LIMITS = {
    "mnist": "Handwritten digits 0-9, one per image (or a number of them with `--number`, touching digits "
             "read by the reader shipped beside it), prepared MNIST-style: dark or light ink on plain paper, "
             "roughly upright, one line. It knows no letters or other symbols; its \"not a digit\" rule "
             "(`acceptance.json`) refuses most things that are not digits (Fashion-MNIST items, noise, many "
             "letters) but not all: a letter shaped like a digit (O, l, S, Z) is read as that digit. Touching "
             "digits were measured on numbers composed from MNIST digits, not on real handwriting. Measured on MNIST's "
             "test set, US census staff and students' handwriting of the 1990s: other hands, pens and scanners "
             "may do worse. Not for decisions about people (forms, exams, identity documents) without a human check.",
    "fashion-mnist": "Photos of one clothing item or shoe on a plain background, of Zalando's ten "
                     "Fashion-MNIST classes, centred and upright as product photos are. It confuses "
                     "shirts, T-shirts, pullovers and coats most (`mnist-cnn evaluate fashion-mnist --dataset "
                     "fashion-mnist --out DIR` draws the confusion matrix); items "
                     "outside the ten classes are still given one of them unless its \"not one of its classes\" "
                     "rule refuses them. Measured on Fashion-MNIST's test set only; not for photos of people "
                     "wearing clothes, several items at once, or anything but the ten classes.",
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


def write_quantized_parity(name: str) -> int:
    """`quantized.json` for the shipped NAME, measured on its dataset's whole test set."""
    from mnist_cnn.core.system import quiet_tensorflow

    quiet_tensorflow()
    from mnist_cnn.data.load import load_dataset
    from mnist_cnn.data.prepare import normalize
    from mnist_cnn.inference.convert import MIN_AGREEMENT, QUANTIZED_RECORD, quantized_parity
    from mnist_cnn.inference.keras_file import load_saved_model
    from mnist_cnn.runs.run import environment

    target = TARGET / name
    dataset = load_dataset(name)
    record = quantized_parity(load_saved_model(target / "model.keras"), normalize(dataset.test_images),
                              dataset.test_labels, sha256_file(target / "model.keras"))
    record["environment"] = {k: v for k, v in environment().items() if k != "platform"}
    (target / QUANTIZED_RECORD).write_text(json.dumps(record, indent=2) + "\n")
    verdict = "serves quantised" if record["top1_agreement"] >= MIN_AGREEMENT else "stays float"
    print(f"{name}: top-1 agreement {record['top1_agreement']:.2%} on {record['images']:,} test images, accuracy "
          f"{record['accuracy_float']:.2%} float / {record['accuracy_quantized']:.2%} int8: {verdict}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", type=Path, nargs="?")
    parser.add_argument("name", choices=("mnist", "fashion-mnist"))
    parser.add_argument("--card-only", action="store_true", help="rewrite the shipped NAME's model card only")
    parser.add_argument("--quantized", action="store_true",
                        help="measure the shipped NAME's int8 serving parity on the test set only")
    args = parser.parse_args(argv)
    if args.card_only:
        return rewrite_card(args.name)
    if args.quantized:
        return write_quantized_parity(args.name)
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
        if (args.run_dir / "writing.keras").is_file():  # the rule's writing scorer (`mnist-cnn calibrate`)
            shutil.copyfile(args.run_dir / "writing.keras", target / "writing.keras")
    print(f"shipped {args.run_dir} as {target} (test accuracy {metrics['test']['accuracy']:.4f})")
    return write_quantized_parity(args.name)


if __name__ == "__main__":
    sys.exit(main())
