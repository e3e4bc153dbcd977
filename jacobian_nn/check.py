"""Gradient checks for *someone else's* derivative code, with a diagnosis.

Public API::

    check_jacobian(f, jacobian, x)        f: x -> y; jacobian(x) -> J, J (m, n) numerator layout
    check_vjp(f, vjp, x)                  vjp(x, v) -> v J, v of y's shape, result of x's size
    check_jacobian_batched(f, jacobians, X)   f: X (N, n) -> Y (N, m); jacobians(X) -> (N, m, n)
                                          per-sample Jacobians (or the full (N, m, N, n))
    check_vjp_batched(f, vjp, X)          vjp(X, G) -> (N, n) for G of Y's shape (N, m) (or a
                                          scalar cotangent when f returns the batch loss)
    from_cs231n(forward, backward, *params, **kwargs) -> (f, vjp)
                                          adapter for ``forward(x, ...) -> (out, cache)`` and
                                          ``backward(dout, cache) -> dx`` (or ``(dx, dw, ...)``)

Every check returns a :class:`CheckReport` (``passed``, ``diagnosis``, the worst
entries in Jacobian coordinates, the tolerance and why, ``str()``, ``as_dict()``).

Witnesses
---------
1. Finite differences, ``scipy.differentiate.jacobian`` through
   :func:`jacobian_nn.fd.fd_jacobian`, with its per-entry error estimate. The
   analytic Jacobian is compared entry by entry: for a VJP it is assembled from
   one call per output coordinate, ``J[i, :] = vjp(x, e_i)``, when ``m * n <=``
   :data:`FULL_JACOBIAN_MAX_ENTRIES`.
2. ``reference=NAME``: the library's own forward and Jacobian of a named
   component (:data:`REFERENCES`).
3. For VJPs, the inner-product identity ``<u, vjp(x, v)> = <v, J u>`` for random
   ``u``, ``v`` from ``numpy.random.default_rng(seed)``, with ``J u`` a
   finite-difference directional derivative (autograd's ``check_vjp``). It also
   catches a VJP that is not linear in its cotangent, which unit cotangents miss.

Layout
------
The full Jacobian is ``J[r, c] = d y.flat[r] / d x.flat[c]``, shape
``(y.size, x.size)``. For batches ``X`` ``(N, n)`` and ``Y`` ``(N, m)``,
``r = k m + i`` and ``c = l n + j``: an entry is reported as
``(sample k, row i, column j)``, plus ``input_sample l`` when ``l != k``
(a cross-sample term). When ``f`` returns one number for the whole batch, the
entry is ``(sample l, row 0, column j)``.

Tolerance (see :class:`Tolerance`)
----------------------------------
An entry passes when ``|analytic - numeric| <= atol + rtol |numeric| + err_factor * fd_error``.
``atol = rtol = TOL_SQRT_EPS_FACTOR * sqrt(eps(dtype))``: 1.5e-7 for float64,
3.5e-3 for float32, and ``err_factor = ERR_FACTOR``. float32 is looser for two
reasons: the analytic values carry float32 rounding (eps 1.2e-7 per operation
instead of 2.2e-16), and a finite difference of a float32 function divides its
rounding noise ``eps |f|`` by the step, so the witness itself is only good to
about ``sqrt(eps)``. The float32 witness therefore uses larger steps
(:data:`FD_STEPS`).

Diagnosis (in this order; the first that fits is reported)
----------------------------------------------------------
``rounding``  every entry within tolerance: a pass.
``kink``      every entry within tolerance, except entries at (or within one step of) a
              non-differentiable point: there the one-sided differences (``step_direction=-1``
              and ``+1``) differ and the analytic value lies between them. A pass, with a note
              naming the convention (the library's is the left derivative, the ``x <= 0``
              branch). Both sides are always probed when the Jacobian has at most
              ``FULL_JACOBIAN_MAX_ENTRIES`` entries, so a kink is reported even where the claim
              equals the central difference (a claimed relu'(0) = 0.5); for larger Jacobians,
              only where an entry fails or scipy's error estimate dominates its tolerance.
              Where the sides differ and the claim lies outside them, the entry fails.
(failures, in this order; where the claim is zero everywhere it is a ``mismatch``)
``sign_flipped``  analytic == -numeric.
``transposed``  analytic == numeric^T (also when the analytic has the transposed shape).
``diagonal_only``  diagonal entries right, off-diagonal analytic entries zero, numeric not.
``missing_batch_scaling``  analytic == N * numeric (or numeric / N) for a batch of N.
``constant_factor``  analytic == c * numeric for one constant c (reported).
``mismatch``  anything else; the worst entries and where the errors sit are reported.
"""

from __future__ import annotations

import importlib.util
import json
import math
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np

from ._validation import FLOAT_DTYPES, as_float_array
from .fd import FD_ERR_FACTOR, INITIAL_STEP, MAXITER, fd_jacobian

# --------------------------------------------------------------------------- defaults

#: ``atol = rtol = TOL_SQRT_EPS_FACTOR * sqrt(eps)``: 1.49e-7 (float64), 3.45e-3 (float32).
TOL_SQRT_EPS_FACTOR = 10.0
#: Multiplier of scipy's error estimate in the tolerance (shared with ``jacobian_nn.fd``).
ERR_FACTOR = FD_ERR_FACTOR
#: Finite-difference schedule per dtype: (initial step, number of halvings). float32 stops at a
#: step of 0.05 / 2**4 = 3e-3, where its rounding noise (eps / step ~ 4e-5) is still small.
FD_STEPS = {np.dtype(np.float64): (INITIAL_STEP, MAXITER), np.dtype(np.float32): (0.05, 4)}
#: How many of the worst entries a report lists.
TOP_K = 5
#: Random (u, v) pairs for the inner-product identity.
VJP_PAIRS = 3
#: ``check_vjp`` assembles and compares the full Jacobian only when ``m * n`` is at most this.
FULL_JACOBIAN_MAX_ENTRIES = 4096
#: A fitted factor c is called ``N`` (or ``1/N``) when within this relative distance.
FACTOR_RTOL = 1e-3

DIAGNOSES = ("rounding", "kink", "sign_flipped", "transposed", "diagonal_only", "missing_batch_scaling",
             "constant_factor", "mismatch")

