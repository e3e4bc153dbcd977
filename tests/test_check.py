"""The gradient-check toolkit (jacobian_nn.check): verdicts, diagnoses, tolerances, reports, adapters.

Each test builds a claim whose truth is known by construction (a linear map and
a deliberately altered Jacobian) and asserts the verdict and the diagnosis
separately. The gallery of classic slips is in test_check_gallery.py, the
command line in test_check_cli.py.
"""

import json
import math

import numpy as np
import pytest
from hypothesis import given, strategies as st

import jacobian_nn as jn
from jacobian_nn import check as chk

# --------------------------------------------------------------------------- helpers (local to this file)


def linear(A):
    """f(x) = A x on a flattened x; its Jacobian is A (m, n)."""
    return lambda x: A @ x.reshape(-1)


def matrices(min_side=2, max_side=5, square=False):
    @st.composite
    def build(draw):
        m = draw(st.integers(min_side, max_side))
        n = m if square else draw(st.integers(min_side, max_side))
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        return rng.normal(size=(m, n)), rng.normal(size=n)

    return build()


# --------------------------------------------------------------------------- tolerances


def test_default_tolerances_follow_sqrt_eps():
    t64, t32 = chk.Tolerance.for_dtype(np.float64), chk.Tolerance.for_dtype(np.float32)
    assert t64.rtol == pytest.approx(chk.TOL_SQRT_EPS_FACTOR * math.sqrt(np.finfo(np.float64).eps))
    assert t32.rtol == pytest.approx(chk.TOL_SQRT_EPS_FACTOR * math.sqrt(np.finfo(np.float32).eps))
    assert t32.atol > 1e4 * t64.atol  # float32 is looser, and says why
    assert "float32 is looser" in t32.explain() and "sqrt(eps)" in t32.explain()


def test_tolerance_overrides_reach_the_report():
    A = np.array([[1.0, 2.0], [3.0, 4.0]])
    r = jn.check_jacobian(linear(A), lambda x: A * (1 + 1e-4), np.ones(2))
    assert not r.passed
    r = jn.check_jacobian(linear(A), lambda x: A * (1 + 1e-4), np.ones(2), rtol=1e-3)
    assert r.passed and r.tolerance.rtol == 1e-3


# --------------------------------------------------------------------------- diagnoses on linear maps


@given(matrices())
def test_correct_jacobian_passes_as_rounding(mx):
    A, x = mx
    r = jn.check_jacobian(linear(A), lambda x: A, x)
    assert r.passed and r.diagnosis == "rounding"


@given(matrices(square=True))
def test_transposed_square_jacobian(mx):
    A, x = mx
    if np.allclose(A, A.T, atol=1e-3):
        return
    r = jn.check_jacobian(linear(A), lambda x: A.T, x)
    assert not r.passed
    assert r.diagnosis == "transposed"


def test_transposed_shape_is_diagnosed_as_transposed():
    A = np.arange(6.0).reshape(2, 3) + 1
    r = jn.check_jacobian(linear(A), lambda x: A.T, np.ones(3))
    assert not r.passed and r.diagnosis == "transposed"
    assert any("has shape (3, 2), expected (2, 3)" in n for n in r.notes)


@given(matrices())
def test_flipped_sign(mx):
    A, x = mx
    r = jn.check_jacobian(linear(A), lambda x: -A, x)
    assert not r.passed and r.diagnosis == "sign_flipped"


@given(matrices(), st.sampled_from([2.0, 0.5, 3.0, -2.0, 0.25, 1.5]))
def test_constant_factor_is_reported(mx, c):
    A, x = mx
    r = jn.check_jacobian(linear(A), lambda x: c * A, x)
    assert not r.passed and r.diagnosis == "constant_factor"
    assert r.factor == pytest.approx(c, rel=1e-6)


def test_factor_is_printed_as_a_fraction():
    A = np.array([[1.0, -2.0], [0.5, 3.0]])
    text = str(jn.check_jacobian(linear(A), lambda x: 0.5 * A, np.ones(2)))
    assert "factor 0.5 (= 1/2)" in text


def test_diagonal_only_softmax_jacobian():
    z = np.array([0.3, -1.2, 0.8, 0.1])
    soft = jn.Softmax()
    f = lambda v: soft.forward(v.reshape(-1, 1))
    J = soft.jacobian(z[:, None])
    r = jn.check_jacobian(f, lambda v: np.diag(np.diag(J)), z, reference="softmax")
    assert not r.passed and r.diagnosis == "diagonal_only"


