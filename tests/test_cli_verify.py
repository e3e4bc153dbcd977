"""`jacobian-nn verify`: table on stdout, JSON report, exit code."""

import json
import subprocess
import sys

from jacobian_nn import cli, verify
from jacobian_nn.fd import Comparison


def test_verify_passes_and_writes_json(tmp_path, capsys):
    out = tmp_path / "verify.json"
    assert cli.main(["verify", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "max abs" in text and " 0 failed" in text
    report = json.loads(out.read_text())
    assert report["passed"] is True
    groups = {r["group"] for r in report["rows"]}
    assert {"activation", "loss", "dense", "network"} <= groups
    assert all({"name", "max_abs", "max_rel", "location", "tolerance", "passed"} <= set(r) for r in report["rows"])


def test_verify_exit_code_is_nonzero_on_a_failure(monkeypatch, capsys):
    def failing():
        return [Comparison("deliberately wrong", 1.0, 1.0, (0, 0), 1e-9, False)]

    monkeypatch.setattr(verify, "GROUPS", [("planted", failing)])
    assert cli.main(["verify"]) == 1
    assert "FAIL" in capsys.readouterr().out


def test_python_dash_m_entry_point():
    res = subprocess.run([sys.executable, "-m", "jacobian_nn", "--help"], capture_output=True, text=True)
    assert res.returncode == 0 and "verify" in res.stdout
