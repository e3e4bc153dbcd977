"""Activations, one place per component: the reference Jacobians against scipy.differentiate,
structure, kinks, and the tails' precision on **both** paths (the batched VJP ``vjp_batched``
and ``jacobian_batched`` as well as the reference ``jacobian``). The batched VJP against the
reference Jacobian over random inputs is in ``test_vjp_identity.py`` / ``test_batched.py``."""

import mpmath
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from support import away_from_zero

import jacobian_nn as jn
from jacobian_nn.fd import compare, fd_jacobian

ALL = sorted(jn.ACTIVATIONS)
ELEMENTWISE = [n for n in ALL if n != "softmax"]
# name -> derivative at exactly 0 under the z <= 0 branch rule
KINK_VALUE = {"relu": 0.0, "leaky_relu": 0.01, "elu": 1.0, "step": 0.0}


@given(
    name=st.sampled_from(ALL), z=arrays(np.float64, st.tuples(st.integers(1, 6), st.just(1)), elements=away_from_zero())
)
def test_jacobian_matches_finite_differences(name, z):
    act = jn.get_activation(name)
    fd = fd_jacobian(lambda v: act.forward(v[:, None]), z)
    c = compare(name, act.jacobian(z), fd.df, err=fd.error)
    assert c.passed, c


@pytest.mark.parametrize("name", sorted(KINK_VALUE))
def test_kink_takes_left_branch(name):
    """At exactly 0 the Jacobian holds the convention's value, and that value is the left FD derivative."""
    act = jn.get_activation(name)
    z = np.array([[0.0], [0.0], [1.5], [-0.5]])
    J = act.jacobian(z)
    assert J[0, 0] == KINK_VALUE[name] and J[1, 1] == KINK_VALUE[name]
    left = fd_jacobian(lambda v: act.forward(v[:, None]), z, step_direction=-1)
    c = compare(name, J, left.df, err=left.error)
    assert c.passed, c


@pytest.mark.parametrize("alpha", [0.2, 2.0])
def test_kink_value_follows_alpha(alpha):
    z = np.zeros((2, 1))
    assert np.all(np.diag(jn.LeakyReLU(alpha).jacobian(z)) == alpha)
    assert np.all(np.diag(jn.ELU(alpha).jacobian(z)) == alpha)


@given(
    name=st.sampled_from(ELEMENTWISE),
    z=arrays(np.float64, st.tuples(st.integers(1, 8), st.just(1)), elements=st.floats(-50, 50)),
)
def test_elementwise_jacobian_is_diagonal_with_exact_zeros(name, z):
    J = jn.get_activation(name).jacobian(z)
    assert J.shape == (z.shape[0], z.shape[0])
    assert np.array_equal(J, np.diag(np.diag(J)))


@given(z=arrays(np.float64, st.tuples(st.integers(1, 8), st.just(1)), elements=st.floats(-30, 30)))
def test_softmax_jacobian_structure(z):
    J = jn.Softmax().jacobian(z)
    assert np.array_equal(J, J.T)  # symmetric, exactly
    assert np.max(np.abs(J.sum(axis=1))) <= 8 * z.shape[0] * np.finfo(float).eps
    # diagonal s_i (1 - s_i) against a 40-digit evaluation
    with mpmath.workdps(40):
        e = [mpmath.exp(mpmath.mpf(float(v))) for v in z[:, 0]]
        total = mpmath.fsum(e)
        exact = [float(ei / total * (1 - ei / total)) for ei in e]
    # exp amplifies the rounding of the shift z - max z (|.| up to 60) into a relative error
    # of |z - max z| * eps: the tolerance carries that condition number.
    cond = 1 + np.max(z) - np.min(z)
    np.testing.assert_allclose(np.diag(J), exact, rtol=8 * cond * np.finfo(float).eps, atol=0)


def test_softmax_is_shift_invariant_and_does_not_overflow():
    z = np.array([[1000.0], [1001.0], [999.0]])
    s = jn.Softmax().forward(z)
    assert np.all(np.isfinite(s)) and abs(s.sum() - 1) < 1e-15
    np.testing.assert_array_equal(s, jn.Softmax().forward(z - 1000.0))


