"""The package's shape: layers kept by import-linter, and no import cycle between modules, counting
the imports inside functions too (a cycle hidden in a function body is still a cycle)."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "mnist_cnn"
REPO = PACKAGE.parents[1]


def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """module -> the package's modules it imports, anywhere in its source (functions included)."""
    modules = {module_name(p, root): p for p in root.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = package.split(".")
                base = base[:len(base) - node.level + 1] if node.level else []
                target = ".".join(base + ([node.module] if node.module else []))
                for alias in node.names:  # `from . import x` imports the module x
                    found.add(f"{target}.{alias.name}" if f"{target}.{alias.name}" in modules else target)
        graph[name] = {m for m in found if m in modules and m != name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a path [a, b, ..., a], or None (depth-first search, iterative)."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    for start in sorted(graph):
        if state.get(start):
            continue
        path, stack = [start], [iter(sorted(graph[start]))]
        state[start] = 1
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                state[path.pop()] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(sorted(graph[nxt])))
    return None


def test_no_module_imports_itself_back_even_inside_a_function():
    assert find_cycle(import_graph()) is None, " -> ".join(find_cycle(import_graph()))


def test_the_cycle_finder_finds_a_cycle_hidden_in_a_function(tmp_path):
    root = tmp_path / "mnist_cnn"
    root.mkdir()
    (root / "__init__.py").write_text("")
    (root / "a.py").write_text("from .b import x\n")
    (root / "b.py").write_text("def f():\n    from .a import y\n")
    assert import_graph(root)["mnist_cnn.b"] == {"mnist_cnn.a"}  # the import inside f() counts
    assert find_cycle(import_graph(root)) == ["mnist_cnn.a", "mnist_cnn.b", "mnist_cnn.a"]


def test_the_pipeline_reads_from_ls():
    subpackages = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file())
    assert len(subpackages) >= 4
    assert {"core", "data", "training", "inference", "serving", "cli"} <= set(subpackages)
    loose = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert loose == ["__init__.py", "__main__.py"]  # every module lives in its stage's folder


def test_layers_contract_holds():
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which("lint-imports")
    if lint is None:
        pytest.skip("import-linter is not installed (pip install -e '.[dev]')")
    result = subprocess.run([lint, "--config", str(REPO / "pyproject.toml")], cwd=REPO, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "1 kept, 0 broken" in result.stdout


def test_one_version_everywhere(capsys):
    from importlib import metadata

    import mnist_cnn
    from mnist_cnn.cli.main import main
    from mnist_cnn.core.version import __version__

    assert mnist_cnn.__version__ == __version__ == metadata.version("mnist-cnn")  # pyproject reads it too
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out.strip() == f"mnist-cnn {__version__}"
    stray = [str(p.relative_to(PACKAGE)) for p in PACKAGE.rglob("*.py")
             if p.name != "version.py" and __version__ in p.read_text(encoding="utf-8")]
    assert stray == []  # nobody spells the version out again


def test_every_package_file_is_one_git_would_commit():
    """A .gitignore pattern must not hide package code (a `runs/` pattern once hid runs/__init__.py,
    which Python forgave as a namespace package and setuptools would have left out of the wheel)."""
    if not (REPO / ".git").exists() or shutil.which("git") is None:
        pytest.skip("not a git checkout")
    files = [str(p.relative_to(REPO)) for p in PACKAGE.rglob("*")
             if p.is_file() and (p.suffix == ".py" or {"static", "pretrained"} & set(p.parts))
             and "__pycache__" not in p.parts]
    result = subprocess.run(["git", "check-ignore", "--no-index", "--stdin"], cwd=REPO, input="\n".join(files),
                            capture_output=True, text=True, timeout=60)
    assert result.stdout.split() == []  # check-ignore prints the ignored ones
    folders = {p.parent for p in PACKAGE.rglob("*.py")}
    assert all((folder / "__init__.py").is_file() for folder in folders)
