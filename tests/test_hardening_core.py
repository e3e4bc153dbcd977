"""Validate, then act; finite in, finite out: the core library's rules, each with its near miss.

The census (``tests/test_census.py``) holds the refusals as table rows; this file holds what a row
cannot say: that the rule does not fire on the input next to it, that the network is left exactly
as found, and what a refused training run leaves behind.
"""

from __future__ import annotations

import io
import contextlib

import numpy as np
import pytest

from jacobian_nn import (
    ACTIVATIONS,
    Adam,
    FullyConnectedNet,
    Network,
    SGD,
    Solver,
    TrainingDiverged,
    cross_check,
    data,
    fd_gradient,
    fd_jacobian,
    get_activation,
    sample_dropout_masks,
)
from jacobian_nn.cli import main


def _params(net):
    return [{k: v.copy() for k, v in p.items()} for p in net.params]


def _same(a, b):
    return all(np.array_equal(x[k], y[k]) and x[k].dtype == y[k].dtype for x, y in zip(a, b) for k in x)


# --------------------------------------------------------------------------- input conversion


def test_a_rectangular_list_is_accepted_where_a_ragged_one_is_refused_by_name():
    net = Network.build([3, 4, 2], "tanh", seed=0)
    X = [[0.1, 0.2, 0.3], [-1.0, 0.0, 2.0]]
    np.testing.assert_array_equal(net.predict_batched(X), net.predict_batched(np.array(X)))  # near miss
    with pytest.raises(ValueError, match=r"^X: expected a rectangular array"):
        net.predict_batched([[0.1, 0.2, 0.3], [1.0]])


# --------------------------------------------------------------------------- setters and updates


def test_set_flat_params_converts_integers_on_purpose_and_keeps_the_dtype_of_a_float32_network():
    net = Network.build([3, 5, 4], "tanh", seed=0)
    theta = np.arange(44)  # integers: converted, exactly
    net.set_flat_params(theta)
    np.testing.assert_array_equal(net.flat_params(), theta.astype(np.float64))
    net32 = Network.build([3, 5, 4], "tanh", seed=0, dtype=np.float32)
    net32.set_flat_params(np.linspace(-1, 1, 44, dtype=np.float32))  # its own precision: accepted
    assert net32.flat_params().dtype == np.float32
    np.testing.assert_array_equal(net32.flat_params(), np.linspace(-1, 1, 44, dtype=np.float32))


def test_set_flat_params_refuses_a_read_only_parameter_before_writing_any():
    net = Network.build([3, 5, 4], "tanh", seed=0)
    before = _params(net)
    net.layers[1].b.flags.writeable = False
    with pytest.raises(ValueError, match=r"^theta: params\[1\]\['b'\]: .*read-only"):
        net.set_flat_params(np.zeros(44))
    assert _same(before, net.params)


def test_apply_update_is_all_or_nothing_and_applies_everything_when_all_is_writeable():
    net = Network.build([3, 5, 4], "tanh", seed=0)
    before = _params(net)
    steps = [{k: np.full_like(v, 0.25) for k, v in p.items()} for p in net.params]
    net.layers[1].W.flags.writeable = False
    with pytest.raises(ValueError, match=r"^steps\[1\]\['W'\]: .*read-only"):
        net.apply_update(steps)
    assert _same(before, net.params)  # layer 0 was not written either
    net.layers[1].W.flags.writeable = True  # near miss: every array writeable
    net.apply_update(steps)
    assert all(np.array_equal(p[k], b[k] + 0.25) for p, b in zip(net.params, before) for k in p)


# --------------------------------------------------------------------------- finite in, finite out


@pytest.mark.parametrize("predict", ["predict", "predict_batched"])
def test_an_overflow_inside_a_layer_names_X_and_the_layer_on_both_paths(predict):
    net = Network.build([3, 5, 4], "tanh", seed=0)
    before = _params(net)
    with np.errstate(over="ignore"), pytest.raises(ValueError, match=r"^X: .*layers\[0\] .*not finite"):
        getattr(net, predict)(np.full((2, 3), 1e308))  # Z overflows to inf, tanh would saturate to +-1
    assert _same(before, net.params)
    out = getattr(net, predict)(np.full((2, 3), 1e150))  # near miss: large, no overflow, finite result
    assert np.isfinite(out).all() and np.all(np.abs(out) < 1e3)


