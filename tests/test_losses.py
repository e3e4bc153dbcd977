"""Losses, one place per component: cross-entropy on probabilities, softmax cross-entropy from
logits (fused), mean squared error, CS231n's multiclass SVM, binary cross-entropy on probabilities and
the fused sigmoid-BCE from logits.

* reference row gradients ``gradient`` against finite differences (``scipy.differentiate``);
* the batched path: ``gradient_batched`` against the reference rows through the inner-product
  identity for every registered loss, ``forward_and_gradient_batched`` bitwise the pair it fuses;
* kinks: the SVM's margin of exactly 0, on both paths;
* tails: extreme logits against 50-digit mpmath values on both paths (softmax cross-entropy, the
  fused sigmoid-BCE); softmax cross-entropy's relative precision where the label dominates, ties,
  one class, soft labels and float32;
* the courses' own formulas restated (CS231n's svm_loss, deeplearning.ai's propagate);
* labels and refusals; each catalogue loss in a small network on both paths against finite
  differences.
"""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support import assert_identity, assert_three_witnesses, cols

import jacobian_nn as jn
from jacobian_nn import LOSSES, get_loss
from jacobian_nn.fd import FD_ATOL, compare, fd_gradient

SEEDS = (0, 1, 2)
#: The losses added with the catalogue (the first three are in ``support.LOSS_NAMES``).
CATALOGUE_LOSSES = ("svm", "binary_cross_entropy", "sigmoid_binary_cross_entropy")
EPS = np.finfo(np.float64).eps


# --------------------------------------------------------------------------- reference gradients against finite differences


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
    # the witness's rounding noise grows with the loss's size (|L| up to 200 here: 2e-9 at an exactly-zero
    # entry of z = [0, -10, 8], t = [0, 10, 1.53], where scipy reports no convergence), so its absolute
    # tolerance is FD_ATOL per unit of |L|; the gradient itself is asserted exactly above
    atol = FD_ATOL * max(1.0, loss.forward(z, t))
    assert compare("mse", loss.gradient(z, t), fd.df, err=fd.error, atol=atol).passed


def test_fused_equals_softmax_then_cross_entropy():
    """(softmax(z) - y)^T  ==  -(y / s)^T @ J_softmax(z), forward value too."""
    z = np.array([[0.3], [-1.2], [2.0], [0.1]])
    y = np.array([[0.1], [0.2], [0.6], [0.1]])
    s = jn.Softmax().forward(z)
    chained = jn.CrossEntropy().gradient(s, y) @ jn.Softmax().jacobian(z)
    fused = jn.SoftmaxCrossEntropy().gradient(z, y)
    np.testing.assert_allclose(chained, fused, rtol=1e-13, atol=1e-16)
    assert jn.SoftmaxCrossEntropy().forward(z, y) == pytest.approx(jn.CrossEntropy().forward(s, y), rel=1e-14, abs=0)


def test_seed000_printed_sign_is_wrong():
    """Seed 000 prints the fused gradient as (Y - Y_hat)^T; the right one is (Y_hat - Y)^T."""
    z = np.array([[1.0], [0.0]])
    s = jn.Softmax().forward(z)
    g = jn.SoftmaxCrossEntropy().gradient(z, 0)
    np.testing.assert_allclose(g, (s - [[1.0], [0.0]]).T, rtol=1e-15)
    assert not np.allclose(g, ([[1.0], [0.0]] - s).T)


# --------------------------------------------------------------------------- batched path against the reference; the fused forms bitwise the pairs they fuse


