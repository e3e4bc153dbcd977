"""Losses: value and gradient, reference (one sample) and batched, side by side.

Reference path (seed 000)
    ``forward(y_hat, y)``   y_hat ``(m, 1)``, label y -> float
    ``gradient(y_hat, y)``  -> row ``dL/dy_hat`` of shape ``(1, m)``
    ``loss(y_hat, y, *, check=True)``   -> ``(forward, gradient)`` in one call
    ``sample_labels(Y, N, m)``          -> the N labels checked once, as the reference
                                           driver passes them to ``loss(..., check=False)``

Batched path (batch convention: the loss of a batch is the **mean** of the
per-sample losses)
    ``forward_batched(Y_hat, Y)``   ``(N, m)`` -> float, ``(1/N) sum_k L_k``
    ``gradient_batched(Y_hat, Y)``  -> ``(N, m)``, row k = ``(1/N) dL_k/dy_hat_k``,
                                  the gradient of that mean
    ``per_sample_losses_batched(Y_hat, Y)`` -> ``(N,)``, the per-sample losses ``L_k``

Labels are accepted as a one-hot column ``(m, 1)`` (any float column for
MeanSquaredError; a probability column for the cross-entropies) or as an integer
class index. Batched labels are ``(N, m)`` or an integer vector ``(N,)``.

The batched gradients are written independently of the reference ones; a test
builds the call graph of every ``*_batched`` method and fails if it reaches ``gradient``.
Proofs (``proofs/proof_losses.py``, ``proof_softmax.py``): ``proofs:loss.cross_entropy``,
``proofs:loss.mse002``, ``proofs:loss.batch_mean`` (batch mean), ``proofs:loss.log0_000`` (why a
zero probability is refused), ``proofs:softmax.ce_combined`` (fused gradient ``s - y``),
``proofs:softmax.loss_code_batch`` (batched fused gradient); the library's own statements, which no
seed makes: ``proofs:loss.svm``, ``proofs:loss.bce``, ``proofs:loss.sigmoid_bce``.
"""

from __future__ import annotations

import numpy as np

from ._validation import (
    as_batch,
    as_column,
    as_float_array,
    columns,
    eps_of,
    float_dtype_of,
    is_integer,
    is_real,
    lend,
)

#: Probabilities must sum to 1 within ``PROB_SUM_ULPS * m * eps(dtype)``.
PROB_SUM_ULPS = 64


def _is_integer_label(y) -> bool:
    return is_integer(y) or (isinstance(y, np.ndarray) and y.ndim == 0 and y.dtype.kind in "iu")


def label_column(y, m: int, name: str = "y", dtype=np.float64) -> np.ndarray:
    """A label as a column ``(m, 1)``: an integer index becomes one-hot."""
    if _is_integer_label(y):
        k = int(y)
        if not 0 <= k < m:
            raise ValueError(f"{name}: expected a class index in [0, {m}), got {k}")
        col = np.zeros((m, 1), dtype=dtype)
        col[k, 0] = 1.0
        return col
    col = as_float_array(y, name, dtype)
    if col.shape != (m, 1):
        raise ValueError(
            f"{name}: expected a label column of shape ({m}, 1) matching the output, "
            f"or an integer class index, got shape {col.shape}"
        )
    return col


def label_indices(Y, N: int, m: int, name: str = "Y"):
    """Integer class indices ``(N,)`` checked as :func:`label_matrix` checks them (same
    errors), returned as an integer array; None when ``Y`` is not a 1-D integer array."""
    arr = np.asarray(Y)
    if arr.ndim != 1 or arr.dtype.kind not in "iu":
        return None
    if arr.shape[0] != N:
        raise ValueError(f"{name}: expected {N} labels (one per sample), got shape {arr.shape}")
    if arr.size and (arr.min() < 0 or arr.max() >= m):
        raise ValueError(f"{name}: expected class indices in [0, {m}), got range [{arr.min()}, {arr.max()}]")
    return arr


def label_matrix(Y, N: int, m: int, name: str = "Y", dtype=np.float64) -> np.ndarray:
    """Batched labels as ``(N, m)``: an integer vector ``(N,)`` becomes one-hot rows."""
    arr = np.asarray(Y)
    if arr.ndim == 1:
        if arr.dtype.kind not in "iu":
            raise TypeError(f"{name}: a 1-D label array must hold integer class indices, got dtype {arr.dtype}")
        if arr.shape[0] != N:
            raise ValueError(f"{name}: expected {N} labels (one per sample), got shape {arr.shape}")
        if arr.size and (arr.min() < 0 or arr.max() >= m):
            raise ValueError(f"{name}: expected class indices in [0, {m}), got range [{arr.min()}, {arr.max()}]")
        out = np.zeros((N, m), dtype=dtype)
        out[np.arange(N), arr] = 1.0
        return out
    out = as_float_array(arr, name, dtype)
    if out.shape != (N, m):
        raise ValueError(
            f"{name}: expected labels of shape ({N}, {m}) matching the output, or integer "
            f"indices of shape ({N},), got shape {out.shape}"
        )
    return out


def output_batch(Y_hat, name: str = "Y_hat") -> np.ndarray:
    """A batched network output ``(N, m)``; float32 stays float32, integers become float64."""
    arr = np.asarray(Y_hat)
    return as_batch(arr, name, dtype=float_dtype_of(arr))


def _check_probabilities(P: np.ndarray, name: str, check_sum: bool = True) -> None:
    """Entries in [0, 1] and every column (for ``(m, 1)``) or row summing to 1 within rounding."""
    lo, hi = P.min(), P.max()
    if lo < 0 or hi > 1:
        raise ValueError(f"{name}: expected probabilities in [0, 1], got values in [{float(lo)!r}, {float(hi)!r}]")
    if not check_sum:
        return
    axis = 0 if P.ndim == 2 and P.shape[1] == 1 else -1
    sums = P.sum(axis=axis)
    m = P.shape[axis]
    tol = PROB_SUM_ULPS * m * eps_of(P.dtype)
    worst = np.max(np.abs(sums - 1.0))
    if worst > tol:
        raise ValueError(
            f"{name}: expected probabilities summing to 1 (tolerance {tol:.1e}), got a sum off by {worst:.3e}"
        )


