"""The touching-digit reader: its strip, its decoding, the cuts made from its answer, its training and CLI.

Most tests need no trained reader: they check `strip_from_ink`, greedy CTC decoding and
the cuts on hand-made inputs, and `segment_digits` with a stand-in reader. One test
trains a tiny reader end to end; the shipped reader is checked on numbers of MNIST
*test* digits (it was trained on training digits only).
"""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path

import numpy as np
import pytest
from conftest import SHARED_DATA

from mnist_cnn.cli.main import main
from mnist_cnn.core.errors import ModelFileError
from mnist_cnn.core.hashing import sha256_file
from mnist_cnn.data.compose import TOUCHING_GAP, strip_inks
from mnist_cnn.inference import segment
from mnist_cnn.inference.segment import _read_pieces, segment_digits
from mnist_cnn.inference.touching import (
    BAND,
    COLUMNS,
    STRIP_HEIGHT,
    STRIP_INK,
    STRIP_WIDTH,
    decode,
    strip_from_ink,
)


def bars(columns: list[tuple[int, int]], height: int = 60, width: int = 200) -> np.ndarray:
    """Ink (white on black) with a filled vertical bar over each (start, stop) column range."""
    ink = np.zeros((height, width), np.float32)
    for start, stop in columns:
        ink[5:height - 5, start:stop] = 1.0
    return ink


def test_a_strip_holds_the_ink_at_mnist_height_and_maps_back_to_its_columns():
    ink = bars([(40, 48), (90, 98)])  # two bars 50 px high, 42 px apart
    strip, layout = strip_from_ink(ink)
    assert strip.shape == (STRIP_HEIGHT, STRIP_WIDTH) and strip.dtype == np.float32
    assert strip.max() == pytest.approx(1.0)
    rows = np.flatnonzero(strip.max(axis=1) > 0.5)
    assert rows[-1] - rows[0] + 1 == pytest.approx(STRIP_INK, abs=1)
    inked = np.flatnonzero(strip.max(axis=0) > 0.5)
    gaps = np.flatnonzero(np.diff(inked) > 1)
    assert len(gaps) == 1  # still two bars
    first_bar, second_bar = inked[:gaps[0] + 1], inked[gaps[0] + 1:]
    assert layout.ink_column(first_bar.mean()) == pytest.approx(44, abs=1.5)
    assert layout.ink_column(second_bar.mean()) == pytest.approx(94, abs=1.5)


def test_a_long_strip_fits_its_width_and_a_huge_one_is_pooled_first():
    wide = bars([(10, 20), (2980, 2990)], height=60, width=3000)
    strip, layout = strip_from_ink(wide)
    inked = np.flatnonzero(strip.max(axis=0) > 0)
    assert inked[0] >= 1 and inked[-1] <= STRIP_WIDTH - 2  # the margins hold
    assert layout.ink_column(inked[-1]) == pytest.approx(2990, abs=30)
    tall = bars([(100, 160), (400, 460)], height=2000, width=600)
    strip, layout = strip_from_ink(tall)
    rows = np.flatnonzero(strip.max(axis=1) > 0.5)
    assert rows[-1] - rows[0] + 1 == pytest.approx(STRIP_INK, abs=1)
    inked = np.flatnonzero(strip.max(axis=0) > 0.5)
    assert layout.ink_column(inked[-1]) == pytest.approx(460, abs=25)


def test_a_pen_line_is_thickened_as_single_digits_are():
    thin = np.zeros((400, 400), np.float32)
    thin[20:380, 100] = 1.0  # a 1-px line, 360 px tall: 0.06 px at the strip's scale
    thin[20:380, 300] = 1.0
    strip, _ = strip_from_ink(thin)
    assert (strip > 0.5).sum(axis=1).max() >= 2  # each line at least a pixel wide after scaling


def probabilities_of(path: list[int]) -> np.ndarray:
    """A (COLUMNS, 11) array whose best class per band is `path` (0 = blank, d + 1 = digit d), padded blank."""
    p = np.full((COLUMNS, 11), 0.01, np.float32)
    for band, label in enumerate(path + [0] * (COLUMNS - len(path))):
        p[band, label] = 0.9
    return p


@pytest.mark.parametrize("path, digits", [
    ([], []),
    ([0, 2, 2, 0, 0, 8], [1, 7]),
    ([2, 2, 0, 2], [1, 1]),  # a blank between repeats keeps both ...
    ([2, 2, 2, 2], [1]),  # ... without it, one digit
    ([0, 1, 2, 3, 4], [0, 1, 2, 3]),  # neighbours of different classes need no blank
])
def test_greedy_decoding_merges_runs_and_drops_blanks(path, digits):
    found = decode(probabilities_of(path))
    assert [d.digit for d in found] == digits
    assert all(0 < d.probability <= 1 for d in found)
    centres = [d.centre for d in found]
    assert centres == sorted(centres) and all(0 <= c <= COLUMNS * BAND for c in centres)