def batch_for(loss_name, N, m, rng):
    """``(Y_hat, Y)`` rows a loss accepts: probabilities where it takes probabilities, logits
    otherwise; soft labels summing to 1, one-hot rows for the SVM, labels in [0, 1] for the binary
    losses, real targets for mse."""
    Z = rng.standard_normal((N, m))
    if loss_name == "cross_entropy":
        return np.exp(Z) / np.exp(Z).sum(axis=1, keepdims=True), rng.dirichlet(np.ones(m), size=N)
    if loss_name == "softmax_cross_entropy":
        return Z, rng.dirichlet(np.ones(m), size=N)
    if loss_name == "mse":
        return Z, rng.standard_normal((N, m))
    if loss_name == "svm":
        return Z, np.eye(m)[rng.integers(0, m, N)]
    if loss_name == "binary_cross_entropy":
        return 1 / (1 + np.exp(-Z)), rng.random((N, m))
    return Z, rng.random((N, m))  # sigmoid_binary_cross_entropy: logits


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("loss_name", sorted(LOSSES))
def test_loss_identity(loss_name, seed):
    """A loss maps R^m -> R: J is the row dL/dy_hat (1, m); the batched VJP of the scalar
    cotangent v_k is ``v_k * N * gradient_batched[k]`` (gradient_batched carries the 1/N of the mean).
    Every registered loss (the SVM's margins are never exactly 0 for normal scores)."""
    rng = np.random.default_rng(seed)
    N, m = 5, 4
    loss = get_loss(loss_name)
    Y_hat, Y = batch_for(loss_name, N, m, rng)
    U, v = rng.standard_normal((N, m)), rng.standard_normal((N, 1))
    vjp = v * (N * loss.gradient_batched(Y_hat, Y))
    Ju = np.stack([loss.gradient(y_hat, y) @ u for y_hat, y, u in zip(cols(Y_hat), cols(Y), U)])
    assert_identity(U, vjp, v, Ju, label=f"{loss_name} gradient_batched vs gradient")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fused_softmax_cross_entropy_is_bitwise_the_pair(dtype):
    loss = jn.SoftmaxCrossEntropy()
    rng = np.random.default_rng(3)
    Z = (10 * rng.standard_normal((11, 5))).astype(dtype)
    Y = rng.integers(0, 5, size=11)
    Y_onehot = np.eye(5, dtype=dtype)[Y]
    value, grad = loss.forward_and_gradient_batched(Z, Y_onehot)  # label matrix: the same operations
    assert value == loss.forward_batched(Z, Y_onehot)
    np.testing.assert_array_equal(grad, loss.gradient_batched(Z, Y_onehot))
    # integer indices: no one-hot matrix, the zero terms left out; the same loss and gradient bit for bit
    value_i, grad_i = loss.forward_and_gradient_batched(Z, Y)
    np.testing.assert_array_equal(grad_i, loss.gradient_batched(Z, Y))
    assert value_i == loss.forward_batched(Z, Y) == value
    np.testing.assert_array_equal(grad_i, grad)
    np.testing.assert_array_equal(loss.per_sample_losses_batched(Z, Y), loss.per_sample_losses_batched(Z, Y_onehot))
    with pytest.raises(ValueError, match=r"Y: expected class indices in \[0, 5\)"):
        loss.forward_and_gradient_batched(Z, np.full(11, 5))
    with pytest.raises(ValueError, match=r"Y: expected 11 labels"):
        loss.forward_and_gradient_batched(Z, Y[:3])


def test_fused_softmax_cross_entropy_call_is_bitwise_the_pair():
    loss = jn.SoftmaxCrossEntropy()
    z = np.array([[3.0], [-1.0], [0.5], [20.0]])
    value, row = loss(z, 2)
    assert value == loss.forward(z, 2)
    np.testing.assert_array_equal(row, loss.gradient(z, 2))


@pytest.mark.parametrize("labels", ["indices", "one-hot", "soft"])
@pytest.mark.parametrize("loss", [jn.SoftmaxCrossEntropy(), jn.MeanSquaredError()])
def test_checked_once_labels_give_the_per_sample_call_bitwise(loss, labels):
    """``sample_labels`` + ``loss(z, y, check=False)`` (what the reference driver runs) equals the
    checked call ``loss(z, y)`` on the user's label, sample by sample, bit for bit."""
    rng = np.random.default_rng(7)
    Z = rng.standard_normal((9, 4)) * 5
    Z[2, 1] = 800.0  # a probability that rounds to 1: loss 0 for class 1
    idx = np.arange(9) % 4
    Y = {"indices": idx, "one-hot": np.eye(4)[idx], "soft": rng.dirichlet(np.ones(4), 9)}[labels]
    ys = loss.sample_labels(Y, 9, 4)
    for k, y in enumerate(ys):
        user = int(Y[k]) if labels == "indices" else Y[k][:, None]
        value, row = loss(Z[k][:, None], y, check=False)
        value1, row1 = loss(Z[k][:, None], user)
        assert value == value1
        np.testing.assert_array_equal(row, row1)


