"""Augmentation of training batches: random flips, shifts, rotations, zooms, elastic distortion, erasing.

Built from Keras preprocessing layers, applied in the input pipeline (`train.make_batches`)
rather than inside the model, so saved models carry no augmentation. Keras is imported
here; nothing runs at import.
"""

from __future__ import annotations

import math

import keras

from ..data.registry import INPUT_SHAPE
from ..runs.config import TrainConfig

# Simard, Steinkraus and Platt (2003), the elastic distortion behind MNIST's best single CNNs:
# a random field of displacements in [-1, 1] px, smoothed by a Gaussian of SIGMA px, scaled by ALPHA.
SIMARD_ALPHA, SIMARD_SIGMA = 34.0, 4.0


class RandomWarp(keras.layers.RandomElasticTransform):
    """Random rotation, zoom, shift and elastic distortion of a batch, sampled once per image.

    Each output pixel reads the input at one point: the pixel's offset from the centre,
    rotated by an angle in [-rotation_deg, rotation_deg], scaled by a factor in
    [1 - zoom, 1 + zoom], moved by up to `shift` of the image size each way (each drawn per
    image), plus an elastic displacement. The point is sampled bilinearly; outside the image
    reads `fill_value`. One sampling blurs an image once, where Keras' RandomTranslation,
    RandomRotation and RandomZoom in a row blur it three times, so training digits grow
    softer than the sharp test digits (benchmarks/README.md, "Augmentation that blurs").

    The elastic part is Simard et al.'s field (alpha 34 px, sigma 4 px at strength 1: about
    1.4 px of smooth displacement per pixel), drawn per batch with a strength in [0, elastic]
    (or in a given (low, high)). Built on `keras.layers.RandomElasticTransform` for its
    randomness and settings; Keras 3.15's own warp does not fit 28x28 training batches
    (same section): its field scales with the image, so at 28 px it smooths over less than
    2 px and gives pixel noise, not a bend; it draws the horizontal and vertical displacement
    from one seed (every pixel moves along a diagonal); and it resamples one image at a time
    in a Python loop (slow to trace and to run). Here the two directions
    are drawn independently, and the batch is sampled with four gathers from the flattened
    batch (Keras' `map_coordinates` needs a known batch size).
    """

    def __init__(self, rotation_deg: float = 0.0, shift: float = 0.0, zoom: float = 0.0,
                 elastic: float | tuple[float, float] = 0.0, fill_value: float = 0.0, seed: int | None = None,
                 **kwargs) -> None:
        super().__init__(factor=(1.0, 1.0), scale=elastic, fill_mode="constant", fill_value=fill_value,
                         value_range=(0.0, 1.0), seed=seed, **kwargs)
        self.rotation_deg, self.shift, self.zoom = rotation_deg, shift, zoom

    def get_config(self):
        config = super().get_config()  # Keras' elastic settings that __init__ fixes or names otherwise:
        for fixed in ("factor", "scale", "interpolation", "fill_mode", "value_range"):
            config.pop(fixed, None)
        return {**config, "rotation_deg": self.rotation_deg, "shift": self.shift, "zoom": self.zoom,
                "elastic": self.scale}

    def get_random_transformation(self, data, training=True, seed=None):
        if not training:
            return None
        ops = self.backend
        batch = ops.shape(data)[0]
        seed = seed or self._get_seed_generator(ops._backend)

        def uniform(low, high, shape=(batch,)):
            return ops.random.uniform(shape, minval=low, maxval=high, seed=seed)

        radians = self.rotation_deg * math.pi / 180
        return {"angle": uniform(-radians, radians), "scale": uniform(1 - self.zoom, 1 + self.zoom),
                "shift": uniform(-self.shift, self.shift, (batch, 2)),
                "strength": uniform(*self.scale, ()), "seed": seed}

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
            raise ValueError("RandomWarp takes batches (images, height, width, channels), bilinear")
        ops = self.backend  # TensorFlow inside tf.data, whatever Keras' backend is
        np_ = ops.numpy
        batch, (height, width, channels) = ops.shape(images)[0], images.shape[1:]
        rows, cols = np_.meshgrid(np_.arange(height, dtype=images.dtype), np_.arange(width, dtype=images.dtype),
                                  indexing="ij")
        dy, dx = rows[None] - (height - 1) / 2, cols[None] - (width - 1) / 2  # offsets from the centre
        cos, sin = (f(transformation["angle"])[:, None, None] for f in (np_.cos, np_.sin))
        scale = transformation["scale"][:, None, None]
        y = (height - 1) / 2 + scale * (cos * dy - sin * dx) + transformation["shift"][:, 0, None, None] * height
        x = (width - 1) / 2 + scale * (sin * dy + cos * dx) + transformation["shift"][:, 1, None, None] * width
        if self.scale[1] > 0:
            field = ops.random.uniform((batch, height, width, 2), minval=-1.0, maxval=1.0,
                                       seed=transformation["seed"], dtype=images.dtype)  # x and y drawn apart
            field = self._smooth(field, SIMARD_SIGMA) * (SIMARD_ALPHA * transformation["strength"])
            y, x = y + field[..., 1], x + field[..., 0]
        top, left = np_.floor(y), np_.floor(x)
        down, right = (y - top)[..., None], (x - left)[..., None]  # bilinear weights of the lower, right pixels
        first = ops.cast(np_.arange(batch) * (height * width), "int32")[:, None, None]
        pixels = np_.reshape(images, (-1, channels))

        def tap(row, col):  # the pixel at (row, col) of each image; fill_value outside it
            inside = (row >= 0) & (row <= height - 1) & (col >= 0) & (col <= width - 1)
            index = (first + ops.cast(np_.clip(row, 0, height - 1), "int32") * width
                     + ops.cast(np_.clip(col, 0, width - 1), "int32"))
            values = np_.reshape(np_.take(pixels, np_.reshape(index, (-1,)), axis=0), ops.shape(images))
            return np_.where(inside[..., None], values, self.fill_value)

        warped = ((tap(top, left) * (1 - right) + tap(top, left + 1) * right) * (1 - down)
                  + (tap(top + 1, left) * (1 - right) + tap(top + 1, left + 1) * right) * down)
        return ops.cast(np_.clip(warped, 0.0, 1.0), self.compute_dtype)


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
    warps = (config.aug_shift, config.aug_rotation_deg, config.aug_zoom, config.aug_elastic)
    if config.aug_one_warp and any(warps):  # shift, rotation, zoom and elastic distortion in one sampling
        steps.append(RandomWarp(config.aug_rotation_deg, config.aug_shift, config.aug_zoom, config.aug_elastic,
                                seed=config.seed))
    elif config.aug_shift:
        steps.append(keras.layers.RandomTranslation(config.aug_shift, config.aug_shift, **fill))
    if config.aug_crop:  # nearest sampling of a shift moves whole pixels: pad-and-crop, without blur
        crop = config.aug_crop / INPUT_SHAPE[0]
        steps.append(keras.layers.RandomTranslation(crop, crop, interpolation="nearest", **fill))
    if not config.aug_one_warp:
        if config.aug_rotation_deg:
            steps.append(keras.layers.RandomRotation(config.aug_rotation_deg / 360.0, **fill))
        if config.aug_zoom:
            steps.append(keras.layers.RandomZoom((-config.aug_zoom, config.aug_zoom), **fill))
        if config.aug_elastic:
            steps.append(RandomWarp(elastic=config.aug_elastic, seed=config.seed))
    if config.aug_erasing:
        steps.append(keras.layers.RandomErasing(factor=config.aug_erasing, fill_value=0.0,
                                                value_range=(0.0, 1.0), seed=config.seed))
    return keras.Sequential(steps, name="augment") if steps else None
