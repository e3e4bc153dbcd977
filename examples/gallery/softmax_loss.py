"""CS231n softmax loss: loss, dx = softmax_loss(x, y) for scores x (N, C) and labels y (N,).

dx = (softmax(x) - onehot(y)) / N. The slip forgets the -1 at the label entry. Labels are drawn at
random unless --labels names an array in this file.

    jacobian-nn check examples/gallery/softmax_loss.py --forward softmax_loss_no_label_term \
        --shape 8,10                                                    # FAIL: off_at_label
    jacobian-nn check examples/gallery/softmax_loss.py --forward softmax_loss --shape 8,10 --labels Y   # pass
"""

import numpy as np

Y = np.array([0, 3, 9, 2, 2, 7, 1, 5])


def _log_softmax(x):
    z = x - x.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def softmax_loss(x, y):
    N = x.shape[0]
    logp = _log_softmax(x)
    dx = np.exp(logp)
    dx[np.arange(N), y] -= 1
    return -logp[np.arange(N), y].mean(), dx / N


def softmax_loss_no_label_term(x, y):
    """The slip: dx = softmax(x) / N, the -1 at the label forgotten."""
    N = x.shape[0]
    logp = _log_softmax(x)
    return -logp[np.arange(N), y].mean(), np.exp(logp) / N
