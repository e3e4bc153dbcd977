"""The two network drivers: what they run and that their speed-ups change no result (bench/ measures
their speed, never these tests). The batched step is params - lr * gradients and writes nothing when
refused; the reference driver is the public per-sample methods chained, checks once and names a bad row;
the batched input Jacobian's forms equal the reference; ``all_finite`` is the entrywise test; inputs are
left unchanged. The per-layer variants (``input_grad=False``, in-place activations, lent arrays) are in
``test_dense.py``; the fused losses in ``test_losses.py``."""

import numpy as np
import pytest

import jacobian_nn as jn
from support import cols, layers_copy, same_layers


def _problem(dtype=np.float64, seed=0):
    net = jn.Network.build([6, 9, 7, 4], "relu", loss="softmax_cross_entropy", seed=seed, dtype=dtype)
    rng = np.random.default_rng(seed + 1)
    return net, rng.standard_normal((13, 6)).astype(dtype), rng.integers(0, 4, size=13)


def test_train_step_batched_is_params_minus_lr_times_gradients():
    net, X, y = _problem()
    before = layers_copy(net.params)
    loss_b, grads = net.copy().loss_and_gradients_batched(X, y)
    loss = net.train_step_batched(X, y, 0.25)
    assert loss == loss_b
    for p, p0, g in zip(net.params, before, grads):
        for k in p:
            np.testing.assert_array_equal(p[k], p0[k] + (-0.25 * g[k]))


def test_failed_batched_step_leaves_parameters_unchanged():
    net, X, y = _problem()
    before = layers_copy(net.params)
    with pytest.raises(ValueError, match="not finite"), np.errstate(over="ignore"):
        net.train_step_batched(1e6 * X, y, 1e308)  # lr * gradient overflows to inf
    assert same_layers(before, net.params)


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


def test_reference_loop_refuses_an_overflowing_hidden_layer_by_name():
    big = jn.Dense.from_params(np.full((2, 3), 1e300), np.zeros(3), "relu")
    out = jn.Dense.from_params(np.ones((3, 2)), np.zeros(2), "identity")
    net = jn.Network([big, out], "softmax_cross_entropy")
    with pytest.raises(ValueError, match=r"^X: .*layers\[0\] .*for sample 0 is not finite"), np.errstate(over="ignore"):
        net.loss_and_gradients(np.array([[1e10, 1e10]]), np.array([0]))
    # the near miss: the same network on a small input passes
    net.loss_and_gradients(np.array([[-1.0, -1.0]]), np.array([0]))


def test_batched_gradients_leave_inputs_unchanged():
    net, X, y = _problem()
    X0, y0 = X.copy(), y.copy()
    net.copy().train_step_batched(X, y, 0.1)
    net.loss_and_gradients_batched(X, y)
    np.testing.assert_array_equal(X, X0)
    np.testing.assert_array_equal(y, y0)
