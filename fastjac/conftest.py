"""pytest configuration for the package: what ``--doctest-modules fastjac`` collects.

``python -m pytest --doctest-modules fastjac`` runs every Examples section of the package's
docstrings. Modules that must not be imported by the collector are left out: the scripts
that generate the kernels' tables and polynomials (``_kernels/_gen_*.py``: one writes a
header when imported, another needs mpmath), ``__main__`` (it runs the command line), and
:mod:`fastjac.dask` when dask is not installed (it is in the ``test`` extra, so CI runs it).
"""

import importlib.util

collect_ignore = ["__main__.py"]
collect_ignore_glob = ["_kernels/_gen_*.py"]
if importlib.util.find_spec("dask") is None:
    collect_ignore.append("dask.py")