_EXPLAIN = {
    "rounding": "every entry agrees within the tolerance (rounding and finite-difference error)",
    "kink": "the only disagreements are at non-differentiable points, where the analytic value lies between "
            "the one-sided derivatives",
    "transposed": "the analytic Jacobian is the transpose of the numeric one: rows must be outputs and columns "
                  "inputs, J[i, j] = dy_i/dx_j (numerator layout)",
    "sign_flipped": "the analytic Jacobian is the numeric one with the opposite sign",
    "diagonal_only": "the diagonal is right but the off-diagonal terms are missing (zero in the analytic "
                     "Jacobian, not in the numeric one)",
    "missing_batch_scaling": "the analytic derivative is off by the batch size N: a 1/N of the batch mean is "
                             "missing (factor N) or applied twice (factor 1/N)",
    "constant_factor": "the analytic Jacobian is the numeric one times a constant factor",
    "mismatch": "the analytic Jacobian disagrees with the numeric one and fits no simple pattern",
}


@dataclass(frozen=True)
class Tolerance:
    """Per-entry bound ``atol + rtol * |witness| + err_factor * witness_error``."""

    atol: float
    rtol: float
    err_factor: float
    dtype: str

    @classmethod
    def for_dtype(cls, dtype, *, atol=None, rtol=None, err_factor=None) -> "Tolerance":
        """Defaults from ``dtype`` (see the module docstring); any of the three may be overridden."""
        dtype = np.dtype(dtype)
        base = TOL_SQRT_EPS_FACTOR * math.sqrt(float(np.finfo(dtype).eps))
        return cls(atol=base if atol is None else float(atol), rtol=base if rtol is None else float(rtol),
                   err_factor=ERR_FACTOR if err_factor is None else float(err_factor), dtype=dtype.name)

    def bound(self, witness, err=None) -> np.ndarray:
        w = np.abs(np.asarray(witness, dtype=np.float64))
        e = 0.0 if err is None else self.err_factor * np.nan_to_num(np.asarray(err, dtype=np.float64), nan=np.inf)
        return self.atol + self.rtol * w + e

    def explain(self) -> str:
        why = ("float32 is looser: its analytic values carry float32 rounding and a finite difference of a "
               "float32 function is only good to about sqrt(eps)") if self.dtype == "float32" else \
              "float64: the analytic values are near machine precision and scipy's Richardson estimate is tight"
        return (f"|analytic - numeric| <= atol + rtol*|numeric| + {self.err_factor:g}*fd_error with "
                f"atol={self.atol:.2e}, rtol={self.rtol:.2e} (default {TOL_SQRT_EPS_FACTOR:g}*sqrt(eps) for "
                f"{self.dtype}; {why})")


# --------------------------------------------------------------------------- report


@dataclass
class Entry:
    """One Jacobian entry: ``row`` = output index, ``column`` = input index (``sample`` for batches)."""

    row: int
    column: int
    analytic: float
    numeric: float
    abs_error: float
    rel_error: float
    tolerance: float
    fd_error: float
    passed: bool
    sample: int | None = None
    input_sample: int | None = None
    left: float | None = None
    right: float | None = None
    note: str = ""


@dataclass
class Witness:
    """One witness's verdict: finite differences, a named reference, or the inner-product identity."""

    name: str
    passed: bool
    diagnosis: str
    max_abs: float
    max_rel: float
    n_failed: int
    n_entries: int
    detail: str = ""


@dataclass
class CheckReport:
    """The result of one check. ``passed`` is True only if every witness passed."""

    name: str
    kind: str
    passed: bool
    diagnosis: str
    summary: str
    input_shape: tuple
    output_shape: tuple
    dtype: str
    tolerance: Tolerance
    batch_size: int | None = None
    factor: float | None = None
    convention: str | None = None
    witnesses: list = field(default_factory=list)
    worst: list = field(default_factory=list)
    kinks: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    seed: int | None = None

    def as_dict(self) -> dict:
        d = asdict(self)
        d["input_shape"], d["output_shape"] = list(self.input_shape), list(self.output_shape)
        d["tolerance"]["explanation"] = self.tolerance.explain()
        return _jsonable(d)

    def to_json(self, path) -> None:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(self.as_dict(), fh, indent=2)

    def __str__(self) -> str:
        verdict = "pass" if self.passed else "FAIL"
        batch = f", batch of N={self.batch_size}" if self.batch_size is not None else ""
        lines = [f"{self.kind} {self.name}: {verdict} ({self.diagnosis})",
                 f"  function  : {tuple(self.input_shape)} -> {tuple(self.output_shape)}{batch}, {self.dtype}"
                 + (f", seed {self.seed}" if self.seed is not None else ""),
                 f"  diagnosis : {self.diagnosis}: {self.summary}"]
        if self.factor is not None:
            lines.append(f"  factor    : analytic = {_nice(self.factor)} x numeric")
        if self.convention is not None:
            lines.append(f"  convention: {self.convention}")
        lines.append(f"  tolerance : {self.tolerance.explain()}")
        lines.append("  witnesses :")
        for w in self.witnesses:
            lines.append(f"    {'pass' if w.passed else 'FAIL'}  {w.name}: {w.diagnosis}, "
                         f"{w.n_failed}/{w.n_entries} beyond tolerance, max abs {w.max_abs:.2e}, "
                         f"max rel {w.max_rel:.2e}" + (f"; {w.detail}" if w.detail else ""))
        if self.worst:
            head = "worst entries" if not self.passed else "largest differences"
            lines.append(f"  {head} (row = output index, column = input index):")
            lines.extend(_entry_table(self.worst))
        if self.kinks:
            lines.append("  entries at a kink (one-sided finite differences):")
            lines.extend(_entry_table(self.kinks, one_sided=True))
        for n in self.notes:
            lines.append(f"  note: {n}")
        return "\n".join(lines)


def _entry_table(entries, one_sided=False) -> list:
    batched = any(e.sample is not None for e in entries)
    head = (f"{'sample':>6} " if batched else "") + f"{'row':>4} {'col':>4} {'analytic':>11} {'numeric':>11}"
    head += f" {'left':>9} {'right':>9}" if one_sided else f" {'abs err':>9} {'rel err':>9} {'tol':>9} {'fd err':>9}"
    rows = ["    " + head]
    for e in entries:
        s = (f"{e.sample:>6} " if batched else "") + f"{e.row:>4} {e.column:>4} {e.analytic:>11.4g} {e.numeric:>11.4g}"
        if one_sided:
            s += f" {e.left:>9.3g} {e.right:>9.3g}"
        else:
            s += f" {e.abs_error:>9.2e} {e.rel_error:>9.2e} {e.tolerance:>9.2e} {e.fd_error:>9.2e}"
        if e.input_sample is not None:
            s += f"  (input sample {e.input_sample})"
        if e.note:
            s += f"  {e.note}"
        rows.append("    " + s)
    return rows


