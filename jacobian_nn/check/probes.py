"""Preconditions probed before any verdict, and the guarded calls into user code.

A derivative comparison relies on assumptions that wrong code can break silently:

* ``f`` and the VJP are deterministic: two calls at the same point return bitwise the same
  array (a CS231n dropout without a fixed seed draws a new mask per call, and finite
  differences of a random function are noise that excuses any claim);
* the VJP is linear in its cotangent: ``vjp(x, a u + w) = a vjp(x, u) + vjp(x, w)`` within
  ``sqrt(eps)`` of the sizes involved; a VJP whose result does not change with the cotangent
  "ignores its cotangent" (it is the gradient of one fixed loss, not a VJP);
* no call changes its array arguments (``x``, ``dout``, the parameters) or the arrays of a
  CS231n ``cache`` (the caller's ``x`` and parameters themselves): every call gets copies, which
  are compared bitwise with the originals afterwards;
* ``f`` and the VJP give the same values (within ``sqrt(eps)``) for non-contiguous copies of their
  inputs (:func:`probe_layout`): code that writes through ``reshape(-1)`` of ``np.zeros_like(x)``
  is right only for C-contiguous ``x``;
* ``f`` returns floating point: an integer- or bool-valued function is piecewise constant;
* every returned gradient has exactly the shape of what it is the gradient of (``dx.shape ==
  x.shape``; a flattened or transposed array is not reshaped to fit);
* every returned value is finite, real and unmasked (``np.asarray`` drops a mask, so a masked
  array's hidden entries would be compared as if valid);
* the VJP is additive over a split of its cotangent into sparse parts: ``vjp(u) = vjp(u m) +
  vjp(u (1 - m))`` for a random 0/1 mask ``m`` of density :data:`SPLIT_DENSITY` (the witnesses of a
  large problem use dense random cotangents only, so a VJP right for those and wrong for a sparse
  ``dout`` would otherwise pass);
* ``f`` and the VJP still return bitwise the same values at the point after every witness call
  (:func:`probe_unchanged`): a result that depends on a call counter or on state that an earlier
  call changed (a global the backward sets and the forward reads) describes a different function
  from the one the witnesses differentiated.

A failed probe raises :class:`Refusal`; the check turns it into a ``refused`` report with the
cause. Exceptions raised by user code (``SystemExit`` included) are refusals too, naming the
function and the exception.
"""

from __future__ import annotations

import copy
import math

import numpy as np
from scipy import sparse

from .._validation import eps_of, relative_error
from .report import Probe, index_name

#: The scalar ``a`` of the linearity probe ``vjp(a u + w) = a vjp(u) + vjp(w)``.
LINEARITY_A = 1.75
#: Linearity tolerance: ``LINEARITY_SQRT_EPS_FACTOR * sqrt(eps(dtype)) * (|a| max|vjp(u)| + max|vjp(w)|)``.
LINEARITY_SQRT_EPS_FACTOR = 1.0
#: Share of the cotangent's entries kept in the sparse part of the additivity probe.
SPLIT_DENSITY = 0.25

CAUSES = (
    "raised",
    "not_deterministic",
    "ignores_cotangent",
    "not_linear",
    "mutates_argument",
    "wrong_shape",
    "wrong_count",
    "not_finite",
    "witness_not_finite",
    "not_real",
    "depends_on_layout",
)


class Refusal(Exception):
    """A precondition failed: ``key`` (one of :data:`CAUSES`) and a sentence for the user."""

    def __init__(self, key: str, text: str):
        super().__init__(text)
        self.key, self.text = key, text


