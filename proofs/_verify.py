"""The ``proofs`` group of ``jacobian-nn verify``: every proof check as a report row.

Numeric checks always run. Symbolic checks run when sympy is installed (it is in the
``test`` extra); without it they are not run, and one row says how many were skipped
and why, so they are counted separately from the checks that passed. The last row
summarises: proofs, checks passed / failed / skipped.
"""

from __future__ import annotations

from jacobian_nn.fd import Comparison

from ._registry import HOLDS, run


def _row(name: str, passed: bool) -> Comparison:
    return Comparison(name, 0.0, 0.0, (), 0.0, passed)


def proof_rows() -> list[Comparison]:
    results = run(("numeric", "symbolic"))
    rows = [_row(f"{r.proof.id} [{r.check.kind}]", r.status == "pass") for r in results if r.status != "skip"]
    skipped = [r for r in results if r.status == "skip"]
    if skipped:
        rows.append(_row(f"{len(skipped)} symbolic checks SKIPPED: sympy not installed (pip install '.[test]')", True))
    proofs = {r.proof.id: r.proof for r in results}
    n_pass = sum(r.status == "pass" for r in results)
    n_fail = sum(r.status == "fail" for r in results)
    n_err = sum(p.verdict != HOLDS for p in proofs.values())
    rows.append(_row(f"{len(proofs)} proofs ({n_err} errata): {n_pass} checks passed, {n_fail} failed, "
                     f"{len(skipped)} skipped", n_fail == 0))
    return rows
