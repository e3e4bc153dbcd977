"""Solver: both paths give one trajectory, best-parameter restore, interruption, schedule, and the
accuracy targets of the training issue (fixed seeds; the big runs use the batched path)."""

import numpy as np
import pytest

from jacobian_nn import Network, data
from jacobian_nn.optimizers import SGD, Adam, Momentum, make_optimizer
from jacobian_nn.solver import Solver

PATH_TOL = 1e-10


def _trajectory(path, optimizer_name):
    ds = data.spiral(n_per_class=20, seed=1)
    net = Network.build([2, 6, 5, 3], "tanh", seed=2, l2=1e-3)
    snapshots = []

    def record(info):
        snapshots.append([{k: v.copy() for k, v in p.items()} for p in net.params] + [info.loss])

    Solver(
        net,
        ds,
        make_optimizer(optimizer_name, 0.05),
        epochs=3,
        batch_size=7,
        lr_decay=0.9,
        path=path,
        seed=5,
        callback=record,
    ).train()
    return snapshots


@pytest.mark.parametrize("optimizer_name", ["momentum", "adam"])
def test_paths_give_the_same_parameter_trajectory(optimizer_name):
    ref, bat = _trajectory("reference", optimizer_name), _trajectory("batched", optimizer_name)
    assert len(ref) == len(bat) == 3 * 6  # 42 samples / 7 per batch, 3 epochs
    for r, b in zip(ref, bat):
        assert abs(r[-1] - b[-1]) <= PATH_TOL  # the minibatch losses
        for pr, pb in zip(r[:-1], b[:-1]):
            for k in pr:
                np.testing.assert_allclose(pr[k], pb[k], rtol=0, atol=PATH_TOL)
    moved = max(np.max(np.abs(r[0]["W"] - ref[0][0]["W"])) for r in ref)
    assert moved > 1e-2  # the trajectory is not trivially constant


def test_same_seed_same_run_and_other_seed_other_run():
    def run(seed):
        ds = data.spiral(n_per_class=30, seed=0)
        net = Network.build([2, 8, 3], "relu", seed=0)
        h = Solver(net, ds, SGD(0.1), epochs=2, batch_size=16, seed=seed).train()
        return h.loss

    assert run(3) == run(3)
    assert run(3) != run(4)


