"""Dense layer ``y = f(W^T x + b)``, one place per component: everything that checks it.

* reference Jacobians ``jacobian_x``, ``jacobian_W``, ``jacobian_b`` against finite differences
  (``scipy.differentiate``), and ``backward`` as the row times those Jacobians;
* the batched path: ``backward_batched`` (dX, dW, db and per-sample dW, db) against the reference
  Jacobians and the batched ``jacobian_*_batched`` (the inner-product identity), the batched
  Jacobians against finite differences of ``forward_batched``, ``input_vjp_rows_batched``, and the
  variants that must change no bit: ``input_grad=False``, the activation computed in place, lent
  arrays;
* kinks: a pre-activation exactly 0 under relu and leaky relu, on both paths;
* initialisation and seeding; bad input.

Tails: the layer's only nonlinear part is its activation, whose tails (both paths) are in
``test_activations.py``. Every layer type's batched input Jacobian against the reference inside a
network with batch norm and dropout: ``test_batched_every_layer.py``
(``test_layer_batched_jacobians_match_reference``).
"""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from support import ACTIVATION_NAMES, assert_identity, cols

import jacobian_nn as jn
from jacobian_nn.fd import compare, fd_jacobian
from jacobian_nn.layers import Dense

SEEDS = (0, 1, 2)


# --------------------------------------------------------------------------- reference path: Jacobians against finite differences, backward


SMOOTH = ["identity", "sigmoid", "tanh", "elu", "softmax"]


@given(n=st.integers(1, 5), m=st.integers(1, 5), act=st.sampled_from(SMOOTH), seed=st.integers(0, 2**32 - 1))
def test_dense_jacobians_match_fd(n, m, act, seed):
    rng = np.random.default_rng(seed)
    layer = jn.Dense(n, m, act, init="xavier", seed=rng)
    layer.b[:] = rng.normal(size=m)
    x = rng.normal(size=(n, 1))
    W0, b0 = layer.W.copy(), layer.b.copy()
    assert layer.jacobian_x(x).shape == (m, n)
    assert layer.jacobian_b(x).shape == (m, m)
    assert layer.jacobian_W(x).shape == (m, n * m)
    fd = fd_jacobian(lambda v: layer.forward(v[:, None])[0], x)
    assert compare("dy/dx", layer.jacobian_x(x), fd.df, err=fd.error).passed
    fd = fd_jacobian(lambda v: jn.Dense.from_params(W0, v, act).forward(x)[0], b0)
    assert compare("dy/db", layer.jacobian_b(x), fd.df, err=fd.error).passed
    fd = fd_jacobian(lambda v: jn.Dense.from_params(v.reshape(n, m), b0, act).forward(x)[0], W0)
    assert compare("dy/dvecW", layer.jacobian_W(x), fd.df, err=fd.error).passed


@given(
    n=st.integers(1, 6),
    m=st.integers(1, 6),
    act=st.sampled_from(sorted(jn.ACTIVATIONS)),
    seed=st.integers(0, 2**32 - 1),
)
def test_dense_backward_is_row_times_explicit_jacobians(n, m, act, seed):
    """backward = the seed's formulas: dL/dx = g J_f W^T, dL/dW = x (g J_f), dL/db = g J_f."""
    rng = np.random.default_rng(seed)
    layer = jn.Dense(n, m, act, seed=rng)
    x = rng.normal(size=(n, 1))
    g = rng.normal(size=(1, m))
    _, ctx = layer.forward(x)
    dx, grads = layer.backward(g, ctx)
    assert dx.shape == (1, n) and grads["W"].shape == (n, m) and grads["b"].shape == (m,)
    np.testing.assert_allclose(dx, g @ layer.jacobian_x(x), rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(grads["W"].reshape(1, -1), g @ layer.jacobian_W(x), rtol=1e-13, atol=1e-14)
    np.testing.assert_allclose(grads["b"], (g @ layer.jacobian_b(x))[0], rtol=1e-13, atol=1e-14)


def test_dense_forward_is_WT_x_plus_b():
    W = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])  # n = 2, m = 3
    b = np.array([0.5, -0.5, 1.0])
    y, _ = jn.Dense.from_params(W, b, "identity").forward(np.array([[1.0], [-1.0]]))
    np.testing.assert_array_equal(y, [[-2.5], [-3.5], [-2.0]])