def test_a_zero_claim_is_a_mismatch_not_diagonal_only():
    A = np.array([[1.0, 2.0], [3.0, 4.0]])
    r = jn.check_jacobian(linear(A), lambda x: np.zeros((2, 2)), np.ones(2))
    assert not r.passed and r.diagnosis == "mismatch"
    assert any("zero everywhere" in n for n in r.notes)


def test_one_wrong_entry_is_a_mismatch_located_by_row_and_column():
    A = np.array([[1.0, 2.0, 0.5], [3.0, 4.0, -1.0]])
    B = A.copy()
    B[1, 2] = 7.0
    r = jn.check_jacobian(linear(A), lambda x: B, np.ones(3))
    assert not r.passed and r.diagnosis == "mismatch"
    worst = r.worst[0]
    assert (worst.row, worst.column) == (1, 2)
    assert worst.analytic == pytest.approx(7.0) and worst.numeric == pytest.approx(-1.0)
    assert worst.abs_error == pytest.approx(8.0, rel=1e-6) and not worst.passed
    assert worst.tolerance < 1e-5 and worst.fd_error >= 0


# --------------------------------------------------------------------------- kinks


def relu(v):
    return np.maximum(v, 0.0)


@pytest.mark.parametrize("at_zero, word", [(0.0, "left"), (1.0, "right"), (0.5, "strictly between")])
def test_relu_at_exactly_zero_passes_with_its_convention(at_zero, word):
    x = np.array([0.0, 0.7, -0.4])

    def jac(v):
        d = (v > 0).astype(float)
        d[v == 0] = at_zero
        return np.diag(d)

    r = jn.check_jacobian(relu, jac, x)
    assert r.passed and r.diagnosis == "kink"
    assert word in r.convention
    assert len(r.kinks) == 1 and (r.kinks[0].row, r.kinks[0].column) == (0, 0)
    assert r.kinks[0].left == pytest.approx(0.0, abs=1e-9) and r.kinks[0].right == pytest.approx(1.0)


def test_a_value_outside_the_one_sided_derivatives_at_a_kink_fails():
    x = np.array([0.0, 0.7])
    r = jn.check_jacobian(relu, lambda v: np.diag([2.0, 1.0]), x)
    assert not r.passed


def test_a_bug_away_from_the_kink_is_not_excused_by_a_kink_elsewhere():
    x = np.array([0.0, 0.7, -0.4])
    r = jn.check_jacobian(relu, lambda v: np.diag([0.0, 1.0, 1.0]), x)
    assert not r.passed and r.diagnosis == "mismatch"
    assert (r.worst[0].row, r.worst[0].column) == (2, 2)


def test_step_function_jump_is_a_kink_with_the_library_convention():
    step = jn.Step()
    X = np.array([[0.0, -0.3, 0.7]])
    r = jn.check_batch_jacobian(step.forward_batched, step.jacobian_batched, X, reference="step")
    assert r.passed and r.diagnosis == "kink"
    assert any("discontinuous" in n for n in r.notes)


@pytest.mark.parametrize("name", ["relu", "leaky_relu"])
def test_library_activations_at_zero_pass_against_themselves(name):
    act = jn.get_activation(name)
    X = np.array([[0.0, 1.3, -0.2], [0.5, 0.0, -2.0]])
    r = jn.check_batch_jacobian(act.forward_batched, act.jacobian_batched, X, reference=name)
    assert r.passed and r.diagnosis == "kink" and "left" in r.convention


# --------------------------------------------------------------------------- batches


def test_batched_report_names_the_sample():
    sig = jn.Sigmoid()
    X = np.random.default_rng(4).normal(size=(4, 3))

    def jacobians(X):
        J = sig.jacobian_batched(X)
        J[2, 1, 1] *= 3.0
        return J

    r = jn.check_batch_jacobian(sig.forward_batched, jacobians, X)
    assert not r.passed and r.diagnosis == "mismatch"
    w = r.worst[0]
    assert (w.sample, w.where, w.output) == (2, "dx[2, 1]", "out[2, 1]")
    assert "dx[2, 1] of out[2, 1]" in str(r)


