"""Facts about the machine and the process: usable cores, the CPU's name, package versions, the
TensorFlow kernels asked for, and TensorFlow imported with its start-up noise silenced. Nothing
runs at import.
"""

from __future__ import annotations

import contextlib
import os
import platform
import sys
from importlib import metadata
from typing import Iterator

MAX_THREADS = 4  # a tiny model's batch gains little past this, and a server has other threads


def usable_cores() -> int:
    """The cores this process may run on: honours taskset and cgroup CPU sets, where os.cpu_count() does not."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def default_threads() -> int:
    """Threads for one model call: the usable cores, at most MAX_THREADS."""
    return max(1, min(usable_cores(), MAX_THREADS))


def version_of(package: str) -> str | None:
    """An installed distribution's version, or None."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


# The vector and matrix units CPU speed depends on. The model name does not say which a VM has:
# the shipped mnist in int8 took 0.37 ms an image on one "AMD EPYC" VM, 1.6 ms on another
# that has AVX2 but no AVX-512 (benchmarks/README.md, "Where a number ran").
CPU_FEATURES = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile", "amx_bf16", "amx_int8")


def _cpuinfo() -> list[str] | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            return f.read(200_000).splitlines()
    except OSError:
        return None


def _flags(lines: list[str]) -> list[str]:
    return next((line.split(":", 1)[1].split() for line in lines if line.startswith("flags")), [])


def cpu_model() -> str | None:
    """The processor's name (Linux), marked "(AMX)" where it has bfloat16 matrix units: results differ by it."""
    lines = _cpuinfo()
    if lines is None:
        return platform.processor() or None
    name = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), None)
    return f"{name} (AMX)" if name and "amx_bf16" in _flags(lines) else name


def cpu_features() -> list[str] | None:
    """Which of CPU_FEATURES the processor has (Linux; None where it cannot be read): a VM's
    model name alone does not say whether it has AVX-512 or AMX."""
    lines = _cpuinfo()
    if lines is None:
        return None
    flags = set(_flags(lines))
    return [feature for feature in CPU_FEATURES if feature in flags]


ONEDNN_SWITCH = "TF_ENABLE_ONEDNN_OPTS"


def prefer_onednn() -> None:
    """Ask TensorFlow for its oneDNN kernels on x86 unless the user set TF_ENABLE_ONEDNN_OPTS.

    TensorFlow turns them on by itself only on CPUs with AVX-512 VNNI or BF16 or AMX; without
    (an AVX2-only AMD EPYC VM) its own kernels made the `fast` recipe's training 1.37x longer
    (20.4 against 14.9 s; benchmarks/README.md, "oneDNN on every x86 CPU"). TensorFlow reads
    the switch once, when it is imported, so the package's `__init__` calls this before any
    module can import TensorFlow; later it changes nothing. Environment only: no file is read
    (the CPU is told by the architecture's name).
    """
    if platform.machine().lower() in ("x86_64", "amd64"):
        os.environ.setdefault(ONEDNN_SWITCH, "1")


def onednn_setting() -> str | None:
    """TF_ENABLE_ONEDNN_OPTS as this process has it (None: TensorFlow decides by the CPU), for results files."""
    return os.environ.get(ONEDNN_SWITCH)


def onednn_in_use() -> bool | None:
    """Whether TensorFlow runs its oneDNN kernels in this process, as TensorFlow itself decided (None:
    TensorFlow not loaded, or it cannot say). Differs from the setting where TensorFlow was
    imported before `mnist_cnn` set it."""
    if "tensorflow" not in sys.modules:
        return None
    try:
        from tensorflow.python.util import _pywrap_util_port  # noqa: PLC0415  (private, hence the guard)

        return bool(_pywrap_util_port.IsMklEnabled())
    except (ImportError, AttributeError):
        return None


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Point file descriptor 2 at /dev/null: C++ libraries (TensorFlow, tf2onnx) log there, past Python's control."""
    sys.stderr.flush()
    saved, devnull = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


# Optional packages Keras imports if they are installed, for what no command here uses: IPython
# (a notebook display of saved files) and matplotlib.pyplot (`keras.visualization`; our plots use
# matplotlib's Figure API). Half a second of a command's start on a slow 2-core CPU
# (benchmarks/README.md, "Where a fast run spends its time outside training").
KERAS_EXTRAS = ("IPython", "matplotlib.pyplot")
_skip_keras_extras = False


def skip_keras_extras() -> None:
    """Have `quiet_tensorflow` import Keras without KERAS_EXTRAS (the command line's choice: its
    process never uses them). Keras then takes them for absent in this process; importing
    them afterwards works as ever. Not for a library user's process, which may want them."""
    global _skip_keras_extras
    _skip_keras_extras = True


@contextlib.contextmanager
def _hidden(names: tuple[str, ...]) -> Iterator[None]:
    """While inside, `import NAME` raises ImportError (as for a package not installed) for
    each of `names` not imported yet; afterwards they import normally."""
    hidden = [name for name in names if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]  (the import system's "not available")
    try:
        yield
    finally:
        for name in hidden:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]


def quiet_tensorflow() -> None:
    """Import TensorFlow and Keras with their C++ start-up chatter silenced (once; a no-op after).

    TF 2.2x prints oneDNN and absl notes straight to file descriptor 2 while importing,
    before TF_CPP_MIN_LOG_LEVEL is honoured, so the descriptor itself is silenced for the
    import and the first op. Python exceptions still surface after it is restored.
    After `skip_keras_extras`, Keras is imported without KERAS_EXTRAS.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" in sys.modules:
        return
    with quiet_stderr(), _hidden(KERAS_EXTRAS if _skip_keras_extras else ()):
        import keras  # noqa: F401
        import tensorflow as tf

        tf.constant(0)  # the second batch of notes comes with the first op
