"""The `mnist-cnn` command: argument parsing, printing and exit codes, nothing else.

`main(argv) -> int` is tested in-process. Handlers are thin: they resolve settings and
call the library. Keras/TensorFlow are imported inside handlers so `--help` stays fast.
Exit codes: 0 success, 2 a user error (one line on stderr, no traceback), 1 a bug.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import Callable, Sequence

from . import cli_data, cli_use
from .errors import MnistCnnError
from .runs import CONFIG_FILE, METRICS_FILE, REPORT_FILE

log = logging.getLogger("mnist_cnn")

EPILOGS = {
    "train": "example:\n  mnist-cnn train --data-dir ../shared/data --epochs 12\n"
             "  mnist-cnn train --dataset fashion-mnist --model keras-example --config my.toml\n"
             "  mnist-cnn train --recipe fast\n"
             "  mnist-cnn train --dataset my_letters.npz --train-limit 2000\n"
             "  mnist-cnn train --offline --mirror file:///media/usb/datasets/\n"
             "  mnist-cnn train --resume runs/20261127T120000Z-mnist-cnn",
    "evaluate": "example:\n  mnist-cnn evaluate runs/20261127T120000Z-mnist-cnn/model.keras --out eval/\n"
                "  mnist-cnn evaluate model.keras --dataset my_images/ --offline",
    "models": "example:\n  mnist-cnn models",
    "explain": "example:\n  mnist-cnn explain runs/20261127T120000Z-mnist-cnn/model.keras my_digit.png -o out.png\n"
               "  mnist-cnn explain runs/20261127T120000Z-mnist-cnn/model.keras --test-index 8 -o test8.png",
    "data": cli_data.EPILOGS["data"],
    **cli_use.EPILOGS,
}


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line (plus a pointer to --help), exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be >= 1")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="mnist-cnn", description="Train, evaluate and use CNNs on MNIST-family data.",
                     epilog="run `mnist-cnn COMMAND --help` for each command's options and an example",
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    def command(name: str, help_text: str, handler: Callable[[argparse.Namespace], int]) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_text, description=help_text, epilog=EPILOGS[name],
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.set_defaults(handler=handler)
        return p

    t = command("train", "Train a model and write a run folder (model, metrics, plots, report).", _cmd_train)
    t.add_argument("--dataset", metavar="NAME|PATH",
                   help="mnist (default), fashion-mnist, or a path: a folder of IDX files, a .npz "
                        "(x_train, y_train, x_test, y_test) or a folder with train/ and test/ image folders")
    t.add_argument("--model", help="architecture (see `mnist-cnn models`; default cnn)")
    t.add_argument("--recipe", help="start from a named preset: fast, default or strong (see `mnist-cnn models`)")
    t.add_argument("--epochs", type=int, help="maximum epochs (early stopping may end sooner)")
    t.add_argument("--batch-size", type=int, help="images per optimizer step")
    t.add_argument("--learning-rate", type=float, help="peak learning rate of Adam")
    t.add_argument("--labels", help="onehot (categorical_crossentropy) or sparse (sparse_categorical_crossentropy)")
    t.add_argument("--val-fraction", type=float, help="share of training images held out for validation")
    t.add_argument("--patience", type=int, help="epochs without validation improvement before stopping")
    t.add_argument("--seed", type=int, help="random seed for split, initialisation and shuffling")
    t.add_argument("--deterministic", action="store_const", const=True, help="TensorFlow op determinism")
    t.add_argument("--train-limit", type=int, help="keep only the first N training images (smoke runs)")
    t.add_argument("--config", type=Path, help="a .toml or .json file of settings (flags override it)")
    cli_data.add_source_flags(t)
    t.add_argument("--runs-dir", type=Path, help="where run folders go (default $MNIST_CNN_RUNS_DIR or ./runs)")
    t.add_argument("--resume", type=Path, metavar="RUN_DIR", help="continue an interrupted run in RUN_DIR")

    e = command("evaluate", "Recompute test metrics, plots and report for a saved model.", _cmd_evaluate)
    e.add_argument("model_path", type=Path, metavar="MODEL.keras")
    e.add_argument("--dataset", metavar="NAME|PATH",
                   help="dataset to test on (default: the one the model's run used, else mnist)")
    cli_data.add_source_flags(e)
    e.add_argument("--out", type=Path, help="output folder (default: beside the model, evaluate-<dataset>-<time>)")

    command("models", "List the registered architectures with their parameter counts.", _cmd_models)

    x = command("explain", "Draw what a model sees in one image: input, probabilities, saliency, feature maps.",
                _cmd_explain)
    x.add_argument("model_path", type=Path, metavar="MODEL.keras")
    x.add_argument("image", type=Path, nargs="?", metavar="IMAGE",
                   help="an image file of one digit (PNG, JPEG, ...), preprocessed as `predict` does")
    x.add_argument("--test-index", type=int, metavar="N", help="explain test image N of --dataset instead of IMAGE")
    x.add_argument("--dataset", help="dataset for --test-index (default: the model's run, else mnist)")
    cli_data.add_source_flags(x)  # --data-dir, --mirror, --offline, for --test-index
    x.add_argument("-o", "--out", type=Path, required=True, metavar="OUT.png", help="where to write the picture")
    cli_data.add_data_command(sub, _Parser)

    cli_use.add_predict_arguments(command("predict", cli_use.PREDICT_HELP, _cmd_predict), _positive_int)
    cli_use.add_serve_arguments(command("serve", cli_use.SERVE_HELP, _cmd_serve))
    return parser


def _quiet_tensorflow() -> None:
    """Import TensorFlow and Keras with their C++ start-up chatter silenced.

    TF 2.2x prints oneDNN and absl notes straight to file descriptor 2 while importing,
    before TF_CPP_MIN_LOG_LEVEL is honoured, so the descriptor itself is pointed at
    /dev/null for the import. Python exceptions still surface after it is restored.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import keras  # noqa: F401
        import tensorflow as tf

        tf.constant(0)  # the second batch of notes comes with the first op
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


