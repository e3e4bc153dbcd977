"""Computational-graph nodes with two inputs: ``Mul`` and ``Add`` (*Deep Learning from Scratch*'s
``MulLayer`` and ``AddLayer``).

They take two inputs of the same shape and produce one output; each keeps its forward, its
explicit Jacobians with respect to each input, its reference backward and its batched VJP side
by side, in this package's conventions:

Reference path, one sample (columns in, rows back)::

    forward(x, y, *, check=True)        x (m, 1), y (m, 1) -> out (m, 1), ctx
    jacobian_x(x, y), jacobian_y(x, y)  -> (m, m)            d out / d x, d out / d y
    backward(grad_out, ctx)             grad_out (1, m)    -> (grad_x (1, m), grad_y (1, m))

Batched path (rows are samples)::

    forward_batched(X, Y)               X (N, m), Y (N, m) -> OUT (N, m), ctx
    backward_batched(G, ctx)            G (N, m)           -> (dX (N, m), dY (N, m))
    jacobian_x_batched(X, Y), jacobian_y_batched(X, Y)     -> (N, m, m)

A node is not a layer of a :class:`~jacobian_nn.network.Network` (a network is a chain of
one-input layers); it composes with layers by passing columns forward and rows back, for
example the output of two :class:`~jacobian_nn.layers.Dense` layers multiplied, and the two
rows of ``backward`` handed to each layer's ``backward``. ``ctx`` is returned, never stored on
the node. Scalars, as in the book's apple example, are columns of shape ``(1, 1)``.

Proof of the backward rules: ``proofs:graph.mul_add`` (``proofs/proof_seed002_graph.py``).
"""

from __future__ import annotations

import numpy as np

from ._validation import as_batch, as_column, as_row
from .activations import _embed_diagonal


def _pair_columns(x, y):
    x = as_column(x, "x")
    y = as_column(y, "y", x.shape[0])
    return x, y


def _pair_batches(X, Y):
    X = as_batch(X, "X")
    Y = as_batch(Y, "Y", X.shape[1])
    if Y.shape != X.shape:
        raise ValueError(f"Y: expected shape {X.shape} to match X, got shape {Y.shape}")
    return X, Y


def _grad_like_forward(G, shape):
    G = as_batch(G, "G", shape[1])
    if G.shape != shape:
        raise ValueError(f"G: expected shape {shape} to match the forward batch, got shape {G.shape}")
    return G


class Mul:
    """Multiplication node: ``out = x * y`` elementwise (the book's ``MulLayer``).

    Reference (``x``, ``y`` columns ``(m, 1)``, ``g = dL/dout`` a row ``(1, m)``)::

        d out / d x = diag(y)   (m, m)        dL/dx = g diag(y) = (g^T * y)^T   (1, m)
        d out / d y = diag(x)   (m, m)        dL/dy = g diag(x) = (g^T * x)^T   (1, m)

    Batched (``G = dL/dOUT`` ``(N, m)``): ``dX = G * Y``, ``dY = G * X``.
    """

    def __repr__(self) -> str:
        return "Mul()"

    # -- reference path ------------------------------------------------------------------

    def forward(self, x, y, *, check=True):
        """``x``, ``y`` ``(m, 1)`` -> ``x * y`` ``(m, 1)`` and ``ctx = (x, y)``."""
        if check:
            x, y = _pair_columns(x, y)
        return x * y, (x, y)

    def jacobian_x(self, x, y):
        """``d out / d x = diag(y)`` ``(m, m)``."""
        x, y = _pair_columns(x, y)
        return np.diag(y[:, 0])

    def jacobian_y(self, x, y):
        """``d out / d y = diag(x)`` ``(m, m)``."""
        x, y = _pair_columns(x, y)
        return np.diag(x[:, 0])

    def backward(self, grad_out, ctx, *, check=True):
        """Row ``dL/dout`` ``(1, m)`` -> ``(dL/dout J_x, dL/dout J_y)``, two rows ``(1, m)``."""
        x, y = ctx
        if check:
            grad_out = as_row(grad_out, "grad_out", x.shape[0])
        return grad_out @ self.jacobian_x(x, y), grad_out @ self.jacobian_y(x, y)

    # -- batched path --------------------------------------------------------------------

    def forward_batched(self, X, Y):
        """``X``, ``Y`` ``(N, m)`` -> ``X * Y`` ``(N, m)`` and ``ctx = (X, Y)``."""
        X, Y = _pair_batches(X, Y)
        return X * Y, (X, Y)

    def backward_batched(self, G, ctx):
        """``G = dL/dOUT`` ``(N, m)`` -> ``(dX, dY) = (G * Y, G * X)``, each ``(N, m)``."""
        X, Y = ctx
        G = _grad_like_forward(G, X.shape)
        return G * Y, G * X

    def jacobian_x_batched(self, X, Y):
        """``(N, m, m)``, slice k ``diag(Y[k])``."""
        X, Y = _pair_batches(X, Y)
        return _embed_diagonal(Y)

    def jacobian_y_batched(self, X, Y):
        """``(N, m, m)``, slice k ``diag(X[k])``."""
        X, Y = _pair_batches(X, Y)
        return _embed_diagonal(X)


