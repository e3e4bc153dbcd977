"""Layers: forward, explicit Jacobians, reference backward and batched backward, side by side.

The layer protocol (every layer implements it; the two path drivers,
:mod:`jacobian_nn.reference` and :mod:`jacobian_nn.batched`, call nothing else)
------------------------------------------------------------------------------
Reference path, one sample (columns in, rows back)::

    forward(x, mode, *, check=True)       x (n, 1)      -> y (m, 1), ctx
    backward(grad_y, ctx, *, check=True)  grad_y (1, m) -> grad_x (1, n), grads {name: array in the param's shape}

  ``check=False`` skips the input checks for columns and rows the reference driver made
  itself (it validates the batch once and the finiteness of every layer's outputs).

Reference path, batch-coupled layers only (``couples_samples(mode)`` True)::

    forward_samples(xs, mode)       list of N columns (n, 1) -> list of N columns (m, 1), ctx
    backward_samples(grad_ys, ctx)  list of N rows (1, m)    -> list of N rows (1, n), grads summed over N

  The rows are chained through the layer's explicit Jacobian over the whole batch
  (batch normalisation in training mode: one ``N x N`` matrix per feature).

Batched path (rows are samples)::

    forward_batched(X, mode, *, out=None)     X (N, n) -> Y (N, m), ctx
    backward_batched(G, ctx, *, input_grad=True, per_sample=False, out=None)
                                            G (N, m) -> dX (N, n) or None, grads

  ``dX`` belongs to the caller, who may overwrite it: a new array, or the one lent for
  ``"dX"`` (never ``G`` itself nor an array of ``ctx``); ``G`` and ``ctx`` are only read,
  unless ``out`` lends ``G`` itself for ``"delta"``.
  ``input_grad=False`` skips ``dX`` (a first layer's input gradient is not needed);
  ``per_sample=True`` returns each sample's gradients stacked ``(N, *param shape)``
  instead of their sum (only layers with ``per_sample_gradients``).

Capabilities, declared (the drivers probe nothing else)::

    couples_samples(mode) -> bool   the samples of a batch are not independent in this mode
    per_sample_gradients: bool      backward_batched(..., per_sample=True) is available
    per_sample_refusal(mode)        None, or why per-sample gradients are refused in this mode
    batched_jacobians: bool         jacobian_x_batched / jacobian_b_batched / input_vjp_rows_batched
    jacobian_x_factors_batched(X)   (D, M) with dy_k/dx_k = diag(D[k]) M, or None (the default)
    min_train_batch: int            smallest batch a training-mode forward accepts

``out`` is how the batched driver lends memory: None (allocate as usual) or an object whose
``out.array(role, shape, dtype)`` returns an array to overwrite for the result named
``role`` ("Z", "delta", "dX", "W", "b", ...), or None for "allocate this one"; read through
``_validation.lend``. The results are the same either way. Only the batched driver lends
(its :class:`~jacobian_nn.batched.Workspace`, or, without one, the gradient array it owns).

``ctx`` is returned to the caller, never stored on the layer, so results do not
depend on call history. ``mode`` is ``"train"`` or ``"test"``; the dense layer
ignores it.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np

from ._validation import (
    as_batch,
    as_column,
    as_weight_and_bias,
    as_generator,
    as_row,
    check_float_dtype,
    check_positive,
    check_positive_int,
    lend,
)
from .activations import Activation, get_activation


# --------------------------------------------------------------------------- initialisation

INITS = ("normal", "scaled_normal", "xavier", "he")


def init_weights(
    n: int, m: int, init: str, rng: np.random.Generator, weight_scale: float | None = None, dtype=np.float64
) -> np.ndarray:
    """Draw ``W`` of shape ``(n, m)`` from ``rng``.

    ``normal``         ``N(0, 1)``: seed 000's ``np.random.randn(nx, ny)``.
    ``scaled_normal``  ``weight_scale * N(0, 1)``: seed 004's initialisation (``weight_scale`` required).
    ``xavier``         Glorot normal, ``N(0, 2 / (n + m))``.
    ``he``             He normal, ``N(0, 2 / n)``, for ReLU-family layers.

    Draws are made in float64 and cast once, so float32 and float64 networks
    built from one seed hold the same values up to that rounding.
    """
    if init not in INITS:
        raise ValueError(f"init: expected one of {INITS}, got {init!r}")
    if init == "scaled_normal":
        if weight_scale is None:
            raise ValueError("weight_scale: required for init='scaled_normal', got None")
        std = check_positive(weight_scale, "weight_scale")
    elif weight_scale is not None:
        raise ValueError(f"weight_scale: only used with init='scaled_normal', got it with init={init!r}")
    elif init == "normal":
        std = 1.0
    elif init == "xavier":
        std = np.sqrt(2.0 / (n + m))
    else:
        std = np.sqrt(2.0 / n)
    return (std * rng.standard_normal((n, m))).astype(dtype)


# --------------------------------------------------------------------------- base class


def column_sums(delta: np.ndarray, out=None) -> np.ndarray:
    """``sum_k delta[k]`` ``(m,)`` as the product ``1^T delta`` (one BLAS matrix-vector
    product, several times faster than ``delta.sum(axis=0)`` on a tall batch; the same sum
    up to rounding order). ``out`` lends the ones and the result, as in ``backward_batched``."""
    (N, m), dtype = delta.shape, delta.dtype
    ones = lend(out, "ones", (N,), dtype)
    ones = np.ones(N, dtype=dtype) if ones is None else (ones.fill(1) or ones)
    return np.matmul(ones, delta, out=lend(out, "db", (m,), dtype))


_L = TypeVar("_L", bound="Layer")


class Layer:
    """Base class: the capabilities of the layer protocol (module docstring) with their
    defaults (samples independent, no per-sample gradients, no batched Jacobians), ``state``
    and ``astype``. The formulas are each subclass's own.

    Besides ``params`` (trainable, get gradients), a layer may hold **state**:
    non-trainable arrays that inference needs (batch norm's running statistics).
    ``state`` returns them as live arrays ``{name: array}`` (default: none); the
    solver snapshots and restores ``params`` and ``state`` together, and
    :mod:`jacobian_nn.model_io` saves both. ``min_train_batch`` is the smallest
    batch a training-mode forward accepts (1; 2 for batch norm, whose variance is 0
    for one sample); the solver never forms a smaller minibatch.
    """

    @property
    def params(self) -> dict:
        """The live trainable arrays, ``{name: array}``; each name is the layer attribute
        holding that array. Every layer defines its own."""
        raise NotImplementedError

    @property
    def dtype(self) -> np.dtype:
        """The dtype the layer computes in (float64 or float32). Every layer defines its own."""
        raise NotImplementedError

    #: smallest batch a training-mode forward accepts (batch-coupled layers raise it)
    min_train_batch: int = 1
    #: ``backward_batched(..., per_sample=True)`` is available
    per_sample_gradients: bool = False

    def couples_samples(self, mode: str) -> bool:
        """True when, in ``mode``, the outputs of one sample depend on the other samples of the
        batch; the reference driver then calls ``forward_samples``/``backward_samples``."""
        return False

    def per_sample_refusal(self, mode: str):
        """Why per-sample gradients are not available in ``mode`` (a sentence), or None when they
        are. The default: None when the layer declares ``per_sample_gradients``. The batched
        driver asks every layer before it runs anything."""
        if self.per_sample_gradients:
            return None
        return f"{type(self).__name__} has no per-sample gradients (per_sample_gradients is False)"

    #: ``jacobian_x_batched`` (and ``input_vjp_rows_batched``) are available
    batched_jacobians: bool = False

    def jacobian_b_batched(self, X):
        """``dy_k/db`` ``(N, m, m)`` for a layer with a bias ``b`` after which an activation acts
        (a dense layer: ``J_f(z_k)``); None for a layer without one (the default)."""
        return None

    def jacobian_x_factors_batched(self, X):
        """``(D (N, m), M (m, n))`` with ``dy_k/dx_k = diag(D[k]) M``, when the layer's input
        Jacobian has that form; None otherwise (the default)."""
        return None

    def input_vjp_rows_batched(self, P, X):
        """``P`` ``(N, r, m)`` -> ``P[k] dy_k/dx_k`` ``(N, r, n)``; the default multiplies by
        ``jacobian_x_batched(X)``."""
        return np.matmul(P, self.jacobian_x_batched(X))

    @property
    def state(self) -> dict:
        """Non-trainable arrays needed for inference, ``{name: live array}`` (default empty).
        Each key is the name of the layer attribute holding that array."""
        return {}

    def astype(self: _L, dtype) -> _L:
        """A deep copy of the layer computing in ``dtype`` (float64 or float32): every array of
        ``params`` and ``state`` is converted (float32 -> float64 is exact). Layers that keep a
        dtype elsewhere (no parameters) override this. Assumes each key of ``params`` / ``state``
        names the attribute holding the array, as for every layer in this package."""
        import copy

        dtype = check_float_dtype(dtype)
        new = copy.deepcopy(self)
        for name, v in {**self.params, **self.state}.items():
            setattr(new, name, np.asarray(v).astype(dtype))
        return new


# --------------------------------------------------------------------------- dense


class Dense(Layer):
    """Fully connected layer, seed 000's convention: ``y = f(W^T x + b)``.

    Parameters
    ----------
    W : ``(n, m)`` weights; ``W[i, j]`` connects input i to output j.
    b : ``(m,)`` bias. Stored 1-D so that the same array serves both paths:
        the reference adds it as the column ``b[:, None]`` ``(m, 1)``, the batched
        path broadcasts it over rows. ``dL/db`` is returned in this ``(m,)`` shape.
    activation : ``f``, an :class:`~jacobian_nn.activations.Activation` or its name.

    Derivatives (reference, ``z = W^T x + b``, ``J = J_f(z)`` ``(m, m)``)::

        dy/dx      = J W^T                       (m, n)
        dy/db      = J                           (m, m)
        dy/dvec(W) = J (x^T kron I_m)            (m, n*m)   vec(W) is row-major:
                                                            index i*m + j <-> W[i, j]
        delta      = dL/dy J                     (1, m)
        dL/dx      = delta W^T                   (1, n)
        dL/dW      = x delta                     (n, m)  (W's shape)
        dL/db      = delta, stored as (m,)

    Batched (``Z = X W + b``, rows are samples, ``G = dL/dY`` ``(N, m)``)::

        delta = vjp_f(Z, G)      (N, m)      dW = X^T delta   (n, m)
        dX    = delta W^T        (N, n)      db = sum_k delta[k]   (m,)

    Proofs (``proofs/proof_dense.py``): ``proofs:dense.backward000`` (reference formulas),
    ``proofs:dense.jacobian_shape`` (``(m, n)``, not seed 000's ``n x m``),
    ``proofs:dense.affine_batch`` (batched formulas), ``proofs:affine.dimension_matching004``.
    """

    def __init__(
        self,
        n_in: int,
        n_out: int,
        activation="identity",
        *,
        init: str = "he",
        weight_scale: float | None = None,
        seed=None,
        dtype=np.float64,
    ):
        n_in, n_out = check_positive_int(n_in, "n_in"), check_positive_int(n_out, "n_out")
        dtype = check_float_dtype(dtype)
        rng = as_generator(seed)
        self.activation: Activation = get_activation(activation)
        self.W = init_weights(int(n_in), int(n_out), init, rng, weight_scale, dtype)
        self.b = np.zeros(int(n_out), dtype=dtype)

    @classmethod
    def from_params(cls, W, b, activation="identity") -> "Dense":
        """A layer holding copies of given ``W`` ``(n, m)`` and ``b`` ``(m,)`` (float64 or float32)."""
        W_arr, b_arr = as_weight_and_bias(W, b, ("n", "m"), bias_axis=1)
        layer = cls.__new__(cls)
        layer.activation = get_activation(activation)
        layer.W, layer.b = W_arr, b_arr
        return layer

    # -- description -------------------------------------------------------------------

    @property
    def n_in(self) -> int:
        return self.W.shape[0]

    @property
    def n_out(self) -> int:
        return self.W.shape[1]

    @property
    def dtype(self) -> np.dtype:
        return self.W.dtype

    @property
    def params(self) -> dict:
        """The live parameter arrays, ``{"W": (n, m), "b": (m,)}``."""
        return {"W": self.W, "b": self.b}

    def __repr__(self) -> str:
        return f"Dense({self.n_in}, {self.n_out}, {self.activation!r})"

    # -- reference path ------------------------------------------------------------------

    per_sample_gradients = True

    def _z(self, x: np.ndarray) -> np.ndarray:
        """``z = W^T x + b`` ``(m, 1)`` (as :meth:`forward` computes it)."""
        return self.W.T @ x + self.b[:, None]

    def forward(self, x, mode="train", *, check=True):
        """``x`` ``(n, 1)`` -> ``y = f(W^T x + b)`` ``(m, 1)`` and the context ``(x, z)``."""
        if check:
            x = as_column(x, "x", self.n_in, self.dtype)
        z = self.W.T @ x + self.b[:, None]
        return self.activation.forward(z, check=False), (x, z)

    def backward(self, grad_y, ctx, *, check=True):
        """Row ``dL/dy`` ``(1, m)`` -> ``dL/dx = delta W^T`` ``(1, n)`` and
        ``{"W": x delta (n, m), "b": delta (m,)}``, ``delta = dL/dy J_f(z)``."""
        if check:
            grad_y = as_row(grad_y, "grad_y", self.n_out, self.dtype)
        x, z = ctx
        delta = grad_y @ self.activation.jacobian(z, check=False)
        return delta @ self.W.T, {"W": x @ delta, "b": delta[0]}

    def jacobian_x(self, x):
        """``dy/dx = J_f(z) W^T``, shape ``(m, n)``."""
        x = as_column(x, "x", self.n_in, self.dtype)
        return self.activation.jacobian(self._z(x)) @ self.W.T

    def jacobian_b(self, x):
        """``dy/db = J_f(z)``, shape ``(m, m)``."""
        x = as_column(x, "x", self.n_in, self.dtype)
        return self.activation.jacobian(self._z(x))

    def jacobian_W(self, x):
        """``dy/dvec(W) = J_f(z) (x^T kron I_m)``, shape ``(m, n*m)``.

        ``vec(W)`` is the row-major flattening ``W.reshape(-1)``: column ``i*m + j``
        is ``W[i, j]``. Hence ``(dL/dy @ jacobian_W(x)).reshape(n, m)`` equals the
        ``dL/dW`` that :meth:`backward` returns.
        """
        x = as_column(x, "x", self.n_in, self.dtype)
        J = self.activation.jacobian(self._z(x))
        return J @ np.kron(x.T, np.eye(self.n_out, dtype=self.dtype))

    # -- batched path --------------------------------------------------------------------

    def forward_batched(self, X, mode="train", *, out=None):
        """``X`` ``(N, n)`` -> ``Y = f(X W + b)`` ``(N, m)`` and the context ``(X, Z, Y)``.

        When the activation's VJP reads only its output (``vjp_reads_output_only``: ReLU,
        identity), ``Y`` is computed over ``Z`` in place and the context is ``(X, Y, Y)``:
        one ``(N, m)`` array fewer per layer and step, the same VJP. ``out`` lends ``Z``
        (see the module docstring)."""
        Z = np.matmul(X, self.W, out=lend(out, "Z", (X.shape[0], self.n_out), self.dtype))
        Z += self.b
        act = self.activation
        if act.vjp_reads_output_only:
            A = act.forward_batched(Z, out=Z)
            return A, (X, A, A)
        A = act.forward_batched(Z)
        return A, (X, Z, A)

    def backward_batched(self, G, ctx, *, input_grad=True, per_sample=False, out=None):
        """``G = dL/dY`` ``(N, m)`` -> ``dX`` ``(N, n)`` (None if not ``input_grad``) and the gradients::

            delta = vjp_f(Z, G)     (N, m)
            dX    = delta W^T       (N, n)
            dW    = X^T delta       (n, m)     per sample: X[k]^T delta[k]  (N, n, m)  einsum "ki,kj->kij"
            db    = 1^T delta       (m,)       per sample: delta[k]          (N, m)

        Row k of ``G`` is ``dL/dy_k`` (with the batch mean's ``1/N`` when it comes from the
        batch loss): slice k of the per-sample gradients equals the reference
        :meth:`backward` of sample k, and their sum is the ``per_sample=False`` result.
        ``out`` lends ``delta``, ``dX``, ``dW`` and ``db`` (see the module docstring)."""
        X, Z, A = ctx
        delta = self.activation.vjp_batched(Z, A, G, out=lend(out, "delta", G.shape, self.dtype))
        dX = np.matmul(delta, self.W.T, out=lend(out, "dX", X.shape, self.dtype)) if input_grad else None
        if per_sample:
            return dX, {"W": np.einsum("ki,kj->kij", X, delta), "b": delta.copy()}
        dW = np.matmul(X.T, delta, out=lend(out, "W", self.W.shape, self.dtype))
        return dX, {"W": dW, "b": column_sums(delta, out)}

    # -- batched path: Jacobians (explicit, opt-in) ----------------------------------------

    def _z_batched(self, X):
        X = as_batch(X, "X", self.n_in, self.dtype)
        return X, X @ self.W + self.b

    def _derivative_batched(self, Z):
        """For an elementwise activation, the diagonals of ``J_f(z_k)`` as rows ``(N, m)``:
        ``vjp_f(Z, f(Z), 1)`` (the batched VJP of a row of ones). None otherwise."""
        act = self.activation
        if not act.elementwise:
            return None
        return act.vjp_batched(Z, act.forward_batched(Z), np.ones_like(Z))

    batched_jacobians = True

    def jacobian_x_factors_batched(self, X):
        """``(D (N, m), W^T (m, n))`` with ``dy_k/dx_k = diag(D[k]) W^T`` when the activation is
        elementwise (``D = vjp_f(Z, f(Z), 1)``), else None."""
        D = self._derivative_batched(self._z_batched(X)[1])
        return None if D is None else (D, self.W.T)

    def jacobian_x_batched(self, X):
        """``dy_k/dx_k`` for every row: ``(N, m, n)``, slice k ``= J_f(z_k) W^T``.

        Elementwise ``f``: ``J_f(z_k) = diag(D[k])`` with ``D = vjp_f(Z, f(Z), 1)``
        ``(N, m)``, so slice k is ``D[k][:, None] * W^T`` (a broadcast product, no
        ``(N, m, m)`` matrix). Otherwise (softmax): batched matmul of
        ``activation.jacobian_batched(Z)`` ``(N, m, m)`` with ``W^T``."""
        _, Z = self._z_batched(X)
        D = self._derivative_batched(Z)
        if D is not None:
            return D[:, :, None] * self.W.T[None]
        return np.matmul(self.activation.jacobian_batched(Z), self.W.T)

    def input_vjp_rows_batched(self, P, X):
        """Pull ``r`` rows per sample back through the layer: ``P`` ``(N, r, m)`` ->
        ``P[k] J_f(z_k) W^T`` ``(N, r, n)``, i.e. ``P @ jacobian_x_batched(X)`` without forming it.

        Elementwise ``f``: ``(P * D[:, None, :]) W^T`` with ``D`` as in :meth:`jacobian_x_batched`,
        the product done as one ``(N r, m) @ (m, n)`` GEMM. Otherwise ``(P @ J_f(Z)) W^T``.
        Used by :func:`jacobian_nn.batched.input_jacobian_batched` to accumulate the network's
        input Jacobian from the output side.
        """
        _, Z = self._z_batched(X)
        P = np.asarray(P)
        N, m = Z.shape
        if P.ndim != 3 or P.shape[0] != N or P.shape[2] != m:
            raise ValueError(f"P: expected shape ({N}, r, {m}), got {P.shape}")
        D = self._derivative_batched(Z)
        delta = P * D[:, None, :] if D is not None else np.matmul(P, self.activation.jacobian_batched(Z))
        r = P.shape[1]
        return (delta.reshape(N * r, m) @ self.W.T).reshape(N, r, self.n_in)

    def jacobian_b_batched(self, X):
        """``dy_k/db`` for every row: ``(N, m, m)``, slice k ``= J_f(z_k)``."""
        _, Z = self._z_batched(X)
        return self.activation.jacobian_batched(Z)

    def jacobian_W_batched(self, X):
        """``dy_k/dvec(W)`` for every row: ``(N, m, n*m)``, vec(W) row-major as in :meth:`jacobian_W`.

        Entry ``[k, i, a*m + j] = J_f(z_k)[i, j] * X[k, a]`` (einsum ``"kij,ka->kiaj"``,
        then reshape), i.e. slice k ``= J_f(z_k) (x_k^T kron I_m)``.
        """
        X, Z = self._z_batched(X)
        N, n, m = X.shape[0], self.n_in, self.n_out
        return np.einsum("kij,ka->kiaj", self.activation.jacobian_batched(Z), X).reshape(N, m, n * m)