def same_bits(a, b) -> bool:
    """Bitwise equality (NaN payloads and signed zeros included). An extended-precision float
    (``np.longdouble`` on x86: 80 bits stored in 16 bytes) is compared by value, sign and NaN, as
    its padding bytes are undefined."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
    if a.dtype.kind == "f" and a.dtype.itemsize > 8:
        return bool(np.array_equal(a, b, equal_nan=True) and np.array_equal(np.signbit(a), np.signbit(b)))
    return bool(
        np.array_equal(
            np.ascontiguousarray(a).reshape(-1).view(np.uint8), np.ascontiguousarray(b).reshape(-1).view(np.uint8)
        )
    )


def first_nonfinite(arr: np.ndarray, name: str) -> str | None:
    """``"dx[2, 0] = nan"`` for the first non-finite entry of ``arr``, or None."""
    arr = np.asarray(arr)
    if arr.dtype.kind != "f":
        return None
    bad = ~np.isfinite(arr)
    if not bad.any():
        return None
    flat = int(np.flatnonzero(bad.reshape(-1))[0])
    return f"{index_name(name, flat, arr.shape)} = {arr.reshape(-1)[flat]}"


class Calls:
    """Call user functions on copies of their arguments; refuse mutation, exceptions and junk."""

    def __init__(self) -> None:
        self.notes: list = []
        self.count = 0
        self.strided = False  # array arguments as non-contiguous copies (:func:`probe_layout`)

    def call(self, fn, label: str, args: list, names: list, deep: tuple = ()):
        """``fn(*copies)``. Array arguments that come back changed are a refusal; other arguments
        (a CS231n ``bn_param`` dict) get a fresh deep copy per call, so their changes cannot leak.
        The arguments named in ``deep`` (a CS231n ``cache``) must also come back with every array
        they hold, through tuples, lists and dicts, unchanged: a cache holds the forward's ``x`` and
        parameters themselves, so a backward that writes into it changes the caller's arrays."""
        copies = [
            (strided_copy(a) if self.strided else np.array(a, copy=True))
            if isinstance(a, np.ndarray)
            else copy.deepcopy(a)
            for a in args
        ]
        self.count += 1
        try:
            with np.errstate(all="ignore"):  # a non-finite result is refused below, not warned about
                out = fn(*copies)
        except Refusal:
            raise
        except (Exception, SystemExit) as exc:  # user code: anything it raises is a refusal
            what = (
                f"called sys.exit({exc.code!r})"
                if isinstance(exc, SystemExit)
                else f"raised {type(exc).__name__}: {exc}"
            )
            raise Refusal("raised", f"{label} {what}") from None
        out = snapshot(out)  # a result written into a buffer that a later call overwrites is judged as returned
        for name, a, c in zip(names, args, copies):
            if isinstance(a, np.ndarray) and not same_bits(a, c):
                raise Refusal(
                    "mutates_argument",
                    f"{label} mutates its argument {name} (it must not change its inputs; work on a copy)",
                )
            if name in deep and not isinstance(a, np.ndarray):
                before, after = dict(arrays_in(a, name)), dict(arrays_in(c, name))
                changed = [k for k in before if k not in after or not same_bits(before[k], after[k])]
                if changed or set(after) - set(before):
                    what = changed[0] if changed else sorted(set(after) - set(before))[0]
                    raise Refusal(
                        "mutates_argument",
                        f"{label} mutates its argument {name} ({what} changed; the arrays a cache holds are the "
                        f"forward's x and parameters themselves, or what later calls rely on; work on a copy)",
                    )
        return out

    def array(self, value, label: str, name: str) -> np.ndarray:
        """``value`` as a real, finite ndarray (a refusal otherwise)."""
        if isinstance(value, np.ma.MaskedArray) and np.ma.getmaskarray(value).any():
            flat = int(np.flatnonzero(np.ma.getmaskarray(value).reshape(-1))[0])
            raise Refusal(
                "not_real",
                f"{label} returned {name} as a masked array with masked entries ({index_name(name, flat, value.shape)} "
                f"is masked): np.asarray drops a mask, so the hidden values would be compared as if valid",
            )
        try:
            arr = np.asarray(value)
        except Exception as exc:  # a ragged list and the like
            raise Refusal("not_real", f"{label} returned {name} that is not an array ({exc})") from None
        if arr.dtype.kind not in "fiub":
            raise Refusal("not_real", f"{label} returned {name} of dtype {arr.dtype}, expected a real array")
        bad = first_nonfinite(arr, name)
        if bad is not None:
            raise Refusal("not_finite", f"{label} returned a non-finite value: {bad}")
        return arr


def snapshot(obj):
    """``obj`` with every ndarray in it, through tuples and lists, copied (subclass and mask kept; a
    ``scipy.sparse`` array or matrix, such as the library's convolution and pooling Jacobians, becomes its
    dense ``toarray()``):
    code that returns the same buffer from every call, overwritten each time, must not make two
    calls look bitwise equal because they are one array."""
    if isinstance(obj, np.ndarray):
        return obj.copy()
    if sparse.issparse(obj):  # a scipy.sparse Jacobian (the library's convolution ones): its dense values
        return obj.toarray()
    if isinstance(obj, (tuple, list)):
        return type(obj)(snapshot(item) for item in obj) if type(obj) in (tuple, list) else obj
    return obj


def arrays_in(obj, path: str):
    """``(path, array)`` for every ndarray in ``obj`` through tuples, lists and dicts (``cache[1]``,
    ``cache['x']``); ``obj`` itself when it is one."""
    if isinstance(obj, np.ndarray):
        yield path, obj
    elif isinstance(obj, (tuple, list)):
        for k, item in enumerate(obj):
            yield from arrays_in(item, f"{path}[{k}]")
    elif isinstance(obj, dict):
        for k, item in obj.items():
            yield from arrays_in(item, f"{path}[{k!r}]")


