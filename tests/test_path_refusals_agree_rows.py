"""The batched path refuses the gradient rows the reference refuses, whatever the learning rate.

The reference driver checks the rows ``dL_k/dy_k`` into every layer (the loss's before the last layer's
backward, each layer's ``dL/dx`` right after its backward; the first layer's ``dL/dx`` is not used and not
checked) and refuses one that is not finite, naming the layer and the sample. The batched driver checks
its ``dX`` at the same points, as the reference's per-sample rows: its row k is ``scale / N`` times the
reference's (the batch mean's ``1/N`` is in the loss gradient, the training step folds ``-lr`` in), so
``dX N / scale`` is what must be finite, with the same message word for word, quietly, and with the
state unchanged. A training step decides on the unscaled quantities: with ``lr = 1e-300`` a gradient
that overflows unscaled is refused on both paths although ``lr`` times it would be finite; with
``lr > 1`` rows that are finite unscaled are not refused although ``lr`` times them would overflow.
Every test has its near miss: values just below overflow pass on both paths with the same results.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from jacobian_nn import Network, Workspace
from jacobian_nn._validation import NonFiniteError, eps_of
from jacobian_nn.layers import Dense
from support import same_layers, same_snapshot, state_snapshot, stateful_net

N = 4  # a power of two: 1/N and N are exact, so the near misses agree to the bit where the products are exact


def _quietly(call):
    """``call()`` with every warning an error: a refusal (and these near misses) must not warn."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return call()


def _row_net(big_first=False, w=1e300):
    """Two identity layers, ``b = 0``; the layer with the big weights has ``W = w`` everywhere, the other
    ``W = I``. Inputs ``X = 0`` give ``y_hat = 0``, so against labels ``(a, a)`` (mean squared error, row
    ``y_hat - y``) the rows into the last layer are ``-(a, a)`` and, with the big weights last, the rows
    into the first are ``-(2 a w, 2 a w)``. With them first, those rows are finite and only the first
    layer's ``dL/dx`` (which neither path checks) is ``-(2 a w, 2 a w)``."""
    first, second = Dense(2, 2), Dense(2, 2)
    big, small = (first, second) if big_first else (second, first)
    big.W[...] = w
    small.W[...] = np.eye(2)
    return Network([first, second], "mse")


X0 = np.zeros((N, 2))
OVER = 2e8  # rows 2 * 2e8 * 1e300 = 4e308: not finite; the batched dX (1/N of it, 1e308) is
NEAR = 0.8e8  # near miss: rows 1.6e308, finite (for one sample: the first layer's bias gradient sums the rows)

CALLS = {
    "loss_and_gradients": lambda net, X, Y: net.loss_and_gradients(X, Y),
    "loss_and_gradients_batched": lambda net, X, Y: net.loss_and_gradients_batched(X, Y),
    "loss_and_gradients_batched+workspace": lambda net, X, Y: net.loss_and_gradients_batched(
        X, Y, workspace=Workspace()
    ),
    "train_batch": lambda net, X, Y: net.train_batch(X, Y, 0.1),
    "train_step_batched": lambda net, X, Y: net.train_step_batched(X, Y, 0.1),
    "train_step_batched+workspace": lambda net, X, Y: net.train_step_batched(X, Y, 0.1, workspace=Workspace()),
    "train_batch lr=1e-300": lambda net, X, Y: net.train_batch(X, Y, 1e-300),
    "train_step_batched lr=1e-300": lambda net, X, Y: net.train_step_batched(X, Y, 1e-300),
    "train_batch lr=10": lambda net, X, Y: net.train_batch(X, Y, 10.0),
    "train_step_batched lr=10": lambda net, X, Y: net.train_step_batched(X, Y, 10.0),
}
# lr = 10 has its own test: there the near miss's step (10 times the rows' mean 0.4e308) overflows on both paths
PAIRS = [
    (c, c.replace("_batched", "").replace("_step", "_batch").split("+")[0])
    for c in CALLS
    if "batched" in c and "lr=10" not in c
]


def _labels(a, k=0, last=None):
    """Labels ``(a, a)`` for the samples ``k..N-1``, 0 before; ``last``: the last sample's instead."""
    Y = np.zeros((N, 2))
    Y[k:] = a
    if last is not None:
        Y[-1] = last
    return Y


