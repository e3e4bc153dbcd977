"""The reference driver's forward checks on the samples stacked side by side, and all_finite.

The driver stacks each layer's per-sample columns (outputs, and the float arrays their contexts
saved) into one contiguous ``(N, size)`` array, row k the sample k, checks it in one pass, and
returns the last layer's stack from ``predict``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from jacobian_nn import Network
from jacobian_nn._validation import all_finite, columns
from jacobian_nn.layernorm import LayerNorm
from jacobian_nn.layers import Dense
from jacobian_nn.reference import _stacked
from support import same_bits


def test_predict_is_the_per_sample_forward_stacked_as_contiguous_rows():
    net = Network.build([4, 7, 3], "tanh", seed=0)
    X = np.random.default_rng(0).normal(size=(5, 4))
    out = net.predict(X)
    assert out.shape == (5, 3) and out.flags.c_contiguous
    for k, x in enumerate(columns(X)):
        y = x
        for layer in net.layers:
            y, _ = layer.forward(y, "test")
        assert same_bits(out[k], y[:, 0])


def test_stacked_puts_sample_k_in_row_k_for_any_shape():
    cols = [np.full((3, 1), k, dtype=float) for k in range(4)]
    np.testing.assert_array_equal(_stacked(cols), np.repeat(np.arange(4.0), 3).reshape(4, 3))
    blocks = [np.full((2, 3), k, dtype=float) for k in range(4)]  # a context array that is not a column
    stacked = _stacked(blocks)
    assert stacked.shape == (4, 6) and (stacked == np.arange(4.0)[:, None]).all()
    scalars = [np.float64(k) for k in range(4)]  # layer norm's per-sample sigma
    np.testing.assert_array_equal(_stacked(scalars), np.arange(4.0)[:, None])
    one = np.arange(3.0)[:, None]  # one sample: a view of it, the same row
    assert _stacked([one]).shape == (1, 3) and np.shares_memory(_stacked([one]), one)
    assert _stacked([np.float64(2.0)]).shape == (1, 1) and _stacked([blocks[1]]).shape == (1, 6)


def test_layer_norm_sigma_that_overflows_is_refused_on_both_paths_naming_the_sample():
    # x = (1e200, -1e200, 0): the variance overflows to inf, so x_hat = d / inf = 0 and the output would
    # be beta, finite and wrong; only the saved sigma shows it (the batched path checks its (N, 1) sigma)
    net = Network([LayerNorm(3), Dense(3, 2, seed=0)], "softmax_cross_entropy")
    X = np.array([[1.0, 2.0, 3.0], [1e200, -1e200, 0.0]])
    msg = r"^X: finite inputs overflow inside the network: layers\[0\] intermediate result .* sample 1 is not"
    for predict in (net.predict, net.predict_batched):
        with pytest.raises(ValueError, match=msg):
            predict(X)
    near = np.array([[1.0, 2.0, 3.0], [1e150, -1e150, 0.0]])  # near miss: the variance 6.7e299 is finite
    np.testing.assert_allclose(net.predict(near), net.predict_batched(near), rtol=1e-14, atol=0)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_all_finite_is_exact_and_silent_when_the_sum_of_squares_overflows(dtype):
    big = np.full(2000, np.finfo(dtype).max / 2, dtype=dtype)  # finite; its sum of squares is inf
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert all_finite(big)
        for bad in (np.inf, -np.inf, np.nan):
            worse = big.copy()
            worse[1234] = bad
            assert not all_finite(worse)
            assert not all_finite(worse[::2][None])  # not contiguous: the entrywise test
        assert all_finite(np.ones((0, 3), dtype=dtype)) and all_finite(np.ones(3, dtype=dtype))
