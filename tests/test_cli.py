"""The CLI in-process: help for every command, and clean one-line errors for bad input."""

from __future__ import annotations

import pytest

from mnist_cnn.cli.main import build_parser, main

COMMANDS = ["train", "evaluate", "models", "data", "explain", "predict", "serve", "export", "tune", "calibrate", "train-reader"]
DATA_ACTIONS = ["list", "fetch", "verify", "info", "samples"]


def test_every_command_is_listed_and_has_help_with_an_example(capsys):
    subparsers = next(a for a in build_parser()._actions if a.dest == "command")
    assert sorted(subparsers.choices) == sorted(COMMANDS)
    for command in COMMANDS:
        with pytest.raises(SystemExit) as exit_info:
            main([command, "--help"])
        assert exit_info.value.code == 0
        out = capsys.readouterr().out
        assert "example:" in out and f"mnist-cnn {command}" in out


def test_every_data_action_has_help_with_an_example(capsys):
    data_parser = next(a for a in build_parser()._actions if a.dest == "command").choices["data"]
    actions = next(a for a in data_parser._actions if a.dest == "data_command")
    assert sorted(actions.choices) == sorted(DATA_ACTIONS)
    for action in DATA_ACTIONS:
        with pytest.raises(SystemExit) as exit_info:
            main(["data", action, "--help"])
        assert exit_info.value.code == 0
        out = capsys.readouterr().out
        assert "example:" in out and f"mnist-cnn data {action}" in out


def test_every_train_config_field_has_a_flag(capsys):
    """Flags come from TrainConfig's fields: each one, with its comment as help; booleans both ways."""
    from dataclasses import fields

    from mnist_cnn.runs.config import TrainConfig, field_help

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    helps = field_help()
    for f in fields(TrainConfig):
        name = "--" + f.name.replace("_", "-")
        assert name in out, name
        if f.name != "recipe":
            assert helps[f.name].split()[0] in out, f.name
        if f.type == "bool":
            assert f"--no-{f.name.replace('_', '-')}" in out


def test_flags_override_recipe_and_config_file(tmp_path):
    from mnist_cnn.cli.train import config_overrides
    from mnist_cnn.training.recipes import resolve_config

    path = tmp_path / "c.toml"
    path.write_text('recipe = "strong"\nepochs = 5\naug_erasing = 0.5\n')
    args = build_parser().parse_args(["train", "--config", str(path), "--dataset", "fashion-mnist",
                                      "--no-augment", "--epochs", "7"])
    config = resolve_config(args.recipe, args.config, config_overrides(args))
    # recipe (from the file's key, per-dataset part included) -> file -> flags
    assert config.model == "strong" and config.aug_flip is True and config.recipe == "strong"
    assert config.aug_erasing == 0.5 and config.epochs == 7 and config.augment is False


