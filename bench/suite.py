"""The benchmark suite: what is measured, on which networks, and the targets.

Architectures (ReLU hidden layers, identity output, softmax cross-entropy, He
initialisation, one seed; data drawn from a ``numpy.random.Generator``: the
timings do not depend on the values, only the shapes):

====  ===================  =====  =========================
A     2-100-3              300    spiral
B     64-100-10            1797   digits
C     3072-100-10          256    a CIFAR-10 minibatch
D     784-512-512-10       128
====  ===================  =====  =========================

Per architecture and dtype (float64 for both paths; float32 for the batched
path, the baselines and torch), tasks:

* ``forward``: reference ``Network.predict`` / batched ``predict_batched``;
* ``grads``: ``loss_and_gradients`` / ``loss_and_gradients_batched``;
* ``step``: ``train_batch`` / ``train_step_batched`` (SGD), with the inline
  floors of :mod:`bench.baselines`, the GEMM floor and torch eager. The batched
  step is timed as a user running many steps calls it: with one
  :class:`jacobian_nn.Workspace` created before the timed loop and passed to
  every call (impl ``batched``; the arrays are allocated once, in the warm-up).
  The same step without a workspace is timed in the same group (impl
  ``batched-no-workspace``) and reported beside it;
* ``per-sample grads``: the reference ``Network.backward`` on each sample /
  ``per_sample_gradients_batched`` / ``torch.func.vmap(grad)``.

Jacobians ``(N, m, m)`` at m = 10 and 100: the input Jacobian of an m-m-m
network (reference ``input_jacobian`` per sample / ``input_jacobian_batched`` /
``vmap(jacrev)``) and the softmax Jacobian (``Softmax.jacobian`` per sample /
``jacobian_batched`` / ``vmap(jacrev(softmax))``), and layer normalisation's (``LayerNorm.jacobian_x`` per sample /
``jacobian_x_batched`` / ``vmap(jacrev(layer_norm))``).

CNNs (:mod:`bench.cnn`): a CNN on 1x8x8 digits and a CIFAR-shaped convolution (3x32x32, 16 filters 3x3,
pad 1, 2x2 max-pool), training step of both paths and torch eager, and the memory of the sparse
convolution Jacobian against its dense size.

Sweeps: time of one training step (the batched one with a workspace) against the
hidden width (64-h-10) and against N (64-100-10), both paths, with the least-squares slope of
``log time`` against ``log size``.
"""

from __future__ import annotations

import numpy as np

import jacobian_nn as jn
from jacobian_nn import batched
from jacobian_nn._validation import columns

from . import baselines
from . import torch_baselines as tb
from ._timing import blas_threads, machine_info, measure_group, peak_memory
from .cnn import CNN_NETWORKS, bench_cnns

ARCHITECTURES = {
    "A": ([2, 100, 3], 300),
    "B": ([64, 100, 10], 1797),
    "C": ([3072, 100, 10], 256),
    "D": ([784, 512, 512, 10], 128),
}

#: The tasks of :func:`_bench_jacobians`, reported in their own table.
JACOBIAN_TASKS = ("input jacobians", "softmax jacobians", "layernorm jacobians")

MODES = {
    "smoke": dict(
        archs=["A"],
        n_scale=0.25,
        repeats=2,
        ref_repeats=1,
        min_repeat_s=0.0,
        per_sample=["A"],
        jac_ms=[10],
        jac_N=32,
        width=[16, 64],
        width_N=64,
        ns=[32, 128],
        memory=False,
    ),
    "quick": dict(
        archs=["A", "B", "C", "D"],
        n_scale=1.0,
        repeats=7,
        ref_repeats=5,
        min_repeat_s=0.02,
        per_sample=["B", "C"],
        jac_ms=[10, 100],
        jac_N=256,
        width=[32, 128, 512],
        width_N=256,
        ns=[128, 512, 2048],
        memory=True,
    ),
    "full": dict(
        archs=["A", "B", "C", "D"],
        n_scale=1.0,
        repeats=15,
        ref_repeats=5,
        min_repeat_s=0.05,
        per_sample=["A", "B", "C", "D"],
        jac_ms=[10, 30, 100, 300],
        jac_N=256,
        width=[16, 32, 64, 128, 256, 512, 1024],
        width_N=256,
        ns=[64, 128, 256, 512, 1024, 2048, 4096],
        memory=True,
    ),
}

