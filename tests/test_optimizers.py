"""Optimisers: each update formula against an independent loop, no mutation, explicit state."""

import numpy as np
import pytest
from hypothesis import given, strategies as st

from jacobian_nn import Network
from jacobian_nn.optimizers import (
    OPTIMIZERS,
    SGD,
    AdaGrad,
    Adam,
    Momentum,
    Nesterov,
    OptimizerState,
    RMSprop,
    make_optimizer,
)

TOL = 1e-13


def _params(seed):
    rng = np.random.default_rng(seed)
    return [{"W": rng.normal(size=(3, 2)), "b": rng.normal(size=2)}]


def _grads(rng):
    return [{"W": rng.normal(size=(3, 2)), "b": rng.normal(size=2)}]


def _run(opt, n_steps, seed):
    """Apply n_steps of opt to fresh params with fresh random gradients; return the flat steps."""
    params, rng = _params(seed), np.random.default_rng(seed + 1)
    state = opt.init_state(params)
    out = []
    for _ in range(n_steps):
        g = _grads(rng)
        steps, state = opt.step(params, g, state)
        out.append(
            (np.concatenate([g[0]["W"].ravel(), g[0]["b"]]), np.concatenate([steps[0]["W"].ravel(), steps[0]["b"]]))
        )
    return out, state


@pytest.mark.parametrize("n_steps", [1, 5])
def test_formulas_against_scalar_loops(n_steps):
    lr = 0.03
    cases = {
        "sgd": SGD(lr),
        "momentum": Momentum(lr, 0.8),
        "nesterov": Nesterov(lr, 0.8),
        "adagrad": AdaGrad(lr, 1e-7),
        "rmsprop": RMSprop(lr, 0.9, 1e-8),
        "adam": Adam(lr, 0.9, 0.99, 1e-8),
    }
    for name, opt in cases.items():
        pairs, state = _run(opt, n_steps, seed=3)
        assert state.t == n_steps
        for i in range(pairs[0][0].size):  # one scalar at a time, textbook form
            v = h = m = s = 0.0
            for t, (g_all, step_all) in enumerate(pairs, start=1):
                g = g_all[i]
                if name == "sgd":
                    expected = -lr * g
                elif name == "momentum":
                    v = 0.8 * v - lr * g
                    expected = v
                elif name == "nesterov":
                    v_old, v = v, 0.8 * v - lr * g
                    expected = -0.8 * v_old + 1.8 * v
                elif name == "adagrad":
                    h += g * g
                    expected = -lr * g / (np.sqrt(h) + 1e-7)
                elif name == "rmsprop":
                    s = 0.9 * s + 0.1 * g * g
                    expected = -lr * g / (np.sqrt(s) + 1e-8)
                else:
                    m = 0.9 * m + 0.1 * g
                    s = 0.99 * s + 0.01 * g * g
                    expected = -lr * (m / (1 - 0.9**t)) / (np.sqrt(s / (1 - 0.99**t)) + 1e-8)
                assert abs(step_all[i] - expected) <= TOL * max(1.0, abs(expected)), (name, t, i)


def test_adam_first_step_is_lr_times_sign():
    # t = 1: m_hat = g and v_hat = g^2 exactly, so step = -lr g / (|g| + eps)
    params = _params(0)
    g = [{"W": np.full((3, 2), 2.5), "b": np.array([-4.0, 1e-3])}]
    steps, state = Adam(lr=0.1, eps=1e-12).step(params, g, Adam(lr=0.1).init_state(params))
    assert state.t == 1
    np.testing.assert_allclose(steps[0]["W"], -0.1, rtol=1e-10)
    np.testing.assert_allclose(steps[0]["b"], [0.1, -0.1], rtol=1e-8)


