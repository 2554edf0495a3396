"""mnist-cnn: train, evaluate, understand and use convolutional networks on MNIST-family data.

The Python API mirrors the CLI. Importing this package is cheap: Keras and TensorFlow are
loaded only when a function that needs them is first called.

The subpackages follow the pipeline; each imports only from the ones below it (a layers
contract in pyproject.toml, checked by `lint-imports` in the test suite):

- cli         the `mnist-cnn` command: parse, call, print
- serving     `serve()`: the HTTP API, the draw-a-digit page, worker processes
  tuning      Optuna studies over training settings
  export      ONNX, SavedModel and LiteRT files, checked against Keras, with a model card
- training    architectures, recipes, augmentation, the training loop
- evaluation  metrics, plots, the run report, pictures of what a model sees
  refusal     fitting the "not a digit" rule
- inference   preprocessing, runtimes, shipped models, `open_model`, `Predictor`, whole numbers
- runs        `TrainConfig` and `Run`, the owner of a run folder
- data        datasets: registry, fetching, IDX and custom formats, model-ready arrays
- core        errors, atomic writes, the settings reader, hashing, messages, version, machine facts
"""

from __future__ import annotations

from typing import Any

from .core.errors import MnistCnnError
from .core.system import prefer_onednn
from .core.version import __version__
from .data.load import load_dataset
from .runs.config import TrainConfig

# TensorFlow picks its CPU kernels once, when it is imported: oneDNN's are much faster on
# x86 CPUs where it would not choose them itself (core/system.py says how much). Sets one
# environment variable the user has not set; reads and writes nothing.
prefer_onednn()

__all__ = ["TrainConfig", "load_dataset", "MnistCnnError", "build_model", "train", "load_saved_model",
           "Predictor", "__version__"]


def __getattr__(name: str) -> Any:
    # Lazy: these pull in Keras/TensorFlow (several seconds), so only on first use.
    if name == "build_model":
        from .training.models import build_model
        return build_model
    if name == "train":
        from .training.train import train
        return train
    if name == "load_saved_model":
        from .inference.keras_file import load_saved_model
        return load_saved_model
    if name == "Predictor":  # Keras loads only when a model does (Predictor.from_path)
        from .inference.predict import Predictor
        return Predictor
    raise AttributeError(f"module 'mnist_cnn' has no attribute {name!r}")