def _refusal(call, net, X, Y) -> str:
    before = state_snapshot(net)
    with pytest.raises(NonFiniteError) as info:
        _quietly(lambda: CALLS[call](net, X, Y))
    assert same_snapshot(before, state_snapshot(net))  # nothing changed
    return str(info.value)


@pytest.mark.parametrize("k", [0, 1, 3])
def test_rows_that_overflow_are_refused_alike_on_every_call(k):
    messages = {call: _refusal(call, _row_net(), X0, _labels(OVER, k)) for call in CALLS}
    expected = f"layers[0]: gradient row into the layer[{k}]: expected finite values, got np.float64(-inf) "
    assert set(messages.values()) == {expected + "(an overflow inside the network)"}, messages


@pytest.mark.parametrize("batched, reference", PAIRS)
def test_rows_just_below_overflow_pass_alike(batched, reference):
    nets = {}
    for call in (batched, reference):
        nets[call] = _row_net()
        # one sample's rows 1.6e308, just below overflow (the bias gradient, their sum, is finite too)
        result = _quietly(lambda: CALLS[call](nets[call], X0, _labels(NEAR, N - 1)))  # noqa: B023 (called at once)
        nets[call].result = result  # type: ignore[attr-defined]
    bat, ref = nets[batched].result, nets[reference].result
    if isinstance(ref, tuple):  # loss and gradients: every product exact (powers of two, zeros): the same bits
        assert bat[0] == ref[0] == NEAR**2 / N
        assert same_layers(bat[1], ref[1])
        assert ref[1][0]["b"][0] == -2 * NEAR * 1e300 / N  # the rows into the first layer, 1.6e308, were used
    else:  # a step: the same loss, the same parameters up to the rounding of lr times the gradient
        assert bat == ref == NEAR**2 / N
        theta_bat, theta_ref = nets[batched].flat_params(), nets[reference].flat_params()
        assert np.abs(theta_bat - theta_ref).max() <= 4 * eps_of(np.float64) * np.abs(theta_ref).max()
        assert not np.array_equal(theta_ref, _row_net().flat_params())  # the step was taken


@pytest.mark.parametrize("call", sorted(CALLS))
def test_the_first_layers_input_gradient_is_not_checked_on_either_path(call):
    # the big weights first: the first layer's dL/dx is -4e308 (inf) on the reference path (computed, unused,
    # unchecked) and not computed on the batched path; every row that is used is finite: no refusal, no warning
    net = _row_net(big_first=True)
    result = _quietly(lambda: CALLS[call](net, X0, _labels(OVER)))
    loss = result[0] if isinstance(result, tuple) else result
    assert loss == OVER**2
    assert np.isfinite(net.flat_params()).all()
    # near miss: the same weights last, their rows are used, and refused (the test above)
    _refusal(call, _row_net(), X0, _labels(OVER))


# --------------------------------------------------------------------------- the learning rate's place


def _weight_gradient_net():
    """``W0 = I`` passes ``x`` to the second layer, whose ``W1 = 0`` makes ``y_hat = 0``: against labels
    ``y`` the rows are ``-y`` into the second layer and ``0`` into the first (finite), and the second
    layer's weight gradient summed over the samples is ``-sum_k x_k y_k^T``."""
    first, second = Dense(2, 2), Dense(2, 2)
    first.W[...] = np.eye(2)
    second.W[...] = 0.0
    return Network([first, second], "mse")


STEPS = {"train_batch": Network.train_batch, "train_step_batched": Network.train_step_batched}


@pytest.mark.parametrize("step", sorted(STEPS))
@pytest.mark.parametrize("samples", [1, 2])
def test_a_gradient_that_overflows_unscaled_is_refused_at_a_tiny_lr(step, samples):
    # one sample: x y^T = 1e200 * 1e150 = 1e350 overflows; two samples: each x_k y_k^T = 1.2e308 is finite,
    # their sum (the reference's, before 1/N) 2.4e308 is not. lr = 1e-300 times either would be finite
    # (the batched path folds lr into the backward): the refusal must not depend on where lr is applied
    X = np.tile([[1e200, 0.0]], (samples, 1))
    over = 1e150 if samples == 1 else 1.2e108
    net = _weight_gradient_net()
    before = state_snapshot(net)
    with pytest.raises(NonFiniteError, match=r"^steps\[1\]\['W'\]: expected finite values, got NaN or inf"):
        _quietly(lambda: STEPS[step](net, X, np.full((samples, 2), over), 1e-300))
    assert same_snapshot(before, state_snapshot(net))