@pytest.mark.parametrize("N", [3, 4, 7])
@pytest.mark.parametrize("scale", ["missing", "twice"])
def test_batch_scaling_off_by_N(N, scale):
    T = np.random.default_rng(N).normal(size=(N, 2))
    Y = np.random.default_rng(N + 1).normal(size=(N, 2))
    loss = lambda Y: 0.5 * np.sum((Y - T) ** 2) / Y.shape[0]
    c = 1.0 if scale == "missing" else 1.0 / Y.shape[0] ** 2
    r = jn.check_batch_vjp(loss, lambda Y, g: c * g * (Y - T), Y)
    assert not r.passed and r.diagnosis == "missing_batch_scaling"
    assert r.factor == pytest.approx(N if scale == "missing" else 1.0 / N, rel=1e-6)


def test_factor_two_without_a_batch_is_a_constant_factor():
    T = np.ones((3, 2))
    loss = lambda Y: 0.5 * np.sum((Y - T) ** 2) / Y.shape[0]
    r = jn.check_vjp(loss, lambda Y, g: 2 * g * (Y - T) / 3, np.zeros((3, 2)))
    assert r.diagnosis == "constant_factor" and r.factor == pytest.approx(2.0)


def test_coupled_batch_norm_against_a_per_sample_claim():
    rng = np.random.default_rng(3)
    X, gamma, beta = rng.normal(size=(4, 3)), rng.normal(size=3), rng.normal(size=3)

    def bn_forward(x, gamma, beta):
        mu, var = x.mean(0), x.var(0)
        xh = (x - mu) / np.sqrt(var + 1e-5)
        return gamma * xh + beta, (xh, gamma, np.sqrt(var + 1e-5))

    def bn_backward(dout, cache):
        xh, gamma, sig = cache
        N, dxh = dout.shape[0], dout * gamma
        return (N * dxh - dxh.sum(0) - xh * (dxh * xh).sum(0)) / (N * sig), (dout * xh).sum(0), dout.sum(0)

    def bn_backward_per_sample(dout, cache):
        xh, gamma, sig = cache
        return dout * gamma / sig, (dout * xh).sum(0), dout.sum(0)

    kw = {"gamma": gamma, "beta": beta}
    good = jn.check_batch_vjp(
        *jn.from_cs231n(bn_forward, bn_backward, **kw), X, reference="batchnorm", reference_kwargs=kw
    )
    assert good.passed and [w.passed for w in good.witnesses] == [True, True, True]
    assert [s.gradient for s in good.sections] == ["dx", "dgamma", "dbeta"]
    bad = jn.check_batch_vjp(
        *jn.from_cs231n(bn_forward, bn_backward_per_sample, **kw), X, reference="batchnorm", reference_kwargs=kw
    )
    assert not bad.passed and bad.gradient == "dx"
    assert any("couples the samples" in n for n in bad.notes)
    assert [s.verdict for s in bad.sections] == ["fail", "pass", "pass"]


# --------------------------------------------------------------------------- vjp witnesses


def test_a_vjp_that_is_not_linear_in_its_cotangent_is_refused():
    A = np.array([[1.0, 2.0], [-3.0, 0.5], [0.2, 0.1]])
    vjp = lambda x, v: np.abs(v) @ A  # right for every unit cotangent e_i
    r = jn.check_vjp(linear(A), vjp, np.ones(2))
    assert r.verdict == "refused" and r.diagnosis == "not_linear" and not r.passed
    assert "vjp is not linear in its cotangent" in r.cause


def test_without_the_full_jacobian_sampled_entries_and_the_identity_witness():
    A = np.random.default_rng(0).normal(size=(3, 4))
    r = jn.check_vjp(linear(A), lambda x, v: v @ A, np.ones(4), full=False)
    assert r.passed and len(r.witnesses) == 2
    assert "sampled" in r.witnesses[0].name and "identity" in r.witnesses[1].name
    assert "4 of 4 entries of dx" in r.sampled
    r = jn.check_vjp(linear(A), lambda x, v: 1.5 * (v @ A), np.ones(4), full=False)
    assert not r.passed


def test_package_dense_backward_with_row_cotangents():
    layer = jn.Dense(4, 3, "tanh", init="xavier", seed=0)
    x = np.random.default_rng(1).normal(size=(4, 1))
    f = lambda x: layer.forward(x)[0]
    vjp = lambda x, g: layer.backward(g, layer.forward(x)[1])[0]
    r = jn.check_vjp(
        f,
        vjp,
        x,
        cotangent_shape=(1, 3),
        gradient_shape=(1, 4),
        reference="dense",
        reference_kwargs={"W": layer.W, "b": layer.b, "activation": "tanh"},
    )
    assert r.passed and r.diagnosis == "rounding" and len(r.witnesses) == 3


