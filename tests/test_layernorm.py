"""LayerNorm, one place per component: the reference m x m Jacobians against finite differences and
their structure, the batched VJP against the stacked reference rows, per-sample gradients and batched
Jacobians, a network with a layer norm on both paths, CS231n's forward restated, precision (nearly
constant samples against exact rational arithmetic on both paths, with eps 1e-5 and 1e-14; a constant
sample relies on eps), bad input, saving. Kinks: none (smooth for eps > 0)."""

from __future__ import annotations

import os
import tempfile

import numpy as np
import pytest

import jacobian_nn as jn
from jacobian_nn.fd import compare, fd_jacobian
from support import assert_three_witnesses, cols, exact_normalised, near_constant, rows, same_bits

EPS = np.finfo(np.float64).eps


def layer(m=5, seed=0):
    rng = np.random.default_rng(seed)
    return jn.LayerNorm(m, gamma=rng.normal(size=m), beta=rng.normal(size=m))


def cs231n_layernorm_forward(x, gamma, beta, eps):
    """CS231n's layernorm_forward, restated: statistics over axis 1 of x (N, D)."""
    mu = x.mean(axis=1, keepdims=True)
    var = x.var(axis=1, keepdims=True)
    return gamma * (x - mu) / np.sqrt(var + eps) + beta


def test_forward_matches_cs231n():
    ln = layer()
    X = np.random.default_rng(1).normal(size=(4, 5)) * 3 + 1
    Y, _ = ln.forward_batched(X)
    assert np.allclose(Y, cs231n_layernorm_forward(X, ln.gamma, ln.beta, 1e-5), rtol=1e-14, atol=1e-14)
    assert ln.eps == 1e-5


@pytest.mark.parametrize("seed", range(3))
def test_jacobians_against_finite_differences(seed):
    ln = layer(seed=seed)
    x = np.random.default_rng(10 + seed).normal(size=(5, 1))
    fx = fd_jacobian(lambda v: ln.forward(v[:, None])[0], x)
    assert compare("dy/dx", ln.jacobian_x(x), fx.df, err=fx.error).passed
    g0 = ln.gamma.copy()

    def with_gamma(v):
        probe = jn.LayerNorm(5, gamma=v, beta=ln.beta)
        return probe.forward(x)[0]

    fg = fd_jacobian(with_gamma, g0)
    assert compare("dy/dgamma", ln.jacobian_gamma(x), fg.df, err=fg.error).passed
    fb = fd_jacobian(lambda v: jn.LayerNorm(5, gamma=g0, beta=v).forward(x)[0], ln.beta)
    assert compare("dy/dbeta", ln.jacobian_beta(x), fb.df, err=fb.error).passed


def test_jacobian_structure():
    """Rows of (I - 11^T/m - x_hat x_hat^T/m) annihilate 1 and x_hat: dy/dx @ 1 = 0 (shift invariance),
    dy/dx @ x ~ 0 up to eps (scale invariance)."""
    ln = layer()
    x = np.random.default_rng(3).normal(size=(5, 1))
    J = ln.jacobian_x(x)
    assert np.allclose(J @ np.ones((5, 1)), 0, atol=1e-14)
    x_hat = (x - x.mean()) / np.sqrt(x.var() + 1e-5)
    assert np.allclose(
        J @ x_hat, ln.gamma[:, None] * x_hat / np.sqrt(x.var() + 1e-5) * 1e-5 / (x.var() + 1e-5), atol=1e-14
    )


def test_batched_against_stacked_reference():
    ln = layer()
    rng = np.random.default_rng(4)
    X, G = rng.normal(size=(7, 5)), rng.normal(size=(7, 5))
    X0, G0 = X.copy(), G.copy()
    Y, ctx = ln.forward_batched(X)
    dX, grads = ln.backward_batched(G, ctx)
    _, per = ln.backward_batched(G, ctx, per_sample=True)
    ref = [ln.forward(x) for x in cols(X)]
    back = [ln.backward(g, c) for g, (_, c) in zip(rows(G), ref)]
    assert np.allclose(Y, np.hstack([y for y, _ in ref]).T, rtol=1e-14, atol=1e-15)
    assert np.allclose(dX, np.vstack([b[0] for b in back]), rtol=1e-12, atol=1e-14)
    for name in ("gamma", "beta"):
        stacked = np.stack([b[1][name] for b in back])
        assert np.allclose(per[name], stacked, rtol=1e-13, atol=1e-15)
        assert np.allclose(grads[name], stacked.sum(axis=0), rtol=1e-13, atol=1e-14)
    J = ln.jacobian_x_batched(X)
    for k in range(7):
        assert np.allclose(J[k], ln.jacobian_x(X[k][:, None]), rtol=1e-13, atol=1e-15)
    assert same_bits(X, X0) and same_bits(G, G0)
    assert ln.backward_batched(G, ctx, input_grad=False)[0] is None


def network(seed=0, l2=1e-3):
    rng = np.random.default_rng(seed)
    layers = [
        jn.Dense(4, 6, "identity", init="xavier", seed=rng),
        layer(6, seed),
        jn.ActivationLayer(6, "tanh"),
        jn.Dense(6, 3, "identity", init="xavier", seed=rng),
    ]
    return jn.Network(layers, "softmax_cross_entropy", l2=l2)


