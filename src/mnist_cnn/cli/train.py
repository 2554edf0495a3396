"""The `mnist-cnn train` and `mnist-cnn evaluate` subcommands.

Part of the CLI (it prints); `cli/main.py` wires it in. Train's setting flags are generated
from `TrainConfig`'s fields (type, choices, help from each field's comment), so every
setting is reachable and the list is written nowhere else. Handlers parse, call the
library (`recipes`, `data`, `train`, `evaluate`) and print.
"""

from __future__ import annotations

import argparse
import sys
import types
from dataclasses import fields
from pathlib import Path
from typing import Any, Callable, Literal, Union, get_args, get_origin, get_type_hints

from ..core.errors import MnistCnnError
from ..core.messages import DEFAULT_LANG, LANGUAGES, text
from ..core.system import quiet_tensorflow
from ..runs.config import RESUMABLE_FIELDS, TrainConfig, field_help
from ..training.recipes import RECIPES
from . import data as cli_data

READER_EPILOG = ("example:\n  mnist-cnn train-reader -o runs/20261127T120000Z-mnist-cnn/reader.keras --data-dir DATA\n"
                 "  mnist-cnn train-reader -o reader.keras --strips 20000 --epochs 3   (a quick one)\n"
                 "a reader.keras beside a digit model's model.keras makes `predict --number`, POST /read and\n"
                 "the page read that model's touching digits with it; `make reader` retrains the shipped one")
EPILOGS = {
    "train": "example:\n  mnist-cnn train --data-dir DATA --epochs 12\n"
             "  mnist-cnn train --dataset fashion-mnist --model keras-example --config my.toml\n"
             "  mnist-cnn train --recipe strong --no-augment --label-smoothing 0\n"
             "  mnist-cnn train --dataset my_letters.npz --train-limit 2000\n"
             "  mnist-cnn train --offline --mirror file:///media/usb/datasets/\n"
             "  mnist-cnn train --resume runs/20261127T120000Z-mnist-cnn --epochs 20",
    "evaluate": "example:\n  mnist-cnn evaluate runs/20261127T120000Z-mnist-cnn/model.keras --out eval/\n"
                "  mnist-cnn evaluate model.keras --dataset my_images/ --offline",
    "train-reader": READER_EPILOG,
}
TRAIN_HELP = "Train a model and write a run folder (model, metrics, plots, report)."
READER_HELP = "Train the reader of touching digits (numbers whose digits touch) from MNIST training digits."
EVALUATE_HELP = "Recompute test metrics, plots and report for a saved model."
# Flags whose metavar says more than the type would.
METAVARS = {"dataset": "NAME|PATH", "model": "NAME", "train_limit": "N", "seed": "N"}
RECIPE_FIELD = "recipe"  # a field set by --recipe, which also applies the preset


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per `TrainConfig` field: `--x N`, `--x {a,b}`, or `--x/--no-x` for booleans.

    Every flag defaults to None ("not given"), so the config's defaults, recipe and config
    file decide unless a flag is on the command line.
    """
    helps = field_help()
    hints = get_type_hints(TrainConfig)
    group = parser.add_argument_group("settings (any TrainConfig field; default: recipe, then --config file)")
    for f in fields(TrainConfig):
        if f.name == RECIPE_FIELD:
            continue
        kind, default = hints[f.name], f"default {f.default!r}"
        if get_origin(kind) in (Union, types.UnionType):  # `int | None`: None is the default, not an input
            kind = next(a for a in get_args(kind) if a is not type(None))
            default = "default: off" if f.default is None else default
        help_text = f"{helps.get(f.name, '')} ({default})".strip()
        help_text = help_text.replace("%", "%%")  # argparse formats help with %
        if f.name in RESUMABLE_FIELDS:
            help_text += "; may change with --resume"
        if kind is bool:
            group.add_argument(flag(f.name), action=argparse.BooleanOptionalAction, default=None, help=help_text)
        elif get_origin(kind) is Literal:
            group.add_argument(flag(f.name), choices=get_args(kind), help=help_text)
        else:
            group.add_argument(flag(f.name), type=_parser_for(kind), metavar=METAVARS.get(f.name, _metavar(kind)),
                               help=help_text)


def _metavar(kind: Any) -> str:
    return {int: "N", float: "X"}.get(kind, "TEXT")


def _parser_for(kind: Any) -> Callable[[str], Any]:
    if kind is float:
        return _number
    return kind


def _number(text: str) -> float:
    """A float flag: `nan`/`inf` are refused here (argparse's float takes them)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def config_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given on the command line (None: not given)."""
    return {f.name: getattr(args, f.name) for f in fields(TrainConfig) if f.name != RECIPE_FIELD}


def add_train_arguments(t: argparse.ArgumentParser) -> None:
    t.add_argument("--recipe", help=f"start from a named preset: {', '.join(RECIPES)} (see `mnist-cnn models`)")
    t.add_argument("--config", type=Path, metavar="FILE",
                   help="a .toml or .json file of settings (same keys as the flags, with _; flags override it)")
    cli_data.add_source_flags(t)
    t.add_argument("--runs-dir", type=Path, help="where run folders go (default $MNIST_CNN_RUNS_DIR or ./runs)")
    t.add_argument("--resume", type=Path, metavar="RUN_DIR",
                   help="finish an interrupted run in RUN_DIR (or train it longer with --epochs)")
    add_config_flags(t)


def add_evaluate_arguments(e: argparse.ArgumentParser) -> None:
    e.add_argument("model_path", type=Path, metavar="MODEL.keras")
    e.add_argument("--dataset", metavar="NAME|PATH",
                   help="dataset to test on (default: the one the model's run used, else mnist)")
    cli_data.add_source_flags(e)
    e.add_argument("--out", type=Path, help="output folder (default: beside the model, evaluate-<dataset>-<time>)")
    add_lang_flag(e)


def add_lang_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lang", choices=LANGUAGES, default=DEFAULT_LANG,
                        help=f"language of the plots and report (default {DEFAULT_LANG})")


