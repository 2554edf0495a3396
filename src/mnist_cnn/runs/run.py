"""A run folder and the one object that owns it: file names, reads and writes, metadata, resume state.

Nobody else knows a file name of a run. `Run` reads and writes every file under one
policy: writes are atomic (temporary file, then rename); a missing required file or any
unreadable one is a `RunFileError` naming the file and the fix. It also answers the
questions every command asks of a trained model (which dataset, which class names,
which preprocessing) and keeps the explicit resume state (`state.json`) that training
commits after every epoch. No I/O at import.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import logging
import math
import os
import platform
import shutil
import subprocess
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Iterator

from ..core.atomic import TEMP_PREFIX, write_json, write_text
from ..core.errors import ConfigError, MnistCnnError, RunFileError
from ..core.system import cpu_features, cpu_model, onednn_in_use, onednn_setting, usable_cores, version_of
from ..data.registry import DATASETS, Style
from .config import TrainConfig

log = logging.getLogger(__name__)

MAX_RECORD_BYTES = 16 * 1024 * 1024  # a run writes kilobytes of JSON; anything far larger is not ours
TEST_METRIC_KEYS = ("accuracy", "loss", "errors", "num_images")  # the run's test scores shown by /model


class _File:
    """A file of a run: `Run.x` is its name, `run.x` its path in that run's folder."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, run: "Run | None", owner: type) -> Any:
        return self.name if run is None else run.path / self.name


def default_runs_dir() -> Path:
    return Path(os.environ.get("MNIST_CNN_RUNS_DIR") or "runs")


def utc_stamp() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def utc_now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class ModelInfo:
    """What a trained model needs to be used: its dataset, class names and preprocessing."""

    dataset: str | None  # registered name or custom data path; None without a run folder
    class_names: tuple[str, ...]  # () when unknown: callers fall back to 0..N-1
    style: Style  # which dataset's image recipe `preprocess` applies ("digit" or "fashion")
    architecture: str | None = None
    test_metrics: dict[str, Any] | None = None  # the run's headline test scores, if it finished


@dataclass(frozen=True)
class TrainState:
    """Where training stands after the last completed epoch: committed atomically each epoch.

    Early stopping's state is `best_epoch` and `best_val_loss` (its wait is epoch - best_epoch);
    the data order of epoch e is a function of (shuffle_seed, e) alone (`train.make_batches`),
    so the next epoch's order needs no other record.
    """

    epoch: int  # epochs completed (1-based count); the next epoch to run is epoch + 1
    best_epoch: int  # the completed epoch with the lowest validation loss (0: none yet)
    best_val_loss: float | None
    last_checkpoint: str | None  # file under the run folder holding epoch `epoch` (weights + optimizer)
    best_checkpoint: str | None  # file holding epoch `best_epoch`
    shuffle_seed: int

    @property
    def wait(self) -> int:
        """Epochs since the best one: what early stopping counts against its patience."""
        return self.epoch - self.best_epoch


