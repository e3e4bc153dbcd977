"""The public checks and adapters.

::

    check_jacobian(f, jacobian, x)            f: x -> y; jacobian(x) -> J (m, n) numerator layout
    check_vjp(f, vjp, x)                      vjp(x, v) -> v J, of x's exact shape
    check_batch_jacobian(f, jacobians, X)     X (N, d1, ..., dk); per-sample Jacobians (N, m, n)
    check_batch_vjp(f, vjp, X)                vjp(X, G) of X's shape, G of Y's shape (or a scalar
                                              cotangent when f returns the batch loss)
    check_loss(loss_fn, X, y=None)            CS231n loss: loss, dx = loss_fn(X, y); labels drawn
                                              at random when not given
    from_cs231n(forward, backward, *params, **kwargs) -> (f, vjp)
    from_cs231n_loss(loss_fn, y) -> (f, vjp)

Every check first probes its preconditions (:mod:`.probes`); a failed probe is a ``refused``
report, never a pass. A ``vjp`` made by :func:`from_cs231n` is checked for **every** gradient
its ``backward`` returns (``dx``, then one per array parameter, in order), each in its own
section with its own witnesses.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import numpy as np

from .._validation import as_float_array, check_positive_int, eps_of, float_dtype_of, is_integer
from .catalogue_references import (
    BINARY_LOSS_REFERENCES,
    KINK_RULES,
    LOSS_REFERENCES,
    binary_labels_of,
    layernorm_layer,
    loss_options,
)
from .image_references import IMAGE_REFERENCES, build_layer, tie_sums
from .diagnosis import EXPLAIN, REFUSED_EXPLAIN, Layout, analyse_full, entries, to_full, witness
from .probes import (
    LINEARITY_A,
    SPLIT_DENSITY,
    Calls,
    Refusal,
    as_tuple,
    check_shape,
    probe_additivity,
    probe_determinism,
    probe_layout,
    probe_linearity,
    probe_unchanged,
    same_bits,
)
from .report import CheckReport, Probe, Tolerance, nice
from .witnesses import (
    FD_STEPS,
    FULL_JACOBIAN_MAX_COLUMNS,
    FULL_JACOBIAN_MAX_ENTRIES,
    REFERENCES,
    SAMPLED_MAXITER,
    corroborate,
    finite_or_refuse,
    identity,
    sampled,
)
from ..fd import fd_jacobian

#: How many of the worst entries a report lists.
TOP_K = 5
#: The inner-product identity on a large float32 claim with a float64 witness is held to this many eps.
IDENTITY_EPS_FACTOR = 1000.0


# --------------------------------------------------------------------------- adapters


class CS231nPair:
    """``forward(x, *params, **kwargs) -> (out, cache)`` and ``backward(dout, cache) -> dx`` or
    ``(dx, d<param>, ...)``. Float array parameters (positional, then keyword, in order) are the
    arrays whose gradients ``backward`` returns after ``dx``; other parameters (a ``bn_param``
    dict, integer labels) are passed through unchanged."""

    def __init__(self, forward, backward, params, kwargs):
        if not callable(forward) or not callable(backward):
            raise TypeError("from_cs231n: forward and backward must be callable")
        self.forward, self.backward = forward, backward
        self.params, self.kwargs = tuple(params), dict(kwargs)
        try:
            sig = list(inspect.signature(forward).parameters)[1:]
        except (TypeError, ValueError):
            sig = []
        self.pos_names = [
            sig[i] if i < len(sig) and not sig[i].startswith("*") else f"param{i + 1}" for i in range(len(self.params))
        ]
        args = list(zip(self.pos_names, self.params)) + list(self.kwargs.items())
        self.arg_names = [n for n, _ in args]
        self.diff = [k for k, (_, v) in enumerate(args) if isinstance(v, np.ndarray) and v.dtype.kind == "f"]

    def call_forward(self, x, args):
        n = len(self.params)
        return self.forward(x, *args[:n], **dict(zip(self.arg_names[n:], args[n:])))

    @property
    def fname(self):
        return getattr(self.forward, "__name__", "forward")

    @property
    def bname(self):
        return getattr(self.backward, "__name__", "backward")


def from_cs231n(forward, backward, *params, **kwargs):
    """``(f, vjp)`` from a CS231n-style pair.

    ``forward(x, *params, **kwargs) -> (out, cache)``, ``backward(dout, cache) -> dx`` or
    ``(dx, dw, ...)``. ``f(x) = out`` and ``vjp(x, dout) = dx`` (the forward is re-run for the
    cache, so no state is shared between calls). Passed to :func:`check_vjp` or
    :func:`check_batch_vjp`, the pair is checked for every gradient ``backward`` returns:
    ``dx`` and one per float array parameter, in order, each in its own report section.
    """
    pair = CS231nPair(forward, backward, params, kwargs)

    def f(x):
        return _first(pair.call_forward(x, list(pair.params) + list(pair.kwargs.values())), "forward")

    def vjp(x, dout):
        out = pair.call_forward(x, list(pair.params) + list(pair.kwargs.values()))
        if not (isinstance(out, tuple) and len(out) == 2):
            raise TypeError(f"forward: expected a pair (out, cache), got {type(out).__name__}")
        return _first(backward(dout, out[1]), "backward")

    f.__name__, vjp.__name__ = pair.fname, pair.bname
    f.cs231n_pair = vjp.cs231n_pair = pair
    return f, vjp


def from_cs231n_loss(loss_fn, y):
    """``(f, vjp)`` from a CS231n loss ``loss, dx = loss_fn(x, y)``: ``f(x) = loss`` and
    ``vjp(x, g) = g * dx`` (``g`` a scalar cotangent)."""
    if not callable(loss_fn):
        raise TypeError("from_cs231n_loss: loss_fn must be callable")

    def f(x):
        return _first(loss_fn(x, y), "loss_fn")

    def vjp(x, g):
        out = loss_fn(x, y)
        if not (isinstance(out, tuple) and len(out) == 2):
            raise TypeError(f"loss_fn: expected a pair (loss, dx), got {type(out).__name__}")
        return g * np.asarray(out[1])

    f.__name__ = vjp.__name__ = getattr(loss_fn, "__name__", "loss")
    f.cs231n_loss = vjp.cs231n_loss = (loss_fn, y)
    return f, vjp


def _first(result, what):
    if isinstance(result, tuple):
        if not result:
            raise TypeError(f"{what}: returned an empty tuple")
        return result[0]
    return result


# --------------------------------------------------------------------------- problems


def _label(fn, default):
    name = getattr(fn, "__name__", default)
    return default if not isinstance(name, str) or name.startswith("<") else name


class _Problem:
    """What is differentiated: ``names`` (``x`` first), ``arrays`` and the guarded calls."""

    def __init__(self, x, f=None, vjp=None, jac=None):
        self.names, self.arrays = ["x"], [x]
        self.fixed = []
        self.f_user, self.vjp_user, self.jac_user = f, vjp, jac
        self.flabel = _label(f, "f")
        self.vlabel = _label(vjp, "vjp") if vjp is not None else None
        self.labels = None

    def f(self, calls, arrays):
        return calls.call(self.f_user, self.flabel, [arrays[0]], ["x"])

    def vjp(self, calls, arrays, v):
        return as_tuple(calls.call(self.vjp_user, self.vlabel, [arrays[0], v], ["x", "dout"]))


class _PairProblem(_Problem):
    def __init__(self, x, pair: CS231nPair, dtype):
        super().__init__(x)
        self.pair = pair
        self.flabel, self.vlabel = pair.fname, pair.bname
        self.args = list(pair.params) + list(pair.kwargs.values())
        for k in pair.diff:
            self.names.append(pair.arg_names[k])
            self.arrays.append(as_float_array(self.args[k], pair.arg_names[k], dtype))

    def _args(self, arrays):
        args = list(self.args)
        for k, a in zip(self.pair.diff, arrays[1:]):
            args[k] = a
        return args

    def _forward(self, calls, arrays, label):
        out = calls.call(
            lambda x, *a: self.pair.call_forward(x, list(a)),
            label,
            [arrays[0]] + self._args(arrays),
            ["x"] + self.pair.arg_names,
        )
        if not (isinstance(out, tuple) and len(out) == 2):
            raise Refusal("not_real", f"{self.flabel} returned {type(out).__name__}, expected a pair (out, cache)")
        return out

    def f(self, calls, arrays):
        return self._forward(calls, arrays, self.flabel)[0]

    def vjp(self, calls, arrays, v):
        cache = self._forward(calls, arrays, self.flabel)[1]
        return as_tuple(calls.call(self.pair.backward, self.vlabel, [v, cache], ["dout", "cache"], deep=("cache",)))


class _LossProblem(_Problem):
    """A CS231n loss; ``binary``: ``y`` holds one yes/no label per score, not a class per sample."""

    def __init__(self, x, loss_fn, y, binary=False):
        super().__init__(x)
        self.loss_fn, self.y = loss_fn, y
        self.flabel = self.vlabel = getattr(loss_fn, "__name__", "loss")
        # class labels (N,) in [0, C) (never binary labels) name the label entries for the diagnosis ``off_at_label``; other
        # targets (None, regression values) are passed to loss_fn as they are, with no label diagnosis
        t = None
        if isinstance(y, (np.ndarray, list, tuple)):
            try:
                t = np.asarray(y)
            except (ValueError, TypeError):  # a ragged list: not labels
                t = None
        is_labels = (
            not binary
            and t is not None
            and t.dtype.kind in "iu"
            and x.ndim == 2
            and t.shape == (x.shape[0],)
            and (t.size == 0 or (t.min() >= 0 and t.max() < x.shape[1]))
        )
        self.labels = tuple(int(v) for v in t) if is_labels and t is not None else None

    def _call(self, calls, arrays):
        out = calls.call(self.loss_fn, self.flabel, [arrays[0], self.y], ["x", "y"])
        if not (isinstance(out, tuple) and len(out) == 2):
            raise Refusal("not_real", f"{self.flabel} returned {type(out).__name__}, expected a pair (loss, dx)")
        return out

    def f(self, calls, arrays):
        return self._call(calls, arrays)[0]

    def vjp(self, calls, arrays, v):
        dx = calls.array(self._call(calls, arrays)[1], self.flabel, "dx")
        return (np.asarray(v) * dx,)


def _labels(y, x, num_classes, seed):
    """Labels given (validated) or drawn from ``default_rng(seed)`` in ``[0, C)``."""
    if x.ndim != 2:
        raise ValueError(f"x: a CS231n loss takes scores of shape (N, C), got shape {x.shape}")
    N, C = x.shape
    if num_classes is not None:
        if not is_integer(num_classes) or not 1 <= num_classes <= C:
            raise ValueError(
                f"num_classes: expected an integer in [1, {C}] (x has {C} columns of scores), got {num_classes!r}"
            )
        C = int(num_classes)
    if y is None:
        return np.random.default_rng([seed, 3]).integers(0, C, size=N)
    y = np.asarray(y)
    if y.dtype.kind not in "iu" or y.shape != (N,):
        raise ValueError(f"y: expected integer labels of shape ({N},), got dtype {y.dtype}, shape {y.shape}")
    if y.size and (y.min() < 0 or y.max() >= C):
        raise ValueError(f"y: expected labels in [0, {C}), got values in [{y.min()}, {y.max()}]")
    return y.copy()


def _binary_labels(y, x, key, seed):
    """Binary labels given (validated as the library reads them, passed on unchanged: bools stay bools)
    or drawn from ``default_rng(seed)`` as 0.0/1.0 of ``x``'s shape ``(N, C)``."""
    if x.ndim != 2:
        raise ValueError(f"x: a CS231n loss takes scores of shape (N, C), got shape {x.shape}")
    if y is None:
        return np.random.default_rng([seed, 3]).integers(0, 2, size=x.shape).astype(np.float64)
    binary_labels_of(key, y, x.shape)
    return np.array(y, copy=True)


