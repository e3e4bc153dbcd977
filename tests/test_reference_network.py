"""Reference network: parameter gradients and input Jacobians against FD, training, penalties, bad input.

The dense layer's own Jacobians are in ``test_dense.py``."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import jacobian_nn as jn
from support import cols, layers_copy, same_layers
from jacobian_nn.fd import compare, fd_jacobian, fd_loss_gradient


# --------------------------------------------------------------------------- network


def _random_net(draw_seed, sizes, act, loss, **kw):
    net = jn.Network.build(sizes, act, loss=loss, seed=draw_seed, init="xavier", **kw)
    rng = np.random.default_rng(draw_seed + 1)
    for p in net.params:
        p["b"][:] = rng.normal(scale=0.3, size=p["b"].shape)
    return net


@given(
    seed=st.integers(0, 10**6),
    depth=st.integers(1, 3),
    width=st.integers(1, 5),
    act=st.sampled_from(["sigmoid", "tanh", "elu", "identity"]),
    loss=st.sampled_from(["softmax_cross_entropy", "cross_entropy", "mse"]),
    l2=st.sampled_from([0.0, 0.1]),
    l1=st.sampled_from([0.0, 0.05]),
    bias=st.booleans(),
    N=st.integers(1, 4),
)
def test_network_parameter_gradients_match_fd(seed, depth, width, act, loss, l2, l1, bias, N):
    sizes = [3] + [width] * (depth - 1) + [3]
    net = _random_net(seed, sizes, act, loss, l2=l2, l1=l1, regularize_bias=bias)
    rng = np.random.default_rng(seed + 2)
    X = rng.normal(size=(N, 3))
    Y = rng.integers(0, 3, size=N)
    loss_value, grads = net.loss_and_gradients(X, Y)
    if l1:  # |w| has a kink at 0; the parameters are drawn continuous, so none is within a step of it
        assert np.min(np.abs(net.flat_params())) > 0
    fd = fd_loss_gradient(net, X, Y)
    c = compare("dL/dtheta", jn.Network.flatten_gradients(grads)[None, :], fd.df, err=fd.error)
    assert c.passed, c
    assert loss_value == pytest.approx(net.loss_and_gradients_batched(X, Y)[0], rel=1e-14, abs=0)


@given(seed=st.integers(0, 10**6), N=st.integers(1, 6))
def test_train_batch_is_mean_of_per_sample_gradients(seed, N):
    net = _random_net(seed, [4, 6, 3], "tanh", "softmax_cross_entropy", l2=0.01)
    rng = np.random.default_rng(seed)
    X, Y = rng.normal(size=(N, 4)), rng.integers(0, 3, size=N)
    per = [net.backward(x, int(y))[1] for x, y in zip(cols(X), Y)]
    _, batch = net.loss_and_gradients(X, Y)
    for i, g in enumerate(batch):
        for name in g:
            mean = sum(p[i][name] for p in per) / N
            np.testing.assert_allclose(g[name], mean, rtol=1e-13, atol=1e-16)
    # and train_batch applies exactly -lr times that mean
    before = net.flat_params()
    net.train_batch(X, Y, lr=0.5)
    np.testing.assert_allclose(
        net.flat_params(), before - 0.5 * jn.Network.flatten_gradients(batch), rtol=1e-15, atol=1e-16
    )


def test_fused_and_chained_softmax_cross_entropy_networks_agree():
    fused = jn.Network.build([3, 5, 4], "tanh", loss="softmax_cross_entropy", seed=11)
    chained = jn.Network(
        [
            jn.Dense.from_params(fused.layers[0].W, fused.layers[0].b, "tanh"),
            jn.Dense.from_params(fused.layers[1].W, fused.layers[1].b, "softmax"),
        ],
        "cross_entropy",
    )
    X = np.random.default_rng(0).normal(size=(5, 3))
    Y = np.array([0, 3, 1, 1, 2])
    lf, gf = fused.loss_and_gradients(X, Y)
    lc, gc = chained.loss_and_gradients(X, Y)
    assert lf == pytest.approx(lc, rel=1e-14, abs=0)
    for a, b in zip(gf, gc):
        for k in a:
            np.testing.assert_allclose(a[k], b[k], rtol=1e-12, atol=1e-15)


def test_input_jacobian_is_product_of_layer_jacobians_and_matches_fd():
    net = _random_net(5, [3, 4, 5, 2], "tanh", "mse")
    x = np.array([[0.2], [-0.4], [1.1]])
    J = net.input_jacobian(x)
    assert J.shape == (2, 3)
    fd = fd_jacobian(lambda v: net.forward(v[:, None]), x)
    assert compare("dy/dx", J, fd.df, err=fd.error).passed


def test_l1_subgradient_at_zero_is_zero():
    net = jn.Network.build([2, 2], "identity", loss="mse", seed=0, l1=0.5)
    net.layers[0].W[...] = [[0.0, 1.0], [-2.0, 0.0]]
    _, grads = net.loss_and_gradients(np.zeros((1, 2)), np.zeros((1, 2)))
    np.testing.assert_array_equal(grads[0]["W"], 0.5 * np.array([[0.0, 1.0], [-1.0, 0.0]]))


def test_l2_penalty_value_and_bias_option():
    net = jn.Network.build([2, 2], "identity", loss="mse", seed=0, l2=0.2)
    W, b = net.layers[0].W, net.layers[0].b
    b[:] = [1.0, 2.0]
    assert net.penalty() == pytest.approx(0.1 * np.sum(W**2), rel=1e-15, abs=0)
    net.regularize_bias = True
    assert net.penalty() == pytest.approx(0.1 * (np.sum(W**2) + 5.0), rel=1e-15, abs=0)


def test_predict_accuracy_and_train_one():
    net = jn.Network.build([2, 16, 2], "tanh", seed=0)
    X = np.array([[-1.0, -1.0], [1.0, 1.0]] * 4)
    Y = np.array([0, 1] * 4)
    for _ in range(60):
        net.train_batch(X, Y, lr=0.5)
    assert net.accuracy(X, Y) == 1.0
    assert net.predict(X).shape == (8, 2)
    np.testing.assert_array_equal(net.predict_one(X[:1].T), net.predict(X[:1]).T)
    loss = net.train_one(X[0][:, None], 0, lr=0.1)
    assert np.isfinite(loss)


# --------------------------------------------------------------------------- bad input


BAD_X = [
    (np.ones((1, 3)), ValueError, r"x: expected a column vector of shape \(3, 1\), got shape \(1, 3\)"),
    (np.ones(3), ValueError, r"x: expected a column vector of shape \(3, 1\), got shape \(3,\)"),
    (np.ones((4, 1)), ValueError, r"x: expected shape \(3, 1\), got shape \(4, 1\)"),
    (np.array([[1.0], [np.nan], [0.0]]), ValueError, r"x: expected finite values, got nan at index \(1, 0\)"),
    (np.array([[1.0], [np.inf], [0.0]]), ValueError, r"x: expected finite values, got inf"),
    (
        np.array([[1], [2], [3]], dtype=object),
        TypeError,
        "x: expected a real floating or integer array, got dtype object",
    ),
    (np.ones((3, 1), dtype=np.float32), TypeError, "x: expected dtype float64, got float32"),
    (np.ones((3, 1), dtype=complex), TypeError, "x: expected a real floating or integer array, got dtype complex128"),
]


@pytest.mark.parametrize("x, err, msg", BAD_X)
def test_bad_single_sample(x, err, msg):
    net = jn.Network.build([3, 4, 2], seed=0)
    with pytest.raises(err, match=msg):
        net.forward(x)


def test_integer_input_is_converted_on_purpose():
    net = jn.Network.build([3, 4, 2], seed=0)
    np.testing.assert_array_equal(net.forward(np.array([[1], [2], [3]])), net.forward(np.array([[1.0], [2.0], [3.0]])))


@pytest.mark.parametrize(
    "X, Y, err, msg",
    [
        (np.ones((0, 3)), np.zeros(0, dtype=int), ValueError, r"X: expected a non-empty batch \(N >= 1\)"),
        (np.ones((2, 4)), [0, 1], ValueError, r"X: expected 3 features per sample, shape \(N, 3\), got shape \(2, 4\)"),
        (np.ones(3), [0], ValueError, "X: expected a 2-D batch"),
        (np.ones((2, 3)), [0, 1, 1], ValueError, r"Y: expected 2 labels \(one per sample\), got shape \(3,\)"),
        (np.ones((2, 3)), np.ones((2, 5)), ValueError, r"Y: expected labels of shape \(2, 2\)"),
        (np.ones((2, 3)), [0, 2], ValueError, r"Y: expected class indices in \[0, 2\)"),
        (np.ones((2, 3)), np.array([0.0, 1.0]), TypeError, "Y: a 1-D label array must hold integer class indices"),
    ],
)
def test_bad_batch(X, Y, err, msg):
    net = jn.Network.build([3, 4, 2], seed=0)
    with pytest.raises(err, match=msg):
        net.loss_and_gradients(X, Y)


def test_cross_entropy_network_refuses_impossible_labels():
    net = jn.Network.build([3, 2], "identity", loss="cross_entropy", seed=0)
    with pytest.raises(ValueError, match="y: expected probabilities summing to 1"):
        net.loss_and_gradients(np.ones((1, 3)), np.array([[0.7, 0.7]]))


@pytest.mark.parametrize("lr", [0.0, -1.0, float("nan"), "0.1"])
def test_failed_training_step_leaves_parameters_unchanged(lr):
    net = jn.Network.build([3, 4, 2], seed=0)
    before = layers_copy(net.params)
    with pytest.raises((ValueError, TypeError), match="lr"):
        net.train_batch(np.ones((2, 3)), [0, 1], lr)
    assert same_layers(before, net.params)


def test_failed_step_on_bad_labels_leaves_parameters_unchanged():
    net = jn.Network.build([3, 4, 2], seed=0)
    before = net.flat_params()
    with pytest.raises(ValueError):
        net.train_batch(np.ones((2, 3)), [0, 7], 0.1)
    with pytest.raises(ValueError):
        net.train_one(np.ones((3, 1)), 9, 0.1)
    with pytest.raises(ValueError, match="not finite"):
        net.apply_update([{"W": np.full((3, 4), np.nan), "b": np.zeros(4)}, {"W": np.zeros((4, 2)), "b": np.zeros(2)}])
    with pytest.raises(TypeError, match=r"steps\[1\]\['b'\]: expected dtype float64, got float32"):
        net.apply_update(
            [{"W": np.zeros((3, 4)), "b": np.zeros(4)}, {"W": np.zeros((4, 2)), "b": np.ones(2, dtype=np.float32)}]
        )
    np.testing.assert_array_equal(net.flat_params(), before)


@pytest.mark.parametrize(
    "build, msg",
    [
        (lambda: jn.Network([], "mse"), "layers: expected at least one layer"),
        (lambda: jn.Network([jn.Dense(2, 3), jn.Dense(4, 1)], "mse"), "layer 0 has 3 outputs but layer 1 expects 4"),
        (lambda: jn.Network([jn.Dense(2, 3, "softmax")], "softmax_cross_entropy"), "SoftmaxCrossEntropy takes logits"),
        (lambda: jn.Network.build([2, 3], l2=-1.0), "l2: expected a finite number >= 0"),
        (lambda: jn.Network.build([2, 3], "gelu"), "activation: expected one of"),
        (lambda: jn.Dense(0, 3), "n_in: expected a positive integer"),
    ],
)
def test_bad_construction(build, msg):
    with pytest.raises(ValueError, match=msg):
        build()
