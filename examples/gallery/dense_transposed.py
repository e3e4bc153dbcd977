"""A dense tanh layer, Y = tanh(X W + b), with its per-sample Jacobians dY_k/dX_k (m, n).

    jacobian-nn check examples/gallery/dense_transposed.py --forward forward --jacobian jacobian_transposed \
        --shape 3,4 --reference dense --reference-kwargs DENSE          # FAIL: transposed
    jacobian-nn check examples/gallery/dense_transposed.py --forward forward --jacobian jacobian \
        --shape 3,4 --reference dense --reference-kwargs DENSE          # pass
"""

import numpy as np

rng = np.random.default_rng(0)
W = rng.normal(size=(4, 4))  # (n, m)
b = rng.normal(size=4)  # (m,)
DENSE = {"W": W, "b": b, "activation": "tanh"}


def forward(X):
    """X (N, n) -> Y (N, m)."""
    return np.tanh(X @ W + b)


def jacobian(X):
    """(N, m, n): J_k = diag(1 - tanh(z_k)^2) W^T."""
    d = 1.0 - np.tanh(X @ W + b) ** 2  # (N, m)
    return d[:, :, None] * W.T[None, :, :]


def jacobian_transposed(X):
    """The slip: W diag(d), i.e. J_k transposed (it has the right shape because n == m)."""
    d = 1.0 - np.tanh(X @ W + b) ** 2
    return W[None, :, :] * d[:, None, :]
