"""Each numeric rule exists once, in ``jacobian_nn/_validation.py``: the integer and number type
tests, the float dtype an input keeps, the machine epsilon of a dtype and the relative error.

Three parts: the helpers themselves at their boundaries; the places that now call them, each at
the near miss the old private copy handled (a bool refused, a numpy scalar accepted); and a scan of
the package's sources that fails if a private copy of a rule comes back."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

import jacobian_nn as jn
from jacobian_nn import _validation as v
from jacobian_nn.check.diagnosis import relative
from jacobian_nn.fd import compare
from jacobian_nn.losses import MulticlassSVM

PACKAGE = Path(jn.__file__).parent

# --------------------------------------------------------------------------- the helpers


@pytest.mark.parametrize(
    "value, integer, real",
    [
        (3, True, True),
        (np.int64(3), True, True),
        (np.uint8(3), True, True),
        (-2, True, True),
        (True, False, False),
        (np.bool_(True), False, False),
        (3.0, False, True),
        (np.float32(3.0), False, True),
        (float("nan"), False, True),
        ("3", False, False),
        (None, False, False),
        (np.array(3), False, False),  # a 0-d array is an array, not a number
        (3 + 0j, False, False),
    ],
)
def test_integer_and_real_type_tests(value, integer, real):
    assert v.is_integer(value) is integer
    assert v.is_real(value) is real


@pytest.mark.parametrize(
    "value, expected",
    [
        (np.ones(2, np.float64), np.float64),
        (np.ones(2, np.float32), np.float32),
        (np.ones(2, np.float16), np.float64),  # then refused by as_float_array, naming the argument
        (np.ones(2, np.int32), np.float64),
        (np.ones(2, bool), np.float64),
        ([1, 2], np.float64),
        ([1.5, 2.5], np.float64),
    ],
)
def test_float_dtype_of(value, expected):
    assert v.float_dtype_of(value) == np.dtype(expected)


def test_eps_of_is_the_machine_epsilon_as_a_python_float():
    assert v.eps_of(np.float64) == 2.0**-52 and type(v.eps_of(np.float64)) is float
    assert v.eps_of("float32") == 2.0**-23 and type(v.eps_of(np.float32)) is float


def test_relative_error_at_the_floor():
    """An entry whose size is exactly the floor gets 0; one just above it gets its ratio."""
    a = np.array([1.0, 1.0 + 2**-40, 0.0, 4.0])
    b = np.array([0.5, 0.5, 0.0, -4.0])
    rel = v.relative_error(a, b, floor=1.0)
    assert rel[0] == 0.0  # max(|a|, |b|) = 1.0 is not above the floor
    assert rel[1] == (0.5 + 2**-40) / (1.0 + 2**-40)
    assert rel[2] == 0.0 and rel[3] == 2.0
    assert np.array_equal(v.relative_error(a, b), [0.5, (0.5 + 2**-40) / (1.0 + 2**-40), 0.0, 2.0])


def test_relative_error_against_a_given_scale():
    assert float(v.relative_error(3.0, 1.0, scale=4.0)) == 0.5
    assert float(v.relative_error(3.0, 1.0, scale=0.0)) == 0.0  # no size: no relative error
    out = v.relative_error(np.array([1.0, 2.0]), np.array([0.0, 0.0]), scale=np.array([2.0, 8.0]))
    assert np.array_equal(out, [0.5, 0.25])


def test_relative_error_keeps_float32():
    a, b = np.array([1.0, 3.0], np.float32), np.array([1.5, 3.0], np.float32)
    assert v.relative_error(a, b).dtype == np.float32


def _old_compare_rel(a, b, atol):
    scale = np.maximum(np.abs(a), np.abs(b))
    return np.where(scale > atol, np.abs(a - b) / np.where(scale > atol, scale, 1.0), 0.0)


def _old_checker_rel(a, b, atol):
    size = np.maximum(np.abs(a), np.abs(b))
    top = float(np.abs(b).max()) if np.size(b) else 0.0
    live = size > atol * (top if top > 0 else 1.0)
    return np.where(live, np.abs(a - b) / np.where(live, size, 1.0), 0.0)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_both_callers_give_bitwise_what_their_own_formulas_gave(dtype):
    """``fd.compare``'s max_rel and the checker's ``relative`` against the formulas each wrote
    before they shared one, on values that straddle their floors."""
    rng = np.random.default_rng(0)
    b = (rng.standard_normal((40, 30)) * 10.0 ** rng.integers(-12, 3, (40, 30))).astype(dtype)
    a = (b * (1 + 1e-6 * rng.standard_normal(b.shape))).astype(dtype)
    a[::7] = 0
    for atol in (0.0, 1e-9, 1e-3):
        assert np.array_equal(relative(a, b, atol), _old_checker_rel(a, b, atol))
        a64, b64 = a.astype(np.float64), b.astype(np.float64)
        assert compare("q", a, b, atol=atol).max_rel == float(_old_compare_rel(a64, b64, atol).max())


# --------------------------------------------------------------------------- the callers


def _net():
    return jn.Network.build([2, 3, 2], "tanh", seed=0)


#: name -> (call with the value, the message of a refusal). Each takes an integer count.
INTEGER_PLACES = {
    "check top_k": (lambda t: jn.check_batch_vjp(np.tanh, lambda X, G: G, np.ones((2, 2)), top_k=t), "top_k"),
    "check seed": (lambda t: jn.check_vjp(np.tanh, lambda x, g: g, np.ones(2), seed=t), "seed"),
    "OptimizerState t": (lambda t: jn.OptimizerState(t=t), "state.t"),
    "Dense n_out": (lambda t: jn.Dense(2, t), "n_out"),
}


@pytest.mark.parametrize("place", sorted(INTEGER_PLACES))
def test_integer_places_refuse_a_bool_and_take_a_numpy_integer(place):
    call, name = INTEGER_PLACES[place]
    with pytest.raises((TypeError, ValueError), match=rf"^{name}: "):
        call(True)
    call(np.int64(2))  # the near miss: a numpy integer is an integer


#: name -> (call with the value, the message of a refusal, an accepted numpy float)
NUMBER_PLACES = {
    "BatchNorm momentum": (lambda x: jn.BatchNorm(3, momentum=x), "momentum", np.float32(0.5)),
    "Dropout p": (lambda x: jn.Dropout(3, p=x), "p", np.float64(0.25)),
    "Dropout keep_prob": (lambda x: jn.Dropout(3, keep_prob=x), "keep_prob", np.float32(0.75)),
    "svm delta": (lambda x: MulticlassSVM(delta=x), "delta", np.float32(2.0)),
    "fd_gradient step": (
        lambda x: jn.fd_gradient(lambda z: float(np.sum(z**2)), np.ones(2), method="central", step=x),
        "step",
        np.float64(1e-5),
    ),
    "Tolerance atol": (lambda x: jn.Tolerance.for_dtype(np.float64, atol=x), "atol", np.float32(1e-6)),
}


@pytest.mark.parametrize("place", sorted(NUMBER_PLACES))
def test_number_places_refuse_a_bool_and_take_a_numpy_float(place):
    call, name, ok = NUMBER_PLACES[place]
    with pytest.raises((TypeError, ValueError), match=rf"^{name}: "):
        call(True)
    call(ok)


def test_fd_step_accepts_a_numpy_integer():
    """The central difference's step follows the shared number rule: ``np.int64(1)`` is a number."""
    r = jn.fd_gradient(lambda z: float(np.sum(z**2)), np.ones(2), method="central", step=np.int64(1))
    assert np.allclose(r.df, [[2.0, 2.0]])


