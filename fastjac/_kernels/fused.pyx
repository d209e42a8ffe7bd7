# cython: language_level=3
"""The fused-expression interpreter: value, JVP and VJP of a DAG of element-wise ops.

Python caller: ``fastjac/fuse.py`` (which traces the user's function into a DAG, folds
constants, removes common subexpressions and dead nodes, and validates every argument
before anything here runs).

A :class:`Program` is the compiled DAG: registers ``0 .. n_in-1`` are the inputs (the
user's inputs, then arrays captured from the enclosing scope), the next ``n_const`` are
constants, and node ``i`` writes register ``n_in + n_const + i``. Node ``i`` is
``op[i](reg a[i], reg b[i])`` (``b[i] = -1`` for a unary op), in topological order; the
last node is the output unless ``out_reg`` names an input or a constant.

Work is split into fixed blocks of BLOCK elements (the partition does not depend on the
thread count), each block into tiles of at most FUSED_TILE elements. Every register is a
tile-long buffer of doubles (of floats for a float32 call with array inputs:
fused32.pxi, rounding at every op as fastjac's float32 ops do), so a whole expression is
evaluated in cache:

1. a forward sweep computes each node's value and its local partial derivatives
   (``∂node/∂operand``, paper §4.2: diagonal, so one number per element and operand);
   a partial is a constant (add, sub, neg), another register's value (mul), or a buffer;
2. a forward tangent sweep (JVP) ``t[node] = Σ_operands ∂node/∂operand · t[operand]``;
3. a reverse sweep (VJP) ``adj[operand] += adj[node] · ∂node/∂operand``: adjoints summed
   over every path from the output to an input (the total-derivative rule, §4.5.2).

Unary ops are evaluated by elementwise.pyx's ``_stage`` (the same arithmetic as fj.exp,
fj.chain, ...); binary ops use the arithmetic of elementwise.pyx's binary kernels, so a
fused ``w * x`` gives the bits of ``fj.mul``. A scalar input's gradient is the sum of its
adjoints, accumulated per block in the 16 accumulators of fj_reduce.h and merged in block
order: the bits of the binary ops' scalar VJP, and the same for every ``n_threads`` and
every schedule of fastjac's thread pool (``pool.pxd``), which runs the blocks.
Every input of a tile is loaded before any output of the tile is stored: an output may
be exactly one of the inputs (in place).
"""

cimport cython
from libc.math cimport pow as c_pow
from libc.stdlib cimport free, malloc
from libc.string cimport memcpy

cimport numpy as cnp
import numpy as np

from fastjac._kernels._common cimport (BLOCK, TILE, disjoint, disjoint_or_same,
                                       writable_out_like)
from fastjac._kernels._common cimport plain_typenum as _plain_typenum
from fastjac._kernels.elementwise cimport _data, _stage, _unary32
from fastjac._kernels.outputs cimport new_output
from fastjac._kernels.pool cimport fast_threads, parallel_for

cdef extern from "fj_reduce.h" nogil:
    enum: FJ_RACC
    void fj_racc_zero(double* acc)
    double fj_racc_total(const double* acc)
    void fj_racc_add_f64(double* acc, const double* a, const double* b, Py_ssize_t m)

cdef extern from "fj_fused.h" nogil:
    # The tile loops, compiled for AVX-512, AVX2 and the baseline (same bits in each).
    void _binary_node "fj_fused_binary" (int op, const double* a, const double* b, double* y,
                                         double* pa, double* pb, int pd, Py_ssize_t m)
    void _axpy "fj_fused_axpy" (double* dst, const double* cur, const double* src, int kind,
                                double c, const double* p, int mode, Py_ssize_t m)
    void _axpy2 "fj_fused_axpy2" (double* dst, const double* cur, const double* src,
                                  const double* p1, const double* p2, int mode, Py_ssize_t m)
    void _divb "fj_fused_divb" (double* dst, const double* cur, const double* src,
                                const double* a, const double* b, int check, int mode,
                                Py_ssize_t m)
    void fj_fused_widen(double* dst, const float* src, Py_ssize_t m)
    void fj_fused_narrow(float* dst, const double* src, Py_ssize_t m)
    # float32 registers (_tile32)
    enum: FJF_PD_FLOAT, FJF_PD_DOUBLE
    void _binary32 "fj_fused32_binary" (int op, const float* a, const float* b, float* y,
                                        float* pa, float* pb, int pd, Py_ssize_t m)
    void _axpy32 "fj_fused32_axpy" (float* dst, const float* cur, const float* src, int kind,
                                    double c, const void* p, int pf, int mode, Py_ssize_t m)
    void _axpy2_32 "fj_fused32_axpy2" (float* dst, const float* cur, const float* src,
                                       const void* p1, int f1, const void* p2, int f2,
                                       int mode, Py_ssize_t m)
    void _divb32 "fj_fused32_divb" (float* dst, const float* cur, const float* src,
                                    const float* a, const float* b, int mode, Py_ssize_t m)
    void _quot_axpy2_32 "fj_fused32_quot_axpy2" (float* dst, const float* s1, const float* q,
                                                 const float* src, const void* p1, int f1,
                                                 const void* p2, int f2, Py_ssize_t m)
    void _divb_axpy2_32 "fj_fused32_divb_axpy2" (float* dst, const float* s1, const float* a,
                                                 const float* b, const float* src,
                                                 const void* p1, int f1, const void* p2,
                                                 int f2, Py_ssize_t m)
    void _tangent2_32 "fj_fused32_tangent2" (int op, float* dst, const float* a,
                                             const float* b, const float* ta,
                                             const float* tb, Py_ssize_t m)

cnp.import_array()

# Op codes, written by setup.py from fastjac/_optable.py (fastjac/_kernels/_gen_opcodes.py):
# unary codes below N_UNARY go to elementwise.pyx's _stage; F_POW and the binary ops at
# F_ADD = FUSED_BINARY_BASE + B_ADD, ... are handled here (FUSED_CODES, checked by
# fastjac/fuse.py at import).
include "fj_opcodes.pxi"

cdef enum:
    N_STAGE = N_UNARY     # codes below this go to elementwise.pyx's _stage

