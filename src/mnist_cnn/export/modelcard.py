"""The model card of an export: one Markdown page a person reads before using the file.

A pure function of the export record (`export.export_model` writes the same record as
JSON beside the model): what the model is, what it was trained and tested on, what goes
in and comes out, how closely the export matches the Keras model, and how to run it.
No I/O, no imports beyond the standard library.
"""

from __future__ import annotations

from typing import Any

RUN_SNIPPETS = {
    "onnx": """```python
import onnxruntime as ort
session = ort.InferenceSession("{file}")
probabilities = session.run(["probabilities"], {{"images": images}})[0]  # (N, {classes})
```

or, with this package's preprocessing of any image file: `mnist-cnn predict {file} my_digit.png`
(also `mnist-cnn serve {file}` and `Predictor.from_path("{file}")`).""",
    "savedmodel": """```python
import tensorflow as tf
serve = tf.saved_model.load("{file}").signatures["serving_default"]
probabilities = serve(images=tf.constant(images))["probabilities"].numpy()  # (N, {classes})
```

TensorFlow Serving wants the folder under a numbered version folder (`models/mnist/1/` = this folder):

```bash
docker run -p 8501:8501 --mount type=bind,source=$PWD/models/mnist,target=/models/mnist \\
    -e MODEL_NAME=mnist -t tensorflow/serving
curl -d '{{"instances": [IMAGE]}}' http://localhost:8501/v1/models/mnist:predict
# IMAGE: 28 rows of 28 [pixel] lists, pixels in [0, 1]; answer: {{"predictions": [[{classes} probabilities]]}}
```""",
    "litert": """```python
from ai_edge_litert.interpreter import Interpreter  # or tf.lite.Interpreter
interpreter = Interpreter(model_path="{file}")
run = interpreter.get_signature_runner("serving_default")
probabilities = run(images=images)["probabilities"]  # (N, {classes})
```""",
}
FORMAT_TITLES = {"onnx": "ONNX", "savedmodel": "TensorFlow SavedModel", "litert": "LiteRT (TensorFlow Lite)"}


def model_card(record: dict[str, Any]) -> str:
    """The Markdown card for one export record (the JSON `export` writes beside the model)."""
    model, parity, io = record["model"], record["parity"], record["io"]
    classes = model["class_names"]
    lines = [
        f"# {model['name']}: {FORMAT_TITLES[record['format']]} export",
        "",
        f"Exported by mnist-cnn {record['versions']['mnist-cnn']} on {record['created_utc']} from "
        f"`{record['source']['file']}` (SHA-256 `{record['source']['sha256'][:16]}...`).",
        "",
        "## Model",
        "",
        f"- Architecture: {model['architecture'] or 'unknown'}, {model['parameters']:,} parameters",
        f"- Trained on: {model['dataset'] or 'unknown (no run folder beside the model)'}",
        f"- Classes ({len(classes)}, in output order): {', '.join(classes)}",
        f"- Preprocessing: `{model['preprocessing']}` recipe of `mnist_cnn.preprocess` "
        f"({'MNIST' if model['preprocessing'] == 'digit' else 'Fashion-MNIST'}'s way of making 28x28 images)",
    ]
    metrics = model.get("test_metrics") or {}
    if "accuracy" in metrics:
        scored = f" on {metrics['num_images']:,} test images" if "num_images" in metrics else ""
        lines.append(f"- Test accuracy of the training run: {metrics['accuracy']:.2%}{scored}"
                     + (f", loss {metrics['loss']:.4f}" if "loss" in metrics else ""))
    lines += [
        "",
        "## Input and output",
        "",
        f"- Input `{io['input']['name']}`: float32 (N, 28, 28, 1), pixels in [0, 1], white ink on black, "
        f"as `mnist_cnn.preprocess.preprocess(image, style=\"{model['preprocessing']}\")` makes them "
        f"(a raw MNIST test image divided by 255 is already in this form).",
        f"- Output `{io['output']['name']}`: float32 (N, {len(classes)}), softmax probabilities summing to 1; "
        f"column i is class `{classes[0]}`, `{classes[1]}`, ... in the order above.",
        "",
        "## Parity with the Keras model",
        "",
        f"Checked by loading the export back with {parity['runtime']} and running it on the whole "
        f"{parity['dataset']} test set ({parity['images']:,} images) beside the Keras model:",
        "",
        "| measure | result | goal |",
        "|---|---|---|",
        f"| top-1 agreement | {parity['top1_agreement']:.2%} ({parity['disagreements']} differ) | 100% |",
        f"| largest probability difference | {parity['max_abs_diff']:.2e} | <= {parity['max_abs_diff_goal']:.0e} |",
        "",
        "## How to run it",
        "",
        RUN_SNIPPETS[record["format"]].format(file=record["file"], classes=len(classes)),
        "",
        f"Class names and preprocessing are also in `{record['metadata_file']}`"
        + (" and in the file's ONNX metadata (`mnist_cnn.*` keys)." if record["format"] == "onnx" else "."),
        "",
    ]
    return "\n".join(lines)