def strided_copy(a: np.ndarray) -> np.ndarray:
    """A copy of ``a`` that is not contiguous: axes in Fortran order (the transpose of a C buffer),
    and every other element of that buffer along its first axis, so that ``np.zeros_like`` of it is
    Fortran-ordered and ``reshape(-1)`` of that copies; a 0-d array is copied as is."""
    if a.ndim == 0:
        return np.array(a, copy=True)
    rev = a.shape[::-1]
    view = np.empty((2 * rev[0],) + rev[1:], dtype=a.dtype)[::2].T
    view[...] = a
    return view


def as_tuple(result) -> tuple:
    return tuple(result) if isinstance(result, (tuple, list)) else (result,)


def check_shape(got: tuple, want: tuple, gname: str, pname: str, label: str) -> None:
    """Refuse a gradient whose shape is not exactly its primal's."""
    if tuple(got) == tuple(want):
        return
    hint = ""
    if len(got) == 2 and tuple(got) == tuple(want)[::-1]:
        hint = " (transposed?)"
    elif int(np.prod(got, dtype=int)) == int(np.prod(want, dtype=int)):
        hint = " (the same number of entries, in another shape: a gradient must have its array's exact shape)"
    raise Refusal(
        "wrong_shape", f"{label} returned {gname} of shape {tuple(got)}, {pname} has shape {tuple(want)}{hint}"
    )


def _where_differs(a: np.ndarray, b: np.ndarray, name: str) -> str:
    """`` by up to D (at name[i, j])``: the largest difference of two results of one shape, and where it is
    (empty when the shapes differ or the arrays are empty)."""
    if a.shape != b.shape or not a.size:
        return ""
    d = np.abs(a.astype(np.float64) - b.astype(np.float64))
    return f" by up to {d.max():.3g} (at {index_name(name, int(np.argmax(d)), a.shape)})"


def probe_determinism(calls: Calls, fn, label: str, args: list, names: list, out_name: str):
    """Call twice; the two results must be bitwise equal. Returns the first result and the probe."""
    r1 = as_tuple(calls.call(fn, label, args, names))
    r2 = as_tuple(calls.call(fn, label, args, names))
    arrays = []
    for k, (a, b) in enumerate(zip(r1, r2)):
        name = out_name if len(r1) == 1 else f"{out_name}[{k}]"
        a = calls.array(a, label, name)
        b = np.asarray(b)
        if not same_bits(a, b):
            where = _where_differs(a, b, out_name)
            raise Refusal(
                "not_deterministic",
                f"{label} is not deterministic: two calls at the same input "
                f"differ{where} (dropout without a fixed seed?)",
            )
        arrays.append(a)
    if len(r1) != len(r2):
        raise Refusal(
            "not_deterministic", f"{label} is not deterministic: two calls return different numbers of arrays"
        )
    return arrays, Probe(f"{label} is deterministic", True, "two calls at the same input are bitwise equal")


def probe_linearity(g_u, g_w, g_mix, dtype, gnames, label) -> Probe:
    """Judge ``g_mix = vjp(a u + w)`` against ``a g_u + g_w`` (lists of arrays, one per gradient)."""
    tol_rel = LINEARITY_SQRT_EPS_FACTOR * math.sqrt(eps_of(dtype))
    worst = 0.0
    for name, gu, gw, gm in zip(gnames, g_u, g_w, g_mix):
        gu, gw, gm = (np.asarray(t, dtype=np.float64) for t in (gu, gw, gm))
        scale = LINEARITY_A * float(np.abs(gu).max(initial=0.0)) + float(np.abs(gw).max(initial=0.0))
        if scale == 0.0:
            continue
        tol = tol_rel * scale
        if float(np.abs(gu - gw).max(initial=0.0)) <= tol:
            raise Refusal(
                "ignores_cotangent",
                f"{label} ignores its cotangent: {name} is the same for two "
                f"different random cotangents (a VJP must return dout J, "
                f"linear in dout)",
            )
        dev = float(np.abs(gm - (LINEARITY_A * gu + gw)).max(initial=0.0))
        worst = max(worst, float(relative_error(gm, LINEARITY_A * gu + gw, scale=scale).max(initial=0.0)))
        if dev > tol:
            raise Refusal(
                "not_linear",
                f"{label} is not linear in its cotangent: {name}(a u + w) differs from "
                f"a {name}(u) + {name}(w) by {dev:.3g} (tolerance {tol:.3g}, a = "
                f"{LINEARITY_A:g}, random u, w)",
            )
    return Probe(
        f"{label} is linear in its cotangent",
        True,
        f"vjp(a u + w) = a vjp(u) + vjp(w) to {worst:.1e} relative (a = {LINEARITY_A:g}, random u, w)",
    )