def _cmd_train(args: argparse.Namespace) -> int:
    from .config import TrainConfig, load_config_file
    from .data import is_custom, load_dataset
    from .recipes import recipe_settings
    from .runs import config_from_run, default_runs_dir, new_run_dir

    if args.resume is not None:
        run_dir = args.resume
        config = config_from_run(run_dir)
        if (run_dir / METRICS_FILE).exists():
            raise MnistCnnError(f"{run_dir} already finished (metrics.json exists); start a new run instead")
    else:
        overrides = load_config_file(args.config) if args.config else {}
        flags = {"dataset": args.dataset, "model": args.model, "epochs": args.epochs,
                 "batch_size": args.batch_size, "learning_rate": args.learning_rate, "labels": args.labels,
                 "val_fraction": args.val_fraction, "patience": args.patience, "seed": args.seed,
                 "deterministic": args.deterministic, "train_limit": args.train_limit}
        base = TrainConfig()
        if args.recipe:
            dataset_name = flags["dataset"] or overrides.get("dataset") or base.dataset
            base = base.replace(**recipe_settings(args.recipe, dataset_name))
        config = base.replace(**overrides).replace(**flags)
        run_dir = None
    if is_custom(config.dataset):  # absolute, so --resume and evaluate find it from any folder
        config = config.replace(dataset=str(Path(config.dataset).resolve()))
    # Before the slow imports: fail fast (and fetch on first use).
    dataset = load_dataset(config.dataset, args.data_dir, **cli_data.source_kwargs(args))
    _quiet_tensorflow()
    from .models import build_model
    from .report import results_lines
    from .train import train

    build_model(config.model)  # an unknown name fails here, before a run folder exists
    if run_dir is None:
        run_dir = new_run_dir(args.runs_dir or default_runs_dir(), dataset.name, config.model)
    print(f"run folder: {run_dir}", flush=True)
    result = train(config, dataset, run_dir, verbose=1 if sys.stdout.isatty() else 2,
                   resume=args.resume is not None)
    print("\n".join(results_lines(result.metrics)))
    print(f"report: {run_dir / REPORT_FILE}")
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    _quiet_tensorflow()
    from .data import load_dataset, normalize
    from .evaluate import predict_probabilities, write_evaluation
    from .models import load_saved_model
    from .report import results_lines, write_report
    from .runs import read_run_config, utc_stamp

    model_path: Path = args.model_path
    model = load_saved_model(model_path)
    dataset_name = args.dataset
    if dataset_name is None and (model_path.parent / CONFIG_FILE).exists():
        dataset_name = read_run_config(model_path.parent).get("config", {}).get("dataset")
    dataset = load_dataset(dataset_name or "mnist", args.data_dir, **cli_data.source_kwargs(args))
    expected_classes = model.output_shape[-1]
    if expected_classes != dataset.num_classes:
        raise MnistCnnError(f"{model_path} predicts {expected_classes} classes but {dataset.name} has "
                            f"{dataset.num_classes}; pass the --dataset the model was trained on")
    out = args.out or model_path.parent / f"evaluate-{dataset.name}-{utc_stamp()}"
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise MnistCnnError(f"cannot create output folder {out}: {e.strerror}; pass --out to a writable folder")
    probabilities = predict_probabilities(model, normalize(dataset.test_images))
    metrics = write_evaluation(out, dataset, probabilities,
                               extra={"model": model.name, "model_file": str(model_path.resolve())})
    write_report(out)
    print("\n".join(results_lines(metrics)))
    print(f"written to {out}")
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    _quiet_tensorflow()
    from .models import MODELS, build_model
    from .recipes import RECIPES

    print(f"{'model':<16}{'parameters':>12}  description")
    for name, entry in MODELS.items():
        print(f"{name:<16}{build_model(name).count_params():>12,}  {entry.description}")
    print(f"\n{'recipe':<16}{'model':>12}  description (mnist-cnn train --recipe NAME)")
    for name, recipe in RECIPES.items():
        print(f"{name:<16}{recipe.settings.get('model', 'cnn'):>12}  {recipe.description}")
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    return cli_use.run_predict(args, _quiet_tensorflow)


