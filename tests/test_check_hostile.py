"""Hostile users of the checker: derivative code written to be wrong in ways a careless checker would
pass. Each case is a small function with the verdict it must get (``fail``, or ``refused`` with its
named cause); each rule added for one of them has a near miss, the correct twin that must still pass.

A pass means: the claimed derivative is consistent with the ``f`` it was given, at the point given, for
the input layouts, cotangents and calls the checker tried. A forward and a backward that are wrong in
the same way pass the VJP check (``reference=`` catches the wrong forward), and a function may change
after the last call the checker makes; both are stated here as tests, not hidden."""

import json

import numpy as np
import pytest

import jacobian_nn as jn
from jacobian_nn.check.cli import EXIT_CODES
from jacobian_nn.cli import main

RNG = np.random.default_rng(20)
X = RNG.normal(size=(4, 5))  # a small batch: the full Jacobian is compared entry by entry
XL = RNG.normal(size=(128, 512))  # a large one: sampled entries and the inner-product identity
SCORES = RNG.normal(size=(4, 5))
W, B = RNG.normal(size=(5, 3)), RNG.normal(size=3)


def tanh_vjp(x, g):
    return g * (1.0 - np.tanh(x) ** 2)


def assert_verdict(r, verdict, cause=None, words=None):
    assert r.verdict == verdict, str(r)
    assert r.passed is (verdict == "pass"), str(r)
    if cause is not None:
        assert r.diagnosis == cause, str(r)
    if words is not None:
        assert words in (r.cause or "") + r.summary, str(r)


# --------------------------------------------------------------------------- state across calls


def global_set_by_backward(right):
    """``f`` reads a scale that the backward sets to 2 on its first call: the witnesses' calls of ``f``
    come after the backward's, so finite differences see 2 tanh, which the doubled backward matches.
    The twin reads the global and never changes it."""
    state = {"scale": 1.0}

    def f(x):
        return state["scale"] * np.tanh(x)

    def vjp(x, g):
        if not right:
            state["scale"] = 2.0
            return 2.0 * tanh_vjp(x, g)
        return state["scale"] * tanh_vjp(x, g)

    return f, vjp


def f_changes_after_calls(right, k=2):
    """``f`` doubles after its k-th call (a counter), and the backward claims the doubled derivative.
    The twin counts its calls too, without its values depending on the count."""
    calls = {"n": 0}

    def f(x):
        calls["n"] += 1
        return (2.0 if calls["n"] > k and not right else 1.0) * np.tanh(x)

    def vjp(x, g):
        return (1.0 if right else 2.0) * tanh_vjp(x, g)

    return f, vjp


def vjp_changes_after_calls(k):
    calls = {"n": 0}

    def vjp(x, g):
        calls["n"] += 1
        return tanh_vjp(x, g) * (1.01 if calls["n"] > k else 1.0)

    return np.tanh, vjp


def caches_first_cotangent():
    seen = {}

    def vjp(x, g):
        seen.setdefault("g", g.copy())
        return tanh_vjp(x, seen["g"])

    return np.tanh, vjp


@pytest.mark.parametrize("check", ["check_vjp", "batch"])
def test_backward_that_changes_a_global_the_forward_reads_is_refused(check):
    f, vjp = global_set_by_backward(right=False)
    r = jn.check_vjp(f, vjp, X) if check == "check_vjp" else jn.check_batch_vjp(f, vjp, X)
    assert_verdict(r, "refused", "not_deterministic", "returns other values after the witnesses'")
    assert "global" in r.cause


def test_near_miss_backward_reading_a_global_it_leaves_alone_passes():
    f, vjp = global_set_by_backward(right=True)
    r = jn.check_batch_vjp(f, vjp, X)
    assert_verdict(r, "pass")
    assert any("same values after the witnesses' calls" in p.name for p in r.probes)


@pytest.mark.parametrize("k", [2, 50])
@pytest.mark.parametrize("x", [X, XL], ids=["small", "large"])
def test_forward_that_changes_after_its_kth_call_is_refused(x, k):
    """k = 2: the third call (the layout probe's) sees the change; k = 50: the witnesses' calls do, and
    the last call, after them, gives it away."""
    r = jn.check_batch_vjp(*f_changes_after_calls(right=False, k=k), x)
    assert_verdict(r, "refused", "not_deterministic", "call counter")


def test_near_miss_forward_counting_its_calls_passes():
    assert_verdict(jn.check_batch_vjp(*f_changes_after_calls(right=True), X), "pass")


def test_backward_that_goes_wrong_after_its_tenth_call_does_not_pass():
    r = jn.check_batch_vjp(*vjp_changes_after_calls(10), X)
    assert_verdict(r, "refused", "not_deterministic")


