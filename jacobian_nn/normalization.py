"""Batch normalisation, inverted dropout and an elementwise activation layer (seed 004).

Each layer implements the interface of :mod:`jacobian_nn.layers`: a reference
path with explicit Jacobian matrices and an independent batched path with
vector-Jacobian products, side by side.

Batch normalisation (training mode couples the samples)
-------------------------------------------------------
For one feature j of a batch ``X`` ``(N, m)`` (column ``x = X[:, j]``)::

    mu      = (1/N) sum_i x_i  (refined: centred)  sigma = sqrt(var + eps)
    var     = (1/N) sum_i (x_i - mu)^2  (biased)  x_hat = (x - mu) / sigma
    y       = gamma_j x_hat + beta_j

Its Jacobian over the batch is an ``(N, N)`` matrix per feature (features do not
mix, so the full Jacobian of ``vec(Y)`` w.r.t. ``vec(X)`` is block diagonal after
a permutation)::

    dy_i/dx_k = gamma_j / sigma * (delta_ik - 1/N - x_hat_i x_hat_k / N)
    dy_i/dgamma_j = x_hat_i,      dy_i/dbeta_j = 1

(proofs: ``proofs:batchnorm.train_jacobian``, ``proofs:batchnorm.test_mode004``,
``proofs:dropout.jacobian``, ``proofs:dropout.inverted004`` in ``proofs/``). The reference path builds these
matrices and chains the batch's rows through them; the batched path uses the
compact formula, written independently::

    dX = gamma / (N sigma) * (N G - sum_i G_i - x_hat * sum_i (G_i x_hat_i))
    dgamma = sum_i G_i x_hat_i,   dbeta = sum_i G_i

In test mode the running statistics replace the batch statistics and the
Jacobian is diagonal, per sample: ``dy/dx = diag(gamma / sqrt(running_var + eps))``.

Decisions
~~~~~~~~~
* **N = 1 in training mode is refused** (``ValueError``). The batch variance is
  0, ``x_hat = 0`` and the output is ``beta`` whatever the input: the Jacobian is
  identically 0 and ``eps`` only hides that. (Seed 004 says eps is there for the
  one-image case; a zero gradient is not a useful answer to it.) A constant
  feature with N >= 2 is accepted and relies on ``eps``.
* **Running statistics** follow seed 004's code: they start at zeros (both mean
  and variance) and are updated on every training-mode forward, in either path,
  as ``running = momentum * running + (1 - momentum) * batch`` with the biased
  batch variance. (Seed 004's prose says the first batch's statistics are the
  initial value; its code starts from zeros.) The update is skipped when the
  layer's ``update_running`` is False; :func:`frozen_running_stats` sets that for
  every batch-norm layer of a network inside a ``with`` block, so a cross-check
  or a finite-difference witness that runs the same batch many times leaves the
  statistics untouched. Running statistics are state, not parameters: they are
  not in ``params`` and get no gradient.

Inverted dropout
----------------
``p`` is the **drop** probability (seed 004's convention), refused outside
``[0, 1)``. A keep mask ``keep`` (booleans, ``(N, m)``) is drawn from the layer's
own ``numpy.random.Generator`` with ``keep = U[0, 1) < 1 - p``; then, per sample,
``y = x * keep / (1 - p)`` and ``dy/dx = diag(keep / (1 - p))``. Test mode is the
identity (``J = I``).

Masks. Every training-mode forward draws a fresh ``(N, m)`` mask from the
layer's Generator, unless a mask is fixed **explicitly** with the context
manager ``layer.using_mask(keep)`` (or :func:`using_dropout_masks` for a whole
network, with masks from :func:`sample_dropout_masks`). Inside the block, every
training-mode forward of either path uses that mask and draws nothing; outside
it nothing is remembered. This is how both paths, and a finite-difference
witness, see one mask.
"""

from __future__ import annotations

from contextlib import ExitStack, contextmanager

import numpy as np

from ._validation import (
    as_batch,
    as_column,
    as_float_array,
    as_generator,
    as_row,
    check_float_dtype,
    check_mode,
    check_positive,
    check_positive_int,
    columns,
    is_real,
    rows_of,
)
from .activations import Activation, _embed_diagonal, get_activation
from .layers import Layer


def _stack_columns(xs, name: str, m: int, dtype) -> np.ndarray:
    """A list of N columns ``(m, 1)`` -> the batch ``(N, m)`` (row k is sample k transposed)."""
    xs = list(xs)
    if not xs:
        raise ValueError(f"{name}: expected a non-empty list of columns, got an empty list")
    return np.hstack([as_column(x, f"{name}[{k}]", m, dtype) for k, x in enumerate(xs)]).T


def _stack_rows(rows, name: str, m: int, dtype, N: int) -> np.ndarray:
    rows = list(rows)
    if len(rows) != N:
        raise ValueError(f"{name}: expected {N} rows (one per sample of the forward batch), got {len(rows)}")
    return np.vstack([as_row(g, f"{name}[{k}]", m, dtype) for k, g in enumerate(rows)])


