"""Activations, one place per component: everything that checks an activation.

* reference Jacobians ``jacobian`` against finite differences (``scipy.differentiate``) and their
  structure;
* the batched path: ``vjp_batched`` and ``jacobian_batched`` against the reference Jacobian (the
  inner-product identity, kinks included) and against finite differences of ``forward_batched``;
  ``out=`` (also aliasing);
* kinks: the ``z <= 0`` branch at exactly 0 on both paths, and that it is the left derivative;
* tails: forward values and derivatives at large ``|z|`` on **both** paths against 50-digit mpmath
  values (every elementwise activation; softmax at saturation), with the near misses that show the
  cancelling forms would fail;
* bad input.

The network-level agreement of the two paths over random architectures (every activation as a
hidden layer) is in ``test_batched.py`` (``test_batched_matches_stacked_reference``).
"""

import warnings

import mpmath
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from support import ACTIVATION_NAMES, assert_identity, away_from_zero, cols, exact_rel_err

import jacobian_nn as jn
from jacobian_nn import ACTIVATIONS, get_activation
from jacobian_nn.fd import compare, fd_jacobian

ALL = sorted(jn.ACTIVATIONS)
ELEMENTWISE = [n for n in ALL if n != "softmax"]
# name -> derivative at exactly 0 under the z <= 0 branch rule
KINK_VALUE = {"relu": 0.0, "leaky_relu": 0.01, "elu": 1.0, "step": 0.0}
SEEDS = (0, 1, 2)
EPS = np.finfo(np.float64).eps


# --------------------------------------------------------------------------- reference Jacobians against finite differences, structure


@given(
    name=st.sampled_from(ALL), z=arrays(np.float64, st.tuples(st.integers(1, 6), st.just(1)), elements=away_from_zero())
)
def test_jacobian_matches_finite_differences(name, z):
    act = jn.get_activation(name)
    fd = fd_jacobian(lambda v: act.forward(v[:, None]), z)
    c = compare(name, act.jacobian(z), fd.df, err=fd.error)
    assert c.passed, c


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


def test_step_forward_and_zero_jacobian():
    z = np.array([[-1.0], [0.0], [2.0]])
    np.testing.assert_array_equal(jn.Step().forward(z), [[0.0], [0.0], [1.0]])
    np.testing.assert_array_equal(jn.Step().jacobian(z), np.zeros((3, 3)))


def test_identity_jacobian_is_eye():
    np.testing.assert_array_equal(jn.Identity().jacobian(np.ones((3, 1))), np.eye(3))


# --------------------------------------------------------------------------- batched path: VJP against the reference Jacobian and finite differences, out=


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", ACTIVATION_NAMES)
def test_activation_identity(name, seed):
    """The inner-product identity (``support.assert_identity``), sample by sample: ``vjp_batched``
    against the reference ``jacobian`` and against ``jacobian_batched``, kinks (z = 0) included."""
    rng = np.random.default_rng(seed)
    N, m = 5, 6
    act = get_activation(name)
    Z = rng.standard_normal((N, m))
    Z[0, :2] = 0.0  # kinks: both paths must take the z <= 0 branch
    U, V = rng.standard_normal((N, m)), rng.standard_normal((N, m))
    vjp = act.vjp_batched(Z, act.forward_batched(Z), V)
    Ju_ref = np.stack([act.jacobian(z) @ u for z, u in zip(cols(Z), U)])
    Ju_bat = np.einsum("kij,kj->ki", act.jacobian_batched(Z), U)
    assert_identity(U, vjp, V, Ju_ref, label=f"{name} vjp_batched vs reference jacobian")
    assert_identity(U, vjp, V, Ju_bat, label=f"{name} vjp_batched vs jacobian_batched")


