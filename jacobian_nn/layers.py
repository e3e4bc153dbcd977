"""Layers: forward, explicit Jacobians, reference backward and batched backward, side by side.

The layer interface (every layer, including batch-coupled ones, implements it)
-----------------------------------------------------------------------------
Reference path, one sample (columns in, rows back)::

    forward(x)                 x (n, 1)        -> y (m, 1), ctx
    backward(grad_y, ctx)      grad_y (1, m)   -> grad_x (1, n), grads {name: array in the param's shape}

Reference path over a batch of columns (what the network's reference loop calls)::

    forward_samples(xs, mode)        list of N columns (n, 1) -> list of N columns (m, 1), ctx
    backward_samples(grad_ys, ctx)   list of N rows (1, m)    -> list of N rows (1, n),
                                                                 grads summed over the N samples

  The default loops over the samples with ``forward``/``backward``: samples are
  independent. A batch-coupled layer (batch normalisation in training mode)
  overrides the pair and chains the rows through its Jacobian over the whole
  batch. The network never special-cases a layer type.

Batched path (rows are samples)::

    forward_batch(X, mode)     X (N, n) -> Y (N, m), cache
    backward_batch(G, cache)   G (N, m) -> dX (N, n), grads {name: array in the param's shape}

``ctx`` and ``cache`` are returned to the caller, never stored on the layer, so
results do not depend on call history. ``mode`` is ``"train"`` or ``"test"``;
the dense layer ignores it.
"""

from __future__ import annotations

import numpy as np

from ._validation import FLOAT_DTYPES, all_finite, as_column, as_float_array, as_row, check_positive
from .activations import Activation, get_activation
from .workspace import buffer

MODES = ("train", "test")


def check_mode(mode) -> str:
    if mode not in MODES:
        raise ValueError(f"mode: expected one of {MODES}, got {mode!r}")
    return mode