# Kinds of a local partial derivative ∂node/∂operand.
cdef enum:
    PK_NONE = 0       # not needed (the operand is a constant)
    PK_CONST = 1      # the number pc
    PK_REG = 2        # the value of register pr (mul: ∂(a b)/∂a = b)
    PK_BUF = 3        # a buffer of its own, filled by the forward sweep
    PK_QUOT = 4       # one over the value of register pr (log: ∂log(a)/∂a = 1/a, applied
                      # as a division: adjoint/a, tangent/a, as fj.log's VJP t/x)
    PK_DIVB = 5       # ∂(a/b)/∂b applied as -(adjoint·a)/(b·b) with a = register pr: the
                      # float32 reverse sweep only (fj.div's float32 VJP, fj_fused_divb)

# Gradient outputs per input.
cdef enum:
    G_NONE = 0        # not wanted
    G_ARRAY = 1       # an array input: store the adjoint
    G_SUM = 2         # a scalar input: Σ of the adjoints (§4.3)
    G_EXPAND = 3      # a scalar input's Column Jacobian: the adjoints, one per element

N_STAGE_CODES = N_UNARY
# The longest tile (elements per register): FUSED_TILE unless _set_tile_length changed it.
# Longer than elementwise.pyx's TILE, so that the interpreter's per-tile work (walking the
# program, one call per node and sweep) is spread over more elements; _stage, whose
# buffers hold TILE elements, is called once per TILE-long piece. A program with many
# registers gets shorter tiles (see _alloc), so that a tile's registers stay within
# REG_BYTES, a quarter of a 1 MB L2 cache.
cdef enum:
    FUSED_TILE = 4 * TILE
    REG_BYTES = 262144
cdef Py_ssize_t _tile_max = FUSED_TILE
_KNOWN_CODES = frozenset([*UNARY_CODES.values(), *FUSED_CODES.values()])


def _set_tile_length(Py_ssize_t m):
    """Set the longest tile (a multiple of 16, 16 .. FUSED_TILE) and return the previous
    one: for tests (tile boundaries) and tuning only. Results do not depend on it."""
    global _tile_max
    if m < 16 or m > FUSED_TILE or m % 16:
        raise ValueError(f"tile length must be a multiple of 16 in 16..{FUSED_TILE}, got {m}")
    old = _tile_max
    _tile_max = m
    return old


def op_codes():
    """``{name: code}`` of the ops this interpreter handles itself (binary codes offset by
    ``FUSED_BINARY_BASE``); every code below ``N_STAGE_CODES`` is a unary op of
    elementwise.pyx."""
    return dict(FUSED_CODES)


cdef struct Ctx:
    # The program (owned by Program)
    int n_in
    int n_const
    int n_node
    int n_reg
    int out_reg
    const int* op
    const int* a
    const int* b
    const double* param
    const int* pk          # 2 per node: kind of ∂node/∂a, ∂node/∂b
    const double* pc       # 2 per node: the constant partials
    const int* pr          # 2 per node: the register of a PK_REG or PK_QUOT partial
    const int* rk          # 2 per node: the kinds the reverse sweep applies (pk, but for
    const int* rr          # float32 a/b: PK_QUOT by b and PK_DIVB, as fj.div's VJP) and
                           # their registers
    const double* cval     # n_const constants, rounded to the dtype
    # The call
    bint f32
    Py_ssize_t n
    Py_ssize_t tile        # tile length (a multiple of 16, at most FUSED_TILE)
    const void** x         # n_in inputs
    unsigned char* x_scalar
    const void** t         # n_in tangents or NULLs (NULL array: no JVP)
    const void* gy         # cotangent (n,) or NULL: ones
    void* y_out
    void* jvp_out
    void** g_out           # n_in gradient outputs (G_ARRAY, G_EXPAND) or NULLs
    unsigned char* gmode
    bint want_grad
    double* partial        # n_blocks x n_in block sums (G_SUM), or NULL
    # The plan (per call; see _plan)
    unsigned char* need_val    # per register
    unsigned char* need_pd     # per node
    unsigned char* act_t       # per register: has a nonzero tangent
    unsigned char* act_g       # per register: has an adjoint
    unsigned char* first_g     # 2 per node: the contribution assigns (else adds)
    unsigned char* has_g       # per register: received an adjoint (inputs: else zero)
    unsigned char* fwd         # 2 per node: the contribution is passed on (see _plan)
    unsigned char* fwd_r       # per register: its adjoint is passed on, never stored
    bint alias                 # registers may point into the caller's arrays: no output
                               # is an input, and float64 or r32 (see _tile, _tile32)
    bint r32                   # float32 registers (_tile32; see _exec)
    Py_ssize_t lead            # the first block's extra elements (_lead32; 0: none)
    double* sums               # n_in merged scalar gradients
    void* mem                  # the one allocation behind the per-call tables
    int failed                 # a block could not allocate its registers


# ---------------------------------------------------------------------------------------
# Loads and stores: float32 widened to double on load, rounded once on store.
# ---------------------------------------------------------------------------------------

cdef inline void _load(double* dst, const void* src, bint f32, bint scalar, Py_ssize_t off,
                       Py_ssize_t m) noexcept nogil:
    cdef Py_ssize_t k
    cdef double c
    if scalar:
        c = (<const float*>src)[0] if f32 else (<const double*>src)[0]
        for k in range(m):
            dst[k] = c
    elif f32:
        fj_fused_widen(dst, <const float*>src + off, m)
    else:
        memcpy(dst, <const double*>src + off, m * sizeof(double))


cdef inline void _store(void* dst, const double* src, bint f32, Py_ssize_t off,
                        Py_ssize_t m) noexcept nogil:
    cdef Py_ssize_t k
    if f32:
        fj_fused_narrow(<float*>dst + off, src, m)
    else:
        memcpy(<double*>dst + off, src, m * sizeof(double))


cdef inline void _store_zero(void* dst, bint f32, Py_ssize_t off, Py_ssize_t m) noexcept nogil:
    cdef Py_ssize_t k
    if f32:
        for k in range(m):
            (<float*>dst)[off + k] = 0.0
    else:
        for k in range(m):
            (<double*>dst)[off + k] = 0.0


# ---------------------------------------------------------------------------------------
# Point mathematics of the nodes the interpreter handles itself.
# ---------------------------------------------------------------------------------------

