"""Training the touching-digit reader that `inference/touching.py` uses: `mnist-cnn train-reader`.

The reader is trained only on MNIST *training* digits, composed into numbers of 1-4
digits that touch or overlap (`data.compose.strip_inks`: random sizes, slants, gaps,
stroke widths), new ones every epoch, and checked on numbers made the same way from *test*
digits. Its input is the strip `touching.strip_from_ink` makes of a component's ink; its
output, per band of BAND strip columns, logits for "nothing here" and the ten digits,
trained with CTC.

Architecture (sized by measurement on 2 CPU cores, benchmarks/README.md "Reading
touching digits"): three conv blocks (16, 32, 64 filters, batch-normalised) pool the
strip's height by 8 and its width by BAND, leaving COLUMNS bands of 3 x 64 features
each; a 1-D convolution over neighbouring bands gives each band the context of the
digit it lies in and of its neighbours; with the "gru" context a bidirectional GRU
then carries context along the whole strip (whether a stroke is a 1 of its own or part
of its neighbour depends on more than the next band); a dense layer scores the 11
classes. The GRU is unrolled over the COLUMNS bands: the same arithmetic, but a graph
LiteRT converts without TensorFlow's list ops, so the reader stays on LiteRT.

The shipped reader (`make reader`) is a width-32 "gru" reader trained from scratch on
half-warped strips, then trained on twice (`init`) on new strips at lower rates. "conv"
stays the default: four times cheaper to train, for a digit model of your own.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import asdict, dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..core.atomic import atomic_path, write_json
from ..core.errors import MnistCnnError, ModelFileError
from ..core.hashing import sha256_file
from ..core.system import quiet_tensorflow
from ..runs.run import environment
from ..data.compose import strip_inks
from ..inference.side_model import SideModel, probe_batch
from ..inference.touching import (BAND, COLUMNS, STRIP_HEIGHT, STRIP_WIDTH, TouchingReader, strip_from_ink,
                                 write_litert_twin)

log = logging.getLogger(__name__)

MAX_LENGTH = 4  # digits per training strip, at most
CHUNK = 2_000  # strips per worker task
RECORD_FORMAT = "mnist-cnn reader 1"  # what reader.json beside a reader holds
MIN_STRIPS_ALIKE = 0.995  # an int8 twin must read this share of the test strips as the reader itself does
CONTEXTS = ("conv", "gru")  # `ReaderConfig.context` choices
WIDTH = 16  # the first conv block's filters; the next two have 2x and 4x, the band convolution 8x ...
# ... and the GRU 4x units a direction: 16 gives the shipped reader's 16-32-64 / 128 / 64
MAX_WIDTH = 128  # a GRU reader of this width has 10.9 M parameters: already more than 2 cores train in a day
PRECISIONS = ("float32", "bfloat16")  # `ReaderConfig.precision` choices


@dataclass(frozen=True)
class ReaderConfig:
    """What `train_reader` does; the defaults made the shipped reader."""

    strips: int = 100_000  # training strips (MNIST training digits)
    check_strips: int = 3_000  # held-out strips (MNIST test digits) scored after training
    epochs: int = 10
    batch_size: int = 64
    learning_rate: float = 3e-3
    seed: int = 0
    init: str | None = None  # a reader.keras to start from (fresh strips of `seed`), instead of new weights:
    # all of it if it has this config's `context`, else the layers the two share (the conv blocks)
    context: str = "conv"  # what carries context along the strip: "conv" (the band convolution alone) or "gru"
    # New strips every epoch (`strips` each) rather than the same ones: the model learns its strips
    # by heart otherwise (loss 0.115 on them, 0.31 on new ones; 93.1% of test strips, fresh 94.4%).
    fresh: bool = True
    warp: float = 0.0  # the share of training digits warped before composing (`compose.warp_digit`)
    width: int = WIDTH  # the reader's size (`build_reader`); a larger one costs more a strip to train and read
    # bfloat16 trains a larger reader about twice as fast on a CPU with AMX (benchmarks/README.md); the
    # saved reader is float32 either way, so it reads alike everywhere and converts to LiteRT as before
    precision: str = "float32"


_DIGITS: tuple[np.ndarray, np.ndarray] | None = None  # a worker's copy of the digits, sent once


def _keep_digits(images: np.ndarray, labels: np.ndarray) -> None:
    global _DIGITS
    _DIGITS = images, labels


def _chunk(task: tuple[int, int, float]) -> tuple[np.ndarray, np.ndarray]:
    count, seed, warp = task
    assert _DIGITS is not None
    strips = np.zeros((count, STRIP_HEIGHT, STRIP_WIDTH), np.uint8)
    targets = np.zeros((count, MAX_LENGTH), np.int32)  # CTC: 0 pads, digit d is d + 1
    for i, (ink, digits) in enumerate(strip_inks(*_DIGITS, count, seed, warp)):
        strip, _ = strip_from_ink(ink)
        strips[i] = np.round(strip * 255)
        targets[i, :len(digits)] = np.asarray(digits) + 1
    return strips, targets


def make_strips(images: np.ndarray, labels: np.ndarray, count: int, seed: int,
                workers: int | None = None, warp: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """`count` reader inputs (uint8 (N, STRIP_HEIGHT, STRIP_WIDTH)) and CTC targets (int32 (N, MAX_LENGTH)).

    Made in `workers` processes (default: every core), chunk by chunk, each chunk from its
    own seed: the same strips whatever the number of workers. The workers are spawned, not
    forked: a fork of a process running TensorFlow's thread pools can hang.
    """
    tasks = [(min(CHUNK, count - start), seed * 1_000_003 + start, warp) for start in range(0, count, CHUNK)]
    workers = min(workers or os.cpu_count() or 1, len(tasks))
    if workers == 1:
        _keep_digits(images, labels)
        try:
            parts = [_chunk(task) for task in tasks]
        finally:
            _keep_digits(np.empty(0), np.empty(0))
    else:
        with get_context("spawn").Pool(workers, initializer=_keep_digits, initargs=(images, labels)) as pool:
            parts = pool.map(_chunk, tasks)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def build_reader(seed: int = 0, context: str = "conv", width: int = WIDTH) -> Any:
    """The reader's Keras model: (STRIP_HEIGHT, STRIP_WIDTH, 1) in [0, 1] -> (COLUMNS, 11) logits (float32
    whatever Keras' dtype policy, as CTC wants); `width` filters in the first conv block."""
    import keras
    from keras import layers

    if context not in CONTEXTS:
        raise ValueError(f"context {context!r} is not one of {', '.join(CONTEXTS)}")
    if not 1 <= width <= MAX_WIDTH:
        raise ValueError(f"width {width} must be a number of filters from 1 to {MAX_WIDTH}")
    keras.utils.set_random_seed(seed)

    def block(x: Any, filters: int, pool: tuple[int, int]) -> Any:
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        return layers.MaxPooling2D(pool)(x)

    inputs = keras.Input((STRIP_HEIGHT, STRIP_WIDTH, 1), name="strip")
    x = block(inputs, width, (2, 2))  # 14 x 56
    x = block(x, 2 * width, (2, BAND // 2))  # 7 x 28: one band per BAND (4) strip columns from here on
    x = block(x, 4 * width, (2, 1))  # 3 x 28
    x = layers.Permute((2, 1, 3))(x)  # bands first
    x = layers.Reshape((COLUMNS, -1))(x)
    x = layers.Conv1D(8 * width, 3, padding="same", activation="relu")(x)  # a band sees its neighbours
    if context == "gru":  # ... and, through the GRU, the whole strip
        x = layers.Bidirectional(layers.GRU(4 * width, return_sequences=True, unroll=True), name="context")(x)
    x = layers.Dropout(0.1)(x)
    outputs = layers.Dense(11, name="logits", dtype="float32")(x)
    return keras.Model(inputs, outputs, name="touching_reader")


def reader_shape(model: Any) -> tuple[str, int]:
    """A reader model's (context, width): "gru" if it has the GRU layer, and its first conv block's filters."""
    from keras import layers

    context = "gru" if any(layer.name == "context" for layer in model.layers) else "conv"
    width = next(layer.filters for layer in model.layers if isinstance(layer, layers.Conv2D))
    return context, int(width)


def in_precision(model: Any, precision: str, seed: int = 0) -> Any:
    """A reader with `model`'s architecture and weights whose layers compute in `precision`
    ("bfloat16": Keras' mixed_bfloat16, the weights kept in float32; "float32")."""
    import keras

    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r} is not one of {', '.join(PRECISIONS)}")
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_bfloat16" if precision == "bfloat16" else "float32")
    try:
        twin = build_reader(seed, *reader_shape(model))
    finally:
        keras.config.set_dtype_policy(previous)
    twin.set_weights(model.get_weights())
    return twin


def warm_start(init: Path, seed: int, context: str, width: int = WIDTH) -> Any:
    """The reader to train on from `init`: that reader itself if it has `context` (a reader
    whose loss was still falling goes on, on strips it has not seen), else a new one of
    `context` holding `init`'s weights wherever the two have the same layer (the conv blocks
    and the band convolution: a GRU then learns its context on features already trained).
    `init` must have `width`: a reader does not grow."""
    import keras

    keras.utils.set_random_seed(seed)
    donor = TouchingReader.load(init).model  # refuses a file that is not a reader
    donor_context, donor_width = reader_shape(donor)
    if donor_width != width:
        raise MnistCnnError(f"--init {init} is a reader of width {donor_width}, not {width}; pass --width "
                            f"{donor_width} to go on from it, or leave --init out to start afresh")
    if donor_context == context:
        return donor
    model = build_reader(seed, context, width)
    donors = [layer for layer in donor.layers if layer.weights]
    takers = [layer for layer in model.layers if layer.weights]
    copied = 0
    for given, taker in zip(donors, takers):  # in order, until the two differ
        if [w.shape for w in given.weights] != [w.shape for w in taker.weights]:
            break
        taker.set_weights(given.get_weights())
        copied += 1
    if not copied:
        raise MnistCnnError(f"--init {init} shares no layer with a {context} reader; leave --init out to start afresh")
    log.info("started from %s: %d of its %d weighted layers copied, the rest new", init, copied, len(donors))
    return model


def _read(reader: TouchingReader, strips: np.ndarray) -> list[list[int]]:
    """The digits `reader` reads in each of `strips` (uint8 (N, STRIP_HEIGHT, STRIP_WIDTH))."""
    found: list[list[int]] = []
    for start in range(0, len(strips), 512):
        batch = strips[start:start + 512].astype(np.float32) / 255.0
        found += [[d.digit for d in digits] for digits in reader.read(batch)]
    return found


def exact_share(model: Any, strips: np.ndarray, targets: np.ndarray, read: list[list[int]] | None = None) -> float:
    """The share of strips read exactly (every digit, none missing or extra); `read`: the digits
    the model reads in them, if known already."""
    read = _read(TouchingReader(model), strips) if read is None else read
    return float(np.mean([found == [t - 1 for t in target if t] for found, target in zip(read, targets)]))


def write_checked_twin(model: Any, out: Path, strips: np.ndarray, expected: list[list[int]] | None = None
                       ) -> tuple[Path | None, dict[str, Any]]:
    """Write the LiteRT twin beside the reader saved at `out`, the file `predict` and `serve` read with.

    Dynamic-range int8 (weights in int8: a third of float's time a strip for the shipped reader on
    one core of an Intel Xeon, benchmarks/README.md) when it reads at least MIN_STRIPS_ALIKE of
    `strips` as the reader does (`expected`: what the reader reads in them, if known already); else float32 when it reads a probe as the reader does (float rounding only); else
    none (Keras reads). Returns the twin (or None) and what the record says about it.
    """
    if expected is None:
        expected = _read(TouchingReader(model, out), strips)
    twin = write_litert_twin(model, out, quantize=True)
    try:
        got = _read(TouchingReader(None, out, SideModel.converted(twin, "touching-digit reader")), strips)
        alike = float(np.mean([a == b for a, b in zip(expected, got)]))
    except ModelFileError as e:  # a file LiteRT cannot open: the float twin below
        log.warning("the int8 LiteRT twin does not open (%s)", str(e).splitlines()[0][:200])
        alike = 0.0
    if alike >= MIN_STRIPS_ALIKE:
        return twin, {"litert": "dynamic-range int8", "litert_strips_read_alike": alike,
                      "litert_sha256": sha256_file(twin)}
    log.warning("the int8 LiteRT twin reads %.2f%% of the test strips as the reader does (under %.1f%%): "
                "writing a float one", 100 * alike, 100 * MIN_STRIPS_ALIKE)
    twin = write_litert_twin(model, out)
    try:  # vouched for only once it reads a probe as the reader does (the record names both digests)
        TouchingReader(model, out)._side.open_litert(twin, probe_batch(STRIP_HEIGHT, STRIP_WIDTH))
    except ValueError as e:
        log.warning("the LiteRT twin differs from the reader (%s): not kept", e)
        twin.unlink()
        return None, {"litert": None}
    return twin, {"litert": "float32", "litert_sha256": sha256_file(twin)}


def train_reader(train: tuple[np.ndarray, np.ndarray], test: tuple[np.ndarray, np.ndarray], out: Path,
                 config: ReaderConfig = ReaderConfig(),
                 on_epoch: Callable[[int, float, float], None] | None = None) -> dict[str, Any]:
    """Train a reader on strips of `train` digits, score it on strips of `test` digits, save it to `out`.

    Returns what was measured (seconds, the exact-read share on test strips), also written
    beside `out` as JSON. `out` is written atomically: a killed run leaves the previous
    reader in place. `on_epoch(epochs_done, loss, seconds_so_far)`, if given, hears of each
    epoch as it ends (the CLI prints it: a shipped reader trains for most of an hour).
    """
    started = time.perf_counter()
    strips, targets = make_strips(*train, config.strips, config.seed, warp=config.warp)
    check = make_strips(*test, config.check_strips, config.seed + 1)
    made = time.perf_counter() - started
    log.info("made %d training strips in %.1f s", len(strips), made)
    quiet_tensorflow()
    import keras
    if config.init is None:
        model = build_reader(config.seed, config.context, config.width)
    else:
        model = warm_start(Path(config.init), config.seed, config.context, config.width)
    if config.precision != "float32":
        model = in_precision(model, config.precision, config.seed)
    steps = config.epochs * (len(strips) // config.batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(0.0, steps, warmup_target=config.learning_rate,
                                                      warmup_steps=steps // 20)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss=keras.losses.CTC())
    inputs = (strips.astype(np.float32) / 255.0)[..., np.newaxis]
    fit_started, remade = time.perf_counter(), 0.0  # remade: seconds making new strips between epochs
    def epoch_ended(epoch: int, logs: dict[str, float]) -> None:
        so_far = time.perf_counter() - fit_started
        log.info("reader epoch %d/%d: loss %.4f, %.0f s so far", epoch + 1, config.epochs, logs["loss"], so_far)
        if on_epoch is not None:
            on_epoch(epoch + 1, float(logs["loss"]), so_far)

    progress = keras.callbacks.LambdaCallback(on_epoch_end=epoch_ended)
    if not config.fresh:
        history = model.fit(inputs, targets, batch_size=config.batch_size, epochs=config.epochs,
                            shuffle=True, verbose=0, callbacks=[progress])
        losses = history.history["loss"]
    else:  # each epoch on strips it has never seen; the schedule runs on across the epochs
        losses = []
        for epoch in range(config.epochs):
            if epoch:
                making = time.perf_counter()
                strips, targets = make_strips(*train, config.strips, config.seed + 7_919 * epoch, warp=config.warp)
                remade += time.perf_counter() - making
                inputs = (strips.astype(np.float32) / 255.0)[..., np.newaxis]
            history = model.fit(inputs, targets, batch_size=config.batch_size, initial_epoch=epoch, epochs=epoch + 1,
                                shuffle=True, verbose=0, callbacks=[progress])
            losses += history.history["loss"]
    training = time.perf_counter() - fit_started - remade
    if config.precision != "float32":  # saved, checked and converted in float32, as every reader
        model = in_precision(model, "float32", config.seed)
    read = _read(TouchingReader(model), check[0])  # also what the LiteRT twin is checked against
    share = exact_share(model, *check, read=read)
    log.info("reader: %.2f%% of %d test strips read exactly after %.0f s of training", 100 * share,
             len(check[0]), training)
    record = {"format": RECORD_FORMAT, "config": asdict(config), "parameters": int(model.count_params()),
              "strips": config.strips * (config.epochs if config.fresh else 1),
              "seconds_making_strips": round(made + remade, 1),
              "seconds_training": round(training, 1), "final_loss": float(losses[-1]),
              "test_strips": len(check[0]), "test_strips_read_exactly": share, "environment": environment()}
    if config.init is not None:
        record["init_sha256"] = sha256_file(Path(config.init))
    with atomic_path(out) as partial:
        model.save(partial)
    twin, about_twin = write_checked_twin(model, out, check[0], read)  # read from, instead of converting at first use
    record.update(about_twin)
    record["reader_sha256"] = sha256_file(out)
    record_file = out.with_suffix(".json")
    write_json(record_file, record)
    return {**record, "record_file": str(record_file), "litert_file": None if twin is None else str(twin)}


__all__ = ["CONTEXTS", "PRECISIONS", "ReaderConfig", "build_reader", "exact_share", "in_precision", "make_strips",
           "reader_shape", "train_reader", "warm_start", "write_checked_twin"]