@given(
    name=st.sampled_from(ALL),
    Z=arrays(np.float64, st.tuples(st.integers(1, 3), st.integers(1, 5)), elements=away_from_zero()),
    seed=st.integers(0, 2**31 - 1),
)
def test_batched_jacobian_and_vjp_match_finite_differences(name, Z, seed):
    """Sample by sample: ``jacobian_batched(Z)[k]`` against scipy's finite differences of
    ``forward_batched`` on row k, and ``vjp_batched(Z, A, G)[k]`` against ``G[k] @ fd`` (the FD error
    estimate carried through ``|G[k]|``). Inputs stay a step of scipy's FD away from every kink."""
    act = get_activation(name)
    G = np.random.default_rng(seed).standard_normal(Z.shape)
    V = act.vjp_batched(Z, act.forward_batched(Z), G)
    J = act.jacobian_batched(Z)
    for k in range(Z.shape[0]):
        fd = fd_jacobian(lambda v: act.forward_batched(v[None, :])[0], Z[k])
        c = compare(f"{name} jacobian_batched[{k}]", J[k], fd.df, err=fd.error)
        assert c.passed, c
        c = compare(f"{name} vjp_batched[{k}]", V[k], G[k] @ fd.df, err=np.abs(G[k]) @ fd.error)
        assert c.passed, c


@pytest.mark.parametrize("name", ["identity", "step", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "softmax"])
def test_activation_out_gives_the_same_values_even_in_place(name):
    """``forward_batched(Z, out=...)`` and ``vjp_batched(Z, A, G, out=...)`` (numpy's out, also the
    aliasing ``out=Z`` / ``out=G``) give the values of the calls without ``out``."""
    act = jn.get_activation(name)
    rng = np.random.default_rng(15)
    Z, G = rng.standard_normal((7, 5)), rng.standard_normal((7, 5))
    A = act.forward_batched(Z)
    V = act.vjp_batched(Z, A, G)
    np.testing.assert_array_equal(act.forward_batched(Z, out=np.empty_like(Z)), A)
    np.testing.assert_array_equal(act.vjp_batched(Z, A, G, out=np.empty_like(G)), V)
    G2 = G.copy()
    assert act.vjp_batched(Z, A, G2, out=G2) is G2
    np.testing.assert_array_equal(G2, V)
    Z2 = Z.copy()
    assert act.forward_batched(Z2, out=Z2) is Z2
    np.testing.assert_array_equal(Z2, A)


@pytest.mark.parametrize("name", ALL)
def test_activation_layer_is_its_activation_on_both_paths(name):
    """``ActivationLayer(m, name)`` (an activation as a layer of its own, no parameters) gives its
    activation's numbers bit for bit: ``forward``/``jacobian_x``/``backward`` on the reference path,
    ``forward_batched``/``backward_batched`` (also ``per_sample=True``)/``jacobian_x_batched`` on the
    batched path, at kinks too (z = 0 in sample 0)."""
    act = get_activation(name)
    layer = jn.ActivationLayer(4, name)
    rng = np.random.default_rng(7)
    Z, G = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    Z[0, :2] = 0.0
    Y, ctx = layer.forward_batched(Z)
    np.testing.assert_array_equal(Y, act.forward_batched(Z))
    for per_sample in (False, True):
        dX, grads = layer.backward_batched(G, ctx, per_sample=per_sample)
        np.testing.assert_array_equal(dX, act.vjp_batched(Z, act.forward_batched(Z), G))
        assert grads == {}
    np.testing.assert_array_equal(layer.jacobian_x_batched(Z), act.jacobian_batched(Z))
    for z, g in zip(cols(Z), G):
        y, c = layer.forward(z)
        np.testing.assert_array_equal(y, act.forward(z))
        np.testing.assert_array_equal(layer.jacobian_x(z), act.jacobian(z))
        dx, grads = layer.backward(g[None], c)
        np.testing.assert_array_equal(dx, g[None] @ act.jacobian(z))
        assert grads == {}


# --------------------------------------------------------------------------- kinks, both paths


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


@pytest.mark.parametrize("name", sorted(KINK_VALUE))
def test_batched_kink_takes_left_branch(name):
    """The batched path at exactly 0: ``vjp_batched`` of a cotangent of ones and the diagonal of
    ``jacobian_batched`` hold the convention's value, equal to the reference's, and that value is
    the left FD derivative of ``forward_batched``; the near miss z = +2^-30 takes the other branch
    (except for step, whose derivative is 0 on both sides)."""
    act = get_activation(name)
    Z = np.array([[0.0, 0.0, 1.5, -0.5], [2.0**-30, 0.0, -2.0, 0.0]])
    d = act.vjp_batched(Z, act.forward_batched(Z), np.ones_like(Z))
    J = act.jacobian_batched(Z)
    assert d[0, 0] == d[0, 1] == d[1, 1] == d[1, 3] == KINK_VALUE[name]
    np.testing.assert_array_equal(np.diagonal(J, axis1=1, axis2=2), d)
    for k in range(2):
        np.testing.assert_array_equal(J[k], act.jacobian(Z[k][:, None]))
    right = {"relu": 1.0, "leaky_relu": 1.0, "elu": 1.0, "step": 0.0}[name]
    assert d[1, 0] == right
    left = fd_jacobian(lambda v: act.forward_batched(v[None, :])[0], Z[0], step_direction=-1)
    c = compare(name, J[0], left.df, err=left.error)
    assert c.passed, c


