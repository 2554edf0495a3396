"""Hostile inputs at every boundary: crafted files, property-based fuzzing of the readers, bad flags.

Each case must end in the package's one-line error (MnistCnnError, or exit 2 from the CLI),
never in a traceback, and must not leave anything half-written.
"""

from __future__ import annotations

import gzip
import io
import json
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from conftest import REPO, idx_bytes, make_tiny_arrays

from mnist_cnn.cli.main import main
from mnist_cnn.core.errors import ConfigError, DatasetFormatError, ImageError, MnistCnnError
from mnist_cnn.data.custom import load_custom, read_npz
from mnist_cnn.data.idx import IDX_NDIM, parse_idx
from mnist_cnn.data.imagefile import decode_image
from mnist_cnn.data.registry import DATASETS, DatasetSpec
from mnist_cnn.inference.preprocess import preprocess
from mnist_cnn.runs.config import load_config_file

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def run_cli(argv) -> int:
    try:
        return main(argv)
    except SystemExit as exit_info:
        return int(exit_info.code)


def one_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err and err.count("\n") == 0 and "Traceback" not in err, err
    return err


# ---- readers under fuzzing: either a result or the package's own error ---------------------------

@FUZZ
@given(st.binary(max_size=2000), st.sampled_from(["images", "labels"]))
def test_idx_parser_never_crashes(payload, kind):
    try:
        array = parse_idx(payload, kind)
    except MnistCnnError:
        return
    assert array.dtype == np.uint8 and array.ndim == IDX_NDIM[kind]


@FUZZ
@given(st.binary(max_size=4000))
def test_image_decoder_never_crashes(blob):
    try:
        image = preprocess(blob)
    except ImageError:
        return
    assert image.shape == (28, 28) and np.isfinite(image).all()


@FUZZ
@given(st.data())
def test_truncated_or_flipped_png_never_crashes(draw):
    buffer = io.BytesIO()
    Image.fromarray(np.tile(np.arange(40, dtype=np.uint8) * 6, (40, 1))).save(buffer, format="PNG")
    blob = bytearray(buffer.getvalue())
    cut = draw.draw(st.integers(0, len(blob)))
    for index in draw.draw(st.lists(st.integers(0, len(blob) - 1), max_size=4)):
        blob[index] ^= 0xFF
    try:
        preprocess(bytes(blob[:cut]))
    except ImageError:
        pass


@FUZZ
@given(st.binary(max_size=3000))
def test_npz_reader_never_crashes(tmp_path_factory, blob):
    path = tmp_path_factory.mktemp("npz") / "x.npz"
    path.write_bytes(blob)
    with pytest.raises(MnistCnnError):
        read_npz(path, ("x_train",))


@FUZZ
@given(st.recursive(st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
                    max_leaves=30))
def test_config_file_never_crashes(tmp_path_factory, document):
    path = tmp_path_factory.mktemp("cfg") / "c.json"
    path.write_text(json.dumps(document))
    try:
        values = load_config_file(path)
    except ConfigError:
        return
    assert isinstance(values, dict)


# ---- crafted files ----------------------------------------------------------------------------------

def npz_bytes(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def good_npz_arrays() -> dict:
    (x_train, y_train), (x_test, y_test) = make_tiny_arrays()
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


@pytest.mark.parametrize("mutate, message", [
    (lambda a: a.update(x_train=np.where(np.arange(28)[None, None, :] == 3, np.nan, a["x_train"] / 255.0)),
     "NaN or infinite pixel"),
    (lambda a: a.update(x_train=np.full((120, 28, 28), np.nan)), "NaN or infinite pixel"),
    (lambda a: a.update(x_train=a["x_train"].astype(np.complex64)), "dtype complex64"),
    (lambda a: a.update(y_train=a["y_train"].astype(np.float32)), "integer class ids"),
])
def test_npz_with_bad_pixels_is_refused(tmp_path, mutate, message):
    arrays = good_npz_arrays()
    mutate(arrays)
    path = tmp_path / "bad.npz"
    path.write_bytes(npz_bytes(**arrays))
    with pytest.raises(DatasetFormatError, match=message):
        load_custom(path)


def test_npz_with_a_bad_crc_or_a_huge_header_is_refused(tmp_path):
    blob = bytearray(npz_bytes(**good_npz_arrays()))
    middle = blob.index(b"x_test.npy") + 400  # inside x_test's data: the CRC no longer matches
    blob[middle] ^= 0xFF
    (tmp_path / "crc.npz").write_bytes(bytes(blob))
    with pytest.raises(DatasetFormatError, match="cannot read .*crc.npz"):
        load_custom(tmp_path / "crc.npz")

    # A 1 KB member whose header claims (10**7, 28, 28) float64: 73 GiB, refused before allocation.
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False,
                                                  "shape": (10_000_000, 28, 28)})
    with zipfile.ZipFile(tmp_path / "huge.npz", "w") as archive:
        archive.writestr("x_train.npy", b"\x93NUMPY\x01\x00" + header.getvalue()[8:] + b"\x00" * 1000)
    with pytest.raises(DatasetFormatError, match="declares arrays of over"):
        read_npz(tmp_path / "huge.npz", ("x_train",))


