"""The preconditions the checker probes before any verdict: each failed probe is a ``refused``
report with its named cause, never a pass, and each rule has its near miss (the probe must not
fire on correct code)."""

import numpy as np
import pytest

import jacobian_nn as jn
from jacobian_nn import check as chk

RNG = np.random.default_rng(0)
X = RNG.normal(size=(4, 5))


def tanh_vjp(x, g):
    return g * (1.0 - np.tanh(x) ** 2)


def assert_refused(r, cause, words):
    assert r.verdict == "refused" and not r.passed, str(r)
    assert r.diagnosis == cause, str(r)
    assert words in r.cause, r.cause
    assert "REFUSED" in str(r).splitlines()[0] and r.cause in str(r)


# --------------------------------------------------------------------------- determinism


def dropout_forward(x, dropout_param):
    """CS231n-style inverted dropout; the mask comes from dropout_param's seed when it has one."""
    p = dropout_param["p"]
    rng = np.random.default_rng(dropout_param.get("seed"))
    mask = (rng.random(x.shape) < p) / p
    return x * mask, mask


def dropout_backward(dout, cache):
    return dout * cache


def test_random_forward_is_refused_even_with_an_absurd_backward():
    f, vjp = jn.from_cs231n(dropout_forward, lambda dout, cache: 5 * dout, {"p": 0.5})
    assert_refused(jn.check_batch_vjp(f, vjp, X), "not_deterministic", "dropout without a fixed seed?")


def test_near_miss_dropout_with_a_fixed_seed_passes():
    f, vjp = jn.from_cs231n(dropout_forward, dropout_backward, {"p": 0.5, "seed": 3})
    r = jn.check_batch_vjp(f, vjp, X)
    assert r.passed and r.probes[0].ok and "deterministic" in r.probes[0].name


def test_random_vjp_is_refused():
    rng = np.random.default_rng(1)
    r = jn.check_batch_vjp(np.tanh, lambda x, g: tanh_vjp(x, g) * (1 + 1e-3 * rng.random()), X)
    assert_refused(r, "not_deterministic", "two calls with the same input and cotangent differ in dx")


# --------------------------------------------------------------------------- the cotangent


def test_backward_ignoring_its_cotangent_is_refused_not_a_factor_of_one():
    T = RNG.normal(size=(4, 5))
    loss = lambda Y: 0.5 * np.sum((Y - T) ** 2) / Y.shape[0]
    r = jn.check_batch_vjp(loss, lambda Y, g: (Y - T) / Y.shape[0], X)  # right only for g = 1
    assert_refused(r, "ignores_cotangent", "ignores its cotangent")
    assert r.factor is None and r.diagnosis != "constant_factor"


def test_near_miss_loss_vjp_using_its_cotangent_passes():
    T = RNG.normal(size=(4, 5))
    loss = lambda Y: 0.5 * np.sum((Y - T) ** 2) / Y.shape[0]
    assert jn.check_batch_vjp(loss, lambda Y, g: g * (Y - T) / Y.shape[0], X).passed


def test_elementwise_vjp_ignoring_its_cotangent_is_refused():
    r = jn.check_batch_vjp(np.tanh, lambda x, g: 1.0 - np.tanh(x) ** 2, X)
    assert_refused(r, "ignores_cotangent", "vjp ignores its cotangent: dx is the same")


def test_nonlinear_vjp_is_refused_and_a_linear_one_is_not():
    r = jn.check_batch_vjp(np.tanh, lambda x, g: np.abs(g) * (1.0 - np.tanh(x) ** 2), X)
    assert_refused(r, "not_linear", "not linear in its cotangent")
    assert jn.check_batch_vjp(np.tanh, tanh_vjp, X).passed


# --------------------------------------------------------------------------- mutation


def test_forward_mutating_x_is_refused():
    def f(x):
        x += 0.0 * x + 1e-300  # changes nothing visible, but writes into x
        x[0, 0] = 7.0
        return np.tanh(x)

    assert_refused(jn.check_batch_vjp(f, tanh_vjp, X), "mutates_argument", "f mutates its argument x")


