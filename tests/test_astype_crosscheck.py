"""``Layer.astype`` / ``Network.astype`` and the float32 cross-check of networks with batch norm,
dropout and activation layers (the reference path runs on an exact float64 copy)."""

import numpy as np
import pytest

from jacobian_nn.crosscheck import cross_check
from jacobian_nn.fcnet import FullyConnectedNet
from jacobian_nn.layers import Dense
from jacobian_nn.network import Network
from jacobian_nn.normalization import ActivationLayer, BatchNorm, Dropout


def _fcnet32(seed=0):
    net = FullyConnectedNet(
        [6, 5],
        input_dim=4,
        num_classes=3,
        dropout=0.2,
        use_batchnorm=True,
        weight_scale=0.5,
        dtype=np.float32,
        seed=seed,
    )
    rng = np.random.default_rng(seed + 100)
    net.loss_and_gradients_batched(rng.normal(size=(8, 4)).astype(np.float32), rng.integers(0, 3, 8))
    for p in net.params:  # biases away from 0, gamma away from 1
        for k, v in p.items():
            if k != "W":
                v[...] = rng.uniform(0.5, 1.5, size=v.shape).astype(np.float32) * (1 if k == "gamma" else 0.3)
    return net


def test_network_astype_upcasts_params_and_state_exactly_and_keeps_everything_else():
    net = _fcnet32()
    before = [{k: v.copy() for k, v in d.items()} for d in net.params + net.state]
    up = net.astype(np.float64)
    assert type(up) is FullyConnectedNet and up.dtype == np.float64 and net.dtype == np.float32
    assert [type(l) for l in up.layers] == [type(l) for l in net.layers]
    assert all(np.dtype(l.dtype) == np.float64 for l in up.layers)
    for orig, copy, old in zip(net.params + net.state, up.params + up.state, before):
        for k in orig:
            assert copy[k].dtype == np.float64 and np.array_equal(copy[k], orig[k].astype(np.float64))
            assert copy[k] is not orig[k] and orig[k].dtype == np.float32 and np.array_equal(orig[k], old[k])
    drops = [(a, b) for a, b in zip(net.layers, up.layers) if isinstance(a, Dropout)]
    assert drops and all(
        a.rng is not b.rng and np.array_equal(a.sample_mask(3), b.sample_mask(3)) for a, b in drops
    )  # a copy of the Generator, in the same state
    X = np.random.default_rng(1).normal(size=(5, 4))
    np.testing.assert_allclose(up.predict_batched(X), net.predict_batched(X.astype(np.float32)), rtol=1e-5, atol=1e-5)
    with pytest.raises(TypeError, match="dtype: expected float64 or float32, got int32"):
        net.astype(np.int32)


def test_layer_astype_for_each_layer_type():
    for layer in (
        Dense(3, 2, "tanh", seed=0, dtype=np.float32),
        BatchNorm(3, dtype=np.float32),
        Dropout(3, 0.5, seed=0, dtype=np.float32),
        ActivationLayer(3, "elu", dtype=np.float32),
    ):
        up = layer.astype(np.float64)
        assert type(up) is type(layer) and np.dtype(up.dtype) == np.float64 and np.dtype(layer.dtype) == np.float32
        assert all(v.dtype == np.float64 for v in {**up.params, **up.state}.values())
        y, _ = up.forward_batched(np.ones((2, 3)), "test")  # computes in float64 without complaint
        assert y.dtype == np.float64


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_float32_cross_check_on_a_batchnorm_dropout_fcnet(seed):
    net = _fcnet32(seed)
    X = np.random.default_rng(seed).normal(size=(7, 4)).astype(np.float32)
    y = np.arange(7) % 3
    stats = [{k: v.copy() for k, v in s.items()} for s in net.state]
    report = cross_check(net, X, y)
    assert report.dtype == "float32" and report.passed, str(report)
    assert any("layer 1 gamma" in r.quantity for r in report.rows)  # the batch-norm gradients are compared
    for s, old in zip(net.state, stats):  # running statistics left alone
        for k in s:
            assert np.array_equal(s[k], old[k])


def test_float32_cross_check_on_a_plain_network_with_activation_and_dropout_layers():
    layers = [
        Dense(3, 5, "identity", seed=0, dtype=np.float32),
        ActivationLayer(5, "tanh", dtype=np.float32),
        Dropout(5, 0.3, seed=1, dtype=np.float32),
        Dense(5, 2, "identity", seed=2, dtype=np.float32),
    ]
    net = Network(layers, "softmax_cross_entropy")
    X = np.random.default_rng(0).normal(size=(6, 3)).astype(np.float32)
    assert cross_check(net, X, np.arange(6) % 2).passed
