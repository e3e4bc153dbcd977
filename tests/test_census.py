"""Census of bad and hostile inputs across the API and the command line.

Every row of the table is one input a hostile but realistic user could give. Each case asserts:

* the exception type;
* that the message names the argument (``X``, ``lr``) or the option (``--lr``), or the file and field;
* that every watched object is bit-identical afterwards: parameters, running statistics, Generator
  states (``bit_generator.state``), optimiser state, the inputs themselves, and files on disk.

A few rows expect success instead (``exc=None``): the call must leave its watched state unchanged
and its result must satisfy ``check``. Rows the library does not satisfy yet are marked
``xfail(strict=True)`` with the reason, so they are counted and turn into failures when fixed.

Hostile files (model archives, CIFAR-10 pickles) are opened in a child process under an address-space
limit (``resource.RLIMIT_AS``), so a regression that allocates out of proportion fails with
MemoryError instead of swapping; the child also reports each file's peak traced allocation.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import struct
import subprocess
import sys
import textwrap
import zipfile
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable

import numpy as np
import pytest

from jacobian_nn import (
    Dense,
    Dropout,
    BatchNorm,
    FullyConnectedNet,
    Network,
    ReLU,
    Softmax,
    SoftmaxCrossEntropy,
    cross_check,
    data,
)
from jacobian_nn.cli import main
from jacobian_nn.model_io import ARCH_KEY, architecture, load_model, save_model
from jacobian_nn.optimizers import SGD, Adam, Momentum, OptimizerState, make_optimizer
from jacobian_nn.solver import Solver

# --------------------------------------------------------------------------- state snapshots


def snapshot(obj, _depth=0):
    """A comparable copy of everything ``obj`` holds: arrays (dtype, shape, bytes), Generator states,
    files (bytes) and folders (names and bytes), and the attributes of library objects, recursively."""
    if _depth > 12:
        return "<deep>"
    if isinstance(obj, np.ndarray):
        return ("array", obj.dtype.str, obj.shape, obj.tobytes(), obj.copy())
    if isinstance(obj, np.random.Generator):
        return ("generator", snapshot(obj.bit_generator.state, _depth + 1))
    if isinstance(obj, Path):
        if obj.is_dir():
            return ("dir", {p.name: snapshot(p, _depth + 1) for p in sorted(obj.iterdir())})
        return ("file", obj.read_bytes() if obj.exists() else None)
    if isinstance(obj, dict):
        return ("dict", {k: snapshot(v, _depth + 1) for k, v in obj.items()})
    if isinstance(obj, (list, tuple)):
        return (type(obj).__name__, [snapshot(v, _depth + 1) for v in obj])
    if isinstance(obj, (int, float, str, bytes, bool, type(None), np.generic)):
        return ("value", type(obj).__name__, repr(obj))
    if hasattr(obj, "__dict__") and type(obj).__module__.startswith("jacobian_nn"):
        return (type(obj).__name__, snapshot(vars(obj), _depth + 1))
    if hasattr(obj, "__dataclass_fields__"):
        return (type(obj).__name__, snapshot({k: getattr(obj, k) for k in obj.__dataclass_fields__}, _depth + 1))
    return ("other", type(obj).__name__)


def assert_same(before, after, where="state"):
    """Bit-identical: equal bytes, dtypes and shapes, and ``np.array_equal`` on the copies."""
    assert type(before) is type(after), where
    if isinstance(before, tuple) and before and before[0] == "array":
        assert before[1:4] == after[1:4], f"{where}: array changed"
        assert np.array_equal(before[4], after[4], equal_nan=before[4].dtype.kind in "fc"), where
        return
    if isinstance(before, dict):
        assert before.keys() == after.keys(), where
        for k in before:
            assert_same(before[k], after[k], f"{where}[{k!r}]")
    elif isinstance(before, (list, tuple)):
        assert len(before) == len(after), where
        for i, (a, b) in enumerate(zip(before, after)):
            assert_same(a, b, f"{where}[{i}]")
    else:
        assert before == after, where


# --------------------------------------------------------------------------- the table


@dataclass
class Case:
    id: str
    setup: Callable  # tmp_path -> (call, watched)
    exc: type | None  # None: the call must succeed
    match: str = ""  # regex the message must contain (the argument, option or file + field)
    check: Callable | None = None  # for exc=None: a predicate on the result
    xfail: str | None = None


class CLIError(Exception):
    """``jacobian-nn`` returned exit code 2; the message is its standard error."""


def run_cli(argv):
    err = io.StringIO()
    out = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse's usage errors
            code = exc.code
    if code == 2:  # the error line only (argparse prints the usage, which names every option, above it)
        raise CLIError("\n".join(line for line in err.getvalue().splitlines() if "error:" in line))
    return code, out.getvalue()


RNG = np.random.default_rng(20)
X6 = RNG.normal(size=(6, 3))
Y6 = np.array([0, 1, 2, 3, 1, 0])


def plain():
    return Network.build([3, 5, 4], "tanh", seed=0, l2=1e-3)


def plain32():
    return Network.build([3, 5, 4], "tanh", seed=0, dtype=np.float32)


def fcnet():
    net = FullyConnectedNet([5, 4], input_dim=3, num_classes=4, dropout=0.3, use_batchnorm=True, seed=0)
    net.loss_and_gradients_batched(RNG.normal(size=(8, 3)), RNG.integers(0, 4, size=8))  # non-zero stats
    return net


def mse_net():
    return Network.build([3, 4, 2], "tanh", loss="mse", output_activation="identity", seed=0)


def with_nan(X):
    X = X.copy()
    X[2, 1] = np.nan
    return X


def with_inf(X):
    X = X.copy()
    X[0, 0] = -np.inf
    return X


#: Bad batches for a network with 3 inputs: (name, value, exception, what the message names).
BAD_X = [
    ("nan", with_nan(X6), ValueError, r"^X: .*expected finite"),
    ("inf", with_inf(X6), ValueError, r"^X: .*expected finite"),
    ("1d", X6[0], ValueError, r"^X: .*expected a 2-D batch"),
    ("features", RNG.normal(size=(6, 4)), ValueError, r"^X: .*expected 3 features"),
    ("empty", np.zeros((0, 3)), ValueError, r"^X: .*expected a non-empty batch"),
    ("complex", X6 + 1j, TypeError, r"^X: .*complex128"),
    ("strings", np.array([["a", "b", "c"]] * 6), TypeError, r"^X: .*<U1"),
    ("float32", X6.astype(np.float32), TypeError, r"^X: .*float32"),
    ("objects", np.array([[1.0, None, 2.0]] * 6, dtype=object), TypeError, r"^X: .*object"),
    ("list_ragged", [[1.0, 2.0, 3.0], [1.0]], ValueError, r"^X: "),
]

#: Bad labels for 6 samples and 4 classes.
BAD_Y = [
    ("label_7", np.array([0, 1, 2, 7, 1, 0]), ValueError, r"^Y: .*\[0, 4\)"),
    ("label_neg", np.array([0, 1, -1, 3, 1, 0]), ValueError, r"^Y: .*\[0, 4\)"),
    ("label_float", np.array([0, 1, 1.5, 3, 1, 0]), TypeError, r"^Y: .*integer"),
    ("label_count", np.array([0, 1, 2]), ValueError, r"^Y: .*expected 6 labels"),
    ("onehot_width", np.eye(3)[[0, 1, 2, 0, 1, 2]], ValueError, r"^Y: .*\(6, 4\)"),
    ("label_nan", np.array([0, 1, np.nan, 3, 1, 0]), TypeError, r"^Y: .*integer"),
]

BATCH_METHODS = {
    "predict": lambda net, X: net.predict(X),
    "predict_batched": lambda net, X: net.predict_batched(X),
    "forward_batched": lambda net, X: net.forward_batched(X),
    "input_jacobian_batched": lambda net, X: net.input_jacobian_batched(X),
    "loss_and_gradients": lambda net, X: net.loss_and_gradients(X, Y6),
    "loss_and_gradients_batched": lambda net, X: net.loss_and_gradients_batched(X, Y6),
    "train_batch": lambda net, X: net.train_batch(X, Y6, 0.1),
    "train_step_batched": lambda net, X: net.train_step_batched(X, Y6, 0.1),
    "accuracy_batched": lambda net, X: net.accuracy_batched(X, Y6),
    "per_sample_gradients_batched": lambda net, X: net.per_sample_gradients_batched(X, Y6),
    "cross_check": lambda net, X: cross_check(net, X, Y6),
}

LABEL_METHODS = {
    "loss_and_gradients": lambda net, Y: net.loss_and_gradients(X6, Y),
    "loss_and_gradients_batched": lambda net, Y: net.loss_and_gradients_batched(X6, Y),
    "train_batch": lambda net, Y: net.train_batch(X6, Y, 0.1),
    "train_step_batched": lambda net, Y: net.train_step_batched(X6, Y, 0.1),
    "per_sample_losses_batched": lambda net, Y: net.per_sample_losses_batched(X6, Y),
}


def _net_case(case_id, make_net, fn, arg, exc, match, xfail=None, check=None):
    def setup(tmp_path):
        net = make_net()
        return (lambda: fn(net, arg)), [net, arg]

    return Case(case_id, setup, exc, match, check=check, xfail=xfail)


CASES: list[Case] = []

# -- every batch entry point, every bad X (plain float64 network)
for m_name, fn in BATCH_METHODS.items():
    for x_name, X, exc, match in BAD_X:
        CASES.append(_net_case(f"{m_name}-X-{x_name}", plain, fn, X, exc, match))

# -- the same on the CS231n-style network with batch norm and dropout (running stats, Generators)
for m_name in ("loss_and_gradients", "loss_and_gradients_batched", "train_batch", "train_step_batched"):
    for x_name, X, exc, match in BAD_X[:6]:
        CASES.append(_net_case(f"fcnet-{m_name}-X-{x_name}", fcnet, BATCH_METHODS[m_name], X, exc, match))
    for y_name, Y, exc, match in BAD_Y:
        CASES.append(_net_case(f"fcnet-{m_name}-Y-{y_name}", fcnet, LABEL_METHODS[m_name], Y, exc, match))

# -- bad labels on the plain network
for m_name, fn in LABEL_METHODS.items():
    for y_name, Y, exc, match in BAD_Y:
        CASES.append(_net_case(f"{m_name}-Y-{y_name}", plain, fn, Y, exc, match))

# -- learning rates
for lr_name, lr, exc in [
    ("zero", 0.0, ValueError),
    ("neg", -0.1, ValueError),
    ("nan", float("nan"), ValueError),
    ("inf", float("inf"), ValueError),
    ("str", "0.1", TypeError),
    ("bool", True, TypeError),
]:
    CASES.append(_net_case(f"train_batch-lr-{lr_name}", plain, lambda n, lr: n.train_batch(X6, Y6, lr), lr, exc, r"lr"))
    CASES.append(
        _net_case(
            f"train_step_batched-lr-{lr_name}", fcnet, lambda n, lr: n.train_step_batched(X6, Y6, lr), lr, exc, r"^lr: "
        )
    )

# -- modes, single samples, the float32 network on the reference path
CASES += [
    _net_case("forward-mode", plain, lambda n, m: n.forward(X6[0][:, None], m), "training", ValueError, r"^mode: "),
    _net_case(
        "loss_and_gradients-mode", fcnet, lambda n, m: n.loss_and_gradients(X6, Y6, m), "eval", ValueError, r"mode"
    ),
    _net_case(
        "loss_and_gradients_batched-mode",
        fcnet,
        lambda n, m: n.loss_and_gradients_batched(X6, Y6, m),
        "eval",
        ValueError,
        r"^mode: ",
    ),
    _net_case("forward-row", plain, lambda n, x: n.forward(x), X6[:1], ValueError, r"^x.*column"),
    _net_case("forward-n", plain, lambda n, x: n.forward(x), np.ones((4, 1)), ValueError, r"^x.*\(3, 1\)"),
    _net_case(
        "forward-nan", plain, lambda n, x: n.forward(x), np.array([[1.0], [np.nan], [0.0]]), ValueError, r"x.*finite"
    ),
    _net_case("backward-label", plain, lambda n, y: n.backward(X6[0][:, None], y), 9, ValueError, r"^y: "),
    _net_case("train_one-lr", plain, lambda n, lr: n.train_one(X6[0][:, None], 1, lr), -1.0, ValueError, r"^lr: "),
    _net_case("input_jacobian-1d", plain, lambda n, x: n.input_jacobian(x), X6[0], ValueError, r"^x: "),
    _net_case(
        "reference-float32",
        plain32,
        lambda n, X: n.loss_and_gradients(X, Y6),
        X6.astype(np.float32),
        TypeError,
        r"^network.*float64",
    ),
    _net_case(
        "float32-predict_batched-float64", plain32, lambda n, X: n.predict_batched(X), X6, TypeError, r"X.*float32"
    ),
    _net_case(
        "mse-Y-shape", mse_net, lambda n, Y: n.loss_and_gradients_batched(X6, Y), np.ones((6, 3)), ValueError, r"^Y: "
    ),
    _net_case(
        "mse-Y-nan", mse_net, lambda n, Y: n.loss_and_gradients(X6, Y), np.full((6, 2), np.nan), ValueError, r"Y"
    ),
]


# -- updates and setters
def _steps(net, edit):
    steps = [{k: np.full_like(v, 1e-3) for k, v in p.items()} for p in net.params]
    edit(steps)
    return steps


def _set(steps, i, k, v):
    steps[i][k] = v


def _readonly_last(tmp_path):
    net = plain()
    net.layers[1].W.flags.writeable = False
    steps = _steps(net, lambda s: None)
    return (lambda: net.apply_update(steps)), [net, steps]


CASES += [
    _net_case(
        "apply_update-nan",
        plain,
        lambda n, e: n.apply_update(_steps(n, e)),
        lambda s: _set(s, 1, "b", np.array([0.0, np.nan, 0, 0])),
        ValueError,
        r"^steps\[1\]\['b'\]",
    ),
    _net_case(
        "apply_update-shape",
        plain,
        lambda n, e: n.apply_update(_steps(n, e)),
        lambda s: _set(s, 0, "W", np.zeros((5, 3))),
        ValueError,
        r"^steps\[0\]\['W'\].*shape",
    ),
    _net_case(
        "apply_update-dtype",
        plain,
        lambda n, e: n.apply_update(_steps(n, e)),
        lambda s: _set(s, 0, "W", np.zeros((3, 5), np.float32)),
        TypeError,
        r"^steps\[0\]\['W'\].*dtype",
    ),
    _net_case(
        "apply_update-keys",
        plain,
        lambda n, e: n.apply_update(_steps(n, e)),
        lambda s: s[0].pop("b"),
        ValueError,
        r"^steps\[0\].*keys",
    ),
    _net_case(
        "apply_update-layers",
        plain,
        lambda n, e: n.apply_update(_steps(n, e)),
        lambda s: s.pop(),
        ValueError,
        r"^steps.*layer",
    ),
    Case("apply_update-readonly", _readonly_last, ValueError, r"^steps\[1\]\['W'\]: .*read-only"),
    _net_case("set_flat_params-shape", plain, lambda n, t: n.set_flat_params(t), np.zeros(5), ValueError, r"^theta: "),
    _net_case(
        "set_flat_params-nan", plain, lambda n, t: n.set_flat_params(t), np.full(44, np.nan), ValueError, r"theta"
    ),
    _net_case(
        "set_flat_params-complex", plain, lambda n, t: n.set_flat_params(t), np.ones(44) + 1j, TypeError, r"theta"
    ),
    _net_case(
        "set_flat_params-float64-into-float32",
        plain32,
        lambda n, t: n.set_flat_params(t),
        np.ones(44),
        TypeError,
        r"^theta.*float32",
    ),
    _net_case(
        "set_flat_params-strings", plain, lambda n, t: n.set_flat_params(t), np.array(["1"] * 44), TypeError, r"theta"
    ),
]

# -- finite in, finite out; state on success
CASES += [
    _net_case(
        "predict_batched-1e308", plain, lambda n, X: n.predict_batched(X), np.full((2, 3), 1e308), ValueError, r"^X: "
    ),
    _net_case(
        "accuracy_batched-1e308",
        plain,
        lambda n, X: n.accuracy_batched(X, [0, 1]),
        np.full((2, 3), 1e308),
        ValueError,
        r"^X: ",
    ),
    Case(
        "softmax_cross_entropy-extreme-logits",
        lambda tmp: ((lambda: SoftmaxCrossEntropy().forward(np.array([[1e308], [-1e308]]), 0)), []),
        None,
        check=lambda loss: loss == 0.0,
    ),  # the exact loss; once NaN (inf - inf in the log-softmax)
    Case(
        "cross_check-leaves-dropout-generators",
        lambda tmp: (lambda net: ((lambda: cross_check(net, X6, Y6, jacobians=False)), [net]))(fcnet()),
        None,
        check=lambda report: report.passed,
    ),
    _net_case(
        "predict-1e308", plain, lambda n, X: n.predict(X), np.full((2, 3), 1e308), ValueError, r"^X: .*layers\[0\]"
    ),
    _net_case(
        "train_step_batched-1e308",
        plain,
        lambda n, X: n.train_step_batched(X, Y6[:2], 0.1),
        np.full((2, 3), 1e308),
        ValueError,
        r"^X: .*layers\[0\]",
    ),
    _net_case(
        "train_batch-1e308",
        plain,
        lambda n, X: n.train_batch(X, Y6[:2], 0.1),
        np.full((2, 3), 1e308),
        ValueError,
        r"^X: .*layers\[0\]",
    ),
    _net_case(
        "input_jacobian_batched-1e308",
        plain,
        lambda n, X: n.input_jacobian_batched(X),
        np.full((2, 3), 1e308),
        ValueError,
        r"^X: .*layers\[0\]",
    ),
    Case(
        "set_flat_params-int",  # near miss of the dtype rows: integers are converted on purpose (and written)
        lambda tmp: (lambda net, t: ((lambda: (net.set_flat_params(t), net.flat_params())[1]), [t]))(
            plain(), np.arange(44)
        ),
        None,
        check=lambda theta: np.array_equal(theta, np.arange(44.0)),
    ),
    Case(
        "cross_check-bad-X-leaves-dropout-generators",
        lambda tmp: (lambda net: ((lambda: cross_check(net, X6[:, :2], Y6)), [net]))(fcnet()),
        ValueError,
        r"^X: ",
    ),
    Case(
        "Solver-diverges",
        lambda tmp: (
            lambda net, opt: (
                (lambda: Solver(net, _tiny_dataset(), opt, epochs=2, batch_size=8, progress=False).train()),
                [net],
            )
        )(Network.build([3, 8, 4], "relu", seed=0), SGD(1e300)),
        ValueError,
        r"^lr: training diverged.*lower the learning rate",
    ),
    Case(
        "fcnet-train_step_batched-overflow-after-batchnorm",  # running stats and Generators put back
        lambda tmp: (
            lambda net: (
                net.layers[-1].W.__setitem__(Ellipsis, 1e308),
                ((lambda: net.train_step_batched(X6, Y6, 0.1)), [net]),
            )[1]
        )(fcnet()),
        ValueError,
        r"^X: .*layers\[8\]",
    ),
    Case(
        "predict_batched-large-but-safe",  # near miss of the overflow rows: large finite inputs that do not overflow
        lambda tmp: (lambda net: ((lambda: net.predict_batched(np.full((2, 3), 1e150))), [net]))(plain()),
        None,
        check=lambda out: np.isfinite(out).all(),
    ),
]


# -- constructors and layers
def _call(fn, *args, **kwargs):
    return lambda tmp: ((lambda: fn(*args, **kwargs)), [a for a in args if isinstance(a, np.ndarray)])


CASES += [
    Case("Dense-n_in-0", _call(Dense, 0, 3), ValueError, r"^n_in: "),
    Case("Dense-activation", _call(Dense, 3, 2, "swish"), ValueError, r"^activation: "),
    Case("Dense-init", _call(Dense, 3, 2, "relu", init="glorot_magic"), ValueError, r"^init: "),
    Case("Dense-float16", _call(Dense, 3, 2, dtype=np.float16), TypeError, r"^dtype: "),
    Case("Dense.from_params-nan", _call(Dense.from_params, np.full((2, 2), np.nan), np.zeros(2)), ValueError, r"^W: "),
    Case("Dense.from_params-b", _call(Dense.from_params, np.ones((2, 2)), np.zeros(3)), ValueError, r"^b: "),
    Case("Network-empty", _call(Network, [], "mse"), ValueError, r"^layers: "),
    Case("Network-mismatch", _call(Network, [Dense(3, 4, seed=0), Dense(5, 2, seed=0)], "mse"), ValueError, r"layers"),
    Case("Network-loss", _call(Network, [Dense(3, 4, seed=0)], "hinge"), ValueError, r"^loss: "),
    Case("Network-l2", _call(Network, [Dense(3, 4, seed=0)], "mse", l2=-1.0), ValueError, r"^l2: "),
    Case(
        "Network-softmax-twice",
        _call(Network, [Dense(3, 4, "softmax", seed=0)], "softmax_cross_entropy"),
        ValueError,
        r"^loss: ",
    ),
    Case("BatchNorm-m", _call(BatchNorm, 0), ValueError, r"^m: "),
    Case("BatchNorm-momentum", _call(BatchNorm, 3, momentum=2.0), ValueError, r"^momentum: "),
    Case("Dropout-p-1", _call(Dropout, 3, 1.0), ValueError, r"^p: "),
    Case("Dropout-p-neg", _call(Dropout, 3, -0.1), ValueError, r"^p: "),
    Case("FullyConnectedNet-hidden", _call(FullyConnectedNet, [0]), ValueError, r"^hidden_dims\[0\]"),
    Case("FullyConnectedNet-dropout", _call(FullyConnectedNet, [3], dropout=1.5), ValueError, r"^dropout: "),
    Case("FullyConnectedNet-reg", _call(FullyConnectedNet, [3], reg=float("nan")), ValueError, r"^reg: "),
    Case("ReLU.jacobian-row", _call(ReLU().jacobian, np.ones((1, 3))), ValueError, r"^z: "),
    Case("Softmax.jacobian-nan", _call(Softmax().jacobian, np.array([[np.nan], [0.0]])), ValueError, r"^z: "),
    Case("ReLU.jacobian-nan", _call(ReLU().jacobian, np.array([[np.nan], [0.0]])), ValueError, r"^z: "),
    Case("SoftmaxCE-label", _call(SoftmaxCrossEntropy().forward, np.zeros((3, 1)), 5), ValueError, r"^y: "),
]


# -- optimisers
def _opt_case(case_id, make_opt, edit_state, exc, match, grads_edit=None, lr=None):
    def setup(tmp_path):
        net = plain()
        opt = make_opt()
        grads = [{k: np.full_like(v, 0.1) for k, v in p.items()} for p in net.params]
        _, state = opt.step(net.params, grads, opt.init_state(net.params))
        state = edit_state(state)
        if grads_edit:
            grads_edit(grads)
        kwargs = {} if lr is None else {"lr": lr}
        return (lambda: opt.step(net.params, grads, state, **kwargs)), [net, opt, state, grads]

    return Case(case_id, setup, exc, match)


def _buf(state, name, value):
    buffers = {k: [dict(d) for d in v] for k, v in state.buffers.items()}
    buffers[name][0]["W"] = value
    return OptimizerState(state.t, buffers)


CASES += [
    Case("OptimizerState-t-neg", _call(OptimizerState, -1), ValueError, r"^state\.t"),
    Case("OptimizerState-t-str", _call(OptimizerState, "1"), TypeError, r"^state\.t"),
    Case("OptimizerState-t-float", _call(OptimizerState, 1.5), TypeError, r"^state\.t"),
    Case("OptimizerState-buffers", _call(OptimizerState, 0, [1]), TypeError, r"^state\.buffers"),
    _opt_case(
        "Adam-m-nan",
        Adam,
        lambda s: _buf(s, "m", np.full((3, 5), np.nan)),
        ValueError,
        r"state\.buffers\['m'\]\[0\]\['W'\]",
    ),
    _opt_case(
        "Adam-v-neg", Adam, lambda s: _buf(s, "v", -np.ones((3, 5))), ValueError, r"^state\.buffers\['v'\]\[0\]\['W'\]"
    ),
    _opt_case(
        "Adam-v-float32",
        Adam,
        lambda s: _buf(s, "v", np.ones((3, 5), np.float32)),
        TypeError,
        r"\['v'\]\[0\]\['W'\].*dtype",
    ),
    _opt_case(
        "Momentum-velocity-shape",
        Momentum,
        lambda s: _buf(s, "velocity", np.ones((5, 3))),
        ValueError,
        r"\['velocity'\]\[0\]\['W'\].*shape",
    ),
    _opt_case(
        "Adam-state-of-Momentum", Adam, lambda s: Momentum().init_state(plain().params), ValueError, r"state.*buffers"
    ),
    _opt_case("SGD-state-dict", SGD, lambda s: {"t": 0}, TypeError, r"^state: "),
    _opt_case(
        "Adam-grads-nan",
        Adam,
        lambda s: s,
        ValueError,
        r"^grads\[0\]\['b'\]",
        grads_edit=lambda g: g[0].__setitem__("b", np.full(5, np.nan)),
    ),
    _opt_case(
        "Adam-grads-float32",
        Adam,
        lambda s: s,
        TypeError,
        r"^grads\[1\]\['W'\]",
        grads_edit=lambda g: g[1].__setitem__("W", g[1]["W"].astype(np.float32)),
    ),
    _opt_case("Adam-lr-override", Adam, lambda s: s, ValueError, r"^lr: ", lr=-1.0),
    Case("Adam-beta1", _call(Adam, 0.1, beta1=1.0), ValueError, r"^beta1: "),
    Case("make_optimizer-name", _call(make_optimizer, "adamw", 0.1), ValueError, r"^optimizer: "),
    Case("Momentum-momentum", _call(Momentum, 0.1, momentum=-0.5), ValueError, r"^momentum: "),
]


# -- solver and data sets
def _solver(**kwargs):
    def setup(tmp_path):
        net, ds = plain(), _tiny_dataset()
        opt = Adam(0.01)
        return (lambda: Solver(net, ds, opt, **{"batch_size": 8, **kwargs})), [net, opt]

    return setup


def _tiny_dataset():
    ds = data.spiral(n_per_class=10, n_classes=4, seed=0)
    return data.Dataset(
        "tiny",
        np.hstack([ds.X_train, ds.X_train[:, :1]]),
        ds.y_train,
        np.hstack([ds.X_val, ds.X_val[:, :1]]),
        ds.y_val,
        np.hstack([ds.X_test, ds.X_test[:, :1]]),
        ds.y_test,
        ds.classes,
    )


CASES += [
    Case("Solver-epochs", _solver(epochs=0), ValueError, r"^epochs: "),
    Case("Solver-batch_size", _solver(batch_size=10_000), ValueError, r"^batch_size: "),
    Case("Solver-path", _solver(path="fast"), ValueError, r"^path: "),
    Case("Solver-lr_decay", _solver(lr_decay=-1.0), ValueError, r"^lr_decay: "),
    Case("spiral-n_per_class", _call(data.spiral, n_per_class=1), ValueError, r"^n_per_class: "),
    Case("spiral-noise", _call(data.spiral, noise=float("nan")), ValueError, r"^noise: "),
    Case("gates-NOR", _call(data.gates, "NOR"), ValueError, r"^gate: "),
    Case(
        "stratified_split-sizes",
        _call(data.stratified_split, np.zeros(10), 0.7, 0.4, 0),
        ValueError,
        r"train_size \+ val_size",
    ),
    Case("cifar10-no-dir", lambda tmp: ((lambda: data.cifar10(tmp / "none")), [tmp]), FileNotFoundError, r"data_dir"),
]

# -- the command line: every option named in its error, the folder untouched (no output written)
CLI = [
    ("lr-zero", ["--lr", "0"], r"--lr"),
    ("lr-nan", ["--lr", "nan"], r"--lr"),
    ("lr-text", ["--lr", "fast"], r"--lr"),
    ("lr-decay", ["--lr-decay", "-1"], r"--lr-decay"),
    ("epochs", ["--epochs", "0"], r"--epochs"),
    ("epochs-text", ["--epochs", "1.5"], r"--epochs"),
    ("batch-size", ["--batch-size", "0"], r"--batch-size"),
    ("batch-size-big", ["--batch-size", "99"], r"--batch-size"),
    ("seed", ["--seed", "-1"], r"--seed"),
    ("seed-text", ["--seed", "x"], r"--seed"),
    ("l2", ["--l2", "-1"], r"--l2"),
    ("l2-inf", ["--l2", "inf"], r"--l2"),
    ("dropout", ["--dropout", "1.0"], r"--dropout"),
    ("weight-scale-alone", ["--weight-scale", "0.1"], r"--weight-scale"),
    ("weight-scale-neg", ["--dropout", "0.2", "--activation", "relu", "--weight-scale", "-1"], r"--weight-scale"),
    ("activation-with-batchnorm", ["--batchnorm", "--activation", "tanh"], r"--activation"),
    ("activation-unknown", ["--activation", "swish"], r"--activation"),
    ("hidden", ["--hidden", "8,x"], r"--hidden"),
    ("hidden-zero", ["--hidden", "0"], r"--hidden"),
    ("gate-elsewhere", ["--dataset", "toy", "--gate", "and"], r"--gate"),
    ("data-dir-elsewhere", ["--data-dir", "."], r"--data-dir"),
    ("max-train-elsewhere", ["--max-train", "5"], r"--max-train"),
    ("optimizer", ["--optimizer", "adamw"], r"--optimizer"),
    ("path", ["--path", "fast"], r"--path"),
    ("save-no-folder", ["--save", "{tmp}/no/m.npz"], r"--save"),
    ("json-no-folder", ["--json", "{tmp}/no/r.json"], r"--json"),
    ("plot-no-folder", ["--plot", "{tmp}/no/p.png"], r"--plot"),
    ("save-is-dir", ["--save", "{tmp}/dir.npz"], r"--save"),
    ("json-is-dir", ["--json", "{tmp}/dir.npz"], r"--json"),
    ("same-file", ["--save", "{tmp}/a.npz", "--json", "{tmp}/a.npz"], r"--json"),
    ("cifar-no-dir", ["--dataset", "cifar10"], r"--data-dir"),
    ("dataset", ["--dataset", "mnist"], r"--dataset"),
]


def _cli(argv):
    def setup(tmp_path):
        (tmp_path / "dir.npz").mkdir()
        full = (
            ["train"]
            + ([] if "--dataset" in argv else ["--dataset", "gates"])
            + ["--no-progress"]
            + [a.replace("{tmp}", str(tmp_path)) for a in argv]
        )
        return (lambda: run_cli(full)), [tmp_path]

    return setup


CASES += [
    Case(f"cli-train-{name}", _cli(argv), CLIError, rf"^jacobian-nn train: error: (argument )?{option}: ")
    for name, argv, option in CLI
]


# -- model files opened in this process (small crafted files; the big claims are in the child below)
def _model_file(tmp_path, edit=None, arrays_edit=None):
    path = save_model(plain(), tmp_path / "m.npz")
    if edit or arrays_edit:
        _rewrite_model(path, edit, arrays_edit)
    return Path(path)


def _rewrite_model(path, edit=None, arrays_edit=None):
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    arch = json.loads(str(np.load(io.BytesIO(members[ARCH_KEY + ".npy"]))))
    if edit:
        arch = edit(arch) or arch
    members[ARCH_KEY + ".npy"] = _npy(np.array(json.dumps(arch)))
    if arrays_edit:
        arrays_edit(members)
    with zipfile.ZipFile(path, "w") as out:
        for n, raw in members.items():
            out.writestr(n, raw)


def _npy(arr):
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def _load_case(case_id, edit=None, arrays_edit=None, match=""):
    def setup(tmp_path):
        path = _model_file(tmp_path, edit, arrays_edit)
        return (lambda: load_model(path)), [path]

    return Case(f"load_model-{case_id}", setup, ValueError, r"m\.npz: .*" + match)


def _set_key(*keys, value):
    def edit(arch):
        d = arch
        for k in keys[:-1]:
            d = d[k]
        d[keys[-1]] = value

    return edit


CASES += [
    _load_case("format", _set_key("format", value="keras"), match=r"format"),
    _load_case("version", _set_key("version", value=2), match=r"version"),
    _load_case("dtype-string", _set_key("dtype", value="U100000000"), match=r"dtype"),
    _load_case("l2-string", _set_key("l2", value="0.1"), match=r"l2"),
    _load_case("l2-negative", _set_key("l2", value=-1), match=r"l2"),
    _load_case("loss", _set_key("loss", "name", value="os.system"), match=r"loss\.name"),
    _load_case(
        "activation",
        _set_key("layers", 0, "config", "activation", "name", value="eval"),
        match=r"layers\[0\]\.config\.activation\.name",
    ),
    _load_case("n_out-bool", _set_key("layers", 0, "config", "n_out", value=True), match=r"layers\[0\]\.config\.n_out"),
    _load_case("n_out-huge", _set_key("layers", 0, "config", "n_out", value=300_000_000), match=r"layers\[(0|1)\]"),
    _load_case("layer-type", _set_key("layers", 1, "type", value="Lambda"), match=r"layers\[1\]\.type"),
    _load_case("extra-key", _set_key("layers", 0, "code", value="import os"), match=r"layers\[0\]"),
    _load_case(
        "arrays-names", _set_key("layers", 0, "arrays", value=["W", "../../etc/passwd"]), match=r"layers\[0\]\.arrays"
    ),
    _load_case("layers-empty", _set_key("layers", value=[]), match=r"layers"),
    _load_case(
        "unknown-member",
        arrays_edit=lambda m: m.__setitem__("evil.npy", _npy(np.zeros(3))),
        match=r"arrays: unexpected members \['evil\.npy'\]",
    ),
    _load_case("missing-member", arrays_edit=lambda m: m.pop("layers/0/b.npy"), match=r"layers/0/b"),
    _load_case(
        "shape",
        arrays_edit=lambda m: m.__setitem__("layers/0/W.npy", _npy(np.zeros((3, 6)))),
        match=r"layers/0/W: shape \(3, 6\)",
    ),
    _load_case(
        "dtype-float32",
        arrays_edit=lambda m: m.__setitem__("layers/0/b.npy", _npy(np.zeros(5, np.float32))),
        match=r"layers/0/b: dtype float32",
    ),
    _load_case(
        "dtype-object",
        arrays_edit=lambda m: m.__setitem__("layers/0/b.npy", _header((5,), "|O") + b"\0" * 40),
        match=r"layers/0/b: dtype object",
    ),
    _load_case(
        "big-endian",
        arrays_edit=lambda m: m.__setitem__("layers/0/b.npy", _npy(np.zeros(5, ">f8"))),
        match=r"layers/0/b: dtype",
    ),
    _load_case(
        "nan-weights",
        arrays_edit=lambda m: m.__setitem__("layers/1/W.npy", _npy(np.full((5, 4), np.nan))),
        match=r"layers/1/W: not finite",
    ),
    _load_case("json-nan", _set_key("l1", value=float("nan")), match=r"JSON|l1"),
    _load_case(
        "network-type", _set_key("network", value={"type": "subprocess.Popen", "config": {}}), match=r"network\.type"
    ),
    _load_case("rng-in-dense", _set_key("layers", 0, "config", "rng", value={}), match=r"layers\[0\]\.config"),
    Case(
        "load_model-fcnet-dropout-rate",
        lambda tmp: (lambda p: ((lambda: load_model(p)), [p]))(
            _fcnet_file(tmp, lambda a: a["network"]["config"].__setitem__("dropout", 0.5))
        ),
        ValueError,
        r"m\.npz: .*network: FullyConnectedNet dropout 0\.5, the file's dropout layers have p = \[0\.3\]",
    ),
]


def _fcnet_file(tmp_path, edit):
    path = save_model(fcnet(), tmp_path / "m.npz")
    _rewrite_model(path, edit)
    return Path(path)


# -- model files: saving
def _save_over(tmp_path):
    path = save_model(plain(), tmp_path / "m.npz")
    bad = plain()
    bad.layers[0].W[0, 0] = np.inf
    return (lambda: save_model(bad, path)), [tmp_path, bad]


CASES += [
    Case("save_model-nonfinite", _save_over, ValueError, r"^net: array 'layers/0/W' is not finite"),
    Case(
        "save_model-no-folder",
        lambda tmp: (lambda net: ((lambda: save_model(net, tmp / "x" / "m")), [tmp, net]))(plain()),
        FileNotFoundError,
        r"^path: ",
    ),
    Case(
        "save_model-path-type",
        lambda tmp: (lambda net: ((lambda: save_model(net, 3)), [tmp, net]))(plain()),
        TypeError,
        r"^path: ",
    ),
    Case(
        "load_model-max_bytes",
        lambda tmp: (lambda p: ((lambda: load_model(p, max_bytes=0)), [tmp]))(_model_file(tmp)),
        ValueError,
        r"^max_bytes: ",
    ),
]


def _params(case: Case):
    marks = [pytest.mark.xfail(strict=True, reason=case.xfail)] if case.xfail else []
    return pytest.param(case, id=case.id, marks=marks)


@pytest.mark.parametrize("case", [_params(c) for c in CASES])
def test_census(case, tmp_path):
    call, watched = case.setup(tmp_path)
    before = snapshot(watched)
    if case.exc is None:
        with np.errstate(all="ignore"):
            result = call()
        assert case.check(result), f"{case.id}: result {result!r}"
    else:
        with pytest.raises(case.exc) as info:
            call()
        assert re.search(case.match, str(info.value), re.S), f"{case.id}: {info.value}"
    assert_same(before, snapshot(watched))


def test_census_size():
    # the issue asks for at least 150 bad or hostile inputs across the API and the CLI
    assert len(CASES) + len(HOSTILE) >= 150
    assert len({c.id for c in CASES} | set(HOSTILE)) == len(CASES) + len(HOSTILE)
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    assert f"checks on {len(CASES) + len(HOSTILE)} bad or hostile inputs" in readme  # the README's count is true


# --------------------------------------------------------------------------- hostile files, in a child


def _zip_with(members, sizes=None, method=zipfile.ZIP_DEFLATED):
    """A zip archive of ``members`` ({name: bytes}); ``sizes`` ({name: n}) overwrites the uncompressed
    size recorded in the central directory (a lie, as a crafted file can tell)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=method) as z:
        for name, raw in members.items():
            z.writestr(name, raw)
    raw = bytearray(buf.getvalue())
    for name, size in (sizes or {}).items():
        at = raw.find(b"PK\x01\x02")
        while at >= 0:
            n = struct.unpack("<H", raw[at + 28 : at + 30])[0]
            if raw[at + 46 : at + 46 + n].decode() == name:
                raw[at + 24 : at + 28] = struct.pack("<L", size)
                break
            at = raw.find(b"PK\x01\x02", at + 4)
    return bytes(raw)


