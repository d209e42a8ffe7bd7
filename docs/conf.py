"""Sphinx configuration of the fastjac documentation.

Build it with ``python -m sphinx -W -b html docs docs/_build/html`` after
``pip install -e ".[docs]"``. Every warning is an error (``-W``), cross-references are
nitpicky, and every public name of :mod:`fastjac` must appear in ``docs/api/index.rst``
(checked below at the start of each build).
"""

import os
import re
import sys

try:
    import fastjac
except ImportError:
    # After `pip install ".[docs]"` (not -e), `python -m sphinx` run from the repository
    # puts the source tree first on sys.path, and it has no compiled kernels: document
    # the installed package instead.
    _root = os.path.abspath(os.path.join(os.path.dirname(__file__), os.pardir))
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _root]
    for _name in [m for m in sys.modules if m == "fastjac" or m.startswith("fastjac.")]:
        del sys.modules[_name]
    import fastjac

project = "fastjac"
author = "the fastjac developers"
copyright = "2026, the fastjac developers"
version = release = fastjac.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "**/sg_execution_times.rst", "auto_examples/*.ipynb"]
root_doc = "index"
default_role = "py:obj"      # `name` in a docstring is a cross-reference
nitpicky = True              # ... and every cross-reference must resolve
today_fmt = "%Y-%m-%d"

# ------------------------------------------------------------------ API reference
autosummary_generate = True
autosummary_ignore_module_all = False      # a module's members are its __all__
autosummary_imported_members = True
autodoc_default_options = {"member-order": "bysource"}
autodoc_typehints = "none"                 # the numpydoc sections say the types

numpydoc_show_class_members = False        # the class templates list them instead
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = True
numpydoc_validation_checks = {"GL06", "GL07", "SA04", "RT03"}   # unknown/misordered sections
# Builtin and NumPy type words are shown as plain names (no intersphinx, see below) instead
# of numpydoc's default python:/numpy: targets.
_PLAIN = ("None", "bool", "boolean", "True", "False", "list", "tuple", "str", "string",
          "dict", "float", "int", "callable", "iterable", "sequence", "contextmanager",
          "namedtuple", "generator", "array_like", "array-like", "scalar", "object")
numpydoc_xref_aliases = {name: name for name in _PLAIN}
numpydoc_xref_aliases.update({
    "Diagonal": "fastjac.Diagonal",
    "Column": "fastjac.Column",
    "Row": "fastjac.Row",
    "RowScaled": "fastjac.RowScaled",
    "Dense": "fastjac.Dense",
    "Jacobian": "fastjac.Jacobian",
    "UnaryOp": "fastjac.UnaryOp",
    "BinaryOp": "fastjac.BinaryOp",
    "Fused": "fastjac.Fused",
    "GradCheckReport": "fastjac.GradCheckReport",
    "FitResult": "fastjac.neuron.FitResult",
    "Entry": "fastjac.gradcheck.Entry",
    "SelfCheckReport": "fastjac.SelfCheckReport",
})
# Words of the type lines that are not names ("array_like, shape (N, n), optional").
numpydoc_xref_ignore = {
    "optional", "default", "of", "or", "shape", "and", "tuple", "pair", "None",
    "array_like", "scalar", "N", "n", "m", "k", "epochs", "run", "Dask", "array",
    "callable", "str", "int", "float", "bool", "list", "dict", "iterable", "same",
    "as", "the", "a", "an", "like", "x", "w", "ndarray", "float64", "float32",
    "dtype", "numpy", "sequence", "index",
}

# No network at build time, so no intersphinx: names of NumPy, Dask and the Python
# standard library are written as plain references and not resolved.
nitpick_ignore_regex = [
    (r"(py:.*|std:term|std:ref|std:label)", r"(python|numpy):.*"),   # numpydoc's aliases
    (r"py:.*", r"(numpy|np|dask|distributed|tqdm|matplotlib|typing|collections)(\..*)?"),
    (r"py:.*", r"(int|float|bool|str|bytes|tuple|list|dict|object|callable|type|"
               r"Exception|ValueError|TypeError|ImportError|FloatingPointError|"
               r"AssertionError|NamedTuple|array_like|array-like|None|True|False|boolean|string|"
               r"iterable|sequence|contextmanager|namedtuple|generator|scalar)"),
]

