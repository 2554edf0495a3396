"""mnist-cnn: train, evaluate, understand and use convolutional networks on MNIST-family data.

The Python API mirrors the CLI. Importing this package is cheap: Keras and TensorFlow are
loaded only when a function that needs them is first called.
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