def run_train(args: argparse.Namespace) -> int:
    from ..data.load import load_dataset
    from ..training.session import plan_training

    if args.resume is not None:
        extra = [name for name in ("recipe", "config", "runs_dir") if getattr(args, name) is not None]
        if extra:
            raise MnistCnnError(f"{', '.join(flag(n) for n in extra)} cannot be used with --resume: a resumed "
                                f"run keeps its folder and settings")
    plan = plan_training(recipe=args.recipe, config_file=args.config, overrides=config_overrides(args),
                         resume=args.resume)
    # Before the slow imports: fail fast (and fetch on first use).
    dataset = load_dataset(plan.config.dataset, args.data_dir, **cli_data.source_kwargs(args))
    from ..evaluation.report import results_lines
    from ..runs.run import Run
    from ..training.session import start_or_resume

    def started(run: Any) -> None:
        print(f"{'resuming' if plan.resuming else 'run folder:'} {run.path}", flush=True)
        for name, (old, new) in plan.changed.items():
            print(f"  {name}: {old} -> {new}")
        # The default model was chosen on digits: say so where it is clearly worse (still the user's call).
        if not plan.resuming and plan.config.dataset == "fashion-mnist" and plan.config.model == TrainConfig.model:
            print(text("default_model_on_clothes", plan.config.lang), flush=True)

    result = start_or_resume(plan, dataset, args.runs_dir, verbose=1 if sys.stdout.isatty() else 2,
                             on_start=started)
    print("\n".join(results_lines(result.metrics, plan.config.lang)))
    print(f"report: {Run(result.run_dir).report}")
    return 0


def run_evaluate(args: argparse.Namespace) -> int:
    quiet_tensorflow()
    from ..evaluation.evaluate import evaluate
    from ..evaluation.report import results_lines

    result = evaluate(args.model_path, args.dataset, args.out, data_dir=args.data_dir, lang=args.lang,
                      **cli_data.source_kwargs(args))
    print("\n".join(results_lines(result.metrics, args.lang)))
    print(text("written_to", args.lang, path=result.out_dir))
    return 0