def relu_forward(x):
    return np.maximum(0, x), x


def relu_backward_in_place(dout, cache):
    dout[cache <= 0] = 0  # the book's Relu.backward
    return dout


def relu_backward_copy(dout, cache):
    dx = dout.copy()
    dx[cache <= 0] = 0
    return dx


def test_backward_mutating_dout_is_refused_and_its_copying_twin_passes():
    r = jn.check_batch_vjp(*jn.from_cs231n(relu_forward, relu_backward_in_place), X)
    assert_refused(r, "mutates_argument", "relu_backward_in_place mutates its argument dout")
    assert jn.check_batch_vjp(*jn.from_cs231n(relu_forward, relu_backward_copy), X).passed


def test_forward_mutating_a_parameter_is_refused_but_a_bn_param_dict_may_change():
    w = RNG.normal(size=(5, 3))

    def affine_forward_bad(x, w):
        w *= 1.0
        w[0, 0] += 1.0
        return x @ w, (x, w)

    def affine_forward(x, w, param):
        param["calls"] = param.get("calls", 0) + 1  # like CS231n's running averages in bn_param
        return x @ w, (x, w)

    def affine_backward(dout, cache):
        x, w = cache
        return dout @ w.T, x.T @ dout

    r = jn.check_batch_vjp(*jn.from_cs231n(affine_forward_bad, affine_backward, w), X)
    assert_refused(r, "mutates_argument", "affine_forward_bad mutates its argument w")
    bn_param = {}
    r = jn.check_batch_vjp(*jn.from_cs231n(affine_forward, affine_backward, w, bn_param), X)
    assert r.passed and [s.gradient for s in r.sections] == ["dx", "dw"]
    assert bn_param == {}  # every call got its own copy


# --------------------------------------------------------------------------- shapes and counts


def test_flattened_gradient_is_refused():
    x = RNG.normal(size=(4, 2, 3))
    W = RNG.normal(size=(6, 3))
    f = lambda x: x.reshape(4, 6) @ W
    r = jn.check_batch_vjp(f, lambda x, g: g @ W.T, x)  # (4, 6), not (4, 2, 3)
    assert_refused(r, "wrong_shape", "dx of shape (4, 6), x has shape (4, 2, 3)")
    ok = jn.check_batch_vjp(f, lambda x, g: (g @ W.T).reshape(x.shape), x)  # near miss: exact shape
    assert ok.passed and ok.worst[0].where.startswith("dx[") and ok.worst[0].where.count(",") == 2


def batchnorm_forward(x, gamma, beta, bn_param):
    mu, var = x.mean(0), x.var(0)
    xh = (x - mu) / np.sqrt(var + bn_param.get("eps", 1e-5))
    return gamma * xh + beta, (xh, gamma, np.sqrt(var + bn_param.get("eps", 1e-5)))


def batchnorm_backward(dout, cache):
    xh, gamma, sig = cache
    N, dxh = dout.shape[0], dout * gamma
    dx = (N * dxh - dxh.sum(0) - xh * (dxh * xh).sum(0)) / (N * sig)
    return dx, (dout * xh).sum(0), dout.sum(0)


def batchnorm_backward_keepdims(dout, cache):
    dx, dgamma, dbeta = batchnorm_backward(dout, cache)
    return dx, dgamma[None, :], dbeta


def test_dgamma_of_shape_1_D_is_refused_and_every_gradient_of_the_right_one_is_checked():
    gamma, beta = RNG.normal(size=5), RNG.normal(size=5)
    r = jn.check_batch_vjp(
        *jn.from_cs231n(batchnorm_forward, batchnorm_backward_keepdims, gamma, beta, {"mode": "train"}), X
    )
    assert_refused(r, "wrong_shape", "dgamma of shape (1, 5), gamma has shape (5,)")
    r = jn.check_batch_vjp(*jn.from_cs231n(batchnorm_forward, batchnorm_backward, gamma, beta, {"mode": "train"}), X)
    assert r.passed and [s.gradient for s in r.sections] == ["dx", "dgamma", "dbeta"]
    assert all(s.passed and s.witnesses for s in r.sections)