def _jsonable(obj):
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return v if math.isfinite(v) else str(v)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def _nice(c: float) -> str:
    """``2``, ``0.5 (= 1/2)``, or the value itself."""
    frac = Fraction(c).limit_denominator(64)
    if abs(float(frac) - c) <= 1e-6 * max(1.0, abs(c)):
        if frac.denominator == 1:
            return str(frac.numerator)
        return f"{float(frac):.6g} (= {frac})"
    return f"{c:.6g}"


# --------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class _Layout:
    """Maps flat Jacobian indices ``(r, c)`` to reported coordinates."""

    in_shape: tuple
    out_shape: tuple
    batch: int | None

    @property
    def shape(self) -> tuple:
        return (int(np.prod(self.out_shape, dtype=int)), int(np.prod(self.in_shape, dtype=int)))

    @property
    def per_sample(self) -> bool:
        return self.batch is not None and len(self.out_shape) == 2 and self.out_shape[0] == self.batch

    def coords(self, r: int, c: int) -> dict:
        if self.batch is None:
            return {"row": int(r), "column": int(c)}
        n = self.in_shape[1]
        l, j = divmod(int(c), n)
        if self.per_sample:
            k, i = divmod(int(r), self.out_shape[1])
            return {"sample": k, "row": i, "column": j, "input_sample": None if k == l else l}
        return {"sample": l, "row": int(r), "column": j}


def _to_full(A, layout: _Layout, what: str):
    """The claimed Jacobian as ``(M, K)``; ``(matrix, transposed_shape)``.

    ``transposed_shape`` is True when ``A`` has the transposed shape ``(K, M)``
    (or ``(N, n, m)`` for per-sample batches) with ``M != K``; the matrix
    returned is then ``A`` transposed back, for the comparison of values.
    """
    M, K = layout.shape
    A = np.asarray(A)
    if A.dtype.kind not in "fiub":
        raise TypeError(f"{what}: expected a real array, got dtype {A.dtype}")
    A = A.astype(np.float64)
    if layout.per_sample:
        N, m, n = layout.batch, layout.out_shape[1], layout.in_shape[1]
        if A.shape in ((N, m, n), (N, n, m)) and A.size != M * K:
            swapped = A.shape == (N, n, m) and m != n
            blocks = np.swapaxes(A, 1, 2) if swapped else A
            full = np.zeros((N, m, N, n))
            full[np.arange(N), :, np.arange(N), :] = blocks
            return full.reshape(M, K), swapped
    if A.size != M * K:
        raise ValueError(f"{what}: expected {M * K} entries (output size {M} x input size {K}), got shape "
                         f"{A.shape}")
    if A.shape == (K, M) and M != K and M > 1 and K > 1:
        return A.T.copy(), True
    return A.reshape(M, K), False


# --------------------------------------------------------------------------- user callables


class _Calls:
    """Call user functions on copies, in the check's dtype; record in-place mutation of arguments."""

    def __init__(self, dtype):
        self.dtype = np.dtype(dtype)
        self.mutated: set = set()

    def call(self, fn, label, *args):
        copies = [np.array(a, copy=True) for a in args]
        out = fn(*copies)
        for pos, (a, c) in enumerate(zip(args, copies)):
            if not np.array_equal(a, c):
                self.mutated.add(f"{label} modified its argument {pos} in place")
        return out

    def output(self, fn, label, *args) -> np.ndarray:
        out = np.asarray(self.call(fn, label, *args))
        if out.dtype.kind not in "fiub":
            raise TypeError(f"{label}: expected a real array, got dtype {out.dtype}")
        if out.size and not np.all(np.isfinite(out)):
            raise ValueError(f"{label}: returned non-finite values")
        return out


# --------------------------------------------------------------------------- references
#
# Each entry: (single(x, kw) -> (y, J full), batched(X, kw) -> (Y, per-sample (N, m, n) or full)).
# The batched entries of the elementwise activations, softmax and dense use the batched path's
# explicit Jacobians (``jacobian_batched``); batch norm, whose Jacobian couples the samples, uses
# the library's full batch Jacobian ``jacobian_x_coupled``. A check is a witness, not a path:
# it reads derivatives, it does not compute any for training.


def _act_single(name):
    def run(x, kw):
        from .activations import get_activation
        act = get_activation(name, **kw)
        z = x.reshape(-1, 1)
        return act.forward(z), act.jacobian(z)
    return run


def _act_batched(name):
    def run(X, kw):
        from .activations import get_activation
        act = get_activation(name, **kw)
        return act.forward_batched(X), act.jacobian_batched(X)
    return run


def _dense_params(kw):
    missing = {"W", "b"} - set(kw)
    if missing:
        raise ValueError(f"reference='dense': expected keyword arguments W, b (and optionally activation), "
                         f"missing {sorted(missing)}")
    W = np.asarray(kw["W"]).astype(np.float64)
    b = np.asarray(kw["b"]).astype(np.float64)
    return W, b, kw.get("activation", "identity")


def _dense_single(x, kw):
    from .layers import Dense
    W, b, act = _dense_params(kw)
    layer = Dense.from_params(W, b, act)
    col = x.reshape(-1, 1)
    return layer.forward(col)[0], layer.jacobian_x(col)


def _dense_batched(X, kw):
    from .layers import Dense
    W, b, act = _dense_params(kw)
    layer = Dense.from_params(W, b, act)
    Y, (_, Z, _) = layer.forward_batched(X)
    return Y, layer.activation.jacobian_batched(Z) @ W.T


def _batchnorm_single(x, kw):
    raise ValueError("reference='batchnorm': batch normalisation couples the samples of a batch; use "
                     "check_jacobian_batched / check_vjp_batched with a batch X (N, m), N >= 2")