# =========================================================================== batch normalisation


def centred(X: np.ndarray, axis: int):
    """``(X - mean(X), mean(X))`` along ``axis``, the mean refined once: ``mu = mean(X)``,
    ``D = X - mu``, ``c = mean(D)``; returns ``(D - c, mu + c)`` (the mean with ``keepdims``).
    The second pass removes the rounding error of the first mean (``D`` is exact when the values
    are close to ``mu``, and ``c`` is a mean of small numbers), so ``x - mu`` keeps its digits
    on a nearly constant feature with a large offset: better than a correctly rounded mean,
    which leaves up to half an ulp of the offset in every difference."""
    mu = X.mean(axis=axis, keepdims=True)
    D = X - mu
    c = D.mean(axis=axis, keepdims=True)
    D -= c
    return D, mu + c


class ScaleShiftLayer(Layer):
    """A normalisation layer ``R^m -> R^m`` with a scale ``gamma`` ``(m,)`` and a shift ``beta`` ``(m,)``
    (batch norm, layer norm): the two parameters, their checks, the width and the dtype in one place."""

    def _init_scale_shift(self, m: int, gamma, beta, dtype) -> None:
        self.gamma = self._initial("gamma", gamma, np.ones(m, dtype=dtype), m, dtype)
        self.beta = self._initial("beta", beta, np.zeros(m, dtype=dtype), m, dtype)

    @staticmethod
    def _initial(name, value, default, m, dtype):
        if value is None:
            return default
        arr = as_float_array(value, name, dtype)
        if arr.shape != (m,):
            raise ValueError(f"{name}: expected shape ({m},) to match m={m} features, got shape {arr.shape}")
        return arr.copy()

    @property
    def n_in(self) -> int:
        return self.gamma.shape[0]

    @property
    def n_out(self) -> int:
        return self.gamma.shape[0]

    @property
    def dtype(self) -> np.dtype:
        return self.gamma.dtype

    @property
    def params(self) -> dict:
        """The live parameter arrays ``{"gamma": (m,), "beta": (m,)}`` (never penalised: not named W)."""
        return {"gamma": self.gamma, "beta": self.beta}


