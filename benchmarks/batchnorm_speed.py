"""Forward + backward of TensorFlow's fused batch norm (+ ReLU) by input shape and precision.

    python benchmarks/batchnorm_speed.py [--repeats 7]

Shows why `batchnorm.FusedBatchNormalization` computes layers whose channels are not a
multiple of `CHANNEL_BLOCK` in float32: oneDNN's bfloat16 kernel is slow there (`wide`'s
24-channel stem). Each case is a `tf.function` of `tf.compat.v1.nn.fused_batch_norm`,
ReLU and a random projection, differentiated; prints the median milliseconds of
--repeats calls, cases interleaved. Run it with nothing else on the cores; nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# (shape, dtype, zero channels padded on): `wide`'s layers at batch 512, and alternatives for its stem.
CASES = [((512, 28, 28, 24), "bfloat16", 0), ((512, 28, 28, 24), "bfloat16", 8), ((512, 28, 28, 24), "float32", 0),
         ((512, 28, 28, 32), "bfloat16", 0), ((512, 28, 28, 16), "bfloat16", 0), ((512, 14, 14, 96), "bfloat16", 0),
         ((512, 7, 7, 192), "bfloat16", 0)]


def step(shape, dtype, pad):
    import tensorflow as tf

    x = tf.cast(3 * tf.random.normal(shape) + 1, dtype)
    upstream = tf.random.normal(shape)
    gamma, beta = tf.Variable(tf.ones(shape[-1])), tf.Variable(tf.zeros(shape[-1]))

    @tf.function
    def forward_backward(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            padded = tf.pad(x, [[0, 0], [0, 0], [0, 0], [0, pad]]) if pad else x
            y, _, _ = tf.compat.v1.nn.fused_batch_norm(padded, tf.pad(gamma, [[0, pad]], constant_values=1.0),
                                                       tf.pad(beta, [[0, pad]]), epsilon=1e-3, is_training=True)
            loss = tf.reduce_sum(tf.cast(tf.nn.relu(y[..., :shape[-1]]), tf.float32) * upstream)
        return tape.gradient(loss, [x, gamma, beta])

    forward_backward(x)  # trace
    return lambda: forward_backward(x)[0].numpy()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    runs = [step(*case) for case in CASES]
    seconds: list[list[float]] = [[] for _ in CASES]
    for _ in range(args.repeats):
        for run, times in zip(runs, seconds):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
    print("| input | dtype | zero-padded channels | ms (median) |\n|---|---|---|---|")
    for (shape, dtype, pad), times in zip(CASES, seconds):
        print(f"| {'x'.join(map(str, shape))} | {dtype} | {pad} | {1000 * statistics.median(times):.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