# ----------------------------------------------------------------------- gallery
# Every script in examples/ is run at build time (filename_pattern matches them all, so
# they keep their names and stay plain `python examples/NAME.py` scripts); its output
# and matplotlib figures appear on its page. Under CI=true the examples use small sizes.
sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": re.escape(os.sep),
    "ignore_pattern": r"__init__\.py",
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "remove_config_comments": True,
    "show_memory": False,
    "capture_repr": (),
    "matplotlib_animations": False,
    "image_scrapers": ("matplotlib",),
    "reset_modules": ("matplotlib",),
    "min_reported_time": 1,
    "write_computation_times": False,
}

# ------------------------------------------------------------------------- theme
html_theme = "pydata_sphinx_theme"
html_title = f"fastjac {release}"
html_static_path = ["_static"]
html_css_files = ["fastjac.css"]
html_show_sourcelink = False
html_theme_options = {
    "navbar_align": "left",
    "header_links_before_dropdown": 6,
    "show_toc_level": 2,
    "navigation_with_keys": False,
    # API and gallery pages have code and wide signatures: give them the full width
    "secondary_sidebar_items": {"api/generated/*": [],
                                "auto_examples/*": []},
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_context = {"default_mode": "light"}
# Pages without sub-pages need no left sidebar (it would be an empty "Section Navigation").
html_sidebars = {page: [] for page in ("index", "getting_started", "performance", "cli",
                                       "development", "changelog")}


# ----------------------------------------------------- every public name documented
def _check_api_covers_all(app):
    """Warn (an error under -W) for a name in fastjac.__all__ or a public submodule's
    __all__ that docs/api/ does not list."""
    api_dir = os.path.join(app.srcdir, "api")
    text = ""
    for name in sorted(os.listdir(api_dir)):
        if name.endswith(".rst"):
            with open(os.path.join(api_dir, name), encoding="utf-8") as f:
                text += f.read()
    listed = set(re.findall(r"^\s{3,}(fastjac(?:\.\w+)*|\w+)\s*$", text, re.M))
    missing = [n for n in fastjac.__all__
               if n != "__version__" and n not in listed and f"fastjac.{n}" not in listed]
    if missing:
        from sphinx.util import logging
        logging.getLogger(__name__).warning(
            "fastjac.__all__ names missing from docs/api/index.rst: %s", ", ".join(missing))


def _resolve_reexported(app, env, node, contnode):
    """Resolve ``fastjac.jacobian.Diagonal`` or a bare ``selfcheck`` in a docstring of a
    defining module to the documented re-export ``fastjac.Diagonal`` / ``fastjac.selfcheck``."""
    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"]
    parts = target.split(".")
    if len(parts) > 2 or (len(parts) == 2 and parts[0] != "fastjac"):
        if not (parts[0] == "fastjac" and parts[1] in ("ops", "jacobian", "gradcheck",
                                                       "_config")):
            return None
    name = parts[-1]
    if name not in fastjac.__all__:
        return None
    py = env.get_domain("py")
    return py.resolve_xref(env, node["refdoc"], app.builder, node["reftype"],
                           f"fastjac.{name}", node, contnode)


def _skip_namedtuple_fields(app, what, name, obj, skip, options):
    """A NamedTuple's fields are described in its Attributes section already."""
    if (getattr(obj, "__doc__", None) or "").startswith("Alias for field number"):
        return True
    return None


def setup(app):
    app.connect("builder-inited", _check_api_covers_all)
    app.connect("autodoc-skip-member", _skip_namedtuple_fields)
    app.connect("missing-reference", _resolve_reexported)
