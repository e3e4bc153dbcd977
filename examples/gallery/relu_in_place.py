"""A CS231n-style relu whose backward writes into dout (as some textbook layers do).

The caller's dout is changed by the call; the check refuses such a backward. The twin copies first.

    jacobian-nn check examples/gallery/relu_in_place.py --forward relu_forward --backward relu_backward_in_place \
        --shape 4,5                                                     # REFUSED: mutates_argument
    jacobian-nn check examples/gallery/relu_in_place.py --forward relu_forward --backward relu_backward \
        --shape 4,5                                                     # pass
"""

import numpy as np


def relu_forward(x):
    return np.maximum(0, x), x


def relu_backward_in_place(dout, cache):
    """The slip: dout[mask] = 0 changes the caller's array."""
    dout[cache <= 0] = 0
    return dout


def relu_backward(dout, cache):
    dx = dout.copy()
    dx[cache <= 0] = 0
    return dx