def test_a_function_that_changes_after_the_last_call_is_beyond_any_check():
    """The limit, stated: a backward right for its first 1000 calls passes; no finite probe sees past it."""
    assert_verdict(jn.check_batch_vjp(*vjp_changes_after_calls(1000), X), "pass")


def test_backward_caching_its_first_cotangent_is_refused():
    assert_verdict(jn.check_batch_vjp(*caches_first_cotangent(), X), "refused", "ignores_cotangent")


# --------------------------------------------------------------------------- the cotangent


def sparse_sensitive_vjp(right):
    """Right for dense random cotangents (the only kind a large check's witnesses use), 1.5 times too
    large for a cotangent with fewer than half its entries non-zero. The twin takes a different code
    path for sparse cotangents that computes the same values."""

    def vjp(x, g):
        if np.count_nonzero(g) < g.size // 2:
            if right:
                out = np.zeros_like(x)
                nz = g != 0
                out[nz] = g[nz] * (1.0 - np.tanh(x[nz]) ** 2)
                return out
            return 1.5 * tanh_vjp(x, g)
        return tanh_vjp(x, g)

    return np.tanh, vjp


def unit_cotangent_vjp(rel):
    """Right for one-hot cotangents (the small check's rows), ``1 + rel`` times too large otherwise."""

    def vjp(x, g):
        return tanh_vjp(x, g) * (1.0 if np.count_nonzero(g) == 1 else 1.0 + rel)

    return np.tanh, vjp


@pytest.mark.parametrize("x", [X, XL], ids=["small", "large"])
def test_backward_wrong_only_for_sparse_cotangents_is_refused(x):
    r = jn.check_batch_vjp(*sparse_sensitive_vjp(right=False), x)
    assert_verdict(r, "refused", "not_linear", "wrong for sparse or for dense cotangents")


@pytest.mark.parametrize("x", [X, XL], ids=["small", "large"])
def test_near_miss_backward_with_a_sparse_code_path_that_is_right_passes(x):
    r = jn.check_batch_vjp(*sparse_sensitive_vjp(right=True), x)
    assert_verdict(r, "pass")
    assert any("additive over sparse parts" in p.name for p in r.probes)


@pytest.mark.parametrize("rel", [1e-4, 1e-6])
def test_backward_wrong_only_for_dense_cotangents_fails(rel):
    """The Jacobian assembled from unit cotangents is right; the inner-product identity (dense v) is not:
    at 1e-6 only its pair along vjp(v) sees it."""
    assert_verdict(jn.check_batch_vjp(*unit_cotangent_vjp(rel), X), "fail")


def test_near_miss_dense_cotangent_error_below_the_tolerance_passes():
    """1e-7 relative is inside float64's 10 sqrt(eps) = 1.5e-7: rounding, by the stated tolerance."""
    assert_verdict(jn.check_batch_vjp(*unit_cotangent_vjp(1e-7), X), "pass")


def test_backward_keyed_on_id_of_x_or_on_the_clock_is_refused():
    cache = {}

    def vjp(x, g):  # the first cotangent's answer, per array identity (ids of freed copies are reused)
        return cache.setdefault(id(x), tanh_vjp(x, g))

    assert not jn.check_batch_vjp(np.tanh, vjp, X).passed
    clock = {"t": 0}

    def f(x):
        clock["t"] += 1
        return np.tanh(x) * (1.0 + 1e-15 * (clock["t"] % 7))

    assert_verdict(jn.check_batch_vjp(f, tanh_vjp, X), "refused", "not_deterministic")


def test_backward_with_a_mask_seeded_identically_per_call_fails():
    """Deterministic, so not refused: a mask the forward does not have is a wrong derivative."""

    def vjp(x, g):
        mask = np.random.default_rng(0).random(x.shape) < 0.5
        return tanh_vjp(x, g) * mask

    assert_verdict(jn.check_batch_vjp(np.tanh, vjp, X), "fail")


# --------------------------------------------------------------------------- small relative errors


def scaled_tanh_vjp(rel):
    def vjp(x, g):
        return (tanh_vjp(x, g) * (1.0 + rel)).astype(x.dtype)

    return vjp


