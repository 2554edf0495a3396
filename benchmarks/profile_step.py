"""Where one training step goes, op by op: a TensorFlow profiler trace of a recipe's `fit`.

Trains the recipe's model (precision, batch size, optimizer; no augmentation: it is ~1%
of an epoch, see profile_epoch.py) for --steps steps under `tf.profiler`, then sums the
time of every TensorFlow op in the trace by op type and prints the heaviest types and the
heaviest single ops, in milliseconds per step. Op times are summed over threads, so with
inter-op parallelism they can add up to more than the step's wall time; shares are of the
summed op time. Nothing is asserted anywhere; the trace is left in --logdir for TensorBoard.

    python benchmarks/profile_step.py --recipe wide --dataset fashion-mnist [--steps 20] [--precision float32]
"""

from __future__ import annotations

import argparse
import collections
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def op_times(logdir: Path) -> tuple[collections.Counter, collections.Counter, collections.Counter]:
    """From the trace in `logdir`: seconds by op type, seconds by op name, calls by op type."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    by_type: collections.Counter = collections.Counter()
    by_name: collections.Counter = collections.Counter()
    calls: collections.Counter = collections.Counter()
    for trace in logdir.rglob("*.xplane.pb"):
        space = xplane_pb2.XSpace()
        space.ParseFromString(trace.read_bytes())
        for plane in space.planes:
            for line in plane.lines:
                if not line.name.startswith("tf_Compute") and line.name != "python":
                    continue
                for event in line.events:
                    name = plane.event_metadata[event.metadata_id].name
                    # TF ops are "scope/name:OpType"; "EagerLocalExecute: f" wraps a whole function call
                    if ":" not in name or "::" in name or name.startswith("EagerLocalExecute"):
                        continue
                    op_type = name.rsplit(":", 1)[1]
                    seconds = event.duration_ps * 1e-12
                    by_type[op_type] += seconds
                    by_name[name] += seconds
                    calls[op_type] += 1
    return by_type, by_name, calls


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default="wide")
    parser.add_argument("--dataset", default="fashion-mnist")
    parser.add_argument("--model", help="default: the recipe's")
    parser.add_argument("--precision", choices=("float32", "bfloat16"), help="default: the recipe's")
    parser.add_argument("--batch-size", type=int, help="default: the recipe's")
    parser.add_argument("--fused-batch-norm", action=argparse.BooleanOptionalAction, help="default: the recipe's")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--logdir", type=Path, help="where the trace goes (default: a temporary folder)")
    parser.add_argument("--data-dir", type=Path)
    args = parser.parse_args()

    import tensorflow as tf

    from mnist_cnn.data.load import load_dataset
    from mnist_cnn.data.prepare import prepare_data
    from mnist_cnn.training.recipes import resolve_config
    from mnist_cnn.training.train import build_for_training, compile_model, make_batches

    config = resolve_config(args.recipe, None, {"dataset": args.dataset, "model": args.model,
                                                "precision": args.precision, "batch_size": args.batch_size,
                                                "fused_batch_norm": args.fused_batch_norm})
    dataset = load_dataset(config.dataset, args.data_dir)
    data = prepare_data(config, dataset)
    n = args.steps * config.batch_size
    batches = make_batches(data.x_train[:n], data.y_train[:n], config.batch_size, shuffle_seed=0)
    model = compile_model(build_for_training(config, len(dataset.class_names)), config, args.steps)
    model.fit(batches, epochs=1, verbose=0)  # warm-up: traces the step, builds the optimizer
    start = time.perf_counter()
    model.fit(batches, epochs=1, verbose=0)
    wall = (time.perf_counter() - start) / args.steps
    logdir = args.logdir or Path(tempfile.mkdtemp(prefix="profile_step-"))
    tf.profiler.experimental.start(str(logdir))
    start = time.perf_counter()
    model.fit(batches, epochs=1, verbose=0)
    traced = (time.perf_counter() - start) / args.steps
    tf.profiler.experimental.stop()

    by_type, by_name, calls = op_times(logdir)
    total = sum(by_type.values())
    per_step = 1000 / args.steps
    print(f"recipe {config.recipe}, dataset {config.dataset}, model {config.model}, precision {config.precision}, "
          f"fused batch norm {config.fused_batch_norm}, batch {config.batch_size}, {args.steps} steps: {1000 * wall:.1f} ms per step untraced, "
          f"{1000 * traced:.1f} traced; ops sum to {per_step * total:.1f} ms per step; trace in {logdir}")
    print("\n| op type | ms per step | share | calls per step |\n|---|---|---|---|")
    for op_type, seconds in by_type.most_common(args.top):
        print(f"| {op_type} | {per_step * seconds:.1f} | {100 * seconds / total:.1f}% | "
              f"{calls[op_type] / args.steps:.0f} |")
    print("\n| op | ms per step | share |\n|---|---|---|")
    for name, seconds in by_name.most_common(args.top):
        print(f"| {name} | {per_step * seconds:.1f} | {100 * seconds / total:.1f}% |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