def test_network_with_layer_norm_both_paths_and_fd():
    net = network()
    rng = np.random.default_rng(5)
    X, y = rng.normal(size=(8, 4)), rng.integers(0, 3, 8)
    assert_three_witnesses(net, X, y)
    per = net.per_sample_gradients_batched(X, y)
    ref = [net.backward(X[k][:, None], y[k])[1] for k in range(8)]
    assert np.allclose(per[1]["gamma"], np.stack([r[1]["gamma"] for r in ref]), rtol=1e-12, atol=1e-14)
    J = net.input_jacobian_batched(X)
    assert np.allclose(J[3], net.input_jacobian(X[3][:, None]), rtol=1e-12, atol=1e-14)


def test_nearly_constant_sample_against_exact_values():
    """Offset 1e3, spread 1e-6: x_hat against exact rational arithmetic on the same float inputs.
    A one-pass mean in float64 loses about 1e3 * eps / 1e-6 ~ 2e-7 of x - mu; the refined mean keeps it
    at a few eps relative to the spread."""
    x = 1e3 + 1e-6 * np.array([0.3, -1.1, 0.7, 0.05, 0.41, -0.29, 0.9, -0.6])
    m = x.size
    exact, _, _, sigma = exact_normalised(x, 1e-5)  # sigma is well conditioned; its float is enough
    ln = jn.LayerNorm(m)
    got = ln.forward(x[:, None])[0][:, 0]
    got_b = ln.forward_batched(x[None])[0][0]
    scale = np.max(np.abs(exact))
    assert np.max(np.abs(got - exact)) / scale < 1e-9
    assert np.max(np.abs(got_b - exact)) / scale < 1e-9
    naive = (x - x.mean()) / sigma  # the near miss: the one-pass mean is worse
    assert np.max(np.abs(naive - exact)) / scale > np.max(np.abs(got - exact)) / scale


def test_constant_sample_relies_on_eps():
    ln = layer()
    x = np.full((5, 1), 3.0)
    y, _ = ln.forward(x)
    assert np.array_equal(y[:, 0], ln.beta)
    J = ln.jacobian_x(x)
    assert np.all(np.isfinite(J)) and np.allclose(J, (ln.gamma[:, None] / np.sqrt(1e-5)) * (np.eye(5) - 0.2))


def test_bad_input():
    with pytest.raises(ValueError, match=r"gamma: expected shape \(3,\)"):
        jn.LayerNorm(3, gamma=np.ones(4))
    with pytest.raises(ValueError, match="eps"):
        jn.LayerNorm(3, eps=0.0)
    with pytest.raises(ValueError, match=r"x: expected shape \(3, 1\)"):
        jn.LayerNorm(3).forward(np.ones((4, 1)))
    with pytest.raises(ValueError, match="mode"):
        jn.LayerNorm(3).forward(np.ones((3, 1)), "eval")
    jn.LayerNorm(3).forward(np.ones((3, 1)), "test")  # near miss: both modes accepted


def test_save_and_load():
    net = network(seed=2)
    path = jn.save_model(net, os.path.join(tempfile.mkdtemp(), "ln.npz"))
    back = jn.load_model(path)
    assert isinstance(back.layers[1], jn.LayerNorm) and back.layers[1].eps == 1e-5
    assert all(same_bits(p[k], q[k]) for p, q in zip(net.params, back.params) for k in p)


def test_float32_layer_norm_network_cross_checks_against_the_float64_reference():
    net = jn.Network(
        [
            jn.Dense(3, 4, "identity", seed=0),
            jn.LayerNorm(4, gamma=np.array([1.0, 2.0, 3.0, 0.5])),
            jn.ActivationLayer(4, "tanh"),
            jn.Dense(4, 2, seed=1),
        ],
        "sigmoid_binary_cross_entropy",
    )
    X = np.random.default_rng(0).normal(size=(6, 3))
    Y = np.random.default_rng(1).random((6, 2)) < 0.5
    net32 = net.astype(np.float32)
    assert net32.layers[1].gamma.dtype == np.float32 and isinstance(net32.layers[1], jn.LayerNorm)
    assert jn.cross_check(net32, X.astype(np.float32), Y).passed


def test_layer_norm_on_a_nearly_constant_sample():
    x = near_constant(seed=4)
    ln = jn.LayerNorm(x.size, eps=1e-14)
    exact, _, mu_exact, sigma = exact_normalised(x, 1e-14)
    scale = np.max(np.abs(exact))
    err_ref = np.max(np.abs(ln.forward(x[:, None])[0][:, 0] - exact)) / scale
    err_bat = np.max(np.abs(ln.forward_batched(x[None])[0][0] - exact)) / scale
    err_rounded = np.max(np.abs((x - float(mu_exact)) / sigma - exact)) / scale
    assert err_ref <= err_rounded + 8 * EPS and err_bat <= err_rounded + 8 * EPS
    assert err_ref < 1e-12 and err_bat < 1e-12