def test_the_reader_answer_cuts_the_ink_between_digit_centres():
    own = bars([(0, 28), (34, 60), (70, 100)], width=100)
    own[28:32, 28:34] = 1.0  # a thin bridge: the first two bars touch
    pieces = _read_pieces(own, [(4, 0.99, 14.0), (2, 0.98, 47.0), (7, 0.97, 85.0)])
    assert [p[3] for p in pieces] == [(4, 0.99), (2, 0.98), (7, 0.97)]
    spans = [(left, left + piece.shape[1]) for left, _, piece, _ in pieces]
    assert spans[0][0] == 0 and spans[-1][1] == 100
    assert all(a[1] <= b[0] for a, b in zip(spans[:-1], spans[1:]))  # side by side, no overlap
    assert 28 <= spans[1][0] <= 34 and 60 <= spans[2][0] <= 70  # cut where there is least ink
    # Two digits the reader places on the same inked column: the one with no ink of its own
    # spans its neighbours' centres instead, never an empty box.
    pieces = _read_pieces(bars([(0, 40)], width=40), [(1, 0.9, 20.0), (1, 0.9, 20.0)])
    assert len(pieces) == 2 and all(piece.any() for _, _, piece, _ in pieces)


def test_segment_digits_asks_the_reader_about_wide_groups_only():
    ink = np.zeros((60, 300), np.float32)
    ink[5:55, 10:20] = 1.0  # a 1-shaped block (0.2 heights wide): left to the digit model
    ink[5:55, 100:190] = 1.0  # a wide group: 1.8 heights
    asked: list[tuple[int, int]] = []

    def reader(inks: list[np.ndarray]) -> list[list[tuple[int, float, float]]]:
        asked.extend(i.shape for i in inks)
        return [[(3, 0.95, 20.0), (8, 0.9, 70.0)] for _ in inks]

    segments = segment_digits(ink, judge=None, reader=reader)
    assert asked == [(50, 90)]
    assert [s.read_as for s in segments] == [None, (3, 0.95), (8, 0.9)]
    assert segments[1].box[0] == 100 and segments[2].box[2] == 190

    def one_digit(inks: list[np.ndarray]) -> list[list[tuple[int, float, float]]]:
        return [[(0, 0.99, 45.0)] for _ in inks]

    segments = segment_digits(ink, judge=None, reader=one_digit)  # a wide 0: left whole for the digit model
    assert [s.read_as for s in segments] == [None, None] and segments[1].box == (100, 5, 190, 55)



def test_a_narrow_group_the_digit_model_reads_surely_never_reaches_the_reader():
    ink = np.zeros((60, 400), np.float32)
    ink[5:55, 10:50] = 1.0  # 0.8 heights: read whole by the digit model with 0.97
    ink[5:55, 100:140] = 0.5  # 0.8 heights: the digit model is unsure (0.6), so the reader decides
    ink[5:55, 200:290] = 1.0  # 1.8 heights: always the reader's, never judged whole
    judged: list[tuple[int, int]] = []
    asked: list[tuple[int, int]] = []

    def judge(crops: list[np.ndarray]) -> np.ndarray:
        judged.extend(c.shape for c in crops)
        return np.array([0.97 if c.max() == 1.0 else 0.6 for c in crops])

    def reader(inks: list[np.ndarray]) -> list[list[tuple[int, float, float]]]:
        asked.extend(i.shape for i in inks)
        return [[(1, 0.9, 10.0), (7, 0.9, i.shape[1] - 10.0)] for i in inks]

    segments = segment_digits(ink, judge=judge, reader=reader)
    assert judged == [(50, 40), (50, 40)]  # the two narrow groups, in one call
    assert asked == [(50, 40), (50, 90)]  # the sure one was spared
    assert [s.read_as for s in segments] == [None, (1, 0.9), (7, 0.9), (1, 0.9), (7, 0.9)]
    assert segments[0].box == (10, 5, 50, 55)


@pytest.mark.parametrize("groups, width, asked", [(3, 50, 0), (2, 50, 1), (2, 30, 1), (3, 60, 1),
                                                  (2, 20, 1)])  # 0.4 heights: two touching 1s may be as narrow
