"""Seed 004's FullyConnectedNet: structure, L2, flattening, both paths, training with batch norm."""

import numpy as np
import pytest
from hypothesis import given, strategies as st
from support import bn_dropout_case

from jacobian_nn import data
from jacobian_nn.crosscheck import cross_check
from jacobian_nn.fcnet import FullyConnectedNet, flatten_input
from jacobian_nn.fd import compare, fd_loss_gradient
from jacobian_nn.normalization import ActivationLayer, BatchNorm, Dropout, same_randomness

#: Two copies of one network trained by the two paths (same masks, same batches) stay this close.
TRAIN_AGREE_ATOL = 1e-8


def test_structure_names_and_seed004_initialisation():
    net = FullyConnectedNet(
        [6, 5], input_dim=4, num_classes=3, dropout=0.2, use_batchnorm=True, weight_scale=0.05, seed=0
    )
    kinds = [type(layer).__name__ for layer in net.layers]
    assert kinds == ["Dense", "BatchNorm", "ActivationLayer", "Dropout"] * 2 + ["Dense"]
    assert list(net.named_params) == ["W1", "b1", "gamma1", "beta1", "W2", "b2", "gamma2", "beta2", "W3", "b3"]
    p = net.named_params
    assert p["W1"].shape == (4, 6) and p["W3"].shape == (5, 3)
    np.testing.assert_array_equal(p["gamma1"], 1.0)
    np.testing.assert_array_equal(p["beta2"], 0.0)
    np.testing.assert_array_equal(p["b3"], 0.0)
    assert p["W1"] is net.layers[0].W  # live arrays
    plain = FullyConnectedNet([6], input_dim=4, num_classes=3, seed=0)
    assert [type(layer).__name__ for layer in plain.layers] == ["Dense", "Dense"]
    assert plain.layers[0].activation.name == "relu" and plain.num_layers == 2
    big = FullyConnectedNet([400], input_dim=300, num_classes=2, weight_scale=0.05, seed=1)
    assert big.named_params["W1"].std() == pytest.approx(0.05, rel=0.01)


def test_l2_is_half_reg_sum_w_squared_on_weights_only():
    net = FullyConnectedNet([5, 4], input_dim=3, num_classes=2, use_batchnorm=True, reg=0.3, weight_scale=0.5, seed=2)
    for p in net.params:
        for v in p.values():
            v[...] = np.random.default_rng(v.size).normal(size=v.shape)  # gamma, beta, b nonzero too
    Ws = [v for k, v in net.named_params.items() if k.startswith("W")]
    assert net.penalty() == pytest.approx(0.5 * 0.3 * sum(np.sum(W * W) for W in Ws), rel=1e-14)
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(6, 3)), rng.integers(0, 2, 6)
    with same_randomness(net, 6):
        _, g_reg = net.loss_and_gradients_batched(X, Y)
        net.l2 = 0.0
        _, g0 = net.loss_and_gradients_batched(X, Y)
    for name, v in net.named_params.items():
        diff = net.named_gradients(g_reg)[name] - net.named_gradients(g0)[name]
        expected = 0.3 * v if name.startswith("W") else np.zeros_like(v)
        np.testing.assert_allclose(diff, expected, rtol=1e-12, atol=1e-15)


def test_inputs_are_flattened_as_affine_forward():
    rng = np.random.default_rng(1)
    net = FullyConnectedNet([5], input_dim=12, num_classes=3, use_batchnorm=True, weight_scale=0.3, seed=3)
    X4 = rng.normal(size=(4, 3, 2, 2))
    X2 = X4.reshape(4, -1)
    assert flatten_input(X4).shape == (4, 12)
    np.testing.assert_array_equal(net.predict_batched(X4), net.predict_batched(X2))
    np.testing.assert_array_equal(net.predict(X4), net.predict(X2))
    Y = rng.integers(0, 3, 4)
    with same_randomness(net, 4):
        l4, g4 = net.loss_and_gradients(X4, Y)
        l2, g2 = net.loss_and_gradients(X2, Y)
    assert l4 == l2
    with pytest.raises(ValueError, match="X: expected 12 features"):
        net.predict_batched(rng.normal(size=(4, 3, 3)))


@given(st.booleans(), st.sampled_from([0.0, 0.25, 0.5]), st.integers(2, 6), st.integers(0, 2**31 - 1))
def test_paths_agree_on_batchnorm_and_dropout_nets(use_bn, p, N, seed):
    net, X, Y = bn_dropout_case(seed, p, N, use_bn)
    report = cross_check(net, X, Y)
    assert report.passed, str(report)


