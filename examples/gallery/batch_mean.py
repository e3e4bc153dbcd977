"""Batch loss L(Y) = (1/N) sum_k 0.5 ||Y_k - T_k||^2; its VJP is g (Y - T) / N.

    jacobian-nn check examples/gallery/batch_mean.py --forward loss --backward vjp_sum \
        --shape 5,3                                                     # FAIL: missing_batch_scaling
    jacobian-nn check examples/gallery/batch_mean.py --forward loss --backward vjp --shape 5,3   # pass
"""

import numpy as np


def mean_squared_error(T):
    """``(loss, vjp, vjp_sum)`` for targets ``T`` (N, D)."""

    def loss(Y):
        return 0.5 * np.sum((Y - T) ** 2) / Y.shape[0]

    def vjp(Y, g):
        return g * (Y - T) / Y.shape[0]

    def vjp_sum(Y, g):
        """The slip: the gradient of the sum, without the 1/N of the mean."""
        return g * (Y - T)

    return loss, vjp, vjp_sum


T = np.random.default_rng(2).normal(size=(5, 3))
loss, vjp, vjp_sum = mean_squared_error(T)
