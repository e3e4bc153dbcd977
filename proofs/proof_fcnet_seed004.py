r"""CS231n walkthrough's ``FullyConnectedNet.loss``: the whole chain {affine - batch norm - relu - dropout} x 2 -
affine - softmax with L2, and what its dropout seeding does."""

from __future__ import annotations

import numpy as np

from jacobian_nn.fcnet import FullyConnectedNet
from jacobian_nn.normalization import Dropout

from ._helpers import assert_close, assert_fd
from ._registry import CONVENTION, HOLDS, proof

RNG = np.random.default_rng(44)
N, D, H1, H2, C = 4, 3, 5, 4, 3
EPS, P, REG = 1e-5, 0.25, 0.1
KEEP1 = RNG.random((N, H1)) < 1 - P
KEEP2 = RNG.random((N, H2)) < 1 - P
X = RNG.normal(size=(N, D))
Y = np.array([0, 2, 1, 2])


def _params():
    r = np.random.default_rng(5)
    return {
        "W1": r.normal(size=(D, H1)),
        "b1": r.normal(size=H1) * 0.1,
        "gamma1": 1 + 0.2 * r.normal(size=H1),
        "beta1": 0.1 * r.normal(size=H1),
        "W2": r.normal(size=(H1, H2)),
        "b2": r.normal(size=H2) * 0.1,
        "gamma2": 1 + 0.2 * r.normal(size=H2),
        "beta2": 0.1 * r.normal(size=H2),
        "W3": r.normal(size=(H2, C)),
        "b3": r.normal(size=C) * 0.1,
    }


def _seed004_fcnet_loss(p):
    """CS231n walkthrough ``FullyConnectedNet.loss`` in train mode, restated from its pieces (affine_forward,
    batchnorm_forward/backward, relu, dropout with fixed masks, softmax_loss, L2 added per layer)."""
    caches, out = [], X
    for i, keep in ((1, KEEP1), (2, KEEP2)):
        a = out @ p[f"W{i}"] + p[f"b{i}"]
        mu, var = a.mean(0), a.var(0)
        xh = (a - mu) / np.sqrt(var + EPS)
        bn = p[f"gamma{i}"] * xh + p[f"beta{i}"]
        r = np.maximum(0, bn)
        mask = keep / (1 - P)
        caches.append((out, a, mu, var, xh, bn, mask))
        out = r * mask
    s = out @ p["W3"] + p["b3"]
    pr = np.exp(s - s.max(1, keepdims=True))
    pr /= pr.sum(1, keepdims=True)
    loss = -np.mean(np.log(pr[np.arange(N), Y])) + sum(0.5 * REG * np.sum(p[f"W{i}"] ** 2) for i in (1, 2, 3))
    dout = pr.copy()
    dout[np.arange(N), Y] -= 1
    dout /= N
    g = {"W3": out.T @ dout + REG * p["W3"], "b3": dout.sum(0)}
    dout = dout @ p["W3"].T
    for i in (2, 1):
        xin, a, mu, var, xh, bn, mask = caches[i - 1]
        dout = dout * mask  # dropout_backward
        dout = dout * (bn > 0)  # relu_backward
        g[f"gamma{i}"], g[f"beta{i}"] = (dout * xh).sum(0), dout.sum(0)
        dxh = dout * p[f"gamma{i}"]  # batchnorm_backward, CS231n walkthrough's staged form
        dvar = -0.5 * (var + EPS) ** -1.5 * np.sum(dxh * (a - mu), 0)
        dmean = -np.sum(dxh / np.sqrt(var + EPS), 0) + dvar * np.mean(-2 * (a - mu), 0)
        da = dxh / np.sqrt(var + EPS) + dvar * 2 / N * (a - mu) + dmean / N
        g[f"W{i}"], g[f"b{i}"] = xin.T @ da + REG * p[f"W{i}"], da.sum(0)
        dout = da @ p[f"W{i}"].T
    return loss, g