def test_a_gradient_just_below_overflow_gives_the_same_step_at_a_tiny_lr():
    X = np.tile([[1e200, 0.0]], (2, 1))
    Y = np.full((2, 2), 0.8e108)  # near miss: each x_k y_k^T 0.8e308, their sum 1.6e308: finite
    nets = {step: _weight_gradient_net() for step in STEPS}
    losses = {step: _quietly(lambda: STEPS[step](nets[step], X, Y, 1e-300)) for step in STEPS}  # noqa: B023
    assert losses["train_batch"] == losses["train_step_batched"] == 0.8e108**2
    W_ref, W_bat = (nets[s].layers[1].W for s in ("train_batch", "train_step_batched"))
    assert W_ref[0, 0] == pytest.approx(0.8e8, rel=1e-15)  # -lr * (-0.8e308): the step was taken
    assert np.abs(W_bat - W_ref).max() <= 4 * eps_of(np.float64) * np.abs(W_ref).max()


@pytest.mark.parametrize("step", sorted(STEPS))
def test_rows_finite_unscaled_are_not_refused_at_a_large_lr(step):
    # rows into the first layer -+1.6e308 (samples 2 and 3, labels of opposite signs): finite. lr = 10 times
    # them, even with the batch mean's 1/4, would overflow; the step itself is finite (the bias gradient,
    # the rows' mean, is ~1e300; the weight gradient ~1e-300 times the rows): both paths take it
    X = np.full((N, 2), 1e-300)  # y_hat = 2 X 1e300 = 2 for every sample
    nets = {s: _row_net() for s in STEPS}
    Y = _labels(NEAR, 2, last=-NEAR)
    losses = {s: _quietly(lambda: STEPS[s](nets[s], X, Y, 10.0)) for s in STEPS}  # noqa: B023
    assert losses["train_batch"] == pytest.approx(losses["train_step_batched"], rel=1e-15)
    theta = {s: nets[s].flat_params() for s in STEPS}
    assert np.isfinite(theta["train_batch"]).all()
    ref, bat = theta["train_batch"], theta["train_step_batched"]
    # the bias step sums terms lr * row / N up to 4e308 (the rows cancel): rounding of that size, summed in
    # another order; written as 16 eps (10 / N) 1.6e308 so that no factor overflows
    assert np.abs(bat - ref).max() <= 16 * eps_of(np.float64) * (10.0 / N) * (2 * NEAR * 1e300)
    assert not np.array_equal(ref, _row_net().flat_params())  # the step was taken
    # near miss: rows -+4e308 (not finite unscaled) are refused at lr = 10, on both paths
    _refusal(f"{step} lr=10", _row_net(), X, _labels(OVER, 2, last=-OVER))


# --------------------------------------------------------------------------- the loss's rows


def _probability_net(log_p):
    """One softmax layer over two classes with ``W = 0`` and biases ``(0, log_p)``: every sample's
    probability of class 1 is ``exp(log_p)`` (``-744``: 1e-323, subnormal; ``-700``: 1e-304); cross-entropy
    from probabilities against class 1 has the finite loss ``-log_p`` and the row ``-1 / p``."""
    layer = Dense(1, 2, activation="softmax")
    layer.W[...] = 0.0
    layer.b[...] = [0.0, log_p]
    return Network([layer], "cross_entropy")


LOSS_ROW_CALLS = ["loss_and_gradients", "loss_and_gradients_batched", "train_batch", "train_step_batched"]