def test_classes_file_that_is_not_utf8(tmp_path):
    folder = tmp_path / "idx"
    folder.mkdir()
    (train_x, train_y), (test_x, test_y) = make_tiny_arrays()
    for name, array in [("train-images-idx3-ubyte", train_x), ("train-labels-idx1-ubyte", train_y),
                        ("t10k-images-idx3-ubyte", test_x), ("t10k-labels-idx1-ubyte", test_y)]:
        (folder / f"{name}.gz").write_bytes(gzip.compress(idx_bytes(array)))
    (folder / "classes.txt").write_bytes("\n".join("abcdefghij").encode("utf-16"))
    with pytest.raises(DatasetFormatError, match="classes.txt is not UTF-8"):
        load_custom(folder)


def test_float_tiff_with_nan_and_lab_tiff(tmp_path):
    values = np.ones((40, 40), np.float32)
    values[10:30, 18:22] = 0
    values[0, 0] = np.nan
    buffer = io.BytesIO()
    Image.fromarray(values, mode="F").save(buffer, format="TIFF")
    with pytest.raises(ImageError, match="NaN or infinite"):
        preprocess(buffer.getvalue())
    lab = np.full((60, 60, 3), 128, np.uint8)
    lab[..., 0] = 250
    lab[15:45, 28:33, 0] = 10  # a dark vertical bar: a "1"
    buffer = io.BytesIO()
    Image.fromarray(lab, mode="LAB").save(buffer, format="TIFF")
    assert preprocess(buffer.getvalue()).max() == pytest.approx(1.0)


def test_huge_jpeg_header_is_drafted_not_refused():
    """A JPEG claiming 16000x12500 (200 MP, over Pillow's own bomb limit) is decoded at 1/8 scale."""
    buffer = io.BytesIO()
    Image.new("L", (64, 48), 255).save(buffer, format="JPEG")
    blob = bytearray(buffer.getvalue())
    sof = blob.index(b"\xff\xc0")  # baseline frame header: length(2) precision(1) height(2) width(2)
    blob[sof + 5: sof + 9] = (12500).to_bytes(2, "big") + (16000).to_bytes(2, "big")
    image = decode_image(bytes(blob))  # Pillow fills the missing data; what matters is the size
    assert image.size == (2000, 1563)  # 1/8 of 16000x12500: under the 25 MP cap


# ---- the CLI at its boundary --------------------------------------------------------------------------

@pytest.mark.parametrize("argv, message", [
    (["train", "--seed", "4294967296"], "invalid seed"),
    (["train", "--learning-rate", "nan"], "not a finite number"),
    (["train", "--resume", "."], "not a run folder"),
    (["serve", "model.keras", "--max-upload-mb", "nan"], "--max-upload-mb nan must be"),
    (["serve", "model.keras", "--max-upload-mb", "inf"], "--max-upload-mb inf must be"),
    (["data", "fetch", "mnist", "--mirror", "notaurl"], "notaurl"),
    (["data", "fetch", "mnist", "--mirror", "http://[::1"], "http://[::1"),
])
def test_bad_flags_are_one_line(capsys, isolated_env, argv, message):
    assert run_cli(argv) == 2
    assert message in one_line(capsys)
    assert not (isolated_env / "runs").exists()


@pytest.mark.parametrize("content, message", [
    ("[]", "not an object"),
    (b"\xff\xfe\xfd", "damaged"),
    ("[" * 50_000 + "]" * 50_000, "damaged"),
])
def test_resume_of_a_damaged_run_is_one_line(capsys, tmp_path, content, message):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_bytes(content if isinstance(content, bytes) else content.encode())
    assert run_cli(["train", "--resume", str(run)]) == 2
    assert message in one_line(capsys)


