"""The proof registry: claims from the sources, their verdicts, and the checks that decide them.

A *proof* is one statement that a source document makes (in prose, LaTeX or code), registered with
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
#: The origin of a proof that no seed states: the library's own derivation (a formula in a ``jacobian_nn``
#: docstring, quoted as the statement), checked like a seed's. It is not a sixth seed: it is not in
#: :data:`SOURCES`, and README's index names it as the library's own statement.
LIBRARY = "library"
#: What ``proof(seed=...)`` accepts: a seed, or :data:`LIBRARY`.
ORIGINS = SEEDS + (LIBRARY,)

#: The five source documents (Chinese tutorials), as each document identifies itself. ``name`` is the
#: short name every proof cites; README's Sources section is generated from this table.
SOURCES = {
    "000": dict(
        name="FCNN-Jacobian notes",
        title="none given (the text opens with 注意:这不是什么入门教程, 'Note: this is not an introductory "
        "tutorial'); a fully connected network with explicit Jacobians, code in NeuralNetwork.py, "
        "NNFunctions.py, NNLayers.py",
        author="not given",
        date="not given",
    ),
    "001": dict(
        name="numpy-layers post",
        title="一步一步用numpy实现神经网络各种层 ('Implementing neural-network layers in numpy, step by step')",
        author="admin (as the page gives it)",
        date="2024-06-17 (发布时间)",
    ),
    "002": dict(
        name="DLFS notes",
        title="none given (the text opens with 'Python Basic'); reading notes whose sections and code follow "
        "the book Deep Learning from Scratch (深度学习入门), which the notes do not name",
        author="not given",
        date="not given",
    ),
    "003": dict(
        name="Made-With-ML MLP",
        title="none given in the text; its citation block gives 'Neural networks - Made With ML' "
        "(a Chinese rendering of that lesson)",
        author="Goku Mohandas (citation block; the translator is not named)",
        date="2022 (citation block)",
    ),
    "004": dict(
        name="CS231n walkthrough",
        title="一段关于神经网络的故事 ('A story about neural networks'), a walkthrough of the 2017 CS231n "
        "assignment 2 (Q1-Q3)",
        author="not given by name (the author calls themself 盗图大仙)",
        date="not given",
    ),
}


def source_name(seed: str) -> str:
    """The short name a proof cites source ``seed`` by (e.g. ``"004"`` -> ``"CS231n walkthrough"``;
    :data:`LIBRARY` -> ``"jacobian_nn's own statement"``)."""
    if seed == LIBRARY:
        return "jacobian_nn's own statement"
    return SOURCES[seed]["name"]


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
    prose: bool = False
    opposite: object = None


PROOFS: dict[str, Proof] = {}


def proof(
    *,
    id: str,
    seed: str,
    location: str,
    statement: str,
    verdict: str,
    corrected: str | None = None,
    prose: bool = False,
    opposite=None,
):
    """Register the decorated function as the numeric check of a new proof ``id``.

    ``seed``: the source document (one of :data:`SEEDS`), or :data:`LIBRARY` for a statement that no seed
    makes and the library states itself (its docstring formula is then the quoted statement).

    ``prose=True`` marks a slip of wording (a wrong word, a mislabelled quantity) rather than of a formula;
    its check holds the evidence. ``opposite`` overrides the keyword arguments with which
    :func:`substitution` runs the check on the verdict's opposite (see there).
    """
    if verdict not in VERDICTS:
        raise ValueError(f"verdict: expected one of {VERDICTS}, got {verdict!r}")
    if seed not in ORIGINS:
        raise ValueError(f"seed: expected one of {ORIGINS}, got {seed!r}")
    if seed == LIBRARY and verdict != HOLDS:
        raise ValueError(f"{id}: a statement of the library itself is checked to hold; an erratum needs a seed")
    if (verdict == HOLDS) != (corrected is None):
        raise ValueError(f"{id}: a corrected statement is required exactly when the verdict is not 'holds'")

    def deco(fn):
        if id in PROOFS:
            raise ValueError(f"proof id {id!r} registered twice")
        if not (fn.__doc__ or "").strip():
            raise ValueError(f"{id}: the check function needs a Markdown docstring")
        p = Proof(
            id,
            seed,
            location,
            statement,
            verdict,
            corrected,
            fn.__module__,
            fn.__name__,
            fn.__doc__,
            prose=prose,
            opposite=opposite,
        )
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


def perturb(value, rel=1e-2):
    """``value`` made slightly wrong: numbers and arrays scaled by ``1 + rel`` and shifted by ``rel``; booleans
    negated; tuples, lists and dicts entry by entry; a callable returns the perturbation of its result."""
    import numpy as np

    if callable(value):
        return lambda *a, **k: perturb(value(*a, **k), rel)
    if isinstance(value, (bool, np.bool_)):
        return not value
    if isinstance(value, dict):
        return {k: perturb(v, rel) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return type(value)(perturb(v, rel) for v in value)
    arr = np.asarray(value, dtype=np.float64)
    out = arr * (1 + rel) + rel
    return float(out) if arr.ndim == 0 else out


def substitution(p: Proof) -> dict:
    """Keyword arguments that run ``p``'s numeric check with the verdict's opposite substituted.

    A check states its formulas as keyword parameters with defaults. On an erratum they are ``seed``
    (what the source states) and ``corrected``; on a convention, ``seed`` is the reading the convention
    excludes and ``corrected`` the one it states. The opposite swaps them, so the check is asked to
    certify the excluded formula as right and the correction as wrong. On *holds* the parameter is ``claim`` (the source's formula): the
    opposite is :func:`perturb` of it. ``p.opposite`` (a dict, or a callable returning one) overrides.
    The check must then fail (``proofs/test_proofs_meta.py``).
    """
    import inspect

    if p.opposite is not None:
        return dict(p.opposite() if callable(p.opposite) else p.opposite)
    fn = next(c.fn for c in p.checks if c.kind == "numeric")
    params = inspect.signature(fn).parameters
    defaults = {k: v.default for k, v in params.items() if v.default is not inspect.Parameter.empty}
    if "seed" in defaults and "corrected" in defaults:
        return {"seed": defaults["corrected"], "corrected": defaults["seed"]}
    if "claim" in defaults:
        return {"claim": perturb(defaults["claim"])}
    raise LookupError(f"{p.id}: its check has no 'seed'/'corrected' or 'claim' parameter and no opposite=")


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
