# The fused interpreter's float32 registers (included by fused.pyx, whose Ctx, plan and
# helpers it uses): _tile32 and _fused_block32, chosen per call by Program._exec.

# ---------------------------------------------------------------------------------------
# float32 registers: a float32 call with array inputs only (see _exec). Every op is
# fastjac's float32 op: its value rounded to float32, its VJP contribution the derivative
# times the adjoint rounded once to float32, and adjoints summed in float32, so the result
# is that of the expression evaluated op by op with fastjac's float32 operations and their
# VJPs (docs/guide/fuse.rst). Registers are float tiles; a partial is a float32 (a register,
# or a buffer of floats) or, for an op whose float32 routine computes its derivative in
# double, a buffer of doubles (form FJF_PD_DOUBLE), set per tile by the forward sweep.
# ---------------------------------------------------------------------------------------

cdef enum:
    # what elementwise's _unary32 (fj_fused32.h) did: nothing (use _stage), the derivative
    # is the value (exp), the derivative is a double in d (sin, cos)
    U32_NONE = 0
    U32_VALUE = 1
    U32_DOUBLE = 2
    U32_FLOAT = 3       # the derivative is a float32 in d's memory (a native sin/cos)


cdef struct Regs32:
    float* V           # own buffers: n_reg values, tangents and adjoints (floats)
    float* T
    float* A
    double* P          # 2 partials per node, each a tile of doubles or (first half) floats
    double* W          # 2 tiles of doubles: an op widened to double (_stage, pow)
    float** Vp
    float** Tp
    float** Ap
    void** Pp          # 2 per node: where the partial is (set by the forward sweep)
    unsigned char* Pf  # 2 per node: its form (FJF_PD_FLOAT or FJF_PD_DOUBLE)
    unsigned char* owned
    float** Fs         # per register with c.fwd_r: its one contribution, Fp[r]·Fs[r]
    const void** Fp
    unsigned char* Ff
    # per register: a quotient's first contribution to its adjoint, not yet formed
    # (see _tile32's reverse sweep): its kind (PK_QUOT, PK_DIVB; 0: none) and operands
    unsigned char* Qk
    const float** Qs
    const float** Qa
    const float** Qb


cdef enum:
    PAGE_TILES_FROM = 65536  # n from which _fused_block32 starts tiles at page boundaries


cdef Py_ssize_t _lead32(const Ctx* c) noexcept nogil:
    # Long arrays come from memory: the tiles start at the first input's 4 KB page
    # boundaries, so that a full tile (when tl floats are 4 KB) reads one page of it (and of
    # every input at the same page offset) instead of two: the hardware prefetcher stops at
    # a page boundary. The first block takes the elements before the first boundary as a
    # tile of their own (lead of them), and every later block starts at a boundary, so no
    # block ends with a short tile. Neither tiles nor blocks change the bits: a float32
    # program has no sum over elements (see _exec).
    cdef Py_ssize_t k
    if c.n < PAGE_TILES_FROM or c.n_in == 0:
        return 0
    k = <Py_ssize_t>(<size_t>c.x[0] & 4095)
    if k == 0 or (k & 3):
        return 0
    return (4096 - k) // 4


cdef inline float* _own_adj32(const Ctx* c, const Regs32* g, int r,
                              Py_ssize_t off) noexcept nogil:
    if c.alias and r < c.n_in and c.gmode[r] == G_ARRAY:
        return <float*>c.g_out[r] + off
    return g.A + <Py_ssize_t>r * c.tile


cdef bint _defer_quot32 = True  # see _tile32's reverse sweep; _set_quotient_merge


def _set_quotient_merge(bint on):
    """Let a float32 quotient's first contribution to an adjoint wait for the next one and
    form both in one loop (True, the default), or form each at once (False); return the
    previous setting. For tests (the two give the same bits) and timing only."""
    global _defer_quot32
    old = _defer_quot32
    _defer_quot32 = on
    return old


cdef inline void _flush32(Regs32* g, int o, Py_ssize_t m) noexcept nogil:
    # Form the deferred first contribution to o's adjoint (see _tile32's reverse sweep)
    # into its buffer g.Ap[o], with the loop the sweep would have called then.
    if g.Qk[o] == PK_QUOT:
        _axpy32(g.Ap[o], g.Ap[o], g.Qs[o], PK_QUOT, 0.0, g.Qa[o], FJF_PD_FLOAT, 0, m)
    elif g.Qk[o] == PK_DIVB:
        _divb32(g.Ap[o], g.Ap[o], g.Qs[o], g.Qa[o], g.Qb[o], 0, m)
    g.Qk[o] = 0


