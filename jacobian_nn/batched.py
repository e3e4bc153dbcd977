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
    loss, G = net.loss.forward_and_gradient_batch(Y_hat, Ym)
    loss += net.penalty()
    grads = [None] * len(net.layers)
    for i in range(len(net.layers) - 1, 0, -1):
        G, grads[i] = net.layers[i].backward_batch(G, caches[i])
    grads[0] = net.layers[0].param_grads_batch(G, caches[0])  # dL/dX is not needed: no dX GEMM
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
    # The gradient arrays are fresh and owned by this call: scale them into the steps in
    # place (no temporaries). A view (not owning its data) gets a new array first, before
    # anything is scaled, so that it never sees a scaled base. apply_update validates every
    # step before writing any parameter.
    owned = []
    for g in grads:
        for k, v in g.items():
            if v.flags.owndata and v.flags.writeable and all(v is not w for w in owned):
                owned.append(v)
            elif not (v.flags.owndata and v.flags.writeable):
                g[k] = -lr * v
    for v in owned:
        v *= -lr
    net.apply_update(grads)
    return loss


def predict_batched(net, X) -> np.ndarray:
    """Network outputs ``(N, m)`` in test mode."""
    return forward_batched(net, X, "test")[0]


def accuracy_batched(net, X, Y) -> float:
    """Fraction of rows whose output argmax equals the label's."""
    out = predict_batched(net, X)
    labels = label_matrix(Y, out.shape[0], net.n_out, dtype=net.dtype).argmax(axis=1)
    return float(np.mean(out.argmax(axis=1) == labels))


# --------------------------------------------------------------------------- per-sample results


def per_sample_losses_batched(net, X, Y, mode: str = "train") -> np.ndarray:
    """Per-sample data losses ``(N,)`` (no penalty): ``L_k = L(y_hat_k, y_k)``.

    Their mean plus ``net.penalty()`` is the batch loss of :func:`loss_and_gradients_batched`.
    """
    Y_hat, _ = forward_batched(net, X, mode)
    Ym = label_matrix(Y, Y_hat.shape[0], net.n_out, dtype=net.dtype)
    return net.loss.per_sample_batch(Y_hat, Ym)


def per_sample_gradients_batched(net, X, Y, *, include_penalty: bool = True, mode: str = "train"):
    """Per-sample gradients, no Python loop over samples: one dict per layer,
    ``{"W": (N, n, m), "b": (N, m)}`` for a :class:`~jacobian_nn.layers.Dense` layer.

    Row k of the unscaled loss gradient is ``dL_k/dy_hat_k = N * loss.gradient_batch``
    (``gradient_batch`` carries the ``1/N`` of the batch mean; multiplying back is exact
    when N is a power of two and otherwise costs at most one rounding per entry).
    Each layer's ``per_sample_backward_batch`` then gives, with ``delta`` ``(N, m)``::

        grads_W[k] = X[k]^T delta[k]    (einsum "ki,kj->kij")     grads_b[k] = delta[k]

    **Penalty.** With ``include_penalty=True`` (default) the penalty gradient
    ``l2 W + l1 sign(W)`` is added to every sample's slice, so that slice k is the
    gradient of ``L_k + penalty``, the reference result ``net.backward(x_k, y_k)``, and

        mean_k per_sample[k] = (1/N) sum_k dL_k/dW + l2 W + l1 sign(W) = batched gradient

    exactly as :func:`loss_and_gradients_batched` defines it (up to rounding).
    ``include_penalty=False`` returns the data-loss gradients only.

    Every layer must provide ``per_sample_backward_batch``; a batch-coupled layer
    in training mode (whose samples are not independent) has no per-sample gradient.
    """
    for i, layer in enumerate(net.layers):
        if not hasattr(layer, "per_sample_backward_batch"):
            raise TypeError(f"net.layers[{i}]: {type(layer).__name__} has no per_sample_backward_batch; "
                            "per-sample gradients need layers whose samples are independent")
    Y_hat, caches = forward_batched(net, X, mode)
    N = Y_hat.shape[0]
    Ym = label_matrix(Y, N, net.n_out, dtype=net.dtype)
    G = net.loss.gradient_batch(Y_hat, Ym) * Y_hat.dtype.type(N)
    grads = [None] * len(net.layers)
    for i in range(len(net.layers) - 1, -1, -1):
        G, grads[i] = net.layers[i].per_sample_backward_batch(G, caches[i])
    if include_penalty:
        for g, p in zip(grads, net.params):
            for name in g:
                if name == "W" or (net.regularize_bias and name == "b"):
                    if net.l2:
                        g[name] += (net.l2 * p[name])[None]
                    if net.l1:
                        g[name] += (net.l1 * np.sign(p[name]))[None]
    return grads


# --------------------------------------------------------------------------- batched Jacobians


def input_jacobian_batched(net, X) -> np.ndarray:
    """Input-output Jacobians of the whole network for every row, ``(N, m_out, n_in)``.

    Slice k is ``d y_hat_k / d x_k = J_L(k) ... J_2(k) J_1(k)`` with ``J_l(k)`` the
    layer's ``jacobian_x_batch`` slice ``(m_l, n_l)``; the product is accumulated left
    to right as a batched matmul ``(N, m_l, n_l) @ (N, n_l, n_in)`` (no loop over
    samples). Test mode.
    """
    A = as_batch(X, "X", net.n_in, net.dtype)
    J = None
    for i, layer in enumerate(net.layers):
        if not hasattr(layer, "jacobian_x_batch"):
            raise TypeError(f"net.layers[{i}]: {type(layer).__name__} has no jacobian_x_batch")
        Jl = layer.jacobian_x_batch(A)
        J = Jl if J is None else np.matmul(Jl, J)
        A = layer.forward_batch(A, "test")[0]
    return J


def activation_jacobians_batched(net, X, mode: str = "test") -> list:
    """Per layer, the activation Jacobians ``J_f(Z)`` ``(N, m, m)`` at the layer's pre-activations,
    i.e. the layer's ``jacobian_b_batch`` (``dy/db = J_f(z)``); ``None`` for a layer without one."""
    check_mode(mode)
    A = as_batch(X, "X", net.n_in, net.dtype)
    out = []
    for layer in net.layers:
        out.append(layer.jacobian_b_batch(A) if hasattr(layer, "jacobian_b_batch") else None)
        A = layer.forward_batch(A, mode)[0]
    return out
