"""Model save/load for seed 004's layers: FullyConnectedNet, BatchNorm (running statistics, eps,
momentum), Dropout (p and the exact Generator state) and ActivationLayer; bit-exact round trips;
``jacobian-nn train --batchnorm --dropout P --save`` then load."""

import io
import json
import zipfile

import numpy as np
import pytest

from jacobian_nn import data
from jacobian_nn.cli import main
from jacobian_nn.fcnet import FullyConnectedNet
from jacobian_nn.layers import Dense
from jacobian_nn.model_io import ARCH_KEY, architecture, load_model, save_model
from jacobian_nn.network import Network
from jacobian_nn.normalization import ActivationLayer, BatchNorm, Dropout
from support import same_bits


def _trained_fcnet(dtype):
    net = FullyConnectedNet(
        [6, 5],
        input_dim=4,
        num_classes=3,
        dropout=0.25,
        use_batchnorm=True,
        reg=0.01,
        weight_scale=0.4,
        dtype=dtype,
        seed=7,
        eps=1e-3,
        momentum=0.8,
    )
    rng = np.random.default_rng(3)
    for _ in range(3):  # move the running statistics and the Generators
        X = rng.normal(size=(8, 4)).astype(dtype)
        net.loss_and_gradients_batched(X, rng.integers(0, 3, size=8))
    for p in net.params:  # full-precision, non-default gamma/beta/b
        for v in p.values():
            v[...] = rng.normal(size=v.shape).astype(dtype)
    return net


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fcnet_with_batchnorm_and_dropout_round_trip_is_bit_exact(tmp_path, dtype):
    net = _trained_fcnet(dtype)
    back = load_model(save_model(net, tmp_path / "fc"))
    assert type(back) is FullyConnectedNet and back.dtype == np.dtype(dtype)
    assert (back.hidden_dims, back.dropout, back.use_batchnorm, back.reg) == ([6, 5], 0.25, True, 0.01)
    assert [type(l) for l in back.layers] == [type(l) for l in net.layers]
    assert architecture(back) == architecture(net)
    assert list(back.named_params) == list(net.named_params)
    for p, q in zip(net.params + net.state, back.params + back.state):
        assert sorted(p) == sorted(q)
        for k in p:
            assert same_bits(p[k], q[k]), k
    bns = [(a, b) for a, b in zip(net.layers, back.layers) if isinstance(a, BatchNorm)]
    assert len(bns) == 2 and all(np.any(a.running_var != 0) for a, _ in bns)  # the stats are not the zeros
    assert all((b.eps, b.momentum, b.update_running) == (1e-3, 0.8, True) for _, b in bns)
    X = np.random.default_rng(9).normal(size=(5, 2, 2)).astype(dtype)  # flattened like the original
    assert np.array_equal(net.predict_batched(X), back.predict_batched(X))  # test mode: running stats
    y = np.array([0, 1, 2, 0, 1])
    # train mode: the loaded Dropout Generators continue exactly where the saved ones were
    loss_a, grads_a = net.loss_and_gradients_batched(X, y)
    loss_b, grads_b = back.loss_and_gradients_batched(X, y)
    assert loss_a == loss_b
    for ga, gb in zip(grads_a, grads_b):
        for k in ga:
            assert same_bits(ga[k], gb[k])