cdef void _unary_node32(const Ctx* c, Regs32* g, int i, float* dst, bint want_v,
                        bint want_d, Py_ssize_t m) noexcept nogil:
    # A unary node (or pow): its float32 value into dst (want_v) and its partial (want_d),
    # as fastjac's float32 op computes them: exp and sin/cos through fj_fused32.h, every
    # other op widened to double and run through _stage (then rounded once).
    cdef int code = c.op[i], form
    cdef Py_ssize_t k
    cdef double* pd = g.P + <Py_ssize_t>(2 * i) * c.tile
    cdef const float* a = g.Vp[c.a[i]]
    if code != F_POW:
        form = _unary32(code, a, dst if want_v else NULL, pd if want_d else NULL, m)
        if form == U32_VALUE:
            g.Pp[2 * i] = dst
            g.Pf[2 * i] = FJF_PD_FLOAT
            return
        if form == U32_DOUBLE or form == U32_FLOAT:
            g.Pp[2 * i] = pd
            g.Pf[2 * i] = FJF_PD_DOUBLE if form == U32_DOUBLE else FJF_PD_FLOAT
            return
    fj_fused_widen(g.W, a, m)
    if code == F_POW:
        _pow_node(g.W, c.param[i], g.W + c.tile, pd, want_d, m)
        if want_v:
            fj_fused_narrow(dst, g.W + c.tile, m)
    else:
        k = 0
        while k < m:  # _stage takes at most TILE elements
            _stage(code, g.W + k, pd + k if want_d else NULL,
                   m - k if m - k < TILE else TILE, True, want_v, True)
            k += TILE
        if want_v:
            fj_fused_narrow(dst, g.W, m)
    g.Pp[2 * i] = pd
    g.Pf[2 * i] = FJF_PD_DOUBLE


