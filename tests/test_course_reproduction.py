"""Reproducing a course's numbers: fixed-step central differences bit for bit against CS231n's and the
book's loops (restated), and CS231n's FullyConnectedNet initial losses from a numpy RandomState."""

from __future__ import annotations

import numpy as np
import pytest

import jacobian_nn as jn
from support import same_bits


def cs231n_eval_numerical_gradient(f, x, h=0.00001):
    """CS231n's gradient_check.eval_numerical_gradient, restated (it perturbs x in place)."""
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"], op_flags=["readwrite"])
    while not it.finished:
        ix = it.multi_index
        oldval = x[ix]
        x[ix] = oldval + h
        fxph = f(x)
        x[ix] = oldval - h
        fxmh = f(x)
        x[ix] = oldval
        grad[ix] = (fxph - fxmh) / (2 * h)
        it.iternext()
    return grad


def book_numerical_gradient(f, x):
    """Deep Learning from Scratch's numerical_gradient (h = 1e-4), restated."""
    h = 1e-4
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"], op_flags=["readwrite"])
    while not it.finished:
        idx = it.multi_index
        tmp_val = x[idx]
        x[idx] = float(tmp_val) + h
        fxh1 = f(x)
        x[idx] = tmp_val - h
        fxh2 = f(x)
        grad[idx] = (fxh1 - fxh2) / (2 * h)
        x[idx] = tmp_val
        it.iternext()
    return grad


def small_problem():
    net = jn.FullyConnectedNet([6], input_dim=4, num_classes=3, reg=0.1, weight_scale=0.5, seed=0)
    rng = np.random.default_rng(1)
    return net, rng.normal(size=(5, 4)), rng.integers(0, 3, 5)


@pytest.mark.parametrize(
    "course, h", [(cs231n_eval_numerical_gradient, 1e-5), (book_numerical_gradient, 1e-4)], ids=["cs231n", "book"]
)
def test_central_differences_reproduce_the_courses_bit_for_bit(course, h):
    net, X, y = small_problem()
    W = net.layers[0].W

    def loss_at(w):
        saved = W.copy()
        W[...] = np.reshape(w, W.shape)
        try:
            return net.loss_and_gradients_batched(X, y)[0]
        finally:
            W[...] = saved

    W0 = W.copy()
    ours = jn.fd_gradient(loss_at, W, method="central", step=h)
    assert same_bits(W, W0)  # x is not touched
    theirs = course(lambda w: loss_at(w), W.copy())
    assert same_bits(ours.df.reshape(W.shape), theirs)
    assert np.all(ours.error == 0) and ours.success.all()
    analytic = net.loss_and_gradients_batched(X, y)[1][0]["W"]
    assert np.allclose(ours.df.reshape(W.shape), analytic, rtol=1e-6, atol=1e-8)  # and it is a gradient
    # the near miss: another step gives other bits
    other = jn.fd_gradient(loss_at, W, method="central", step=h * 2)
    assert not same_bits(other.df, ours.df)


def test_central_difference_arguments():
    f = lambda v: float(np.sum(v**2))  # noqa: E731
    with pytest.raises(ValueError, match="step: method='central' needs"):
        jn.fd_gradient(f, np.ones(2), method="central")
    with pytest.raises(ValueError, match="step: only used with method='central'"):
        jn.fd_gradient(f, np.ones(2), step=1e-5)
    with pytest.raises(ValueError, match="method: expected"):
        jn.fd_gradient(f, np.ones(2), method="forward", step=1e-5)
    with pytest.raises(ValueError, match="takes only step"):
        jn.fd_gradient(f, np.ones(2), method="central", step=1e-5, initial_step=1e-2)
    assert jn.fd_gradient(f, np.ones(2)).df.shape == (1, 2)  # the adaptive default still works


def cs231n_initial_loss(X, y, Ws, reg):
    """CS231n's FullyConnectedNet.loss at initialisation, restated: affine-relu layers, affine, softmax
    loss, 0.5 * reg * sum W^2 (biases are zeros at initialisation)."""
    a = X
    for W in Ws[:-1]:
        a = np.maximum(0, a.dot(W))
    scores = a.dot(Ws[-1])
    shifted = scores - np.max(scores, axis=1, keepdims=True)
    log_probs = shifted - np.log(np.sum(np.exp(shifted), axis=1, keepdims=True))
    loss = -np.sum(log_probs[np.arange(X.shape[0]), y]) / X.shape[0]
    return loss + sum(0.5 * reg * np.sum(W * W) for W in Ws)


def test_fully_connected_net_from_a_random_state_reproduces_cs231n_initial_losses():
    """The CS231n notebook: np.random.seed(231); X = randn(2, 15); y = randint(10, size=(2,)); then for
    reg in [0, 3.14] a FullyConnectedNet([20, 30], weight_scale=5e-2): 'Initial loss' 2.3004790897684924
    and 7.052114776533016 as the notebook prints them."""
    global_state = np.random.get_state()
    rs = np.random.RandomState(231)
    N, D, H1, H2, C = 2, 15, 20, 30, 10
    X = rs.randn(N, D)
    y = rs.randint(C, size=(N,))
    restated = np.random.RandomState(231)
    restated.randn(N, D), restated.randint(C, size=(N,))
    printed = {0: 2.3004790897684924, 3.14: 7.052114776533016}
    for reg in [0, 3.14]:
        model = jn.FullyConnectedNet(
            [H1, H2], input_dim=D, num_classes=C, reg=reg, weight_scale=5e-2, dtype=np.float64, seed=rs
        )
        Ws = [5e-2 * restated.randn(a, b) for a, b in [(D, H1), (H1, H2), (H2, C)]]
        assert all(same_bits(model.named_params[f"W{i + 1}"], W) for i, W in enumerate(Ws))
        assert all(not model.named_params[f"b{i}"].any() for i in (1, 2, 3))
        loss_b = model.loss_and_gradients_batched(X, y)[0]
        loss_r = model.loss_and_gradients(X, y)[0]
        assert loss_b == pytest.approx(cs231n_initial_loss(X, y, Ws, reg), rel=1e-15, abs=0)
        assert loss_b == pytest.approx(printed[reg], rel=1e-15, abs=0) and loss_r == pytest.approx(
            printed[reg], rel=1e-15, abs=0
        )
    state = np.random.get_state()
    assert state[0] == global_state[0] and np.array_equal(state[1], global_state[1]) and state[2:] == global_state[2:]
    # the near miss: a notebook order with one draw fewer gives other weights
    skipped = np.random.RandomState(231)
    skipped.randn(N, D)
    other = jn.FullyConnectedNet([H1, H2], input_dim=D, num_classes=C, weight_scale=5e-2, seed=skipped)
    assert other.loss_and_gradients_batched(X, y)[0] != pytest.approx(printed[0], rel=1e-6, abs=0)