def probe_additivity(g_u, g_parts, dtype, gnames, label) -> Probe:
    """Judge ``vjp(u)`` (``g_u``) against ``vjp(u m) + vjp(u (1 - m))`` (``g_parts``, a pair of lists),
    within the linearity probe's ``sqrt(eps)`` tolerance of the sizes involved."""
    eps = eps_of(dtype)
    tol_rel = LINEARITY_SQRT_EPS_FACTOR * math.sqrt(eps)
    worst = 0.0
    for name, gu, ga, gb in zip(gnames, g_u, *g_parts):
        gu, ga, gb = (np.asarray(t, dtype=np.float64) for t in (gu, ga, gb))
        scale = max(float(np.abs(t).max(initial=0.0)) for t in (gu, ga, gb))
        if scale == 0.0:
            continue
        dev = float(np.abs(gu - (ga + gb)).max(initial=0.0))
        worst = max(worst, dev / scale)
        if dev > tol_rel * scale:
            raise Refusal(
                "not_linear",
                f"{label} is not linear in its cotangent: {name}(u) differs from {name}(u m) + "
                f"{name}(u (1 - m)) by {dev:.3g} (tolerance {tol_rel * scale:.3g}; random u, m a random "
                f"mask keeping {SPLIT_DENSITY:.0%} of the entries): it is wrong for sparse or for dense cotangents",
            )
    return Probe(
        f"{label} is additive over sparse parts of its cotangent",
        True,
        f"vjp(u) = vjp(u m) + vjp(u (1 - m)) to {worst:.1e} relative (m keeps {SPLIT_DENSITY:.0%} of the entries)",
    )


def probe_unchanged(calls: Calls, fn, label: str, args: list, names: list, expected: list, out_names: list) -> Probe:
    """Call ``fn`` once more, after every witness call, and compare bitwise with ``expected`` (the
    arrays of the first call at the same arguments); a difference is ``not_deterministic``."""
    again = as_tuple(calls.call(fn, label, args, names))
    for name, a, b in zip(out_names, expected, again):
        b = np.asarray(b)
        if not same_bits(a, b):
            where = _where_differs(a, b, name)
            raise Refusal(
                "not_deterministic",
                f"{label} is not deterministic: at the same input it returns other values after the "
                f"witnesses' {calls.count - 1} calls than at first, differing{where} (does it read a "
                f"call counter, or state that an earlier call changed, such as a global?)",
            )
    return Probe(
        f"{label} returns the same values after the witnesses' calls",
        True,
        f"called again after {calls.count - 1} calls: bitwise equal to the first call",
    )


def probe_layout(
    calls: Calls, fn, label: str, args: list, names: list, expected: list, dtype, out_names: list
) -> Probe:
    """Call ``fn`` with every array argument a non-contiguous copy (:func:`strided_copy`) and compare
    with ``expected`` (the results on C-contiguous copies) within ``sqrt(eps)`` of their size: code
    that writes its result through ``reshape(-1)`` or ``ravel()`` of a new array, or reads
    ``x.data``, is right only for one memory layout, and users' arrays are often views. A difference
    is ``depends_on_layout`` only when one more call on contiguous copies gives ``expected`` again;
    otherwise the function changed between calls (``not_deterministic``)."""
    calls.strided = True
    try:
        got = as_tuple(calls.call(fn, label, args, names))
    finally:
        calls.strided = False
    tol_rel = LINEARITY_SQRT_EPS_FACTOR * math.sqrt(eps_of(dtype))

    def first_difference(results):
        """``(name, shapes differ, max |difference|, flat index)`` of the first result beyond tolerance."""
        for name, a, b in zip(out_names, expected, results):
            b = calls.array(b, label, name)
            if a.shape != b.shape:
                return name, True, 0.0, 0
            a64, b64 = a.astype(np.float64), b.astype(np.float64)
            scale = max(float(np.abs(a64).max(initial=0.0)), float(np.abs(b64).max(initial=0.0)))
            d = np.abs(a64 - b64)
            if a.size and float(d.max()) > tol_rel * scale:
                return name, False, float(d.max()), int(np.argmax(d))
        return None

    bad = first_difference(got)
    if bad is None:
        return Probe(
            f"{label} does not depend on memory layout",
            True,
            "non-contiguous copies of the inputs give the same values",
        )
    if first_difference(as_tuple(calls.call(fn, label, args, names))) is not None:
        raise Refusal(
            "not_deterministic",
            f"{label} is not deterministic: a third call at the same input returns other values than the "
            f"first two (does it read a call counter, or state that an earlier call changed?)",
        )
    name, shape_differs, dmax, at = bad
    shape = dict(zip(out_names, expected))[name].shape
    raise Refusal(
        "depends_on_layout",
        f"{label} depends on the memory layout of its inputs: with non-contiguous copies of the same values "
        + (
            f"{name} has another shape than {shape}"
            if shape_differs
            else f"{name} differs by up to {dmax:.3g} (at {index_name(name, at, shape)})"
        )
        + "; a write through reshape(-1) or ravel() of a new array is lost when they copy",
    )