cdef void _tile32(const Ctx* c, Regs32* g, Py_ssize_t off, Py_ssize_t m) noexcept nogil:
    # _tile in float32 registers: the same plan, sweeps and order of contributions.
    cdef int i, r, j, o, kind, code, mode, nd, node0 = c.n_in + c.n_const
    cdef Py_ssize_t tl = c.tile, k
    cdef float* dst
    cdef float* own
    cdef const void* pp
    cdef int pf
    cdef bint want_g = c.want_grad and c.act_g[c.out_reg]

    cdef bint want_t = c.jvp_out != NULL
    cdef const float* ta
    cdef const float* tb

    # Loads (constants were filled at the start of the block).
    for r in range(c.n_in):
        if c.need_val[r] or r == c.out_reg:
            if c.alias:
                g.Vp[r] = <float*>c.x[r] + off
            else:
                memcpy(g.V + <Py_ssize_t>r * tl, <const float*>c.x[r] + off, m * sizeof(float))
        if want_t and c.act_t[r]:
            if c.alias:
                g.Tp[r] = <float*>c.t[r] + off
            else:
                memcpy(g.T + <Py_ssize_t>r * tl, <const float*>c.t[r] + off, m * sizeof(float))
    if want_g:
        for r in range(c.n_reg):
            g.owned[r] = 1
            g.Qk[r] = 0
        for r in range(c.n_in):
            g.Ap[r] = _own_adj32(c, g, r, off)
        own = _own_adj32(c, g, c.out_reg, off)
        g.Ap[c.out_reg] = own
        if c.gy != NULL:
            if c.alias:
                g.Ap[c.out_reg] = <float*>c.gy + off
                g.owned[c.out_reg] = 0
            else:
                memcpy(own, <const float*>c.gy + off, m * sizeof(float))
        else:
            for k in range(m):
                own[k] = 1.0

    # Forward sweep: values, the partials the reverse sweep reads, tangents.
    for i in range(c.n_node):
        nd = node0 + i
        code = c.op[i]
        if not (c.need_val[nd] or c.need_pd[i]):
            pass
        elif code < N_STAGE or code == F_POW:
            # exp's partial is its value (PK_REG), or a double where a lane is outside the
            # native routine's range (fj.exp.vjp and .jvp round that product once)
            _unary_node32(c, g, i, g.V + <Py_ssize_t>nd * tl, c.need_val[nd],
                          c.need_pd[i] or (code == U_EXP and ((want_g and c.act_g[nd])
                                                              or (want_t and c.act_t[nd]))),
                          m)
        else:
            dst = g.V + <Py_ssize_t>nd * tl
            _binary32(code, g.Vp[c.a[i]], g.Vp[c.b[i]], dst,
                      <float*>(g.P + <Py_ssize_t>(2 * i) * tl),
                      <float*>(g.P + <Py_ssize_t>(2 * i + 1) * tl), c.need_pd[i], m)
            for j in range(2):
                g.Pp[2 * i + j] = g.P + <Py_ssize_t>(2 * i + j) * tl
                g.Pf[2 * i + j] = FJF_PD_FLOAT
        if want_t and c.act_t[nd]:
            # the op's float32 JVP (fj.<op>.jvp): a unary node's is its VJP's arithmetic
            # on the tangent; a binary node's is formed in double and rounded once
            dst = g.T + <Py_ssize_t>nd * tl
            if code >= FUSED_BINARY_BASE:
                ta = g.Tp[c.a[i]] if c.act_t[c.a[i]] else NULL
                tb = g.Tp[c.b[i]] if c.act_t[c.b[i]] else NULL
                _tangent2_32(code, dst, g.Vp[c.a[i]], g.Vp[c.b[i]], ta, tb, m)
            else:
                kind = c.pk[2 * i]
                pp = NULL
                pf = FJF_PD_FLOAT
                if kind == PK_BUF or (kind == PK_REG and code == U_EXP):
                    pp = g.Pp[2 * i]
                    pf = g.Pf[2 * i]
                elif kind != PK_CONST:
                    pp = g.Vp[c.pr[2 * i]]
                _axpy32(dst, dst, g.Tp[c.a[i]], kind, c.pc[2 * i], pp, pf, 0, m)

    # Reverse sweep: adjoints summed over the paths (§4.5.2), in _tile's order.
    # A quotient's contribution that opens an adjoint (a/q, or -(g·p)/(q·q)) is deferred
    # until the adjoint's next contribution: when that is a passed-on one (the exp and sin
    # paths of exp(w)·sin(x) + w/x), both are formed in one loop, the same operations in
    # the same order; anything else, or a read of the adjoint, first forms the deferred one.
    if want_g:
        for i in range(c.n_node - 1, -1, -1):
            nd = node0 + i
            if not c.act_g[nd]:
                continue
            if g.Qk[nd]:
                _flush32(g, nd, m)
            for j in range(2):
                o = c.a[i] if j == 0 else c.b[i]
                if o < 0 or not c.act_g[o]:
                    continue
                kind = c.rk[2 * i + j]
                if c.first_g[2 * i + j] and kind == PK_CONST and c.pc[2 * i + j] == 1.0:
                    g.Ap[o] = g.Ap[nd]  # the same numbers: share them
                    g.owned[o] = 0
                    continue
                pp = NULL
                pf = FJF_PD_FLOAT
                if kind == PK_BUF or (kind == PK_REG and c.op[i] == U_EXP):
                    pp = g.Pp[2 * i + j]
                    pf = g.Pf[2 * i + j]
                elif kind != PK_CONST:
                    pp = g.Vp[c.rr[2 * i + j]]
                if c.fwd[2 * i + j]:  # o's only contribution: formed when o passes it on
                    g.Fs[o] = g.Ap[nd]
                    g.Fp[o] = pp
                    g.Ff[o] = pf
                    continue
                own = _own_adj32(c, g, o, off)
                if c.first_g[2 * i + j]:
                    mode = 0
                elif g.owned[o]:
                    mode = 1
                else:
                    mode = 2
                if g.Qk[o]:
                    if c.fwd_r[nd]:  # mode 1: Ap[o] is own, set when the quotient deferred
                        if g.Qk[o] == PK_QUOT:
                            _quot_axpy2_32(own, g.Qs[o], g.Qa[o], g.Fs[nd], g.Fp[nd],
                                           g.Ff[nd], pp, pf, m)
                        else:
                            _divb_axpy2_32(own, g.Qs[o], g.Qa[o], g.Qb[o], g.Fs[nd],
                                           g.Fp[nd], g.Ff[nd], pp, pf, m)
                        g.Qk[o] = 0
                        continue
                    _flush32(g, o, m)
                if (mode == 0 and _defer_quot32 and not c.fwd_r[nd]
                        and (kind == PK_DIVB or kind == PK_QUOT)):
                    g.Qk[o] = kind
                    g.Qs[o] = g.Ap[nd]
                    g.Qa[o] = <const float*>pp
                    g.Qb[o] = g.Vp[o]
                elif c.fwd_r[nd]:
                    _axpy2_32(own, g.Ap[o], g.Fs[nd], g.Fp[nd], g.Ff[nd], pp, pf, mode, m)
                elif kind == PK_DIVB:
                    _divb32(own, g.Ap[o], g.Ap[nd], <const float*>pp, g.Vp[o], mode, m)
                else:
                    _axpy32(own, g.Ap[o], g.Ap[nd], kind, c.pc[2 * i + j], pp, pf, mode, m)
                g.Ap[o] = own
                g.owned[o] = 1
        for r in range(c.n_in):  # the inputs' deferred ones (nothing else remains)
            if g.Qk[r]:
                _flush32(g, r, m)

    # Stores, last: every input of this tile has been read.
    if c.want_grad:
        for r in range(c.n_in):
            if c.gmode[r] == G_ARRAY:
                if not c.has_g[r]:
                    _store_zero(c.g_out[r], True, off, m)
                elif not (c.alias and g.Ap[r] == <float*>c.g_out[r] + off):
                    memcpy(<float*>c.g_out[r] + off, g.Ap[r], m * sizeof(float))
    if want_t:
        if c.act_t[c.out_reg]:
            memcpy(<float*>c.jvp_out + off, g.Tp[c.out_reg], m * sizeof(float))
        else:
            _store_zero(c.jvp_out, True, off, m)
    if c.y_out != NULL:
        memcpy(<float*>c.y_out + off, g.Vp[c.out_reg], m * sizeof(float))


