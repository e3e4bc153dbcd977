"""The gallery of deliberately wrong implementations: each slip caught with the right verdict and
diagnosis, each correct twin passing (relu at exactly 0 included), at the three sizes and in both
dtypes, and verify's ``check`` group agreeing."""

import pytest

from jacobian_nn import verify
from jacobian_nn.check.gallery import GALLERY, SIZES, SLIPS, gallery_rows, slip_outcome

CASES = {c.name: c for c in GALLERY}


def test_gallery_covers_every_slip_of_the_issue():
    wrong = {c.expected for c in GALLERY if c.verdict != "pass"}
    assert wrong == {
        "transposed",
        "sign_flipped",
        "constant_factor",
        "missing_batch_scaling",
        "diagonal_only",
        "mismatch",
        "off_at_label",
        "not_deterministic",
        "ignores_cotangent",
        "mutates_argument",
        "wrong_shape",
    }
    assert {"rounding", "kink"} <= {c.expected for c in GALLERY if c.verdict == "pass"}
    assert {"refused", "fail", "pass"} == {c.verdict for c in GALLERY}


@pytest.mark.parametrize("name", list(CASES))
def test_gallery_case(name):
    case = CASES[name]
    report = case.run()
    assert report.verdict == case.verdict, str(report)
    assert report.diagnosis == case.expected, str(report)
    if case.factor is not None:
        assert report.factor == pytest.approx(case.factor, rel=1e-6)


@pytest.mark.parametrize("name", [n for n, c in CASES.items() if c.verdict == "fail"])
def test_failing_reports_list_worst_entries_beyond_tolerance(name):
    report = CASES[name].run()
    assert report.worst and not report.worst[0].passed
    assert report.worst[0].abs_error > report.worst[0].tolerance


@pytest.mark.parametrize("name", [n for n, c in CASES.items() if c.verdict == "refused"])
def test_refused_reports_name_their_cause(name):
    report = CASES[name].run()
    assert report.cause and not report.passed and report.probes and not report.probes[-1].ok


def test_kink_cases_report_the_convention():
    left = CASES["ok relu at 0, x <= 0 branch"].run()
    right = CASES["ok relu at 0, x >= 0 branch"].run()
    assert "x <= 0 branch, this library's convention" in left.convention
    assert "x >= 0 branch" in right.convention and "library's convention" not in right.convention
    assert len(left.kinks) == 3 and all(e.left == 0.0 and e.right == pytest.approx(1.0) for e in left.kinks)
    assert any("convention, not a bug" in n for n in right.notes)


def test_transposed_dw_is_named_in_its_own_section():
    report = CASES["cs231n affine, dw transposed"].run()
    assert report.gradient == "dw" and [s.verdict for s in report.sections] == ["pass", "fail", "pass"]
    assert report.sections[1].diagnosis == "transposed" and report.worst[0].where.startswith("dw[")


# --------------------------------------------------------------------------- sizes and dtypes
# small and medium for every slip in both dtypes; the large size (N=128, D=512) for every slip in
# one dtype, alternating, so that the suite stays fast (python -m jacobian_nn.check.gallery prints
# the whole table)

GRID = [(s.name, size, dt) for s in SLIPS for size in ("small", "medium") for dt in ("float64", "float32")]
# the two families whose forward is a 128 x 512 x 512 matrix product take tens of seconds at the large
# size on a busy 2-core machine: they are in the table, not in the suite
GEMM_BOUND = {"dense backward, J transposed", "cs231n affine, dw transposed"}
LARGE = [(s.name, "large", ("float64", "float32")[k % 2]) for k, s in enumerate(SLIPS) if s.name not in GEMM_BOUND]
BY_NAME = {s.name: s for s in SLIPS}


@pytest.mark.parametrize("name, size, dtype", GRID + LARGE, ids=[f"{n}-{s}-{d}" for n, s, d in GRID + LARGE])
def test_slip_keeps_its_diagnosis_at_every_size(name, size, dtype):
    out = slip_outcome(BY_NAME[name], size, dtype)
    assert out["ok"], out


def test_sizes_are_the_issues():
    assert SIZES == {"small": (4, 5), "medium": (32, 100), "large": (128, 512)}


# --------------------------------------------------------------------------- verify


def test_verify_group_check_rows_all_pass():
    assert ("check", gallery_rows) in verify.GROUPS
    rows = gallery_rows()
    assert len(rows) == len(GALLERY) and all(r.passed for r in rows), [r.name for r in rows if not r.passed]


def test_verify_row_fails_when_the_diagnosis_is_wrong(monkeypatch):
    """A row passes only for the expected diagnosis: relabel one case and its row must fail."""
    from dataclasses import replace

    import jacobian_nn.check.gallery as g

    bad = [replace(GALLERY[0], expected="sign_flipped")]
    monkeypatch.setattr(g, "GALLERY", bad)
    rows = g.gallery_rows()
    assert len(rows) == 1 and not rows[0].passed and "want fail, sign_flipped" in rows[0].name
