"""``fastjac bench --interleave``: serving workers sampled in turn (never its timings)."""

import io
import json
import os
import signal
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastjac._bench_procs as procs
import fastjac._bench_worker as worker
import fastjac.bench as bench
from fastjac.bench import main_bench, run_bench

posix_only = pytest.mark.skipif(not hasattr(signal, "SIGSTOP"), reason="no SIGSTOP here")


@pytest.fixture
def spawned(monkeypatch):
    """The PIDs of every serving worker started during the test."""
    pids = []
    real = bench._Served.__init__

    def init(self, *args, **kwargs):
        real(self, *args, **kwargs)
        pids.append(self.proc.pid)

    monkeypatch.setattr(bench._Served, "__init__", init)
    return pids


def assert_gone(pids):
    """Every worker has ended and been reaped: no process, stopped or not, is left."""
    assert pids
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


def test_interleaved_numpy_and_fastjac(spawned, capsys, tmp_path):
    path = tmp_path / "bench.json"
    assert main_bench(["--quick", "--interleave", "--samples", "4", "--workload", "exp.vjp",
                       "--workload", "dot", "--workload", "neuron.loss_grad", "--framework",
                       "numpy", "--no-bandwidth", "--json", str(path)]) == 0
    assert len(spawned) == 2
    assert_gone(spawned)
    text = capsys.readouterr().out
    assert "interleaved: all processes alive at once" in text and "SIGSTOP" in text
    assert "each framework timed in its own process" in text and "MISMATCH" not in text
    heads = [ln for ln in text.splitlines() if ln.strip().startswith("size")]
    assert len(heads) == 3 and all(ln.rstrip().endswith("samples") for ln in heads)
    res = json.loads(path.read_text(encoding="utf-8"))
    assert res["interleave"] == {"samples": 4, "min_time": 0.002, "idle": "stop"}
    assert res["inputs_identical"] is True
    assert [f["name"] for f in res["frameworks"]] == ["fastjac", "numpy"]
    assert res["missing"] == {}
    n_rows = 0
    for w in res["workloads"]:
        for row in w["rows"]:
            n_rows += 1
            assert row["checks"] == {"fastjac": True, "numpy": True}
            for fw in ("fastjac", "numpy"):
                samples = row[f"{fw}_samples"]
                assert len(samples) == 4 and all(t > 0 for t in samples)
                # a row's time is the median of its samples (computed in the worker)
                assert row[f"{fw}_s"] == pytest.approx(float(np.median(samples)), rel=1e-12)
            ratios = [n / f for n, f in zip(row["numpy_samples"], row["fastjac_samples"])]
            assert row["vs_best_samples"] == pytest.approx(ratios)
            assert row["vs_best_quartiles"] == pytest.approx(
                list(np.percentile(ratios, [25, 50, 75])))
            q = row["vs_best_quartiles"]
            assert f"{q[0]:.2f}-{q[2]:.2f}x" in text
    assert n_rows == 12


def test_medians_and_spreads_from_known_samples():
    assert bench._quartiles([4.0, 1.0, 3.0, 2.0, 5.0]) == [2.0, 3.0, 4.0]
    assert bench._quartiles([1.0, 2.0]) == [1.25, 1.5, 1.75]
    others = ["numpy", "torch", "jax", "numba"]
    row = {"fastjac_samples": [1.0, 2.0, 4.0, 8.0],
           "numpy_samples": [3.0, 3.0, 3.0, 3.0],
           "torch_samples": [2.0, 5.0, None, 4.0]}  # a failed torch sample
    # per sample: the fastest other framework of that sample over fastjac's
    assert bench._vs_best_samples(row, others) == [2.0, 1.5, 0.75, 0.375]
    assert bench._vs_best_samples({"fastjac_samples": [1.0]}, others) is None
    assert bench._vs_best_samples({"numpy_samples": [1.0]}, others) is None
    # and what _derive and the table make of them
    res = {"workloads": [{"name": "sum", "description": "Σ x", "rows": [dict(
        row, size=10, dtype="float64", checks={"fastjac": True}, fastjac_s=3.0,
        numpy_s=3.0, torch_s=4.0)]}], "rounds": 1, "repeat": 3,
        "interleave": {"samples": 4, "min_time": 0.01, "idle": "stop"}}
    bench._derive(res, {w.name: w for w in bench.WORKLOADS})
    r = res["workloads"][0]["rows"][0]
    assert r["vs_best"] == 1.0 and r["best_other"] == "numpy"
    assert r["vs_best_quartiles"] == [0.65625, 1.125, 1.625]
    lines = bench.format_tables(dict(res, machine={"fastjac": "x", "numpy": "x",
                                                   "python": "x", "cpus": 2,
                                                   "max_threads": 2, "precision": "x"},
                                     frameworks=[], environment={}))
    assert "samples" in lines and "0.66-1.62x" in lines and "4 samples" in lines


