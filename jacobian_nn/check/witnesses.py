"""The witnesses a claim is compared with, all computed without the claim's own code.

1. **Finite differences**, ``scipy.differentiate.jacobian`` through
   :func:`jacobian_nn.fd.fd_jacobian`, with its per-entry error estimate.

   * *Full* (``m * n <= FULL_JACOBIAN_MAX_ENTRIES`` and ``n <= FULL_JACOBIAN_MAX_COLUMNS``):
     every entry of the Jacobian; the claim of a VJP is assembled row by row,
     ``J[i, :] = vjp(x, e_i)``.
   * *Sampled* (larger problems, CS231n's ``grad_check_sparse`` idea): one VJP
     ``g = vjp(x, v)`` for a random cotangent ``v``, and for a sample of entries ``j`` of the
     array (:data:`SAMPLE_ENTRIES`, spread over :data:`SAMPLE_SAMPLES` samples of a batch, plus
     each sampled sample's label entry for a loss, plus the transposed partner of each entry of
     a square matrix) the column ``J[:, j]`` by finite differences, so that ``(v J)_j``,
     ``J[j, j]`` and, along ``v`` itself, ``J v`` are known. The report says how many entries
     were checked.

   A float32 check evaluates ``f`` for the witness in float64 (the same code, on float64
   inputs) whenever ``f`` returns float64 for them, so that the witness is not limited by
   float32 rounding; otherwise it uses the float32 schedule :data:`FD_STEPS`.
2. ``reference=NAME``: the library's own forward and Jacobian of a named component.
3. For VJPs, the **inner-product identity** ``<u, vjp(x, v)> = <v, J u>`` for random ``u``,
   ``v`` (autograd's ``check_vjp``), ``J u`` a directional finite difference: it covers every
   entry at once, at any size.

A witness that is not finite (NaN or inf in a difference or in its error estimate) is a
refusal, never a tolerance of infinity.
"""

from __future__ import annotations

import numpy as np

from .._validation import relative_error
from ..fd import INITIAL_STEP, MAXITER, fd_jacobian
from .diagnosis import Layout, describe_convention, diagnose, relative
from .catalogue_references import catalogue_references
from .image_references import IMAGE_REFERENCES, image_reference
from .probes import Refusal, first_nonfinite
from .report import Entry, Tolerance, Witness, index_name

#: Finite-difference schedule per dtype: (initial step, number of halvings). float32 stops at a
#: step of 0.05 / 2**4 = 3e-3, where its rounding noise (eps / step ~ 4e-5) is still small.
FD_STEPS = {np.dtype(np.float64): (INITIAL_STEP, MAXITER), np.dtype(np.float32): (0.05, 4)}
#: The full Jacobian is assembled and compared when it has at most this many entries ...
FULL_JACOBIAN_MAX_ENTRIES = 4096
#: ... and at most this many columns (one finite difference per column).
FULL_JACOBIAN_MAX_COLUMNS = 256
#: Entries checked by the sampled witness (before labels and transposed partners are added) ...
SAMPLE_ENTRIES = 24
#: ... spread over this many samples of a batch.
SAMPLE_SAMPLES = 6
#: Halvings of the step for the sampled witness and the identity on large problems: the first
#: order-8 estimates at steps 0.01 and 0.005 are exact to rounding for smooth functions, and
#: smaller steps only amplify the rounding noise of a sum over many outputs (a batch loss),
#: which scipy's error estimate does not always see.
SAMPLED_MAXITER = 3
#: Doubtful sampled entries probed with one-sided differences before all of them are.
KINK_PROBE_FIRST = 8
#: Entries exactly at 0 (where kinks sit) added to the sample when the array has some.
SAMPLE_AT_ZERO = 4
#: Random (u, v) pairs for the inner-product identity.
VJP_PAIRS = 3


def dot(a, b) -> float:
    """``a . b`` for 1-D arrays by einsum: a BLAS dot of one long vector can wait milliseconds for its
    thread pool, and the witnesses take thousands of them."""
    return float(np.einsum("i,i->", a, b))