class BatchNorm(ScaleShiftLayer):
    """Batch normalisation over the features of a batch (seed 004's ``batchnorm_forward``).

    Parameters
    ----------
    m : number of features (``n_in == n_out == m``).
    eps : > 0, added to the variance (default 1e-5).
    momentum : in [0, 1], running-average weight (default 0.9):
        ``running = momentum * running + (1 - momentum) * batch``.
    gamma, beta : optional initial ``(m,)`` scale and shift (default ones and zeros).
    update_running : update the running statistics on training-mode forwards (default True).
    dtype : float64 (default) or float32.

    Attributes: ``gamma`` ``(m,)``, ``beta`` ``(m,)`` (the parameters, live arrays);
    ``running_mean`` ``(m,)``, ``running_var`` ``(m,)`` (state, start at 0 as in seed 004).

    Shapes (reference): columns ``(m, 1)``, rows ``(1, m)``; train-mode Jacobians over
    the batch are listed in the module docstring and returned by
    :meth:`jacobian_per_feature` ``(m, N, N)``, :meth:`jacobian_x_coupled`
    ``(N*m, N*m)``, :meth:`jacobian_gamma_coupled` and :meth:`jacobian_beta_coupled`
    ``(N*m, m)``; ``vec(Y)`` is row-major, index ``k*m + j`` <-> ``Y[k, j]``.
    """

    def __init__(
        self,
        m: int,
        *,
        eps: float = 1e-5,
        momentum: float = 0.9,
        gamma=None,
        beta=None,
        update_running: bool = True,
        dtype=np.float64,
    ):
        m = check_positive_int(m, "m")
        dtype = check_float_dtype(dtype)
        self.eps = check_positive(eps, "eps")
        if not is_real(momentum) or not 0.0 <= float(momentum) <= 1.0:
            raise ValueError(f"momentum: expected a number in [0, 1], got {momentum!r}")
        self.momentum = float(momentum)
        self._init_scale_shift(m, gamma, beta, dtype)
        self.running_mean = np.zeros(m, dtype=dtype)
        self.running_var = np.zeros(m, dtype=dtype)
        self.update_running = bool(update_running)

    # -- description -------------------------------------------------------------------

    #: training mode refuses N = 1 (see the module docstring); the solver never forms such a batch
    min_train_batch = 2

    def couples_samples(self, mode: str) -> bool:
        """Training mode normalises with the batch's statistics: every output depends on every sample."""
        return check_mode(mode) == "train"

    @property
    def state(self) -> dict:
        """The live running statistics ``{"running_mean": (m,), "running_var": (m,)}``: not trainable,
        but test mode needs them, so the solver restores them with the parameters and
        :mod:`jacobian_nn.model_io` saves them."""
        return {"running_mean": self.running_mean, "running_var": self.running_var}

    def __repr__(self) -> str:
        return f"BatchNorm({self.n_in}, eps={self.eps}, momentum={self.momentum})"

    # -- forward (shared formula) ---------------------------------------------------------

    def _check_params(self) -> None:
        m = self.gamma.shape[0]
        if self.gamma.ndim != 1 or self.beta.shape != (m,):
            raise ValueError(
                f"beta: expected shape ({m},) to match gamma {self.gamma.shape}, got shape {self.beta.shape}"
            )

    def _train_stats(self, X: np.ndarray):
        """Batch ``X`` ``(N, m)`` -> ``(mu (m,), var (m,), sigma (m,), x_hat (N, m))``; refuses N = 1."""
        N = X.shape[0]
        if N < 2:
            raise ValueError(
                f"X: batch normalisation in training mode needs a batch of N >= 2 samples, got N={N}; "
                "with one sample the variance is 0 and the output is beta whatever the input "
                "(use mode='test' for single samples)"
            )
        D, mu = centred(X, 0)  # x - mu with the mean refined once: digits kept on a near-constant feature
        var = (D * D).mean(axis=0)
        sigma = np.sqrt(var + self.eps)
        return mu[0], var, sigma, D / sigma

    def _update_running(self, mu: np.ndarray, var: np.ndarray) -> None:
        if self.update_running:
            self.running_mean[...] = self.momentum * self.running_mean + (1 - self.momentum) * mu
            self.running_var[...] = self.momentum * self.running_var + (1 - self.momentum) * var

    def _test_sigma(self) -> np.ndarray:
        return np.sqrt(self.running_var + self.eps)

    # -- reference path: one sample (test mode) --------------------------------------------

    def forward(self, x, mode="test", *, check=True):
        """Test mode, one sample: ``x`` ``(m, 1)`` -> ``gamma * (x - running_mean) / sqrt(running_var + eps)
        + beta`` ``(m, 1)``; the context is ``x``. (Training mode couples the samples: see
        :meth:`forward_samples`.)"""
        if check_mode(mode) == "train":
            raise ValueError(
                "mode: batch normalisation in training mode couples the samples of a batch; "
                "use forward_samples(xs, 'train') (or mode='test' for one sample)"
            )
        self._check_params()
        if check:
            x = as_column(x, "x", self.n_in, self.dtype)
        x_hat = (x - self.running_mean[:, None]) / self._test_sigma()[:, None]
        return self.gamma[:, None] * x_hat + self.beta[:, None], x

    def jacobian_x(self, x):
        """Test mode: ``dy/dx = diag(gamma / sqrt(running_var + eps))`` ``(m, m)``."""
        as_column(x, "x", self.n_in, self.dtype)
        return np.diag(self.gamma / self._test_sigma())

    def jacobian_gamma(self, x):
        """Test mode: ``dy/dgamma = diag(x_hat)`` ``(m, m)``, ``x_hat = (x - running_mean) / sqrt(running_var + eps)``."""
        x = as_column(x, "x", self.n_in, self.dtype)
        return np.diag((x[:, 0] - self.running_mean) / self._test_sigma())

    def jacobian_beta(self, x):
        """``dy/dbeta = I`` ``(m, m)`` (both modes, per sample)."""
        as_column(x, "x", self.n_in, self.dtype)
        return np.eye(self.n_in, dtype=self.dtype)

    def backward(self, grad_y, ctx, *, check=True):
        """Test mode, one sample: row ``dL/dy`` ``(1, m)`` -> ``dL/dx = dL/dy J_x`` ``(1, m)`` and
        ``{"gamma": dL/dy J_gamma, "beta": dL/dy J_beta}`` in ``(m,)`` shape."""
        if check:
            grad_y = as_row(grad_y, "grad_y", self.n_out, self.dtype)
        x = ctx
        return grad_y @ self.jacobian_x(x), {
            "gamma": (grad_y @ self.jacobian_gamma(x))[0],
            "beta": (grad_y @ self.jacobian_beta(x))[0],
        }

    # -- reference path: explicit Jacobians over the batch (train mode) ----------------------

    def _coupled(self, x_hat: np.ndarray, sigma: np.ndarray) -> np.ndarray:
        """``(m, N, N)``: ``J[j, i, k] = gamma_j / sigma_j * (delta_ik - 1/N - x_hat_ij x_hat_kj / N)``."""
        N = x_hat.shape[0]
        xt = x_hat.T  # (m, N)
        inner = np.eye(N, dtype=x_hat.dtype)[None] - 1.0 / N - xt[:, :, None] * xt[:, None, :] / N
        return (self.gamma / sigma)[:, None, None] * inner

    def jacobian_per_feature(self, xs):
        """Train mode: the per-feature Jacobians over the batch, ``(m, N, N)``.

        ``xs`` is the batch as a list of N columns ``(m, 1)``. Slice j is
        ``d Y[:, j] / d X[:, j]`` with ``J[j, i, k] = gamma_j / sigma_j (delta_ik - 1/N
        - x_hat_ij x_hat_kj / N)``; features do not mix.
        """
        self._check_params()
        X = _stack_columns(xs, "xs", self.n_in, self.dtype)
        _, _, sigma, x_hat = self._train_stats(X)
        return self._coupled(x_hat, sigma)

    def jacobian_x_coupled(self, xs, mode: str = "train"):
        """The full Jacobian of ``vec(Y)`` w.r.t. ``vec(X)``, ``(N*m, N*m)``, row-major vec
        (index ``k*m + j`` <-> sample k, feature j).

        Train mode: entry ``(i*m + j, k*m + j)`` is ``jacobian_per_feature[j, i, k]``,
        entries across different features are 0. Test mode: block diagonal
        ``I_N kron diag(gamma / sqrt(running_var + eps))`` (samples independent).
        """
        check_mode(mode)
        self._check_params()
        X = _stack_columns(xs, "xs", self.n_in, self.dtype)
        N, m = X.shape
        if mode == "test":
            return np.kron(np.eye(N, dtype=self.dtype), np.diag(self.gamma / self._test_sigma()))
        _, _, sigma, x_hat = self._train_stats(X)
        J = self._coupled(x_hat, sigma)  # (m, N, N)
        full = np.zeros((N, m, N, m), dtype=self.dtype)
        j = np.arange(m)
        full[:, j, :, j] = J  # advanced indices first: shape (m, N, N)
        return full.reshape(N * m, N * m)

    def _jacobian_gamma_from(self, x_hat: np.ndarray) -> np.ndarray:
        N, m = x_hat.shape
        full = np.zeros((N, m, m), dtype=x_hat.dtype)
        j = np.arange(m)
        full[:, j, j] = x_hat
        return full.reshape(N * m, m)

    def jacobian_gamma_coupled(self, xs, mode: str = "train"):
        """``d vec(Y) / d gamma`` ``(N*m, m)``: entry ``(i*m + j, j)`` is ``x_hat_ij``, others 0
        (``x_hat`` from the batch statistics in train mode, the running ones in test mode)."""
        check_mode(mode)
        self._check_params()
        X = _stack_columns(xs, "xs", self.n_in, self.dtype)
        if mode == "train":
            x_hat = self._train_stats(X)[3]
        else:
            x_hat = (X - self.running_mean) / self._test_sigma()
        return self._jacobian_gamma_from(x_hat)

    def jacobian_beta_coupled(self, xs, mode: str = "train"):
        """``d vec(Y) / d beta`` ``(N*m, m)``: ``N`` stacked identities ``I_m`` (both modes)."""
        check_mode(mode)
        X = _stack_columns(xs, "xs", self.n_in, self.dtype)
        return np.tile(np.eye(self.n_in, dtype=self.dtype), (X.shape[0], 1))

    def forward_samples(self, xs, mode="train"):
        """Reference path over the batch: N columns ``(m, 1)`` -> N columns ``(m, 1)`` and a context.

        Train mode normalises with the batch statistics (N >= 2) and updates the
        running statistics (unless ``update_running`` is False); test mode maps each
        sample with :meth:`forward`.
        """
        check_mode(mode)
        self._check_params()
        if mode == "test":
            outs = [self.forward(x) for x in xs]
            if not outs:
                raise ValueError("xs: expected a non-empty list of columns, got an empty list")
            return [y for y, _ in outs], ("test", [c for _, c in outs])
        X = _stack_columns(xs, "xs", self.n_in, self.dtype)
        mu, var, sigma, x_hat = self._train_stats(X)
        Y = self.gamma * x_hat + self.beta
        self._update_running(mu, var)
        return columns(Y), ("train", x_hat, sigma)

    def backward_samples(self, grad_ys, ctx):
        """Chain the batch's rows ``dL/dy_k`` ``(1, m)`` back through the explicit Jacobians.

        Train mode, per feature j with ``g_j = (dL/dy_1j, ..., dL/dy_Nj)`` ``(1, N)``::

            (dL/dx_1j, ..., dL/dx_Nj) = g_j @ J_j          J_j = jacobian_per_feature[j]  (N, N)
            dL/dgamma = vec(G) @ J_gamma  (1, m)           J_gamma (N*m, m)
            dL/dbeta  = vec(G) @ J_beta   (1, m)           J_beta  (N*m, m)

        Returns the N rows ``dL/dx_k`` ``(1, m)`` and the gradients summed over the
        batch (the network divides by N). Test mode: per sample, :meth:`backward`.
        """
        if ctx[0] == "test":
            grad_xs, total = [], {"gamma": np.zeros_like(self.gamma), "beta": np.zeros_like(self.beta)}
            if len(grad_ys) != len(ctx[1]):
                raise ValueError(f"grad_ys: expected {len(ctx[1])} rows, got {len(grad_ys)}")
            for g, x in zip(grad_ys, ctx[1]):
                gx, grads = self.backward(g, x)
                grad_xs.append(gx)
                total["gamma"] += grads["gamma"]
                total["beta"] += grads["beta"]
            return grad_xs, total
        _, x_hat, sigma = ctx
        N, m = x_hat.shape
        G = _stack_rows(grad_ys, "grad_ys", m, self.dtype, N)  # (N, m)
        J = self._coupled(x_hat, sigma)  # (m, N, N)
        dX = np.einsum("ij,jik->kj", G, J)  # column j: G[:, j] @ J[j]
        g_vec = G.reshape(1, N * m)
        d_gamma = (g_vec @ self._jacobian_gamma_from(x_hat))[0]
        d_beta = (g_vec @ np.tile(np.eye(m, dtype=self.dtype), (N, 1)))[0]
        return rows_of(dX), {"gamma": d_gamma, "beta": d_beta}

    # -- batched path ------------------------------------------------------------------

    def forward_batched(self, X, mode="train", *, out=None):
        """``X`` ``(N, m)`` -> ``Y = gamma * x_hat + beta`` ``(N, m)`` and the context (``out`` unused).

        Train mode uses the batch statistics (N >= 2) and updates the running
        statistics (unless ``update_running`` is False); test mode uses the running ones.
        """
        check_mode(mode)
        self._check_params()
        X = as_batch(X, "X", self.n_in, self.dtype)
        if mode == "train":
            mu, var, sigma, x_hat = self._train_stats(X)
            self._update_running(mu, var)
        else:
            sigma = self._test_sigma()
            x_hat = (X - self.running_mean) / sigma
        return self.gamma * x_hat + self.beta, (mode, x_hat, sigma)

    def backward_batched(self, G, ctx, *, input_grad=True, per_sample=False, out=None):
        """``G = dL/dY`` ``(N, m)`` -> ``dX`` ``(N, m)``, ``{"gamma": (m,), "beta": (m,)}``.

        Train: ``dX = gamma / (N sigma) * (N G - sum_i G_i - x_hat * sum_i G_i x_hat_i)``.
        Test:  ``dX = G * gamma / sigma_running``.
        Both:  ``dgamma = sum_i G_i x_hat_i``, ``dbeta = sum_i G_i``.
        (``input_grad`` and ``out`` are accepted and unused: ``dX`` is always computed.)
        ``per_sample=True`` (test mode only): ``{"gamma": G * x_hat, "beta": G}`` ``(N, m)``.
        """
        mode, x_hat, sigma = ctx
        if per_sample:
            if mode == "train":
                raise TypeError(self.per_sample_refusal(mode))
            return G * (self.gamma / sigma), {"gamma": G * x_hat, "beta": G.copy()}
        N = x_hat.shape[0]
        d_gamma = (G * x_hat).sum(axis=0)
        d_beta = G.sum(axis=0)
        if mode == "train":
            dX = (self.gamma / (N * sigma)) * (N * G - d_beta - x_hat * d_gamma)
        else:
            dX = G * (self.gamma / sigma)
        return dX, {"gamma": d_gamma, "beta": d_beta}

    # -- batched path: per-sample gradients and Jacobians (test mode) ------------------------

    per_sample_gradients = True
    batched_jacobians = True

    def per_sample_refusal(self, mode: str):
        """Training mode is refused: every output depends on the whole batch's mean and variance,
        so the batch loss is not a sum of terms each of which depends on one sample only, and a
        per-sample gradient is not defined as usual. Test mode is per sample."""
        if check_mode(mode) == "train":
            return (
                "BatchNorm in training mode normalises with the batch's mean and variance, so the "
                "samples are coupled and a per-sample gradient is not defined; use mode='test' "
                "(running statistics) for per-sample gradients, or loss_and_gradients_batched for "
                "the gradient of the batch loss"
            )
        return None

    def jacobian_x_batched(self, X):
        """Test mode, every row: ``diag(gamma / sqrt(running_var + eps))`` ``(N, m, m)``."""
        X = as_batch(X, "X", self.n_in, self.dtype)
        D = np.broadcast_to(self.gamma / self._test_sigma(), X.shape)
        return _embed_diagonal(D)

    def input_vjp_rows_batched(self, P, X):
        """Test mode: ``P`` ``(N, r, m)`` -> ``P * gamma / sqrt(running_var + eps)``."""
        X = as_batch(X, "X", self.n_in, self.dtype)
        return _scaled_rows(P, X, self.gamma / self._test_sigma())