def test_backward_returning_too_few_gradients_is_refused():
    w, b = RNG.normal(size=(5, 3)), RNG.normal(size=3)
    f, vjp = jn.from_cs231n(lambda x, w, b: (x @ w + b, (x, w)), lambda d, c: d @ c[1].T, w, b)
    assert_refused(jn.check_batch_vjp(f, vjp, X), "wrong_count", "returned 1 array(s), expected 3 (dx, dw, db")


def test_jacobian_of_an_unexpected_shape_is_refused():
    A = RNG.normal(size=(6, 6))
    r = jn.check_jacobian(lambda x: A @ x.reshape(-1), lambda x: A.reshape(3, 12), np.ones((2, 3)))
    assert_refused(r, "wrong_shape", "returned shape (3, 12)")
    assert jn.check_jacobian(lambda x: A @ x.reshape(-1), lambda x: A.reshape(6, 2, 3), np.ones((2, 3))).passed


# --------------------------------------------------------------------------- non-finite values


def test_nan_output_is_refused_with_its_location():
    def f(x):
        y = np.tanh(x)
        y[1, 2] = np.nan
        return y

    assert_refused(jn.check_batch_vjp(f, tanh_vjp, X), "not_finite", "out[1, 2] = nan")


def test_inf_gradient_is_refused_with_its_location():
    def vjp(x, g):
        d = tanh_vjp(x, g)
        d[3, 1] = np.inf
        return d

    assert_refused(jn.check_batch_vjp(np.tanh, vjp, X), "not_finite", "dx[3, 1] = inf")


def test_a_witness_that_is_not_finite_is_refused_not_excused():
    x = np.array([1e-4, 0.5, 2.0])  # sqrt is not defined a finite-difference step to the left of 1e-4
    r = jn.check_vjp(np.sqrt, lambda x, g: g * 0.5 / np.sqrt(x), x)
    assert_refused(r, "witness_not_finite", "sqrt near the point, and it is not finite there")


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_compare_never_passes_a_non_finite_error_estimate(bad):
    err = np.array([[0.0, bad], [0.0, 0.0]])
    c = jn.compare("demo", np.ones((2, 2)), np.ones((2, 2)) + 5.0, err=err)
    assert not c.passed and c.location == (0, 1)
    assert jn.compare("demo", np.ones((2, 2)), np.ones((2, 2)), err=np.zeros((2, 2))).passed  # near miss


def test_compare_fails_on_a_nan_value():
    assert not jn.compare("demo", np.array([1.0, np.nan]), np.array([1.0, 2.0])).passed


# --------------------------------------------------------------------------- user code that raises


def test_an_exception_in_user_code_is_a_refused_report_naming_function_and_exception():
    def forward(x):
        return 1 / 0

    r = jn.check_batch_vjp(forward, tanh_vjp, X)
    assert_refused(r, "raised", "forward raised ZeroDivisionError: division by zero")


def test_sys_exit_in_user_code_is_caught():
    import sys

    def vjp(x, g):
        sys.exit(0)

    assert_refused(jn.check_batch_vjp(np.tanh, vjp, X), "raised", "vjp called sys.exit(0)")


def test_verdicts_are_three_and_passed_means_pass():
    assert chk.VERDICTS == ("pass", "fail", "refused")
    r = jn.check_batch_vjp(np.tanh, tanh_vjp, X)
    assert r.verdict == "pass" and r.passed and r.as_dict()["passed"] is True
    with pytest.raises(ValueError, match="verdict: expected one of"):
        chk.CheckReport(
            name="n",
            kind="k",
            verdict="maybe",
            diagnosis="d",
            summary="s",
            input_shape=(1,),
            output_shape=(1,),
            dtype="float64",
            tolerance=chk.Tolerance.for_dtype(np.float64),
        )
