"""Squared error L(y) = 0.5 ||y - t||^2 and its gradient dL/dy = y - t.

    jacobian-nn check examples/gallery/mse_sign.py --forward loss --jacobian gradient_flipped \
        --shape 5                                                       # FAIL: sign_flipped
    jacobian-nn check examples/gallery/mse_sign.py --forward loss --jacobian gradient --shape 5   # pass
"""

import numpy as np

t = np.random.default_rng(1).normal(size=5)


def loss(y):
    return 0.5 * np.sum((y - t) ** 2)


def gradient(y):
    return y - t


def gradient_flipped(y):
    """The slip: t - y."""
    return t - y