def _batchnorm_batched(X, kw):
    """Batch norm (train mode by default): keyword arguments gamma, beta, eps, mode and, for
    mode='test', running_mean and running_var. The Jacobian is the library's full
    ``(N*m, N*m)`` batch Jacobian (samples are coupled)."""
    from .normalization import BatchNorm
    kw = dict(kw)
    mode = kw.pop("mode", "train")
    running = {k: kw.pop(k) for k in ("running_mean", "running_var") if k in kw}
    kw = {k: (np.asarray(v).astype(np.float64) if k in ("gamma", "beta") else v) for k, v in kw.items()}
    bn = BatchNorm(X.shape[1], update_running=False, **kw)
    for k, v in running.items():
        getattr(bn, k)[...] = np.asarray(v, dtype=np.float64)
    Y = bn.forward_batched(X, mode)[0]
    return Y, bn.jacobian_x_coupled([row[:, None] for row in X], mode)


REFERENCES = {name: (_act_single(name), _act_batched(name))
              for name in ("identity", "step", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "softmax")}
REFERENCES["dense"] = (_dense_single, _dense_batched)
REFERENCES["batchnorm"] = (_batchnorm_single, _batchnorm_batched)


# --------------------------------------------------------------------------- analysis


@dataclass
class _Analysis:
    passed: bool
    diagnosis: str
    fail: np.ndarray
    kink: np.ndarray
    bound: np.ndarray
    factor: float | None = None
    convention: str | None = None
    notes: list = field(default_factory=list)
    one_sided: tuple | None = None
    atol: float = 0.0   # entries with max(|analytic|, |witness|) <= atol get no relative error


def _analyse(A, B, err, tol: Tolerance, layout: _Layout, *, one_sided=None, kink_mask=None,
             transposed_shape=None) -> _Analysis:
    """Compare the claimed ``A`` with the witness ``B`` (error estimate ``err``) and diagnose.

    ``one_sided``: a callable returning ``(L, L_err, R, R_err, L_success, R_success)``, the
    left and right finite-difference Jacobians, called only if some entry is in doubt (it
    fails, or scipy's error estimate dominates its tolerance). ``kink_mask``:
    entries already known to be at a kink (from the finite-difference witness), which
    a reference witness does not count as failures. ``transposed_shape``: a message when
    the claim came in the transposed shape (``A`` is then already transposed back).
    """
    bound = tol.bound(B, err)
    diff = np.abs(A - B)
    fail = diff > bound
    kink = np.zeros_like(fail) if kink_mask is None else kink_mask.copy()
    notes, convention, sides = [], None, None
    if one_sided is not None and err is not None:
        doubtful = fail | (tol.err_factor * np.nan_to_num(err, nan=np.inf) > tol.atol + tol.rtol * np.abs(B))
        # small Jacobians: always probe both sides, so that a kink is reported even where the claim
        # matches the central difference (a claimed 0.5 for relu'(0) is the average of the sides)
        if doubtful.any() or A.size <= FULL_JACOBIAN_MAX_ENTRIES:
            L, Le, R, Re, sL, sR = sides = one_sided()
            bL, bR = tol.bound(L, Le), tol.bound(R, Re)
            # a side that did not converge and whose error exceeds the other side's size: f jumps there
            jump = (~sL & (Le > np.maximum(1.0, np.abs(R)))) ^ (~sR & (Re > np.maximum(1.0, np.abs(L))))
            differ = (np.abs(L - R) > bL + bR) | jump
            slack_jump = jump
            slack = np.maximum(bL, bR)
            between = (A >= np.minimum(L, R) - slack) & (A <= np.maximum(L, R) + slack)
            kink = differ & between
            # the sides differ and the analytic value lies outside their range: a failure
            fail = fail | (differ & ~between)
            # one-sided differences agree: judge by them
            agree = doubtful & ~differ
            fail = np.where(agree, (np.abs(A - L) > bL) & (np.abs(A - R) > bR), fail)
            if kink.any():
                left = kink & (np.abs(A - L) <= bL)
                right = kink & ~left & (np.abs(A - R) <= bR)
                mid = kink & ~left & ~right
                parts = []
                if left.any():
                    parts.append(f"{int(left.sum())} equal the left one-sided derivative (at the kink itself: "
                                 f"the x <= 0 branch, this library's convention)")
                if right.any():
                    parts.append(f"{int(right.sum())} equal the right one-sided derivative (at the kink itself: "
                                 f"the x >= 0 branch; or a point just right of the kink)")
                if mid.any():
                    parts.append(f"{int(mid.sum())} take a value strictly between the one-sided derivatives "
                                 f"(a subgradient)")
                convention = "; ".join(parts)
                if np.any(kink & slack_jump):
                    notes.append(f"{int(np.sum(kink & slack_jump))} kink entries are jumps of f itself (one "
                                 f"one-sided difference diverges): f is discontinuous there")
    fail = fail & ~kink
    if transposed_shape:
        if not fail.any():
            return _Analysis(False, "transposed", np.ones_like(fail), kink, bound, notes=[
                f"{transposed_shape} (rows = outputs, columns = inputs); transposed back it matches"],
                convention=convention, one_sided=sides, atol=tol.atol)
        notes.append(f"{transposed_shape}; transposed back, its values are diagnosed as below")
    if not fail.any():
        return _Analysis(True, "kink" if kink.any() else "rounding", fail, kink, bound, convention=convention,
                         notes=notes, one_sided=sides, atol=tol.atol)

    ok = ~kink
    M, K = A.shape

    def close(X, Y, bnd, where=None):
        sel = ok if where is None else ok & where
        return bool(np.all((np.abs(X - Y) <= bnd)[sel]))

    significant = np.abs(B) > bound
    factor = None
    diagnosis = None
    if not np.any((np.abs(A) > bound)[ok]):
        notes.append("the analytic Jacobian is zero everywhere (within tolerance)")
        diagnosis = "mismatch"
    elif close(A, -B, bound):
        diagnosis = "sign_flipped"
    elif M == K and M > 1 and close(A, B.T, tol.bound(B.T, None if err is None else err.T)) \
            and not close(B, B.T, bound):
        diagnosis = "transposed"
    else:
        eye = np.eye(M, dtype=bool) if M == K else None
        if eye is not None and M > 1 and np.any((significant & ~eye)[ok]) \
                and np.all((np.abs(A) <= bound)[~eye & ok]) and close(A, B, bound, eye) \
                and np.any(significant[eye]):
            diagnosis = "diagonal_only"
        else:
            sel = ok & significant
            den = float(np.sum(B[sel] ** 2))
            if den > 0:
                c = float(np.sum(A[sel] * B[sel]) / den)
                if abs(c) > 0 and close(A, c * B, bound * max(1.0, abs(c))):
                    factor = c
                    N = layout.batch
                    if N is not None and N > 1 and (abs(c / N - 1) <= FACTOR_RTOL or abs(c * N - 1) <= FACTOR_RTOL):
                        diagnosis = "missing_batch_scaling"
                        if N == 2:
                            notes.append("N = 2, so this may also be a plain factor of 2")
                    else:
                        diagnosis = "constant_factor"
    if diagnosis is None:
        diagnosis = "mismatch"
    if diagnosis == "mismatch":
        n_fail = int(fail.sum())
        notes.append(f"{n_fail} of {fail.size} entries are beyond tolerance")
        if M == K and M > 1 and not np.any(fail & ~np.eye(M, dtype=bool)):
            notes.append("every failing entry is on the diagonal: an elementwise derivative formula is wrong")
        if layout.per_sample:
            rows, cols = np.indices(A.shape)
            cross = rows // layout.out_shape[1] != cols // layout.in_shape[1]
            if np.any(significant & cross) and np.all((np.abs(A) <= bound)[cross]):
                notes.append("the function couples the samples of the batch (cross-sample entries are non-zero) "
                             "but the claimed derivative has no cross-sample terms"
                             + ("; every failing entry is a cross-sample term" if not np.any(fail & ~cross) else ""))
    return _Analysis(False, diagnosis, fail, kink, bound, factor=factor, convention=convention, notes=notes,
                     one_sided=sides, atol=tol.atol)