# --------------------------------------------------------------------------- tails: extreme logits, both paths


def test_softmax_cross_entropy_extreme_logits_are_finite():
    z = np.array([[1000.0], [-1000.0], [0.0]])
    assert jn.SoftmaxCrossEntropy().forward(z, 1) == pytest.approx(2000.0, rel=1e-15, abs=0)
    assert np.all(np.isfinite(jn.SoftmaxCrossEntropy().gradient(z, 1)))


def exact_softmax_cross_entropy(z, y):
    """50-digit softmax cross-entropy rounded to float64: ``(L, dL/dz (m,), softmax (m,))`` with
    ``L = sum_i y_i (lse(z) - z_i)`` and ``dL/dz_i = exp(z_i - lse(z)) - y_i``, for logits ``z`` (a list)
    and a class index or a probability vector ``y`` (its float64 entries taken exactly)."""
    w = [1 if i == y else 0 for i in range(len(z))] if isinstance(y, int) else list(y)
    with mpmath.workdps(50):
        zm, wm = [mpmath.mpf(v) for v in z], [mpmath.mpf(v) for v in w]
        top = max(zm)
        lse = top + mpmath.log(mpmath.fsum(mpmath.exp(v - top) for v in zm))
        loss = mpmath.fsum(a * (lse - v) for a, v in zip(wm, zm))
        s = [mpmath.exp(v - lse) for v in zm]
        return float(loss), np.array([float(p - a) for p, a in zip(s, wm)]), np.array([float(p) for p in s])


def softmax_cross_entropy_everywhere(z, y, dtype=np.float64) -> dict:
    """``{form: (L, dL/dz (m,) or None)}`` at logits ``z`` for the label ``y`` on every path and label
    form: the reference call (float64 only) with the class index or the one-hot column (or the soft
    column), the batched fused value and gradient with indices or one-hot rows (or soft rows), and the
    batched per-sample losses (no gradient). Under ``np.errstate(all="raise")``, underflow aside."""
    loss = jn.SoftmaxCrossEntropy()
    zs = np.array(z, dtype=dtype)
    if isinstance(y, int):
        col = np.eye(zs.size, dtype=dtype)[:, [y]]
        forms, batch = {"index": y, "one-hot column": col}, {"indices": np.array([y]), "one-hot rows": col.T}
    else:
        col = np.array(y, dtype=dtype)[:, None]
        forms, batch = {"soft column": col}, {"soft rows": col.T}
    out = {}
    with np.errstate(all="raise", under="ignore"):
        if dtype == np.float64:
            for what, label in forms.items():
                value, row = loss(zs[:, None], label)
                out[f"reference, {what}"] = (value, row[0])
        for what, label in batch.items():
            value, G = loss.forward_and_gradient_batched(zs[None], label)
            out[f"batched, {what}"] = (value, G[0])
            out[f"per-sample losses, {what}"] = (float(loss.per_sample_losses_batched(zs[None], label)[0]), None)
    return out


def assert_softmax_cross_entropy_exact(z, y, dtype=np.float64):
    """Every form of :func:`softmax_cross_entropy_everywhere` against the 50-digit values: the loss within
    ``4 eps |L|`` and each gradient entry within ``4 eps |exact entry|``, the label's ``s_y - 1``
    included (plus the smallest normal number, for values below the normal range); where a soft
    label lies strictly between 0 and 1 the entry ``s_i - y_i`` is held to ``4 eps max(s_i, y_i)`` (the
    error of ``s_i``, which no formula removes: the class docstring)."""
    exact_loss, exact_grad, s = exact_softmax_cross_entropy(z, y)
    eps, tiny = np.finfo(dtype).eps, np.finfo(dtype).tiny
    w = np.eye(len(z))[y] if isinstance(y, int) else np.array(y)
    scale = np.where((w == 0) | (w == 1), np.abs(exact_grad), np.maximum(s, w))
    for what, (value, grad) in softmax_cross_entropy_everywhere(z, y, dtype).items():
        assert abs(value - exact_loss) <= 4 * eps * abs(exact_loss) + tiny, (what, value, exact_loss)
        if grad is not None:
            assert np.all(np.abs(grad - exact_grad) <= 4 * eps * scale + tiny), (what, grad, exact_grad)


