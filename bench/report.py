"""Output of a bench run: the Markdown report, JSON, and the optional plot."""

from __future__ import annotations

import json

from .suite import JACOBIAN_TASKS


def _ms(row):
    return "" if row is None else f"{row['median'] * 1e3:.3g}"


def _x(v, digits=2):
    return "" if v is None else f"{v:.{digits}f}"


def _find(rows, **keys):
    for r in rows:
        if all(r.get(k) == v for k, v in keys.items()):
            return r
    return None


def machine_line(m) -> str:
    torch = f"torch {m['torch']} ({m.get('torch_threads')} threads)" if m.get("torch") else "torch not installed"
    return (
        f"Machine: {m['cpu']}, {m['cores']} cores; numpy {m['numpy']} with {m['blas']} "
        f"({m['blas_threads']} threads); scipy {m['scipy']}; {torch}; Python {m['python']}."
    )


def markdown(result) -> str:
    rows, ratios = result["rows"], result["ratios"]
    out = [
        f"## jacobian_nn bench ({result['mode']} mode)",
        "",
        machine_line(result["machine"]),
        "",
        "Times are medians in ms per call (min and max in the JSON). speedup = reference / batched; "
        "vs torch = batched / torch eager (lower is better); torch is timed in its own block right after "
        "the numpy implementations of the same task (bench/_timing.py says why). The batched training step "
        "(task step) is timed as a training loop calls it, with one `jacobian_nn.Workspace` created before "
        "the timed loop and passed to every step; the step without a workspace is in the second table.",
        "",
    ]

    out += [
        "| arch | N | dtype | task | reference ms | batched ms | speedup | torch ms | vs torch "
        "| reference samples/s | batched samples/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for e in ratios:
        if e["task"] in JACOBIAN_TASKS:
            continue
        k = dict(arch=e["arch"], dtype=e["dtype"], task=e["task"])
        ref, bat, tor = (_find(rows, impl=i, **k) for i in ("reference", "batched", "torch"))
        sps = lambda r: "" if r is None else f"{r['samples_per_s']:.3g}"  # noqa: E731
        out.append(
            f"| {e['arch']} | {e['N']} | {e['dtype']} | {e['task']} | {_ms(ref)} | {_ms(bat)} "
            f"| {_x(e['speedup'], 1)} | {_ms(tor)} | {_x(e['batched_vs_torch'])} | {sps(ref)} | {sps(bat)} |"
        )

    out += [
        "",
        "Training step against its floors: inline = the minimal plain-numpy loop of the same "
        "mathematics (bench/baselines.py); GEMM fraction = time of the step's matrix products alone / "
        'batched step; "no ws" = the batched step without a workspace (every array allocated anew each '
        "step). Peak MiB is what one call allocates beyond what already exists; the workspace's own arrays "
        "(allocated once) are in the last column.",
        "",
        "| arch | dtype | reference / inline loop | batched / inline batched | batched ms no ws | vs torch no ws "
        "| GEMM GFLOP/s | GEMM fraction | GEMM fraction no ws | peak MiB reference | peak MiB batched "
        "| peak MiB batched no ws | peak MiB inline batched | workspace MiB |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for e in ratios:
        if e["task"] != "step" or e.get("gflops") is None:  # the CNNs have no floors: their own table
            continue
        k = dict(arch=e["arch"], dtype=e["dtype"], task="step")
        mem = []
        for impl in ("reference", "batched", "batched-no-workspace", "inline-batched"):
            r = _find(rows, impl=impl, **k)
            mem.append("" if r is None or r["peak_bytes"] is None else f"{r['peak_bytes'] / 2**20:.2f}")
        bat = _find(rows, impl="batched", **k)
        ws_mib = "" if bat is None or bat.get("workspace_bytes") is None else f"{bat['workspace_bytes'] / 2**20:.2f}"
        out.append(
            f"| {e['arch']} | {e['dtype']} | {_x(e['ref_vs_inline'])} | {_x(e['batched_vs_inline'])} "
            f"| {_ms(_find(rows, impl='batched-no-workspace', **k))} | {_x(e.get('no_workspace_vs_torch'))} "
            f"| {_x(e['gflops'], 1)} | {_x(e['gemm_fraction'])} | {_x(e.get('gemm_fraction_no_workspace'))} "
            f"| {' | '.join(mem)} | {ws_mib} |"
        )

    jac = [e for e in ratios if e["task"] in JACOBIAN_TASKS]
    if jac:
        out += [
            "",
            "Batched Jacobians (N, m, m) against per-sample Jacobians and vmap(jacrev):",
            "",
            "| network | N | what | reference ms | batched ms | speedup | vmap(jacrev) ms | vmap(jacrev) / batched |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for e in jac:
            k = dict(arch=e["arch"], dtype=e["dtype"], task=e["task"])
            ref, bat, tor = (_find(rows, impl=i, **k) for i in ("reference", "batched", "torch"))
            out.append(
                f"| {e['arch']} | {e['N']} | {e['task']} | {_ms(ref)} | {_ms(bat)} | {_x(e['speedup'], 1)} "
                f"| {_ms(tor)} | {_x(e['torch_vs_batched'], 1)} |"
            )

    if result.get("cnn_memory"):
        out += [
            "",
            "Convolution Jacobian dz/dx of the first layer, one sample (reference path): scipy.sparse "
            "against the dense matrix.",
            "",
            "| network | shape | non-zeros | sparse MiB | dense MiB | dense / sparse |",
            "|---|---|---|---|---|---|",
        ]
        for m in result["cnn_memory"]:
            out.append(
                f"| {m['arch']} | {m['shape'][0]} x {m['shape'][1]} | {m['nnz']} "
                f"| {m['sparse_bytes'] / 2**20:.3g} | {m['dense_bytes'] / 2**20:.3g} "
                f"| {m['dense_bytes'] / m['sparse_bytes']:.0f} |"
            )

    if result["sweeps"]:
        out += [
            "",
            "Sweeps (training step, float64): log-log slope of time against size.",
            "",
            "| sweep | path | sizes | ms | slope |",
            "|---|---|---|---|---|",
        ]
        for s in result["sweeps"]:
            ms = ", ".join(f"{t * 1e3:.3g}" for t in s["times"])
            label = "hidden width h of 64-h-10" if s["sweep"] == "width" else "N for 64-100-10"
            out.append(f"| {label} | {s['impl']} | {', '.join(map(str, s['sizes']))} | {ms} | {s['slope']:.2f} |")

    out += ["", "Targets:", "", "| target | measured | met |", "|---|---|---|"]
    for t in result["targets"]:
        meas = "; ".join(f"{k}: {v:.2f}" for k, v in t["measured"]) or "not measured"
        met = {True: "yes", False: "no", None: "n/a"}[t["met"]]
        out.append(f"| {t['target']} {t['relation']} {t['threshold']} | {meas} | {met} |")
    return "\n".join(out)


def write_json(result, path) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)


def plot(result, path) -> None:
    """Time against size for both paths (the sweeps), and the speedup; needs matplotlib (extra ``plot``)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise SystemExit('--plot needs matplotlib: pip install "jacobian-nn[plot]"') from exc
    sweeps = result["sweeps"]
    fig, axes = plt.subplots(2, 2, figsize=(10, 7))
    for col, name in enumerate(("width", "N")):
        ax, sp = axes[0][col], axes[1][col]
        by = {s["impl"]: s for s in sweeps if s["sweep"] == name}
        for impl, s in by.items():
            ax.loglog(s["sizes"], [t * 1e3 for t in s["times"]], "o-", label=f"{impl} (slope {s['slope']:.2f})")
        ax.set_xlabel("hidden width h (64-h-10)" if name == "width" else "N (64-100-10)")
        ax.set_ylabel("ms per training step")
        ax.legend()
        ax.grid(True, which="both", alpha=0.3)
        if "reference" in by and "batched" in by:
            s_r, s_b = by["reference"], by["batched"]
            sp.semilogx(s_r["sizes"], [r / b for r, b in zip(s_r["times"], s_b["times"])], "o-")
        sp.set_xlabel(ax.get_xlabel())
        sp.set_ylabel("speedup reference / batched")
        sp.grid(True, which="both", alpha=0.3)
    fig.suptitle(
        f"jacobian_nn bench ({result['mode']}): {result['machine']['cpu']}, {result['machine']['cores']} cores"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