@pytest.mark.parametrize("mode", ["train", "test"])
def test_reference_gradient_matches_fd_with_batchnorm_and_dropout(mode):
    rng = np.random.default_rng(5)
    net = FullyConnectedNet(
        [4, 4], input_dim=3, num_classes=3, dropout=0.3, use_batchnorm=True, reg=0.05, weight_scale=0.5, seed=9
    )
    for p in net.params:
        for name, v in p.items():
            if name in ("b", "beta"):
                v[:] = rng.normal(scale=0.3, size=v.shape)  # keep ReLU inputs off the kink
    for layer in net.layers:
        if isinstance(layer, BatchNorm):
            layer.running_var[:] = 1.0
    X, Y = rng.normal(size=(5, 3)), rng.integers(0, 3, 5)
    with same_randomness(net, 5):
        _, g = net.loss_and_gradients(X, Y, mode)
        fd = fd_loss_gradient(net, X, Y, mode)
    c = compare(mode, net.flatten_gradients(g)[None], fd.df, err=fd.error)
    assert c.passed, c


def test_seed_loss_interface():
    rng = np.random.default_rng(6)
    net = FullyConnectedNet([4], input_dim=3, num_classes=2, use_batchnorm=True, seed=1)
    X, y = rng.normal(size=(5, 3)), rng.integers(0, 2, 5)
    assert net.seed_loss(X).shape == (5, 2)
    with same_randomness(net, 5):
        loss, grads = net.seed_loss(X, y)
        l_ref, g_ref = net.loss_and_gradients(X, y)
    assert set(grads) == {"W1", "b1", "gamma1", "beta1", "W2", "b2"}
    assert loss == pytest.approx(l_ref, rel=1e-13)
    np.testing.assert_allclose(grads["gamma1"], g_ref[1]["gamma"], rtol=1e-11, atol=1e-14)


@pytest.mark.parametrize(
    "kw, err, match",
    [
        ({"dropout": 1.0}, ValueError, r"dropout: expected a drop probability in \[0, 1\)"),
        ({"dropout": -0.5}, ValueError, "dropout"),
        ({"reg": -1.0}, ValueError, "reg"),
        ({"weight_scale": 0.0}, ValueError, "weight_scale"),
        ({"hidden_dims": [4, 0]}, ValueError, r"hidden_dims\[1\]"),
        ({"dtype": np.int32}, TypeError, "dtype"),
    ],
)
def test_bad_arguments(kw, err, match):
    args = dict(hidden_dims=[4], input_dim=3, num_classes=2)
    args.update(kw)
    with pytest.raises(err, match=match):
        FullyConnectedNet(**args)


def test_single_sample_backward_refused_with_batchnorm_but_forward_fine():
    net = FullyConnectedNet([4], input_dim=3, num_classes=2, use_batchnorm=True, seed=1)
    assert net.forward(np.ones((3, 1))).shape == (2, 1)
    with pytest.raises(ValueError, match="N >= 2"):
        net.backward(np.ones((3, 1)), 0)


def test_float32_batched_path_runs():
    net = FullyConnectedNet([4], input_dim=3, num_classes=2, use_batchnorm=True, dropout=0.2, dtype=np.float32, seed=1)
    X = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    loss, grads = net.loss_and_gradients_batched(X, [0, 1, 0, 1, 1])
    assert all(v.dtype == np.float32 for g in grads for v in g.values())
    assert np.isfinite(loss)


# --------------------------------------------------------------------------- training, deep nets


def sgd(net, X, y, *, path, steps, lr, batch, seed):
    """Plain SGD with minibatches drawn from ``seed``; returns the list of batch losses."""
    rng = np.random.default_rng(seed)
    step = net.loss_and_gradients if path == "reference" else net.loss_and_gradients_batched
    losses = []
    for _ in range(steps):
        idx = rng.choice(X.shape[0], size=batch, replace=False)
        loss, grads = step(X[idx], y[idx])
        net.apply_update([{k: -lr * v for k, v in g.items()} for g in grads])
        losses.append(loss)
    return losses


def deep_net(n_in, n_out, seed, dropout=0.0):
    return FullyConnectedNet(
        [16] * 5,
        input_dim=n_in,
        num_classes=n_out,
        use_batchnorm=True,
        dropout=dropout,
        weight_scale=0.3,
        reg=1e-4,
        seed=seed,
    )


@pytest.fixture(scope="module")
def spiral():
    return data.spiral(n_per_class=100, seed=0)


def test_deep_batchnorm_net_trains_on_spiral_batched(spiral):
    net = deep_net(2, 3, seed=0)
    sgd(net, spiral.X_train, spiral.y_train, path="batched", steps=600, lr=0.2, batch=32, seed=1)
    assert net.accuracy_batched(spiral.X_train, spiral.y_train) > 0.9
    assert net.accuracy_batched(spiral.X_val, spiral.y_val) > 0.8


