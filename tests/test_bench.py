"""fastjac.bench: the table and JSON structure of ``fastjac bench`` (never its timings)."""

import builtins
import json

import pytest

from fastjac.bench import main_bench, memory_bandwidth, run_bench

QUICK = ["--quick", "--repeat", "1", "--workload", "exp.vjp", "--workload", "mul.vjp scalar",
         "--workload", "neuron.loss_grad"]


def test_quick_run_prints_a_table_per_workload_and_writes_json(tmp_path, capsys):
    path = tmp_path / "bench.json"
    assert main_bench(QUICK + ["--json", str(path)]) == 0
    text = capsys.readouterr().out
    for header in ("exp.vjp:", "mul.vjp scalar:", "size", "dtype", "numpy", "fastjac",
                   "speed-up", "memory read bandwidth"):
        assert header in text
    assert "MISMATCH" not in text
    res = json.loads(path.read_text(encoding="utf-8"))
    assert {"machine", "workloads", "bandwidth", "ratio", "repeat"} <= set(res)
    names = [w["name"] for w in res["workloads"]]
    assert names[:2] == ["exp.vjp", "mul.vjp scalar"]
    for w in res["workloads"]:
        assert w["rows"] and w["description"]
        for row in w["rows"]:
            assert {"size", "dtype", "numpy_s", "fastjac_s", "ratio", "checked"} <= set(row)
            assert row["dtype"] in ("float64", "float32")
            assert row["numpy_s"] > 0 and row["fastjac_s"] > 0
            assert row["ratio"] == pytest.approx(row["numpy_s"] / row["fastjac_s"])
            assert row["checked"] is True
    sizes = {r["size"] for r in res["workloads"][0]["rows"]}
    assert sizes == {10, 1000}
    b = res["bandwidth"]
    assert b["bytes"] > 0 and b["fastjac_1thread_GBps"] > 0 and b["numpy_GBps"] > 0


def test_neuron_workload_runs_when_the_module_exists():
    pytest.importorskip("fastjac.neuron")
    res = run_bench(quick=True, repeat=1, workloads=["neuron.loss_grad"], dtypes=("float64",),
                    bandwidth=False)
    (w,) = res["workloads"]
    assert w["name"] == "neuron.loss_grad"
    assert all(r["checked"] for r in w["rows"]) and w["rows"][0]["size"] == "256x8"


def test_fit_workload_and_bandwidth_fraction():
    pytest.importorskip("fastjac.neuron")
    res = run_bench(quick=True, repeat=1, workloads=["neuron.fit", "neuron.loss_grad"],
                    dtypes=("float64", "float32"), bandwidth=True)
    names = [w["name"] for w in res["workloads"]]
    assert names == ["neuron.loss_grad", "neuron.fit"]
    fit_rows = res["workloads"][1]["rows"]
    assert [r["size"] for r in fit_rows] == ["1000x10", "1000x10"]
    assert all(r["checked"] for w in res["workloads"] for r in w["rows"])
    lg = res["bandwidth"]["loss_grad"]
    # the largest batch measured (1000x10 float64: 80 kB), read at bytes / median time
    assert (lg["size"], lg["dtype"]) == ("1000x10", "float64")
    row = next(r for r in res["workloads"][0]["rows"]
               if (r["size"], r["dtype"]) == ("1000x10", "float64"))
    assert lg["GBps"] == pytest.approx(80_000 / row["fastjac_s"] / 1e9)
    assert lg["fraction_of_all_threads"] == pytest.approx(
        lg["GBps"] / res["bandwidth"]["fastjac_all_threads_GBps"])
    from fastjac.bench import format_tables
    assert "of the all-threads read bandwidth" in format_tables(res)


def test_framework_columns_only_when_importable():
    res = run_bench(quick=True, repeat=1, workloads=["exp.vjp"], dtypes=("float32",),
                    bandwidth=False)
    for row in res["workloads"][0]["rows"]:
        assert ("torch_s" in row) == ("torch" in res["frameworks"])
        assert ("jax_s" in row) == ("jax" in res["frameworks"])


def test_plot_without_matplotlib_says_so(tmp_path, capsys, monkeypatch):
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    rc = main_bench(["--quick", "--repeat", "1", "--workload", "relu.vjp", "--no-bandwidth",
                     "--plot", str(tmp_path / "p.png")])
    captured = capsys.readouterr()
    assert rc == 1
    assert "relu.vjp:" in captured.out  # the tables are still printed
    assert "matplotlib" in captured.err and not (tmp_path / "p.png").exists()


def test_plot_with_matplotlib(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "p.png"
    assert main_bench(["--quick", "--repeat", "1", "--workload", "relu.vjp", "--no-bandwidth",
                       "--plot", str(path)]) == 0
    assert path.stat().st_size > 0


def test_unknown_workload_and_bad_arguments(capsys):
    assert main_bench(["--quick", "--workload", "nope", "--no-bandwidth"]) == 2
    assert "no workload named nope" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main_bench(["--repeat", "0"])


def test_memory_bandwidth_is_bytes_over_time():
    b = memory_bandwidth(nbytes=1 << 20, repeat=1)
    assert b["bytes"] == 1 << 20
    assert all(b[k] > 0 for k in ("fastjac_1thread_GBps", "fastjac_all_threads_GBps",
                                  "numpy_GBps"))
