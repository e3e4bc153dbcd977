"""The third witness: finite differences from ``scipy.differentiate.jacobian``.

Nothing here derives a derivative by hand: the numbers come from scipy's
adaptive finite-difference Richardson scheme, which also returns an error
estimate. This module only adapts shapes and compares.

Shapes. scipy's callables are vectorised: ``f`` takes ``x`` of shape ``(n, ...)``
and returns ``(m, ...)``; the result's ``df`` is ``(m, n)`` in numerator layout,
the same layout as every Jacobian in this package.

Kinks. The package's convention is the ``x <= 0`` branch, i.e. the **left**
derivative. At a kink, compare with ``step_direction=-1`` (one-sided steps to the
left); a central difference there is the average of the two one-sided slopes and
matches neither convention.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.differentiate import jacobian as _scipy_jacobian

from ._validation import is_real, relative_error

#: Default first step and number of halvings for the finite-difference scheme.
#: 1e-2 keeps the probes close to the point (so that kinks further than about
#: 1e-2 away are not crossed); 2**-10 of that is the smallest step tried.
INITIAL_STEP = 1e-2
MAXITER = 10

#: Pass criterion: ``|analytic - numeric| <= FD_ATOL + FD_RTOL * |numeric| + FD_ERR_FACTOR * error``
#: with ``error`` scipy's own estimate for that entry.
FD_ATOL = 1e-9
FD_RTOL = 1e-7
FD_ERR_FACTOR = 10.0


@dataclass
class FDResult:
    """``df`` ``(m, n)``: the Jacobian estimate; ``error`` ``(m, n)``: scipy's error estimate."""

    df: np.ndarray
    error: np.ndarray
    success: np.ndarray
    status: np.ndarray


def _columns(fn, xs: np.ndarray) -> np.ndarray:
    """Apply ``fn`` (vector ``(n,)`` -> vector ``(m,)``) to every column of ``xs`` ``(n, ...)``."""
    n, batch = xs.shape[0], xs.shape[1:]
    flat = xs.reshape(n, -1)
    out = np.stack(
        [np.asarray(fn(flat[:, k].copy()), dtype=np.float64).reshape(-1) for k in range(flat.shape[1])], axis=1
    )
    if not np.isfinite(out).all():  # a NaN would flow silently into every difference that uses it
        i, k = (int(v) for v in np.argwhere(~np.isfinite(out))[0])
        raise ValueError(
            f"fn: returned a non-finite value ({float(out[i, k])!r} in output entry {i}) at the probe point "
            f"{np.array2string(flat[:, k], threshold=8)}; finite differences need fn finite at x "
            "and near it (within the initial step)"
        )
    return out.reshape((out.shape[0],) + batch)


def fd_jacobian(
    fn, x, *, step_direction: int = 0, initial_step: float = INITIAL_STEP, maxiter: int = MAXITER
) -> FDResult:
    """Finite-difference Jacobian of ``fn`` at ``x`` by ``scipy.differentiate.jacobian``.

    ``fn`` maps a 1-D float64 vector ``(n,)`` to an array with ``m`` entries
    (any shape; it is flattened). ``x`` is flattened to ``(n,)``. The wrapper
    calls ``fn`` once per probe point; it is the witness, not a fast path.
    Returns :class:`FDResult` with ``df`` of shape ``(m, n)``.

    A non-finite ``x``, or ``fn`` returning NaN or inf at ``x`` or at any probe point, is a
    ``ValueError`` (naming ``x`` or ``fn`` and the point), never a silently NaN ``df``.
    """
    x = np.asarray(x, dtype=np.float64).reshape(-1)
    if not np.isfinite(x).all():
        raise ValueError(
            f"x: expected finite values, got {x[~np.isfinite(x)][0]!r} at index {int(np.argmax(~np.isfinite(x)))}"
        )
    res = _scipy_jacobian(
        lambda xs: _columns(fn, xs), x, initial_step=initial_step, step_direction=step_direction, maxiter=maxiter
    )
    return FDResult(
        df=np.asarray(res.df),
        error=np.asarray(res.error),
        success=np.asarray(res.success),
        status=np.asarray(res.status),
    )


def fd_gradient(fn, x, *, method: str = "adaptive", step=None, **kwargs) -> FDResult:
    """Finite-difference gradient of a scalar ``fn`` at ``x``: a ``(1, n)`` row.

    ``method="adaptive"`` (the default, the witness): scipy's ``differentiate.jacobian`` with its
    error estimate (``kwargs`` go to :func:`fd_jacobian`).

    ``method="central", step=h``: the plain fixed-step central difference of the courses, to
    **reproduce their numbers bit for bit**, not to judge a derivative (CS231n's
    ``eval_numerical_gradient`` uses ``h = 1e-5``, *Deep Learning from Scratch*'s
    ``numerical_gradient`` ``h = 1e-4``). For each entry i, in C order::

        df[0, i] = (fn(x with x_i = x_i + h) - fn(x with x_i = x_i - h)) / (2 * h)

    exactly as those loops compute it (the same perturbed values and the same operations), but
    on a copy: ``x`` is never modified, and ``fn`` gets a fresh 1-D copy per call. There is no
    error estimate: ``error`` is 0 (so :func:`compare` adds no slack for it) and ``success`` is True.
    """
    if method == "adaptive":
        if step is not None:
            raise ValueError(
                f"step: only used with method='central' (the adaptive method chooses its steps), got step={step!r}"
            )
        return fd_jacobian(lambda v: np.atleast_1d(fn(v)), x, **kwargs)
    if method != "central":
        raise ValueError(f"method: expected 'adaptive' or 'central', got {method!r}")
    if kwargs:
        raise ValueError(f"method='central' takes only step=; got also {sorted(kwargs)}")
    if not is_real(step) or not np.isfinite(step) or step <= 0:
        raise ValueError(f"step: method='central' needs a finite step h > 0 (CS231n 1e-5, the book 1e-4), got {step!r}")
    h = float(step)
    x0 = np.array(x, dtype=np.float64).reshape(-1)
    df = np.zeros((1, x0.size))
    for i in range(x0.size):
        probe = x0.copy()
        old = probe[i]
        probe[i] = old + h
        f_plus = np.asarray(fn(probe.copy())).reshape(())
        probe[i] = old - h
        f_minus = np.asarray(fn(probe.copy())).reshape(())
        df[0, i] = (f_plus - f_minus) / (2 * h)
    return FDResult(
        df=df, error=np.zeros_like(df), success=np.ones(df.shape, dtype=bool), status=np.zeros(df.shape, dtype=np.int32)
    )