def _entries(A, B, err, an: _Analysis, layout: _Layout, mask, k: int, by_excess: bool) -> list:
    diff = np.abs(A - B)
    scale = np.maximum(np.abs(A), np.abs(B))
    key = (diff - an.bound) if by_excess else diff
    key = np.where(mask, key, -np.inf)
    order = np.argsort(-key, axis=None, kind="stable")[:k]
    out = []
    for flat in order:
        r, c = np.unravel_index(int(flat), A.shape)
        if not mask[r, c]:
            continue
        e = Entry(row=0, column=0, analytic=float(A[r, c]) + 0.0, numeric=float(B[r, c]) + 0.0,
                  abs_error=float(diff[r, c]),
                  rel_error=float(diff[r, c] / scale[r, c]) if scale[r, c] > an.atol else 0.0,
                  tolerance=float(an.bound[r, c]), fd_error=float(err[r, c]) if err is not None else 0.0,
                  passed=not bool(an.fail[r, c]))
        for name, v in layout.coords(r, c).items():
            setattr(e, name, v)
        if an.kink[r, c] and an.one_sided is not None:
            e.left, e.right = float(an.one_sided[0][r, c]) + 0.0, float(an.one_sided[2][r, c]) + 0.0
            e.note = "kink"
        out.append(e)
    return out


def _witness(name, A, B, an: _Analysis, detail="") -> Witness:
    diff = np.abs(A - B)
    scale = np.maximum(np.abs(A), np.abs(B))
    rel = np.where(scale > an.atol, diff / np.where(scale > an.atol, scale, 1.0), 0.0)
    live = ~an.kink
    return Witness(name=name, passed=an.passed, diagnosis=an.diagnosis,
                   max_abs=float(diff[live].max()) if live.any() else 0.0,
                   max_rel=float(rel[live].max()) if live.any() else 0.0,
                   n_failed=int(an.fail.sum()), n_entries=int(A.size), detail=detail)


# --------------------------------------------------------------------------- the check


def _dtype_of(x, dtype):
    if dtype is not None:
        return np.dtype(dtype)
    arr = np.asarray(x)
    return arr.dtype if arr.dtype in FLOAT_DTYPES else np.dtype(np.float64)


