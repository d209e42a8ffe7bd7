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
    assert cli.main(["check", "--dtype", "float64", "-v"]) == 1
    loud = capsys.readouterr().out
    assert loud.startswith(quiet)  # the table, then the failing rows' full reports
    extra = loud[len(quiet):]
    assert "exp.derivative" in extra and "exceed their bound" in extra


def test_selfcheck_table_layout():
    """The table ``fastjac check`` prints, row by row (the summary line is tested in
    test_selfcheck_status.py): column widths from the longest op, '-' for a skipped row,
    kinks and details after the status."""
    from fastjac._selfcheck import SelfCheckReport, SelfCheckRow

    rows = [
        SelfCheckRow("exp.derivative", "float64", 1.234e-10, 5.6e-9, "passed"),
        SelfCheckRow("relu.vjp", "float32", 0.0, 3.3e-7, "passed", kinks=2),
        SelfCheckRow("neuron", "float64", 0.0, 0.0, "skipped",
                     detail="fastjac.neuron not available yet"),
        SelfCheckRow("tanh.jvp", "float32", 2.5e-3, 1.2e-7, "FAILED",
                     detail="1 of 24 entries exceed their bound"),
        SelfCheckRow("dot.grad", "float64", float("nan"), 0.0, "error",
                     detail="ValueError: boom"),
    ]
    report = SelfCheckReport(rows)
    assert not report and [r.op for r in report.failures] == ["tanh.jvp", "dot.grad"]
    lines = str(report).splitlines()
    rule = "-" * 55
    assert lines[:-1] == [
        "op              dtype    max rel err      bound  status",
        rule,
        "exp.derivative  float64     1.23e-10    5.6e-09  passed",
        "relu.vjp        float32     0.00e+00    3.3e-07  passed (2 kinks)",
        "neuron          float64            -          -  skipped  "
        "[fastjac.neuron not available yet]",
        "tanh.jvp        float32     2.50e-03    1.2e-07  FAILED  "
        "[1 of 24 entries exceed their bound]",
        "dot.grad        float64          nan    0.0e+00  error  [ValueError: boom]",
        rule,
    ]
    summary = lines[-1]
    for part in ("2 passed", "1 failed", "1 error", "1 skipped"):
        assert part in summary, summary
    assert "ALL PASSED" not in summary
    wide = SelfCheckReport([SelfCheckRow("x", "float64", 0.0, 1e-9, "passed")])
    assert str(wide).splitlines()[0].startswith("op  dtype ")  # at least as wide as "op"
    assert bool(wide)
