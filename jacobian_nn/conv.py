"""Convolution, pooling and spatial batch norm: explicit sparse Jacobians and batched VJPs, side by side.

Images (the convention of CS231n and *Deep Learning from Scratch*)
------------------------------------------------------------------
A batch of images is NCHW. One image in the reference path is the **column** ``x`` of
length ``C*H*W``, the image flattened in C order (index ``c*H*W + h*W + w``), so a
convolutional layer is a map ``R^(C*H*W) -> R^(F*OH*OW)`` and chains like any other
layer; in the batched path a batch is ``X`` ``(N, C*H*W)``, row k the flattened image k
(``images.reshape(N, -1)``). A :class:`~jacobian_nn.layers.Dense` layer follows an image
layer by taking its flattened width ``n_out`` as ``n_in``.

Convolution is cross-correlation (no kernel flip), ``W`` ``(F, C, FH, FW)``, ``b`` ``(F,)``::

    z[f, oh, ow] = sum_{c,i,j} W[f, c, i, j] * xp[c, oh*S + i, ow*S + j] + b[f]
    OH = (H + 2P - FH) / S + 1,   OW = (W + 2P - FW) / S + 1

``xp`` is ``x`` zero-padded by ``P`` on each side of H and W. A size for which ``S`` does
not divide ``H + 2P - FH`` (or the W analogue) is refused, never truncated.

Reference path: explicit Jacobians as ``scipy.sparse`` arrays
-------------------------------------------------------------
Built from index arithmetic on the layer's hyperparameters (no loop over positions),
exact, sized by their non-zeros; ``.toarray()`` gives the dense matrix and a row gradient
chains through them as through a dense one (``g @ J``). With ``P = OH*OW`` output positions (from here
on ``P`` counts positions and the padding is written ``pad``), ``K = C*FH*FW`` and ``p = oh*OW + ow``::

    dz/dx        (F*P, C*H*W)   row f*P + p: W[f, c, i, j] at column c*H*W + (oh*S+i-pad)*W + (ow*S+j-pad),
                                one entry per (c, i, j) that falls inside the image (<= K per row)
    dz/dvec(W)   (F*P, F*K)     = I_F kron Xcol,  Xcol[p, k] = xp[c, oh*S+i, ow*S+j], k = c*FH*FW + i*FW + j
    dz/db        (F*P, F)       = I_F kron 1_P
    y = f(z):    dy/d. = diag(f'(z)) dz/d.      (an elementwise activation, as in Dense)

Pooling (no padding, window ``(PH, PW)``, stride ``S``, default ``S = PH``)::

    max:  dy/dx (C*P, C*H*W), one 1 per row, at the window's maximal input
    avg:  dy/dx (C*P, C*H*W), PH*PW entries 1/(PH*PW) per row

**Max-pooling ties** are kinks. Convention: the *first* maximal element of the window in
C order (row i first, then column j) takes the gradient; the others get 0. The reference
path states it as ``min{k : v_k = max v}`` on the gathered window; the batched path takes the
maximum over the window entries, then writes ``k`` wherever entry k equals it, from the last
entry back to the first; tests check both at exact ties.

Batched path: vectorised ``im2col`` / ``col2im``
------------------------------------------------
``windows`` (im2col) takes every window at once with ``numpy.lib.stride_tricks.sliding_window_view``;
``add_windows`` (col2im) adds the columns back with one slice addition per kernel offset ``(i, j)``
(``FH*FW`` additions of whole ``(N, C, OH, OW)`` arrays, no loop over output positions)::

    cols = windows(X4)           (N, K, P)       Z[n] = W_mat cols[n] + b      (N, F, P)
    dcols = W_mat^T D            (N, K, P)       dX = add_windows(dcols)       (N, C, H, W)
    dW = sum_n D[n] cols[n]^T    (F, K)          db = sum_{n,p} D[n, :, p]     (F,)

with ``W_mat = W.reshape(F, K)`` and ``D`` the upstream gradient after the activation,
arranged ``(N, F, P)``. ``windows`` / ``add_windows`` are ``im2col`` / ``col2im`` with each sample's block
transposed (``im2col(X4) = windows(X4)`` with rows ``(n, p)``: CS231n's and the book's layout, also exported).
Pooling runs over the window entries the same way: a running maximum (or sum) over the ``PH*PW`` offsets,
and one slice addition per offset back. This path never builds nor reads a reference Jacobian
(``tests/test_independence.py``).

Proofs (``proofs/proof_conv.py``): ``proofs:conv.cross_correlation002`` (the im2col forward is a
cross-correlation; a flipped kernel is another function), ``proofs:conv.sparsity002`` (the pattern and the
count of non-zeros), ``proofs:conv.backward002`` (``dx = col2im(dcol)``, ``dW = dout col``),
``proofs:conv.maxpool002`` (the selection matrix and the tie convention), ``proofs:graph.conv_size002``
(the output size, and the pooling code of the DLFS notes that leaves the pad out).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from numpy.lib.stride_tricks import sliding_window_view

from ._validation import (
    as_column,
    as_weight_and_bias,
    as_generator,
    as_row,
    check_float_dtype,
    check_mode,
    check_positive_int,
    columns,
    rows_of,
)
from .activations import Activation, get_activation
from .layers import Layer, init_weights
from .normalization import BatchNorm, _ParameterFreeLayer


# --------------------------------------------------------------------------- sizes


def check_image_shape(shape, name: str = "input_shape") -> tuple:
    """``shape`` as ``(C, H, W)`` of positive ints, else ``ValueError``."""
    try:
        dims = tuple(shape)
    except TypeError:
        raise ValueError(f"{name}: expected (C, H, W), got {shape!r}") from None
    if len(dims) != 3:
        raise ValueError(f"{name}: expected (C, H, W), got {shape!r}")
    return tuple(check_positive_int(d, f"{name}[{k}]") for k, d in enumerate(dims))


def output_size(size: int, window: int, stride: int, pad: int, what: str = "H") -> int:
    """``(size + 2*pad - window) / stride + 1``, refused unless ``stride`` divides ``size + 2*pad - window``
    and the window fits in the padded image."""
    span = size + 2 * pad - window
    if span < 0:
        raise ValueError(f"{what}: the window {window} does not fit in {what} + 2*pad = {size + 2 * pad}")
    if span % stride:
        raise ValueError(
            f"{what}: ({what} + 2*pad - window) / stride = ({size} + 2*{pad} - {window}) / {stride} "
            f"is not an integer; choose a stride, pad or window for which it divides"
        )
    return span // stride + 1


# --------------------------------------------------------------------------- batched: im2col / col2im


def windows(X4: np.ndarray, FH: int, FW: int, stride: int = 1, pad: int = 0) -> np.ndarray:
    """Images ``X4`` ``(N, C, H, W)`` -> ``cols`` ``(N, C*FH*FW, OH*OW)``: column ``p = oh*OW + ow`` of sample n
    is the padded window ``xp[n, :, oh*S:oh*S+FH, ow*S:ow*S+FW]`` flattened in C order (row ``c*FH*FW + i*FW + j``).
    One ``sliding_window_view``, one copy. (The per-sample transpose of :func:`im2col`, the layout the layers use.)"""
    N, C, H, W = X4.shape
    OH, OW = output_size(H, FH, stride, pad, "H"), output_size(W, FW, stride, pad, "W")
    Xp = X4
    if pad:
        Xp = np.zeros((N, C, H + 2 * pad, W + 2 * pad), dtype=X4.dtype)
        Xp[:, :, pad : pad + H, pad : pad + W] = X4
    win = sliding_window_view(Xp, (FH, FW), axis=(2, 3))[:, :, ::stride, ::stride]  # (N, C, OH, OW, FH, FW)
    return win.transpose(0, 1, 4, 5, 2, 3).reshape(N, C * FH * FW, OH * OW)


def add_windows(cols: np.ndarray, shape4: tuple, FH: int, FW: int, stride: int = 1, pad: int = 0) -> np.ndarray:
    """The adjoint of :func:`windows`: ``cols`` ``(N, C*FH*FW, OH*OW)`` -> ``(N, C, H, W)``, every entry added back to
    the input position it was copied from (padding dropped). One slice addition per kernel offset ``(i, j)``,
    ``xp[:, :, i + S*oh, j + S*ow] += cols[:, (c, i, j), (oh, ow)]`` for all ``oh, ow`` at once."""
    N, C, H, W = shape4
    OH, OW = output_size(H, FH, stride, pad, "H"), output_size(W, FW, stride, pad, "W")
    d = cols.reshape(N, C, FH, FW, OH, OW)
    Xp = np.zeros((N, C, H + 2 * pad, W + 2 * pad), dtype=cols.dtype)
    for i in range(FH):
        for j in range(FW):
            Xp[:, :, i : i + stride * OH : stride, j : j + stride * OW : stride] += d[:, :, i, j]
    return Xp[:, :, pad : pad + H, pad : pad + W] if pad else Xp


def im2col(X4: np.ndarray, FH: int, FW: int, stride: int = 1, pad: int = 0) -> np.ndarray:
    """Images ``X4`` ``(N, C, H, W)`` -> ``col`` ``(N*OH*OW, C*FH*FW)``, the layout of CS231n and *Deep Learning from
    Scratch*: row ``n*OH*OW + oh*OW + ow`` is the padded window at ``(oh, ow)`` of image n, flattened in C order
    (column ``c*FH*FW + i*FW + j``). :func:`windows`, each sample transposed."""
    cols = windows(X4, FH, FW, stride, pad)
    return cols.transpose(0, 2, 1).reshape(-1, cols.shape[1])


def col2im(col: np.ndarray, shape4: tuple, FH: int, FW: int, stride: int = 1, pad: int = 0) -> np.ndarray:
    """The adjoint of :func:`im2col`: ``col`` ``(N*OH*OW, C*FH*FW)`` -> ``(N, C, H, W)`` (:func:`add_windows`)."""
    N = shape4[0]
    return add_windows(col.reshape(N, -1, col.shape[1]).transpose(0, 2, 1), shape4, FH, FW, stride, pad)


# --------------------------------------------------------------------------- reference: index patterns


def window_indices(shape, FH: int, FW: int, stride: int, pad: int):
    """For every output position ``p = oh*OW + ow`` and kernel entry ``k = c*FH*FW + i*FW + j``, the flat input
    index ``c*H*W + (oh*S+i-pad)*W + (ow*S+j-pad)``: ``(index (P, K), inside (P, K) bool)``, ``inside`` False
    where the entry falls in the zero padding. Pure index arithmetic (broadcast ``arange``s)."""
    C, H, W = shape
    OH, OW = output_size(H, FH, stride, pad, "H"), output_size(W, FW, stride, pad, "W")
    oh, ow = np.divmod(np.arange(OH * OW), OW)
    c, rest = np.divmod(np.arange(C * FH * FW), FH * FW)
    i, j = np.divmod(rest, FW)
    h = oh[:, None] * stride + i[None, :] - pad  # (P, K)
    w = ow[:, None] * stride + j[None, :] - pad
    inside = (h >= 0) & (h < H) & (w >= 0) & (w < W)
    index = c[None, :] * (H * W) + h * W + w
    return np.where(inside, index, 0), inside


def _jacobian_activation_diagonal(act: Activation, z: np.ndarray, block: int = 256) -> np.ndarray:
    """``diag(J_f(z))`` ``(m,)`` of an elementwise activation from its reference Jacobian, taken on blocks of
    ``block`` entries (``J_f`` is diagonal, so each block's Jacobian is the diagonal block): no ``(m, m)``."""
    return np.concatenate(
        [np.diagonal(act.jacobian(z[s : s + block], check=False)) for s in range(0, z.shape[0], block)]
    )


def _diag(d: np.ndarray):
    return sp.diags_array(d, format="csr")


class _ImageLayer(Layer):
    """Shared description of a layer on flattened images ``(C, H, W) -> (F, OH, OW)``."""

    input_shape: tuple
    output_shape: tuple

    @property
    def n_in(self) -> int:
        return int(np.prod(self.input_shape))

    @property
    def n_out(self) -> int:
        return int(np.prod(self.output_shape))

    # -- batched Jacobians (explicit, opt-in), from the layer's own batched VJP ---------------

    batched_jacobians = True

    def input_vjp_rows_batched(self, P, X):
        """``P`` ``(N, r, m)`` -> ``P[k] dy_k/dx_k`` ``(N, r, n)`` (test mode): ``backward_batched`` of the ``N*r``
        rows of ``P`` on the batch with every sample repeated ``r`` times."""
        X, P = np.asarray(X), np.asarray(P)
        N = X.shape[0]
        if P.ndim != 3 or P.shape[0] != N or P.shape[2] != self.n_out:
            raise ValueError(f"P: expected shape ({N}, r, {self.n_out}), got {P.shape}")
        r = P.shape[1]
        _, ctx = self.forward_batched(np.repeat(X, r, axis=0), "test")
        dX, _ = self.backward_batched(np.ascontiguousarray(P).reshape(N * r, self.n_out), ctx)
        return dX.reshape(N, r, self.n_in)

    def jacobian_x_batched(self, X):
        """``dy_k/dx_k`` for every row, dense ``(N, m, n)``: :meth:`input_vjp_rows_batched` of the identity."""
        N = np.asarray(X).shape[0]
        eye = np.broadcast_to(np.eye(self.n_out, dtype=self.dtype), (N, self.n_out, self.n_out))
        return self.input_vjp_rows_batched(eye, X)

    def jacobian_b_batched(self, X):
        """``dy_k/db`` for every row; None for a layer without a bias ``b`` (pooling, spatial batch norm)."""
        return None

    def _images(self, X: np.ndarray) -> np.ndarray:
        """``X`` ``(N, C*H*W)`` -> the view ``(N, C, H, W)`` (checked: the width and the dtype)."""
        X = np.asarray(X)
        if X.ndim != 2 or X.shape[1] != self.n_in:
            raise ValueError(
                f"X: expected a batch of shape (N, {self.n_in}) (images {self.input_shape} "
                f"flattened), got shape {X.shape}"
            )
        if X.dtype != self.dtype:
            raise TypeError(f"X: expected dtype {self.dtype}, got {X.dtype}")
        return X.reshape((X.shape[0],) + tuple(self.input_shape))


# =========================================================================== convolution


class Conv2D(_ImageLayer):
    """2-D convolution (cross-correlation) with an elementwise activation: ``y = f(conv(x, W) + b)``.

    Parameters
    ----------
    input_shape : ``(C, H, W)`` of one image.
    n_filters : F.    kernel_size : FH (and FW), or ``(FH, FW)``.
    stride : S >= 1.  pad : P >= 0 (zeros on each side).
    activation : an elementwise activation or its name (default identity, CS231n's conv layer).
    init, weight_scale, seed, dtype : as for :class:`~jacobian_nn.layers.Dense`, with fan-in ``C*FH*FW``.

    ``W`` ``(F, C, FH, FW)``, ``b`` ``(F,)``; ``n_in = C*H*W``, ``n_out = F*OH*OW``. Formulas, Jacobians
    and VJPs: the module docstring. ``vec(W)`` is ``W.reshape(-1)`` (row-major).
    """

    per_sample_gradients = True

    def __init__(
        self,
        input_shape,
        n_filters: int,
        kernel_size,
        *,
        stride: int = 1,
        pad: int = 0,
        activation="identity",
        init: str = "he",
        weight_scale: float | None = None,
        seed=None,
        dtype=np.float64,
    ):
        shape = check_image_shape(input_shape)
        F = check_positive_int(n_filters, "n_filters")
        FH, FW = self._kernel(kernel_size)
        dtype = check_float_dtype(dtype)
        self._configure(shape, (F, shape[0], FH, FW), stride, pad, activation)
        K = shape[0] * FH * FW
        rng = as_generator(seed)
        self.W = init_weights(K, F, init, rng, weight_scale, dtype).T.reshape(F, shape[0], FH, FW).copy()
        self.b = np.zeros(F, dtype=dtype)

    @staticmethod
    def _kernel(kernel_size) -> tuple:
        ks = (kernel_size, kernel_size) if isinstance(kernel_size, (int, np.integer)) else tuple(kernel_size)
        if len(ks) != 2:
            raise ValueError(f"kernel_size: expected an int or (FH, FW), got {kernel_size!r}")
        return check_positive_int(ks[0], "kernel_size[0]"), check_positive_int(ks[1], "kernel_size[1]")

    def _configure(self, shape, w_shape, stride, pad, activation) -> None:
        """Check every hyperparameter, then set them (nothing is set before all are checked)."""
        C, H, W = shape
        F, C_w, FH, FW = w_shape
        if C_w != C:
            raise ValueError(f"W: expected {C} input channels (input_shape {shape}), got W shape {w_shape}")
        stride = check_positive_int(stride, "stride")
        pad = check_positive_int(pad, "pad", minimum=0)
        OH, OW = output_size(H, FH, stride, pad, "H"), output_size(W, FW, stride, pad, "W")
        act = get_activation(activation)
        if not act.elementwise:
            raise ValueError(f"activation: a convolution takes an elementwise activation, got {act!r}")
        self.input_shape, self.output_shape = shape, (F, OH, OW)
        self.stride, self.pad, self.activation = stride, pad, act
        self._index, self._inside = window_indices(shape, FH, FW, stride, pad)

    @classmethod
    def from_params(cls, W, b, input_shape, *, stride: int = 1, pad: int = 0, activation="identity") -> "Conv2D":
        """A layer holding copies of ``W`` ``(F, C, FH, FW)`` and ``b`` ``(F,)`` (float64 or float32)."""
        W_arr, b_arr = as_weight_and_bias(W, b, ("F", "C", "FH", "FW"), bias_axis=0)
        layer = cls.__new__(cls)
        layer._configure(check_image_shape(input_shape), W_arr.shape, stride, pad, activation)
        layer.W, layer.b = W_arr, b_arr
        return layer

    @property
    def dtype(self) -> np.dtype:
        return self.W.dtype

    @property
    def params(self) -> dict:
        """The live parameter arrays ``{"W": (F, C, FH, FW), "b": (F,)}``."""
        return {"W": self.W, "b": self.b}

    @property
    def kernel_size(self) -> tuple:
        return self.W.shape[2], self.W.shape[3]

    def __repr__(self) -> str:
        F, C, FH, FW = self.W.shape
        return (
            f"Conv2D({self.input_shape}, {F}, ({FH}, {FW}), stride={self.stride}, pad={self.pad}, {self.activation!r})"
        )

    # -- reference path: sparse Jacobians ------------------------------------------------

    def _jacobian_conv(self):
        """``dz/dx`` ``(F*P, C*H*W)`` csr (the linear part; depends on ``W`` only)."""
        F = self.W.shape[0]
        P = self._index.shape[0]
        counts = self._inside.sum(axis=1)  # (P,) entries per row
        values = self.W.reshape(F, -1)[:, np.nonzero(self._inside)[1]]  # (F, nnz_P) in (p, k) order
        cols = np.tile(self._index[self._inside], F)
        indptr = np.concatenate([[0], np.cumsum(np.tile(counts, F))])
        return sp.csr_array((values.reshape(-1), cols, indptr), shape=(F * P, self.n_in))

    def _jacobian_W_linear(self, x):
        """``dz/dvec(W) = I_F kron Xcol`` ``(F*P, F*K)`` csr, ``Xcol[p, k] = xp[...]`` (0 in the padding)."""
        P, K = self._index.shape
        rows, ks = np.nonzero(self._inside)
        xcol = sp.csr_array((x[self._index[rows, ks], 0], (rows, ks)), shape=(P, K))
        return sp.kron(sp.eye_array(self.W.shape[0], dtype=self.dtype), xcol, format="csr")

    def _jacobian_b_linear(self):
        """``dz/db = I_F kron 1_P`` ``(F*P, F)`` csr."""
        P = self._index.shape[0]
        return sp.kron(
            sp.eye_array(self.W.shape[0], dtype=self.dtype),
            sp.csr_array(np.ones((P, 1), dtype=self.dtype)),
            format="csr",
        )

    def _z(self, x):
        return self._jacobian_conv() @ x + np.repeat(self.b, self._index.shape[0])[:, None]

    def forward(self, x, mode="train", *, check=True):
        """``x`` ``(C*H*W, 1)`` -> ``y = f(Jx x + b repeated)`` ``(F*OH*OW, 1)``, context ``(x, z, Jx)``:
        the forward multiplies by the explicit Jacobian ``Jx = dz/dx``."""
        if check:
            x = as_column(x, "x", self.n_in, self.dtype)
        Jx = self._jacobian_conv()
        z = Jx @ x + np.repeat(self.b, self._index.shape[0])[:, None]
        return self.activation.forward(z, check=False), (x, z, Jx)

    def backward(self, grad_y, ctx, *, check=True):
        """Row ``dL/dy`` ``(1, F*P)`` -> ``delta = dL/dy diag(f'(z))``; ``dL/dx = delta Jx`` ``(1, C*H*W)``,
        ``dL/dW = (delta dz/dvec(W))`` in W's shape, ``dL/db = delta dz/db`` ``(F,)``."""
        if check:
            grad_y = as_row(grad_y, "grad_y", self.n_out, self.dtype)
        x, z, Jx = ctx
        delta = grad_y @ _diag(_jacobian_activation_diagonal(self.activation, z))
        return delta @ Jx, {
            "W": (delta @ self._jacobian_W_linear(x)).reshape(self.W.shape),
            "b": (delta @ self._jacobian_b_linear())[0],
        }

    def jacobian_x(self, x):
        """``dy/dx = diag(f'(z)) dz/dx``, a ``scipy.sparse`` csr array ``(F*OH*OW, C*H*W)``, at most
        ``C*FH*FW`` non-zeros per row."""
        x = as_column(x, "x", self.n_in, self.dtype)
        return _diag(_jacobian_activation_diagonal(self.activation, self._z(x))) @ self._jacobian_conv()

    def jacobian_W(self, x):
        """``dy/dvec(W) = diag(f'(z)) (I_F kron Xcol)``, sparse ``(F*OH*OW, F*C*FH*FW)``, vec(W) row-major."""
        x = as_column(x, "x", self.n_in, self.dtype)
        return _diag(_jacobian_activation_diagonal(self.activation, self._z(x))) @ self._jacobian_W_linear(x)

    def jacobian_b(self, x):
        """``dy/db = diag(f'(z)) (I_F kron 1_P)``, sparse ``(F*OH*OW, F)``."""
        x = as_column(x, "x", self.n_in, self.dtype)
        return _diag(_jacobian_activation_diagonal(self.activation, self._z(x))) @ self._jacobian_b_linear()

    # -- batched path: im2col / col2im ------------------------------------------------------

    def jacobian_b_batched(self, X):
        """``dy_k/db`` for every row, dense ``(N, F*P, F)``: entry ``[k, f*P + p, f] = f'(z_k)[f*P + p]`` with
        ``f'(Z) = vjp_f(Z, f(Z), 1)`` (the batched derivative); zeros elsewhere."""
        _, (cols, Z, A) = self.forward_batched(X, "test")
        D = self.activation.vjp_batched(Z, A, np.ones_like(Z))
        F = self.W.shape[0]
        P = Z.shape[1] // F
        J = np.zeros((Z.shape[0], F * P, F), dtype=self.dtype)
        J[:, np.arange(F * P), np.repeat(np.arange(F), P)] = D
        return J

    def forward_batched(self, X, mode="train", *, out=None):
        """``X`` ``(N, C*H*W)`` -> ``Y = f(Z)`` ``(N, F*OH*OW)``, ``Z[n] = W_mat cols[n] + b`` with
        ``cols = windows(X)`` ``(N, K, P)`` (im2col per sample); the context is ``(cols, Z, Y)`` (``Z`` is
        overwritten by ``Y`` when the activation's VJP reads its output only, as in Dense; ``out`` unused)."""
        X4 = self._images(X)
        F, C, FH, FW = self.W.shape
        cols = windows(X4, FH, FW, self.stride, self.pad)
        Z = np.matmul(self.W.reshape(F, -1), cols)  # (N, F, P)
        Z += self.b[:, None]
        Z = Z.reshape(X4.shape[0], -1)
        act = self.activation
        if act.vjp_reads_output_only:
            A = act.forward_batched(Z, out=Z)
            return A, (cols, A, A)
        A = act.forward_batched(Z)
        return A, (cols, Z, A)

    def backward_batched(self, G, ctx, *, input_grad=True, per_sample=False, out=None):
        """``G = dL/dY`` ``(N, F*P)`` -> ``D = vjp_f(Z, G)`` ``(N, F, P)``;
        ``dX = add_windows(W_mat^T D)`` ``(N, C*H*W)`` (col2im), ``dW = sum_n D[n] cols[n]^T`` (dout . col) in
        W's shape, ``db = sum_{n,p} D``; per sample: ``dW[n]`` ``(N, F, C, FH, FW)``, ``db[n]`` ``(N, F)``."""
        cols, Z, A = ctx
        N = G.shape[0]
        F, C, FH, FW = self.W.shape
        D = self.activation.vjp_batched(Z, A, G).reshape(N, F, -1)
        dX = None
        if input_grad:
            dX = add_windows(
                np.matmul(self.W.reshape(F, -1).T, D), (N,) + tuple(self.input_shape), FH, FW, self.stride, self.pad
            ).reshape(N, -1)
        dW = np.matmul(D, cols.transpose(0, 2, 1))  # (N, F, K)
        if per_sample:
            return dX, {"W": dW.reshape((N,) + self.W.shape), "b": D.sum(axis=2)}
        return dX, {"W": dW.sum(axis=0).reshape(self.W.shape), "b": D.sum(axis=(0, 2))}


# =========================================================================== pooling


class _Pool2D(_ImageLayer, _ParameterFreeLayer):
    """A pooling window ``(PH, PW)``, stride ``S`` (default ``PH``), no padding, no parameters (dtype, ``params``
    and ``astype`` from the parameter-free layers of :mod:`jacobian_nn.normalization`; widths from the images)."""

    per_sample_gradients = True

    def __init__(self, input_shape, pool_size=2, *, stride: int | None = None, dtype=np.float64):
        shape = check_image_shape(input_shape)
        PH, PW = Conv2D._kernel(pool_size)
        stride = check_positive_int(PH if stride is None else stride, "stride")
        C, H, W = shape
        OH, OW = output_size(H, PH, stride, 0, "H"), output_size(W, PW, stride, 0, "W")
        self._dtype = check_float_dtype(dtype)
        self.input_shape, self.output_shape = shape, (C, OH, OW)
        self.pool_size, self.stride = (PH, PW), stride
        # window entries of channel 0 (no padding: every entry inside), then one block per channel
        index, _ = window_indices((1, H, W), PH, PW, stride, 0)  # (P, PH*PW)
        self._windows = (np.arange(C)[:, None, None] * (H * W) + index[None]).reshape(C * OH * OW, PH * PW)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.input_shape}, {self.pool_size}, stride={self.stride})"

    def _window_view(self, X):
        """``X`` ``(N, C*H*W)`` -> the windows ``(N, C, OH, OW, PH, PW)`` (a view, no copy)."""
        PH, PW = self.pool_size
        win = sliding_window_view(self._images(X), (PH, PW), axis=(2, 3))
        return win[:, :, :: self.stride, :: self.stride]

    def _add_to_windows(self, G4: np.ndarray, arg=None) -> np.ndarray:
        """``G4`` ``(N, C, OH, OW)`` (``arg`` None: every window entry; else only the entry ``k = arg``), for window
        entry ``k = i*PW + j``, added to the input positions
        ``(oh*S + i, ow*S + j)``: ``(N, C*H*W)``. One slice addition per window entry (col2im); when the windows
        do not overlap (``S >= PH`` and ``S >= PW``) the slices are disjoint and each is assigned instead."""
        PH, PW = self.pool_size
        C, OH, OW = self.output_shape
        S = self.stride
        disjoint = S >= PH and S >= PW
        # every part has G4's batch size and dtype (a float times a boolean mask keeps the float's dtype)
        dX = np.zeros((G4.shape[0],) + tuple(self.input_shape), dtype=G4.dtype)
        for k in range(PH * PW):
            i, j = divmod(k, PW)
            part = G4 if arg is None else G4 * (arg == k)
            if disjoint:
                dX[:, :, i : i + S * OH : S, j : j + S * OW : S] = part
            else:
                dX[:, :, i : i + S * OH : S, j : j + S * OW : S] += part
        return dX.reshape(dX.shape[0], -1)

    def backward(self, grad_y, ctx, *, check=True):
        """Row ``dL/dy`` ``(1, C*P)`` -> ``dL/dy J`` ``(1, C*H*W)``, ``{}`` (``ctx`` holds the Jacobian)."""
        if check:
            grad_y = as_row(grad_y, "grad_y", self.n_out, self.dtype)
        return grad_y @ ctx, {}

    def jacobian_x(self, x):
        """The pooling Jacobian, a ``scipy.sparse`` csr array ``(C*OH*OW, C*H*W)``."""
        return self.forward(x, "test")[1]

    def forward(self, x, mode="train", *, check=True):
        """``x`` ``(C*H*W, 1)`` -> ``y = J x`` ``(C*OH*OW, 1)``; the context is ``J`` (sparse)."""
        if check:
            x = as_column(x, "x", self.n_in, self.dtype)
        J = self._jacobian_pool(x)
        return J @ x, J


