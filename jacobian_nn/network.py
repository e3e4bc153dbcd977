"""The network and its reference path: one sample at a time, explicit Jacobians.

A :class:`Network` is a list of layers plus a loss (seed 000's ``FCNN``). Its
parameters are the layers' own arrays, so the same network can be trained by
the reference methods (the reference driver, :mod:`jacobian_nn.reference`) or by the
batched methods (``*_batched``, the batched driver, :mod:`jacobian_nn.batched`); the
two share parameters and nothing on the derivative side.

Batch convention (seed 000's ``trainBatch``): the loss of a batch is the mean of
the per-sample losses, and the parameter gradients are the mean of the
per-sample gradients. Regularisation is added once per batch, not per sample:

    L_batch = (1/N) sum_k L(y_hat_k, y_k) + l2/2 sum ||W||^2 + l1 sum |W|
    dL/dW   = (1/N) sum_k dL_k/dW + l2 W + l1 sign(W)          (sign(0) = 0)

Biases are penalised too when ``regularize_bias=True``.

Seed 000's code instead updates ``w -= (dw + w*lam*0.5) / dcnt * lr``: the
penalty gradient ``lam/2 * w`` is divided by the batch count, and its prose
penalty ``lam * sum W^2`` has gradient ``2 lam W``, not ``lam/2 W``. Here the
penalty is ``l2/2 ||W||^2`` with gradient ``l2 W``, independent of N (proofs
``proofs:reg.l2_code000``, ``proofs:reg.bias000``, ``proofs:reg.penalties000``,
``proofs:reg.l2_004``; the batch mean: ``proofs:loss.batch_mean``, ``proofs:dense.train000``).
"""

from __future__ import annotations

import numpy as np

from ._validation import (
    as_batch,
    as_column,
    as_float_array,
    as_generator,
    check_like_params,
    check_nonnegative,
    check_positive,
    check_writeable,
    lend,
    state_kept_on_refusal,
)
from . import batched, reference
from .activations import Identity, Sigmoid, Softmax, get_activation
from .layers import Dense
from .losses import (
    BinaryCrossEntropy,
    CrossEntropy,
    Loss,
    SigmoidBinaryCrossEntropy,
    SoftmaxCrossEntropy,
    get_loss,
)


