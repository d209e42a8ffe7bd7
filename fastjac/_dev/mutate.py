"""Mutation testing of fastjac's pure-Python modules with mutmut 3.

Usage (from a source checkout with the extensions built, e.g. ``pip install -e
".[test,mutation]"``)::

    python -m fastjac._dev.mutate                    # every module in MODULES
    python -m fastjac._dev.mutate gradcheck          # one module (or several)
    python -m fastjac._dev.mutate gradcheck --survivors   # also print each survivor's diff
    python -m fastjac._dev.mutate --list             # the modules and their files
    python -m fastjac._dev.mutate gradcheck --functions _finish,selfcheck   # a part
    python -m fastjac._dev.mutate ops --sample 150   # a random sample: score +- interval

Each module runs in its own scratch copy, ``build/mutation/<module>/``: ``fastjac/`` (with
its compiled extensions), ``tests/`` and a generated ``pyproject.toml`` whose
``[tool.mutmut]`` section names the module's files. mutmut makes its own ``mutants/`` copy
inside it, so the source tree is never modified; a second run reuses the cached results of
unchanged functions. The score printed at the end is killed / (all mutants that tests
reach), with timeouts and segfaults counted as killed, as mutmut does.

To add or rename a module, edit
MODULES: a name and the glob patterns of its files, relative to the repository root.
Test selection: mutmut runs, for each mutant, only the tests that call the mutated
function; MODULES also names the test files it may choose from for each module (the fast unit
tests of that module; the long ones, fuzz and benchmarks, are left out: a mutation
score should rest on the normal suite, and a run must stay well under an hour).
"""

import argparse
import json
import os
import pathlib
import shutil
import subprocess
import sys
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]

# module name -> (glob patterns of the files to mutate, relative to the repository root;
#                 the test files mutmut may choose from for that module's mutants)
MODULES = {
    # the checker, split by job: public checks, finite-difference engine, reports,
    # validation-mode hooks and the selfcheck catalogue
    "gradcheck": (["fastjac/gradcheck.py", "fastjac/_fd.py", "fastjac/_report.py",
                   "fastjac/_validation.py", "fastjac/_selfcheck.py"],
                  ["tests/test_gradcheck.py", "tests/test_gradcheck_units.py",
                   "tests/test_referee.py",
                   "tests/test_selfcheck_status.py", "tests/test_check_command.py"]),
    # the other modules: their own unit tests, the both-paths and reliability tests (the
    # Python paths, odd layouts, byte order) and, for the gradient methods, the
    # validation-mode tests of test_gradcheck.py (the hooks they call)
    "ops": (["fastjac/ops.py"], ["tests/test_ops.py", "tests/test_both_paths.py",
                                 "tests/test_reliability.py", "tests/test_jacobian.py",
                                 "tests/test_vmath.py", "tests/test_gradcheck.py",
                                 "tests/test_validation_calls.py", "tests/test_ops_args.py"]),
    "neuron": (["fastjac/neuron.py"], ["tests/test_neuron.py", "tests/test_both_paths.py",
                                       "tests/test_reliability.py", "tests/test_layer.py",
                                       "tests/test_gradcheck.py",
                                       "tests/test_validation_calls.py",
                                       "tests/test_neuron_args.py"]),
    "jacobian": (["fastjac/jacobian.py"], ["tests/test_jacobian.py",
                                           "tests/test_jacobian_algebra.py",
                                           "tests/test_ops.py", "tests/test_neuron.py",
                                           "tests/test_layer.py", "tests/test_both_paths.py"]),
    "_validate": (["fastjac/_validate.py"], ["tests/test_ops.py", "tests/test_both_paths.py",
                                             "tests/test_ops_args.py",
                                             "tests/test_neuron.py", "tests/test_reliability.py",
                                             "tests/test_fuse.py", "tests/test_layer.py"]),
    "fuse": (["fastjac/fuse.py", "fastjac/_optable.py"], ["tests/test_fuse.py",
                                                          "tests/test_fuse_args.py",
                                                          "tests/test_reliability.py"]),
    "layer": (["fastjac/layer.py"], ["tests/test_layer.py", "tests/test_layer_args.py",
                                     "tests/test_reliability.py"]),
}

