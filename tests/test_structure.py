"""The package's structure: an import graph without cycles that reads top-down, no hidden
imports of fastjac's own modules, and no module too long to find one's way in.

Every ``fastjac/**/*.py`` file is parsed with :mod:`ast` (nothing is imported), and every
import statement counts, including those inside functions.
"""

import ast
import pathlib

import pytest

import fastjac

PACKAGE = pathlib.Path(fastjac.__file__).resolve().parent
MAX_LINES = 1000

# Layers, bottom first: a module may import only modules of a lower layer (or the same
# module's own layer when the pair is listed in _SAME_LAYER_OK). Modules not listed here
# (new ones) are held only to "no cycle".
LAYERS = [
    ["fastjac._kernels"],
    ["fastjac._config", "fastjac._validate", "fastjac.jacobian", "fastjac._fd",
     "fastjac._display", "fastjac._reference", "fastjac._optable",
     "fastjac._threads"],
    ["fastjac._report"],
    ["fastjac.gradcheck"],
    ["fastjac._validation"],
    ["fastjac.ops"],
    ["fastjac.neuron", "fastjac.fuse"],
    ["fastjac.layer"],
    ["fastjac._selfcheck"],
    ["fastjac"],                       # the package: the public API, re-exported
    ["fastjac._bench_worker"],
    ["fastjac._bench_procs"],
    ["fastjac.bench", "fastjac.dask"],
    ["fastjac.cli"],
    ["fastjac.__main__"],
]


def _module_name(path):
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules():
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _resolve(module, is_package, level, name):
    """The absolute name of ``from <level dots><name> import ...`` inside ``module``."""
    if level == 0:
        return name
    base = module.split(".")
    if not is_package:
        base = base[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([name] if name else []))


def _known(name, modules):
    """The fastjac module ``name`` refers to (a module, or the package holding a name)."""
    if name == "fastjac._kernels" or name.startswith("fastjac._kernels."):
        return "fastjac._kernels"  # compiled modules: no .py to parse
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module, path, modules):
    """(fastjac modules imported anywhere in ``module``, hidden imports found)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    is_package = path.name == "__init__.py"
    found, hidden = set(), []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "fastjac":
                    found.add(_known(alias.name, modules))
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, is_package, node.level, node.module or "")
            if target.split(".")[0] != "fastjac":
                continue
            for alias in node.names:  # `from fastjac import neuron` imports a module
                sub = f"{target}.{alias.name}"
                found.add(_known(sub if sub in modules else target, modules))
        elif isinstance(node, ast.Call):
            func = node.func
            fname = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if fname == "__import__":
                hidden.append(f"{module}:{node.lineno}: __import__")
            elif fname == "import_module" and node.args:
                arg = node.args[0]
                text = arg.value if isinstance(arg, ast.Constant) else None
                if isinstance(text, str) and (text.startswith("fastjac") or
                                              text.startswith(".")):
                    hidden.append(f"{module}:{node.lineno}: import_module({text!r})")
    found.discard(None)
    found.discard(module)
    return found, hidden


def _graph():
    modules = _modules()
    graph, hidden = {}, []
    for name, path in modules.items():
        graph[name], h = _imports(name, path, modules)
        hidden += h
    return graph, hidden


def _cycle(graph):
    """One import cycle as a list of modules, or None."""
    state = {}
    stack = []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_graph_sees_function_level_imports():
    graph, _ = _graph()
    # facts of the present layout, so that the parser cannot silently see nothing
    assert "fastjac._validation" in graph["fastjac.ops"]
    assert {"fastjac.ops", "fastjac.neuron", "fastjac.gradcheck"} <= graph["fastjac._selfcheck"]
    assert "fastjac._kernels" in graph["fastjac.ops"]
    assert "fastjac.cli" in graph["fastjac.__main__"]


def test_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_import_graph_has_no_cycle():
    graph, _ = _graph()
    cycle = _cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_no_hidden_imports_of_fastjac_modules():
    _, hidden = _graph()
    assert hidden == [], "importlib/__import__ of fastjac modules:\n" + "\n".join(hidden)


def test_imports_read_top_down():
    graph, _ = _graph()
    rank = {m: i for i, layer in enumerate(LAYERS) for m in layer}
    upward = [f"{m} (layer {rank[m]}) imports {d} (layer {rank[d]})"
              for m, deps in graph.items() if m in rank
              for d in deps if d in rank and rank[d] >= rank[m]]
    assert upward == [], "\n".join(upward)


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: p.name)
def test_no_module_is_too_long(path):
    n = len(path.read_text(encoding="utf-8").splitlines())
    assert n <= MAX_LINES, f"{path.name} has {n} lines (at most {MAX_LINES}): split it by job"


def test_function_level_and_hidden_imports_are_seen(tmp_path):
    path = tmp_path / "mod.py"
    path.write_text(
        "import importlib\n"
        "def f():\n"
        "    from . import cli\n"
        "    import fastjac.neuron as n\n"
        "    return importlib.import_module('fastjac.bench'), __import__('fastjac')\n",
        encoding="utf-8",
    )
    modules = _modules()
    found, hidden = _imports("fastjac.ops", path, modules)
    assert {"fastjac.cli", "fastjac.neuron"} <= found
    assert len(hidden) == 2
