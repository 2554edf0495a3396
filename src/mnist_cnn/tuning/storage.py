"""Where Optuna studies live, and how a dead worker's trial is found and run again.

By default one embedded Optuna journal file per runs folder, `RUNS/tune/studies.journal`,
that the processes of one machine share through its lock file; or any SQLAlchemy URL
Optuna supports (PostgreSQL for workers on several machines), opened with heartbeats so
that the trial of a killed worker is failed and re-queued with the same settings. The
journal has no heartbeat; it serves one machine, where a dead worker is a process that no
longer exists. Optuna is imported inside functions (with a one-line install hint when it
is missing); nothing here prints or touches disk at import.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import time
import warnings
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterator

from ..core.errors import ConfigError, MnistCnnError, first_line

log = logging.getLogger(__name__)

TUNE_DIR = "tune"  # under the runs folder: the embedded journal and one folder per study
JOURNAL = "studies.journal"  # the embedded store of every study in this runs folder
DEFAULT_HEARTBEAT_S = 20  # a live worker stamps its running trial this often (database storage)
# A trial is declared dead after this many missed heartbeats: one late stamp on a busy
# machine (2 shared cores) must not fail a live trial.
GRACE_HEARTBEATS = 3
MAX_RETRIES = 2  # a trial whose worker keeps dying (out of memory, say) gives up its settings after this
UNCLAIMED_S = 60.0  # a running trial no worker has claimed for this long lost its worker before it began
SCHEMA_ATTEMPTS = 4  # tries to open a database that other workers may be setting up at the same moment
SCHEMA_LOCK_KEY = 0x6D6E_6973_7463_6E6E  # PostgreSQL advisory lock held while Optuna's tables are set up
STUDY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


class TuneError(MnistCnnError):
    """A study that cannot be opened, found or used (its storage, its name, its settings)."""


def optuna_module() -> ModuleType:
    """Optuna, or a TuneError with the install command."""
    try:
        import optuna  # noqa: PLC0415
    except ImportError:
        raise TuneError("tuning needs Optuna: pip install 'mnist-cnn[tune]'") from None
    return optuna


def check_study_name(name: str) -> str:
    if not STUDY_NAME.fullmatch(name):
        raise ConfigError(f"invalid study name {name!r}: use letters, digits, '.', '_' and '-' (it names a folder)")
    return name


def study_dir(runs_dir: Path, name: str) -> Path:
    """`RUNS/tune/<study>/`: the trials' run folders and `tune show`'s pictures."""
    return Path(runs_dir) / TUNE_DIR / check_study_name(name)


def describe_storage(url: str | None, runs_dir: Path) -> str:
    """The storage as a person reads it: the journal's path, or the URL without its password."""
    if url is None:
        return str(Path(runs_dir) / TUNE_DIR / JOURNAL)
    from sqlalchemy.engine import make_url  # noqa: PLC0415  (installed with Optuna)

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001  (an unparsable URL is reported when it is opened)
        return "the --storage URL"


POSTGRES_DRIVER = "postgresql+psycopg"  # psycopg 3: what the [tune] extra installs


def database_url(url: str) -> str:
    """A plain `postgresql://` (or `postgres://`) URL names psycopg 3, the driver the [tune] extra installs,
    whatever SQLAlchemy's own default is (psycopg2 before 2.1). A URL naming its driver is kept."""
    scheme, sep, rest = url.partition("://")
    return f"{POSTGRES_DRIVER}://{rest}" if sep and scheme in ("postgresql", "postgres") else url