def _run(kind, f, x, *, claimed=None, vjp=None, batched, reference, reference_kwargs, dtype, atol, rtol,
         err_factor, seed, top_k, name, cotangent_shape, full):
    dtype = _dtype_of(x, dtype)
    x = as_float_array(x, "x", dtype)
    if batched and (x.ndim != 2 or x.shape[0] < 1):
        raise ValueError(f"X: expected a batch of shape (N, n) with N >= 1, got shape {x.shape}")
    if x.size == 0:
        raise ValueError(f"x: expected a non-empty array, got shape {x.shape}")
    tol = Tolerance.for_dtype(dtype, atol=atol, rtol=rtol, err_factor=err_factor)
    calls = _Calls(dtype)
    y0 = calls.output(f, "f", x)
    layout = _Layout(tuple(x.shape), tuple(y0.shape), x.shape[0] if batched else None)
    M, K = layout.shape
    in_shape = x.shape
    ct_shape = tuple(cotangent_shape) if cotangent_shape is not None else y0.shape
    if int(np.prod(ct_shape, dtype=int)) != M:
        raise ValueError(f"cotangent_shape: expected {M} entries to match f's output {y0.shape}, got {ct_shape}")

    def f_flat(v):
        return calls.output(f, "f", v.astype(dtype).reshape(in_shape)).astype(np.float64).reshape(-1)

    def vjp_flat(v_flat):
        v = v_flat.reshape(ct_shape).astype(dtype)
        out = calls.output(vjp, "vjp", x, v)
        if out.size != K:
            raise ValueError(f"vjp: expected a result with {K} entries (the size of x {in_shape}), got shape "
                             f"{out.shape}")
        return out.astype(np.float64).reshape(-1)

    step, maxiter = FD_STEPS[dtype]
    notes = []
    witnesses = []
    A = B = err = None
    an = None
    transposed_shape = None   # a message when the claim has the transposed shape
    if claimed is not None:
        raw = np.asarray(calls.call(claimed, "jacobian", x))
        A, swapped = _to_full(raw, layout, "jacobian")
        if swapped:
            want = (layout.batch,) + layout.out_shape[1:] + layout.in_shape[1:] if raw.ndim == 3 else layout.shape
            transposed_shape = f"the claimed Jacobian has shape {raw.shape}, expected {want}"
    elif full and M * K <= FULL_JACOBIAN_MAX_ENTRIES:
        A = np.stack([vjp_flat(e) for e in np.eye(M)]) if M else np.zeros((0, K))
        notes.append(f"the claimed Jacobian was assembled row by row from {M} vjp calls with unit cotangents")
    elif vjp is not None:
        notes.append(f"the full Jacobian ({M} x {K} entries) exceeds FULL_JACOBIAN_MAX_ENTRIES="
                     f"{FULL_JACOBIAN_MAX_ENTRIES}; only the inner-product identity was checked")

    if A is not None:
        res = fd_jacobian(f_flat, x, initial_step=step, maxiter=maxiter)
        B, err = res.df.reshape(M, K), res.error.reshape(M, K)

        def one_sided():
            lo = fd_jacobian(f_flat, x, initial_step=step, maxiter=maxiter, step_direction=-1)
            hi = fd_jacobian(f_flat, x, initial_step=step, maxiter=maxiter, step_direction=1)
            return (lo.df.reshape(M, K), lo.error.reshape(M, K), hi.df.reshape(M, K), hi.error.reshape(M, K),
                    lo.success.reshape(M, K), hi.success.reshape(M, K))

        an = _analyse(A, B, err, tol, layout, one_sided=one_sided, transposed_shape=transposed_shape)
        witnesses.append(_witness(f"finite differences (scipy.differentiate.jacobian, initial step {step:g})",
                                  A, B, an))
    kink_mask = an.kink if an is not None else None
    ref_an = None
    if reference is not None:
        key = str(reference).lower().replace("-", "_")
        if key not in REFERENCES:
            raise ValueError(f"reference: expected one of {sorted(REFERENCES)}, got {reference!r}")
        single, multi = REFERENCES[key]
        xr = x.astype(np.float64)
        if batched:
            y_ref, R = multi(xr, dict(reference_kwargs or {}))
        else:
            y_ref, R = single(xr, dict(reference_kwargs or {}))
        y_ref = np.asarray(y_ref, dtype=np.float64)
        if y_ref.size != y0.size:
            raise ValueError(f"reference={key!r}: the library's output has {y_ref.size} entries, f returned "
                             f"shape {y0.shape}")
        fwd_bound = tol.bound(y_ref.reshape(-1))
        fwd_diff = np.abs(y0.astype(np.float64).reshape(-1) - y_ref.reshape(-1))
        fwd_ok = bool(np.all(fwd_diff <= fwd_bound))
        if not fwd_ok:
            notes.append(f"f differs from the library's {key} forward by up to {fwd_diff.max():.3e}: the reference "
                         f"Jacobian describes a different function")
        if A is not None:
            Rf, _ = _to_full(R, layout, f"reference {key}")
            ref_an = _analyse(A, Rf, None, tol, layout, kink_mask=kink_mask, transposed_shape=transposed_shape)
            if ref_an.passed and not fwd_ok:
                ref_an.passed, ref_an.diagnosis = False, "mismatch"
            if kink_mask is not None and np.any(kink_mask & (np.abs(A - Rf) > ref_an.bound)):
                notes.append(f"at the kink the library's {key} takes the left derivative (the x <= 0 branch); the "
                             f"claimed value differs there, which is a convention, not a bug")
            witnesses.append(_witness(f"reference {key} (the library's own Jacobian)", A, Rf, ref_an,
                                      detail="forward matches" if fwd_ok else "forward DIFFERS"))
    id_witness = None
    if vjp is not None:
        id_witness = _identity(f_flat, vjp_flat, x, M, K, tol, seed, step, maxiter, kink_mask, notes)
        witnesses.append(id_witness)

    # overall verdict: the first failing witness decides the diagnosis
    primary = an if an is not None else None
    passed = all(w.passed for w in witnesses)
    if primary is not None and not primary.passed:
        diag_an = primary
    elif ref_an is not None and not ref_an.passed:
        diag_an = ref_an
    else:
        diag_an = None
    if diag_an is not None:
        diagnosis = diag_an.diagnosis
    elif not passed:
        diagnosis = "mismatch"
    elif an is not None:
        diagnosis = an.diagnosis
    else:
        diagnosis = "kink" if id_witness and id_witness.diagnosis == "kink" else "rounding"
    summary = _EXPLAIN[diagnosis]
    factor = diag_an.factor if diag_an is not None else None
    if diag_an is not None:
        notes = diag_an.notes + notes
    elif an is not None:
        notes = an.notes + notes
    if diag_an is ref_an and ref_an is not None:
        summary += f" (against the library's {reference}; the finite differences agree with the claim, so f " \
                   f"itself may differ from {reference})" if primary is not None and primary.passed else ""
    if diagnosis in ("constant_factor", "missing_batch_scaling") and factor is not None:
        summary += f"; factor {_nice(factor)}"
    if not passed and diag_an is None and id_witness is not None and not id_witness.passed:
        summary = "the inner-product identity <u, vjp(v)> = <v, J u> fails: " + id_witness.detail
    worst, kinks = [], []
    if A is not None:
        Wsrc = diag_an if diag_an is not None else an
        Bsrc = B if Wsrc is an else None
        if Wsrc is ref_an:
            Bsrc, _ = _to_full(R, layout, "reference")
        worst = _entries(A, Bsrc, err if Wsrc is an else None, Wsrc, layout, ~Wsrc.kink, top_k,
                         by_excess=not passed)
        if an is not None and an.kink.any():
            kinks = _entries(A, B, err, an, layout, an.kink, top_k, by_excess=False)
    notes.extend(sorted(calls.mutated))
    return CheckReport(name=name or getattr(claimed or vjp, "__name__", kind), kind=kind, passed=passed,
                       diagnosis=diagnosis, summary=summary, input_shape=tuple(x.shape),
                       output_shape=tuple(y0.shape), dtype=dtype.name, tolerance=tol,
                       batch_size=layout.batch, factor=factor,
                       convention=an.convention if an is not None and an.kink.any() else None,
                       witnesses=witnesses, worst=worst, kinks=kinks, notes=notes, seed=seed)