def _scaled_rows(P, X: np.ndarray, d: np.ndarray) -> np.ndarray:
    """``P`` ``(N, r, m)`` times ``diag(d)`` on the right, shape checked against ``X`` ``(N, m)``."""
    P = np.asarray(P)
    N, m = X.shape
    if P.ndim != 3 or P.shape[0] != N or P.shape[2] != m:
        raise ValueError(f"P: expected shape ({N}, r, {m}), got {P.shape}")
    return P * d


# =========================================================================== dropout


#: What each CS231n generation means by ``p``, for the docstrings and errors of ``p``/``keep_prob``.
P_GENERATIONS = (
    "CS231n's 2017 assignment (dropout=p, dropout_forward's p) drops with probability p: "
    "that is p= / dropout= here; its 2018+ assignments (dropout_keep_ratio, dropout_forward's p) "
    "keep with probability p: that is keep_prob= here"
)


def drop_probability(p, keep_prob, p_name: str = "p") -> float:
    """The drop probability from exactly one of ``p`` (drop) and ``keep_prob`` (keep, ``p = 1 - keep_prob``),
    each checked; both given, or neither, is an error naming what each keyword means."""
    if p is not None and keep_prob is not None:
        raise ValueError(
            f"{p_name}, keep_prob: give one of them, got {p_name}={p!r} and keep_prob={keep_prob!r}; " + P_GENERATIONS
        )
    if keep_prob is None:
        if p is None:
            raise TypeError(
                f"{p_name}: expected a drop probability ({p_name}=) or a keep probability (keep_prob=), got neither"
            )
        return check_drop_probability(p, p_name)
    if not is_real(keep_prob):
        raise TypeError(
            f"keep_prob: expected a keep probability in (0, 1], got {type(keep_prob).__name__} {keep_prob!r}"
        )
    if not np.isfinite(keep_prob) or not 0.0 < float(keep_prob) <= 1.0:
        raise ValueError(f"keep_prob: expected a keep probability in (0, 1], got {keep_prob!r} ({P_GENERATIONS})")
    return 1.0 - float(keep_prob)