@pytest.mark.parametrize("x", [X, XL], ids=["small", "large"])
@pytest.mark.parametrize(
    "dtype, rel, verdict",
    [
        (np.float64, 1e-6, "fail"),  # 1e-6 relative in float64 is a wrong derivative, never rounding
        (np.float64, 3e-7, "fail"),  # atol + rtol = 2 * 10 sqrt(eps) = 3e-7: the smallest error that fails
        (np.float64, 1e-8, "pass"),  # near miss: within 10 sqrt(eps)
        (np.float32, 5e-4, "fail"),  # was a pass at float32's 10 sqrt(eps) = 3.5e-3 per entry
        (np.float32, 3e-4, "fail"),
        (np.float32, 1e-5, "pass"),  # near miss: a float32 claim's rounding-sized error
    ],
)
def test_smallest_relative_error_that_fails(x, dtype, rel, verdict):
    r = jn.check_batch_vjp(np.tanh, scaled_tanh_vjp(rel), x.astype(dtype))
    assert_verdict(r, verdict)


def test_float32_tolerance_is_float32_rounding_when_the_witness_is_float64():
    r = jn.check_batch_vjp(np.tanh, tanh_vjp, X.astype(np.float32))
    assert_verdict(r, "pass")
    eps32 = float(np.finfo(np.float32).eps)
    assert r.tolerance.rtol == r.tolerance.atol == pytest.approx(1000 * eps32)


def test_float32_tolerance_stays_loose_when_f_computes_in_float32():
    """``f`` that returns float32 for float64 input: the witness is float32 finite differences, whose
    noise the 10 sqrt(eps) tolerance is for."""
    f = lambda x: np.tanh(x).astype(np.float32)  # noqa: E731
    r = jn.check_batch_vjp(f, lambda x, g: tanh_vjp(x, g).astype(np.float32), X.astype(np.float32))
    assert_verdict(r, "pass")
    assert r.tolerance.rtol == pytest.approx(10 * np.sqrt(float(np.finfo(np.float32).eps)))


def test_explicit_float32_tolerance_is_respected():
    r = jn.check_batch_vjp(np.tanh, scaled_tanh_vjp(5e-4), X.astype(np.float32), rtol=1e-2, atol=1e-2)
    assert_verdict(r, "pass")
    assert r.tolerance.rtol == 1e-2


def float32_softmax_vjp(x, g):
    """A correct float32 softmax VJP, ``s * (g - <g, s>)``: cancellation in the bracket."""
    s = np.exp(x - x.max(axis=1, keepdims=True))
    s /= s.sum(axis=1, keepdims=True)
    return s * (g - np.sum(g * s, axis=1, keepdims=True))


def softmax(x):
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("x", [X, XL, 8 * X], ids=["small", "large", "saturated"])
def test_near_miss_correct_float32_softmax_passes_the_tighter_tolerance(x):
    assert_verdict(jn.check_batch_vjp(softmax, float32_softmax_vjp, x.astype(np.float32)), "pass")


def test_float32_only_slip_fails():
    """Right in float64, a cheaper approximation only for float32 input."""

    def vjp(x, g):
        if x.dtype == np.float32:
            return (tanh_vjp(x, g) * (1 + 5e-4)).astype(np.float32)
        return tanh_vjp(x, g)

    assert_verdict(jn.check_batch_vjp(np.tanh, vjp, X), "pass")
    assert_verdict(jn.check_batch_vjp(np.tanh, vjp, X.astype(np.float32)), "fail")


def test_one_entry_wrong_by_1e_6_fails():
    bad = np.zeros(X.shape, dtype=bool)
    bad[2, 3] = True
    assert_verdict(jn.check_batch_vjp(np.tanh, lambda x, g: tanh_vjp(x, g) * np.where(bad, 1 + 1e-6, 1.0), X), "fail")


def sampled_rows(x, seed=0):
    """The samples the sampled witness checks (its generator, ``default_rng([seed, 11])``, draws the
    cotangent first)."""
    from jacobian_nn.check.witnesses import SAMPLE_SAMPLES

    rng = np.random.default_rng([seed, 11])
    rng.standard_normal(x.size)
    return np.sort(rng.choice(x.shape[0], size=SAMPLE_SAMPLES, replace=False))


@pytest.mark.parametrize(
    "dtype, rel, verdict",
    [
        (np.float64, 1e-6, "fail"),  # passed: random-u identity pairs average the error away by sqrt(K)
        (np.float32, 1e-3, "fail"),  # passed, up to 3e-2
        (np.float64, 1e-8, "pass"),  # near misses: within the per-entry tolerances
        (np.float32, 1e-5, "pass"),
    ],
)
def test_backward_right_only_on_the_sampled_rows(dtype, rel, verdict):
    x = XL.astype(dtype)
    rows = sampled_rows(x)

    def vjp(x, g):
        d = tanh_vjp(x, g)
        others = np.ones(x.shape[0], dtype=bool)
        others[rows] = False
        d[others] *= 1.0 + rel
        return d.astype(x.dtype)

    r = jn.check_batch_vjp(np.tanh, vjp, x)
    assert_verdict(r, verdict)
    if verdict == "fail":  # the sampled entries agree; the identity along vjp(v) is what fails
        assert r.witnesses[0].passed and not r.witnesses[-1].passed, str(r)


