"""Every command exits quietly, with its own exit code, when its output is closed early (``| head``)."""

import io
import subprocess
import sys
from pathlib import Path

import pytest

from jacobian_nn._console import run_main

ROOT = Path(__file__).resolve().parents[1]
GALLERY = ROOT / "examples" / "gallery" / "relu_cs231n.py"
RELU = ["--forward", "relu_forward", "--shape", "4,5", "--reference", "relu"]
#: verify with its two fastest groups (the whole run is timed elsewhere; this is about the pipe)
QUICK_VERIFY = (
    "import sys; from jacobian_nn import cli, verify; verify.GROUPS[:] = verify.GROUPS[:2]; "
    "sys.exit(cli.main(['verify']))"
)
PLANTED_FAILURE = (
    "import sys; from jacobian_nn import cli, verify; from jacobian_nn.fd import Comparison; "
    "verify.GROUPS[:] = [('planted', lambda: [Comparison('wrong', 1.0, 1.0, (0,), 1e-9, False)])]; "
    "sys.exit(cli.main(['verify']))"
)


def _closed_early(args, tmp_path):
    """Run ``args`` with its stdout a pipe whose reader is gone before the first write."""
    err = tmp_path / "stderr.txt"
    with open(err, "w") as fh:
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=fh, cwd=ROOT)
        proc.stdout.close()
        code = proc.wait(timeout=600)
    return code, err.read_text()


@pytest.mark.parametrize(
    "args, expected",
    [
        ([sys.executable, "-c", QUICK_VERIFY], 0),
        ([sys.executable, "-c", PLANTED_FAILURE], 1),  # near miss: a failure keeps its exit code
        ([sys.executable, "-m", "jacobian_nn", "check", str(GALLERY), "--backward", "relu_backward", *RELU], 0),
        (
            [sys.executable, "-m", "jacobian_nn", "check", str(GALLERY), "--backward", "relu_backward_inverted", *RELU],
            1,
        ),
        ([sys.executable, "-m", "proofs", "--errata"], 0),
        ([sys.executable, "-m", "jacobian_nn", "proofs", "--index"], 0),
        ([sys.executable, "-m", "jacobian_nn", "--help"], 0),
        ([sys.executable, "-m", "bench", "--smoke", "--quiet"], 0),
    ],
    ids=["verify", "verify-failing", "check-pass", "check-fail", "proofs", "jacobian-nn-proofs", "help", "bench"],
)
def test_output_closed_early_exits_quietly(args, expected, tmp_path):
    code, err = _closed_early(args, tmp_path)
    assert code == expected, err
    assert "Traceback" not in err and "BrokenPipe" not in err and "Exception ignored" not in err, err


def test_head_in_a_shell_pipeline(tmp_path):
    proc = subprocess.run(
        ["bash", "-c", 'set -o pipefail; "$0" -m jacobian_nn proofs --index | head -1', sys.executable],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert proc.returncode == 0 and proc.stdout.startswith("| id |") and proc.stderr == "", proc.stderr


class _ClosedPipe(io.StringIO):
    def write(self, text):
        raise BrokenPipeError(32, "Broken pipe")


def test_guard_swallows_a_closed_pipe_and_returns_the_commands_code(monkeypatch):
    monkeypatch.setattr(sys, "stdout", _ClosedPipe())
    ran = []

    def command(argv):
        print("first line")
        print("second line")
        ran.append(argv)
        return 3

    assert run_main(command, ["x"]) == 3 and ran == [["x"]]  # the command ran to its end
    assert isinstance(sys.stdout, _ClosedPipe)  # and stdout is restored


def test_guard_passes_output_through_when_the_pipe_stays_open(monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    assert run_main(lambda argv: print("all of it") or 0) == 0
    assert out.getvalue() == "all of it\n" and sys.stdout is out