def test_random_state_with_dropout_and_batch_norm():
    """Dropout Generators come from the RandomState's state without drawing from it: the weights are the
    course's, and the RandomState is where the weights left it."""
    rs, twin = np.random.RandomState(5), np.random.RandomState(5)
    net = jn.FullyConnectedNet(
        [4], input_dim=3, num_classes=2, dropout=0.5, use_batchnorm=True, weight_scale=0.1, seed=rs
    )
    W1, W2 = 0.1 * twin.randn(3, 4), 0.1 * twin.randn(4, 2)
    assert same_bits(net.named_params["W1"], W1) and same_bits(net.named_params["W2"], W2)
    assert rs.randn() == twin.randn()


# --------------------------------------------------------------------------- optimiser state from a course


def cs231n_adam(w, dw, config):
    """CS231n's optim.adam (the assignment's solution), restated: t incremented before use."""
    beta1, beta2, eps, lr = 0.9, 0.999, 1e-8, config["learning_rate"]
    t = config["t"] + 1
    m = beta1 * config["m"] + (1 - beta1) * dw
    v = beta2 * config["v"] + (1 - beta2) * dw**2
    next_w = w - lr * (m / (1 - beta1**t)) / (np.sqrt(v / (1 - beta2**t)) + eps)
    return next_w, {"learning_rate": lr, "m": m, "v": v, "t": t}


def dlai_adam(W, dW, v, s, t, learning_rate, beta1=0.9, beta2=0.999, epsilon=1e-8):
    """deeplearning.ai's update_parameters_with_adam for one array, restated (t: this update's number)."""
    v = beta1 * v + (1 - beta1) * dW
    s = beta2 * s + (1 - beta2) * dW**2
    v_corrected = v / (1 - beta1**t)
    s_corrected = s / (1 - beta2**t)
    return W - learning_rate * v_corrected / (np.sqrt(s_corrected) + epsilon), v, s


def test_adam_state_from_cs231n_and_deeplearning_ai():
    N, D = 4, 5
    w = np.linspace(-0.4, 0.6, num=N * D).reshape(N, D)
    dw = np.linspace(-0.6, 0.4, num=N * D).reshape(N, D)
    m = np.linspace(0.6, 0.9, num=N * D).reshape(N, D)
    v = np.linspace(0.7, 0.5, num=N * D).reshape(N, D)
    opt = jn.Adam(lr=1e-2)
    state = jn.OptimizerState(5, {"m": [{"W": m}], "v": [{"W": v}]})  # CS231n's config t = 5
    steps, new = opt.step([{"W": w}], [{"W": dw}], state)
    expected, cfg = cs231n_adam(w, dw, {"learning_rate": 1e-2, "m": m, "v": v, "t": 5})
    assert np.allclose(w + steps[0]["W"], expected, rtol=1e-14, atol=1e-16)
    assert new.t == cfg["t"] == 6 and np.allclose(new.buffers["v"][0]["W"], cfg["v"], rtol=1e-15)
    # deeplearning.ai: the same update is its t = 6 (its v is our m, its s our v)
    W_dlai, v_dlai, s_dlai = dlai_adam(w, dw, m, v, 6, 1e-2)
    assert np.allclose(w + steps[0]["W"], W_dlai, rtol=1e-14, atol=1e-16)
    # the near miss: passing deeplearning.ai's t unchanged is a different update
    other, _ = opt.step([{"W": w}], [{"W": dw}], jn.OptimizerState(6, state.buffers))
    assert not np.allclose(other[0]["W"], steps[0]["W"], rtol=1e-6, atol=0)


def test_momentum_and_rmsprop_state_from_cs231n():
    rng = np.random.default_rng(3)
    w, dw, vel, cache = (rng.normal(size=(3, 2)) for _ in range(4))
    cache = np.abs(cache)
    steps, _ = jn.Momentum(lr=1e-2, momentum=0.9).step(
        [{"W": w}], [{"W": dw}], jn.OptimizerState(0, {"velocity": [{"W": vel}]})
    )
    v_cs = 0.9 * vel - 1e-2 * dw  # CS231n sgd_momentum
    assert np.allclose(w + steps[0]["W"], w + v_cs, rtol=1e-15, atol=0)
    steps, _ = jn.RMSprop(lr=1e-2, rho=0.99, eps=1e-8).step(
        [{"W": w}], [{"W": dw}], jn.OptimizerState(0, {"s": [{"W": cache}]})
    )
    c = 0.99 * cache + 0.01 * dw**2  # CS231n rmsprop
    assert np.allclose(w + steps[0]["W"], w - 1e-2 * dw / (np.sqrt(c) + 1e-8), rtol=1e-15, atol=1e-17)
