"""Batch normalisation, one place per component: everything that checks it.

* reference path: the explicit coupled ``(N m) x (N m)`` Jacobians against finite differences, their
  structure, the formula by hand on a small batch, test mode's per-sample diagonal;
* batched path: the compact backward against finite differences of the batch loss and against the
  reference (``test_both_paths_match_fd_of_the_batch_loss``), in a network on both paths, float32;
* running statistics (by hand, frozen, the refined mean); precision: a nearly constant feature
  (offset 1e3, spread 1e-6) on both paths against exact rational arithmetic;
* kinks: none (smooth for eps > 0); bad input and refusals.

Batch norm inside networks with dropout (per-sample gradients in test mode, the refusal in training
mode, batched input Jacobians of every layer type): ``test_batched_every_layer.py``; its state after a
refused step: ``test_hardening_core.py``; the spatial variant: ``test_conv.py``.
"""

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, strategies as st
from support import cols, exact_normalised, near_constant, rows

from jacobian_nn.fd import compare, fd_gradient, fd_jacobian, fd_loss_gradient
from jacobian_nn.normalization import BatchNorm, frozen_running_stats
from jacobian_nn.network import Network
from jacobian_nn.layers import Dense

EPS = np.finfo(np.float64).eps

#: Agreement between the two paths (float64, small batches): a few hundred roundings.
PATH_RTOL = 1e-11
PATH_ATOL = 1e-12


def make_bn(rng, m, gamma=None, beta=None):
    bn = BatchNorm(
        m,
        gamma=rng.uniform(0.3, 2.0, m) if gamma is None else gamma,
        beta=rng.normal(size=m) if beta is None else beta,
        update_running=False,
    )
    bn.running_mean[:] = rng.normal(size=m)
    bn.running_var[:] = rng.uniform(0.2, 2.0, m)
    return bn


def out_with(bn, X, mode, gamma=None, beta=None):
    """The layer's batched output with other parameters, on a copy (no state touched)."""
    probe = BatchNorm(
        bn.n_in,
        gamma=bn.gamma if gamma is None else gamma,
        beta=bn.beta if beta is None else beta,
        eps=bn.eps,
        update_running=False,
    )
    probe.running_mean[:], probe.running_var[:] = bn.running_mean, bn.running_var
    return probe.forward_batched(X, mode)[0]


batch = st.tuples(st.integers(2, 6), st.integers(1, 4), st.integers(0, 2**31 - 1))


@given(batch, st.sampled_from(["train", "test"]))
def test_both_paths_match_fd_of_the_batch_loss(shape, mode):
    N, m, seed = shape
    rng = np.random.default_rng(seed)
    bn = make_bn(rng, m)
    X = rng.normal(size=(N, m)) * rng.uniform(0.5, 3.0, m) + rng.normal(size=m)
    U = rng.normal(size=(N, m))  # L = sum(U * Y), dL/dY = U
    ys, ctx = bn.forward_samples(cols(X), mode)
    gx_ref, g_ref = bn.backward_samples(rows(U), ctx)
    Y, ctx = bn.forward_batched(X, mode)
    dX, g_bat = bn.backward_batched(U, ctx)
    # forward: the two paths compute the same output
    np.testing.assert_allclose(np.hstack(ys).T, Y, rtol=PATH_RTOL, atol=PATH_ATOL)
    fd_x = fd_gradient(lambda v: np.sum(U * out_with(bn, v.reshape(N, m), mode)), X)
    fd_g = fd_gradient(lambda v: np.sum(U * out_with(bn, X, mode, gamma=v)), bn.gamma)
    fd_b = fd_gradient(lambda v: np.sum(U * out_with(bn, X, mode, beta=v)), bn.beta)
    for label, got, fd in [
        ("ref dX", np.vstack(gx_ref), fd_x),
        ("bat dX", dX, fd_x),
        ("ref dgamma", g_ref["gamma"], fd_g),
        ("bat dgamma", g_bat["gamma"], fd_g),
        ("ref dbeta", g_ref["beta"], fd_b),
        ("bat dbeta", g_bat["beta"], fd_b),
    ]:
        c = compare(label, got.reshape(1, -1), fd.df, err=fd.error, atol=1e-7, rtol=1e-6)
        assert c.passed, c
    # the two paths agree much more tightly than either agrees with FD
    np.testing.assert_allclose(np.vstack(gx_ref), dX, rtol=PATH_RTOL, atol=PATH_ATOL)
    np.testing.assert_allclose(g_ref["gamma"], g_bat["gamma"], rtol=PATH_RTOL, atol=PATH_ATOL)
    np.testing.assert_allclose(g_ref["beta"], g_bat["beta"], rtol=PATH_RTOL, atol=PATH_ATOL)