LR = 1e-3

# (name, what, relation, threshold)
TARGETS = [
    ("batched step / torch eager, A and B", "step_vs_torch_AB", "<=", 1.0),
    ("batched step / torch eager, C and D", "step_vs_torch_CD", "<=", 1.15),
    ("GEMM floor / batched step, C and D", "gemm_fraction_CD", ">=", 0.90),
    ("reference step / inline explicit-Jacobian loop", "ref_vs_inline", "<=", 1.3),
    ("vmap(jacrev) / batched input Jacobians, m=10 and 100", "jac_vs_torch", ">=", 3.0),
    ("batched per-sample grads / vmap(grad), B and C", "psg_vs_torch", "<=", 1.0),
    ("batched step / torch eager, CNNs (bench/cnn.py)", "step_vs_torch_cnn", "<=", 1.5),
]


def make_problem(sizes, N, dtype, seed=0):
    net = jn.Network.build(sizes, "relu", loss="softmax_cross_entropy", seed=seed, dtype=dtype)
    rng = np.random.default_rng(seed + 1)
    X = rng.standard_normal((N, sizes[0])).astype(dtype)
    y = rng.integers(0, sizes[-1], size=N)
    return net, X, y


def _params(net):
    return [(layer.W.copy(), layer.b.copy()) for layer in net.layers]


class Recorder:
    """Collects rows; each task's numpy implementations are timed as one interleaved group,
    torch right after them in a block of its own (:func:`bench._timing.measure_group`)."""

    def __init__(self, cfg, log):
        self.cfg = cfg
        self.rows = []
        self.log = log

    def group(self, task, impls, memory=(), **keys):
        """``impls`` maps a name to ``(fn, is_reference)``; ``memory`` names those whose peak is measured."""
        impls = {k: v for k, v in impls.items() if v is not None}
        reps = {k: self.cfg["ref_repeats"] if ref else self.cfg["repeats"] for k, (_, ref) in impls.items()}
        timings = measure_group(
            {k: fn for k, (fn, _) in impls.items()}, reps, self.cfg["min_repeat_s"], isolated=("torch",)
        )
        out = {}
        for impl, t in timings.items():
            row = dict(keys, task=task, impl=impl, **t.to_dict())
            N = keys.get("N")
            row["samples_per_s"] = N / t.median if N else None
            row["peak_bytes"] = peak_memory(impls[impl][0]) if self.cfg["memory"] and impl in memory else None
            self.rows.append(row)
            out[impl] = row
            self.log(f"  {keys.get('arch', '')} {keys.get('dtype', '')} {task:<17} {impl:<17}{t.median * 1e3:10.3f} ms")
        return out


