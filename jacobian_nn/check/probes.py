"""Preconditions probed before any verdict, and the guarded calls into user code.

A derivative comparison relies on assumptions that wrong code can break silently:

* ``f`` and the VJP are deterministic: two calls at the same point return bitwise the same
  array (a CS231n dropout without a fixed seed draws a new mask per call, and finite
  differences of a random function are noise that excuses any claim);
* the VJP is linear in its cotangent: ``vjp(x, a u + w) = a vjp(x, u) + vjp(x, w)`` within
  ``sqrt(eps)`` of the sizes involved; a VJP whose result does not change with the cotangent
  "ignores its cotangent" (it is the gradient of one fixed loss, not a VJP);
* no call changes its array arguments (``x``, ``dout``, the parameters): every call gets
  copies, which are compared bitwise with the originals afterwards;
* every returned gradient has exactly the shape of what it is the gradient of (``dx.shape ==
  x.shape``; a flattened or transposed array is not reshaped to fit);
* every returned value is finite.

A failed probe raises :class:`Refusal`; the check turns it into a ``refused`` report with the
cause. Exceptions raised by user code (``SystemExit`` included) are refusals too, naming the
function and the exception.
"""

from __future__ import annotations

import copy
import math

import numpy as np

from .._validation import eps_of, relative_error
from .report import Probe, index_name

#: The scalar ``a`` of the linearity probe ``vjp(a u + w) = a vjp(u) + vjp(w)``.
LINEARITY_A = 1.75
#: Linearity tolerance: ``LINEARITY_SQRT_EPS_FACTOR * sqrt(eps(dtype)) * (|a| max|vjp(u)| + max|vjp(w)|)``.
LINEARITY_SQRT_EPS_FACTOR = 1.0

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
)


class Refusal(Exception):
    """A precondition failed: ``key`` (one of :data:`CAUSES`) and a sentence for the user."""

    def __init__(self, key: str, text: str):
        super().__init__(text)
        self.key, self.text = key, text


def same_bits(a, b) -> bool:
    """Bitwise equality (NaN payloads and signed zeros included)."""
    if a.shape != b.shape or a.dtype != b.dtype:
        return False
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

    def call(self, fn, label: str, args: list, names: list):
        """``fn(*copies)``. Array arguments that come back changed are a refusal; other arguments
        (a CS231n ``bn_param`` dict) get a fresh deep copy per call, so their changes cannot leak."""
        copies = [np.array(a, copy=True) if isinstance(a, np.ndarray) else copy.deepcopy(a) for a in args]
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
        for name, a, c in zip(names, args, copies):
            if isinstance(a, np.ndarray) and not same_bits(a, c):
                raise Refusal(
                    "mutates_argument",
                    f"{label} mutates its argument {name} (it must not change its inputs; work on a copy)",
                )
        return out

    def array(self, value, label: str, name: str) -> np.ndarray:
        """``value`` as a real, finite ndarray (a refusal otherwise)."""
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
            where = ""
            if a.shape == b.shape and a.size:
                d = np.abs(a.astype(np.float64) - b.astype(np.float64))
                where = f" by up to {d.max():.3g} (at {index_name(out_name, int(np.argmax(d)), a.shape)})"
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