class Run:
    """A run folder: `runs/<UTC time>-<dataset>-<model>/` of training, or an evaluation's output folder."""

    config = _File("config.json")
    state = _File("state.json")
    history = _File("history.csv")
    model = _File("model.keras")
    metrics = _File("metrics.json")
    summary = _File("summary.txt")
    report = _File("report.md")
    classification_report = _File("classification_report.txt")
    curves = _File("curves.png")
    confusion = _File("confusion_matrix.png")
    misclassified = _File("misclassified.png")
    checkpoints = _File("checkpoints")  # one .keras per kept epoch: the last and the best
    tensorboard = _File("tensorboard")  # event files, with TrainConfig.tensorboard: `tensorboard --logdir runs/`
    acceptance = _File("acceptance.json")  # the "not a digit" rule (`mnist-cnn calibrate`); absent: uncalibrated

    # Every file a finished training run holds (checkpoints/ and state.json come on top).
    ARTIFACTS = ("config.json", "summary.txt", "history.csv", "model.keras", "metrics.json",
                 "classification_report.txt", "curves.png", "confusion_matrix.png", "misclassified.png",
                 "report.md")
    # What an evaluation folder holds.
    EVALUATION_ARTIFACTS = ("metrics.json", "classification_report.txt", "confusion_matrix.png",
                            "misclassified.png", "report.md")

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    # -- finding and creating runs ------------------------------------------------------------

    @classmethod
    def create(cls, runs_dir: Path, dataset: str, model: str) -> "Run":
        """Make `runs_dir/<UTC time>-<dataset>-<model>/` (with a numeric suffix if it exists)."""
        base = f"{utc_stamp()}-{dataset}-{model}"
        runs_dir = Path(runs_dir)
        try:
            runs_dir.mkdir(parents=True, exist_ok=True)
            for n in range(1000):
                path = runs_dir / (base if n == 0 else f"{base}-{n}")
                try:
                    path.mkdir()
                    return cls(path)
                except FileExistsError:
                    continue
        except OSError as e:
            raise MnistCnnError(f"cannot create a run folder in {runs_dir}: {e.strerror}; "
                                f"pass --runs-dir to a writable folder") from None
        raise MnistCnnError(f"too many runs named {base} in {runs_dir}; pass another --runs-dir")

    @classmethod
    def open(cls, path: Path) -> "Run":
        """An existing training run; RunFileError unless `path` holds a readable config.json."""
        run = cls(path)
        if not Path(path).is_dir() or not run.config.is_file():
            raise RunFileError(f"{path} is not a run folder (no {cls.config}); pass a folder made by "
                               f"`mnist-cnn train`")
        run.read_config()  # damaged -> RunFileError now, not halfway through a command
        return run

    @classmethod
    def of_model(cls, model_path: Path) -> "Run | None":
        """The run folder a model file sits in (one holding config.json), or None for a loose model.

        A model reached through a symbolic link belongs to the run beside the file it points to
        (or, failing that, beside the link)."""
        for folder in (Path(model_path).resolve().parent, Path(model_path).parent):
            if (folder / cls.config).is_file():
                return cls(folder)
        return None

    # -- one reading and writing policy ----------------------------------------------------------

    def read_json(self, name: str, required: bool = True, fix: str | None = None) -> dict[str, Any] | None:
        """A JSON object file of the run; None if absent and not `required`; RunFileError otherwise.

        The one reader of run records (acceptance.json included): capped in size, and every
        problem one line naming the file and `fix` (default: restore it or resume the run).
        """
        path = self.path / name
        fix = fix or f"the file is damaged: restore it, or delete it and run `mnist-cnn train --resume {self.path}`"
        try:
            if path.stat().st_size > MAX_RECORD_BYTES:
                raise RunFileError(f"{path} is over {MAX_RECORD_BYTES:,} bytes, far more than a run writes; {fix}")
            value = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            if not required:
                return None
            raise RunFileError(f"{path} is missing; the run folder is incomplete (`mnist-cnn train "
                               f"--resume {self.path}` rewrites what a finished training can)") from None
        except (OSError, UnicodeDecodeError) as e:
            reason = getattr(e, "strerror", None) or type(e).__name__
            raise RunFileError(f"cannot read {path} ({reason}); {fix}") from None
        except (ValueError, RecursionError):
            raise RunFileError(f"{path} is damaged (not valid JSON); {fix}") from None
        if not isinstance(value, dict):
            raise RunFileError(f"{path} holds a JSON {type(value).__name__}, not an object; {fix}")
        return value

    def write_json(self, name: str, value: Any) -> Path:
        write_json(self.path / name, value)
        return self.path / name

    def write_text(self, name: str, text: str) -> Path:
        write_text(self.path / name, text)
        return self.path / name

    # -- config.json: settings, data, environment ----------------------------------------------------

    def write_config(self, config: TrainConfig, data_info: dict[str, Any]) -> None:
        self.write_json(Run.config, {"config": config.to_dict(), "data": data_info,
                                     "environment": environment(), "created_utc": utc_now()})

    def read_config(self) -> dict[str, Any]:
        record = self.read_json(Run.config)
        assert record is not None
        for section in ("config", "data"):
            if not isinstance(record.get(section, {}), dict):
                raise RunFileError(f"{self.config} has a damaged {section!r} section; restore the file")
        return record

    def train_config(self) -> TrainConfig:
        values = self.read_config().get("config", {})
        try:
            return TrainConfig(**values)
        except TypeError as e:
            raise ConfigError(f"{self.config} holds settings this version does not know ({e}); "
                              f"train a new run") from None

    def record_resume(self, config: TrainConfig, changed: dict[str, tuple[Any, Any]]) -> None:
        """Store the settings a resumed run continues with, and which of them changed."""
        record = self.read_config()
        record["config"] = config.to_dict()
        record.setdefault("resumed", []).append(
            {"utc": utc_now(), "changed": {k: {"from": old, "to": new} for k, (old, new) in changed.items()}})
        self.write_json(Run.config, record)

    def model_info(self) -> ModelInfo:
        """Dataset, class names, preprocessing style and test scores of the model trained here."""
        record = self.read_config()
        config, data = record.get("config", {}), record.get("data", {})
        dataset = config.get("dataset")
        names = data.get("class_names")
        class_names = tuple(str(n) for n in names) if isinstance(names, list) else ()
        style = data.get("preprocessing") or dataset_style(dataset)
        metrics = self.read_json(Run.metrics, required=False) or {}
        test = metrics.get("test") if isinstance(metrics.get("test"), dict) else {}
        scores = {k: test[k] for k in TEST_METRIC_KEYS if k in test} or None
        return ModelInfo(dataset, class_names, "fashion" if style == "fashion" else "digit",
                         config.get("model"), scores)

    # -- history.csv --------------------------------------------------------------------------------

    def read_history(self) -> list[dict[str, float]]:
        """Rows of history.csv as dicts of floats (`epoch` counts from 1); [] before the first epoch."""
        return read_history(self.history)

    def write_history(self, rows: list[dict[str, float]]) -> None:
        buffer = io.StringIO()
        if rows:
            writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
            writer.writeheader()
            writer.writerows(rows)
        self.write_text(Run.history, buffer.getvalue())

    # -- resume state ---------------------------------------------------------------------------------

    def read_state(self) -> TrainState | None:
        """The last committed training state, or None before the first epoch completed."""
        values = self.read_json(Run.state, required=False)
        if values is None:
            return None
        try:
            state = TrainState(**{f.name: values[f.name] for f in fields(TrainState)})
        except (KeyError, TypeError):
            raise RunFileError(f"{self.state} lacks resume fields; the file is damaged: delete the run "
                               f"folder's state.json and checkpoints/ to restart it, or train a new run") from None
        for name in (state.last_checkpoint, state.best_checkpoint):
            if name is not None and not (self.path / name).is_file():
                raise RunFileError(f"{self.path / name}, named by {self.state}, is missing; restore it, or "
                                   f"delete state.json and checkpoints/ to restart the run")
        return state

    def write_state(self, state: TrainState) -> None:
        """Commit `state`: after this rename, resuming starts from `state.epoch`."""
        values = asdict(state)
        if values["best_val_loss"] is not None and not math.isfinite(values["best_val_loss"]):
            values["best_val_loss"] = None  # JSON has no inf/NaN
        self.write_json(Run.state, values)

    def checkpoint(self, epoch: int) -> Path:
        """Where the weights and optimizer state after `epoch` go (relative names are stored)."""
        return self.checkpoints / f"epoch-{epoch:04d}.keras"

    def relative(self, path: Path) -> str:
        return path.relative_to(self.path).as_posix()

    def prune_checkpoints(self, keep: set[str]) -> None:
        """Delete checkpoint files the committed state no longer names."""
        if not self.checkpoints.is_dir():
            return
        for path in self.checkpoints.glob("*.keras"):
            if self.relative(path) not in keep:
                path.unlink(missing_ok=True)

    def temp_files(self) -> Iterator[Path]:
        """Leftovers of writes a kill interrupted (never under a final name)."""
        for folder in (self.path, self.checkpoints):
            if folder.is_dir():
                yield from folder.glob(f"{TEMP_PREFIX}*")

    def clean_temp_files(self) -> list[Path]:
        removed = list(self.temp_files())
        for path in removed:
            path.unlink(missing_ok=True)
        return removed

    def discard_uncommitted(self) -> bool:
        """After a training that failed before committing its first epoch: remove what it wrote
        (config, history, checkpoints, event files, temporary files) and the folder if that leaves it
        empty, so no half run is left to trip over. Nothing else is touched. Whether it was removed."""
        if self.state.exists():
            return False
        for name in (Run.config, Run.history):
            (self.path / name).unlink(missing_ok=True)
        for folder in (self.checkpoints, self.tensorboard):
            shutil.rmtree(folder, ignore_errors=True)
        self.clean_temp_files()
        try:
            self.path.rmdir()  # only if empty: a folder holding the user's own files stays
        except OSError:
            return False
        return True

    def training_left(self, config: TrainConfig) -> bool:
        """Whether `config` asks for epochs this run has not trained (nor stopped early before)."""
        state = self.read_state()
        return state is None or (state.epoch < config.epochs and state.wait < config.patience)

    def resume_point(self, dataset_name: str, dataset_source: Any,
                     dataset_sha256: dict[str, str]) -> tuple[TrainState | None, list[dict[str, float]]]:
        """Reconcile the folder for a resumed training: the data must be what it was trained on,
        temporary files a kill left are removed, and history rows of an epoch killed before its
        commit are dropped. Returns the committed state (None if no epoch was committed) and the
        history rows up to it. Changed settings are recorded by `record_resume`, once the
        checkpoint has loaded."""
        recorded = self.read_config().get("data", {}).get("sha256")
        if recorded and recorded != dataset_sha256:
            raise MnistCnnError(f"the {dataset_name} files in {dataset_source} differ from those {self.path} was "
                                f"trained on; resume with the same data or start a new run")
        for leftover in self.clean_temp_files():
            log.info("removed %s, left by an interrupted write", leftover)
        state = self.read_state()
        if state is None:
            return None, []
        rows = [r for r in self.read_history() if r["epoch"] <= state.epoch]
        self.write_history(rows)
        return state, rows

    def check_resumable(self, config: TrainConfig) -> None:
        """MnistCnnError unless resuming with `config` would train or complete something."""
        if self.read_state() is None and (self.path / "last.keras").is_file():
            raise MnistCnnError(f"{self.path} was made by an older version of mnist-cnn (no {Run.state}); "
                                f"it cannot be resumed: start a new run")
        if not self.training_left(config) and not self.missing_artifacts():
            state = self.read_state()
            raise MnistCnnError(f"{self.path} already finished ({state.epoch if state else 0} epochs, every file "
                                f"present); pass --epochs N above that to train longer, or start a new run")

    def missing_artifacts(self) -> list[str]:
        return [name for name in Run.ARTIFACTS if not (self.path / name).is_file()]


