"""The `mnist-cnn` command: argument parsing, printing and exit codes, nothing else.

`main(argv) -> int` is tested in-process. Handlers are thin: they resolve settings and
call the library. Keras/TensorFlow are imported inside handlers so `--help` stays fast.
Exit codes: 0 success, 2 a user error (one line on stderr, no traceback), 1 a bug.
"""

from __future__ import annotations

import argparse
import atexit
import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from ..core.errors import MnistCnnError
from ..core.system import quiet_tensorflow, skip_keras_extras
from ..core.messages import text
from ..core.version import __version__
from . import data as cli_data
from . import export as cli_export
from . import train as cli_train
from . import tune as cli_tune
from . import use as cli_use

log = logging.getLogger("mnist_cnn")

EPILOGS = {
    **cli_train.EPILOGS,
    "models": "example:\n  mnist-cnn models",
    "explain": "example:\n  mnist-cnn explain runs/20261127T120000Z-mnist-cnn/model.keras my_digit.png -o out.png\n"
               "  mnist-cnn explain runs/20261127T120000Z-mnist-cnn/model.keras --test-index 8 -o test8.png",
    "data": cli_data.EPILOGS["data"],
    "tune": cli_tune.EPILOGS["tune"],
    **cli_use.EPILOGS,
    **cli_export.EPILOGS,
}


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag in one line (plus a pointer to --help), exit 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="mnist-cnn", description="Train, evaluate and use CNNs on MNIST-family data.",
                     epilog="run `mnist-cnn COMMAND --help` for each command's options and an example",
                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    def command(name: str, help_text: str, handler: Callable[[argparse.Namespace], int]) -> argparse.ArgumentParser:
        return cli_data.add_command(sub, name, help_text, EPILOGS[name], handler)

    cli_train.add_train_arguments(command("train", cli_train.TRAIN_HELP, _cmd_train))
    cli_train.add_evaluate_arguments(command("evaluate", cli_train.EVALUATE_HELP, _cmd_evaluate))
    cli_train.add_reader_arguments(command("train-reader", cli_train.READER_HELP, cli_train.run_train_reader),
                                   cli_data.positive_int)

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
    cli_train.add_lang_flag(x)
    cli_data.add_data_command(sub, _Parser)

    cli_use.add_predict_arguments(command("predict", cli_use.PREDICT_HELP, _cmd_predict), cli_data.positive_int)
    cli_use.add_serve_arguments(command("serve", cli_use.SERVE_HELP, _cmd_serve))
    cli_use.add_calibrate_arguments(command("calibrate", cli_use.CALIBRATE_HELP, _cmd_calibrate), cli_data.add_source_flags)
    cli_tune.add_tune_command(sub, _Parser)
    cli_export.add_export_arguments(command("export", cli_export.EXPORT_HELP, _cmd_export))
    return parser


def _cmd_train(args: argparse.Namespace) -> int:
    return cli_train.run_train(args)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    return cli_train.run_evaluate(args)


def _cmd_models(args: argparse.Namespace) -> int:
    quiet_tensorflow()
    from ..runs.config import TrainConfig
    from ..training.models import MODELS, build_model
    from ..training.recipes import RECIPES

    print(f"{'model':<16}{'parameters':>12}  description")
    for name, entry in MODELS.items():
        print(f"{name:<16}{build_model(name).count_params():>12,}  {entry.description}")
    print(f"\n{'recipe':<16}{'model':>12}  description (mnist-cnn train --recipe NAME)")
    for name, recipe in RECIPES.items():
        print(f"{name:<16}{recipe.settings.get('model', TrainConfig.model):>12}  {recipe.description}")
    print(f"\n{'shipped':<16}{'model':>12}  test accuracy, dataset (use the name as MODEL: mnist-cnn predict NAME ...)")
    from ..inference.shipped import shipped_models

    for name, info in shipped_models().items():
        print(f"{name:<16}{info.architecture or '?':>12}  {_percent(info.test_metrics)}, {info.dataset}")
    return 0


def _percent(metrics: dict[str, Any] | None) -> str:
    accuracy = (metrics or {}).get("accuracy")
    return f"{100 * accuracy:.2f}%" if isinstance(accuracy, (int, float)) else "not measured"


def _cmd_predict(args: argparse.Namespace) -> int:
    return cli_use.run_predict(args)


def _cmd_serve(args: argparse.Namespace) -> int:
    return cli_use.run_serve(args)


def _cmd_calibrate(args: argparse.Namespace) -> int:
    return cli_use.run_calibrate(args, cli_data.source_kwargs(args))


def _cmd_export(args: argparse.Namespace) -> int:
    return cli_export.run_export(args)


def _cmd_explain(args: argparse.Namespace) -> int:
    quiet_tensorflow()
    from ..evaluation.explain import explain

    out = explain(args.model_path, args.out, args.image, args.test_index, args.dataset, data_dir=args.data_dir,
                  lang=args.lang, **cli_data.source_kwargs(args))
    print(text("written_to", args.lang, path=out))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    # A library's warning (Pillow, zipfile, Keras) is a log record here, shown with -v: the
    # user of a command sees its answer or one line of error, nothing before it.
    logging.captureWarnings(True)
    logging.getLogger("py.warnings").setLevel(logging.DEBUG if args.verbose else logging.ERROR)
    try:
        return args.handler(args)
    except MnistCnnError as e:
        command = " ".join(filter(None, [args.command, getattr(args, "data_command", None),
                                         getattr(args, "tune_command", None)]))
        print(f"mnist-cnn {command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"mnist-cnn {args.command}: interrupted", file=sys.stderr)
        return 130


def entry() -> None:
    """The `mnist-cnn` command and `python -m mnist_cnn`: `main`, then end the process.

    Once TensorFlow is loaded, the interpreter's normal exit spends most of a second tearing
    it down (0.9 s against 0.04 s measured here for a trained model), after every file
    is written and closed. So, with the exit clean-ups run and the output and the logs
    flushed, the process ends at once; unless child processes are still running, which the
    normal exit waits for.
    """
    skip_keras_extras()  # a command never uses what Keras would import for notebooks and its own plots
    code = main()
    children = "multiprocessing" in sys.modules and sys.modules["multiprocessing"].active_children()
    if "tensorflow" in sys.modules and not children:
        # The clean-ups registered to run at exit still run (a served model's converted file
        # is removed by one); they take no time, unlike the interpreter's teardown of TF.
        atexit._run_exitfuncs()
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):  # a closed pipe or stream: nothing left to lose
                pass
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    entry()