@given(batch, st.sampled_from(["train", "test"]))
def test_explicit_jacobians_match_fd(shape, mode):
    N, m, seed = shape
    rng = np.random.default_rng(seed)
    bn = make_bn(rng, m)
    X = rng.normal(size=(N, m))
    fd = fd_jacobian(lambda v: out_with(bn, v.reshape(N, m), mode), X)
    c = compare("J_x", bn.jacobian_x_coupled(cols(X), mode), fd.df, err=fd.error, atol=1e-7, rtol=1e-6)
    assert c.passed, c
    fd = fd_jacobian(lambda v: out_with(bn, X, mode, gamma=v), bn.gamma)
    assert compare("J_gamma", bn.jacobian_gamma_coupled(cols(X), mode), fd.df, err=fd.error).passed
    fd = fd_jacobian(lambda v: out_with(bn, X, mode, beta=v), bn.beta)
    assert compare("J_beta", bn.jacobian_beta_coupled(cols(X), mode), fd.df, err=fd.error).passed


@given(batch)
def test_coupled_jacobian_structure(shape):
    """Per feature: symmetric, rows sum to 0 (shift invariance), J x_hat = 0 (scale invariance)."""
    N, m, seed = shape
    rng = np.random.default_rng(seed)
    bn = make_bn(rng, m)
    X = rng.normal(size=(N, m))
    J = bn.jacobian_per_feature(cols(X))
    assert J.shape == (m, N, N)
    x_hat = (X - X.mean(0)) / np.sqrt(X.var(0) + bn.eps)
    scale = np.max(bn.gamma / np.sqrt(X.var(0) + bn.eps))  # size of the terms (J itself can be ~0, e.g. N = 2)
    np.testing.assert_allclose(J, np.transpose(J, (0, 2, 1)), atol=1e-14 * scale)
    np.testing.assert_allclose(J.sum(axis=2), 0.0, atol=64 * np.finfo(float).eps * N * scale)
    # d y / d(c * (x - mu)) direction: J (x - mu) = gamma/sigma * (x_hat - x_hat * (var / (var + eps))) ~ 0
    resid = np.einsum("jik,kj->ij", J, x_hat)
    np.testing.assert_allclose(
        resid,
        (bn.gamma / np.sqrt(X.var(0) + bn.eps)) * x_hat * bn.eps / (X.var(0) + bn.eps),
        atol=64 * np.finfo(float).eps * N * scale * np.abs(x_hat).max(),
    )


def test_jacobian_formula_by_hand_small_batch():
    """N = 2, one feature: x_hat = (-1, 1) * d / sqrt(d^2 + eps); J = gamma/sigma (I - 1/2 - x_hat x_hat^T / 2)."""
    bn = BatchNorm(1, gamma=[2.0], eps=1e-5)
    X = np.array([[1.0], [3.0]])
    sigma = np.sqrt(1.0 + 1e-5)
    xh = np.array([-1.0, 1.0]) / sigma
    expected = 2.0 / sigma * (np.eye(2) - 0.5 - np.outer(xh, xh) / 2)
    np.testing.assert_allclose(bn.jacobian_per_feature(cols(X))[0], expected, rtol=1e-15, atol=1e-15)
    with pytest.raises(AssertionError):  # the eps-free formula is measurably different at eps = 1e-5
        np.testing.assert_allclose(
            bn.jacobian_per_feature(cols(X))[0],
            2.0 * (np.eye(2) - 0.5 - np.outer([-1, 1], [-1, 1]) / 2),
            rtol=1e-9,
            atol=0,
        )


