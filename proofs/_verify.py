"""The ``proofs`` group of ``jacobian-nn verify``: every proof check as a report row.

Numeric checks always run; a row gives the worst error of the check's comparisons
(finite differences, or two closed forms of one quantity). Symbolic checks run when
sympy is installed (it is in the ``test`` extra); a row says what sympy showed
("symbolic identity simplified to 0"). Without sympy each symbolic check is a row
marked *skipped*: counted as skipped, never as passed.
"""

from __future__ import annotations

from jacobian_nn.fd import Comparison

from ._helpers import RECORD
from ._registry import PROOFS, Result, load_all, run_check


def _note(result: Result, record: list) -> str:
    if result.status != "pass":
        return result.message
    n = {kind: sum(r[0] == kind for r in record) for kind in ("numeric", "differs", "zero", "nonzero")}
    said = []
    if n["zero"]:
        said.append("symbolic identity simplified to 0" + (f" ({n['zero']} identities)" if n["zero"] > 1 else ""))
    if n["nonzero"]:
        said.append("the stated formula's difference does not simplify to 0 (an erratum)")
    if n["numeric"]:
        said.append(f"{n['numeric']} comparison{'s' if n['numeric'] > 1 else ''} within tolerance")
    if n["differs"]:
        said.append(f"{n['differs']} stated formula{'s' if n['differs'] > 1 else ''} shown to differ")
    return "; ".join(said) or "exact assertions hold (no tolerance involved)"


def _row(result: Result, record: list) -> Comparison:
    name = f"{result.proof.id} [{result.check.kind}]"
    if result.status == "skip":
        return Comparison(
            name, 0.0, 0.0, (), 0.0, False, kind=result.check.kind, note=f"skipped: {result.message}", skipped=True
        )
    numeric = [r for r in record if r[0] == "numeric"]
    worst = max(numeric, key=lambda r: r[1], default=("numeric", 0.0, 0.0, 0.0))
    return Comparison(
        name,
        worst[1],
        max((r[2] for r in numeric), default=0.0),
        (),
        worst[3],
        result.status == "pass",
        kind="numeric" if numeric else "symbolic" if result.check.kind == "symbolic" else "exact",
        note=_note(result, record),
    )


def proof_rows() -> list[Comparison]:
    load_all()
    rows = []
    for p in PROOFS.values():
        for c in p.checks:
            RECORD.clear()
            result = run_check(p, c)
            rows.append(_row(result, list(RECORD)))
    return rows