# --------------------------------------------------------------------------- references


def test_reference_flags_a_different_forward():
    f = lambda v: np.exp(v) / np.exp(v).sum() * 1.01  # not the softmax
    jac = lambda v: np.diag(f(v)) - 1.01 * np.outer(f(v), f(v)) / 1.01**2 * 1.01
    x = np.array([0.2, -0.1, 0.4])
    r = jn.check_jacobian(f, jac, x, reference="softmax", atol=1e-4, rtol=1e-4)
    ref = r.witnesses[1]
    assert not ref.passed and ref.detail == "forward DIFFERS"
    assert not r.passed


@pytest.mark.parametrize(
    "kwargs, exc, words",
    [
        ({"reference": "swish"}, ValueError, "reference: expected one of"),
        ({"reference": "dense", "reference_kwargs": {"W": np.eye(2)}}, ValueError, "missing ['b']"),
        ({"reference": "batchnorm"}, ValueError, "couples the samples"),
    ],
)
def test_reference_errors_name_the_argument(kwargs, exc, words):
    with pytest.raises(exc, match=None) as info:
        jn.check_jacobian(lambda v: v, lambda v: np.eye(2), np.ones(2), **kwargs)
    assert words in str(info.value)


# --------------------------------------------------------------------------- dtype and bad input


def test_float32_passes_with_looser_tolerance():
    X = np.random.default_rng(2).normal(size=(3, 4)).astype(np.float32)
    seen = []

    def vjp(X, G):
        seen.append((X.dtype, G.dtype))
        return G * (1 - np.tanh(X) ** 2)

    r = jn.check_batch_vjp(np.tanh, vjp, X, reference="tanh")
    # the claim runs in float32; the finite-difference witness evaluates f on float64 copies
    assert r.passed and r.dtype == "float32" and set(seen) == {(np.dtype(np.float32), np.dtype(np.float32))}
    # looser than float64's 1.5e-7; with a float64 witness only the claim's float32 rounding is allowed for
    assert r.tolerance.rtol == pytest.approx(1000 * float(np.finfo(np.float32).eps))


def test_float_of_the_other_precision_is_refused():
    with pytest.raises(TypeError, match="x: expected dtype float64, got float32"):
        jn.check_jacobian(lambda v: v, lambda v: np.eye(2), np.ones(2, dtype=np.float32), dtype=np.float64)


def test_nan_input_and_wrong_sized_claim_are_refused():
    with pytest.raises(ValueError, match="x: expected finite values"):
        jn.check_jacobian(lambda v: v, lambda v: np.eye(2), np.array([1.0, np.nan]))
    r = jn.check_jacobian(lambda v: v, lambda v: np.eye(3), np.ones(2))
    assert r.verdict == "refused" and r.diagnosis == "wrong_shape" and "returned shape (3, 3)" in r.cause
    r = jn.check_vjp(lambda v: v, lambda v, g: np.ones(3), np.ones(2))
    assert r.verdict == "refused" and "vjp returned dx of shape (3,), x has shape (2,)" in r.cause


def test_in_place_mutation_of_an_argument_is_refused_and_inputs_are_untouched():
    x = np.array([0.5, -0.5, 1.5])

    def vjp(x, dout):  # the book's Relu.backward: dout[mask] = 0
        dout[x <= 0] = 0
        return dout

    r = jn.check_vjp(relu, vjp, x)
    assert r.verdict == "refused" and r.diagnosis == "mutates_argument"
    assert r.cause == "vjp mutates its argument dout (it must not change its inputs; work on a copy)"
    assert np.array_equal(x, [0.5, -0.5, 1.5])


# --------------------------------------------------------------------------- adapters and reports