def test_test_mode_jacobian_is_diagonal_per_sample():
    rng = np.random.default_rng(3)
    bn = make_bn(rng, 4)
    x = rng.normal(size=(4, 1))
    J = bn.jacobian_x(x)
    np.testing.assert_array_equal(J, np.diag(np.diag(J)))
    np.testing.assert_allclose(np.diag(J), bn.gamma / np.sqrt(bn.running_var + bn.eps), rtol=1e-15)


@pytest.mark.parametrize("path", ["reference", "batched"])
def test_running_statistics_after_k_steps_equal_hand_computation(path):
    rng = np.random.default_rng(7)
    m, momentum = 3, 0.8
    bn = BatchNorm(m, momentum=momentum)
    batches = [rng.normal(loc=2.0, scale=3.0, size=(5, m)) for _ in range(4)]
    mean, var = np.zeros(m), np.zeros(m)  # seed 004: both start at 0
    for X in batches:
        if path == "reference":
            bn.forward_samples(cols(X), "train")
        else:
            bn.forward_batched(X, "train")
        mean = momentum * mean + (1 - momentum) * X.mean(axis=0)
        var = momentum * var + (1 - momentum) * X.var(axis=0)  # biased (ddof=0), as seed 004
    np.testing.assert_allclose(bn.running_mean, mean, rtol=1e-14)
    np.testing.assert_allclose(bn.running_var, var, rtol=1e-14)
    assert not np.allclose(var, X.var(axis=0, ddof=1))  # the unbiased variance would differ
    # test mode uses them: no update and the running normalisation
    before = bn.running_mean.copy()
    Y, _ = bn.forward_batched(batches[0], "test")
    np.testing.assert_array_equal(bn.running_mean, before)
    np.testing.assert_allclose(Y, (batches[0] - mean) / np.sqrt(var + bn.eps), rtol=1e-13)


def test_frozen_running_stats_and_update_flag():
    rng = np.random.default_rng(8)
    net = Network([Dense(3, 4, seed=1), BatchNorm(4), Dense(4, 2, seed=2)], "softmax_cross_entropy")
    X, Y = rng.normal(size=(6, 3)), rng.integers(0, 2, 6)
    bn = net.layers[1]
    with frozen_running_stats(net):
        net.loss_and_gradients(X, Y)
        net.loss_and_gradients_batched(X, Y)
        assert not bn.update_running
    assert bn.update_running
    np.testing.assert_array_equal(bn.running_mean, 0.0)
    net.loss_and_gradients_batched(X, Y)
    assert np.any(bn.running_mean != 0.0)


def test_network_reference_and_batched_agree_and_match_fd():
    rng = np.random.default_rng(11)
    net = Network(
        [Dense(3, 5, "tanh", seed=1), BatchNorm(5, gamma=rng.uniform(0.5, 2, 5)), Dense(5, 3, seed=2)],
        "softmax_cross_entropy",
        l2=0.1,
    )
    X, Y = rng.normal(size=(7, 3)), rng.integers(0, 3, 7)
    with frozen_running_stats(net):
        lr, gr = net.loss_and_gradients(X, Y)
        lb, gb = net.loss_and_gradients_batched(X, Y)
        fd = fd_loss_gradient(net, X, Y)
    assert lr == pytest.approx(lb, rel=1e-14, abs=0)
    assert "gamma" in gr[1] and set(gr[1]) == {"gamma", "beta"}
    c = compare("ref", net.flatten_gradients(gr)[None], fd.df, err=fd.error)
    assert c.passed, c
    np.testing.assert_allclose(net.flatten_gradients(gr), net.flatten_gradients(gb), rtol=PATH_RTOL, atol=1e-13)