def test_only_a_number_written_apart_keeps_a_sure_group_from_the_reader(groups, width, asked):
    ink = np.zeros((60, 400), np.float32)
    ink[5:55, 10:10 + width] = 1.0  # 1.0, 0.6, 1.2 or 0.4 heights
    for k in range(groups - 1):
        ink[5:55, 150 + 80 * k:160 + 80 * k] = 1.0  # 0.2 heights: a 1, never the reader's
    strips: list[tuple[int, int]] = []

    def reader(inks: list[np.ndarray]) -> list[list[tuple[int, float, float]]]:
        strips.extend(i.shape for i in inks)
        return [[(4, 0.99, 5.0), (1, 0.99, i.shape[1] - 5.0)] for i in inks]

    segments = segment_digits(ink, judge=lambda crops: np.full(len(crops), 0.95), reader=reader)
    # Apart: the digit model's sure reading of a group up to WHOLE_WIDTH stands; in a number of
    # fewer groups (touching digits, a 1 joined to its neighbour) the reader reads every wide group.
    assert len(strips) == asked
    assert len(segments) == groups - 1 + (2 if asked else 1)
    assert segment.APART_GROUPS == 3 and 1.0 <= segment.WHOLE_WIDTH < 1.2


@pytest.mark.parametrize("groups, reader_says, whole, pieces", [
    (3, [(4, 1.0), (1, 0.6)], 0.85, 1),  # written apart, the reader doubts its 1, the model reads a 4: one digit
    (3, [(4, 1.0), (1, 0.6)], 0.7, 2),  # ... but the model is no surer of one digit: the reader's two
    (3, [(4, 1.0), (1, 0.95)], 0.85, 2),  # the reader sure of both: two digits
    (2, [(4, 1.0), (1, 0.6)], 0.85, 2),  # too few other groups to say the number is written apart
])
def test_a_doubtful_split_in_a_number_written_apart_is_one_wide_digit(groups, reader_says, whole, pieces):
    ink = np.zeros((60, 400), np.float32)
    ink[5:55, 10:70] = 0.5  # 1.2 heights: wider than WHOLE_WIDTH, so the reader reads it
    for k in range(groups - 1):
        ink[5:55, 150 + 80 * k:160 + 80 * k] = 1.0  # 0.2 heights: 1s, never the reader's
    judged: list[tuple[int, int]] = []

    def judge(crops: list[np.ndarray]) -> np.ndarray:
        judged.extend(c.shape for c in crops)
        return np.array([whole if c.max() == 0.5 else 0.97 for c in crops])

    def reader(inks: list[np.ndarray]) -> list[list[tuple[int, float, float]]]:
        return [[(d, p, c) for (d, p), c in zip(reader_says, (15.0, 45.0))] for _ in inks]

    segments = segment_digits(ink, judge=judge, reader=reader)
    assert len(segments) == groups - 1 + pieces
    first = segments[:pieces]
    assert [s.read_as for s in first] == ([None] if pieces == 1 else [tuple(r) for r in reader_says])
    if pieces == 1:
        assert first[0].box == (10, 5, 70, 55)  # whole, for the digit model to read
    assert ((50, 60) in judged) == (groups >= segment.APART_GROUPS and min(p for _, p in reader_says) < 0.9)


@pytest.fixture(scope="module")
def mnist_digits() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from mnist_cnn.data.load import load_dataset

    if not (SHARED_DATA / "mnist").is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA} (set MNIST_CNN_TEST_DATA)")
    d = load_dataset("mnist", SHARED_DATA)
    return d.train_images, d.train_labels, d.test_images, d.test_labels


def test_training_strips_are_the_same_whatever_the_workers(mnist_digits):
    from mnist_cnn.training.reader import MAX_LENGTH, make_strips

    images, labels = mnist_digits[0][:500], mnist_digits[1][:500]
    one, targets = make_strips(images, labels, 2_500, seed=3, workers=1)
    two, targets_two = make_strips(images, labels, 2_500, seed=3, workers=2)
    assert one.shape == (2_500, STRIP_HEIGHT, STRIP_WIDTH) and one.dtype == np.uint8
    assert np.array_equal(one, two) and np.array_equal(targets, targets_two)
    lengths = (targets > 0).sum(axis=1)
    assert targets.shape == (2_500, MAX_LENGTH) and set(lengths) == {1, 2, 3, 4}
    assert all((row[:n] > 0).all() and (row[n:] == 0).all() for row, n in zip(targets, lengths))  # padded at the end
    assert one.reshape(len(one), -1).max(axis=1).min() > 200  # every strip has ink


def test_training_inks_hold_their_digits_as_the_reader_meets_them(mnist_digits):
    images, labels = mnist_digits[0][:300], mnist_digits[1][:300]
    made = strip_inks(images, labels, 200, seed=0)
    assert all(ink.dtype == np.float32 and ink.max() <= 1.0 for ink, _ in made)
    assert all(ink[(ink > 0)].min() >= 0.15 for ink, _ in made)  # nothing under find_ink's noise level
    assert all(set(digits) <= set(range(10)) and 1 <= len(digits) <= 4 for _, digits in made)
    assert TOUCHING_GAP[1] < 0  # the touching share is laid out with overlapping boxes