@pytest.mark.parametrize(
    "z, label",
    [
        # the label's logit dominates: the loss and s_y - 1 are tiny (these lost their relative precision)
        ([0.0, -20.0], 0),
        ([0.0, -40.0, -745.0], 0),
        ([5.0, -15.0, -16.0, -30.0], 0),
        ([0.0, -740.0], 0),  # T = e^-740 below the normal range
        ([1000.0, -1000.0, 0.0], 0),
        ([0.0, -40.0, -745.0], 1),
        ([700.0, 700.0 - 2.0**-40, -700.0], 1),  # a near tie
        # near misses: the label is not the max (the loss is large: exact before and after)
        ([0.0, -20.0], 1),
        ([1000.0, -1000.0, 0.0], 1),
        ([-1e4, 1e4, 0.0], 2),
        # ties for the max: the label one of them (k* = the label), or not
        ([3.0, 3.0, -1.0], 0),
        ([3.0, 3.0, -1.0], 1),
        ([3.0, 3.0, -1.0], 2),
        ([2.0, 2.0, 2.0, 2.0], 3),
        # logits spread by 1000: the loss is 0 (e^-1000 rounds to 0), 1000 or 2000 exactly
        ([500.0, -500.0], 0),
        ([500.0, -500.0], 1),
        ([0.0, -1000.0, -500.0], 2),
    ],
)
def test_softmax_cross_entropy_tails_on_both_paths(z, label):
    """``L = (max z - z_y) + log1p(sum_{j != k*} exp(z_j - max z))`` and ``dL/dz = softmax(z) - e_y`` (the
    label's entry ``-sum_{j != y} s_j``) against 50-digit values on both paths, with the class index and
    the one-hot label: the loss and every gradient entry within 4 eps relative, however small
    (:func:`assert_softmax_cross_entropy_exact`). The logits' differences are exact in float64 (the
    shift ``z - max z`` is then exact; otherwise its rounding, ``eps |z_i - max z|`` relative, is the
    input's own and no formula removes it)."""
    assert_softmax_cross_entropy_exact(z, label)


@settings(max_examples=60, deadline=None)
@given(
    z=st.lists(st.integers(-240, 40).map(lambda q: q / 4), min_size=1, max_size=6),
    data=st.data(),
)
def test_softmax_cross_entropy_keeps_relative_precision_for_any_logits(z, data):
    """Random logits on a grid of quarters (differences exact) from -60 to 10, a class index or a soft
    label ``w / sum w`` (integer weights, some 0), on every path and label form: the bounds of
    :func:`assert_softmax_cross_entropy_exact` (4 eps; seen: at most about 1 eps for the loss and
    1.5 eps for a gradient entry)."""
    if data.draw(st.booleans(), label="soft"):
        w = np.array(data.draw(st.lists(st.integers(0, 8), min_size=len(z), max_size=len(z)), label="w"), float)
        w[data.draw(st.integers(0, len(z) - 1), label="positive")] += 1
        label = list(w / w.sum())
    else:
        label = data.draw(st.integers(0, len(z) - 1), label="y")
    assert_softmax_cross_entropy_exact(z, label)


@pytest.mark.parametrize("z", [[0.0, 0.0, -0.5], [3.0, 3.0, -1.0], [-0.5, 0.0, 0.0, 0.0]])
def test_softmax_cross_entropy_ties_leave_out_the_label(z):
    """Tied maxima: ``k*`` is the label's class when its logit is maximal (not the first maximal entry),
    so the label's gradient entry is ``-T / (1 + T)`` wherever it sits among the ties, and moving the
    label from one tied maximum to another permutes the loss and gradient bit for bit, on every path
    and label form. Near miss: with ``k*`` the first maximal entry, ``z = [0, 0, -0.5]`` gives
    ``1 / (1 + T) - 1 = -0.6163482688094493`` at label 1 and ``-T / (1 + T) = -0.6163482688094494`` at
    label 0."""
    ties = [i for i, v in enumerate(z) if v == max(z)]
    first = softmax_cross_entropy_everywhere(z, ties[0])
    for j in ties[1:]:
        perm = list(range(len(z)))
        perm[ties[0]], perm[j] = j, ties[0]
        for what, (value, grad) in softmax_cross_entropy_everywhere(z, j).items():
            value0, grad0 = first[what]
            assert value == value0, (what, j)
            if grad is not None:
                np.testing.assert_array_equal(grad, grad0[perm], err_msg=f"{what}, label {j}")


