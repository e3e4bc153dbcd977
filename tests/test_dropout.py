"""Inverted dropout, one place per component: explicit masks, the Jacobian diag(keep / (1 - p)) on
the reference path, the batched VJP against finite differences with the same mask, identity in test
mode, seeded and scoped masks, the drop probability ``p`` against the ``keep_prob`` of other course
generations, bad input. Kinks and tails: none (linear for a fixed mask).

Dropout inside networks with batch norm (fixed masks in training mode, per-sample gradients, the
Generators left as found by cross_check): ``test_batched_every_layer.py``, ``test_hardening_core.py``."""

import numpy as np
import pytest
from hypothesis import given, strategies as st
from support import cols, rows, same_bits

import jacobian_nn as jn

from jacobian_nn.fd import compare, fd_gradient, fd_loss_gradient
from jacobian_nn.layers import Dense
from jacobian_nn.network import Network
from jacobian_nn.normalization import (
    Dropout,
    dropout_layers,
    same_randomness,
    sample_dropout_masks,
    using_dropout_masks,
)


@given(
    st.integers(1, 6),
    st.integers(1, 5),
    st.floats(0.0, 0.9),
    st.sampled_from(["train", "test"]),
    st.integers(0, 2**31 - 1),
)
def test_both_paths_match_fd_with_one_mask(N, m, p, mode, seed):
    rng = np.random.default_rng(seed)
    drop = Dropout(m, p, seed=seed)
    X, U = rng.normal(size=(N, m)), rng.normal(size=(N, m))
    keep = drop.sample_mask(N)
    with drop.using_mask(keep):
        ys, ctx = drop.forward_samples(cols(X), mode)
        gx, g_ref = drop.backward_samples(rows(U), ctx)
        Y, ctx = drop.forward_batched(X, mode)
        dX, g_bat = drop.backward_batched(U, ctx)
        fd = fd_gradient(lambda v: np.sum(U * drop.forward_batched(v.reshape(N, m), mode)[0]), X)
    expected_scale = keep / (1 - p) if mode == "train" else np.ones((N, m))
    np.testing.assert_array_equal(np.hstack(ys).T, Y)
    np.testing.assert_allclose(Y, X * expected_scale, rtol=1e-15)
    for label, got in (("reference", np.vstack(gx)), ("batched", dX)):
        c = compare(label, got.reshape(1, -1), fd.df, err=fd.error)
        assert c.passed, c
        np.testing.assert_allclose(got, U * expected_scale, rtol=1e-15)
    assert g_ref == {} and g_bat == {}


def test_jacobian_is_diag_keep_over_one_minus_p():
    drop = Dropout(4, 0.25)
    keep = np.array([True, False, True, True])
    J = drop.jacobian_x(np.ones((4, 1)), "train", keep)
    np.testing.assert_array_equal(J, np.diag([4 / 3, 0.0, 4 / 3, 4 / 3]))
    np.testing.assert_array_equal(drop.jacobian_x(np.ones((4, 1)), "test"), np.eye(4))


def test_masks_come_from_the_seed_and_fresh_each_call():
    a, b = Dropout(50, 0.5, seed=3), Dropout(50, 0.5, seed=3)
    X = np.ones((4, 50))
    ya1, _ = a.forward_batched(X, "train")
    yb1, _ = b.forward_batched(X, "train")
    np.testing.assert_array_equal(ya1, yb1)  # same seed, same draws
    ya2, _ = a.forward_batched(X, "train")
    assert not np.array_equal(ya1, ya2)  # a fresh mask per call


def test_keep_fraction_and_inverted_scaling():
    drop = Dropout(200, 0.3, seed=0)
    keep = drop.sample_mask(500)
    assert abs(keep.mean() - 0.7) < 0.01  # 1e5 Bernoulli(0.7) draws: sd 1.4e-3
    X = np.ones((500, 200))
    with drop.using_mask(keep):
        Y, _ = drop.forward_batched(X, "train")
    assert abs(Y.mean() - 1.0) < 0.02  # inverted dropout keeps the expectation
    np.testing.assert_array_equal(np.unique(Y), [0.0, 1 / 0.7])


def test_using_mask_is_scoped_and_checked():
    drop = Dropout(3, 0.5, seed=1)
    keep = np.array([[1, 0, 1], [0, 1, 1]])
    with drop.using_mask(keep):
        y1, _ = drop.forward_batched(np.ones((2, 3)), "train")
        y2, _ = drop.forward_batched(np.ones((2, 3)), "train")
        np.testing.assert_array_equal(y1, y2)
        np.testing.assert_array_equal(y1, keep * 2.0)
        with pytest.raises(ValueError, match="fixed mask has 2 rows but the batch has N=3"):
            drop.forward_batched(np.ones((3, 3)), "train")
    assert drop._fixed is None
    with pytest.raises(ValueError, match=r"keep: expected a mask of shape \(N, 3\)"):
        with drop.using_mask(np.ones((2, 4), dtype=bool)):
            pass
    with pytest.raises(TypeError, match="keep"):
        with drop.using_mask(np.full((2, 3), 0.5)):
            pass


