"""CS231n affine layer: affine_forward(x, w, b) -> (x w + b, cache), affine_backward -> (dx, dw, db).

Every gradient the backward returns is checked in its own section. With a square w, a dw computed
as dout^T x (the transpose of x^T dout) has the right shape and the wrong layout.

    jacobian-nn check examples/gallery/affine_dw.py --forward affine_forward --backward affine_backward_dw_transposed \
        --arg W --arg B --shape 4,6                                     # FAIL: transposed
    jacobian-nn check examples/gallery/affine_dw.py --forward affine_forward --backward affine_backward \
        --arg W --arg B --shape 4,6                                     # pass
"""

import numpy as np

_rng = np.random.default_rng(5)
W = _rng.normal(size=(6, 6))
B = _rng.normal(size=6)


def affine_forward(x, w, b):
    return x @ w + b, (x, w, b)


def affine_backward(dout, cache):
    x, w, b = cache
    return dout @ w.T, x.T @ dout, dout.sum(axis=0)


def affine_backward_dw_transposed(dout, cache):
    """The slip: dw = dout^T x."""
    x, w, b = cache
    return dout @ w.T, dout.T @ x, dout.sum(axis=0)