def test_an_overflow_in_a_later_layer_is_named_there_and_a_training_step_writes_nothing():
    net = Network.build([2, 3, 2], "relu", output_activation="identity", seed=0)
    net.layers[0].W[...] = 1e200
    net.layers[1].W[...] = 1e200  # layer 0's output ~ 1e200 (finite), layer 1's ~ 1e400 (inf)
    before = _params(net)
    X, Y = np.array([[1.0, 1.0]]), np.array([0])
    for call in (
        lambda: net.train_step_batched(X, Y, 0.1),
        lambda: net.train_batch(X, Y, 0.1),
        lambda: net.accuracy_batched(X, Y),
    ):
        with np.errstate(over="ignore"), pytest.raises(ValueError, match=r"^X: .*layers\[1\] "):
            call()
        assert _same(before, net.params)
    with np.errstate(over="ignore"):
        assert np.isfinite(net.predict_batched(-X)).all()  # near miss: relu cuts the same weights to 0


# --------------------------------------------------------------------------- cross_check leaves the network as found


def test_cross_check_leaves_the_dropout_generators_as_found_and_a_training_step_still_draws_from_them():
    net = FullyConnectedNet([5, 4], input_dim=3, num_classes=3, dropout=0.4, use_batchnorm=True, seed=1)
    twin = FullyConnectedNet([5, 4], input_dim=3, num_classes=3, dropout=0.4, use_batchnorm=True, seed=1)
    rng = np.random.default_rng(3)
    X, Y = rng.normal(size=(6, 3)), rng.integers(0, 3, size=6)
    assert cross_check(net, X, Y, jacobians=False).passed
    with pytest.raises(ValueError, match=r"^X: "):  # an error on the way leaves them too
        cross_check(net, X[:, :2], Y)
    # the next training step draws the same masks as a network that was never cross-checked
    assert net.train_step_batched(X, Y, 0.1) == twin.train_step_batched(X, Y, 0.1)
    assert _same(_params(twin), net.params)
    # near miss: Generators advanced by one draw give another step (the comparison above can fail)
    fresh = FullyConnectedNet([5, 4], input_dim=3, num_classes=3, dropout=0.4, use_batchnorm=True, seed=1)
    ahead = FullyConnectedNet([5, 4], input_dim=3, num_classes=3, dropout=0.4, use_batchnorm=True, seed=1)
    sample_dropout_masks(ahead, 6)
    assert ahead.train_step_batched(X, Y, 0.1) != fresh.train_step_batched(X, Y, 0.1)


# --------------------------------------------------------------------------- activations' reference methods


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_every_activation_reference_method_refuses_a_non_finite_z_by_name(name, bad):
    act = get_activation(name)
    z = np.array([[0.5], [bad], [-0.25]])
    for method in (act.forward, act.jacobian):
        with pytest.raises(ValueError, match=r"^z: expected finite values, got .* at index \(1, 0\)"):
            method(z)
    ok = np.array([[700.0], [-700.0], [0.0]])  # near miss: extreme but finite
    assert np.isfinite(act.jacobian(ok)).all() and np.isfinite(act.forward(ok)).all()
    assert act.jacobian(np.array([[1], [0], [-2]])).shape == (3, 3)  # integers: accepted
    with np.errstate(invalid="ignore"):  # inf - inf inside softmax: check=False computes whatever it is given
        act.jacobian(z, check=False)  # the drivers' own z: check=False skips the check (and only that)


@pytest.mark.parametrize("z", [np.array([[1 + 0j], [0j]]), np.array([["1"], ["0"]])])
def test_activation_reference_methods_refuse_a_complex_or_string_z(z):
    with pytest.raises(TypeError, match=r"^z: expected a real"):
        get_activation("tanh").jacobian(z)


# --------------------------------------------------------------------------- a Solver that diverges


def _spiral():
    return data.spiral(n_per_class=20, n_classes=3, seed=0)


@pytest.mark.parametrize("path", ["batched", "reference"])
@pytest.mark.parametrize("optimizer", [SGD, Adam])
def test_a_diverging_solver_restores_the_best_parameters_and_names_the_learning_rate(path, optimizer):
    net = Network.build([2, 8, 3], "relu", seed=0)
    initial = _params(net)
    with (
        np.errstate(over="ignore"),
        pytest.raises(
            TrainingDiverged,
            match=r"^lr: training diverged .*"
            r"epoch 0 .* restored; lower the learning rate",
        ) as info,
    ):
        Solver(net, _spiral(), optimizer(1e300), epochs=2, batch_size=10, progress=False, path=path).train()
    assert info.value.history.best_epoch == 0 and info.value.history.iterations >= 1
    assert _same(initial, net.params)  # the best parameters seen: the initial ones here


