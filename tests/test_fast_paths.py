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
    Y_onehot = np.eye(5, dtype=dtype)[Y]
    value, grad = loss.forward_and_gradient_batch(Z, Y_onehot)   # label matrix: the same operations
    assert value == loss.forward_batch(Z, Y_onehot)
    np.testing.assert_array_equal(grad, loss.gradient_batch(Z, Y_onehot))
    # integer indices: no one-hot matrix; the same gradient, the loss summed without the zero terms
    value_i, grad_i = loss.forward_and_gradient_batch(Z, Y)
    np.testing.assert_array_equal(grad_i, loss.gradient_batch(Z, Y))
    eps = np.finfo(dtype).eps
    assert abs(value_i - loss.forward_batch(Z, Y)) <= 16 * eps * abs(value)
    with pytest.raises(ValueError, match=r"Y: expected class indices in \[0, 5\)"):
        loss.forward_and_gradient_batch(Z, np.full(11, 5))
    with pytest.raises(ValueError, match=r"Y: expected 11 labels"):
        loss.forward_and_gradient_batch(Z, Y[:3])


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


def test_dense_sample_loops_equal_forward_and_backward_per_sample():
    layer = jn.Dense(5, 4, "tanh", init="xavier", seed=4)
    rng = np.random.default_rng(5)
    xs = [rng.standard_normal((5, 1)) for _ in range(6)]
    gs = [rng.standard_normal((1, 4)) for _ in range(6)]
    ys, ctxs = layer.forward_samples(xs)
    gxs, total = layer.backward_samples(gs, ctxs)
    dW, db = np.zeros_like(layer.W), np.zeros_like(layer.b)
    for x, g, y, gx in zip(xs, gs, ys, gxs):
        y1, ctx = layer.forward(x)
        gx1, grads = layer.backward(g, ctx)
        np.testing.assert_array_equal(y, y1)
        np.testing.assert_array_equal(gx, gx1)
        dW += grads["W"]
        db += grads["b"]
    np.testing.assert_array_equal(total["W"], dW)
    np.testing.assert_array_equal(total["b"], db)


def test_dense_sample_loops_name_the_bad_sample():
    layer = jn.Dense(3, 2, seed=0)
    xs = [np.ones((3, 1)), np.array([[1.0], [np.nan], [0.0]])]
    with pytest.raises(ValueError, match=r"xs\[1\].*finite"):
        layer.forward_samples(xs)
    with pytest.raises(ValueError, match=r"xs\[0\].*\(3, 1\)"):
        layer.forward_samples([np.ones((1, 3))])
    _, ctxs = layer.forward_samples([np.ones((3, 1))])
    with pytest.raises(ValueError, match=r"grad_ys\[0\].*finite"):
        layer.backward_samples([np.array([[np.inf, 0.0]])], ctxs)
    ys, _ = layer.forward_samples([np.array([[1], [2], [3]])])   # integers converted on purpose
    assert ys[0].dtype == np.float64


def test_fused_softmax_cross_entropy_call_is_bitwise_the_pair():
    loss = jn.SoftmaxCrossEntropy()
    z = np.array([[3.0], [-1.0], [0.5], [20.0]])
    value, row = loss(z, 2)
    assert value == loss.forward(z, 2)
    np.testing.assert_array_equal(row, loss.gradient(z, 2))


@pytest.mark.parametrize("soft", [True, False])
@pytest.mark.parametrize("loss", [jn.SoftmaxCrossEntropy(), jn.MeanSquaredError()])
def test_loss_sample_loop_is_bitwise_the_per_sample_call(loss, soft):
    rng = np.random.default_rng(7)
    zs = [rng.standard_normal((4, 1)) * 5 for _ in range(9)]
    zs[2][1, 0] = 800.0   # a probability that rounds to 1: loss 0 for class 1
    ys = [np.eye(4)[[k % 4]].T for k in range(9)]
    if soft:
        ys[3] = np.array([[0.25], [0.25], [0.5], [0.0]])   # a soft label: not all one-hot
    total, rows = loss.forward_and_gradient_samples(zs, ys)
    expected = 0.0
    for z, y, row in zip(zs, ys, rows):
        value, row1 = loss(z, y)
        expected += value
        np.testing.assert_array_equal(row, row1)
    assert total == expected


