"""Timing, memory and machine facts for the bench.

Method: one warm-up call (which also calibrates how many calls make one repeat,
so that a repeat of a tiny workload lasts at least ``min_repeat_s`` and timer
resolution does not matter), then ``repeats`` repeats. Each repeat's time is
divided by its number of calls; the median is the figure, with the min and max
beside it. The numpy implementations of one task (reference, batched, floors)
are timed interleaved, repeat by repeat (:func:`measure_group`), so that load
from other processes falls on all of them alike; torch is timed right after them,
in a block of its own (two thread pools alternating on 2 cores slow each other
down, see :func:`measure_group`). All ratios in a report are taken between
figures of the same run and the same group.

Peak memory is measured on a separate call under :mod:`tracemalloc`, which sees
every numpy allocation (numpy reports its data buffers to it) but nothing torch
allocates, so it is reported for the numpy paths only.
"""

from __future__ import annotations

import os
import platform
import statistics
import time
import tracemalloc
from dataclasses import asdict, dataclass

import numpy as np


@dataclass
class Timing:
    median: float  # seconds per call
    min: float
    max: float
    repeats: int
    calls_per_repeat: int

    def to_dict(self) -> dict:
        return asdict(self)


def measure(fn, repeats: int = 5, min_repeat_s: float = 0.02) -> Timing:
    """Warm up ``fn`` once, then time ``repeats`` repeats of ``calls`` calls each."""
    t0 = time.perf_counter()
    fn()
    first = time.perf_counter() - t0
    calls = max(1, int(min_repeat_s / max(first, 1e-7)))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        times.append((time.perf_counter() - t0) / calls)
    return Timing(statistics.median(times), min(times), max(times), repeats, calls)


#: Idle seconds before an isolated block (numpy's OpenBLAS workers stop spinning).
SETTLE_S = 0.25


def measure_group(fns: dict, repeats: dict, min_repeat_s: float = 0.02, isolated=()) -> dict:
    """Time several implementations of one task, interleaved.

    ``fns`` maps a name to a zero-argument callable and ``repeats`` a name to its
    number of repeats. Each callable is warmed up (and calibrated) once, then the
    repeats take turns, the order rotating each round, so that a burst of load on
    a shared machine falls on every implementation alike and the ratios between
    them stay meaningful. Returns ``{name: Timing}``.

    Names in ``isolated`` (torch) are timed afterwards, each in one block of its own
    (warm-up, then its repeats back to back). Two thread pools alternating on the same
    cores slow each other down: after a call, torch's OpenMP (GNU libgomp) workers and
    numpy's OpenBLAS workers keep spin-waiting on the cores the other one needs. Measured
    on the 2-core machine of the README (training step C, float64): torch 8.4 ms alone
    and 18 ms when alternating with numpy every repeat, the numpy step 6.3 ms and 10.4 ms.
    Each library is therefore timed in its own steady state, as a user would run it. Before
    an isolated block the machine is left idle for ``SETTLE_S``: OpenBLAS's workers keep
    spinning for about 0.1 s after numpy's last product (measured: the first six torch steps
    of C float64 took 15 ms each after numpy GEMMs, 6.5 ms after a 0.2 s pause); and after
    it, for torch's workers (the first numpy step after torch: 19.5 ms instead of 7.5 ms).
    """
    isolated = [name for name in fns if name in isolated]
    if isolated:
        out = measure_group({k: v for k, v in fns.items() if k not in isolated}, repeats, min_repeat_s)
        for name in isolated:
            time.sleep(SETTLE_S)
            out.update(measure_group({name: fns[name]}, {name: repeats[name]}, min_repeat_s))
        time.sleep(SETTLE_S)  # and torch's OpenMP workers before the next numpy group
        return {name: out[name] for name in fns}
    names = list(fns)
    calls, times = {}, {name: [] for name in names}
    for name in names:
        t0 = time.perf_counter()
        fns[name]()
        first = time.perf_counter() - t0
        calls[name] = max(1, int(min_repeat_s / max(first, 1e-7)))
    for r in range(max(repeats.values())):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            if len(times[name]) >= repeats[name]:
                continue
            fn, n = fns[name], calls[name]
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            times[name].append((time.perf_counter() - t0) / n)
    return {name: Timing(statistics.median(ts), min(ts), max(ts), len(ts), calls[name]) for name, ts in times.items()}


def peak_memory(fn) -> int:
    """Peak bytes allocated through tracemalloc-visible allocators during one call of ``fn``."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        fn()
        return int(tracemalloc.get_traced_memory()[1] - base)
    finally:
        tracemalloc.stop()


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def blas_threads() -> int:
    """Threads numpy's BLAS uses: threadpoolctl when installed, else the environment, else the cores."""
    try:
        from threadpoolctl import threadpool_info  # optional, never a dependency

        counts = [d["num_threads"] for d in threadpool_info() if d.get("user_api") == "blas"]
        if counts:
            return int(max(counts))
    except ImportError:
        pass
    for var in ("OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "OMP_NUM_THREADS"):
        if os.environ.get(var, "").isdigit():
            return int(os.environ[var])
    return cpu_count()


def blas_name() -> str:
    """numpy's BLAS, from ``np.__config__`` (name and version)."""
    try:
        cfg = np.__config__.CONFIG["Build Dependencies"]["blas"]
        return f"{cfg.get('name', '?')} {cfg.get('version', '')}".strip()
    except (AttributeError, KeyError, TypeError):  # pragma: no cover - old numpy
        return "unknown"


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(torch_module=None) -> dict:
    import scipy

    info = {
        "cpu": cpu_model(),
        "cores": cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": scipy.__version__,
        "blas": blas_name(),
        "blas_threads": blas_threads(),
        "torch": None,
    }
    if torch_module is not None:
        info["torch"] = torch_module.__version__
        info["torch_threads"] = torch_module.get_num_threads()
        info["torch_blas"] = "MKL" if torch_module.backends.mkl.is_available() else "other"
    return info