def test_train_and_evaluate_take_mirror_and_offline(capsys):
    for command in ("train", "evaluate"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        out = capsys.readouterr().out
        assert "--mirror URL" in out and "--offline" in out and "NAME|PATH" in out


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0, err
    assert "Traceback" not in err
    return err


def run_cli(argv) -> int:
    """main()'s return code, or the code argparse exits with for a usage error."""
    try:
        return main(argv)
    except SystemExit as exit_info:
        return int(exit_info.code)


@pytest.mark.parametrize("argv, message", [
    (["train", "--epochs", "0"], "invalid epochs = 0"),
    (["train", "--val-fraction", "1.5"], "invalid val_fraction = 1.5"),
    (["train", "--labels", "binary"], "argument --labels: invalid choice: 'binary'"),
    (["train", "--learning-rate", "nan"], "'nan' is not a finite number"),
    (["train", "--aug-shift", "inf"], "'inf' is not a finite number"),
    (["train", "--seed", "4294967296"], "invalid seed = 4294967296"),
    (["train", "--no-augment", "--augment", "--aug-zoom", "0.7"], "invalid aug_zoom = 0.7"),
    (["train", "--dataset", "cifar"], "unknown dataset 'cifar'"),
    (["train", "--epochs", "many"], "invalid int value"),
    (["train", "--no-such-flag"], "unrecognized arguments"),
    (["frobnicate"], "invalid choice"),
])
def test_bad_flags_exit_2_with_one_line(capsys, argv, message):
    assert run_cli(argv) == 2
    assert message in one_line_error(capsys)


def test_unknown_model_fails_before_creating_a_run(capsys, tiny_dataset, isolated_env):
    assert main(["train", "--dataset", "tiny", "--data-dir", str(tiny_dataset), "--model", "resnet152"]) == 2
    assert "unknown model 'resnet152'" in one_line_error(capsys)
    assert not (isolated_env / "runs").exists()


def test_missing_data_is_one_line_with_the_fix(capsys, isolated_env):
    # No local copy and no mirror (the test fixture empties the registry's): the fetch fails cleanly.
    assert main(["train", "--data-dir", str(isolated_env / "empty")]) == 2
    err = one_line_error(capsys)
    assert "could not download mnist" in err and "--mirror URL" in err and "--data-dir" in err
    assert main(["train", "--data-dir", str(isolated_env / "empty"), "--offline"]) == 2
    err = one_line_error(capsys)
    assert "not found" in err and "offline mode is on" in err and "--data-dir" in err


def test_data_list_verify_and_custom_paths(capsys, tiny_dataset):
    assert main(["data", "list", "--data-dir", str(tiny_dataset)]) == 0
    out = capsys.readouterr().out
    assert "tiny            verified" in out and "(--data-dir)" in out
    assert "mnist           not found" in out and "mnist-cnn data fetch mnist" in out
    labels = tiny_dataset / "tiny" / "t10k-labels-idx1-ubyte.gz"
    labels.write_bytes(labels.read_bytes()[:-8])
    assert main(["data", "list", "--data-dir", str(tiny_dataset)]) == 0
    assert "CORRUPT (t10k-labels-idx1-ubyte)" in capsys.readouterr().out
    assert main(["data", "verify", "tiny", "--data-dir", str(tiny_dataset)]) == 2
    assert "BAD  " in capsys.readouterr().out
    assert main(["data", "verify", "./some/folder"]) == 2
    assert "is a path" in one_line_error(capsys)
    assert main(["data", "verify", "cifar"]) == 2
    assert "unknown dataset 'cifar'" in one_line_error(capsys)


def test_unknown_config_key(capsys, tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("epochs = 2\nlr = 0.1\n")
    assert main(["train", "--config", str(path)]) == 2
    assert "unknown config key(s) lr" in one_line_error(capsys)


@pytest.mark.parametrize("content, message", [(b"PK\x03\x04garbage", "cannot load"), (None, "does not exist")])
def test_evaluate_rejects_non_keras_files(capsys, tmp_path, content, message):
    path = tmp_path / "model.keras"
    if content is not None:
        path.write_bytes(content)
    assert main(["evaluate", str(path)]) == 2
    assert message in one_line_error(capsys)


def test_resume_of_a_non_run_folder(capsys, tmp_path):
    assert main(["train", "--resume", str(tmp_path)]) == 2
    assert "not a run folder" in one_line_error(capsys)


def test_models_lists_parameter_counts(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "keras-example" in out and "34,826" in out and "compact" in out and "57,578" in out
    # The recipe table names the model each recipe trains: `default` the package default.
    assert any(line.split()[:2] == ["default", "compact"] for line in out.splitlines())


def test_the_command_ends_at_once_after_tensorflow_with_all_its_output_and_exit_code(tmp_path):
    """`entry` skips TensorFlow's slow teardown: the answer, a warning-free stderr and the exit code must
    still all reach a pipe, for success and for an error raised after TensorFlow loaded."""
    import json
    import subprocess
    import sys

    import numpy as np
    from PIL import Image

    digit = np.zeros((28, 28), np.uint8)
    digit[4:24, 12:16] = 255
    Image.fromarray(digit).save(tmp_path / "one.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    command = [sys.executable, "-m", "mnist_cnn", "predict", "mnist"]
    ok = subprocess.run([*command, str(tmp_path / "one.png"), "--json"], capture_output=True, text=True, timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["predictions"][0]["predicted"] == "1"
    bad = subprocess.run([*command, str(tmp_path / "broken.png")], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.count("\n") == 1 and "broken.png" in bad.stderr


def test_the_quick_exit_still_runs_the_exit_clean_ups(tmp_path):
    """A served model's converted file is removed by an exit clean-up; skipping TensorFlow's
    teardown must not skip those (the temporary folders were left behind)."""
    import subprocess
    import sys

    marker = tmp_path / "cleaned"
    script = (f"import atexit, pathlib\n"
              f"from mnist_cnn.cli import main as cli\n"
              f"from mnist_cnn.core.system import quiet_tensorflow\n"
              f"quiet_tensorflow()\n"
              f"atexit.register(pathlib.Path({str(marker)!r}).write_text, 'yes')\n"
              f"cli.main = lambda argv=None: 3\n"
              f"cli.entry()\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 3, done.stderr
    assert marker.read_text() == "yes"


@pytest.mark.parametrize(("given", "expected"), [(None, "1"), ("0", "0")])
def test_importing_the_package_asks_tensorflow_for_onednn_unless_the_user_chose(given, expected):
    """TensorFlow picks its oneDNN kernels by itself only on CPUs with AVX-512 VNNI/BF16 or AMX; on
    an AVX2-only one its own kernels made `fast`'s training 1.37x longer. It reads the switch once, at its
    import, so the package sets it on import (never over the user's own setting), and TensorFlow,
    imported later, must then run oneDNN's kernels (or not, as the user said)."""
    import os
    import platform
    import subprocess
    import sys

    if platform.machine().lower() not in ("x86_64", "amd64"):
        expected = given  # elsewhere the package leaves TensorFlow's choice alone
    env = {key: value for key, value in os.environ.items() if key != "TF_ENABLE_ONEDNN_OPTS"}
    if given is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = given
    code = ("import os, mnist_cnn\n"
            "print(os.environ.get('TF_ENABLE_ONEDNN_OPTS'))\n"
            "from mnist_cnn.core.system import quiet_tensorflow\n"
            "quiet_tensorflow()\n"
            "from mnist_cnn.runs.run import environment\n"  # what run records say TensorFlow decided
            "print(environment()['onednn'])\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120,
                          check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    setting, enabled = done.stdout.split()
    assert setting == str(expected)
    if expected is not None:
        assert enabled == str(expected == "1")
    if given is None:  # TensorFlow imported first: too late for the switch, and the record must say so
        check = ("from tensorflow.python.util import _pywrap_util_port as port\n"
                 "print(port.IsMklEnabled())\n")  # private: what TensorFlow itself decided
        tf_first = subprocess.run([sys.executable, "-c", "import tensorflow\n" + code + check], capture_output=True,
                                  text=True, env=env, timeout=120, check=False)
        assert tf_first.returncode == 0, tf_first.stderr[-2000:]
        setting, recorded, decided = tf_first.stdout.split()
        assert setting == str(expected) and recorded == decided  # on an AVX2-only CPU: "1", False, False


def test_the_cpu_features_say_what_the_model_name_does_not(monkeypatch):
    from mnist_cnn.core import system

    info = ["processor\t: 0", "model name\t: AMD EPYC", "flags\t\t: fpu sse2 avx fma avx2 avx512f avx512_vnni"]
    monkeypatch.setattr(system, "_cpuinfo", lambda: info)
    assert system.cpu_features() == ["avx2", "fma", "avx512f", "avx512_vnni"] and system.cpu_model() == "AMD EPYC"
    monkeypatch.setattr(system, "_cpuinfo", lambda: [*info[:2], "flags\t\t: avx2 fma amx_tile amx_bf16 amx_int8"])
    assert system.cpu_features() == ["avx2", "fma", "amx_tile", "amx_bf16", "amx_int8"]
    assert system.cpu_model() == "AMD EPYC (AMX)"
    monkeypatch.setattr(system, "_cpuinfo", lambda: None)  # no /proc/cpuinfo (not Linux)
    assert system.cpu_features() is None


def test_the_command_line_imports_keras_without_its_notebook_and_pyplot_extras():
    """Keras imports IPython and matplotlib.pyplot when installed (half a second of a command's start);
    the command line hides them while Keras imports, and they import normally afterwards. A library
    user's process, which did not ask, gets Keras as usual."""
    import subprocess
    import sys

    pytest.importorskip("IPython")  # installed with the notebook tools ([dev]); matplotlib always is
    probe = ("import sys\n"
             "from mnist_cnn.core import system\n"
             "{setup}"
             "system.quiet_tensorflow()\n"
             "print(sorted(n for n in system.KERAS_EXTRAS if n in sys.modules))\n"
             "import IPython, matplotlib.pyplot\n"  # the user may still import them
             "print(sorted(n for n in system.KERAS_EXTRAS if sys.modules.get(n) is not None))\n")
    outputs = {}
    for name, setup in (("command", "system.skip_keras_extras()\n"), ("library", "")):
        done = subprocess.run([sys.executable, "-c", probe.format(setup=setup)], capture_output=True, text=True,
                              timeout=120, check=False)
        assert done.returncode == 0, done.stderr[-2000:]
        outputs[name] = done.stdout.split("\n")[:2]
    assert outputs["command"] == ["[]", "['IPython', 'matplotlib.pyplot']"]
    assert outputs["library"] == ["['IPython', 'matplotlib.pyplot']", "['IPython', 'matplotlib.pyplot']"]
