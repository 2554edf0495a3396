"""The `mnist-cnn export` subcommand: a trained model as ONNX, a SavedModel or LiteRT, checked.

Part of the CLI (it prints); `cli/main.py` wires it in. The handler parses, calls
`export.export_model` and prints its report; TensorFlow is imported inside it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from ..core.system import quiet_tensorflow
from . import data as cli_data

EPILOGS = {
    "export": "example:\n  mnist-cnn export runs/20261127T120000Z-mnist-cnn/model.keras --format onnx\n"
              "  mnist-cnn export runs/20261127T120000Z-mnist-cnn/model.keras --format savedmodel "
              "-o serving/mnist/1\n"
              "  mnist-cnn export model.keras --format litert -o digits.tflite --dataset mnist --data-dir DATA",
}
EXPORT_HELP = ("Export a trained model as ONNX, a TensorFlow SavedModel or LiteRT (.tflite), checked against "
               "the Keras model on the whole test set, with its class names and a model card.")


def add_export_arguments(p: argparse.ArgumentParser) -> None:
    from ..export.export import FORMATS  # light: no TensorFlow at import

    p.add_argument("model_path", metavar="MODEL", help="a model.keras written by `mnist-cnn train`")
    p.add_argument("--format", required=True, choices=FORMATS,
                   help="onnx (ONNX Runtime; needs the [export] extra), savedmodel (TF Serving) or litert (.tflite)")
    p.add_argument("-o", "--out", type=Path, metavar="PATH",
                   help="where to write it (default: beside the model: model.onnx, model_savedmodel/, model.tflite); "
                        "its folder must exist")
    p.add_argument("--dataset", metavar="NAME|PATH",
                   help="test set the export is checked on (default: the model's run, else mnist)")
    cli_data.add_source_flags(p)


def run_export(args: argparse.Namespace) -> int:
    quiet_tensorflow()
    from ..export.export import export_model, goal_text

    result = export_model(args.model_path, args.format, args.out, args.dataset, data_dir=args.data_dir,
                          **cli_data.source_kwargs(args))
    parity = result.parity
    print(f"exported {args.model_path} -> {result.path} ({args.format})")
    print(f"checked with {parity.runtime} on the {parity.dataset} test set ({parity.images:,} images): "
          f"top-1 agreement {parity.top1_agreement:.2%} ({parity.disagreements} differ), largest probability "
          f"difference {parity.max_abs_diff:.1e} (goal: {goal_text()})")
    print(f"class names and preprocessing: {result.metadata_path}")
    print(f"model card: {result.card_path}")
    return 0