def test_lr_decay_per_epoch_and_history_lengths():
    ds = data.spiral(n_per_class=20, seed=0)
    lrs = []
    h = Solver(
        Network.build([2, 4, 3], "relu", seed=0),
        ds,
        Momentum(0.2),
        epochs=3,
        batch_size=10,
        lr_decay=0.5,
        callback=lambda info: lrs.append((info.epoch, info.lr)),
    ).train()
    per_epoch = -(-ds.X_train.shape[0] // 10)
    assert len(h.loss) == h.iterations == 3 * per_epoch
    assert len(h.train_acc) == len(h.val_acc) == 4 and h.epochs_completed == 3
    assert sorted(set(lrs)) == [(1, 0.2), (2, 0.1), (3, 0.05)]


def test_best_validation_parameters_are_restored():
    ds = data.spiral(n_per_class=40, seed=0)
    net = Network.build([2, 16, 3], "relu", seed=0)
    # a large learning rate makes the validation accuracy move up and down between epochs
    h = Solver(net, ds, SGD(2.0), epochs=8, batch_size=8, seed=0).train()
    assert h.best_val_acc == max(h.val_acc) and h.val_acc[h.best_epoch] == h.best_val_acc
    assert net.accuracy_batched(ds.X_val, ds.y_val) == h.best_val_acc


def test_keyboard_interrupt_keeps_the_best_parameters_and_returns():
    ds = data.spiral(n_per_class=30, seed=0)
    net = Network.build([2, 16, 3], "relu", seed=0)
    seen = []

    def stop(info):
        if info.epoch == 3:
            seen.append([{k: v.copy() for k, v in p.items()} for p in net.params])
            raise KeyboardInterrupt

    h = Solver(net, ds, Adam(0.02), epochs=10, batch_size=16, seed=0, callback=stop).train()
    assert h.interrupted and h.epochs_completed == 2 and len(h.val_acc) == 3
    assert h.best_val_acc == max(h.val_acc)
    assert net.accuracy_batched(ds.X_val, ds.y_val) == h.best_val_acc
    # the parameters at the interruption were not kept: the best epoch's were written back
    assert any(not np.array_equal(p["W"], s["W"]) for p, s in zip(net.params, seen[0]))


def test_training_accuracy_on_a_subsample():
    ds = data.spiral(n_per_class=100, seed=0)  # 210 training samples
    net = Network.build([2, 8, 3], "relu", seed=0)
    h = Solver(net, ds, SGD(0.1), epochs=1, batch_size=50, num_train_samples=7).train()
    assert all(round(a * 7) == pytest.approx(a * 7) for a in h.train_acc)  # multiples of 1/7


@pytest.mark.parametrize("batch_size", [0, -1, 64])
def test_bad_batch_size(batch_size):
    ds = data.spiral(n_per_class=30, seed=0)  # 63 training samples
    with pytest.raises(ValueError, match="batch_size"):
        Solver(Network.build([2, 3], seed=0), ds, SGD(), batch_size=batch_size)


def test_bad_path_labels_and_optimizer():
    ds = data.spiral(n_per_class=10, seed=0)
    net = Network.build([2, 3], seed=0)
    with pytest.raises(ValueError, match="path: expected one of"):
        Solver(net, ds, SGD(), batch_size=5, path="fast")
    with pytest.raises(TypeError, match="optimizer"):
        Solver(net, ds, "adam", batch_size=5)
    with pytest.raises(ValueError, match=r"y_train: expected labels in \[0, 1\]"):
        Solver(Network.build([2, 2], seed=0), ds, SGD(), batch_size=5)


# --------------------------------------------------------------------------- targets


def test_spiral_linear_model_stays_below_60_percent():
    ds = data.spiral(seed=0)
    net = Network.build([2, 3], seed=0)
    Solver(net, ds, Adam(1e-2), epochs=20, batch_size=32, seed=0).train()
    for X, y in ((ds.X_train, ds.y_train), (ds.X_test, ds.y_test)):
        assert net.accuracy_batched(X, y) < 0.60


def test_spiral_one_relu_hidden_layer_reaches_97_train_95_test():
    ds = data.spiral(seed=0)
    net = Network.build([2, 100, 3], "relu", seed=0)
    Solver(net, ds, Adam(1e-2), epochs=30, batch_size=32, seed=0).train()
    assert net.accuracy_batched(ds.X_train, ds.y_train) >= 0.97
    assert net.accuracy_batched(ds.X_test, ds.y_test) >= 0.95


def test_xor_needs_a_hidden_layer():
    ds = data.gates("XOR")
    single = Network.build([2, 2], seed=0)
    Solver(single, ds, Adam(0.05), epochs=300, batch_size=4, seed=0, path="reference").train()
    two = Network.build([2, 8, 2], "tanh", seed=0)
    Solver(two, ds, Adam(0.05), epochs=300, batch_size=4, seed=0, path="reference").train()
    assert two.accuracy(ds.X_train, ds.y_train) == 1.0
    assert single.accuracy(ds.X_train, ds.y_train) <= 0.75  # no line separates XOR


def test_digits_mlp_reaches_95_percent_test():
    pytest.importorskip("sklearn", reason="digits needs scikit-learn (the 'data' extra; also in 'test')")
    ds = data.digits(seed=0)
    net = Network.build([64, 100, 10], "relu", seed=0)
    Solver(net, ds, Adam(1e-3), epochs=20, batch_size=32, seed=0).train()
    assert net.accuracy_batched(ds.X_test, ds.y_test) >= 0.95