@pytest.mark.parametrize(
    "z, y",
    [
        ([0.0, -20.0], [1 - 2.0**-40, 2.0**-40]),  # a small loss from a soft label
        ([0.0, -20.0, 5.0], [0.25, 0.25, 0.5]),
        ([3.0, 3.0, -1.0], [0.5, 0.5, 0.0]),  # ties
        ([0.0, -20.0], [1 - 2.0**-20, 2.0**-20]),  # near miss: no entry is exactly 1, s - y stays
        ([0.0, -20.0, -30.0], [1.0, 2.0**-60, 0.0]),  # an entry exactly 1: -sum of the others there
        ([0.0, -1000.0], [0.5, 0.5]),  # spread by 1000
    ],
)
def test_softmax_cross_entropy_soft_labels_on_both_paths(z, y):
    """Soft labels: ``L = sum_i y_i ((max z - z_i) + log1p(T))`` is a sum of terms >= 0 and keeps its
    relative precision on both paths; the gradient ``s - y`` holds ``4 eps max(s_i, y_i)`` where
    ``0 < y_i < 1`` and the accurate form where ``y_i`` is exactly 1. Near miss: the label
    ``[1 - 2^-20, 2^-20]`` is not one-hot, and the accurate form ``-T / (1 + T)`` there would be off by
    ``2^-20``."""
    assert_softmax_cross_entropy_exact(z, y)


@pytest.mark.parametrize(
    "z, y",
    [
        ([0.0, -10.0], 0),  # log(1 + e^-10) in float32: 1 + e^-10 rounds, relative error ~1e-3
        ([0.0, -10.0], 1),
        ([3.0, 3.0, -1.0], 0),
        ([0.0, -10.0, 2.0], [0.25, 0.25, 0.5]),
    ],
)
def test_softmax_cross_entropy_float32_batched_keeps_relative_precision(z, y):
    """The batched path in float32: the same bounds with float32's eps."""
    assert_softmax_cross_entropy_exact(z, y, np.float32)


def test_softmax_cross_entropy_keeps_relative_precision_when_the_label_dominates():
    """z = [0, -20], y = 0: L = log(1 + e^-20) = 2.0611536203e-9 and dL/dz_0 = -e^-20 / (1 + e^-20)
    = -2.0611536182e-9, where ``log(sum exp(z - max)) - (z_y - max)`` and ``s_y - 1`` gave
    2.0611536900e-9 and -2.0611536922e-9 (relative errors 3.4e-8 and 3.6e-8) on both paths; and at
    z = [0, -40, -745] the exact 4.2e-18, where they gave 0 (-0.0 on the reference path). Now within
    4 eps on both paths, and of the right sign."""
    e = np.exp(-20.0)
    for what, (value, grad) in softmax_cross_entropy_everywhere([0.0, -20.0], 0).items():
        assert abs(value - float(np.log1p(e))) <= 4 * EPS * float(np.log1p(e)), what
        if grad is not None:
            assert abs(grad[0] + e / (1 + e)) <= 4 * EPS * (e / (1 + e)), what
    for what, (value, grad) in softmax_cross_entropy_everywhere([0.0, -40.0, -745.0], 0).items():
        assert value == pytest.approx(4.248354255291589e-18, rel=4 * EPS, abs=0), what
        if grad is not None:
            assert grad[0] == pytest.approx(-4.248354255291589e-18, rel=4 * EPS, abs=0), what


@pytest.mark.parametrize("z", [3.0, -1e300, 1e300])
def test_softmax_cross_entropy_of_a_single_class_is_exactly_zero(z):
    """m = 1: the softmax is 1, so ``L = 0`` and ``dL/dz = 0``, exactly and as +0 (not -0) on every
    path and label form, float32 too; ``T`` is an empty sum."""
    for dtype in (np.float64, np.float32):
        if dtype == np.float32 and abs(z) > 1e38:
            continue
        for what, (value, grad) in softmax_cross_entropy_everywhere([z], 0, dtype).items():
            assert value == 0 and not np.signbit(value), (what, value)
            if grad is not None:
                assert grad.shape == (1,) and grad[0] == 0 and not np.signbit(grad[0]), (what, grad)


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


