"""Row-wise softmax S = softmax(Z) and its VJP G J = S * (G - rowsum(G * S)).

    jacobian-nn check examples/gallery/softmax_diagonal.py --forward softmax --backward vjp_diagonal \
        --shape 3,4 --reference softmax                                 # FAIL: diagonal_only
    jacobian-nn check examples/gallery/softmax_diagonal.py --forward softmax --backward vjp \
        --shape 3,4 --reference softmax                                 # pass
"""

import numpy as np


def softmax(Z):
    E = np.exp(Z - Z.max(axis=1, keepdims=True))
    return E / E.sum(axis=1, keepdims=True)


def vjp(Z, G):
    S = softmax(Z)
    return S * (G - np.sum(G * S, axis=1, keepdims=True))


def vjp_diagonal(Z, G):
    """The slip: only d s_i / d z_i = s_i (1 - s_i), as if softmax were elementwise."""
    S = softmax(Z)
    return G * S * (1.0 - S)
