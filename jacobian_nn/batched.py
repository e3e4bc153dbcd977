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
from .layers import Dense, check_mode
from .losses import label_matrix
from .workspace import Workspace, buffer

__all__ = ["Workspace"]   # re-exported: jacobian_nn.batched.Workspace


def _scope(workspace, owner, user) -> dict:
    """``{"workspace": workspace.scope(owner)}`` for a layer or loss that takes one
    (``user.uses_workspace``), else ``{}`` (it allocates as usual)."""
    if workspace is None or not user.uses_workspace:
        return {}
    return {"workspace": workspace.scope(owner)}


def forward_batched(net, X, mode: str = "test", workspace: Workspace | None = None):
    """``X`` ``(N, n)`` -> ``(Y_hat (N, m), caches)``, one cache per layer.

    With a :class:`~jacobian_nn.workspace.Workspace`, ``Y_hat`` and the caches live in its
    arrays (valid until its next use)."""
    check_mode(mode)
    A = as_batch(X, "X", net.n_in, net.dtype)
    caches = []
    for i, layer in enumerate(net.layers):
        A, cache = layer.forward_batch(A, mode, **_scope(workspace, i, layer))
        caches.append(cache)
    return A, caches


def loss_and_gradients_batched(net, X, Y, mode: str = "train", workspace: Workspace | None = None):
    """Mean loss (+ penalty) and its gradients, one dict per layer in the parameters' shapes.

    ``workspace``: an optional :class:`~jacobian_nn.workspace.Workspace` reused across calls
    (no page faults on fresh temporaries; bitwise the same results). The gradients returned
    then live in it: they are valid **until the next call with that workspace** (copy them
    to keep them)."""
    return _loss_and_scaled_gradients_batched(net, X, Y, mode, None, workspace)


def _loss_and_scaled_gradients_batched(net, X, Y, mode, scale, workspace=None):
    """:func:`loss_and_gradients_batched` with every gradient multiplied by ``scale`` (None: 1).

    The gradients are linear in the loss gradient ``G = dL/dY_hat`` ``(N, m_out)``, so the
    factor is applied once to ``G`` (the smallest array of the backward pass) and to the
    penalty weights, ``scale * (g + l2 W + l1 sign W) = g(scale G) + (scale l2) W + (scale l1) sign W``,
    instead of in a pass over every gradient array. Equal to scaling the unscaled
    gradients up to rounding (exactly, for a power of two).

    With a ``workspace``, every large array (``Z``, ``dX``, ``dW``, the loss's intermediates,
    the penalty's scratch) is written into its arrays by the same operations (``out=``);
    layers and losses without ``uses_workspace`` allocate as usual.
    """
    Y_hat, caches = forward_batched(net, X, mode, workspace)                       # forward
    loss, G = net.loss.forward_and_gradient_batch(Y_hat, Y, **_scope(workspace, "loss", net.loss))
    loss += net.penalty()
    l2, l1 = net.l2, net.l1
    own = None if workspace is None else workspace.scope("network")
    owned = False   # G is an array of this call's own (fresh, or in the workspace) that a dense layer may overwrite
    if scale is not None:
        G = np.multiply(G, G.dtype.type(scale), out=buffer(own, "G", G.shape, G.dtype))
        l2, l1 = scale * l2, scale * l1
        owned = True
    elif own is not None:   # the loss's G may be the caller's; a copy the layers may overwrite
        G = _copy_into(G, own.array("G", G.shape, G.dtype))
        owned = True
    grads = [None] * len(net.layers)
    for i in range(len(net.layers) - 1, 0, -1):                                     # backward
        layer = net.layers[i]
        if owned:
            G, grads[i] = layer._backward_batch_overwrite(G, caches[i], **_scope(workspace, i, layer))
        else:
            G, grads[i] = layer.backward_batch(G, caches[i])
        owned = isinstance(layer, Dense)   # its dX = delta W^T is a fresh product (or a workspace array)
    first = net.layers[0]
    if owned:   # dL/dX is not needed: no dX GEMM
        grads[0] = first._param_grads_batch_overwrite(G, caches[0], **_scope(workspace, 0, first))
    else:
        grads[0] = first.param_grads_batch(G, caches[0])
    for i, (g, p) in enumerate(zip(grads, net.params)):                               # penalty
        for name in g:
            if name == "W" or (net.regularize_bias and name == "b"):
                scratch = buffer(own, f"penalty {i} {name}", p[name].shape, p[name].dtype)
                if l2:
                    g[name] += np.multiply(l2, p[name], out=scratch)
                if l1:
                    g[name] += np.multiply(l1, np.sign(p[name], out=scratch), out=scratch)
    return loss, grads


def _copy_into(src, dst):
    np.copyto(dst, src)
    return dst