class Loss:
    """Base class; see the module docstring for the interface."""

    name: str = ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and vars(self) == vars(other)

    def __hash__(self) -> int:
        return hash((type(self), tuple(sorted(vars(self).items()))))

    def __call__(self, y_hat, y, *, check=True):
        """``(loss, row gradient)`` for one sample. (``check`` is for losses whose labels
        :meth:`sample_labels` can check once; this default always checks.)"""
        return self.forward(y_hat, y), self.gradient(y_hat, y)

    #: labels must be probability rows (the cross-entropies), not any real rows (mean squared error)
    labels_are_probabilities: bool = False
    #: one yes/no label per output (the binary losses), not one class per sample
    binary_labels: bool = False

    def check_labels(self, Y, N: int, m: int, dtype=np.float64) -> None:
        """Refuse labels that this loss would refuse, before anything runs: the batched driver
        calls it ahead of the forward, which may update running statistics or draw dropout
        masks. Integer class indices ``(N,)`` need only their range checked."""
        if label_indices(Y, N, m) is None:
            Ym = label_matrix(Y, N, m, dtype=dtype)
            if self.labels_are_probabilities:
                _check_probabilities(Ym, "Y")

    def label_row(self, y, m: int) -> np.ndarray:
        """One sample's label as a batch of one, ``(1, m)``, checked under the name ``y`` (the
        default: a class index becomes a one-hot row; a column ``(m, 1)`` is transposed)."""
        return label_column(y, m).T

    # The contract every subclass implements (see the module docstring); declared here so
    # that code holding a ``Loss`` type-checks.

    def forward(self, y_hat: np.ndarray, y) -> float:
        """Reference path: one sample's loss, ``y_hat`` ``(m, 1)``."""
        raise NotImplementedError

    def gradient(self, y_hat: np.ndarray, y) -> np.ndarray:
        """Reference path: the row ``dL/dy_hat`` of shape ``(1, m)``."""
        raise NotImplementedError

    def forward_batched(self, Y_hat: np.ndarray, Y) -> float:
        """Batched path: ``(N, m)`` -> ``(1/N) sum_k L_k``."""
        raise NotImplementedError

    def per_sample_losses_batched(self, Y_hat: np.ndarray, Y) -> np.ndarray:
        """Batched path: ``(N, m)`` -> the per-sample losses ``L_k``, ``(N,)``."""
        raise NotImplementedError

    def gradient_batched(self, Y_hat: np.ndarray, Y) -> np.ndarray:
        """Batched path: ``(N, m)`` -> ``(N, m)``, row k = ``(1/N) dL_k/dy_hat_k``."""
        raise NotImplementedError

    def sample_labels(self, Y, N: int, m: int) -> list:
        """The labels of a batch of N samples, checked once, one per sample as ``__call__``
        takes them: columns ``(m, 1)`` (the default)."""
        return columns(label_matrix(Y, N, m))

    def labels_batched(self, Y, N: int, m: int, dtype=np.float64) -> np.ndarray:
        """The labels of a batch as ``(N, m)`` (the default: one-hot rows from integer indices,
        :func:`label_matrix`); what the batched driver hands to ``per_sample_losses_batched``."""
        return label_matrix(Y, N, m, dtype=dtype)

    def forward_and_gradient_batched(self, Y_hat, Y, *, out=None):
        """``(forward_batched(Y_hat, Y), gradient_batched(Y_hat, Y))`` in one call (``out``, the
        batched driver's lender, unused here)."""
        return self.forward_batched(Y_hat, Y), self.gradient_batched(Y_hat, Y)

    # -- decisions: what a network trained with this loss predicts, for accuracy ---------------

    def predict_labels(self, Y_hat) -> np.ndarray:
        """The decisions of a network whose outputs ``Y_hat`` ``(N, m)`` this loss scores: here (one
        class per sample) the class of the largest output, ``argmax`` per row, ``(N,)``; a tie goes
        to the first maximal output (numpy's ``argmax``)."""
        return output_batch(Y_hat).argmax(axis=1)

    def target_labels(self, Y, N: int, m: int) -> np.ndarray:
        """The labels ``Y`` as :meth:`predict_labels` states decisions: here the class ``(N,)``, from
        integer indices, or the argmax of one-hot (or probability) rows ``(N, m)``."""
        idx = label_indices(Y, N, m)
        return idx if idx is not None else label_matrix(Y, N, m).argmax(axis=1)

    def count_correct(self, Y_hat, Y) -> tuple[int, int]:
        """``(correct, decisions)``: how many of :meth:`predict_labels` equal :meth:`target_labels`, and
        how many decisions there are (N here; N * m for the binary losses, one per output)."""
        D = self.predict_labels(Y_hat)
        T = self.target_labels(Y, *output_batch(Y_hat).shape)
        return int(np.count_nonzero(D == T)), int(D.size)

    def decision_accuracy(self, Y_hat, Y) -> float:
        """The fraction of correct decisions, ``correct / decisions`` of :meth:`count_correct`."""
        correct, total = self.count_correct(Y_hat, Y)
        return correct / total


# --------------------------------------------------------------------------- cross-entropy