def test_warped_digits_keep_their_ink_and_only_warp_asks_for_them(mnist_digits):
    from mnist_cnn.data.compose import warp_digit

    images, labels = mnist_digits[0][:300], mnist_digits[1][:300]
    rng = np.random.default_rng(0)
    for digit in images[:50]:
        warped = warp_digit(digit, rng)
        assert warped.shape == (28, 28) and warped.dtype == np.uint8 and not np.array_equal(warped, digit)
        assert 0.6 < warped.sum() / digit.sum() < 1.4  # the same stroke moved, not erased or smeared
    assert np.array_equal(warp_digit(images[0], np.random.default_rng(3)), warp_digit(images[0], np.random.default_rng(3)))
    blank = np.zeros((28, 28), np.uint8)
    blank[0, 0] = 255  # a dot in the corner may be warped off the canvas: then the digit stays as it was
    assert all(warp_digit(blank, rng).max() > 0 for _ in range(20))
    plain, unwarped, warped = (strip_inks(images, labels, 40, seed=5, **kw) for kw in ({}, {"warp": 0.0}, {"warp": 1.0}))
    assert all(np.array_equal(a, b) and da == db for (a, da), (b, db) in zip(plain, unwarped))  # as before warp
    assert warped[0][1] == plain[0][1] and not np.array_equal(warped[0][0], plain[0][0])  # the same digits, new shapes
    assert all(1 <= len(d) <= 4 and ink.max() <= 1.0 and ink[ink > 0].min() >= 0.15 for ink, d in warped)
    with pytest.raises(ValueError, match="share between 0 and 1"):
        strip_inks(images, labels, 1, seed=0, warp=2.0)


def test_a_tiny_reader_trains_saves_and_loads(mnist_digits, tmp_path, caplog, monkeypatch):
    from mnist_cnn.inference.touching import TouchingReader, write_litert_twin
    from mnist_cnn.training import reader as training
    from mnist_cnn.training.reader import ReaderConfig, build_reader, train_reader

    monkeypatch.setattr(training, "MIN_STRIPS_ALIKE", 1.01)  # no int8 twin passes: the float one (tested below)

    train = mnist_digits[0][:2000], mnist_digits[1][:2000]
    test = mnist_digits[2][:500], mnist_digits[3][:500]
    out = tmp_path / "out" / "reader.keras"
    out.parent.mkdir()
    heard: list[tuple[int, float, float]] = []
    record = train_reader(train, test, out, ReaderConfig(strips=512, check_strips=64, epochs=1, batch_size=64),
                          on_epoch=lambda *epoch: heard.append(epoch))
    assert len(heard) == 1 and heard[0][0] == 1 and heard[0][1] == pytest.approx(record["final_loss"], rel=1e-5)
    assert 0 < heard[0][2] < record["seconds_training"] + record["seconds_making_strips"] + 1
    assert out.is_file() and Path(record["record_file"]) == out.parent / "reader.json"
    saved = json.loads((out.parent / "reader.json").read_text())
    assert saved["strips"] == 512 and saved["test_strips"] == 64 and 0 <= saved["test_strips_read_exactly"] <= 1
    assert saved["environment"]["cpu"] and saved["config"]["epochs"] == 1
    assert sorted(p.name for p in out.parent.iterdir()) == ["reader.json", "reader.keras", "reader.tflite"]  # no temp
    assert record["litert_file"] == str(out.with_suffix(".tflite")) and saved["litert"] == "float32"
    from mnist_cnn.core.hashing import sha256_file

    assert saved["reader_sha256"] == sha256_file(out) and saved["litert_sha256"] == sha256_file(out.with_suffix(".tflite"))
    reader = TouchingReader.load(out)
    strips = np.zeros((3, STRIP_HEIGHT, STRIP_WIDTH), np.float32)
    strips[1] = np.random.default_rng(0).random((STRIP_HEIGHT, STRIP_WIDTH))
    probabilities = reader.probabilities(strips)
    assert probabilities.shape == (3, COLUMNS, 11)
    assert np.allclose(probabilities.sum(axis=-1), 1.0, atol=1e-5)
    from mnist_cnn.inference.side_model import SideModel

    def no_conversion(self, probe):
        raise AssertionError("converted again although the LiteRT twin lies beside the reader")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(SideModel, "use_litert", no_conversion)
        reader.use_litert()  # as `serve` runs it, from the twin: the same answers with less overhead per call
    assert reader._side.on_litert
    assert np.allclose(reader.probabilities(strips), probabilities, atol=1e-4)
    assert np.allclose(reader.probabilities(strips[:1]), probabilities[:1], atol=1e-4)  # another batch size

    # open(): the twin the record vouches for answers alone, without Keras; a twin or reader changed
    # since the record was written is not trusted (read with Keras, and checked or converted for LiteRT).
    alone = TouchingReader.open(out)
    assert alone.model is None and alone._side.on_litert
    assert np.allclose(alone.probabilities(strips), probabilities, atol=1e-4)
    record_text = (out.parent / "reader.json").read_text()
    (out.parent / "reader.json").write_text(record_text.replace(saved["litert_sha256"], "0" * 64))
    assert TouchingReader.open(out).model is not None and not TouchingReader.open(out)._side.on_litert
    assert TouchingReader.open(out, litert=True)._side.on_litert  # the twin after a probe
    (out.parent / "reader.json").write_text("[not a record")
    assert TouchingReader.open(out).model is not None
    (out.parent / "reader.json").write_text(record_text)

    # --init: training goes on from these weights (a rate too small to move them keeps them),
    # and the record names the reader it started from.
    from mnist_cnn.core.hashing import sha256_file

    again = tmp_path / "again" / "reader.keras"
    again.parent.mkdir()
    record = train_reader(train, test, again, ReaderConfig(strips=128, check_strips=16, epochs=1, batch_size=64,
                                                           learning_rate=1e-12, seed=1, init=str(out)))
    assert record["init_sha256"] == sha256_file(out) and record["config"]["init"] == str(out)
    before, after = TouchingReader.load(out).model, TouchingReader.load(again).model
    for old, new in zip(before.trainable_weights, after.trainable_weights):
        assert np.allclose(old.numpy(), new.numpy(), atol=1e-6), old.path

    # A twin that is not this reader's (another reader's, or garbage) is not used: converted afresh, with a warning.
    other = build_reader(seed=5)
    for bad in ("other", "garbage"):
        if bad == "other":
            write_litert_twin(other, out)
        else:
            out.with_suffix(".tflite").write_bytes(b"not a tflite file")
        reader = TouchingReader.load(out)
        with caplog.at_level(logging.WARNING):
            reader.use_litert()
        assert reader._side.on_litert and "converting it afresh" in caplog.text, bad
        assert np.allclose(reader.probabilities(strips), probabilities, atol=1e-4), bad
        caplog.clear()



