"""`jacobian-nn verify`: a short summary a person reads, every row with --verbose, all of it in the JSON,
the exit code; skipped checks counted as skipped, never as passed."""

import contextlib
import io
import json
import subprocess
import sys

import pytest

from jacobian_nn import cli, verify
from jacobian_nn.fd import Comparison


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """One real run: (exit code, stdout, JSON report)."""
    out = tmp_path_factory.mktemp("verify") / "verify.json"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = cli.main(["verify", "--json", str(out)])
    return code, buf.getvalue(), json.loads(out.read_text())


def test_default_output_is_one_line_per_group_and_the_total(full_run):
    code, text, report = full_run
    assert code == 0 and report["passed"] is True
    lines = text.splitlines()
    assert len(lines) <= 40 and max(map(len, lines)) <= 110
    groups = [g for g, _ in verify.GROUPS]
    for g in groups:
        assert sum(line.startswith(f"{g} ") for line in lines) == 1, g
    n = len(report["rows"])
    assert f"verify: {n} passed, 0 failed, 0 skipped" in lines
    assert "caught: transposed" not in text  # rows only with --verbose


def test_json_is_complete(full_run):
    _, _, report = full_run
    groups = {r["group"] for r in report["rows"]}
    assert groups == {g for g, _ in verify.GROUPS}
    keys = {
        "group",
        "name",
        "max_abs",
        "max_rel",
        "location",
        "tolerance",
        "passed",
        "kind",
        "note",
        "skipped",
        "status",
    }
    assert all(keys <= set(r) for r in report["rows"])
    assert report["counts"] == {"passed": len(report["rows"]), "failed": 0, "skipped": 0}
    assert [g["group"] for g in report["groups"]] == [g for g, _ in verify.GROUPS]
    assert sum(g["checks"] for g in report["groups"]) == len(report["rows"])


def test_gallery_and_proof_rows_say_what_they_are(full_run):
    _, _, report = full_run
    rows = {r["name"]: r for r in report["rows"]}
    slip = rows["dense J transposed"]
    assert slip["kind"] == "slip" and slip["note"] == "caught: transposed (expected)" and slip["passed"]
    assert rows["ok dense J"]["note"] == "rounding (expected)" and rows["ok dense J"]["kind"] == "numeric"
    proofs = [r for r in report["rows"] if r["group"] == "proofs"]
    symbolic = [r for r in proofs if r["name"].endswith("[symbolic]")]
    assert symbolic and all("simplified to 0" in r["note"] for r in symbolic)
    assert all(r["kind"] == "symbolic" for r in symbolic)
    numeric = [r for r in proofs if r["kind"] == "numeric"]
    assert numeric and any(r["max_abs"] > 0 for r in numeric)
    assert all("within tolerance" in r["note"] for r in numeric)
    # no proof row carries filler numbers: rows without comparisons are not of kind numeric
    assert all(r["kind"] in ("numeric", "symbolic", "exact") for r in proofs)


def test_verbose_lists_every_row(capsys, monkeypatch):
    rows = [
        Comparison("fine", 1e-12, 1e-12, (0,), 1e-9, True),
        Comparison("slip", 0.5, 1.0, (1, 2), 1e-7, True, kind="slip", note="caught: transposed (expected)"),
    ]
    monkeypatch.setattr(verify, "GROUPS", [("planted", lambda: rows)])
    assert cli.main(["verify"]) == 0
    short = capsys.readouterr().out
    assert "caught: transposed (expected)" not in short and "planted" in short
    assert cli.main(["verify", "--verbose"]) == 0
    text = capsys.readouterr().out
    assert "caught: transposed (expected)" in text and "fine" in text
    assert "pass: caught" not in text  # a slip's row reads as what it is


def test_failures_are_printed_in_full_and_the_exit_code_is_1(monkeypatch, capsys):
    def failing():
        return [
            Comparison("deliberately wrong", 1.0, 1.0, (0, 0), 1e-9, False, note="the reason"),
            Comparison("fine", 0.0, 0.0, (0,), 1e-9, True),
        ]

    monkeypatch.setattr(verify, "GROUPS", [("planted", failing)])
    assert cli.main(["verify"]) == 1
    text = capsys.readouterr().out
    assert "FAILED (1):" in text and "[planted] deliberately wrong" in text and "the reason" in text
    assert "max abs 1.000e+00" in text and "verify: 1 passed, 1 failed, 0 skipped" in text


def test_skipped_is_counted_as_skipped_not_passed(monkeypatch, capsys):
    skipped = Comparison(
        "needs sympy", 0.0, 0.0, (), 0.0, False, kind="symbolic", note="skipped: no sympy", skipped=True
    )
    fine = Comparison("fine", 0.0, 0.0, (0,), 1e-9, True)
    monkeypatch.setattr(verify, "GROUPS", [("planted", lambda: [fine, skipped])])
    assert cli.main(["verify"]) == 0
    text = capsys.readouterr().out
    assert "verify: 1 passed, 0 failed, 1 skipped" in text and "1 checks skipped: no sympy" in text
    assert "every check that ran passed (1 skipped)" in text and "all checks passed" not in text
    # near miss: nothing but skipped checks is not a pass
    monkeypatch.setattr(verify, "GROUPS", [("planted", lambda: [skipped])])
    assert cli.main(["verify"]) == 1
    text = capsys.readouterr().out
    assert "verify: 0 passed, 0 failed, 1 skipped" in text and "FAILED: no check passed" in text


def test_proof_rows_without_sympy_are_skipped(monkeypatch):
    import importlib

    from jacobian_nn._bundled import bundled

    pv = bundled("proofs", "_verify")
    registry = importlib.import_module(pv.__package__ + "._registry")
    registry.load_all()
    one = {k: p for k, p in registry.PROOFS.items() if k == "act.relu"}
    assert {c.kind for c in one["act.relu"].checks} == {"numeric", "symbolic"}
    monkeypatch.setattr(pv, "PROOFS", one)
    monkeypatch.setitem(sys.modules, "sympy", None)  # import sympy now fails
    rows = {r.name: r for r in pv.proof_rows()}
    sym, num = rows["act.relu [symbolic]"], rows["act.relu [numeric]"]
    assert sym.skipped and not sym.passed and "sympy" in sym.note
    assert num.passed and not num.skipped and num.kind == "numeric" and num.max_abs <= num.tolerance


def test_python_dash_m_entry_point():
    res = subprocess.run([sys.executable, "-m", "jacobian_nn", "--help"], capture_output=True, text=True)
    assert res.returncode == 0 and "verify" in res.stdout


def test_the_images_and_catalogue_groups_fail_on_a_wrong_jacobian(monkeypatch):
    """The new groups compare the library's own Jacobians with finite differences: a Jacobian off by 1 %
    in one layer (a sparse one for the images) must fail that row and only that row."""
    from jacobian_nn.conv import MaxPool2D
    from jacobian_nn.layernorm import LayerNorm

    assert all(c.passed for c in verify.image_rows() + verify.catalogue_rows())
    pool_jacobian, ln_jacobian = MaxPool2D.jacobian_x, LayerNorm.jacobian_x
    monkeypatch.setattr(MaxPool2D, "jacobian_x", lambda self, x: 1.01 * pool_jacobian(self, x))
    monkeypatch.setattr(LayerNorm, "jacobian_x", lambda self, x: 1.01 * ln_jacobian(self, x))
    failed = [c.name for c in verify.image_rows() + verify.catalogue_rows() if not c.passed]
    assert failed == ["maxpool2d 2x4x4, 2x2: dy/dx (sparse)", "layernorm: dy/dx (m, m)"]