cdef void _pow_node(const double* a, double c, double* y, double* pa, bint pd,
                    Py_ssize_t m) noexcept nogil:
    # y = a^c, ∂y/∂a = c a^(c-1) (power rule, paper §2), libm's pow.
    cdef Py_ssize_t k
    for k in range(m):
        y[k] = c_pow(a[k], c)
    if pd:
        for k in range(m):
            pa[k] = c * c_pow(a[k], c - 1.0)


# ---------------------------------------------------------------------------------------
# One tile, one block, all blocks.
#
# Registers are reached through pointer tables (Vp values, Tp tangents, Ap adjoints), so a
# register can stand for memory it does not own: with c.alias (float64, no output equal to
# an input), an input's value and tangent registers point into the input arrays, the
# output's adjoint into gy, and an input's adjoint into its gradient output; and an
# adjoint whose first contribution has partial 1 (add, sub's first operand) points to the
# adjoint it came from, copied only when a second contribution arrives (into the
# register's own buffer, in the same pass as the addition). None of this changes an
# operation, only where its operands are read from, so the bits are the same either way.
# ---------------------------------------------------------------------------------------

cdef struct Regs:
    double* V          # own buffers: n_reg values, tangents, adjoints; 2 partials per node
    double* T
    double* A
    double* P
    double** Vp
    double** Tp
    double** Ap
    unsigned char* owned   # Ap[r] is r's own writable buffer
    double** Fs        # per register with c.fwd_r: its one contribution, Fp[r]·Fs[r]
    double** Fp
    double* acc        # n_in x FJ_RACC accumulators of the block's scalar gradients


cdef inline double* _own_adj(const Ctx* c, const Regs* g, int r, Py_ssize_t off) noexcept nogil:
    # Where register r's adjoint is formed: its gradient output, or its own buffer.
    if c.alias and r < c.n_in and (c.gmode[r] == G_ARRAY or c.gmode[r] == G_EXPAND):
        return <double*>c.g_out[r] + off
    return g.A + <Py_ssize_t>r * c.tile


cdef void _tile(const Ctx* c, Regs* g, Py_ssize_t off, Py_ssize_t m) noexcept nogil:
    cdef int i, r, j, o, kind, code, mode, node0 = c.n_in + c.n_const
    cdef Py_ssize_t tl = c.tile, k
    cdef double* dst
    cdef double* own
    cdef double* pd
    cdef const double* pp
    cdef bint any_t

    # Loads (scalar inputs and constants were filled at the start of the block).
    for r in range(c.n_in):
        if c.x_scalar[r]:
            continue
        if c.need_val[r] or r == c.out_reg:
            if c.alias:
                g.Vp[r] = <double*>c.x[r] + off
            else:
                _load(g.V + <Py_ssize_t>r * tl, c.x[r], c.f32, False, off, m)
        if c.jvp_out != NULL and c.act_t[r]:
            if c.alias:
                g.Tp[r] = <double*>c.t[r] + off
            else:
                _load(g.T + <Py_ssize_t>r * tl, c.t[r], c.f32, False, off, m)
    if c.want_grad and c.act_g[c.out_reg]:
        for r in range(c.n_reg):
            g.owned[r] = 1
        for r in range(c.n_in):
            g.Ap[r] = _own_adj(c, g, r, off)
        own = _own_adj(c, g, c.out_reg, off)
        g.Ap[c.out_reg] = own
        if c.gy != NULL:
            if c.alias:
                g.Ap[c.out_reg] = <double*>c.gy + off
                g.owned[c.out_reg] = 0
            else:
                _load(own, c.gy, c.f32, False, off, m)
        else:
            for k in range(m):
                own[k] = 1.0

    # Forward sweep: values, local partials, tangents.
    for i in range(c.n_node):
        if c.need_val[node0 + i] or c.need_pd[i]:
            code = c.op[i]
            dst = g.V + <Py_ssize_t>(node0 + i) * tl
            if code < N_STAGE:
                memcpy(dst, g.Vp[c.a[i]], m * sizeof(double))
                pd = NULL
                if c.need_pd[i] and c.pk[2 * i] == PK_BUF:
                    pd = g.P + <Py_ssize_t>(2 * i) * tl
                if pd != NULL or c.need_val[node0 + i]:  # else only a register partial (log)
                    k = 0
                    while k < m:  # _stage takes at most TILE elements
                        _stage(code, dst + k, pd + k if pd != NULL else NULL,
                               m - k if m - k < TILE else TILE, True,
                               pd == NULL or c.need_val[node0 + i], c.f32)
                        k += TILE
            elif code == F_POW:
                _pow_node(g.Vp[c.a[i]], c.param[i], dst, g.P + <Py_ssize_t>(2 * i) * tl,
                          c.need_pd[i], m)
            else:
                _binary_node(code, g.Vp[c.a[i]], g.Vp[c.b[i]], dst,
                             g.P + <Py_ssize_t>(2 * i) * tl,
                             g.P + <Py_ssize_t>(2 * i + 1) * tl, c.need_pd[i], m)
        if c.jvp_out != NULL and c.act_t[node0 + i]:
            any_t = False
            own = g.T + <Py_ssize_t>(node0 + i) * tl
            for j in range(2):
                o = c.a[i] if j == 0 else c.b[i]
                if o < 0 or not c.act_t[o]:
                    continue
                kind = c.pk[2 * i + j]
                pp = (g.Vp[c.pr[2 * i + j]] if kind == PK_REG or kind == PK_QUOT
                      else g.P + <Py_ssize_t>(2 * i + j) * tl)
                _axpy(own, own, g.Tp[o], kind, c.pc[2 * i + j], pp, 1 if any_t else 0, m)
                any_t = True

    # Reverse sweep: adjoints summed over the paths (§4.5.2), in a fixed order.
    if c.want_grad and c.act_g[c.out_reg]:
        for i in range(c.n_node - 1, -1, -1):
            if not c.act_g[node0 + i]:
                continue
            for j in range(2):
                o = c.a[i] if j == 0 else c.b[i]
                if o < 0 or not c.act_g[o]:
                    continue
                kind = c.rk[2 * i + j]
                if c.first_g[2 * i + j] and kind == PK_CONST and c.pc[2 * i + j] == 1.0:
                    g.Ap[o] = g.Ap[node0 + i]  # the same numbers: share them
                    g.owned[o] = 0
                    continue
                pp = (g.Vp[c.rr[2 * i + j]] if kind >= PK_QUOT or kind == PK_REG
                      else g.P + <Py_ssize_t>(2 * i + j) * tl)
                if c.fwd[2 * i + j]:  # o's only contribution: formed when o passes it on
                    g.Fs[o] = g.Ap[node0 + i]  # (never a PK_QUOT partial: see _plan)
                    g.Fp[o] = <double*>pp
                    continue
                own = _own_adj(c, g, o, off)
                if c.first_g[2 * i + j]:
                    mode = 0
                elif g.owned[o]:
                    mode = 1
                else:
                    mode = 2
                if c.fwd_r[node0 + i]:
                    _axpy2(own, g.Ap[o], g.Fs[node0 + i], g.Fp[node0 + i], pp, mode, m)
                elif kind == PK_DIVB:
                    # an input's or constant's b is a float32 number: no range check
                    _divb(own, g.Ap[o], g.Ap[node0 + i], pp, g.Vp[o], o >= node0, mode, m)
                else:
                    _axpy(own, g.Ap[o], g.Ap[node0 + i], kind, c.pc[2 * i + j], pp, mode, m)
                g.Ap[o] = own
                g.owned[o] = 1

    # Stores, last: every input of this tile has been read.
    if c.want_grad:
        for r in range(c.n_in):
            if c.gmode[r] == G_SUM:
                if c.has_g[r]:
                    fj_racc_add_f64(g.acc + <Py_ssize_t>r * FJ_RACC, g.Ap[r], NULL, m)
            elif c.gmode[r] != G_NONE:
                if not c.has_g[r]:
                    _store_zero(c.g_out[r], c.f32, off, m)
                elif not (c.alias and g.Ap[r] == <double*>c.g_out[r] + off):
                    _store(c.g_out[r], g.Ap[r], c.f32, off, m)
    if c.jvp_out != NULL:
        if c.act_t[c.out_reg]:
            _store(c.jvp_out, g.Tp[c.out_reg], c.f32, off, m)
        else:
            _store_zero(c.jvp_out, c.f32, off, m)
    if c.y_out != NULL:
        _store(c.y_out, g.Vp[c.out_reg], c.f32, off, m)