def _reference_kwargs(reference, reference_kwargs, problem, x, batched):
    """Check the keyword arguments of a layer-norm or loss reference (the image layers check theirs with
    :func:`.image_references.build_layer`) before the checked code is called; a loss reference gets the
    problem's labels as ``y``. Returns the keyword arguments the reference is called with."""
    is_loss = isinstance(problem, _LossProblem)
    if reference in LOSS_REFERENCES:
        if not is_loss:
            raise ValueError(
                f"reference={reference!r} is a loss: check it with check_loss(loss_fn, X, y, "
                f"reference={reference!r}), or check_batch_vjp on from_cs231n_loss(loss_fn, y)"
            )
        kw = dict(loss_options(reference, reference_kwargs), y=problem.y)
        REFERENCES[reference][1 if batched else 0](x, kw)  # the labels and x as the library reads them
        return kw
    if reference is not None and is_loss:
        raise ValueError(
            f"reference={reference!r}: a loss is checked against a loss reference, one of {list(LOSS_REFERENCES)}"
        )
    if reference == "layernorm":
        layernorm_layer(x, reference_kwargs, batched)
    return reference_kwargs


# --------------------------------------------------------------------------- the check


def _dtype_of(x, dtype):
    return np.dtype(dtype) if dtype is not None else float_dtype_of(x)