PYTEST_ARGS = ["-p", "no:cacheprovider", "-p", "no:randomly", "-q"]
# the long tests of the normal suite's files: the fuzz suite in a subprocess and the
# memory-growth loops (the fuzz suite is left out, as said above)
LONG_TESTS = ["tests/test_reliability.py::test_fuzz_suite_in_a_subprocess",
              "tests/test_reliability.py::test_no_memory_growth"]

# mutmut's own CLI, started with one change: the tests that reach a mutant run fastest
# first (mutmut passes them in set order). With pytest's -x, which mutmut always adds, a
# mutant is then killed by its quickest failing test instead of after a slow one (the
# referee's sensitivity test takes ~20 s); survivors cost the same either way.
_LAUNCH = """
import runpy, sys
try:  # mutmut 3.8's layout; another version runs unpatched (same results, slower)
    from mutmut.runners import harness
    from mutmut.state import state
    _orig = harness.PytestRunner._pytest_args_regular_run
    def _fastest_first(self, tests):
        d = state().duration_by_test
        return _orig(self, sorted(tests, key=lambda t: (d.get(t, 0.0), t)))
    harness.PytestRunner._pytest_args_regular_run = _fastest_first
except (ImportError, AttributeError):
    pass
sys.argv = ["mutmut"] + sys.argv[1:]
runpy.run_module("mutmut", run_name="__main__", alter_sys=True)
"""


def _toml_list(items):
    return "[" + ", ".join(json.dumps(str(i)) for i in items) + "]"


def _existing(patterns):
    """The patterns that match a file of the tree."""
    return [p for p in patterns if list(ROOT.glob(p))]


def _only(path, functions):
    """Fence every top-level statement of ``path`` except the named functions/classes with
    mutmut's ``# pragma: no mutate start/end``, so that only those are mutated (a big
    module such as gradcheck.py, mutated whole, makes mutmut's generated file huge)."""
    import ast

    src = path.read_text(encoding="utf-8").splitlines()
    tree = ast.parse("\n".join(src))
    out, pos, fenced = [], 0, False
    for node in tree.body:
        first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])]) - 1
        keep = isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name in functions
        out += src[pos:first]
        if keep and fenced:
            out.append("# pragma: no mutate end")
            fenced = False
        elif not keep and not fenced:
            out.append("# pragma: no mutate start")
            fenced = True
        out += src[first:node.end_lineno]
        pos = node.end_lineno
    out += src[pos:]
    if fenced:
        out += ["# pragma: no mutate end", "_MUTATION_FENCE_END = None"]
    path.write_text("\n".join(out) + "\n", encoding="utf-8")


def _refresh_mutants_dir(work):
    """Make mutmut's own copy (``<work>/mutants/``) match today's tree, keeping only the
    verdicts (the ``*.meta`` files).

    mutmut copies a file into ``mutants/`` only when it is not there yet, so after a pull
    its copy kept yesterday's unmutated modules, tests and compiled extensions (a run
    then imported a ``layer.py`` and ``.so`` files from another day). Everything but the
    ``.meta`` files is deleted here; mutmut then copies the tree again, regenerates the
    mutated files and keeps a verdict only for a function whose source hash is unchanged.
    Its test statistics (``mutmut-stats.json``: which tests reach which function, and how
    long they take) go too, so they are collected afresh against today's tests."""
    mut = work / "mutants"
    if not mut.is_dir():
        return
    for p in sorted(mut.rglob("*"), key=lambda q: len(q.parts), reverse=True):
        if p.is_dir():
            if not any(p.iterdir()):
                p.rmdir()
        elif not p.name.endswith(".meta"):
            p.unlink()


def prepare(name, extra_pytest=(), without=(), functions=()):
    """Create (or refresh) the scratch copy for one module; return its directory."""
    patterns, tests = MODULES[name]
    patterns = _existing(patterns)
    if not patterns:
        raise SystemExit(f"{name}: none of {MODULES[name][0]} exists under {ROOT}")
    tests = [t for t in tests if (ROOT / t).exists() and t not in without]
    work = ROOT / "build" / "mutation" / name
    work.mkdir(parents=True, exist_ok=True)
    for sub in ("fastjac", "tests", "examples"):  # examples: data files some tests read
        dst = work / sub
        if dst.exists():
            shutil.rmtree(dst)
        shutil.copytree(ROOT / sub, dst, ignore=shutil.ignore_patterns(
            "__pycache__", "*.c", ".hypothesis", ".pytest_cache", "build"))
    if functions:
        for pat in patterns:
            for f in work.glob(pat):
                _only(f, set(functions))
    _refresh_mutants_dir(work)
    deselect = [a for t in LONG_TESTS if t.split("::")[0] in tests for a in ("--deselect", t)]
    (work / "pyproject.toml").write_text(
        "[tool.mutmut]\n"
        'source_paths = ["fastjac"]\n'
        'also_copy = ["examples"]\n'
        f"only_mutate = {_toml_list(patterns)}\n"
        f"pytest_add_cli_args_test_selection = {_toml_list(tests)}\n"
        f"pytest_add_cli_args = {_toml_list(PYTEST_ARGS + deselect + list(extra_pytest))}\n"
        "use_git_change_detection = false\n"
        "\n[tool.pytest.ini_options]\n"
        'testpaths = ["tests"]\n'
        'addopts = "-ra --benchmark-disable"\n',
        encoding="utf-8",
    )
    return work