class CrossEntropy(Loss):
    """Cross-entropy on probabilities: ``L = -sum_i y_i log y_hat_i``.

    Gradient (row, ``(1, m)``): ``dL/dy_hat = -(y / y_hat)^T``, with the entry set
    to 0 where ``y_i = 0`` (the term ``-y_i log y_hat_i`` is identically 0 there).

    ``y_hat`` must be a probability vector: entries in [0, 1] summing to 1
    within ``PROB_SUM_ULPS * m * eps``. A zero probability under a positive
    label makes the loss infinite; it is refused with a ``ValueError`` instead of
    returning inf or silently clipping. Terms with ``y_i = 0`` contribute 0
    (``0 log 0 = 0``).

    The formula and its gradient are defined on the whole open orthant
    ``y_hat > 0``, not only on the simplex; ``check_sum=False`` keeps the other
    checks but drops the sum-to-1 check, so that a finite-difference witness
    can perturb one entry at a time.
    """

    name = "cross_entropy"
    labels_are_probabilities = True

    def __init__(self, check_sum: bool = True):
        self.check_sum = bool(check_sum)

    def _validated(self, y_hat, y):
        y_hat = as_column(y_hat, "y_hat")
        y = label_column(y, y_hat.shape[0])
        self._check_probabilities_and_labels(y_hat, y, "y_hat", "y", batch=False)
        return y_hat, y

    def forward(self, y_hat, y):
        y_hat, y = self._validated(y_hat, y)
        pos = y > 0
        return float(-np.sum(y[pos] * np.log(y_hat[pos])))

    def gradient(self, y_hat, y):
        y_hat, y = self._validated(y_hat, y)
        g = np.zeros_like(y_hat)
        pos = y > 0
        g[pos] = -y[pos] / y_hat[pos]
        return g.T

    def _validated_batch(self, P, Y):
        P = output_batch(P)
        Y = label_matrix(Y, P.shape[0], P.shape[1], dtype=P.dtype)
        self._check_probabilities_and_labels(P, Y, "Y_hat", "Y", batch=True)
        return P, Y

    def _check_probabilities_and_labels(self, P, Y, p_name: str, y_name: str, *, batch: bool) -> None:
        """The checks of both layouts (a column ``(m, 1)``, a batch ``(N, m)``): ``P`` and ``Y`` are
        probabilities (``P`` summing to 1 unless ``check_sum`` is off), and no probability is 0
        under a positive label; the first such entry is named as an index, or a sample and class."""
        _check_probabilities(P, p_name, self.check_sum)
        _check_probabilities(Y, y_name)
        bad = (Y > 0) & (P == 0)
        if bad.any():
            r, c = (int(v) for v in np.argwhere(bad)[0])
            at = f"sample {r}, class {c}" if batch else f"index {r}"
            raise ValueError(
                f"{p_name}: probability 0 at {at} where the label {y_name} is {float(Y[r, c])!r} > 0; "
                "the cross-entropy is infinite there"
            )

    def forward_batched(self, P, Y):
        P, Y = self._validated_batch(P, Y)
        pos = Y > 0
        return float(-np.sum(Y[pos] * np.log(P[pos])) / P.shape[0])

    def per_sample_losses_batched(self, P, Y):
        """Per-sample losses ``(N,)``: ``L_k = -sum_i Y[k, i] log P[k, i]`` over ``Y > 0``."""
        P, Y = self._validated_batch(P, Y)
        terms = np.zeros_like(P)
        pos = Y > 0
        terms[pos] = Y[pos] * np.log(P[pos])
        return -terms.sum(axis=1)

    def gradient_batched(self, P, Y):
        P, Y = self._validated_batch(P, Y)
        out = np.zeros_like(P)
        pos = Y > 0
        out[pos] = -Y[pos] / (P[pos] * P.shape[0])
        return out


# --------------------------------------------------------------------------- mean squared error


class MeanSquaredError(Loss):
    """Seed 002's convention: ``L = 1/2 sum_i (y_hat_i - y_i)^2`` (a sum over the
    m outputs, halved; not a mean over them).

    Gradient (row, ``(1, m)``): ``dL/dy_hat = (y_hat - y)^T``.
    """

    name = "mse"

    def forward(self, y_hat, y):
        y_hat = as_column(y_hat, "y_hat")
        d = y_hat - label_column(y, y_hat.shape[0])
        return float(0.5 * np.sum(d * d))

    def gradient(self, y_hat, y):
        y_hat = as_column(y_hat, "y_hat")
        return (y_hat - label_column(y, y_hat.shape[0])).T

    def forward_batched(self, Y_hat, Y):
        """``(1/N) sum_{k, i} (Y_hat[k, i] - Y[k, i])^2 / 2``, each square halved before the sum (exact:
        a product by 1/2), so that the sum overflows only where the reference's sum of the per-sample
        losses does (halving the sum instead refused batches whose loss is up to twice the largest
        float, ~1.8e308, where the reference returns it)."""
        Y_hat = output_batch(Y_hat)
        Y = label_matrix(Y, *Y_hat.shape, dtype=Y_hat.dtype)
        D = Y_hat - Y
        D *= D
        D *= 0.5
        return float(np.sum(D) / Y_hat.shape[0])

    def per_sample_losses_batched(self, Y_hat, Y):
        """Per-sample losses ``(N,)``: ``L_k = 1/2 sum_i (Y_hat[k, i] - Y[k, i])^2``."""
        Y_hat = output_batch(Y_hat)
        D = Y_hat - label_matrix(Y, *Y_hat.shape, dtype=Y_hat.dtype)
        return 0.5 * np.sum(D * D, axis=1)

    def gradient_batched(self, Y_hat, Y):
        Y_hat = output_batch(Y_hat)
        Y = label_matrix(Y, *Y_hat.shape, dtype=Y_hat.dtype)
        return (Y_hat - Y) / Y_hat.shape[0]


# --------------------------------------------------------------------------- softmax + cross-entropy


