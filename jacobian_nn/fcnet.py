"""Seed 004's ``FullyConnectedNet`` as a :class:`~jacobian_nn.network.Network`.

Architecture (L = len(hidden_dims) + 1 affine layers)::

    {affine - [batch norm] - relu - [dropout]} x (L - 1) - affine - softmax

mapped onto layers as

* without batch norm: ``Dense(relu)`` (seed 004's ``affine_relu_forward``),
* with batch norm:    ``Dense(identity) -> BatchNorm -> ActivationLayer(relu)``,
* then ``Dropout(p)`` if ``dropout > 0``,
* last: ``Dense(identity)`` giving logits, loss ``SoftmaxCrossEntropy``.

Because it is a Network, both paths (``loss_and_gradients`` /
``loss_and_gradients_batched``), ``apply_update``, the solver and
``jacobian-nn train`` use it unchanged. Mode is an argument of each call
(``"train"`` / ``"test"``), never stored on the network.

Parameters follow seed 004: ``W ~ weight_scale * N(0, 1)``, ``b = 0``,
``gamma = 1``, ``beta = 0``; L2 is ``0.5 * reg * sum ||W||^2`` over the weights
only (``Network(l2=reg)``; biases, gamma and beta are not penalised). One
Generator made from ``seed`` draws the weights, layer by layer; each dropout
layer gets its own child Generator (``Generator.spawn``), so layers draw
different masks and every call draws a fresh one. (Seed 004 re-seeds the global
RNG with the same seed in every ``dropout_forward`` call, which gives every
step, and every layer of one width, the same mask.)

Inputs of shape ``(N, d1, ..., dk)`` are flattened to ``(N, d1 * ... * dk)``
row-major, as seed 004's ``affine_forward`` does (``x.reshape(N, -1)``).
"""

from __future__ import annotations

import numpy as np

from ._validation import FLOAT_DTYPES, check_nonnegative, check_positive
from ._validation import as_generator
from .layers import Dense
from .losses import SoftmaxCrossEntropy
from .network import Network
from .normalization import ActivationLayer, BatchNorm, Dropout, check_drop_probability


def flatten_input(X):
    """``(N, d1, ..., dk)`` -> ``(N, d1 * ... * dk)`` (row-major reshape, a view when possible);
    2-D and lower-dimensional inputs are returned unchanged for the usual checks."""
    arr = np.asarray(X)
    if arr.ndim > 2:
        return arr.reshape(arr.shape[0], -1)
    return X