def test_a_reader_of_the_other_context_gives_the_layers_the_two_share(tmp_path):
    from mnist_cnn.training.reader import build_reader, warm_start

    old = tmp_path / "conv.keras"
    conv = build_reader(seed=3, context="conv")
    conv.save(old)
    started = warm_start(old, seed=0, context="gru")
    assert any(layer.name == "context" for layer in started.layers)  # a GRU reader ...
    shared = [layer for layer in conv.layers if layer.weights][:-1]  # every weighted layer but the last (dense)
    for given, taken in zip(shared, [layer for layer in started.layers if layer.weights]):
        for a, b in zip(given.get_weights(), taken.get_weights()):
            assert np.array_equal(a, b), given.name  # ... holding the conv reader's conv blocks and band convolution
    fresh = build_reader(seed=0, context="gru")
    assert not np.array_equal(started.get_layer("logits").get_weights()[0], conv.get_layer("logits").get_weights()[0])
    assert np.array_equal(started.get_layer("logits").get_weights()[0], fresh.get_layer("logits").get_weights()[0])
    again = warm_start(old, seed=0, context="conv")  # the same context: that reader itself, to go on training
    assert [w.shape for w in again.weights] == [w.shape for w in conv.weights]
    assert all(np.array_equal(a, b) for a, b in zip(again.get_weights(), conv.get_weights()))
    with pytest.raises(ValueError, match="not one of conv, gru"):
        build_reader(context="lstm")

    from mnist_cnn.inference.touching import TouchingReader

    reader = TouchingReader(started, "gru reader")  # the GRU is unrolled: LiteRT takes it, and answers alike
    strips = np.random.default_rng(0).random((3, STRIP_HEIGHT, STRIP_WIDTH)).astype(np.float32)
    on_keras = reader.probabilities(strips)
    reader.use_litert()
    assert reader._side.on_litert
    assert np.allclose(reader.probabilities(strips), on_keras, atol=1e-4)