def _softmax_rows(Z, Y, out=None):
    """Checked logits ``Z`` ``(N, m)`` and labels, and the pieces of the row-wise softmax that
    keep the loss and the label's gradient entry to full relative precision::

        shifted  (N, m)   Z - max_j Z[k, j]                   (<= 0, exactly 0 at every maximum)
        at_h     (N,)     shifted[k, h_k]
        top      (N,)     k*: h_k where shifted[k, h_k] = 0 (the label's logit is maximal),
                          else the first maximal entry of row k
        E        (N, m)   exp(shifted), with E[k, top_k] = 0 (the one exact 1 left out)
        T        (N,)     sum_j E[k, j] = sum_{j != k*} exp(Z[k, j] - max_j Z[k, j])

    so that ``sum_j exp(shifted[k, j]) = 1 + T_k`` and ``log sum_j exp(shifted[k, j]) =
    log1p(T_k)``. ``h_k`` is the integer class index, or for a label matrix the class whose label
    is exactly 1 (-1 for a row without one; ``at_h`` is then meaningless). Returns
    ``(shifted, at_h, E, T, top, idx, Y, h)``: ``idx`` holds the integer class indices ``(N,)``
    (then ``Y`` is not used) or is None (``Y`` is the checked ``(N, m)`` label matrix). Nothing
    overflows: every exponent is <= 0. ``out`` lends ``shifted`` and ``E``."""
    Z = output_batch(Z, "Z")
    N, m = Z.shape
    rows = np.arange(N)
    idx = label_indices(Y, N, m)
    if idx is None:
        Y = label_matrix(Y, N, m, dtype=Z.dtype)
        _check_probabilities(Y, "Y")
        h = Y.argmax(axis=1)  # a label of exactly 1 is its row's largest entry (and its only 1)
        h = np.where(Y[rows, h] == 1, h, -1)
    else:
        h = idx
    top = Z.argmax(axis=1)
    shifted = np.subtract(Z, Z[rows, top][:, None], out=lend(out, "shifted", Z.shape, Z.dtype))
    at_h = shifted[rows, h]
    top = np.where(at_h == 0 if idx is not None else (h >= 0) & (at_h == 0), h, top)
    E = np.exp(shifted, out=lend(out, "E", Z.shape, Z.dtype))
    E[rows, top] = 0
    return shifted, at_h, E, E.sum(axis=1), top, idx, Y, h


def _cross_entropy_rows(shifted, at_h, T, idx, Y) -> np.ndarray:
    """``L_k = sum_i Y[k, i] (log1p(T_k) - shifted[k, i])`` ``(N,)``: each term is the label weight
    times ``lse_k - Z[k, i] = (max_j Z[k, j] - Z[k, i]) + log1p(T_k)``, a sum of two terms >= 0;
    with class indices, the one term ``log1p(T_k) - shifted[k, y_k]`` (``at_h``)."""
    lse = np.log1p(T)
    if idx is not None:
        return lse - at_h
    return np.sum(Y * (lse[:, None] - shifted), axis=1)


