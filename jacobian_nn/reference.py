"""The reference driver: one sample at a time, every derivative an explicit Jacobian.

Network-level chaining for the reference path, over any layers of the layer protocol
(:mod:`jacobian_nn.layers`). The batch ``X`` ``(N, n)`` and the labels are checked
**once**; every sample is then a column ``x_k = X[k]^T`` ``(n, 1)`` and each layer maps
the columns forward with its public per-sample ``forward`` (told ``check=False``: the
columns are the driver's own), the loss gives each sample's row ``dL_k/dy_hat_k``
``(1, m)``, and each layer chains the rows back with its public ``backward``, i.e.
through its explicit Jacobians. A layer that couples the samples of a batch
(``couples_samples(mode)``: batch normalisation in training mode) gets the whole list
instead and chains the rows through its explicit Jacobian over the batch
(``forward_samples`` / ``backward_samples``). No layer type is special-cased.

After every layer the driver checks that the new columns, and the float arrays their contexts
saved (a dense layer's ``z``), are finite (an overflow from finite inputs is an error naming
``X`` and the layer, as on the batched path), and before every layer's backward the rows it
gets, in one pass each, and names the first one that is not: an overflow inside the network
is refused where it happens (quietly: numpy's warnings are silenced in each layer's forward and
backward, whose results are checked next), and so is a batch loss that is not finite, right after the
loss, as the batched driver refuses it. For the forward checks the columns are stacked side by side,
``(N, m)`` with row k the sample k (one ``np.concatenate``, then one BLAS pass), and the last
layer's stack is the result of :func:`predict`. A refusal in training mode puts back batch
norm's running statistics and the dropout Generators (:func:`state_kept_on_refusal`).

Cost. The per-sample methods are the public ones (no private copy of a formula), so each
sample costs each layer one ``forward`` call: measured on network B's 64-100 ReLU layer,
2.5 us per sample against 2.1 us for the loop over ``W^T x + b`` inside the layer that this
driver replaced (the call, and the views ``W^T`` and ``b[:, None]`` made per call). Each
stack for a check costs about 0.2 ms at N = 1797 (the per-array work of ``np.concatenate``),
so checking the saved ``z`` of network B's two layers adds 0.6 ms to a 10 ms ``predict``.

Batch convention (seed 000's ``trainBatch``): the loss of a batch is the mean of the
per-sample losses and the gradients the mean of the per-sample gradients, the penalty
gradient added once (:meth:`Network.add_penalty_gradients`).
"""

from __future__ import annotations

import math

import numpy as np

from ._validation import (
    all_finite,
    as_column,
    check_layer_context,
    check_layer_output,
    check_mode,
    columns,
    non_finite_loss,
    non_finite_row,
    state_kept_on_refusal,
)


def _check_finite(vs, layer: int) -> None:
    if vs and not all_finite(np.concatenate(vs, axis=0)):
        k = next(k for k, v in enumerate(vs) if not np.isfinite(v).all())
        raise non_finite_row(layer, k, vs[k])


def _stacked(vs: list) -> np.ndarray:
    """N per-sample arrays of one shape (columns ``(m, 1)``, or what a context holds) as one
    C-contiguous ``(N, size)`` array whose row k is ``vs[k]`` flattened: the samples side by
    side, as the batched path holds them. One ``np.concatenate`` along the first axis, no
    per-array work in Python, and the result is contiguous, so that
    :func:`~jacobian_nn._validation.all_finite` checks it in one BLAS pass."""
    if len(vs) == 1:  # one sample (Network.backward, train_one): a view, no copy
        return np.asarray(vs[0]).reshape(1, -1)
    if vs[0].ndim == 0:
        return np.array(vs).reshape(len(vs), 1)
    return np.concatenate(vs, axis=0).reshape(len(vs), -1)


def _check_sample_contexts(cs, xs_in, ys, layer: int) -> None:
    """The per-sample contexts ``cs`` of one layer, checked as the batched driver checks its context:
    every float array (or numpy float scalar) a context holds, other than the sample's input and output (a dense layer's
    ``z``), stacked over the samples (row k: sample k) and checked once (:func:`check_layer_context`)."""
    if not cs or not isinstance(cs[0], tuple):
        return
    for j, c0 in enumerate(cs[0]):
        # a float array, or a numpy float scalar (layer norm's per-sample sigma; the batched path's is an array)
        if (
            isinstance(c0, (np.ndarray, np.floating))
            and c0.dtype.kind == "f"
            and c0 is not xs_in[0]
            and c0 is not ys[0]
        ):
            check_layer_context((_stacked([c[j] for c in cs]),), layer)


def forward_columns(net, xs, mode: str):
    """The driver's columns ``xs`` (N >= 1, each ``(n, 1)``, checked) through every layer:
    ``(outputs (N columns (m, 1)), one context per layer, the outputs as rows (N, m))``; a context
    is ``("samples", [ctx_k])`` from the per-sample ``forward`` or ``("batch", ctx)`` from a
    coupling layer's ``forward_samples``."""
    with state_kept_on_refusal(net, mode):  # a refused overflow leaves running stats and Generators as found
        return _forward_columns(net, xs, mode)


