"""tanh and its VJP G * (1 - tanh(X)^2).

    jacobian-nn check examples/gallery/tanh_derivative.py --forward forward --backward vjp_wrong \
        --shape 3,4 --reference tanh                                    # FAIL: mismatch (diagonal entries)
    jacobian-nn check examples/gallery/tanh_derivative.py --forward forward --backward vjp \
        --shape 3,4 --reference tanh --dtype float32                    # pass, float32 tolerances
"""

import numpy as np


def forward(X):
    return np.tanh(X)


def vjp(X, G):
    return G * (1.0 - np.tanh(X) ** 2)


def vjp_wrong(X, G):
    """The slip: 1 - tanh(x) instead of 1 - tanh(x)^2."""
    return G * (1.0 - np.tanh(X))