def _arch(layers, dtype="float64", network=None):
    arch = {
        "format": "jacobian_nn.model",
        "version": 1,
        "dtype": dtype,
        "loss": {"name": "softmax_cross_entropy", "config": {}},
        "l2": 0.0,
        "l1": 0.0,
        "regularize_bias": False,
        "layers": layers,
    }
    if network:
        arch["network"] = network
    return _npy(np.array(json.dumps(arch)))


def _dense(n_in, n_out):
    return {
        "type": "Dense",
        "config": {"n_in": n_in, "n_out": n_out, "activation": {"name": "identity", "config": {}}},
        "arrays": ["W", "b"],
        "state": [],
    }


def _header(shape, descr="<f8"):
    d = f"{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}"
    d += " " * (118 - len(d)) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(d)) + d.encode()


def _wide_claim():
    # a 4 KB file whose architecture and .npy headers claim a width of 3e8 (W 2.4 GB in float32); the
    # zip's sizes agree with the claim, its data does not
    h = _header((2, 300_000_000), "<f4")
    return _zip_with(
        {
            ARCH_KEY + ".npy": _arch([_dense(2, 300_000_000)], dtype="float32"),
            "layers/0/W.npy": h + b"\0" * 64,
            "layers/0/b.npy": _header((300_000_000,), "<f4") + b"\0" * 64,
        },
        sizes={"layers/0/W.npy": len(h) + 4 * 600_000_000, "layers/0/b.npy": len(h) + 4 * 300_000_000},
    )