class SoftmaxCrossEntropy(Loss):
    """Fused softmax + cross-entropy on **logits** ``z`` ``(m, 1)``.

    ``L = -sum_i y_i log softmax(z)_i = sum_i y_i (lse(z) - z_i)`` with
    ``lse(z) = log sum_j exp(z_j)``. With ``M = max_j z_j`` and ``k*`` an argmax of ``z`` (the
    label's class when its logit is maximal, else the first maximal entry),
    ``sum_j exp(z_j - M) = 1 + T`` with ``T = sum_{j != k*} exp(z_j - M)``, so::

        lse(z) - z_i = (M - z_i) + log1p(T)          both terms >= 0: no cancellation
        L            = sum_i y_i ((M - z_i) + log1p(T))

    Every exponent is <= 0 (nothing overflows), ``log1p(T)`` keeps ``T``'s relative precision
    however small ``T`` is, ``M - z_i`` is rounded once, and the sum has only terms >= 0
    (``y_i >= 0``), so ``L`` keeps its relative precision for every label, one-hot or soft (within
    a few eps, when the differences ``z_j - M`` are exact; their rounding otherwise is the input's
    own, ``eps |z_j - M|`` relative in ``exp``): at ``z = [0, -20]``, class 0,
    ``L = log1p(e^-20)`` to the last bit, not ``log(1 + e^-20)`` rounded before the log.
    A single class (m = 1) has ``T = 0`` and ``L = 0`` exactly.

    Gradient (row, ``(1, m)``): ``dL/dz = (softmax(z) - y)^T``, valid for any label column that
    sums to 1, with ``softmax(z)_j = exp(z_j - M) / (1 + T)``. Where the label is exactly 1 (a
    one-hot label, an integer class index), the entry ``s_i - 1`` is evaluated as
    ``-sum_{j != i} s_j``: ``-T / (1 + T)`` when ``i = k*`` (it keeps its relative precision as
    ``s_i`` nears 1), else ``s_i - 1`` as it is (``s_i <= 1/2`` then, no cancellation). For a
    soft label (entries strictly between 0 and 1) ``s_i - y_i`` stays: ``y_i`` is data, not a
    function of the other entries, so no identity removes the difference; its absolute error is
    that of ``s_i``, a few eps times ``s_i``, large relative to the entry only where ``s_i`` and
    ``y_i`` nearly agree (label smoothing at a confident prediction). (Seed 000 prints this gradient as
    ``(y - y_hat)^T``; the sign there is an erratum, its own code uses ``y_hat - y``.)

    A network using this loss ends in an Identity activation: its output is the
    logits.
    """

    name = "softmax_cross_entropy"
    labels_are_probabilities = True

    def forward(self, z, y):
        """``L`` (a float); :meth:`__call__`'s value."""
        return self(z, y)[0]

    def gradient(self, z, y):
        """Row ``dL/dz = (softmax(z) - y)^T`` ``(1, m)``; :meth:`__call__`'s gradient."""
        return self(z, y)[1]

    def __call__(self, z, y, *, check=True):
        """``(L, dL/dz)`` for logits ``z`` ``(m, 1)`` (class docstring): ``k*`` an argmax of ``z``
        (``y``'s class ``h`` when ``z_h`` is maximal), ``shifted = z - z_{k*}`` ``(m, 1)``,
        ``e = exp(shifted)``, ``T = sum_{j != k*} e_j``, ``s = e / (1 + T)``::

            L     = sum_i y_i (log1p(T) - shifted_i)
            dL/dz = (s - y)^T  (1, m),  the entry at h (label exactly 1, h = k*) = -T / (1 + T)

        ``y`` is a label column ``(m, 1)`` summing to 1 or a class index h (one-hot: the sum is
        its one term ``log1p(T) - shifted_h`` and ``s - y`` differs from ``s`` at h only).
        ``check=False``: ``z`` and ``y`` come from the reference driver, already checked (``z`` a
        finite float64 column, ``y`` from :meth:`sample_labels`)."""
        if check:
            z = as_column(z, "z")
            if not _is_integer_label(y):
                y = label_column(y, z.shape[0])
                _check_probabilities(y, "y")
            else:
                label_column(y, z.shape[0])  # the range check
                y = int(y)
        if isinstance(y, int):
            h = y
        else:
            ones = np.flatnonzero(y[:, 0] == 1)
            h = int(ones[0]) if ones.size else -1
        k = int(np.argmax(z[:, 0]))
        if h >= 0 and z[h, 0] == z[k, 0]:
            k = h
        shifted = z - z[k, 0]
        e = np.exp(shifted)
        e[k, 0] = 0.0
        T = e.sum()
        lse = np.log1p(T)
        e /= 1.0 + T
        e[k, 0] = 1.0 / (1.0 + T)
        if isinstance(y, int):
            value = lse - shifted[y, 0]
            row = e  # s; the label's 1 is subtracted below
        else:
            value = (y * (lse - shifted)).sum()
            row = e - y  # s_h - 1 at h already: replaced below when h = k*
        if h == k:  # s_h - 1 = -sum_{j != h} s_j = -T / (1 + T); (0 - T) is +0, not -0, for T = 0 (m = 1)
            row[h, 0] = (0.0 - T) / (1.0 + T)
        elif isinstance(y, int):
            row[h, 0] -= 1.0  # s_h <= 1/2 here: no cancellation
        return float(value), row.T

    def sample_labels(self, Y, N: int, m: int) -> list:
        """Integer class indices stay integers (the one-hot form of :meth:`__call__`); other labels
        become columns ``(m, 1)``, checked to be probability rows once for the whole batch."""
        idx = label_indices(Y, N, m)
        if idx is not None:
            return idx.tolist()
        Ym = label_matrix(Y, N, m)
        _check_probabilities(Ym, "Y")
        return columns(Ym)

    def forward_batched(self, Z, Y):
        """``(1/N) sum_k L_k``; :meth:`forward_and_gradient_batched`'s value."""
        return self.forward_and_gradient_batched(Z, Y)[0]

    def gradient_batched(self, Z, Y):
        """``(S - Y) / N`` ``(N, m)`` (the label's entry as ``-T / (1 + T)`` where it is exactly 1 and
        maximal); :meth:`forward_and_gradient_batched`'s gradient."""
        return self.forward_and_gradient_batched(Z, Y)[1]

    def per_sample_losses_batched(self, Z, Y):
        """Per-sample losses ``(N,)``: ``L_k = sum_i Y[k, i] ((M_k - Z[k, i]) + log1p(T_k))``, with
        ``M_k = max_j Z[k, j]`` and ``T_k = sum_{j != k*} exp(Z[k, j] - M_k)`` (class docstring);
        :meth:`forward_and_gradient_batched`'s ``L`` before the mean."""
        shifted, at_h, _, T, _, idx, Y, _ = _softmax_rows(Z, Y)
        return _cross_entropy_rows(shifted, at_h, T, idx, Y)

    def forward_and_gradient_batched(self, Z, Y, *, out=None):
        """The batch loss and its gradient from logits ``Z`` ``(N, m)`` (class docstring). With, per
        row k, ``top_k`` = k* (the label's class ``h_k`` when its logit is maximal, else the first
        maximal entry), ``shifted = Z - max_j Z[k, j]`` ``(N, m)``, ``E = exp(shifted)`` with
        ``E[k, top_k] = 0``, ``T_k = sum_j E[k, j]`` ``(N,)``::

            L = (1/N) sum_k sum_i Y[k, i] (log1p(T_k) - shifted[k, i])
            S = E / (1 + T),  S[k, top_k] = 1 / (1 + T_k)          (N, m), the softmax
            G = (S - Y) / N,  G[k, h_k] = -T_k / (1 + T_k) / N where h_k = top_k

        i.e. the mean of :meth:`per_sample_losses_batched` (one formula, ``_cross_entropy_rows``).
        ``h_k`` is the class index, or the class whose label is exactly 1 in a label matrix.
        Integer class indices ``Y`` ``(N,)`` skip the one-hot matrix (one-hot rows are
        probabilities by construction): ``L_k = log1p(T_k) - shifted[k, y_k]``, and 1 is
        subtracted from ``S`` at ``(k, y_k)`` before the division by N: the same values without
        the zero products. ``out`` (the batched driver's lender) lends ``shifted`` and ``G``.
        """
        shifted, at_h, E, T, top, idx, Y, h = _softmax_rows(Z, Y, out)
        N = E.shape[0]
        rows = np.arange(N)
        loss = float(_cross_entropy_rows(shifted, at_h, T, idx, Y).sum() / N)
        total = 1 + T  # sum_j exp(shifted[k, j]) (N,)
        E /= total[:, None]
        E[rows, top] = 1 / total
        # s_h - 1 = -sum_{j != h} s_j = -T / (1 + T) where h = k* ((0 - T) is +0, not -0, for T = 0:
        # m = 1); s_h - 1 as it is elsewhere (s_h <= 1/2 there)
        if idx is not None:
            E[rows, idx] = np.where(idx == top, (0 - T) / total, E[rows, idx] - 1)
        else:
            E -= Y
            at_top = np.flatnonzero(h == top)
            E[at_top, top[at_top]] = (0 - T[at_top]) / total[at_top]
        E /= N
        return loss, E


# --------------------------------------------------------------------------- multiclass SVM (hinge)


def _one_hot_index(col: np.ndarray, name: str) -> int:
    """The class of a one-hot label column ``(m, 1)`` (exactly one 1, zeros elsewhere), else raise."""
    ones = np.flatnonzero(col[:, 0] == 1.0)
    if ones.size != 1 or np.count_nonzero(col) != 1:
        raise ValueError(
            f"{name}: the SVM loss needs one correct class: an integer index or a one-hot "
            f"column, got a column with values {col[:, 0].tolist()!r}"
        )
    return int(ones[0])


