"""A batch loss L(Y) = (1/N) sum 0.5 ||Y_k - T_k||^2 and two candidate VJPs.

grad_only returns dL/dY and forgets the incoming cotangent g: it is right only for g = 1, and a
checker that compared it with unit cotangents alone would call it a factor of 1. It is refused.

    jacobian-nn check examples/gallery/ignores_cotangent.py --forward loss --backward grad_only \
        --shape 6,4                                                     # REFUSED: ignores_cotangent
    jacobian-nn check examples/gallery/ignores_cotangent.py --forward loss --backward vjp --shape 6,4   # pass
"""

import numpy as np

T = np.random.default_rng(11).normal(size=(6, 4))


def loss(Y):
    return 0.5 * np.sum((Y - T) ** 2) / Y.shape[0]


def grad_only(Y, g):
    """The slip: g is never used."""
    return (Y - T) / Y.shape[0]


def vjp(Y, g):
    return g * (Y - T) / Y.shape[0]