@pytest.mark.parametrize(
    "where",
    [(slice(-1, None), slice(None)), (slice(None), slice(300, 301)), (77, 300)],
    ids=["last_sample", "one_column", "one_entry_doubled"],
)
def test_large_backward_wrong_away_from_the_sample_fails(where):
    factor = 2.0 if where == (77, 300) else 1.01

    def vjp(x, g):
        d = tanh_vjp(x, g)
        d[where] *= factor
        return d

    assert_verdict(jn.check_batch_vjp(np.tanh, vjp, XL), "fail")


# --------------------------------------------------------------------------- a jump at the point


def jump_at(x0, where=None):
    """``tanh(x) + 1000`` where an entry is above ``x0`` (all entries, or the flat index ``where``): at
    ``x = x0`` the right one-sided difference diverges, and its error estimate made any claim a kink."""

    def f(x):
        up = x > x0 if where is None else (x.reshape(-1)[where] > x0.reshape(-1)[where])
        return np.tanh(x) + 1000.0 * up

    return f


@pytest.mark.parametrize("x", [X, XL], ids=["small", "large"])
@pytest.mark.parametrize("factor", [5.0, -3.0, 0.0])
def test_claim_at_a_jump_must_be_the_converged_side(factor, x):
    r = jn.check_batch_vjp(jump_at(x.copy()), lambda x, g: factor * tanh_vjp(x, g), x)
    assert_verdict(r, "fail")


@pytest.mark.parametrize("x", [X, XL], ids=["small", "large"])
def test_wrong_claim_at_one_jumping_entry_fails(x):
    """At 128 x 512 the entry is not sampled: the inner-product identity, whose direction crosses the
    jump, must not be excused by its diverging central difference."""
    vjp = lambda x, g: tanh_vjp(x, g) * np.where(np.arange(x.size).reshape(x.shape) == 7, 7.0, 1.0)  # noqa: E731
    assert_verdict(jn.check_batch_vjp(jump_at(x.copy(), where=7), vjp, x), "fail")


@pytest.mark.parametrize("x", [X, XL], ids=["small", "large"])
def test_near_miss_left_derivative_at_a_jump_is_a_kink(x):
    """The left derivative is the library's convention at a jump (the step function's 0 at 0)."""
    r = jn.check_batch_vjp(jump_at(x.copy()), tanh_vjp, x)
    assert_verdict(r, "pass", "kink")
    assert_verdict(jn.check_batch_vjp(jump_at(x.copy(), where=7), tanh_vjp, x), "pass")
    if x is X:
        assert any("discontinuous" in n for n in r.notes)
    step = jn.Step()
    Z = np.array([[0.0, -0.3, 0.7]])
    assert_verdict(jn.check_batch_jacobian(step.forward_batched, step.jacobian_batched, Z), "pass", "kink")


# --------------------------------------------------------------------------- what comes back


def masked(values, mask):
    return np.ma.masked_array(values, mask=mask)


HIDDEN = np.eye(4, 5, dtype=bool)
RETURNS = [
    # (id, vjp, verdict, cause)
    ("masked_entries", lambda x, g: masked(tanh_vjp(x, g), HIDDEN), "refused", "not_real"),
    ("masked_nothing", lambda x, g: masked(tanh_vjp(x, g), np.zeros(x.shape, bool)), "pass", None),
    ("complex_zero_imag", lambda x, g: tanh_vjp(x, g) + 0j, "refused", "not_real"),
    ("object_array", lambda x, g: tanh_vjp(x, g).astype(object), "refused", "not_real"),
    ("list_of_rows", lambda x, g: tanh_vjp(x, g).tolist(), "refused", "wrong_count"),
    ("float16", lambda x, g: tanh_vjp(x, g).astype(np.float16), "refused", "not_linear"),
    ("bool", lambda x, g: tanh_vjp(x, g) > 0, "refused", "not_linear"),
    ("zero_d", lambda x, g: np.asarray(tanh_vjp(x, g).sum()), "refused", "wrong_shape"),
    ("flattened", lambda x, g: tanh_vjp(x, g).reshape(-1), "refused", "wrong_shape"),
    ("nan_in_one_entry", lambda x, g: np.where(HIDDEN, np.nan, tanh_vjp(x, g)), "refused", "not_finite"),
    ("inf_in_one_entry", lambda x, g: np.where(HIDDEN, np.inf, tanh_vjp(x, g)), "refused", "not_finite"),
    ("longdouble", lambda x, g: tanh_vjp(x, g).astype(np.longdouble), "pass", None),
    ("read_only_view", lambda x, g: np.broadcast_to(tanh_vjp(x, g), x.shape), "pass", None),
    ("matrix_subclass", lambda x, g: np.asmatrix(tanh_vjp(x, g)), "pass", None),  # right values, right shape
]


