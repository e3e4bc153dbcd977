"""The batched path: whole batches ``X`` ``(N, n)``, vector-Jacobian products, no per-sample matrices.

Network-level chaining for the batched path. Every layer maps ``(N, n) -> (N, m)``
with ``forward_batch`` and pulls ``G = dL/dY`` ``(N, m)`` back with
``backward_batch``; activations contribute ``vjp_batch`` (elementwise products,
or ``S * (G - rowsum(G * S))`` for softmax), never an ``(m, m)`` matrix.

Reductions follow the batch convention: the loss is the mean of the per-sample
losses (``Loss.gradient_batch`` already carries the ``1/N``), so ``X^T delta`` and
the column sums of ``delta`` are the mean of the per-sample reference gradients.
The penalty gradient is added once:

    dL/dW = X^T delta + l2 W + l1 sign(W)        (sign(0) = 0)

This module never calls a reference Jacobian (``jacobian``, ``jacobian_x``,
``jacobian_b``, ``jacobian_W``, ``input_jacobian``) or a reference backward; a
test parses it and fails if it does.
"""

from __future__ import annotations

import numpy as np

from ._validation import as_batch, check_positive
from .layers import check_mode
from .losses import label_matrix


def forward_batched(net, X, mode: str = "test"):
    """``X`` ``(N, n)`` -> ``(Y_hat (N, m), caches)``, one cache per layer."""
    check_mode(mode)
    A = as_batch(X, "X", net.n_in, net.dtype)
    caches = []
    for layer in net.layers:
        A, cache = layer.forward_batch(A, mode)
        caches.append(cache)
    return A, caches


def loss_and_gradients_batched(net, X, Y, mode: str = "train"):
    """Mean loss (+ penalty) and its gradients, one dict per layer in the parameters' shapes."""
    Y_hat, caches = forward_batched(net, X, mode)
    Ym = label_matrix(Y, Y_hat.shape[0], net.n_out, dtype=net.dtype)
    loss = net.loss.forward_batch(Y_hat, Ym) + net.penalty()
    G = net.loss.gradient_batch(Y_hat, Ym)
    grads = [None] * len(net.layers)
    for i in range(len(net.layers) - 1, -1, -1):
        G, grads[i] = net.layers[i].backward_batch(G, caches[i])
    for g, p in zip(grads, net.params):
        for name in g:
            if name == "W" or (net.regularize_bias and name == "b"):
                if net.l2:
                    g[name] += net.l2 * p[name]
                if net.l1:
                    g[name] += net.l1 * np.sign(p[name])
    return loss, grads


def train_step_batched(net, X, Y, lr: float) -> float:
    """One SGD step ``theta -= lr * grad`` with the batched gradients; returns the loss before it."""
    lr = check_positive(lr, "lr")
    loss, grads = loss_and_gradients_batched(net, X, Y, "train")
    net.apply_update([{k: -lr * v for k, v in g.items()} for g in grads])
    return loss


def predict_batched(net, X) -> np.ndarray:
    """Network outputs ``(N, m)`` in test mode."""
    return forward_batched(net, X, "test")[0]


def accuracy_batched(net, X, Y) -> float:
    """Fraction of rows whose output argmax equals the label's."""
    out = predict_batched(net, X)
    labels = label_matrix(Y, out.shape[0], net.n_out, dtype=net.dtype).argmax(axis=1)
    return float(np.mean(out.argmax(axis=1) == labels))
