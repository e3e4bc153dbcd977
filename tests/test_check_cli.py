"""``jacobian-nn check``: every command written in an examples/gallery file's docstring runs, gives
the diagnosis written next to it and the matching exit code; JSON output; errors exit 2."""

import json
import os
import pathlib
import re
import shlex
import subprocess
import sys

import pytest

from jacobian_nn.check.cli import EXIT_CODES
from jacobian_nn.cli import COMMANDS, main

ROOT = pathlib.Path(__file__).resolve().parents[1]
GALLERY = ROOT / "examples" / "gallery"


def documented_commands():
    """``(file, argv, expected_pass, expected_diagnosis)`` from each example's docstring."""
    out = []
    for path in sorted(GALLERY.glob("*.py")):
        doc = path.read_text(encoding="utf-8").split('"""')[1]
        doc = re.sub(r"\\\n\s*", " ", doc)  # join continued lines
        for line in doc.splitlines():
            m = re.match(r"\s*jacobian-nn check (\S+) (.*?)\s+#\s*(FAIL: (\w+)|REFUSED: (\w+)|pass(: kink)?)", line)
            if m:
                argv = ["check", str(ROOT / m.group(1))] + shlex.split(m.group(2))
                verdict = m.group(3).split(":")[0].lower()
                diagnosis = m.group(4) or m.group(5) or ("kink" if m.group(6) else "rounding")
                out.append((path.name, argv, verdict, diagnosis))
    return out


COMMANDS_DOCUMENTED = documented_commands()


def test_every_gallery_file_documents_a_slip_and_its_passing_twin():
    files = {p.name for p in GALLERY.glob("*.py")}
    assert len(files) == 15
    for name in files:
        verdicts = {v for f, _, v, _ in COMMANDS_DOCUMENTED if f == name}
        assert len(verdicts) == 2 and "pass" in verdicts, name


@pytest.mark.parametrize(
    "file, argv, verdict, diagnosis", COMMANDS_DOCUMENTED, ids=[f"{c[0]}:{c[2]}" for c in COMMANDS_DOCUMENTED]
)
def test_documented_command(file, argv, verdict, diagnosis, tmp_path, capsys):
    out = tmp_path / "report.json"
    code = main(argv + ["--json", str(out)])
    printed = capsys.readouterr().out
    assert code == EXIT_CODES[verdict], printed
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["verdict"] == verdict and report["passed"] is (verdict == "pass")
    assert report["diagnosis"] == diagnosis, printed
    assert f"({diagnosis})" in printed.splitlines()[0]


def test_check_is_registered():
    assert "check" in COMMANDS


def test_module_entry_point_exits_non_zero_on_failure():
    argv = [
        sys.executable,
        "-m",
        "jacobian_nn",
        "check",
        str(GALLERY / "mse_sign.py"),
        "--forward",
        "loss",
        "--jacobian",
        "gradient_flipped",
        "--shape",
        "5",
    ]
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "FAIL (sign_flipped)" in proc.stdout


def test_style_cs231n_is_detected_and_can_be_forced(capsys):
    base = [
        "check",
        str(GALLERY / "relu_cs231n.py"),
        "--forward",
        "relu_forward",
        "--backward",
        "relu_backward",
        "--shape",
        "4,5",
    ]
    assert main(base) == 0
    assert main(base + ["--style", "cs231n", "--dtype", "float32", "--seed", "3"]) == 0
    assert "float32, seed 3" in capsys.readouterr().out


@pytest.mark.parametrize(
    "argv, words",
    [
        (["check", "no/such/file.py", "--forward", "f", "--jacobian", "j", "--shape", "3"], "no such file"),
        (
            ["check", str(GALLERY / "mse_sign.py"), "--forward", "nope", "--jacobian", "gradient", "--shape", "5"],
            "'nope' is not defined",
        ),
        (
            [
                "check",
                str(GALLERY / "relu_cs231n.py"),
                "--forward",
                "relu_forward",
                "--backward",
                "relu_backward",
                "--shape",
                "3,5",
                "--input",
                "X_AT_KINK",
            ],
            "--input: X_AT_KINK has shape (4, 5)",
        ),
        (
            ["check", str(GALLERY / "mse_sign.py"), "--forward", "loss", "--shape", "5"],
            "without --backward or --jacobian, --forward is checked as a CS231n loss",
        ),
    ],
)
def test_errors_exit_2_with_a_message(argv, words, capsys):
    assert main(argv) == 2
    assert words in capsys.readouterr().err


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--shape", "5,x"], "expected positive integers separated by commas"),
        (["--shape", "3,,4"], "expected positive integers separated by commas"),
        (["--shape", "0,4"], "expected positive integers separated by commas"),
        (["--shape", "5", "--top", "-1"], "expected an integer >= 0"),
        (["--shape", "5", "--timeout", "0"], "expected a number of seconds > 0"),
        (["--shape", "5", "--seed", "-3"], "expected an integer >= 0"),
    ],
)
def test_strict_parsing_refuses_malformed_values(extra, words, capsys):
    with pytest.raises(SystemExit) as info:
        main(["check", str(GALLERY / "mse_sign.py"), "--forward", "loss", "--jacobian", "gradient"] + extra)
    assert info.value.code == 2
    assert words in capsys.readouterr().err


# --------------------------------------------------------------------------- code that fights back

