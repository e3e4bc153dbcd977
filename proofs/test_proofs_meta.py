"""Structure of the proof library: every proof is complete, the README tables are current, and the
library's docstrings point only to proofs that exist."""

from __future__ import annotations

import pathlib
import re

from proofs.__main__ import README, render_readme
from proofs._registry import CONVENTION, HOLDS, SEEDS, WRONG, load_all

ROOT = pathlib.Path(__file__).resolve().parent.parent
VERDICT_MARK = {HOLDS: "**holds**", CONVENTION: "**holds under a stated convention**", WRONG: "**wrong**"}
#: A library docstring points to a proof as ``proofs:<id>`` (e.g. ``proofs:act.elu``).
ID_RE = re.compile(r"``proofs:([a-z0-9_]+\.[a-z0-9_]+)``")


def test_every_proof_is_complete():
    proofs = load_all()
    assert len(proofs) >= 60
    for p in proofs.values():
        doc = p.doc
        assert "\n    > " in doc or doc.lstrip().startswith(">"), f"{p.id}: no quoted seed statement"
        assert "Derivation" in doc, f"{p.id}: no derivation"
        assert VERDICT_MARK[p.verdict] in doc, f"{p.id}: the docstring does not state the verdict {p.verdict!r}"
        assert any(c.kind == "numeric" for c in p.checks), f"{p.id}: no numeric check"
        assert all(c.name.startswith("test_") for c in p.checks), f"{p.id}: a check pytest would not collect"
        assert p.statement and p.location


def test_all_five_seeds_are_covered():
    seeds = {p.seed for p in load_all().values()}
    assert seeds == set(SEEDS)


def test_readme_tables_are_current():
    text = pathlib.Path(README).read_text(encoding="utf-8")
    assert render_readme(text, load_all()) == text, "run: python -m proofs --write-readme"


def test_library_docstrings_point_to_existing_proofs():
    proofs = load_all()
    found = set()
    for path in sorted((ROOT / "jacobian_nn").glob("*.py")):
        for pid in ID_RE.findall(path.read_text(encoding="utf-8")):
            assert pid in proofs, f"{path.name} points to proof {pid!r}, which is not registered"
            found.add(pid)
    for pid in ("act.elu", "softmax.jacobian", "loss.cross_entropy", "dense.backward000", "reg.l2_code000"):
        assert pid in found, f"no library docstring points to {pid}"
