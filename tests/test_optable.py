"""The one op table (fastjac/_optable.py) and the op codes compiled into the kernels.

setup.py writes the kernels' op codes from the table (fastjac/_kernels/_gen_opcodes.py:
fj_opcodes.pxi for the Cython modules, fj_opcodes.h for the C loops); these tests check
that the build is current, that no kernel source keeps a hand-written copy, and that the
generator refuses a table it cannot encode.
"""

import importlib.util
import pathlib
import re
import types

import pytest

import fastjac  # noqa: F401 - the import itself runs the kernels' code checks
from fastjac import _optable
from fastjac._kernels import elementwise, fused

KERNELS = pathlib.Path(fastjac.__file__).resolve().parent / "_kernels"


def _gen():
    spec = importlib.util.spec_from_file_location("_gen_opcodes", KERNELS / "_gen_opcodes.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_compiled_codes_are_the_tables():
    assert elementwise.UNARY_CODES == {op.name: op.code for op in _optable.PUBLIC_UNARY}
    assert elementwise.BINARY_CODES == _optable.BINARY_CODES
    own = {op.name: op.code for op in _optable.UNARY_OPS if op.kernel == "fuse"}
    own.update({op.name: _optable.FUSED_BINARY_BASE + op.code for op in _optable.BINARY_OPS})
    assert fused.op_codes() == own
    assert fused.N_STAGE_CODES == len(_optable.PUBLIC_UNARY)


def test_generated_files_are_current():
    # What setup.py last wrote is what the table gives now (else: rebuild).
    for path, text in _gen().outputs().items():
        assert pathlib.Path(path).read_text(encoding="utf-8") == text, path


@pytest.mark.parametrize("name", ["elementwise.pyx", "fused.pyx", "fj_fused.h"])
def test_no_kernel_source_writes_an_op_code_by_hand(name):
    src = (KERNELS / name).read_text(encoding="utf-8")
    ops = "|".join(op.name.upper() for op in _optable.UNARY_OPS + _optable.BINARY_OPS)
    hand = re.findall(rf"\b[A-Z]+_(?:{ops})\s*=\s*\d+", src)
    assert hand == [], f"{name} defines op codes itself: {hand}; use fj_opcodes.pxi/.h"
    assert "fj_opcodes" in src


def test_the_derivative_loops_codes_agree_with_the_table():
    # fj_vmath.h keeps its own enum of the unary codes (the derivative-only VJP loop):
    # FJ_U_IDENTITY = 0 and then consecutive names.
    src = (KERNELS / "fj_vmath.h").read_text(encoding="utf-8")
    m = re.search(r"enum\s*\{\s*(FJ_U_IDENTITY\s*=\s*0[^}]*)\}", src)
    if m is None:
        assert '#include "fj_opcodes.h"' in src
        return
    names = [s.strip() for s in m.group(1).split(",") if s.strip()]
    codes = {n.split("=")[0].strip()[len("FJ_U_"):].lower(): i for i, n in enumerate(names)}
    assert codes == {op.name: op.code for op in _optable.PUBLIC_UNARY}


def _table(unary=(), binary=(), base=32):
    S = _optable.OpSpec
    return types.SimpleNamespace(
        UNARY_OPS=tuple(S(n, c, 1, 0, "", "", kernel=k) for n, c, k in unary),
        BINARY_OPS=tuple(S(n, c, 2, 0, "", "", "") for n, c in binary),
        FUSED_BINARY_BASE=base)


def test_a_new_op_is_one_row():
    gen = _gen()
    t = _table([("identity", 0, "all"), ("cube", 1, "all"), ("pow", 2, "fuse")],
               [("add", 0), ("hypot", 1)])
    pxi, h = gen.render_pxi(t), gen.render_h(t)
    assert "    U_CUBE = 1\n" in pxi and "    'cube': U_CUBE,\n" in pxi
    assert "    N_UNARY = 2\n" in pxi and "    F_POW = 2\n" in pxi
    assert "    F_HYPOT = 33\n" in pxi and "    'hypot': F_HYPOT,\n" in pxi
    assert "    FJ_F_HYPOT = 33,\n" in h and "    FJ_U_CUBE = 1,\n" in h


@pytest.mark.parametrize("unary,binary,base,match", [
    ([("a", 0, "all"), ("b", 2, "all")], [("add", 0)], 32, "codes 0..n-1"),
    ([("a", 0, "all"), ("p", 0, "fuse")], [("add", 0)], 32, "fused-only"),
    ([("a", 0, "all"), ("a", 1, "all")], [("add", 0)], 32, "used twice"),
    ([("a", 0, "all")], [("add", 1)], 32, "binary codes"),
    ([("a", 0, "all"), ("p", 40, "fuse")], [("add", 0)], 32, "below FUSED_BINARY_BASE"),
])
def test_the_generator_refuses_a_table_it_cannot_encode(unary, binary, base, match):
    with pytest.raises(ValueError, match=match):
        _gen().codes(_table(unary, binary, base))