def failing_worker(tmp_path, how):
    """A worker script whose NumPy framework hangs or dies at its second sample."""
    script = tmp_path / f"worker_{how}.py"
    script.write_text(textwrap.dedent(f"""
        import os, runpy, sys, time
        ns = runpy.run_path({procs.WORKER_PATH!r}, run_name="worker")
        real = ns["_Session"].sample
        count = [0]
        def sample(self, repeat, min_time):
            if self.framework == "numpy":
                count[0] += 1
                if count[0] == 2:
                    if {how!r} == "hang":
                        time.sleep(600)
                    os._exit(3)
            return real(self, repeat, min_time)
        ns["_Session"].sample = sample
        sys.exit(ns["_serve_main"]())
    """))
    return str(script)


@pytest.mark.parametrize("how", ["hang", "die"])
def test_failing_worker_is_reported_missing_and_ended(how, tmp_path, monkeypatch, spawned):
    monkeypatch.setattr(procs, "WORKER_PATH", failing_worker(tmp_path, how))
    res = run_bench(quick=True, interleave=True, samples=2, workloads=["exp.vjp"],
                    dtypes=("float64",), frameworks=["numpy"], bandwidth=False, timeout=3)
    assert_gone(spawned)
    why = res["missing"]["numpy"]
    assert ("no answer within 3 s" if how == "hang" else "exit status 3") in why, why
    assert [f["name"] for f in res["frameworks"]] == ["fastjac"]
    for row in res["workloads"][0]["rows"]:
        assert row["fastjac_s"] > 0 and len(row["fastjac_samples"]) == 2
        assert "numpy_s" not in row and "numpy_samples" not in row
        assert row["ratio"] is None and "vs_best_samples" not in row
    assert "not measured: numpy: " in bench.format_tables(res)


def test_failing_fastjac_worker_raises_and_ends_every_worker(tmp_path, monkeypatch, spawned):
    script = tmp_path / "worker_bad_fastjac.py"
    script.write_text(textwrap.dedent(f"""
        import os, runpy, sys
        ns = runpy.run_path({procs.WORKER_PATH!r}, run_name="worker")
        real = ns["_Session"].prepare
        def prepare(self, *row):
            if self.framework == "fastjac":
                os._exit(4)
            return real(self, *row)
        ns["_Session"].prepare = prepare
        sys.exit(ns["_serve_main"]())
    """))
    monkeypatch.setattr(procs, "WORKER_PATH", str(script))
    with pytest.raises(RuntimeError, match="the fastjac worker failed: exit status 4"):
        run_bench(quick=True, interleave=True, workloads=["sum"], dtypes=("float32",),
                  frameworks=["numpy"], bandwidth=False, timeout=30)
    assert_gone(spawned)