def _identity(f_flat, vjp_flat, x, M, K, tol, seed, step, maxiter, kink_mask, notes) -> Witness:
    """``<u, vjp(x, v)> = <v, J u>``, ``J u`` by a finite difference along ``u``."""
    rng = np.random.default_rng(seed)
    x0 = x.astype(np.float64).reshape(-1)
    avoid = np.zeros(K, dtype=bool) if kink_mask is None else kink_mask.any(axis=0)
    worst, n_fail, kinky, details = 0.0, 0, 0, []
    max_rel = 0.0
    for _ in range(VJP_PAIRS):
        u = rng.standard_normal(K)
        u[avoid] = 0.0  # directions through a known kink have no directional derivative to compare with
        v = rng.standard_normal(M)
        g = vjp_flat(v)
        lhs = float(u @ g)

        def along(t, u=u):
            return f_flat(x0 + t[0] * u)

        def rhs_of(direction):
            r = fd_jacobian(along, np.zeros(1), initial_step=step, maxiter=maxiter, step_direction=direction)
            Ju, e = r.df[:, 0], r.error[:, 0]
            return float(v @ Ju), float(np.abs(v) @ np.nan_to_num(e, nan=np.inf)), np.abs(v * Ju).sum()

        rhs, rerr, rscale = rhs_of(0)
        scale = max(float(np.abs(u * g).sum()), float(rscale))
        bound = tol.atol + tol.rtol * scale + tol.err_factor * rerr
        d = abs(lhs - rhs)
        max_rel = max(max_rel, d / scale if scale > 0 else 0.0)
        worst = max(worst, d)
        if d > bound:
            lo, lerr, _ = rhs_of(-1)
            hi, herr, _ = rhs_of(1)
            slack = tol.atol + tol.rtol * scale + tol.err_factor * max(lerr, herr)
            if abs(lo - hi) > 2 * slack and min(lo, hi) - slack <= lhs <= max(lo, hi) + slack:
                kinky += 1
                continue
            n_fail += 1
            details.append(f"<u, vjp(v)> = {lhs:.6g} vs <v, J u> = {rhs:.6g}")
    diagnosis = "mismatch" if n_fail else ("kink" if kinky else "rounding")
    detail = "; ".join(details[:2]) if details else (f"{kinky} pair(s) cross a kink" if kinky else "")
    return Witness(name=f"inner-product identity <u, vjp(x, v)> = <v, J u> ({VJP_PAIRS} random pairs, seed {seed})",
                   passed=n_fail == 0, diagnosis=diagnosis, max_abs=worst, max_rel=max_rel, n_failed=n_fail,
                   n_entries=VJP_PAIRS, detail=detail)


_COMMON_DOC = """
    Keyword arguments: ``reference`` (a name in :data:`REFERENCES`) with ``reference_kwargs``
    (``dense`` needs ``W``, ``b`` and optionally ``activation``; ``leaky_relu``/``elu`` take
    ``alpha``); ``dtype`` (float64 or float32; default: x's float dtype); ``atol``, ``rtol``,
    ``err_factor`` override :class:`Tolerance`; ``seed`` for the random pairs; ``top_k``
    worst entries listed; ``name`` for the report.
"""


def check_jacobian(f, jacobian, x, *, reference=None, reference_kwargs=None, dtype=None, atol=None, rtol=None,
                   err_factor=None, seed=0, top_k=TOP_K, name=None) -> CheckReport:
    """Check ``jacobian(x)`` ``(m, n)`` against ``f`` at one point ``x`` (any shape, flattened).

    ``J[i, j] = d f(x).flat[i] / d x.flat[j]``; ``x`` of shape ``(n, 1)`` and
    ``f(x)`` of shape ``(m, 1)`` give the package's ``(m, n)``. A scalar ``f``
    may return its gradient in ``x``'s shape.
    """
    return _run("check_jacobian", f, x, claimed=jacobian, batched=False, reference=reference,
                reference_kwargs=reference_kwargs, dtype=dtype, atol=atol, rtol=rtol, err_factor=err_factor,
                seed=seed, top_k=top_k, name=name, cotangent_shape=None, full=True)


def check_vjp(f, vjp, x, *, cotangent_shape=None, full=True, reference=None, reference_kwargs=None, dtype=None,
              atol=None, rtol=None, err_factor=None, seed=0, top_k=TOP_K, name=None) -> CheckReport:
    """Check ``vjp(x, v)`` = ``v J`` (a result with ``x.size`` entries) against ``f`` at ``x``.

    ``v`` has ``f(x)``'s shape unless ``cotangent_shape`` is given (the package's
    ``backward`` takes a row ``(1, m)`` for an output column ``(m, 1)``). Witnesses:
    the full Jacobian ``J[i, :] = vjp(x, e_i)`` against finite differences when
    ``full`` and ``m * n <= FULL_JACOBIAN_MAX_ENTRIES``, and the inner-product identity.
    """
    return _run("check_vjp", f, x, vjp=vjp, batched=False, reference=reference, reference_kwargs=reference_kwargs,
                dtype=dtype, atol=atol, rtol=rtol, err_factor=err_factor, seed=seed, top_k=top_k, name=name,
                cotangent_shape=cotangent_shape, full=full)


def check_jacobian_batched(f, jacobians, X, *, reference=None, reference_kwargs=None, dtype=None, atol=None,
                           rtol=None, err_factor=None, seed=0, top_k=TOP_K, name=None) -> CheckReport:
    """Check per-sample Jacobians ``jacobians(X)`` ``(N, m, n)`` of ``f: X (N, n) -> Y (N, m)``.

    The full ``(N, m, N, n)`` Jacobian is also accepted (batch-coupled functions);
    per-sample Jacobians are compared as a block diagonal, so a function that
    couples samples shows up as failing cross-sample entries.
    """
    return _run("check_jacobian_batched", f, X, claimed=jacobians, batched=True, reference=reference,
                reference_kwargs=reference_kwargs, dtype=dtype, atol=atol, rtol=rtol, err_factor=err_factor,
                seed=seed, top_k=top_k, name=name, cotangent_shape=None, full=True)


def check_vjp_batched(f, vjp, X, *, full=True, reference=None, reference_kwargs=None, dtype=None, atol=None,
                      rtol=None, err_factor=None, seed=0, top_k=TOP_K, name=None) -> CheckReport:
    """Check ``vjp(X, G)`` ``(N, n)`` for ``f: X (N, n) -> Y`` (``(N, m)``, or a scalar batch loss).

    ``G`` has ``Y``'s shape. A factor N (or 1/N) between the claim and the
    numbers is diagnosed as ``missing_batch_scaling``.
    """
    return _run("check_vjp_batched", f, X, vjp=vjp, batched=True, reference=reference,
                reference_kwargs=reference_kwargs, dtype=dtype, atol=atol, rtol=rtol, err_factor=err_factor,
                seed=seed, top_k=top_k, name=name, cotangent_shape=None, full=full)


