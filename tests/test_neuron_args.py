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
