"""The proofs' identities at random sizes and values (hypothesis; pytest only, so ``jacobian-nn verify``
does not need hypothesis). Each test restates a source's formula and compares it with the library."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from jacobian_nn.activations import Softmax, get_activation
from jacobian_nn.layers import Dense
from jacobian_nn.losses import SoftmaxCrossEntropy
from jacobian_nn.normalization import BatchNorm

from .proof_batchnorm_dropout import seed004_batchnorm_backward

SETTINGS = settings(max_examples=30, deadline=None)
TOL = dict(atol=1e-10, rtol=1e-8)


def _arrays(draw, shape, scale=2.0):
    seed = draw(st.integers(0, 2**32 - 1))
    return np.random.default_rng(seed).normal(scale=scale, size=shape)


@SETTINGS
@given(st.data(), st.integers(1, 6))
def test_softmax_jacobian_formula_any_size(data, m):
    z = _arrays(data.draw, m)
    e = np.exp(z - z.max())
    s = e / e.sum()
    seed000 = np.array([[s[i] * (1 - s[i]) if i == j else -s[i] * s[j] for j in range(m)] for i in range(m)])
    assert np.allclose(Softmax().jacobian(z[:, None]), seed000, **TOL)


@SETTINGS
@given(st.data(), st.integers(2, 6), st.integers(1, 4))
def test_seed004_batchnorm_backward_any_size(data, N, D):
    X = _arrays(data.draw, (N, D))
    G = _arrays(data.draw, (N, D), 1.0)
    gamma = 1 + 0.3 * _arrays(data.draw, D, 1.0)
    dx, dgamma, dbeta = seed004_batchnorm_backward(G, X, gamma)
    bn = BatchNorm(D, gamma=gamma, eps=1e-5, update_running=False)
    dX, grads = bn.backward_batched(G, bn.forward_batched(X, "train")[1])
    assert np.allclose(dx, dX, atol=1e-8, rtol=1e-7)
    assert np.allclose(dgamma, grads["gamma"], **TOL) and np.allclose(dbeta, grads["beta"], **TOL)


@SETTINGS
@given(st.data(), st.integers(1, 5), st.integers(1, 5), st.sampled_from(["sigmoid", "tanh", "elu", "softmax"]))
def test_seed000_dense_backward_any_size(data, n, m, act):
    W, b, x, u = (_arrays(data.draw, s, 1.0) for s in ((n, m), m, n, m))
    layer = Dense.from_params(W, b, act)
    y, (xc, z) = layer.forward(x[:, None])
    gx, g = layer.backward(u[None, :], (xc, z))
    delta = u[None, :] @ get_activation(act).jacobian(z)
    assert np.allclose(gx, delta @ W.T, **TOL)
    assert np.allclose(g["W"], x[:, None] @ delta, **TOL)
    assert np.allclose(g["b"], delta[0], **TOL)


@SETTINGS
@given(st.data(), st.integers(1, 6), st.integers(2, 5))
def test_seed004_softmax_loss_any_size(data, N, C):
    X = _arrays(data.draw, (N, C))
    y = np.array(data.draw(st.lists(st.integers(0, C - 1), min_size=N, max_size=N)))
    P = np.exp(X - X.max(1, keepdims=True))
    P /= P.sum(1, keepdims=True)
    dx = P.copy()
    dx[np.arange(N), y] -= 1
    dx /= N
    assert np.allclose(SoftmaxCrossEntropy().gradient_batched(X, y), dx, **TOL)
    assert abs(SoftmaxCrossEntropy().forward_batched(X, y) + np.mean(np.log(P[np.arange(N), y]))) < 1e-10


@SETTINGS
@given(st.data(), st.integers(1, 8), st.floats(0.0, 0.99))
def test_momentum_unrolled_any_length(data, T, mu):
    gs = _arrays(data.draw, (T, 3), 1.0)
    eta, v = 0.1, np.zeros(3)
    for t in range(T):
        v = mu * v - eta * gs[t]
    closed = -eta * sum(mu ** (T - 1 - k) * gs[k] for k in range(T))
    assert np.allclose(v, closed, **TOL)
