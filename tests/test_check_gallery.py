"""The gallery of deliberately wrong implementations: each slip caught with the right diagnosis,
each correct version passing (relu at exactly 0 included), and verify's ``check`` group agreeing."""

import pytest

from jacobian_nn import verify
from jacobian_nn.check.gallery import EXPECTED_FACTOR, GALLERY, gallery_rows

CASES = {c.name: c for c in GALLERY}


def test_gallery_covers_every_slip_of_the_issue():
    wrong = {c.expected for c in GALLERY if not c.should_pass}
    assert wrong == {"transposed", "sign_flipped", "constant_factor", "missing_batch_scaling", "diagonal_only",
                     "mismatch"}
    assert sum(not c.should_pass for c in GALLERY) == 8
    assert {"rounding", "kink"} <= {c.expected for c in GALLERY if c.should_pass}


@pytest.mark.parametrize("name", list(CASES))
def test_gallery_case_verdict(name):
    case = CASES[name]
    report = case.run()
    assert report.passed == case.should_pass, str(report)


@pytest.mark.parametrize("name", list(CASES))
def test_gallery_case_diagnosis(name):
    case = CASES[name]
    report = case.run()
    assert report.diagnosis == case.expected, str(report)
    if name in EXPECTED_FACTOR:
        assert report.factor == pytest.approx(EXPECTED_FACTOR[name], rel=1e-6)


@pytest.mark.parametrize("name", [n for n, c in CASES.items() if not c.should_pass])
def test_failing_reports_list_worst_entries_beyond_tolerance(name):
    report = CASES[name].run()
    assert report.worst and not report.worst[0].passed
    assert report.worst[0].abs_error > report.worst[0].tolerance


def test_kink_cases_report_the_convention():
    left = CASES["ok relu at 0, x <= 0 branch"].run()
    right = CASES["ok relu at 0, x >= 0 branch"].run()
    assert "x <= 0 branch, this library's convention" in left.convention
    assert "x >= 0 branch" in right.convention and "library's convention" not in right.convention
    assert len(left.kinks) == 3 and all(e.left == 0.0 and e.right == pytest.approx(1.0) for e in left.kinks)
    assert any("convention, not a bug" in n for n in right.notes)


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
