"""Verify-side groups of ``jacobian-nn verify`` that exercise both paths: the batched path
against the stacked reference (:func:`crosscheck_rows`), and batch norm, dropout and CS231n's
FullyConnectedNet against finite differences (:func:`batchnorm_rows`). Nothing in the library
imports this module; :mod:`jacobian_nn.verify` does.
"""

from __future__ import annotations

import numpy as np

from ._validation import columns, rows_of
from .crosscheck import cross_check
from .fcnet import FullyConnectedNet, flatten_input
from .fd import Comparison, compare, fd_gradient, fd_jacobian, fd_loss_gradient
from .layers import Dense
from .network import Network
from .normalization import BatchNorm, Dropout, same_randomness


# --------------------------------------------------------------------------- the batched path vs the reference

#: Seed of the ``jacobian-nn verify`` cross-check group.
CROSSCHECK_SEED = 20261123


def crosscheck_networks(seed: int = CROSSCHECK_SEED):
    """Small float64 networks covering every activation and every loss, with both penalties."""
    rng = np.random.default_rng(seed)
    nets = [
        (
            "tanh-relu-identity, softmax+CE, l2",
            Network(
                [Dense(3, 6, "tanh", seed=rng), Dense(6, 5, "relu", seed=rng), Dense(5, 4, "identity", seed=rng)],
                "softmax_cross_entropy",
                l2=0.01,
            ),
        ),
        (
            "sigmoid-elu-softmax, CE, l1",
            Network(
                [
                    Dense(3, 5, "sigmoid", init="xavier", seed=rng),
                    Dense(5, 5, "elu", seed=rng),
                    Dense(5, 4, "softmax", init="xavier", seed=rng),
                ],
                "cross_entropy",
                l1=0.01,
            ),
        ),
        (
            "step-leaky_relu-identity, mse, l1+l2+bias",
            Network(
                [Dense(4, 6, "step", seed=rng), Dense(6, 5, "leaky_relu", seed=rng), Dense(5, 2, "identity", seed=rng)],
                "mse",
                l2=0.05,
                l1=0.01,
                regularize_bias=True,
            ),
        ),
    ]
    for _, net in nets:
        for p in net.params:
            p["b"][:] = rng.normal(scale=0.5, size=p["b"].shape)
    return nets


def crosscheck_rows() -> list:
    """``jacobian-nn verify`` group: cross-check rows of :func:`crosscheck_networks` on N = 7 samples."""
    rng = np.random.default_rng(CROSSCHECK_SEED + 1)
    out = []
    for label, net in crosscheck_networks():
        X = rng.normal(size=(7, net.n_in))
        Y = rng.integers(0, net.n_out, size=7)
        for r in cross_check(net, X, Y).rows:
            c = r.comparison
            out.append(Comparison(f"{label}: {r.quantity}", c.max_abs, c.max_rel, c.location, c.tolerance, c.passed))
    return out


# --------------------------------------------------------------------------- batch norm, dropout, FullyConnectedNet

#: Seed of the ``jacobian-nn verify`` batch-norm / dropout group.
BATCHNORM_SEED = 20261124


