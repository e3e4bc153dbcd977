"""Training output: epoch lines survive a tqdm bar (tqdm.write), output that is not a terminal gets plain
epoch lines, and the header of ``jacobian-nn train`` names the network actually built."""

import io
import sys
import types

import pytest

import jacobian_nn as jn
from jacobian_nn import solver as solver_module
from jacobian_nn.cli import main


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def _train(stream, epochs=6):
    ds = jn.data.spiral(n_per_class=10, seed=0)
    net = jn.Network.build([2, 6, 3], "tanh", seed=0)
    return jn.Solver(net, ds, jn.Adam(1e-2), epochs=epochs, batch_size=7, seed=0, progress=True, stream=stream).train()


def _epoch_lines(text):
    return [line for line in text.replace("\r", "\n").split("\n") if line.startswith("epoch ")]


def test_not_a_terminal_gets_plain_epoch_lines():
    out = io.StringIO()  # isatty() is False: a file or a pipe
    _train(out)
    assert "\r" not in out.getvalue()
    assert [line.split(":")[0] for line in _epoch_lines(out.getvalue())] == [f"epoch {k}/6" for k in range(1, 7)]


def test_plain_lines_about_twenty_per_run_and_always_the_last():
    progress = solver_module._PlainProgress(total=100, epochs=50, stream=io.StringIO())
    shown = [e for e in range(1, 51) if progress.wants(e)]
    assert len(shown) <= 25 and shown[-1] == 50 and shown[0] == 2


class _FakeTqdm:
    """Records what a tqdm bar would be asked to do."""

    written: list = []

    def __init__(self, total, file, **kwargs):
        self.total, self.file, self.n, self.closed = total, file, 0, False
        _FakeTqdm.instances.append(self)

    def update(self, n):
        self.n += n

    def set_postfix_str(self, text, refresh=True):
        self.postfix = text

    def close(self):
        self.closed = True

    @classmethod
    def write(cls, text, file=None):
        cls.written.append((text, file))


def test_on_a_terminal_epoch_lines_go_through_tqdm_write(monkeypatch):
    monkeypatch.setitem(sys.modules, "tqdm", types.SimpleNamespace(tqdm=_FakeTqdm))
    _FakeTqdm.instances, _FakeTqdm.written = [], []
    term = _Terminal()
    history = _train(term)
    (bar,) = _FakeTqdm.instances
    assert bar.closed and bar.n == history.iterations and bar.file is term
    assert [t.split(":")[0] for t, f in _FakeTqdm.written] == [f"epoch {k}/6" for k in range(1, 7)]
    assert all(f is term for _, f in _FakeTqdm.written)
    assert term.getvalue() == ""  # nothing printed around the bar


def test_real_tqdm_keeps_the_epoch_lines():
    pytest.importorskip("tqdm")
    term = _Terminal()
    _train(term)
    assert [line.split(":")[0] for line in _epoch_lines(term.getvalue())] == [f"epoch {k}/6" for k in range(1, 7)]


def test_header_names_the_network_built(capsys):
    assert (
        main(
            [
                "train",
                "--dataset",
                "gates",
                "--batchnorm",
                "--dropout",
                "0.25",
                "--activation",
                "relu",
                "--epochs",
                "2",
                "--batch-size",
                "4",
                "--no-progress",
            ]
        )
        == 0
    )
    header = capsys.readouterr().out.splitlines()[0]
    assert "network 2 -> dense 8 -> batch norm -> relu -> dropout 0.25 -> dense 2, softmax_cross_entropy" in header
    # near miss: a plain network says nothing of batch norm or dropout
    assert main(["train", "--dataset", "gates", "--epochs", "2", "--no-progress"]) == 0
    header = capsys.readouterr().out.splitlines()[0]
    assert "network 2 -> dense 8 tanh -> dense 2, softmax_cross_entropy" in header
    assert "batch norm" not in header and "dropout" not in header
