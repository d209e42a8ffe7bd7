"""fastjac.bench: the structure and values of ``fastjac bench`` (never its timings)."""

import builtins
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import fastjac._bench_worker as worker
import fastjac.bench as bench
from fastjac.bench import WORKLOADS, main_bench, memory_bandwidth, run_bench

OURS = ["--framework", "numpy"]  # fastjac always runs; peers are tested apart (slow imports)
QUICK = ["--quick", "--repeat", "1", "--workload", "exp.vjp", "--workload", "mul.vjp scalar",
         "--workload", "neuron.loss_grad"] + OURS


def test_quick_run_prints_a_table_per_workload_and_writes_json(tmp_path, capsys):
    path = tmp_path / "bench.json"
    assert main_bench(QUICK + ["--one-by-one", "--json", str(path)]) == 0
    text = capsys.readouterr().out
    for header in ("exp.vjp:", "mul.vjp scalar:", "size", "dtype", "numpy", "fastjac",
                   "speed-up", "vs best", "×bound", "memory bandwidth", "CPU ",
                   "each framework timed in its own process"):
        assert header in text
    assert "MISMATCH" not in text and "next to BLAS" not in text
    res = json.loads(path.read_text(encoding="utf-8"))
    assert {"machine", "workloads", "bandwidth", "ratio", "repeat", "frameworks"} <= set(res)
    assert res["machine"]["cpu_model"] == bench.cpu_model() != ""
    assert [f["name"] for f in res["frameworks"]] == ["fastjac", "numpy"]
    assert res["inputs_identical"] is True
    names = [w["name"] for w in res["workloads"]]
    assert names == ["exp.vjp", "mul.vjp scalar", "neuron.loss_grad"]
    for w in res["workloads"]:
        assert w["rows"] and w["description"]
        for row in w["rows"]:
            assert {"size", "dtype", "numpy_s", "fastjac_s", "ratio", "checked"} <= set(row)
            assert row["dtype"] in ("float64", "float32")
            assert row["numpy_s"] > 0 and row["fastjac_s"] > 0
            assert row["ratio"] == pytest.approx(row["numpy_s"] / row["fastjac_s"])
            assert row["vs_best"] == pytest.approx(row["numpy_s"] / row["fastjac_s"])
            assert row["checked"] is True and row["checks"] == {"fastjac": True, "numpy": True}
            assert "torch_s" not in row and "bound_s" not in row  # quick rows are < 1 MB
    assert {r["size"] for r in res["workloads"][0]["rows"]} == {10, 1000}
    assert [r["size"] for r in res["workloads"][2]["rows"]] == ["256x8"] * 2 + ["1000x10"] * 2
    b = res["bandwidth"]
    assert b["bytes"] > 0 and b["read_GBps"] > 0 and b["write_GBps"] > 0
    assert b["read_GBps"] == pytest.approx(max(b["fastjac_1thread_GBps"],
                                               b["fastjac_all_threads_GBps"], b["numpy_GBps"]))


def test_every_row_bound_is_bytes_over_the_bandwidth_of_as_many_bytes(monkeypatch):
    # the bound starts at 1 MB; lowered here so that quick sizes get one
    monkeypatch.setattr(bench, "BOUND_MIN_BYTES", 1000)
    res = run_bench(quick=True, repeat=1, workloads=["tanh.vjp", "sum", "neuron.loss_grad"],
                    frameworks=["fastjac"], next_to_blas=False)
    by_bytes = res["bandwidth_by_bytes"]
    seen = 0
    for w in res["workloads"]:
        wl = next(x for x in WORKLOADS if x.name == w["name"])
        for r in w["rows"]:
            size = worker._size(r["size"])
            itemsize = np.dtype(r["dtype"]).itemsize
            reads, writes = wl.traffic(size, itemsize)
            if reads + writes < 1000:
                assert "bound_s" not in r
                continue
            seen += 1
            bw = by_bytes[str(reads + writes)]
            assert r["traffic_bytes"] == [reads, writes]
            assert r["bound_s"] == pytest.approx(reads / bw["read_GBps"] / 1e9
                                                 + writes / bw["write_GBps"] / 1e9)
            assert r["bound_ratio"] == pytest.approx(r["fastjac_s"] / r["bound_s"])
    assert seen >= 6
    # the bytes each workload moves: tanh reads x, gy and writes the VJP; sum only reads
    assert next(x for x in WORKLOADS if x.name == "tanh.vjp").traffic(1000, 8) == (16000, 8000)
    assert next(x for x in WORKLOADS if x.name == "sum").traffic(1000, 4) == (4000, 0)
    lg = res["bandwidth"]["loss_grad"]
    assert (lg["size"], lg["dtype"]) == ("1000x10", "float64")
    row = next(r for r in res["workloads"][2]["rows"]
               if (r["size"], r["dtype"]) == ("1000x10", "float64"))
    assert lg["GBps"] == pytest.approx((1000 * 10 + 1000 + 10) * 8 / row["fastjac_s"] / 1e9)
    assert lg["fraction_of_read_bandwidth"] == pytest.approx(row["bound_s"] / row["fastjac_s"])
    assert "of the read bandwidth" in bench.format_tables(res)


