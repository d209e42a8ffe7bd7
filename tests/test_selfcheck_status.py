"""Skipped is not passed (issue 18): the selfcheck's summary and exit status.

They check public behaviour: the report of ``fastjac.selfcheck(...)`` (its truth value,
its rows, its printed summary line) and the exit status of ``fastjac check``
(``fastjac.cli.main(["check", ...])``).

What they require:

* a selfcheck in which nothing was checked (every row skipped) is a failure: the report
  is falsy, its summary does not say ALL PASSED, and ``fastjac check`` exits 1;
* a selfcheck with some rows skipped says how many in its summary line, and still passes
  (exit 0) when every row that ran passed;
* a real failure still exits 1 (the planted error is a wrong derivative).

A row is skipped when its check compared no entry (every point on a kink or outside the
function's domain); the tests plant that by making chosen cases' reports say so.
"""

import re

import numpy as np
import pytest

import fastjac as fj
from fastjac import _selfcheck, cli


def _summary(report):
    return str(report).strip().splitlines()[-1]


def _count(line, word):
    m = re.search(rf"(\d+) {word}", line)
    assert m, (word, line)
    return int(m.group(1))


def _compare_nothing(monkeypatch, which):
    """Make the selfcheck cases whose label satisfies ``which`` compare no entry: their
    reports are the real ones with nothing counted as compared."""
    real = _selfcheck._selfcheck_cases

    def cases(dt, rng, *args, **kwargs):
        for label, thunk in real(dt, rng, *args, **kwargs):
            if which(label):
                def empty(thunk=thunk):
                    rep = thunk()
                    rep.n_checked = 0
                    return rep
                yield label, empty
            else:
                yield label, thunk
    monkeypatch.setattr(_selfcheck, "_selfcheck_cases", cases)


@pytest.fixture
def no_library(monkeypatch):
    _compare_nothing(monkeypatch, lambda label: True)


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
    _compare_nothing(monkeypatch, lambda label: label.startswith("neuron."))
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
    _compare_nothing(monkeypatch, lambda label: label.startswith("neuron."))
    monkeypatch.setattr(fj.exp, "derivative", lambda x, **kw: np.exp(x) * (1 + 1e-6))
    r = fj.selfcheck(dtypes=("float64",))
    assert not r
    assert [row.op for row in r.rows if row.status == "FAILED"] == ["exp.derivative"]
    assert cli.main(["check", "--dtype", "float64"]) == 1
    capsys.readouterr()
