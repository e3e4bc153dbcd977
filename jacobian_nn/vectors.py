"""Conformance vectors: files of inputs, parameters, cotangents and expected derivatives that an
implementation in any language can be checked against (``jacobian-nn vectors --out DIR``).

A suite is a folder::

    DIR/manifest.json          every case: component, conventions, tolerance, and every array's role,
                               kind, shape, dtype, layout and file names
    DIR/suite.txt              the same header as ``key value`` lines (format, library_version, layout,
                               content_hash, cases), for programs that do not parse JSON
    DIR/<case>/<name>.npy      each array as NumPy .npy
    DIR/<case>/<name>.json     the same array as JSON: {"name", "dtype", "shape", "data"}, data a nested
                               list; floats written with Python's repr, the shortest decimal that reads
                               back to the same double (a float32 value is written as its exact double)
    DIR/<case>/<name>.txt      the same array as text: ``dtype float64`` / ``shape 3 4`` lines, then one
                               value per line, floats as C99 hex floats (``printf("%a")``, ``strtod``
                               reads them back exactly), integers in decimal

Roles: ``input``, ``parameter``, ``cotangent`` (the given ``dL/dY`` of a VJP) and ``expected`` (what
your program must produce; ``compare`` reads these names from your results folder).

Layouts (``--layout``): ``rows`` writes a batch as ``(N, n)``, row k = sample k (CS231n), with
``W`` ``(n_in, n_out)`` and ``Z = X W + b``; ``columns`` writes a batch as ``(n, N)``, column k =
sample k (the deeplearning.ai course), with ``W`` ``(n_out, n_in)``, ``b`` ``(n_out, 1)`` and
``Z = W X + b``. A full Jacobian is always ``J[i, j] = d out.flat[i] / d in.flat[j]`` with ``flat``
the C order of the two arrays *as written in that layout*. Per-sample arrays keep the sample axis
first in both layouts; a per-sample Jacobian ``(N, m, n)`` indexes one sample's entries in the C order
of that sample as written.

Images: ``rows`` writes them NCHW, ``(N, C, H, W)`` (kind ``image_batch``), filters ``(F, C, FH, FW)``
(``conv_weight``) and per-channel vectors ``(C,)`` (``channel_vector``), as in CS231n and this library.
``columns`` writes them the way the deeplearning.ai course's CNN does: images NHWC ``(N, H, W, C)``
(its ``(m, n_H, n_W, n_C)``: the sample axis stays first, unlike a dense batch), filters
``(FH, FW, C, F)`` (its ``(f, f, n_C_prev, n_C)``) and per-channel vectors ``(1, 1, 1, C)`` (its conv
``b``). A Jacobian of an image array follows the rule above: in ``columns`` its rows and columns run over
``(n, h, w, c)``, not ``(n, c, h, w)``. A dense layer after images reads them flattened in the C order
of ``(C, H, W)`` (this library's rule); the suite's CNN flattens a ``(C, 1, 1)`` map, the same in both
orders.

Tolerance (:func:`~jacobian_nn.vectors_format.tolerance`, each case's ``tolerance`` in the manifest): every entry of an expected array
``E`` is held to ``|result - expected| <= SUITE_EPS_FACTOR * condition * eps(dtype) * max|E|`` (14; ``max|E|``
over the whole array, or the array's ``tolerance_scale`` for an exactly-zero sum), ``atol = rtol = 0``. The
factor is 4 times the worst error of sound implementations measured against the suite (:data:`~jacobian_nn.vectors_format.MEASURED`,
3.27 and 3.31 in float64 and float32). ``condition`` (:func:`~jacobian_nn.vectors_format.centring_condition`) is 1 except for a
training-mode normalisation.

The content hash is SHA-256 over the manifest (without its hash) and every array file; ``compare``
refuses a suite whose files no longer match it. Writing is deterministic (fixed seeds): the same
library version writes the same bytes.

Modules, from the bottom up: :mod:`jacobian_nn.vectors_format` (layouts, array kinds, the ``Case``/``Arr``
records, the tolerance rule), :mod:`jacobian_nn.vectors_catalogue` (the image layers' and the catalogue's
cases), this module (the dense, batch-norm, dropout and network cases, and the writer), and
:mod:`jacobian_nn.vectors_compare` (``compare``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import __version__
from .activations import get_activation
from .layers import Dense
from .losses import CrossEntropy, get_loss
from .network import Network
from .normalization import BatchNorm, Dropout
from .vectors_catalogue import catalogue_cases
from .vectors_format import (
    FORMAT,
    LAYOUTS,
    KIND_LAYOUT,
    to_layout,
    flat_permutation,
    Arr,
    Case,
    centring_condition,
    tolerance,
    KINK_RULE,
    _blockdiag,
    _rng,
    batchnorm_arrays,
)

ACT_PARAMS = {"leaky_relu": {"alpha": 0.01}, "elu": {"alpha": 1.0}}
ELEMENTWISE = ("identity", "step", "sigmoid", "tanh", "relu", "leaky_relu", "elu")


def _act_conventions(name) -> str:
    kw = ACT_PARAMS.get(name, {})
    text = f"{name}{kw if kw else ''} applied to each row of Z (N, d); dZ = VJP with the cotangent G = dL/dY; "
    text += (
        "softmax over each sample's d entries, J = diag(s) - s s^T per sample"
        if name == "softmax"
        else "elementwise, J diagonal"
    )
    return text + "; " + KINK_RULE


def _activation_case(name, point, Z, dtype, key) -> Case:
    act = get_activation(name, **ACT_PARAMS.get(name, {}))
    Z64 = Z.astype(np.float64)
    G = _rng(*key, 1).standard_normal(Z.shape).astype(dtype).astype(np.float64)
    Y = act.forward_batched(Z64)
    dZ = act.vjp_batched(Z64, Y, G)
    J = _blockdiag([act.jacobian(Z64[k][:, None]) for k in range(Z.shape[0])])
    c = Case(f"{name}-{point}-{np.dtype(dtype).name}", name, point, np.dtype(dtype).name, _act_conventions(name))
    c.arrays["Z"] = Arr("input", "batch", Z)
    c.arrays["G"] = Arr("cotangent", "batch", G.astype(dtype))
    c.arrays["Y"] = Arr("expected", "batch", Y.astype(dtype))
    c.arrays["dZ"] = Arr("expected", "batch", dZ.astype(dtype))
    c.arrays["J"] = Arr("expected", "jacobian", J.astype(dtype), of=("Y", "Z"))
    if point == "kink" and name in ("relu", "leaky_relu", "elu"):
        at = Z64 == 0
        right = np.where(at, 1.0, 0.0)  # the z > 0 branch: slope 1 for all three
        c.arrays["dZ"].right = np.where(at, G * right, dZ).astype(dtype)
        Jr = J.copy()
        d = np.flatnonzero(at.reshape(-1))
        Jr[d, d] = 1.0
        c.arrays["J"].right = Jr.astype(dtype)
    return c


def activation_cases() -> list:
    cases = []
    for i, name in enumerate(ELEMENTWISE + ("softmax",)):
        Z = _rng(i, 0).standard_normal((3, 4))
        cases.append(_activation_case(name, "random", Z, np.float64, (i, 0)))
        cases.append(_activation_case(name, "random", Z.astype(np.float32), np.float32, (i, 2)))
    kinks = np.array([[0.0, 1.5, -0.5, 0.0], [0.0, -2.0, 0.25, 0.0], [3.0, 0.0, -1.0, 0.5]])
    for i, name in enumerate(("relu", "leaky_relu", "elu", "step")):
        cases.append(_activation_case(name, "kink", kinks, np.float64, (100 + i,)))
    sat = np.array([[50.0, -50.0, 0.5, -1.0], [-50.0, 50.0, 2.0, 0.0], [49.0, -49.5, -0.25, 1.0]])
    for i, name in enumerate(("sigmoid", "tanh")):
        cases.append(_activation_case(name, "saturated", sat, np.float64, (200 + i,)))
    spread = np.array([[0.0, 1000.0, -1000.0, 3.0], [-1000.0, 0.0, 1000.0, 1000.0], [500.0, -500.0, 0.0, 1.0]])
    cases.append(_activation_case("softmax", "spread1000", spread, np.float64, (210,)))
    return cases


LOSS_CONVENTIONS = {
    "softmax_cross_entropy": "Z (N, C) logits, y (N,) integer labels; L = mean_k -log softmax(Z_k)[y_k]; "
    "dZ = dL/dZ = (softmax(Z) - onehot(y)) / N (the batch mean's 1/N included)",
    "cross_entropy": "P (N, C) probabilities (rows sum to 1), y (N,) integer labels; L = mean_k -log P[k, y_k]; "
    "dP = dL/dP = -onehot(y) / (N P), 0 off the label",
    "mse": "Y_hat (N, m), Y (N, m); L = mean_k 1/2 sum_i (Y_hat[k, i] - Y[k, i])^2 (a halved sum over outputs, "
    "a mean over samples); dY_hat = (Y_hat - Y) / N",
}


def _loss_case(name, point, inp, target, dtype) -> Case:
    # float32 probabilities sum to 1 only within float32 rounding: the formula holds off the simplex too
    loss = CrossEntropy(check_sum=False) if name == "cross_entropy" else get_loss(name)
    x64 = inp.astype(np.float64)
    N = inp.shape[0]
    in_name = {"softmax_cross_entropy": "Z", "cross_entropy": "P", "mse": "Y_hat"}[name]
    c = Case(f"{name}-{point}-{np.dtype(dtype).name}", name, point, np.dtype(dtype).name, LOSS_CONVENTIONS[name])
    c.arrays[in_name] = Arr("input", "batch", inp)
    if name == "mse":
        c.arrays["Y"] = Arr("input", "batch", target.astype(dtype))
        t = target.astype(np.float64)
    else:
        c.arrays["y"] = Arr("input", "samples", target.astype(np.int64))
        t = target
    c.arrays["loss"] = Arr("expected", "scalar", np.asarray(loss.forward_batched(x64, t), dtype=dtype))
    c.arrays["losses"] = Arr("expected", "samples", loss.per_sample_losses_batched(x64, t).astype(dtype))
    c.arrays["d" + in_name] = Arr(
        "expected",
        "batch",
        loss.gradient_batched(x64, t).astype(dtype),
        batch_mean=N,
        labels=None if name == "mse" else "y",
    )
    return c


def loss_cases() -> list:
    cases = []
    for j, dtype in enumerate((np.float64, np.float32)):
        r = _rng(300, j)
        Z = r.standard_normal((4, 3)).astype(dtype)
        y = r.integers(0, 3, 4)
        cases.append(_loss_case("softmax_cross_entropy", "random", Z, y, dtype))
        E = np.exp(r.standard_normal((4, 3)))
        P = (E / E.sum(axis=1, keepdims=True)).astype(dtype)
        cases.append(_loss_case("cross_entropy", "random", P.astype(dtype), r.integers(0, 3, 4), dtype))
        cases.append(
            _loss_case(
                "mse", "random", r.standard_normal((4, 2)).astype(dtype), r.standard_normal((4, 2)).astype(dtype), dtype
            )
        )
    spread = np.array([[0.0, 1000.0, -1000.0], [1000.0, 1000.0, -1000.0], [-1000.0, 0.0, 3.0], [2.0, 1.0, 0.0]])
    cases.append(_loss_case("softmax_cross_entropy", "spread1000", spread, np.array([2, 0, 1, 0]), np.float64))
    return cases


DENSE_CONVENTIONS = (
    "X (N, n_in), W (n_in, n_out), b (n_out,); Y = f(X W + b); G = dL/dY given; dX = delta W^T, "
    "dW = X^T delta, db = sum over samples of delta, delta = G * f'(Z) (sums over the batch: a VJP "
    "of Y, no 1/N); J_X, J_W, J_b: full Jacobians of Y; " + KINK_RULE
)


def _dense_case(act, point, X, W, b, G, dtype) -> Case:
    layer = Dense.from_params(W.astype(np.float64), b.astype(np.float64), act)
    X64, G64 = X.astype(np.float64), G.astype(np.float64)
    Y, ctx = layer.forward_batched(X64)
    dX, g = layer.backward_batched(G64, ctx)
    N = X.shape[0]
    c = Case(
        f"dense_{act}-{point}-{np.dtype(dtype).name}",
        "dense",
        point,
        np.dtype(dtype).name,
        f"activation {act}; " + DENSE_CONVENTIONS,
    )
    c.arrays.update(
        X=Arr("input", "batch", X),
        W=Arr("parameter", "weight", W),
        b=Arr("parameter", "vector", b),
        G=Arr("cotangent", "batch", G),
    )
    cols = [X64[k][:, None] for k in range(N)]
    J_X = _blockdiag([layer.jacobian_x(x) for x in cols])
    J_W = np.vstack([layer.jacobian_W(x) for x in cols])
    J_b = np.vstack([layer.jacobian_b(x) for x in cols])
    c.arrays.update(
        Y=Arr("expected", "batch", Y.astype(dtype)),
        dX=Arr("expected", "batch", dX.astype(dtype)),
        dW=Arr("expected", "weight", g["W"].astype(dtype)),
        db=Arr("expected", "vector", g["b"].astype(dtype)),
        J_X=Arr("expected", "jacobian", J_X.astype(dtype), of=("Y", "X")),
        J_W=Arr("expected", "jacobian", J_W.astype(dtype), of=("Y", "W")),
        J_b=Arr("expected", "jacobian", J_b.astype(dtype), of=("Y", "b")),
    )
    if point == "kink":
        Z = X64 @ W + b
        at = Z == 0
        delta = G64 * (Z >= 0)  # the z > 0 branch at the kinks
        c.arrays["dX"].right = (delta @ W.T).astype(dtype)
        c.arrays["dW"].right = (X64.T @ delta).astype(dtype)
        c.arrays["db"].right = delta.sum(axis=0).astype(dtype)
        slope = (Z >= 0).astype(np.float64)
        c.arrays["J_X"].right = _blockdiag([slope[k][:, None] * W.T for k in range(N)]).astype(dtype)
        c.arrays["J_W"].right = np.vstack(
            [slope[k][:, None] * np.kron(X64[k], np.eye(W.shape[1])) for k in range(N)]
        ).astype(dtype)
        c.arrays["J_b"].right = np.vstack([np.diag(slope[k]) for k in range(N)]).astype(dtype)
        assert at.any()
    return c


def dense_cases() -> list:
    cases = []
    for j, (act, n, m, dtype) in enumerate(
        (
            ("tanh", 4, 2, np.float64),
            ("identity", 3, 3, np.float64),
            ("sigmoid", 4, 3, np.float64),
            ("tanh", 4, 2, np.float32),
        )
    ):
        r = _rng(400, j)
        X, W, b, G = (r.standard_normal(s).astype(dtype) for s in ((3, n), (n, m), (m,), (3, m)))
        cases.append(_dense_case(act, "random" if n != m else "square", X, W, b, G, dtype))
    # integers: Z = X W + b is exact, with exact zeros at the kink
    X = np.array([[1.0, 2.0, 0.0], [-1.0, 1.0, 2.0], [0.0, 0.0, 1.0]])
    W = np.array([[1.0, -1.0, 2.0], [0.0, 1.0, -1.0], [1.0, 0.0, 1.0]])
    b = np.array([-1.0, -1.0, 0.0])
    G = _rng(410).standard_normal((3, 3))
    cases.append(_dense_case("relu", "kink", X, W, b, G, np.float64))
    return cases


BN_CONVENTIONS = (
    "X (N, m); train: mu, var = batch mean and biased variance per feature, x_hat = (X - mu) / "
    "sqrt(var + eps), Y = gamma * x_hat + beta; test: the same with running_mean, running_var; "
    "G = dL/dY given; dX, dgamma = sum_k G_k x_hat_k, dbeta = sum_k G_k (VJPs, sums over the batch); "
    "J_X: full Jacobian of Y w.r.t. X (train mode couples the samples)"
)


def batchnorm_cases() -> list:
    cases = []
    for mode in ("train", "test"):
        for point in ("random", "nearly_constant"):
            r = _rng(500, mode == "train", point == "random")
            X = r.standard_normal((4, 3))
            if point == "nearly_constant":
                X[:, 1] = 0.7 + 1e-6 * r.standard_normal(4)  # variance ~1e-12, far below eps = 1e-5
            gamma, beta, G = r.standard_normal(3), r.standard_normal(3), r.standard_normal((4, 3))
            bn = BatchNorm(3, eps=1e-5, gamma=gamma, beta=beta, update_running=False)
            rm, rv = r.standard_normal(3), r.uniform(0.5, 2.0, 3)
            if mode == "test":
                bn.running_mean[...] = rm
                bn.running_var[...] = rv
            Y, ctx = bn.forward_batched(X, mode)
            dX, g = bn.backward_batched(G, ctx)
            cols = [X[k][:, None] for k in range(4)]
            c = Case(
                f"batchnorm_{mode}-{point}-float64",
                f"batchnorm_{mode}",
                point,
                "float64",
                f"mode {mode}, eps = 1e-5; " + BN_CONVENTIONS,
            )
            c.arrays.update(
                batchnorm_arrays(mode, X, bn, G, Y, dX, g, bn.jacobian_x_coupled(cols, mode), "batch", "vector")
            )
            if mode == "train":
                c.condition = centring_condition(X, 0, bn.eps)
            cases.append(c)
    return cases


def dropout_cases() -> list:
    r = _rng(600)
    X, G = r.standard_normal((4, 5)), r.standard_normal((4, 5))
    keep = (r.uniform(size=(4, 5)) < 0.6).astype(np.int64)
    p = 0.4
    d = Dropout(5, p)
    with d.using_mask(keep.astype(bool)):
        Y, ctx = d.forward_batched(X, "train")
        dX, _ = d.backward_batched(G, ctx)
    J = _blockdiag([d.jacobian_x(X[k][:, None], "train", keep=keep[k].astype(bool)) for k in range(4)])
    c = Case(
        "dropout_train-mask-float64",
        "dropout_train",
        "mask",
        "float64",
        "inverted dropout, p = drop probability = 0.4, keep (N, m) the given 0/1 mask; Y = X * keep / (1 - p); "
        "dX = G * keep / (1 - p); J_X diagonal",
    )
    c.arrays.update(
        X=Arr("input", "batch", X),
        keep=Arr("input", "batch", keep),
        p=Arr("parameter", "scalar", np.asarray(p)),
        G=Arr("cotangent", "batch", G),
        Y=Arr("expected", "batch", Y),
        dX=Arr("expected", "batch", dX),
        J_X=Arr("expected", "jacobian", J, of=("Y", "X")),
    )
    return [c]


NET_CONVENTIONS = (
    "layers i = 1..L: A_i = f_i(A_{{i-1}} W_i + b_i), A_0 = X (N, n); hidden activation {act}, output "
    "{out}; loss = mean over samples of {loss} + l2/2 * sum_i ||W_i||^2 (weights only, l2 = {l2}); "
    "dW_i, db_i: gradients of that loss; dW_i_per_sample, db_i_per_sample: sample k's own gradient "
    "(loss of sample k alone, penalty gradient l2 W_i included), whose mean over k is dW_i; losses: "
    "per-sample data losses (no penalty); J_input: per-sample input Jacobians dY_k/dx_k (N, n_out, n)"
)


def _network_case(name, sizes, act, loss, l2, dtype, key) -> Case:
    net = Network.build(sizes, act, loss=loss, seed=int(key), l2=l2, init="xavier")
    r = _rng(700, key)
    N = 5
    X = r.standard_normal((N, sizes[0])).astype(dtype)
    if loss == "mse":
        Yt = r.standard_normal((N, sizes[-1])).astype(dtype)
    else:
        Yt = r.integers(0, sizes[-1], N)
    params = [{k: v.astype(dtype).astype(np.float64) for k, v in p.items()} for p in net.params]
    for p, q in zip(net.params, params):
        for k in p:
            p[k][...] = q[k]
    X64 = X.astype(np.float64)
    T = Yt.astype(np.float64) if loss == "mse" else Yt
    out = net.forward_batched(X64)
    L, grads = net.loss_and_gradients_batched(X64, T)
    per = net.per_sample_gradients_batched(X64, T)
    losses = net.per_sample_losses_batched(X64, T)
    Jin = net.input_jacobian_batched(X64)
    out_act = net.layers[-1].activation.name
    c = Case(
        f"network_{name}-random-{np.dtype(dtype).name}",
        "network",
        "random",
        np.dtype(dtype).name,
        NET_CONVENTIONS.format(act=act, out=out_act, loss=loss, l2=l2) + f"; sizes {sizes}",
    )
    c.arrays["X"] = Arr("input", "batch", X)
    c.arrays["Y" if loss == "mse" else "y"] = (
        Arr("input", "batch", Yt) if loss == "mse" else Arr("input", "samples", Yt.astype(np.int64))
    )
    c.arrays["l2"] = Arr("parameter", "scalar", np.asarray(l2))
    for i, p in enumerate(params, 1):
        c.arrays[f"W{i}"] = Arr("parameter", "weight", p["W"].astype(dtype))
        c.arrays[f"b{i}"] = Arr("parameter", "vector", p["b"].astype(dtype))
    c.arrays["out"] = Arr("expected", "batch", out.astype(dtype))
    c.arrays["loss"] = Arr("expected", "scalar", np.asarray(L, dtype=dtype))
    c.arrays["losses"] = Arr("expected", "samples", losses.astype(dtype))
    for i, (g, ps) in enumerate(zip(grads, per), 1):
        c.arrays[f"dW{i}"] = Arr("expected", "weight", g["W"].astype(dtype), batch_mean=N)
        c.arrays[f"db{i}"] = Arr("expected", "vector", g["b"].astype(dtype), batch_mean=N)
        c.arrays[f"dW{i}_per_sample"] = Arr("expected", "per_sample_weight", ps["W"].astype(dtype))
        c.arrays[f"db{i}_per_sample"] = Arr("expected", "per_sample_vector", ps["b"].astype(dtype))
    c.arrays["J_input"] = Arr("expected", "per_sample_jacobian", Jin.astype(dtype), of=("out", "X"))
    return c


FCNET_CONVENTIONS = (
    "CS231n's FullyConnectedNet: affine (W1, b1) - batch norm (gamma1, beta1, eps = 1e-5) - relu - "
    "inverted dropout (p = {p}, the given keep mask keep1 (N, h)) - affine (W2, b2) - softmax "
    "cross-entropy; loss = mean over samples + reg/2 * (||W1||^2 + ||W2||^2), reg = {reg}; "
    "out_train: the logits in training mode (batch statistics, the given mask); out_test: the "
    "logits in test mode (running_mean1, running_var1, no dropout); dW1 ... db2: gradients of the "
    "training-mode loss (batch norm couples the samples, so there are no per-sample gradients); db1 = 0 "
    "exactly (batch norm subtracts the batch mean of X W1 + b1, and b1 with it), judged against the size of "
    "the terms it sums (its 'tolerance_scale'); "
    "relu'(0) = 0"
)


def fcnet_case() -> Case:
    from .fcnet import FullyConnectedNet
    from .normalization import frozen_running_stats, sample_dropout_masks, using_dropout_masks

    p, reg, N = 0.25, 1e-2, 6
    net = FullyConnectedNet(
        [5], input_dim=4, num_classes=3, dropout=p, use_batchnorm=True, reg=reg, weight_scale=0.5, seed=4
    )
    r = _rng(800)
    X, y = r.standard_normal((N, 4)), r.integers(0, 3, N)
    bn = net.layers[1]
    bn.gamma[...], bn.beta[...] = r.uniform(0.5, 1.5, 5), 0.1 * r.standard_normal(5)
    bn.running_mean[...], bn.running_var[...] = 0.1 * r.standard_normal(5), r.uniform(0.5, 2.0, 5)
    masks = sample_dropout_masks(net, N)
    out_test = net.forward_batched(X, "test")
    with frozen_running_stats(net), using_dropout_masks(net, masks):
        out_train = net.forward_batched(X, "train")
        L, grads = net.loss_and_gradients_batched(X, y)
    c = Case(
        "network_fcnet_batchnorm_dropout-mask-float64",
        "network",
        "mask",
        "float64",
        FCNET_CONVENTIONS.format(p=p, reg=reg),
    )
    c.arrays.update(
        X=Arr("input", "batch", X),
        y=Arr("input", "samples", y.astype(np.int64)),
        keep1=Arr("input", "batch", masks[0].astype(np.int64)),
        p=Arr("parameter", "scalar", np.asarray(p)),
        reg=Arr("parameter", "scalar", np.asarray(reg)),
    )
    kinds = {"W": "weight", "b": "vector", "gamma": "vector", "beta": "vector"}
    for name, value in net.named_params.items():
        c.arrays[name] = Arr("parameter", kinds[name.rstrip("0123456789")], value.copy())
    c.arrays.update(
        running_mean1=Arr("parameter", "vector", bn.running_mean.copy()),
        running_var1=Arr("parameter", "vector", bn.running_var.copy()),
        out_train=Arr("expected", "batch", out_train),
        out_test=Arr("expected", "batch", out_test),
        loss=Arr("expected", "scalar", np.asarray(L)),
    )
    for name, g in net.named_gradients(grads).items():
        c.arrays["d" + name] = Arr("expected", kinds[name.rstrip("0123456789")], g.copy(), batch_mean=N)
    # db1 is exactly 0 (batch norm subtracts the batch mean, b1 with it): the sum of its terms dH_k (the gradient
    # reaching the affine output) cancels, so the expected value is the exact 0, its tolerance scaled by max|dH|
    with frozen_running_stats(net), using_dropout_masks(net, masks):
        A, ctxs = X, []
        for layer in net.layers:
            A, ctx = layer.forward_batched(A, "train")
            ctxs.append(ctx)
        G = net.loss.gradient_batched(A, y)
        for layer, ctx in zip(net.layers[:0:-1], ctxs[:0:-1]):
            G, _ = layer.backward_batched(G, ctx)
    c.arrays["db1"] = Arr("expected", "vector", np.zeros(5), batch_mean=N, scale=float(np.abs(G).max()))
    c.condition = centring_condition(X @ net.named_params["W1"] + net.named_params["b1"], 0, bn.eps)
    return c


def network_cases() -> list:
    return [
        fcnet_case(),
        _network_case("tanh_softmax_ce", [4, 5, 3], "tanh", "softmax_cross_entropy", 1e-3, np.float64, 1),
        _network_case("relu_mse", [3, 6, 4, 2], "relu", "mse", 0.0, np.float64, 2),
        _network_case("sigmoid_softmax_ce", [4, 5, 3], "sigmoid", "softmax_cross_entropy", 1e-2, np.float32, 3),
    ]


def build_cases() -> list:
    """Every case of the suite, in the ``rows`` layout (deterministic)."""

    builders = (activation_cases, loss_cases, dense_cases, batchnorm_cases, dropout_cases, network_cases)
    return [c for build in builders for c in build()] + catalogue_cases()


# --------------------------------------------------------------------------- writing


def _hexfloat(v: float) -> str:
    return float(v).hex()


def array_text(A: np.ndarray) -> str:
    """The ``.txt`` form: ``dtype``, ``shape`` lines, then one value per line (C99 hex floats, decimal ints)."""
    head = f"dtype {A.dtype.name}\nshape{''.join(' ' + str(s) for s in A.shape)}\n"
    flat = A.reshape(-1)
    if A.dtype.kind == "f":
        body = "".join(_hexfloat(v) + "\n" for v in flat.tolist())
    else:
        body = "".join(f"{int(v)}\n" for v in flat.tolist())
    return head + body


def array_json(name: str, A: np.ndarray) -> str:
    return json.dumps(
        {"name": name, "dtype": A.dtype.name, "shape": list(A.shape), "data": A.tolist()}, separators=(",", ":")
    )


def _case_entry(c: Case, layout: str) -> tuple:
    """(manifest entry, {file name: bytes}) of a case in ``layout``."""
    files, arrays = {}, {}
    shapes = {n: a.value.shape for n, a in c.arrays.items()}
    kinds = {n: a.kind for n, a in c.arrays.items()}
    for n, a in c.arrays.items():
        values = {"": a.value} if a.right is None else {"": a.value, ".right": a.right}
        written = {}
        for suffix, v in values.items():
            if a.kind == "jacobian":
                o, i = a.of
                po, pi = (flat_permutation(kinds[o], shapes[o], layout), flat_permutation(kinds[i], shapes[i], layout))
                W = np.ascontiguousarray(v[po][:, pi])
            elif a.kind == "per_sample_jacobian" and a.of:  # one sample's entries in the order written
                o, i = a.of
                po, pi = (flat_permutation(kinds[n], (1,) + shapes[n][1:], layout) for n in (o, i))
                W = np.ascontiguousarray(v[:, po][:, :, pi])
            else:
                W = np.array(to_layout(v, a.kind, layout), order="C")  # keeps a 0-d scalar 0-d
            written[suffix] = W
            stem = n + suffix
            buf = _npy_bytes(W)
            files[f"{c.name}/{stem}.npy"] = buf
            files[f"{c.name}/{stem}.json"] = array_json(stem, W).encode()
            files[f"{c.name}/{stem}.txt"] = array_text(W).encode()
        W = written[""]
        entry = {
            "role": a.role,
            "kind": a.kind,
            "shape": list(W.shape),
            "dtype": W.dtype.name,
            "layout": KIND_LAYOUT.get(a.kind, {}).get(layout, a.kind),
            "files": [f"{c.name}/{n}.npy", f"{c.name}/{n}.json", f"{c.name}/{n}.txt"],
        }
        if a.of:
            key = "jacobian_of" if a.kind == "jacobian" else "per_sample_jacobian_of"
            entry[key] = {"out": a.of[0], "in": a.of[1]}
        if a.batch_mean:
            entry["batch_mean"] = a.batch_mean
        if a.labels:
            entry["labels"] = a.labels
        if a.right is not None:
            entry["right_branch"] = f"{c.name}/{n}.right.npy"
        if a.scale is not None:
            entry["tolerance_scale"] = a.scale
        arrays[n] = entry
    return (
        {
            "name": c.name,
            "component": c.component,
            "point": c.point,
            "dtype": c.dtype,
            "conventions": c.conventions,
            "tolerance": tolerance(c.dtype, c.condition),
            "arrays": arrays,
        },
        files,
    )


def _npy_bytes(A: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.save(buf, A, allow_pickle=False)
    return buf.getvalue()


def content_hash(manifest: dict, files: dict) -> str:
    """SHA-256 over the manifest without ``content_hash`` (canonical JSON) and every file (sorted by name)."""
    h = hashlib.sha256()
    m = {k: v for k, v in manifest.items() if k != "content_hash"}
    h.update(json.dumps(m, sort_keys=True, separators=(",", ":")).encode())
    for name in sorted(files):
        h.update(b"\0" + name.encode() + b"\0")
        h.update(hashlib.sha256(files[name]).digest())
    return "sha256:" + h.hexdigest()


def suite_text(manifest: dict) -> str:
    return (
        f"format {manifest['format']}\nlibrary_version {manifest['library_version']}\n"
        f"layout {manifest['layout']}\ncontent_hash {manifest['content_hash']}\ncases {len(manifest['cases'])}\n"
    )


@dataclass
class SuiteInfo:
    path: str
    cases: int
    files: int
    bytes: int
    content_hash: str

    def __str__(self) -> str:
        return (
            f"wrote {self.cases} cases, {self.files} files, {self.bytes / 1e6:.2f} MB to {self.path} "
            f"({self.content_hash})"
        )


def build_suite(layout: str = "rows") -> tuple:
    """``(manifest, {relative file name: bytes})`` of the whole suite in ``layout``; writes nothing."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout: expected one of {LAYOUTS}, got {layout!r}")
    entries, files = [], {}
    for c in build_cases():
        e, f = _case_entry(c, layout)
        entries.append(e)
        files.update(f)
    manifest = {
        "format": FORMAT,
        "library": "jacobian_nn",
        "library_version": __version__,
        "layout": layout,
        "conventions": "each case's 'conventions' text states its formulas with the rows layout's shapes (CS231n: "
        "a batch (N, n), W (n_in, n_out), images NCHW (N, C, H, W), filters (F, C, FH, FW)); each array's "
        "'layout' says how it is written in this suite",
        "float_encoding": {
            "json": "Python repr: the shortest decimal that reads back to the same double; "
            "a float32 array holds float32 values written as exact doubles",
            "txt": "C99 hex floats (printf %a / strtod), integers in decimal",
        },
        "results": "write each expected array as RESULTS/<case>/<name>.npy, .json (a nested list, or "
        '{"shape": [...], "data": [...]}) or .txt (this suite\'s text form), and '
        'RESULTS/results.json {"library_version", "layout", "content_hash"} or '
        "RESULTS/results.txt with the same 'key value' lines as suite.txt",
        "cases": entries,
    }
    manifest["content_hash"] = content_hash(manifest, files)
    return manifest, files


def write_suite(out, layout: str = "rows") -> SuiteInfo:
    """Write the suite to the folder ``out`` (which must not exist, or be empty).

    Everything is built in memory and checked first, then written to a temporary folder beside
    ``out`` and moved into place with one rename, so a failed write leaves no partial suite.
    """
    if layout not in LAYOUTS:
        raise ValueError(f"layout: expected one of {LAYOUTS}, got {layout!r}")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ValueError(f"out: {str(out)!r} exists and is not an empty folder; choose a new folder")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise ValueError(f"out: the folder {str(parent)!r} does not exist")
    manifest, files = build_suite(layout)
    tmp = Path(tempfile.mkdtemp(prefix=".vectors-", dir=parent))
    try:
        for name, data in files.items():
            p = tmp / name
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(data)
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
        (tmp / "suite.txt").write_text(suite_text(manifest), encoding="utf-8")
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    total = (
        sum(len(b) for b in files.values())
        + (out / "manifest.json").stat().st_size
        + (out / "suite.txt").stat().st_size
    )
    return SuiteInfo(str(out), len(manifest["cases"]), len(files) + 2, total, manifest["content_hash"])