def test_the_twin_is_int8_when_it_reads_the_test_strips_as_the_reader_does(mnist_digits, tmp_path, monkeypatch):
    from mnist_cnn.inference.touching import TouchingReader, litert_twin, trusted_twin
    from mnist_cnn.training import reader as training

    model = training.build_reader(seed=4, context="gru", width=8)
    out = tmp_path / "reader.keras"
    model.save(out)
    strips, _ = training.make_strips(mnist_digits[2][:300], mnist_digits[3][:300], 40, seed=2, workers=1)
    probe = strips[:8].astype(np.float32) / 255.0
    on_keras = TouchingReader(model).probabilities(probe)

    monkeypatch.setattr(training, "MIN_STRIPS_ALIKE", 0.0)  # whatever it reads: int8
    twin, about = training.write_checked_twin(model, out, strips)
    assert twin == litert_twin(out) and about["litert"] == "dynamic-range int8"
    assert 0.0 <= about["litert_strips_read_alike"] <= 1.0
    int8_size = twin.stat().st_size
    int8 = TouchingReader(None, out, training.SideModel.converted(twin, "reader")).probabilities(probe)
    assert not np.allclose(int8, on_keras, atol=1e-6) and np.abs(int8 - on_keras).max() < 0.5  # near, not equal

    monkeypatch.setattr(training, "MIN_STRIPS_ALIKE", 1.01)  # no int8 twin passes: a float one, checked on a probe
    twin, about = training.write_checked_twin(model, out, strips)
    assert about["litert"] == "float32" and "litert_strips_read_alike" not in about
    assert twin.stat().st_size > 1.3 * int8_size  # float weights: four bytes each, not one (plus the graph)
    (out.with_suffix(".json")).write_text(json.dumps({"reader_sha256": sha256_file(out), **about}))
    assert trusted_twin(out) == twin  # vouched for by the digests: read without Keras
    alone = TouchingReader.open(out)
    assert alone.model is None and np.allclose(alone.probabilities(probe), on_keras, atol=1e-4)


def test_a_wider_reader_trained_in_bfloat16_is_saved_in_float32(mnist_digits, tmp_path):
    import keras

    from mnist_cnn.core.errors import MnistCnnError
    from mnist_cnn.inference.touching import TouchingReader
    from mnist_cnn.training.reader import ReaderConfig, build_reader, in_precision, reader_shape, train_reader

    assert reader_shape(build_reader(context="gru")) == ("gru", 16)
    assert reader_shape(build_reader(width=8)) == ("conv", 8)
    assert build_reader(width=8).count_params() < build_reader().count_params() < build_reader(width=24).count_params()
    with pytest.raises(ValueError, match="number of filters from 1 to 128"):
        build_reader(width=0)
    half = in_precision(build_reader(seed=2, width=8), "bfloat16")
    assert half.get_layer("logits").compute_dtype == "float32"  # CTC gets float32 logits ...
    assert any(layer.compute_dtype == "bfloat16" for layer in half.layers if layer.weights)  # ... from bfloat16 work
    assert keras.config.dtype_policy().name == "float32"  # the global policy is put back
    with pytest.raises(ValueError, match="not one of float32, bfloat16"):
        in_precision(half, "float16")

    train = mnist_digits[0][:1000], mnist_digits[1][:1000]
    test = mnist_digits[2][:200], mnist_digits[3][:200]
    out = tmp_path / "reader.keras"
    record = train_reader(train, test, out, ReaderConfig(strips=128, check_strips=16, epochs=1, width=8,
                                                         context="gru", precision="bfloat16"))
    saved = TouchingReader.load(out).model
    assert reader_shape(saved) == ("gru", 8) and record["config"]["precision"] == "bfloat16"
    assert all(layer.compute_dtype == "float32" for layer in saved.layers)  # read and converted as every reader
    assert record["litert_file"] is not None  # its LiteRT twin read a probe as it does
    with pytest.raises(MnistCnnError, match="width 8, not 16; pass --width 8"):
        train_reader(train, test, tmp_path / "again.keras", ReaderConfig(strips=64, check_strips=16, epochs=1,
                                                                         init=str(out), context="gru"))


def test_fresh_strips_every_epoch_are_new_strips(mnist_digits, tmp_path, monkeypatch):
    from mnist_cnn.training import reader as training

    made: list[int] = []
    real = training.make_strips

    warps: list[float] = []

    def counting(images, labels, count, seed, workers=None, warp=0.0):
        made.append(seed)
        warps.append(warp)
        return real(images, labels, count, seed, workers=1, warp=warp)

    monkeypatch.setattr(training, "make_strips", counting)
    train = mnist_digits[0][:1000], mnist_digits[1][:1000]
    test = mnist_digits[2][:200], mnist_digits[3][:200]
    record = training.train_reader(train, test, tmp_path / "reader.keras",
                                   training.ReaderConfig(strips=128, check_strips=16, epochs=3, fresh=True,
                                                         warp=0.5))
    training_seeds = [made[0], *made[2:]]  # made[1]: the test strips
    assert len(made) == 4 and len(set(training_seeds)) == 3  # one new set of strips per epoch
    assert warps == [0.5, 0.0, 0.5, 0.5] and record["config"]["warp"] == 0.5  # test strips are never warped
    assert record["strips"] == 3 * 128 and record["config"]["fresh"] is True
    made.clear()
    record = training.train_reader(train, test, tmp_path / "reader.keras",
                                   training.ReaderConfig(strips=128, check_strips=16, epochs=2, fresh=False))
    assert len(made) == 2 and record["strips"] == 128  # the same strips both epochs (and the test strips)