@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
@pytest.mark.parametrize("vjp, verdict, cause", [c[1:] for c in RETURNS], ids=[c[0] for c in RETURNS])
def test_what_a_backward_returns(vjp, verdict, cause):
    assert_verdict(jn.check_batch_vjp(np.tanh, vjp, X), verdict, cause)


FORWARDS = [
    ("masked_out", lambda x: masked(np.tanh(x), x > 1), "refused", "not_real"),
    ("integer_out", lambda x: np.round(1e6 * np.tanh(x)).astype(np.int64), "refused", "not_real"),
    ("bool_out", lambda x: x > 0, "refused", "not_real"),
    ("complex_out", lambda x: np.tanh(x) + 0j, "refused", "not_real"),
    (
        "nan_within_a_step",
        lambda x: np.where(np.abs(x - X) > 1e-3, np.nan, np.tanh(x)),
        "refused",
        "witness_not_finite",
    ),
    ("nan_far_away", lambda x: np.where(np.abs(x) > 50, np.nan, np.tanh(x)), "pass", None),
]


@pytest.mark.parametrize("f, verdict, cause", [c[1:] for c in FORWARDS], ids=[c[0] for c in FORWARDS])
def test_what_a_forward_returns(f, verdict, cause):
    vjp = (lambda x, g: 1e6 * tanh_vjp(x, g)) if "integer" in str(f) else tanh_vjp
    assert_verdict(jn.check_batch_vjp(f, vjp, X), verdict, cause)


def test_integer_forward_is_refused_before_finite_differences_call_it_a_kink():
    r = jn.check_batch_vjp(lambda x: np.round(1e6 * x).astype(np.int64), lambda x, g: 1e6 * g, X)
    assert_verdict(r, "refused", "not_real", "piecewise constant")


def test_masked_jacobian_is_refused():
    jac = lambda x: masked(np.diag(1 - np.tanh(x.ravel()) ** 2), np.eye(x.size, dtype=bool))  # noqa: E731
    assert_verdict(jn.check_jacobian(np.tanh, jac, X), "refused", "not_real", "masked")


def test_signed_zero_and_subnormals():
    relu_vjp = lambda x, g: np.where(x > 0, g, -0.0)  # noqa: E731  -0.0 where the slope is 0: equal values
    assert_verdict(jn.check_batch_vjp(lambda x: np.maximum(x, 0.0), relu_vjp, X), "pass")
    tiny = X * 1e-310  # subnormal inputs
    assert_verdict(jn.check_batch_vjp(np.sin, lambda x, g: g * np.cos(x), tiny), "pass")
    assert_verdict(jn.check_batch_vjp(np.sin, lambda x, g: 2 * g * np.cos(x), tiny), "fail", "constant_factor")


@pytest.mark.parametrize("scale", [1e-200, 1e200])
def test_extreme_scales(scale):
    f = lambda x: scale * x**2  # noqa: E731
    assert_verdict(jn.check_batch_vjp(f, lambda x, g: 2 * scale * x * g, X), "pass")
    assert_verdict(jn.check_batch_vjp(f, lambda x, g: 2 * scale * (1 + 1e-5) * x * g, X), "fail")
    with np.errstate(all="raise"):  # the factor is fitted without overflow or underflow
        r = jn.check_batch_vjp(f, lambda x, g: 3 * scale * x * g, X)
    assert_verdict(r, "fail", "constant_factor")
    assert r.factor == pytest.approx(1.5)


# --------------------------------------------------------------------------- results in a shared buffer


def shared_buffer(values):
    """A function that writes ``values(*args)`` into one buffer and returns that buffer from every call."""
    buf = {}

    def fn(*args):
        v = values(*args)
        out = buf.setdefault("out", np.empty_like(v))
        out[...] = v
        return out

    return fn


def dropout_tanh(x):
    return 2.0 * np.tanh(x) * (np.random.default_rng().random(x.shape) < 0.5)


@pytest.mark.parametrize("x", [X, XL], ids=["small", "large"])
def test_random_forward_writing_into_one_buffer_is_refused(x):
    """Both calls return the same array object, so it equalled itself; a 5 g backward then passed."""
    r = jn.check_batch_vjp(shared_buffer(dropout_tanh), lambda x, g: 5.0 * g, x)
    assert_verdict(r, "refused", "not_deterministic")


