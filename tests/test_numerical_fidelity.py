"""Accuracy against exact or high-precision arithmetic: the softmax Jacobian's diagonal and VJP at
saturation (both paths), and the normalised values of batch norm and layer norm on a nearly constant
feature (offset 1e3, spread 1e-6)."""

from __future__ import annotations

from fractions import Fraction

import mpmath
import numpy as np
import pytest

import jacobian_nn as jn
from support import cols

EPS = np.finfo(np.float64).eps

#: Logits at saturation: spread by about 1000 (one class dominates, others underflow or nearly).
SATURATED = [
    np.array([1000.0, 985.0, 0.0, 990.0, 970.0]),
    np.array([0.0, -25.0, -30.0, -36.0]),
    np.array([0.0, -40.0, -700.0, -1000.0]),
    np.array([1e3, 0.0, -300.0, 999.9]),
]


def exact_softmax(z, g):
    """50-digit softmax diagonal s_i (1 - s_i) and VJP s * (g - g.s), rounded to float64 at the end."""
    with mpmath.workdps(50):
        zm = [mpmath.mpf(float(v)) for v in z]
        top = max(zm)
        e = [mpmath.exp(v - top) for v in zm]
        total = sum(e)
        s = [v / total for v in e]
        gs = sum(mpmath.mpf(float(g[i])) * s[i] for i in range(len(s)))
        diag = [s[i] * (1 - s[i]) for i in range(len(s))]
        vjp = [s[i] * (mpmath.mpf(float(g[i])) - gs) for i in range(len(s))]
        return np.array([float(v) for v in diag]), np.array([float(v) for v in vjp])


def rel_err(a, exact):
    """Worst relative error over the entries whose exact value is a nonzero float; the others must be 0."""
    nz = exact != 0
    assert np.all(a[~nz] == 0), a[~nz]
    return float(np.max(np.abs(a[nz] - exact[nz]) / np.abs(exact[nz])))


@pytest.mark.parametrize("z", SATURATED, ids=lambda z: str(z.tolist()))
def test_softmax_at_saturation_against_exact_values(z):
    g = np.random.default_rng(int(abs(z).sum()) % 1000).normal(size=z.size)
    diag_exact, vjp_exact = exact_softmax(z, g)
    sm = jn.Softmax()
    J_ref = sm.jacobian(z[:, None])
    J_bat = sm.jacobian_batched(z[None])[0]
    S = sm.forward_batched(z[None])
    vjp_bat = sm.vjp_batched(z[None], S, g[None])[0]
    vjp_ref = (g[None] @ J_ref)[0]
    assert rel_err(np.diag(J_ref), diag_exact) <= 4 * EPS, "reference diagonal"
    assert rel_err(np.diag(J_bat), diag_exact) <= 4 * EPS, "batched diagonal"
    e_ref, e_bat = rel_err(vjp_ref, vjp_exact), rel_err(vjp_bat, vjp_exact)
    assert e_ref <= 16 * EPS, "reference VJP"
    assert e_bat <= max(e_ref, 4 * EPS), "batched VJP no worse than the reference"


def test_the_cancelling_forms_would_fail_here():
    """The near miss: S - S^2 and S * (G - rowsum(G S)) lose digits at z = [0, -25, -30, -36] (s_0 = 1 - 1.4e-11),
    so the tests above can tell the forms apart."""
    z = SATURATED[1]
    g = np.random.default_rng(0).normal(size=z.size)
    diag_exact, vjp_exact = exact_softmax(z, g)
    S = jn.Softmax().forward_batched(z[None])
    assert rel_err((S - S * S)[0], diag_exact) > 1e-8
    assert rel_err((S * (g - np.sum(g * S, axis=1, keepdims=True)))[0], vjp_exact) > 1e-8


def test_softmax_vjp_away_from_saturation_unchanged_up_to_rounding():
    rng = np.random.default_rng(1)
    Z, G = rng.normal(size=(20, 6)), rng.normal(size=(20, 6))
    sm = jn.Softmax()
    S = sm.forward_batched(Z)
    ref = np.vstack([g[None] @ sm.jacobian(z) for g, z in zip(G, cols(Z))])
    assert np.allclose(sm.vjp_batched(Z, S, G), ref, rtol=1e-13, atol=1e-16)


# --------------------------------------------------------------------------- nearly constant features


def near_constant(N=8, seed=0):
    u = np.random.default_rng(seed).uniform(-1, 1, N)
    return 1e3 + 1e-6 * u


def exact_normalised(x, eps):
    """x_hat = (x - mu) / sqrt(var + eps) with mu, var and x - mu exact (Fractions); sigma rounded once
    (its relative condition number is 1/2)."""
    fx = [Fraction(float(v)) for v in x]
    mu = sum(fx) / len(fx)
    d = [v - mu for v in fx]
    var = sum(v * v for v in d) / len(fx)
    sigma = float(var + Fraction(eps)) ** 0.5
    return np.array([float(v) for v in d]) / sigma, np.array([float(v) for v in d]), mu, sigma


def test_batch_norm_mean_on_a_nearly_constant_feature():
    x0 = near_constant()
    other = np.random.default_rng(1).normal(size=8)
    X = np.stack([x0, other], axis=1)
    bn = jn.BatchNorm(2, eps=1e-14, update_running=False)  # tiny eps: x_hat is O(1), the cancellation shows
    exact, d_exact, mu_exact, sigma = exact_normalised(x0, 1e-14)
    Y_bat = bn.forward_batched(X, "train")[0][:, 0]
    Y_ref = np.hstack(bn.forward_samples(cols(X), "train")[0]).T[:, 0]
    scale = np.max(np.abs(exact))
    err_bat = np.max(np.abs(Y_bat - exact)) / scale
    err_ref = np.max(np.abs(Y_ref - exact)) / scale
    rounded_mean = (x0 - float(mu_exact)) / sigma  # what a correctly rounded mean allows
    err_rounded = np.max(np.abs(rounded_mean - exact)) / scale
    assert err_bat <= err_rounded + 8 * EPS and err_ref <= err_rounded + 8 * EPS
    assert err_bat < 1e-12 and err_ref < 1e-12
    naive = (x0 - x0.mean()) / sigma  # the near miss: the one-pass mean
    assert np.max(np.abs(naive - exact)) / scale > 1e3 * err_bat


def test_running_mean_gets_the_refined_mean():
    x0 = near_constant(seed=3)
    X = np.stack([x0, x0[::-1]], axis=1)
    bn = jn.BatchNorm(2, momentum=0.0)
    bn.forward_batched(X, "train")
    mu_exact = float(sum(Fraction(float(v)) for v in x0) / len(x0))
    assert abs(bn.running_mean[0] - mu_exact) <= 1e3 * EPS  # within an ulp of the exact mean


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