def test_plain_network_of_the_new_layers_and_non_default_generators(tmp_path):
    rng_mt = np.random.Generator(np.random.MT19937(5))
    rng_mt.random(3)
    layers = [
        Dense(3, 4, "identity", seed=0),
        BatchNorm(4, eps=2e-4, momentum=0.7, update_running=False),
        ActivationLayer(4, "leaky_relu"),
        Dropout(4, 0.5, seed=rng_mt),
        Dense(4, 2, "identity", seed=1),
    ]
    layers[2].activation.alpha = 0.03
    layers[1].running_mean[:] = [0.1, -0.2, 0.3, 1 / 3]
    layers[1].running_var[:] = [1.5, 0.25, 2.0, np.pi]
    net = Network(layers, "softmax_cross_entropy", l2=0.5, l1=0.125, regularize_bias=True)
    back = load_model(save_model(net, tmp_path / "plain.npz"))
    assert type(back) is Network and (back.l2, back.l1, back.regularize_bias) == (0.5, 0.125, True)
    bn, act, drop = back.layers[1:4]
    assert (bn.eps, bn.momentum, bn.update_running) == (2e-4, 0.7, False)
    assert same_bits(bn.running_mean, layers[1].running_mean) and same_bits(bn.running_var, layers[1].running_var)
    assert act.activation.name == "leaky_relu" and act.activation.alpha == 0.03
    assert drop.p == 0.5 and type(drop.rng.bit_generator) is np.random.MT19937
    assert np.array_equal(drop.sample_mask(6), layers[3].sample_mask(6))  # same next masks
    assert architecture(back)["layers"][1]["state"] == ["running_mean", "running_var"]


def _rewrite(src, dst, edit_arch=None, drop=None):
    with zipfile.ZipFile(src) as z, zipfile.ZipFile(dst, "w") as out:
        for name in z.namelist():
            if name == drop:
                continue
            raw = z.read(name)
            if name == ARCH_KEY + ".npy" and edit_arch is not None:
                arch = json.loads(str(np.load(io.BytesIO(raw))))
                edit_arch(arch)
                buf = io.BytesIO()
                np.save(buf, np.array(json.dumps(arch)))
                raw = buf.getvalue()
            out.writestr(name, raw)


def test_damaged_state_and_structure_fail_clearly(tmp_path):
    good = save_model(_trained_fcnet(np.float64), tmp_path / "good.npz")
    _rewrite(good, tmp_path / "nostate.npz", drop="layers/1/running_var.npy")
    with pytest.raises(ValueError, match="missing array 'layers/1/running_var'"):
        load_model(tmp_path / "nostate.npz")

    def rename_state(arch):
        arch["layers"][1]["state"] = ["running_mean"]

    _rewrite(good, tmp_path / "fewer.npz", edit_arch=rename_state, drop="layers/1/running_var.npy")
    with pytest.raises(
        ValueError, match=r"layers\[1\]\.state: expected \['running_mean', 'running_var'\], got \['running_mean'\]"
    ):
        load_model(tmp_path / "fewer.npz")

    def wrong_hidden(arch):
        arch["network"]["config"]["hidden_dims"] = [6, 6]

    _rewrite(good, tmp_path / "hidden.npz", edit_arch=wrong_hidden)
    with pytest.raises(ValueError, match="network: FullyConnectedNet"):
        load_model(tmp_path / "hidden.npz")

    def bad_rng(arch):
        arch["layers"][3]["config"]["rng"]["bit_generator"] = "os.system"

    _rewrite(good, tmp_path / "rng.npz", edit_arch=bad_rng)
    with pytest.raises(ValueError, match="unknown bit generator 'os.system'"):
        load_model(tmp_path / "rng.npz")


def test_train_cli_batchnorm_dropout_save_then_load(tmp_path):
    model, out_json = tmp_path / "m.npz", tmp_path / "r.json"
    code = main(
        [
            "train",
            "--dataset",
            "spiral",
            "--batchnorm",
            "--dropout",
            "0.2",
            "--hidden",
            "32,32",
            "--epochs",
            "2",
            "--no-progress",
            "--save",
            str(model),
            "--json",
            str(out_json),
        ]
    )
    assert code == 0
    net = load_model(model)
    assert type(net) is FullyConnectedNet and net.use_batchnorm and net.dropout == 0.2
    assert any(np.any(s["running_var"] != 0) for s in net.state if s)  # trained statistics were saved
    ds = data.spiral(seed=0)
    acc = float(np.mean(net.predict_batched(ds.X_test).argmax(axis=1) == ds.y_test))
    assert acc == json.loads(out_json.read_text())["accuracy"]["test"]  # the loaded model predicts the same
