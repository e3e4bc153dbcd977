"""``jacobian-nn check``: every command written in an examples/gallery file's docstring runs, gives
the diagnosis written next to it and the matching exit code; JSON output; errors exit 2."""

import json
import pathlib
import re
import shlex
import subprocess
import sys

import pytest

from jacobian_nn.cli import COMMANDS, main

ROOT = pathlib.Path(__file__).resolve().parents[1]
GALLERY = ROOT / "examples" / "gallery"


def documented_commands():
    """``(file, argv, expected_pass, expected_diagnosis)`` from each example's docstring."""
    out = []
    for path in sorted(GALLERY.glob("*.py")):
        doc = path.read_text(encoding="utf-8").split('"""')[1]
        doc = re.sub(r"\\\n\s*", " ", doc)               # join continued lines
        for line in doc.splitlines():
            m = re.match(r"\s*jacobian-nn check (\S+) (.*?)\s+#\s*(FAIL: (\w+)|pass(: kink)?)", line)
            if m:
                argv = ["check", str(ROOT / m.group(1))] + shlex.split(m.group(2))
                diagnosis = m.group(4) or ("kink" if m.group(5) else "rounding")
                out.append((path.name, argv, m.group(3).startswith("pass"), diagnosis))
    return out


COMMANDS_DOCUMENTED = documented_commands()


def test_every_gallery_file_documents_a_failing_and_a_passing_command():
    files = {p.name for p in GALLERY.glob("*.py")}
    assert len(files) == 8
    for name in files:
        verdicts = {ok for f, _, ok, _ in COMMANDS_DOCUMENTED if f == name}
        assert verdicts == {True, False}, name


@pytest.mark.parametrize("file, argv, ok, diagnosis", COMMANDS_DOCUMENTED,
                         ids=[f"{c[0]}:{'pass' if c[2] else 'fail'}" for c in COMMANDS_DOCUMENTED])
def test_documented_command(file, argv, ok, diagnosis, tmp_path, capsys):
    out = tmp_path / "report.json"
    code = main(argv + ["--json", str(out)])
    printed = capsys.readouterr().out
    assert code == (0 if ok else 1), printed
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["passed"] is ok
    assert report["diagnosis"] == diagnosis, printed
    assert f"({diagnosis})" in printed.splitlines()[0]


def test_check_is_registered():
    assert "check" in COMMANDS


def test_module_entry_point_exits_non_zero_on_failure():
    argv = [sys.executable, "-m", "jacobian_nn", "check", str(GALLERY / "mse_sign.py"), "--forward", "loss",
            "--jacobian", "gradient_flipped", "--shape", "5"]
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "FAIL (sign_flipped)" in proc.stdout


def test_style_cs231n_is_detected_and_can_be_forced(capsys):
    base = ["check", str(GALLERY / "relu_cs231n.py"), "--forward", "relu_forward", "--backward",
            "relu_backward", "--shape", "4,5"]
    assert main(base) == 0
    assert main(base + ["--style", "cs231n", "--dtype", "float32", "--seed", "3"]) == 0
    assert "float32, seed 3" in capsys.readouterr().out


@pytest.mark.parametrize("argv, words", [
    (["check", "no/such/file.py", "--forward", "f", "--jacobian", "j", "--shape", "3"], "no such file"),
    (["check", str(GALLERY / "mse_sign.py"), "--forward", "nope", "--jacobian", "gradient", "--shape", "5"],
     "'nope' is not defined"),
    (["check", str(GALLERY / "relu_cs231n.py"), "--forward", "relu_forward", "--backward", "relu_backward",
      "--shape", "3,5", "--input", "X_AT_KINK"], "--input: X_AT_KINK has shape (4, 5)"),
    (["check", str(GALLERY / "mse_sign.py"), "--forward", "loss", "--shape", "5"],
     "one of --backward or --jacobian is required"),
])
def test_errors_exit_2_with_a_message(argv, words, capsys):
    assert main(argv) == 2
    assert words in capsys.readouterr().err


@pytest.mark.parametrize("extra, words", [
    (["--shape", "5,x"], "expected positive integers separated by commas"),
    (["--shape", "3,,4"], "expected positive integers separated by commas"),
    (["--shape", "0,4"], "expected positive integers separated by commas"),
    (["--shape", "5", "--top", "-1"], "expected an integer >= 0"),
    (["--shape", "5", "--timeout", "0"], "expected a number of seconds > 0"),
    (["--shape", "5", "--seed", "-3"], "expected an integer >= 0"),
])
def test_strict_parsing_refuses_malformed_values(extra, words, capsys):
    with pytest.raises(SystemExit) as info:
        main(["check", str(GALLERY / "mse_sign.py"), "--forward", "loss", "--jacobian", "gradient"] + extra)
    assert info.value.code == 2
    assert words in capsys.readouterr().err
