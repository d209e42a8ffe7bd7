"""``fastjac check``'s options, written from the mutation run of fastjac.gradcheck's
``main_check`` (issue 18; see docs/development.rst). Public behaviour only: the command's
help, its choices, its default seed, its exit status and what ``-v`` prints."""

import numpy as np
import pytest

import fastjac as fj
from fastjac import cli


def _help(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["check", "--help"])
    assert exc.value.code == 0
    return capsys.readouterr().out


def test_help_names_the_command_and_every_option(capsys):
    out = _help(capsys)
    assert out.startswith("usage: fastjac check [-h] [--dtype {float64,float32}] [--seed SEED] [-v]")
    for text in ("Validate every fastjac kernel against central finite differences.",
                 "dtype to check (repeatable; default both)",
                 "seed of the random points",
                 "print failing reports"):
        assert text in out, text


def test_dtype_choices(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["check", "--dtype", "float16"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def _table(capsys, *args):
    code = cli.main(["check", "--dtype", "float32", *args])
    out = capsys.readouterr().out
    assert code == 0, out
    return out


def test_default_seed_is_0_and_the_seed_moves_the_points(capsys):
    default = _table(capsys)
    assert default == _table(capsys, "--seed", "0")  # same points, same numbers
    assert default != _table(capsys, "--seed", "1")
    assert "float64" not in default  # --dtype float32 checks float32 only


def test_both_dtypes_by_default(capsys):
    assert cli.main(["check"]) == 0
    rows = capsys.readouterr().out.splitlines()
    assert any(" float64 " in r for r in rows) and any(" float32 " in r for r in rows)


def test_verbose_prints_the_failing_report(monkeypatch, capsys):
    monkeypatch.setattr(fj.exp, "derivative", lambda x, **kw: np.exp(x) * (1 + 1e-3))
    assert cli.main(["check", "--dtype", "float64"]) == 1
    quiet = capsys.readouterr().out
    assert cli.main(["check", "--dtype", "float64", "--verbose"]) == 1
    loud = capsys.readouterr().out
    assert loud.startswith(quiet)  # the table, then the failing rows' full reports
    extra = loud[len(quiet):]
    assert "exp.derivative" in extra and "exceed their bound" in extra
    assert cli.main(["check", "--dtype", "float64", "-v"]) == 1
    assert capsys.readouterr().out == loud