def dataset_style(dataset: str | None) -> Style:
    """The preprocessing a model trained on `dataset` wants: its registry entry's, else digits."""
    spec = DATASETS.get(dataset or "")
    return spec.style if spec is not None else "digit"


def read_history(path: Path) -> list[dict[str, float]]:
    """history.csv rows as dicts of floats; [] if the file is absent; RunFileError if damaged."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
    except FileNotFoundError:
        return []
    except (OSError, UnicodeDecodeError, ValueError, TypeError, csv.Error) as e:
        raise RunFileError(f"cannot read {path} ({type(e).__name__}); the file is damaged: restore it "
                           f"or train a new run") from None
    for row in rows:  # epochs are counts: keep them integers through a read-write round trip
        if "epoch" in row:
            row["epoch"] = int(row["epoch"])
    return rows


def history_columns(rows: list[dict[str, float]]) -> dict[str, list[float]]:
    """Rows -> one list per column, the shape `plots.plot_curves` takes."""
    return {key: [row[key] for row in rows] for key in (rows[0] if rows else {})}


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5,
                             cwd=Path(__file__).parent)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def environment() -> dict[str, Any]:
    """Versions and machine facts that make a run's numbers interpretable."""
    import keras  # noqa: PLC0415  (only when a run is written)

    return {
        "mnist_cnn": version_of("mnist-cnn"),
        "keras": keras.__version__,
        "keras_backend": keras.backend.backend(),
        "tensorflow": version_of("tensorflow") or version_of("tensorflow-cpu"),
        "numpy": version_of("numpy"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": cpu_model(),
        "cpu_features": cpu_features(),
        "tf_enable_onednn_opts": onednn_setting(),
        "onednn": onednn_in_use(),  # what TensorFlow decided: the setting counts only if set before its import
        "cpu_count": os.cpu_count(),
        "usable_cores": usable_cores(),
        "git_commit": _git_commit(),
    }
