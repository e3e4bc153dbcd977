"""conv - relu - pool - ... - affine - softmax networks through Network: both paths, cross_check, per-sample
gradients, input Jacobians, finite differences, the Solver, save/load and astype."""

from __future__ import annotations

import numpy as np
import pytest

import jacobian_nn as jn
from jacobian_nn.conv import AvgPool2D, Conv2D, MaxPool2D, SpatialBatchNorm, build_cnn
from jacobian_nn.fd import fd_jacobian, fd_loss_gradient
from jacobian_nn.normalization import frozen_running_stats
from support import WorstErrors, rel_err

WORST = WorstErrors()


_dump_worst = WORST.dump_at_module_end("test_conv_network")


def image_net(seed=0, batchnorm=False, l2=1e-3):
    """conv(relu, pad 1) - [spatial BN] - max-pool - conv(tanh, stride 2) - avg-pool - affine(relu) - affine."""
    rng = np.random.default_rng(seed)
    c1 = Conv2D((2, 6, 6), 3, 3, pad=1, activation="relu", seed=rng)
    layers = [c1]
    if batchnorm:
        layers.append(SpatialBatchNorm(c1.output_shape, gamma=rng.uniform(0.5, 1.5, 3), beta=rng.normal(size=3)))
    p1 = MaxPool2D(c1.output_shape, 2)
    c2 = Conv2D(p1.output_shape, 4, 1, activation="tanh", seed=rng)
    p2 = AvgPool2D(c2.output_shape, 3)
    layers += [p1, c2, p2, jn.Dense(p2.n_out, 5, "relu", seed=rng), jn.Dense(5, 3, seed=rng)]
    for layer in layers:
        if isinstance(layer, (Conv2D, jn.Dense)):
            layer.b[:] = rng.normal(scale=0.3, size=layer.b.shape)
    return jn.Network(layers, "softmax_cross_entropy", l2=l2)


def batch(N=5, seed=1):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(N, 2, 6, 6)), rng.integers(0, 3, N)


def test_cross_check_passes_on_a_cnn():
    net = image_net()
    X, y = batch()
    report = jn.cross_check(net, X, y)
    assert report.passed, str(report)
    assert not report.skipped, report.skipped  # per-sample gradients and Jacobians included
    for row in report.rows:
        WORST.record(f"cross_check {row.quantity.split(' (')[0]}", row.comparison.max_rel)
    assert "network dy/dx (N, m_out, n_in)" in [r.quantity for r in report.rows]


def test_cross_check_fails_when_the_batched_path_is_wrong(monkeypatch):
    """Near miss: a batched max-pool that spreads the gradient over the window (average pooling's VJP) is caught."""
    net = image_net()
    X, y = batch()

    def wrong(self, G, ctx, **kw):
        return self._add_to_windows(G.reshape(ctx.shape) / 4), {}

    monkeypatch.setattr(MaxPool2D, "backward_batched", wrong)
    assert not jn.cross_check(net, X, y).passed


def test_reference_gradients_against_finite_differences():
    net = image_net(l2=1e-2)
    X, y = batch(N=3)
    loss_r, grads_r = net.loss_and_gradients(X, y)
    loss_b, grads_b = net.loss_and_gradients_batched(X, y)
    assert abs(loss_r - loss_b) <= 1e-12 * abs(loss_r)
    fd = fd_loss_gradient(net, X.reshape(3, -1), y, path="batched")  # loss values only, the fast path
    flat = net.flatten_gradients(grads_r)
    tol = 1e-9 + 1e-7 * np.abs(fd.df[0]) + 10 * fd.error[0]
    WORST.record("network gradient reference vs FD", rel_err(flat, fd.df[0]))
    WORST.record("network gradient batched vs FD", rel_err(net.flatten_gradients(grads_b), fd.df[0]))
    assert np.all(np.abs(flat - fd.df[0]) <= tol)
    assert np.all(np.abs(net.flatten_gradients(grads_b) - fd.df[0]) <= tol)