def test_a_float16_weight_is_refused_naming_W():
    with pytest.raises(TypeError, match=r"^W: expected dtype float64, got float16"):
        jn.Dense.from_params(np.ones((2, 3), np.float16), np.zeros(3))


def test_an_input_keeps_its_float_dtype_in_the_checker_and_the_losses():
    X32 = np.ones((2, 3), np.float32)
    assert jn.check_batch_vjp(np.tanh, lambda X, G: G * (1 - np.tanh(X) ** 2), X32).dtype == "float32"
    assert jn.check_batch_vjp(np.tanh, lambda X, G: G * (1 - np.tanh(X) ** 2), np.ones((2, 3), int)).dtype == "float64"
    from jacobian_nn.losses import output_batch

    assert output_batch(X32).dtype == np.float32 and output_batch(np.ones((2, 3), int)).dtype == np.float64


# --------------------------------------------------------------------------- no private copy comes back


def _isinstance_types(node) -> tuple[str | None, set]:
    """``(variable, {type names})`` of an ``isinstance(name, types)`` call (under a ``not``), else (None, set())."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
        node = node.operand
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "isinstance"):
        return None, set()
    if len(node.args) != 2 or not isinstance(node.args[0], ast.Name):
        return None, set()
    kinds = node.args[1].elts if isinstance(node.args[1], ast.Tuple) else [node.args[1]]
    return node.args[0].id, {ast.unparse(k) for k in kinds}


def private_copies(source: str) -> set:
    """The rules ``source`` writes itself instead of calling ``_validation``: ``np.finfo`` (the
    eps of a dtype), ``integer-not-bool`` / ``number-not-bool`` (``isinstance(x, int...)`` next to
    ``isinstance(x, bool)`` in one condition, or ``type(x) is int``), ``relative-error``
    (``np.maximum(np.abs(a), np.abs(b))``)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr == "finfo":
            found.add("np.finfo")
        elif isinstance(node, ast.BoolOp):
            by_name: dict = {}
            for operand in node.values:
                name, kinds = _isinstance_types(operand)
                if name is not None:
                    by_name.setdefault(name, set()).update(kinds)
            for kinds in by_name.values():
                if kinds & {"bool", "np.bool_"}:
                    if kinds & {"float", "np.floating"}:
                        found.add("number-not-bool")
                    elif kinds & {"int", "np.integer"}:
                        found.add("integer-not-bool")
        elif (
            isinstance(node, ast.Compare)
            and isinstance(node.left, ast.Call)
            and isinstance(node.left.func, ast.Name)
            and node.left.func.id == "type"
            and any(isinstance(c, ast.Name) and c.id == "int" for c in node.comparators)
        ):
            found.add("integer-not-bool")
        elif (
            isinstance(node, ast.Call)
            and ast.unparse(node.func) == "np.maximum"
            and len(node.args) == 2
            and all(isinstance(a, ast.Call) and ast.unparse(a.func) == "np.abs" for a in node.args)
        ):
            found.add("relative-error")
    return found


