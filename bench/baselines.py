"""Minimal inline baselines written in plain numpy: the floors the library's two paths are held to.

Both take the parameters as a list of ``(W (n, m), b (m,))`` pairs of a ReLU
network with identity output and softmax cross-entropy, labels as integer
indices, and update the parameters in place by SGD. They do the same
mathematics as the library's paths with no validation, no objects and no
generality, so the ratio library/baseline is the price of the library's design.

* :func:`inline_reference_step`: seed 000's per-sample loop with **explicit**
  Jacobians (``diag(z > 0)`` for ReLU, the identity matrix for the output layer),
  rows chained left to right, gradients summed then divided by N.
* :func:`inline_batched_step`: the vectorised step, VJPs on the whole batch;
  it skips the input gradient of the first layer, which a step discards.
* :func:`make_gemm_floor`: a callable doing only the matrix products a batched step needs, into
  preallocated outputs: per layer ``X W``, ``X^T delta`` and (all but the first
  layer) ``delta W^T``. Its time is the machine's GEMM limit for the step.
"""

from __future__ import annotations

import numpy as np


def inline_reference_step(params, X, y, lr):
    N = X.shape[0]
    L = len(params)
    sums = [(np.zeros_like(W), np.zeros_like(b)) for W, b in params]
    loss = 0.0
    for k in range(N):
        a = X[k][:, None]
        ctx = []
        for i, (W, b) in enumerate(params):
            z = W.T @ a + b[:, None]
            ctx.append((a, z))
            a = np.maximum(z, 0.0) if i < L - 1 else z
        e = np.exp(a - a.max())
        s = e / e.sum()
        loss -= np.log(s[y[k], 0])
        g = s.T.copy()
        g[0, y[k]] -= 1.0
        for i in range(L - 1, -1, -1):
            a_in, z = ctx[i]
            W = params[i][0]
            J = np.diag((z[:, 0] > 0).astype(z.dtype)) if i < L - 1 else np.eye(z.shape[0], dtype=z.dtype)
            delta = g @ J
            dW, db = sums[i]
            dW += a_in @ delta
            db += delta[0]
            g = delta @ W.T
    for (W, b), (dW, db) in zip(params, sums):
        W -= (lr / N) * dW
        b -= (lr / N) * db
    return loss / N


def inline_batched_step(params, X, y, lr):
    N = X.shape[0]
    L = len(params)
    acts, Zs = [X], []
    for i, (W, b) in enumerate(params):
        Z = acts[-1] @ W + b
        Zs.append(Z)
        acts.append(np.maximum(Z, 0.0) if i < L - 1 else Z)
    Z = acts[-1]
    S = np.exp(Z - Z.max(axis=1, keepdims=True))
    S /= S.sum(axis=1, keepdims=True)
    rows = np.arange(N)
    loss = -np.mean(np.log(S[rows, y]))
    G = S
    G[rows, y] -= 1.0
    G /= N
    for i in range(L - 1, -1, -1):
        W, b = params[i]
        if i < L - 1:
            G = np.where(Zs[i] > 0, G, 0.0)
        dW = acts[i].T @ G
        db = G.sum(axis=0)
        if i > 0:
            G = G @ W.T
        W -= lr * dW
        b -= lr * db
    return loss


def gemm_shapes(sizes, N):
    """The step's GEMMs as ``(name, (p, q, r))``, a ``(p, q) @ (q, r)`` product each."""
    shapes = []
    for i, (n, m) in enumerate(zip(sizes[:-1], sizes[1:])):
        shapes.append((f"L{i + 1} X@W", (N, n, m)))
        shapes.append((f"L{i + 1} X^T@delta", (n, N, m)))
        if i > 0:
            shapes.append((f"L{i + 1} delta@W^T", (N, m, n)))
    return shapes


def gemm_flops(sizes, N) -> float:
    return float(sum(2 * p * q * r for _, (p, q, r) in gemm_shapes(sizes, N)))


def make_gemm_floor(sizes, N, dtype, seed=0):
    """A callable doing exactly the step's matrix products (same operand layouts as the step)."""
    rng = np.random.default_rng(seed)
    work = []
    for i, (n, m) in enumerate(zip(sizes[:-1], sizes[1:])):
        X = rng.standard_normal((N, n)).astype(dtype)
        W = rng.standard_normal((n, m)).astype(dtype)
        D = rng.standard_normal((N, m)).astype(dtype)
        work.append(
            (X, W, D, np.empty((N, m), dtype), np.empty((n, m), dtype), np.empty((N, n), dtype) if i > 0 else None)
        )

    def floor():
        for X, W, D, Z, dW, dX in work:
            np.matmul(X, W, out=Z)
            np.matmul(X.T, D, out=dW)
            if dX is not None:
                np.matmul(D, W.T, out=dX)

    return floor