def test_random_backward_and_jacobian_writing_into_one_buffer_are_refused():
    vjp = shared_buffer(lambda x, g: tanh_vjp(x, g) * (np.random.default_rng().random(x.shape) < 0.5))
    assert_verdict(jn.check_batch_vjp(np.tanh, vjp, X), "refused", "not_deterministic")
    jac = shared_buffer(lambda x: np.diag(1 - np.tanh(x.ravel()) ** 2) * np.random.default_rng().random())
    assert_verdict(jn.check_jacobian(np.tanh, jac, X), "refused", "not_deterministic")


def test_near_miss_right_values_in_one_buffer_and_a_shared_constant_jacobian_pass():
    """Judged by the values each call returned; a linear map's Jacobian may be the same array every time."""
    assert_verdict(jn.check_batch_vjp(np.tanh, shared_buffer(tanh_vjp), XL), "pass")
    A = RNG.normal(size=(3, 20))
    assert_verdict(jn.check_jacobian(lambda x: A @ x.reshape(-1), lambda x: A, X), "pass")


# --------------------------------------------------------------------------- memory layout and mutation


def layout_dependent_vjp(right):
    """Writes its result through ``reshape(-1)`` of ``zeros_like(x)``: for a Fortran-ordered or strided
    ``x`` that is a copy, and the result stays zero. The twin allocates in C order."""

    def vjp(x, g):
        dx = np.zeros(x.shape) if right else np.zeros_like(x)
        flat = dx.reshape(-1)
        flat[:] = (2.0 * x * g).reshape(-1)
        return dx

    return (lambda x: x**2), vjp


def test_backward_that_depends_on_the_memory_layout_is_refused():
    r = jn.check_batch_vjp(*layout_dependent_vjp(right=False), X)
    assert_verdict(r, "refused", "depends_on_layout", "memory layout")
    _, vjp = layout_dependent_vjp(right=False)
    assert not np.any(vjp(np.asfortranarray(X), np.ones_like(X)))  # the slip, shown


def test_near_miss_backward_allocating_in_c_order_passes():
    r = jn.check_batch_vjp(*layout_dependent_vjp(right=True), X)
    assert_verdict(r, "pass")
    assert any("memory layout" in p.name for p in r.probes)


def test_forward_that_depends_on_the_memory_layout_is_refused():
    def f(x):
        out = np.empty_like(x)
        out.reshape(-1)[:] = np.tanh(x).reshape(-1)
        return out

    assert_verdict(jn.check_batch_vjp(f, tanh_vjp, X), "refused", "depends_on_layout")


def test_jacobian_that_depends_on_the_memory_layout_is_refused():
    def jacobian(x, right):
        d = np.zeros(x.shape) if right else np.zeros_like(x)
        d.reshape(-1)[:] = (1.0 - np.tanh(x) ** 2).reshape(-1)
        return np.diag(d.reshape(-1))

    r = jn.check_jacobian(np.tanh, lambda x: jacobian(x, False), X)
    assert_verdict(r, "refused", "depends_on_layout", "memory layout")
    assert_verdict(jn.check_jacobian(np.tanh, lambda x: jacobian(x, True), X), "pass")


def test_one_dimensional_input_passes_the_layout_probe():
    x = RNG.normal(size=7)
    assert_verdict(jn.check_vjp(np.tanh, tanh_vjp, x), "pass")


def affine_forward(x, w, b):
    return x @ w + b, (x, w, b)


def affine_backward(dout, cache):
    x, w, b = cache
    return dout @ w.T, x.T @ dout, dout.sum(axis=0)


def affine_backward_steps_w(dout, cache):
    """Right gradients, and a gradient step on ``w`` through the cache: the caller's ``w`` changes."""
    x, w, b = cache
    dx, dw, db = dout @ w.T, x.T @ dout, dout.sum(axis=0)
    w -= 0.1 * dw
    return dx, dw, db


def affine_backward_steps_copy(dout, cache):
    """The near miss: the step is taken on a copy."""
    x, w, b = cache
    dx, dw, db = dout @ w.T, x.T @ dout, dout.sum(axis=0)
    w = w - 0.1 * dw
    return dx, dw, db


def dict_cache_forward(x, w, b):
    return x @ w + b, {"x": x, "w": w}


def dict_cache_backward_scales_x(dout, cache):
    cache["x"] *= 1.0 + 1e-12  # an in-place write into the forward's x
    return dout @ cache["w"].T, cache["x"].T @ dout, dout.sum(axis=0)