def batchnorm_rows() -> list:
    """``jacobian-nn verify`` group ``batchnorm``: batch norm and dropout, both modes, both paths,
    against finite differences of the whole batch's loss.

    Layer checks use ``L = sum(U * Y)`` for a fixed random ``U`` ``(N, m)``, so ``dL/dY = U``;
    network checks differentiate the batch loss w.r.t. every parameter, with the dropout
    masks fixed and the running statistics frozen (:func:`~jacobian_nn.normalization.same_randomness`).
    Biases are random so that no ReLU input sits exactly on its kink.
    """

    rng = np.random.default_rng(BATCHNORM_SEED)
    out = []
    N, m = 5, 3
    X = rng.normal(size=(N, m))
    U = rng.normal(size=(N, m))
    urows = rows_of(U)
    xs = columns(X)

    # -- batch norm layer
    bn = BatchNorm(m, gamma=rng.uniform(0.5, 2.0, m), beta=rng.normal(size=m), update_running=False)
    bn.running_mean[:] = rng.normal(size=m)
    bn.running_var[:] = rng.uniform(0.5, 2.0, m)
    g0, b0 = bn.gamma.copy(), bn.beta.copy()

    def bn_out(mode, Xv=X, gamma=g0, beta=b0):
        probe = BatchNorm(m, gamma=gamma, beta=beta, update_running=False)
        probe.running_mean[:], probe.running_var[:] = bn.running_mean, bn.running_var
        return probe.forward_batched(Xv, mode)[0]

    for mode in ("train", "test"):
        fd = fd_jacobian(lambda v: bn_out(mode, Xv=v.reshape(N, m)), X)
        out.append(
            compare(
                f"batchnorm[{mode}]: explicit d vec(Y)/d vec(X) (Nm, Nm)",
                bn.jacobian_x_coupled(xs, mode),
                fd.df,
                err=fd.error,
            )
        )
        ys, ctx = bn.forward_samples(xs, mode)
        gx, gr = bn.backward_samples(urows, ctx)
        Y, ctx = bn.forward_batched(X, mode)
        dX, gb = bn.backward_batched(U, ctx)
        fd_x = fd_gradient(lambda v: np.sum(U * bn_out(mode, Xv=v.reshape(N, m))), X)
        fd_g = fd_gradient(lambda v: np.sum(U * bn_out(mode, gamma=v)), g0)
        fd_b = fd_gradient(lambda v: np.sum(U * bn_out(mode, beta=v)), b0)
        for path, gxv, grads in (("reference", np.vstack(gx), gr), ("batched", dX, gb)):
            out.append(compare(f"batchnorm[{mode}] {path}: dL/dX (N, m)", gxv.reshape(1, -1), fd_x.df, err=fd_x.error))
            out.append(
                compare(f"batchnorm[{mode}] {path}: dL/dgamma (m,)", grads["gamma"][None], fd_g.df, err=fd_g.error)
            )
            out.append(
                compare(f"batchnorm[{mode}] {path}: dL/dbeta (m,)", grads["beta"][None], fd_b.df, err=fd_b.error)
            )

    # -- dropout layer (p = 0.4, one fixed mask for both paths and the witness)
    drop = Dropout(m, 0.4, seed=rng.spawn(1)[0])
    keep = drop.sample_mask(N)
    for mode in ("train", "test"):
        with drop.using_mask(keep):
            fd = fd_gradient(lambda v: np.sum(U * drop.forward_batched(v.reshape(N, m), mode)[0]), X)
            ys, ctx = drop.forward_samples(xs, mode)
            gx, _ = drop.backward_samples(urows, ctx)
            dX, _ = drop.backward_batched(U, drop.forward_batched(X, mode)[1])
        out.append(
            compare(f"dropout[{mode}] reference: dL/dX (N, m)", np.vstack(gx).reshape(1, -1), fd.df, err=fd.error)
        )
        out.append(compare(f"dropout[{mode}] batched: dL/dX (N, m)", dX.reshape(1, -1), fd.df, err=fd.error))

    # -- FullyConnectedNet with batch norm and dropout, (N, 2, 2) inputs flattened
    net = FullyConnectedNet(
        [5, 4],
        input_dim=4,
        num_classes=3,
        dropout=0.3,
        use_batchnorm=True,
        reg=0.05,
        weight_scale=0.5,
        seed=rng.spawn(1)[0],
    )
    for p in net.params:
        for name, v in p.items():
            if name in ("b", "beta"):
                v[:] = rng.normal(scale=0.3, size=v.shape)
    for layer in net.layers:
        if isinstance(layer, BatchNorm):
            layer.running_mean[:] = rng.normal(scale=0.3, size=layer.n_in)
            layer.running_var[:] = rng.uniform(0.5, 2.0, layer.n_in)
    Xn = rng.normal(size=(6, 2, 2))
    Yn = rng.integers(0, 3, size=6)
    for mode in ("train", "test"):
        with same_randomness(net, 6):
            fd = fd_loss_gradient(net, Xn, Yn, mode, path="batched")
            _, gr = net.loss_and_gradients(Xn, Yn, mode)
            _, gb = net.loss_and_gradients_batched(Xn, Yn, mode)
        for path, g in (("reference", gr), ("batched", gb)):
            out.append(
                compare(
                    f"fcnet bn+dropout[{mode}] {path}: dL/dtheta", net.flatten_gradients(g)[None], fd.df, err=fd.error
                )
            )

    # -- path agreement (cross_check fixes the masks and freezes the running statistics itself)
    for r in cross_check(net, flatten_input(Xn), Yn).rows:
        c = r.comparison
        out.append(
            type(c)(
                f"fcnet bn+dropout cross-check: {r.quantity}", c.max_abs, c.max_rel, c.location, c.tolerance, c.passed
            )
        )
    return out
