"""TensorBoard event files of a run (`TrainConfig.tensorboard`), under `RUN/tensorboard/`.

Per epoch, Keras' own `TensorBoard` callback writes the training and validation loss and
accuracy, the learning rate (it reads the optimizer's current rate each epoch) and the
model graph; after training, `write_test_images` adds the run's confusion matrix and
misclassified pictures, read back from the PNG files the run already wrote, so TensorBoard
shows the very pictures of `report.md`. Writing event files needs the `tensorboard`
package (TensorFlow no longer installs it): `check_available` says so before training
starts. Keras and TensorFlow are imported by the functions, never at import.
"""

from __future__ import annotations

import importlib.util
from typing import Any

from ..core.errors import MnistCnnError
from ..runs.run import Run

TEST_IMAGES = {"confusion_matrix": Run.confusion, "misclassified": Run.misclassified}  # tag -> file of the run
TEST_WRITER = "test"  # beside Keras' train/ and validation/ folders: pictures of the test set


def check_available() -> None:
    """MnistCnnError with the fix unless the `tensorboard` package is importable."""
    if importlib.util.find_spec("tensorboard") is None:
        raise MnistCnnError("--tensorboard needs the tensorboard package (TensorFlow no longer installs it); "
                            "pip install 'mnist-cnn[tensorboard]', or drop --tensorboard")


def tensorboard_callback(run: Run) -> Any:
    """Keras' TensorBoard callback writing into `run.tensorboard` (train/ and validation/)."""
    import keras  # noqa: PLC0415

    return keras.callbacks.TensorBoard(log_dir=str(run.tensorboard), write_graph=True)


def write_test_images(run: Run, step: int) -> None:
    """Add the run's test-set pictures (PNG files already written) as image summaries at `step`."""
    import tensorflow as tf  # noqa: PLC0415

    writer = tf.summary.create_file_writer(str(run.tensorboard / TEST_WRITER))
    with writer.as_default():
        for tag, name in TEST_IMAGES.items():
            path = run.path / name
            if path.is_file():
                image = tf.io.decode_png(path.read_bytes())  # (H, W, 4) uint8, as matplotlib saved it
                tf.summary.image(tag, image[tf.newaxis], step=step)  # -> (1, H, W, 4): a batch of one
    writer.close()