def _forward_columns(net, xs, mode):
    """:func:`forward_columns` without the state guard (its caller holds one). Every layer's
    outputs and context are checked right after it runs, so an overflow inside the network is
    refused there with its layer's name: numpy's overflow warnings are silenced meanwhile."""
    ctxs = []
    Y = None
    with np.errstate(over="ignore", invalid="ignore"):
        for i, layer in enumerate(net.layers):
            xs_in = xs
            if layer.couples_samples(mode):
                xs, ctx = layer.forward_samples(xs, mode)
                ctxs.append(("batch", ctx))
                check_layer_context(ctx, i)
            else:
                forward, ys, cs = layer.forward, [], []
                for x in xs:
                    y, c = forward(x, mode, check=False)
                    ys.append(y)
                    cs.append(c)
                xs = ys
                ctxs.append(("samples", cs))
                _check_sample_contexts(cs, xs_in, xs, i)
            Y = _stacked(xs)  # the same check and message as the batched driver's, on the samples side by side
            check_layer_output(Y, i, "output for sample")
    return xs, ctxs, Y


def _layer_backward(layer, kind, ctx, rows):
    """One layer's backward over the rows: ``(rows into the previous layer, its gradients summed over the
    samples)``."""
    if kind != "samples":
        return layer.backward_samples(rows, ctx)
    total = {k: np.zeros_like(v) for k, v in layer.params.items()}
    backward, new_rows = layer.backward, []
    for g, c in zip(rows, ctx, strict=True):
        gx, gr = backward(g, c, check=False)
        new_rows.append(gx)
        for k, v in gr.items():
            total[k] += v
        gr = v = None  # this sample's gradients are freed before the next sample's are made
    return new_rows, total


def backward_rows(net, rows, ctxs) -> list:
    """The loss's rows ``dL_k/dy_hat_k`` ``(1, m)`` back through every layer: the gradients
    summed over the samples, one dict per layer (the parameters' shapes).

    The rows into every layer are checked (the loss's before the first backward, each layer's
    right after it: the first layer's ``dL/dx`` is not used), and a row that is not finite is
    refused by name. A layer's backward computes its rows and its parameter gradients in one
    call, so numpy's overflow warnings are silenced during it and the refusal is quiet; the
    gradients are returned unchecked, so when they are not finite (and the rows are) that layer's
    backward runs again under the caller's error state, and numpy warns as it would have (the
    same operations: bitwise the same results)."""
    grads: list[dict | None] = [None] * len(net.layers)
    _check_finite(rows, len(net.layers) - 1)
    for i in range(len(net.layers) - 1, -1, -1):
        layer, (kind, ctx) = net.layers[i], ctxs[i]
        with np.errstate(over="ignore", invalid="ignore"):  # the rows are checked next: a refusal is quiet
            new_rows, grad = _layer_backward(layer, kind, ctx, rows)
        if i > 0:
            _check_finite(new_rows, i - 1)
        if not all(all_finite(v) for v in grad.values()):
            new_rows, grad = _layer_backward(layer, kind, ctx, rows)  # returned unchecked: numpy warns
        rows, grads[i] = new_rows, grad
    return grads


def _check_float64(net) -> None:
    if net.dtype != np.float64:
        raise TypeError(f"network: the reference path computes in float64, this network is {net.dtype}")


def loss_and_gradients(net, X, Y, mode: str = "train"):
    """Mean loss (+ penalty) and mean gradients (+ penalty gradient) of the batch ``X``
    ``(N, n)`` with labels ``Y``: ``(loss, grads)``, ``grads`` one dict per layer.

    The loss ``(1/N) sum_k L_k + penalty`` is checked before the backward pass, as on the batched
    path: when it is not finite, :func:`~jacobian_nn._validation.non_finite_loss` (``Y``, the loss and
    the first sample whose loss is not), with numpy's overflow warnings in the loss silenced."""
    _check_float64(net)
    check_mode(mode)
    xs = columns(net.input_batch(X))
    N = len(xs)
    ys = net.loss.sample_labels(Y, N, net.n_out)
    with state_kept_on_refusal(net, mode):  # a refusal after the forward leaves running stats and Generators
        outs, ctxs, _ = _forward_columns(net, xs, mode)
        total, values, rows = 0.0, [], []
        with np.errstate(over="ignore", invalid="ignore"):  # the loss is checked next: an overflow is refused by name
            for y_hat, y in zip(outs, ys):
                value, row = net.loss(y_hat, y, check=False)
                total += value
                values.append(value)
                rows.append(row)
            loss = total / N + net.penalty()
        if not math.isfinite(loss):  # before the backward, as the batched driver checks it
            raise non_finite_loss(loss, values)
        grads = backward_rows(net, rows, ctxs)
    for g in grads:
        for k in g:
            g[k] /= N
    net.add_penalty_gradients(grads)
    return loss, grads


def predict(net, X, mode: str = "test") -> np.ndarray:
    """Outputs for ``X`` ``(N, n)``, sample by sample, stacked as rows ``(N, m)``."""
    _check_float64(net)
    check_mode(mode)
    return forward_columns(net, columns(net.input_batch(X)), mode)[2]


def input_jacobian(net, x) -> np.ndarray:
    """``d y_hat / dx`` ``(n_out, n_in)`` = ``J_L ... J_2 J_1``, the product of the layers'
    ``jacobian_x`` (each ``(m_i, n_i)``), accumulated left to right (test mode)."""
    _check_float64(net)
    x = as_column(x, "x", net.n_in, net.dtype)
    J = None
    for layer in net.layers:
        Jl = layer.jacobian_x(x)
        J = Jl if J is None else Jl @ J
        x, _ = layer.forward(x, "test")
    assert J is not None, "a network has at least one layer (its constructor refuses none)"
    return J
