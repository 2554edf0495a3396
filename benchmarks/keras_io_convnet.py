"""The keras-io "Simple MNIST convnet" example as a user runs it, for whole-process comparisons.

Its published recipe: two 3x3 ReLU convolutions (32, 64) each followed by 2x2 max pooling,
dropout 0.5, a softmax layer; Adam at Keras' default rate, categorical cross-entropy,
batch 128, 15 epochs with 10% of the training set held out for validation, then one test
evaluation. The only change: the data is read from the local IDX files (this machine has
no internet), as the package finds them. `--epochs 9` stops where it first reaches 99%
test accuracy on this machine. The last line printed is a JSON record.

    python benchmarks/keras_io_convnet.py --epochs 9
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=15)
    args = parser.parse_args()

    import keras

    from common import data_dir
    from mnist_cnn.data.idx import load_split
    from mnist_cnn.data.registry import get_spec, locate

    folder = locate("mnist", data_dir())
    (x_train, y_train, _), (x_test, y_test, _) = (load_split(get_spec("mnist"), folder, split)
                                                  for split in ("train", "test"))
    x_train = np.expand_dims(x_train.astype("float32") / 255, -1)
    x_test = np.expand_dims(x_test.astype("float32") / 255, -1)
    y_train, y_test = keras.utils.to_categorical(y_train, 10), keras.utils.to_categorical(y_test, 10)

    layers = keras.layers
    model = keras.Sequential([keras.Input(shape=(28, 28, 1)),
                              layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
                              layers.MaxPooling2D(pool_size=(2, 2)),
                              layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
                              layers.MaxPooling2D(pool_size=(2, 2)),
                              layers.Flatten(), layers.Dropout(0.5),
                              layers.Dense(10, activation="softmax")])
    model.summary()
    model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    start = time.perf_counter()
    model.fit(x_train, y_train, batch_size=128, epochs=args.epochs, validation_split=0.1, verbose=2)
    train_s = time.perf_counter() - start
    _, accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(json.dumps({"train_s": round(train_s, 2), "test_accuracy": round(float(accuracy), 4)}))


if __name__ == "__main__":
    main()
