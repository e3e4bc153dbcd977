"""A mean squared error over a realistic batch, N = 128 samples of D = 512 features.

The full Jacobian has 65536 x 65536 entries; the check compares sampled entries of one VJP with
finite differences (and the inner-product identity), and still names the missing 1/N.

    jacobian-nn check examples/gallery/batch_mean_large.py --forward loss --backward vjp_sum \
        --shape 128,512                                                 # FAIL: missing_batch_scaling
    jacobian-nn check examples/gallery/batch_mean_large.py --forward loss --backward vjp \
        --shape 128,512                                                 # pass
"""
import numpy as np

T = np.random.default_rng(4).normal(size=(128, 512))


def loss(Y):
    return 0.5 * np.sum((Y - T) ** 2) / Y.shape[0]


def vjp(Y, g):
    return g * (Y - T) / Y.shape[0]


def vjp_sum(Y, g):
    """The slip: the gradient of the sum, without the 1/N of the mean."""
    return g * (Y - T)
