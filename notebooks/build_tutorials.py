"""Build (and optionally run) the tutorial notebooks from one source: `tutorial_cells.py`.

    python notebooks/build_tutorials.py            # write tutorial.ipynb and tutorial.pt-BR.ipynb, no outputs
    python notebooks/build_tutorials.py --execute  # ... and run both top to bottom, storing the outputs
    python notebooks/build_tutorials.py --execute --quick   # same on a small subset, 1 epoch
    python notebooks/build_tutorials.py --check    # exit 1 if the stored notebooks differ from the source

Both notebooks get the same code cells but one: the first sets `LANG` to the notebook's
language ("en" or "pt-BR"), which every figure and printed summary takes its words from
(the package's message table). The Markdown differs (English, Brazilian Portuguese).
Exercise solutions are code cells stored collapsed (`source_hidden`). Execution runs each notebook in a fresh `python3` kernel with the
notebooks folder as working directory and this checkout's `src/` first on PYTHONPATH;
MNIST is found the package's usual way (`MNIST_CNN_DATA_DIR`, the user cache, ...).
Stored outputs are tidied: no TensorFlow start-up chatter, no text stand-in beside a
picture, no absolute folder of the machine that ran them.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent
SRC = HERE.parent / "src"
QUICK_ENV = "MNIST_CNN_TUTORIAL_QUICK"  # "1": small subset and one epoch (what the tests run)
NOTEBOOKS = {"en": HERE / "tutorial.ipynb", "pt": HERE / "tutorial.pt-BR.ipynb"}
LANGUAGE_TAGS = {"en": "en", "pt": "pt-BR"}
LANG_TOKEN = "__LANG__"  # in a code cell: replaced by the notebook's language tag
CELL_TIMEOUT_S = 1800  # one cell may train the full model on a slow CPU
# TensorFlow's C++ start-up notes, written to stderr before its log level applies; they
# say nothing about the lesson, so stored outputs leave them out.
# TensorFlow's Python warnings (tf.function retracing, with a memory address): about TensorFlow, not
# the lesson, and different on every run.
TF_WARNINGS = re.compile(r"^WARNING:tensorflow:.*\n?", re.MULTILINE)
TF_CHATTER = re.compile(r"^(WARNING: All log messages before absl::InitializeLog\(\)|I0000 |"
                        r"To enable the following instructions:).*\n?", re.MULTILINE)

sys.path.insert(0, str(HERE))
from tutorial_cells import CELLS  # noqa: E402  (beside this file, not a package)


def build(lang: str) -> nbformat.NotebookNode:
    """The notebook for `lang` ("en" or "pt") without outputs."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.metadata["language"] = LANGUAGE_TAGS[lang]
    for index, cell in enumerate(CELLS):
        # Stable ids keep diffs small when the notebooks are rebuilt.
        if cell["type"] == "code":
            new = nbformat.v4.new_code_cell(cell["source"].strip("\n").replace(LANG_TOKEN, LANGUAGE_TAGS[lang]))
            if cell.get("hidden"):  # an exercise's solution: try first, then unfold it
                new.metadata["jupyter"] = {"source_hidden": True}
        else:
            new = nbformat.v4.new_markdown_cell(cell[lang].strip("\n"))
        new["id"] = f"cell-{index:03d}"
        nb.cells.append(new)
    return nb


def cell_sources(nb: nbformat.NotebookNode) -> list[tuple[str, str]]:
    """(cell type, source) per cell: what `--check` compares (outputs are not part of the source)."""
    return [(cell.cell_type, cell.source) for cell in nb.cells]


def kernel_env(quick: bool) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env[QUICK_ENV] = "1" if quick else env.get(QUICK_ENV, "0")
    return env


def execute(nb: nbformat.NotebookNode, quick: bool, timeout_s: int = CELL_TIMEOUT_S) -> nbformat.NotebookNode:
    """Run `nb` top to bottom in a fresh kernel; raises nbclient's CellExecutionError on any error."""
    from nbclient import NotebookClient  # noqa: PLC0415  (only needed to execute)

    client = NotebookClient(nb, timeout=timeout_s, kernel_name="python3",
                            resources={"metadata": {"path": str(HERE)}})
    client.execute(env=kernel_env(quick))  # forwarded to the kernel manager's start_kernel
    return tidy_outputs(nb)


def _is_blank_display(output: nbformat.NotebookNode) -> bool:
    # Keras' rich console leaves an empty <pre></pre> display when a summary goes to print_fn.
    return output.output_type == "display_data" and not output.get("data", {}).get("text/plain", "x").strip()


def local_folders() -> dict[str, str]:
    """Absolute folders of this machine as they may appear in outputs, and what stands for them.

    Each folder in both spellings, as given and with symbolic links resolved: a data folder
    reached through a link is printed either way, depending on who resolved it.
    """
    named = [(HERE, ""), (HERE.parent, ""), (Path.home(), "~/")]
    for variable in ("MNIST_CNN_DATA_DIR", "MNIST_CNN_RUNS_DIR"):
        if os.environ.get(variable):
            named.append((Path(os.environ[variable]), f"${variable}/"))
    folders = {}
    for folder, stand_in in named:
        for spelling in (Path(os.path.abspath(folder)), folder.resolve()):
            folders.setdefault(str(spelling).rstrip(os.sep) + os.sep, stand_in)
    return dict(sorted(folders.items(), key=lambda item: -len(item[0])))  # the longest prefix first


def _relative(text: str) -> str:
    for folder, stand_in in local_folders().items():
        text = text.replace(folder, stand_in)
    return text


def tidy_outputs(nb: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Drop TensorFlow's start-up chatter on stderr, empty displays and the text stand-ins of
    pictures ("<IPython.core.display.Image object>"), and write this machine's folders relative."""
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        kept = []
        for output in cell.outputs:
            if output.output_type == "stream":
                output.text = _relative(TF_CHATTER.sub("", output.text) if output.name == "stderr" else output.text)
                output.text = TF_WARNINGS.sub("", output.text)
                if not output.text.strip():
                    continue
            if _is_blank_display(output):
                continue
            data = output.get("data", {})
            if any(kind.startswith("image/") for kind in data):
                data.pop("text/plain", None)  # the picture is the output; its repr says nothing
            elif "text/plain" in data:
                data["text/plain"] = _relative(data["text/plain"])
            kept.append(output)
        cell.outputs = kept
    return nb


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--execute", action="store_true", help="run both notebooks and store their outputs")
    parser.add_argument("--quick", action="store_true", help=f"with --execute: set {QUICK_ENV}=1 (subset, 1 epoch)")
    parser.add_argument("--check", action="store_true", help="only check the stored notebooks match the source")
    args = parser.parse_args(argv)

    if args.check:
        stale = [str(path) for lang, path in NOTEBOOKS.items()
                 if not path.exists() or cell_sources(nbformat.read(path, as_version=4)) != cell_sources(build(lang))]
        for path in stale:
            print(f"out of date: {path} (run python notebooks/build_tutorials.py)")
        return 1 if stale else 0

    for lang, path in NOTEBOOKS.items():
        nb = build(lang)
        if args.execute:
            start = time.perf_counter()
            execute(nb, quick=args.quick)
            print(f"executed {path.name} in {time.perf_counter() - start:.0f} s")
        nbformat.validate(nb)
        nbformat.write(nb, path)
        print(f"written {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