@pytest.mark.parametrize("dropout", [0.0, 0.1])
def test_deep_batchnorm_net_both_paths_agree_on_spiral(spiral, dropout):
    """Two copies of one 5-hidden-layer batch-norm net, one trained by each path on the same
    minibatches (the copies' dropout Generators are in the same state, so they draw the same masks)."""
    a = deep_net(2, 3, seed=4, dropout=dropout)
    b = a.copy()
    la = sgd(a, spiral.X_train, spiral.y_train, path="reference", steps=25, lr=0.2, batch=16, seed=2)
    lb = sgd(b, spiral.X_train, spiral.y_train, path="batched", steps=25, lr=0.2, batch=16, seed=2)
    np.testing.assert_allclose(la, lb, rtol=1e-9)
    assert la[-1] < la[0]
    np.testing.assert_allclose(a.flat_params(), b.flat_params(), rtol=0, atol=TRAIN_AGREE_ATOL)
    for la_, lb_ in zip(a.layers, b.layers):
        if isinstance(la_, BatchNorm):
            np.testing.assert_allclose(la_.running_mean, lb_.running_mean, atol=TRAIN_AGREE_ATOL)
            np.testing.assert_allclose(la_.running_var, lb_.running_var, atol=TRAIN_AGREE_ATOL)
    X = spiral.X_val
    np.testing.assert_allclose(a.predict(X), b.predict_batched(X), atol=1e-7)


def test_deep_batchnorm_net_trains_on_digits_both_paths():
    pytest.importorskip("sklearn")
    ds = data.digits(seed=0)
    a = deep_net(ds.n_features, ds.n_classes, seed=5)
    b = a.copy()
    sgd(b, ds.X_train, ds.y_train, path="batched", steps=300, lr=0.1, batch=64, seed=3)
    assert b.accuracy_batched(ds.X_val, ds.y_val) > 0.85
    la = sgd(a, ds.X_train, ds.y_train, path="reference", steps=10, lr=0.1, batch=32, seed=4)
    c = deep_net(ds.n_features, ds.n_classes, seed=5)
    lc = sgd(c, ds.X_train, ds.y_train, path="batched", steps=10, lr=0.1, batch=32, seed=4)
    np.testing.assert_allclose(la, lc, rtol=1e-9)
    np.testing.assert_allclose(a.flat_params(), c.flat_params(), atol=TRAIN_AGREE_ATOL)


def test_activation_layer_matches_dense_relu():
    rng = np.random.default_rng(2)
    layer = ActivationLayer(4, "relu")
    Z, G = rng.normal(size=(3, 4)), rng.normal(size=(3, 4))
    A, ctx = layer.forward_batched(Z)
    np.testing.assert_array_equal(A, np.maximum(Z, 0))
    np.testing.assert_array_equal(layer.backward_batched(G, ctx)[0], np.where(Z > 0, G, 0.0))
    y, ctx = layer.forward(Z[0][:, None])
    np.testing.assert_array_equal(layer.backward(G[0][None], ctx)[0], np.where(Z[0] > 0, G[0], 0.0)[None])
    assert isinstance(Dropout(2, 0.1), Dropout)


@pytest.mark.parametrize("path", ["reference", "batched"])
@pytest.mark.parametrize("bad", ["index out of range", "not probabilities", "wrong count"])
def test_bad_labels_are_refused_before_any_state_changes(path, bad):
    """Validate, then act: a label error leaves batch norm's running statistics and the dropout
    Generators as they were, on both paths (the forward would have updated both)."""
    net = FullyConnectedNet([4], input_dim=3, num_classes=3, use_batchnorm=True, dropout=0.3, seed=0)
    X = np.random.default_rng(0).standard_normal((5, 3))
    Y = {
        "index out of range": np.array([0, 1, 2, 3, 0]),
        "not probabilities": 0.5 * np.eye(3)[[0, 1, 2, 0, 1]],
        "wrong count": np.eye(3)[[0, 1]],
    }[bad]
    calls = {
        "reference": [net.loss_and_gradients],
        "batched": [
            net.loss_and_gradients_batched,
            net.per_sample_losses_batched,
            lambda X, Y: net.train_step_batched(X, Y, 0.1),
        ],
    }[path]
    bn, drop = net.layers[1], net.layers[3]
    for call in calls:
        saved = (bn.running_mean.copy(), bn.running_var.copy(), drop.rng.bit_generator.state)
        with pytest.raises(ValueError, match=r"^Y: expected"):
            call(X, Y)
        assert np.array_equal(saved[0], bn.running_mean) and np.array_equal(saved[1], bn.running_var)
        assert saved[2] == drop.rng.bit_generator.state
    # the near miss: good labels do run the forward, which updates both
    calls[0](X, np.array([0, 1, 2, 0, 1]))
    assert not np.array_equal(saved[0], bn.running_mean) and saved[2] != drop.rng.bit_generator.state
