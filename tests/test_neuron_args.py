"""fastjac.neuron's messages and options on its Python paths.

Complements test_neuron.py (values): each message names what went wrong exactly, the
default ``wrt`` returns three results on every path, and ``fit``'s progress bar and its
divergence report say where they are. (Written against the survivors of the mutation run
of neuron.)
"""

import numpy as np
import pytest

from fastjac import neuron

RNG = np.random.default_rng(0)
X = RNG.standard_normal((64, 3))
Y = RNG.standard_normal(64)
W = RNG.standard_normal(3)
EMPTY = ("X has no rows (N == 0): the loss is a mean over the samples, (1/N) Σ, and is "
         "undefined for an empty batch (loss_grad_sums returns the sums, which are 0)")


@pytest.mark.parametrize("layout", ["array", "list"])
def test_empty_batch_message(layout):
    X0, y0 = X[:0], Y[:0]
    if layout == "list":
        X0, y0 = np.zeros((0, 3)).tolist(), []
        X0 = np.zeros((0, 3), dtype=np.float32)  # a non-plain batch (float32 w below)
    for call in (lambda: neuron.loss(X0, y0, W, 0.0),
                 lambda: neuron.loss_grad(X0, y0, W, 0.0),
                 lambda: neuron.loss_grad(X0, y0, W, 0.0, wrt=("w",)),
                 lambda: neuron.fit(X0, y0, 0.1, 2)):
        with pytest.raises(ValueError) as info:
            call()
        assert str(info.value) == EMPTY


def test_default_wrt_gives_three_results_on_every_path():
    for args in ((X, Y, W, 0.1), (X.tolist(), list(Y), list(W), 0.1),
                 (np.asfortranarray(X), Y, W, 0.1)):
        res = neuron.loss_grad(*args)
        assert len(res) == 3
        assert res[1].shape == (3,) and isinstance(res[2], float)
    assert len(neuron.loss_grad(X, Y, W, 0.1, wrt=("w", "b", "X"))) == 4


def test_loss_grad_out_names_gx_without_x():
    with pytest.raises(ValueError, match=r"^out holds gX_out, but 'X' is not in wrt$"):
        neuron.loss_grad(X, Y, W, 0.1, out=(np.empty(3), np.empty((64, 3))), wrt=("w", "b"))
    with pytest.raises(ValueError, match=r"^out holds gw_out, but 'w' is not in wrt$"):
        neuron.loss_grad(X, Y, W, 0.1, out=(np.empty(3), None), wrt=("b",))
    with pytest.raises(ValueError, match=r"^out must be an ndarray or a tuple \(gw_out, "
                                         r"gX_out\), got 3 items$"):
        neuron.loss_grad(X, Y, W, 0.1, out=(None, None, None))


def test_fit_argument_names_and_progress(capsys):
    with pytest.raises(ValueError, match=r"^batch_size must be"):
        neuron.fit(X, Y, 0.1, 2, batch_size=0)
    with pytest.raises(TypeError, match=r"^callback must be"):
        neuron.fit(X, Y, 0.1, 2, callback=5)
    neuron.fit(X, Y, 1e-3, 3, progress=True)
    err = capsys.readouterr().err
    assert "fit: 100%" in err and "3/3" in err


def test_fit_divergence_says_where():
    y = Y * 1e3
    with pytest.raises(FloatingPointError, match=r"^fit diverged at epoch \d+, step \d+: the "
                                                 r"loss or the parameters became NaN/inf; the "
                                                 r"learning rate lr=1e\+06 is too large"):
        neuron.fit(X, y, 1e6, 10, batch_size=8)


# ---------------------------------------------------------------------------------------
# Written against the survivors of the sampled mutation run of neuron (issue 18).
# Equivalent mutants of neuron, left alive on purpose:
# - ``_wrt`` returning (True, True, True) for the default ``wrt``: ``_loss_grad`` handles
#   the default itself and calls ``_wrt`` only for an explicit ``wrt``, so that branch of
#   ``_wrt`` is never reached;
# - ``_loss_grad``'s ``others=(("gX_out", gX_out),)`` for gw_out dropped or its name
#   changed: gX_out is checked first, against gw_out, so two outputs that share memory
#   always raise ``gX_out overlaps gw_out`` before gw_out's own check runs;
# - ``fit``'s bar built with ``Progress(..., tqdm=None)`` instead of the class that
#   ``load_tqdm`` returned: ``Progress`` then imports that same class itself.
# ---------------------------------------------------------------------------------------

