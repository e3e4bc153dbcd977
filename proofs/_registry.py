"""The proof registry: claims from the seeds, their verdicts, and the checks that decide them.

A *proof* is one statement that a seed makes (in prose, LaTeX or code), registered with
:func:`proof` on its main check function. That function is a pytest test (``test_*``)
and runs the numeric checks (finite differences from :mod:`jacobian_nn.fd`, and the
library's own implementation). Its docstring is the proof's Markdown: the quoted
statement, the derivation, the verdict. A second function registered with
:func:`symbolic` holds the sympy check of the same proof (a symbol for every entry at
small concrete sizes, the identity simplified to zero).

sympy is only in the ``test`` extra. A symbolic check calls :func:`require_sympy`, which
raises :class:`SympyMissing` when sympy is not installed; the runner reports that check
as *skipped* and counts it separately (under pytest it becomes a pytest skip).
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
import time
from dataclasses import dataclass, field

HOLDS = "holds"
CONVENTION = "holds under a stated convention"
WRONG = "wrong"
VERDICTS = (HOLDS, CONVENTION, WRONG)
SEEDS = ("000", "001", "002", "003", "004")


class SympyMissing(Exception):
    """Raised by :func:`require_sympy` when sympy is not installed."""


def require_sympy():
    """Return the sympy module, or skip the calling symbolic check."""
    try:
        import sympy
    except ImportError:  # pragma: no cover - depends on the environment
        if "pytest" in sys.modules:
            import pytest

            pytest.skip("sympy is not installed (it is in the 'test' extra)")
        raise SympyMissing("sympy is not installed (it is in the 'test' extra)") from None
    return sympy


@dataclass
class Check:
    name: str
    kind: str  # "numeric" or "symbolic"
    fn: object


@dataclass
class Proof:
    id: str
    seed: str
    location: str
    statement: str
    verdict: str
    corrected: str | None
    module: str
    function: str
    doc: str
    checks: list = field(default_factory=list)


PROOFS: dict[str, Proof] = {}


def proof(*, id: str, seed: str, location: str, statement: str, verdict: str, corrected: str | None = None):
    """Register the decorated function as the numeric check of a new proof ``id``."""
    if verdict not in VERDICTS:
        raise ValueError(f"verdict: expected one of {VERDICTS}, got {verdict!r}")
    if seed not in SEEDS:
        raise ValueError(f"seed: expected one of {SEEDS}, got {seed!r}")
    if (verdict == HOLDS) != (corrected is None):
        raise ValueError(f"{id}: a corrected statement is required exactly when the verdict is not 'holds'")

    def deco(fn):
        if id in PROOFS:
            raise ValueError(f"proof id {id!r} registered twice")
        if not (fn.__doc__ or "").strip():
            raise ValueError(f"{id}: the check function needs a Markdown docstring")
        p = Proof(id, seed, location, statement, verdict, corrected, fn.__module__, fn.__name__, fn.__doc__)
        p.checks.append(Check(fn.__name__, "numeric", fn))
        PROOFS[id] = p
        return fn

    return deco


def symbolic(id: str):
    """Register the decorated function as the sympy check of the proof ``id`` (registered before)."""

    def deco(fn):
        if id not in PROOFS:
            raise ValueError(f"symbolic check {fn.__name__}: proof {id!r} is not registered yet")
        PROOFS[id].checks.append(Check(fn.__name__, "symbolic", fn))
        return fn

    return deco


def load_all() -> dict[str, Proof]:
    """Import every ``proofs/proof_*.py`` module (which registers its proofs)."""
    package = importlib.import_module(__package__)  # "proofs", or "jacobian_nn._proofs" when installed

    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        if info.name.startswith("proof_"):
            importlib.import_module(f"{__package__}.{info.name}")
    return PROOFS


@dataclass
class Result:
    proof: Proof
    check: Check
    status: str  # "pass", "fail", "skip"
    message: str
    seconds: float


def run_check(p: Proof, c: Check) -> Result:
    t0 = time.perf_counter()
    try:
        c.fn()
    except SympyMissing as e:
        return Result(p, c, "skip", str(e), time.perf_counter() - t0)
    except AssertionError as e:
        return Result(p, c, "fail", f"AssertionError: {e}", time.perf_counter() - t0)
    except Exception as e:  # noqa: BLE001 - a crashing check is a failed check
        return Result(p, c, "fail", f"{type(e).__name__}: {e}", time.perf_counter() - t0)
    except BaseException as e:  # pytest.skip raised outside pytest's runner
        if type(e).__name__ == "Skipped":
            return Result(p, c, "skip", str(e), time.perf_counter() - t0)
        raise
    return Result(p, c, "pass", "", time.perf_counter() - t0)


def run(kinds=("numeric", "symbolic")) -> list[Result]:
    load_all()
    return [run_check(p, c) for p in PROOFS.values() for c in p.checks if c.kind in kinds]
