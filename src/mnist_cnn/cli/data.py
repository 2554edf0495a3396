"""The `mnist-cnn data` subcommands and the data-source flags `train` and `evaluate` share.

Part of the CLI (it prints); `cli/main.py` wires it in. Handlers stay thin: they call `data`,
`fetch`, `cards` and `plots`, which never print.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Callable, TextIO

from ..core.errors import ChecksumError, ConfigError
from ..core.messages import DEFAULT_LANG, LANGUAGES, text

EPILOGS = {
    "data": "example:\n  mnist-cnn data list\n  mnist-cnn data fetch mnist --mirror http://127.0.0.1:8080/\n"
            "  mnist-cnn data info fashion-mnist\n  mnist-cnn data samples mnist -o grid.png",
    "list": "example:\n  mnist-cnn data list --data-dir ~/datasets",
    "fetch": "example:\n  mnist-cnn data fetch mnist\n"
             "  mnist-cnn data fetch fashion-mnist --mirror http://10.0.0.5/datasets/",
    "verify": "example:\n  mnist-cnn data verify mnist --data-dir ~/datasets",
    "info": "example:\n  mnist-cnn data info mnist\n  mnist-cnn data info my_letters.npz --json",
    "samples": "example:\n  mnist-cnn data samples fashion-mnist -o fashion.png --per-class 10\n"
               "  mnist-cnn data samples my_images/ -o mine.png --split test",
}
BAR_WIDTH = 24  # characters of the TTY progress bar
REDRAW_S = 0.1  # at most ten redraws a second


def add_source_flags(parser: argparse.ArgumentParser, *, data_dir: bool = True, offline: bool = True) -> None:
    """--data-dir, --mirror (repeatable) and --offline: where data is read or fetched from."""
    if data_dir:
        parser.add_argument("--data-dir", type=Path, help="folder holding DATASET/ with the IDX files")
    parser.add_argument("--mirror", action="append", default=[], metavar="URL",
                        help="download from URL first (laid out as URL/DATASET/FILE.gz); repeatable; "
                             "also $MNIST_CNN_MIRROR (comma-separated)")
    if offline:
        parser.add_argument("--offline", action="store_const", const=True,
                            help="never use the network (also MNIST_CNN_OFFLINE=1)")


def source_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments for `data.load.load_dataset` from the source flags."""
    return {"mirrors": args.mirror, "offline": getattr(args, "offline", None), "progress": progress_printer()}


def progress_printer(stream: TextIO | None = None) -> Callable[[str, int, int | None, bool], None]:
    """A download progress callback: a redrawn bar (bytes, rate) on a TTY, one line per file otherwise."""
    stream = stream or sys.stderr
    tty = stream.isatty()
    state: dict[str, Any] = {"url": None, "start": 0.0, "drawn": 0.0}

    def show(url: str, done: int, total: int | None, finished: bool) -> None:
        now = time.monotonic()
        if url != state["url"]:
            if tty and state["url"] is not None:
                stream.write("\n")  # keep the previous (failed) bar visible
            state.update(url=url, start=now, drawn=0.0)
        rate_mb_s = done / max(now - state["start"], 1e-6) / 1e6
        name = url.rsplit("/", 1)[-1]
        if tty and (finished or now - state["drawn"] >= REDRAW_S):
            state["drawn"] = now
            filled = int(BAR_WIDTH * done / total) if total else 0
            size = f"{done / 1e6:.1f}/{total / 1e6:.1f} MB" if total else f"{done / 1e6:.1f} MB"
            stream.write(f"\r{name} [{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {size} {rate_mb_s:.1f} MB/s")
            if finished:
                stream.write("\n")
                state["url"] = None
            stream.flush()
        elif finished and not tty:
            stream.write(f"downloaded {url} ({done / 1e6:.1f} MB, {rate_mb_s:.1f} MB/s)\n")
            state["url"] = None

    return show


def add_lang_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lang", choices=LANGUAGES, default=DEFAULT_LANG,
                        help=f"language of the printed card or the picture (default {DEFAULT_LANG})")


MAX_PER_CLASS = 100  # `data samples --per-class`: images in one row of the picture
MAX_COUNT = 1_000_000_000  # the ceiling of every count flag (trials, seconds, top-k, images per class)


