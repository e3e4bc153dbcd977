"""The speed-ups of the hot paths change no result (bench/ measures their speed, never these tests)."""

import numpy as np
import pytest

import jacobian_nn as jn


def _problem(dtype=np.float64, seed=0):
    net = jn.Network.build([6, 9, 7, 4], "relu", loss="softmax_cross_entropy", seed=seed, dtype=dtype)
    rng = np.random.default_rng(seed + 1)
    return net, rng.standard_normal((13, 6)).astype(dtype), rng.integers(0, 4, size=13)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_first_layer_param_grads_equal_backward_batch(dtype):
    net, X, _ = _problem(dtype)
    layer = net.layers[0]
    _, cache = layer.forward_batch(X)
    G = np.random.default_rng(2).standard_normal((13, layer.n_out)).astype(dtype)
    _, full = layer.backward_batch(G, cache)
    only = layer.param_grads_batch(G, cache)
    assert set(only) == set(full)
    for k in full:
        np.testing.assert_array_equal(only[k], full[k])


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fused_softmax_cross_entropy_is_bitwise_the_pair(dtype):
    loss = jn.SoftmaxCrossEntropy()
    rng = np.random.default_rng(3)
    Z = (10 * rng.standard_normal((11, 5))).astype(dtype)
    Y = rng.integers(0, 5, size=11)
    value, grad = loss.forward_and_gradient_batch(Z, Y)
    assert value == loss.forward_batch(Z, Y)
    np.testing.assert_array_equal(grad, loss.gradient_batch(Z, Y))


def test_train_step_batched_is_params_minus_lr_times_gradients():
    net, X, y = _problem()
    before = [{k: v.copy() for k, v in p.items()} for p in net.params]
    loss_b, grads = net.copy().loss_and_gradients_batched(X, y)
    loss = net.train_step_batched(X, y, 0.25)
    assert loss == loss_b
    for p, p0, g in zip(net.params, before, grads):
        for k in p:
            np.testing.assert_array_equal(p[k], p0[k] + (-0.25 * g[k]))


def test_failed_batched_step_leaves_parameters_unchanged():
    net, X, y = _problem()
    before = [{k: v.copy() for k, v in p.items()} for p in net.params]
    with pytest.raises(ValueError, match="not finite"), np.errstate(over="ignore"):
        net.train_step_batched(1e6 * X, y, 1e308)   # lr * gradient overflows to inf
    for p, p0 in zip(net.params, before):
        for k in p:
            np.testing.assert_array_equal(p[k], p0[k])