def score(work, only=None):
    """Counts per status over the module's mutants (or the names in ``only``), from
    mutmut's .meta files."""
    from mutmut.stats import status_by_exit_code

    counts, survivors = {}, []
    for meta in sorted((work / "mutants").rglob("*.py.meta")):
        data = json.loads(meta.read_text(encoding="utf-8"))
        for key, code in data.get("exit_code_by_key", {}).items():
            if only is not None and key not in only:
                continue
            status = status_by_exit_code[code]
            counts[status] = counts.get(status, 0) + 1
            if status == "survived":
                survivors.append(key)
    killed = sum(counts.get(s, 0) for s in ("killed", "timeout", "segfault"))
    reached = killed + counts.get("survived", 0) + counts.get("suspicious", 0)
    return counts, killed, reached, survivors


def _all_mutants(work):
    names = []
    for meta in sorted((work / "mutants").rglob("*.py.meta")):
        names += json.loads(meta.read_text(encoding="utf-8")).get("exit_code_by_key", {})
    return sorted(names)


def _killed(work):
    from mutmut.stats import status_by_exit_code

    out = set()
    for meta in sorted((work / "mutants").rglob("*.py.meta")):
        for key, code in json.loads(meta.read_text(encoding="utf-8")).get(
                "exit_code_by_key", {}).items():
            if status_by_exit_code[code] in ("killed", "timeout", "segfault"):
                out.add(key)
    return out


def _wilson(k, n, z=1.96):
    """95% Wilson interval of a proportion k/n, in percent."""
    if not n:
        return float("nan"), float("nan")
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * ((p * (1 - p) / n + z * z / (4 * n * n)) ** 0.5) / (1 + z * z / n)
    return 100 * (centre - half), 100 * (centre + half)


def _generate(cmd, work, env):
    """Generate the mutants and collect mutmut's test statistics without running any
    mutant (mutmut stops at the name that matches nothing); fail loudly when the tests do
    not pass in the scratch copy."""
    p = subprocess.run(cmd + ["no-such-mutant"], cwd=work, env=env, capture_output=True,
                       text=True)
    out = p.stdout + p.stderr
    if "failed to collect stats" in out or "Failed to run clean test" in out:
        sys.stdout.write(out[-5000:])
        raise SystemExit(f"mutmut could not run the tests in {work}")


