"""What a check returns: the tolerance it applied, its witnesses, its worst entries, its verdict.

A :class:`CheckReport` has one of three verdicts:

``pass``     every witness agrees with the claim within :class:`Tolerance`;
``fail``     a witness disagrees (``diagnosis`` names the pattern);
``refused``  a precondition the comparison relies on does not hold (``cause`` says which:
             the function is not deterministic, the VJP ignores or is not linear in its
             cotangent, a call changed its arguments, a returned array has the wrong shape,
             a value is not finite, user code raised). A refused check vouches for nothing.

``report.passed`` is True only for ``pass``. A check of several gradients (a CS231n
``backward`` returning ``dx, dw, db``) has one section per gradient in ``sections``, and
passes only when every section passes.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from dataclasses import asdict, dataclass, field
from fractions import Fraction

import numpy as np

from .._validation import eps_of, is_real
from ..fd import FD_ERR_FACTOR

#: ``atol = rtol = TOL_SQRT_EPS_FACTOR * sqrt(eps)``: 1.49e-7 (float64), 3.45e-3 (float32).
TOL_SQRT_EPS_FACTOR = 10.0
#: Multiplier of scipy's error estimate in the tolerance (shared with ``jacobian_nn.fd``).
ERR_FACTOR = FD_ERR_FACTOR

VERDICTS = ("pass", "fail", "refused")


#: Rounding allowance of the claim itself: ``NOISE_EPS_FACTOR * eps(dtype)`` times the largest ``|numeric|``.
NOISE_EPS_FACTOR = 64.0


@dataclass(frozen=True)
class Tolerance:
    """Per-entry bound ``atol * s + rtol * |witness| + err_factor * witness_error + 64 eps * top``.

    ``s`` is the size an entry's rounding is measured against: for a Jacobian entry the smaller of
    the largest ``|witness|`` in its row and in its column, for a gradient entry its own ``|witness|``;
    ``top`` is the largest ``|witness|`` compared, and ``64 eps(dtype) top`` allows for the claim's
    own rounding. So a batch-mean gradient of size 1e-5 is judged as strictly as one of size 1, and a
    small entry is not excused by a large one elsewhere (exp at x = 10 and x = -10).
    """

    atol: float
    rtol: float
    err_factor: float
    dtype: str

    @classmethod
    def for_dtype(cls, dtype, *, atol=None, rtol=None, err_factor=None) -> "Tolerance":
        """Defaults from ``dtype``; any of the three may be overridden."""
        dtype = np.dtype(dtype)
        base = TOL_SQRT_EPS_FACTOR * math.sqrt(eps_of(dtype))
        vals = {
            "atol": base if atol is None else atol,
            "rtol": base if rtol is None else rtol,
            "err_factor": ERR_FACTOR if err_factor is None else err_factor,
        }
        for k, v in vals.items():
            if not (is_real(v) and math.isfinite(float(v)) and v >= 0):
                raise ValueError(f"{k}: expected a finite number >= 0, got {v!r}")
        return cls(
            atol=float(vals["atol"]), rtol=float(vals["rtol"]), err_factor=float(vals["err_factor"]), dtype=dtype.name
        )

    @property
    def noise(self) -> float:
        return NOISE_EPS_FACTOR * eps_of(self.dtype)

    def bound(self, witness, err=None, scale=None, top=None) -> np.ndarray:
        """``atol * scale + rtol * |witness| + err_factor * err + noise * top`` (``err`` must be finite);
        ``scale`` defaults to ``|witness|``, ``top`` to the largest ``|witness|``."""
        w = np.abs(np.asarray(witness, dtype=np.float64))
        if top is None:
            top = float(w.max()) if w.size else 0.0
        s = w if scale is None else scale
        e = 0.0 if err is None else self.err_factor * np.asarray(err, dtype=np.float64)
        return self.atol * s + self.rtol * w + e + self.noise * top

    def explain(self) -> str:
        why = (
            ("float32 is looser: its analytic values carry float32 rounding")
            if self.dtype == "float32"
            else "float64: the analytic values are near machine precision and scipy's Richardson estimate is tight"
        )
        return (
            f"|analytic - numeric| <= atol*s + rtol*|numeric| + {self.err_factor:g}*fd_error + "
            f"{NOISE_EPS_FACTOR:g}*eps*max|numeric| with atol={self.atol:.2e}, rtol={self.rtol:.2e} (default "
            f"{TOL_SQRT_EPS_FACTOR:g}*sqrt(eps) for {self.dtype}; {why}); s = the smaller of the largest "
            f"|numeric| in the entry's row and in its column"
        )


@dataclass
class Entry:
    """One compared entry. ``where`` names it as ``dW[4, 0]`` (the gradient array and its
    multi-index); ``output`` names the output entry it is the derivative of (``out[2, 1]``),
    empty for a scalar output or a sampled gradient entry. ``row``/``column`` are the flat
    Jacobian indices (``sample`` the first index of a batch)."""

    row: int
    column: int
    analytic: float
    numeric: float
    abs_error: float
    rel_error: float
    tolerance: float
    fd_error: float
    passed: bool
    where: str = ""
    output: str = ""
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
class Probe:
    """One precondition: what was probed, whether it holds, and what was seen."""

    name: str
    ok: bool
    detail: str = ""


@dataclass
class CheckReport:
    """The result of one check; ``verdict`` is ``pass``, ``fail`` or ``refused``.

    ``passed`` is True only for ``pass``. ``sections`` holds one report per gradient when a
    backward returns several (``dx``, ``dw``, ``db``); the top-level fields then repeat the
    first section that did not pass (or the first section).
    """

    name: str
    kind: str
    verdict: str
    diagnosis: str
    summary: str
    input_shape: tuple
    output_shape: tuple | None  # None when f was refused before it returned anything usable
    dtype: str
    tolerance: Tolerance
    gradient: str = "dx"
    cause: str = ""
    batch_size: int | None = None
    factor: float | None = None
    convention: str | None = None
    witnesses: list = field(default_factory=list)
    worst: list = field(default_factory=list)
    kinks: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    probes: list = field(default_factory=list)
    sections: list = field(default_factory=list)
    sampled: str = ""
    seed: int | None = None

    def __post_init__(self):
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict: expected one of {VERDICTS}, got {self.verdict!r}")

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"

    def as_dict(self) -> dict:
        d = asdict(self)
        d["passed"] = self.passed
        d["input_shape"] = list(self.input_shape)
        d["output_shape"] = None if self.output_shape is None else list(self.output_shape)
        d["tolerance"]["explanation"] = self.tolerance.explain()
        d["sections"] = [s.as_dict() for s in self.sections]
        return _jsonable(d)

    def to_json(self, path) -> None:
        """Write ``as_dict()`` atomically (a temporary file beside ``path``, then ``os.replace``)."""
        write_json_atomic(self.as_dict(), path)

    def __str__(self) -> str:
        return "\n".join(_lines(self, top=True))


def write_json_atomic(obj, path) -> None:
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".check-", suffix=".json", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(obj, fh, indent=2)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


_WORD = {"pass": "pass", "fail": "FAIL", "refused": "REFUSED"}


def _lines(r: CheckReport, top: bool) -> list:
    ind = "  " if top else "    "
    batch = f", batch of N={r.batch_size}" if r.batch_size is not None else ""
    if top:
        head = [
            f"{r.kind} {r.name}: {_WORD[r.verdict]} ({r.diagnosis})",
            f"  function  : {tuple(r.input_shape)} -> "
            f"{'?' if r.output_shape is None else tuple(r.output_shape)}{batch}, {r.dtype}"
            + (f", seed {r.seed}" if r.seed is not None else ""),
        ]
    else:
        head = [f"  section {r.gradient}: {_WORD[r.verdict]} ({r.diagnosis}), {r.gradient[1:]} {tuple(r.input_shape)}"]
    lines = head
    if r.verdict == "refused":
        lines.append(f"{ind}refused   : {r.cause}")
    lines.append(f"{ind}diagnosis : {r.diagnosis}: {r.summary}")
    if r.factor is not None:
        lines.append(f"{ind}factor    : analytic = {nice(r.factor)} x numeric")
    if r.convention is not None:
        lines.append(f"{ind}convention: {r.convention}")
    if top and r.verdict != "refused":
        lines.append(f"{ind}tolerance : {r.tolerance.explain()}")
    if top and r.probes:
        lines.append(f"{ind}probes    :")
        for p in r.probes:
            lines.append(f"{ind}  {'ok  ' if p.ok else 'FAIL'}  {p.name}" + (f": {p.detail}" if p.detail else ""))
    if top and r.sections:  # one section per gradient follows: no repetition here
        for s in r.sections:
            lines.extend(_lines(s, top=False))
        return lines
    if r.sampled:
        lines.append(f"{ind}sampled   : {r.sampled}")
    if r.witnesses:
        lines.append(f"{ind}witnesses :")
        for w in r.witnesses:
            lines.append(
                f"{ind}  {'pass' if w.passed else 'FAIL'}  {w.name}: {w.diagnosis}, "
                f"{w.n_failed}/{w.n_entries} beyond tolerance, max abs {w.max_abs:.2e}, "
                f"max rel {w.max_rel:.2e}" + (f"; {w.detail}" if w.detail else "")
            )
    if r.worst:
        title = "worst entries" if r.verdict == "fail" else "largest differences"
        lines.append(f"{ind}{title}:")
        lines.extend(_entry_table(r.worst, ind=ind + "  "))
    if r.kinks:
        lines.append(f"{ind}entries at a kink (one-sided finite differences):")
        lines.extend(_entry_table(r.kinks, one_sided=True, ind=ind + "  "))
    for n in r.notes:
        lines.append(f"{ind}note: {n}")
    return lines


def _entry_table(entries, one_sided=False, ind="    ") -> list:
    names = [e.where + (f" of {e.output}" if e.output else "") for e in entries]
    width = max([len("entry")] + [len(n) for n in names])
    head = f"{'entry':<{width}} {'analytic':>11} {'numeric':>11}"
    head += f" {'left':>9} {'right':>9}" if one_sided else f" {'abs err':>9} {'rel err':>9} {'tol':>9} {'fd err':>9}"
    rows = [ind + head]
    for name, e in zip(names, entries):
        s = f"{name:<{width}} {e.analytic:>11.4g} {e.numeric:>11.4g}"
        if one_sided:
            s += f" {e.left:>9.3g} {e.right:>9.3g}"
        else:
            s += f" {e.abs_error:>9.2e} {e.rel_error:>9.2e} {e.tolerance:>9.2e} {e.fd_error:>9.2e}"
        if e.note:
            s += f"  {e.note}"
        rows.append(ind + s)
    return rows


def _jsonable(obj):
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        v = float(obj)
        return v if math.isfinite(v) else str(v)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def nice(c: float) -> str:
    """``2``, ``0.5 (= 1/2)``, ``128 (= N)``-free plain value otherwise."""
    frac = Fraction(c).limit_denominator(1024)
    if abs(float(frac) - c) <= 1e-6 * max(1.0, abs(c)):
        if frac.denominator == 1:
            return str(frac.numerator)
        return f"{float(frac):.6g} (= {frac})"
    return f"{c:.6g}"


def index_name(array: str, flat: int, shape: tuple) -> str:
    """``dW[4, 0]``: the array's name and the multi-index of flat index ``flat`` in ``shape``."""
    if len(shape) == 0:
        return array
    idx = np.unravel_index(int(flat), shape)
    return f"{array}[{', '.join(str(int(i)) for i in idx)}]"
