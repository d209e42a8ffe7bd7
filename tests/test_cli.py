"""The ``fastjac`` command line: demo, train, and the forwarding of check and bench."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

import fastjac
from fastjac import _reference, cli

ROOT = pathlib.Path(fastjac.__file__).resolve().parent.parent


def _run_module(*args, timeout=120):
    """``python -m fastjac ARGS`` in a fresh interpreter that imports this fastjac."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["PYTHONIOENCODING"] = "utf-8"
    return subprocess.run(
        [sys.executable, "-m", "fastjac", *args],
        capture_output=True, text=True, encoding="utf-8", timeout=timeout, env=env,
        cwd=str(ROOT),
    )


def _needs_neuron():
    return pytest.importorskip("fastjac.neuron", reason="fastjac.neuron has not landed yet")


# ---------------------------------------------------------------------------------------
# help and dispatch (no neuron needed)
# ---------------------------------------------------------------------------------------

def test_module_help_lists_every_command():
    proc = _run_module("--help")
    assert proc.returncode == 0, proc.stderr
    for command in ("check", "bench", "demo", "train"):
        assert command in proc.stdout
    assert proc.stderr == ""


def test_main_help_exits_zero(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["--help"])
    assert exc.value.code == 0
    assert "demo" in capsys.readouterr().out


def test_no_command_prints_help_and_fails(capsys):
    assert cli.main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


def test_unknown_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["frobnicate"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["check", "bench"])
def test_forwarded_commands_pass_their_arguments(monkeypatch, command):
    seen = []
    _, help_text = cli._FORWARDED[command]
    monkeypatch.setitem(cli._FORWARDED, command,
                        (lambda argv: seen.append(argv) or 3, help_text))
    assert cli.main([command, "--seed", "1", "-v"]) == 3
    assert seen == [["--seed", "1", "-v"]]


