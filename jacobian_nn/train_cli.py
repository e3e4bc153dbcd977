"""``jacobian-nn train``: train a network on a built-in data set with either path.

Every option left out takes the data set's default from :data:`DEFAULTS`, chosen so
that a bare ``jacobian-nn train --dataset spiral`` (or ``digits``) reaches the
targets stated in the README. Exit codes: 0 success, 2 bad input (the message names
the problem), 130 training interrupted by Ctrl-C (the best parameters found so far
are still evaluated, saved and reported).
"""

from __future__ import annotations

import json
import os
import sys
import time

#: Per-data-set defaults for the options the user leaves out.
DEFAULTS = {
    # the numpy-layers post's toy table: one linear layer + softmax, SGD lr 0.1 on all 10 points
    "toy": dict(hidden="", activation="relu", optimizer="sgd", lr=0.1, epochs=500, batch_size=10),
    # the DLFS notes' logic gates: XOR needs a hidden layer
    "gates": dict(hidden="8", activation="tanh", optimizer="adam", lr=0.05, epochs=300, batch_size=4),
    # the Made-With-ML MLP's spiral: one hidden layer of 100 ReLUs, Adam lr 1e-2
    "spiral": dict(hidden="100", activation="relu", optimizer="adam", lr=1e-2, epochs=30, batch_size=32),
    "digits": dict(hidden="100", activation="relu", optimizer="adam", lr=1e-3, epochs=20, batch_size=32),
    # the CS231n walkthrough: hidden [100, 100], batch 100
    "cifar10": dict(hidden="100,100", activation="relu", optimizer="adam", lr=1e-3, epochs=10, batch_size=100),
}