def test_nesterov_lookahead_form_matches_classic_nag_on_a_quadratic():
    # classic NAG: v <- mu v - eta grad(theta + mu v); theta <- theta + v.
    # Our parameters are phi = theta + mu v; check that phi follows it.
    A = np.array([[3.0, 0.5], [0.5, 1.0]])
    mu, eta = 0.9, 0.05
    theta, v = np.array([1.0, -2.0]), np.zeros(2)
    params = [{"W": theta.copy().reshape(2, 1), "b": np.zeros(1)}]
    opt = Nesterov(eta, mu)
    state = opt.init_state(params)
    for _ in range(20):
        v = mu * v - eta * A @ (theta + mu * v)
        theta = theta + v
        phi = params[0]["W"][:, 0]
        steps, state = opt.step(params, [{"W": (A @ phi).reshape(2, 1), "b": np.zeros(1)}], state)
        params = [{k: params[0][k] + steps[0][k] for k in steps[0]}]
        np.testing.assert_allclose(params[0]["W"][:, 0], theta + mu * v, rtol=1e-12, atol=1e-14)


@given(st.sampled_from(sorted(OPTIMIZERS)), st.integers(1, 4), st.integers(1, 4))
def test_step_mutates_nothing(name, n, m):
    rng = np.random.default_rng(n * 10 + m)
    params = [{"W": rng.normal(size=(n, m)), "b": rng.normal(size=m)}]
    grads = [{"W": rng.normal(size=(n, m)), "b": rng.normal(size=m)}]
    opt = make_optimizer(name, 0.1)
    state = opt.init_state(params)
    steps, state = opt.step(params, grads, state)  # a non-trivial state
    before = [[{k: v.copy() for k, v in d.items()} for d in tree] for tree in (params, grads)]
    bufs = {k: [{n_: a.copy() for n_, a in d.items()} for d in v] for k, v in state.buffers.items()}
    hyper = opt.hyperparameters()
    steps2, state2 = opt.step(params, grads, state)
    for tree, saved in zip((params, grads), before):
        for d, s in zip(tree, saved):
            for k in d:
                assert np.array_equal(d[k], s[k])
    for k, v in state.buffers.items():
        for d, s in zip(v, bufs[k]):
            assert all(np.array_equal(d[n_], s[n_]) for n_ in d)
    assert state.t == 1 and state2.t == 2 and opt.hyperparameters() == hyper


def test_failed_update_leaves_params_and_state():
    net = Network.build([2, 3, 2], "tanh", seed=0)
    before = [{k: v.copy() for k, v in p.items()} for p in net.params]
    opt = SGD(lr=1e308)
    state = opt.init_state(net.params)
    grads = [{k: np.full_like(v, -1e308) for k, v in p.items()} for p in net.params]
    with np.errstate(over="ignore"):
        steps, new_state = opt.step(net.params, grads, state)  # steps overflow to inf
    with pytest.raises(ValueError, match="not finite"):
        net.apply_update(steps)
    for p, b in zip(net.params, before):
        assert all(np.array_equal(p[k], b[k]) for k in p)
    assert state.t == 0


def test_lr_override_and_bad_input():
    params = _params(0)
    g = [{k: np.ones_like(v) for k, v in params[0].items()}]
    opt = SGD(lr=0.5)
    steps, _ = opt.step(params, g, opt.init_state(params), lr=0.25)
    assert np.all(steps[0]["W"] == -0.25) and opt.lr == 0.5
    for bad in (0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="lr"):
            Adam(lr=bad)
    with pytest.raises(ValueError, match="optimizer: expected one of"):
        make_optimizer("adamw", 0.1)
    with pytest.raises(ValueError, match="momentum"):
        Momentum(0.1, momentum=1.0)
    with pytest.raises(ValueError, match=r"grads\[0\]\['W'\]: expected shape"):
        opt.step(params, [{"W": np.ones((2, 3)), "b": np.ones(2)}], opt.init_state(params))
    with pytest.raises(ValueError, match="buffers"):
        Adam().step(params, g, Momentum().init_state(params))
    with pytest.raises(TypeError, match="OptimizerState"):
        SGD().step(params, g, {"t": 0})
    assert isinstance(SGD().init_state(params), OptimizerState)


def _state_copy(state):
    return {k: [{n: a.copy() for n, a in d.items()} for d in v] for k, v in state.buffers.items()}, state.t


