"""The hand-written ``.pyi`` stubs agree with the compiled modules they describe.

Two checks:

* ``mypy.stubtest`` (mypy is in the ``test`` extra) compares each stub with the imported
  extension: names, parameter names, kinds and defaults. Only the stubs are type-checked
  here; type errors in the rest of the package are another test's business.
* A check that needs nothing but the standard library: every public name of each compiled
  module appears in its stub and vice versa, and every function's parameters (names,
  order, which have defaults) match ``inspect.signature`` of the compiled function
  (Cython's ``binding=True``, the default in Cython 3, makes that work).
"""

import ast
import importlib
import inspect
import os
import pathlib
import subprocess
import sys
import types

import pytest

import fastjac

PACKAGE_DIR = pathlib.Path(fastjac.__file__).resolve().parent
KERNELS_DIR = PACKAGE_DIR / "_kernels"
# Every compiled module is built from a .pyx in fastjac/_kernels (setup.py builds them all).
COMPILED = sorted(p.stem for p in KERNELS_DIR.glob("*.pyx"))

# Names Cython adds to every module that are not part of its API.
CYTHON_ARTIFACTS = {"__test__", "__pyx_capi__"}  # __pyx_capi__: cdef functions a .pxd exports


def _module(name):
    return importlib.import_module(f"fastjac._kernels.{name}")


def _public_names(mod):
    names = set()
    for name, obj in vars(mod).items():
        if name.startswith("_") or name in CYTHON_ARTIFACTS:
            continue
        if isinstance(obj, types.ModuleType):
            continue  # imported modules (numpy, ...) are not the module's API
        names.add(name)
    return names


def _stub_tree(name):
    path = KERNELS_DIR / f"{name}.pyi"
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _stub_public(tree):
    """{name: FunctionDef | None} for the public top-level names a stub declares."""
    out = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            out[node.name] = node
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            out[node.target.id] = None
        elif isinstance(node, ast.Assign):
            for t in node.targets:
                if isinstance(t, ast.Name):
                    out[t.id] = None
        elif isinstance(node, ast.ClassDef):
            out[node.name] = None
    return {k: v for k, v in out.items() if not k.startswith("_")}


def _stub_params(fn):
    """[(name, kind, has_default)] of a stub function, in order."""
    a = fn.args
    params = []
    positional = a.posonlyargs + a.args
    n_defaults = len(a.defaults)
    first_default = len(positional) - n_defaults
    for i, arg in enumerate(positional):
        kind = "POSITIONAL_ONLY" if i < len(a.posonlyargs) else "POSITIONAL_OR_KEYWORD"
        params.append((arg.arg, kind, i >= first_default))
    if a.vararg is not None:
        params.append((a.vararg.arg, "VAR_POSITIONAL", False))
    for arg, default in zip(a.kwonlyargs, a.kw_defaults):
        params.append((arg.arg, "KEYWORD_ONLY", default is not None))
    if a.kwarg is not None:
        params.append((a.kwarg.arg, "VAR_KEYWORD", False))
    return params


def _runtime_params(obj):
    sig = inspect.signature(obj)
    return [
        (p.name, p.kind.name, p.default is not inspect.Parameter.empty)
        for p in sig.parameters.values()
    ]


def test_every_compiled_module_is_found():
    assert "elementwise" in COMPILED


@pytest.mark.parametrize("name", COMPILED)
def test_stub_file_exists(name):
    assert (KERNELS_DIR / f"{name}.pyi").is_file(), (
        f"fastjac/_kernels/{name}.pyx has no hand-written stub {name}.pyi"
    )


@pytest.mark.parametrize("name", COMPILED)
def test_stub_names_match_module(name):
    if not (KERNELS_DIR / f"{name}.pyi").is_file():
        pytest.skip(f"{name}.pyi missing (reported by test_stub_file_exists)")
    mod = _module(name)
    runtime = _public_names(mod)
    stub = set(_stub_public(_stub_tree(name)))
    assert runtime - stub == set(), f"public names of {name} missing from {name}.pyi"
    assert stub - runtime == set(), f"{name}.pyi declares names the module does not have"


@pytest.mark.parametrize("name", COMPILED)
def test_stub_signatures_match_module(name):
    if not (KERNELS_DIR / f"{name}.pyi").is_file():
        pytest.skip(f"{name}.pyi missing (reported by test_stub_file_exists)")
    mod = _module(name)
    checked = 0
    for fname, node in _stub_public(_stub_tree(name)).items():
        obj = getattr(mod, fname, None)
        if node is None or obj is None or not callable(obj):
            continue
        assert _stub_params(node) == _runtime_params(obj), f"{name}.{fname}"
        checked += 1
    assert checked > 0


def test_stub_check_catches_a_wrong_parameter_name():
    # The comparison above is not vacuous: a renamed parameter is seen.
    fn = ast.parse("def reduce(a, b, n_thread=1): ...").body[0]
    from fastjac._kernels import elementwise

    assert _stub_params(fn) != _runtime_params(elementwise.reduce)


@pytest.fixture(scope="module")
def mypy_cache(tmp_path_factory):
    """One mypy cache for the two mypy runs of this module (the second reuses the first)."""
    return str(tmp_path_factory.mktemp("mypy_cache"))


def test_mypy_stubtest(tmp_path, mypy_cache):
    pytest.importorskip("mypy.stubtest")
    stubbed = [n for n in COMPILED if (KERNELS_DIR / f"{n}.pyi").is_file()]
    modules = [f"fastjac._kernels.{n}" for n in stubbed]
    # Check the stubs, not the package's other modules (mypy would otherwise refuse to
    # run stubtest over a type error anywhere in fastjac).
    config = tmp_path / "mypy.ini"
    lines = ["[mypy]", "[mypy-fastjac.*]", "ignore_errors = True"]
    for m in modules:
        lines += [f"[mypy-{m}]", "ignore_errors = False"]
    config.write_text("\n".join(lines) + "\n")
    allowlist = tmp_path / "allowlist.txt"
    allowlist.write_text("".join(rf"fastjac\._kernels\.\w+\.{a}" + "\n" for a in CYTHON_ARTIFACTS))
    env = dict(os.environ, MYPY_CACHE_DIR=mypy_cache)
    proc = subprocess.run(
        [sys.executable, "-m", "mypy.stubtest", "--mypy-config-file", str(config),
         "--allowlist", str(allowlist), *modules],
        cwd=PACKAGE_DIR.parent, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_typed_public_modules_pass_mypy(mypy_cache):
    """The annotated public modules type-check (against the stubs of the kernels)."""
    pytest.importorskip("mypy")
    modules = [PACKAGE_DIR / name for name in ("cli.py", "jacobian.py", "ops.py")]
    env = dict(os.environ, MYPY_CACHE_DIR=mypy_cache)
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--follow-imports=silent", "--ignore-missing-imports",
         *map(str, modules)],
        cwd=PACKAGE_DIR.parent, env=env, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