def test_cs231n_affine_pair_with_params():
    rng = np.random.default_rng(5)
    w, b = rng.normal(size=(3, 2)), rng.normal(size=2)

    def affine_forward(x, w, b):
        return x @ w + b, (x, w, b)

    def affine_backward(dout, cache):
        x, w, b = cache
        return dout @ w.T, x.T @ dout, dout.sum(0)

    f, vjp = jn.from_cs231n(affine_forward, affine_backward, w, b)
    r = jn.check_batch_vjp(f, vjp, rng.normal(size=(4, 3)), reference="dense", reference_kwargs={"W": w, "b": b})
    assert r.passed and [s.gradient for s in r.sections] == ["dx", "dw", "db"]
    assert [s.input_shape for s in r.sections] == [(4, 3), (3, 2), (2,)]

    def bad_backward(dout, cache):
        return dout @ cache[1], None, None  # (4, 2) @ (3, 2): numpy raises

    f, vjp = jn.from_cs231n(affine_forward, bad_backward, w=w, b=b)
    r = jn.check_batch_vjp(f, vjp, rng.normal(size=(4, 3)))
    assert r.verdict == "refused" and r.diagnosis == "raised"
    assert r.cause.startswith("bad_backward raised ValueError: matmul")


def test_report_dict_is_json_and_str_is_readable():
    A = np.array([[1.0, 2.0], [3.0, 4.0]])
    r = jn.check_jacobian(linear(A), lambda x: A.T, np.ones(2), name="demo")
    d = json.loads(json.dumps(r.as_dict()))
    assert d["passed"] is False and d["diagnosis"] == "transposed"
    assert {"row", "column", "analytic", "numeric", "abs_error", "rel_error", "tolerance", "fd_error"} <= set(
        d["worst"][0]
    )
    assert "sqrt(eps)" in d["tolerance"]["explanation"]
    text = str(r)
    assert text.startswith("check_jacobian demo: FAIL (transposed)")
    assert "dx[1] of out[0]" in text and "dx[0] of out[1]" in text


def test_top_k_limits_the_listed_entries():
    A = np.random.default_rng(0).normal(size=(4, 4))
    r = jn.check_jacobian(linear(A), lambda x: A + 1.0, np.ones(4), top_k=2)
    excess = [e.abs_error - e.tolerance for e in r.worst]  # worst first: by excess over the tolerance
    assert len(r.worst) == 2 and excess[0] >= excess[1] > 0


def test_batched_per_sample_jacobians_in_the_transposed_shape():
    rng = np.random.default_rng(0)
    W, b, X = rng.normal(size=(3, 2)), rng.normal(size=2), rng.normal(size=(4, 3))
    f = lambda X: np.tanh(X @ W + b)
    right = lambda X: (1 - f(X) ** 2)[:, :, None] * W.T[None]  # (N, m, n) = (4, 2, 3)
    assert jn.check_batch_jacobian(f, right, X).passed
    r = jn.check_batch_jacobian(f, lambda X: right(X).transpose(0, 2, 1), X)
    assert not r.passed and r.diagnosis == "transposed"
    assert any("has shape (4, 3, 2), expected (4, 2, 3)" in n for n in r.notes)


def test_the_library_does_not_import_the_command_line():
    import subprocess
    import sys
    from pathlib import Path

    probe = (
        "import sys, jacobian_nn, jacobian_nn.check; "
        "print(sorted(m for m in sys.modules if m in ('jacobian_nn.cli', 'jacobian_nn.check.cli')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert out.stdout.strip() == "[]"


@pytest.mark.parametrize("flags", [[], ["-OO"]], ids=["docstrings", "stripped"])
def test_the_checker_imports_with_or_without_docstrings(flags):
    import subprocess
    import sys
    from pathlib import Path

    # The shared keyword documentation is appended to each check_* docstring; ``python -OO``
    # strips docstrings (None), which must not break the import.
    probe = (
        "import jacobian_nn.check as c; d = c.check_vjp.__doc__; "
        "print('none' if d is None else 'common' if 'Keyword arguments: ``reference``' in d else 'plain')"
    )
    out = subprocess.run(
        [sys.executable, *flags, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    assert out.stdout.strip() == ("none" if flags else "common")


@pytest.mark.parametrize("f", [np.exp, lambda v: np.exp(v).sum()], ids=["jacobian", "gradient"])
def test_a_small_entry_is_not_excused_by_a_large_one(f):
    x = np.array([10.0, -10.0])  # exp'(x) = 2.2e4 and 4.5e-5
    r = jn.check_vjp(f, lambda x, g: g * np.exp(x) * np.array([1.0, 2.0]), x)  # the small entry doubled
    assert r.verdict == "fail" and r.worst[0].where == "dx[1]", str(r)
    assert jn.check_vjp(f, lambda x, g: g * np.exp(x), x).passed  # its correct twin
