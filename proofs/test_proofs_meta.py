"""Structure of the proof library: every proof is complete, the README tables are current, and the
library's docstrings point only to proofs that exist."""

from __future__ import annotations

import pathlib
import re

import pytest

from proofs.__main__ import README, render_readme
from proofs._registry import CONVENTION, HOLDS, LIBRARY, SEEDS, WRONG, load_all, substitution

ROOT = pathlib.Path(__file__).resolve().parent.parent
VERDICT_MARK = {HOLDS: "**holds**", CONVENTION: "**holds under a stated convention**", WRONG: "**wrong**"}
#: A library docstring points to a proof as ``proofs:<id>`` (e.g. ``proofs:act.elu``).
ID_RE = re.compile(r"``proofs:([a-z0-9_]+\.[a-z0-9_]+)``")


def test_every_proof_is_complete():
    proofs = load_all()
    assert len(proofs) >= 60
    for p in proofs.values():
        doc = p.doc
        assert "\n    > " in doc or doc.lstrip().startswith(">"), f"{p.id}: no quoted source statement"
        assert "Derivation" in doc, f"{p.id}: no derivation"
        assert VERDICT_MARK[p.verdict] in doc, f"{p.id}: the docstring does not state the verdict {p.verdict!r}"
        assert any(c.kind == "numeric" for c in p.checks), f"{p.id}: no numeric check"
        assert all(c.name.startswith("test_") for c in p.checks), f"{p.id}: a check pytest would not collect"
        assert p.statement and p.location


def test_all_five_seeds_are_covered():
    seeds = {p.seed for p in load_all().values()}
    assert seeds - {LIBRARY} == set(SEEDS)


def test_library_statements_are_marked_as_such():
    """A proof of the library's own statement is registered with seed=LIBRARY, holds, quotes a library
    docstring, and says in its Markdown that no seed states it; the registry refuses an erratum of it."""
    from proofs._registry import proof

    own = [p for p in load_all().values() if p.seed == LIBRARY]
    assert {"layernorm.backward", "loss.svm", "loss.bce", "loss.sigmoid_bce"} <= {p.id for p in own}
    for p in own:
        assert p.verdict == HOLDS
        assert "No seed states" in p.doc, f"{p.id}: the Markdown must say that no seed states it"
    with pytest.raises(ValueError, match="an erratum needs a seed"):
        proof(id="x.z", seed=LIBRARY, location="l", statement="s", verdict=WRONG, corrected="c")
    with pytest.raises(ValueError, match="seed: expected one of"):
        proof(id="x.z", seed="005", location="l", statement="s", verdict=HOLDS)


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


def test_every_proof_has_a_substitution():
    """Coverage: the substitution test below reaches every registered proof."""
    missing = []
    for p in load_all().values():
        try:
            kw = substitution(p)
        except LookupError as e:
            missing.append(str(e))
            continue
        assert kw, f"{p.id}: an empty substitution would rerun the check unchanged"
    assert not missing, missing


@pytest.mark.parametrize("pid", sorted(load_all()))
def test_check_fails_with_the_opposite_substituted(pid):
    """Run the proof's numeric check with the verdict's opposite substituted (errata: the source's formula and
    the corrected one swapped; holds: the formula perturbed): it must fail with an AssertionError."""
    p = load_all()[pid]
    fn = next(c.fn for c in p.checks if c.kind == "numeric")
    kw = substitution(p)
    try:
        fn(**kw)
    except AssertionError:
        return
    raise AssertionError(
        f"{pid}: the check passed with {sorted(kw)} substituted, so it cannot tell the verdict from its opposite"
    )


def test_substitution_near_miss():
    """The rule's other branch: the same checks with their own defaults pass, and perturb() really moves values."""
    import numpy as np

    from proofs._registry import perturb

    p = load_all()["act.sigmoid"]
    p.checks[0].fn()  # defaults: passes
    assert perturb(1.0) != 1.0 and perturb(True) is False
    assert not np.allclose(perturb(lambda: np.zeros(3))(), np.zeros(3))
    assert perturb({"a": (1.0, 2.0)})["a"][1] != 2.0


def test_substitution_rules():
    """Each branch of substitution(): an explicit opposite wins; seed/corrected are swapped; claim is perturbed;
    a check with none of them is refused (so coverage cannot pass by accident)."""
    from proofs._registry import Check, Proof

    def make(fn, opposite=None):
        p = Proof("x.y", "000", "loc", "stmt", HOLDS, None, "m", fn.__name__, "doc", opposite=opposite)
        p.checks.append(Check(fn.__name__, "numeric", fn))
        return p

    def swap(seed=1.0, corrected=2.0):
        return seed, corrected

    def hold(claim=3.0):
        return claim

    def bare():
        return None

    assert substitution(make(swap)) == {"seed": 2.0, "corrected": 1.0}
    assert substitution(make(hold))["claim"] != 3.0
    assert substitution(make(bare, opposite={"k": 5})) == {"k": 5}
    assert substitution(make(bare, opposite=lambda: {"k": 6})) == {"k": 6}
    with pytest.raises(LookupError, match="x.y"):
        substitution(make(bare))