def add_train(sub) -> None:
    from .data import DATASETS, GATES
    from .optimizers import OPTIMIZERS
    from .solver import PATHS

    p = sub.add_parser(
        "train",
        help="train a network on a built-in data set (either path)",
        description="Train a fully connected network on a built-in data set with the "
        "batched or the reference path, then report accuracies and metrics.",
    )
    p.add_argument("--dataset", required=True, choices=sorted(DATASETS), help="data set")
    p.add_argument("--data-dir", metavar="DIR", help="cifar10: the extracted cifar-10-batches-py directory")
    p.add_argument("--max-train", type=int, metavar="N", help="cifar10: keep only the first N training images")
    p.add_argument("--gate", type=str.upper, choices=GATES, help="gates: which gate (default XOR)")
    p.add_argument(
        "--model",
        default="mlp",
        choices=("mlp", "cnn"),
        help="mlp: fully connected (default); cnn: {3x3 conv (pad 1) - relu - 2x2 max-pool} with 16 "
        "then 32 filters, then the --hidden affine layers (none unless given), on the images "
        "(digits 1x8x8, cifar10 3x32x32)",
    )
    p.add_argument(
        "--hidden",
        metavar="SIZES",
        help="hidden layer sizes, comma separated, e.g. 100,100; '' or 'none' for no hidden layer",
    )
    p.add_argument("--activation", help="hidden activation (relu, tanh, sigmoid, leaky_relu, elu, ...)")
    p.add_argument("--optimizer", type=str.lower, choices=sorted(OPTIMIZERS), help="update rule")
    p.add_argument("--lr", type=float, help="initial learning rate (> 0)")
    p.add_argument("--lr-decay", type=float, default=1.0, help="learning-rate factor per epoch (default 1)")
    p.add_argument("--epochs", type=int, help="passes over the training set")
    p.add_argument("--batch-size", type=int, help="minibatch size (1 .. number of training samples)")
    p.add_argument("--l2", type=float, default=0.0, help="L2 penalty l2/2 ||W||^2 (default 0)")
    p.add_argument(
        "--batchnorm",
        action="store_true",
        help="the CS231n-style FullyConnectedNet with batch norm after every hidden affine map (relu only)",
    )
    p.add_argument(
        "--dropout",
        type=float,
        default=0.0,
        metavar="P",
        help="the CS231n-style FullyConnectedNet with inverted dropout, P = drop probability in [0, 1) "
        "(relu only; default 0: none)",
    )
    p.add_argument(
        "--weight-scale",
        type=float,
        default=None,
        metavar="S",
        help="with --batchnorm/--dropout: initial weight std (default: sqrt(2 / fan_in), He)",
    )
    p.add_argument("--path", default="batched", choices=PATHS, help="gradient path (default batched)")
    p.add_argument("--seed", type=int, default=0, help="seed for data, weights and minibatches (default 0)")
    p.add_argument("--save", metavar="FILE.npz", help="save the trained model")
    p.add_argument("--json", metavar="FILE", help="write history, accuracies and metrics as JSON")
    p.add_argument(
        "--plot",
        metavar="FILE.png",
        help="loss/accuracy curves (+ decision boundary for 2-D data); needs matplotlib (extra 'plot')",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar or epoch lines")


def _hidden_sizes(text: str) -> list[int]:
    text = text.strip().lower()
    if text in ("", "none"):
        return []
    try:
        sizes = [int(s) for s in text.split(",")]
    except ValueError:
        raise ValueError(
            f"--hidden: expected comma-separated positive integers such as 100,100, got {text!r}"
        ) from None
    if any(s < 1 for s in sizes):
        raise ValueError(f"--hidden: expected positive sizes, got {sizes}")
    return sizes


def _load(args):
    from . import data

    if args.dataset == "cifar10":
        if not args.data_dir:
            raise ValueError("--data-dir: required for --dataset cifar10 (the cifar-10-batches-py directory)")
        return data.cifar10(args.data_dir, max_train=args.max_train)
    if args.data_dir:
        raise ValueError(f"--data-dir: only used with --dataset cifar10, got it with {args.dataset}")
    if args.dataset == "gates":
        return data.gates(args.gate)
    if args.dataset in ("spiral", "digits"):
        return data.DATASETS[args.dataset](seed=args.seed)
    return data.DATASETS[args.dataset]()


def _fully_connected_net(args, ds, hidden):
    """The CS231n-style FullyConnectedNet for ``--batchnorm`` / ``--dropout P`` (relu hidden layers)."""
    from .fcnet import FullyConnectedNet

    if args.activation != "relu":
        raise ValueError(
            "--activation: --batchnorm/--dropout build the CS231n-style FullyConnectedNet, whose "
            f"hidden layers are relu, got {args.activation!r}"
        )
    if args.batchnorm and args.batch_size < 2:
        raise ValueError(f"--batch-size: batch norm needs minibatches of at least 2 samples, got {args.batch_size}")
    scales = []
    for n_in in [ds.n_features, *hidden]:  # He scale per layer unless --weight-scale is given
        scales.append(args.weight_scale if args.weight_scale is not None else (2.0 / n_in) ** 0.5)
    net = FullyConnectedNet(
        hidden,
        input_dim=ds.n_features,
        num_classes=ds.n_classes,
        dropout=args.dropout,
        use_batchnorm=args.batchnorm,
        reg=args.l2,
        weight_scale=scales[0],
        seed=args.seed,
    )
    if args.weight_scale is None:  # CS231n draws weight_scale * N(0, 1); rescale each layer to He
        from .layers import Dense

        dense = [layer for layer in net.layers if isinstance(layer, Dense)]
        for layer, scale in zip(dense, scales):
            layer.W *= scale / scales[0]
    return net


#: --model cnn: the image shape (C, H, W) of each data set that has images
IMAGE_SHAPES = {"digits": (1, 8, 8), "cifar10": (3, 32, 32)}


def _check_cnn_options(args) -> None:
    """``--model cnn`` needs an image data set and builds no FullyConnectedNet (checked before any loading)."""
    if args.dataset not in IMAGE_SHAPES:
        raise ValueError(
            f"--model cnn: needs a data set of images ({', '.join(sorted(IMAGE_SHAPES))}), got {args.dataset}"
        )
    if args.batchnorm or args.dropout:
        raise ValueError(
            "--model cnn: --batchnorm/--dropout build the CS231n-style FullyConnectedNet; "
            "leave them out with --model cnn"
        )


def _cnn(args, ds, hidden):
    """``--model cnn``: :func:`jacobian_nn.conv.build_cnn` on the data set's image shape."""
    from .conv import build_cnn

    return build_cnn(
        IMAGE_SHAPES[args.dataset],
        ds.n_classes,
        filters=(16, 32),
        hidden=hidden,
        activation=args.activation,
        seed=args.seed,
        l2=args.l2,
    )


def describe_network(net) -> str:
    """The network as built, layer by layer: ``64 -> dense 100 -> batch norm -> relu -> dropout 0.1 -> dense 10,
    softmax_cross_entropy`` (a layer of another kind appears as its ``repr``)."""
    parts = [str(net.n_in)]
    for layer in net.layers:
        kind = type(layer).__name__
        activation = getattr(getattr(layer, "activation", None), "name", None)
        if kind == "Dense":
            parts.append(f"dense {layer.W.shape[1]}" + ("" if activation in (None, "identity") else f" {activation}"))
        elif kind == "BatchNorm":
            parts.append("batch norm")
        elif kind == "Dropout":
            parts.append(f"dropout {layer.p:g}")
        elif kind == "ActivationLayer" and activation:
            parts.append(activation)
        else:
            parts.append(repr(layer))
    loss = getattr(net.loss, "name", None) or type(net.loss).__name__
    return " -> ".join(parts) + f", {loss}"


#: The library's argument names -> the options that set them, so that an error raised by the
#: library (``batch_size: expected at most 4``) names the option the user typed (``--batch-size``).
OPTION_NAMES = {
    "lr": "--lr",
    "lr_decay": "--lr-decay",
    "epochs": "--epochs",
    "batch_size": "--batch-size",
    "l2": "--l2",
    "reg": "--l2",
    "dropout": "--dropout",
    "weight_scale": "--weight-scale",
    "seed": "--seed",
    "hidden_dims": "--hidden",
    "max_train": "--max-train",
    "data_dir": "--data-dir",
    "activation": "--activation",
}


def _name_the_option(message: str) -> str:
    """``"batch_size: expected ..."`` -> ``"--batch-size: expected ..."`` (messages of the library
    start with the argument's name); other messages are returned unchanged."""
    head, sep, rest = message.partition(":")
    key = head.split("[")[0]
    if sep and key in OPTION_NAMES:
        return f"{OPTION_NAMES[key]}{head[len(key) :]}:{rest}"
    return message


def run_train(args) -> int:
    try:
        return _run(args)
    except (ValueError, TypeError, OSError, ImportError) as exc:
        print(f"jacobian-nn train: error: {_name_the_option(str(exc))}", file=sys.stderr)
        return 2


def _check_options(args) -> None:
    """Everything that can be checked before any work: values, options that do not apply to the
    model or data set being built, and every output path (a folder that does not exist would
    otherwise lose the trained model). Raises ``ValueError``/``OSError`` naming the option."""
    from .model_io import check_output_path

    def finite(name, value, low, low_open=True, high=None):
        ok = (
            value == value
            and abs(value) != float("inf")
            and (value > low if low_open else value >= low)
            and (high is None or value < high)
        )
        if not ok:
            bound = f"{'>' if low_open else '>='} {low:g}" + (f" and < {high:g}" if high is not None else "")
            raise ValueError(f"{name}: expected a finite number {bound}, got {value!r}")

    finite("--lr", args.lr, 0.0)
    finite("--lr-decay", args.lr_decay, 0.0)
    finite("--l2", args.l2, 0.0, low_open=False)
    finite("--dropout", args.dropout, 0.0, low_open=False, high=1.0)
    if args.weight_scale is not None:
        finite("--weight-scale", args.weight_scale, 0.0)
        if not (args.batchnorm or args.dropout):
            raise ValueError(
                "--weight-scale: only used with --batchnorm or --dropout (the CS231n-style "
                "FullyConnectedNet); the plain network uses He initialisation"
            )
    for name, value in (("--epochs", args.epochs), ("--batch-size", args.batch_size)):
        if value < 1:
            raise ValueError(f"{name}: expected a positive integer, got {value}")
    if args.seed < 0:
        raise ValueError(f"--seed: expected an integer >= 0, got {args.seed}")
    if args.gate is not None and args.dataset != "gates":
        raise ValueError(f"--gate: only used with --dataset gates, got it with {args.dataset}")
    if args.max_train is not None:
        if args.dataset != "cifar10":
            raise ValueError(f"--max-train: only used with --dataset cifar10, got it with {args.dataset}")
        if args.max_train < 1:
            raise ValueError(f"--max-train: expected a positive integer, got {args.max_train}")
    outputs: dict[str, str] = {}
    for option, suffix in (("--save", ".npz"), ("--json", None), ("--plot", None)):
        value = getattr(args, option[2:])
        if value is not None:
            path = check_output_path(value, option, suffix)
            if os.path.abspath(path) in outputs:
                raise ValueError(f"{option}: {path} is also the file of {outputs[os.path.abspath(path)]}")
            outputs[os.path.abspath(path)] = option


def _run(args) -> int:
    from . import metrics, model_io
    from .network import Network
    from .optimizers import make_optimizer
    from .solver import Solver

    t0 = time.perf_counter()
    model = args.model
    if model == "cnn" and args.hidden is None:  # a CNN's affine layers: only those asked for
        args.hidden = ""
    for key, value in DEFAULTS[args.dataset].items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    _check_options(args)
    if model == "cnn":
        _check_cnn_options(args)
    if args.dataset == "gates" and args.gate is None:
        args.gate = "XOR"
    if args.plot:
        from .plots import require_matplotlib

        require_matplotlib()  # fail before training, not after
    hidden = _hidden_sizes(args.hidden)
    optimizer = make_optimizer(args.optimizer, args.lr)
    ds = _load(args)
    if model == "cnn":
        net = _cnn(args, ds, hidden)
    elif args.batchnorm or args.dropout:
        net = _fully_connected_net(args, ds, hidden)
    else:
        net = Network.build([ds.n_features, *hidden, ds.n_classes], args.activation, seed=args.seed, l2=args.l2)
    solver = Solver(
        net,
        ds,
        optimizer,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr_decay=args.lr_decay,
        path=args.path,
        seed=args.seed,
        progress=not args.no_progress,
    )
    out = sys.stdout
    print(
        f"{ds!r}; network {describe_network(net)}; {optimizer!r}, {args.epochs} epochs, "
        f"batch {args.batch_size}, {args.path} path",
        file=out,
    )
    history = solver.train()
    print(history.summary(), file=out)
    acc = {
        name: solver.accuracy(X, y)
        for name, X, y in (
            ("train", ds.X_train, ds.y_train),
            ("val", ds.X_val, ds.y_val),
            ("test", ds.X_test, ds.y_test),
        )
    }
    predict = net.predict_batched if args.path == "batched" else net.predict
    y_pred = predict(ds.X_test).argmax(axis=1)
    report = metrics.classification_report(ds.y_test, y_pred, ds.classes)
    wall = time.perf_counter() - t0
    print(
        f"accuracy: train {acc['train']:.4f}, validation {acc['val']:.4f}, test {acc['test']:.4f}  "
        f"(wall time {wall:.2f} s)",
        file=out,
    )
    if args.save:
        print(f"saved model to {model_io.save_model(net, args.save)}", file=out)
    if args.plot:
        from .plots import plot_training

        plot_training(args.plot, history, predict, ds, title=f"{ds.name}, {args.path} path")
        print(f"wrote plot {args.plot}", file=out)
    if args.json:
        record = {
            "dataset": ds.name,
            "options": {k: v for k, v in vars(args).items() if k != "command" and not callable(v)},
            "architecture": model_io.architecture(net),
            "accuracy": acc,
            "test_metrics": report,
            "confusion_matrix": metrics.confusion_matrix(ds.y_test, y_pred, ds.n_classes).tolist(),
            "history": history.to_dict(),
            "wall_time_s": wall,
        }
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(record, f, indent=2)
        print(f"wrote {args.json}", file=out)
    return 130 if history.interrupted else 0