def check_drop_probability(p, name: str = "p") -> float:
    """``p`` as a float in ``[0, 1)`` (the probability of **dropping** a unit), else raise."""
    if not is_real(p):
        raise TypeError(f"{name}: expected a drop probability in [0, 1), got {type(p).__name__} {p!r}")
    if not np.isfinite(p) or not 0.0 <= float(p) < 1.0:
        raise ValueError(f"{name}: expected a drop probability in [0, 1), got {p!r} ({P_GENERATIONS})")
    return float(p)


class _ParameterFreeLayer(Layer):
    """A layer ``R^m -> R^m`` with no parameters: width, dtype and :meth:`astype` in one place."""

    def __init__(self, m: int, dtype):
        self.m = check_positive_int(m, "m")
        self._dtype = check_float_dtype(dtype)

    @property
    def n_in(self) -> int:
        return self.m

    @property
    def n_out(self) -> int:
        return self.m

    @property
    def dtype(self) -> np.dtype:
        return self._dtype

    @property
    def params(self) -> dict:
        return {}

    def astype(self, dtype) -> "_ParameterFreeLayer":
        """A deep copy computing in ``dtype``."""
        new = super().astype(dtype)
        new._dtype = check_float_dtype(dtype)
        return new


class Dropout(_ParameterFreeLayer):
    """Inverted dropout (seed 004's ``dropout_forward``), ``p`` = probability of dropping a unit.

    Give ``p`` (the drop probability, as CS231n's 2017 assignment's ``dropout_forward`` means
    its ``p``) or ``keep_prob`` (the keep probability, as CS231n's 2018 and later assignments mean
    their ``p``, and as deeplearning.ai's ``keep_prob``), never both: ``p = 1 - keep_prob``.

    Train mode, per sample with keep mask ``keep`` ``(m,)`` (booleans)::

        y = x * keep / (1 - p)          dy/dx = diag(keep / (1 - p))   (m, m)

    Test mode: ``y = x``, ``dy/dx = I``. No parameters.

    Masks ``(N, m)`` are drawn with ``keep = U[0, 1) < 1 - p`` from the layer's own
    Generator (``seed``), one fresh mask per training-mode forward, unless fixed
    with :meth:`using_mask` (see the module docstring). With ``p = 0`` the mask is
    all True and nothing is drawn.
    """

    def __init__(self, m: int, p: float | None = None, *, keep_prob: float | None = None, seed=None, dtype=np.float64):
        p = drop_probability(p, keep_prob)
        super().__init__(m, dtype)
        self.p = p
        self.rng = as_generator(seed)
        self._fixed = None

    def __repr__(self) -> str:
        return f"Dropout({self.m}, p={self.p})"

    # A deep copy (``astype``) holds a Generator in the same state, so it draws the same
    # masks next, and a mask fixed by :meth:`using_mask` stays fixed in the copy.

    # -- masks -------------------------------------------------------------------------

    def sample_mask(self, N: int) -> np.ndarray:
        """Draw a keep mask ``(N, m)`` (booleans) from the layer's Generator (advances it)."""
        N = check_positive_int(N, "N")
        if self.p == 0.0:
            return np.ones((N, self.m), dtype=bool)
        return self.rng.random((N, self.m)) < 1.0 - self.p

    def check_mask(self, keep, N: int | None = None) -> np.ndarray:
        """``keep`` as a boolean ``(N, m)`` array (0/1 integers accepted), else raise."""
        arr = np.asarray(keep)
        if arr.dtype != bool:
            if arr.dtype.kind not in "iu" or not np.all((arr == 0) | (arr == 1)):
                raise TypeError(f"keep: expected a boolean (or 0/1 integer) mask, got dtype {arr.dtype}")
            arr = arr.astype(bool)
        if arr.ndim != 2 or arr.shape[1] != self.m or (N is not None and arr.shape[0] != N):
            raise ValueError(
                f"keep: expected a mask of shape ({N if N is not None else 'N'}, {self.m}), got shape {arr.shape}"
            )
        return arr

    @contextmanager
    def using_mask(self, keep):
        """Inside the ``with`` block, every training-mode forward (both paths) uses ``keep``
        ``(N, m)`` instead of drawing; the previous setting is restored on exit."""
        keep = self.check_mask(keep).copy()
        previous, self._fixed = self._fixed, keep
        try:
            yield keep
        finally:
            self._fixed = previous

    def _mask_for(self, N: int) -> np.ndarray:
        if self._fixed is None:
            return self.sample_mask(N)
        if self._fixed.shape[0] != N:
            raise ValueError(f"keep: the fixed mask has {self._fixed.shape[0]} rows but the batch has N={N} samples")
        return self._fixed

    def couples_samples(self, mode: str) -> bool:
        """Training mode draws one ``(N, m)`` mask per batch from the layer's Generator, so the
        reference driver hands it the whole batch (the Jacobian stays diagonal per sample)."""
        return check_mode(mode) == "train"

    def _scale(self, keep: np.ndarray) -> np.ndarray:
        return keep.astype(self.dtype) / self.dtype.type(1.0 - self.p)

    # -- reference path ------------------------------------------------------------------

    def jacobian_x(self, x, mode: str = "test", keep=None):
        """``dy/dx`` ``(m, m)``: ``I`` in test mode, ``diag(keep / (1 - p))`` in train mode
        (``keep`` ``(m,)`` or ``(1, m)`` required)."""
        check_mode(mode)
        as_column(x, "x", self.m, self.dtype)
        if mode == "test":
            return np.eye(self.m, dtype=self.dtype)
        if keep is None:
            raise ValueError("keep: a train-mode Jacobian needs the sample's keep mask, got None")
        keep = self.check_mask(np.asarray(keep).reshape(1, -1), 1)
        return np.diag(self._scale(keep[0]))

    def forward(self, x, mode: str = "test", *, check=True):
        """One sample ``x`` ``(m, 1)`` -> ``(m, 1)``; train mode uses a ``(1, m)`` mask."""
        (y,), ctx = self.forward_samples([x], mode)
        return y, (ctx[0], None if ctx[1] is None else ctx[1][0])

    def backward(self, grad_y, ctx, *, check=True):
        """Row ``dL/dy`` ``(1, m)`` -> ``dL/dy J`` ``(1, m)``, ``{}``; ``ctx`` = ``(mode, keep (m,) or None)``."""
        mode, keep = ctx
        if check:
            grad_y = as_row(grad_y, "grad_y", self.m, self.dtype)
        x_dummy = np.zeros((self.m, 1), dtype=self.dtype)
        return grad_y @ self.jacobian_x(x_dummy, mode, keep), {}

    def forward_samples(self, xs, mode="train"):
        """N columns -> N columns; train mode draws (or uses the fixed) ``(N, m)`` mask."""
        check_mode(mode)
        X = _stack_columns(xs, "xs", self.m, self.dtype)
        N = X.shape[0]
        if mode == "test":
            return [x.copy() for x in columns(X)], ("test", None)
        keep = self._mask_for(N)
        return [X[k][:, None] * self._scale(keep[k])[:, None] for k in range(N)], ("train", keep)

    def backward_samples(self, grad_ys, ctx):
        """Row k: ``dL/dy_k @ J_k`` with ``J_k = diag(keep_k / (1 - p))`` (train) or ``I`` (test)."""
        mode, keep = ctx
        grad_ys = list(grad_ys)
        if keep is not None and len(grad_ys) != keep.shape[0]:
            raise ValueError(f"grad_ys: expected {keep.shape[0]} rows, got {len(grad_ys)}")
        out = [self.backward(g, (mode, None if keep is None else keep[k]))[0] for k, g in enumerate(grad_ys)]
        return out, {}

    # -- batched path --------------------------------------------------------------------

    def forward_batched(self, X, mode="train", *, out=None):
        """``X`` ``(N, m)`` -> ``X * keep / (1 - p)`` (train) or ``X`` (test); the context is the
        scale or None (``out`` unused)."""
        check_mode(mode)
        X = as_batch(X, "X", self.m, self.dtype)
        if mode == "test":
            return X.copy(), None
        scale = self._scale(self._mask_for(X.shape[0]))
        return X * scale, scale

    def backward_batched(self, G, ctx, *, input_grad=True, per_sample=False, out=None):
        """``dX = G * keep / (1 - p)`` (train) or ``G`` (test); no parameter gradients (also
        ``per_sample=True``: each sample's gradient under its own row of the mask)."""
        return (G.copy() if ctx is None else G * ctx), {}

    # -- batched path: per-sample gradients and Jacobians (test mode) ------------------------

    per_sample_gradients = True
    batched_jacobians = True

    def jacobian_x_batched(self, X):
        """Test mode, every row: ``I_m`` ``(N, m, m)``."""
        X = as_batch(X, "X", self.m, self.dtype)
        return _embed_diagonal(np.ones_like(X))

    def input_vjp_rows_batched(self, P, X):
        """Test mode: ``P`` ``(N, r, m)`` -> ``P I = P`` (a copy)."""
        X = as_batch(X, "X", self.m, self.dtype)
        return _scaled_rows(P, X, np.ones(self.m, dtype=self.dtype))