@pytest.mark.parametrize("content", [b"\xff\xfe not utf-8", b"[" * 50_000, b"epochs = nan", b"epochs = 1e400"])
def test_hostile_config_files(capsys, tmp_path, content):
    path = tmp_path / "c.toml"
    path.write_bytes(content)
    assert run_cli(["train", "--config", str(path)]) == 2
    assert "config" in one_line(capsys)


# ---- mirrors that send more than the file can be ----------------------------------------------------

@pytest.mark.parametrize("mode", ["bloated", "bloated-nolength"])
def test_mirror_sending_too_much_is_cut_off_and_the_next_one_used(tmp_path, monkeypatch, http_mirror, mode):
    import dataclasses

    from conftest import write_idx_folder

    from mnist_cnn.data import fetch

    served = tmp_path / "served"
    digests = write_idx_folder(served / "tiny", make_tiny_arrays())
    sizes = {name: len(gzip.decompress((served / "tiny" / f"{name}.gz").read_bytes())) for name in digests}
    spec = DatasetSpec(name="tiny", title="tiny", class_names=tuple("abcdefghij"),
                            files=dict(DATASETS["mnist"].files), sha256=digests, sizes=sizes)
    monkeypatch.setitem(DATASETS, "tiny", spec)
    server = http_mirror(served)
    results = fetch.fetch_dataset(spec, mirrors=[server.url(mode), server.url("ok")], folder=tmp_path / "cache")
    assert all(r.url and r.url.startswith(server.url("ok")) for r in results)
    assert len(list((tmp_path / "cache").iterdir())) == 5  # four files and the lock: no leftover
    with pytest.raises(MnistCnnError, match="more than the file can be"):
        fetch.fetch_dataset(dataclasses.replace(spec), mirrors=[server.url(mode)], folder=tmp_path / "other")


# ---- crafted models --------------------------------------------------------------------------------

def test_zip_bomb_model_is_refused_unread(tmp_path):
    from mnist_cnn.core.errors import ModelFileError
    from mnist_cnn.inference.keras_file import MAX_MODEL_UNPACKED_BYTES, load_saved_model

    path = tmp_path / "bomb.keras"
    chunk = b"\0" * (1 << 20)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        with archive.open("model.weights.h5", "w", force_zip64=True) as member:
            for _ in range(MAX_MODEL_UNPACKED_BYTES // len(chunk) + 1):
                member.write(chunk)
    assert path.stat().st_size < 5 * 1024 * 1024
    with pytest.raises(ModelFileError, match="would unpack to"):
        load_saved_model(path)


def crafted_models():
    import keras

    inputs = keras.Input((28, 28, 1))
    flat = keras.layers.Flatten()(inputs)
    two_heads = keras.Model(inputs, [keras.layers.Dense(10, activation="softmax")(flat),
                                     keras.layers.Dense(10, activation="softmax")(flat)])
    one_output = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(1)])
    logits = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
    nan_weights = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(),
                                    keras.layers.Dense(10, activation="softmax")])
    kernel, bias = nan_weights.layers[-1].get_weights()
    nan_weights.layers[-1].set_weights([np.full_like(kernel, np.nan), bias])
    wrong_input = keras.Sequential([keras.Input((32, 32, 3)), keras.layers.Flatten(),
                                    keras.layers.Dense(10, activation="softmax")])
    return {"two outputs": (two_heads, "output"), "one output": (one_output, "output"),
            "logits, no softmax": (logits, "does not output class probabilities"),
            "NaN weights": (nan_weights, "NaN or infinite weights"), "wrong input": (wrong_input, "input")}


def test_crafted_models_are_refused_at_load(tmp_path, capsys):
    from mnist_cnn.core.errors import ModelFileError
    from mnist_cnn.inference.keras_file import load_saved_model

    for name, (model, message) in crafted_models().items():
        path = tmp_path / f"{name.replace(' ', '-').replace(',', '')}.keras"
        model.save(path)
        with pytest.raises(ModelFileError, match=message):
            load_saved_model(path)
        for argv in (["predict", str(path), str(REPO / "notebooks" / "my_digit.png")], ["evaluate", str(path), "--out", str(tmp_path / "eval")]):
            assert run_cli(argv) == 2, (name, argv)
            assert message.split()[0] in one_line(capsys)
    assert not (tmp_path / "eval").exists()  # refused before any output folder was made