def _bench_arch(rec, torch, name, sizes, N, dtype):
    dt = np.dtype(dtype).name
    keys = dict(arch=name, dtype=dt, N=N, sizes=sizes)
    net, X, y = make_problem(sizes, N, dtype)
    f64 = dt == "float64"
    use_torch = torch is not None

    rec.group(
        "forward",
        {
            "reference": (lambda: net.predict(X), True) if f64 else None,
            "batched": (lambda: net.predict_batched(X), False),
            "torch": (tb.make_forward(torch, _params(net), X, y), False) if use_torch else None,
        },
        **keys,
    )

    rec.group(
        "grads",
        {
            "reference": (lambda: net.loss_and_gradients(X, y), True) if f64 else None,
            "batched": (lambda: net.loss_and_gradients_batched(X, y), False),
            "torch": (tb.make_grads(torch, _params(net), X, y), False) if use_torch else None,
        },
        **keys,
    )

    # one training step (each path on its own copy; the tiny lr keeps the parameters sane). The batched
    # step with a workspace made once, here, outside the timed loop, as a training loop would use it
    ref_net, b_net, nows_net, p_ref, p_bat = net.copy(), net.copy(), net.copy(), _params(net), _params(net)
    ws = jn.Workspace()
    rows = rec.group(
        "step",
        {
            "reference": (lambda: ref_net.train_batch(X, y, LR), True) if f64 else None,
            "inline-reference": (lambda: baselines.inline_reference_step(p_ref, X, y, LR), True) if f64 else None,
            "batched": (lambda: b_net.train_step_batched(X, y, LR, workspace=ws), False),
            "batched-no-workspace": (lambda: nows_net.train_step_batched(X, y, LR), False),
            "inline-batched": (lambda: baselines.inline_batched_step(p_bat, X, y, LR), False),
            "gemm-floor": (baselines.make_gemm_floor(sizes, N, dtype), False),
            "torch": (tb.make_step(torch, _params(net), X, y, LR), False) if use_torch else None,
        },
        memory=("reference", "batched", "batched-no-workspace", "inline-batched"),
        **keys,
    )
    rows["gemm-floor"]["gflops"] = baselines.gemm_flops(sizes, N) / rows["gemm-floor"]["median"] / 1e9
    rows["batched"]["workspace_bytes"] = ws.nbytes

    if name in rec.cfg["per_sample"]:
        cols = columns(X)
        labels = [int(v) for v in y]
        rec.group(
            "per-sample grads",
            {
                "reference": (lambda: [net.backward(c, t) for c, t in zip(cols, labels)], True) if f64 else None,
                "batched": (lambda: batched.per_sample_gradients_batched(net, X, y), False),
                "torch": (tb.make_per_sample_grads(torch, _params(net), X, y), False) if use_torch else None,
            },
            memory=("batched",),
            **keys,
        )


def _bench_jacobians(rec, torch, m, N):
    keys = dict(arch=f"{m}-{m}-{m}", dtype="float64", N=N, sizes=[m, m, m])
    net, X, _ = make_problem([m, m, m], N, np.float64)
    cols = columns(X)
    use_torch = torch is not None
    rec.group(
        "input jacobians",
        {
            "reference": (lambda: [net.input_jacobian(c) for c in cols], True),
            "batched": (lambda: batched.input_jacobian_batched(net, X), False),
            "torch": (tb.make_input_jacobians(torch, _params(net), X), False) if use_torch else None,
        },
        **keys,
    )
    sm = jn.Softmax()
    rec.group(
        "softmax jacobians",
        {
            "reference": (lambda: [sm.jacobian(c) for c in cols], True),
            "batched": (lambda: sm.jacobian_batched(X), False),
            "torch": (tb.make_softmax_jacobians(torch, X), False) if use_torch else None,
        },
        **keys,
    )
    rng = np.random.default_rng(m)
    gamma, beta = 1.0 + 0.1 * rng.standard_normal(m), 0.1 * rng.standard_normal(m)
    ln = jn.LayerNorm(m, gamma=gamma, beta=beta)
    rec.group(
        "layernorm jacobians",
        {
            "reference": (lambda: [ln.jacobian_x(c) for c in cols], True),
            "batched": (lambda: ln.jacobian_x_batched(X), False),
            "torch": (tb.make_layernorm_jacobians(torch, X, gamma, beta, ln.eps), False) if use_torch else None,
        },
        **keys,
    )


def _slope(sizes, times) -> float:
    return float(np.polyfit(np.log(sizes), np.log(times), 1)[0])


def _sweeps(rec, cfg):
    """Each point times both paths as one group; the slopes come from the medians."""
    times = {}
    for sweep, points in (("width", cfg["width"]), ("N", cfg["ns"])):
        for v in points:
            sizes, N = ([64, v, 10], cfg["width_N"]) if sweep == "width" else ([64, 100, 10], v)
            net, X, y = make_problem(sizes, N, np.float64)
            ref_net, ws = net.copy(), jn.Workspace()
            rows = rec.group(
                "step",
                {
                    "reference": (lambda: ref_net.train_batch(X, y, LR), True),
                    "batched": (lambda: net.train_step_batched(X, y, LR, workspace=ws), False),
                },
                arch=f"sweep-{sweep}",
                dtype="float64",
                N=N,
                sizes=sizes,
            )
            for impl, r in rows.items():
                times.setdefault((sweep, impl), []).append(r["median"])
    points = {"width": cfg["width"], "N": cfg["ns"]}
    return [
        dict(sweep=sweep, impl=impl, sizes=list(points[sweep]), times=ts, slope=_slope(points[sweep], ts))
        for (sweep, impl), ts in times.items()
    ]


