"""CS231n-style inverted dropout: dropout_forward(x, dropout_param) -> (out, mask).

Without a seed in dropout_param every call draws a new mask, so f is not a function of x and no
finite difference can witness its derivative: the check refuses. With a seed, it passes.

    jacobian-nn check examples/gallery/dropout_seed.py --forward dropout_forward --backward dropout_backward \
        --arg NO_SEED --shape 4,5                                       # REFUSED: not_deterministic
    jacobian-nn check examples/gallery/dropout_seed.py --forward dropout_forward --backward dropout_backward \
        --arg WITH_SEED --shape 4,5                                     # pass
"""

import numpy as np

NO_SEED = {"p": 0.5}
WITH_SEED = {"p": 0.5, "seed": 123}


def dropout_forward(x, dropout_param):
    p = dropout_param["p"]  # probability of keeping a unit
    rng = np.random.default_rng(dropout_param.get("seed"))  # no seed: fresh entropy on every call
    mask = (rng.random(x.shape) < p) / p
    return x * mask, mask


def dropout_backward(dout, cache):
    return dout * cache