def _validate(x, dtype, batched, reference, top_k, seed, atol, rtol, err_factor):
    dtype = _dtype_of(x, dtype)
    x = as_float_array(x, "x", dtype)
    if x.size == 0:
        raise ValueError(f"x: expected a non-empty array, got shape {x.shape}")
    if batched and x.ndim < 2:
        raise ValueError(f"X: expected a batch of shape (N, d1, ..., dk) with N >= 1, got shape {x.shape}")
    key = None
    if reference is not None:
        key = str(reference).lower().replace("-", "_")
        if key not in REFERENCES:
            raise ValueError(f"reference: expected one of {sorted(REFERENCES)}, got {reference!r}")
    check_positive_int(top_k, "top_k", minimum=0)
    check_positive_int(seed, "seed", minimum=0)
    tol = Tolerance.for_dtype(dtype, atol=atol, rtol=rtol, err_factor=err_factor)
    return x, dtype, key, tol


def _run(
    kind,
    problem: _Problem,
    *,
    claimed=None,
    batched,
    reference,
    reference_kwargs,
    dtype,
    tol,
    seed,
    top_k,
    name,
    cotangent_shape,
    gradient_shape,
    full,
):
    x = problem.arrays[0]
    calls = Calls()
    probes: list = []
    rname = name or (problem.vlabel if problem.vlabel else getattr(claimed, "__name__", "jacobian"))
    base = dict(
        name=rname,
        kind=kind,
        input_shape=tuple(x.shape),
        dtype=dtype.name,
        tolerance=tol,
        seed=seed,
        batch_size=x.shape[0] if batched else None,
    )
    y = None
    if reference in IMAGE_REFERENCES:  # every keyword checked before the checked code is called
        build_layer(reference, x, reference_kwargs, batched)
    reference_kwargs = _reference_kwargs(reference, reference_kwargs, problem, x, batched)
    try:
        y, p = _probe_f(calls, problem, dtype)
        probes.extend(p)
        ct_shape = tuple(cotangent_shape) if cotangent_shape is not None else y.shape
        if int(np.prod(ct_shape, dtype=int)) != y.size:
            raise ValueError(
                f"cotangent_shape: expected {y.size} entries to match f's output {y.shape}, got {ct_shape}"
            )
        gshapes = [tuple(a.shape) for a in problem.arrays]
        if gradient_shape is not None:
            gshapes[0] = tuple(gradient_shape)
            if int(np.prod(gshapes[0], dtype=int)) != x.size:
                raise ValueError(f"gradient_shape: expected {x.size} entries (x has shape {x.shape}), got {gshapes[0]}")
        first_vjp = None
        if problem.vlabel is not None:
            vprobes, first_vjp = _probe_vjp(calls, problem, ct_shape, gshapes, dtype, seed)
            probes.extend(vprobes)
        raw = None
        if claimed is not None:
            out, p = _probe_jac(calls, claimed, x)
            if len(out) != 1:
                raise Refusal(
                    "wrong_count", f"{_label(claimed, 'jacobian')} returned {len(out)} arrays, expected one Jacobian"
                )
            raw = out[0]
            probes.append(p)
            label = _label(claimed, "jacobian")
            probes.append(probe_layout(calls, claimed, label, [x], ["x"], out, dtype, ["J"]))
        probes.append(
            Probe(
                "no call changes its arguments",
                True,
                f"{calls.count} calls so far, each on copies compared bitwise afterwards",
            )
        )
        witness_dtype = _witness_dtype(calls, problem, y, dtype, tol)
        if tol == Tolerance.for_dtype(dtype, err_factor=tol.err_factor):  # the defaults: no atol=, rtol= given
            tol = _identity_tol(tol, dtype, witness_dtype)
            base["tolerance"] = tol
        sections = []
        for i in range(len(problem.names)):
            sections.append(
                _section(
                    problem,
                    i,
                    calls,
                    y,
                    ct_shape,
                    gshapes[i],
                    claimed,
                    raw,
                    batched,
                    reference if i == 0 else None,
                    reference_kwargs,
                    dtype,
                    witness_dtype,
                    tol,
                    seed,
                    top_k,
                    full,
                    base,
                )
            )
        # a mutation or exception during the witnesses' calls is raised as a Refusal above; a result
        # that changed since the first calls (a counter, a global) is one below
        probes.append(
            probe_unchanged(
                calls, lambda *a: problem.f(calls, list(a)), problem.flabel, problem.arrays, problem.names, [y], ["out"]
            )
        )
        if first_vjp is not None:
            u, g_u = first_vjp
            probes.append(
                probe_unchanged(
                    calls,
                    lambda v: problem.vjp(calls, problem.arrays, v),
                    problem.vlabel,
                    [u],
                    ["dout"],
                    g_u,
                    ["d" + n for n in problem.names],
                )
            )
    except Refusal as exc:
        probes.append(Probe(exc.key.replace("_", " "), False, exc.text))
        return CheckReport(
            verdict="refused",
            diagnosis=exc.key,
            summary=REFUSED_EXPLAIN,
            cause=exc.text,
            output_shape=tuple(y.shape) if y is not None else None,
            probes=probes,
            **base,
        )
    return _combine(sections, probes, y, base, calls)