@pytest.mark.parametrize("alpha", [0.2, 2.0])
def test_kink_value_follows_alpha(alpha):
    z = np.zeros((2, 1))
    assert np.all(np.diag(jn.LeakyReLU(alpha).jacobian(z)) == alpha)
    assert np.all(np.diag(jn.ELU(alpha).jacobian(z)) == alpha)


# --------------------------------------------------------------------------- tails, both paths


#: Points in both tails and around 0, where the naive forms of the derivatives cancel, overflow or
#: underflow: e^-745 is the last float64 exp above 0, tanh' reaches the subnormals at |z| ~ 355.
TAIL_Z = [-1e4, -800.0, -745.0, -710.0, -355.0, -100.0, -40.0, -20.0, -1e-8, 0.0, 1e-8, 20.0, 40.0, 100.0, 355.0]
TAIL_Z += [710.0, 800.0, 1e4]


def exact_elementwise(name, z):
    """The activation's value and derivative at the float ``z``, from 50-digit mpmath, as mpf."""
    alpha = mpmath.mpf(get_activation(name).alpha) if name in ("leaky_relu", "elu") else None
    with mpmath.workdps(50):
        z = mpmath.mpf(float(z))
        if name == "sigmoid":  # s'(z) = e^-|z| / (1 + e^-|z|)^2: no cancellation in the reference value
            e = mpmath.exp(-abs(z))
            return 1 / (1 + mpmath.exp(-z)), e / (1 + e) ** 2
        if name == "tanh":
            return mpmath.tanh(z), 1 / mpmath.cosh(z) ** 2
        if name == "elu":
            return (z, mpmath.mpf(1)) if z > 0 else (alpha * mpmath.expm1(z), alpha * mpmath.exp(z))
        if name == "leaky_relu":
            return (z, mpmath.mpf(1)) if z > 0 else (alpha * z, alpha)
        if name == "relu":
            return (z, mpmath.mpf(1)) if z > 0 else (mpmath.mpf(0), mpmath.mpf(0))
        if name == "step":
            return (mpmath.mpf(1) if z > 0 else mpmath.mpf(0)), mpmath.mpf(0)
        return z, mpmath.mpf(1)  # identity


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("name", ELEMENTWISE)
def test_tails_against_exact_values_on_both_paths(name, dtype):
    """Forward and derivative at |z| up to 1e4 against 50-digit values rounded to ``dtype``: the
    batched path (``forward_batched``, ``vjp_batched`` of a cotangent of ones, the diagonal of
    ``jacobian_batched``) in float64 and float32, the reference path (``forward``, the diagonal of
    ``jacobian``) in float64. Tolerance ``4 eps |exact|``, plus the smallest normal number: below the
    normal range a result may flush to 0 (sigmoid'(-745) = 4.9e-324 is 0 on both paths). Measured:
    at most 1 eps in float64 on every point with a normal exact value. No overflow, invalid or
    division warning anywhere."""
    act = get_activation(name)
    fi = np.finfo(dtype)
    z = np.array(TAIL_Z, dtype=dtype)
    exact = [exact_elementwise(name, v) for v in z]
    f_exact = np.array([float(f) for f, _ in exact]).astype(dtype)
    d_exact = np.array([float(d) for _, d in exact]).astype(dtype)
    with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
        A = act.forward_batched(z[None])
        got = {
            "forward_batched": (A[0], f_exact),
            "vjp_batched": (act.vjp_batched(z[None], A, np.ones_like(z[None]))[0], d_exact),
            "jacobian_batched": (np.diag(act.jacobian_batched(z[None])[0]), d_exact),
        }
        if dtype == np.float64:
            got["forward"] = (act.forward(z[:, None])[:, 0], f_exact)
            got["jacobian"] = (np.diag(act.jacobian(z[:, None])), d_exact)
    for what, (value, want) in got.items():
        assert value.dtype == dtype, what
        bad = np.abs(value.astype(np.float64) - want) > 4 * float(fi.eps) * np.abs(want) + float(fi.tiny)
        assert not bad.any(), f"{name} {what} at z = {z[bad]}: {value[bad]} != {want[bad]}"


