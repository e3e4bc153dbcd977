"""The public checks share one path for their common keyword arguments (``check/api.py``'s
``_public_check``): each of them must reach the report, for every check, and a bad one must be
refused, naming it, before the checked code is called."""

from __future__ import annotations

import numpy as np
import pytest

import jacobian_nn as jn

RNG = np.random.default_rng(11)
X = RNG.standard_normal((3, 4))
ALPHA = 0.3


def leaky(X):
    return np.where(X > 0, X, ALPHA * X)


def leaky_slope(X):
    return np.where(X > 0, 1.0, ALPHA)


def leaky_jacobians(X):
    return np.stack([np.diag(s) for s in leaky_slope(X)])


def squares(X, y):
    return float(np.sum(X**2)), 2 * X


#: name -> (call on a batch X with extra keyword arguments, takes ``reference``, batch size in the report)
CHECKS = {
    "check_jacobian": (
        lambda X, **kw: jn.check_jacobian(leaky, lambda x: np.diag(leaky_slope(x)), X[0], **kw),
        True,
        None,
    ),
    "check_vjp": (lambda X, **kw: jn.check_vjp(leaky, lambda x, v: v * leaky_slope(x), X[0], **kw), True, None),
    "check_batch_jacobian": (lambda X, **kw: jn.check_batch_jacobian(leaky, leaky_jacobians, X, **kw), True, 3),
    "check_batch_vjp": (
        lambda X, **kw: jn.check_batch_vjp(leaky, lambda X, G: G * leaky_slope(X), X, **kw),
        True,
        3,
    ),
    "check_loss": (lambda X, **kw: jn.check_loss(squares, X, **kw), False, 3),
}

COMMON = dict(dtype=np.float32, atol=1e-3, rtol=2e-3, err_factor=7.0, seed=5, top_k=1, name="probe")


@pytest.mark.parametrize("kind", sorted(CHECKS))
def test_every_common_option_reaches_the_report(kind):
    run, takes_reference, batch_size = CHECKS[kind]
    extra = {"reference": "leaky_relu", "reference_kwargs": {"alpha": ALPHA}} if takes_reference else {}
    r = run(X.astype(np.float32), **COMMON, **extra)
    assert r.verdict == "pass", r
    assert (r.kind, r.name, r.seed, r.dtype, r.batch_size) == (kind, "probe", 5, "float32", batch_size)
    assert r.tolerance == jn.Tolerance(atol=1e-3, rtol=2e-3, err_factor=7.0, dtype="float32")
    assert len(r.worst) == 1
    assert any("reference leaky_relu" in w.name for w in r.witnesses) == takes_reference
    default = run(X)
    assert (default.kind, default.name, default.seed, default.dtype) == (kind, default.name, 0, "float64")
    assert default.tolerance == jn.Tolerance.for_dtype(np.float64)
    assert default.name != "probe"


@pytest.mark.parametrize("kind", sorted(k for k, (_, ref, _) in CHECKS.items() if ref))
def test_reference_kwargs_reach_the_reference(kind):
    """The near miss: the same correct code against the reference with another alpha fails
    exactly the reference witness (the kwargs are passed through, not dropped)."""
    run = CHECKS[kind][0]
    r = run(X, reference="leaky_relu", reference_kwargs={"alpha": 0.1})
    assert r.verdict == "fail"
    failed = [w.name for w in r.witnesses if not w.passed]
    assert failed and all("reference leaky_relu" in name for name in failed), failed


@pytest.mark.parametrize("kind", sorted(CHECKS))
@pytest.mark.parametrize(
    "option, value, message",
    [
        ("seed", -1, "seed: expected an integer >= 0"),
        ("top_k", 1.5, "top_k: expected an integer >= 0"),
        ("atol", float("nan"), "atol: expected a finite number >= 0"),
        ("rtol", -1.0, "rtol: expected a finite number >= 0"),
        ("err_factor", float("inf"), "err_factor: expected a finite number >= 0"),
    ],
)
def test_a_bad_common_option_is_refused_before_any_call(kind, option, value, message):
    calls = []

    def spy(X, *rest):
        calls.append(1)
        raise AssertionError("the checked code ran before the options were validated")

    run = {
        "check_jacobian": lambda **kw: jn.check_jacobian(spy, spy, X[0], **kw),
        "check_vjp": lambda **kw: jn.check_vjp(spy, spy, X[0], **kw),
        "check_batch_jacobian": lambda **kw: jn.check_batch_jacobian(spy, spy, X, **kw),
        "check_batch_vjp": lambda **kw: jn.check_batch_vjp(spy, spy, X, **kw),
        "check_loss": lambda **kw: jn.check_loss(spy, X, **kw),
    }[kind]
    with pytest.raises(ValueError, match=message):
        run(**{option: value})
    assert calls == []


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: jn.check_jacobian(leaky, None, X[0]), "f and jacobian must be callable"),
        (lambda: jn.check_batch_jacobian(None, leaky_jacobians, X), "f and jacobians must be callable"),
        (lambda: jn.check_vjp(leaky, 3, X[0]), "f and vjp must be callable"),
        (lambda: jn.check_batch_vjp(leaky, 3, X), "f and vjp must be callable"),
        (lambda: jn.check_loss("loss", X), "loss_fn must be callable"),
    ],
)
def test_callables_are_named_when_refused(call, message):
    with pytest.raises(TypeError, match=message):
        call()


def test_a_bad_input_is_named_before_a_non_callable():
    """Validation order: ``x`` first, then the callables (as before the consolidation)."""
    with pytest.raises(ValueError, match="x: expected a non-empty array"):
        jn.check_jacobian(None, None, np.zeros(0))
    with pytest.raises(ValueError, match="X: expected a batch"):
        jn.check_batch_jacobian(None, None, np.ones(3))
