"""``jacobian-nn train``: end to end on small sets, JSON/save/plot outputs, and clear errors."""

import json
import sys

import numpy as np
import pytest

from jacobian_nn.cli import main
from jacobian_nn.model_io import load_model


def test_gates_run_writes_json_and_model(tmp_path, capsys):
    out_json, out_model = tmp_path / "r.json", tmp_path / "m.npz"
    code = main(
        [
            "train",
            "--dataset",
            "gates",
            "--gate",
            "xor",
            "--path",
            "reference",
            "--epochs",
            "200",
            "--no-progress",
            "--json",
            str(out_json),
            "--save",
            str(out_model),
        ]
    )
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


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--lr", "0"], "--lr: expected a finite number > 0"),
        (["--lr", "-1"], "--lr: expected a finite number > 0"),
        (["--lr", "nan"], "--lr: expected a finite number > 0"),
        (["--lr-decay", "inf"], "--lr-decay: expected a finite number > 0"),
        (["--l2", "-0.1"], "--l2: expected a finite number >= 0"),
        (["--dropout", "1"], "--dropout: expected a finite number >= 0 and < 1"),
        (["--epochs", "0"], "--epochs: expected a positive integer"),
        (["--seed", "-3"], "--seed: expected an integer >= 0"),
        (["--batch-size", "0"], "--batch-size: expected a positive integer"),
        (["--batch-size", "5"], "--batch-size: expected at most 4"),
        (["--weight-scale", "0.1"], "--weight-scale: only used with --batchnorm or --dropout"),
        (["--dropout", "0.1", "--weight-scale", "-1"], "--weight-scale: expected a finite number > 0"),
        (["--max-train", "10"], "--max-train: only used with --dataset cifar10"),
        (["--hidden", "10,x"], "--hidden"),
        (["--data-dir", "/tmp"], "--data-dir: only used with --dataset cifar10"),
    ],
)
def test_bad_options_name_the_problem(argv, message, capsys):
    assert main(["train", "--dataset", "gates", "--no-progress", *argv]) == 2
    assert message in capsys.readouterr().err


def test_cifar10_needs_an_existing_directory(tmp_path, capsys):
    assert main(["train", "--dataset", "cifar10", "--no-progress"]) == 2
    assert "--data-dir: required" in capsys.readouterr().err
    assert main(["train", "--dataset", "cifar10", "--data-dir", str(tmp_path / "none"), "--no-progress"]) == 2
    assert "CIFAR-10 directory not found" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--dataset", "mnist"], "invalid choice: 'mnist'"),
        (["--dataset", "toy", "--optimizer", "adamw"], "invalid choice: 'adamw'"),
    ],
)
def test_unknown_dataset_or_optimizer(argv, message, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", *argv])
    assert exc.value.code == 2 and message in capsys.readouterr().err


def test_plot_without_matplotlib_fails_before_training(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    assert main(["train", "--dataset", "toy", "--plot", str(tmp_path / "p.png"), "--no-progress"]) == 2
    captured = capsys.readouterr()
    assert "matplotlib" in captured.err and "training finished" not in captured.out


def test_plot_with_matplotlib(tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib (the 'plot' extra) not installed")
    png = tmp_path / "p.png"
    assert main(["train", "--dataset", "gates", "--epochs", "20", "--plot", str(png), "--no-progress"]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_gate_only_with_gates(capsys):
    assert main(["train", "--dataset", "toy", "--gate", "and", "--no-progress"]) == 2
    assert "--gate: only used with --dataset gates" in capsys.readouterr().err


@pytest.mark.parametrize("option, name", [("--save", "m.npz"), ("--json", "r.json"), ("--plot", "p.png")])
def test_every_output_path_is_checked_before_training(tmp_path, capsys, option, name):
    bad = tmp_path / "missing" / name
    assert main(["train", "--dataset", "gates", "--epochs", "5", "--no-progress", option, str(bad)]) == 2
    captured = capsys.readouterr()
    assert f"{option}: the folder" in captured.err and "does not exist" in captured.err
    assert captured.out == ""  # nothing was loaded or trained
    (tmp_path / name).mkdir()  # a directory where the file should go
    assert main(["train", "--dataset", "gates", "--no-progress", option, str(tmp_path / name)]) == 2
    assert f"{option}: " in capsys.readouterr().err and not list((tmp_path / name).iterdir())


def test_same_file_for_two_outputs_is_refused(tmp_path, capsys):
    out = str(tmp_path / "x.npz")
    assert main(["train", "--dataset", "gates", "--no-progress", "--save", out, "--json", out]) == 2
    assert "--json: " in capsys.readouterr().err and not (tmp_path / "x.npz").exists()


def test_options_that_apply_are_accepted(tmp_path):
    # near miss: --weight-scale with --dropout, --gate with gates, outputs in an existing folder
    assert (
        main(
            [
                "train",
                "--dataset",
                "gates",
                "--gate",
                "or",
                "--dropout",
                "0.1",
                "--weight-scale",
                "0.5",
                "--activation",
                "relu",
                "--epochs",
                "3",
                "--no-progress",
                "--save",
                str(tmp_path / "m"),
                "--json",
                str(tmp_path / "r.json"),
            ]
        )
        == 0
    )
    assert (tmp_path / "m.npz").exists() and (tmp_path / "r.json").exists()
