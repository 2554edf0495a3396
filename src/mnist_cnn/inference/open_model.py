"""`open_model`: the one way a model file becomes a usable model, with what its run says about it.

A shipped model's name is resolved to its file (digest checked); the run folder beside
the file answers which dataset, class names and preprocessing (a damaged run is an error
before the load); the file is loaded by its runtime (`.keras` in Keras' safe mode,
`.onnx` in ONNX Runtime) and checked as a classifier; the "not a digit" rule stored
beside it is read (a stale one is an error). `Predictor`, `evaluate`, `explain`,
`export` and `calibrate` all start here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..core.errors import ModelFileError
from ..runs.run import ModelInfo, Run, dataset_style
from .acceptance import Acceptance, for_model
from .runtimes import InferenceModel, KerasModel, load_model
from .shipped import resolve_model


@dataclass(frozen=True)
class OpenedModel:
    """A loaded, checked model and everything known about it."""

    path: Path  # the model file (a shipped name resolved)
    model: InferenceModel  # callable on float32 (N, 28, 28, 1) batches, any runtime
    run: Run | None  # the run folder it was trained in, if it sits in one
    info: ModelInfo  # dataset, class names, preprocessing, test scores
    rule: Acceptance | None  # the calibrated "not a digit" rule; None if none (or not asked for)

    @property
    def num_classes(self) -> int:
        return self.model.num_classes

    def keras_model(self) -> Any:
        """The `keras.Model` (explain and export need Keras itself); a one-line error for another runtime."""
        if not isinstance(self.model, KerasModel):
            raise ModelFileError(f"{self.path} is not a .keras file; this needs the model.keras written by "
                                 f"`mnist-cnn train`")
        return self.model.model

    def dataset(self, given: str | None = None) -> str:
        """The dataset to test on: `given`, else the one it was trained on, else mnist."""
        return given or self.info.dataset or "mnist"

    def class_names_for(self, dataset_class_names: tuple[str, ...]) -> tuple[str, ...]:
        """The run's class names if they fit the model, else the dataset's, else 0..N-1."""
        for names in (self.info.class_names, dataset_class_names):
            if len(names) == self.num_classes:
                return tuple(names)
        return tuple(str(i) for i in range(self.num_classes))

    def check_classes(self, num_classes: int, dataset: str) -> None:
        """A one-line error if the model predicts another number of classes than `dataset` has."""
        if self.num_classes != num_classes:
            raise ModelFileError(f"{self.path} predicts {self.num_classes} classes but {dataset} has {num_classes}; "
                                 f"pass the --dataset the model was trained on")


def open_model(name_or_path: str | Path, *, rule: bool = True, keras_only: bool = False) -> OpenedModel:
    """Resolve, read the run, load and check: see the module's docstring. `rule=False` skips the
    "not a digit" rule (calibration itself opens a model without one); `keras_only` refuses any
    other file before loading it (explain and export need Keras itself)."""
    path = resolve_model(name_or_path)  # a shipped model's name ("mnist") works as a path
    if keras_only and path.suffix != ".keras":
        raise ModelFileError(f"{path} is not a .keras file; this needs the model.keras written by "
                             f"`mnist-cnn train`")
    run = Run.of_model(path)
    run_info = run.model_info() if run is not None else None  # a damaged run is an error before the load
    model = load_model(path)
    info = model.info or run_info or ModelInfo(dataset=None, class_names=(), style=dataset_style(None))
    if info.class_names and len(info.class_names) != model.num_classes:
        where = "its metadata" if model.info else f"its run ({run.config if run else '?'})"
        raise ModelFileError(f"{path} predicts {model.num_classes} classes but {where} names "
                             f"{len(info.class_names)}; the model and its run do not belong together: pass "
                             f"the model.keras of that run, or train again")
    return OpenedModel(path, model, run, info, for_model(path) if rule else None)
