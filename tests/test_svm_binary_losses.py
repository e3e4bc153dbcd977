"""CS231n's multiclass SVM loss, binary cross-entropy on probabilities and the fused sigmoid-BCE from
logits: reference against batched against finite differences, the SVM's kink at a margin of exactly 0,
the courses' own formulas restated, extreme logits against high-precision values, and labels."""

from __future__ import annotations

import mpmath
import numpy as np
import pytest

import jacobian_nn as jn
from jacobian_nn.fd import compare, fd_gradient
from support import assert_three_witnesses, cols

LOSS_NAMES = ("svm", "binary_cross_entropy", "sigmoid_binary_cross_entropy")


def cs231n_svm_loss(x, y):
    """CS231n's svm_loss (layers.py), restated: x (N, C) scores, y (N,) classes."""
    N = x.shape[0]
    correct = x[np.arange(N), y]
    margins = np.maximum(0, x - correct[:, np.newaxis] + 1.0)
    margins[np.arange(N), y] = 0
    loss = np.sum(margins) / N
    num_pos = np.sum(margins > 0, axis=1)
    dx = np.zeros_like(x)
    dx[margins > 0] = 1
    dx[np.arange(N), y] -= num_pos
    dx /= N
    return loss, dx


def test_registered_by_name():
    assert isinstance(jn.get_loss("svm"), jn.MulticlassSVM) and jn.get_loss("svm").delta == 1.0
    assert isinstance(jn.get_loss("binary_cross_entropy"), jn.BinaryCrossEntropy)
    assert isinstance(jn.get_loss("sigmoid_binary_cross_entropy"), jn.SigmoidBinaryCrossEntropy)


# --------------------------------------------------------------------------- SVM


def test_svm_matches_cs231n_and_the_reference_rows():
    rng = np.random.default_rng(0)
    S, y = rng.normal(size=(9, 5)) * 2, rng.integers(0, 5, 9)
    loss, G = jn.MulticlassSVM().forward_and_gradient_batched(S, y)
    loss_c, G_c = cs231n_svm_loss(S, y)
    assert loss == pytest.approx(loss_c, rel=1e-15) and np.allclose(G, G_c, rtol=1e-15, atol=0)
    svm = jn.MulticlassSVM()
    ref = [svm(s, int(k)) for s, k in zip(cols(S), y)]
    assert np.allclose(svm.per_sample_losses_batched(S, y), [r[0] for r in ref], rtol=1e-15, atol=0)
    assert np.allclose(G * 9, np.vstack([r[1] for r in ref]), rtol=1e-15, atol=0)
    one_hot = np.eye(5)[y]
    assert svm.forward_batched(S, one_hot) == loss  # one-hot rows accepted
    assert svm(S[0][:, None], one_hot[0][:, None])[0] == ref[0][0]


def test_svm_gradient_against_finite_differences_away_from_kinks():
    rng = np.random.default_rng(1)
    svm = jn.MulticlassSVM()
    for _ in range(5):
        s = rng.normal(size=(6, 1)) * 2
        y = int(rng.integers(0, 6))
        margins = s[:, 0] - s[y, 0] + 1
        margins[y] = 5
        if np.min(np.abs(margins)) < 0.05:
            continue
        fd = fd_gradient(lambda v: svm.forward(v[:, None], y), s)
        assert compare("dL/ds", svm.gradient(s, y), fd.df, err=fd.error).passed


def test_svm_kink_margin_exactly_zero():
    """s = [1, 2, 0], y = 1: margin_0 = 1 - 2 + 1 = 0 exactly. Convention: it contributes nothing
    (CS231n's margins > 0). One-sided differences: along s_0 from below and along s_y from above
    the loss is flat in that term, matching the stated gradient."""
    svm = jn.MulticlassSVM()
    s = np.array([[1.0], [2.0], [0.0]])
    loss, g = svm(s, 1)
    assert loss == 0.0 and np.array_equal(g, [[0.0, 0.0, 0.0]])
    S = s.T
    assert np.array_equal(svm.gradient_batched(S, np.array([1])), [[0.0, 0.0, 0.0]])
    assert np.array_equal(cs231n_svm_loss(S, np.array([1]))[1], [[0.0, 0.0, 0.0]])
    below = fd_gradient(lambda v: svm.forward(np.array([[v[0]], [2.0], [0.0]]), 1), [1.0], step_direction=-1)
    above = fd_gradient(lambda v: svm.forward(np.array([[1.0], [v[0]], [0.0]]), 1), [2.0], step_direction=1)
    assert abs(below.df[0, 0]) < 1e-9 and abs(above.df[0, 0]) < 1e-9
    # the near miss: a margin of +2^-30 is counted
    s_plus = np.array([[1.0 + 2.0**-30], [2.0], [0.0]])
    loss_p, g_p = svm(s_plus, 1)
    assert loss_p == 2.0**-30 and np.array_equal(g_p, [[1.0, -1.0, 0.0]])
    assert np.array_equal(svm.gradient_batched(s_plus.T, np.array([1])), [[1.0, -1.0, 0.0]])