def test_sigmoid_stable_up_to_1e4():
    z = np.array([[-1e4], [-745.0], [-40.0], [0.0], [40.0], [1e4]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        s = jn.Sigmoid().forward(z)
        J = jn.Sigmoid().jacobian(z)
    assert s[0, 0] == 0.0 and s[-1, 0] == 1.0 and s[3, 0] == 0.5
    d = np.diag(J)
    # s'(z) = s(z) s(-z) keeps full relative precision in the tails: s'(40) = e^-40 / (1 + e^-40)^2
    assert d[4] == pytest.approx(np.exp(-40.0) / (1 + np.exp(-40.0)) ** 2, rel=1e-15)
    assert d[2] == d[4] and d[0] == 0.0 and d[3] == 0.25


def test_tanh_derivative_keeps_precision_in_tails():
    z = np.array([[20.0], [-20.0], [800.0]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        d = np.diag(jn.Tanh().jacobian(z))
    exact = 1.0 / np.cosh(20.0) ** 2
    assert d[0] == pytest.approx(exact, rel=1e-14) and d[1] == d[0]
    assert d[2] == 0.0


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_sigmoid_batched_tails_keep_precision(dtype):
    """The batched VJP ``G * A * s(-Z)`` keeps full relative precision where ``1 - s`` would round
    to 0 (z = 40 in float64, z = 20 in float32), gives exactly s'(0) = 1/4 and 0 at |z| = 1e4,
    without overflow warnings; ``jacobian_batched`` puts the same values on its diagonal."""
    big = 40.0 if dtype == np.float64 else 20.0
    Z = np.array([[-1e4, -big, 0.0, big, 1e4]], dtype=dtype)
    act = jn.Sigmoid()
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        A = act.forward_batched(Z)
        d = act.vjp_batched(Z, A, np.ones_like(Z))[0]
        J = act.jacobian_batched(Z)[0]
    exact = np.exp(-big) / (1 + np.exp(-big)) ** 2
    assert d.dtype == dtype
    assert d[3] == pytest.approx(exact, rel=4 * float(np.finfo(dtype).eps)) and d[1] == d[3]
    assert d[2] == 0.25 and d[0] == 0.0 and d[4] == 0.0
    assert (A * (1 - A))[0, 3] == 0.0  # the near miss: the cancelling form s (1 - s) loses it all
    np.testing.assert_array_equal(np.diag(J), d)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_tanh_batched_tails_keep_precision(dtype):
    """The batched VJP ``G 4u / (1 + u)^2``, ``u = exp(-2|z|)``, keeps full relative precision
    where ``1 - tanh^2`` cancels to 0, is even, and is exactly 0 (no overflow) at z = 800."""
    big = 20.0 if dtype == np.float64 else 10.0
    Z = np.array([[big, -big, 0.0, 800.0]], dtype=dtype)
    act = jn.Tanh()
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        A = act.forward_batched(Z)
        d = act.vjp_batched(Z, A, np.ones_like(Z))[0]
        J = act.jacobian_batched(Z)[0]
    exact = 1.0 / np.cosh(big) ** 2
    assert d.dtype == dtype
    assert d[0] == pytest.approx(exact, rel=8 * float(np.finfo(dtype).eps)) and d[1] == d[0]
    assert d[2] == 1.0 and d[3] == 0.0
    assert (1 - A * A)[0, 0] == 0.0  # the near miss: the cancelling form 1 - tanh^2 loses it all
    np.testing.assert_array_equal(np.diag(J), d)


def test_elu_forward_and_derivative_are_accurate_near_zero():
    z = np.array([[-1e-10], [-50.0]])
    y = jn.ELU().forward(z)
    assert y[0, 0] == pytest.approx(-1e-10 + 5e-21, rel=1e-15)  # expm1, not exp - 1
    d = np.diag(jn.ELU(alpha=2.0).jacobian(z))
    assert d[1] == pytest.approx(2.0 * np.exp(-50.0), rel=1e-15)


def test_step_forward_and_zero_jacobian():
    z = np.array([[-1.0], [0.0], [2.0]])
    np.testing.assert_array_equal(jn.Step().forward(z), [[0.0], [0.0], [1.0]])
    np.testing.assert_array_equal(jn.Step().jacobian(z), np.zeros((3, 3)))


def test_identity_jacobian_is_eye():
    np.testing.assert_array_equal(jn.Identity().jacobian(np.ones((3, 1))), np.eye(3))


@pytest.mark.parametrize("name", ALL)
def test_forward_does_not_mutate_input(name):
    z = np.array([[0.5], [-1.5], [0.0]])
    before = z.copy()
    act = jn.get_activation(name)
    act.forward(z)
    act.jacobian(z)
    np.testing.assert_array_equal(z, before)


@pytest.mark.parametrize("bad", [np.ones(3), np.ones((1, 3)), np.ones((3, 2))])
def test_row_or_1d_refused(bad):
    with pytest.raises(ValueError, match=r"z: expected a column vector of shape \(m, 1\)"):
        jn.ReLU().jacobian(bad)


def test_unknown_activation_name():
    with pytest.raises(ValueError, match="activation: expected one of .* got 'swish'"):
        jn.get_activation("swish")


@pytest.mark.parametrize("alpha", [0.0, -1.0, float("nan")])
def test_bad_alpha(alpha):
    with pytest.raises(ValueError, match="alpha"):
        jn.LeakyReLU(alpha)