def _probe_f(calls, problem, dtype):
    fn = lambda *a: problem.f(calls, list(a))  # noqa: E731
    out, p = probe_determinism(calls, fn, problem.flabel, problem.arrays, problem.names, "out")
    if len(out) != 1:
        raise Refusal(
            "wrong_count",
            f"{problem.flabel} returned {len(out)} values, expected one array (a CS231n "
            f"forward returning (out, cache) goes through from_cs231n)",
        )
    if out[0].dtype.kind != "f":
        raise Refusal(
            "not_real",
            f"{problem.flabel} returned out of dtype {out[0].dtype}, expected floating point: a function with "
            f"integer or boolean values is piecewise constant, and finite differences of it measure its jumps",
        )
    return out[0], [p, probe_layout(calls, fn, problem.flabel, problem.arrays, problem.names, out, dtype, ["out"])]


def _probe_vjp(calls, problem, ct_shape, gshapes, dtype, seed) -> tuple:
    rng = np.random.default_rng([seed, 5])
    u = rng.standard_normal(ct_shape).astype(dtype)
    w = rng.standard_normal(ct_shape).astype(dtype)
    label = problem.vlabel
    gnames = ["d" + n for n in problem.names]

    def run(v):
        out = problem.vjp(calls, problem.arrays, v)
        if len(out) != len(problem.names):
            want = ", ".join(gnames)
            raise Refusal(
                "wrong_count",
                f"{label} returned {len(out)} array(s), expected {len(problem.names)} "
                f"({want}: one gradient for x and one for each float array argument)",
            )
        res = []
        for g, gname, pname, shape in zip(out, gnames, problem.names, gshapes):
            g = calls.array(g, label, gname)
            check_shape(g.shape, shape, gname, pname, label)
            res.append(g)
        return res

    g_u = run(u)
    again = run(u)
    for gname, a, b in zip(gnames, g_u, again):
        if not same_bits(a, b):
            d = np.abs(a.astype(np.float64) - b.astype(np.float64))
            raise Refusal(
                "not_deterministic",
                f"{label} is not deterministic: two calls with the same input and "
                f"cotangent differ in {gname} by up to {d.max():.3g} (dropout "
                f"without a fixed seed?)",
            )
    probes = [
        Probe(f"{label} is deterministic", True, "two calls with the same input and cotangent are bitwise equal"),
        Probe(f"{label} returns exact shapes", True, ", ".join(f"{g} {tuple(s)}" for g, s in zip(gnames, gshapes))),
        probe_layout(
            calls, lambda *a: problem.vjp(calls, list(a), u), label, problem.arrays, problem.names, g_u, dtype, gnames
        ),
    ]
    g_w = run(w)
    g_mix = run((LINEARITY_A * u.astype(np.float64) + w).astype(dtype))
    probes.append(probe_linearity(g_u, g_w, g_mix, dtype, gnames, label))
    if u.size > 1:  # a scalar output has no sparse part
        m = rng.random(u.size) < SPLIT_DENSITY
        m[rng.integers(u.size)] = True  # never all zeros ...
        m[0] &= not m.all()  # ... nor all ones
        m = m.reshape(ct_shape)
        parts = (run(np.where(m, u, 0).astype(dtype)), run(np.where(m, 0, u).astype(dtype)))
        probes.append(probe_additivity(g_u, parts, dtype, gnames, label))
    return probes, (u, g_u)


def _probe_jac(calls, claimed, x):
    label = _label(claimed, "jacobian")
    return probe_determinism(calls, claimed, label, [x], ["x"], "J")


def _witness_dtype(calls, problem, y, dtype, tol):
    """float64 when ``f`` evaluated on float64 copies returns float64 close to its float32 value."""
    if dtype == np.float64:
        return np.dtype(np.float64)
    y64 = np.asarray(problem.f(calls, [a.astype(np.float64) for a in problem.arrays]))
    if y64.dtype != np.float64 or y64.shape != y.shape or not np.all(np.isfinite(y64)):
        return dtype
    scale = float(np.abs(y64).max()) if y64.size else 0.0
    return (
        np.dtype(np.float64)
        if np.all(np.abs(y64 - y) <= tol.atol * max(scale, 1.0) + tol.rtol * np.abs(y64))
        else dtype
    )


def _claim_vjp(raw, layout: Layout):
    """``v -> v J`` from a claimed Jacobian too large to expand (per-sample blocks or ``(M, K)``)."""
    M, K = layout.shape
    A = np.asarray(raw, dtype=np.float64)
    N = layout.samples
    if N is not None:
        m, n = M // N, K // N
        ys, xs = layout.out_shape[1:], layout.in_shape[1:]
        if A.shape == (N,) + ys + xs:
            B = A.reshape(N, m, n)
            return (lambda v: np.einsum("km,kmn->kn", v.reshape(N, m), B).reshape(-1)), None
        if A.shape == (N,) + xs + ys and xs != ys:
            B = A.reshape(N, n, m)
            return (
                lambda v: np.einsum("km,knm->kn", v.reshape(N, m), B).reshape(-1)
            ), f"the claimed Jacobian has shape {A.shape}, expected {(N,) + ys + xs}"
    full, msg = to_full(raw, layout, "jacobian")
    return (lambda v: v @ full), msg


