"""``jacobian-nn train``: end to end on small sets, JSON/save/plot outputs, and clear errors."""

import json
import sys

import numpy as np
import pytest

from jacobian_nn.cli import main
from jacobian_nn.model_io import load_model


def test_gates_run_writes_json_and_model(tmp_path, capsys):
    out_json, out_model = tmp_path / "r.json", tmp_path / "m.npz"
    code = main(["train", "--dataset", "gates", "--gate", "xor", "--path", "reference", "--epochs", "200",
                 "--no-progress", "--json", str(out_json), "--save", str(out_model)])
    assert code == 0
    rec = json.loads(out_json.read_text())
    assert rec["accuracy"]["train"] == 1.0 and rec["options"]["path"] == "reference"
    assert len(rec["history"]["loss"]) == 200 and rec["confusion_matrix"] == [[2, 0], [0, 2]]
    net = load_model(out_model)
    assert net.predict_batched(np.array([[0, 0], [1, 0], [0, 1], [1, 1]])).argmax(axis=1).tolist() == [0, 1, 1, 0]
    assert "best validation accuracy" in capsys.readouterr().out


def test_toy_default_is_seed_001_linear_model(tmp_path):
    out_json = tmp_path / "r.json"
    assert main(["train", "--dataset", "toy", "--no-progress", "--json", str(out_json)]) == 0
    rec = json.loads(out_json.read_text())
    assert len(rec["architecture"]["layers"]) == 1 and rec["accuracy"]["train"] == 1.0


@pytest.mark.parametrize("argv, message", [
    (["--lr", "0"], "lr: expected a finite number > 0"),
    (["--lr", "-1"], "lr: expected a finite number > 0"),
    (["--batch-size", "0"], "batch_size: expected a positive integer"),
    (["--batch-size", "5"], "batch_size: expected at most 4"),
    (["--hidden", "10,x"], "--hidden"),
    (["--data-dir", "/tmp"], "--data-dir: only used with --dataset cifar10"),
])
def test_bad_options_name_the_problem(argv, message, capsys):
    assert main(["train", "--dataset", "gates", "--no-progress", *argv]) == 2
    assert message in capsys.readouterr().err


def test_cifar10_needs_an_existing_directory(tmp_path, capsys):
    assert main(["train", "--dataset", "cifar10", "--no-progress"]) == 2
    assert "--data-dir: required" in capsys.readouterr().err
    assert main(["train", "--dataset", "cifar10", "--data-dir", str(tmp_path / "none"), "--no-progress"]) == 2
    assert "CIFAR-10 directory not found" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["--dataset", "mnist"], "invalid choice: 'mnist'"),
    (["--dataset", "toy", "--optimizer", "adamw"], "invalid choice: 'adamw'"),
])
def test_unknown_dataset_or_optimizer(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", *argv])
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_plot_without_matplotlib_fails_before_training(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)      # import matplotlib -> ImportError
    assert main(["train", "--dataset", "toy", "--plot", str(tmp_path / "p.png"), "--no-progress"]) == 2
    captured = capsys.readouterr()
    assert "matplotlib" in captured.err and "training finished" not in captured.out


def test_plot_with_matplotlib(tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib (the 'plot' extra) not installed")
    png = tmp_path / "p.png"
    assert main(["train", "--dataset", "gates", "--epochs", "20", "--plot", str(png), "--no-progress"]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