class MulticlassSVM(Loss):
    """CS231n's multiclass SVM (hinge) loss on scores ``s`` ``(m, 1)`` with margin ``delta`` (default 1).

    For the correct class ``y``::

        margin_j = s_j - s_y + delta  (j != y)          L = sum_{j != y} max(0, margin_j)
        dL/ds_j  = 1[margin_j > 0]    (j != y)          dL/ds_y = -sum_{j != y} 1[margin_j > 0]

    Gradient: a row ``(1, m)``. **Kink**: a margin of exactly 0 contributes nothing to the
    gradient (``1[0 > 0] = 0``, CS231n's ``margins > 0``; the hinge ``max(0, t)`` takes its
    ``t <= 0`` branch at 0, as relu'(0) = 0 does): the one-sided derivative along ``s_j``
    from below, and along ``s_y`` from above. Proof: ``proofs:loss.svm``.

    Labels: an integer class index, or a one-hot column ``(m, 1)``; batched, integer indices
    ``(N,)`` or one-hot rows ``(N, m)``. The batch loss is the mean of the per-sample losses
    (CS231n's ``svm_loss`` divides by N the same way).
    """

    name = "svm"

    def __init__(self, delta: float = 1.0):
        if not is_real(delta) or not np.isfinite(delta) or delta <= 0:
            raise ValueError(f"delta: expected a finite margin > 0, got {delta!r}")
        self.delta = float(delta)

    def __repr__(self) -> str:
        return f"MulticlassSVM(delta={self.delta})"

    def _index(self, y, m: int) -> int:
        if _is_integer_label(y):
            label_column(y, m)  # the range check
            return int(y)
        return _one_hot_index(label_column(y, m), "y")

    def forward(self, s, y):
        """``L`` (a float); :meth:`__call__`'s value."""
        return self(s, y)[0]

    def gradient(self, s, y):
        """Row ``dL/ds`` ``(1, m)``; :meth:`__call__`'s gradient."""
        return self(s, y)[1]

    def __call__(self, s, y, *, check=True):
        """``(L, dL/ds)`` for scores ``s`` ``(m, 1)`` and the correct class ``y`` (formulas in the class
        docstring). ``check=False``: ``s`` and ``y`` come from the reference driver (``y`` an int)."""
        if check:
            s = as_column(s, "s")
            y = self._index(y, s.shape[0])
        margins = s - s[y, 0] + self.delta
        margins[y, 0] = 0.0
        positive = margins > 0
        row = positive.astype(s.dtype)
        row[y, 0] = -float(np.count_nonzero(positive))
        return float(np.sum(margins[positive])), row.T

    def check_labels(self, Y, N: int, m: int, dtype=np.float64) -> None:
        """One correct class per sample: integer indices ``(N,)`` or one-hot rows ``(N, m)``."""
        self._indices_batched(Y, N, m)

    def sample_labels(self, Y, N: int, m: int) -> list:
        """The N correct classes as integers, from indices ``(N,)`` or one-hot rows ``(N, m)``."""
        return self._indices_batched(Y, N, m).tolist()

    def _indices_batched(self, Y, N: int, m: int) -> np.ndarray:
        idx = label_indices(Y, N, m)
        if idx is not None:
            return idx
        Ym = label_matrix(Y, N, m)
        if not (np.all((Ym == 0) | (Ym == 1)) and np.all(np.count_nonzero(Ym, axis=1) == 1)):
            raise ValueError(
                "Y: the SVM loss needs one correct class per sample: integer indices (N,) or one-hot rows (N, m)"
            )
        return Ym.argmax(axis=1)

    def _margins_batched(self, S, Y):
        S = output_batch(S, "S")
        N, m = S.shape
        idx = self._indices_batched(Y, N, m)
        rows = np.arange(N)
        M = S - S[rows, idx][:, None] + S.dtype.type(self.delta)
        M[rows, idx] = 0
        return M, rows, idx

    def per_sample_losses_batched(self, S, Y):
        """Per-sample losses ``(N,)``: ``L_k = sum_{j != y_k} max(0, S[k, j] - S[k, y_k] + delta)``."""
        M, _, _ = self._margins_batched(S, Y)
        return np.where(M > 0, M, 0).sum(axis=1)

    def forward_batched(self, S, Y):
        """``(1/N) sum_k L_k``."""
        return self.forward_and_gradient_batched(S, Y)[0]

    def gradient_batched(self, S, Y):
        """``G`` ``(N, m)``: ``1[M > 0] / N``, and ``-(number of positive margins) / N`` at the correct class."""
        return self.forward_and_gradient_batched(S, Y)[1]

    def forward_and_gradient_batched(self, S, Y, *, out=None):
        """Scores ``S`` ``(N, m)``, ``M = S - S[k, y_k] + delta`` with ``M[k, y_k] = 0``::

            L = (1/N) sum_{k, j} max(0, M[k, j])
            G = 1[M > 0] / N,   G[k, y_k] = -(sum_j 1[M[k, j] > 0]) / N

        (``out``, the batched driver's lender, unused.)"""
        M, rows, idx = self._margins_batched(S, Y)
        N = M.shape[0]
        P = M > 0
        loss = float(np.sum(M[P]) / N)
        G = P.astype(M.dtype)
        G[rows, idx] = -P.sum(axis=1)
        G /= N
        return loss, G


# --------------------------------------------------------------------------- binary cross-entropy


def binary_label_matrix(Y, N: int, m: int, name: str = "Y", dtype=np.float64) -> np.ndarray:
    """Binary labels as ``(N, m)`` floats in ``[0, 1]``: ``(N, m)``, or ``(N,)`` when ``m == 1``;
    bools and integers 0/1 are converted (soft labels in between are accepted)."""
    arr = np.asarray(Y)
    if arr.ndim == 1 and m == 1:
        arr = arr[:, None]
    out = as_float_array(arr, name, dtype)
    if out.shape != (N, m):
        raise ValueError(
            f"{name}: expected binary labels of shape ({N}, {m})"
            + (f" or ({N},)" if m == 1 else "")
            + f", got shape {np.shape(Y)}"
        )
    if out.size and (out.min() < 0 or out.max() > 1):
        raise ValueError(
            f"{name}: expected binary labels in [0, 1] (or bools), got values in "
            f"[{float(out.min())!r}, {float(out.max())!r}]"
        )
    return out