class Add:
    """Addition node: ``out = x + y`` (the book's ``AddLayer``).

    Reference: ``d out / d x = d out / d y = I_m`` ``(m, m)``; ``dL/dx = dL/dy = g I = g`` ``(1, m)``.
    Batched: ``dX = dY = G`` (two copies, each the caller's to overwrite).
    """

    def __repr__(self) -> str:
        return "Add()"

    # -- reference path ------------------------------------------------------------------

    def forward(self, x, y, *, check=True):
        """``x``, ``y`` ``(m, 1)`` -> ``x + y`` ``(m, 1)`` and ``ctx = m``."""
        if check:
            x, y = _pair_columns(x, y)
        return x + y, x.shape[0]

    def jacobian_x(self, x, y):
        """``d out / d x = I_m`` ``(m, m)``."""
        x, y = _pair_columns(x, y)
        return np.eye(x.shape[0], dtype=x.dtype)

    def jacobian_y(self, x, y):
        """``d out / d y = I_m`` ``(m, m)``."""
        x, y = _pair_columns(x, y)
        return np.eye(x.shape[0], dtype=y.dtype)

    def backward(self, grad_out, ctx, *, check=True):
        """Row ``dL/dout`` ``(1, m)`` -> ``(dL/dout I, dL/dout I)``, two rows ``(1, m)``."""
        m = ctx
        if check:
            grad_out = as_row(grad_out, "grad_out", m)
        eye = np.eye(m, dtype=grad_out.dtype)
        return grad_out @ eye, grad_out @ eye

    # -- batched path --------------------------------------------------------------------

    def forward_batched(self, X, Y):
        """``X``, ``Y`` ``(N, m)`` -> ``X + Y`` ``(N, m)`` and ``ctx = X.shape``."""
        X, Y = _pair_batches(X, Y)
        return X + Y, X.shape

    def backward_batched(self, G, ctx):
        """``G = dL/dOUT`` ``(N, m)`` -> ``(dX, dY) = (G, G)`` as two new arrays ``(N, m)``."""
        G = _grad_like_forward(G, ctx)
        return G.copy(), G.copy()

    def jacobian_x_batched(self, X, Y):
        """``(N, m, m)``, every slice ``I_m``."""
        X, Y = _pair_batches(X, Y)
        return np.broadcast_to(np.eye(X.shape[1], dtype=X.dtype), (X.shape[0],) + (X.shape[1],) * 2).copy()

    def jacobian_y_batched(self, X, Y):
        """``(N, m, m)``, every slice ``I_m``."""
        return self.jacobian_x_batched(X, Y)
