"""A frozen whitening first layer, set from the training images before training starts.

A convolution whose filters are the leading eigenvectors of the covariance of the image
patches it sees, each scaled by 1/sqrt(eigenvalue + eps) and paired with its negative
(so the ReLU after it drops no information), turns each patch into decorrelated features
of comparable scale at once (Jordan's airbench uses such a layer for CIFAR-10). Frozen,
it costs the training step nothing below the next layer: no gradient flows past a layer
with nothing to train, so TensorFlow never computes the next layer's input gradient nor
this layer's own backward pass. The `fast` model's stem is one (benchmarks/README.md,
"How `fast` got to one epoch").

A whitening layer is a plain `Conv2D` named "whiten" with `trainable=False`, so a saved
model loads with Keras alone; its weights are the data's, and are saved with it.
"""

from __future__ import annotations

import logging

import keras
import numpy as np

log = logging.getLogger(__name__)

NAME = "whiten"
SAMPLE = 5000  # images the patch covariance is estimated from (`fast`: 605,000 patches for a 16x16 matrix)
EPS = 1e-2  # added to each eigenvalue: keeps the weakest directions (pixel noise) from being blown up


def whitening_kernel(inputs: np.ndarray, kernel_size: tuple[int, int], strides: tuple[int, int],
                     filters: int, eps: float = EPS) -> np.ndarray:
    """A (kh, kw, channels, filters) kernel whitening the patches of `inputs` (N, H, W, channels)
    taken at `strides`: the `filters // 2` leading eigenvectors, then their negatives."""
    (kh, kw), (sh, sw) = kernel_size, strides
    dims = kh * kw * inputs.shape[-1]
    if filters % 2 or not 0 < filters // 2 <= dims:
        raise ValueError(f"a whitening layer needs an even number of filters up to {2 * dims}, not {filters}")
    windows = np.lib.stride_tricks.sliding_window_view(inputs, (kh, kw), axis=(1, 2))[:, ::sh, ::sw]
    patches = windows.transpose(0, 1, 2, 4, 5, 3).reshape(-1, dims).astype(np.float32)  # (kh, kw, C) as a kernel
    # float32 products (3-4x faster than float64 on 600,000 patches), the eigenproblem in float64
    values, vectors = np.linalg.eigh((patches.T @ patches).astype(np.float64) / len(patches))
    leading = np.argsort(values)[::-1][:filters // 2]
    scaled = vectors[:, leading] / np.sqrt(values[leading] + eps)
    return np.concatenate([scaled, -scaled], axis=1).reshape(kh, kw, inputs.shape[-1], filters).astype(np.float32)


def whitening_layers(model: keras.Model) -> list[keras.layers.Conv2D]:
    """The frozen convolutions named "whiten" or "whiten_<anything>", in call order."""
    return [layer for layer in model.layers
            if isinstance(layer, keras.layers.Conv2D) and not layer.trainable
            and (layer.name == NAME or layer.name.startswith(NAME + "_"))]


def whiten(model: keras.Model, images: np.ndarray, eps: float = EPS) -> keras.Model:
    """`model` with each whitening layer set from the first `SAMPLE` of `images` (uint8 0..255
    or floats in [0, 1], as the model is fed) as that layer sees them: in call order, so a
    later one sees the earlier ones' whitened output."""
    layers = whitening_layers(model)
    if not layers:
        return model
    sample = images[:SAMPLE]
    sample = sample.astype(np.float32) / 255.0 if sample.dtype == np.uint8 else sample.astype(np.float32)
    for layer in layers:
        seen = keras.ops.convert_to_numpy(keras.Model(model.inputs, layer.input)([sample]))
        layer.kernel.assign(whitening_kernel(seen, layer.kernel_size, layer.strides, layer.filters, eps))
        log.info("set %s's frozen whitening layer from %d training images", model.name, len(sample))
    return model
