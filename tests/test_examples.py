"""The scripts in examples/ run, finish quickly and print what they promise."""

import os
import pathlib
import subprocess
import sys

import pytest

import fastjac

ROOT = pathlib.Path(fastjac.__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def _run(script, timeout=120):
    path = EXAMPLES / script
    if not path.is_file():
        pytest.skip(f"{path} is not shipped with this installation")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["PYTHONIOENCODING"] = "utf-8"
    return subprocess.run([sys.executable, str(path)], capture_output=True, text=True,
                          encoding="utf-8", timeout=timeout, env=env, cwd=str(ROOT))


def test_training_loop():
    pytest.importorskip("fastjac.neuron", reason="fastjac.neuron has not landed yet")
    proc = _run("training_loop.py")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "neuron.loss_grad(..., out=gw)" in out
    assert "OK: no array is allocated per step" in out
    final = float(out.split("final loss on all")[1].split(":")[1].split()[0])
    assert final < 0.01  # the noise floor is 0.0025


def test_two_layer_network():
    pytest.importorskip("fastjac.neuron", reason="fastjac.neuron has not landed yet")
    if not hasattr(fastjac, "check_grad"):
        pytest.skip("fastjac.check_grad has not landed yet")
    proc = _run("two_layer_network.py")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "linear output: passed" in out
    assert "ReLU output (neuron.loss_grad with wrt=('w','b','X')): passed" in out
    assert "R² =" in out
    assert out.rstrip().endswith("OK")