@pytest.mark.parametrize("call", LOSS_ROW_CALLS)
def test_a_loss_row_that_overflows_under_a_finite_loss_is_refused_alike(call):
    X, labels = np.zeros((N, 1)), np.array([0, 0, 1, 0])  # sample 2's row -1/1e-323 overflows
    run = {
        "loss_and_gradients": lambda net: net.loss_and_gradients(X, labels),
        "loss_and_gradients_batched": lambda net: net.loss_and_gradients_batched(X, labels),
        "train_batch": lambda net: net.train_batch(X, labels, 1e-300),
        "train_step_batched": lambda net: net.train_step_batched(X, labels, 1e-300),
    }[call]
    net = _probability_net(-744.0)
    before = state_snapshot(net)
    expected = "layers[0]: gradient row into the layer[2]: expected finite values, got np.float64(-inf) "
    with pytest.raises(NonFiniteError) as info:
        _quietly(lambda: run(net))
    assert str(info.value) == expected + "(an overflow inside the network)"
    assert same_snapshot(before, state_snapshot(net))
    # near miss: p = 1e-304, the row -1e304 is finite; both paths give the same loss and gradients
    if call.startswith("loss"):
        loss, grads = _quietly(lambda: run(_probability_net(-700.0)))
        other = "loss_and_gradients" if call.endswith("batched") else "loss_and_gradients_batched"
        loss2, grads2 = _quietly(lambda: getattr(_probability_net(-700.0), other)(X, labels))
        assert loss == pytest.approx(loss2, rel=1e-15) and loss == pytest.approx(175.0, rel=1e-15)
        for g, g2 in zip(grads, grads2):
            for k in g:
                assert np.abs(g[k] - g2[k]).max() <= 4 * eps_of(np.float64) * np.abs(g2[k]).max()
    else:
        net = _probability_net(-700.0)
        _quietly(lambda: run(net))
        assert not same_snapshot(before, state_snapshot(net))  # the step was taken


def test_rows_through_batch_norm_and_dropout_are_refused_alike():
    # the network of tests/test_refused_step_state.py (Dense, BatchNorm, ReLU, Dropout, Dense): gamma 1e-300
    # and last weights +-1e308 give rows 2e308 into the dropout layer (the batched dX: 2e308 / 6, finite)
    X6, labels = np.random.default_rng(0).normal(size=(6, 3)), np.ones(6, dtype=int)

    def net_with(w):
        net = stateful_net(loss="softmax_cross_entropy")
        net.layers[1].gamma[:] = 1e-300
        net.layers[-1].W[...] = np.array([1.0, -1.0, 1.0]) * w
        return net

    calls = [
        lambda n: n.loss_and_gradients(X6, labels),
        lambda n: n.loss_and_gradients_batched(X6, labels),
        lambda n: n.train_batch(X6, labels, 1e-300),
        lambda n: n.train_step_batched(X6, labels, 1e-300),
    ]
    messages = set()
    for call in calls:
        net = net_with(1e308)
        before = state_snapshot(net)
        with pytest.raises(NonFiniteError) as info:
            _quietly(lambda: call(net))  # noqa: B023 (called at once)
        assert same_snapshot(before, state_snapshot(net))
        messages.add(str(info.value))
    assert messages == {
        "layers[3]: gradient row into the layer[1]: expected finite values, got np.float64(inf) "
        "(an overflow inside the network)"
    }
    for call in calls:  # near miss: weights 1e300, rows ~2e300: every call runs, quietly
        _quietly(lambda: call(net_with(1e300)))  # noqa: B023


def test_float32_rows_are_judged_unscaled_without_rounding_the_factor_to_float32():
    # float32, lr = 1e-40: the factor lr / N = 2.5e-41 is not rounded to float32 (there it is subnormal, and
    # 1e-46 would be 0, refusing everything). The last sample's rows 2 a 1e30: a = 2e8 gives 4e38, not finite
    X32 = X0.astype(np.float32)
    net = _row_net(w=1e30).astype(np.float32)
    before = state_snapshot(net)
    with pytest.raises(NonFiniteError) as info:
        _quietly(lambda: net.train_step_batched(X32, _labels(2e8, N - 1).astype(np.float32), 1e-40))
    assert str(info.value).startswith("layers[0]: gradient row into the layer[3]: expected finite values, got ")
    assert "np.float32(-inf)" in str(info.value)
    assert same_snapshot(before, state_snapshot(net))
    for lr in (1e-40, 1e-46):  # near miss: a = 1e8, rows 2e38, finite in float32: the steps are taken
        net = _row_net(w=1e30).astype(np.float32)
        _quietly(lambda: net.train_step_batched(X32, _labels(1e8, N - 1).astype(np.float32), lr))  # noqa: B023 (called at once)
        assert np.isfinite(net.flat_params()).all()
