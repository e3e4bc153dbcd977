"""Near misses at sizes where the full Jacobian is too large and entries are sampled: a claim that
is only partly wrong must fail without being given the name of a slip it does not have, and correct
code must pass (never a factor of 1)."""

import numpy as np
import pytest

import jacobian_nn as jn
from jacobian_nn.check.gallery import affine_backward, affine_forward, softmax_loss, softmax_rows as softmax

N, D = 32, 100


def batch(dtype, k=0):
    return np.random.default_rng([k, N, D]).standard_normal((N, D)).astype(dtype)


def tanh_vjp(x, g):
    return g * (1 - np.tanh(x) ** 2)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_one_row_negated_is_not_sign_flipped(dtype):
    def vjp(x, g):
        d = tanh_vjp(x, g)
        d[5] *= -1  # sample 5 only
        return d

    r = jn.check_batch_vjp(np.tanh, vjp, batch(dtype))
    assert r.verdict == "fail" and r.diagnosis != "sign_flipped", str(r)
    assert "entries of dx" in r.sampled
    assert jn.check_batch_vjp(np.tanh, tanh_vjp, batch(dtype)).passed  # its correct twin


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_one_sample_doubled_is_not_a_constant_factor(dtype):
    def vjp(x, g):
        d = tanh_vjp(x, g)
        d[7] *= 2
        return d

    r = jn.check_batch_vjp(np.tanh, vjp, batch(dtype))
    assert r.verdict == "fail" and r.diagnosis not in ("constant_factor", "missing_batch_scaling"), str(r)


def softmax_vjp(Z, G):
    S = softmax(Z)
    return S * (G - np.sum(G * S, axis=1, keepdims=True))


def test_one_wrong_entry_is_not_diagonal_only_and_does_not_pass():
    def vjp(Z, G):
        d = softmax_vjp(Z, G)
        d[3, 4] *= 3.0  # one entry, still linear in G
        return d

    r = jn.check_batch_vjp(softmax, vjp, batch(np.float64))
    assert r.verdict == "fail" and r.diagnosis != "diagonal_only", str(r)


def test_label_term_at_the_wrong_entry_is_not_off_at_label():
    def shifted(x, y):
        loss, dx = softmax_loss(x, y)
        C = x.shape[1]
        dx[np.arange(len(y)), y] += 1 / len(y)  # removed at the label ...
        dx[np.arange(len(y)), (y + 1) % C] -= 1 / len(y)  # ... and put at the next entry
        return loss, dx

    r = jn.check_loss(shifted, batch(np.float64))
    assert r.verdict == "fail" and r.diagnosis != "off_at_label", str(r)
    assert jn.check_loss(softmax_loss, batch(np.float64)).passed


def test_a_correct_gradient_is_never_a_factor_of_one():
    T = batch(np.float64, 1)
    loss = lambda Y: 0.5 * np.sum((Y - T) ** 2) / Y.shape[0]
    r = jn.check_batch_vjp(loss, lambda Y, g: g * (Y - T) / Y.shape[0], batch(np.float64))
    assert r.passed and r.diagnosis == "rounding" and r.factor is None


def test_one_wrong_column_of_dw_fails_in_its_section():
    rng = np.random.default_rng(3)
    w, b = rng.standard_normal((D, 20)), rng.standard_normal(20)

    def backward(dout, cache):
        dx, dw, db = affine_backward(dout, cache)
        dw[:, 2] *= 1.5
        return dx, dw, db

    r = jn.check_batch_vjp(*jn.from_cs231n(affine_forward, backward, w, b), batch(np.float64))
    assert r.verdict == "fail" and r.gradient == "dw", str(r)
    assert [s.verdict for s in r.sections] == ["pass", "fail", "pass"]
    assert r.diagnosis not in ("constant_factor", "sign_flipped", "transposed")


def test_kinks_are_sampled_and_judged_by_their_one_sided_derivatives():
    from jacobian_nn.check.gallery import relu_forward

    X = batch(np.float64, 2)
    X[::3, ::7] = 0.0  # exactly at the kink
    check = lambda backward: jn.check_batch_vjp(*jn.from_cs231n(relu_forward, backward), X)
    left = check(lambda dout, x: dout * (x > 0))  # relu'(0) = 0
    right = check(lambda dout, x: dout * (x >= 0))  # relu'(0) = 1
    assert left.passed and left.diagnosis == "kink" and "x <= 0 branch" in left.convention
    assert right.passed and right.diagnosis == "kink" and "x >= 0 branch" in right.convention
    assert left.kinks and all(e.note == "kink" and e.left != e.right for e in left.kinks)
    wrong = check(lambda dout, x: dout * np.where(x == 0, 2.0, x > 0))  # 2 lies outside [0, 1]
    assert wrong.verdict == "fail"


def test_per_sample_jacobians_at_scale_are_checked_through_their_vjp():
    rng = np.random.default_rng(4)
    W = rng.standard_normal((D, 30)) / 10
    X = batch(np.float64, 3)
    f = lambda X: np.tanh(X @ W)
    right = lambda X: (1 - f(X) ** 2)[:, :, None] * W.T[None]  # (N, 30, D)
    r = jn.check_batch_jacobian(f, right, X)
    assert r.passed and "entries of dx" in r.sampled
    r = jn.check_batch_jacobian(f, lambda X: right(X).transpose(0, 2, 1), X)  # (N, D, 30)
    assert r.verdict == "fail" and r.diagnosis == "transposed"
    assert any("has shape (32, 100, 30), expected (32, 30, 100)" in n for n in r.notes)
    r = jn.check_batch_jacobian(f, lambda X: -right(X), X)
    assert r.verdict == "fail" and r.diagnosis == "sign_flipped"