def test_a_diverging_solver_restores_the_best_epoch_not_the_last_one():
    net = Network.build([2, 8, 3], "relu", seed=0)
    kept = {}

    def blow_up(info):  # after the first epoch, make the next step's loss overflow
        if info.epoch == 2 and not kept:
            kept["params"] = _params(net)
            net.layers[1].W[...] = 1e200
            net.layers[0].W[...] = 1e200

    solver = Solver(net, _spiral(), Adam(0.05), epochs=3, batch_size=10, progress=False, callback=blow_up)
    with np.errstate(over="ignore", invalid="ignore"), pytest.raises(TrainingDiverged) as info:
        solver.train()
    history = info.value.history
    assert history.epochs_completed == 1 and history.best_epoch in (0, 1)
    assert all(np.isfinite(p[k]).all() and np.abs(p[k]).max() < 1e100 for p in net.params for k in p)


def test_a_solver_with_a_sound_learning_rate_does_not_raise():
    net = Network.build([2, 8, 3], "relu", seed=0)
    history = Solver(net, _spiral(), Adam(0.01), epochs=2, batch_size=10, progress=False).train()
    assert history.epochs_completed == 2 and np.isfinite(history.loss).all()


def test_the_command_line_names_the_option_when_training_diverges():
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()), np.errstate(all="ignore"):
        code = main(
            [
                "train",
                "--dataset",
                "spiral",
                "--no-progress",
                "--epochs",
                "2",
                "--hidden",
                "8",
                "--activation",
                "relu",
                "--optimizer",
                "sgd",
                "--lr",
                "1e300",
            ]
        )
    assert code == 2
    assert "jacobian-nn train: error: --lr: training diverged" in err.getvalue()


# --------------------------------------------------------------------------- finite differences


def test_fd_gradient_of_a_function_returning_nan_raises_naming_fn_and_the_point():
    with pytest.raises(
        ValueError,
        match=r"^fn: returned a non-finite value \(nan in output entry 0\) at the probe "
        r"point \[1\. 2\.\]",
    ):
        fd_gradient(lambda v: np.nan * v.sum(), np.array([1.0, 2.0]))
    # NaN only at a probe point near x (log of a negative number), not at x itself
    with np.errstate(invalid="ignore"), pytest.raises(ValueError, match=r"^fn: returned a non-finite value"):
        fd_jacobian(lambda v: np.log(v), np.array([1e-4, 1.0]))
    with pytest.raises(ValueError, match=r"^x: expected finite"):
        fd_gradient(lambda v: v.sum(), np.array([1.0, np.inf]))
    # near miss: the same function where it is finite around x gives its exact derivative
    res = fd_jacobian(lambda v: np.log(v), np.array([0.5, 1.0]))
    np.testing.assert_allclose(res.df, np.diag([2.0, 1.0]), rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("call", ["train_step_batched", "loss_and_gradients"])
def test_an_overflow_after_batch_norm_leaves_its_running_statistics_and_the_generators_as_found(call):
    net = FullyConnectedNet([5, 4], input_dim=3, num_classes=4, dropout=0.3, use_batchnorm=True, seed=0)
    X, Y = np.random.default_rng(0).normal(size=(6, 3)), np.array([0, 1, 2, 3, 1, 0])

    def state():
        return (
            [{k: v.copy() for k, v in s.items()} for s in net.state],
            [layer.rng.bit_generator.state for layer in net.layers if hasattr(layer, "rng")],
        )

    def run():
        return net.train_step_batched(X, Y, 0.1) if call == "train_step_batched" else net.loss_and_gradients(X, Y)

    W = net.layers[-1].W.copy()
    net.layers[-1].W[...] = 1e308  # the last layer overflows, after the batch norms updated
    stats, gens = state()
    with np.errstate(over="ignore", invalid="ignore"), pytest.raises(ValueError, match=r"^X: .*layers\[8\]"):
        run()
    after_stats, after_gens = state()
    assert _same(stats, after_stats) and gens == after_gens
    net.layers[-1].W[...] = W  # near miss: the same call with sound weights moves both
    run()
    moved_stats, moved_gens = state()
    assert not _same(stats, moved_stats) and gens != moved_gens