def test_plot_without_matplotlib_is_a_clear_error(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert cli.main(["demo", "--epochs", "3", "--plot", "loss.png"]) == 2
    err = capsys.readouterr().err
    assert "matplotlib" in err and "pip install" in err


def test_real_check_command(capsys):
    code = cli.main(["check", "--dtype", "float64"])
    out = capsys.readouterr().out
    assert code in (0, 1)
    assert "passed" in out


# ---------------------------------------------------------------------------------------
# ascii_plot
# ---------------------------------------------------------------------------------------

def test_ascii_plot_shape_and_labels():
    losses = np.geomspace(10.0, 0.01, 200)
    lines = cli.ascii_plot(losses, width=40, height=6)
    assert len(lines) == 6 + 2
    assert lines[0].strip().startswith("10 |*")
    assert lines[5].strip().startswith("0.01 |")
    assert lines[5].rstrip().endswith("*")
    assert "log scale" in lines[-1] and lines[-1].rstrip().endswith("200")
    assert all(line.isascii() for line in lines)


def test_ascii_plot_keeps_spikes_and_odd_input():
    v = np.ones(500)
    v[251] = 1e6
    lines = cli.ascii_plot(v, width=50, height=5)
    assert "*" in lines[0]  # the spike survives the down-sampling
    assert cli.ascii_plot([]) == ["(nothing to plot)"]
    assert cli.ascii_plot([float("nan")]) == ["(nothing to plot)"]
    assert len(cli.ascii_plot([2.0])) == 3
    assert any("*" in s for s in cli.ascii_plot([0.0, -1.0, 2.0], height=3))


# ---------------------------------------------------------------------------------------
# fastjac demo
# ---------------------------------------------------------------------------------------

def test_numpy_reference_fit_learns_the_planted_neuron():
    X, y, w_star, b_star = cli.synthetic_neuron_data(500, 4, noise=0.0, seed=3)
    w0 = np.full(4, 0.1)
    w, b, losses = _reference.fit(X, y, 0.1, 400, w0, 0.0)
    assert losses[-1] < 1e-3 * losses[0]
    np.testing.assert_allclose(w, w_star, atol=1e-2)
    assert abs(b - b_star) < 1e-2


def test_demo_in_process(capsys):
    _needs_neuron()
    code = cli.main(["demo", "--epochs", "40", "--repeats", "1", "--no-progress"])
    out = capsys.readouterr().out
    if "FAILED" in out.split("2. Data")[0]:
        assert code == 1  # a failing selfcheck must fail the command
    else:
        assert code == 0, out
    for key in ("1. Gradient check", "planted", "learned", "Loss per epoch", "speed-up",
                "NumPy", "(log scale)"):
        assert key in out
    # the table has one row per weight and one for the bias
    assert "w[7]" in out and "\n   b " in out


def test_demo_learns_the_planted_parameters(capsys):
    _needs_neuron()
    assert cli.main(["demo", "--no-check", "--repeats", "1", "--no-progress",
                     "--seed", "2"]) == 0
    out = capsys.readouterr().out
    line = next(s for s in out.splitlines() if "largest |learned - planted|" in s)
    assert float(line.rsplit("=", 1)[1]) < 0.05
    agree = next(s for s in out.splitlines() if "agree to" in s)
    assert float(agree.split("agree to")[1].split()[0]) < 1e-8


def test_demo_fails_when_the_selfcheck_fails(monkeypatch, capsys):
    _needs_neuron()
    import types

    row = types.SimpleNamespace(op="exp.vjp", dtype="float64", max_rel_err=1.0, bound=1e-9,
                                status="FAILED", kinks=0, detail="", ok=False)

    class Report:
        rows = [row]

        def __bool__(self):
            return False

    monkeypatch.setattr(cli, "selfcheck", lambda: Report())
    code = cli.main(["demo", "--epochs", "5", "--repeats", "1", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 1
    assert "FAILED exp.vjp (float64)" in out


def test_demo_plot(tmp_path, capsys):
    _needs_neuron()
    pytest.importorskip("matplotlib")
    png = tmp_path / "loss.png"
    assert cli.main(["demo", "--epochs", "10", "--no-check", "--repeats", "1",
                     "--no-progress", "--plot", str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_demo_as_a_module_subprocess():
    _needs_neuron()
    proc = _run_module("demo", "--epochs", "30", "--repeats", "1")
    assert proc.returncode in (0, 1), proc.stderr
    assert "speed-up" in proc.stdout
    assert "Traceback" not in proc.stderr
    assert proc.returncode == 0 or "gradient check FAILED" in proc.stdout


# ---------------------------------------------------------------------------------------
# fastjac train
# ---------------------------------------------------------------------------------------

def _write_csv(path, header, rows):
    with open(path, "w", encoding="utf-8") as f:
        f.write(",".join(header) + "\n")
        for r in rows:
            f.write(",".join(str(v) for v in r) + "\n")
    return str(path)


@pytest.fixture
def good_csv(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(5.0, 2.0, (200, 3))
    y = np.maximum(X @ np.array([0.5, -0.25, 0.3]) + 1.0, 0.0)
    return _write_csv(tmp_path / "houses.csv", ["size", "age", "rooms", "price"],
                      np.column_stack([X, y]).round(6))


def test_read_csv(good_csv):
    names, data = cli.read_csv(good_csv)
    assert names == ["size", "age", "rooms", "price"]
    assert data.shape == (200, 4) and data.dtype == np.float64


def test_read_csv_semicolons_and_blank_lines(tmp_path):
    p = tmp_path / "s.csv"
    p.write_text("a;b\n\n1;2\n3;4\n\n", encoding="utf-8")
    names, data = cli.read_csv(str(p))
    assert names == ["a", "b"]
    np.testing.assert_array_equal(data, [[1, 2], [3, 4]])


def test_train_good_file(good_csv, tmp_path, capsys):
    _needs_neuron()
    out = tmp_path / "params.json"
    code = cli.main(["train", good_csv, "--target", "price", "--standardize", "--lr", "0.1",
                     "--epochs", "200", "--out", str(out), "--seed", "1"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "wrote the parameters" in captured.out
    params = json.loads(out.read_text())
    assert params["features"] == ["size", "age", "rooms"]
    assert params["target"] == "price"
    assert len(params["w"]) == 3 and isinstance(params["b"], float)
    assert len(params["standardization"]["mean"]) == 3
    assert len(params["standardization"]["std"]) == 3
    assert params["final_loss"] < 1e-3
    # the parameters reproduce the fit: prediction from the raw CSV columns
    names, data = cli.read_csv(good_csv)
    X, y = data[:, :3], data[:, 3]
    st = params["standardization"]
    Z = (X - np.array(st["mean"])) / np.array(st["std"])
    pred = np.maximum(Z @ np.array(params["w"]) + params["b"], 0.0)
    np.testing.assert_allclose(np.mean((pred - y) ** 2), params["final_loss"], rtol=1e-6)


def test_train_minibatch_without_standardization(good_csv, tmp_path, capsys):
    _needs_neuron()
    out = tmp_path / "p.json"
    assert cli.main(["train", good_csv, "--target", "price", "--lr", "0.002",
                     "--epochs", "20", "--batch-size", "32", "--out", str(out),
                     "--no-progress"]) == 0
    params = json.loads(out.read_text())
    assert params["standardization"] is None
    assert params["training"]["batch_size"] == 32
    assert len(params["losses"]) == 20


def _train_error(capsys, *args):
    code = cli.main(["train", *args])
    captured = capsys.readouterr()
    assert code == 2
    assert captured.err.startswith("fastjac train: error: ")
    assert "Traceback" not in captured.err
    return captured.err


def test_train_missing_file(tmp_path, capsys):
    err = _train_error(capsys, str(tmp_path / "nope.csv"), "--target", "y")
    assert "no such file" in err


def test_train_missing_column_lists_columns(good_csv, capsys):
    err = _train_error(capsys, good_csv, "--target", "cost")
    assert "'cost'" in err
    assert "size, age, rooms, price" in err


def test_train_non_numeric_cell_names_row_and_column(tmp_path, capsys):
    p = _write_csv(tmp_path / "bad.csv", ["a", "b", "y"], [[1, 2, 3], [4, "n/a", 6]])
    err = _train_error(capsys, p, "--target", "y")
    assert "line 3" in err and "column 'b'" in err and "'n/a'" in err


def test_train_empty_cell(tmp_path, capsys):
    p = _write_csv(tmp_path / "bad.csv", ["a", "b", "y"], [[1, "", 3]])
    err = _train_error(capsys, p, "--target", "y")
    assert "line 2" in err and "empty cell" in err


def test_train_empty_file(tmp_path, capsys):
    p = tmp_path / "empty.csv"
    p.write_text("")
    err = _train_error(capsys, str(p), "--target", "y")
    assert "empty" in err


def test_train_header_only(tmp_path, capsys):
    p = _write_csv(tmp_path / "h.csv", ["a", "y"], [])
    err = _train_error(capsys, p, "--target", "y")
    assert "no data rows" in err


def test_train_ragged_row(tmp_path, capsys):
    p = tmp_path / "r.csv"
    p.write_text("a,b,y\n1,2,3\n4,5\n")
    err = _train_error(capsys, str(p), "--target", "y")
    assert "line 3" in err and "2 fields" in err


def test_train_only_target_column(tmp_path, capsys):
    p = _write_csv(tmp_path / "t.csv", ["y"], [[1], [2]])
    err = _train_error(capsys, p, "--target", "y")
    assert "no feature columns" in err


def test_train_bad_options(good_csv, capsys):
    assert "--lr" in _train_error(capsys, good_csv, "--target", "price", "--lr", "-1")
    assert "--epochs" in _train_error(capsys, good_csv, "--target", "price", "--epochs", "0")


def test_train_subprocess_error_has_no_traceback(tmp_path):
    p = _write_csv(tmp_path / "bad.csv", ["a", "y"], [[1, 2], ["x", 3]])
    proc = _run_module("train", p, "--target", "y")
    assert proc.returncode == 2
    assert "column 'a'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_auto_learning_rate_is_the_inverse_curvature():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((20000, 3))
    # (2/N) [X 1]ᵀ[X 1] ≈ 2 I for standard normal features: λ_max ≈ 2
    assert 0.4 < cli.auto_learning_rate(X) < 0.6
    big = X * np.array([1000.0, 1.0, 1.0])
    lam = np.linalg.eigvalsh(2 / len(big) * np.column_stack([big, np.ones(len(big))]).T
                             @ np.column_stack([big, np.ones(len(big))])).max()
    assert cli.auto_learning_rate(big) == pytest.approx(1 / lam, rel=1e-6)


def test_train_default_lr_does_not_diverge_on_unscaled_data(tmp_path, capsys):
    _needs_neuron()
    rng = np.random.default_rng(1)
    X = rng.uniform(0, 500, (100, 2))
    y = X @ np.array([2.0, 0.5]) + 10
    p = _write_csv(tmp_path / "big.csv", ["a", "b", "y"], np.column_stack([X, y]).round(3))
    out = tmp_path / "p.json"
    assert cli.main(["train", p, "--target", "y", "--epochs", "50", "--no-progress",
                     "--out", str(out)]) == 0
    assert "chosen from the data" in capsys.readouterr().out
    params = json.loads(out.read_text())
    assert params["final_loss"] < params["losses"][0]


def test_plot_to_a_bad_path_is_a_clear_error(tmp_path, capsys):
    _needs_neuron()
    pytest.importorskip("matplotlib")
    for path in (tmp_path / "no" / "such" / "dir" / "loss.png", tmp_path / "loss.unknownext"):
        code = cli.main(["demo", "--epochs", "3", "--no-check", "--repeats", "1",
                         "--no-progress", "--plot", str(path)])
        err = capsys.readouterr().err
        assert code == 2 and "plot" in err and "Traceback" not in err