def fd_loss_gradient(net, X, Y, mode: str = "train", *, path: str = "reference", **kwargs) -> FDResult:
    """Finite-difference gradient ``(1, P)`` of a network's batch loss with respect to
    ``net.flat_params()`` (the layout of ``Network.flatten_gradients``).

    The loss value comes from the reference path (``path="reference"``) or the batched
    path (``"batched"``); only its value is used, never a derivative. The probes run on
    a deep copy, so ``net`` is left untouched (dropout masks fixed with
    ``using_dropout_masks`` and frozen running statistics carry over to the copy).
    """
    if path not in ("reference", "batched"):
        raise ValueError(f"path: expected 'reference' or 'batched', got {path!r}")
    probe = net.copy()
    loss_of = probe.loss_and_gradients if path == "reference" else probe.loss_and_gradients_batched

    def loss(theta):
        probe.set_flat_params(theta.astype(probe.dtype))  # scipy probes in float64; a float32 net computes in float32
        return loss_of(X, Y, mode)[0]

    return fd_gradient(loss, net.flat_params(), **kwargs)


@dataclass
class Comparison:
    """How far ``analytic`` is from a witness, entry by entry.

    ``location`` is the index (row, column, ...) of the entry with the largest
    excess over its tolerance, or of the largest absolute error when all pass.

    A row of ``jacobian-nn verify`` may say more: ``kind`` is ``"numeric"`` (the
    numbers are errors), ``"slip"`` (deliberately wrong code given to the checker:
    the numbers measure the slip, and ``passed`` means it got its expected
    diagnosis), ``"symbolic"`` or ``"exact"`` (no numbers: ``note`` says what was
    shown, by sympy or by exact assertions); ``note`` is the
    outcome in words; ``skipped`` marks a check that did not run (``passed`` is
    then False, and the check counts as skipped, never as passed).
    """

    name: str
    max_abs: float
    max_rel: float
    location: tuple
    tolerance: float
    passed: bool
    kind: str = "numeric"
    note: str = ""
    skipped: bool = False

    def as_dict(self) -> dict:
        d = asdict(self)
        d["location"] = list(self.location)
        return d


def compare(
    name: str,
    analytic,
    numeric,
    *,
    err=None,
    atol: float = FD_ATOL,
    rtol: float = FD_RTOL,
    err_factor: float = FD_ERR_FACTOR,
) -> Comparison:
    """Compare two arrays of one shape entry by entry.

    Entry tolerance: ``atol + rtol * |numeric| + err_factor * err`` (``err`` is a
    witness's own error estimate, 0 if not given). The relative error is
    ``|a - b| / max(|a|, |b|)`` over the entries where ``max(|a|, |b|) > atol``;
    entries smaller than ``atol`` are judged by their absolute error only (a
    relative error of an exact zero against rounding noise means nothing). ``tolerance`` in the result is the tolerance at
    the reported location. A NaN or inf anywhere (value, witness or error estimate) fails, located at its
    first occurrence (errors inf, tolerance NaN).
    """
    a = np.asarray(analytic, dtype=np.float64)
    b = np.asarray(numeric, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"{name}: analytic shape {a.shape} differs from witness shape {b.shape}")
    e = np.zeros_like(b) if err is None else np.broadcast_to(np.asarray(err, dtype=np.float64), b.shape)
    if a.size == 0:
        return Comparison(name, 0.0, 0.0, (), float(atol), True)
    bad = ~(np.isfinite(a) & np.isfinite(b) & np.isfinite(e))
    if bad.any():  # NaN or inf in a value, a witness or an error estimate is never a pass
        idx = np.unravel_index(int(np.argmax(bad)), a.shape)
        return Comparison(name, float("inf"), float("inf"), tuple(int(i) for i in idx), float("nan"), False)
    diff = np.abs(a - b)
    tol = atol + rtol * np.abs(b) + err_factor * e
    rel = relative_error(a, b, floor=atol)
    excess = diff - tol
    idx = np.unravel_index(int(np.argmax(excess)), a.shape)
    if excess[idx] <= 0:
        idx = np.unravel_index(int(np.argmax(diff)), a.shape)
    return Comparison(
        name,
        float(diff.max()),
        float(rel.max()),
        tuple(int(i) for i in idx),
        float(tol[idx]),
        bool(np.all(excess <= 0)),
    )
