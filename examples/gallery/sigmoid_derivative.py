"""The logistic sigmoid s = 1 / (1 + exp(-x)) and its per-sample Jacobians diag(s (1 - s)).

    jacobian-nn check examples/gallery/sigmoid_derivative.py --forward sigmoid --jacobian jacobian_wrong \
        --shape 3,4 --reference sigmoid                                 # FAIL: mismatch (diagonal entries)
    jacobian-nn check examples/gallery/sigmoid_derivative.py --forward sigmoid --jacobian jacobian \
        --shape 3,4 --reference sigmoid                                 # pass
"""

import numpy as np


def sigmoid(X):
    return 1.0 / (1.0 + np.exp(-X))


def _diagonal(D):
    N, m = D.shape
    J = np.zeros((N, m, m))
    J[:, np.arange(m), np.arange(m)] = D
    return J


def jacobian(X):
    s = sigmoid(X)
    return _diagonal(s * (1.0 - s))


def jacobian_wrong(X):
    """The slip: s (1 - x), the input where the output belongs."""
    return _diagonal(sigmoid(X) * (1.0 - X))