def as_generator(seed) -> np.random.Generator:
    """An explicit ``numpy.random.Generator`` from a Generator, an int seed, or None (fresh entropy)."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or (isinstance(seed, (int, np.integer)) and not isinstance(seed, bool)):
        return np.random.default_rng(seed)
    raise TypeError(f"seed: expected an int, None or a numpy.random.Generator, got {type(seed).__name__}")


# --------------------------------------------------------------------------- initialisation

INITS = ("normal", "scaled_normal", "xavier", "he")


def init_weights(n: int, m: int, init: str, rng: np.random.Generator, weight_scale: float | None = None,
                 dtype=np.float64) -> np.ndarray:
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


def _checked_vectors(vs, name: str, shape: tuple, dtype, check_one) -> list:
    """Validate a list of columns or rows at once, as ``check_one`` would one by one.

    Arrays of the exact shape and dtype pass a cheap test and their finiteness is
    checked together (one concatenation); anything else (or any non-finite entry)
    goes through ``check_one(v, f"{name}[k]")``, which converts integers and raises
    the usual named error. Used by the per-sample reference loops, whose cost is
    otherwise dominated by validating every sample separately.
    """
    out = []
    for k, v in enumerate(vs):
        if not (type(v) is np.ndarray and v.shape == shape and v.dtype == dtype):
            v = check_one(v, f"{name}[{k}]")
        out.append(v)
    if out and not np.isfinite(np.concatenate(out, axis=0)).all():  # same 2-D shapes: no ravel
        for k, v in enumerate(out):
            check_one(v, f"{name}[{k}]")
    return out


def _column_sums(delta: np.ndarray, workspace=None) -> np.ndarray:
    """``sum_k delta[k]`` ``(m,)`` as the product ``1^T delta`` (one BLAS matrix-vector
    product, several times faster than ``delta.sum(axis=0)`` on a tall batch; the same sum
    up to rounding order). With a workspace, the ones and the result live in it."""
    (N, m), dtype = delta.shape, delta.dtype
    if workspace is None:
        ones = np.ones(N, dtype=dtype)
    else:
        ones = workspace.array("ones", (N,), dtype)
        ones.fill(1)
    return np.matmul(ones, delta, out=buffer(workspace, "db", (m,), dtype))


class Layer:
    """Base class: the default batch-of-columns reference methods loop over samples.

    Besides ``params`` (trainable, get gradients), a layer may hold **state**:
    non-trainable arrays that inference needs (batch norm's running statistics).
    ``state`` returns them as live arrays ``{name: array}`` (default: none); the
    solver snapshots and restores ``params`` and ``state`` together, and
    :mod:`jacobian_nn.model_io` saves both. ``min_train_batch`` is the smallest
    batch a training-mode forward accepts (1; 2 for batch norm, whose variance is 0
    for one sample); the solver never forms a smaller minibatch.
    """

    params: dict
    #: smallest batch a training-mode forward accepts (batch-coupled layers raise it)
    min_train_batch: int = 1
    #: True when ``forward_batch``, ``_backward_batch_overwrite`` and
    #: ``_param_grads_batch_overwrite`` accept ``workspace=`` (a
    #: :class:`~jacobian_nn.workspace.WorkspaceScope`) to write their large arrays into
    #: reused memory; the batched network passes it only to such layers (others allocate).
    uses_workspace: bool = False

    @property
    def state(self) -> dict:
        """Non-trainable arrays needed for inference, ``{name: live array}`` (default empty).
        Each key is the name of the layer attribute holding that array."""
        return {}

    def astype(self, dtype) -> "Layer":
        """A deep copy of the layer computing in ``dtype`` (float64 or float32): every array of
        ``params`` and ``state`` is converted (float32 -> float64 is exact). Layers that keep a
        dtype elsewhere (no parameters) override this. Assumes each key of ``params`` / ``state``
        names the attribute holding the array, as for every layer in this package."""
        import copy

        dtype = np.dtype(dtype)
        if dtype not in FLOAT_DTYPES:
            raise TypeError(f"dtype: expected float64 or float32, got {dtype}")
        new = copy.deepcopy(self)
        for name, v in {**self.params, **self.state}.items():
            setattr(new, name, np.asarray(v).astype(dtype))
        return new

    def forward_samples(self, xs, mode="train"):
        check_mode(mode)
        outs = [self.forward(x) for x in xs]
        return [y for y, _ in outs], [ctx for _, ctx in outs]

    def _forward_samples_from_network(self, xs, mode):
        """What the network's reference loop calls, with columns it made itself; a layer may
        skip re-checking their type and shape. The default is :meth:`forward_samples`."""
        return self.forward_samples(xs, mode)

    def _backward_samples_from_network(self, grad_ys, ctxs):
        """What the network's reference loop calls, with rows it made itself. The default is
        :meth:`backward_samples`."""
        return self.backward_samples(grad_ys, ctxs)

    def backward_samples(self, grad_ys, ctxs):
        grad_xs = []
        total = {k: np.zeros_like(v) for k, v in self.params.items()}
        for g, ctx in zip(grad_ys, ctxs, strict=True):
            gx, grads = self.backward(g, ctx)
            grad_xs.append(gx)
            for k in total:
                total[k] += grads[k]
        return grad_xs, total

    def param_grads_batch(self, G, cache):
        """The parameter gradients of :meth:`backward_batch` alone, for a first layer
        whose input gradient a training step discards. A layer may override it to
        skip computing ``dX``; the default calls ``backward_batch``."""
        return self.backward_batch(G, cache)[1]

    def _backward_batch_overwrite(self, G, cache):
        """:meth:`backward_batch` for a caller that owns ``G`` and lets the layer overwrite it
        (the batched network, with its own fresh arrays). The default does not overwrite."""
        return self.backward_batch(G, cache)

    def _param_grads_batch_overwrite(self, G, cache):
        """:meth:`param_grads_batch`, ``G`` owned by the caller as in :meth:`_backward_batch_overwrite`."""
        return self.param_grads_batch(G, cache)


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

    def __init__(self, n_in: int, n_out: int, activation="identity", *, init: str = "he",
                 weight_scale: float | None = None, seed=None, dtype=np.float64):
        for name, v in (("n_in", n_in), ("n_out", n_out)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name}: expected a positive integer, got {v!r}")
        dtype = np.dtype(dtype)
        if dtype not in FLOAT_DTYPES:
            raise TypeError(f"dtype: expected float64 or float32, got {dtype}")
        rng = as_generator(seed)
        self.activation: Activation = get_activation(activation)
        self.W = init_weights(int(n_in), int(n_out), init, rng, weight_scale, dtype)
        self.b = np.zeros(int(n_out), dtype=dtype)

    @classmethod
    def from_params(cls, W, b, activation="identity") -> "Dense":
        """A layer holding copies of given ``W`` ``(n, m)`` and ``b`` ``(m,)`` (float64 or float32)."""
        W_arr = np.asarray(W)
        W_arr = as_float_array(W_arr, "W", W_arr.dtype if W_arr.dtype in FLOAT_DTYPES else np.float64)
        if W_arr.ndim != 2 or 0 in W_arr.shape:
            raise ValueError(f"W: expected a non-empty 2-D array of shape (n, m), got shape {W_arr.shape}")
        b_arr = as_float_array(b, "b", W_arr.dtype)
        if b_arr.shape != (W_arr.shape[1],):
            raise ValueError(f"b: expected shape ({W_arr.shape[1]},) to match W {W_arr.shape}, got {b_arr.shape}")
        layer = cls.__new__(cls)
        layer.activation = get_activation(activation)
        layer.W = W_arr.copy()
        layer.b = b_arr.copy()
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

    def _z(self, x: np.ndarray) -> np.ndarray:
        return self.W.T @ x + self.b[:, None]

    def forward(self, x):
        """``x`` ``(n, 1)`` -> ``y = f(W^T x + b)`` ``(m, 1)`` and the context ``(x, z)``."""
        x = as_column(x, "x", self.n_in, self.dtype)
        z = self._z(x)
        return self.activation.forward(z), (x, z)

    def backward(self, grad_y, ctx):
        """Row ``dL/dy`` ``(1, m)`` -> ``dL/dx`` ``(1, n)`` and ``{"W": (n, m), "b": (m,)}``."""
        grad_y = as_row(grad_y, "grad_y", self.n_out, self.dtype)
        x, z = ctx
        delta = grad_y @ self.activation.jacobian(z)
        return delta @ self.W.T, {"W": x @ delta, "b": delta[0]}

    def forward_samples(self, xs, mode="train"):
        """:meth:`forward` for each column of ``xs``, the columns validated together once."""
        check_mode(mode)
        xs = _checked_vectors(xs, "xs", (self.n_in, 1), self.dtype,
                              lambda v, name: as_column(v, name, self.n_in, self.dtype))
        return self._forward_columns(xs)

    def _forward_samples_from_network(self, xs, mode):
        """:meth:`forward_samples` for columns the network made itself (views of its checked
        input batch, or the previous layer's outputs: ``(n, 1)`` arrays of the layer's dtype by
        construction). Only their finiteness is checked (an overflow upstream), in one pass;
        a non-finite column goes through :meth:`forward_samples`, which names it."""
        check_mode(mode)
        if xs and not all_finite(np.concatenate(xs, axis=0)):
            return self.forward_samples(xs, mode)
        return self._forward_columns(xs)

    def _forward_columns(self, xs):
        # z is computed here, a column by construction: the activation's unchecked formula
        W_T, b_col, f = self.W.T, self.b[:, None], self.activation._forward_column
        ys, ctxs = [], []
        for x in xs:
            z = W_T @ x + b_col
            ys.append(f(z))
            ctxs.append((x, z))
        return ys, ctxs

    def backward_samples(self, grad_ys, ctxs):
        """:meth:`backward` for each row of ``grad_ys``, the rows validated together once;
        the gradients are summed over the samples in order, ``dL/dW = sum_k x_k delta_k``."""
        grad_ys = _checked_vectors(grad_ys, "grad_ys", (1, self.n_out), self.dtype,
                                   lambda v, name: as_row(v, name, self.n_out, self.dtype))
        return self._backward_rows(grad_ys, ctxs)

    def _backward_samples_from_network(self, grad_ys, ctxs):
        """:meth:`backward_samples` for rows the network made itself (the loss's rows or the
        next layer's input gradients: ``(1, m)`` arrays of the layer's dtype by construction);
        only their finiteness is checked, as in :meth:`_forward_samples_from_network`."""
        if grad_ys and not all_finite(np.concatenate(grad_ys, axis=0)):
            return self.backward_samples(grad_ys, ctxs)
        return self._backward_rows(grad_ys, ctxs)

    def _backward_rows(self, grad_ys, ctxs):
        # z comes from forward_samples' contexts: the unchecked Jacobian formula, (m, m) all the same
        W_T, jacobian = self.W.T, self.activation._jacobian_column
        dW, db = np.zeros_like(self.W), np.zeros_like(self.b)
        grad_xs = []
        for g, (x, z) in zip(grad_ys, ctxs, strict=True):
            delta = g @ jacobian(z)
            grad_xs.append(delta @ W_T)
            dW += x @ delta
            db += delta[0]
        return grad_xs, {"W": dW, "b": db}

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

    uses_workspace = True

    def forward_batch(self, X, mode="train", *, workspace=None):
        """``X`` ``(N, n)`` -> ``Y = f(X W + b)`` ``(N, m)`` and the cache ``(X, Z, Y)``.

        When the activation's VJP reads only its output (``vjp_reads_output_only``: ReLU,
        identity), ``Y`` is computed over ``Z`` in place and the cache is ``(X, Y, Y)``:
        one ``(N, m)`` array fewer per layer and step, the same VJP.

        ``workspace`` (a :class:`~jacobian_nn.workspace.WorkspaceScope`, or None): ``Z`` is
        written into its array ``"Z"`` instead of a new one (so is ``Y`` for ReLU and identity);
        the values are the same, valid until the workspace is used again."""
        Z = np.matmul(X, self.W, out=buffer(workspace, "Z", (X.shape[0], self.n_out), self.dtype))
        Z += self.b
        act = self.activation
        if act.vjp_reads_output_only:
            A = act.forward_batch(Z, out=Z)
            return A, (X, A, A)
        A = act.forward_batch(Z)
        return A, (X, Z, A)

    def backward_batch(self, G, cache):
        """``G = dL/dY`` ``(N, m)`` -> ``dX`` ``(N, n)``, ``{"W": X^T delta, "b": sum_k delta[k]}``."""
        X, Z, A = cache
        delta = self.activation.vjp_batch(Z, A, G)
        return delta @ self.W.T, {"W": X.T @ delta, "b": _column_sums(delta)}

    def param_grads_batch(self, G, cache):
        """:meth:`backward_batch` without ``dX = delta W^T``: ``{"W": X^T delta, "b": sum_k delta[k]}``.
        For the first layer of a network, it saves one of the layer's three GEMMs."""
        X, Z, A = cache
        delta = self.activation.vjp_batch(Z, A, G)
        return {"W": X.T @ delta, "b": _column_sums(delta)}

    def _backward_batch_overwrite(self, G, cache, *, workspace=None):
        """:meth:`backward_batch` for a caller that owns ``G`` and lets it be overwritten:
        ``delta`` is computed in ``G``'s memory where the activation can (one ``(N, m)``
        array fewer). The same values. With a ``workspace`` (as in :meth:`forward_batch`),
        ``dX``, ``dW``, ``db`` (and the activation's scratch) are written into its arrays."""
        X, Z, A = cache
        delta = self.activation._vjp_batch_overwrite(Z, A, G, workspace)             # VJP
        dX = np.matmul(delta, self.W.T, out=buffer(workspace, "dX", X.shape, self.dtype))
        return dX, self._param_grads_from_delta(X, delta, workspace)

    def _param_grads_batch_overwrite(self, G, cache, *, workspace=None):
        """:meth:`param_grads_batch`, ``G`` overwritten as in :meth:`_backward_batch_overwrite`."""
        X, Z, A = cache
        delta = self.activation._vjp_batch_overwrite(Z, A, G, workspace)             # VJP
        return self._param_grads_from_delta(X, delta, workspace)

    def _param_grads_from_delta(self, X, delta, workspace):
        """``{"W": X^T delta (n, m), "b": sum_k delta[k] (m,)}``, into the workspace's arrays if any."""
        dW = np.matmul(X.T, delta, out=buffer(workspace, "dW", self.W.shape, self.dtype))
        return {"W": dW, "b": _column_sums(delta, workspace)}

    # -- batched path: per-sample gradients and batched Jacobians (explicit, opt-in) -----

    def per_sample_backward_batch(self, G, cache):
        """Per-sample gradients, no loop over samples.

        ``G`` ``(N, m)``: row k is ``dL_k/dy_k`` (unscaled, not divided by N); ``cache``
        from :meth:`forward_batch`. With ``delta = vjp_f(Z, G)`` ``(N, m)``::

            dX        = delta W^T                              (N, n)
            grads_W[k] = x_k delta_k = X[k]^T delta[k]         (N, n, m)  einsum "ki,kj->kij"
            grads_b[k] = delta[k]                              (N, m)

        Slice k equals the reference ``backward`` of sample k, and summing over k
        gives :meth:`backward_batch` for the same ``G``.
        """
        X, Z, A = cache
        delta = self.activation.vjp_batch(Z, A, G)
        return delta @ self.W.T, {"W": np.einsum("ki,kj->kij", X, delta), "b": delta.copy()}

    def per_sample_param_grads_batch(self, G, cache):
        """:meth:`per_sample_backward_batch` without ``dX = delta W^T``, for a first layer
        (whose input gradient per-sample gradients discard): saves an ``(N, m) @ (m, n)`` GEMM."""
        X, Z, A = cache
        delta = self.activation.vjp_batch(Z, A, G)
        return {"W": np.einsum("ki,kj->kij", X, delta), "b": delta.copy()}

    def _z_batch(self, X):
        X = as_float_array(X, "X", self.dtype)
        if X.ndim != 2 or X.shape[1] != self.n_in or X.shape[0] == 0:
            raise ValueError(f"X: expected a non-empty batch of shape (N, {self.n_in}), got shape {X.shape}")
        return X, X @ self.W + self.b

    def _derivative_batch(self, Z):
        """For an elementwise activation, the diagonals of ``J_f(z_k)`` as rows ``(N, m)``:
        ``vjp_f(Z, f(Z), 1)`` (the batched VJP of a row of ones). None otherwise."""
        act = self.activation
        if not act.elementwise:
            return None
        return act.vjp_batch(Z, act.forward_batch(Z), np.ones_like(Z))

    def jacobian_x_batch(self, X):
        """``dy_k/dx_k`` for every row: ``(N, m, n)``, slice k ``= J_f(z_k) W^T``.

        Elementwise ``f``: ``J_f(z_k) = diag(D[k])`` with ``D = vjp_f(Z, f(Z), 1)``
        ``(N, m)``, so slice k is ``D[k][:, None] * W^T`` (a broadcast product, no
        ``(N, m, m)`` matrix). Otherwise (softmax): batched matmul of
        ``activation.jacobian_batch(Z)`` ``(N, m, m)`` with ``W^T``."""
        _, Z = self._z_batch(X)
        D = self._derivative_batch(Z)
        if D is not None:
            return D[:, :, None] * self.W.T[None]
        return np.matmul(self.activation.jacobian_batch(Z), self.W.T)

    def input_vjp_rows_batch(self, P, X):
        """Pull ``r`` rows per sample back through the layer: ``P`` ``(N, r, m)`` ->
        ``P[k] J_f(z_k) W^T`` ``(N, r, n)``, i.e. ``P @ jacobian_x_batch(X)`` without forming it.

        Elementwise ``f``: ``(P * D[:, None, :]) W^T`` with ``D`` as in :meth:`jacobian_x_batch`,
        the product done as one ``(N r, m) @ (m, n)`` GEMM. Otherwise ``(P @ J_f(Z)) W^T``.
        Used by :func:`jacobian_nn.batched.input_jacobian_batched` to accumulate the network's
        input Jacobian from the output side.
        """
        _, Z = self._z_batch(X)
        P = np.asarray(P)
        N, m = Z.shape
        if P.ndim != 3 or P.shape[0] != N or P.shape[2] != m:
            raise ValueError(f"P: expected shape ({N}, r, {m}), got {P.shape}")
        D = self._derivative_batch(Z)
        delta = P * D[:, None, :] if D is not None else np.matmul(P, self.activation.jacobian_batch(Z))
        r = P.shape[1]
        return (delta.reshape(N * r, m) @ self.W.T).reshape(N, r, self.n_in)

    def jacobian_b_batch(self, X):
        """``dy_k/db`` for every row: ``(N, m, m)``, slice k ``= J_f(z_k)``."""
        _, Z = self._z_batch(X)
        return self.activation.jacobian_batch(Z)

    def jacobian_W_batch(self, X):
        """``dy_k/dvec(W)`` for every row: ``(N, m, n*m)``, vec(W) row-major as in :meth:`jacobian_W`.

        Entry ``[k, i, a*m + j] = J_f(z_k)[i, j] * X[k, a]`` (einsum ``"kij,ka->kiaj"``,
        then reshape), i.e. slice k ``= J_f(z_k) (x_k^T kron I_m)``.
        """
        X, Z = self._z_batch(X)
        N, n, m = X.shape[0], self.n_in, self.n_out
        return np.einsum("kij,ka->kiaj", self.activation.jacobian_batch(Z), X).reshape(N, m, n * m)