def binary_label_column(y, m: int, name: str = "y", dtype=np.float64) -> np.ndarray:
    """One sample's binary labels as a column ``(m, 1)`` in ``[0, 1]``: a column, or a scalar
    (bool, 0/1 or a float in [0, 1]) when ``m == 1``."""
    arr = np.asarray(y)
    if arr.ndim == 0 and m == 1:
        arr = arr.reshape(1, 1)
    col = as_float_array(arr, name, dtype)
    if col.shape != (m, 1):
        raise ValueError(
            f"{name}: expected binary labels of shape ({m}, 1)"
            + (" or a scalar" if m == 1 else "")
            + f", got shape {np.shape(y)}"
        )
    if col.min() < 0 or col.max() > 1:
        raise ValueError(
            f"{name}: expected binary labels in [0, 1] (or bools), got values in "
            f"[{float(col.min())!r}, {float(col.max())!r}]"
        )
    return col


class _BinaryLabels(Loss):
    """Labels of the binary losses: each output is its own yes/no question (``y_i`` in [0, 1])."""

    binary_labels = True

    def check_labels(self, Y, N: int, m: int, dtype=np.float64) -> None:
        binary_label_matrix(Y, N, m, dtype=dtype)

    def label_row(self, y, m: int) -> np.ndarray:
        return binary_label_column(y, m).T

    def sample_labels(self, Y, N: int, m: int) -> list:
        return columns(binary_label_matrix(Y, N, m))

    def labels_batched(self, Y, N: int, m: int, dtype=np.float64) -> np.ndarray:
        return binary_label_matrix(Y, N, m, dtype=dtype)

    def target_labels(self, Y, N: int, m: int) -> np.ndarray:
        """Each output's yes/no label as a bool ``(N, m)``: a label counts as yes iff ``y >= 0.5`` (a 0/1 or
        bool label is itself; a soft label is rounded with the same tie rule as the decisions)."""
        return binary_label_matrix(Y, N, m) >= 0.5

    def forward(self, y_hat, y):
        """``L`` (a float); :meth:`__call__`'s value."""
        return self(y_hat, y)[0]

    def gradient(self, y_hat, y):
        """Row ``dL/dy_hat`` ``(1, m)``; :meth:`__call__`'s gradient."""
        return self(y_hat, y)[1]

    def forward_batched(self, Y_hat, Y):
        """``(1/N) sum_k L_k``."""
        return self.forward_and_gradient_batched(Y_hat, Y)[0]

    def gradient_batched(self, Y_hat, Y):
        """``(N, m)``, row k ``= (1/N) dL_k/dy_hat_k``."""
        return self.forward_and_gradient_batched(Y_hat, Y)[1]


class BinaryCrossEntropy(_BinaryLabels):
    """Binary cross-entropy on **probabilities** ``p`` ``(m, 1)`` (a sigmoid output), summed over the m
    outputs (deeplearning.ai's logistic-regression cost, per example)::

        L = -sum_i [y_i log p_i + (1 - y_i) log(1 - p_i)]
        dL/dp_i = -y_i / p_i + (1 - y_i) / (1 - p_i)           (a row (1, m))

    A term whose label weight is 0 is left out (``0 log 0 = 0``). ``p`` must lie in [0, 1];
    ``p_i = 0`` with ``y_i > 0`` or ``p_i = 1`` with ``y_i < 1`` makes the loss infinite and is
    refused, never clipped. Near 0 and 1, ``log p`` of a rounded probability loses digits that
    the logits still had: :class:`SigmoidBinaryCrossEntropy` takes the logits instead. Proof:
    ``proofs:loss.bce``.
    Labels: ``(m, 1)`` in [0, 1], bools, or a scalar when ``m == 1``; batched ``(N, m)`` or ``(N,)``.
    """

    name = "binary_cross_entropy"

    def predict_labels(self, P) -> np.ndarray:
        """The decisions ``(N, m)`` bool: yes iff ``p >= 0.5`` (a probability of exactly 0.5 is a yes, the
        same tie rule as :class:`SigmoidBinaryCrossEntropy`'s ``z >= 0``, since ``sigmoid(0) = 0.5``).
        Accuracy counts every output's decision: ``correct / (N * m)``."""
        return output_batch(P, "Y_hat") >= 0.5

    @staticmethod
    def _check_probs(P, Y, name):
        lo, hi = P.min(), P.max()
        if lo < 0 or hi > 1:
            raise ValueError(f"{name}: expected probabilities in [0, 1], got values in [{float(lo)!r}, {float(hi)!r}]")
        bad = ((Y > 0) & (P == 0)) | ((Y < 1) & (P == 1))
        if bad.any():
            where = tuple(int(v) for v in np.argwhere(bad)[0])
            raise ValueError(
                f"{name}: probability {float(P[where])!r} at index {where} where the label is "
                f"{float(Y[where])!r}; the binary cross-entropy is infinite there"
            )

    def __call__(self, p, y, *, check=True):
        """``(L, dL/dp)`` for ``p`` ``(m, 1)`` (formulas in the class docstring)."""
        if check:
            p = as_column(p, "y_hat")
            y = binary_label_column(y, p.shape[0])
        self._check_probs(p, y, "y_hat")
        pos, neg = y > 0, y < 1
        terms = np.zeros_like(p)
        terms[pos] = y[pos] * np.log(p[pos])
        terms[neg] += (1 - y[neg]) * np.log1p(-p[neg])
        g = np.zeros_like(p)
        g[pos] = -y[pos] / p[pos]
        g[neg] += (1 - y[neg]) / (1 - p[neg])
        return float(-terms.sum()), g.T

    def _terms_batched(self, P, Y):
        P = output_batch(P)
        Y = binary_label_matrix(Y, *P.shape, dtype=P.dtype)
        self._check_probs(P, Y, "Y_hat")
        pos, neg = Y > 0, Y < 1
        T = np.zeros_like(P)
        T[pos] = Y[pos] * np.log(P[pos])
        T[neg] += (1 - Y[neg]) * np.log1p(-P[neg])
        return P, Y, pos, neg, T

    def per_sample_losses_batched(self, P, Y):
        """``(N,)``: ``L_k = -sum_i [Y log P + (1 - Y) log(1 - P)]`` over row k."""
        return -self._terms_batched(P, Y)[4].sum(axis=1)

    def forward_and_gradient_batched(self, P, Y, *, out=None):
        """``L = -(1/N) sum_{k, i} [Y log P + (1 - Y) log(1 - P)]``,
        ``G = (-Y / P + (1 - Y) / (1 - P)) / N`` (zero-weight terms left out; ``out`` unused)."""
        P, Y, pos, neg, T = self._terms_batched(P, Y)
        N = P.shape[0]
        G = np.zeros_like(P)
        G[pos] = -Y[pos] / P[pos]
        G[neg] += (1 - Y[neg]) / (1 - P[neg])
        G /= N
        return float(-T.sum() / N), G


