"""Reference losses: values, row gradients against scipy.differentiate, labels, refusals."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import jacobian_nn as jn
from jacobian_nn.fd import compare, fd_gradient


@st.composite
def prob_column(draw, m=None):
    m = draw(st.integers(2, 6)) if m is None else m
    w = np.array(draw(st.lists(st.floats(0.05, 1.0), min_size=m, max_size=m)))
    return (w / w.sum())[:, None]


@given(p=prob_column(), data=st.data())
def test_cross_entropy_gradient_matches_fd(p, data):
    k = data.draw(st.integers(0, p.shape[0] - 1))
    probe = jn.CrossEntropy(check_sum=False)
    fd = fd_gradient(lambda v: probe.forward(v[:, None], k), p, initial_step=1e-3)
    g = jn.CrossEntropy().gradient(p, k)
    assert g.shape == (1, p.shape[0])
    c = compare("ce", g, fd.df, err=fd.error)
    assert c.passed, c


@given(z=st.lists(st.floats(-20, 20), min_size=2, max_size=6), data=st.data())
def test_softmax_cross_entropy_gradient_matches_fd(z, data):
    z = np.array(z)[:, None]
    k = data.draw(st.integers(0, z.shape[0] - 1))
    loss = jn.SoftmaxCrossEntropy()
    fd = fd_gradient(lambda v: loss.forward(v[:, None], k), z)
    c = compare("sce", loss.gradient(z, k), fd.df, err=fd.error)
    assert c.passed, c


@given(z=st.lists(st.floats(-10, 10), min_size=1, max_size=6), data=st.data())
def test_mse_value_and_gradient(z, data):
    z = np.array(z)[:, None]
    t = np.array(data.draw(st.lists(st.floats(-10, 10), min_size=len(z), max_size=len(z))))[:, None]
    loss = jn.MeanSquaredError()
    assert loss.forward(z, t) == pytest.approx(0.5 * np.sum((z - t) ** 2), rel=1e-14, abs=1e-300)
    np.testing.assert_array_equal(loss.gradient(z, t), (z - t).T)
    fd = fd_gradient(lambda v: loss.forward(v[:, None], t), z)
    assert compare("mse", loss.gradient(z, t), fd.df, err=fd.error).passed


def test_fused_equals_softmax_then_cross_entropy():
    """(softmax(z) - y)^T  ==  -(y / s)^T @ J_softmax(z), forward value too."""
    z = np.array([[0.3], [-1.2], [2.0], [0.1]])
    y = np.array([[0.1], [0.2], [0.6], [0.1]])
    s = jn.Softmax().forward(z)
    chained = jn.CrossEntropy().gradient(s, y) @ jn.Softmax().jacobian(z)
    fused = jn.SoftmaxCrossEntropy().gradient(z, y)
    np.testing.assert_allclose(chained, fused, rtol=1e-13, atol=1e-16)
    assert jn.SoftmaxCrossEntropy().forward(z, y) == pytest.approx(jn.CrossEntropy().forward(s, y), rel=1e-14)


def test_seed000_printed_sign_is_wrong():
    """Seed 000 prints the fused gradient as (Y - Y_hat)^T; the right one is (Y_hat - Y)^T."""
    z = np.array([[1.0], [0.0]])
    s = jn.Softmax().forward(z)
    g = jn.SoftmaxCrossEntropy().gradient(z, 0)
    np.testing.assert_allclose(g, (s - [[1.0], [0.0]]).T, rtol=1e-15)
    assert not np.allclose(g, ([[1.0], [0.0]] - s).T)


def test_softmax_cross_entropy_extreme_logits_are_finite():
    z = np.array([[1000.0], [-1000.0], [0.0]])
    assert jn.SoftmaxCrossEntropy().forward(z, 1) == pytest.approx(2000.0, rel=1e-15)
    assert np.all(np.isfinite(jn.SoftmaxCrossEntropy().gradient(z, 1)))


def test_integer_label_equals_one_hot():
    p = np.array([[0.2], [0.5], [0.3]])
    onehot = np.array([[0.0], [1.0], [0.0]])
    for loss in (jn.CrossEntropy(), jn.MeanSquaredError()):
        assert loss.forward(p, 1) == loss.forward(p, onehot)
        np.testing.assert_array_equal(loss.gradient(p, 1), loss.gradient(p, onehot))


def test_cross_entropy_ignores_zero_label_terms_with_zero_probability():
    p = np.array([[0.0], [1.0]])
    assert jn.CrossEntropy().forward(p, 1) == 0.0
    np.testing.assert_array_equal(jn.CrossEntropy().gradient(p, 1), [[0.0, -1.0]])


def test_cross_entropy_refuses_zero_probability_under_positive_label():
    with pytest.raises(ValueError, match="y_hat: probability 0 at index 0 where the label y is 1.0 > 0"):
        jn.CrossEntropy().forward(np.array([[0.0], [1.0]]), 0)


@pytest.mark.parametrize(
    "p, msg",
    [
        (np.array([[1.2], [-0.2]]), r"y_hat: expected probabilities in \[0, 1\]"),
        (np.array([[0.5], [0.6]]), "y_hat: expected probabilities summing to 1"),
    ],
)
def test_cross_entropy_refuses_non_probabilities(p, msg):
    with pytest.raises(ValueError, match=msg):
        jn.CrossEntropy().gradient(p, 0)


@pytest.mark.parametrize(
    "y, err, msg",
    [
        (np.ones((4, 1)) / 4, ValueError, r"y: expected a label column of shape \(3, 1\)"),
        (np.ones((1, 3)) / 3, ValueError, r"y: expected a label column of shape \(3, 1\)"),
        (5, ValueError, r"y: expected a class index in \[0, 3\), got 5"),
        (np.array([["a"], ["b"], ["c"]]), TypeError, "y: expected a real floating or integer array"),
    ],
)
def test_label_shape_mismatch(y, err, msg):
    with pytest.raises(err, match=msg):
        jn.MeanSquaredError().forward(np.zeros((3, 1)), y)


def test_unknown_loss_name():
    with pytest.raises(ValueError, match="loss: expected one of"):
        jn.get_loss("hinge")
