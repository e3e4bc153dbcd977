"""The speed-ups of the hot paths change no result (bench/ measures their speed, never these tests)."""

import numpy as np
import pytest

import jacobian_nn as jn
from support import cols


def _problem(dtype=np.float64, seed=0):
    net = jn.Network.build([6, 9, 7, 4], "relu", loss="softmax_cross_entropy", seed=seed, dtype=dtype)
    rng = np.random.default_rng(seed + 1)
    return net, rng.standard_normal((13, 6)).astype(dtype), rng.integers(0, 4, size=13)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_backward_batch_without_input_gradient_gives_the_same_parameter_gradients(dtype):
    net, X, _ = _problem(dtype)
    layer = net.layers[0]
    _, ctx = layer.forward_batched(X)
    G = np.random.default_rng(2).standard_normal((13, layer.n_out)).astype(dtype)
    dX, full = layer.backward_batched(G, ctx)
    none, only = layer.backward_batched(G, ctx, input_grad=False)
    assert none is None and dX.shape == X.shape  # the near miss: with input_grad, dX is there
    assert set(only) == set(full)
    for k in full:
        np.testing.assert_array_equal(only[k], full[k])


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
        net.train_step_batched(1e6 * X, y, 1e308)  # lr * gradient overflows to inf
    for p, p0 in zip(net.params, before):
        for k in p:
            np.testing.assert_array_equal(p[k], p0[k])


def test_reference_driver_is_the_public_per_sample_methods_chained():
    """The reference driver checks once and then calls each layer's public forward/backward
    (check=False) and the loss's __call__: the same numbers as chaining them by hand."""
    net = jn.Network.build([5, 4, 3], "tanh", seed=4, l2=0.0)
    rng = np.random.default_rng(5)
    X, y = rng.standard_normal((6, 5)), rng.integers(0, 3, 6)
    loss, grads = net.loss_and_gradients(X, y)
    total, sums = 0.0, [{k: np.zeros_like(v) for k, v in p.items()} for p in net.params]
    for k in range(6):
        x, ctxs = X[k][:, None], []
        for layer in net.layers:
            x, ctx = layer.forward(x)
            ctxs.append(ctx)
        value, row = net.loss(x, int(y[k]))
        total += value
        for i in range(len(net.layers) - 1, -1, -1):
            row, g = net.layers[i].backward(row, ctxs[i])
            for name in g:
                sums[i][name] += g[name]
    assert loss == total / 6
    for g, s in zip(grads, sums):
        for name in g:
            np.testing.assert_array_equal(g[name], s[name] / 6)


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


def test_reference_driver_names_a_bad_input_row():
    net = jn.Network.build([3, 4, 2], "relu", seed=0)
    X = np.ones((4, 3))
    X[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"X: expected finite values, got nan at index \(2, 1\)"):
        net.loss_and_gradients(X, np.zeros(4, dtype=int))


@pytest.mark.parametrize(
    "sizes, hidden, N",
    [
        ([5, 7, 6, 4], ["tanh", "softmax"], 9),  # softmax layer pulled back by the dense matmul path
        ([5, 7, 6, 4], ["relu", "elu"], 9),  # last two layers as one GEMM, the first pulled back
        ([4, 12, 3], ["sigmoid"], 5),  # m_{L-1} = 12 > N = 5: the row pull-back instead
        ([4, 3], [], 6),  # one layer
    ],
)
def test_input_jacobian_batched_forms_equal_the_reference(sizes, hidden, N):
    rng = np.random.default_rng(3)
    layers = [
        jn.Dense(n, m, (hidden + ["identity"])[i], init="xavier", seed=rng)
        for i, (n, m) in enumerate(zip(sizes[:-1], sizes[1:]))
    ]
    net = jn.Network(layers, "mse")
    X = rng.standard_normal((N, sizes[0]))
    ref = np.stack([net.input_jacobian(x) for x in cols(X)])
    J = net.input_jacobian_batched(X)
    assert J.shape == ref.shape
    np.testing.assert_allclose(J, ref, rtol=1e-12, atol=1e-14)


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


def test_per_sample_backward_without_input_gradient():
    net, X, _ = _problem()
    layer = net.layers[0]
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


def test_all_finite_is_exactly_the_entrywise_test():
    from jacobian_nn._validation import all_finite

    rng = np.random.default_rng(8)
    for dtype in (np.float64, np.float32):
        base = rng.standard_normal((64, 40)).astype(dtype)
        cases = [
            base,
            np.clip(base, -1, 1) * (np.finfo(dtype).max / 4),  # finite; the sum of squares overflows
            base[:, ::2],
            np.zeros((0, 3), dtype),
            base[:3, :3],
        ]  # strided, empty, small
        for bad in (np.nan, np.inf, -np.inf):
            b = base.copy()
            b[17, 5] = bad
            cases.append(b)
        for a in cases:
            assert all_finite(a) == bool(np.isfinite(a).all())


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


def test_reference_loop_refuses_an_overflowing_hidden_layer_by_name():
    big = jn.Dense.from_params(np.full((2, 3), 1e300), np.zeros(3), "relu")
    out = jn.Dense.from_params(np.ones((3, 2)), np.zeros(2), "identity")
    net = jn.Network([big, out], "softmax_cross_entropy")
    with pytest.raises(ValueError, match=r"^X: .*layers\[0\] .*for sample 0 is not finite"), np.errstate(over="ignore"):
        net.loss_and_gradients(np.array([[1e10, 1e10]]), np.array([0]))
    # the near miss: the same network on a small input passes
    net.loss_and_gradients(np.array([[-1.0, -1.0]]), np.array([0]))


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


def test_batched_gradients_leave_inputs_unchanged():
    net, X, y = _problem()
    X0, y0 = X.copy(), y.copy()
    net.copy().train_step_batched(X, y, 0.1)
    net.loss_and_gradients_batched(X, y)
    np.testing.assert_array_equal(X, X0)
    np.testing.assert_array_equal(y, y0)