def _find(rows, **keys):
    for r in rows:
        if all(r.get(k) == v for k, v in keys.items()):
            return r
    return None


def derive(rows):
    """Ratios within this run: one entry per (arch, dtype, task)."""
    ratios = []
    seen = []
    for r in rows:
        key = (r["arch"], r["dtype"], r["task"])
        if key in seen or r["arch"].startswith("sweep"):
            continue
        seen.append(key)
        k = dict(arch=r["arch"], dtype=r["dtype"], task=r["task"])
        get = {
            impl: _find(rows, impl=impl, **k)
            for impl in (
                "reference",
                "batched",
                "batched-no-workspace",
                "torch",
                "inline-reference",
                "inline-batched",
                "gemm-floor",
            )
        }
        t = {impl: (v["median"] if v else None) for impl, v in get.items()}
        ent = dict(k, N=r["N"])

        def ratio(a, b):
            return None if t[a] is None or t[b] is None else t[a] / t[b]

        ent["speedup"] = ratio("reference", "batched")
        ent["batched_vs_torch"] = ratio("batched", "torch")
        ent["torch_vs_batched"] = ratio("torch", "batched")
        ent["ref_vs_inline"] = ratio("reference", "inline-reference")
        ent["batched_vs_inline"] = ratio("batched", "inline-batched")
        ent["gemm_fraction"] = ratio("gemm-floor", "batched")
        ent["no_workspace_vs_torch"] = ratio("batched-no-workspace", "torch")
        ent["gemm_fraction_no_workspace"] = ratio("gemm-floor", "batched-no-workspace")
        ent["gflops"] = get["gemm-floor"]["gflops"] if get["gemm-floor"] else None
        ratios.append(ent)
    return ratios


def evaluate_targets(ratios):
    def vals(field, archs=None, tasks=("step",)):
        return [
            (f"{e['arch']} {e['dtype']}", e[field])
            for e in ratios
            if e["task"] in tasks and e[field] is not None and (archs is None or e["arch"] in archs)
        ]

    sources = {
        "step_vs_torch_AB": vals("batched_vs_torch", ["A", "B"]),
        "step_vs_torch_CD": vals("batched_vs_torch", ["C", "D"]),
        "gemm_fraction_CD": vals("gemm_fraction", ["C", "D"]),
        "ref_vs_inline": vals("ref_vs_inline"),
        "jac_vs_torch": vals("torch_vs_batched", ["10-10-10", "100-100-100"], ("input jacobians",)),
        "psg_vs_torch": vals("batched_vs_torch", ["B", "C"], ("per-sample grads",)),
        "step_vs_torch_cnn": vals("batched_vs_torch", list(CNN_NETWORKS)),
    }
    out = []
    for name, what, rel, thr in TARGETS:
        measured = sources[what]
        ok = [(v <= thr) if rel == "<=" else (v >= thr) for _, v in measured]
        out.append(
            dict(target=name, relation=rel, threshold=thr, measured=measured, met=(all(ok) if measured else None))
        )
    return out


def run(mode="quick", log=print):
    cfg = MODES[mode]
    torch = tb.load(blas_threads())
    rec = Recorder(cfg, log)
    for name in cfg["archs"]:
        sizes, N = ARCHITECTURES[name]
        N = max(8, int(N * cfg["n_scale"]))
        for dtype in (np.float64, np.float32):
            _bench_arch(rec, torch, name, sizes, N, dtype)
    for m in cfg["jac_ms"]:
        _bench_jacobians(rec, torch, m, cfg["jac_N"])
    cnn_memory = bench_cnns(rec, torch, smoke=mode == "smoke")
    sweeps = _sweeps(rec, cfg)
    ratios = derive(rec.rows)
    return dict(
        mode=mode,
        machine=machine_info(torch),
        rows=rec.rows,
        ratios=ratios,
        sweeps=sweeps,
        targets=evaluate_targets(ratios),
        cnn_memory=cnn_memory,
    )