def scale_forward(x, gamma, bn_param):
    """Updates a running mean in place, as CS231n's batch norm does: a dict argument of the forward."""
    bn_param["running_mean"] *= 0.9
    bn_param["running_mean"] += 0.1 * x.mean(axis=0)
    return x * gamma, (x, gamma)


def scale_backward(dout, cache):
    x, gamma = cache
    return dout * gamma, (dout * x).sum(axis=0)


@pytest.mark.parametrize(
    "forward, backward, params, verdict, cause",
    [
        (affine_forward, affine_backward_steps_w, (W, B), "refused", "mutates_argument"),
        (affine_forward, affine_backward_steps_copy, (W, B), "pass", None),
        (affine_forward, affine_backward, (W, B), "pass", None),
        (dict_cache_forward, dict_cache_backward_scales_x, (W, B), "refused", "mutates_argument"),
        (scale_forward, scale_backward, (RNG.normal(size=5), {"running_mean": np.zeros(5)}), "pass", None),
    ],
    ids=["steps_w_via_cache", "steps_a_copy", "plain", "dict_cache_written", "forward_updates_bn_param"],
)
def test_backward_writing_into_its_cache(forward, backward, params, verdict, cause):
    r = jn.check_batch_vjp(*jn.from_cs231n(forward, backward, *params), X)
    assert_verdict(r, verdict, cause)
    if cause:
        assert "cache" in r.cause


def test_backward_that_writes_into_the_cache_leaves_the_callers_arrays_alone():
    w = W.copy()
    jn.check_batch_vjp(*jn.from_cs231n(affine_forward, affine_backward_steps_w, w, B), X)
    assert np.array_equal(w, W)


def test_mutating_x_on_the_second_call_only_is_refused_and_restoring_it_is_harmless():
    calls = {"n": 0}

    def vjp(x, g):
        calls["n"] += 1
        if calls["n"] == 2:
            x += 1e-12
        return 2 * x * g

    assert_verdict(jn.check_batch_vjp(lambda x: x**2, vjp, X), "refused", "mutates_argument")

    def restoring(x, g):
        x *= 2.0
        d = g * x
        x /= 2.0
        return d

    assert_verdict(jn.check_batch_vjp(lambda x: x**2, restoring, X), "pass")


# --------------------------------------------------------------------------- what a pass means


def sigmoid2(x):
    return 1.0 / (1.0 + np.exp(-2.0 * x))


def sigmoid2_vjp(x, g):
    s = sigmoid2(x)
    return 2.0 * g * s * (1.0 - s)


def test_consistent_wrong_forward_and_backward_pass_and_reference_catches_them():
    """A pass says the derivative is consistent with the ``f`` given; ``sigmoid(2x)`` with its own
    right derivative is not the library's sigmoid, which ``reference=`` says."""
    assert_verdict(jn.check_batch_vjp(sigmoid2, sigmoid2_vjp, X), "pass")
    r = jn.check_batch_vjp(sigmoid2, sigmoid2_vjp, X, reference="sigmoid")
    assert_verdict(r, "fail", "mismatch")
    assert any("forward DIFFERS" in w.detail for w in r.witnesses)


# --------------------------------------------------------------------------- losses and labels


def softmax_loss(x, y):
    p = softmax(x)
    N = x.shape[0]
    loss = -np.log(p[np.arange(N), y]).sum() / N
    d = p.copy()
    d[np.arange(N), y] -= 1.0
    return loss, d / N


def loss_wrong_n_for_powers_of_two(x, y):
    loss, d = softmax_loss(x, y)
    N = x.shape[0]
    return loss, (d * N / (N - 1) if N & (N - 1) == 0 else d)


@pytest.mark.parametrize(
    "y, words",
    [
        (np.array([0.0, 1.0, 2.0, 3.0]), "expected integer labels"),
        (np.array([True, False, True, False]), "expected integer labels"),
        (np.array([0, 1, 5, 3]), "expected labels in [0, 5)"),
        (np.array([0, 1, -1, 3]), "expected labels in [0, 5)"),
        (np.array([[0, 1, 2, 3]]), "shape (4,)"),
    ],
    ids=["floats", "bools", "out_of_range", "negative", "two_dimensional"],
)
def test_bad_labels_are_an_error_naming_y(y, words):
    with pytest.raises(ValueError, match=r"^y: ") as info:
        jn.check_loss(softmax_loss, SCORES, y)
    assert words in str(info.value)


@pytest.mark.parametrize("num_classes", [0, -1, 6, 9, True, 2.7, "3", None])
def test_num_classes_is_an_integer_up_to_the_number_of_columns(num_classes):
    if num_classes is None:
        assert_verdict(jn.check_loss(softmax_loss, SCORES, num_classes=num_classes), "pass")
        return
    with pytest.raises(ValueError, match=r"^num_classes: expected an integer in \[1, 5\]"):
        jn.check_loss(softmax_loss, SCORES, num_classes=num_classes)