def _section(
    problem,
    i,
    calls,
    y,
    ct_shape,
    gshape,
    claimed,
    raw,
    batched,
    reference,
    reference_kwargs,
    dtype,
    wdtype,
    tol,
    seed,
    top_k,
    full,
    base,
):
    pname = problem.names[i]
    arrays = problem.arrays
    p0 = arrays[i]
    layout = Layout(
        tuple(p0.shape),
        tuple(y.shape),
        arrays[0].shape[0] if batched else None,
        name=pname,
        batched_input=i == 0,
        labels=problem.labels,
    )
    M, K = layout.shape
    warrays = [a.astype(wdtype) for a in arrays]
    base_i = warrays[i].astype(np.float64).reshape(-1)

    def f_flat(d):
        args = list(warrays)
        args[i] = (base_i + d).astype(wdtype).reshape(p0.shape)
        try:
            out = calls.array(problem.f(calls, args), problem.flabel, "out")
        except Refusal as exc:
            if exc.key != "not_finite":
                raise
            raise Refusal(
                "witness_not_finite",
                f"the finite differences need {problem.flabel} near the point, and "
                f"it is not finite there, within a step of {step:g} of {pname} "
                f"({exc.text.split(': ', 1)[1]})",
            ) from None
        if out.shape != y.shape:
            raise Refusal(
                "wrong_shape", f"{problem.flabel} returned out of shape {out.shape} near the point, {y.shape} at it"
            )
        return out.astype(np.float64).reshape(-1)

    def vjp_flat(v_flat):
        v = v_flat.reshape(ct_shape).astype(dtype)
        g = calls.array(problem.vjp(calls, arrays, v)[i], problem.vlabel, "d" + pname)
        check_shape(g.shape, gshape, "d" + pname, pname, problem.vlabel)
        return g.astype(np.float64).reshape(-1)

    step, maxiter = FD_STEPS[np.dtype(wdtype)]
    notes, witnesses = [], []
    small = M * K <= FULL_JACOBIAN_MAX_ENTRIES and K <= FULL_JACOBIAN_MAX_COLUMNS
    A = transposed_shape = None
    if claimed is not None and small:
        A, transposed_shape = to_full(raw, layout, _label(claimed, "jacobian"))
    elif claimed is None and small and full:
        A = np.stack([vjp_flat(e) for e in np.eye(M)])
        notes.append(
            f"the claimed Jacobian was assembled row by row from {M} {problem.vlabel} calls with unit cotangents"
        )
    sec = dict(base, gradient="d" + pname, input_shape=tuple(p0.shape), output_shape=tuple(y.shape))
    if A is not None:
        res = fd_jacobian(f_flat, np.zeros(K), initial_step=step, maxiter=maxiter)
        finite_or_refuse(res, "finite differences", layout)
        B, err = res.df.reshape(M, K), res.error.reshape(M, K)

        def one_sided():
            out = []
            for direction in (-1, 1):
                r = fd_jacobian(f_flat, np.zeros(K), initial_step=step, maxiter=maxiter, step_direction=direction)
                finite_or_refuse(r, "one-sided finite differences", layout)
                out.append(r)
            lo, hi = out
            return (
                lo.df.reshape(M, K),
                lo.error.reshape(M, K),
                hi.df.reshape(M, K),
                hi.error.reshape(M, K),
                lo.success.reshape(M, K),
                hi.success.reshape(M, K),
            )

        an = analyse_full(A, B, err, tol, layout, one_sided=one_sided, transposed_shape=transposed_shape)
        witnesses.append(
            witness(
                f"finite differences (scipy.differentiate.jacobian, initial step {step:g}), all {A.size} entries",
                A,
                B,
                an,
            )
        )
        ref_an, Rf = _reference(
            reference, reference_kwargs, arrays[0], y, batched, layout, A, an, tol, transposed_shape, notes, witnesses
        )
        idw = None
        if problem.vlabel is not None:
            idw = identity(f_flat, vjp_flat, M, K, tol, seed, step, maxiter, an.kink, layout)
            witnesses.append(idw)
        passed = all(w.passed for w in witnesses)
        diag_an = an if not an.passed else (ref_an if ref_an is not None and not ref_an.passed else None)
        if diag_an is not None:
            diagnosis, factor, dnotes = diag_an.diagnosis, diag_an.factor, diag_an.notes
        elif not passed:
            diagnosis, factor, dnotes = "mismatch", None, []
        else:
            diagnosis, factor, dnotes = an.diagnosis, None, an.notes
        summary = _explain(diagnosis, layout)
        if diag_an is ref_an and ref_an is not None and getattr(ref_an, "tie_sums", False):
            summary = (
                "at exact max-pooling ties the claimed gradients of the tied maximal elements do not add "
                "up to the upstream gradient (against the library's maxpool2d; see the notes)"
            )
        elif diag_an is ref_an and ref_an is not None:
            summary += (
                f" (against the library's {reference}; the finite differences agree with the claim, so f "
                f"itself may differ from {reference})"
            )
        if diag_an is None and not passed and idw is not None and not idw.passed:
            summary = "the inner-product identity <u, vjp(v)> = <v, J u> fails: " + idw.detail
        if factor is not None:
            summary += f"; factor {nice(factor)}"
        src = diag_an if diag_an is not None else an
        Bsrc = Rf if src is ref_an else B
        worst = entries(A, Bsrc, err if src is an else None, src, layout, ~src.kink, top_k, by_excess=not passed)
        kinks = entries(A, B, err, an, layout, an.kink, top_k, by_excess=False) if an.kink.any() else []
        return CheckReport(
            verdict="pass" if passed else "fail",
            diagnosis=diagnosis,
            summary=summary,
            factor=factor,
            convention=an.convention if an.kink.any() else None,
            witnesses=witnesses,
            worst=worst,
            kinks=kinks,
            notes=dnotes + notes,
            **sec,
        )
    # large: sampled entries of one VJP, and the inner-product identity
    vflat = vjp_flat
    if claimed is not None:
        vflat, transposed_shape = _claim_vjp(raw, layout)
        if transposed_shape:
            notes.append(transposed_shape)
    maxiter = min(maxiter, SAMPLED_MAXITER)
    s = sampled(f_flat, vflat, layout, tol, seed, step, maxiter, top_k, zeros=np.flatnonzero(p0.reshape(-1) == 0))
    witnesses.append(s.witness)
    if reference is not None:
        notes.append(f"the reference {reference} witness was skipped: the Jacobian has {M} x {K} entries")
    pairs = []
    idw = identity(
        f_flat,
        vflat,
        M,
        K,
        _identity_tol(tol, dtype, wdtype),
        seed,
        step,
        maxiter,
        None,
        layout,
        avoid=p0 == 0,
        pairs=pairs,
    )
    witnesses.append(idw)
    passed = all(w.passed for w in witnesses) and not transposed_shape
    if not corroborate(s.diagnosis, s.factor, pairs, layout, s.offset):
        s.notes.insert(
            0,
            f"the sampled entries look {s.diagnosis.replace('_', ' ')}, but the inner-product "
            f"identity over all entries disagrees: the slip is not only that",
        )
        s.diagnosis, s.factor = "mismatch", None
    diagnosis = s.diagnosis
    summary = _explain(diagnosis, layout)
    if transposed_shape and s.passed:
        diagnosis, summary = "transposed", EXPLAIN["transposed"]
    elif s.passed and not passed:
        diagnosis = "mismatch"
        summary = "the inner-product identity <u, vjp(v)> = <v, J u> fails: " + idw.detail
    if s.factor is not None:
        summary += f"; factor {nice(s.factor)}"
    return CheckReport(
        verdict="pass" if passed else "fail",
        diagnosis=diagnosis,
        summary=summary,
        factor=s.factor,
        convention=s.convention,
        witnesses=witnesses,
        worst=s.worst,
        kinks=s.kinks,
        notes=s.notes + notes,
        sampled=s.summary_line,
        **sec,
    )