def finite_or_refuse(res, what: str, layout: Layout, cols=None) -> None:
    """Refuse a finite-difference result with a NaN or inf in ``df`` or ``error``."""
    for arr, label in ((res.df, "difference"), (res.error, "error estimate")):
        bad = first_nonfinite(arr, "J")
        if bad is not None:
            r, c_local = np.unravel_index(int(np.flatnonzero(~np.isfinite(arr).reshape(-1))[0]), arr.shape)
            c = int(cols[c_local]) if cols is not None else int(c_local)
            M, _ = layout.shape
            at = index_name(layout.gname, c, layout.in_shape)
            if M > 1:
                at += f" of {index_name(layout.out_name, int(r), layout.out_shape)}"
            raise Refusal(
                "witness_not_finite",
                f"{what}: the finite-difference {label} is not finite at {at} "
                f"(f is not finite, or not defined, near the point?)",
            )


# --------------------------------------------------------------------------- references
#
# Each entry: (single(x, kw) -> (y, J full), batched(X, kw) -> (Y, per-sample (N, m, n) or full)).
# The batched entries of the elementwise activations, softmax and dense use the batched path's
# explicit Jacobians (``jacobian_batched``); batch norm, whose Jacobian couples the samples, uses
# the library's full batch Jacobian ``jacobian_x_coupled``; the image layers (:mod:`.image_references`)
# use the reference path's sparse Jacobians, made dense on the block diagonal; layer norm and the
# losses (:mod:`.catalogue_references`) use the reference path's one-sample Jacobians and gradients. A check is a witness, not a path:
# it reads derivatives, it does not compute any for training.


def _act_single(name):
    def run(x, kw):
        from ..activations import get_activation

        act = get_activation(name, **kw)
        z = x.reshape(-1, 1)
        return act.forward(z), act.jacobian(z)

    return run


def _act_batch(name):
    def run(X, kw):
        from ..activations import get_activation

        act = get_activation(name, **kw)
        return act.forward_batched(X), act.jacobian_batched(X)

    return run


def _dense_params(kw):
    missing = {"W", "b"} - set(kw)
    if missing:
        raise ValueError(
            f"reference='dense': expected keyword arguments W, b (and optionally activation), missing {sorted(missing)}"
        )
    W = np.asarray(kw["W"]).astype(np.float64)
    b = np.asarray(kw["b"]).astype(np.float64)
    return W, b, kw.get("activation", "identity")


def _dense_single(x, kw):
    from ..layers import Dense

    W, b, act = _dense_params(kw)
    layer = Dense.from_params(W, b, act)
    col = x.reshape(-1, 1)
    return layer.forward(col)[0], layer.jacobian_x(col)


def _dense_batch(X, kw):
    from ..layers import Dense

    W, b, act = _dense_params(kw)
    layer = Dense.from_params(W, b, act)
    Y, (_, Z, _) = layer.forward_batched(X)
    return Y, layer.activation.jacobian_batched(Z) @ W.T


def _batchnorm_single(x, kw):
    raise ValueError(
        "reference='batchnorm': batch normalisation couples the samples of a batch; use "
        "check_batch_jacobian / check_batch_vjp with a batch X (N, m), N >= 2"
    )


def _batchnorm_batch(X, kw):
    """Batch norm (train mode by default): keyword arguments gamma, beta, eps, mode and, for
    mode='test', running_mean and running_var. The Jacobian is the library's full
    ``(N*m, N*m)`` batch Jacobian (samples are coupled)."""
    from ..normalization import BatchNorm

    kw = dict(kw)
    mode = kw.pop("mode", "train")
    running = {k: kw.pop(k) for k in ("running_mean", "running_var") if k in kw}
    kw = {k: (np.asarray(v).astype(np.float64) if k in ("gamma", "beta") else v) for k, v in kw.items()}
    bn = BatchNorm(X.shape[1], update_running=False, **kw)
    for k, v in running.items():
        getattr(bn, k)[...] = np.asarray(v, dtype=np.float64)
    Y = bn.forward_batched(X, mode)[0]
    return Y, bn.jacobian_x_coupled([row[:, None] for row in X], mode)


REFERENCES = {
    name: (_act_single(name), _act_batch(name))
    for name in ("identity", "step", "sigmoid", "tanh", "relu", "leaky_relu", "elu", "softmax")
}
REFERENCES["dense"] = (_dense_single, _dense_batch)
REFERENCES["batchnorm"] = (_batchnorm_single, _batchnorm_batch)
REFERENCES.update({name: image_reference(name) for name in IMAGE_REFERENCES})
REFERENCES.update(catalogue_references())


# --------------------------------------------------------------------------- inner-product identity


