"""Run folders: naming, `config.json` (settings, versions, data digests) and reading them back."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

from .atomic import write_json
from .config import TrainConfig
from .errors import ConfigError, MnistCnnError

CONFIG_FILE = "config.json"
MODEL_FILE = "model.keras"
METRICS_FILE = "metrics.json"
SUMMARY_FILE = "summary.txt"
REPORT_FILE = "report.md"
CLASSIFICATION_REPORT_FILE = "classification_report.txt"
CURVES_PNG = "curves.png"
CONFUSION_PNG = "confusion_matrix.png"
MISCLASSIFIED_PNG = "misclassified.png"
# Every file a finished training run holds (best/last checkpoints come on top).
RUN_ARTIFACTS = (CONFIG_FILE, SUMMARY_FILE, "history.csv", MODEL_FILE, METRICS_FILE,
                 CLASSIFICATION_REPORT_FILE, CURVES_PNG, CONFUSION_PNG, MISCLASSIFIED_PNG, REPORT_FILE)


def default_runs_dir() -> Path:
    return Path(os.environ.get("MNIST_CNN_RUNS_DIR") or "runs")


def utc_stamp() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def new_run_dir(runs_dir: Path, dataset: str, model: str) -> Path:
    """Create `runs_dir/<UTC time>-<dataset>-<model>/` (with a numeric suffix if it exists)."""
    base = f"{utc_stamp()}-{dataset}-{model}"
    try:
        runs_dir.mkdir(parents=True, exist_ok=True)
        for n in range(1000):
            path = runs_dir / (base if n == 0 else f"{base}-{n}")
            try:
                path.mkdir()
                return path
            except FileExistsError:
                continue
    except OSError as e:
        raise MnistCnnError(f"cannot create a run folder in {runs_dir}: {e.strerror}; "
                            f"pass --runs-dir to a writable folder") from None
    raise MnistCnnError(f"too many runs named {base} in {runs_dir}")


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


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
        "mnist_cnn": _version("mnist-cnn"),
        "keras": keras.__version__,
        "keras_backend": keras.backend.backend(),
        "tensorflow": _version("tensorflow") or _version("tensorflow-cpu"),
        "numpy": _version("numpy"),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "git_commit": _git_commit(),
    }


def write_run_config(run_dir: Path, config: TrainConfig, data_info: dict[str, Any]) -> None:
    write_json(run_dir / CONFIG_FILE, {
        "config": config.to_dict(),
        "data": data_info,
        "environment": environment(),
        "created_utc": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    })


def read_run_config(run_dir: Path) -> dict[str, Any]:
    """The parsed `config.json` of a run folder; MnistCnnError if absent or unreadable."""
    path = Path(run_dir) / CONFIG_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MnistCnnError(f"{run_dir} is not a run folder (no {CONFIG_FILE}); pass a folder made by "
                            f"`mnist-cnn train`") from None
    except (OSError, ValueError) as e:
        raise MnistCnnError(f"cannot read {path}: {e}; the run folder is damaged") from None


def config_from_run(run_dir: Path) -> TrainConfig:
    values = read_run_config(run_dir).get("config", {})
    try:
        return TrainConfig(**values)
    except TypeError as e:
        raise ConfigError(f"{run_dir / CONFIG_FILE} holds settings this version does not know ({e})") from None