# --------------------------------------------------------------------------- batched path: VJPs against the reference and batched Jacobians, batched Jacobians against finite differences


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", ACTIVATION_NAMES)
def test_dense_identity(name, seed):
    """Dense wrt x (backward_batched's dX), W and b (backward_batched(..., per_sample=True)) against the reference
    jacobian_x / jacobian_W / jacobian_b and the batched jacobian_*_batched."""
    rng = np.random.default_rng(seed)
    N, n, m = 4, 5, 3
    layer = Dense(n, m, name, init="xavier", seed=rng)
    layer.b[:] = 0.3 * rng.standard_normal(m)
    X = rng.standard_normal((N, n))
    V = rng.standard_normal((N, m))
    Ux, UW, Ub = rng.standard_normal((N, n)), rng.standard_normal((N, n, m)), rng.standard_normal((N, m))
    _, ctx = layer.forward_batched(X)
    dX, _ = layer.backward_batched(V, ctx)
    _, per = layer.backward_batched(V, ctx, per_sample=True)
    xs = cols(X)
    for label, U, vjp, ref, bat in (
        ("x", Ux, dX, [layer.jacobian_x(x) for x in xs], layer.jacobian_x_batched(X)),
        ("W", UW, per["W"], [layer.jacobian_W(x) for x in xs], layer.jacobian_W_batched(X)),
        ("b", Ub, per["b"], [layer.jacobian_b(x) for x in xs], layer.jacobian_b_batched(X)),
    ):
        Uf = U.reshape(N, -1)  # vec(W) row-major, as jacobian_W
        Ju_ref = np.stack([J @ u for J, u in zip(ref, Uf)])
        Ju_bat = np.einsum("kij,kj->ki", bat, Uf)
        assert_identity(U, vjp, V, Ju_ref, label=f"dense[{name}] wrt {label} vs reference")
        assert_identity(U, vjp, V, Ju_bat, label=f"dense[{name}] wrt {label} vs batched Jacobian")


@pytest.mark.parametrize("name", ["identity", "sigmoid", "tanh", "elu", "softmax", "relu"])
def test_batched_jacobians_match_finite_differences(name):
    """Sample by sample: ``jacobian_x_batched``, ``jacobian_W_batched`` and ``jacobian_b_batched``
    against scipy's finite differences of ``forward_batched`` (wrt the sample's row, vec(W) row-major,
    and b). Pre-activations are kept at least 0.1 from relu's kink."""
    rng = np.random.default_rng(4)
    n, m, N = 4, 3, 3
    layer = Dense(n, m, name, init="xavier", seed=rng)
    layer.b[:] = 0.3 * rng.standard_normal(m)
    X = rng.standard_normal((N, n))
    assert np.min(np.abs(X @ layer.W + layer.b)) > 0.1  # away from the kink by more than the FD reach
    W0, b0 = layer.W.copy(), layer.b.copy()
    Jx, JW, Jb = layer.jacobian_x_batched(X), layer.jacobian_W_batched(X), layer.jacobian_b_batched(X)
    for k in range(N):
        witnesses = (
            ("dy/dx", Jx[k], lambda v: layer.forward_batched(v[None, :])[0][0], X[k]),
            (
                "dy/dvecW",
                JW[k],
                lambda v: Dense.from_params(v.reshape(n, m), b0, name).forward_batched(X[k : k + 1])[0][0],
                W0,
            ),
            ("dy/db", Jb[k], lambda v: Dense.from_params(W0, v, name).forward_batched(X[k : k + 1])[0][0], b0),
        )
        for label, J, fn, at in witnesses:
            fd = fd_jacobian(fn, at)
            c = compare(f"{name} {label} sample {k}", J, fd.df, err=fd.error)
            assert c.passed, c


def test_dense_input_vjp_rows_batch_is_rows_times_the_jacobian():
    layer = jn.Dense(5, 4, "tanh", init="xavier", seed=2)
    rng = np.random.default_rng(6)
    X, P = rng.standard_normal((3, 5)), rng.standard_normal((3, 2, 4))
    expected = np.matmul(P, layer.jacobian_x_batched(X))
    np.testing.assert_allclose(layer.input_vjp_rows_batched(P, X), expected, rtol=1e-13, atol=1e-15)
    P_copy = P.copy()
    layer.input_vjp_rows_batched(P, X)
    np.testing.assert_array_equal(P, P_copy)  # the input is not modified
    with pytest.raises(ValueError, match=r"P: expected shape \(3, r, 4\)"):
        layer.input_vjp_rows_batched(P[:, :, :3], X)