HOSTILE = """
import os, sys
import numpy as np


def f(x):
    return np.tanh(x)


def vjp(x, g):
    return g * (1 - np.tanh(x) ** 2)


def raises(x, g):
    raise KeyError("no such layer")


def exits(x, g):
    sys.exit(0)


def hard_exit(x, g):
    os._exit(0)


def loops(x, g):
    while True:
        pass


def x_3d(x):
    return np.sin(x).sum(axis=2)


def x_3d_vjp(x, g):
    return g[:, :, None] * np.cos(x)
"""


@pytest.fixture
def hostile(tmp_path):
    path = tmp_path / "hostile_code"  # no .py suffix: any readable file is accepted
    path.write_text(HOSTILE, encoding="utf-8")
    return path


def run(path, backward, *extra):
    return main(["check", str(path), "--forward", "f", "--backward", backward, "--shape", "3,4", *extra])


def test_a_file_without_py_suffix_is_checked(hostile, capsys):
    assert run(hostile, "vjp") == EXIT_CODES["pass"]
    assert "pass (rounding)" in capsys.readouterr().out


def test_an_exception_is_a_refused_report_naming_function_and_exception(hostile, capsys):
    assert run(hostile, "raises") == EXIT_CODES["refused"]
    out = capsys.readouterr().out
    assert "REFUSED (raised)" in out and "raises raised KeyError: 'no such layer'" in out


def test_sys_exit_in_user_code_is_caught(hostile, capsys):
    assert run(hostile, "exits") == EXIT_CODES["refused"]
    assert "exits called sys.exit(0)" in capsys.readouterr().out


def test_a_process_ended_by_user_code_could_not_run(hostile, capsys):
    assert run(hostile, "hard_exit") == EXIT_CODES["could not run"]
    assert "the checked code ended the process" in capsys.readouterr().err


def test_an_endless_loop_is_stopped_by_the_timeout(hostile, capsys):
    assert run(hostile, "loops", "--timeout", "1.5") == EXIT_CODES["could not run"]
    assert "did not finish within --timeout 1.5 s" in capsys.readouterr().err


def test_exit_codes_are_distinct_and_documented():
    assert EXIT_CODES == {"pass": 0, "fail": 1, "usage error": 2, "refused": 3, "could not run": 4}
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "0 pass, 1 fail, 2 usage error, 3 refused, 4 could not run" in readme


@pytest.mark.parametrize("target, words", [("missing/dir/out.json", "does not exist"), (".", "is a folder")])
def test_output_paths_are_checked_before_any_work(hostile, tmp_path, capsys, target, words):
    marker = tmp_path / "ran"
    hostile.write_text(HOSTILE + f"\nopen({str(marker)!r}, 'w').close()\n", encoding="utf-8")
    assert run(hostile, "vjp", "--json", str(tmp_path / target)) == EXIT_CODES["usage error"]
    assert words in capsys.readouterr().err and not marker.exists()


def test_batched_inputs_of_three_axes(hostile, capsys):
    code = main(["check", str(hostile), "--forward", "x_3d", "--backward", "x_3d_vjp", "--shape", "4,2,3"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "(4, 2, 3) -> (4, 2), batch of N=4" in out


def test_import_failure_could_not_run(tmp_path, capsys):
    bad = tmp_path / "bad.py"
    bad.write_text("import sys\nsys.exit(3)\n", encoding="utf-8")
    assert main(["check", str(bad), "--forward", "f", "--backward", "g", "--shape", "3"]) == 4
    assert "importing bad.py called sys.exit(3)" in capsys.readouterr().err


HELPER_USER = """
from helper_beside import scale          # a module in the same folder


def f(x):
    return scale * x


def vjp(x, g):
    return scale * g
"""


@pytest.mark.parametrize("entry", ["module", "script"])
def test_the_checked_files_folder_is_importable_from_either_entry_point(tmp_path, entry):
    (tmp_path / "helper_beside.py").write_text("scale = 3.0\n", encoding="utf-8")
    (tmp_path / "user.py").write_text(HELPER_USER, encoding="utf-8")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    args = ["check", str(tmp_path / "user.py"), "--forward", "f", "--backward", "vjp", "--shape", "3,2"]
    if entry == "module":  # python -m jacobian_nn: sys.path[0] is the working folder
        argv = [sys.executable, "-m", "jacobian_nn"] + args
    else:  # the console script: sys.path[0] is the script's folder, not the file's
        argv = [sys.executable, "-c", "import sys; from jacobian_nn.cli import main; sys.exit(main())"] + args
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(argv, capture_output=True, text=True, cwd=elsewhere, timeout=120, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "pass (rounding)" in proc.stdout


def test_extra_forward_arguments_from_the_file_and_random_ones(capsys):
    base = [
        "check",
        str(GALLERY / "affine_dw.py"),
        "--forward",
        "affine_forward",
        "--backward",
        "affine_backward",
        "--shape",
        "4,6",
    ]
    assert main(base + ["--arg", "W", "--arg", "B"]) == 0
    out = capsys.readouterr().out
    assert "section dx: pass" in out and "section dw: pass" in out and "section db: pass" in out
    assert main(base + ["--arg", "6,3", "--arg", "3"]) == 0  # random w (6, 3) and b (3,)
    assert "section dw: pass (rounding), w (6, 3)" in capsys.readouterr().out


def test_loss_with_random_or_given_labels(capsys):
    base = ["check", str(GALLERY / "softmax_loss.py"), "--forward", "softmax_loss", "--shape", "8,10"]
    assert main(base) == 0
    assert "labels drawn at random (seed 0)" in capsys.readouterr().out
    assert main(base + ["--labels", "Y"]) == 0
    assert "labels given: [0, 3, 9, 2, 2, 7, 1, 5]" in capsys.readouterr().out