def test_workload_needing_what_fastjac_lacks_is_left_out(monkeypatch):
    fake = worker.Workload("future.vjp", "x", worker._normals(1), [10], [10],
                           fastjac=lambda fj: fj.future.vjp, numpy=lambda m: m.exp,
                           needs="future.vjp")
    monkeypatch.setattr(bench, "WORKLOADS", [fake] + WORKLOADS[:1])
    res = run_bench(quick=True, repeat=1, dtypes=("float64",), frameworks=["fastjac"],
                    bandwidth=False, next_to_blas=False)
    assert [w["name"] for w in res["workloads"]] == [WORKLOADS[0].name]
    assert res["left_out"] == {"future.vjp": "needs fastjac.future.vjp"}
    assert "left out: future.vjp" in bench.format_tables(res)


def test_max_size_filters_rows():
    res = run_bench(quick=True, repeat=1, workloads=["dot", "neuron.loss_grad"],
                    dtypes=("float32",), frameworks=["fastjac"], bandwidth=False,
                    max_size=2048)
    assert [(w["name"], [r["size"] for r in w["rows"]]) for w in res["workloads"]] == [
        ("dot", [10, 1000]), ("neuron.loss_grad", ["256x8"])]


def test_next_to_blas_section():
    res = run_bench(quick=True, repeat=1, workloads=["next-to-blas"], frameworks=["fastjac"],
                    bandwidth=False)
    assert res["workloads"] == []
    rows = res["next_to_blas"]
    assert [(r["name"], r["size"]) for r in rows] == [("neuron.loss_grad", "10000x100"),
                                                     ("tanh.vjp", 200000)]
    for r in rows:
        assert r["dtype"] == "float64"
        assert r["product_s"] > 0 and r["step_s"] > 0
        assert r["ratio"] == pytest.approx(r["step_s"] / (r["product_s"]
                                                          + r["fastjac_1thread_s"]))
        assert r["quiet_speedup"] == pytest.approx(r["fastjac_1thread_s"] / r["fastjac_s"])
    text = bench.format_tables(res)
    assert "next to BLAS" in text and "400x400" in text


def test_openblas_variables_unset_for_the_numpy_process_only(monkeypatch):
    # Nehalem (SSE4.2): a kernel no CPU with AVX picks by itself
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Nehalem")
    monkeypatch.setenv("OPENBLAS_L2_SIZE", "1048576")
    res = run_bench(quick=True, repeat=1, workloads=["relu.vjp"], dtypes=("float32",),
                    frameworks=["numpy"], bandwidth=False)
    assert res["environment"]["openblas_unset_for_numpy"] == {
        "OPENBLAS_CORETYPE": "Nehalem", "OPENBLAS_L2_SIZE": "1048576"}
    text = bench.format_tables(res)
    assert "OPENBLAS_CORETYPE=Nehalem, OPENBLAS_L2_SIZE=1048576: unset for the NumPy " \
           "baseline process only" in text
    blas = {f["name"]: f["blas"] for f in res["frameworks"]}
    if not (blas["numpy"] and blas["fastjac"]):
        pytest.skip("no OpenBLAS kernel report here (not OpenBLAS, or not Linux)")
    assert blas["fastjac"][0]["kernel"].lower() == "nehalem"  # kept outside the baseline
    assert blas["numpy"][0]["kernel"].lower() != "nehalem"
    assert os.environ["OPENBLAS_CORETYPE"] == "Nehalem"  # this process is untouched


def test_worker_checks_results_and_reports_errors(monkeypatch):
    rows = [["exp.vjp", 10, "float32"], ["neuron.fit", "1000x10", "float64"],
            ["dot", 1000, "float64"]]
    out = worker._run_worker({"framework": "numpy", "rows": rows, "repeat": 1,
                             "min_time": 0.0})
    assert [r["workload"] for r in out["rows"]] == ["exp.vjp", "neuron.fit", "dot"]
    assert all(r["checked"] and r["time_s"] > 0 for r in out["rows"])
    # a wrong implementation is caught by the float64 NumPy reference
    exp = next(w for w in WORKLOADS if w.name == "exp.vjp")
    monkeypatch.setitem(exp.impls, "numba", lambda m: lambda x, g: g * np.exp(x) * 1.01)
    monkeypatch.setattr(worker, "_load", lambda fw: np)
    out = worker._run_worker({"framework": "numba", "rows": rows[:1], "repeat": 1,
                             "min_time": 0.0})
    assert out["rows"][0]["checked"] is False and out["rows"][0]["max_error"] > 1e-3
    monkeypatch.setitem(exp.impls, "numba", lambda m: lambda x, g: 1 / 0)
    out = worker._run_worker({"framework": "numba", "rows": rows[:1], "repeat": 1,
                             "min_time": 0.0})
    assert out["rows"][0]["error"].startswith("ZeroDivisionError")


