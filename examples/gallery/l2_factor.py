"""L2 regularisation R(W) = 0.5 reg ||W||^2, whose gradient is reg W (CS231n's convention).

    jacobian-nn check examples/gallery/l2_factor.py --forward penalty --jacobian gradient_doubled \
        --shape 3,4 --unbatched                                         # FAIL: constant_factor 2
    jacobian-nn check examples/gallery/l2_factor.py --forward penalty --jacobian gradient \
        --shape 3,4 --unbatched                                         # pass
"""

import numpy as np

reg = 0.1


def penalty(W):
    return 0.5 * reg * np.sum(W * W)


def gradient(W):
    return reg * W


def gradient_doubled(W):
    """The slip: the derivative of reg ||W||^2, not of 0.5 reg ||W||^2."""
    return 2.0 * reg * W