class FullyConnectedNet(Network):
    """Seed 004's fully connected network with optional batch norm and dropout.

    Parameters
    ----------
    hidden_dims : list of hidden widths (may be empty: a single affine layer).
    input_dim : input features ``d1 * ... * dk`` (default 3*32*32, CIFAR-10).
    num_classes : number of classes (default 10).
    dropout : drop probability in [0, 1); 0 (default) adds no dropout layers.
    use_batchnorm : insert batch norm between each hidden affine map and its relu.
    reg : L2 strength, penalty ``0.5 * reg * sum ||W||^2`` (weights only).
    weight_scale : standard deviation of the initial weights (default 1e-2).
    dtype : float64 (default; the reference path needs it) or float32 (batched path).
    seed : int, Generator or None; weights and dropout masks.
    eps, momentum : batch-norm settings (defaults 1e-5, 0.9).
    """

    def __init__(self, hidden_dims, input_dim: int = 3 * 32 * 32, num_classes: int = 10, dropout: float = 0.0,
                 use_batchnorm: bool = False, reg: float = 0.0, weight_scale: float = 1e-2, dtype=np.float64,
                 seed=None, *, eps: float = 1e-5, momentum: float = 0.9):
        hidden_dims = list(hidden_dims)
        for name, v in [("input_dim", input_dim), ("num_classes", num_classes)] + \
                [(f"hidden_dims[{i}]", h) for i, h in enumerate(hidden_dims)]:
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ValueError(f"{name}: expected a positive integer, got {v!r}")
        p = check_drop_probability(dropout, "dropout")
        reg = check_nonnegative(reg, "reg")
        weight_scale = check_positive(weight_scale, "weight_scale")
        dtype = np.dtype(dtype)
        if dtype not in FLOAT_DTYPES:
            raise TypeError(f"dtype: expected float64 or float32, got {dtype}")
        rng = as_generator(seed)
        layers, names = [], []
        n = int(input_dim)
        for i, h in enumerate(hidden_dims, start=1):
            h = int(h)
            dense = Dense(n, h, "identity" if use_batchnorm else "relu", init="scaled_normal",
                          weight_scale=weight_scale, seed=rng, dtype=dtype)
            layers.append(dense)
            names += [(f"W{i}", len(layers) - 1, "W"), (f"b{i}", len(layers) - 1, "b")]
            if use_batchnorm:
                layers.append(BatchNorm(h, eps=eps, momentum=momentum, dtype=dtype))
                names += [(f"gamma{i}", len(layers) - 1, "gamma"), (f"beta{i}", len(layers) - 1, "beta")]
                layers.append(ActivationLayer(h, "relu", dtype=dtype))
            if p > 0:
                layers.append(Dropout(h, p, seed=rng.spawn(1)[0], dtype=dtype))
            n = h
        L = len(hidden_dims) + 1
        layers.append(Dense(n, int(num_classes), "identity", init="scaled_normal", weight_scale=weight_scale,
                            seed=rng, dtype=dtype))
        names += [(f"W{L}", len(layers) - 1, "W"), (f"b{L}", len(layers) - 1, "b")]
        super().__init__(layers, SoftmaxCrossEntropy(), l2=reg)
        self.hidden_dims = hidden_dims
        self.dropout = p
        self.use_batchnorm = bool(use_batchnorm)
        self.num_layers = L
        self._names = names

    @property
    def reg(self) -> float:
        """Seed 004's name for the L2 strength (``l2``)."""
        return self.l2

    @property
    def named_params(self) -> dict:
        """Seed 004's parameter names -> the live arrays: ``W1, b1, gamma1, beta1, ..., WL, bL``."""
        return {name: self.layers[i].params[key] for name, i, key in self._names}

    def named_gradients(self, grads) -> dict:
        """Gradients (one dict per layer) keyed by seed 004's names, as :attr:`named_params`."""
        return {name: grads[i][key] for name, i, key in self._names}

    def __repr__(self) -> str:
        return (f"FullyConnectedNet(hidden_dims={self.hidden_dims}, input_dim={self.n_in}, "
                f"num_classes={self.n_out}, dropout={self.dropout}, use_batchnorm={self.use_batchnorm}, "
                f"reg={self.l2})")

    # -- inputs (N, d1, ..., dk) are flattened, as in seed 004's affine_forward ------------------

    def input_batch(self, X):
        """``X`` ``(N, d1, ..., dk)`` flattened to ``(N, d1 * ... * dk)``, then checked as the input batch."""
        return super().input_batch(flatten_input(X))

    # -- seed 004's interface ------------------------------------------------------------

    def seed_loss(self, X, y=None):
        """Seed 004's ``loss(X, y)`` (renamed: ``self.loss`` is the Loss object): scores ``(N, C)`` in test mode when ``y`` is None, else
        ``(loss, grads)`` in train mode with ``grads`` keyed ``W1, b1, gamma1, ...``.
        Runs the batched path."""
        if y is None:
            return self.predict_batched(X)
        loss, grads = self.loss_and_gradients_batched(X, y, "train")
        return loss, self.named_gradients(grads)


# --------------------------------------------------------------------------- verify group

#: Seed of the ``jacobian-nn verify`` batch-norm / dropout group.
VERIFY_SEED = 20261124


def _rows_of(layer, X):
    return [X[k][:, None] for k in range(X.shape[0])]