for _fn in (check_jacobian, check_vjp, check_jacobian_batched, check_vjp_batched):
    _fn.__doc__ += _COMMON_DOC


# --------------------------------------------------------------------------- adapters


def from_cs231n(forward, backward, *params, **kwargs):
    """``(f, vjp)`` from a CS231n-style pair.

    ``forward(x, *params, **kwargs) -> (out, cache)`` and
    ``backward(dout, cache) -> dx`` or ``(dx, dw, ...)``: ``f(x) = out`` and
    ``vjp(x, dout) = dx`` (the forward is re-run for the cache, so no state is
    shared between calls).
    """

    def f(x):
        return _first(forward(x, *params, **kwargs), "forward")

    def vjp(x, dout):
        out = forward(x, *params, **kwargs)
        if not (isinstance(out, tuple) and len(out) == 2):
            raise TypeError(f"forward: expected a pair (out, cache), got {type(out).__name__}")
        return _first(backward(dout, out[1]), "backward")

    f.__name__ = getattr(forward, "__name__", "forward")
    vjp.__name__ = getattr(backward, "__name__", "backward")
    return f, vjp


def _first(result, what):
    if isinstance(result, tuple):
        if not result:
            raise TypeError(f"{what}: returned an empty tuple")
        return result[0]
    return result


# --------------------------------------------------------------------------- CLI


def load_module(path):
    """Import a user's Python file by path (``importlib.util.spec_from_file_location``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"FILE: no such file {str(path)!r}")
    spec = importlib.util.spec_from_file_location(f"_jacobian_nn_user_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _lookup(module, name, what):
    if not hasattr(module, name):
        public = sorted(k for k in vars(module) if not k.startswith("_"))
        raise ValueError(f"{what}: {name!r} is not defined in {module.__file__}; it defines {public}")
    return vars(module)[name]


def _parse_shape(text):
    try:
        shape = tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise ValueError(f"--shape: expected integers like 4,5, got {text!r}") from None
    if not shape or any(s < 1 for s in shape):
        raise ValueError(f"--shape: expected positive sizes like 4,5, got {text!r}")
    return shape


def add_check(sub) -> None:
    p = sub.add_parser(
        "check", help="check a derivative in your own Python file against finite differences",
        description="Load FILE.py by path and check its derivative of --forward (a --jacobian function, or a "
                    "--backward VJP: vjp(x, dout), or a CS231n pair forward(x) -> (out, cache), "
                    "backward(dout, cache) -> dx) at a random input of --shape. A shape N,D is a batch of N "
                    "samples. Prints a report with a diagnosis; exits 1 on failure.")
    p.add_argument("file", metavar="FILE.py")
    p.add_argument("--forward", required=True, metavar="NAME", help="the function f(x) (or a CS231n forward)")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--backward", metavar="NAME", help="a VJP vjp(x, dout), or a CS231n backward(dout, cache)")
    g.add_argument("--jacobian", metavar="NAME", help="a function returning the Jacobian (m, n) or (N, m, n)")
    p.add_argument("--shape", required=True, metavar="N,D", help="input shape; two sizes are a batch (N, D)")
    p.add_argument("--unbatched", action="store_true", help="treat a 2-D --shape as one input, not a batch")
    p.add_argument("--style", choices=("auto", "vjp", "cs231n"), default="auto",
                   help="how --forward/--backward are called (auto: cs231n when forward returns (out, cache))")
    p.add_argument("--input", metavar="NAME", help="an array (or a function of no arguments) in FILE to use as x "
                                                   "instead of a random one")
    p.add_argument("--reference", metavar="NAME", help=f"also compare with the library's {', '.join(REFERENCES)}")
    p.add_argument("--reference-kwargs", metavar="NAME",
                   help="a dict in FILE with the reference's keyword arguments (dense: W, b, activation)")
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    p.add_argument("--seed", type=int, default=0, help="seed of the random input and of the random pairs")
    p.add_argument("--top", type=int, default=TOP_K, help="how many worst entries to list")
    p.add_argument("--json", metavar="OUT", help="also write the report as JSON to OUT")


def run_check(args) -> int:
    import sys

    try:
        report = _cli_report(args)
    except (OSError, ValueError, TypeError, SyntaxError, ImportError) as exc:
        print(f"jacobian-nn check: error: {exc}", file=sys.stderr)
        return 2
    from .cli import emit_report  # cli imports this module: a deferred import

    return emit_report(report, args.json)


def _cli_report(args) -> CheckReport:
    module = load_module(args.file)
    shape = _parse_shape(args.shape)
    dtype = np.dtype(args.dtype)
    batched = len(shape) == 2 and not args.unbatched
    if args.input:
        value = _lookup(module, args.input, "--input")
        x = np.asarray(value() if callable(value) else value)
        if x.shape != shape:
            raise ValueError(f"--input: {args.input} has shape {x.shape}, --shape says {shape}")
        x = x.astype(dtype) if x.dtype.kind in "iub" or x.dtype == dtype else as_float_array(x, "--input", dtype)
    else:
        x = np.random.default_rng(args.seed).standard_normal(shape).astype(dtype)
    forward = _lookup(module, args.forward, "--forward")
    ref_kw = _lookup(module, args.reference_kwargs, "--reference-kwargs") if args.reference_kwargs else None
    if callable(ref_kw):
        ref_kw = ref_kw()
    common = dict(reference=args.reference, reference_kwargs=ref_kw, dtype=dtype, seed=args.seed, top_k=args.top)
    style = args.style
    if style == "auto":
        out = forward(x.copy())
        style = "cs231n" if isinstance(out, tuple) and len(out) == 2 and isinstance(out[0], np.ndarray) else "vjp"
    if style == "cs231n":
        f, vjp = from_cs231n(forward, _lookup(module, args.backward, "--backward")) if args.backward \
            else (from_cs231n(forward, lambda d, c: d)[0], None)
    else:
        f, vjp = forward, (_lookup(module, args.backward, "--backward") if args.backward else None)
    if args.jacobian:
        jac = _lookup(module, args.jacobian, "--jacobian")
        runner = check_jacobian_batched if batched else check_jacobian
        return runner(f, jac, x, name=args.jacobian, **common)
    runner = check_vjp_batched if batched else check_vjp
    return runner(f, vjp, x, name=args.backward, **common)