def int_from_1(maximum: int, what: str = "an integer") -> Callable[[str], int]:
    """An argparse type: an integer from 1 to `maximum`, named `what` in the error."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text[:40]!r} is not an integer") from None
        if not 1 <= value <= maximum:
            raise argparse.ArgumentTypeError(f"{text[:40]} must be {what} from 1 to {maximum:,}")
        return value
    return parse


positive_int = int_from_1(MAX_COUNT)  # every count flag


def add_command(parsers: argparse._SubParsersAction, name: str, help_text: str, epilog: str,
                handler: Callable[[argparse.Namespace], int]) -> argparse.ArgumentParser:
    """One (sub)command: its help, its example epilog, and the handler `main` calls."""
    p = parsers.add_parser(name, help=help_text, description=help_text, epilog=epilog,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(handler=handler)
    return p


def command_group(sub: argparse._SubParsersAction, name: str, help_text: str, epilogs: dict[str, str],
                  parser_class: type) -> Callable[..., argparse.ArgumentParser]:
    """A command with actions (`mnist-cnn data list`, `mnist-cnn tune run`): returns `action(name,
    help, handler)`, which adds one with its example epilog from `epilogs`."""
    group = sub.add_parser(name, help=help_text, description=help_text, epilog=epilogs[name],
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = group.add_subparsers(dest=f"{name}_command", metavar="ACTION", parser_class=parser_class)
    actions.required = True

    def action(action_name: str, action_help: str, handler: Callable[[argparse.Namespace], int]) -> argparse.ArgumentParser:
        return add_command(actions, action_name, action_help, epilogs[action_name], handler)
    return action


def add_data_command(sub: argparse._SubParsersAction, parser_class: type) -> None:
    action = command_group(sub, "data", "List, fetch, verify and describe datasets.", EPILOGS, parser_class)

    p = action("list", "Registered datasets, where each is found and whether its files verify.", _cmd_list)
    p.add_argument("--data-dir", type=Path, help="folder holding DATASET/ with the IDX files")
    p = action("fetch", "Download a dataset into the user cache (verified; a corrupt copy is replaced).", _cmd_fetch)
    p.add_argument("name", metavar="NAME")
    add_source_flags(p, data_dir=False, offline=False)
    p = action("verify", "Re-hash a dataset's local files and report each.", _cmd_verify)
    p.add_argument("name", metavar="NAME")
    p.add_argument("--data-dir", type=Path, help="folder holding DATASET/ with the IDX files")
    p = action("info", "Counts, class names, class balance and pixel mean/std per split.", _cmd_info)
    p.add_argument("name", metavar="NAME|PATH")
    p.add_argument("--json", action="store_true", help="print the card as JSON")
    add_lang_flag(p)
    add_source_flags(p)
    p = action("samples", "Write a grid of example images per class as a PNG.", _cmd_samples)
    p.add_argument("name", metavar="NAME|PATH")
    p.add_argument("-o", "--out", type=Path, required=True, metavar="FILE.png", help="where to write the grid")
    p.add_argument("--split", choices=("train", "test"), default="train", help="split to draw from (default train)")
    p.add_argument("--per-class", type=int, default=8, metavar="N", help="images per class (default 8)")
    p.add_argument("--seed", type=int, default=0, help="which random examples (default 0)")
    add_lang_flag(p)
    add_source_flags(p)


def _registered(name: str):
    from ..data.registry import DATASETS, get_spec, is_custom

    if is_custom(name):
        raise ConfigError(f"{name} is a path: only registered datasets ({', '.join(DATASETS)}) have published "
                          f"digests and mirrors; `mnist-cnn data info {name}` prints its SHA-256")
    return get_spec(name)


def _cmd_list(args: argparse.Namespace) -> int:
    from ..data.fetch import dataset_status

    for status in dataset_status(args.data_dir):
        name, title = status.spec.name, status.spec.title
        if status.found is None:
            print(f"{name:<15} not found          {title} (`mnist-cnn data fetch {name}` downloads it)")
            continue
        state = "verified" if not status.bad_files else f"CORRUPT ({', '.join(status.bad_files)})"
        print(f"{name:<15} {state:<18} {title} in {status.found[1]} ({status.found[0]})")
    return 0


def _cmd_fetch(args: argparse.Namespace) -> int:
    from ..data.fetch import fetch_dataset

    results = fetch_dataset(_registered(args.name), mirrors=args.mirror, progress=progress_printer())
    for r in results:
        print(f"{'downloaded' if r.url else 'already verified':<17} {r.path}" + (f" from {r.url}" if r.url else ""))
    print(f"{args.name}: {len(results)} files verified in {results[0].path.parent}")
    return 0


def _cmd_verify(args: argparse.Namespace) -> int:
    from ..data.fetch import verify_files
    from ..data.registry import locate

    spec = _registered(args.name)
    folder = locate(args.name, args.data_dir)
    checks = verify_files(spec, folder)
    for check in checks:
        print(f"{'ok' if check.problem is None else 'BAD':<4} {check.path}" + (f": {check.problem}" if check.problem else ""))
    bad = sum(check.problem is not None for check in checks)
    if bad:
        raise ChecksumError(f"{bad} of {len(spec.files)} files in {folder} failed verification; replace them "
                            f"(`mnist-cnn data fetch {args.name}` re-downloads into the user cache)")
    print(f"{args.name}: all {len(spec.files)} files in {folder} match the published SHA-256")
    return 0


def _cmd_info(args: argparse.Namespace) -> int:
    from ..data.cards import card_lines, dataset_card
    from ..data.load import load_dataset

    card = dataset_card(load_dataset(args.name, args.data_dir, **source_kwargs(args)))
    print(json.dumps(card, indent=2) if args.json else "\n".join(card_lines(card, args.lang)))
    return 0


def _cmd_samples(args: argparse.Namespace) -> int:
    from ..data.load import load_dataset
    from ..evaluation.plots import plot_samples

    if not 1 <= args.per_class <= MAX_PER_CLASS:
        raise ConfigError(f"invalid --per-class {str(args.per_class)[:40]}: expected an integer from 1 to "
                          f"{MAX_PER_CLASS} (one row of a picture)")
    if args.out.suffix.lower() != ".png":
        raise ConfigError(f"{args.out} must end in .png")
    dataset = load_dataset(args.name, args.data_dir, **source_kwargs(args))
    images, labels = getattr(dataset, f"{args.split}_images"), getattr(dataset, f"{args.split}_labels")
    try:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        plot_samples(images, labels, dataset.class_names, args.out, per_class=args.per_class, seed=args.seed,
                     title=f"{dataset.name} ({text(f'split_{args.split}', args.lang)}): "
                           f"{text('samples_title', args.lang, per_class=args.per_class)}", lang=args.lang)
    except OSError as e:
        raise ConfigError(f"cannot write {args.out}: {e.strerror}; pick a writable folder") from None
    print(f"written {args.out}")
    return 0