@proof(
    id="fcnet.loss004",
    seed="004",
    location="§5.4 FullyConnectedNet.loss (train mode, batch norm and dropout on)",
    statement="{affine - [batch norm] - relu - [dropout]} x (L - 1) - affine - softmax; backward: "
    "dropout_backward, affine_bn_relu_backward per hidden layer, grads[W] = dw + reg * W, "
    "loss += 0.5 * reg * sum(W**2) per layer",
    verdict=HOLDS,
)
def test_fcnet_loss004(claim=_seed004_fcnet_loss):
    r"""**CS231n walkthrough, ``FullyConnectedNet.loss`` with every option on.**

    > ``out, fc_mix_cache[i] = affine_bn_relu_forward(out, w, b, gamma, beta, self.bn_params[i])``;
    > ``out, dp_cache[i] = dropout_forward(out, self.dropout_param)``; ``loss, dout = softmax_loss(scores, y)``;
    > ``loss += 0.5 * self.reg * np.sum(W_L**2)``; ``dout = dropout_backward(dout, dp_cache[ri])``;
    > ``dout, dw, db, dgamma, dbeta = affine_bn_relu_backward(dout, fc_mix_cache[ri])``;
    > ``grads["W%d" % (ri+1,)] = dw + self.reg * self.params["W%d" % (ri+1,)]``.

    Derivation. Each piece is proved separately (``softmax.loss_code_batch``, ``affine.dimension_matching004``,
    ``act.relu004_prose``, ``batchnorm.train_jacobian``, ``dropout.jacobian``, ``reg.l2_004``); the chain rule
    composes their VJPs in reverse order. The backward loop visits hidden layer $ri$ in the order
    dropout, relu, batch norm, affine: the reverse of the forward order. With the dropout masks held fixed,
    the loss is a differentiable function of all parameters (away from relu kinks).

    Verdict: **holds**. Check: the restated composite gradient equals FD of the restated loss for all ten
    parameter arrays; ``jacobian_nn.fcnet.FullyConnectedNet`` with the same parameters and masks gives the
    same loss and gradients on both the reference and the batched path.
    """
    p = _params()
    loss, g = claim(p)
    for k in p:

        def f(v, k=k):
            q = dict(p)
            q[k] = v.reshape(p[k].shape)
            return claim(q)[0]

        assert_fd(k, g[k].reshape(1, -1), f, p[k].reshape(-1), gradient=True)
    net = FullyConnectedNet(
        [H1, H2], input_dim=D, num_classes=C, dropout=P, use_batchnorm=True, reg=REG, seed=0, eps=EPS
    )
    for k, v in net.named_params.items():
        v[...] = p[k]
    drops = [layer for layer in net.layers if isinstance(layer, Dropout)]
    for path in ("reference", "batched"):
        with drops[0].using_mask(KEEP1), drops[1].using_mask(KEEP2):
            if path == "reference":
                lib_loss, grads = net.loss_and_gradients(X, Y, "train")
            else:
                lib_loss, grads = net.loss_and_gradients_batched(X, Y, "train")
        assert abs(lib_loss - loss) < 1e-10, (path, lib_loss, loss)
        for k, v in net.named_gradients(grads).items():
            assert_close(f"{path} {k}", v, g[k], atol=1e-10, rtol=1e-8)


def _fresh_masks(shape, seed, p, calls=2):
    """What dropout training needs: one generator, advanced from call to call (a fresh mask each time)."""
    r = np.random.RandomState(seed)
    return [(r.rand(*shape) < 1 - p) / (1 - p) for _ in range(calls)]


def _reseeded_masks(shape, seed, p, calls=2):
    """The code: ``np.random.seed(dropout_param['seed'])`` before every draw."""
    return [(np.random.RandomState(seed).rand(*shape) < 1 - p) / (1 - p) for _ in range(calls)]


@proof(
    id="dropout.reseed004",
    seed="004",
    location="§5.3 dropout_forward (np.random.seed) and §5.4 FullyConnectedNet(seed=...)",
    statement="'Passing seed makes this function deterministic, which is needed for gradient checking but not in "
    "real networks'; FullyConnectedNet: if seed is not None: self.dropout_param['seed'] = seed",
    verdict=CONVENTION,
    corrected="deterministic masks are what a gradient check needs, but FullyConnectedNet passes its seed into "
    "training too: every dropout call then re-seeds and draws the same mask, at every step and in every "
    "layer of one width, so the network trains one fixed sub-network instead of dropout",
)
def test_reseed004(seed=_fresh_masks, corrected=_reseeded_masks):
    r"""**CS231n walkthrough, seeding the dropout mask.**

    > ``if 'seed' in dropout_param: np.random.seed(dropout_param['seed'])``; ``mask = (np.random.rand(*x.shape) < keep_prob) / keep_prob``;
    > docstring: "Passing seed makes this function deterministic, which is needed for gradient checking but not in
    > real networks"; ``FullyConnectedNet.__init__``: ``if seed is not None: self.dropout_param['seed'] = seed``.

    Derivation. Re-seeding before each draw makes the draw a function of the source and the shape only. So all
    training steps (and all hidden layers of equal width) share one mask: the expectation argument of
    dropout (proof ``dropout.inverted004``) no longer applies across steps. (The project never seeds a global
    generator; the restatement uses a local ``RandomState`` with the same seed, which draws the same numbers.)

    Verdict: **holds under a stated convention** (fine for gradient checks; not for training with a seed).
    Check: two calls give the identical mask; the library's ``FullyConnectedNet(seed=...)`` draws different
    masks in successive training calls and in its two layers.
    """
    m1, m2 = corrected((N, H1), 7, P)
    assert np.array_equal(m1, m2), "the code draws the same mask on every call"
    f1, f2 = seed((N, H1), 7, P)
    assert not np.array_equal(f1, f2), "dropout proper draws a new mask per call"
    net = FullyConnectedNet([H1, H1], input_dim=D, num_classes=C, dropout=P, seed=7)
    drops = [layer for layer in net.layers if isinstance(layer, Dropout)]
    a, b = drops[0].sample_mask(N), drops[0].sample_mask(N)
    c = drops[1].sample_mask(N)
    assert not np.array_equal(a, b) and not np.array_equal(a, c)