def identity(
    f_flat, vjp_flat, M, K, tol: Tolerance, seed, step, maxiter, kink_mask, layout: Layout, avoid=None, pairs=None
) -> Witness:
    """``<u, vjp(x, v)> = <v, J u>`` for :data:`VJP_PAIRS` random pairs, ``J u`` by a finite
    difference along ``u`` (both sides probed where the central difference disagrees), and one
    more pair along the claim itself: ``u = g / max|g|`` for ``g = vjp(x, v)``. A random ``u``
    averages the errors of ``K`` entries with random signs, so a claim scaled by ``1 + d`` on a
    subset of its entries moves ``<u, g>`` by about ``d / sqrt(K)`` of ``sum |u g|``, the size the
    tolerance is measured against; along ``g`` every term ``u_j g_j`` is positive, and the same slip
    moves it by ``d`` times the subset's share of ``|g|^2``.

    ``u`` is zero on the columns of ``kink_mask`` (entries known to sit at a kink) and on
    ``avoid`` (entries of the array that are exactly 0, where a kink usually sits): a direction
    through many kinks at once has one-sided derivatives that no single claim lies between."""
    rng = np.random.default_rng(seed)
    avoid = np.zeros(K, dtype=bool) if avoid is None else np.asarray(avoid, dtype=bool).reshape(-1).copy()
    if kink_mask is not None:
        avoid |= kink_mask.any(axis=0)
    worst, n_fail, kinky, details, max_rel = 0.0, 0, 0, [], 0.0
    n_pairs = 0
    for k in range(VJP_PAIRS + 1):
        aligned = k == VJP_PAIRS
        u = rng.standard_normal(K)
        v = rng.standard_normal(M)
        g = vjp_flat(v)
        if aligned:
            u = np.where(avoid, 0.0, g)
            top = float(np.abs(u).max(initial=0.0))
            if top == 0.0:  # nothing to align with (a zero claim fails on the random pairs)
                break
            u = u / top  # largest entry 1: no overflow or underflow at any scale of g, and the finite
            # differences step no further along any entry than along a random u's typical one
        u[avoid] = 0.0  # directions through a known kink have no directional derivative to compare with
        n_pairs += 1
        lhs = dot(u, g)

        def along(t, u=u, v=v):
            return np.atleast_1d(dot(v, f_flat(t[0] * u)))  # <v, f(x + t u)>: its derivative is <v, J u>

        def rhs_of(direction):
            r = fd_jacobian(along, np.zeros(1), initial_step=step, maxiter=maxiter, step_direction=direction)
            finite_or_refuse(r, "inner-product identity", Layout((1,), (), None, name="(x along u)"))
            return float(r.df[0, 0]), float(r.error[0, 0]), abs(float(r.df[0, 0])), bool(r.success[0, 0])

        rhs, rerr, rscale, rok = rhs_of(0)
        claim_size = float(np.abs(u * g).sum())
        scale = max(claim_size, rscale)
        bound = tol.atol * scale + tol.rtol * scale + tol.err_factor * rerr
        if pairs is not None:
            pairs.append((u, v, lhs, rhs, bound))
        d = abs(lhs - rhs)
        max_rel = max(max_rel, float(relative_error(lhs, rhs, scale=scale)))
        worst = max(worst, d)
        if not rok and rerr > max(1.0, claim_size):
            # the central difference diverges: f may jump along u (a discontinuity at x), and its error
            # estimate would excuse any claim; when exactly one side diverges, the claim must be the other's
            lo, lerr, _, lok = rhs_of(-1)
            hi, herr, _, hok = rhs_of(1)
            left_div, right_div = not lok and lerr > max(1.0, abs(hi)), not hok and herr > max(1.0, abs(lo))
            if left_div != right_div:
                side, serr = (hi, herr) if left_div else (lo, lerr)
                sscale = max(claim_size, abs(side))
                if abs(lhs - side) <= (tol.atol + tol.rtol) * sscale + tol.err_factor * serr:
                    kinky += 1
                else:
                    n_fail += 1
                    details.append(
                        f"<u, vjp(v)> = {lhs:.6g} vs <v, J u> = {side:.6g} (f jumps along u; the converged side)"
                    )
                continue
        if d > bound:
            lo, lerr, _, _ = rhs_of(-1)
            hi, herr, _, _ = rhs_of(1)
            slack = tol.atol * scale + tol.rtol * scale + tol.err_factor * max(lerr, herr)
            if abs(lo - hi) > 2 * slack and min(lo, hi) - slack <= lhs <= max(lo, hi) + slack:
                kinky += 1
                continue
            n_fail += 1
            details.append(f"<u, vjp(v)> = {lhs:.6g} vs <v, J u> = {rhs:.6g}")
    diagnosis = "mismatch" if n_fail else ("kink" if kinky else "rounding")
    detail = "; ".join(details[:2]) if details else (f"{kinky} pair(s) cross a kink" if kinky else "")
    if avoid.any():
        detail += ("; " if detail else "") + f"u is 0 on {int(avoid.sum())} entries at (possible) kinks"
    return Witness(
        name=f"inner-product identity <u, vjp(x, v)> = <v, J u> ({VJP_PAIRS} random pairs and one along "
        f"vjp(x, v), seed {seed})",
        passed=n_fail == 0,
        diagnosis=diagnosis,
        max_abs=worst,
        max_rel=max_rel,
        n_failed=n_fail,
        n_entries=n_pairs,
        detail=detail,
    )


