"""Skipped is not passed (issue 18): the selfcheck's summary and exit status.

NOTE FOR THE LEAD: these tests specify the behaviour that the *house* helper implements on
its branch (issue 16, "selfcheck skip != pass"). They FAIL on a tree without that change
and pass once the house branch is merged. They use only public behaviour: the report of
``fastjac.selfcheck(...)`` (its truth value, its rows, its printed summary line) and the
exit status of ``fastjac check`` (``fastjac.cli.main(["check", ...])``), so they do not
depend on how gradcheck.py is split into modules.

What they require:

* a selfcheck in which nothing was checked (every row skipped) is a failure: the report
  is falsy, its summary does not say ALL PASSED, and ``fastjac check`` exits 1;
* a selfcheck with some rows skipped says how many in its summary line, and still passes
  (exit 0) when every row that ran passed;
* a real failure still exits 1 (the planted error is a wrong derivative).

Parts of the library are made unavailable by putting ``None`` in ``sys.modules`` (an
import of it then raises ImportError, as for a missing extension module).
"""

import re
import sys

import numpy as np
import pytest

import fastjac as fj
from fastjac import cli


def _summary(report):
    return str(report).strip().splitlines()[-1]


def _count(line, word):
    m = re.search(rf"(\d+) {word}", line)
    assert m, (word, line)
    return int(m.group(1))


@pytest.fixture
def no_library(monkeypatch):
    monkeypatch.setitem(sys.modules, "fastjac.ops", None)
    monkeypatch.setitem(sys.modules, "fastjac.neuron", None)


def test_all_skipped_is_a_failure(no_library, capsys):
    r = fj.selfcheck(dtypes=("float64",))
    assert r.rows and all(row.status == "skipped" for row in r.rows), str(r)
    assert not r, "a selfcheck that checked nothing must not pass"
    line = _summary(r)
    assert "ALL PASSED" not in line, line
    assert _count(line, "passed") == 0
    assert _count(line, "skipped") == len(r.rows)
    assert cli.main(["check", "--dtype", "float64"]) == 1
    out = capsys.readouterr().out
    assert "ALL PASSED" not in out


def test_some_skipped_says_so_and_passes(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "fastjac.neuron", None)
    r = fj.selfcheck(dtypes=("float64",))
    n_skip = sum(row.status == "skipped" for row in r.rows)
    n_pass = sum(row.status == "passed" for row in r.rows)
    assert n_skip >= 1 and n_pass >= 10, str(r)
    assert r, str(r)
    line = _summary(r)
    assert _count(line, "skipped") == n_skip, line
    assert _count(line, "passed") == n_pass, line
    assert cli.main(["check", "--dtype", "float64"]) == 0
    assert f"{n_skip} skipped" in capsys.readouterr().out


def test_full_selfcheck_has_nothing_skipped_and_exits_0(capsys):
    r = fj.selfcheck(dtypes=("float32",))
    assert r and not [row.op for row in r.rows if row.status != "passed"], str(r)
    line = _summary(r)
    assert _count(line, "passed") == len(r.rows) and _count(line, "skipped") == 0
    assert cli.main(["check", "--dtype", "float32"]) == 0
    capsys.readouterr()


def test_skipped_rows_do_not_hide_a_failure(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "fastjac.neuron", None)
    monkeypatch.setattr(fj.exp, "derivative", lambda x, **kw: np.exp(x) * (1 + 1e-6))
    r = fj.selfcheck(dtypes=("float64",))
    assert not r
    assert [row.op for row in r.rows if row.status == "FAILED"] == ["exp.derivative"]
    assert cli.main(["check", "--dtype", "float64"]) == 1
    capsys.readouterr()
