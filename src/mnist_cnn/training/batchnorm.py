"""Batch normalisation as one fused TensorFlow op while training (`TrainConfig.fused_batch_norm`).

Keras 3's `BatchNormalization` computes a training step's statistics and normalisation as a
dozen separate ops in float32 (a bfloat16 model casts every activation up and back), and
their gradients as a dozen more. TensorFlow's `FusedBatchNormV3` does the forward pass in
one op and the backward pass in one more, reading bfloat16 directly: on the `wide` model
in bfloat16 that is most of the difference between a training step and three forward
passes (benchmarks/README.md, "Where the time goes").

`FusedBatchNormalization` is a drop-in `BatchNormalization` (same variables, same config,
same inference path); only the training branch differs, by float rounding. Training swaps
it in with `fused_copy`; saved models never contain it (`train.portable_copy` swaps the
plain layer back), so a `.keras` file loads with Keras alone and exports as before.
No I/O at import.
"""

from __future__ import annotations

import keras

# oneDNN's bfloat16 batch norm is several times slower when the channels are not a multiple
# of this, slower even than float32, which also beats zero-padding the channels: such layers
# compute in float32 (measurements: benchmarks/README.md, "Where the time goes").
CHANNEL_BLOCK = 16


@keras.saving.register_keras_serializable(package="mnist_cnn")
class FusedBatchNormalization(keras.layers.BatchNormalization):
    """`keras.layers.BatchNormalization` whose training step is TensorFlow's fused op.

    Falls back to the Keras computation wherever the fused op does not apply: other
    backends, masks, batch renormalisation, or anything but 4-D channels-last input.
    """

    def _fusable(self, inputs, mask) -> bool:
        return (keras.backend.backend() == "tensorflow" and mask is None and not self.renorm
                and len(inputs.shape) == 4 and self.axis in (-1, 3))

    def call(self, inputs, training=None, mask=None):
        if not (training and self.trainable and self._fusable(inputs, mask)):
            return super().call(inputs, training=training, mask=mask)
        import tensorflow as tf  # noqa: PLC0415  (only the TensorFlow backend gets here)

        channels = inputs.shape[-1]
        # The fused op reads bfloat16 or float32 activations, with float32 statistics either way.
        fast_bf16 = inputs.dtype == tf.bfloat16 and channels % CHANNEL_BLOCK == 0
        x = inputs if fast_bf16 or inputs.dtype == tf.float32 else tf.cast(inputs, tf.float32)
        gamma = tf.cast(self.gamma, tf.float32) if self.scale else tf.ones([channels], tf.float32)
        beta = tf.cast(self.beta, tf.float32) if self.center else tf.zeros([channels], tf.float32)
        outputs, mean, variance = tf.compat.v1.nn.fused_batch_norm(
            x, gamma, beta, epsilon=self.epsilon, data_format="NHWC", is_training=True)
        # The op returns the batch variance Bessel-corrected (n / (n - 1)); Keras averages the
        # biased one into the moving variance: undo the correction to update it as Keras does.
        count = tf.cast(tf.reduce_prod(tf.shape(x)[:-1]), tf.float32)
        variance = variance * (count - 1.0) / tf.maximum(count, 1.0)
        self.moving_mean.assign(self.moving_mean * self.momentum + mean * (1.0 - self.momentum))
        self.moving_variance.assign(self.moving_variance * self.momentum + variance * (1.0 - self.momentum))
        return tf.cast(outputs, self.compute_dtype)


def fused_copy(model: keras.Model) -> keras.Model:
    """`model` with every `BatchNormalization` layer fused for training, same weights; `model`
    itself if it has none."""
    if not any(type(layer) is keras.layers.BatchNormalization for layer in model.layers):
        return model

    def fused(layer: keras.layers.Layer) -> keras.layers.Layer:
        cls = FusedBatchNormalization if type(layer) is keras.layers.BatchNormalization else layer.__class__
        return cls.from_config(layer.get_config())

    twin = keras.models.clone_model(model, clone_function=fused)
    twin.set_weights(model.get_weights())
    return twin
