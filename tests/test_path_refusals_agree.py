"""The reference and batched paths refuse the same calls, the same way, and only those.

A loss that overflows from finite outputs and labels (mean squared error against labels near 1e308:
``(y_hat - y)^2`` is inf) is refused right after the loss, before the backward pass, by both drivers
and by every call that computes it (``loss_and_gradients``, ``loss_and_gradients_batched``, the
training steps): a ``ValueError`` naming ``Y``, the loss and the first sample whose loss is not
finite, without numpy's warnings, and with parameters, running statistics and Generators
bit-identical. Near misses: labels large but whose loss is finite (1e150) train on both paths alike;
a call that returns non-finite gradients unchecked (the loss finite) still warns, on both paths.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from jacobian_nn import Network, Workspace
from jacobian_nn._validation import NonFiniteError, eps_of
from jacobian_nn.layers import Dense
from support import moved_everything, same_layers, same_snapshot, state_snapshot, stateful_net

X = np.random.default_rng(3).normal(size=(6, 3))
HUGE = np.full((6, 3), 1e308)  # finite labels: (y_hat - y)^2 ~ 1e616 overflows in every sample
LARGE = np.full((6, 3), 1e150)  # near miss: (y_hat - y)^2 ~ 1e300, finite

SAMPLE_REFUSED = r"^Y: the loss of sample {k} is not finite \(inf\) although the network's outputs and the labels are"

CALLS = {
    "loss_and_gradients": lambda net, Y: net.loss_and_gradients(X, Y),
    "loss_and_gradients_batched": lambda net, Y: net.loss_and_gradients_batched(X, Y),
    "loss_and_gradients_batched+workspace": lambda net, Y: net.loss_and_gradients_batched(X, Y, workspace=Workspace()),
    "train_batch": lambda net, Y: net.train_batch(X, Y, 1e-300),
    "train_step_batched": lambda net, Y: net.train_step_batched(X, Y, 1e-300),
    "train_step_batched+workspace": lambda net, Y: net.train_step_batched(X, Y, 1e-300, workspace=Workspace()),
}


def _quietly(call):
    """``call()`` with every warning an error: a refusal must not warn."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return call()


@pytest.mark.parametrize("call", sorted(CALLS))
def test_a_loss_that_overflows_is_refused_quietly_and_changes_nothing(call):
    net = stateful_net()  # batch norm's running statistics and a dropout Generator, moved by the forward
    before = state_snapshot(net)
    with pytest.raises(NonFiniteError, match=SAMPLE_REFUSED.format(k=0)):
        _quietly(lambda: CALLS[call](net, HUGE))
    assert same_snapshot(before, state_snapshot(net))
    # near miss: labels 1e150, the loss ~1e300 is finite; the call runs and moves the state
    loss = _quietly(lambda: CALLS[call](net, LARGE))
    loss = loss[0] if isinstance(loss, tuple) else loss
    assert np.isfinite(loss) and loss > 1e299
    after = state_snapshot(net)
    if call.startswith("train"):
        assert moved_everything(before, after)
    else:
        assert not same_snapshot(before, after)  # running statistics and Generators moved, parameters kept
        assert same_layers(before[0], after[0])


@pytest.mark.parametrize("k", [0, 2, 5])
def test_both_paths_name_the_same_first_sample(k):
    Y = np.zeros((6, 3))
    Y[k:, 1] = 1e308  # samples k.. overflow; the ones before are ordinary
    messages = []
    for call in ("loss_and_gradients", "loss_and_gradients_batched", "train_batch", "train_step_batched"):
        net = stateful_net()
        with pytest.raises(NonFiniteError, match=SAMPLE_REFUSED.format(k=k)) as info:
            _quietly(lambda: CALLS[call](net, Y))  # noqa: B023 (called at once)
        messages.append(str(info.value))
    assert len(set(messages)) == 1  # one message, word for word, on both paths


def test_train_one_refuses_a_loss_that_overflows_as_train_batch_does():
    net = stateful_net(batchnorm=False)  # one sample: batch norm's training mode refuses N = 1 up front
    before = state_snapshot(net)
    with pytest.raises(NonFiniteError, match=SAMPLE_REFUSED.format(k=0)):
        _quietly(lambda: net.train_one(X[:1].T, HUGE[:1].T, 0.1))
    assert same_snapshot(before, state_snapshot(net))
    _quietly(lambda: net.train_one(X[:1].T, LARGE[:1].T, 1e-300))  # near miss
    assert moved_everything(before, state_snapshot(net))


def _one_output_net():
    """Dense(1, 1), identity, ``W = 0``, ``b = 0``: ``y_hat = 0`` for every input, so a label ``y`` gives
    the loss ``y^2 / 2`` exactly."""
    layer = Dense(1, 1)
    layer.W[...] = 0.0
    return Network([layer], "mse")