def _identity_tol(tol: Tolerance, dtype, wdtype) -> Tolerance:
    """The identity's tolerance: for a float32 claim against a float64 witness, the witness adds no
    float32 noise, so ``<u, vjp(v)>`` is held to ``IDENTITY_EPS_FACTOR * eps(float32)`` (1.2e-4) of
    its size instead of ``10 sqrt(eps)`` (3.5e-3): one wrong sample in 128 moves it by about 1e-3.
    With the default ``atol``/``rtol``, every entry of such a check is held to the same (``_run``):
    the claim's own float32 rounding, a few eps per operation and up to ``sqrt(n)`` to ``n`` eps for
    a sum of ``n`` terms, stays below it for sums of up to about 1000 terms; 3.5e-3 passed a float32
    claim off by up to 0.7 %."""
    if np.dtype(dtype) == np.float32 and np.dtype(wdtype) == np.float64:
        r = min(tol.rtol, IDENTITY_EPS_FACTOR * eps_of(np.float32))
        return Tolerance(atol=min(tol.atol, r), rtol=r, err_factor=tol.err_factor, dtype=tol.dtype)
    return tol


def _explain(diagnosis, layout: Layout) -> str:
    if diagnosis == "transposed" and not layout.batched_input and len(layout.in_shape) == 2:
        g = layout.gname
        return f"{g} is the transpose of the right gradient: {g}[i, j] holds the value that belongs at {g}[j, i]"
    return EXPLAIN[diagnosis]


def _reference(key, reference_kwargs, x, y, batched, layout, A, an, tol, transposed_shape, notes, witnesses):
    if key is None:
        return None, None
    single, multi = REFERENCES[key]
    xr = x.astype(np.float64)
    y_ref, R = (multi if batched else single)(xr, dict(reference_kwargs or {}))
    y_ref = np.asarray(y_ref, dtype=np.float64)
    if y_ref.size != y.size:
        raise ValueError(
            f"reference={key!r}: the library's output has {y_ref.size} entries, f returned shape {y.shape}"
        )
    yr = y_ref.reshape(-1)
    fwd_diff = np.abs(y.astype(np.float64).reshape(-1) - yr)
    fwd_ok = bool(np.all(fwd_diff <= tol.bound(yr)))
    if not fwd_ok:
        notes.append(
            f"f differs from the library's {key} forward by up to {fwd_diff.max():.3e}: the reference "
            f"Jacobian describes a different function"
        )
    try:
        Rf, _ = to_full(R, layout, f"reference {key}")
    except Refusal as exc:
        raise ValueError(exc.text) from None
    ref_an = analyse_full(A, Rf, None, tol, layout, kink_mask=an.kink, transposed_shape=transposed_shape)
    if ref_an.passed and not fwd_ok:
        ref_an.passed, ref_an.diagnosis = False, "mismatch"
    if key == "maxpool2d" and A.shape == Rf.shape:
        rows, sums = tie_sums(x, reference_kwargs, batched, A, tol.atol + tol.rtol)
        if len(rows):
            ref_an.passed, ref_an.diagnosis, ref_an.tie_sums = False, "mismatch", True
            ref_an.notes.append(
                f"at {len(rows)} exact max-pooling tie(s) the claimed gradients of the tied maximal "
                f"elements add up to {nice(float(sums[0]))} (output entry {int(rows[0])}), not 1: "
                f"each lies between its one-sided derivatives, but a tie passes the upstream "
                f"gradient on once (the library gives it to the first maximum; the last one, or "
                f"a share to each, also passes), not to every tied element nor to none"
            )
    if not getattr(ref_an, "tie_sums", False) and an.kink.any() and np.any(an.kink & (np.abs(A - Rf) > ref_an.bound)):
        rule = KINK_RULES.get(
            key,
            "routes the gradient of a tie to the window's first maximal element (C order)"
            if key == "maxpool2d"
            else "takes the left derivative (the x <= 0 branch)",
        )
        notes.append(
            f"at the kink the library's {key} {rule}; the claimed value differs there, which is a convention, not a bug"
        )
    witnesses.append(
        witness(
            f"reference {key} (the library's own {'gradient' if key in LOSS_REFERENCES else 'Jacobian'})",
            A,
            Rf,
            ref_an,
            detail="forward matches" if fwd_ok else "forward DIFFERS",
        )
    )
    return ref_an, Rf


