"""Layer normalisation (CS231n's ``layernorm_forward``/``layernorm_backward``): each sample is
normalised over its own features, so samples never couple and every sample has a clean ``m x m``
explicit Jacobian.

For one sample ``x`` ``(m, 1)`` (the mean over the m features, biased variance)::

    mu    = (1/m) sum_j x_j            var   = (1/m) sum_j (x_j - mu)^2
    sigma = sqrt(var + eps)            x_hat = (x - mu) / sigma
    y     = gamma * x_hat + beta       gamma, beta (m,), eps = 1e-5 by default

Reference Jacobians (``1`` the ones column ``(m, 1)``)::

    dy/dx     = diag(gamma) (1/sigma) (I_m - 1 1^T / m - x_hat x_hat^T / m)     (m, m)
    dy/dgamma = diag(x_hat)                                                     (m, m)
    dy/dbeta  = I_m                                                             (m, m)

Batched VJP, written independently (rows are samples, ``G = dL/dY`` ``(N, m)``,
``H = G * gamma``, sums over the features of each row)::

    dX     = (1 / (m sigma_k)) (m H - rowsum(H) - x_hat * rowsum(H * x_hat))    (N, m)
    dgamma = sum_k G_k * x_hat_k  (m,)      per sample: G * x_hat  (N, m)
    dbeta  = sum_k G_k            (m,)      per sample: G          (N, m)

The mean is computed in two passes (``mu = mean(x)``, then ``mu + mean(x - mu)``), so a nearly
constant sample (a large offset, a tiny spread) keeps its digits in ``x - mu``. Training and
test mode are the same function (no running statistics).

Proof: ``proofs:layernorm.backward`` (the Jacobian and the batched VJP above, by sympy at m = 3, finite
differences and both paths; no seed states layer norm, so the proof checks this docstring's own statement).
"""

from __future__ import annotations

import numpy as np

from ._validation import as_batch, as_column, as_row, check_float_dtype, check_mode, check_positive, check_positive_int
from .normalization import ScaleShiftLayer, centred