@pytest.mark.parametrize(
    "source, rule",
    [
        ("eps = float(np.finfo(dtype).eps)", "np.finfo"),
        ("ok = isinstance(k, int) and not isinstance(k, bool)", "integer-not-bool"),
        ("bad = isinstance(k, (bool, np.bool_)) or not isinstance(k, (int, np.integer)) or k < 0", "integer-not-bool"),
        ("bad = isinstance(x, bool) or not isinstance(x, (int, float, np.floating))", "number-not-bool"),
        ("ok = all(type(v) is int for v in labels)", "integer-not-bool"),
        ("rel = diff / np.maximum(np.abs(a), np.abs(b))", "relative-error"),
    ],
)
def test_the_scan_finds_each_private_copy(source, rule):
    assert private_copies(source) == {rule}


@pytest.mark.parametrize(
    "source",
    [
        "ks = (k, k) if isinstance(k, (int, np.integer)) else tuple(k)",  # a dispatch, no bool test
        "flag = isinstance(v, bool) or (is_real(v) and np.isfinite(v))",  # bools accepted on purpose
        "ok = isinstance(a, bool) and isinstance(b, int)",  # two different variables
        "top = np.maximum(1.0, np.abs(R))",
        "eps = eps_of(dtype)",
    ],
)
def test_the_scan_passes_near_misses(source):
    assert private_copies(source) == set()


def test_no_module_writes_a_rule_of_its_own():
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if rel == "_validation.py":
            continue
        rules = private_copies(path.read_text(encoding="utf-8"))
        if rules:
            found[rel] = sorted(rules)
    assert found == {}, f"call jacobian_nn._validation's helper instead: {found}"


# --------------------------------------------------------------------------- cross-entropy's checks, both layouts


@pytest.mark.parametrize("check_sum", [True, False])
def test_cross_entropy_refuses_a_zero_probability_under_a_label_in_both_layouts(check_sum):
    """One check for the column and the batch: the entry is named in each layout's terms."""
    from jacobian_nn.losses import CrossEntropy

    ce = CrossEntropy(check_sum=check_sum)
    with pytest.raises(ValueError, match=r"^y_hat: probability 0 at index 1 where the label y is 1\.0 > 0; "):
        ce.forward(np.array([[1.0], [0.0]]), 1)
    P = np.array([[0.5, 0.5], [1.0, 0.0]])
    with pytest.raises(ValueError, match=r"^Y_hat: probability 0 at sample 1, class 1 where the label Y is 1\.0 > 0; "):
        ce.forward_batched(P, np.array([0, 1]))
    # the near miss: the same zero under a label of 0 is a term 0 log 0 = 0
    assert ce.forward(np.array([[1.0], [0.0]]), 0) == 0.0
    assert ce.forward_batched(P, np.array([0, 0])) == pytest.approx(float(np.log(2) / 2), rel=1e-15)


def test_cross_entropy_sum_check_follows_check_sum_in_both_layouts():
    from jacobian_nn.losses import CrossEntropy

    col, batch = np.array([[0.5], [0.25]]), np.array([[0.5, 0.25]])
    for check in (lambda ce: ce.forward(col, 0), lambda ce: ce.forward_batched(batch, np.array([0]))):
        with pytest.raises(ValueError, match="summing to 1"):
            check(CrossEntropy())
        assert check(CrossEntropy(check_sum=False)) == pytest.approx(float(np.log(2)), rel=1e-15)