def _combine(sections, probes, y, base, calls) -> CheckReport:
    probes.append(Probe("witness calls left every argument unchanged", True, f"{calls.count} calls in all"))
    if len(sections) == 1:
        r = sections[0]
        r.probes = probes
        return r
    bad = [s for s in sections if s.verdict != "pass"]
    lead = bad[0] if bad else sections[0]
    verdict = "fail" if bad else "pass"
    names = ", ".join(s.gradient for s in sections)
    summary = (
        f"every gradient ({names}) agrees with its witnesses"
        if not bad
        else f"{', '.join(s.gradient for s in bad)} fail{'s' if len(bad) == 1 else ''} (checked: {names}); "
        f"{lead.gradient}: {lead.summary}"
    )
    return CheckReport(
        verdict=verdict,
        diagnosis=lead.diagnosis,
        summary=summary,
        gradient=lead.gradient,
        output_shape=tuple(y.shape),
        factor=lead.factor,
        convention=lead.convention,
        witnesses=lead.witnesses,
        worst=lead.worst,
        kinks=lead.kinks,
        notes=lead.notes,
        probes=probes,
        sections=sections,
        sampled=lead.sampled,
        **{k: v for k, v in base.items()},
    )


# --------------------------------------------------------------------------- public checks

_COMMON_DOC = """
    Keyword arguments: ``reference`` (a name in ``REFERENCES``) with ``reference_kwargs``
    (``dense`` needs ``W``, ``b`` and optionally ``activation``; ``leaky_relu``/``elu`` take
    ``alpha``; on images ``x`` ``(N, C, H, W)``: ``conv2d`` needs ``W`` ``(F, C, FH, FW)``, ``b``
    and takes ``stride``, ``pad`` or CS231n's ``conv_param``; ``maxpool2d``/``avgpool2d`` take
    ``pool_size`` (or ``pool_height``, ``pool_width``) and ``stride``, or ``pool_param``;
    ``spatial_batchnorm`` takes ``gamma``, ``beta``, ``eps``, ``mode`` and, in test mode,
    ``running_mean``, ``running_var``, or ``bn_param``: see :mod:`.image_references`; ``layernorm``
    needs ``gamma``, ``beta`` ``(m,)`` and takes ``eps`` or CS231n's ``ln_param``; the losses, for a
    loss only: see :mod:`.catalogue_references`); ``dtype`` (float64 or float32; default: x's float dtype); ``atol``, ``rtol``,
    ``err_factor`` override :class:`Tolerance`; ``seed`` for the random cotangents, pairs and
    samples; ``top_k`` worst entries listed; ``name`` for the report.

    Returns a :class:`CheckReport` with ``verdict`` ``pass``, ``fail`` or ``refused``.
"""


def _problem_for(f, vjp, x, dtype, key=None):
    pair = getattr(vjp, "cs231n_pair", None)
    if pair is not None:
        if getattr(f, "cs231n_pair", None) is not pair:
            raise ValueError("f: a vjp from from_cs231n must be checked with the f returned with it")
        return _PairProblem(x, pair, dtype)
    loss = getattr(vjp, "cs231n_loss", None)
    if loss is not None and getattr(f, "cs231n_loss", None) is loss:
        return _LossProblem(x, *loss, binary=key in BINARY_LOSS_REFERENCES)
    if not callable(f) or not callable(vjp):
        raise TypeError("f and vjp must be callable")
    return _Problem(x, f=f, vjp=vjp)


@dataclass(frozen=True)
class _Options:
    """The keyword arguments every public check takes (see ``_COMMON_DOC``), unvalidated."""

    reference: object
    reference_kwargs: object
    dtype: object
    atol: object
    rtol: object
    err_factor: object
    seed: object
    top_k: object
    name: object


def _public_check(
    kind, x, opts: _Options, make_problem, *, batch, callables=None, claimed=None, full=True, **shapes
) -> CheckReport:
    """The steps every public check shares, in this order: validate ``x`` and ``opts`` (a batch
    ``(N, d1, ..., dk)`` when ``batch``), refuse any of ``callables`` (name -> object) that is
    not callable, build the problem ``make_problem(x, dtype, key)`` (``key``: the reference) from the validated ``x``, and run
    the check (``shapes``: ``cotangent_shape``, ``gradient_shape``, for :func:`check_vjp`)."""
    x, dtype, key, tol = _validate(
        x, opts.dtype, batch, opts.reference, opts.top_k, opts.seed, opts.atol, opts.rtol, opts.err_factor
    )
    if callables is not None and not all(callable(c) for c in callables.values()):
        raise TypeError(f"{' and '.join(callables)} must be callable")
    return _run(
        kind,
        make_problem(x, dtype, key),
        claimed=claimed,
        batched=batch,
        reference=key,
        reference_kwargs=opts.reference_kwargs,
        dtype=dtype,
        tol=tol,
        seed=opts.seed,
        top_k=opts.top_k,
        name=opts.name,
        cotangent_shape=shapes.get("cotangent_shape"),
        gradient_shape=shapes.get("gradient_shape"),
        full=full,
    )


def check_jacobian(
    f,
    jacobian,
    x,
    *,
    reference=None,
    reference_kwargs=None,
    dtype=None,
    atol=None,
    rtol=None,
    err_factor=None,
    seed=0,
    top_k=TOP_K,
    name=None,
) -> CheckReport:
    """Check ``jacobian(x)`` ``(m, n)`` against ``f`` at one point ``x`` (any shape).

    ``J[i, j] = d f(x).flat[i] / d x.flat[j]``, as ``(m, n)`` or ``f(x).shape + x.shape``; a
    scalar ``f`` may return its gradient in ``x``'s shape. Other shapes are refused.
    """
    opts = _Options(reference, reference_kwargs, dtype, atol, rtol, err_factor, seed, top_k, name)
    callables = {"f": f, "jacobian": jacobian}
    return _public_check(
        "check_jacobian",
        x,
        opts,
        lambda x, _dtype, _key: _Problem(x, f=f),
        batch=False,
        callables=callables,
        claimed=jacobian,
    )