def test_elu_derivative_from_its_output_would_fail_in_the_tail():
    """The near miss for elu's tail: ``elu'(z) = A + alpha`` (from the saved output) cancels where
    ``expm1(z)`` rounds to -1 (z = -50: 0 instead of 1.9e-22); both paths keep ``alpha e^z``."""
    act = jn.ELU()
    z = np.array([[-50.0, -40.0]])
    A = act.forward_batched(z)
    assert np.all(A + 1.0 == 0.0)
    d_bat = act.vjp_batched(z, A, np.ones_like(z))[0]
    d_ref = np.diag(act.jacobian(z.T))
    exact = np.exp(z[0])
    assert exact_rel_err(d_bat, exact) <= 2 * EPS and exact_rel_err(d_ref, exact) <= 2 * EPS


def test_sigmoid_stable_up_to_1e4():
    z = np.array([[-1e4], [-745.0], [-40.0], [0.0], [40.0], [1e4]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        s = jn.Sigmoid().forward(z)
        J = jn.Sigmoid().jacobian(z)
    assert s[0, 0] == 0.0 and s[-1, 0] == 1.0 and s[3, 0] == 0.5
    d = np.diag(J)
    # s'(z) = s(z) s(-z) keeps full relative precision in the tails: s'(40) = e^-40 / (1 + e^-40)^2
    assert d[4] == pytest.approx(np.exp(-40.0) / (1 + np.exp(-40.0)) ** 2, rel=1e-15, abs=0)
    assert d[2] == d[4] and d[0] == 0.0 and d[3] == 0.25


def test_tanh_derivative_keeps_precision_in_tails():
    z = np.array([[20.0], [-20.0], [800.0]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        d = np.diag(jn.Tanh().jacobian(z))
    exact = 1.0 / np.cosh(20.0) ** 2
    assert d[0] == pytest.approx(exact, rel=1e-14, abs=0) and d[1] == d[0]
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
    assert d[3] == pytest.approx(exact, rel=4 * float(np.finfo(dtype).eps), abs=0) and d[1] == d[3]
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
    assert d[0] == pytest.approx(exact, rel=8 * float(np.finfo(dtype).eps), abs=0) and d[1] == d[0]
    assert d[2] == 1.0 and d[3] == 0.0
    assert (1 - A * A)[0, 0] == 0.0  # the near miss: the cancelling form 1 - tanh^2 loses it all
    np.testing.assert_array_equal(np.diag(J), d)


def test_elu_forward_and_derivative_are_accurate_near_zero():
    z = np.array([[-1e-10], [-50.0]])
    y = jn.ELU().forward(z)
    assert y[0, 0] == pytest.approx(-1e-10 + 5e-21, rel=1e-15, abs=0)  # expm1, not exp - 1
    d = np.diag(jn.ELU(alpha=2.0).jacobian(z))
    assert d[1] == pytest.approx(2.0 * np.exp(-50.0), rel=1e-15, abs=0)


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
    assert exact_rel_err(np.diag(J_ref), diag_exact) <= 4 * EPS, "reference diagonal"
    assert exact_rel_err(np.diag(J_bat), diag_exact) <= 4 * EPS, "batched diagonal"
    e_ref, e_bat = exact_rel_err(vjp_ref, vjp_exact), exact_rel_err(vjp_bat, vjp_exact)
    assert e_ref <= 16 * EPS, "reference VJP"
    assert e_bat <= max(e_ref, 4 * EPS), "batched VJP no worse than the reference"


@pytest.mark.parametrize("z", SATURATED, ids=lambda z: str(z.tolist()))
def test_softmax_float32_batched_at_saturation_against_exact_values(z):
    """The batched path in float32 at the same saturated logits (exact values of the float32 inputs,
    rounded to float32): the diagonal of ``jacobian_batched`` and ``vjp_batched`` within 8 eps(float32)
    relative (measured: at most 4.1 eps), entries below the normal range allowed to flush to 0."""
    z32 = z.astype(np.float32)
    g = np.random.default_rng(int(abs(z).sum()) % 1000).normal(size=z.size).astype(np.float32)
    diag_exact, vjp_exact = exact_softmax(z32, g)
    sm = jn.Softmax()
    with np.errstate(over="raise", invalid="raise", divide="raise", under="ignore"):
        d = np.diag(sm.jacobian_batched(z32[None])[0])
        v = sm.vjp_batched(z32[None], sm.forward_batched(z32[None]), g[None])[0]
    fi = np.finfo(np.float32)
    for what, got, want in (("diagonal", d, diag_exact), ("VJP", v, vjp_exact)):
        want = want.astype(np.float32).astype(np.float64)
        assert got.dtype == np.float32
        err = np.abs(got.astype(np.float64) - want)
        assert np.all(err <= 8 * float(fi.eps) * np.abs(want) + float(fi.tiny)), (what, got, want)


def test_the_cancelling_forms_would_fail_here():
    """The near miss: S - S^2 and S * (G - rowsum(G S)) lose digits at z = [0, -25, -30, -36] (s_0 = 1 - 1.4e-11),
    so the tests above can tell the forms apart."""
    z = SATURATED[1]
    g = np.random.default_rng(0).normal(size=z.size)
    diag_exact, vjp_exact = exact_softmax(z, g)
    S = jn.Softmax().forward_batched(z[None])
    assert exact_rel_err((S - S * S)[0], diag_exact) > 1e-8
    assert exact_rel_err((S * (g - np.sum(g * S, axis=1, keepdims=True)))[0], vjp_exact) > 1e-8


def test_softmax_vjp_away_from_saturation_unchanged_up_to_rounding():
    rng = np.random.default_rng(1)
    Z, G = rng.normal(size=(20, 6)), rng.normal(size=(20, 6))
    sm = jn.Softmax()
    S = sm.forward_batched(Z)
    ref = np.vstack([g[None] @ sm.jacobian(z) for g, z in zip(G, cols(Z))])
    assert np.allclose(sm.vjp_batched(Z, S, G), ref, rtol=1e-13, atol=1e-16)


# --------------------------------------------------------------------------- bad input


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


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_every_activation_reference_method_refuses_a_non_finite_z_by_name(name, bad):
    """The refusal comes before any computation and is the only message: no numpy warning, with
    ``check=False`` either (the drivers' own values, which they refuse afterwards: softmax's
    ``inf - inf`` shift gives NaN quietly), nor from ``forward_batched`` on the same row."""
    act = get_activation(name)
    z = np.array([[0.5], [bad], [-0.25]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for method in (act.forward, act.jacobian):
            with pytest.raises(ValueError, match=r"^z: expected finite values, got .* at index \(1, 0\)"):
                method(z)
        ok = np.array([[700.0], [-700.0], [0.0]])  # near miss: extreme but finite
        assert np.isfinite(act.jacobian(ok)).all() and np.isfinite(act.forward(ok)).all()
        assert act.jacobian(np.array([[1], [0], [-2]])).shape == (3, 3)  # integers: accepted
        act.jacobian(z, check=False)  # the drivers' own z: check=False skips the check (and only that)
        A = act.forward_batched(z.T)
    if name == "softmax" and bad != -np.inf:  # NaN (quietly), refused by the drivers; -inf: its 0 share
        assert np.isnan(act.forward(z, check=False)).any() and np.isnan(A).any()


@pytest.mark.parametrize("z", [np.array([[1 + 0j], [0j]]), np.array([["1"], ["0"]])])
def test_activation_reference_methods_refuse_a_complex_or_string_z(z):
    with pytest.raises(TypeError, match=r"^z: expected a real"):
        get_activation("tanh").jacobian(z)


def test_unknown_activation_name():
    with pytest.raises(ValueError, match="activation: expected one of .* got 'swish'"):
        jn.get_activation("swish")


@pytest.mark.parametrize("alpha", [0.0, -1.0, float("nan")])
def test_bad_alpha(alpha):
    with pytest.raises(ValueError, match="alpha"):
        jn.LeakyReLU(alpha)
