"""What is wrong, when something is: named patterns between a claim and its witness.

The same tests run on the full Jacobian (small problems: every entry) and on a sample of
entries (large problems, see :mod:`.witnesses`). Each pattern is a *hypothesis* ``H``, an
array of the entries the claim would have if the slip were exactly that one; the claim is
diagnosed with ``H`` when it equals ``H`` within tolerance on **every** compared entry (kinks
aside) and ``H`` itself differs from the witness. In this order (the first that fits):

``mismatch`` (zero)  the claim is zero everywhere: nothing to name;
``sign_flipped``     ``H = -numeric``;
``transposed``       ``H = J^T`` (the Jacobian transposed, or a square gradient array
                     transposed, ``dW.T``);
``diagonal_only``    ``H = diag(J)``: the diagonal right, the off-diagonal terms missing;
``missing_batch_scaling``  ``H = c numeric`` with ``c = N`` or ``1/N`` for a batch of N;
``constant_factor``  ``H = c numeric`` for one fitted constant ``c`` (never ``c = 1``);
``off_at_label``     a loss gradient off by one constant ``d`` at the label entry of every
                     sample and right elsewhere (the ``-1`` of ``p - onehot(y)``, over N);
``mismatch``         anything else, with where the errors sit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .._validation import relative_error
from .probes import Refusal
from .report import Entry, Tolerance, Witness, index_name, nice

#: A fitted factor c is called ``N`` (or ``1/N``) when within this relative distance, and is not
#: a factor at all when within this distance of 1.
FACTOR_RTOL = 1e-3

DIAGNOSES = (
    "rounding",
    "kink",
    "sign_flipped",
    "transposed",
    "diagonal_only",
    "missing_batch_scaling",
    "constant_factor",
    "off_at_label",
    "mismatch",
)

EXPLAIN = {
    "rounding": "every entry agrees within the tolerance (rounding and finite-difference error)",
    "kink": "the only disagreements are at non-differentiable points, where the analytic value lies between "
    "the one-sided derivatives",
    "transposed": "the analytic derivative is the transpose of the numeric one: rows must be outputs and "
    "columns inputs, J[i, j] = dy_i/dx_j (numerator layout); a gradient has its array's layout",
    "sign_flipped": "the analytic derivative is the numeric one with the opposite sign",
    "diagonal_only": "the diagonal is right but the off-diagonal terms are missing (zero in the analytic "
    "Jacobian, not in the numeric one)",
    "missing_batch_scaling": "the analytic derivative is off by the batch size N: a 1/N of the batch mean is "
    "missing (factor N) or applied twice (factor 1/N)",
    "constant_factor": "the analytic derivative is the numeric one times a constant factor",
    "off_at_label": "the gradient is off by one constant at the label entry of every sample and right "
    "elsewhere: the -1 of p - onehot(y) (divided by N for a batch mean) is missing or wrong",
    "mismatch": "the analytic derivative disagrees with the numeric one and fits no simple pattern",
}

REFUSED_EXPLAIN = "a precondition of the comparison does not hold, so no verdict on the derivative is given"


# --------------------------------------------------------------------------- layout


@dataclass(frozen=True)
class Layout:
    """Flat Jacobian indices ``(r, c)`` -> names: ``r`` in the output, ``c`` in the array checked.

    ``J[r, c] = d out.flat[r] / d p.flat[c]`` for the array ``p`` named ``name`` (its gradient is
    ``"d" + name``). ``batch`` is N when the first axis of ``x`` is a batch.
    """

    in_shape: tuple
    out_shape: tuple
    batch: int | None
    name: str = "x"
    out_name: str = "out"
    batched_input: bool = True  # False for a parameter: its first axis is not the batch
    labels: tuple | None = None

    @property
    def shape(self) -> tuple:
        return (int(np.prod(self.out_shape, dtype=int)), int(np.prod(self.in_shape, dtype=int)))

    @property
    def gname(self) -> str:
        return "d" + self.name

    @property
    def per_sample(self) -> bool:
        return (
            self.batch is not None
            and self.batched_input
            and len(self.out_shape) >= 1
            and self.out_shape[0] == self.batch
            and len(self.in_shape) >= 1
            and self.in_shape[0] == self.batch
        )

    @property
    def samples(self) -> int | None:
        """The batch size N when the Jacobian is per-sample (``per_sample``), else None."""
        return self.batch if self.per_sample else None

    def coords(self, r: int, c: int) -> dict:
        M, _ = self.shape
        d = {
            "row": int(r),
            "column": int(c),
            "where": index_name(self.gname, c, self.in_shape),
            "output": index_name(self.out_name, r, self.out_shape) if M > 1 else "",
        }
        if self.batch is not None and self.batched_input:
            l = int(np.unravel_index(int(c), self.in_shape)[0])
            if self.per_sample:
                k = int(np.unravel_index(int(r), self.out_shape)[0])
                d.update(sample=k, input_sample=None if k == l else l)
            else:
                d.update(sample=l)
        return d


def to_full(A, layout: Layout, what: str):
    """The claimed Jacobian as ``(M, K)``; ``(matrix, transposed_shape_message or None)``.

    Accepted shapes: ``(M, K)``; ``out.shape + x.shape``; per-sample blocks ``(N, m..., n...)``
    for a batch; ``x.shape`` for a scalar ``f``. The transposed shapes ``(K, M)``,
    ``x.shape + out.shape`` and per-sample ``(N, n..., m...)`` are transposed back and flagged.
    Anything else is refused: the check never reshapes a claim to fit.
    """
    M, K = layout.shape
    A = np.asarray(A)
    if A.dtype.kind not in "fiub":
        raise Refusal("not_real", f"{what} returned an array of dtype {A.dtype}, expected a real array")
    A = A.astype(np.float64)
    xs, ys = tuple(layout.in_shape), tuple(layout.out_shape)
    N = layout.samples
    if N is not None:
        m_sh, n_sh = ys[1:], xs[1:]
        m, n = int(np.prod(m_sh, dtype=int)), int(np.prod(n_sh, dtype=int))
        for shape, swapped in (((N,) + m_sh + n_sh, False), ((N,) + n_sh + m_sh, True)):
            if A.shape == shape and (not swapped or m_sh != n_sh):
                blocks = A.reshape(N, n, m).transpose(0, 2, 1) if swapped else A.reshape(N, m, n)
                full = np.zeros((N, m, N, n))
                full[np.arange(N), :, np.arange(N), :] = blocks
                msg = f"the claimed Jacobian has shape {A.shape}, expected {(N,) + m_sh + n_sh}" if swapped else None
                return full.reshape(M, K), msg
    if A.shape in ((M, K), ys + xs) or (M == 1 and A.shape == xs):
        return A.reshape(M, K), None
    if M != K and M > 1 and K > 1 and A.shape in ((K, M), xs + ys):
        return A.reshape(K, M).T.copy(), f"the claimed Jacobian has shape {A.shape}, expected {(M, K)}"
    want = [(M, K), ys + xs] + ([xs] if M == 1 else [])
    if layout.per_sample:
        want.append((layout.batch,) + ys[1:] + xs[1:])
    raise Refusal(
        "wrong_shape",
        f"{what} returned shape {A.shape}; expected one of "
        f"{', '.join(str(tuple(w)) for w in dict.fromkeys(want))} for f: {xs} -> {ys}",
    )


# --------------------------------------------------------------------------- hypotheses


def diagnose(a, n, bound, ok, hypotheses: dict, batch: int | None, label_mask=None):
    """Name the pattern of a failing claim. ``a``, ``n``, ``bound``, ``ok`` (entries not at a
    kink): 1-D over the compared entries. ``hypotheses``: ``{"transposed": H, "diagonal_only": H}``
    (arrays like ``a``, or absent when they do not apply). Returns ``(diagnosis, factor, notes, offset)``,
    ``offset`` the constant of ``off_at_label``."""
    notes: list[str] = []

    def close(X, Y, bnd):
        return bool(np.all((np.abs(X - Y) <= bnd)[ok]))

    if not ok.any():
        return "mismatch", None, notes, None
    if not np.any((np.abs(a) > bound)[ok]):
        notes.append("the analytic derivative is zero everywhere (within tolerance)")
        return "mismatch", None, notes, None
    if close(a, -n, bound):
        return "sign_flipped", None, notes, None
    for name in ("transposed", "diagonal_only"):
        H = hypotheses.get(name)
        if H is not None:
            if close(a, H, bound) and not close(n, H, bound):
                return name, None, notes, None
    sel = ok & (np.abs(n) > bound)
    size = float(np.abs(n[sel]).max(initial=0.0))  # the fit on n / size: no overflow at 1e200, no underflow at 1e-200
    den = float(np.sum((n[sel] / size) ** 2)) if size > 0 else 0.0
    if den > 0:
        c = float(np.sum((a[sel] / size) * (n[sel] / size)) / den)
        if abs(c - 1.0) > FACTOR_RTOL and abs(c) > 0 and close(a, c * n, bound * max(1.0, abs(c))):
            if (
                batch is not None
                and batch > 1
                and (abs(c / batch - 1) <= FACTOR_RTOL or abs(c * batch - 1) <= FACTOR_RTOL)
            ):
                if batch == 2:
                    notes.append("N = 2, so this may also be a plain factor of 2")
                return "missing_batch_scaling", c, notes, None
            return "constant_factor", c, notes, None
        if abs(c - 1.0) <= FACTOR_RTOL:
            notes.append("the best-fitting factor is 1: the errors are not a scaling")
    if label_mask is not None:
        e = a - n
        lab = ok & label_mask
        other = ok & ~label_mask
        if lab.any() and np.all(np.abs(e[other]) <= bound[other]):
            d = float(np.median(e[lab]))
            if np.all(np.abs(e[lab] - d) <= bound[lab]) and abs(d) > float(np.max(bound[lab])):
                missing = batch is not None and abs(d * batch - 1.0) <= FACTOR_RTOL
                notes.append(
                    f"analytic - numeric = {nice(d)} at each label entry ({int(lab.sum())} checked) and 0 "
                    f"elsewhere" + (f": the label term -1/N = {nice(-d)} is missing" if missing else "")
                )
                return "off_at_label", None, notes, d
    return "mismatch", None, notes, None


# --------------------------------------------------------------------------- full analysis


@dataclass
class Analysis:
    passed: bool
    diagnosis: str
    fail: np.ndarray
    kink: np.ndarray
    bound: np.ndarray
    factor: float | None = None
    convention: str | None = None
    notes: list = field(default_factory=list)
    one_sided: tuple | None = None
    atol: float = 0.0


def _full_hypotheses(B, err, tol, layout: Layout, scale) -> dict:
    M, K = B.shape
    hyp = {}
    if M == K and M > 1:
        hyp["transposed"] = B.T
    xs = layout.in_shape
    if "transposed" not in hyp and len(xs) == 2 and xs[0] == xs[1] > 1:
        hyp["transposed"] = B.reshape(M, *xs).transpose(0, 2, 1).reshape(M, K)
    if M == K and M > 1:
        eye = np.eye(M, dtype=bool)
        hyp["diagonal_only"] = np.where(eye, B, 0.0)
    return hyp


def label_mask_for(layout: Layout, shape2d):
    """Entries at the label of each sample, for a scalar loss of a batch ``(N, C)`` with labels."""
    if layout.labels is None or len(layout.in_shape) != 2 or shape2d[0] != 1:
        return None
    N, C = layout.in_shape
    mask = np.zeros((N, C), dtype=bool)
    mask[np.arange(N), np.asarray(layout.labels)] = True
    return mask.reshape(1, -1)


def analyse_full(
    A, B, err, tol: Tolerance, layout: Layout, *, one_sided=None, kink_mask=None, transposed_shape=None
) -> Analysis:
    """Compare the claimed ``A`` (M, K) with the witness ``B`` (error estimate ``err``) and diagnose.

    ``one_sided``: a callable returning ``(L, L_err, R, R_err, L_success, R_success)``, the left
    and right finite-difference Jacobians (probed on every entry of a full check, so that a kink
    is reported even where the claim matches the central difference). ``kink_mask``: entries
    already known to be at a kink (for a reference witness). ``transposed_shape``: a message when
    the claim came in the transposed shape (``A`` is then already transposed back).
    """
    absB = np.abs(B)
    top = float(absB.max()) if B.size else 0.0
    scale = np.minimum(absB.max(axis=1, keepdims=True), absB.max(axis=0, keepdims=True))  # row and column sizes
    bound = tol.bound(B, err, scale, top)
    diff = np.abs(A - B)
    fail = diff > bound
    kink = np.zeros_like(fail) if kink_mask is None else kink_mask.copy()
    notes, convention, sides = [], None, None
    if one_sided is not None and err is not None:
        L, Le, R, Re, sL, sR = sides = one_sided()
        bL, bR = tol.bound(L, Le, scale, top), tol.bound(R, Re, scale, top)
        # a side that did not converge and whose error exceeds the other side's size: f jumps there
        left_diverges = ~sL & (Le > np.maximum(1.0, np.abs(R)))
        right_diverges = ~sR & (Re > np.maximum(1.0, np.abs(L)))
        jump = left_diverges ^ right_diverges
        differ = (np.abs(L - R) > bL + bR) | jump
        slack = np.maximum(bL, bR)
        between = (A >= np.minimum(L, R) - slack) & (A <= np.maximum(L, R) + slack)
        # at a jump one side diverges, and its error estimate (and the central difference's size in the
        # entry's row and column) would make any claim lie "between": the claim must be the converged
        # side's derivative (the step function's 0 at 0, the library's convention), judged by that side's
        # own size
        if jump.any():
            aL, aR = np.abs(L), np.abs(R)
            jL = tol.bound(L, Le, aL, float(aL[~left_diverges].max(initial=0.0)))
            jR = tol.bound(R, Re, aR, float(aR[~right_diverges].max(initial=0.0)))
            between = np.where(jump, np.where(left_diverges, np.abs(A - R) <= jR, np.abs(A - L) <= jL), between)
        kink = differ & between
        fail = fail | (differ & ~between)  # the sides differ and the claim lies outside them
        loose = tol.err_factor * err > tol.atol * scale + tol.rtol * absB + tol.noise * top  # the estimate dominates
        doubtful = (fail | loose) & ~differ  # one-sided differences agree: judge by them
        # an entry the central difference fails is judged with a tolerance no looser than the central one's
        # (noisy one-sided estimates excuse nothing); one it passed only loosely, with the sides' own
        bL2, bR2 = np.where(fail, np.minimum(bL, bound), bL), np.where(fail, np.minimum(bR, bound), bR)
        fail = np.where(doubtful, (np.abs(A - L) > bL2) & (np.abs(A - R) > bR2), fail)
        if kink.any():
            convention = describe_convention(A, L, R, bL, bR, kink)
            if np.any(kink & jump):
                notes.append(
                    f"{int(np.sum(kink & jump))} kink entries are jumps of f itself (one one-sided "
                    f"difference diverges): f is discontinuous there"
                )
    fail = fail & ~kink
    if transposed_shape:
        if not fail.any():
            return Analysis(
                False,
                "transposed",
                np.ones_like(fail),
                kink,
                bound,
                notes=[f"{transposed_shape} (rows = outputs, columns = inputs); transposed back it matches"],
                convention=convention,
                one_sided=sides,
                atol=tol.atol,
            )
        notes.append(f"{transposed_shape}; transposed back, its values are diagnosed as below")
    if not fail.any():
        return Analysis(
            True,
            "kink" if kink.any() else "rounding",
            fail,
            kink,
            bound,
            convention=convention,
            notes=notes,
            one_sided=sides,
            atol=tol.atol,
        )
    ok = ~kink
    hyp = {k: H.reshape(-1) for k, H in _full_hypotheses(B, err, tol, layout, scale).items()}
    lm = label_mask_for(layout, A.shape)
    diagnosis, factor, more, _ = diagnose(
        A.reshape(-1),
        B.reshape(-1),
        bound.reshape(-1),
        ok.reshape(-1),
        hyp,
        layout.batch,
        None if lm is None else lm.reshape(-1),
    )
    notes += more
    if diagnosis == "mismatch":
        notes += mismatch_notes(A, B, bound, fail, layout)
    return Analysis(
        False,
        diagnosis,
        fail,
        kink,
        bound,
        factor=factor,
        convention=convention,
        notes=notes,
        one_sided=sides,
        atol=tol.atol,
    )


def describe_convention(A, L, R, bL, bR, kink) -> str:
    left = kink & (np.abs(A - L) <= bL)
    right = kink & ~left & (np.abs(A - R) <= bR)
    mid = kink & ~left & ~right
    parts = []
    if left.any():
        parts.append(
            f"{int(left.sum())} equal the left one-sided derivative (at the kink itself: the x <= 0 "
            f"branch, this library's convention)"
        )
    if right.any():
        parts.append(
            f"{int(right.sum())} equal the right one-sided derivative (at the kink itself: the x >= 0 "
            f"branch; or a point just right of the kink)"
        )
    if mid.any():
        parts.append(f"{int(mid.sum())} take a value strictly between the one-sided derivatives (a subgradient)")
    return "; ".join(parts)


def mismatch_notes(A, B, bound, fail, layout: Layout) -> list:
    M, K = A.shape
    notes = [f"{int(fail.sum())} of {fail.size} entries are beyond tolerance"]
    if M == K and M > 1 and not np.any(fail & ~np.eye(M, dtype=bool)):
        notes.append("every failing entry is on the diagonal: an elementwise derivative formula is wrong")
    if layout.per_sample:
        out_k = np.unravel_index(np.arange(M), layout.out_shape)[0]
        in_k = np.unravel_index(np.arange(K), layout.in_shape)[0]
        cross = out_k[:, None] != in_k[None, :]
        significant = np.abs(B) > bound
        if np.any(significant & cross) and np.all((np.abs(A) <= bound)[cross]):
            notes.append(
                "the function couples the samples of the batch (cross-sample entries are non-zero) "
                "but the claimed derivative has no cross-sample terms"
                + ("; every failing entry is a cross-sample term" if not np.any(fail & ~cross) else "")
            )
    if layout.batch is not None and layout.batched_input and M == 1:
        rows = np.unravel_index(np.flatnonzero(fail.reshape(-1)), layout.in_shape)[0]
        notes.append(f"failing entries sit in {len(np.unique(rows))} of {layout.batch} samples")
    return notes


def entries(A, B, err, an: Analysis, layout: Layout, mask, k: int, by_excess: bool) -> list:
    """The ``k`` worst (or largest) entries of ``A`` vs ``B`` among ``mask``, named by layout."""
    diff = np.abs(A - B)
    rel = relative(A, B, an.atol)
    key = np.where(mask, (diff - an.bound) if by_excess else diff, -np.inf)
    order = np.argsort(-key, axis=None, kind="stable")[:k]
    out = []
    for flat in order:
        r, c = (int(i) for i in np.unravel_index(int(flat), A.shape))
        if not mask[r, c]:
            continue
        e = Entry(
            row=0,
            column=0,
            analytic=float(A[r, c]) + 0.0,
            numeric=float(B[r, c]) + 0.0,
            abs_error=float(diff[r, c]),
            rel_error=float(rel[r, c]),
            tolerance=float(an.bound[r, c]),
            fd_error=float(err[r, c]) if err is not None else 0.0,
            passed=not bool(an.fail[r, c]),
        )
        for name, v in layout.coords(r, c).items():
            setattr(e, name, v)
        if an.kink[r, c] and an.one_sided is not None:
            e.left, e.right = float(an.one_sided[0][r, c]) + 0.0, float(an.one_sided[2][r, c]) + 0.0
            e.note = "kink"
        out.append(e)
    return out


def relative(a, b, atol) -> np.ndarray:
    """``|a - b| / max(|a|, |b|)`` where that maximum exceeds ``atol`` times the largest ``|b|``,
    else 0: an exact zero against rounding noise has no meaningful relative error."""
    top = float(np.abs(b).max()) if np.size(b) else 0.0
    return relative_error(a, b, floor=atol * (top if top > 0 else 1.0))


def witness(name, A, B, an: Analysis, detail="") -> Witness:
    diff = np.abs(A - B)
    rel = relative(A, B, an.atol)
    live = ~an.kink
    return Witness(
        name=name,
        passed=an.passed,
        diagnosis=an.diagnosis,
        max_abs=float(diff[live].max()) if live.any() else 0.0,
        max_rel=float(rel[live].max()) if live.any() else 0.0,
        n_failed=int(an.fail.sum()),
        n_entries=int(A.size),
        detail=detail,
    )
