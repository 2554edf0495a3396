"""The README and the documentation pages: their links lead somewhere, they name no path outside
the repository, and the Python API block (docs/python-api.md) runs as written: every command's
library function, end to end."""

from __future__ import annotations

import re
import shutil

import pytest
from conftest import REPO

pytestmark = pytest.mark.slow


def python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


# The documentation site's pages (docs/, built by mkdocs.yml), as paths relative to the repository.
DOCS_PAGES = sorted(page.relative_to(REPO).as_posix() for page in (REPO / "docs").rglob("*.md"))
PYTHON_API_PAGE = "docs/python-api.md"
LINK = re.compile(r"\]\(([^)#\s]*)(?:#([^)\s]+))?\)")


def test_readme_names_no_path_outside_the_repository():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    assert "../" not in text, [line for line in text.splitlines() if "../" in line]


@pytest.mark.parametrize("doc", DOCS_PAGES + ["mkdocs.yml"])
def test_docs_name_no_path_outside_the_repository(doc):
    source = REPO / doc
    text = source.read_text(encoding="utf-8")
    # No sibling folder of the clone (../shared) and no absolute path of the machine that wrote it.
    outside = [line for line in text.splitlines()
               if "../shared" in line or re.search(r"(?<![\w.])/(work|home|root|tmp|Users)/", line)]
    assert outside == []
    # A page's links stay inside docs/: MkDocs publishes nothing else.
    docs = (REPO / "docs").resolve()
    for target, _ in LINK.findall(text):
        if target and not target.startswith(("http://", "https://", "mailto:")):
            assert (source.parent / target).resolve().is_relative_to(docs), target


def heading_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives a Markdown file's headings (code blocks left out)."""
    anchors, seen = set(), {}
    for line in re.sub(r"```.*?```", "", markdown, flags=re.DOTALL).splitlines():
        heading = re.match(r"#{1,6} (.+)", line)
        if heading:
            slug = re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower()).replace(" ", "-")
            anchors.add(f"{slug}-{seen[slug]}" if slug in seen else slug)
            seen[slug] = seen.get(slug, 0) + 1
    return anchors


@pytest.mark.parametrize("doc", ["README.md", "benchmarks/README.md"] + DOCS_PAGES)
def test_links_lead_to_files_and_headings_that_exist(doc):
    source = REPO / doc
    broken = []
    for target, anchor in LINK.findall(source.read_text(encoding="utf-8")):
        if target.startswith(("http://", "https://", "mailto:")):
            continue
        path = source.parent / target if target else source
        if not path.exists():
            broken.append(target)
        elif anchor and path.suffix == ".md" and anchor not in heading_anchors(path.read_text(encoding="utf-8")):
            broken.append(f"{target}#{anchor}")
    assert broken == []


def test_python_api_block_runs(shared_data, isolated_env, monkeypatch, capsys):
    (block,) = [b for b in python_blocks((REPO / PYTHON_API_PAGE).read_text(encoding="utf-8")) if "resolve_config" in b]
    monkeypatch.setenv("MNIST_CNN_DATA_DIR", str(shared_data))
    shutil.copy(REPO / "notebooks" / "my_digit.png", isolated_env / "my_digit.png")
    exec(compile(block, PYTHON_API_PAGE, "exec"), {})  # noqa: S102  (our own documentation)
    out = capsys.readouterr().out.splitlines()
    assert "[None, None, None, None]" in out and "60000" in out and "True" in out
    assert (isolated_env / "explain.png").read_bytes()[:4] == b"\x89PNG"
    assert (isolated_env / "runs" / "api-demo-eval" / "report.md").is_file()
    assert out[-1].startswith("[{'class': '7'")
