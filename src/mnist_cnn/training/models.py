"""Architectures: one builder per model and the name -> builder registry.

Every model uses only built-in Keras layers, so a saved `.keras` file loads under any
Keras backend with no custom objects. Builders take the number of classes and return an
uncompiled `keras.Model` whose output is a softmax over classes (float32).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import keras
from keras import layers

from ..core.errors import ConfigError
from ..data.registry import INPUT_SHAPE


def keras_example(num_classes: int = 10) -> keras.Model:
    """The keras-io MNIST convnet exactly as published (examples/vision/mnist_convnet.py)."""
    return keras.Sequential(
        [
            keras.Input(shape=INPUT_SHAPE),
            layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),  # -> (26, 26, 32)
            layers.MaxPooling2D(pool_size=(2, 2)),  # -> (13, 13, 32)
            layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),  # -> (11, 11, 64)
            layers.MaxPooling2D(pool_size=(2, 2)),  # -> (5, 5, 64)
            layers.Flatten(),  # -> (1600,)
            layers.Dropout(0.5),
            layers.Dense(num_classes, activation="softmax"),
        ],
        name="keras_example",
    )


def _conv_bn_relu(filters: int, kernel_size: int, name: str, strides: int = 1) -> list[layers.Layer]:
    # No bias before batch norm: BN's own shift makes it redundant.
    return [
        layers.Conv2D(filters, kernel_size, strides=strides, padding="same", use_bias=False, name=f"{name}_conv"),
        # momentum 0.9 (Keras default 0.99): the moving statistics settle within ~50 steps,
        # so short runs and small datasets evaluate sensibly too.
        layers.BatchNormalization(momentum=0.9, name=f"{name}_bn"),
        layers.ReLU(name=f"{name}_relu"),
    ]


def compact(num_classes: int = 10) -> keras.Model:
    """The default model: a strided 4x4 stem to 14x14, two conv + batch-norm stages, dropout, one dense softmax.

    `cnn` with its 28x28 stage taken out and its widths cut: on a CPU a conv + BN + pool
    stage at full 28x28 costs far more of a step than its share of the arithmetic, so a
    stride-2 stem halves the image at once (as `fast`'s does; no crop here, so clothes keep
    their edges). Side by side with `cnn` under the same recipe (8 epochs, seeds 0-2, 2
    cores) it is as accurate (means 99.32% and 99.33%, 99.28-99.36 against 99.25-99.39) in 44% of
    the training time on an Intel Xeon with AMX and 40-43% on an AVX2-only AMD EPYC, with
    110-130 MB less peak memory: benchmarks/README.md, "A default that fits in 3 minutes".
    """
    return keras.Sequential(
        [
            keras.Input(shape=INPUT_SHAPE),
            *_conv_bn_relu(24, 4, "stem", strides=2),  # -> (14, 14, 24)
            *_conv_bn_relu(32, 3, "block1"),  # -> (14, 14, 32)
            layers.MaxPooling2D(name="block1_pool"),  # -> (7, 7, 32)
            *_conv_bn_relu(64, 3, "block2"),  # -> (7, 7, 64)
            layers.Flatten(name="flatten"),  # -> (3136,)
            layers.Dropout(0.4, name="dropout"),
            layers.Dense(num_classes, activation="softmax", dtype="float32", name="classifier"),
        ],
        name="compact",
    )


def cnn(num_classes: int = 10) -> keras.Model:
    """Three conv + batch-norm stages, dropout, one dense softmax: the default model until 2026-12-07.

    Batch norm lets a high peak learning rate train fast; dropout before the classifier
    keeps the large flattened layer from memorising. Its 28x28 first stage makes it slow on
    CPUs without AMX (266 s of training for the default recipe on an AVX2-only AMD EPYC), so
    `compact` replaced it as the default; kept so that earlier runs resume and reproduce.
    """
    return keras.Sequential(
        [
            keras.Input(shape=INPUT_SHAPE),
            *_conv_bn_relu(32, 3, "block1"),  # -> (28, 28, 32)
            layers.MaxPooling2D(name="block1_pool"),  # -> (14, 14, 32)
            *_conv_bn_relu(64, 3, "block2"),  # -> (14, 14, 64)
            layers.MaxPooling2D(name="block2_pool"),  # -> (7, 7, 64)
            *_conv_bn_relu(128, 3, "block3"),  # -> (7, 7, 128)
            layers.Flatten(name="flatten"),  # -> (6272,)
            layers.Dropout(0.4, name="dropout"),
            layers.Dense(num_classes, activation="softmax", dtype="float32", name="classifier"),
        ],
        name="cnn",
    )


def _conv_pool_bn_relu(filters: int, kernel_size: int, name: str) -> list[layers.Layer]:
    # Pooled before batch norm and ReLU: both then touch a quarter of the values. Max pooling
    # commutes with ReLU and with a batch norm of positive scale, so this is nearly the same
    # function as conv -> BN -> ReLU -> pool, at less memory traffic.
    return [
        layers.Conv2D(filters, kernel_size, padding="same", use_bias=False, name=f"{name}_conv"),
        layers.MaxPooling2D(name=f"{name}_pool"),
        layers.BatchNormalization(momentum=0.9, name=f"{name}_bn"),
        layers.ReLU(name=f"{name}_relu"),
    ]


def fast(num_classes: int = 10) -> keras.Model:
    """The `fast` recipe's model: a 24x24 crop, a frozen whitening stem, two narrow conv stages.

    MNIST centres each digit's 20x20 box by its centre of mass, so the outer 2 pixels hold
    almost no ink: cropping them costs no accuracy and a sixth of each step. A 4x4 stride-2
    stem goes to 12x12 at once (on CPU a 28x28 stage costs far more than its share of the
    arithmetic). The stem is frozen: `training.whitening` sets its 16 filters to the 8
    leading directions of the training images' 4x4 patches (and their negatives) before
    training, so no gradient is computed below block 1. Block 1 pools before its batch norm
    and ReLU; block 2 is a stride-2 convolution (a quarter of a pooled one's arithmetic). The
    stages are as narrow as still reach 99% in one epoch. No dropout: in so short a run it
    only slows learning. Made for digits: clothes fill the whole frame. Built alone (not by
    `mnist-cnn train`), the stem holds Keras' random initial weights.
    The measurements behind each choice: benchmarks/README.md, "How `fast` got to one epoch".
    """
    return keras.Sequential(
        [
            keras.Input(shape=INPUT_SHAPE),
            layers.Cropping2D(2, name="crop"),  # -> (24, 24, 1)
            layers.Conv2D(16, 4, strides=2, padding="same", use_bias=False, trainable=False,
                          name="whiten"),  # -> (12, 12, 16), frozen: set from the data
            layers.ReLU(name="whiten_relu"),
            *_conv_pool_bn_relu(32, 3, "block1"),  # -> (6, 6, 32)
            *_conv_bn_relu(64, 3, "block2", strides=2),  # -> (3, 3, 64)
            layers.Flatten(name="flatten"),  # -> (576,)
            layers.Dense(num_classes, activation="softmax", dtype="float32", name="classifier"),
        ],
        name="fast",
    )


def strong(num_classes: int = 10) -> keras.Model:
    """The `strong` recipe's model: two convs per stage at 14x14 and 7x7, global pooling.

    Deeper stages see larger shapes (strokes, loops) at little extra cost because the
    resolution is already reduced; global average pooling keeps the classifier small so
    capacity goes into the convs. Meant to be trained with augmentation for many epochs.
    """
    return keras.Sequential(
        [
            keras.Input(shape=INPUT_SHAPE),
            *_conv_bn_relu(32, 3, "block1"),  # -> (28, 28, 32)
            layers.MaxPooling2D(name="block1_pool"),  # -> (14, 14, 32)
            *_conv_bn_relu(64, 3, "block2a"),
            *_conv_bn_relu(64, 3, "block2b"),  # -> (14, 14, 64)
            layers.MaxPooling2D(name="block2_pool"),  # -> (7, 7, 64)
            *_conv_bn_relu(128, 3, "block3a"),
            *_conv_bn_relu(128, 3, "block3b"),  # -> (7, 7, 128)
            layers.GlobalAveragePooling2D(name="pool"),  # -> (128,)
            layers.Dropout(0.3, name="dropout"),
            layers.Dense(num_classes, activation="softmax", dtype="float32", name="classifier"),
        ],
        name="strong",
    )


def _residual(x: keras.KerasTensor, filters: int, name: str) -> keras.KerasTensor:
    """Two 3x3 conv + batch-norm layers and a shortcut around them (same shape in and out)."""
    shortcut = x
    for layer in _conv_bn_relu(filters, 3, f"{name}a") + _conv_bn_relu(filters, 3, f"{name}b")[:2]:  # ReLU after the add
        x = layer(x)
    x = layers.Add(name=f"{name}_add")([x, shortcut])
    return layers.ReLU(name=f"{name}_out")(x)


def _residual_net(name: str, widths: tuple[int, int, int], num_classes: int, dropout: float,
                  blocks: int = 1) -> keras.Model:
    """A stem conv at 28x28, then at 14x14 and at 7x7 a stride-2 conv and `blocks` residual
    blocks, global pooling. `widths`: channels of the three stages."""
    stem, mid, top = widths
    inputs = keras.Input(shape=INPUT_SHAPE)
    x = inputs
    for layer in _conv_bn_relu(stem, 3, "stem"):  # -> (28, 28, stem)
        x = layer(x)
    for stage, filters in ((1, mid), (2, top)):  # -> (14, 14, mid), then (7, 7, top)
        for layer in _conv_bn_relu(filters, 3, f"down{stage}", strides=2):
            x = layer(x)
        for block in range(blocks):  # the first block keeps the name one-block models were saved with
            x = _residual(x, filters, f"res{stage}" + (f"_{block + 1}" if block else ""))
    x = layers.GlobalAveragePooling2D(name="pool")(x)  # -> (top,)
    x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(num_classes, activation="softmax", dtype="float32", name="classifier")(x)
    return keras.Model(inputs, outputs, name=name)


def resnet(num_classes: int = 10) -> keras.Model:
    """A small residual network: 32 channels at 28x28, 64 at 14x14, 128 at 7x7.

    Twice `strong`'s width where the image is small, for Fashion-MNIST, where `strong` fits
    its training set no better than its validation set (capacity-bound). Shortcuts let the
    deeper stack train as fast as a shallow one. Experimental: `wide` is its successor.
    """
    return _residual_net("resnet", (32, 64, 128), num_classes, dropout=0.2)


def wide(num_classes: int = 10) -> keras.Model:
    """`resnet` 1.5x wider where the image is small: 24 channels at 28x28, 96 at 14x14, 192 at 7x7.

    ~1 M parameters and ~77 M multiply-adds per image: meant for bfloat16 training on CPUs
    with bf16 matrix units (AMX), where an epoch costs about what `strong`'s costs in float32.
    """
    return _residual_net("wide", (24, 96, 192), num_classes, dropout=0.2)


def deep(num_classes: int = 10) -> keras.Model:
    """Experimental: twice `wide`'s residual blocks at two-thirds its width: two blocks at 14x14
    (64 channels) and at 7x7 (128), 11 conv layers, ~64 M multiply-adds per image (`wide`: 7, ~77 M)."""
    return _residual_net("deep", (24, 64, 128), num_classes, dropout=0.2, blocks=2)


@dataclass(frozen=True)
class ModelEntry:
    builder: Callable[[int], keras.Model]
    description: str


MODELS: dict[str, ModelEntry] = {
    "keras-example": ModelEntry(keras_example, "keras-io MNIST convnet as published: 2 conv + pool, dropout 0.5"),
    "compact": ModelEntry(compact, "default: strided 4x4 stem to 14x14 (24), conv + batch-norm stages (32 at 14x14, "
                                   "64 at 7x7), dropout 0.4"),
    "cnn": ModelEntry(cnn, "the default until 2026-12-07: 3 conv + batch-norm stages (32, 64, 128), dropout 0.4"),
    "fast": ModelEntry(fast, "24x24 crop, frozen whitening 4x4 stem to 12x12, conv + batch-norm stages (32 "
                             "pooled, 64 strided), no dropout; for digits"),
    "strong": ModelEntry(strong, "5 conv + batch-norm layers (32, 64x2, 128x2), global pooling, dropout 0.3"),
    "resnet": ModelEntry(resnet, "experimental: strided convs to 14x14 (64) and 7x7 (128), a residual block at "
                                 "each, global pooling, dropout 0.2"),
    "wide": ModelEntry(wide, "resnet wider: 24, 96 at 14x14, 192 at 7x7, a residual block at each, global pooling, "
                             "dropout 0.2"),
    "deep": ModelEntry(deep, "experimental: 24, 64 at 14x14, 128 at 7x7, two residual blocks at each, global pooling, "
                             "dropout 0.2"),
}


def build_model(name: str, num_classes: int = 10) -> keras.Model:
    """Build the registered architecture `name` for `num_classes` classes (uncompiled)."""
    try:
        entry = MODELS[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}: choose one of {', '.join(MODELS)} "
                          f"(see `mnist-cnn models`)") from None
    return entry.builder(num_classes)
