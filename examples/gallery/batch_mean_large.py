"""The mean squared error of batch_mean.py over a realistic batch, N = 128 samples of D = 512 features.

The full Jacobian has 65536 x 65536 entries; the check compares sampled entries of one VJP with
finite differences (and the inner-product identity), and still names the missing 1/N. The file
imports batch_mean.py from its own folder, which the check makes importable.

    jacobian-nn check examples/gallery/batch_mean_large.py --forward loss --backward vjp_sum \
        --shape 128,512                                                 # FAIL: missing_batch_scaling
    jacobian-nn check examples/gallery/batch_mean_large.py --forward loss --backward vjp \
        --shape 128,512                                                 # pass
"""

import numpy as np
from batch_mean import mean_squared_error

T = np.random.default_rng(4).normal(size=(128, 512))
loss, vjp, vjp_sum = mean_squared_error(T)
