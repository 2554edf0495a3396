"""The fused batch norm used while training is a drop-in for Keras' own."""

from __future__ import annotations

import keras
import numpy as np
import pytest

from mnist_cnn.training.batchnorm import FusedBatchNormalization, fused_copy


def _step(layer, x, upstream):
    """Training-mode output, gradients (input, gamma, beta) and the moving statistics after one step."""
    import tensorflow as tf

    x = tf.cast(x, layer.compute_dtype)
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x, training=True)
        loss = tf.reduce_sum(tf.cast(y, tf.float32) * upstream)  # random upstream: sum(y**2) has zero dx
    grads = tape.gradient(loss, [x, layer.gamma, layer.beta])
    return [np.asarray(tf.cast(t, tf.float32)) for t in [y, *grads, layer.moving_mean, layer.moving_variance]]


@pytest.mark.parametrize(("policy", "channels"), [("float32", 5), ("mixed_bfloat16", 5), ("mixed_bfloat16", 32)])
def test_fused_training_step_matches_keras_batch_norm(policy, channels):
    """bfloat16 with 5 channels computes in float32 (CHANNEL_BLOCK), with 32 in bfloat16."""
    rng = np.random.default_rng(0)
    x = (3 * rng.standard_normal((8, 7, 7, channels)) + 1).astype(np.float32)  # off-centre, wide: stats matter
    upstream = rng.standard_normal(x.shape).astype(np.float32)
    gamma, beta = rng.random(channels) + 0.5, rng.standard_normal(channels)
    layers = []
    for cls in (keras.layers.BatchNormalization, FusedBatchNormalization):
        layer = cls(momentum=0.9, dtype=policy)
        layer.build(x.shape)
        layer.gamma.assign(gamma)
        layer.beta.assign(beta)
        layers.append(layer)
    tol = 1e-5 if policy == "float32" else 2e-2  # bfloat16 activations: ~3 significant digits
    for name, a, b in zip(["output", "d input", "d gamma", "d beta", "moving mean", "moving variance"],
                          _step(layers[0], x, upstream), _step(layers[1], x, upstream), strict=True):
        np.testing.assert_allclose(b, a, rtol=tol, atol=tol * np.abs(a).max(), err_msg=name)
    # The moving statistics moved (momentum 0.9 from 0 and 1), and inference reads them alike.
    assert np.abs(layers[1].moving_mean.numpy()).max() > 0.05
    np.testing.assert_allclose(np.asarray(layers[1](x, training=False), np.float32),
                               np.asarray(layers[0](x, training=False), np.float32), rtol=tol, atol=tol)


def test_fused_layer_falls_back_to_keras_where_the_op_does_not_apply():
    x = np.random.default_rng(1).standard_normal((6, 4)).astype(np.float32)  # 2-D: no fused op
    fused, plain = FusedBatchNormalization(), keras.layers.BatchNormalization()
    np.testing.assert_allclose(np.asarray(fused(x, training=True)), np.asarray(plain(x, training=True)), atol=1e-6)


def test_fused_copy_swaps_every_batch_norm_and_keeps_weights_and_config_round_trip():
    from mnist_cnn.training.models import build_model

    model = build_model("strong")
    twin = fused_copy(model)
    norms = [layer for layer in twin.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms and all(isinstance(layer, FusedBatchNormalization) for layer in norms)
    for a, b in zip(model.get_weights(), twin.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    again = FusedBatchNormalization.from_config(norms[0].get_config())
    assert again.get_config() == norms[0].get_config()
    no_norm = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    assert fused_copy(no_norm) is no_norm
