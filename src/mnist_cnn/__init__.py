"""mnist-cnn: train, evaluate, understand and use convolutional networks on MNIST-family data.

The Python API mirrors the CLI. Importing this package is cheap: Keras and TensorFlow are
loaded only when a function that needs them is first called.

The modules, by stage of the pipeline (one module, one job; the CLI only calls them):

- data:      data (registry, IDX, splits), custom (your own data), fetch (mirrors), cards,
             imagefile (the one capped image reader)
- settings:  config (TrainConfig), recipes (resolve_config: defaults -> recipe -> file -> flags),
             messages (every figure's and summary's words, per language)
- training:  models, train, callbacks, runs (the owner of a run folder), evaluate, report,
             plots, tensorboard_logs; tune, tune_space, tune_storage, tune_report (Optuna)
- using:     preprocess, predict (Predictor), backends (Keras / ONNX Runtime / LiteRT),
             segment and numbers (whole numbers), acceptance, calibrate and negatives
             ("not a digit"), explain, export, modelcard, serve and api_schema (HTTP),
             pretrained/ (shipped models, by name)
- interface: cli (+ cli_train, cli_data, cli_use, cli_export, cli_tune); nothing imports it
- shared:    errors, atomic (every write goes through a temporary file and a rename)
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

from .config import TrainConfig  # noqa: E402
from .data import load_dataset  # noqa: E402
from .errors import MnistCnnError  # noqa: E402

__all__ = ["TrainConfig", "load_dataset", "MnistCnnError", "build_model", "train", "load_saved_model",
           "Predictor", "__version__"]


def __getattr__(name: str) -> Any:
    # Lazy: these pull in Keras/TensorFlow (several seconds), so only on first use.
    if name == "build_model":
        from .models import build_model
        return build_model
    if name == "train":
        from .train import train
        return train
    if name == "load_saved_model":
        from .models import load_saved_model
        return load_saved_model
    if name == "Predictor":  # Keras loads only when a model does (Predictor.from_path)
        from .predict import Predictor
        return Predictor
    raise AttributeError(f"module 'mnist_cnn' has no attribute {name!r}")