cdef void _fused_block32(Ctx* c, Py_ssize_t blk) noexcept nogil:
    # _fused_block in float32 registers (no scalar inputs: see _exec).
    # the partition of _fused_run: the first block c.lead elements longer
    cdef Py_ssize_t start = blk * BLOCK + c.lead if blk else 0
    cdef Py_ssize_t stop = (blk + 1) * BLOCK + c.lead
    cdef Py_ssize_t tl = c.tile, i, m, k
    cdef int r, nr = c.n_reg, nn = c.n_node
    cdef Regs32 g
    cdef char* scratch
    cdef size_t nfl = 3 * <size_t>nr * tl            # V, T, A
    cdef size_t ndb = (2 * <size_t>nn + 2) * tl      # P, W
    cdef size_t nptr = 10 * <size_t>(nr + 1) + 2 * <size_t>nn + 2
    if stop > c.n:
        stop = c.n
    scratch = <char*>malloc(ndb * sizeof(double) + nfl * sizeof(float) + nptr * sizeof(void*)
                            + 4 * <size_t>(nr + 1) + 2 * <size_t>nn + 2)
    if scratch == NULL:
        c.failed = 1
        return
    g.P = <double*>scratch
    g.W = g.P + <Py_ssize_t>(2 * nn) * tl
    g.V = <float*>(g.W + 2 * tl)
    g.T = g.V + <Py_ssize_t>nr * tl
    g.A = g.T + <Py_ssize_t>nr * tl
    g.Vp = <float**>(g.A + <Py_ssize_t>nr * tl)
    g.Tp = g.Vp + nr + 1
    g.Ap = g.Tp + nr + 1
    g.Fs = g.Ap + nr + 1
    g.Fp = <const void**>(g.Fs + nr + 1)
    g.Qs = <const float**>(g.Fp + nr + 1)
    g.Qa = g.Qs + nr + 1
    g.Qb = g.Qa + nr + 1
    g.Pp = <void**>(g.Qb + nr + 1)
    g.Pf = <unsigned char*>(g.Pp + 2 * nn + 2)
    g.owned = g.Pf + 2 * nn + 2
    g.Ff = g.owned + nr + 1
    g.Qk = g.Ff + nr + 1
    for r in range(nr):
        g.Vp[r] = g.V + <Py_ssize_t>r * tl
        g.Tp[r] = g.T + <Py_ssize_t>r * tl
        g.Ap[r] = g.A + <Py_ssize_t>r * tl
        g.Qk[r] = 0
    for r in range(2 * nn):
        g.Pp[r] = NULL
        g.Pf[r] = FJF_PD_FLOAT
    # constants: one value for the whole block
    for r in range(c.n_const):
        for k in range(tl):
            g.V[(c.n_in + r) * tl + k] = <float>c.cval[r]
    i = start
    if blk == 0 and c.lead % tl:  # so that a tile ends at the first page boundary
        _tile32(c, &g, 0, c.lead % tl)
        i = c.lead % tl
    while i < stop:
        m = stop - i
        if m > tl:
            m = tl
        _tile32(c, &g, i, m)
        i += m
    free(scratch)
