"""Solver with batch-coupled / stateful layers: the best-validation restore includes every layer's
non-trainable state (batch norm's running statistics), and minibatches never have fewer samples
than the network's ``min_train_batch``."""

import numpy as np
import pytest

from jacobian_nn import Network, data
from jacobian_nn.fcnet import FullyConnectedNet
from jacobian_nn.normalization import BatchNorm
from jacobian_nn.optimizers import Adam, SGD
from jacobian_nn.solver import Solver
from support import layers_copy, same_layers


def _bn_net(seed=3):
    return FullyConnectedNet([16, 16], input_dim=2, num_classes=3, use_batchnorm=True, weight_scale=0.5, seed=seed)


def _arrays(net):
    """Every array inference depends on, copied: params and state of each layer."""
    return layers_copy({**p, **s} for p, s in zip(net.params, net.state))


def test_batchnorm_state_is_the_running_statistics_and_other_layers_have_none():
    net = _bn_net()
    kinds = [sorted(s) for s in net.state]
    assert ["running_mean", "running_var"] in kinds and [] in kinds
    bn = next(layer for layer in net.layers if isinstance(layer, BatchNorm))
    assert bn.state["running_mean"] is bn.running_mean and bn.state["running_var"] is bn.running_var
    assert set(bn.state).isdisjoint(bn.params)  # state is not trainable
    assert net.min_train_batch == 2 and Network.build([2, 3, 3], seed=0).min_train_batch == 1


def test_restore_brings_back_the_running_statistics_of_the_best_epoch():
    ds = data.spiral(n_per_class=30, seed=1)  # 63 train, 12 val samples
    net = _bn_net()
    at_epoch_end = {}
    solver = Solver(
        net,
        ds,
        Adam(0.3),
        epochs=8,
        batch_size=10,
        seed=4,
        callback=lambda info: at_epoch_end.__setitem__(info.epoch, _arrays(net)),
    )
    at_epoch_end[0] = _arrays(net)
    history = solver.train()
    # precondition: the best epoch is neither the start nor the end, so the state moved after it
    assert 0 < history.best_epoch < history.epochs_completed == 8
    best = at_epoch_end[history.best_epoch]  # what the epoch's accuracy check saw
    assert same_layers(_arrays(net), best)
    assert any(
        not np.array_equal(a[k], b[k]) for a, b in zip(at_epoch_end[8], best) for k in b if k.startswith("running")
    )  # the last epoch's statistics differ
    assert solver.accuracy(solver.X_val, solver.y_val) == history.best_val_acc


def test_interrupt_on_the_first_update_restores_the_initial_running_statistics():
    ds = data.spiral(n_per_class=30, seed=1)
    net = _bn_net()
    initial = _arrays(net)

    def stop(info):
        raise KeyboardInterrupt

    history = Solver(net, ds, SGD(0.1), epochs=3, batch_size=10, seed=0, callback=stop).train()
    assert history.interrupted and history.best_epoch == 0 and history.iterations == 1
    assert same_layers(_arrays(net), initial)  # running stats back to 0, not the batch's


def test_last_minibatch_of_one_is_merged_only_for_batch_coupled_networks():
    ds = data.spiral(n_per_class=10, seed=1)  # 21 training samples
    assert ds.X_train.shape[0] == 21
    order = np.arange(21)
    bn = Solver(_bn_net(), ds, SGD(0.1), batch_size=10, seed=0)
    plain = Solver(Network.build([2, 4, 3], seed=0), ds, SGD(0.1), batch_size=10, seed=0)
    assert [len(b) for b in bn.minibatches(order)] == [10, 11]
    assert [len(b) for b in plain.minibatches(order)] == [10, 10, 1]
    for s in (bn, plain):
        assert np.array_equal(np.concatenate(s.minibatches(order)), order)  # every sample once
    assert [len(b) for b in bn.minibatches(np.arange(20))] == [10, 10]
    assert [len(b) for b in bn.minibatches(np.arange(22))] == [10, 10, 2]


@pytest.mark.parametrize("path", ["batched", "reference"])
def test_batchnorm_training_with_a_remainder_of_one_runs_in_both_paths(path):
    ds = data.spiral(n_per_class=10, seed=1)  # 21 = 2 * 10 + 1
    sizes = []
    net = _bn_net()
    solver = Solver(
        net,
        ds,
        SGD(0.1),
        epochs=2,
        batch_size=10,
        seed=0,
        path=path,
        callback=lambda info: sizes.append(info.iteration),
    )
    history = solver.train()
    assert history.iterations == 4 and not history.interrupted and len(history.loss) == 4


def test_batch_size_below_min_train_batch_is_refused_clearly():
    ds = data.spiral(n_per_class=10, seed=1)
    with pytest.raises(ValueError, match=r"batch_size: expected at least 2 .*batch norm.*got 1"):
        Solver(_bn_net(), ds, SGD(0.1), batch_size=1)
    Solver(Network.build([2, 4, 3], seed=0), ds, SGD(0.1), batch_size=1)  # fine without batch norm