def _sigmoid_pair(z: np.ndarray):
    """``(sigmoid(z), sigmoid(-z))``, each without overflow and to full relative precision:
    with ``e = exp(-|z|)``, the one of them on the side of ``z`` is ``1 / (1 + e)`` and the other
    ``e / (1 + e)`` (never ``1 - sigmoid``, which cancels)."""
    e = np.exp(-np.abs(z))
    big, small = 1 / (1 + e), e / (1 + e)
    return np.where(z >= 0, big, small), np.where(z >= 0, small, big)


class SigmoidBinaryCrossEntropy(_BinaryLabels):
    """Fused sigmoid + binary cross-entropy on **logits** ``z`` ``(m, 1)``, stable for any finite logit::

        L = sum_i [max(z_i, 0) - y_i z_i + log(1 + exp(-|z_i|))]      (= BCE(sigmoid(z), y))
        dL/dz_i = sigmoid(z_i) - y_i = (1 - y_i) sigmoid(z_i) - y_i sigmoid(-z_i)      (a row (1, m))

    ``sigmoid(z)`` and ``sigmoid(-z)`` are each ``1 / (1 + e)`` or ``e / (1 + e)`` with
    ``e = exp(-|z|)``, so nothing overflows, nothing takes the log of a rounded 0 (at ``z = -1000``
    with label 1 the loss is 1000, not inf), and the gradient for a 0/1 label is one of them to full
    relative precision (at ``z = 36``, label 1: ``-sigmoid(-36)``, not ``1 - 1 = 0`` after rounding). A network using it ends in an
    identity activation. Labels as for :class:`BinaryCrossEntropy`. Proof: ``proofs:loss.sigmoid_bce``
    (the stable loss equals BCE of the sigmoid, and the gradient, for z > 0 and z < 0).
    """

    name = "sigmoid_binary_cross_entropy"

    def predict_labels(self, Z) -> np.ndarray:
        """The decisions ``(N, m)`` bool from logits: yes iff ``z >= 0``, which is ``sigmoid(z) >= 0.5`` in
        exact arithmetic (the tie ``z = 0``, ``sigmoid = 0.5``, is a yes, as in
        :class:`BinaryCrossEntropy`; deciding on the logit avoids a rounded ``sigmoid(-1e-17) = 0.5``).
        Accuracy counts every output's decision: ``correct / (N * m)``."""
        return output_batch(Z, "Z") >= 0

    def __call__(self, z, y, *, check=True):
        """``(L, dL/dz)`` for logits ``z`` ``(m, 1)`` (formulas in the class docstring)."""
        if check:
            z = as_column(z, "z")
            y = binary_label_column(y, z.shape[0])
        loss = np.maximum(z, 0) - y * z + np.log1p(np.exp(-np.abs(z)))
        s_pos, s_neg = _sigmoid_pair(z)
        return float(loss.sum()), ((1 - y) * s_pos - y * s_neg).T

    def _labels_and_logits_batched(self, Z, Y):
        Z = output_batch(Z, "Z")
        return Z, binary_label_matrix(Y, *Z.shape, dtype=Z.dtype)

    def per_sample_losses_batched(self, Z, Y):
        """``(N,)``: ``L_k = sum_i [max(Z, 0) - Y Z + log1p(exp(-|Z|))]`` over row k."""
        Z, Y = self._labels_and_logits_batched(Z, Y)
        return (np.maximum(Z, 0) - Y * Z + np.log1p(np.exp(-np.abs(Z)))).sum(axis=1)

    def forward_and_gradient_batched(self, Z, Y, *, out=None):
        """With ``E = exp(-|Z|)``: ``L = (1/N) sum_{k, i} [max(Z, 0) - Y Z + log1p(E)]`` and
        ``G = ((1 - Y) sigmoid(Z) - Y sigmoid(-Z)) / N``, where ``sigmoid(+-Z)`` is ``1 / (1 + E)`` on
        the side of ``Z``'s sign and ``E / (1 + E)`` on the other (``out`` unused)."""
        Z, Y = self._labels_and_logits_batched(Z, Y)
        N = Z.shape[0]
        E = np.exp(-np.abs(Z))
        loss = float((np.maximum(Z, 0) - Y * Z + np.log1p(E)).sum() / N)
        near, far = 1 / (1 + E), E / (1 + E)
        nonneg = Z >= 0
        G = (1 - Y) * np.where(nonneg, near, far) - Y * np.where(nonneg, far, near)
        return loss, G / N


LOSSES: dict[str, type[Loss]] = {
    cls.name: cls
    for cls in (
        CrossEntropy,
        MeanSquaredError,
        SoftmaxCrossEntropy,
        MulticlassSVM,
        BinaryCrossEntropy,
        SigmoidBinaryCrossEntropy,
    )
}


def get_loss(spec) -> Loss:
    """Return a loss from an instance, a class, or a name (``cross_entropy``, ``mse``,
    ``softmax_cross_entropy``, ``svm``, ``binary_cross_entropy``, ``sigmoid_binary_cross_entropy``)."""
    if isinstance(spec, Loss):
        return spec
    if isinstance(spec, type) and issubclass(spec, Loss):
        return spec()
    if isinstance(spec, str):
        key = spec.lower().replace("-", "_")
        if key not in LOSSES:
            raise ValueError(f"loss: expected one of {sorted(LOSSES)}, got {spec!r}")
        return LOSSES[key]()
    raise TypeError(f"loss: expected a name, a Loss class or instance, got {type(spec).__name__}")