def test_interrupt_leaves_no_worker_behind(spawned):
    seen = []

    def progress(msg):
        seen.append(msg)
        if msg.startswith("row 2 of"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_bench(quick=True, interleave=True, workloads=["relu.vjp"], frameworks=["numpy"],
                  bandwidth=False, progress=progress)
    assert_gone(spawned)
    assert any(m.startswith("row 1 of") for m in seen)


@posix_only
def test_idle_workers_are_stopped_between_their_requests(monkeypatch, spawned):
    """While one framework is sampled, every other worker is stopped (state T)."""
    states = []
    real_ask = bench._Served.ask

    def ask(self, request, timeout):
        if request["op"] == "sample":
            for pid in spawned:
                if pid != self.proc.pid:
                    with open(f"/proc/{pid}/stat", encoding="utf-8") as f:
                        states.append(f.read().rsplit(")", 1)[1].split()[0])
        return real_ask(self, request, timeout)

    if not os.path.exists(f"/proc/{os.getpid()}/stat"):
        pytest.skip("no /proc here")
    monkeypatch.setattr(bench._Served, "ask", ask)
    run_bench(quick=True, interleave=True, samples=2, workloads=["sum"], dtypes=("float64",),
              frameworks=["numpy"], bandwidth=False)
    assert len(states) == 2 * 2 * 2 and set(states) == {"T"}
    assert_gone(spawned)


def test_serve_protocol_without_fastjac(tmp_path):
    """The serving worker runs in a Python without fastjac, as peers' workers do."""
    requests = [{"op": "load", "framework": "numpy"},
                {"op": "prepare", "row": ["tanh.vjp", 1000, "float64"]},
                {"op": "sample", "repeat": 1, "min_time": 0.0},
                {"op": "sample", "repeat": 2, "min_time": 0.0},
                {"op": "prepare", "row": ["neuron.fit", "1000x10", "float32"]},
                {"op": "nonsense"},
                {"op": "finish", "repeat": 1, "min_time": 0.0, "quick": True},
                {"op": "quit"}]
    code = textwrap.dedent(f"""
        import io, runpy, sys
        sys.modules['fastjac'] = None  # import fastjac now fails
        ns = runpy.run_path({worker.__file__!r}, run_name='bench_worker')
        ns['_serve'](io.StringIO({"".join(json.dumps(r) + chr(10) for r in requests)!r}),
                     sys.stdout)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    replies = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(replies) == 7
    assert replies[0]["ok"] is True and replies[0]["version"] == np.__version__
    assert replies[1]["inputs_crc"] and "error" not in replies[1]
    assert replies[2]["time_s"] > 0 and replies[3]["time_s"] > 0
    assert replies[4]["workload"] == "neuron.fit" and "error" not in replies[4]
    assert "unknown request" in replies[5]["failed"]
    out = replies[6]
    rows = out["rows"]
    assert [r["workload"] for r in rows] == ["tanh.vjp", "neuron.fit"]
    assert rows[0]["time_s"] == float(np.median([replies[2]["time_s"],
                                                 replies[3]["time_s"]]))
    assert rows[0]["checked"] is True
    assert "time_s" not in rows[1]  # prepared, never sampled


def test_serve_reports_missing_framework(monkeypatch):
    def no_such(fw):
        raise ImportError(f"No module named {fw!r}")
    monkeypatch.setattr(worker, "_load", no_such)
    replies = io.StringIO()
    worker._serve(io.StringIO('{"op": "load", "framework": "torch"}\n'), replies)
    rep = json.loads(replies.getvalue())
    assert rep["ok"] is False and "No module named 'torch'" in rep["missing"]


def test_interleave_arguments_are_checked(capsys):
    with pytest.raises(SystemExit):
        main_bench(["--interleave", "--rounds", "2"])
    assert "--rounds and --interleave do not combine" in capsys.readouterr().err
    for bad, why in ((["--interleave", "--samples", "0"], "--samples must be at least 1"),
                     (["--interleave", "--one-by-one"], "do not combine"),
                     (["--one-by-one", "--samples", "3"], "not with --one-by-one"),
                     (["--rounds", "2", "--idle", "pause"], "not with --one-by-one or "
                                                           "--rounds")):
        with pytest.raises(SystemExit):
            main_bench(bad)
        assert why in capsys.readouterr().err
    with pytest.raises(ValueError, match="do not combine"):
        run_bench(quick=True, interleave=True, rounds=2)


def test_interleaved_is_the_default_and_one_by_one_still_runs(monkeypatch):
    modes = []
    real = bench._run_interleaved
    monkeypatch.setattr(bench, "_run_interleaved",
                        lambda *a, **k: modes.append("interleaved") or real(*a, **k))
    real_launch = bench._launch
    monkeypatch.setattr(bench, "_launch",
                        lambda *a, **k: modes.append("one by one") or real_launch(*a, **k))
    args = ["--quick", "--repeat", "1", "--workload", "dot", "--dtype", "float64",
            "--framework", "numpy", "--no-bandwidth"]
    assert main_bench(args) == 0
    assert modes == ["interleaved"]
    assert main_bench(args + ["--one-by-one"]) == 0
    assert modes == ["interleaved"] + ["one by one"] * 2
    res = run_bench(quick=True, repeat=1, workloads=["dot"], dtypes=("float32",),
                    frameworks=["numpy"], bandwidth=False)
    assert res["interleave"]["samples"] == 3 and modes[3:] == ["interleaved"]
    res = run_bench(quick=True, repeat=1, workloads=["dot"], dtypes=("float32",),
                    frameworks=["numpy"], bandwidth=False, rounds=2)
    assert "interleave" not in res and modes[4:] == ["one by one"] * 4
    with pytest.raises(ValueError, match="samples"):
        run_bench(quick=True, interleave=True, samples=0)
    with pytest.raises(ValueError, match="idle"):
        run_bench(quick=True, interleave=True, idle="sleep")