def _two_15000():
    # two hidden layers of 15 000: 1.8 GB each, claimed consistently in JSON, headers and zip sizes
    layers = [_dense(2, 15_000), _dense(15_000, 15_000), _dense(15_000, 3)]
    members, sizes = {ARCH_KEY + ".npy": _arch(layers)}, {}
    for i, (a, b) in enumerate([(2, 15_000), (15_000, 15_000), (15_000, 3)]):
        for name, shape in (("W", (a, b)), ("b", (b,))):
            h = _header(shape)
            members[f"layers/{i}/{name}.npy"] = h + b"\0" * 16
            sizes[f"layers/{i}/{name}.npy"] = len(h) + 8 * int(np.prod(shape))
    return _zip_with(members, sizes)


def _real_bomb():
    # a genuine deflate bomb: 200 MB of zeros in a ~200 KB member the architecture does not name
    good = io.BytesIO()
    net = Network.build([2, 3, 2], "relu", seed=0)
    with zipfile.ZipFile(good, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(ARCH_KEY + ".npy", _npy(np.array(json.dumps(architecture(net)))))
        for i, p in enumerate(net.params):
            for k, v in p.items():
                z.writestr(f"layers/{i}/{k}.npy", _npy(v))
        with z.open("zzz_bomb.npy", "w", force_zip64=True) as f:
            f.write(_header((25_000_000,)))
            chunk = b"\0" * (1 << 20)
            for _ in range(200):
                f.write(chunk)
    return good.getvalue()


def _bomb_named():
    # the same bomb as an expected member with its true size: refused by the memory budget
    h = _header((2, 12_500_000))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(ARCH_KEY + ".npy", _arch([_dense(2, 12_500_000)]))
        with z.open("layers/0/W.npy", "w", force_zip64=True) as f:
            f.write(h)
            chunk = b"\0" * (1 << 20)
            for _ in range(190):
                f.write(chunk)
            f.write(b"\0" * (8 * 25_000_000 - 190 * (1 << 20)))
        z.writestr("layers/0/b.npy", _header((12_500_000,)))  # header only: its data is missing
    return buf.getvalue()


def _deep_json():
    text = "[" * 200_000 + "]" * 200_000
    return _zip_with({ARCH_KEY + ".npy": _npy(np.array(text))})


def _dtype_bomb_header():
    # the header's dtype alone would allocate 400 MB for one element
    return _zip_with(
        {
            ARCH_KEY + ".npy": _arch([_dense(2, 3)]),
            "layers/0/W.npy": _header((2, 3), "<U100000000") + b"\0" * 16,
            "layers/0/b.npy": _npy(np.zeros(3)),
        }
    )


def _rng_dtype_bomb():
    layers = [
        _dense(2, 3),
        {
            "type": "Dropout",
            "config": {
                "m": 3,
                "p": 0.5,
                "dtype": "float64",
                "rng": {
                    "bit_generator": "PCG64",
                    "state": {"state": {"__ndarray__": [1], "dtype": "U100000000"}, "inc": 1},
                    "has_uint32": 0,
                    "uinteger": 0,
                },
            },
            "arrays": [],
            "state": [],
        },
    ]
    return _zip_with(
        {
            ARCH_KEY + ".npy": _arch(layers),
            "layers/0/W.npy": _npy(np.zeros((2, 3))),
            "layers/0/b.npy": _npy(np.zeros(3)),
        }
    )


def _many_members():
    # a central directory of 200 000 empty members (about 10 MB of directory for a small file)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr(ARCH_KEY + ".npy", _arch([_dense(2, 3)]))
        for i in range(200_000):
            z.writestr(f"m{i}", b"")
    return buf.getvalue()


def _huge_arch_member():
    return _zip_with({ARCH_KEY + ".npy": _npy(np.array(" " * 2_000_000))})


def _fcnet_hidden_claim():
    layers = [
        _dense(2, 3),
        {
            "type": "ActivationLayer",
            "config": {"m": 3, "activation": {"name": "relu", "config": {}}, "dtype": "float64"},
            "arrays": [],
            "state": [],
        },
        _dense(3, 2),
    ]
    arch = _arch(
        layers,
        network={
            "type": "FullyConnectedNet",
            "config": {"hidden_dims": [300_000_000], "dropout": 0.0, "use_batchnorm": False},
        },
    )
    return _zip_with(
        {
            ARCH_KEY + ".npy": arch,
            "layers/0/W.npy": _npy(np.zeros((2, 3))),
            "layers/0/b.npy": _npy(np.zeros(3)),
            "layers/2/W.npy": _npy(np.zeros((3, 2))),
            "layers/2/b.npy": _npy(np.zeros(2)),
        }
    )


def _lzma_member():
    return _zip_with(
        {
            ARCH_KEY + ".npy": _arch([_dense(2, 3)]),
            "layers/0/W.npy": _npy(np.zeros((2, 3))),
            "layers/0/b.npy": _npy(np.zeros(3)),
        },
        method=zipfile.ZIP_LZMA,
    )


def _cifar(body):
    return b"\x80\x02" + body


_NDARRAY_CALL = b"}(U\x04datacnumpy\nndarray\nJ\x10'\x00\x00M\x00\x0c\x86\x85RU\x06labels]u."
_ZERO_STRIDES = (
    b"}(U\x04datacnumpy\nndarray\n(J\x10'\x00\x00M\x00\x0c\x86U\x02u1U\x01\x07K\x00K\x00K\x00\x86tRU\x06labels]u."
)
_RECONSTRUCT_CLAIM = (
    b"}(U\x04datacnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85U\x01b\x87R"
    b"(K\x01(J\x10'\x00\x00M\x00\x0ctcnumpy\ndtype\n(U\x02u1K\x00K\x01tR(K\x03U\x01|NNNJ\xff\xff"
    b"\xff\xffJ\xff\xff\xff\xffK\x00tb\x89U\x01\x00tbU\x06labels]u."
)

#: name -> (builder of the file's bytes, kind, regex of the field the refusal must name)
HOSTILE = {
    "model-width-3e8": (_wide_claim, "model", r"layers/0/(W|b)"),
    "model-two-hidden-15000": (_two_15000, "model", r"layers/\d/\w.*(budget|impossible)"),
    "model-real-zip-bomb-unknown-member": (_real_bomb, "model", r"arrays: unexpected members \['zzz_bomb\.npy'\]"),
    "model-real-zip-bomb-named": (_bomb_named, "model", r"layers/0/(W|b).*(budget|holds)"),
    "model-deep-json": (_deep_json, "model", r"__architecture__: JSON nested deeper"),
    "model-header-dtype-U1e8": (_dtype_bomb_header, "model", r"layers/0/W: dtype <U100000000"),
    "model-rng-dtype-U1e8": (_rng_dtype_bomb, "model", r"layers\[1\]\.config\.rng.*dtype"),
    "model-200000-members": (_many_members, "model", r"archive: a central directory"),
    "model-2MB-architecture": (_huge_arch_member, "model", r"__architecture__|JSON"),
    "model-fcnet-hidden-3e8": (_fcnet_hidden_claim, "model", r"network.*hidden_dims \[300000000\]"),
    "model-lzma": (_lzma_member, "model", r"compression method 14"),
    "cifar-ndarray-call": (lambda: _cifar(_NDARRAY_CALL), "cifar", r"not a readable CIFAR-10 pickle"),
    "cifar-zero-strides": (lambda: _cifar(_ZERO_STRIDES), "cifar", r"not a readable CIFAR-10 pickle"),
    "cifar-reconstruct-claims-30MB": (lambda: _cifar(_RECONSTRUCT_CLAIM), "cifar", r"b'data': expected 30720000 bytes"),
    "cifar-mark-bomb": (lambda: b"\x80\x02" + b"(" * 1_000_000 + b".", "cifar", r"more than 200000 pickle opcodes"),
    "cifar-long-list": (
        lambda: b"\x80\x02]" + b"(" + b"K\x01" * 300_000 + b"e.",
        "cifar",
        r"more than 200000 pickle opcodes",
    ),
    "cifar-os-system": (lambda: b"\x80\x02cos\nsystem\nU\x04true\x85R.", "cifar", r"refused global os\.system"),
}

CHILD = textwrap.dedent("""
    import json, os, resource, sys, tracemalloc
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    from jacobian_nn import data
    from jacobian_nn.model_io import load_model
    with open("/proc/self/status") as f:
        vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize"))
    limit = vm + int(sys.argv[1])
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    out = {}
    for kind, path in json.loads(sys.argv[2]):
        tracemalloc.start()
        try:
            (load_model if kind == "model" else data.load_cifar10_batch)(path)
            result = ["no error", ""]
        except BaseException as exc:
            result = [type(exc).__name__, str(exc)[:2000]]
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        out[path] = result + [peak]
    print(json.dumps(out))
""")

#: Address space the child may add after its imports: far below every claim above (>= 1.8 GB).
CHILD_HEADROOM = 512 << 20


@pytest.fixture(scope="module")
def hostile_results(tmp_path_factory):
    folder = tmp_path_factory.mktemp("hostile")
    files = []
    for name, (build, kind, _) in HOSTILE.items():
        path = folder / name
        path.write_bytes(build())
        files.append((kind, str(path)))
    before = snapshot(folder)
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", PYTHONPATH=os.pathsep.join(sys.path))
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(CHILD_HEADROOM), json.dumps(files)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout)
    assert_same(before, snapshot(folder), "hostile files")  # nothing was written or changed
    return {Path(p).name: (r, os.path.getsize(p)) for p, r in results.items()}


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the child reads /proc and sets RLIMIT_AS")
@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_file(name, hostile_results):
    (exc_type, message, peak), size = hostile_results[name]
    assert exc_type == "ValueError", f"{name}: {exc_type}: {message}"
    assert name in message, message  # the file is named
    assert re.search(HOSTILE[name][2], message), message  # and the field
    # memory: a small multiple of the file's size, plus a fixed allowance (the architecture JSON may take
    # up to 2 MiB)
    assert peak <= 4 * size + (16 << 20), f"{name}: peak {peak} bytes for a file of {size}"
