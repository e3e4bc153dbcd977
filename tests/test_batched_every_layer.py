"""Per-sample gradients and input Jacobians on the batched path for networks with batch norm, dropout
and activation layers: test mode, fixed dropout masks in training mode, and batch norm's refusal in
training mode (before anything changes)."""

from __future__ import annotations

import numpy as np
import pytest

import jacobian_nn as jn
from jacobian_nn.fd import compare, fd_jacobian
from jacobian_nn.normalization import sample_dropout_masks, using_dropout_masks
from support import same_bits


def fcnet(batchnorm=True, dropout=0.25, seed=0):
    net = jn.FullyConnectedNet(
        [6, 5],
        input_dim=4,
        num_classes=3,
        dropout=dropout,
        use_batchnorm=batchnorm,
        reg=1e-3,
        weight_scale=0.4,
        seed=seed,
    )
    rng = np.random.default_rng(seed + 100)
    for layer in net.layers:  # non-trivial running statistics, gamma and beta
        if isinstance(layer, jn.BatchNorm):
            m = layer.n_in
            layer.running_mean[...] = rng.normal(size=m)
            layer.running_var[...] = rng.uniform(0.5, 2.0, size=m)
            layer.gamma[...] = rng.uniform(0.5, 1.5, size=m)
            layer.beta[...] = rng.normal(size=m)
    return net


def batch(N=6, seed=1):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(N, 4)), rng.integers(0, 3, N)


def test_per_sample_gradients_in_test_mode_with_batch_norm_and_dropout():
    net = fcnet()
    X, y = batch()
    per = net.per_sample_gradients_batched(X, y, mode="test")
    refs = [net.backward(X[k][:, None], y[k], "test")[1] for k in range(len(y))]
    _, mean_grads = net.loss_and_gradients_batched(X, y, mode="test")
    for i, g in enumerate(per):
        for name, v in g.items():
            stacked = np.stack([r[i][name] for r in refs])
            assert np.allclose(v, stacked, rtol=1e-12, atol=1e-14), (i, name)
            assert np.allclose(v.mean(axis=0), mean_grads[i][name], rtol=1e-12, atol=1e-14), (i, name)
    assert {"gamma", "beta"} <= set(per[1])


def test_per_sample_gradients_with_fixed_dropout_masks_in_training_mode():
    """No batch norm: dropout in training mode gives each sample's gradient under its own mask row;
    with the masks fixed, slice k equals the reference backward of sample k under row k."""
    net = fcnet(batchnorm=False, dropout=0.4)
    X, y = batch(N=5)
    masks = sample_dropout_masks(net, 5)
    with using_dropout_masks(net, masks):
        per = net.per_sample_gradients_batched(X, y)
    for k in range(5):
        with using_dropout_masks(net, [m[k : k + 1] for m in masks]):
            ref = net.backward(X[k][:, None], y[k], "train")[1]
        for i, g in enumerate(per):
            for name, v in g.items():
                assert np.allclose(v[k], ref[i][name], rtol=1e-12, atol=1e-14), (k, i, name)
    # the near miss: other masks give other per-sample gradients
    with using_dropout_masks(net, [~m for m in masks]):
        other = net.per_sample_gradients_batched(X, y)
    assert not np.allclose(other[-1]["W"], per[-1]["W"])


def test_batch_norm_in_training_mode_is_refused_before_anything_changes():
    net = fcnet()
    X, y = batch()
    bn = [l for l in net.layers if isinstance(l, jn.BatchNorm)]
    drop = [l for l in net.layers if isinstance(l, jn.Dropout)]
    before = [l.running_mean.copy() for l in bn] + [l.running_var.copy() for l in bn]
    rng_before = [l.rng.bit_generator.state for l in drop]
    with pytest.raises(TypeError, match=r"BatchNorm in training mode .* use mode='test'.*loss_and_gradients_batched"):
        net.per_sample_gradients_batched(X, y)
    after = [l.running_mean for l in bn] + [l.running_var for l in bn]
    assert all(same_bits(a, b) for a, b in zip(before, after))
    assert [l.rng.bit_generator.state for l in drop] == rng_before
    with pytest.raises(TypeError, match="BatchNorm in training mode"):
        bn[0].backward_batched(np.ones((6, 6)), bn[0].forward_batched(X @ np.ones((4, 6)), "train")[1], per_sample=True)


def test_input_jacobian_with_batch_norm_dropout_and_activation_layers():
    net = fcnet()
    X, _ = batch(N=4)
    J = net.input_jacobian_batched(X)
    for k in range(4):
        Jr = net.input_jacobian(X[k][:, None])
        assert np.allclose(J[k], Jr, rtol=1e-12, atol=1e-14)
        fd = fd_jacobian(lambda v: net.forward(v[:, None], "test"), X[k])
        assert compare(f"dy/dx sample {k}", J[k], fd.df, err=fd.error).passed


def test_cross_check_covers_per_sample_and_jacobians_on_a_batchnorm_net():
    net = fcnet()
    X, y = batch()
    report = jn.cross_check(net, X, y)
    assert report.passed and not report.skipped, str(report)
    assert any(r.quantity.startswith("per-sample grad layer 1 gamma") for r in report.rows)
    assert any(r.quantity.startswith("network dy/dx") for r in report.rows)


def test_layer_batched_jacobians_match_reference():
    net = fcnet()
    X, _ = batch(N=3)
    A = net.input_batch(X)
    for layer in net.layers:
        Jb = layer.jacobian_x_batched(A)
        for k in range(3):
            assert np.allclose(Jb[k], layer.jacobian_x(A[k][:, None]), rtol=1e-14, atol=0), repr(layer)
        P = np.random.default_rng(0).normal(size=(3, 2, layer.n_out))
        assert np.allclose(layer.input_vjp_rows_batched(P, A), P @ Jb, rtol=1e-13, atol=1e-15)
        A = layer.forward_batched(A, "test")[0]