def run(name, max_children=None, survivors=False, extra_pytest=(), without=(), functions=(),
        sample=None, seed=0, patterns=()):
    work = prepare(name, extra_pytest, without, functions)
    cmd = [sys.executable, "-c", _LAUNCH, "run"]
    if max_children:
        cmd += ["--max-children", str(max_children)]
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    env.setdefault("FASTJAC_NUM_THREADS", "1")
    env.setdefault("FASTJAC_LEAK_CALLS", "2000")
    t0 = time.monotonic()
    only = None
    if sample:
        # generate the mutants and collect the test statistics (mutmut then stops: no
        # mutant has this name), draw the sample, run only those
        _generate(cmd, work, env)
        import random

        import fnmatch

        # with --mutants, the sample is drawn from the matching mutants only
        every = [m for m in _all_mutants(work)
                 if not patterns or any(fnmatch.fnmatch(m, p) for p in patterns)]
        only = sorted(random.Random(seed).sample(every, min(sample, len(every))))
        done = _killed(work)
        todo = [m for m in only if m not in done]
        print(f"{name}: a random sample of {len(only)} of {len(every)} "
              f"{'matching ' if patterns else ''}mutants (seed {seed}), "
              f"{len(todo)} not killed yet")
        cmd = cmd + todo if todo else None
    elif patterns:
        # only the mutants whose names match (fnmatch), e.g. "fastjac._fd.*"; a run that
        # is stopped can be resumed file by file or function by function this way
        _generate(cmd, work, env)
        import fnmatch

        only = [m for m in _all_mutants(work) if any(fnmatch.fnmatch(m, p) for p in patterns)]
        # mutmut reruns every mutant named on its command line: name only those not
        # killed yet (never run, or survivors to try against new tests)
        done = _killed(work)
        todo = [m for m in only if m not in done]
        print(f"{name}: {len(only)} mutants match, {len(todo)} of them not killed yet")
        if not todo:
            cmd = None
        else:
            cmd = cmd + todo
    proc = subprocess.run(cmd, cwd=work, env=env) if cmd else subprocess.CompletedProcess([], 0)
    elapsed = time.monotonic() - t0
    counts, killed, reached, names = score(work, only)
    pct = 100.0 * killed / reached if reached else float("nan")
    ci = ""
    if only is not None and sample:
        lo, hi = _wilson(killed, reached)
        ci = f", 95% interval {lo:.0f}-{hi:.0f}%, sample of {len(only)}"
    print(f"\n== {name}: {killed} of {reached} mutants killed ({pct:.1f}%{ci}) in {elapsed:.0f} s; "
          + ", ".join(f"{k}: {v}" for k, v in sorted(counts.items())))
    if names:
        print(f"   {len(names)} survivors:")
        for key in names:
            print("     ", key)
            if survivors:
                subprocess.run([sys.executable, "-m", "mutmut", "show", key], cwd=work, env=env)
    return proc.returncode, killed, reached, elapsed


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m fastjac._dev.mutate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("modules", nargs="*", help=f"default: all of {', '.join(MODULES)}")
    p.add_argument("--list", action="store_true", help="print MODULES and exit")
    p.add_argument("--survivors", action="store_true", help="print the diff of each survivor")
    p.add_argument("--max-children", type=int, help="parallel mutant runs (default: cores)")
    p.add_argument("--pytest-arg", action="append", default=[],
                   help="extra pytest argument for every mutant run (repeatable)")
    p.add_argument("--without", action="append", default=[], metavar="TEST_FILE",
                   help="leave a test file out of the selection (repeatable), e.g. one that "
                        "fails on purpose until another branch lands")
    p.add_argument("--functions", default="", metavar="NAME,NAME",
                   help="mutate only these top-level functions/classes of the module(s)")
    p.add_argument("--sample", type=int, metavar="N",
                   help="run a random sample of N mutants per module and report the score "
                        "with its 95%% interval (a full run of a big module takes hours on "
                        "a shared 2-core machine); with --mutants, of the matching ones")
    p.add_argument("--seed", type=int, default=0, help="seed of --sample (default 0)")
    p.add_argument("--mutants", action="append", default=[], metavar="PATTERN",
                   help="run only the mutants whose names match (repeatable), e.g. "
                        "'fastjac._fd.*' or 'fastjac.gradcheck.x_check_grad__mutmut_*'")
    opts = p.parse_args(argv)
    if opts.list:
        for k, v in MODULES.items():
            print(f"{k:10} {' '.join(_existing(v[0])) or '(no file yet)'}   tests: {' '.join(v[1])}")
        return 0
    try:
        import mutmut  # noqa: F401
    except ImportError:
        print("mutmut is not installed: pip install -e '.[mutation]'", file=sys.stderr)
        return 2
    names = opts.modules or list(MODULES)
    unknown = [n for n in names if n not in MODULES]
    if unknown:
        p.error(f"unknown module(s) {unknown}; known: {', '.join(MODULES)}")
    total_k = total_r = 0
    status = 0
    for n in names:
        rc, k, r, _ = run(n, opts.max_children, opts.survivors, opts.pytest_arg, opts.without,
                          [f for f in opts.functions.split(",") if f], opts.sample, opts.seed,
                          opts.mutants)
        status = status or rc
        total_k, total_r = total_k + k, total_r + r
    if len(names) > 1 and total_r:
        print(f"\n== all: {total_k} of {total_r} killed ({100.0 * total_k / total_r:.1f}%)")
    return status


if __name__ == "__main__":
    sys.exit(main())
