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

from ._validation import as_generator, check_float_dtype, check_nonnegative, check_positive, check_positive_int
from .layers import Dense
from .losses import SoftmaxCrossEntropy
from .network import Network
from .normalization import ActivationLayer, BatchNorm, Dropout, drop_probability


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
    dropout : drop probability in [0, 1); 0 or None (default) adds no dropout layers. This is what CS231n's
        2017 assignment means by ``dropout`` (its ``dropout_forward`` drops with probability ``p``).
    keep_prob : or the keep probability in (0, 1] (1 adds no dropout layers), what CS231n's 2018 and
        later assignments call ``dropout_keep_ratio`` (their ``p`` keeps); give one of the two.
    use_batchnorm : insert batch norm between each hidden affine map and its relu.
    reg : L2 strength, penalty ``0.5 * reg * sum ||W||^2`` (weights only).
    weight_scale : standard deviation of the initial weights (default 1e-2).
    dtype : float64 (default; the reference path needs it) or float32 (batched path).
    seed : int, Generator or None; weights and dropout masks. Or a ``numpy.random.RandomState``
        (legacy, to reproduce a CS231n notebook): every ``W`` is then drawn as CS231n does,
        ``weight_scale * seed.randn(in, out)`` layer by layer, and nothing else is drawn from it
        (dropout masks come from a Generator seeded with its state); after
        ``rs = np.random.RandomState(231)`` and the notebook's own draws from ``rs`` in the
        notebook's order, the network holds the notebook's weights. The global ``np.random`` is
        never used.
    eps, momentum : batch-norm settings (defaults 1e-5, 0.9).
    """

    def __init__(
        self,
        hidden_dims,
        input_dim: int = 3 * 32 * 32,
        num_classes: int = 10,
        dropout: float | None = None,
        use_batchnorm: bool = False,
        reg: float = 0.0,
        weight_scale: float = 1e-2,
        dtype=np.float64,
        seed=None,
        *,
        keep_prob: float | None = None,
        eps: float = 1e-5,
        momentum: float = 0.9,
    ):
        hidden_dims = list(hidden_dims)
        for name, v in [("input_dim", input_dim), ("num_classes", num_classes)] + [
            (f"hidden_dims[{i}]", h) for i, h in enumerate(hidden_dims)
        ]:
            check_positive_int(v, name)
        p = 0.0 if dropout is None and keep_prob is None else drop_probability(dropout, keep_prob, "dropout")
        reg = check_nonnegative(reg, "reg")
        weight_scale = check_positive(weight_scale, "weight_scale")
        dtype = check_float_dtype(dtype)
        legacy = seed if isinstance(seed, np.random.RandomState) else None
        if legacy is not None:
            # CS231n's order: every W drawn as weight_scale * randn(in, out), layer by layer, nothing else
            # drawn from the RandomState; the dropout Generators are seeded from its state, not by drawing
            dims = [int(input_dim)] + [int(h) for h in hidden_dims] + [int(num_classes)]
            legacy_W = [weight_scale * legacy.randn(a, b) for a, b in zip(dims[:-1], dims[1:])]
            rng = np.random.default_rng(legacy.get_state(legacy=False)["state"]["key"])  # the MT19937 key
        else:
            rng = as_generator(seed)

        def dense_layer(k, a, b, act):
            if legacy is not None:
                return Dense.from_params(legacy_W[k].astype(dtype), np.zeros(b, dtype=dtype), act)
            return Dense(a, b, act, init="scaled_normal", weight_scale=weight_scale, seed=rng, dtype=dtype)

        layers, names = [], []
        L = len(hidden_dims) + 1
        n = int(input_dim)
        for i, h in enumerate(hidden_dims, start=1):
            h = int(h)
            dense = dense_layer(i - 1, n, h, "identity" if use_batchnorm else "relu")
            layers.append(dense)
            names += [(f"W{i}", len(layers) - 1, "W"), (f"b{i}", len(layers) - 1, "b")]
            if use_batchnorm:
                layers.append(BatchNorm(h, eps=eps, momentum=momentum, dtype=dtype))
                names += [(f"gamma{i}", len(layers) - 1, "gamma"), (f"beta{i}", len(layers) - 1, "beta")]
                layers.append(ActivationLayer(h, "relu", dtype=dtype))
            if p > 0:
                layers.append(Dropout(h, p, seed=rng.spawn(1)[0], dtype=dtype))
            n = h
        layers.append(dense_layer(L - 1, n, int(num_classes), "identity"))
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
        return (
            f"FullyConnectedNet(hidden_dims={self.hidden_dims}, input_dim={self.n_in}, "
            f"num_classes={self.n_out}, dropout={self.dropout}, use_batchnorm={self.use_batchnorm}, "
            f"reg={self.l2})"
        )

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