def test_a_classifier_is_refused_as_a_reader(trained_model):
    from mnist_cnn.inference.touching import TouchingReader

    with pytest.raises(ModelFileError, match="not a touching-digit reader"):
        TouchingReader.load(trained_model)


@pytest.mark.parametrize("out, words", [("reader.h5", "must end in .keras"),
                                        ("missing/reader.keras", "does not exist")])
def test_train_reader_refuses_bad_outputs_in_one_line(tmp_path, monkeypatch, capsys, out, words):
    monkeypatch.chdir(tmp_path)
    assert main(["train-reader", "-o", out, "--data-dir", str(tmp_path)]) != 0
    err = capsys.readouterr().err.strip()
    assert words in err and len(err.splitlines()) == 1, err


@pytest.mark.parametrize("flags, words", [(["--init", "missing.keras"], "--init missing.keras does not exist"),
                                          (["--learning-rate", "0"], "above 0 and at most 1"),
                                          (["--learning-rate", "nan"], "above 0 and at most 1"),
                                          (["--learning-rate", "fast"], "is not a number"),
                                          (["--warp", "1.5"], "a share from 0 to 1"),
                                          (["--warp", "nan"], "a share from 0 to 1"),
                                          (["--warp", "-0.1"], "a share from 0 to 1"),
                                          (["--width", "0"], "a number of filters from 1 to 128"),
                                          (["--width", "100000"], "a number of filters from 1 to 128"),
                                          (["--width", "wide"], "is not an integer"),
                                          (["--precision", "float16"], "invalid choice: 'float16'")])
def test_train_reader_refuses_bad_flags_in_one_line(tmp_path, monkeypatch, capsys, flags, words):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) if flags[0] in ("--learning-rate", "--warp", "--width", "--precision") else contextlib.nullcontext():
        assert main(["train-reader", "-o", "reader.keras", *flags, "--data-dir", str(tmp_path)]) != 0
    err = capsys.readouterr().err.strip()
    assert words in err and len(err.splitlines()) == 1, err
    assert not (tmp_path / "reader.keras").exists()


def test_train_reader_prints_each_epoch_as_it_ends(mnist_digits, tmp_path, monkeypatch, capsys):
    from mnist_cnn.training import reader as training

    def fake(train, test, out, config, on_epoch=None):  # the training itself is tested above
        for done in range(1, config.epochs + 1):
            on_epoch(done, 0.5 / done, 10.0 * done)
        return {"test_strips_read_exactly": 0.5, "test_strips": 10, "seconds_training": 30.0,
                "record_file": str(out.with_suffix(".json"))}

    monkeypatch.setattr(training, "train_reader", fake)
    out = tmp_path / "reader.keras"
    assert main(["train-reader", "-o", str(out), "--epochs", "3", "--data-dir", str(SHARED_DATA)]) == 0
    printed = capsys.readouterr().out
    assert "epoch 1/3: loss 0.5000, 10 s so far, about 20 s to go" in printed
    assert "epoch 3/3: loss 0.1667, 30 s so far, about 0 s to go" in printed


def test_a_reader_beside_a_model_is_found_and_a_damaged_shipped_one_is_refused(trained_model, tmp_path):
    import shutil

    from mnist_cnn.inference.predict import Predictor

    folder = tmp_path / "run"
    shutil.copytree(Path(trained_model).parent, folder)
    predictor = Predictor.from_path(folder / "model.keras")
    assert predictor.reader_file is None and predictor.touching_reader() is None
    (folder / "reader.keras").write_bytes(b"not a zip")
    (folder / "reader.keras.sha256").write_text("0" * 64 + "  reader.keras\n")
    predictor = Predictor.from_path(folder / "model.keras")
    assert predictor.reader_file == folder / "reader.keras"
    with pytest.raises(ModelFileError, match="SHA-256"):
        predictor.touching_reader()