# --------------------------------------------------------------------------- sampled entries


def sample_columns(layout: Layout, rng, zeros=None) -> np.ndarray:
    """Flat indices of the array's entries to check (sorted, unique); up to :data:`SAMPLE_AT_ZERO`
    of ``zeros`` (entries exactly 0, where kinks sit) are added, so that a kink convention is checked."""
    xs = layout.in_shape
    K = int(np.prod(xs, dtype=int))
    if layout.batch is not None and layout.batched_input and len(xs) >= 2:
        N, per = xs[0], K // xs[0]
        samples = np.sort(rng.choice(N, size=min(N, SAMPLE_SAMPLES), replace=False))
        k_per = max(1, SAMPLE_ENTRIES // len(samples))
        picked: list[int] = []
        for s in samples:
            picked.extend(int(s) * per + rng.choice(per, size=min(per, k_per), replace=False))
            if layout.labels is not None and len(xs) == 2:
                picked.append(int(s) * per + int(layout.labels[s]))
        cols = np.asarray(picked)
    else:
        square = len(xs) == 2 and xs[0] == xs[1] > 1  # half the budget: each entry brings its partner
        cols = rng.choice(K, size=min(K, SAMPLE_ENTRIES // (2 if square else 1)), replace=False)
    if zeros is not None and len(zeros):
        cols = np.concatenate([cols, rng.choice(zeros, size=min(len(zeros), SAMPLE_AT_ZERO), replace=False)])
    if len(xs) == 2 and xs[0] == xs[1] > 1:
        i, j = np.unravel_index(cols, xs)
        cols = np.concatenate([cols, np.ravel_multi_index((j, i), xs)])
    return np.unique(cols)


class Sampled:
    """The sampled witness of one gradient: verdict, diagnosis and the entries it compared."""

    def __init__(
        self,
        passed,
        diagnosis,
        factor,
        notes,
        witness,
        worst,
        kinks,
        convention,
        summary_line,
        offset: float | None = None,
    ):
        self.passed, self.diagnosis, self.factor, self.notes = passed, diagnosis, factor, notes
        self.witness, self.worst, self.kinks, self.convention = witness, worst, kinks, convention
        self.summary_line = summary_line
        self.offset = offset  # the constant of an ``off_at_label`` diagnosis, else None


def sampled(f_flat, vjp_flat, layout: Layout, tol: Tolerance, seed, step, maxiter, top_k, zeros=None) -> Sampled:
    """Check sampled entries of ``g = vjp(x, v)`` against ``(v J)_j`` (see the module docstring).

    ``(v J)_j`` is the derivative of the scalar ``<v, f>`` along entry ``j``, one finite
    difference per sampled entry with scipy's error estimate. A failing claim is then matched
    against the hypotheses of :func:`.diagnosis.diagnose`: ``J[j, j]`` from the finite
    differences of the sampled outputs, ``J v`` from one difference along ``v``.
    """
    rng = np.random.default_rng([seed, 11])
    M, K = layout.shape
    v = rng.standard_normal(M) if M > 1 else np.ones(1)  # a scalar f: the gradient itself
    g = vjp_flat(v)
    cols = sample_columns(layout, rng, zeros)

    def scatter(which, t):
        d = np.zeros(K)
        d[which] = t
        return d

    square = tuple(layout.out_shape) == tuple(layout.in_shape)

    def along_entries(direction, which, with_sub=False):
        """``(v J)_j`` for ``j`` in ``which`` (and, with_sub, ``J[cols, cols]`` from the same evaluations)."""

        def h(t):
            y = f_flat(scatter(which, t))
            return np.concatenate([[dot(v, y)], y[which]]) if with_sub else np.atleast_1d(dot(v, y))

        r = fd_jacobian(h, np.zeros(len(which)), initial_step=step, maxiter=maxiter, step_direction=direction)
        finite_or_refuse(
            r, "sampled finite differences", Layout(layout.in_shape, (), None, name=layout.name), cols=which
        )
        if direction:
            succeeded[direction] = r.success[0]
        return r.df[0], r.error[0], (r.df[1:] if with_sub else None)

    succeeded: dict = {}  # scipy's success flags of the last one-sided run per direction
    n, nerr, sub = along_entries(0, cols, with_sub=square)
    a = g[cols]
    top = float(np.abs(n).max()) if n.size else 0.0

    def bound_of(num, err):  # a gradient entry: measured against its own size (Tolerance)
        return tol.bound(num, err, top=top)

    bound = bound_of(n, nerr)
    fail = np.abs(a - n) > bound
    kink = np.zeros_like(fail)
    convention, left, right = None, None, None
    loose = tol.err_factor * nerr > (tol.atol + tol.rtol) * np.abs(n) + tol.noise * top
    doubt = np.flatnonzero(fail | loose)
    if doubt.size > KINK_PROBE_FIRST:
        # probe a few doubtful entries first: when none of them sits at a kink, the failures are not
        # kinks (this can only leave an entry failing, never excuse one)
        first = rng.choice(doubt, size=KINK_PROBE_FIRST, replace=False)
        lo, elo, _ = along_entries(-1, cols[first])
        hi, ehi, _ = along_entries(1, cols[first])
        diverges = (~succeeded[-1] & (elo > np.maximum(1.0, np.abs(hi)))) | (
            ~succeeded[1] & (ehi > np.maximum(1.0, np.abs(lo)))
        )
        if not np.any((np.abs(lo - hi) > bound[first]) | diverges):
            doubt = np.zeros(0, dtype=int)
    if doubt.size:
        nL, eL, _ = along_entries(-1, cols[doubt])
        nR, eR, _ = along_entries(1, cols[doubt])
        bL, bR = bound_of(nL, eL), bound_of(nR, eR)
        ad = a[doubt]
        # a side that did not converge and whose error exceeds the other side's size: f jumps there, and
        # the claim must be the converged side's derivative, judged by that side's own size (as in
        # :func:`.diagnosis.analyse_full`), not "between" a side whose error estimate excuses anything
        left_div = ~succeeded[-1] & (eL > np.maximum(1.0, np.abs(nR)))
        right_div = ~succeeded[1] & (eR > np.maximum(1.0, np.abs(nL)))
        jump = left_div ^ right_div
        differ = (np.abs(nL - nR) > bL + bR) | jump
        slack = np.maximum(bL, bR)
        between = (ad >= np.minimum(nL, nR) - slack) & (ad <= np.maximum(nL, nR) + slack)
        if jump.any():
            jL = tol.bound(nL, eL, top=float(np.abs(nL[~left_div]).max(initial=0.0)))
            jR = tol.bound(nR, eR, top=float(np.abs(nR[~right_div]).max(initial=0.0)))
            between = np.where(jump, np.where(left_div, np.abs(ad - nR) <= jR, np.abs(ad - nL) <= jL), between)
        k = differ & between
        kink[doubt] = k
        # an entry the central difference fails is judged with a tolerance no looser than the central one's
        b0, f0 = bound[doubt], fail[doubt]
        bL2, bR2 = np.where(f0, np.minimum(bL, b0), bL), np.where(f0, np.minimum(bR, b0), bR)
        fail[doubt] = np.where(differ, ~between, (np.abs(ad - nL) > bL2) & (np.abs(ad - nR) > bR2))
        left, right = np.zeros_like(n), np.zeros_like(n)
        left[doubt], right[doubt] = nL, nR
        if k.any():
            convention = describe_convention(ad, nL, nR, bL, bR, k)
    fail &= ~kink
    what = (
        f"{len(cols)} of {K} entries of {layout.gname} = vjp(v) for a random cotangent v"
        + (
            f" (in {len(np.unique(np.unravel_index(cols, layout.in_shape)[0]))} of {layout.batch} samples)"
            if layout.batch is not None and layout.batched_input
            else ""
        )
        + f" against finite differences of <v, f> (CS231n's grad_check_sparse idea), seed {seed}"
    )
    notes = []
    factor = offset = None
    if not fail.any():
        passed, diagnosis = True, ("kink" if kink.any() else "rounding")
    else:
        passed = False
        hyp = {}
        if square:
            hyp["diagonal_only"] = v[cols] * np.diag(sub)
            if layout.per_sample or len(layout.in_shape) != 2 or layout.in_shape[0] != layout.in_shape[1]:
                jv = fd_jacobian(lambda t: f_flat(t[0] * v), np.zeros(1), initial_step=step, maxiter=maxiter)
                finite_or_refuse(jv, "finite difference along v", layout)
                hyp["transposed"] = jv.df[:, 0][cols]
        xs = layout.in_shape
        if "transposed" not in hyp and len(xs) == 2 and xs[0] == xs[1] > 1:
            i, j = np.unravel_index(cols, xs)
            partner = np.searchsorted(cols, np.ravel_multi_index((j, i), xs))
            hyp["transposed"] = n[partner]
        label_mask = None
        if layout.labels is not None and M == 1 and len(xs) == 2:
            i, j = np.unravel_index(cols, xs)
            label_mask = j == np.asarray(layout.labels)[i]
        diagnosis, factor, notes, offset = diagnose(a, n, bound, ~kink, hyp, layout.batch, label_mask)
        if diagnosis == "mismatch":
            notes.append(f"{int(fail.sum())} of the {len(cols)} checked entries are beyond tolerance")
            if layout.batch is not None and layout.batched_input:
                rows = np.unravel_index(cols[fail], xs)[0]
                notes.append(
                    f"failing entries sit in {len(np.unique(rows))} of the "
                    f"{len(np.unique(np.unravel_index(cols, xs)[0]))} checked samples"
                )
    diff = np.abs(a - n)
    rel = relative(a, n, tol.atol)
    live = ~kink
    wit = Witness(
        name=f"sampled finite differences (scipy.differentiate.jacobian, initial step {step:g}): "
        f"{len(cols)} of {K} entries",
        passed=passed,
        diagnosis=diagnosis,
        max_abs=float(diff[live].max()) if live.any() else 0.0,
        max_rel=float(rel[live].max()) if live.any() else 0.0,
        n_failed=int(fail.sum()),
        n_entries=len(cols),
    )

    def entry(t, note=""):
        c = int(cols[t])
        e = Entry(
            row=0,
            column=c,
            analytic=float(a[t]) + 0.0,
            numeric=float(n[t]) + 0.0,
            abs_error=float(diff[t]),
            rel_error=float(rel[t]),
            tolerance=float(bound[t]),
            fd_error=float(nerr[t]),
            passed=not fail[t],
            where=index_name(layout.gname, c, layout.in_shape),
            output="",
        )
        if layout.batch is not None and layout.batched_input:
            e.sample = int(np.unravel_index(c, layout.in_shape)[0])
        if note and left is not None:
            e.left, e.right, e.note = float(left[t]), float(right[t]), note
        return e

    key = np.where(live, (diff - bound) if not passed else diff, -np.inf)
    order = [t for t in np.argsort(-key, kind="stable")[:top_k] if live[t]]
    worst = [entry(t) for t in order]
    kinks = [entry(t, "kink") for t in np.flatnonzero(kink)[:top_k]]
    return Sampled(passed, diagnosis, factor, notes, wit, worst, kinks, convention, what, offset)


def corroborate(diagnosis, factor, pairs, layout: Layout, offset=None) -> bool:
    """Does a diagnosis named from sampled entries also explain the inner-product identity?

    Each pair gives ``lhs = <u, vjp(v)>`` and ``rhs = <v, J u>``; the slip predicts ``lhs``:
    ``-rhs`` (sign flipped), ``c rhs`` (a factor), ``rhs + d v sum_k u[k, y_k]`` (off at the label
    by ``d``). A sampled pattern that the identity contradicts is not the whole story."""
    if diagnosis not in ("sign_flipped", "constant_factor", "missing_batch_scaling", "off_at_label"):
        return True
    for u, v, lhs, rhs, bound in pairs:
        if diagnosis == "sign_flipped":
            pred, slack = -rhs, bound
        elif diagnosis == "off_at_label":
            N, C = layout.in_shape
            at_labels = float(u.reshape(N, C)[np.arange(N), np.asarray(layout.labels)].sum())
            pred, slack = rhs + offset * float(v[0]) * at_labels, bound
        else:
            pred, slack = factor * rhs, bound * max(1.0, abs(factor))
        if abs(lhs - pred) > slack:
            return False
    return True