def check_vjp(
    f,
    vjp,
    x,
    *,
    cotangent_shape=None,
    gradient_shape=None,
    full=True,
    reference=None,
    reference_kwargs=None,
    dtype=None,
    atol=None,
    rtol=None,
    err_factor=None,
    seed=0,
    top_k=TOP_K,
    name=None,
) -> CheckReport:
    """Check ``vjp(x, v) = v J`` against ``f`` at ``x``.

    ``v`` has ``f(x)``'s shape unless ``cotangent_shape`` is given; the result must have
    ``x``'s exact shape unless ``gradient_shape`` is given (the package's ``backward`` takes a
    row ``(1, m)`` for an output column ``(m, 1)`` and returns a row ``(1, n)``). Witnesses:
    the full Jacobian ``J[i, :] = vjp(x, e_i)`` against finite differences when it is small
    and ``full``, else sampled entries; always the inner-product identity.
    """
    opts = _Options(reference, reference_kwargs, dtype, atol, rtol, err_factor, seed, top_k, name)
    return _public_check(
        "check_vjp",
        x,
        opts,
        lambda x, dtype, key: _problem_for(f, vjp, x, dtype, key),
        batch=False,
        full=full,
        cotangent_shape=cotangent_shape,
        gradient_shape=gradient_shape,
    )


def check_batch_jacobian(
    f,
    jacobians,
    X,
    *,
    reference=None,
    reference_kwargs=None,
    dtype=None,
    atol=None,
    rtol=None,
    err_factor=None,
    seed=0,
    top_k=TOP_K,
    name=None,
) -> CheckReport:
    """Check per-sample Jacobians ``jacobians(X)`` ``(N, m, n)`` of ``f: X (N, d...) -> Y (N, m...)``.

    The full ``(N, m, N, n)`` Jacobian is also accepted (batch-coupled functions); per-sample
    Jacobians are compared as a block diagonal, so a function that couples samples shows up as
    failing cross-sample entries.
    """
    opts = _Options(reference, reference_kwargs, dtype, atol, rtol, err_factor, seed, top_k, name)
    callables = {"f": f, "jacobians": jacobians}
    return _public_check(
        "check_batch_jacobian",
        X,
        opts,
        lambda X, _dtype, _key: _Problem(X, f=f),
        batch=True,
        callables=callables,
        claimed=jacobians,
    )


def check_batch_vjp(
    f,
    vjp,
    X,
    *,
    full=True,
    reference=None,
    reference_kwargs=None,
    dtype=None,
    atol=None,
    rtol=None,
    err_factor=None,
    seed=0,
    top_k=TOP_K,
    name=None,
) -> CheckReport:
    """Check ``vjp(X, G)`` (``X``'s exact shape) for ``f: X (N, d1, ..., dk) -> Y`` (``(N, m...)``,
    or a scalar batch loss). ``G`` has ``Y``'s shape. A factor N (or 1/N) between the claim and
    the numbers is diagnosed as ``missing_batch_scaling``.
    """
    opts = _Options(reference, reference_kwargs, dtype, atol, rtol, err_factor, seed, top_k, name)
    return _public_check(
        "check_batch_vjp",
        X,
        opts,
        lambda X, dtype, key: _problem_for(f, vjp, X, dtype, key),
        batch=True,
        full=full,
    )


def check_loss(
    loss_fn,
    X,
    y=None,
    *,
    num_classes=None,
    reference=None,
    reference_kwargs=None,
    dtype=None,
    atol=None,
    rtol=None,
    err_factor=None,
    seed=0,
    top_k=TOP_K,
    name=None,
) -> CheckReport:
    """Check a CS231n loss ``loss, dx = loss_fn(X, y)``: ``dx`` against finite differences of
    ``loss`` at scores ``X`` ``(N, C)``. Labels ``y`` ``(N,)`` are drawn from
    ``default_rng(seed)`` in ``[0, C)`` (``C = num_classes`` or ``X.shape[1]``) when not given.
    A gradient off by one constant at each label entry is diagnosed as ``off_at_label``.

    ``reference``: one of the library's losses (``softmax_cross_entropy``, ``svm``,
    ``binary_cross_entropy``, ``sigmoid_binary_cross_entropy``; see :mod:`.catalogue_references`),
    whose value and gradient, the mean over the batch of its one-sample reference path, are a
    further witness; ``reference_kwargs`` ``{'delta': ...}`` for ``svm``. With a binary loss the
    labels are one yes/no label per score, of ``X``'s shape ``(N, C)`` (or ``(N,)`` when
    ``C == 1``), bools, 0/1 or floats in [0, 1], passed to ``loss_fn`` as given; drawn as 0.0/1.0 of
    ``X``'s shape when not given. ``binary_cross_entropy`` needs probabilities ``X`` more than
    0.01 (the finite differences' first step) inside (0, 1); closer, the witness is refused
    (``witness_not_finite``), never passed.
    """
    problems = []

    def make_problem(X, _, key):
        if key is not None and key not in LOSS_REFERENCES:
            raise ValueError(
                f"reference: check_loss takes a loss reference, one of {list(LOSS_REFERENCES)}, got {reference!r}"
            )
        binary = key in BINARY_LOSS_REFERENCES
        if binary:
            if num_classes is not None:
                raise ValueError(
                    f"num_classes: binary labels (reference={key!r}) have X's shape; leave num_classes out"
                )
            labels = _binary_labels(y, X, key, seed)
        else:
            labels = _labels(y, X, num_classes, seed)
        problems.append(_LossProblem(X, loss_fn, labels, binary=binary))
        return problems[0]

    opts = _Options(reference, reference_kwargs, dtype, atol, rtol, err_factor, seed, top_k, name)
    report = _public_check("check_loss", X, opts, make_problem, batch=True, callables={"loss_fn": loss_fn})
    labels = problems[0].y
    report.notes.append(f"labels {'given' if y is not None else f'drawn at random (seed {seed})'}: {_short(labels)}")
    return report


def _short(a) -> str:
    a = np.asarray(a).reshape(-1)
    return np.array2string(a if a.size <= 12 else a[:12], separator=", ") + (" ..." if a.size > 12 else "")


for _fn in (check_jacobian, check_vjp, check_batch_jacobian, check_batch_vjp, check_loss):
    if _fn.__doc__ is not None:  # None under ``python -OO``, which strips docstrings
        _fn.__doc__ += _COMMON_DOC