# =========================================================================== activation layer


class ActivationLayer(_ParameterFreeLayer):
    """An elementwise (or softmax) activation as a layer of its own, ``y = f(x)``, no parameters.

    Seed 004 keeps ``relu`` apart from the affine map so that batch norm sits
    between them: ``Dense(identity) -> BatchNorm -> ActivationLayer(relu)``.
    Reference: ``dy/dx = J_f(x)`` ``(m, m)``; batched: ``dX = vjp_f(X, Y, G)``.
    """

    def __init__(self, m: int, activation="relu", *, dtype=np.float64):
        super().__init__(m, dtype)
        self.activation: Activation = get_activation(activation)

    def __repr__(self) -> str:
        return f"ActivationLayer({self.m}, {self.activation!r})"

    def forward(self, x, mode="train", *, check=True):
        """``x`` ``(m, 1)`` -> ``f(x)`` ``(m, 1)``; the context is ``x``."""
        if check:
            x = as_column(x, "x", self.m, self.dtype)
        return self.activation.forward(x), x

    def jacobian_x(self, x):
        """``J_f(x)`` ``(m, m)``."""
        return self.activation.jacobian(as_column(x, "x", self.m, self.dtype))

    def backward(self, grad_y, ctx, *, check=True):
        """Row ``dL/dy`` ``(1, m)`` -> ``dL/dy J_f(x)`` ``(1, m)``, ``{}``."""
        if check:
            grad_y = as_row(grad_y, "grad_y", self.m, self.dtype)
        return grad_y @ self.activation.jacobian(ctx), {}

    def forward_batched(self, X, mode="train", *, out=None):
        """``X`` ``(N, m)`` -> ``f(X)``; the context is ``(X, f(X))`` (``out`` unused)."""
        check_mode(mode)
        X = as_batch(X, "X", self.m, self.dtype)
        A = self.activation.forward_batched(X)
        return A, (X, A)

    def backward_batched(self, G, ctx, *, input_grad=True, per_sample=False, out=None):
        """``dX = vjp_f(X, f(X), G)``, no parameter gradients (also ``per_sample=True``)."""
        X, A = ctx
        return self.activation.vjp_batched(X, A, G), {}

    per_sample_gradients = True
    batched_jacobians = True

    def jacobian_x_batched(self, X):
        """Every row: ``J_f(x_k)`` ``(N, m, m)`` (the activation's batched Jacobians)."""
        return self.activation.jacobian_batched(as_batch(X, "X", self.m, self.dtype))


