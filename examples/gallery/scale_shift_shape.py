"""A per-feature scale and shift y = gamma * x + beta, x (N, D), gamma and beta (D,).

scale_shift_backward_keepdims sums dgamma with keepdims=True, so dgamma has shape (1, D) where gamma
has (D,): the check refuses a gradient whose shape is not exactly its array's.

    jacobian-nn check examples/gallery/scale_shift_shape.py --forward scale_shift_forward \
        --backward scale_shift_backward_keepdims --arg 5 --arg 5 --shape 4,5   # REFUSED: wrong_shape
    jacobian-nn check examples/gallery/scale_shift_shape.py --forward scale_shift_forward \
        --backward scale_shift_backward --arg 5 --arg 5 --shape 4,5            # pass
"""

import numpy as np


def scale_shift_forward(x, gamma, beta):
    return gamma * x + beta, (x, gamma)


def scale_shift_backward(dout, cache):
    x, gamma = cache
    return dout * gamma, np.sum(dout * x, axis=0), np.sum(dout, axis=0)


def scale_shift_backward_keepdims(dout, cache):
    """The slip: dgamma of shape (1, D)."""
    x, gamma = cache
    return dout * gamma, np.sum(dout * x, axis=0, keepdims=True), np.sum(dout, axis=0)