# --------------------------------------------------------------------------- batched variants that change no bit


def layer_and_batch(dtype=np.float64, seed=0):
    """A relu Dense(6, 9) and a batch ``X`` ``(13, 6)`` of standard normals, both of ``dtype``."""
    layer = jn.Dense(6, 9, "relu", seed=seed, dtype=dtype)
    return layer, np.random.default_rng(seed + 1).standard_normal((13, 6)).astype(dtype)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_backward_batch_without_input_gradient_gives_the_same_parameter_gradients(dtype):
    layer, X = layer_and_batch(dtype)
    _, ctx = layer.forward_batched(X)
    G = np.random.default_rng(2).standard_normal((13, layer.n_out)).astype(dtype)
    dX, full = layer.backward_batched(G, ctx)
    none, only = layer.backward_batched(G, ctx, input_grad=False)
    assert none is None and dX.shape == X.shape  # the near miss: with input_grad, dX is there
    assert set(only) == set(full)
    for k in full:
        np.testing.assert_array_equal(only[k], full[k])


def test_per_sample_backward_without_input_gradient():
    layer, X = layer_and_batch()
    _, ctx = layer.forward_batched(X)
    G = np.random.default_rng(2).standard_normal((X.shape[0], layer.n_out))
    dX, full = layer.backward_batched(G, ctx, per_sample=True)
    none, part = layer.backward_batched(G, ctx, input_grad=False, per_sample=True)
    assert none is None and dX.shape == X.shape
    assert set(part) == {"W", "b"}
    for name in ("W", "b"):
        np.testing.assert_array_equal(part[name], full[name])
        np.testing.assert_allclose(
            full[name].sum(axis=0), layer.backward_batched(G, ctx)[1][name], rtol=1e-13, atol=1e-14
        )


@pytest.mark.parametrize("name", ["relu", "identity", "tanh", "softmax"])
def test_dense_in_place_activation_gives_the_out_of_place_backward(name):
    layer = jn.Dense(6, 5, name, init="xavier", seed=9)
    rng = np.random.default_rng(10)
    X, G = rng.standard_normal((7, 6)), rng.standard_normal((7, 5))
    Y, ctx = layer.forward_batched(X)
    Z = X @ layer.W + layer.b
    np.testing.assert_array_equal(Y, layer.activation.forward_batched(Z.copy()))
    dX, grads = layer.backward_batched(G, ctx)
    dX0, grads0 = layer.backward_batched(G, (X, Z, layer.activation.forward_batched(Z.copy())))
    np.testing.assert_array_equal(dX, dX0)
    for k in ("W", "b"):
        np.testing.assert_array_equal(grads[k], grads0[k])
    assert (ctx[1] is ctx[2]) == layer.activation.vjp_reads_output_only


@pytest.mark.parametrize("name", ["relu", "identity", "tanh", "softmax"])
def test_dense_backward_with_lent_arrays_equals_backward_batch(name):
    layer = jn.Dense(6, 5, name, init="xavier", seed=13)
    rng = np.random.default_rng(14)
    X, G = rng.standard_normal((7, 6)), rng.standard_normal((7, 5))
    _, ctx = layer.forward_batched(X)
    saved, G0 = [c.copy() for c in ctx], G.copy()
    dX, grads = layer.backward_batched(G, ctx)
    lender = jn.Workspace().lender(0)
    dX2, grads2 = layer.backward_batched(G, ctx, out=lender)
    np.testing.assert_array_equal(dX, dX2)
    assert dX2 is lender.array("dX", X.shape, X.dtype)  # the lent array, not a new one
    for k in ("W", "b"):
        np.testing.assert_array_equal(grads[k], grads2[k])
    np.testing.assert_array_equal(G, G0)
    for c, c0 in zip(ctx, saved):
        np.testing.assert_array_equal(c, c0)  # neither G nor the context is overwritten


# --------------------------------------------------------------------------- kinks, both paths