def test_input_jacobians_three_witnesses():
    net = image_net()
    X, _ = batch(N=2)
    Jb = net.input_jacobian_batched(X)
    assert Jb.shape == (2, 3, 72)
    for k in range(2):
        x = X[k].reshape(-1, 1)
        Jr = net.input_jacobian(x)
        Jr = Jr.toarray() if hasattr(Jr, "toarray") else Jr
        fd = fd_jacobian(lambda v: net.forward(v[:, None])[:, 0], x)
        WORST.record("network dy/dx reference vs FD", rel_err(Jr, fd.df))
        WORST.record("network dy/dx batched vs reference", rel_err(Jb[k], Jr))
        assert np.all(np.abs(Jr - fd.df) <= 1e-9 + 1e-7 * np.abs(fd.df) + 10 * fd.error)
        assert rel_err(Jb[k], Jr) <= 1e-12


def test_per_sample_gradients_of_a_cnn():
    net = image_net()
    X, y = batch(N=4)
    per = net.per_sample_gradients_batched(X, y)
    assert per[0]["W"].shape == (4, 3, 2, 3, 3) and per[0]["b"].shape == (4, 3)
    _, grads = net.loss_and_gradients_batched(X, y)
    for k in range(4):
        _, g = net.backward(X[k].reshape(-1, 1), y[k])
        for i, layer_grads in enumerate(per):
            for name in layer_grads:
                assert rel_err(layer_grads[name][k], g[i][name]) <= 1e-12
    for i, layer_grads in enumerate(per):
        for name in layer_grads:
            assert rel_err(layer_grads[name].mean(axis=0), grads[i][name]) <= 1e-12


def test_spatial_batchnorm_network_both_paths():
    net = image_net(batchnorm=True)
    X, y = batch(N=4)
    with frozen_running_stats(net):
        report = jn.cross_check(net, X, y, per_sample=False)
    assert report.passed, str(report)
    before = net.layers[1].bn.running_mean.copy()
    net.loss_and_gradients_batched(X, y)
    assert not np.array_equal(before, net.layers[1].bn.running_mean)  # training mode updates the statistics


def test_images_nchw_accepted_and_wrong_shapes_refused():
    net = image_net()
    X, _ = batch(N=2)
    assert np.array_equal(net.predict_batched(X), net.predict_batched(X.reshape(2, -1)))
    with pytest.raises(ValueError, match=r"images of shape \(N, 2, 6, 6\)"):
        net.predict_batched(X.transpose(0, 2, 3, 1))  # NHWC is not NCHW
    with pytest.raises(ValueError, match="72 features"):
        net.predict_batched(X.reshape(2, -1)[:, :70])


def test_solver_both_paths_agree_and_save_load_astype(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 1, 4, 4)).reshape(40, -1)
    y = (X[:, :8].sum(axis=1) > 0).astype(int)
    ds = {"X_train": X[:30], "y_train": y[:30], "X_val": X[30:], "y_val": y[30:]}
    nets = {p: build_cnn((1, 4, 4), 2, filters=(3,), hidden=(4,), seed=1) for p in ("batched", "reference")}
    for path, net in nets.items():
        jn.Solver(net, ds, jn.Adam(0.01), epochs=2, batch_size=8, seed=2, path=path).train()
    for a, b in zip(nets["batched"].params, nets["reference"].params):
        assert all(np.allclose(a[k], b[k], rtol=0, atol=1e-10) for k in a)
    net = image_net(batchnorm=True)
    net.layers[1].bn.running_var[:] = [0.5, 1.5, 2.0]
    path = jn.save_model(net, tmp_path / "cnn.npz")
    back = jn.load_model(path)
    assert [type(layer) for layer in back.layers] == [type(layer) for layer in net.layers]
    for p, q in zip(net.params + net.state, back.params + back.state):
        assert all(np.array_equal(p[k], q[k]) for k in p)
    Xb, yb = batch(N=3)
    assert np.array_equal(back.predict_batched(Xb), net.predict_batched(Xb))
    f32 = image_net().astype(np.float32)
    assert f32.dtype == np.float32 and all(layer.dtype == np.float32 for layer in f32.layers)
    report = jn.cross_check(f32, Xb.astype(np.float32), yb)
    assert report.passed, str(report)