def test_svm_labels_refused():
    svm = jn.MulticlassSVM()
    with pytest.raises(ValueError, match="one correct class"):
        svm(np.zeros((3, 1)), np.array([[0.5], [0.5], [0.0]]))
    with pytest.raises(ValueError, match="one correct class"):
        svm.forward_batched(np.zeros((2, 3)), np.array([[1.0, 1.0, 0.0], [0.0, 1.0, 0.0]]))
    with pytest.raises(ValueError, match=r"class index in \[0, 3\)"):
        svm(np.zeros((3, 1)), 3)
    with pytest.raises(ValueError, match="delta"):
        jn.MulticlassSVM(delta=0.0)


# --------------------------------------------------------------------------- binary cross-entropy


def deeplearning_ai_propagate(w, b, X, Y):
    """deeplearning.ai's logistic-regression propagate, restated: X (n, m), Y (1, m), w (n, 1)."""
    m = X.shape[1]
    A = 1 / (1 + np.exp(-(w.T @ X + b)))
    cost = -np.sum(Y * np.log(A) + (1 - Y) * np.log(1 - A)) / m
    dw = X @ (A - Y).T / m
    db = np.sum(A - Y) / m
    return cost, dw, db


@pytest.mark.parametrize("loss", ["binary_cross_entropy", "sigmoid_binary_cross_entropy"])
def test_logistic_regression_matches_deeplearning_ai(loss):
    rng = np.random.default_rng(2)
    X, Y = rng.normal(size=(20, 3)), rng.random(20) < 0.5  # bool labels
    net = jn.Network.build([3, 1], loss=loss, init="xavier", seed=0)
    net.layers[0].b[:] = 0.3
    cost, dw, db = deeplearning_ai_propagate(net.layers[0].W, 0.3, X.T, Y[None].astype(float))
    for value, grads in (net.loss_and_gradients(X, Y), net.loss_and_gradients_batched(X, Y)):
        assert value == pytest.approx(cost, rel=1e-13)
        assert np.allclose(grads[0]["W"], dw, rtol=1e-12, atol=1e-15)
        assert grads[0]["b"][0] == pytest.approx(db, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("name", ["binary_cross_entropy", "sigmoid_binary_cross_entropy"])
def test_binary_losses_reference_batched_and_fd(name):
    rng = np.random.default_rng(3)
    loss = jn.get_loss(name)
    Z = rng.normal(size=(7, 3)) * 2
    Yh = 1 / (1 + np.exp(-Z)) if name == "binary_cross_entropy" else Z
    Y = rng.random((7, 3))  # soft labels in [0, 1]
    Y[0] = [0.0, 1.0, 1.0]
    value, G = loss.forward_and_gradient_batched(Yh, Y)
    ref = [loss(yh, y) for yh, y in zip(cols(Yh), cols(Y))]
    assert value == pytest.approx(np.mean([r[0] for r in ref]), rel=1e-14)
    assert np.allclose(G * 7, np.vstack([r[1] for r in ref]), rtol=1e-14, atol=1e-16)
    assert np.allclose(loss.per_sample_losses_batched(Yh, Y), [r[0] for r in ref], rtol=1e-14)
    for k in range(3):
        y = Y[k][:, None]
        fd = fd_gradient(lambda v: loss.forward(v[:, None], y), Yh[k], initial_step=1e-3)
        assert compare("dL/dy_hat", ref[k][1], fd.df, err=fd.error).passed


def test_fused_equals_bce_of_sigmoid_at_moderate_logits():
    z = np.linspace(-8, 8, 7)[:, None]
    y = np.array([[1], [0], [1], [1], [0], [0], [1]], dtype=bool)
    p = 1 / (1 + np.exp(-z))
    a, ga = jn.SigmoidBinaryCrossEntropy()(z, y)
    b, gb = jn.BinaryCrossEntropy()(p, y)
    assert a == pytest.approx(b, rel=1e-12)
    assert np.allclose(ga, gb * (p * (1 - p)).T, rtol=1e-10, atol=1e-15)  # chain rule through the sigmoid


@pytest.mark.parametrize("z", [-1000.0, -745.0, -40.0, -1e-8, 0.0, 1e-8, 36.0, 40.0, 700.0, 1000.0])
@pytest.mark.parametrize("y", [0.0, 1.0, 0.3])
def test_fused_is_accurate_for_any_logit(z, y):
    """Against 50-digit mpmath: L = log(1 + e^z) - y z, dL/dz = sigmoid(z) - y."""
    mpmath.mp.dps = 50
    zm, ym = mpmath.mpf(z), mpmath.mpf(y)
    exact_loss = mpmath.log1p(mpmath.exp(zm)) - ym * zm
    exact_grad = 1 / (1 + mpmath.exp(-zm)) - ym
    loss, g = jn.SigmoidBinaryCrossEntropy()(np.array([[z]]), np.array([[y]]))
    lb, gb = jn.SigmoidBinaryCrossEntropy().forward_and_gradient_batched(np.array([[z]]), np.array([[y]]))
    for got_l, got_g in ((loss, g[0, 0]), (lb, gb[0, 0])):
        assert np.isfinite(got_l) and np.isfinite(got_g)
        assert abs(got_l - float(exact_loss)) <= 4 * np.finfo(float).eps * abs(float(exact_loss)) + 1e-300
        assert abs(got_g - float(exact_grad)) <= 4 * np.finfo(float).eps * abs(float(exact_grad)) + 1e-300


def test_binary_labels_and_refusals():
    bce = jn.BinaryCrossEntropy()
    p = np.array([[0.2], [0.9]])
    assert bce(p, np.array([[True], [False]]))[0] == bce(p, np.array([[1.0], [0.0]]))[0]  # bools
    assert jn.BinaryCrossEntropy()(np.array([[0.25]]), True)[0] == pytest.approx(np.log(4))  # a scalar when m = 1
    with pytest.raises(ValueError, match="infinite"):
        bce(np.array([[0.0]]), 1.0)
    with pytest.raises(ValueError, match="infinite"):
        bce(np.array([[1.0]]), 0.0)
    assert bce(np.array([[0.0]]), 0.0)[0] == 0.0  # the near miss: p = 0 where the label is 0
    assert bce(np.array([[1.0]]), 1.0)[0] == 0.0
    with pytest.raises(ValueError, match=r"labels in \[0, 1\]"):
        bce(p, np.array([[2.0], [0.0]]))
    with pytest.raises(ValueError, match=r"probabilities in \[0, 1\]"):
        bce(np.array([[1.5]]), 1.0)
    with pytest.raises(ValueError, match="shape"):
        bce.forward_batched(np.full((3, 2), 0.5), np.array([1, 0, 1]))  # (N,) only when m = 1
    assert bce.forward_batched(np.full((3, 1), 0.5), np.array([1, 0, 1])) == pytest.approx(np.log(2))
    with pytest.raises(ValueError, match="already applies sigmoid"):
        jn.Network.build([2, 1], output_activation="sigmoid", loss="sigmoid_binary_cross_entropy")


@pytest.mark.parametrize("name", LOSS_NAMES)
def test_networks_with_each_loss_both_paths_and_fd(name):
    rng = np.random.default_rng(4)
    m = 3 if name == "svm" else 2
    net = jn.Network.build([4, 5, m], "tanh", loss=name, init="xavier", seed=1, l2=1e-3)
    X = rng.normal(size=(6, 4))
    Y = rng.integers(0, 3, 6) if name == "svm" else rng.random((6, 2)) < 0.5
    loss, grads = assert_three_witnesses(net, X, Y)
    per = net.per_sample_gradients_batched(X, Y)
    assert np.allclose(per[0]["W"].mean(axis=0), grads[0]["W"], rtol=1e-12, atol=1e-15)
    assert np.allclose(net.per_sample_losses_batched(X, Y).mean() + net.penalty(), loss, rtol=1e-13)