def verify_rows() -> list:
    """``jacobian-nn verify`` group ``batchnorm``: batch norm and dropout, both modes, both paths,
    against finite differences of the whole batch's loss.

    Layer checks use ``L = sum(U * Y)`` for a fixed random ``U`` ``(N, m)``, so ``dL/dY = U``;
    network checks differentiate the batch loss w.r.t. every parameter, with the dropout
    masks fixed and the running statistics frozen (:func:`~jacobian_nn.normalization.same_randomness`).
    Biases are random so that no ReLU input sits exactly on its kink.
    """
    from .fd import compare, fd_gradient, fd_jacobian, fd_loss_gradient
    from .normalization import same_randomness

    rng = np.random.default_rng(VERIFY_SEED)
    out = []
    N, m = 5, 3
    X = rng.normal(size=(N, m))
    U = rng.normal(size=(N, m))
    urows = [U[k][None, :] for k in range(N)]
    xs = _rows_of(None, X)

    # -- batch norm layer
    bn = BatchNorm(m, gamma=rng.uniform(0.5, 2.0, m), beta=rng.normal(size=m), update_running=False)
    bn.running_mean[:] = rng.normal(size=m)
    bn.running_var[:] = rng.uniform(0.5, 2.0, m)
    g0, b0 = bn.gamma.copy(), bn.beta.copy()

    def bn_out(mode, Xv=X, gamma=g0, beta=b0):
        probe = BatchNorm(m, gamma=gamma, beta=beta, update_running=False)
        probe.running_mean[:], probe.running_var[:] = bn.running_mean, bn.running_var
        return probe.forward_batch(Xv, mode)[0]

    for mode in ("train", "test"):
        fd = fd_jacobian(lambda v: bn_out(mode, Xv=v.reshape(N, m)), X)
        out.append(compare(f"batchnorm[{mode}]: explicit d vec(Y)/d vec(X) (Nm, Nm)",
                           bn.jacobian_x_samples(xs, mode), fd.df, err=fd.error))
        ys, ctx = bn.forward_samples(xs, mode)
        gx, gr = bn.backward_samples(urows, ctx)
        Y, cache = bn.forward_batch(X, mode)
        dX, gb = bn.backward_batch(U, cache)
        fd_x = fd_gradient(lambda v: np.sum(U * bn_out(mode, Xv=v.reshape(N, m))), X)
        fd_g = fd_gradient(lambda v: np.sum(U * bn_out(mode, gamma=v)), g0)
        fd_b = fd_gradient(lambda v: np.sum(U * bn_out(mode, beta=v)), b0)
        for path, gxv, grads in (("reference", np.vstack(gx), gr), ("batched", dX, gb)):
            out.append(compare(f"batchnorm[{mode}] {path}: dL/dX (N, m)", gxv.reshape(1, -1), fd_x.df,
                               err=fd_x.error))
            out.append(compare(f"batchnorm[{mode}] {path}: dL/dgamma (m,)", grads["gamma"][None], fd_g.df,
                               err=fd_g.error))
            out.append(compare(f"batchnorm[{mode}] {path}: dL/dbeta (m,)", grads["beta"][None], fd_b.df,
                               err=fd_b.error))

    # -- dropout layer (p = 0.4, one fixed mask for both paths and the witness)
    drop = Dropout(m, 0.4, seed=rng.spawn(1)[0])
    keep = drop.sample_mask(N)
    for mode in ("train", "test"):
        with drop.using_mask(keep):
            fd = fd_gradient(lambda v: np.sum(U * drop.forward_batch(v.reshape(N, m), mode)[0]), X)
            ys, ctx = drop.forward_samples(xs, mode)
            gx, _ = drop.backward_samples(urows, ctx)
            dX, _ = drop.backward_batch(U, drop.forward_batch(X, mode)[1])
        out.append(compare(f"dropout[{mode}] reference: dL/dX (N, m)", np.vstack(gx).reshape(1, -1), fd.df,
                           err=fd.error))
        out.append(compare(f"dropout[{mode}] batched: dL/dX (N, m)", dX.reshape(1, -1), fd.df, err=fd.error))

    # -- FullyConnectedNet with batch norm and dropout, (N, 2, 2) inputs flattened
    net = FullyConnectedNet([5, 4], input_dim=4, num_classes=3, dropout=0.3, use_batchnorm=True, reg=0.05,
                            weight_scale=0.5, seed=rng.spawn(1)[0])
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
            out.append(compare(f"fcnet bn+dropout[{mode}] {path}: dL/dtheta", net.flatten_gradients(g)[None],
                               fd.df, err=fd.error))

    # -- path agreement (cross_check fixes the masks and freezes the running statistics itself)
    from .crosscheck import cross_check

    for r in cross_check(net, flatten_input(Xn), Yn).rows:
        c = r.comparison
        out.append(type(c)(f"fcnet bn+dropout cross-check: {r.quantity}", c.max_abs, c.max_rel, c.location,
                           c.tolerance, c.passed))
    return out