def test_a_tampered_cnn_file_is_refused(tmp_path):
    """The loader checks a convolution's arrays against its declared filters and kernel (near miss: the
    untouched file loads)."""
    import json

    net = build_cnn((1, 4, 4), 2, filters=(3,), seed=0)
    path = jn.save_model(net, tmp_path / "cnn.npz")
    assert isinstance(jn.load_model(path).layers[0], Conv2D)
    with np.load(path, allow_pickle=False) as f:
        contents = {k: f[k] for k in f.files}
    arch = json.loads(str(contents["__architecture__"]))
    bad = tmp_path / "bad.npz"
    # a kernel size that disagrees with the stored W: refused from the architecture and the .npy header,
    # before any array is read (here the next layer's width no longer chains)
    arch["layers"][0]["config"]["kernel_size"] = [2, 2]
    contents["__architecture__"] = np.array(json.dumps(arch))
    np.savez(bad, **contents)
    with pytest.raises(ValueError, match=r"model file: layers\[1\]: takes 48 inputs but layers\[0\] gives 75"):
        jn.load_model(bad)
    # the same lie told consistently (the next layer's width too): the stored W's shape is what disagrees
    arch["layers"][0]["config"]["kernel_size"] = [1, 1]  # 4 + 2*1 - 1 + 1 = 6: a 3 x 6 x 6 output
    arch["layers"][1]["config"]["input_shape"] = [3, 6, 6]
    arch["layers"][2]["config"]["n_in"] = 27
    contents["__architecture__"] = np.array(json.dumps(arch))
    np.savez(bad, **contents)
    with pytest.raises(ValueError, match=r"layers/0/W: shape \(3, 1, 3, 3\), the architecture says \(3, 1, 1, 1\)"):
        jn.load_model(bad)


def test_dense_and_conv_share_one_check_of_given_weights():
    """``Dense.from_params`` and ``Conv2D.from_params`` check W and b through one helper: copies, the
    dtype policy (ints become float64, float32 stays), the layout's rank, and b against W's output axis."""
    W = np.arange(6).reshape(2, 3)
    d = jn.Dense.from_params(W, [1, 2, 3])
    assert d.W.dtype == np.float64 and not np.shares_memory(d.W, W)
    assert jn.Dense.from_params(W.astype(np.float32), np.zeros(3, np.float32)).dtype == np.float32
    with pytest.raises(ValueError, match=r"W: expected a non-empty 2-D array of shape \(n, m\)"):
        jn.Dense.from_params(np.zeros((2, 3, 1)), np.zeros(3))
    with pytest.raises(ValueError, match=r"b: expected shape \(3,\)"):
        jn.Dense.from_params(W, np.zeros(2))  # the input axis's size is not the bias's
    Wc = np.ones((4, 1, 3, 3))
    c = Conv2D.from_params(Wc, np.zeros(4), (1, 5, 5), pad=1)
    assert c.W.shape == (4, 1, 3, 3) and not np.shares_memory(c.W, Wc)
    with pytest.raises(ValueError, match=r"W: expected a non-empty 4-D array of shape \(F, C, FH, FW\)"):
        Conv2D.from_params(np.zeros((0, 1, 3, 3)), np.zeros(0), (1, 5, 5))
    with pytest.raises(ValueError, match=r"b: expected shape \(4,\)"):
        Conv2D.from_params(Wc, np.zeros(1), (1, 5, 5))  # C, not F