cdef void _fused_block(Ctx* c, Py_ssize_t blk) noexcept nogil:
    # Block blk of the fixed partition: its tiles, and its scalar-gradient sums into
    # c.partial[blk * n_in + r]. The registers live in one scratch allocation per block.
    cdef Py_ssize_t start = blk * BLOCK
    cdef Py_ssize_t stop = start + BLOCK
    cdef Py_ssize_t tl = c.tile, i, m, k
    cdef int r, nr = c.n_reg
    cdef Regs g
    cdef double* scratch
    cdef size_t nd = (<size_t>(3 * nr + 2 * c.n_node) * tl + <size_t>c.n_in * FJ_RACC + 1)
    if stop > c.n:
        stop = c.n
    scratch = <double*>malloc(nd * sizeof(double) + 5 * <size_t>(nr + 1) * sizeof(double*)
                              + <size_t>(nr + 1))
    if scratch == NULL:
        c.failed = 1
        return
    g.V = scratch
    g.T = g.V + <Py_ssize_t>nr * tl
    g.A = g.T + <Py_ssize_t>nr * tl
    g.P = g.A + <Py_ssize_t>nr * tl
    g.acc = g.P + <Py_ssize_t>(2 * c.n_node) * tl
    g.Vp = <double**>(scratch + nd)
    g.Tp = g.Vp + nr + 1
    g.Ap = g.Tp + nr + 1
    g.Fs = g.Ap + nr + 1
    g.Fp = g.Fs + nr + 1
    g.owned = <unsigned char*>(g.Fp + nr + 1)
    for r in range(nr):
        g.Vp[r] = g.V + <Py_ssize_t>r * tl
        g.Tp[r] = g.T + <Py_ssize_t>r * tl
        g.Ap[r] = g.A + <Py_ssize_t>r * tl
    for r in range(c.n_in):
        fj_racc_zero(g.acc + <Py_ssize_t>r * FJ_RACC)
    # Registers that hold one value for the whole block: constants and scalar inputs
    # (and their tangents).
    for r in range(c.n_const):
        for k in range(tl):
            g.V[(c.n_in + r) * tl + k] = c.cval[r]
    for r in range(c.n_in):
        if c.x_scalar[r]:
            _load(g.V + <Py_ssize_t>r * tl, c.x[r], c.f32, True, 0, tl)
            if c.jvp_out != NULL and c.act_t[r]:
                _load(g.T + <Py_ssize_t>r * tl, c.t[r], c.f32, True, 0, tl)
    i = start
    while i < stop:
        m = stop - i
        if m > tl:
            m = tl
        _tile(c, &g, i, m)
        i += m
    if c.partial != NULL:
        for r in range(c.n_in):
            c.partial[blk * c.n_in + r] = fj_racc_total(g.acc + <Py_ssize_t>r * FJ_RACC)
    free(scratch)


include "fused32.pxi"


cdef void _fused_job_block(void* ctx, Py_ssize_t blk) noexcept nogil:
    if (<Ctx*>ctx).r32:
        _fused_block32(<Ctx*>ctx, blk)
    else:
        _fused_block(<Ctx*>ctx, blk)


cdef void _fused_run(Ctx* c, int n_threads) noexcept nogil:
    # Blocks of BLOCK elements; in float32 registers the first block may be c.lead elements
    # longer, so that every later block starts at a page boundary (see _lead32). The
    # partition does not depend on n_threads.
    c.lead = _lead32(c) if c.r32 else 0
    cdef Py_ssize_t nblocks = (c.n - c.lead + BLOCK - 1) // BLOCK
    cdef Py_ssize_t blk
    if n_threads <= 1 or nblocks == 1:
        for blk in range(nblocks):
            _fused_job_block(c, blk)
    else:
        # fastjac's pool: the caller and the helpers that get a core claim blocks one at a
        # time; a block writes only its own elements and its own partial[blk * n_in + r]
        parallel_for(nblocks, _fused_job_block, c, n_threads)


# ---------------------------------------------------------------------------------------
# The compiled program and its entry point.
# ---------------------------------------------------------------------------------------

