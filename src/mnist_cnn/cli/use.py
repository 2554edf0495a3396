"""The `mnist-cnn predict`, `serve` and `calibrate` subcommands: using a trained model.

Part of the CLI (it prints); `cli/main.py` wires it in. Handlers stay thin: `predict`,
`preprocess` and `serve` do the work and never print. Keras, TensorFlow and FastAPI
are imported inside the handlers, so `mnist-cnn --help` stays fast.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any, Callable

from ..core.errors import MnistCnnError
from ..core.messages import DEFAULT_LANG, LANGUAGES, text
from ..core.system import quiet_tensorflow

log = logging.getLogger(__name__)

EPILOGS = {
    "predict": "example:\n  mnist-cnn predict runs/20261127T120000Z-mnist-cnn/model.keras my_digit.png --top-k 3\n"
               "  mnist-cnn predict runs/20261127T120000Z-mnist-cnn/model.keras photos/ --json "
               "--save-preprocessed seen/\n"
               "  cat digit.png | mnist-cnn predict runs/20261127T120000Z-mnist-cnn/model.keras -\n"
               "  mnist-cnn predict runs/20261127T120000Z-mnist-cnn/model.keras house_number.jpg --number --json",
    "serve": "example:\n  mnist-cnn serve runs/20261127T120000Z-mnist-cnn/model.keras --port 8000\n"
             "  then open http://127.0.0.1:8000 to draw a digit, or\n"
             "  curl -F file=@digit.png http://127.0.0.1:8000/predict\n"
             "  curl -F file=@number.png http://127.0.0.1:8000/read",
    "calibrate": "example:\n  mnist-cnn calibrate runs/20261127T120000Z-mnist-cnn/model.keras --data-dir DIR\n"
                 "  writes acceptance.json (and, for a digit model, writing.keras) beside the model; predict, "
                 "serve and the page then say which inputs do not look like a digit",
}
PREDICT_HELP = ("Read images with a trained model: top-k classes per image (MNIST-style preprocessing: "
                "grayscale, invert, crop, fit 20 px, centre in 28x28).")
SERVE_HELP = "Serve the draw-a-digit page and a JSON API for a trained model (needs the [serve] extra)."
CALIBRATE_HELP = ("Fit a model's \"not a digit\" rule on its validation split and other images "
                  "(acceptance.json in its run folder).")


def add_predict_arguments(p: argparse.ArgumentParser, positive_int: Callable[[str], int]) -> None:
    p.add_argument("model_path", type=Path, metavar="MODEL",
                   help="a model.keras written by `mnist-cnn train`, or a .onnx written by `mnist-cnn export`")
    p.add_argument("images", nargs="+", metavar="IMAGE",
                   help="image files (PNG, JPEG, WebP, GIF, BMP, TIFF), folders of them, or - for stdin")
    p.add_argument("--top-k", type=positive_int, default=3, help="classes to list per image (default 3)")
    p.add_argument("--json", action="store_true", help="print one JSON document instead of text")
    p.add_argument("--save-preprocessed", type=Path, metavar="DIR",
                   help="write the 28x28 image the model saw for each input as DIR/<name>.png")
    p.add_argument("--steps", action="store_true",
                   help="with --save-preprocessed: also write every intermediate step as DIR/<name>/NN-step.png")
    p.add_argument("--lang", choices=LANGUAGES, default=DEFAULT_LANG,
                   help=f"language of the reason a refused image gives (default {DEFAULT_LANG})")
    p.add_argument("--number", action="store_true",
                   help="read every digit in each image, left to right, as one number (with --json: each digit's "
                        "class, probability and box in the image's pixels)")


def add_calibrate_arguments(c: argparse.ArgumentParser, add_source_flags: Callable[[argparse.ArgumentParser], None]) -> None:
    c.add_argument("model_path", type=Path, metavar="MODEL",
                   help="the model.keras of a run folder (its config.json names the data and the split)")
    c.add_argument("--quick", action="store_true",
                   help="fit only the four-feature rule that training fits (seconds), not the writing scorer as well "
                        "(about 2.5 minutes on 2 cores; refuses more noise and photos, fewer digits sent as images)")
    add_source_flags(c)  # --data-dir, --mirror, --offline: where MNIST and Fashion-MNIST are found


def add_serve_arguments(s: argparse.ArgumentParser) -> None:
    s.add_argument("model_path", type=Path, metavar="MODEL", nargs="?", default=Path("mnist"),
                   help="a model.keras written by `mnist-cnn train`, a .onnx written by `mnist-cnn export`, or a "
                        "shipped model's name (see `mnist-cnn models`); default: the shipped mnist")
    s.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 exposes it)")
    s.add_argument("--port", type=int, default=8000, help="TCP port (default 8000)")
    s.add_argument("--max-upload-mb", type=float, default=5.0, help="largest accepted image upload (default 5)")
    s.add_argument("--allowed-hosts", metavar="HOST[,HOST...]",
                   help="accept only requests whose Host header is one of these (e.g. digits.example.org); "
                        "default: any")
    s.add_argument("--runtime", choices=("auto", "keras", "litert", "onnx"), default="auto",
                   help="what runs a .keras model's calls: auto (LiteRT if its answers match Keras on a probe, "
                        "else Keras), keras, litert, onnx (needs the [export] extra); default auto")
    s.add_argument("--max-connections", type=int, default=200, metavar="N",
                   help="requests in progress before new ones get a JSON 503 with Retry-After (default 200); "
                        "open connections are capped at 4 times that (at least 256)")
    s.add_argument("--workers", type=int, default=None, metavar="N",
                   help="processes that read the images, each with its own copy of the model; 0: threads of "
                        "the server process (default: one per core, at most 4)")
    s.add_argument("--batch", type=int, default=4, metavar="N",
                   help="waiting /predict requests a worker process answers together with one model call; 1: "
                        "one at a time (default 4; a lone request never waits for others)")


def run_predict(args: argparse.Namespace) -> int:
    from ..inference.predict import collect_images, format_prediction

    if args.steps and args.save_preprocessed is None:
        raise MnistCnnError("--steps needs --save-preprocessed DIR (the folder the steps are written to)")
    if args.number and args.save_preprocessed is not None:
        raise MnistCnnError("--number does not save preprocessed images; leave out --save-preprocessed")
    inputs = collect_images(args.images, sys.stdin.buffer)  # before the slow imports: fail fast
    if args.model_path.suffix != ".onnx":  # an ONNX export runs on ONNX Runtime alone: no TF start-up
        quiet_tensorflow()
    from ..inference.predict import Predictor, predict_inputs

    predictor = Predictor.from_path(args.model_path)
    if args.number:
        return _print_numbers(args, predictor, inputs)
    predictions, errors = predict_inputs(predictor, inputs, args.top_k, save_to=args.save_preprocessed,
                                         steps=args.steps, lang=args.lang)
    if args.json:
        print(json.dumps({"model": str(args.model_path), "predictions": [p.to_dict() for p in predictions],
                          "errors": errors}, indent=2))
    else:
        for prediction in predictions:
            refused = "" if prediction.accepted else f"  [{text('not_accepted', args.lang)}: {prediction.reason}]"
            print(format_prediction(prediction) + refused)
    for error in errors:
        print(f"mnist-cnn predict: error: {error['error']}", file=sys.stderr)
    return 2 if errors else 0


def _print_numbers(args: argparse.Namespace, predictor: Any, inputs: list[tuple[str, Any]]) -> int:
    from ..inference.numbers import format_reading, read_inputs

    readings, errors = read_inputs(predictor, inputs, args.lang)
    if args.json:
        print(json.dumps({"model": str(args.model_path), "numbers": [r.to_dict() for r in readings],
                          "errors": errors}, indent=2))
    else:
        for reading in readings:
            print(format_reading(reading))
    for error in errors:
        print(f"mnist-cnn predict: error: {error['error']}", file=sys.stderr)
    return 2 if errors else 0


def run_calibrate(args: argparse.Namespace,
                  source_kwargs: dict[str, Any]) -> int:
    quiet_tensorflow()
    from ..refusal.calibrate import calibrate_model

    path, rule = calibrate_model(args.model_path, args.data_dir, writing=not args.quick, **source_kwargs)
    refused = rule.details.get("refused", {})
    print(f"wrote {path}: refuses " + ", ".join(f"{share:.1%} of {name}" for name, share in refused.items()))
    return 0


def run_serve(args: argparse.Namespace) -> int:
    try:
        from ..serving.server import serve
    except ImportError as e:
        raise MnistCnnError(f"serving needs FastAPI and uvicorn ({e.name} is missing); "
                            f"pip install 'mnist-cnn[serve]'") from None

    def ready(server: Any) -> None:
        print(f"serving {server.description} on {server.url}  (page at /, API docs at /docs; Ctrl-C stops)",
              flush=True)
        if server.exposed:
            print(f"note: {server.url} is reachable from other machines; the API has no authentication",
                  file=sys.stderr)

    serve(args.model_path, on_ready=ready, host=args.host, port=args.port, max_upload_mb=args.max_upload_mb,
          allowed_hosts=args.allowed_hosts, runtime=args.runtime, max_connections=args.max_connections,
          workers=args.workers, batch=args.batch)
    return 0