# --------------------------------------------------------------------------- SVM (CS231n's svm_loss), its kink


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


def test_svm_matches_cs231n_and_the_reference_rows():
    rng = np.random.default_rng(0)
    S, y = rng.normal(size=(9, 5)) * 2, rng.integers(0, 5, 9)
    loss, G = jn.MulticlassSVM().forward_and_gradient_batched(S, y)
    loss_c, G_c = cs231n_svm_loss(S, y)
    assert loss == pytest.approx(loss_c, rel=1e-15, abs=0) and np.allclose(G, G_c, rtol=1e-15, atol=0)
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


# --------------------------------------------------------------------------- binary cross-entropy (deeplearning.ai's logistic regression)


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
        assert value == pytest.approx(cost, rel=1e-13, abs=0)
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
    assert value == pytest.approx(np.mean([r[0] for r in ref]), rel=1e-14, abs=0)
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
    assert a == pytest.approx(b, rel=1e-12, abs=0)
    assert np.allclose(ga, gb * (p * (1 - p)).T, rtol=1e-10, atol=1e-15)  # chain rule through the sigmoid


def test_binary_labels_and_refusals():
    bce = jn.BinaryCrossEntropy()
    p = np.array([[0.2], [0.9]])
    assert bce(p, np.array([[True], [False]]))[0] == bce(p, np.array([[1.0], [0.0]]))[0]  # bools
    assert jn.BinaryCrossEntropy()(np.array([[0.25]]), True)[0] == pytest.approx(
        np.log(4), rel=1e-15, abs=0
    )  # a scalar when m = 1
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
    assert bce.forward_batched(np.full((3, 1), 0.5), np.array([1, 0, 1])) == pytest.approx(np.log(2), rel=1e-15, abs=0)
    with pytest.raises(ValueError, match="already applies sigmoid"):
        jn.Network.build([2, 1], output_activation="sigmoid", loss="sigmoid_binary_cross_entropy")


# --------------------------------------------------------------------------- labels, names and refusals


def test_registered_by_name():
    assert isinstance(jn.get_loss("svm"), jn.MulticlassSVM) and jn.get_loss("svm").delta == 1.0
    assert isinstance(jn.get_loss("binary_cross_entropy"), jn.BinaryCrossEntropy)
    assert isinstance(jn.get_loss("sigmoid_binary_cross_entropy"), jn.SigmoidBinaryCrossEntropy)


def test_integer_label_equals_one_hot():
    p = np.array([[0.2], [0.5], [0.3]])
    onehot = np.array([[0.0], [1.0], [0.0]])
    for loss in (jn.CrossEntropy(), jn.MeanSquaredError(), jn.SoftmaxCrossEntropy()):  # (p as logits for the last)
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


def test_softmax_cross_entropy_refuses_before_computing():
    loss = jn.SoftmaxCrossEntropy()
    with pytest.raises(ValueError, match=r"^z: expected finite"):
        loss(np.array([[1.0], [np.inf], [0.0]]), 1)
    with pytest.raises(ValueError, match=r"^Y: expected probabilities summing to 1"):
        loss.sample_labels(0.5 * np.eye(3)[[0, 1]], 2, 3)
    with pytest.raises(ValueError, match=r"^Y: expected class indices in \[0, 3\)"):
        loss.sample_labels(np.array([0, 3]), 2, 3)
    with pytest.raises(ValueError, match=r"^y: expected a class index in \[0, 3\)"):
        loss(np.zeros((3, 1)), 3)
    # a single class: loss 0, gradient 0
    value, row = loss(np.array([[3.0]]), 0)
    assert value == 0.0 and row.shape == (1, 1) and row[0, 0] == 0.0


def test_unknown_loss_name():
    with pytest.raises(ValueError, match="loss: expected one of"):
        jn.get_loss("hinge")


# --------------------------------------------------------------------------- each catalogue loss in a network, both paths and finite differences


@pytest.mark.parametrize("name", CATALOGUE_LOSSES)
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