@pytest.mark.parametrize("num_classes", [1, 3, 5, np.int64(5)])
def test_near_miss_num_classes_within_range_passes(num_classes):
    r = jn.check_loss(softmax_loss, SCORES, num_classes=num_classes)
    assert_verdict(r, "pass")


def test_loss_labels_of_an_unsigned_dtype_are_accepted():
    assert_verdict(jn.check_loss(softmax_loss, SCORES, np.array([0, 1, 2, 3], dtype=np.uint8)), "pass")


def test_loss_wrong_only_for_a_power_of_two_batch_is_judged_at_the_batch_given():
    assert_verdict(jn.check_loss(loss_wrong_n_for_powers_of_two, SCORES), "fail", "constant_factor")
    assert_verdict(jn.check_loss(loss_wrong_n_for_powers_of_two, RNG.normal(size=(5, 5))), "pass")


def test_loss_that_writes_into_its_labels_is_refused():
    def loss(x, y):
        y[0] = 0
        return softmax_loss(x, y)

    assert_verdict(jn.check_loss(loss, SCORES, np.array([1, 1, 2, 3])), "refused", "mutates_argument")


def test_loss_gradient_for_the_wrong_labels_fails():
    def loss(x, y):
        return softmax_loss(x, y)[0], softmax_loss(x, np.zeros_like(y))[1]

    assert_verdict(jn.check_loss(loss, SCORES), "fail")


def test_loss_with_a_global_the_gradient_changes_is_refused():
    state = {"t": 1.0}

    def loss(x, y):
        value, d = softmax_loss(state["t"] * x, y)
        grad = 2.0 * d
        state["t"] = 2.0
        return value, grad

    assert_verdict(jn.check_loss(loss, SCORES), "refused", "not_deterministic")


def l2_loss(x, t):
    """A CS231n-style loss with float regression targets: no class labels."""
    return 0.5 * np.sum((x - t) ** 2) / x.shape[0], (x - t) / x.shape[0]


def test_cs231n_loss_with_float_targets_or_none_is_checked_without_labels():
    T = RNG.normal(size=SCORES.shape)
    assert_verdict(jn.check_batch_vjp(*jn.from_cs231n_loss(l2_loss, T), SCORES), "pass")
    wrong = lambda x, t: (l2_loss(x, t)[0], 2.0 * l2_loss(x, t)[1])  # noqa: E731
    assert_verdict(jn.check_batch_vjp(*jn.from_cs231n_loss(wrong, T), SCORES), "fail", "constant_factor")
    norm = lambda x, y: (0.5 * np.sum(x**2), x)  # noqa: E731  a loss that takes no targets
    assert_verdict(jn.check_batch_vjp(*jn.from_cs231n_loss(norm, None), SCORES), "pass")  # was a TypeError


def test_cs231n_loss_with_integer_labels_keeps_the_label_diagnosis():
    def missing_minus_one(x, y):
        loss, d = softmax_loss(x, y)
        d[np.arange(x.shape[0]), y] += 1.0 / x.shape[0]
        return loss, d

    y = [0, 1, 2, 3]  # a list of labels, as CS231n's data loaders give
    r = jn.check_batch_vjp(*jn.from_cs231n_loss(missing_minus_one, y), SCORES)
    assert_verdict(r, "fail", "off_at_label")


# --------------------------------------------------------------------------- the command line

HOSTILE_FILE = """
import numpy as np

STATE = {"scale": 1.0}


def f(x):
    return STATE["scale"] * np.tanh(x)


def vjp_sets_global(x, g):
    STATE["scale"] = 2.0
    return 2.0 * g * (1.0 - np.tanh(x) ** 2)


def vjp(x, g):
    return STATE["scale"] * g * (1.0 - np.tanh(x) ** 2)
"""


@pytest.mark.parametrize("backward, verdict", [("vjp_sets_global", "refused"), ("vjp", "pass")])
def test_command_line_refuses_a_backward_that_changes_a_global(backward, verdict, tmp_path, capsys):
    src = tmp_path / "hostile.py"
    src.write_text(HOSTILE_FILE, encoding="utf-8")
    out = tmp_path / "report.json"
    code = main(["check", str(src), "--forward", "f", "--backward", backward, "--shape", "4,5", "--json", str(out)])
    printed = capsys.readouterr().out
    assert code == EXIT_CODES[verdict], printed
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["verdict"] == verdict
    if verdict == "refused":
        assert report["diagnosis"] == "not_deterministic"