@pytest.mark.parametrize(
    "make_state, exc, message",
    [
        (lambda s: OptimizerState(-1, s.buffers), ValueError, r"state\.t: expected a non-negative integer"),
        (lambda s: OptimizerState("3", s.buffers), TypeError, r"state\.t: expected a non-negative integer.*str"),
        (lambda s: OptimizerState(2.0, s.buffers), TypeError, r"state\.t: .*float"),
        (lambda s: OptimizerState(True, s.buffers), TypeError, r"state\.t: .*bool"),
        (lambda s: OptimizerState(1, [1, 2]), TypeError, r"state\.buffers: expected a dict"),
        (lambda s: OptimizerState(1, {"m": 3, "v": s.buffers["v"]}), TypeError, r"state\.buffers\['m'\]"),
    ],
)
def test_state_construction_validates(make_state, exc, message):
    params = _params(0)
    with pytest.raises(exc, match=message):
        make_state(Adam().init_state(params))


def _bad(buffers, name, key, value):
    out = {k: [dict(d) for d in v] for k, v in buffers.items()}
    out[name][0][key] = value
    return out


@pytest.mark.parametrize(
    "edit, exc, message",
    [
        (
            lambda b: _bad(b, "m", "W", np.full((3, 2), np.nan)),
            ValueError,
            r"state\.buffers\['m'\]\[0\]\['W'\]: .*finite",
        ),
        (
            lambda b: _bad(b, "v", "b", np.array([np.inf, 0.0])),
            ValueError,
            r"state\.buffers\['v'\]\[0\]\['b'\]: .*finite",
        ),
        (
            lambda b: _bad(b, "v", "W", -np.ones((3, 2))),
            ValueError,
            r"\['v'\]\[0\]\['W'\]: a sum of squares must be >= 0",
        ),
        (
            lambda b: _bad(b, "m", "W", np.zeros((3, 2), np.float32)),
            TypeError,
            r"\['m'\]\[0\]\['W'\]: expected dtype float64",
        ),
        (lambda b: _bad(b, "m", "W", np.zeros((2, 3))), ValueError, r"\['m'\]\[0\]\['W'\]: expected shape \(3, 2\)"),
        (lambda b: _bad(b, "m", "W", [[0.0] * 2] * 3), TypeError, r"\['m'\]\[0\]\['W'\]: expected an ndarray"),
        (lambda b: {**b, "m": b["m"] * 2}, ValueError, r"state\.buffers\['m'\]: expected 1 layer entries"),
    ],
)
def test_step_refuses_bad_buffers_and_changes_nothing(edit, exc, message):
    params = _params(0)
    opt = Adam(0.1)
    grads = _grads(np.random.default_rng(1))
    _, good = opt.step(params, grads, opt.init_state(params))
    state = OptimizerState(good.t, edit(good.buffers))
    before = _state_copy(state), [{k: v.copy() for k, v in p.items()} for p in params]
    with pytest.raises(exc, match=message):
        opt.step(params, grads, state)
    assert state.t == before[0][1]
    for name, layers in state.buffers.items():
        for d, e in zip(layers, before[0][0][name]):
            assert all(np.array_equal(d[n], e[n], equal_nan=True) for n in d)
    assert all(np.array_equal(p[k], q[k]) for p, q in zip(params, before[1]) for k in p)


def test_negative_moments_are_fine_where_the_sign_is_free():
    # near miss of the sum-of-squares rule: Adam's m and the momentum velocity may be negative
    params = _params(0)
    grads = _grads(np.random.default_rng(1))
    for opt, name in ((Adam(0.1), "m"), (Momentum(0.1), "velocity")):
        state = opt.init_state(params)
        state = OptimizerState(3, {**state.buffers, name: [{k: -np.ones_like(v) for k, v in params[0].items()}]})
        steps, new = opt.step(params, grads, state)
        assert new.t == 4 and all(np.isfinite(s).all() for s in steps[0].values())
    assert OptimizerState(np.int64(5)).t == 5 and type(OptimizerState(np.int64(5)).t) is int


@pytest.mark.parametrize(
    "attr, value, exc",
    [("lr", -1.0, ValueError), ("lr", "0.1", TypeError), ("beta1", 1.0, ValueError), ("eps", float("nan"), ValueError)],
)
def test_hyperparameters_are_checked_when_set_later(attr, value, exc):
    opt = Adam(0.1)
    with pytest.raises(exc, match=attr):
        setattr(opt, attr, value)
    assert opt.hyperparameters() == {"lr": 0.1, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}
    opt.lr = 0.5  # near miss
    assert opt.lr == 0.5
