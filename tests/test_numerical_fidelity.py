"""Accuracy against exact or high-precision arithmetic: the normalised values of batch norm and layer norm on a nearly constant
feature (offset 1e3, spread 1e-6)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np

import jacobian_nn as jn
from support import cols

EPS = np.finfo(np.float64).eps

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