def test_softmax_cross_entropy_sample_loop_refuses_as_the_per_sample_call():
    loss = jn.SoftmaxCrossEntropy()
    good = np.array([[1.0], [2.0], [0.0]])
    onehot = np.array([[0.0], [1.0], [0.0]])
    with pytest.raises(ValueError, match=r"^z: expected finite"):
        loss.forward_and_gradient_samples([good, np.array([[1.0], [np.inf], [0.0]])], [onehot, onehot])
    with pytest.raises(ValueError, match=r"^y: expected probabilities summing to 1"):
        loss.forward_and_gradient_samples([good, good], [onehot, 0.5 * onehot])
    with pytest.raises(ValueError, match=r"ys: expected 2 label columns"):
        loss.forward_and_gradient_samples([good, good], [onehot])
    # m = 1 takes the per-column path (a single class: loss 0, gradient 0)
    total, rows = loss.forward_and_gradient_samples([np.array([[3.0]])], [np.array([[1.0]])])
    assert total == 0.0 and rows[0].shape == (1, 1)


@pytest.mark.parametrize("sizes, hidden, N", [
    ([5, 7, 6, 4], ["tanh", "softmax"], 9),     # softmax layer pulled back by the dense matmul path
    ([5, 7, 6, 4], ["relu", "elu"], 9),         # last two layers as one GEMM, the first pulled back
    ([4, 12, 3], ["sigmoid"], 5),               # m_{L-1} = 12 > N = 5: the row pull-back instead
    ([4, 3], [], 6),                            # one layer
])
def test_input_jacobian_batched_forms_equal_the_reference(sizes, hidden, N):
    rng = np.random.default_rng(3)
    layers = [jn.Dense(n, m, (hidden + ["identity"])[i], init="xavier", seed=rng)
              for i, (n, m) in enumerate(zip(sizes[:-1], sizes[1:]))]
    net = jn.Network(layers, "mse")
    X = rng.standard_normal((N, sizes[0]))
    ref = np.stack([net.input_jacobian(X[k][:, None]) for k in range(N)])
    J = net.input_jacobian_batched(X)
    assert J.shape == ref.shape
    np.testing.assert_allclose(J, ref, rtol=1e-12, atol=1e-14)


def test_dense_input_vjp_rows_batch_is_rows_times_the_jacobian():
    layer = jn.Dense(5, 4, "tanh", init="xavier", seed=2)
    rng = np.random.default_rng(6)
    X, P = rng.standard_normal((3, 5)), rng.standard_normal((3, 2, 4))
    expected = np.matmul(P, layer.jacobian_x_batch(X))
    np.testing.assert_allclose(layer.input_vjp_rows_batch(P, X), expected, rtol=1e-13, atol=1e-15)
    P_copy = P.copy()
    layer.input_vjp_rows_batch(P, X)
    np.testing.assert_array_equal(P, P_copy)   # the input is not modified
    with pytest.raises(ValueError, match=r"P: expected shape \(3, r, 4\)"):
        layer.input_vjp_rows_batch(P[:, :, :3], X)


def test_first_layer_per_sample_param_grads_equal_per_sample_backward_batch():
    net, X, _ = _problem()
    layer = net.layers[0]
    _, cache = layer.forward_batch(X)
    G = np.random.default_rng(2).standard_normal((X.shape[0], layer.n_out))
    full = layer.per_sample_backward_batch(G, cache)[1]
    part = layer.per_sample_param_grads_batch(G, cache)
    assert set(part) == {"W", "b"}
    for name in ("W", "b"):
        np.testing.assert_array_equal(part[name], full[name])