# =========================================================================== network helpers


def batchnorm_layers(net) -> list:
    """The :class:`BatchNorm` layers of ``net``, in order, including the one a layer is built on
    (``layer.bn``: spatial batch norm)."""
    return [bn for bn in (getattr(layer, "bn", layer) for layer in net.layers) if isinstance(bn, BatchNorm)]


def dropout_layers(net) -> list:
    """The :class:`Dropout` layers of ``net``, in order."""
    return [layer for layer in net.layers if isinstance(layer, Dropout)]


@contextmanager
def frozen_running_stats(net):
    """Inside the block, training-mode forwards of ``net`` leave every batch-norm layer's running
    statistics unchanged (``update_running = False``); the flags are restored on exit."""
    layers = batchnorm_layers(net)
    saved = [layer.update_running for layer in layers]
    for layer in layers:
        layer.update_running = False
    try:
        yield net
    finally:
        for layer, flag in zip(layers, saved):
            layer.update_running = flag


def sample_dropout_masks(net, N: int) -> list:
    """One keep mask ``(N, m_i)`` per dropout layer of ``net``, drawn from each layer's Generator."""
    return [layer.sample_mask(N) for layer in dropout_layers(net)]


@contextmanager
def using_dropout_masks(net, masks):
    """Fix the keep masks of ``net``'s dropout layers (one ``(N, m_i)`` per layer, in order) inside
    the block, so that both paths (and a finite-difference witness) use the same masks."""
    layers = dropout_layers(net)
    masks = list(masks)
    if len(masks) != len(layers):
        raise ValueError(f"masks: expected {len(layers)} masks (one per dropout layer), got {len(masks)}")
    with ExitStack() as stack:
        for layer, keep in zip(layers, masks):
            stack.enter_context(layer.using_mask(keep))
        yield masks


@contextmanager
def same_randomness(net, N: int):
    """Both of the above for a batch of N: fresh masks drawn once and fixed, running statistics frozen.

    ``with same_randomness(net, N): ref = net.loss_and_gradients(X, Y); bat = net.loss_and_gradients_batched(X, Y)``
    runs the two paths on exactly the same function.
    """
    masks = sample_dropout_masks(net, N)
    with frozen_running_stats(net), using_dropout_masks(net, masks):
        yield masks