def _float_within(text: str, within: Callable[[float], bool], wanted: str) -> float:
    """Parse a float flag; ArgumentTypeError saying `wanted` unless `within(value)` (nan fails any range)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a number") from None
    if not within(value):
        raise argparse.ArgumentTypeError(f"{text[:40]} must be {wanted}")
    return value


def learning_rate(text: str) -> float:
    """An argparse type: a finite learning rate above 0 and at most 1."""
    return _float_within(text, lambda v: 0 < v <= 1, "a number above 0 and at most 1 (e.g. 0.003)")


def share(text: str) -> float:
    """An argparse type: a share from 0 to 1 (nan and inf refused)."""
    return _float_within(text, lambda v: 0 <= v <= 1, "a share from 0 to 1 (e.g. 0.5)")


def add_reader_arguments(r: argparse.ArgumentParser, positive_int: Callable[[str], int]) -> None:
    from ..training.reader import CONTEXTS, MAX_WIDTH, PRECISIONS, ReaderConfig

    defaults = ReaderConfig()
    r.add_argument("-o", "--out", type=Path, default=Path("reader.keras"), metavar="READER.keras",
                   help="where to write the reader (default ./reader.keras); its measurements go beside it "
                        "as READER.json")
    r.add_argument("--strips", type=positive_int, default=defaults.strips, metavar="N",
                   help=f"training strips composed from MNIST training digits (default {defaults.strips:,})")
    r.add_argument("--epochs", type=positive_int, default=defaults.epochs, metavar="N",
                   help=f"passes over them (default {defaults.epochs})")
    r.add_argument("--seed", type=int, default=defaults.seed, metavar="N", help="seed of the strips and weights")
    r.add_argument("--learning-rate", type=learning_rate, default=defaults.learning_rate, metavar="LR",
                   help=f"peak of the warm-up then cosine schedule (default {defaults.learning_rate:g})")
    r.add_argument("--init", type=Path, metavar="READER.keras",
                   help="go on training this reader on new strips (those of --seed) instead of starting afresh; "
                        "one of another --context gives the layers the two share")
    r.add_argument("--context", choices=CONTEXTS, default=defaults.context,
                   help=f"what carries context along the strip: a band convolution alone (conv) or, on top of it, "
                        f"a bidirectional GRU (gru; the shipped reader is a gru one started with --init from a conv "
                        f"one) (default {defaults.context})")
    r.add_argument("--warp", type=share, default=defaults.warp, metavar="SHARE",
                   help="warp this share of the training digits (elastic distortion, a small turn, a width change) "
                        f"before composing them, so the reader sees new shapes of the same digits (default "
                        f"{defaults.warp:g})")
    r.add_argument("--width", type=cli_data.int_from_1(MAX_WIDTH, "a number of filters"), default=defaults.width, metavar="N",
                   help=f"filters of the first conv block; the others, the band convolution and the GRU grow with "
                        f"it (default {defaults.width}; larger reads more and costs more a strip)")
    r.add_argument("--precision", choices=PRECISIONS, default=defaults.precision,
                   help=f"what the training computes in: bfloat16 is about twice as fast for a larger reader on a "
                        f"CPU with AMX; the reader is saved in float32 either way (default {defaults.precision})")
    r.add_argument("--reuse-strips", action="store_true",
                   help="train on the same --strips every epoch (faster: no strips made between epochs) instead of "
                        "new ones each epoch, which reads more test strips right")
    cli_data.add_source_flags(r)  # --data-dir, --mirror, --offline: where MNIST is found


def run_train_reader(args: argparse.Namespace) -> int:
    from ..data.load import load_dataset

    if args.out.suffix != ".keras":
        raise MnistCnnError(f"--out {args.out} must end in .keras (the reader is a Keras model)")
    if not args.out.parent.is_dir():
        raise MnistCnnError(f"--out {args.out}: folder {args.out.parent} does not exist; create it first")
    if args.init is not None and not args.init.is_file():
        raise MnistCnnError(f"--init {args.init} does not exist; pass a reader.keras to go on training, or leave "
                            f"--init out to start afresh")
    dataset = load_dataset("mnist", args.data_dir, **cli_data.source_kwargs(args))  # fail fast, before Keras
    from ..training.reader import ReaderConfig, train_reader  # imports TensorFlow after making its strips

    config = ReaderConfig(strips=args.strips, epochs=args.epochs, seed=args.seed, learning_rate=args.learning_rate,
                          init=None if args.init is None else str(args.init), fresh=not args.reuse_strips,
                          context=args.context, warp=args.warp, width=args.width, precision=args.precision)
    print(f"training the touching-digit reader on {config.strips:,} strips x {config.epochs} epochs "
          f"(each epoch is reported as it ends, with the time left)", flush=True)

    def report(done: int, loss: float, seconds: float) -> None:
        left = seconds / done * (config.epochs - done)
        print(f"  epoch {done}/{config.epochs}: loss {loss:.4f}, {seconds:,.0f} s so far, about {left:,.0f} s to go",
              flush=True)

    record = train_reader((dataset.train_images, dataset.train_labels), (dataset.test_images, dataset.test_labels),
                          args.out, config, on_epoch=report)
    print(f"{record['test_strips_read_exactly']:.2%} of {record['test_strips']:,} strips of MNIST test digits "
          f"read exactly; {record['seconds_training']:.0f} s of training")
    print(f"wrote {args.out} and {record['record_file']}")
    return 0
