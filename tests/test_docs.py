"""The documentation's code runs: every ``.. code-block:: python`` of the docs/ pages.

The blocks of one page run in order in one namespace (a page builds on its earlier
blocks), so the user guide cannot drift from what the library does. The Sphinx build
itself (``python -m sphinx -W``) and the doctests (``--doctest-modules``) run in .ci/run.
"""

import pathlib
import re

import pytest

import fastjac

ROOT = pathlib.Path(fastjac.__file__).resolve().parent.parent
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("*.rst")) + sorted(DOCS.glob("guide/*.rst")) if DOCS.is_dir() else []


def _python_blocks(text):
    """The bodies of the ``.. code-block:: python`` directives, dedented."""
    blocks = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        if re.match(r"\s*\.\. code-block:: python\s*$", lines[i]):
            indent = len(lines[i]) - len(lines[i].lstrip())
            i += 1
            body = []
            while i < len(lines) and (not lines[i].strip() or
                                      len(lines[i]) - len(lines[i].lstrip()) > indent):
                body.append(lines[i])
                i += 1
            code = [line for line in body]
            width = min(len(c) - len(c.lstrip()) for c in code if c.strip())
            blocks.append("\n".join(c[width:] for c in code).strip("\n"))
        else:
            i += 1
    return blocks


CODE_PAGES = [p for p in PAGES if _python_blocks(p.read_text(encoding="utf-8"))]


@pytest.mark.parametrize("page", CODE_PAGES, ids=[str(p.relative_to(DOCS)) for p in CODE_PAGES])
def test_page_code_runs(page, capsys):
    blocks = _python_blocks(page.read_text(encoding="utf-8"))
    if any("import dask" in b for b in blocks):
        pytest.importorskip("dask.array")
    namespace = {"__name__": "__docs__"}
    for k, code in enumerate(blocks):
        exec(compile(code, f"{page.name} block {k + 1}", "exec"), namespace)


def test_pages_found():
    if not DOCS.is_dir():
        pytest.skip("docs/ is not shipped with this installation")
    assert len(PAGES) >= 10
    # the user guide shows code: a change to the block parser that found none would make
    # test_page_code_runs check nothing
    assert len(CODE_PAGES) >= 8, [p.name for p in CODE_PAGES]


def test_every_public_name_has_an_api_entry():
    """docs/api/index.rst lists every name of fastjac.__all__ (the -W build checks it too)."""
    index = DOCS / "api" / "index.rst"
    if not index.is_file():
        pytest.skip("docs/ is not shipped with this installation")
    listed = set(re.findall(r"^\s{3,}(fastjac(?:\.\w+)*|\w+)\s*$",
                            index.read_text(encoding="utf-8"), re.M))
    missing = [n for n in fastjac.__all__
               if n != "__version__" and n not in listed and f"fastjac.{n}" not in listed]
    assert not missing, f"add these to docs/api/index.rst: {missing}"