def test_all_finite_is_exactly_the_entrywise_test():
    from jacobian_nn._validation import all_finite
    rng = np.random.default_rng(8)
    for dtype in (np.float64, np.float32):
        base = rng.standard_normal((64, 40)).astype(dtype)
        cases = [base, np.clip(base, -1, 1) * (np.finfo(dtype).max / 4),   # finite; the sum of squares overflows
                 base[:, ::2], np.zeros((0, 3), dtype), base[:3, :3]]   # strided, empty, small
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
    Y, cache = layer.forward_batch(X)
    Z = X @ layer.W + layer.b
    np.testing.assert_array_equal(Y, layer.activation.forward_batch(Z.copy()))
    dX, grads = layer.backward_batch(G, cache)
    dX0, grads0 = layer.backward_batch(G, (X, Z, layer.activation.forward_batch(Z.copy())))
    np.testing.assert_array_equal(dX, dX0)
    for k in ("W", "b"):
        np.testing.assert_array_equal(grads[k], grads0[k])
    assert (cache[1] is cache[2]) == layer.activation.vjp_reads_output_only


def test_reference_loop_refuses_an_overflowing_hidden_layer_by_name():
    big = jn.Dense.from_params(np.full((2, 3), 1e300), np.zeros(3), "relu")
    out = jn.Dense.from_params(np.ones((3, 2)), np.zeros(2), "identity")
    net = jn.Network([big, out], "softmax_cross_entropy")
    with pytest.raises(ValueError, match=r"xs\[0\].*finite"), np.errstate(over="ignore"):
        net.loss_and_gradients(np.array([[1e10, 1e10]]), np.array([0]))


def test_network_sample_methods_equal_the_public_ones():
    layer = jn.Dense(5, 4, "relu", init="he", seed=11)
    rng = np.random.default_rng(12)
    xs = [rng.standard_normal((5, 1)) for _ in range(5)]
    gs = [rng.standard_normal((1, 4)) for _ in range(5)]
    ys, ctxs = layer.forward_samples(xs)
    ys2, ctxs2 = layer._forward_samples_from_network(xs, "train")
    gx, tot = layer.backward_samples(gs, ctxs)
    gx2, tot2 = layer._backward_samples_from_network(gs, ctxs2)
    for a, b in zip(ys + gx + [tot["W"], tot["b"]], ys2 + gx2 + [tot2["W"], tot2["b"]]):
        np.testing.assert_array_equal(a, b)
    bad = gs[:2] + [np.array([[0.0, np.nan, 0.0, 0.0]])]
    with pytest.raises(ValueError, match=r"grad_ys\[2\].*finite"):
        layer._backward_samples_from_network(bad, ctxs[:3])


@pytest.mark.parametrize("name", ["relu", "identity", "tanh", "softmax"])
def test_dense_overwrite_backward_equals_backward_batch(name):
    layer = jn.Dense(6, 5, name, init="xavier", seed=13)
    rng = np.random.default_rng(14)
    X, G = rng.standard_normal((7, 6)), rng.standard_normal((7, 5))
    _, cache = layer.forward_batch(X)
    saved = [c.copy() for c in cache]
    dX, grads = layer.backward_batch(G, cache)
    dX2, grads2 = layer._backward_batch_overwrite(G.copy(), cache)
    grads3 = layer._param_grads_batch_overwrite(G.copy(), cache)
    np.testing.assert_array_equal(dX, dX2)
    for k in ("W", "b"):
        np.testing.assert_array_equal(grads[k], grads2[k])
        np.testing.assert_array_equal(grads[k], grads3[k])
    for c, c0 in zip(cache, saved):
        np.testing.assert_array_equal(c, c0)   # only G may be overwritten, never the cache


def test_batched_gradients_leave_inputs_unchanged():
    net, X, y = _problem()
    X0, y0 = X.copy(), y.copy()
    net.copy().train_step_batched(X, y, 0.1)
    net.loss_and_gradients_batched(X, y)
    np.testing.assert_array_equal(X, X0)
    np.testing.assert_array_equal(y, y0)
