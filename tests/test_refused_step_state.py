"""A call refused after its forward changes nothing, and says so without numpy's warnings.

The forward of a training step updates batch norm's running statistics and draws dropout masks from
the layers' Generators before the step can know that it will be refused: a step that overflows, a
read-only parameter, a gradient row that is not finite, a Solver iteration that diverges. Every
public call puts them back before the refusal propagates, so that parameters, running statistics
and Generator states are bit-identical to what they were (each test has its near miss: the same
call, not refused, moves all three). The refusals are quiet: numpy's RuntimeWarnings are silenced
where the library checks the result and refuses it, and only there.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from jacobian_nn import SGD, Network, Solver, TrainingDiverged, Workspace
from support import moved_everything, same_bits, same_snapshot, state_snapshot, stateful_net


X = np.random.default_rng(0).normal(size=(6, 3))
Y = np.eye(3)[[0, 1, 2, 0, 1, 2]]
BIG = 1e6 * Y  # mean squared error against these: gradients ~1e5, times lr 1e308 every step overflows
X1, BIG1 = X[:1].T, BIG[:1].T  # one sample (n, 1) and its label column, for train_one


STEPS = {
    "train_batch": lambda net, X, Y, lr: net.train_batch(X, Y, lr),
    "train_step_batched": lambda net, X, Y, lr: net.train_step_batched(X, Y, lr),
    "train_step_batched+workspace": lambda net, X, Y, lr: net.train_step_batched(X, Y, lr, workspace=Workspace()),
}


@pytest.mark.parametrize("step", sorted(STEPS))
def test_a_step_that_overflows_changes_nothing_and_warns_nothing(step):
    net = stateful_net()
    before = state_snapshot(net)
    # gradients ~1e5, times lr 1e308: the step overflows after the forward; apply_update refuses it
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=r"^steps\[\d\]\['\w+'\]: .*(inf|nan)"):
            STEPS[step](net, X, BIG, 1e308)
    assert same_snapshot(before, state_snapshot(net))
    STEPS[step](net, X, BIG, 1e-9)  # near miss: a sound learning rate moves all three
    assert moved_everything(before, state_snapshot(net))


@pytest.mark.parametrize("step", sorted(STEPS))
def test_a_step_refused_for_a_read_only_parameter_changes_nothing(step):
    net = stateful_net()
    net.layers[-1].W.flags.writeable = False
    before = state_snapshot(net)
    with pytest.raises(ValueError, match=r"^steps\[\d\]\['W'\]: the parameter it updates is read-only"):
        STEPS[step](net, X, Y, 0.1)
    assert same_snapshot(before, state_snapshot(net))
    net.layers[-1].W.flags.writeable = True  # near miss
    STEPS[step](net, X, Y, 0.1)
    assert moved_everything(before, state_snapshot(net))


def test_train_one_refused_changes_nothing():
    net = stateful_net(batchnorm=False)  # one sample: batch norm's training mode refuses N = 1 up front
    before = state_snapshot(net)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=r"^steps\["):
            net.train_one(X1, BIG1, 1e308)
    assert same_snapshot(before, state_snapshot(net))
    net.train_one(X1, BIG1, 1e-9)
    assert moved_everything(before, state_snapshot(net))


ROW_REFUSED = r"^layers\[3\]: gradient row into the layer\[\d\]: .*inf"


def test_a_reference_gradient_row_that_overflows_changes_nothing():
    # batch norm's gamma 1e-300 keeps the last layer's input ~1e-300, so its weights of +-1e308 give finite
    # logits (~1e8) and a finite loss; pulled back through those weights, the loss row (p - y) becomes
    # 1e308 (p_0 - p_1 + 1 + p_2) = 2e308: inf. The forward ran (running statistics updated, masks drawn)
    net = stateful_net(loss="softmax_cross_entropy")
    net.layers[1].gamma[:] = 1e-300
    net.layers[-1].W[...] = np.array([1.0, -1.0, 1.0]) * 1e308
    labels = np.ones(6, dtype=int)
    before = state_snapshot(net)
    # the layer's backward computes that row and its weight gradient in one call; the row is checked right
    # after it and refused, so the call is quiet (warnings are errors here), as a training step is
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=ROW_REFUSED):
            net.loss_and_gradients(X, labels)
    assert same_snapshot(before, state_snapshot(net))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=ROW_REFUSED):
            net.train_batch(X, labels, 0.1)
    assert same_snapshot(before, state_snapshot(net))
    net.layers[-1].W[...] = np.array([1.0, -1.0, 1.0]) * 1e300  # near miss: rows ~2e300, finite
    net.loss_and_gradients(X, labels)
    after = state_snapshot(net)
    assert not all(same_bits(a, b) for s, t in zip(before[1], after[1]) for a, b in zip(s.values(), t.values()))
    assert before[2] != after[2]


@pytest.mark.parametrize("path", ["batched", "reference"])
def test_a_solver_iteration_refused_changes_nothing(path):
    # an L2 penalty of 1e300 makes gradients ~1e300 (the loss stays finite): every step of lr 1e10 overflows
    net = stateful_net(loss="softmax_cross_entropy", l2=1e300)
    rng = np.random.default_rng(1)
    split = {"X_train": rng.normal(size=(20, 3)), "y_train": rng.integers(0, 3, 20)}
    split.update(X_val=split["X_train"], y_val=split["y_train"])
    before = state_snapshot(net)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(TrainingDiverged, match=r"^lr: training diverged in epoch 1, iteration 1 "):
            Solver(net, split, SGD(1e10), epochs=1, batch_size=10, progress=False, path=path).train()
    # the best parameters (epoch 0's, with their running statistics) are restored, and the refused
    # iteration's dropout draws are put back: the network is as it was before train()
    assert same_snapshot(before, state_snapshot(net))
    Solver(net, split, SGD(1e-305), epochs=1, batch_size=10, progress=False, path=path).train()  # near miss
    assert state_snapshot(net)[2] != before[2]


# --------------------------------------------------------------------------- quiet refusals, and only those


@pytest.mark.parametrize(
    "call",
    ["predict", "predict_batched", "accuracy_batched", "input_jacobian_batched", "train_batch", "train_step_batched"],
)
def test_an_overflow_inside_the_network_is_refused_without_a_warning(call):
    net = Network.build([3, 5, 4], "tanh", seed=0)
    before = state_snapshot(net)
    X_big = np.full((2, 3), 1e308)
    calls = {
        "predict": lambda: net.predict(X_big),
        "predict_batched": lambda: net.predict_batched(X_big),
        "accuracy_batched": lambda: net.accuracy_batched(X_big, [0, 1]),
        "input_jacobian_batched": lambda: net.input_jacobian_batched(X_big),
        "train_batch": lambda: net.train_batch(X_big, [0, 1], 0.1),
        "train_step_batched": lambda: net.train_step_batched(X_big, [0, 1], 0.1),
    }
    errors = np.geterr()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ValueError, match=r"^X: finite inputs overflow inside the network: layers\[0\]"):
            calls[call]()
    assert np.geterr() == errors  # numpy's error state is the caller's again
    assert same_snapshot(before, state_snapshot(net))


def test_an_overflow_the_library_does_not_refuse_still_warns():
    # near miss of the above: per-sample losses that overflow in a call that returns them unchecked (nothing
    # refused; loss_and_gradients refuses such a loss, tests/test_path_refusals_agree.py)
    net = Network.build([3, 5, 3], "relu", loss="mse", seed=0)
    with pytest.warns(RuntimeWarning, match="overflow"):
        losses = net.per_sample_losses_batched(X, np.full((6, 3), -1.5e308))
    assert np.all(losses == np.inf)