def test_missing_framework_is_reported(monkeypatch):
    def no_such(fw):
        raise ImportError(f"No module named {fw!r}")
    monkeypatch.setattr(worker, "_load", no_such)
    out = worker._run_worker({"framework": "torch", "rows": [["exp.vjp", 10, "float64"]],
                             "repeat": 1, "min_time": 0.0})
    assert "No module named 'torch'" in out["missing"] and out["rows"] == []
    failed = bench._launch({"framework": "numpy"}, sys.executable + "-does-not-exist",
                           dict(os.environ), 30)
    assert "could not start" in failed["failed"]


def test_a_worker_runs_without_fastjac(tmp_path):
    """Peer workers load bench.py by path in a Python without fastjac."""
    code = (
        "import runpy, sys, json\n"
        "sys.modules['fastjac'] = None  # import fastjac now fails\n"
        f"ns = runpy.run_path({worker.__file__!r}, run_name='bench_worker')\n"
        "out = ns['_run_worker']({'framework': 'numpy', 'repeat': 1, 'min_time': 0.0,\n"
        "    'rows': [['tanh.vjp', 1000, 'float64'], ['neuron.loss_grad', '256x8', 'float32']]})\n"
        "print(json.dumps(out))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert all(r["checked"] for r in out["rows"])
    # the same inputs as this process builds (checksums of the seeded inputs)
    wl = next(w for w in WORKLOADS if w.name == "tanh.vjp")
    x = wl.inputs(1000, np.dtype("float64"),
                  np.random.default_rng(worker._seed("tanh.vjp", 1000, "float64")))
    assert out["rows"][0]["inputs_crc"] == worker._inputs_crc(x)


@pytest.mark.parametrize("framework", ["torch", "jax", "numba"])
def test_peer_implementations_agree_with_numpy(framework):
    pytest.importorskip(framework)
    rows = [[w.name, worker._label(w.quick[0]), dt] for w in WORKLOADS
            if w.impls[framework] is not None for dt in ("float64", "float32")]
    out = bench._launch({"framework": framework, "rows": rows, "repeat": 1,
                         "min_time": 0.0, "quick": True}, sys.executable,
                        dict(os.environ, JAX_PLATFORMS="cpu"), 600)
    assert "failed" not in out and "missing" not in out
    for r in out["rows"]:
        assert r.get("checked"), r


def test_workload_table_is_complete():
    names = [w.name for w in WORKLOADS]
    assert len(names) == len(set(names))
    for op in ("exp", "log", "sin", "cos", "tanh", "sigmoid", "sqrt", "reciprocal"):
        w = next(x for x in WORKLOADS if x.name == f"{op}.vjp")
        assert all(w.impls[fw] is not None for fw in worker.FRAMEWORKS)
    fused = next(x for x in WORKLOADS if x.name == "exp(w)⊗sin(x).vjp")
    assert fused.impls["numba"] is not None
    assert next(x for x in WORKLOADS if x.name == "neuron.loss_grad").impls["numba"]
    with pytest.raises(ValueError, match="NumPy implementation"):
        worker.Workload("x", "x", worker._normals(1), [10], [10], fastjac=lambda fj: fj.exp)


def test_agree_catches_wrong_results():
    x = np.linspace(-3, 3, 101)
    assert worker._agree(x, x, "float64") == (True, 0.0)
    assert not worker._agree(x * (1 + 1e-6), x, "float64")[0]
    assert worker._agree(x.astype(np.float32), x, "float32")[0]
    assert not worker._agree((x, x), (x,), "float64")[0]
    assert not worker._agree(x[:-1], x, "float64")[0]
    assert not worker._agree(x * np.nan, x, "float64")[0]


def test_plot_without_matplotlib_says_so(tmp_path, capsys, monkeypatch):
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name == "matplotlib" or name.startswith("matplotlib."):
            raise ImportError("No module named 'matplotlib'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    rc = main_bench(["--quick", "--repeat", "1", "--workload", "relu.vjp", "--no-bandwidth",
                     "--plot", str(tmp_path / "p.png")] + OURS)
    captured = capsys.readouterr()
    assert rc == 1
    assert "relu.vjp:" in captured.out  # the tables are still printed
    assert "matplotlib" in captured.err and not (tmp_path / "p.png").exists()


