"""The models shipped with the package (`pretrained/`), by name: where they are, their digests.

A shipped model's name works anywhere a model path does (`resolve_model`). Nothing is
read at import.
"""

from __future__ import annotations

from pathlib import Path

from ..core.errors import ModelFileError
from ..core.hashing import sha256_file
from ..runs.run import ModelInfo, Run

# Names of models shipped with the package -> their file under src/mnist_cnn/ (package data).
# Adding a bundled model is one line here; `resolve_model` then accepts its name anywhere a path is.
BUNDLED_MODELS: dict[str, str] = {"mnist": "pretrained/mnist/model.keras",
                                   "fashion-mnist": "pretrained/fashion-mnist/model.keras"}


DIGEST_SUFFIX = ".sha256"  # beside a bundled model: "<hex digest>  model.keras", as sha256sum writes


def bundled_path(name: str) -> Path:
    """Where the bundled model `name` is installed (not checked)."""
    from importlib import resources

    return Path(str(resources.files("mnist_cnn") / BUNDLED_MODELS[name]))


def resolve_model(name_or_path: str | Path) -> Path:
    """A bundled model's name -> its file, checked against its SHA-256; anything else is taken as a
    path (checked by the loader). ModelFileError (one line) for a bundled file that fails its digest."""
    key = str(name_or_path)
    if key not in BUNDLED_MODELS:
        return Path(name_or_path)
    path = bundled_path(key)
    check_digest(path, key)
    return path


def check_digest(path: Path, name: str) -> None:
    """Compare `path` with the digest written beside it when it was shipped."""
    digest_file = path.with_name(path.name + DIGEST_SUFFIX)
    try:
        expected = digest_file.read_text(encoding="ascii").split()[0]
        actual = sha256_file(path)
    except (OSError, UnicodeDecodeError, IndexError):
        raise ModelFileError(f"the shipped model {name!r} is missing or unreadable at {path}; reinstall mnist-cnn "
                             f"(pip install --force-reinstall mnist-cnn)") from None
    if actual != expected:
        raise ModelFileError(f"the shipped model {name!r} fails its SHA-256 check ({path} is damaged or was "
                             f"changed); reinstall mnist-cnn (pip install --force-reinstall mnist-cnn)")


def shipped_models() -> dict[str, ModelInfo]:
    """The models bundled with the package, by name: their ModelInfo (read from their files, not loaded)."""
    found = {}
    for name in BUNDLED_MODELS:
        run = Run.of_model(bundled_path(name))
        if run is not None:
            found[name] = run.model_info()
    return found