def test_p_zero_is_identity_in_train_mode():
    drop = Dropout(3, 0.0, seed=0)
    X = np.arange(6.0).reshape(2, 3)
    np.testing.assert_array_equal(drop.forward_batched(X, "train")[0], X)


@pytest.mark.parametrize("p", [1.0, -0.1, 1.5, float("nan"), float("inf")])
def test_p_outside_range_refused(p):
    with pytest.raises(ValueError, match=r"p: expected a drop probability in \[0, 1\)"):
        Dropout(3, p)


@pytest.mark.parametrize("p", [True, "0.5", None])
def test_p_wrong_type_refused(p):
    with pytest.raises(TypeError, match="p: expected a drop probability"):
        Dropout(3, p)


def test_bad_mode():
    with pytest.raises(ValueError, match="mode"):
        Dropout(3, 0.5).forward_batched(np.ones((2, 3)), "eval")


def test_network_paths_share_masks():
    rng = np.random.default_rng(4)
    net = Network([Dense(3, 6, "tanh", seed=1), Dropout(6, 0.5, seed=2), Dense(6, 2, seed=3)], "softmax_cross_entropy")
    X, Y = rng.normal(size=(5, 3)), rng.integers(0, 2, 5)
    masks = sample_dropout_masks(net, 5)
    assert len(masks) == 1 and masks[0].shape == (5, 6)
    with using_dropout_masks(net, masks):
        lr, gr = net.loss_and_gradients(X, Y)
        lb, gb = net.loss_and_gradients_batched(X, Y)
        fd = fd_loss_gradient(net, X, Y)
    assert lr == pytest.approx(lb, rel=1e-14, abs=0)
    np.testing.assert_allclose(net.flatten_gradients(gr), net.flatten_gradients(gb), rtol=1e-12, atol=1e-14)
    assert compare("ref", net.flatten_gradients(gr)[None], fd.df, err=fd.error).passed
    # without fixed masks, two calls draw different masks and give different losses
    with same_randomness(net, 5):
        pass
    assert net.loss_and_gradients_batched(X, Y)[0] != net.loss_and_gradients_batched(X, Y)[0]
    with pytest.raises(ValueError, match="masks: expected 1 masks"):
        with using_dropout_masks(net, []):
            pass
    assert dropout_layers(net) == [net.layers[1]]


def test_keep_prob_is_one_minus_the_drop_probability():
    a = jn.Dropout(6, 0.25, seed=3)
    b = jn.Dropout(6, keep_prob=0.75, seed=3)
    assert a.p == b.p == 0.25
    X = np.random.default_rng(0).normal(size=(4, 6))
    assert same_bits(a.forward_batched(X, "train")[0], b.forward_batched(X, "train")[0])
    net = jn.FullyConnectedNet([5], input_dim=3, num_classes=2, keep_prob=0.5, seed=0)
    assert net.dropout == 0.5 and any(isinstance(layer, jn.Dropout) for layer in net.layers)
    plain = jn.FullyConnectedNet([5], input_dim=3, num_classes=2, keep_prob=1.0, seed=0)
    assert plain.dropout == 0.0 and not any(isinstance(layer, jn.Dropout) for layer in plain.layers)


def test_both_dropout_keywords_is_an_error_that_says_which_generation_means_what():
    both = r"give one of them.*2017.*drops with probability p.*2018\+.*keep with probability p"
    with pytest.raises(ValueError, match=both):
        jn.Dropout(4, 0.5, keep_prob=0.5)
    with pytest.raises(ValueError, match=both):
        jn.FullyConnectedNet([3], input_dim=2, num_classes=2, dropout=0.0, keep_prob=0.5)
    with pytest.raises(ValueError, match=r"keep_prob: expected a keep probability in \(0, 1\]"):
        jn.Dropout(4, keep_prob=0.0)
    with pytest.raises(ValueError, match="drop probability in .0, 1.*2018"):
        jn.Dropout(4, 1.0)  # a 2018+ user's p = 1 ("keep everything") as a drop probability
    with pytest.raises(TypeError, match=r"or a keep probability \(keep_prob=\), got neither"):
        jn.Dropout(4)
    assert jn.Dropout(4, 0.0).p == 0.0 and jn.Dropout(4, keep_prob=1.0).p == 0.0  # the near misses