@pytest.mark.parametrize(
    "call", ["loss_and_gradients", "loss_and_gradients_batched", "train_batch", "train_step_batched"]
)
def test_a_mean_that_overflows_is_refused_as_the_batch_loss(call):
    # three samples of loss 0.845e308 each: every sample's loss is finite, their sum (both paths) is not
    X3, Y3 = np.zeros((3, 1)), np.full((3, 1), 1.3e154)
    net = _one_output_net()
    calls = {
        "loss_and_gradients": lambda Y: net.loss_and_gradients(X3, Y),
        "loss_and_gradients_batched": lambda Y: net.loss_and_gradients_batched(X3, Y),
        "train_batch": lambda Y: net.train_batch(X3, Y, 0.1),
        "train_step_batched": lambda Y: net.train_step_batched(X3, Y, 0.1),
    }
    with pytest.raises(
        NonFiniteError, match=r"^Y: the batch loss is not finite \(inf\) although every sample's loss is"
    ):
        _quietly(lambda: calls[call](Y3))
    near = np.full((3, 1), 1.0e154)  # near miss: three losses of 0.5e308, sum 1.5e308, finite on both paths
    loss = _quietly(lambda: calls[call](near))
    assert (loss[0] if isinstance(loss, tuple) else loss) == 0.5e308


def test_large_labels_with_a_finite_loss_train_alike_on_both_paths():
    ref = Network.build([3, 5, 3], "tanh", loss="mse", seed=4)
    bat = ref.copy()
    for _ in range(3):
        loss_ref = _quietly(lambda: ref.train_batch(X, LARGE, 1e-151))
        loss_bat = _quietly(lambda: bat.train_step_batched(X, LARGE, 1e-151))
        assert abs(loss_ref - loss_bat) <= 8 * eps_of(np.float64) * abs(loss_ref)
    theta_ref, theta_bat = ref.flat_params(), bat.flat_params()
    start = Network.build([3, 5, 3], "tanh", loss="mse", seed=4).flat_params()
    assert not np.array_equal(theta_ref, start)  # the steps were taken (of order 1)
    assert np.abs(theta_ref - theta_bat).max() <= 64 * eps_of(np.float64) * np.abs(theta_ref).max()


# --------------------------------------------------------------------------- unchecked results still warn


def _weight_gradient_overflow_net():
    """Two identity layers: ``W0 = I`` passes ``x = (1e200, 0)`` to the second layer, whose ``W1 = 0``
    makes ``y_hat = 0``. Against labels ``y``, the rows into the second layer are ``-y`` (finite) and
    its weight gradient is ``x y^T`` ~ 1e200 y; the rows into the first are ``W1 (-y) = 0``."""
    first, second = Dense(2, 2), Dense(2, 2)
    first.W[...] = np.eye(2)
    second.W[...] = 0.0
    return Network([first, second], "mse")


X2 = np.array([[1e200, 0.0]])


@pytest.mark.parametrize("path", ["loss_and_gradients", "loss_and_gradients_batched"])
def test_gradients_returned_unchecked_still_warn_on_both_paths(path):
    net = _weight_gradient_overflow_net()
    call = getattr(net, path)
    with pytest.warns(RuntimeWarning, match="overflow"):
        loss, grads = call(X2, np.full((1, 2), 1e150))  # the loss 1e300 is finite, x y^T ~ 1e350 is not
    assert loss == pytest.approx(1e300, rel=1e-15)
    assert np.all(np.isposinf(np.abs(grads[1]["W"][0]))) and np.all(np.isfinite(grads[0]["W"]))
    # near miss: labels 1e100, x y^T ~ 1e300, finite: no warning at all
    loss, grads = _quietly(lambda: call(X2, np.full((1, 2), 1e100)))
    assert all(np.isfinite(v).all() for g in grads for v in g.values())


def test_the_reference_gradients_after_a_silenced_overflow_are_the_ones_numpy_computes():
    # the reference backward runs once under silenced warnings and again (for the warning) when a
    # gradient is not finite: both runs give the same bits, and they are the batched path's here
    net = _weight_gradient_overflow_net()
    Y = np.array([[1e150, -3e149]])
    with pytest.warns(RuntimeWarning, match="overflow"):
        _, ref = net.loss_and_gradients(X2, Y)
    with pytest.warns(RuntimeWarning, match="overflow"):
        _, bat = net.loss_and_gradients_batched(X2, Y)
    assert same_layers(ref, bat)  # one sample, exact products: the same bits, infinities included


@pytest.mark.parametrize("step", ["train_batch", "train_step_batched"])
def test_a_step_from_gradients_that_overflowed_is_refused_alike(step):
    net = _weight_gradient_overflow_net()
    before = state_snapshot(net)
    # x y^T lr ~ 1e349 on both paths (the batched path scales the loss gradient by -lr first: 1e200 * 1e149)
    with pytest.raises(ValueError, match=r"^steps\[1\]\['W'\]: .*inf"):
        _quietly(lambda: getattr(net, step)(X2, np.full((1, 2), 1e150), 0.1))
    assert same_snapshot(before, state_snapshot(net))
    _quietly(lambda: getattr(net, step)(X2, np.full((1, 2), 1e100), 0.1))  # near miss: ~1e299, finite, applied
    assert not same_layers(before[0], net.params)