@pytest.mark.parametrize("name, slope", [("relu", 0.0), ("leaky_relu", 0.01)])
def test_pre_activation_exactly_zero_takes_the_left_branch_on_both_paths(name, slope):
    """W and b chosen so that unit 0's pre-activation is exactly 0 for sample 0 (and +2^-30, the near
    miss, for sample 1): the reference ``jacobian_x`` and ``backward`` and the batched
    ``backward_batched`` (dX and per-sample dW, db) all use the slope of the ``z <= 0`` branch there,
    the left FD derivative; at +2^-30 they use slope 1."""
    W = np.array([[1.0, 0.5], [0.5, 2.0]])  # n = 2, m = 2; unit 0's weights positive: a step of
    b = np.array([-1.5, 0.25])  # any x_j to the left is a step of z_0 to the left
    layer = Dense.from_params(W, b, name)
    X = np.array([[1.0, 1.0], [1.0 + 2.0**-30, 1.0]])  # z_0 = x_0 + x_1 / 2 - 3/2: 0 and 2^-30, exactly
    G = np.ones((2, 2))
    _, ctx = layer.forward_batched(X)
    dX, grads = layer.backward_batched(G, ctx, per_sample=True)
    for k, d0 in ((0, slope), (1, 1.0)):
        x = X[k][:, None]
        Jx = layer.jacobian_x(x)
        np.testing.assert_array_equal(Jx[0], d0 * W[:, 0])
        dx_ref, g_ref = layer.backward(G[k][None], layer.forward(x)[1])
        np.testing.assert_allclose(dX[k], dx_ref[0], rtol=1e-15, atol=0)
        assert grads["b"][k][0] == g_ref["b"][0] == d0
        np.testing.assert_allclose(grads["W"][k], g_ref["W"], rtol=1e-15, atol=0)
    left = fd_jacobian(lambda v: layer.forward_batched(v[None, :])[0][0], X[0], step_direction=-1)
    c = compare(f"{name} dy/dx at the kink", layer.jacobian_x_batched(X[:1])[0], left.df, err=left.error)
    assert c.passed, c


# --------------------------------------------------------------------------- initialisation and seeding


@pytest.mark.parametrize(
    "init, std",
    [("normal", lambda n, m: 1.0), ("xavier", lambda n, m: np.sqrt(2 / (n + m))), ("he", lambda n, m: np.sqrt(2 / n))],
)
def test_init_scales(init, std):
    W = jn.init_weights(400, 300, init, np.random.default_rng(0))
    assert W.std() == pytest.approx(std(400, 300), rel=0.01, abs=0)
    assert abs(W.mean()) < 0.01 * std(400, 300)


def test_scaled_normal_and_seeding():
    W1 = jn.init_weights(50, 40, "scaled_normal", np.random.default_rng(3), weight_scale=1e-2)
    W2 = jn.Dense(50, 40, init="scaled_normal", weight_scale=1e-2, seed=3).W
    np.testing.assert_array_equal(W1, W2)
    assert W1.std() == pytest.approx(1e-2, rel=0.05, abs=0)
    with pytest.raises(ValueError, match="weight_scale: required"):
        jn.init_weights(2, 2, "scaled_normal", np.random.default_rng(0))
    with pytest.raises(ValueError, match="init: expected one of"):
        jn.init_weights(2, 2, "glorot_magic", np.random.default_rng(0))


def test_global_random_state_is_untouched():
    np.random.seed(123)
    expected = np.random.random()
    np.random.seed(123)
    jn.Network.build([3, 4, 2], seed=None)
    jn.Dense(3, 3, seed=7)
    assert np.random.random() == expected


# --------------------------------------------------------------------------- bad input


def test_per_sample_methods_check_unless_told_not_to():
    layer = jn.Dense(3, 2, seed=0)
    with pytest.raises(ValueError, match=r"x: expected finite"):
        layer.forward(np.array([[1.0], [np.nan], [0.0]]))
    with pytest.raises(ValueError, match=r"x: expected shape \(3, 1\)"):
        layer.forward(np.ones((2, 1)))
    _, ctx = layer.forward(np.ones((3, 1)))
    with pytest.raises(ValueError, match=r"grad_y: expected finite"):
        layer.backward(np.array([[np.inf, 0.0]]), ctx)
    y, _ = layer.forward(np.array([[1], [2], [3]]))  # integers converted on purpose
    assert y.dtype == np.float64
    y2, _ = layer.forward(np.array([[1.0], [2.0], [3.0]]), check=False)  # the driver's own column
    np.testing.assert_array_equal(y, y2)