def train_step_batched(net, X, Y, lr: float, workspace: Workspace | None = None) -> float:
    """One SGD step ``theta -= lr * grad`` with the batched gradients; returns the loss before it.

    ``workspace``: an optional :class:`~jacobian_nn.workspace.Workspace`; create it once and
    pass it to every step: the step's large arrays are then reused instead of allocated
    (and page-faulted) anew each step, with bitwise the same parameters afterwards.

    The steps ``-lr * grad`` come straight out of the backward pass (the factor applied to
    the loss gradient, see :func:`_loss_and_scaled_gradients_batched`): no pass over the
    gradient arrays to scale them. ``apply_update`` validates every step before writing
    any parameter: a step that overflows (huge ``lr``) is refused there, with its name, so
    numpy's overflow warnings inside the scaled backward pass are silenced."""
    lr = check_positive(lr, "lr")
    with np.errstate(over="ignore", invalid="ignore"):
        loss, steps = _loss_and_scaled_gradients_batched(net, X, Y, "train", -lr, workspace)
    net.apply_update(steps)
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
    for i in range(len(net.layers) - 1, 0, -1):
        G, grads[i] = net.layers[i].per_sample_backward_batch(G, caches[i])
    first = net.layers[0]
    if hasattr(first, "per_sample_param_grads_batch"):   # no dX GEMM for the first layer
        grads[0] = first.per_sample_param_grads_batch(G, caches[0])
    else:
        grads[0] = first.per_sample_backward_batch(G, caches[0])[1]
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
    layer's ``jacobian_x_batch`` slice ``(m_l, n_l)``. The product is accumulated from
    the output side (reverse mode, ``m_out`` rows per sample): ``P = J_L``, then
    ``P <- P J_l`` for ``l = L-1, ..., 1``, through the layer's ``input_vjp_rows_batch``
    where it has one (a dense layer: ``(P * D_l) W_l^T``, one 2-D GEMM) and a batched
    matmul ``(N, m_out, m_l) @ (N, m_l, n_l)`` otherwise. No loop over samples. Test mode.
    """
    A = as_batch(X, "X", net.n_in, net.dtype)
    inputs = []
    for i, layer in enumerate(net.layers):
        if not hasattr(layer, "jacobian_x_batch"):
            raise TypeError(f"net.layers[{i}]: {type(layer).__name__} has no jacobian_x_batch")
        inputs.append(A)
        if i < len(net.layers) - 1:
            A = layer.forward_batch(A, "test")[0]
    J = _last_two_dense_jacobian_batched(net.layers, inputs) if len(net.layers) > 1 else None
    if J is None:
        J, start = net.layers[-1].jacobian_x_batch(inputs[-1]), len(net.layers) - 1
    else:
        start = len(net.layers) - 2
    for layer, A_in in zip(reversed(net.layers[:start]), reversed(inputs[:start])):
        if hasattr(layer, "input_vjp_rows_batch"):
            J = layer.input_vjp_rows_batch(J, A_in)
        else:
            J = np.matmul(J, layer.jacobian_x_batch(A_in))
    return J


def _last_two_dense_jacobian_batched(layers, inputs):
    """``J_L(k) J_{L-1}(k)`` ``(N, m_L, n_{L-1})`` for a network ending in two dense layers with
    elementwise activations, as one GEMM; None when that form does not apply.

    With ``D = vjp_f(Z, f(Z), 1)`` the activation derivatives ``(N, m)`` of each layer,
    ``J_L(k) J_{L-1}(k) = diag(D_L[k]) W_L^T diag(D_{L-1}[k]) W_{L-1}^T``, linear in
    ``D_{L-1}[k]``::

        K[j, i, l] = W_L[j, i] W_{L-1}[l, j]                  (m_{L-1}, m_L, n_{L-1}), no sample index
        J[k, i, l] = D_L[k, i] sum_j D_{L-1}[k, j] K[j, i, l]  i.e.  J = D_L * (D_{L-1} @ K)

    (the same products as pulling ``m_L`` rows per sample back, summed in another
    order; the factor ``D_L`` is skipped when it is exactly 1 everywhere, as for an identity
    output). Used when ``K`` is no larger than the result (``m_{L-1} <= N``).
    """
    prev, last = layers[-2], layers[-1]
    if not (isinstance(prev, Dense) and isinstance(last, Dense)):
        return None
    X = inputs[-2]
    N = X.shape[0]
    n, m1, m2 = prev.n_in, prev.n_out, last.n_out
    if m1 > N:
        return None
    _, Z1 = prev._z_batch(X)
    D1 = prev._derivative_batch(Z1)
    if D1 is None:
        return None
    _, Z2 = last._z_batch(inputs[-1])
    D2 = last._derivative_batch(Z2)
    if D2 is None:
        return None
    K = (last.W[:, :, None] * prev.W.T[:, None, :]).reshape(m1, m2 * n)
    J = (D1 @ K).reshape(N, m2, n)
    if not (D2 == 1).all():   # multiplying by exact ones (identity output) changes nothing
        J *= D2[:, :, None]
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
