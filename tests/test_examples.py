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


def test_loss_curve():
    pytest.importorskip("fastjac.neuron", reason="fastjac.neuron has not landed yet")
    proc = _run("loss_curve.py")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    finals = [float(line.split("->")[1].split()[0]) for line in proc.stdout.splitlines()
              if "->" in line]
    assert len(finals) == 2 and max(finals) < 0.01  # the noise level is 0.0025


def test_speedup(monkeypatch):
    pytest.importorskip("fastjac.neuron", reason="fastjac.neuron has not landed yet")
    monkeypatch.setenv("CI", "true")  # the small sizes the docs build uses in CI
    proc = _run("speedup.py")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = [line for line in proc.stdout.splitlines() if line.rstrip().endswith("x")]
    assert len(rows) == 10  # two workloads, five sizes; each result checked against NumPy


# ---------------------------------------------------------------------------------------
# README: every code block and every `fastjac ...` command in it runs
# ---------------------------------------------------------------------------------------

def _readme_blocks(lang):
    readme = ROOT / "README.md"
    if not readme.is_file():
        pytest.skip("README.md is not shipped with this installation")
    blocks, current, inside = [], [], None
    for line in readme.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            if inside is None:
                inside = line[3:].strip()
                current = []
            else:
                if inside == lang:
                    blocks.append("\n".join(current))
                inside = None
        elif inside is not None:
            current.append(line)
    return blocks


def test_readme_keeps_the_ci_test_command():
    ci = (ROOT / ".ci" / "run")
    if not ci.is_file():
        pytest.skip(".ci/run not present")
    # .ci/run runs the README's test command exactly as written (then maybe more)
    commands = [line.strip() for line in ci.read_text().splitlines()
                if line.strip().startswith("python3 -m venv")]
    assert commands, ".ci/run does not run the README's set-up command"
    readme_lines = {line.strip() for block in _readme_blocks("bash")
                    for line in block.splitlines()}
    assert commands[0] in readme_lines


def test_readme_python_blocks_run(capsys):
    pytest.importorskip("fastjac.neuron", reason="fastjac.neuron has not landed yet")
    if not hasattr(fastjac, "check_grad"):
        pytest.skip("fastjac.check_grad has not landed yet")
    blocks = _readme_blocks("python")
    assert blocks
    for code in blocks:
        exec(compile(code, "README.md", "exec"), {"__name__": "__readme__"})
    assert "PASSED" in capsys.readouterr().out


def test_readme_fastjac_commands_run(tmp_path, monkeypatch, capsys):
    import shlex
    import shutil

    from fastjac import cli

    pytest.importorskip("fastjac.neuron", reason="fastjac.neuron has not landed yet")
    commands = [line.strip() for block in _readme_blocks("bash")
                for line in block.splitlines() if line.strip().startswith("fastjac")]
    assert any(c.startswith("fastjac demo") for c in commands)
    assert any(c.startswith("fastjac train") for c in commands)
    shutil.copytree(EXAMPLES, tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    for command in commands:
        argv = shlex.split(command)[1:]
        if argv[:1] == ["bench"]:
            bench = pytest.importorskip("fastjac.bench")
            assert callable(getattr(bench, "main_bench", None))
            if "--quick" not in argv:
                continue  # a full timing run is the benchmark suite's business
        if argv[:1] == ["check"] and not hasattr(fastjac, "selfcheck"):
            continue
        try:
            code = cli.main(argv)
        except SystemExit as exc:  # --help
            code = exc.code
        assert code == 0, (command, capsys.readouterr())
    assert (tmp_path / "params.json").is_file()
