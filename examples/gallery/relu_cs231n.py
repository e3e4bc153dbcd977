"""CS231n-style relu layer: relu_forward(x) -> (out, cache), relu_backward(dout, cache) -> dx.

    jacobian-nn check examples/gallery/relu_cs231n.py --forward relu_forward --backward relu_backward_inverted \
        --shape 4,5 --reference relu                                    # FAIL: mismatch (mask inverted)
    jacobian-nn check examples/gallery/relu_cs231n.py --forward relu_forward --backward relu_backward \
        --shape 4,5 --reference relu --input X_AT_KINK                  # pass: kink, x <= 0 branch
"""

import numpy as np

X_AT_KINK = np.random.default_rng(3).normal(size=(4, 5))
X_AT_KINK[0, 0] = X_AT_KINK[2, 3] = 0.0  # exactly at the kink


def relu_forward(x):
    out = np.maximum(0, x)
    cache = x
    return out, cache


def relu_backward(dout, cache):
    x = cache
    return dout * (x > 0)  # relu'(0) = 0: the x <= 0 branch


def relu_backward_inverted(dout, cache):
    """The slip: the mask inverted."""
    x = cache
    return dout * (x <= 0)
