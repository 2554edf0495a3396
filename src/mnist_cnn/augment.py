"""Augmentation of training batches: random flips, shifts, rotations, zooms, elastic distortion, erasing.

Built from Keras preprocessing layers, applied in the input pipeline (`train.make_batches`)
rather than inside the model, so saved models carry no augmentation. Keras is imported
here; nothing runs at import.
"""

from __future__ import annotations

import keras

from .config import TrainConfig
from .models import INPUT_SHAPE


# Simard, Steinkraus and Platt (2003), the elastic distortion behind MNIST's best single CNNs:
# a random field of displacements in [-1, 1] px, smoothed by a Gaussian of SIGMA px, scaled by ALPHA.
SIMARD_ALPHA, SIMARD_SIGMA = 34.0, 4.0


class ElasticDistortion(keras.layers.RandomElasticTransform):
    """Random elastic distortion of digits as Simard et al. (2003) describe it, for whole batches.

    Each batch is distorted with a strength drawn uniformly from [0, `scale`], strength 1 being
    Simard's field (alpha 34 px, sigma 4 px: about 1.4 px of smooth displacement per pixel).
    Built on `keras.layers.RandomElasticTransform` for its randomness and settings, with its
    own field and warp because Keras 3.15's do not fit 28x28 training batches (measured in
    benchmarks/README.md): its field scales with the image size, so at 28 px it smooths over
    less than 2 px and the result is pixel noise, not a smooth bend; it draws the horizontal
    and vertical displacement from the same seed (every pixel moves along a diagonal); and it
    resamples one image at a time in a Python loop (for batches of 512: minutes to trace and
    ~0.5 s per batch). Here the field is Simard's, the two directions are drawn independently,
    and the batch is sampled bilinearly with four gathers from the flattened batch (Keras'
    `map_coordinates` needs a known batch size).
    """

    def get_elastic_transform_params(self, height, width, factor):
        return SIMARD_ALPHA * factor, SIMARD_SIGMA

    def _smooth(self, field, sigma):
        """Gaussian blur of each channel, as two 1-D passes (a 25x25 kernel costs 12x more)."""
        ops = self.backend
        radius = int(3 * sigma)
        taps = ops.numpy.exp(-0.5 * (ops.numpy.arange(-radius, radius + 1, dtype=field.dtype) / sigma) ** 2)
        taps = taps / ops.numpy.sum(taps)
        channels = field.shape[-1]
        for shape in ((2 * radius + 1, 1), (1, 2 * radius + 1)):  # down the columns, then along the rows
            kernel = ops.numpy.tile(ops.numpy.reshape(taps, (*shape, 1, 1)), (1, 1, channels, 1))
            field = ops.nn.depthwise_conv(field, kernel, strides=1, padding="same")
        return field

    def _transform_images(self, images, transformation, interpolation):
        if transformation is None:
            return images
        if self.data_format != "channels_last" or len(images.shape) != 4 or interpolation != "bilinear":
            raise ValueError("ElasticDistortion takes batches (images, height, width, channels), bilinear")
        ops = self.backend  # TensorFlow inside tf.data, whatever Keras' backend is
        np_ = ops.numpy
        batch, (height, width, channels) = ops.shape(images)[0], images.shape[1:]
        alpha, sigma = self.get_elastic_transform_params(height, width, transformation["distortion_factor"])
        field = ops.random.uniform((batch, height, width, 2), minval=-1.0, maxval=1.0, seed=transformation["seed"],
                                   dtype=images.dtype)  # (x, y) displacements, drawn independently
        field = self._smooth(field, sigma) * alpha
        rows, cols = np_.meshgrid(np_.arange(height, dtype=images.dtype), np_.arange(width, dtype=images.dtype),
                                  indexing="ij")
        y, x = rows + field[..., 1], cols + field[..., 0]  # where each output pixel reads from
        top, left = np_.floor(y), np_.floor(x)
        down, right = y - top, x - left  # bilinear weights of the lower and right neighbours
        first = ops.cast(np_.arange(batch) * (height * width), "int32")[:, None, None]
        pixels = np_.reshape(images, (-1, channels))

        def tap(row, col):  # the pixel at (row, col) of each image, black outside it
            inside = (row >= 0) & (row <= height - 1) & (col >= 0) & (col <= width - 1)
            index = first + ops.cast(np_.clip(row, 0, height - 1), "int32") * width + \
                ops.cast(np_.clip(col, 0, width - 1), "int32")
            values = np_.reshape(np_.take(pixels, np_.reshape(index, (-1,)), axis=0), ops.shape(images))
            return np_.where(inside[..., None], values, self.fill_value)

        def weight(w):
            return w[..., None]

        warped = (tap(top, left) * weight((1 - down) * (1 - right)) + tap(top, left + 1) * weight((1 - down) * right)
                  + tap(top + 1, left) * weight(down * (1 - right)) + tap(top + 1, left + 1) * weight(down * right))
        images = np_.where(transformation["apply_transform"][:, None, None, None], warped, images)
        images = np_.clip(images, self.value_range[0], self.value_range[1])
        return ops.cast(images, self.compute_dtype)


def augmenter(config: TrainConfig) -> keras.Sequential | None:
    """The random changes `config` asks for, as one layer for training batches, or None.

    Empty areas are filled with black, the MNIST background. Flips are opt-in (`aug_flip`):
    a mirrored digit is a different (or no) digit, while a mirrored shirt is still a shirt.
    """
    if not config.augment:
        return None
    fill = {"fill_mode": "constant", "fill_value": 0.0, "seed": config.seed}
    steps: list[keras.layers.Layer] = []
    if config.aug_flip:
        steps.append(keras.layers.RandomFlip("horizontal", seed=config.seed))
    if config.aug_shift:
        steps.append(keras.layers.RandomTranslation(config.aug_shift, config.aug_shift, **fill))
    if config.aug_crop:  # nearest sampling of a shift moves whole pixels: pad-and-crop, without blur
        crop = config.aug_crop / INPUT_SHAPE[0]
        steps.append(keras.layers.RandomTranslation(crop, crop, interpolation="nearest", **fill))
    if config.aug_rotation_deg:
        steps.append(keras.layers.RandomRotation(config.aug_rotation_deg / 360.0, **fill))
    if config.aug_zoom:
        steps.append(keras.layers.RandomZoom((-config.aug_zoom, config.aug_zoom), **fill))
    if config.aug_elastic:
        steps.append(ElasticDistortion(factor=(1.0, 1.0), scale=config.aug_elastic, value_range=(0.0, 1.0), **fill))
    if config.aug_erasing:
        steps.append(keras.layers.RandomErasing(factor=config.aug_erasing, fill_value=0.0,
                                                value_range=(0.0, 1.0), seed=config.seed))
    return keras.Sequential(steps, name="augment") if steps else None
