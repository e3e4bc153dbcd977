"""Gradient checks for *someone else's* derivative code, with a diagnosis.

Public API (:mod:`.api`)::

    check_jacobian(f, jacobian, x)            check_vjp(f, vjp, x)
    check_batch_jacobian(f, jacobians, X)     check_batch_vjp(f, vjp, X)
    check_loss(loss_fn, X, y=None)            CS231n ``loss, dx = loss_fn(X, y)``
    from_cs231n(forward, backward, *params, **kwargs) -> (f, vjp)
    from_cs231n_loss(loss_fn, y) -> (f, vjp)

Every check returns a :class:`CheckReport` (:mod:`.report`) whose ``verdict`` is ``pass``,
``fail`` or ``refused``. The parts: :mod:`.probes` (the preconditions checked before any
verdict), :mod:`.witnesses` (finite differences, full or sampled; the library's references;
the inner-product identity), :mod:`.diagnosis` (the named patterns), :mod:`.report`, and
:mod:`.cli` (``jacobian-nn check``; never imported by the library). :mod:`.gallery` holds
deliberately wrong code and the diagnosis each slip must get.
"""

from .api import (
    TOP_K,
    CS231nPair,
    check_batch_jacobian,
    check_batch_vjp,
    check_jacobian,
    check_loss,
    check_vjp,
    from_cs231n,
    from_cs231n_loss,
)
from .diagnosis import DIAGNOSES, EXPLAIN, FACTOR_RTOL
from .probes import CAUSES, LINEARITY_A, Refusal
from .report import ERR_FACTOR, TOL_SQRT_EPS_FACTOR, VERDICTS, CheckReport, Entry, Probe, Tolerance, Witness
from .witnesses import (
    FD_STEPS,
    FULL_JACOBIAN_MAX_COLUMNS,
    FULL_JACOBIAN_MAX_ENTRIES,
    REFERENCES,
    SAMPLE_ENTRIES,
    SAMPLE_SAMPLES,
    VJP_PAIRS,
)

__all__ = [
    "CAUSES",
    "CS231nPair",
    "CheckReport",
    "DIAGNOSES",
    "ERR_FACTOR",
    "EXPLAIN",
    "Entry",
    "FACTOR_RTOL",
    "FD_STEPS",
    "FULL_JACOBIAN_MAX_COLUMNS",
    "FULL_JACOBIAN_MAX_ENTRIES",
    "LINEARITY_A",
    "Probe",
    "REFERENCES",
    "Refusal",
    "SAMPLE_ENTRIES",
    "SAMPLE_SAMPLES",
    "TOL_SQRT_EPS_FACTOR",
    "TOP_K",
    "Tolerance",
    "VERDICTS",
    "VJP_PAIRS",
    "Witness",
    "check_batch_jacobian",
    "check_batch_vjp",
    "check_jacobian",
    "check_loss",
    "check_vjp",
    "from_cs231n",
    "from_cs231n_loss",
]