def make_storage(url: str | None, runs_dir: Path, heartbeat_s: int | None = None, create: bool = True) -> Any:
    """The embedded journal of `runs_dir` (url None), or an RDBStorage, with heartbeats if `heartbeat_s`.

    Without `create`, a missing journal is an error rather than a new file (`tune best`, `tune show`).
    """
    optuna = optuna_module()
    if url is None:
        from optuna.storages.journal import JournalFileBackend  # noqa: PLC0415

        path = Path(runs_dir) / TUNE_DIR / JOURNAL
        if not create and not path.is_file():
            raise TuneError(f"no studies in {path}; start one with `mnist-cnn tune run --study NAME` (or pass "
                            f"--runs-dir / --storage where it lives)")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # Appends go through the backend's lock file (a symlink made atomically), so the
            # processes of one machine share the journal safely; a lock left by a killed
            # process is broken after its grace period.
            return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
        except OSError as e:
            raise TuneError(f"cannot open {path}: {e.strerror}; pass --runs-dir to a writable folder") from None
    if "://" not in url:
        raise ConfigError(f"--storage {url!r} is not a database URL: give e.g. postgresql://USER@HOST/DB, "
                          f"or leave it out for the embedded store in the runs folder")
    retry = {}
    if heartbeat_s:
        retry = {"heartbeat_interval": heartbeat_s, "grace_period": GRACE_HEARTBEATS * heartbeat_s,
                 "heartbeat_stale_trial_callback": retry_callback(optuna)}
    address = database_url(url)
    try:
        for attempt in range(SCHEMA_ATTEMPTS):
            try:
                with schema_lock(address), warnings.catch_warnings():
                    # heartbeats are marked experimental; they are what we rely on
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    return optuna.storages.RDBStorage(address, engine_kwargs={"pool_pre_ping": True}, **retry)
            except Exception as e:
                # Workers started together on an empty database race to create Optuna's
                # tables (PostgreSQL takes turns under schema_lock; other databases may
                # not): the loser's CREATE fails, and its next attempt finds them made.
                if attempt == SCHEMA_ATTEMPTS - 1 or not lost_schema_race(e):
                    raise
                time.sleep(0.5 * (attempt + 1))
    except ImportError:
        raise TuneError(f"no database driver for {describe_storage(url, runs_dir)}: pip install "
                        f"'mnist-cnn[tune]' (PostgreSQL's psycopg 3) or the driver your URL names") from None
    except Exception as e:  # noqa: BLE001  (SQLAlchemy: a bad URL, a refused connection, a login)
        first = first_line(e, 300)
        raise TuneError(f"cannot open storage {describe_storage(url, runs_dir)}: {first}; check the URL and that "
                        f"the server accepts this user") from None


@contextmanager
def schema_lock(url: str) -> Iterator[None]:
    """On PostgreSQL, one worker at a time: a session advisory lock held while Optuna checks
    and creates its tables, so that workers started together on a new database cannot both
    CREATE the same table or type. Other databases go on without it (and retry instead)."""
    import sqlalchemy  # noqa: PLC0415  (installed with Optuna)

    if sqlalchemy.engine.make_url(url).get_backend_name() != "postgresql":
        yield
        return
    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect() as connection:
            key = {"key": SCHEMA_LOCK_KEY}
            connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:key)"), key)
            try:
                yield
            finally:
                connection.execute(sqlalchemy.text("SELECT pg_advisory_unlock(:key)"), key)
    finally:
        engine.dispose()


def lost_schema_race(error: Exception) -> bool:
    """Whether opening a database failed because another worker created the same table,
    type or row of Optuna's schema at the same moment (a duplicate, not a real fault)."""
    from sqlalchemy.exc import DBAPIError, IntegrityError  # noqa: PLC0415

    return isinstance(error, IntegrityError) or (isinstance(error, DBAPIError) and "already exists" in str(error))


def retry_callback(optuna: ModuleType) -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRIES)


def load_study(name: str, storage_url: str | None, runs_dir: Path) -> Any:
    """An existing study (for `tune best` and `tune show`)."""
    optuna = optuna_module()
    storage = make_storage(storage_url, runs_dir, create=False)
    try:
        return optuna.load_study(study_name=check_study_name(name), storage=storage)
    except KeyError:
        known = optuna.get_all_study_names(storage)
        raise TuneError(f"no study {name!r} in {describe_storage(storage_url, runs_dir)} (studies there: "
                        f"{', '.join(known) or 'none'}); start it with `mnist-cnn tune run --study {name}`") from None


def fail_dead_trials(study: Any, storage: Any, retry: Callable[[Any, Any], None]) -> None:
    """Fail and re-queue the running trials whose worker is gone.

    A database storage knows it by heartbeat (Optuna's own check). The journal has no
    heartbeat, but it serves one machine: a trial whose worker process no longer exists
    there is dead, and so is one no worker claimed within UNCLAIMED_S of starting.
    Whichever worker fails a trial first re-queues it; the storage refuses the others.
    """
    optuna = optuna_module()
    if isinstance(storage, optuna.storages.RDBStorage):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
        return
    from optuna.trial import TrialState  # noqa: PLC0415

    host, now = socket.gethostname(), time.time()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = trial.user_attrs.get("worker") or {}
        if worker.get("trial") == trial.number:  # claimed (a retry carries its dead predecessor's record)
            if worker.get("host") != host or _alive(int(worker.get("pid", 0))):
                continue
        elif trial.datetime_start is None or now - trial.datetime_start.timestamp() < UNCLAIMED_S:
            continue
        study_id = storage.get_study_id_from_name(study.study_name)
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        try:
            storage.set_trial_state_values(trial_id, state=TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another worker failed it first and re-queued it
        log.warning("trial %d lost its worker (process %s gone); running it again", trial.number, worker.get("pid"))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            retry(study, storage.get_trial(trial_id))


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True