def test_float32_batched_close_to_float64():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(8, 3))
    U = rng.normal(size=(8, 3))
    b64, b32 = BatchNorm(3, update_running=False), BatchNorm(3, dtype=np.float32, update_running=False)
    Y64, c64 = b64.forward_batched(X, "train")
    Y32, c32 = b32.forward_batched(X.astype(np.float32), "train")
    assert Y32.dtype == np.float32
    np.testing.assert_allclose(Y32, Y64, rtol=0, atol=1e-5)
    d64, _ = b64.backward_batched(U, c64)
    d32, g32 = b32.backward_batched(U.astype(np.float32), c32)
    assert d32.dtype == np.float32 and g32["gamma"].dtype == np.float32
    np.testing.assert_allclose(d32, d64, rtol=0, atol=1e-5)


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("path", ["reference", "batched"])
def test_train_mode_with_one_sample_is_refused(path):
    bn = BatchNorm(3)
    x = np.ones((1, 3))
    with pytest.raises(ValueError, match=r"N >= 2.*got N=1"):
        if path == "reference":
            bn.forward_samples(cols(x), "train")
        else:
            bn.forward_batched(x, "train")
    # test mode handles one sample
    assert bn.forward_batched(x, "test")[0].shape == (1, 3)


def test_network_backward_on_one_sample_is_refused_with_batchnorm():
    net = Network([Dense(2, 3, seed=0), BatchNorm(3), Dense(3, 2, seed=1)], "softmax_cross_entropy")
    with pytest.raises(ValueError, match="N >= 2"):
        net.backward(np.ones((2, 1)), 1)


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"gamma": np.ones(4)}, r"gamma: expected shape \(3,\).*\(4,\)"),
        ({"beta": np.zeros((3, 1))}, r"beta: expected shape \(3,\)"),
        ({"eps": 0.0}, "eps"),
        ({"momentum": 1.5}, "momentum"),
    ],
)
def test_bad_parameters(kw, match):
    with pytest.raises(ValueError, match=match):
        BatchNorm(3, **kw)


def test_gamma_of_other_precision_refused():
    with pytest.raises(TypeError, match="gamma"):
        BatchNorm(3, gamma=np.ones(3, dtype=np.float32))


def test_mismatched_beta_assigned_later_is_refused():
    bn = BatchNorm(3)
    bn.beta = np.zeros(4)
    with pytest.raises(ValueError, match=r"beta: expected shape \(3,\)"):
        bn.forward_batched(np.ones((2, 3)), "train")


@pytest.mark.parametrize("mode", ["eval", "TRAIN", None])
def test_bad_mode(mode):
    bn = BatchNorm(2)
    with pytest.raises(ValueError, match="mode"):
        bn.forward_batched(np.ones((3, 2)), mode)
    with pytest.raises(ValueError, match="mode"):
        bn.forward_samples(cols(np.ones((3, 2))), mode)


def test_wrong_width_refused():
    with pytest.raises(ValueError, match=r"X: expected 3 features"):
        BatchNorm(3).forward_batched(np.ones((4, 2)), "train")


def test_batch_norm_mean_on_a_nearly_constant_feature():
    x0 = near_constant()
    other = np.random.default_rng(1).normal(size=8)
    X = np.stack([x0, other], axis=1)
    bn = BatchNorm(2, eps=1e-14, update_running=False)  # tiny eps: x_hat is O(1), the cancellation shows
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
    bn = BatchNorm(2, momentum=0.0)
    bn.forward_batched(X, "train")
    mu_exact = float(sum(Fraction(float(v)) for v in x0) / len(x0))
    assert abs(bn.running_mean[0] - mu_exact) <= 1e3 * EPS  # within an ulp of the exact mean
