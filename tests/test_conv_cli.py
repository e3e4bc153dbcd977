"""``jacobian-nn train --model cnn``: the CNN on the bundled 8x8 digits as 1x8x8 images, and its refusals."""

import json

import pytest

from jacobian_nn.cli import main
from jacobian_nn.conv import Conv2D, MaxPool2D
from jacobian_nn.model_io import load_model


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--dataset", "spiral"], "--model cnn: needs a data set of images (cifar10, digits), got spiral"),
        (["--dataset", "digits", "--batchnorm"], "--model cnn: --batchnorm/--dropout"),
        (["--dataset", "digits", "--dropout", "0.5"], "--model cnn: --batchnorm/--dropout"),
    ],
)
def test_cnn_refusals_name_the_problem(argv, message, capsys, tmp_path):
    out = tmp_path / "never.json"
    assert main(["train", "--model", "cnn", "--no-progress", "--json", str(out), *argv]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_cnn_on_digits_reaches_98_percent_saves_and_loads(tmp_path, capsys):
    pytest.importorskip("sklearn", reason="digits needs scikit-learn (the 'data' extra; also in 'test')")
    out_json, out_model = tmp_path / "r.json", tmp_path / "m.npz"
    code = main(
        [
            "train",
            "--dataset",
            "digits",
            "--model",
            "cnn",
            "--no-progress",
            "--json",
            str(out_json),
            "--save",
            str(out_model),
        ]
    )
    assert code == 0
    rec = json.loads(out_json.read_text())
    types = [layer["type"] for layer in rec["architecture"]["layers"]]
    assert types == ["Conv2D", "MaxPool2D", "Conv2D", "MaxPool2D", "Dense"]
    assert rec["accuracy"]["test"] >= 0.98  # the defaults: Adam 1e-3, 20 epochs, batch 32
    net = load_model(out_model)
    assert isinstance(net.layers[0], Conv2D) and net.layers[0].input_shape == (1, 8, 8)
    assert isinstance(net.layers[1], MaxPool2D) and net.layers[3].output_shape == (32, 2, 2)
    assert "Conv2D((1, 8, 8), 16, (3, 3), stride=1, pad=1" in capsys.readouterr().out