cdef int* _int_array(object values) except NULL:
    cdef Py_ssize_t k, n = len(values)
    cdef int* p = <int*>malloc((n + 1) * sizeof(int))
    if p == NULL:
        raise MemoryError()
    for k in range(n):
        p[k] = values[k]
    return p


cdef double* _double_array(object values) except NULL:
    cdef Py_ssize_t k, n = len(values)
    cdef double* p = <double*>malloc((n + 1) * sizeof(double))
    if p == NULL:
        raise MemoryError()
    for k in range(n):
        p[k] = values[k]
    return p


@cython.auto_pickle(False)
cdef class Program:
    """A compiled fused expression (built once per traced function by fastjac/fuse.py).

    Parameters
    ----------
    n_in, n_const : int
        Input registers (user inputs, then captured arrays) and constant registers.
    op, a, b : sequence of int
        Per node: the op code and the operand registers (``b = -1`` for unary ops).
    param : sequence of float
        Per node: the exponent of a ``pow`` node (else ignored).
    pk, pc, pr : sequences, two per node
        The kind of each local partial (0 none, 1 constant ``pc``, 2 the value of register
        ``pr``, 3 a buffer of its own).
    consts : sequence of float
        The constants, as double.
    out_reg : int
        The output register.
    """

    cdef int n_in, n_const, n_node, n_reg, out_reg
    cdef Py_ssize_t work, threshold
    cdef int* op
    cdef int* a
    cdef int* b
    cdef int* pk
    cdef int* pr
    cdef int* rk32
    cdef int* rr32
    cdef double* param
    cdef double* pc
    cdef double* c64
    cdef double* c32
    # call_fast's plans, one per (value, gradients, or both) x (float64 or float32), made by the
    # first such call: the flag bytes of Ctx from x_scalar on (see _alloc)
    cdef unsigned char* plans[6]

    def __init__(self, int n_in, int n_const, op, a, b, param, pk, pc, pr, consts,
                  int out_reg):
        cdef Py_ssize_t i, nn = len(op)
        cdef int nreg = n_in + n_const + <int>nn
        if len(a) != nn or len(b) != nn or len(param) != nn or len(pk) != 2 * nn \
                or len(pc) != 2 * nn or len(pr) != 2 * nn or len(consts) != n_const:
            raise ValueError("inconsistent program arrays")
        if not 0 <= out_reg < nreg:
            raise ValueError("output register out of range")
        # Checked once here, so the interpreter never sees a bad register or code.
        for i in range(nn):
            if op[i] not in _KNOWN_CODES:
                raise ValueError(f"unknown op code {op[i]}")
            if op[i] == U_IDENTITY:
                raise ValueError("identity nodes are removed when tracing")
            if not 0 <= a[i] < n_in + n_const + i:
                raise ValueError(f"node {i}: operand register {a[i]} out of order")
            if (op[i] >= FUSED_BINARY_BASE) != (0 <= b[i] < n_in + n_const + i):
                raise ValueError(f"node {i}: second operand register {b[i]} invalid")
            for j in range(2):
                if (pk[2 * i + j] == PK_REG or pk[2 * i + j] == PK_QUOT) \
                        and not 0 <= pr[2 * i + j] < nreg:
                    raise ValueError(f"node {i}: partial register out of range")
                if not 0 <= pk[2 * i + j] <= PK_QUOT:
                    raise ValueError(f"node {i}: unknown partial kind")
        if self.op != NULL:
            raise TypeError("a Program is initialised once")
        self.n_in = n_in
        self.n_const = n_const
        self.n_node = <int>nn
        self.n_reg = nreg
        self.out_reg = out_reg
        self.work = 1
        self.threshold = 0  # no serial limit until set_serial_limit
        self.op = _int_array(op)
        self.a = _int_array(a)
        self.b = _int_array(b)
        self.pk = _int_array(pk)
        self.pr = _int_array(pr)
        # The float32 reverse sweep applies fj.div's float32 VJP formulas (gy/x and
        # -(gy w)/(x x)) to a/b; the JVP keeps the partials 1/b and -(a/b)/b of fj.div.jvp.
        rk, rr = list(pk), list(pr)
        for i in range(nn):
            if op[i] == F_DIV:
                rk[2 * i], rr[2 * i] = PK_QUOT, b[i]
                rk[2 * i + 1], rr[2 * i + 1] = PK_DIVB, a[i]
        self.rk32 = _int_array(rk)
        self.rr32 = _int_array(rr)
        self.param = _double_array(param)
        self.pc = _double_array(pc)
        self.c64 = _double_array(consts)
        self.c32 = _double_array([float(np.float32(v)) for v in consts])

    def __dealloc__(self):
        cdef int i
        free(self.op)
        free(self.a)
        free(self.b)
        free(self.pk)
        free(self.pr)
        free(self.rk32)
        free(self.rr32)
        free(self.param)
        free(self.pc)
        free(self.c64)
        free(self.c32)
        for i in range(6):
            free(self.plans[i])

    @property
    def n_nodes(self):
        """The number of nodes (operations) evaluated per element."""
        return self.n_node

    def run(self, tuple inputs, tuple scalar, *, tangents=None, gy=None, y_out=None,
            jvp_out=None, grad_out=None, grad_mode=None, int n_threads=1):
        """One pass over memory: any of value, JVP and VJP.

        Parameters (every array is C-contiguous, of one float dtype, validated by the
        caller; this only re-checks what keeps memory safe)
        ----------
        inputs : tuple of ndarray
            ``n_in`` arrays, each of n elements or 1 (``scalar[r]``).
        scalar : tuple of bool
        tangents : tuple of (ndarray or None), optional
            Per input, its tangent (shaped like it) or None (zero). Requires ``jvp_out``.
        gy : ndarray, optional
            The cotangent (n elements); None means ones (sum_grad, jacobian).
        y_out, jvp_out : ndarray, optional
            n elements each.
        grad_out : tuple of (ndarray or None), optional
            Per input, where its gradient goes (``grad_mode`` 1 and 3: n elements).
        grad_mode : tuple of int, optional
            Per input: 0 none, 1 an array's gradient, 2 a scalar's summed gradient,
            3 a scalar's per-element partials (its Column Jacobian).
        n_threads : int

        Returns
        -------
        list of float
            Per input, the summed gradient of a ``grad_mode`` 2 input (else 0.0),
            accumulated in double, merged in block order.
        """
        cdef Ctx c
        cdef int r, o, nin = self.n_in
        cdef int typenum
        cdef Py_ssize_t n = -1, size
        if len(inputs) != nin or len(scalar) != nin:
            raise ValueError(f"expected {nin} inputs")
        typenum = -1
        for r in range(nin):
            arr = inputs[r]
            if not cnp.PyArray_Check(arr):
                raise TypeError("inputs must be numpy arrays")
            if typenum < 0:
                typenum = cnp.PyArray_TYPE(<cnp.ndarray>arr)
            if not scalar[r]:
                size = cnp.PyArray_SIZE(<cnp.ndarray>arr)
                if n >= 0 and size != n:
                    raise ValueError("inputs must have one size")
                n = size
        if typenum != cnp.NPY_DOUBLE and typenum != cnp.NPY_FLOAT:
            raise TypeError("inputs must be float32 or float64")
        if n < 0:
            n = 1  # every input a scalar: one element
        self._alloc(&c, n, typenum)
        try:
            for r in range(nin):
                c.x_scalar[r] = 1 if scalar[r] else 0
                c.x[r] = _data(inputs[r], typenum, 1 if scalar[r] else n, False, "input")
            c.y_out = <void*>_data(y_out, typenum, n, True, "y_out")
            c.jvp_out = <void*>_data(jvp_out, typenum, n, True, "jvp_out")
            c.gy = _data(gy, typenum, n, False, "gy")
            if tangents is not None:
                if c.jvp_out == NULL or len(tangents) != nin:
                    raise ValueError("tangents need jvp_out and one entry per input")
                for r in range(nin):
                    c.t[r] = _data(tangents[r], typenum, 1 if scalar[r] else n, False,
                                     "tangent")
            if grad_mode is not None:
                if len(grad_mode) != nin or grad_out is None or len(grad_out) != nin:
                    raise ValueError("grad_mode and grad_out need one entry per input")
                for r in range(nin):
                    o = grad_mode[r]
                    if (o < G_NONE or o > G_EXPAND or (o == G_ARRAY and scalar[r])
                            or ((o == G_SUM or o == G_EXPAND) and not scalar[r])):
                        raise ValueError(f"grad_mode {o} does not fit input {r}")
                    c.gmode[r] = o
                    if o == G_ARRAY or o == G_EXPAND:
                        c.g_out[r] = <void*>_data(grad_out[r], typenum, n, True, "grad_out")
                        if c.g_out[r] == NULL:
                            raise ValueError("grad_out missing")
                    if o != G_NONE:
                        c.want_grad = True
            self._exec(&c, n_threads, -1)
            return [c.sums[r] for r in range(nin)]
        finally:
            free(c.mem)

    def set_serial_limit(self, Py_ssize_t work, Py_ssize_t threshold):
        """For ``call_fast``: the work per element of this program and the kernel family's
        threshold of the pool's one ``n_threads`` rule (``n * work`` below it runs
        serially), as ``fastjac._validate.n_threads`` uses them on the general path."""
        self.work = work
        self.threshold = threshold

    def call_fast(self, tuple args, gy, int mode, n_threads, out=None):
        """The common calls in one C call, or None when they need the general path.

        ``mode`` 0: the value; 1: the VJP with ``gy``; 2: sum_grad (``gy`` None); 3: the
        value and the VJP with ``gy`` (value_and_vjp). Eligible:
        no captured arrays; every input (and ``gy``) an exact ``numpy.ndarray`` of one float
        dtype and one shape (``ndim >= 1``), C-contiguous, aligned, native byte order;
        ``n_threads`` None or a positive int, resolved by the pool's one rule against
        ``n * work`` and the threshold (see ``set_serial_limit``); ``out`` None, or (mode 0)
        an array, or (modes 1, 2) a tuple or list of one array or None per input, or
        (mode 3) a pair ``(y_out, grads_out)`` of those (either may be None), each
        array like the inputs (same dtype and shape, C-contiguous, aligned, native) and
        writeable, sharing no memory with another output, and with an input or ``gy``
        either none or all of it (the same first element: in place). Anything else, valid
        or not, goes to the general path, which checks it. Returns the value, or the
        gradients (a tuple, or one array for one input), or (mode 3) the pair: the ``out``
        arrays where given.
        """
        cdef Py_ssize_t work = self.work, threshold = self.threshold
        cdef Ctx c
        cdef int r, q, nin = self.n_in, typenum, nt, g0 = 1 if mode == 3 else 0
        cdef Py_ssize_t n
        cdef object first, a, res, y, go
        cdef list outs
        if len(args) != nin or nin == 0:
            return None
        first = args[0]
        typenum = _plain_typenum(first)
        if typenum < 0:
            return None
        for r in range(1, nin):
            a = args[r]
            if _plain_typenum(a) != typenum or not cnp.PyArray_SAMESHAPE(
                    <cnp.ndarray>a, <cnp.ndarray>first):
                return None
        if (mode == 1 or mode == 3) and (_plain_typenum(gy) != typenum
                          or not cnp.PyArray_SAMESHAPE(<cnp.ndarray>gy, <cnp.ndarray>first)):
            return None
        n = cnp.PyArray_SIZE(<cnp.ndarray>first)
        nt = fast_threads(n_threads, n * work, threshold)
        if nt == 0:  # not None nor a positive int: the general path raises the error
            return None
        if n == 0:
            return None
        outs = None
        if out is not None:
            # the out= arrays, checked here as the general path's _validate.output would
            # accept them without a temporary; anything else takes that path
            if mode == 0:
                outs = [out]
            elif mode == 3:
                if not ((type(out) is tuple or type(out) is list) and len(out) == 2):
                    return None
                go = out[1]
                if go is None:
                    outs = [out[0]] + [None] * nin
                elif (type(go) is tuple or type(go) is list) and len(go) == nin:
                    outs = [out[0]] + list(go)
                else:
                    return None
            elif (type(out) is tuple or type(out) is list) and len(out) == nin:
                outs = list(out)
            else:
                return None
            for q in range(len(outs)):
                if outs[q] is not None and not _fast_out_ok(outs, q, args, gy, typenum,
                                                           <cnp.ndarray>first, n):
                    return None
        cdef int nd = cnp.PyArray_NDIM(<cnp.ndarray>first)
        cdef cnp.npy_intp* dims = cnp.PyArray_DIMS(<cnp.ndarray>first)
        self._alloc(&c, n, typenum)
        try:
            for r in range(nin):
                c.x[r] = cnp.PyArray_DATA(<cnp.ndarray>args[r])
            if mode == 0 or mode == 3:
                y = outs[0] if outs is not None and outs[0] is not None \
                    else new_output(nd, dims, typenum)
                c.y_out = cnp.PyArray_DATA(<cnp.ndarray>y)
                res = y
            if mode != 0:
                if mode != 2:
                    c.gy = cnp.PyArray_DATA(<cnp.ndarray>gy)
                grads = []
                for r in range(nin):
                    g = outs[g0 + r] if outs is not None and outs[g0 + r] is not None \
                        else new_output(nd, dims, typenum)
                    grads.append(g)
                    c.g_out[r] = cnp.PyArray_DATA(<cnp.ndarray>g)
                    c.gmode[r] = G_ARRAY
                c.want_grad = True
                res = grads[0] if nin == 1 else tuple(grads)
                if mode == 3:
                    res = (y, res)
            # one plan per kind of call (value, gradients, both) and dtype
            self._exec(&c, nt, (0 if mode == 0 else 4 if mode == 3 else 2) + c.f32)
            return res
        finally:
            free(c.mem)

    cdef int _alloc(self, Ctx* c, Py_ssize_t n, int typenum) except -1:
        # Fill c with the program and empty call fields; one allocation (c.mem) holds the
        # per-call pointer tables and flags.
        cdef int nin = self.n_in, nr = self.n_reg, nn = self.n_node, r
        cdef Py_ssize_t tl
        cdef size_t words = 3 * <size_t>(nin + 1) + <size_t>(nin + 1)
        cdef size_t flags = 2 * <size_t>nin + 5 * <size_t>nr + 5 * <size_t>nn + 8
        c.mem = malloc(words * sizeof(void*) + flags)
        if c.mem == NULL:
            raise MemoryError()
        c.x = <const void**>c.mem
        c.t = c.x + nin + 1
        c.g_out = <void**>(c.t + nin + 1)
        c.sums = <double*>(c.g_out + nin + 1)
        c.x_scalar = <unsigned char*>(c.sums + nin + 1)
        c.gmode = c.x_scalar + nin
        c.need_val = c.gmode + nin
        c.act_t = c.need_val + nr
        c.act_g = c.act_t + nr
        c.has_g = c.act_g + nr
        c.need_pd = c.has_g + nr
        c.first_g = c.need_pd + nn
        c.fwd = c.first_g + 2 * nn
        c.fwd_r = c.fwd + 2 * nn
        for r in range(nin):
            c.x[r] = NULL
            c.t[r] = NULL
            c.g_out[r] = NULL
            c.sums[r] = 0.0
            c.x_scalar[r] = 0
            c.gmode[r] = G_NONE
        c.n = n
        c.f32 = typenum == cnp.NPY_FLOAT
        c.y_out = NULL
        c.jvp_out = NULL
        c.gy = NULL
        c.want_grad = False
        c.partial = NULL
        c.n_in = nin
        c.n_const = self.n_const
        c.n_node = nn
        c.n_reg = nr
        c.out_reg = self.out_reg
        c.op = self.op
        c.a = self.a
        c.b = self.b
        c.param = self.param
        c.pk = self.pk
        c.pc = self.pc
        c.pr = self.pr
        c.rk = self.rk32 if c.f32 else self.pk
        c.rr = self.rr32 if c.f32 else self.pr
        c.cval = self.c32 if c.f32 else self.c64
        c.failed = 0
        c.r32 = False
        # registers of a tile: values, tangents, adjoints (3 per register), 2 partials per
        # node; at most REG_BYTES of them, and never shorter than TILE (or _tile_max)
        tl = REG_BYTES // ((3 * nr + 2 * nn) * <Py_ssize_t>sizeof(double)) // 16 * 16
        tl = min(_tile_max, max(tl, TILE))
        c.tile = tl if n >= tl else ((n + 15) // 16) * 16
        return 0

    cdef int _exec(self, Ctx* c, int n_threads, int plan_key) except -1:
        # Plan, run every block (serially or on the thread pool), and merge the
        # per-block sums of scalar gradients in block order into c.sums. plan_key >= 0:
        # the plan is the same for every call with this key (call_fast's), kept in
        # self.plans after the first.
        cdef int r, q, nin = self.n_in
        cdef size_t nflags = (2 * <size_t>nin + 5 * <size_t>self.n_reg
                              + 5 * <size_t>self.n_node)
        cdef Py_ssize_t nblocks = (c.n + BLOCK - 1) // BLOCK, blk
        cdef double total
        cdef const void* o
        cdef const void* outs[3]
        # float32 registers (_tile32) for a float32 call with array inputs only; a call
        # with a scalar input (summed in double from double partials, as the binary ops'
        # scalar VJP) keeps the double registers of _tile.
        c.r32 = c.f32
        for r in range(nin):
            if c.x_scalar[r] or c.gmode[r] == G_SUM or c.gmode[r] == G_EXPAND:
                c.r32 = False
        # Registers may point into the caller's arrays (float64, or float32 registers)
        # unless an output is one of the inputs (in place): then everything is copied into
        # the tile first.
        c.alias = not c.f32 or c.r32
        outs[0] = c.y_out
        outs[1] = c.jvp_out
        outs[2] = NULL
        for q in range(nin + 2):
            o = outs[q] if q < 2 else c.g_out[q - 2]
            if o == NULL:
                continue
            if o == c.gy:
                c.alias = False
            for r in range(nin):
                if o == c.x[r] or o == c.t[r]:
                    c.alias = False
        if plan_key >= 0 and self.plans[plan_key] != NULL:
            memcpy(c.x_scalar, self.plans[plan_key], nflags)
        else:
            self._plan(c)
            if plan_key >= 0:
                self.plans[plan_key] = <unsigned char*>malloc(nflags)
                if self.plans[plan_key] == NULL:
                    raise MemoryError()
                memcpy(self.plans[plan_key], c.x_scalar, nflags)
        for r in range(nin):
            if c.gmode[r] == G_SUM:
                c.partial = <double*>malloc(nblocks * nin * sizeof(double))
                if c.partial == NULL:
                    raise MemoryError()
                break
        try:
            with nogil:
                _fused_run(c, n_threads)
            if c.failed:
                raise MemoryError()
            if c.partial != NULL:
                for r in range(nin):
                    if c.gmode[r] == G_SUM:
                        total = 0.0
                        for blk in range(nblocks):  # block order: the same for any n_threads
                            total += c.partial[blk * nin + r]
                        c.sums[r] = total
        finally:
            free(c.partial)
            c.partial = NULL
        return 0

    cdef void _plan(self, Ctx* c) noexcept:
        # What this call needs, from its outputs back to the inputs: which values, which
        # partials, which registers carry a tangent or an adjoint, and for each adjoint
        # contribution whether it is the first (assign) or a later one (add) in the fixed
        # order of the reverse sweep.
        cdef int r, i, j, o, node0 = self.n_in + self.n_const, nr = self.n_reg
        cdef bint want_jvp = c.jvp_out != NULL
        for r in range(nr):
            c.need_val[r] = 0
            c.act_t[r] = 0
            c.act_g[r] = 0
            c.has_g[r] = 0
        for i in range(2 * self.n_node):
            c.first_g[i] = 0
            c.fwd[i] = 0
        for r in range(nr):
            c.fwd_r[r] = 0
        for r in range(self.n_in):
            c.act_t[r] = want_jvp and c.t[r] != NULL
            c.act_g[r] = c.gmode[r] != G_NONE
        for i in range(self.n_node):
            for j in range(2):
                o = self.a[i] if j == 0 else self.b[i]
                if o >= 0:
                    if c.act_t[o]:
                        c.act_t[node0 + i] = 1
                    if c.act_g[o]:
                        c.act_g[node0 + i] = 1
        # act_g so far: depends on a wanted input; it must also reach the output, which
        # every node does (fuse.py removes dead nodes).
        if not c.act_g[self.out_reg]:
            for r in range(nr):
                c.act_g[r] = 0
        # need_pd: the forward sweep forms the node's partial buffers (PK_BUF), for the
        # tangent sweep (kinds pk) or the reverse sweep (kinds rk; a float32 a/b needs
        # none: its VJP divides by b's value).
        for i in range(self.n_node):
            c.need_pd[i] = 0
            for j in range(2):
                if ((want_jvp and c.act_t[node0 + i] and self.pk[2 * i + j] == PK_BUF)
                        or (c.act_g[node0 + i] and c.rk[2 * i + j] == PK_BUF)):
                    c.need_pd[i] = 1
        if c.y_out != NULL:
            c.need_val[self.out_reg] = 1
        for i in range(self.n_node - 1, -1, -1):
            # values a partial reads (the node's own for exp), then the operands of a
            # node that is evaluated at all
            for j in range(2):
                if want_jvp and c.act_t[node0 + i] and (self.pk[2 * i + j] == PK_REG
                                                        or self.pk[2 * i + j] == PK_QUOT):
                    c.need_val[self.pr[2 * i + j]] = 1
                if c.act_g[node0 + i] and (c.rk[2 * i + j] == PK_REG
                                           or c.rk[2 * i + j] >= PK_QUOT):
                    c.need_val[c.rr[2 * i + j]] = 1
                    if c.rk[2 * i + j] == PK_DIVB:
                        c.need_val[self.b[i]] = 1
            if c.need_val[node0 + i] or c.need_pd[i]:
                c.need_val[self.a[i]] = 1
                if self.b[i] >= 0:
                    c.need_val[self.b[i]] = 1
        if c.want_grad and c.act_g[self.out_reg]:
            c.has_g[self.out_reg] = 1
            for i in range(self.n_node - 1, -1, -1):
                if not c.act_g[node0 + i]:
                    continue
                for j in range(2):
                    o = self.a[i] if j == 0 else self.b[i]
                    if o >= 0 and c.act_g[o]:
                        c.first_g[2 * i + j] = not c.has_g[o]
                        c.has_g[o] = 1
            # A one-operand node whose adjoint has exactly one contribution p1·src, with
            # p1 and its own partial p2 both arrays, passes it on without storing it:
            # its operand gets p2·(p1·src) in one pass (fj_fused_axpy2), the same
            # products in the same order. need: how many contributions each node gets.
            for r in range(nr):
                c.fwd_r[r] = 0  # used as a counter (saturating at 2) until the end
            for i in range(self.n_node):
                for j in range(2):
                    o = self.a[i] if j == 0 else self.b[i]
                    if o >= node0 and c.act_g[node0 + i] and c.act_g[o] and c.fwd_r[o] < 2:
                        c.fwd_r[o] += 1
            for r in range(nr):
                c.fwd_r[r] = c.fwd_r[r] == 1
            # From the output down, so that a node passing its own adjoint on (whose
            # adjoint is never formed) is known before its operands are looked at.
            for i in range(self.n_node - 1, -1, -1):
                for j in range(2):
                    o = self.a[i] if j == 0 else self.b[i]
                    if (o < node0 or not c.fwd_r[o] or not c.act_g[node0 + i]
                            or not c.act_g[o]):
                        continue
                    if (o == self.out_reg or self.b[o - node0] >= 0 or c.fwd_r[node0 + i]
                            or not c.act_g[self.a[o - node0]]
                            or (c.rk[2 * i + j] != PK_REG and c.rk[2 * i + j] != PK_BUF)
                            or (c.rk[2 * (o - node0)] != PK_REG
                                and c.rk[2 * (o - node0)] != PK_BUF)):
                        c.fwd_r[o] = 0
                    else:
                        c.fwd[2 * i + j] = 1


cdef bint _fast_out_ok(list outs, int q, tuple args, object gy, int typenum,
                       cnp.ndarray first, Py_ssize_t n):
    # call_fast's out=: outs[q] is an array like the inputs, writeable, disjoint from the
    # other outputs, and either disjoint from each input (and gy) or exactly it (in place).
    cdef object o = outs[q]
    cdef Py_ssize_t j
    if not writable_out_like(o, first, typenum):
        return False
    for j in range(len(outs)):
        if j != q and not disjoint(o, outs[j]):
            return False
    for j in range(len(args)):
        if not disjoint_or_same(o, args[j]):
            return False
    return disjoint_or_same(o, gy)