class Network:
    """A fully connected network: ``layers`` applied in order, then ``loss``.

    Parameters
    ----------
    layers : list of layers (see :mod:`jacobian_nn.layers` for the interface).
        Consecutive layers must agree: ``layers[i].n_out == layers[i+1].n_in``.
    loss : a :class:`~jacobian_nn.losses.Loss` or its name.
    l2, l1 : penalty weights (>= 0), see the module docstring.
    regularize_bias : also penalise biases (default False: weights only).
    """

    def __init__(self, layers, loss, *, l2: float = 0.0, l1: float = 0.0, regularize_bias: bool = False):
        layers = list(layers)
        if not layers:
            raise ValueError("layers: expected at least one layer, got an empty list")
        for i in range(len(layers) - 1):
            if layers[i].n_out != layers[i + 1].n_in:
                raise ValueError(
                    f"layers: layer {i} has {layers[i].n_out} outputs but layer {i + 1} expects "
                    f"{layers[i + 1].n_in} inputs"
                )
        dtypes = {np.dtype(layer.dtype) for layer in layers}
        if len(dtypes) != 1:
            raise TypeError(f"layers: expected one dtype for every layer, got {sorted(map(str, dtypes))}")
        self.layers = layers
        self.loss: Loss = get_loss(loss)
        last = getattr(layers[-1], "activation", None)
        if isinstance(self.loss, SoftmaxCrossEntropy) and isinstance(last, Softmax):
            raise ValueError(
                "loss: SoftmaxCrossEntropy takes logits, but the last layer already applies softmax; "
                "use activation 'identity' on the last layer, or loss CrossEntropy"
            )
        if isinstance(self.loss, SigmoidBinaryCrossEntropy) and isinstance(last, Sigmoid):
            raise ValueError(
                "loss: SigmoidBinaryCrossEntropy takes logits, but the last layer already applies sigmoid; "
                "use activation 'identity' on the last layer, or loss BinaryCrossEntropy"
            )
        self.l2 = check_nonnegative(l2, "l2")
        self.l1 = check_nonnegative(l1, "l1")
        self.regularize_bias = bool(regularize_bias)

    @classmethod
    def build(
        cls,
        sizes,
        activation="relu",
        *,
        output_activation=None,
        loss="softmax_cross_entropy",
        init="he",
        weight_scale=None,
        seed=None,
        dtype=np.float64,
        **kwargs,
    ) -> "Network":
        """A network of :class:`Dense` layers with the given ``sizes`` ``[n_in, h1, ..., n_out]``.

        Hidden layers use ``activation``. The output activation defaults to
        identity (logits) for ``softmax_cross_entropy``, ``sigmoid_binary_cross_entropy`` and
        ``svm``, softmax for ``cross_entropy``, sigmoid for ``binary_cross_entropy`` and identity
        for ``mse``. Weights are drawn from one
        ``numpy.random.Generator`` made from ``seed``, layer by layer.
        """
        sizes = list(sizes)
        if len(sizes) < 2:
            raise ValueError(f"sizes: expected [n_in, ..., n_out] with at least 2 entries, got {sizes}")
        loss = get_loss(loss)
        get_activation(activation)  # refuse an unknown name even when there is no hidden layer
        if output_activation is None:
            output_activation = (
                Softmax()
                if isinstance(loss, CrossEntropy)
                else Sigmoid()
                if isinstance(loss, BinaryCrossEntropy)
                else Identity()
            )
        rng = as_generator(seed)
        layers = []
        for i, (n, m) in enumerate(zip(sizes[:-1], sizes[1:])):
            act = output_activation if i == len(sizes) - 2 else get_activation(activation)
            layers.append(Dense(n, m, act, init=init, weight_scale=weight_scale, seed=rng, dtype=dtype))
        return cls(layers, loss, **kwargs)

    # -- description -------------------------------------------------------------------

    @property
    def n_in(self) -> int:
        return self.layers[0].n_in

    @property
    def n_out(self) -> int:
        return self.layers[-1].n_out

    @property
    def dtype(self) -> np.dtype:
        return np.dtype(self.layers[0].dtype)

    @property
    def params(self) -> list[dict]:
        """The live parameter arrays, one dict per layer (e.g. ``{"W": ..., "b": ...}``)."""
        return [layer.params for layer in self.layers]

    def copy(self) -> "Network":
        """A deep copy: same architecture, parameter arrays copied."""
        import copy

        return copy.deepcopy(self)

    @property
    def state(self) -> list[dict]:
        """The live non-trainable arrays inference needs (batch norm's running statistics),
        one dict per layer, ``{}`` for layers without state (see :class:`~jacobian_nn.layers.Layer`)."""
        return [layer.state for layer in self.layers]

    @property
    def min_train_batch(self) -> int:
        """The smallest batch every layer accepts in training mode (2 with batch norm, else 1)."""
        return max(int(layer.min_train_batch) for layer in self.layers)

    def astype(self, dtype) -> "Network":
        """A deep copy computing in ``dtype`` (float64 or float32): each layer is replaced by
        ``layer.astype(dtype)`` (parameters and state converted; float32 -> float64 is exact).
        The copy keeps the class and attributes of ``self`` (e.g. a FullyConnectedNet)."""
        import copy

        new = copy.deepcopy(self)
        for i, layer in enumerate(self.layers):
            new.layers[i] = layer.astype(dtype)
        return new

    def __repr__(self) -> str:
        return f"Network({self.layers!r}, {self.loss!r}, l2={self.l2}, l1={self.l1})"

    def flat_params(self) -> np.ndarray:
        """All parameters as one vector (a copy): layer by layer, each array row-major,
        in the order of ``params`` (``W`` then ``b`` for a dense layer)."""
        return np.concatenate([v.reshape(-1) for p in self.params for v in p.values()])

    def set_flat_params(self, theta) -> None:
        """Write a vector laid out as :meth:`flat_params` back into the live arrays.

        ``theta`` is checked first under the package's dtype policy: an integer vector is
        converted to the network's dtype; a float of the other precision, complex, string and
        object vectors are refused (``TypeError``), as are NaN and inf and a read-only
        parameter (``ValueError``). Nothing is written unless every check passes."""
        theta = as_float_array(theta, "theta", self.dtype)
        check_writeable(self.params, "theta: params")
        sizes = [v.size for p in self.params for v in p.values()]
        if theta.shape != (sum(sizes),):
            raise ValueError(f"theta: expected shape ({sum(sizes)},), got {theta.shape}")
        i = 0
        for p in self.params:
            for v in p.values():
                v[...] = theta[i : i + v.size].reshape(v.shape)
                i += v.size

    @staticmethod
    def flatten_gradients(grads) -> np.ndarray:
        """Gradients (one dict per layer) as one vector, laid out as :meth:`flat_params`."""
        return np.concatenate([v.reshape(-1) for g in grads for v in g.values()])

    def _penalized(self, name: str) -> bool:
        return name == "W" or (self.regularize_bias and name == "b")

    def penalty(self) -> float:
        """``l2/2 sum ||W||^2 + l1 sum |W|`` over the penalised parameters."""
        total = 0.0
        for p in self.params:
            for name, v in p.items():
                if self._penalized(name):
                    if self.l2:  # skipped when 0: no pass over the weights
                        total += 0.5 * self.l2 * float(np.sum(v * v))
                    if self.l1:
                        total += self.l1 * float(np.sum(np.abs(v)))
        return total

    def add_penalty_gradients(self, grads, *, scale=None, per_sample: bool = False, out=None) -> None:
        """Add the penalty gradient to ``grads`` (one dict per layer) in place, both paths:
        ``g += s l2 W`` and ``g += s l1 sign(W)`` (``sign(0) = 0``) for every penalised
        parameter, ``s = scale`` (None: 1). ``per_sample``: ``g`` is ``(N, *W.shape)``, the
        penalty gradient is added to every slice. ``out`` (the batched driver's lender)
        lends the scratch array of each product."""
        l2, l1 = self.l2, self.l1
        if scale is not None:
            l2, l1 = scale * l2, scale * l1
        for i, (g, p) in enumerate(zip(grads, self.params)):
            for name in g:
                if not self._penalized(name):
                    continue
                w = p[name]
                scratch = lend(out, f"penalty {i} {name}", w.shape, w.dtype)
                if l2:
                    g[name] += np.multiply(l2, w, out=scratch)
                if l1:
                    g[name] += np.multiply(l1, np.sign(w, out=scratch), out=scratch)

    def input_batch(self, X) -> np.ndarray:
        """``X`` checked as the network's input batch ``(N, n_in)`` in its dtype (both drivers
        call this once; a subclass may reshape, as FullyConnectedNet flattens images). When the first
        layer takes images (``input_shape`` ``(C, H, W)``: :mod:`jacobian_nn.conv`), an NCHW batch
        ``(N, C, H, W)`` of exactly that shape is accepted and flattened in C order to ``(N, C*H*W)``."""
        shape = getattr(self.layers[0], "input_shape", None)
        if shape is not None and np.ndim(X) == 1 + len(shape):
            X = np.asarray(X)
            if X.shape[1:] != tuple(shape):
                raise ValueError(f"X: expected images of shape (N, {', '.join(map(str, shape))}), got shape {X.shape}")
            X = X.reshape(X.shape[0], -1)
        return as_batch(X, "X", self.n_in, self.dtype)

    # -- reference path (the reference driver, jacobian_nn.reference) ---------------------

    def forward(self, x, mode: str = "test") -> np.ndarray:
        """``x`` ``(n, 1)`` -> network output ``(m, 1)``."""
        x = as_column(x, "x", self.n_in)
        return reference.predict(self, x.T, mode).T

    def backward(self, x, y, mode: str = "train"):
        """Loss and gradients for one sample ``x`` ``(n, 1)`` with label ``y`` (in ``mode``; a
        network with batch norm needs ``mode="test"`` for one sample).

        Returns ``(loss, grads)``: ``grads`` is a list with one dict per layer,
        each array in its parameter's shape, penalty gradient included. The loss
        row ``dL/dy_hat`` ``(1, m)`` is chained right to left through each layer's
        explicit Jacobians (:meth:`Dense.backward`).
        """
        x = as_column(x, "x", self.n_in)
        return self.loss_and_gradients(x.T, self.loss.label_row(y, self.n_out), mode)

    def input_jacobian(self, x) -> np.ndarray:
        """``d y_hat / dx`` ``(n_out, n_in)`` = ``J_L ... J_2 J_1`` (see
        :func:`jacobian_nn.reference.input_jacobian`)."""
        return reference.input_jacobian(self, x)

    def loss_and_gradients(self, X, Y, mode: str = "train"):
        """Mean loss and mean gradients of the batch ``X`` ``(N, n)``, labels ``Y``.

        Reference path: every sample is a column; each layer maps the list of
        columns forward, the loss gives each sample's row ``dL_k/dy_hat_k``, and
        each layer chains the rows back through its explicit Jacobians. Gradients
        are summed over the samples, divided by N, and the penalty gradient added.
        Returns ``(loss, grads)``, ``grads`` one dict per layer
        (see :func:`jacobian_nn.reference.loss_and_gradients`).
        """
        return reference.loss_and_gradients(self, X, Y, mode)

    def apply_update(self, steps) -> None:
        """Add ``steps`` (one dict per layer, parameter shapes) to the parameters.

        All steps are checked first (shape, dtype, finiteness), and every parameter for
        being writeable; only then are the arrays written, in place, so that a failure leaves every parameter as it was
        and both paths keep seeing the same arrays.
        """
        params = self.params
        check_like_params(steps, params, "steps")
        check_writeable(params, "steps")
        for s, p in zip(steps, params):
            for name in p:
                p[name] += s[name]

    def train_batch(self, X, Y, lr: float) -> float:
        """One SGD step on the batch with the reference gradients (seed 000's ``trainBatch``):
        ``theta -= lr * mean_k dL_k/dtheta`` (+ penalty gradient). Returns the batch loss
        before the step.

        A refused step (an overflow inside the network, a loss that is not finite, refused before the
        backward as on the batched path, or a step that is not finite: ``apply_update``
        checks every step before it writes any parameter, so numpy's overflow warnings on the way are
        silenced) changes nothing: not the parameters, nor batch norm's running statistics, nor the
        dropout Generators (:func:`~jacobian_nn._validation.state_kept_on_refusal`)."""
        lr = check_positive(lr, "lr")
        with state_kept_on_refusal(self, "train"):
            with np.errstate(over="ignore", invalid="ignore"):
                loss, grads = self.loss_and_gradients(X, Y, "train")
                steps = [{k: -lr * v for k, v in g.items()} for g in grads]
            self.apply_update(steps)
        return loss

    def train_one(self, x, y, lr: float) -> float:
        """One SGD step on the single sample ``x`` ``(n, 1)`` (seed 000's ``trainOne``); a refused
        step changes nothing, as in :meth:`train_batch`."""
        lr = check_positive(lr, "lr")
        with state_kept_on_refusal(self, "train"):
            with np.errstate(over="ignore", invalid="ignore"):
                loss, grads = self.backward(x, y)
                steps = [{k: -lr * v for k, v in g.items()} for g in grads]
            self.apply_update(steps)
        return loss

    def predict_one(self, x) -> np.ndarray:
        """Network output for ``x`` ``(n, 1)``, shape ``(m, 1)`` (test mode)."""
        return self.forward(x, "test")

    def predict(self, X) -> np.ndarray:
        """Outputs for ``X`` ``(N, n)`` through the reference path, stacked as rows ``(N, m)``."""
        return reference.predict(self, X, "test")

    def accuracy(self, X, Y) -> float:
        """Fraction of correct decisions on ``X`` (reference path, test mode), as the loss decides
        (:meth:`jacobian_nn.losses.Loss.decision_accuracy`): the argmax class per sample for the multiclass
        losses; for ``BinaryCrossEntropy`` yes iff ``p >= 0.5`` and for ``SigmoidBinaryCrossEntropy``
        yes iff ``z >= 0``, one decision per output."""
        return self.loss.decision_accuracy(self.predict(X), Y)

    # -- batched path (implemented in jacobian_nn.batched) --------------------------------

    def forward_batched(self, X, mode: str = "test") -> np.ndarray:
        """Batched outputs for ``X`` ``(N, n)``: ``(N, m)``."""
        return batched.forward_batched(self, X, mode)[0]

    def loss_and_gradients_batched(self, X, Y, mode: str = "train", *, workspace=None):
        """Batched path: ``(loss, grads)`` with the same meaning and shapes as
        :meth:`loss_and_gradients`. With ``workspace=`` (a :class:`jacobian_nn.Workspace`
        reused across calls) the grads live in it and are valid until its next use."""
        return batched.loss_and_gradients_batched(self, X, Y, mode, workspace)

    def train_step_batched(self, X, Y, lr: float, *, workspace=None) -> float:
        """One SGD step with the batched gradients; returns the loss before the step.
        ``workspace=``: a :class:`jacobian_nn.Workspace` created once and passed to every
        step reuses the step's large arrays (bitwise the same results, no page faults)."""
        return batched.train_step_batched(self, X, Y, lr, workspace)

    def predict_batched(self, X) -> np.ndarray:
        """Outputs ``(N, m)`` through the batched path, test mode."""
        return batched.predict_batched(self, X)

    def accuracy_batched(self, X, Y) -> float:
        """:meth:`accuracy` through the batched path."""
        return batched.accuracy_batched(self, X, Y)

    def input_jacobian_batched(self, X) -> np.ndarray:
        """Batched input-output Jacobians ``(N, n_out, n_in)``; slice k matches
        :meth:`input_jacobian` of row k (see :func:`jacobian_nn.batched.input_jacobian_batched`)."""
        return batched.input_jacobian_batched(self, X)

    def per_sample_gradients_batched(self, X, Y, *, include_penalty: bool = True, mode: str = "train"):
        """Per-sample gradients, one dict per layer, ``{"W": (N, n, m), "b": (N, m)}``; slice k
        matches :meth:`backward` of sample k, and their mean is the batched gradient
        (see :func:`jacobian_nn.batched.per_sample_gradients_batched`; a network with batch norm
        needs ``mode="test"``)."""
        return batched.per_sample_gradients_batched(self, X, Y, include_penalty=include_penalty, mode=mode)

    def per_sample_losses_batched(self, X, Y) -> np.ndarray:
        """Per-sample data losses ``(N,)`` through the batched path (no penalty)."""
        return batched.per_sample_losses_batched(self, X, Y)