def _cmd_serve(args: argparse.Namespace) -> int:
    return cli_use.run_serve(args, _quiet_tensorflow)


def _cmd_explain(args: argparse.Namespace) -> int:
    if (args.image is None) == (args.test_index is None):
        raise MnistCnnError("give either IMAGE or --test-index N (not both, not neither)")
    if not args.out.parent.is_dir():
        raise MnistCnnError(f"folder {args.out.parent} does not exist; create it or pass another -o path")
    _quiet_tensorflow()
    from .data import DATASETS, load_dataset, normalize
    from .explain import explain_figure, save_figure
    from .models import load_saved_model
    from .predict import FASHION_DATASETS
    from .preprocess import preprocess
    from .runs import read_run_config

    model = load_saved_model(args.model_path)
    run = read_run_config(args.model_path.parent) if (args.model_path.parent / CONFIG_FILE).exists() else {}
    dataset_name = args.dataset or run.get("config", {}).get("dataset") or "mnist"
    class_names = run.get("data", {}).get("class_names") or (
        list(DATASETS[dataset_name].class_names) if dataset_name in DATASETS else [])
    if args.image is not None:
        # The same steps and errors as `mnist-cnn predict`, with the recipe of the model's dataset.
        style = "fashion" if dataset_name in FASHION_DATASETS else "digit"
        image = preprocess(args.image, style=style)
        title = f"{args.image.name}"
    else:
        dataset = load_dataset(dataset_name, args.data_dir, **cli_data.source_kwargs(args))
        class_names = class_names or list(dataset.class_names)
        if not 0 <= args.test_index < len(dataset.test_labels):
            raise MnistCnnError(f"--test-index {args.test_index} is out of range: {dataset.name} has "
                                f"{len(dataset.test_labels)} test images (0..{len(dataset.test_labels) - 1})")
        image = normalize(dataset.test_images[args.test_index: args.test_index + 1])[0]  # already MNIST-style
        true_class = dataset.class_names[dataset.test_labels[args.test_index]]
        title = f"{dataset.name} test image {args.test_index} (true class {true_class})"
    if len(class_names) != model.output_shape[-1]:  # no run folder, or one for another dataset
        class_names = [str(i) for i in range(model.output_shape[-1])]
    save_figure(explain_figure(model, image, class_names, title=title), args.out)
    print(f"written to {args.out}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return args.handler(args)
    except MnistCnnError as e:
        command = " ".join(filter(None, [args.command, getattr(args, "data_command", None)]))
        print(f"mnist-cnn {command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mnist-cnn {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