def test_overlap_messages_name_the_input():
    # out (or gX_out) partly on top of an input the kernel reads: refused, naming both
    N, n = 5, 3
    base = np.arange(N * n + 1, dtype=np.float64)
    Xo = base[:N * n].reshape(N, n)
    w = np.array([0.5, -0.25, 1.0])
    with pytest.raises(ValueError, match=r"^out partially overlaps the input X; "):
        neuron.activation(Xo, w, 0.1, out=base[1:N + 1])
    wbuf = np.zeros(N + 1)
    wo = wbuf[:n]
    wo[:] = w
    with pytest.raises(ValueError, match=r"^out partially overlaps the input w; "):
        neuron.activation(X[:N].copy(), wo, 0.1, out=wbuf[1:N + 1])
    y = Y[:N].copy()
    with pytest.raises(ValueError, match=r"^gX_out partially overlaps the input X; "):
        neuron.loss_grad(Xo, y, w, 0.1, wrt=("w", "b", "X"),
                         out=(None, base[1:].reshape(N, n)))
    ybuf = np.zeros(N * n + 1)
    yo = ybuf[:N]
    yo[:] = y
    with pytest.raises(ValueError, match=r"^gX_out partially overlaps the input y; "):
        neuron.loss_grad(X[:N].copy(), yo, w, 0.1, wrt=("w", "X"),
                         out=(None, ybuf[1:].reshape(N, n)))
    # with gX requested too, gw_out goes through the full check: a row of X is refused
    Xc = X[:N].copy()
    with pytest.raises(ValueError, match=r"^gw_out partially overlaps the input X; "):
        neuron.loss_grad(Xc, y, w, 0.1, wrt=("w", "X"), out=(Xc[1], np.empty((N, n))))


def test_bad_y_is_named():
    with pytest.raises(TypeError, match=r"^y has dtype <U1; fastjac computes on real"):
        neuron.loss(X, np.array(["a"] * 64), W, 0.0)
    with pytest.raises(TypeError, match=r"^y has dtype complex128; "):
        neuron.loss_grad(X.tolist(), Y + 0j, W, 0.0)


def test_missing_y_is_refused_not_read_as_zeros():
    # y=None once went through as "no targets" (the activation's batch), and the loss
    # kernels then read y as zeros: C was mean(max(0, z)^2), without any error
    msg = r"^y must be an array of shape \(N,\), got None$"
    for f in (neuron.loss, neuron.loss_grad, neuron.loss_grad_sums):
        for data in ((X, W), (X.astype(np.float32), W.astype(np.float32)), (X.tolist(), W)):
            with pytest.raises(TypeError, match=msg):
                f(data[0], None, data[1], 0.1)
    with pytest.raises(TypeError, match=msg):
        neuron.loss_grad(X, None, W, 0.1, wrt=("w", "b", "X"))
    with pytest.raises(TypeError, match=msg):
        neuron.fit(X, None, 0.1, 1, w0=W)
    # the activation has no targets: None is what it passes itself
    np.testing.assert_allclose(neuron.activation(X, W, 0.1), np.maximum(X @ W + 0.1, 0),
                               rtol=1e-14, atol=1e-15)


def test_plain_batches_take_the_fast_path(monkeypatch):
    # C-contiguous float arrays of one dtype are the training loop's input: they must not
    # go through the general conversions (a spy makes those raise), and give the same
    # values as the general path (list input)
    def refuse(*args, **kwargs):
        raise AssertionError("plain input took the general path")

    ref_act = neuron.activation(X.tolist(), list(W), 0.2)
    ref_loss = neuron.loss(X.tolist(), list(Y), list(W), 0.2)
    monkeypatch.setattr(neuron._v, "result_dtype", refuse)
    np.testing.assert_array_equal(neuron.activation(X, W, 0.2), ref_act)
    monkeypatch.setattr(neuron, "_batch", refuse)
    assert neuron.loss(X, Y, W, 0.2) == ref_loss


def test_fit_without_tqdm_names_the_option(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "tqdm", None)  # import tqdm now raises ImportError
    with pytest.raises(ImportError, match=r"^fit\(progress=True\) needs the optional "
                                          r"dependency tqdm: pip install tqdm"):
        neuron.fit(X, Y, 0.05, 2, progress=True)