class LayerNorm(ScaleShiftLayer):
    """Layer normalisation over the features of each sample (CS231n).

    Parameters
    ----------
    m : number of features (``n_in == n_out == m``).
    eps : > 0, added to the variance (default 1e-5, as CS231n).
    gamma, beta : optional initial ``(m,)`` scale and shift (default ones and zeros).
    dtype : float64 (default) or float32.

    ``mode`` is accepted and ignored: layer normalisation uses each sample's own statistics
    in both modes. Formulas in the module docstring. Samples are independent, so per-sample
    gradients and batched Jacobians ``(N, m, m)`` are available.
    """

    per_sample_gradients = True
    batched_jacobians = True

    def __init__(self, m: int, *, eps: float = 1e-5, gamma=None, beta=None, dtype=np.float64):
        m = check_positive_int(m, "m")
        dtype = check_float_dtype(dtype)
        self.eps = check_positive(eps, "eps")
        self._init_scale_shift(m, gamma, beta, dtype)

    def __repr__(self) -> str:
        return f"LayerNorm({self.n_in}, eps={self.eps})"

    # -- reference path: one sample ------------------------------------------------------

    def _normalised(self, x: np.ndarray):
        """``x`` ``(m, 1)`` -> ``(x_hat (m, 1), sigma)``."""
        d = centred(x, 0)[0]
        sigma = np.sqrt(np.mean(d * d) + self.eps)
        return d / sigma, sigma

    def forward(self, x, mode="train", *, check=True):
        """``x`` ``(m, 1)`` -> ``y = gamma * x_hat + beta`` ``(m, 1)`` and the context ``(x_hat, sigma)``."""
        check_mode(mode)
        if check:
            x = as_column(x, "x", self.n_in, self.dtype)
        x_hat, sigma = self._normalised(x)
        return self.gamma[:, None] * x_hat + self.beta[:, None], (x_hat, sigma)

    def _jacobian_x_from(self, x_hat, sigma):
        m = x_hat.shape[0]
        inner = np.eye(m, dtype=x_hat.dtype) - 1.0 / m - (x_hat @ x_hat.T) / m
        return (self.gamma[:, None] / sigma) * inner

    def jacobian_x(self, x):
        """``dy/dx = diag(gamma) (1/sigma) (I - 1 1^T/m - x_hat x_hat^T/m)`` ``(m, m)``."""
        x = as_column(x, "x", self.n_in, self.dtype)
        return self._jacobian_x_from(*self._normalised(x))

    def jacobian_gamma(self, x):
        """``dy/dgamma = diag(x_hat)`` ``(m, m)``."""
        x = as_column(x, "x", self.n_in, self.dtype)
        return np.diag(self._normalised(x)[0][:, 0])

    def jacobian_beta(self, x):
        """``dy/dbeta = I_m`` ``(m, m)``."""
        as_column(x, "x", self.n_in, self.dtype)
        return np.eye(self.n_in, dtype=self.dtype)

    def backward(self, grad_y, ctx, *, check=True):
        """Row ``dL/dy`` ``(1, m)`` -> ``dL/dx = dL/dy J_x`` ``(1, m)`` and
        ``{"gamma": dL/dy diag(x_hat), "beta": dL/dy I}`` in ``(m,)`` shape."""
        if check:
            grad_y = as_row(grad_y, "grad_y", self.n_out, self.dtype)
        x_hat, sigma = ctx
        J_gamma = np.diag(x_hat[:, 0])
        J_beta = np.eye(self.n_in, dtype=self.dtype)
        return grad_y @ self._jacobian_x_from(x_hat, sigma), {
            "gamma": (grad_y @ J_gamma)[0],
            "beta": (grad_y @ J_beta)[0],
        }

    # -- batched path --------------------------------------------------------------------

    def _stats_batched(self, X):
        """``X`` ``(N, m)`` -> ``(x_hat (N, m), sigma (N, 1))``, each row normalised over its features."""
        D = centred(X, 1)[0]
        sigma = np.sqrt(np.mean(D * D, axis=1, keepdims=True) + self.eps)
        return D / sigma, sigma

    def forward_batched(self, X, mode="train", *, out=None):
        """``X`` ``(N, m)`` -> ``Y = gamma * x_hat + beta`` ``(N, m)`` and the context ``(x_hat, sigma)``
        (``out`` unused)."""
        check_mode(mode)
        X = as_batch(X, "X", self.n_in, self.dtype)
        x_hat, sigma = self._stats_batched(X)
        return self.gamma * x_hat + self.beta, (x_hat, sigma)

    def backward_batched(self, G, ctx, *, input_grad=True, per_sample=False, out=None):
        """``G = dL/dY`` ``(N, m)`` -> ``dX`` ``(N, m)`` (None if not ``input_grad``) and the gradients
        (formulas in the module docstring; ``per_sample=True``: ``(N, m)`` stacks; ``out`` unused)."""
        x_hat, sigma = ctx
        m = x_hat.shape[1]
        dX = None
        if input_grad:
            H = G * self.gamma
            dX = (m * H - H.sum(axis=1, keepdims=True) - x_hat * (H * x_hat).sum(axis=1, keepdims=True)) / (m * sigma)
        if per_sample:
            return dX, {"gamma": G * x_hat, "beta": G.copy()}
        return dX, {"gamma": (G * x_hat).sum(axis=0), "beta": G.sum(axis=0)}

    # -- batched path: Jacobians (explicit, opt-in) ----------------------------------------

    def jacobian_x_batched(self, X):
        """``dy_k/dx_k`` for every row, ``(N, m, m)``: the VJP of each basis row, written as
        ``gamma_i / sigma_k (delta_ij - 1/m - x_hat_ki x_hat_kj / m)`` with broadcasting."""
        X = as_batch(X, "X", self.n_in, self.dtype)
        x_hat, sigma = self._stats_batched(X)
        m = self.n_in
        outer = x_hat[:, :, None] * x_hat[:, None, :]
        return (self.gamma[None, :, None] / sigma[:, :, None]) * (np.eye(m, dtype=self.dtype) - 1.0 / m - outer / m)