def test_plot_with_matplotlib(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "p.png"
    assert main_bench(["--quick", "--repeat", "1", "--workload", "relu.vjp", "--no-bandwidth",
                       "--plot", str(path)] + OURS) == 0
    assert path.stat().st_size > 0


def test_unknown_workload_and_bad_arguments(capsys):
    assert main_bench(["--quick", "--workload", "nope", "--no-bandwidth"]) == 2
    assert "no workload named nope" in capsys.readouterr().err
    for bad in (["--repeat", "0"], ["--timeout", "0"], ["--peer-python", "/no/such/python"],
                ["--framework", "tensorflow"], ["--max-size", "0"]):
        with pytest.raises(SystemExit):
            main_bench(bad)


def test_memory_bandwidth_is_bytes_over_time():
    b = memory_bandwidth(nbytes=3 << 20, repeat=1)
    assert b["bytes"] == 3 << 20
    assert all(b[k] > 0 for k in ("fastjac_1thread_GBps", "fastjac_all_threads_GBps",
                                  "numpy_GBps", "read_GBps", "write_GBps", "triad_GBps"))
    assert b["write_GBps"] <= 2 * b["read_GBps"] * (1 + 1e-12)


def test_worker_entry_point(tmp_path):
    spec = tmp_path / "spec.json"
    out = tmp_path / "out.json"
    spec.write_text(json.dumps({"framework": "numpy", "repeat": 1, "min_time": 0.0,
                                "rows": [["sigmoid.vjp", 10, "float64"]]}))
    runpy_argv = [sys.executable, "-m", "fastjac._bench_worker", str(spec), str(out)]
    proc = subprocess.run(runpy_argv, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    res = json.loads(out.read_text())
    assert res["framework"] == "numpy" and res["rows"][0]["checked"] is True


def test_rounds_take_the_median_over_processes_and_keep_each_rounds_ratio(monkeypatch):
    calls = []
    fake = {"fastjac": [3.0, 1.0, 2.0], "numpy": [4.0, 8.0, 6.0]}

    def launch(spec, python, env, timeout):
        fw = spec["framework"]
        calls.append((fw, bool(spec.get("bandwidth_bytes")), spec.get("next_to_blas")))
        t = fake[fw][sum(1 for c in calls if c[0] == fw) - 1]
        rows = [{"workload": w, "size": s, "dtype": d, "time_s": t, "checked": True,
                 "inputs_crc": 7} for w, s, d in spec["rows"]]
        out = {"python": python, "numpy": np.__version__, "version": "x", "rows": rows}
        if spec.get("bandwidth_bytes"):
            out["bandwidth"] = {str(b): {"bytes": b, "read_GBps": 1.0, "write_GBps": 1.0,
                                         "triad_GBps": 1.0, "numpy_GBps": 1.0,
                                         "fastjac_1thread_GBps": 1.0,
                                         "fastjac_all_threads_GBps": 1.0}
                                for b in spec["bandwidth_bytes"]}
        return out

    monkeypatch.setattr(bench, "_launch", launch)
    res = run_bench(quick=True, repeat=1, workloads=["exp.vjp"], dtypes=("float64",),
                    frameworks=["numpy"], next_to_blas=True, rounds=3)
    # the order rotates; only the first fastjac process measures the bandwidth and the
    # next-to-BLAS section
    assert calls == [("fastjac", True, True), ("numpy", False, None), ("numpy", False, None),
                     ("fastjac", False, False), ("fastjac", False, False),
                     ("numpy", False, None)]
    assert res["bandwidth"]["read_GBps"] == 1.0
    assert [f["name"] for f in res["frameworks"]] == ["fastjac", "numpy"]
    for row in res["workloads"][0]["rows"]:
        assert row["fastjac_runs"] == [3.0, 1.0, 2.0] and row["fastjac_s"] == 2.0
        assert row["numpy_s"] == 6.0 and row["ratio"] == 3.0
        assert row["vs_best_rounds"] == pytest.approx([4 / 3, 8.0, 3.0])
    text = bench.format_tables(res)
    assert "median over 3 rounds" in text and "1.33-8.00x" in text
    with pytest.raises(ValueError, match="rounds"):
        run_bench(quick=True, rounds=0)


def test_rounds_argument_is_checked(capsys):
    with pytest.raises(SystemExit):
        main_bench(["--rounds", "0"])
    assert "--rounds must be at least 1" in capsys.readouterr().err