class MaxPool2D(_Pool2D):
    """Max pooling. ``y[c, oh, ow] = max`` of the window ``x[c, oh*S:oh*S+PH, ow*S:ow*S+PW]``.

    Jacobian ``(C*OH*OW, C*H*W)``: one 1 per row, at the window's **first maximal element in C order**
    (row i first, then column j); at a tie the other maximal elements get 0 (a kink: the stated
    convention, tested at exact ties). Overlapping windows (``S < PH``) add their gradients.
    """

    def _jacobian_pool(self, x):
        """The selection matrix: row r has a 1 at ``windows[r, k*]``, ``k* = min{k : v_k = max_k v}``."""
        v = x[self._windows, 0]  # (C*P, K)
        K = v.shape[1]
        first = np.where(v == v.max(axis=1, keepdims=True), np.arange(K), K).min(axis=1)
        rows = v.shape[0]
        return sp.csr_array(
            (np.ones(rows, dtype=self.dtype), self._windows[np.arange(rows), first], np.arange(rows + 1)),
            shape=(rows, self.n_in),
        )

    def forward_batched(self, X, mode="train", *, out=None):
        """``X`` ``(N, C*H*W)`` -> ``(N, C*OH*OW)``; the context is the index ``k = i*PW + j`` of each window's
        first maximal element: the maximum over the window entries, then, from the last entry back to the
        first, ``arg = k`` wherever entry k equals it (so the first maximal entry in C order is written last)."""
        win = self._window_view(X)
        PH, PW = self.pool_size
        entries = [win[..., k // PW, k % PW] for k in range(PH * PW)]
        best = entries[0].copy()
        for v in entries[1:]:
            np.maximum(best, v, out=best)
        arg = np.full(best.shape, PH * PW - 1, dtype=np.intp)
        for k in range(PH * PW - 2, -1, -1):
            arg = np.where(entries[k] == best, k, arg)
        return best.reshape(X.shape[0], -1), arg

    def backward_batched(self, G, ctx, *, input_grad=True, per_sample=False, out=None):
        """``dX``: each ``G`` entry added at its window's first maximal element; no parameter gradients."""
        arg = ctx
        G4 = G.reshape(arg.shape)
        return self._add_to_windows(G4, arg), {}


class AvgPool2D(_Pool2D):
    """Average pooling: ``y[c, oh, ow] = mean`` of the window. Jacobian ``(C*OH*OW, C*H*W)``: ``PH*PW``
    entries ``1/(PH*PW)`` per row."""

    def _jacobian_pool(self, x):
        """The averaging matrix."""
        rows, K = self._windows.shape
        data = np.full(rows * K, 1.0 / K, dtype=self.dtype)
        return sp.csr_array((data, self._windows.reshape(-1), np.arange(0, rows * K + 1, K)), shape=(rows, self.n_in))

    def forward_batched(self, X, mode="train", *, out=None):
        """``X`` ``(N, C*H*W)`` -> window means ``(N, C*OH*OW)`` (summed over the entries, then divided); the
        context is N."""
        win = self._window_view(X)
        PH, PW = self.pool_size
        total = win[..., 0, 0].copy()
        for k in range(1, PH * PW):
            total += win[..., k // PW, k % PW]
        return (total / (PH * PW)).reshape(X.shape[0], -1), X.shape[0]

    def backward_batched(self, G, ctx, *, input_grad=True, per_sample=False, out=None):
        """``dX``: each ``G`` entry spread as ``G / (PH*PW)`` over its window; no parameter gradients."""
        share = (G / (self.pool_size[0] * self.pool_size[1])).reshape((ctx,) + tuple(self.output_shape))
        return self._add_to_windows(share), {}


# =========================================================================== spatial batch norm


class SpatialBatchNorm(_ImageLayer):
    """CS231n's spatial batch normalisation: batch norm of each channel over the ``N*H*W`` values of the batch.

    Built by composition on :class:`~jacobian_nn.normalization.BatchNorm` with ``C`` features: the batch
    ``(N, C, H, W)`` is rearranged as ``N*H*W`` "samples" of ``C`` features, ``Xt = X.transpose(0, 2, 3, 1)
    .reshape(N*H*W, C)``, and the BatchNorm formulas (both paths, and its explicit ``(N*H*W, N*H*W)``
    Jacobian per channel in training mode) apply to ``Xt``. Parameters ``gamma``, ``beta`` ``(C,)``; state
    ``running_mean``, ``running_var`` ``(C,)``. Training mode couples the samples; it needs ``N*H*W >= 2``.
    """

    def __init__(
        self,
        input_shape,
        *,
        eps: float = 1e-5,
        momentum: float = 0.9,
        gamma=None,
        beta=None,
        update_running: bool = True,
        dtype=np.float64,
    ):
        shape = check_image_shape(input_shape)
        self.bn = BatchNorm(
            shape[0], eps=eps, momentum=momentum, gamma=gamma, beta=beta, update_running=update_running, dtype=dtype
        )
        self.input_shape = self.output_shape = shape
        self.min_train_batch = 1 if shape[1] * shape[2] >= 2 else 2

    @property
    def dtype(self) -> np.dtype:
        return self.bn.dtype

    @property
    def params(self) -> dict:
        return self.bn.params

    @property
    def state(self) -> dict:
        return self.bn.state

    def astype(self, dtype) -> "SpatialBatchNorm":
        import copy

        new = copy.deepcopy(self)
        new.bn = self.bn.astype(dtype)
        return new

    def couples_samples(self, mode: str) -> bool:
        return self.bn.couples_samples(mode)

    def __repr__(self) -> str:
        return f"SpatialBatchNorm({self.input_shape}, eps={self.bn.eps}, momentum={self.bn.momentum})"

    # -- rearrangement (N, C*H*W) <-> (N*H*W, C) --------------------------------------------

    def _to_channels(self, X: np.ndarray) -> np.ndarray:
        C, H, W = self.input_shape
        return X.reshape(-1, C, H * W).transpose(0, 2, 1).reshape(-1, C)

    def _from_channels(self, Xt: np.ndarray) -> np.ndarray:
        C, H, W = self.input_shape
        return np.ascontiguousarray(Xt.reshape(-1, H * W, C).transpose(0, 2, 1)).reshape(-1, C * H * W)

    # -- reference path ------------------------------------------------------------------

    def forward(self, x, mode="test", *, check=True):
        """Test mode, one image ``x`` ``(C*H*W, 1)``: BatchNorm's test formula on each pixel's ``C`` values."""
        if check_mode(mode) == "train":
            raise ValueError(
                "mode: spatial batch norm in training mode couples the samples of a batch; "
                "use forward_samples(xs, 'train') (or mode='test' for one image)"
            )
        if check:
            x = as_column(x, "x", self.n_in, self.dtype)
        ys, ctx = self.bn.forward_samples(columns(self._to_channels(x.T)), "test")
        return self._from_channels(np.hstack(ys).T).T, ctx

    def backward(self, grad_y, ctx, *, check=True):
        """Test mode, one image: the row through BatchNorm's per-pixel Jacobians, gradients summed over pixels."""
        if check:
            grad_y = as_row(grad_y, "grad_y", self.n_out, self.dtype)
        rows, grads = self.bn.backward_samples(rows_of(self._to_channels(grad_y)), ctx)
        return self._from_channels(np.vstack(rows)), grads

    def jacobian_x(self, x):
        """Test mode: ``diag(gamma / sqrt(running_var + eps)) kron I_{H*W}``, sparse ``(C*H*W, C*H*W)``."""
        x = as_column(x, "x", self.n_in, self.dtype)
        C, H, W = self.input_shape
        Jc = self.bn.jacobian_x(np.zeros((C, 1), dtype=self.dtype))
        return sp.kron(sp.csr_array(Jc), sp.eye_array(H * W, dtype=self.dtype), format="csr")

    def forward_samples(self, xs, mode="train"):
        """N image columns -> N columns; training mode normalises every channel over the ``N*H*W`` values
        (BatchNorm's ``forward_samples`` on the rearranged batch, which updates the running statistics)."""
        xs = list(xs)
        if not xs:
            raise ValueError("xs: expected a non-empty list of columns, got an empty list")
        X = np.hstack([as_column(x, f"xs[{k}]", self.n_in, self.dtype) for k, x in enumerate(xs)]).T
        ys, ctx = self.bn.forward_samples(columns(self._to_channels(X)), mode)
        return columns(self._from_channels(np.hstack(ys).T)), (len(xs), ctx)

    def backward_samples(self, grad_ys, ctx):
        """The batch's rows through BatchNorm's explicit Jacobian over the ``N*H*W`` values of each channel."""
        N, bn_ctx = ctx
        grad_ys = list(grad_ys)
        if len(grad_ys) != N:
            raise ValueError(f"grad_ys: expected {N} rows (one per image of the forward batch), got {len(grad_ys)}")
        G = np.vstack([as_row(g, f"grad_ys[{k}]", self.n_out, self.dtype) for k, g in enumerate(grad_ys)])
        rows, grads = self.bn.backward_samples(rows_of(self._to_channels(G)), bn_ctx)
        return rows_of(self._from_channels(np.vstack(rows))), grads

    # -- batched path --------------------------------------------------------------------

    def forward_batched(self, X, mode="train", *, out=None):
        """``X`` ``(N, C*H*W)`` -> BatchNorm's batched forward on ``(N*H*W, C)``, rearranged back."""
        X4 = self._images(X)
        Y, ctx = self.bn.forward_batched(self._to_channels(X4.reshape(X4.shape[0], -1)), mode)
        return self._from_channels(Y), ctx

    def backward_batched(self, G, ctx, *, input_grad=True, per_sample=False, out=None):
        """BatchNorm's batched VJP on ``(N*H*W, C)``, rearranged back to ``(N, C*H*W)``."""
        if per_sample:
            raise TypeError("SpatialBatchNorm has no per-sample gradients (per_sample_gradients is False)")
        dXt, grads = self.bn.backward_batched(self._to_channels(G), ctx)
        return self._from_channels(dXt), grads


# =========================================================================== a small CNN


def build_cnn(
    input_shape,
    n_classes: int,
    *,
    filters=(16, 32),
    kernel_size: int = 3,
    pool_size: int = 2,
    hidden=(),
    activation="relu",
    loss="softmax_cross_entropy",
    init: str = "he",
    seed=None,
    dtype=np.float64,
    **kwargs,
):
    """A :class:`~jacobian_nn.network.Network`
    ``{conv(kernel_size, pad (kernel_size - 1) // 2, stride 1, activation) - max-pool(pool_size)} x len(filters)
    - {affine - activation} x len(hidden) - affine - loss``; ``kwargs`` go to ``Network`` (``l2``, ...).
    Weights from one Generator made from ``seed``, layer by layer. Every pooling must divide its input
    (8x8 digits: two 2x2 poolings, 8 -> 4 -> 2)."""
    from .layers import Dense
    from .network import Network

    shape = check_image_shape(input_shape)
    kernel_size = check_positive_int(kernel_size, "kernel_size")
    if kernel_size % 2 == 0:
        raise ValueError(f"kernel_size: expected an odd size (padding (k - 1) / 2 keeps H and W), got {kernel_size}")
    rng = as_generator(seed)
    layers: list = []
    for F in filters:
        conv = Conv2D(
            shape, F, kernel_size, pad=(kernel_size - 1) // 2, activation=activation, init=init, seed=rng, dtype=dtype
        )
        pool = MaxPool2D(conv.output_shape, pool_size, dtype=dtype)
        layers += [conv, pool]
        shape = pool.output_shape
    width = int(np.prod(shape))
    for h in hidden:
        layers.append(Dense(width, h, activation, init=init, seed=rng, dtype=dtype))
        width = h
    layers.append(Dense(width, n_classes, "identity", init=init, seed=rng, dtype=dtype))
    return Network(layers, loss, **kwargs)