def test_the_shipped_reader_reads_touching_numbers_of_test_digits(mnist_digits):
    """The shipped `mnist` reads numbers of 2-4 touching MNIST *test* digits, which its reader never saw."""
    from mnist_cnn.data.compose import random_numbers
    from mnist_cnn.inference.numbers import read_number
    from mnist_cnn.inference.predict import Predictor
    from mnist_cnn.inference.shipped import resolve_model

    predictor = Predictor.from_path(resolve_model("mnist"))
    assert predictor.reader_file is not None and predictor.touching_reader() is not None
    numbers = [n for n in random_numbers(mnist_digits[2], mnist_digits[3], 60, seed=5, lengths=(2, 4),
                                         gap=TOUCHING_GAP) if n.touching][:40]
    readings = [read_number(predictor, n.image) for n in numbers]
    right = sum(r.text == "".join(map(str, n.labels)) for r, n in zip(readings, numbers))
    assert right >= 32, right  # 80%: without the reader 30% of such numbers are read (benchmarks/README.md)
    assert any(d.box[2] > 0 for r in readings for d in r.digits)
    assert segment.READER_CANDIDATE < segment.WHOLE_WIDTH <= segment.SPLIT_CANDIDATE


def test_serve_workers_are_told_where_the_reader_is():
    pytest.importorskip("orjson", reason="the [serve] extra is not installed")
    from mnist_cnn.inference.predict import Predictor
    from mnist_cnn.inference.shipped import resolve_model
    from mnist_cnn.serving.workers import _build, spec_of

    predictor = Predictor.from_path(resolve_model("mnist"))
    predictor.serve_with("auto")  # as `serve` does: the classifier on LiteRT, so the reader too
    spec = spec_of(predictor)
    assert spec is not None and spec.reader_file == predictor.reader_file is not None
    worker = _build(spec)  # a worker reads touching digits as the server does
    assert worker.reader_file == spec.reader_file and worker.reader_on_litert and predictor.reader_on_litert


def test_ship_reader_puts_a_reader_beside_a_model_with_its_digest_and_twin(mnist_digits, tmp_path, monkeypatch,
                                                                          capsys):
    from conftest import load_benchmark_script

    from mnist_cnn.inference.touching import TouchingReader, trusted_twin
    from mnist_cnn.training.reader import ReaderConfig, train_reader

    trained = tmp_path / "build" / "reader.keras"
    trained.parent.mkdir()
    train_reader((mnist_digits[0][:1000], mnist_digits[1][:1000]), (mnist_digits[2][:200], mnist_digits[3][:200]),
                 trained, ReaderConfig(strips=64, check_strips=16, epochs=1, width=8))
    ship = load_benchmark_script("ship_reader", "tools")
    monkeypatch.setattr(ship, "PRETRAINED", tmp_path / "pretrained")
    with pytest.raises(SystemExit):  # no such shipped model
        ship.main([str(trained), "--data-dir", str(SHARED_DATA)])
    assert "no shipped model" in capsys.readouterr().err
    folder = tmp_path / "pretrained" / "mnist"
    folder.mkdir(parents=True)
    assert ship.main([str(trained), "--data-dir", str(SHARED_DATA)]) == 0
    shipped = folder / "reader.keras"
    record = json.loads((folder / "reader.json").read_text())
    assert (folder / "reader.keras.sha256").read_text().split() == [sha256_file(shipped), "reader.keras"]
    assert record["reader_sha256"] == sha256_file(shipped) and record["config"]["width"] == 8
    assert record["litert"] in ("dynamic-range int8", "float32") and trusted_twin(shipped) == folder / "reader.tflite"
    assert TouchingReader.open(shipped).model is None  # read from the vouched-for twin
    capsys.readouterr()
    with pytest.raises(SystemExit):  # not a reader.keras: one line, and the shipped one stays
        ship.main([str(folder / "reader.tflite"), "--data-dir", str(SHARED_DATA)])
    assert "is not a .keras file" in capsys.readouterr().err
    assert sha256_file(shipped) == record["reader_sha256"]
    for damaged in ("[not json", "[]", '{"config": {}}', '{"config": {"seed": "x"}, "test_strips": 16}',
                    '{"config": {"seed": 0}, "test_strips": 1e12}', '{"config": {"seed": 0}, "test_strips": 0}'):
        trained.with_suffix(".json").write_text(damaged)
        with pytest.raises(SystemExit):  # a record that is not train-reader's: one line, nothing copied
            ship.main([str(trained), "--data-dir", str(SHARED_DATA)])
        assert "is not the record `train-reader` wrote" in capsys.readouterr().err, damaged
    assert sha256_file(shipped) == record["reader_sha256"]
    (trained.with_suffix(".json")).unlink()
    with pytest.raises(SystemExit):  # a reader without the record train-reader wrote beside it
        ship.main([str(trained), "--data-dir", str(SHARED_DATA)])
    assert "needs the reader and the reader.json" in capsys.readouterr().err
