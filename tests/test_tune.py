"""Tuning: search spaces, the study-wide budget, dead workers, pruning, best settings, real workers.

Unit tests use Optuna's in-memory and journal storages. The slow tests run `mnist-cnn tune`
for real: in-process on the tiny dataset, and as worker processes on a small MNIST subset
against the embedded journal and a real PostgreSQL (`.ci/run` starts a throw-away server
and sets MNIST_CNN_TEST_POSTGRES; without it those tests skip and say so).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from mnist_cnn.cli.main import main
from mnist_cnn.runs.config import TrainConfig, load_config_file
from mnist_cnn.runs.run import Run
from mnist_cnn.training.recipes import RECIPES, resolve_config
from mnist_cnn.tuning.space import check_space, default_space, pin, suggest

needs_optuna = pytest.mark.skipif(importlib.util.find_spec("optuna") is None,
                                  reason="Optuna is not installed: pip install -e '.[tune]' (the dev extra has it)")
POSTGRES = os.environ.get("MNIST_CNN_TEST_POSTGRES")
STORAGES = ["journal", pytest.param("postgres", marks=pytest.mark.skipif(
    not POSTGRES, reason="no PostgreSQL: set MNIST_CNN_TEST_POSTGRES to a server's URL (.ci/run starts one)"))]


def one_line_error(capsys, command: str) -> str:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err, err
    assert err.startswith(f"mnist-cnn {command}: error: "), err
    return err


def optuna_study(storage=None, **kwargs):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    return optuna.create_study(direction="maximize", storage=storage, **kwargs)


# -- search spaces -------------------------------------------------------------------------------


@pytest.mark.parametrize("recipe", list(RECIPES))
def test_each_recipe_has_a_default_space_its_settings_accept(recipe):
    base = resolve_config(recipe)
    space = check_space(default_space(recipe), base)
    assert len(space) >= 4
    for name, spec in space.items():  # the recipe's own hand-tuned value lies inside its space
        value = getattr(base, name)
        assert value in spec["choices"] if "choices" in spec else spec["low"] <= value <= spec["high"], name


@needs_optuna
def test_suggested_settings_stay_in_the_space_and_a_retry_gets_them_back():
    base = resolve_config("fast")
    space = check_space(default_space("fast"), base)
    study = optuna_study()
    for _ in range(5):
        trial = study.ask()
        values = suggest(trial, space)
        config = base.replace(**values)
        assert 5e-3 <= config.learning_rate <= 1e-1 and config.batch_size in (64, 128, 256)
        assert config.epochs == 1 and config.model == "fast"  # what the space leaves alone stays the recipe's
        study.tell(trial, 0.9)
    study.enqueue_trial(values)  # how a dead worker's trial is re-run: its recorded values come back
    assert suggest(study.ask(), space) == values


SPACE_ERRORS = [
    ("learning_rat = { low = 1e-3, high = 1e-2 }", "unknown field 'learning_rat'"),
    ("seed = { choices = [0, 1] }", "seed cannot be searched (it changes the validation split)"),
    ("learning_rate = { low = 1e-2, high = 1e-3 }", "low (0.01) must be below high (0.001)"),
    ("learning_rate = { low = 0.0, high = 1e-2, log = true }", "a log scale needs low > 0"),
    ("learning_rate = { low = 1e-3, high = 20.0 }", "invalid learning_rate = 20.0: expected a number in (0, 10)"),
    ("label_smoothing = { choices = [0.0, 1.0] }", "invalid label_smoothing = 1.0"),
    ("batch_size = { low = 16.5, high = 64 }", "low = 16.5 is not an integer"),
    ("batch_size = { low = 16, hi = 64 }", "unknown key 'hi'"),
    ("batch_size = { choices = [] }", "choices must be a non-empty list"),
    ("batch_size = { choices = [64, 64] }", "choices repeat a value"),
    ("schedule = { low = 0, high = 1 }", "takes one of 'cosine', 'constant': give choices"),
    ("schedule = { choices = ['cosine', 'linear'] }", "choice 'linear' is not one of 'cosine', 'constant'"),
    ("augment = { choices = [true, 1] }", "choice 1 is not a bool"),
    ("learning_rate = 0.01", "learning_rate = 0.01 is not a table"),
    ("learning_rate = { choices = [0.01], low = 0.1, high = 1.0 }", "choices cannot be mixed with high, low"),
    ("warmup_epochs = { low = 0.0, high = 1.0, step = -0.1 }", "step must be > 0"),
    ("learning_rate = { low = 1e-3, high = 1e-2, log = 'yes' }", "log = 'yes' must be true or false"),
    ("learning_rate = [", "is not valid TOML"),
    ("", "is empty"),
]


@needs_optuna
@pytest.mark.parametrize("text, message", SPACE_ERRORS)
def test_a_bad_search_space_is_one_line_naming_the_field(tmp_path, capsys, text, message):
    space = tmp_path / "space.toml"
    space.write_text(text + "\n")
    assert main(["tune", "run", "--study", "s", "--recipe", "fast", "--space", str(space)]) == 2
    err = one_line_error(capsys, "tune run")
    assert message in err and str(space) in err
    assert not (tmp_path / "runs").exists()  # refused before any study, data or run folder


def test_a_flag_fixes_a_searched_setting():
    space, pinned = pin(default_space("fast"), {"learning_rate": 3e-3, "batch_size": None, "epochs": 2})
    assert pinned == ["learning_rate"] and "learning_rate" not in space and "batch_size" in space


@needs_optuna
def test_flags_fixing_every_searched_setting_is_an_error(tmp_path, capsys):
    space = tmp_path / "space.toml"
    space.write_text("learning_rate = { low = 1e-3, high = 1e-2, log = true }\n")
    assert main(["tune", "run", "--study", "s", "--space", str(space), "--learning-rate", "3e-3"]) == 2
    assert "flags fixed every searched setting (--learning-rate)" in one_line_error(capsys, "tune run")


# -- the budget, dead workers, pruning --------------------------------------------------------------


@needs_optuna
def test_the_budget_counts_every_worker_and_the_first_of_two_racing_trials_wins():
    from optuna.trial import TrialState, create_trial

    from mnist_cnn.tuning.study import _next_step, _over_budget

    study = optuna_study()
    for state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL):
        study.add_trial(create_trial(state=state, value=0.9 if state == TrialState.COMPLETE else None,
                                     intermediate_values={1: 0.5} if state == TrialState.PRUNED else None))
    assert _next_step(study, trials=2) == "done"  # complete + pruned count; failed ones do not
    assert _next_step(study, trials=3) == "run"
    study.add_trial(create_trial(state=TrialState.RUNNING))  # another worker's trial holds the last place
    assert _next_step(study, trials=3) == "wait" and _next_step(study, trials=4) == "run"
    study.enqueue_trial({})  # a dead worker's trial waiting to run again: someone must take it
    assert _next_step(study, trials=3) == "run"
    # Two workers start trials 5 and 6 at once for the 5th place: trial numbers order them.
    study.ask(), study.ask()
    assert not _over_budget(study, 5, trials=5) and _over_budget(study, 6, trials=5)
    assert not _over_budget(study, 6, trials=6)


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


@needs_optuna
def test_a_dead_local_workers_trial_is_failed_and_queued_again_once(tmp_path):
    import optuna
    from optuna.trial import TrialState

    from mnist_cnn.tuning.storage import fail_dead_trials, make_storage, retry_callback

    storages = [make_storage(None, tmp_path) for _ in range(2)]  # two workers' views of one journal
    study = optuna_study(storages[0], study_name="s")
    host = socket.gethostname()
    for pid in (dead_pid(), os.getpid()):
        trial = study.ask()
        trial.suggest_float("learning_rate", 1e-3, 1e-2)
        trial.set_user_attr("worker", {"host": host, "pid": pid, "trial": trial.number})
    study.ask()  # started a moment ago, not claimed yet: its worker may still be on its way
    for storage in storages:
        fail_dead_trials(optuna.load_study(study_name="s", storage=storage), storage, retry_callback(optuna))
    dead, alive, unclaimed, retry = study.get_trials()
    assert dead.state == TrialState.FAIL and alive.state == unclaimed.state == TrialState.RUNNING
    assert retry.state == TrialState.WAITING and retry.system_attrs["failed_trial"] == dead.number
    assert retry.params == dead.params


@needs_optuna
def test_pruning_reports_validation_accuracy_and_stops_before_the_next_epoch():
    import optuna

    from mnist_cnn.tuning.study import pruning_callback

    study = optuna_study(pruner=optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0))
    study.add_trial(optuna.trial.create_trial(value=0.98, intermediate_values={1: 0.97, 2: 0.98}))
    good, bad = study.ask(), study.ask()
    good_callback, bad_callback = pruning_callback(good), pruning_callback(bad)
    # Higher is better in a maximising study: a low loss with a low accuracy must not look good.
    good_callback.on_epoch_end(0, {"val_accuracy": 0.99, "val_loss": 0.9})
    bad_callback.on_epoch_end(0, {"val_accuracy": 0.50, "val_loss": 0.01})
    assert study.trials[1].intermediate_values == {1: 0.99} and study.trials[2].intermediate_values == {1: 0.5}
    good_callback.on_epoch_begin(1)  # goes on
    with pytest.raises(optuna.TrialPruned, match="after epoch 1"):
        bad_callback.on_epoch_begin(1)


@pytest.mark.slow
@needs_optuna
def test_a_pruned_trial_stops_before_its_next_epoch_leaving_a_resumable_run(tiny_dataset, isolated_env):
    import optuna

    from mnist_cnn.data.load import load_dataset
    from mnist_cnn.training.session import resume
    from mnist_cnn.training.train import train
    from mnist_cnn.tuning.study import pruning_callback

    study = optuna_study(pruner=optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0))
    study.add_trial(optuna.trial.create_trial(value=1.0, intermediate_values={1: 1.0, 2: 1.0, 3: 1.0}))
    config = resolve_config("fast", overrides={"dataset": "tiny", "epochs": 3, "patience": 3})
    run_dir = isolated_env / "trial"
    with pytest.raises(optuna.TrialPruned, match="pruned after epoch 1"):
        train(config, load_dataset("tiny", tiny_dataset), run_dir, verbose=0,
              extra_callbacks=[pruning_callback(study.ask())])
    run = Run(run_dir)  # epoch 1 was committed before the trial stopped
    assert [row["epoch"] for row in run.read_history()] == [1] and run.read_state().epoch == 1
    assert resume(run_dir, data_dir=tiny_dataset, verbose=0).metrics["training"]["epochs_run"] == 3


@needs_optuna
def test_workers_of_one_study_must_share_its_settings():
    from mnist_cnn.tuning.storage import TuneError
    from mnist_cnn.tuning.study import _check_same_settings

    study = optuna_study(study_name="s")
    base, space = resolve_config("fast"), default_space("fast")
    _check_same_settings(study, base, space)
    _check_same_settings(study, base.replace(tensorboard=True), space)  # logs change no result
    with pytest.raises(TuneError, match=r"other settings \(epochs differ\)"):
        _check_same_settings(study, base.replace(epochs=2), space)
    with pytest.raises(TuneError, match=r"\(learning_rate differ\)"):
        _check_same_settings(study, base, {**space, "learning_rate": {"low": 1e-3, "high": 1e-2}})


# -- best settings and the command line -----------------------------------------------------------


def test_best_settings_toml_reads_back_as_the_same_config(tmp_path):
    from mnist_cnn.tuning.report import config_toml

    config = resolve_config("strong", overrides={"dataset": "fashion-mnist", "learning_rate": 1.5e-05,
                                                 "aug_erasing": 0.25, "deterministic": True})
    path = tmp_path / "best.toml"
    path.write_text(config_toml(config, ["a comment"]))
    assert "train_limit" not in load_config_file(path)  # None: the default, left out
    assert resolve_config(config_file=path) == config  # the file's recipe key, then every setting


def test_every_tune_action_has_help_with_an_example(capsys):
    for action in ("run", "best", "show"):
        with pytest.raises(SystemExit) as exit_info:
            main(["tune", action, "--help"])
        assert exit_info.value.code == 0
        out = capsys.readouterr().out
        assert "example:" in out and f"mnist-cnn tune {action}" in out and "--storage" in out


def test_tune_without_optuna_says_how_to_install_it(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "optuna", None)  # as if not installed
    assert main(["tune", "show", "--study", "s"]) == 2
    assert "tuning needs Optuna: pip install 'mnist-cnn[tune]'" in one_line_error(capsys, "tune show")


@needs_optuna
@pytest.mark.parametrize("argv, message", [
    (["run", "--study", "a/b"], "invalid study name 'a/b'"),
    (["run", "--study", "s", "--heartbeat-s", "5"], "--heartbeat-s applies to --storage URL only"),
    (["run", "--study", "s", "--storage", "runs/optuna.db"], "is not a database URL"),
    (["best", "--study", "s", "-o", "best.toml"], "no studies in"),
    (["show", "--study", "s", "--storage", "nosuchdb://x"], "cannot open storage"),
])
def test_tune_mistakes_are_one_line_errors(capsys, argv, message):
    assert main(["tune", *argv]) == 2
    assert message in one_line_error(capsys, f"tune {argv[0]}")


@needs_optuna
def test_an_unreachable_database_is_one_line_without_the_password(capsys, closed_port_url):
    port = closed_port_url.rsplit(":", 1)[1].strip("/")
    url = f"postgresql://tuner:s3cret@127.0.0.1:{port}/optuna"  # plain, as the README writes it
    assert main(["tune", "show", "--study", "s", "--storage", url]) == 2
    err = one_line_error(capsys, "tune show")
    assert "cannot open storage postgresql://tuner:***@127.0.0.1" in err and "s3cret" not in err
    assert "no database driver" not in err  # the [tune] extra's psycopg 3 runs a plain URL


@pytest.mark.parametrize("given, used", [
    ("postgresql://u@h/db", "postgresql+psycopg://u@h/db"),
    ("postgres://u:p@h:5432/db", "postgresql+psycopg://u:p@h:5432/db"),
    ("postgresql+psycopg2://u@h/db", "postgresql+psycopg2://u@h/db"),  # a named driver is kept
    ("sqlite:///x.db", "sqlite:///x.db"),
])
def test_a_plain_postgresql_url_runs_on_psycopg_3(given, used):
    from mnist_cnn.tuning.storage import database_url

    assert database_url(given) == used


@pytest.mark.slow
@needs_optuna
def test_tune_run_best_and_show_end_to_end(tiny_dataset, isolated_env, capsys):
    from mnist_cnn.tuning.storage import load_study

    argv = ["tune", "run", "--study", "tiny1", "--recipe", "fast", "--dataset", "tiny", "--data-dir",
            str(tiny_dataset), "--epochs", "2", "--pruner", "none"]
    assert main([*argv, "--trials", "2"]) == 0
    out = capsys.readouterr().out
    trial_lines = [line for line in out.splitlines() if line.startswith("trial ")]
    assert len(trial_lines) == 2 and all("complete  val_accuracy" in line and " best " in line for line in trial_lines)
    assert main([*argv, "--trials", "2"]) == 0  # started again: the study is complete, nothing to do
    assert main([*argv, "--trials", "3"]) == 0  # a larger budget continues the same study
    assert sum(line.startswith("trial ") for line in capsys.readouterr().out.splitlines()) == 1

    study = load_study("tiny1", None, isolated_env / "runs")
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 3
    for trial in study.trials:  # each trial is an ordinary run; its value is the run's validation score
        run = Run(Path(trial.user_attrs["run_dir"]))
        assert run.path.parent == isolated_env / "runs" / "tune" / "tiny1" and not run.missing_artifacts()
        training = run.read_json(Run.metrics)["training"]
        assert trial.value == training["best_val_accuracy"] and training["epochs_run"] == 2
        assert run.train_config() == TrainConfig(**trial.user_attrs["config"])
        assert run.train_config().learning_rate == trial.params["learning_rate"]
        assert trial.intermediate_values[2] == run.read_history()[1]["val_accuracy"]  # reported per epoch

    assert main(["tune", "best", "--study", "tiny1", "-o", "best.toml"]) == 0
    best = max(study.trials, key=lambda t: t.value)
    assert f"best trial {best.number} of tiny1" in capsys.readouterr().out
    assert resolve_config(config_file=isolated_env / "best.toml") == TrainConfig(**best.user_attrs["config"])
    assert main(["tune", "show", "--study", "tiny1"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[:3] == ["trial", "state", "val_accuracy"] and "learning_rate" in table[0]
    assert [row.split()[:2] for row in table[1:4]] == [[str(n), "complete"] for n in range(3)]
    for picture in ("history.png", "importance.png"):
        assert (isolated_env / "runs" / "tune" / "tiny1" / picture).read_bytes()[:4] == b"\x89PNG"

    # Joining the study with other settings would mix incomparable trials.
    assert main([*argv[:-4], "--epochs", "3", "--pruner", "none", "--trials", "5"]) == 2
    assert "started with other settings (epochs differ)" in one_line_error(capsys, "tune run")


# -- worker processes on one study ------------------------------------------------------------------


TRIAL_ARGS = ["--recipe", "fast", "--train-limit", "2000", "--epochs", "1", "--pruner", "none", "--offline"]


@contextlib.contextmanager
def empty_postgres_database():
    """The URL of a new, empty PostgreSQL database, dropped after."""
    import sqlalchemy

    name = f"tune_{uuid.uuid4().hex[:12]}"
    admin = sqlalchemy.create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sqlalchemy.engine.make_url(POSTGRES).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(sqlalchemy.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(params=STORAGES)
def storage(request):
    """None for the embedded journal, or the URL of a new, empty PostgreSQL database."""
    if request.param == "journal":
        yield None
        return
    # Empty: the workers race to create Optuna's tables, as workers started together on a new database do.
    with empty_postgres_database() as url:
        yield url


# Opens the storage at an agreed instant, with one attempt: the schema lock alone must keep
# simultaneous workers from creating the same table twice.
OPEN_AT_ONCE = """
import sys, time
from pathlib import Path
import mnist_cnn.tuning.storage as storage
storage.SCHEMA_ATTEMPTS = 1
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
storage.make_storage(sys.argv[1], Path("."))
"""


@pytest.mark.skipif(not POSTGRES, reason="no PostgreSQL: set MNIST_CNN_TEST_POSTGRES to a server's URL")
@needs_optuna
@pytest.mark.parametrize("round_", range(3))
def test_workers_opening_a_new_database_at_the_same_instant_all_get_it(round_, tmp_path):
    with empty_postgres_database() as url:
        start = time.time() + 6  # after every process has imported Optuna and SQLAlchemy
        openers = [subprocess.Popen([sys.executable, "-c", OPEN_AT_ONCE, url, str(start)], cwd=tmp_path,
                                    stderr=subprocess.PIPE, text=True) for _ in range(4)]
        errors = [opener.communicate(timeout=120)[1] for opener in openers]
        assert [opener.returncode for opener in openers] == [0] * 4, [e[-500:] for e in errors if e]


@pytest.fixture
def workers():
    """The worker processes a test starts; any still running at its end (a failed test) are killed."""
    started: list[subprocess.Popen] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.communicate()


def start_worker(study: str, storage: str | None, trials: int, data_dir: Path, runs_dir: Path) -> subprocess.Popen:
    where = [] if storage is None else ["--storage", storage, "--heartbeat-s", "2"]
    return subprocess.Popen([sys.executable, "-m", "mnist_cnn", "tune", "run", "--study", study, "--trials",
                             str(trials), "--data-dir", str(data_dir), "--runs-dir", str(runs_dir), *TRIAL_ARGS,
                             *where], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(worker: subprocess.Popen, timeout_s: float = 300) -> str:
    out, err = worker.communicate(timeout=timeout_s)
    assert worker.returncode == 0, err[-3000:]
    return out


def load(study: str, storage: str | None, runs_dir: Path):
    from mnist_cnn.tuning.storage import load_study

    return load_study(study, storage, runs_dir)


def assert_exactly_finished(trials: list, count: int) -> list:
    """`count` finished trials; nothing left running or waiting; no dead worker's trial re-run
    twice; every finished trial left a complete run folder. Returns the finished trials."""
    states = [t.state.name for t in trials]
    finished = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
    assert len(finished) == count and "RUNNING" not in states and "WAITING" not in states, states
    retried = [t.system_attrs["failed_trial"] for t in finished if "failed_trial" in t.system_attrs]
    assert len(retried) == len(set(retried))  # no dead trial was run twice
    for trial in finished:
        assert not Run(Path(trial.user_attrs["run_dir"])).missing_artifacts()
    return finished


@pytest.mark.slow
@needs_optuna
def test_two_workers_finish_exactly_the_studys_trials_between_them(storage, workers, shared_data, isolated_env):
    study, runs = f"two-{uuid.uuid4().hex[:8]}", isolated_env / "runs"
    workers += [start_worker(study, storage, 3, shared_data, runs) for _ in range(2)]
    outputs = [finish(worker) for worker in workers]
    finished = assert_exactly_finished(load(study, storage, runs).trials, 3)
    assert {t.user_attrs["worker"]["pid"] for t in finished} == {w.pid for w in workers}  # both took part
    assert all(f"study {study}: 3 of 3 trials finished" in out for out in outputs)
    failed = [t for t in load(study, storage, runs).trials if t.state.name == "FAIL"]
    assert all(t.user_attrs.get("over_budget") for t in failed)  # no trial lost: only a race's extra, unrun


@pytest.mark.slow
@needs_optuna
def test_a_killed_workers_trial_is_run_again_and_the_study_completes(storage, workers, shared_data, isolated_env):
    import optuna

    from mnist_cnn.tuning.storage import make_storage

    study, runs = f"kill-{uuid.uuid4().hex[:8]}", isolated_env / "runs"
    workers += [start_worker(study, storage, 2, shared_data, runs) for _ in range(2)]
    by_pid = {worker.pid: worker for worker in workers}
    store = make_storage(storage, runs)  # one connection for the whole wait
    deadline, killed = time.monotonic() + 180, None
    while killed is None and time.monotonic() < deadline:  # wait until a worker is inside a trial
        time.sleep(0.5)
        try:
            trials = optuna.load_study(study_name=study, storage=store).trials
        except KeyError:  # not created yet
            continue
        running = [t for t in trials if t.state.name == "RUNNING"
                   and t.user_attrs.get("worker", {}).get("pid") in by_pid
                   and Path(t.user_attrs.get("run_dir", "/nonexistent")).is_dir()]  # training has begun
        if running:
            victim = by_pid.pop(running[0].user_attrs["worker"]["pid"])
            victim.send_signal(signal.SIGKILL)
            victim.wait()
            killed = running[0]
    assert killed is not None, "no worker started a trial"
    (survivor,) = by_pid.values()
    finish(survivor)
    trials = load(study, storage, runs).trials
    assert_exactly_finished(trials, 2)
    assert trials[killed.number].state.name == "FAIL" and not trials[killed.number].user_attrs.get("over_budget")
    (rerun,) = [t for t in trials if t.system_attrs.get("failed_trial") == killed.number]
    assert rerun.state.name == "COMPLETE" and rerun.params == killed.params
