"""The batched driver: whole batches ``X`` ``(N, n)``, vector-Jacobian products, no per-sample matrices.

Network-level chaining for the batched path, over any layers of the layer protocol
(:mod:`jacobian_nn.layers`): every layer maps ``(N, n) -> (N, m)`` with
``forward_batched`` and pulls ``G = dL/dY`` ``(N, m)`` back with ``backward_batched``;
activations contribute ``vjp_batched`` (elementwise products, or
``S * (G - rowsum(G * S))`` for softmax), never an ``(m, m)`` matrix. No layer type is
special-cased: what a layer can do, it declares (``per_sample_gradients``,
``batched_jacobians``, ``jacobian_x_factors_batched``).

Reductions follow the batch convention: the loss is the mean of the per-sample
losses (``Loss.gradient_batched`` already carries the ``1/N``), so ``X^T delta`` and
the column sums of ``delta`` are the mean of the per-sample reference gradients.
The penalty gradient is added once (:meth:`Network.add_penalty_gradients`):

    dL/dW = X^T delta + l2 W + l1 sign(W)        (sign(0) = 0)

This module is the only home of the batched path's memory strategy: a
:class:`Workspace` (why: its docstring) lends arrays to the layers and the loss through
their ``out=`` argument. It never calls a reference Jacobian or a reference backward;
``tests/test_independence.py`` builds the call graph from every function here and fails
if it reaches one.
"""

from __future__ import annotations

import math

import numpy as np

from ._validation import (
    all_finite,
    all_finite_unscaled,
    check_layer_context,
    check_layer_output,
    check_mode,
    check_positive,
    lend,
    non_finite_loss,
    non_finite_row,
    non_finite_step,
    state_kept_on_refusal,
)


# --------------------------------------------------------------------------- workspace


class Workspace:
    """Named preallocated arrays for the batched training step, allocated on first use and
    reused when the key matches.

    Why: a batched step makes a handful of large temporaries (pre-activations ``Z``
    ``(N, m)``, VJPs ``delta`` ``(N, m)``, input gradients ``dX`` ``(N, n)``, weight gradients
    ``(n, m)``...). glibc serves arrays above its mmap threshold (128 KiB by default,
    adjusted at run time) with fresh pages and returns them to the OS when they are freed,
    so a step that allocates them anew page-faults on every one of their pages, every step
    (measured: ~670 faults, about 1.5 ms, per step of the 64-100-10 network on 1797
    samples). glibc's ``MALLOC_MMAP_THRESHOLD_``/``MALLOC_TRIM_THRESHOLD_`` remove that too,
    but they are process-wide settings a library must not make for its user; a workspace is
    local to the calls it is passed to.

    Contract

    * Opt-in and explicit: pass ``workspace=ws`` to :func:`train_step_batched` or
      :func:`loss_and_gradients_batched` (or the ``Network.*_batched`` methods). Nothing is
      stored on layers or networks.
    * The results are **bitwise identical** with and without a workspace: the same numpy
      operations run, only their ``out=`` arrays differ.
    * Arrays are keyed by ``(owner, role, shape, dtype)``: ``owner`` is the layer index (or
      ``"loss"`` / ``"network"``), ``role`` names the array (``"Z"``, ``"dX"``, ``"W"``...). A
      key seen before returns the same array; a new shape allocates a new one, so one
      workspace may serve several batch sizes or networks (:meth:`clear` frees them).
    * **Aliasing.** Whatever a call returns that lives in the workspace (the gradients of
      ``loss_and_gradients_batched(..., workspace=ws)``) is valid **until the next call with
      the same workspace**. Copy it to keep it. ``train_step_batched`` returns only the loss.
    * One workspace per thread: two calls sharing a workspace must not run concurrently.

    >>> ws = Workspace()
    >>> a = ws.array(0, "Z", (4, 3), np.float64)
    >>> a is ws.array(0, "Z", (4, 3), np.float64), a is ws.array(0, "Z", (5, 3), np.float64)
    (True, False)
    """

    def __init__(self):
        self._arrays: dict = {}  # (owner, role, shape as a tuple of ints, np.dtype) -> array
        self._as_given: dict = {}  # the same arrays under the key as the caller spelled it (fast path)

    def array(self, owner, role: str, shape: tuple, dtype) -> np.ndarray:
        """The array for ``(owner, role, shape, dtype)``: uninitialised the first time, afterwards
        whatever the previous user of that key left in it (callers overwrite it entirely)."""
        given = (owner, role, shape, dtype)
        arr = self._as_given.get(given)  # one dict look-up per call once warm
        if arr is None:
            shape, dtype = tuple(int(s) for s in shape), np.dtype(dtype)
            key = (owner, role, shape, dtype)
            arr = self._arrays.get(key)
            if arr is None:
                arr = self._arrays[key] = np.empty(shape, dtype)
            self._as_given[given] = arr
        return arr

    def lender(self, owner) -> "Lender":
        """The ``out=`` a layer or loss receives: this workspace seen by one owner."""
        return Lender(self, owner)

    @property
    def nbytes(self) -> int:
        """Total bytes held."""
        return sum(a.nbytes for a in self._arrays.values())

    def __len__(self) -> int:
        return len(self._arrays)

    def clear(self) -> None:
        """Drop every array (the next call allocates again)."""
        self._arrays.clear()
        self._as_given.clear()

    def __repr__(self) -> str:
        return f"Workspace({len(self)} arrays, {self.nbytes / 2**20:.2f} MiB)"


class Lender:
    """A :class:`Workspace` bound to one owner (a layer index, ``"loss"``, ``"network"``): what a
    layer or loss receives as ``out=``; ``out.array(role, shape, dtype)`` is the owner's array."""

    __slots__ = ("workspace", "owner")

    def __init__(self, workspace: Workspace, owner):
        self.workspace, self.owner = workspace, owner

    def array(self, role: str, shape, dtype) -> np.ndarray:
        return self.workspace.array(self.owner, role, shape, dtype)


class _OwnGradient:
    """Lends a layer the incoming ``G`` for its ``delta`` when ``G`` is an array this call made
    itself (the scaled loss gradient, or the next layer's ``dX``) and will not use again, so the
    VJP is computed in its memory: one ``(N, m)`` array fewer per layer (without a workspace,
    its allocation and page faults; with one, its memory traffic). Every other role goes to
    ``base`` (the workspace's lender), or is allocated as usual without one."""

    __slots__ = ("G", "base")

    def __init__(self, G, base=None):
        self.G, self.base = G, base

    def array(self, role: str, shape, dtype):
        if role == "delta":
            return self.G
        return lend(self.base, role, shape, dtype)


def _lender(workspace, owner):
    return None if workspace is None else workspace.lender(owner)


# --------------------------------------------------------------------------- forward, loss, gradients


def forward_batched(net, X, mode: str = "test", workspace: Workspace | None = None):
    """``X`` ``(N, n)`` -> ``(Y_hat (N, m), ctxs)``, one context per layer.

    With a :class:`Workspace`, ``Y_hat`` and the contexts live in its arrays (valid until
    its next use)."""
    check_mode(mode)
    A = net.input_batch(X)
    with state_kept_on_refusal(net, mode):  # a refused overflow leaves running stats and Generators as found
        return _forward(net, A, mode, workspace)


def _checked(net, X, Y, mode):
    """The checked input batch, after the labels are checked too: everything is refused before
    a forward may change state (batch norm's running statistics, dropout's Generators)."""
    check_mode(mode)
    A = net.input_batch(X)
    net.loss.check_labels(Y, A.shape[0], net.n_out, A.dtype)
    return A


def _forward(net, A, mode, workspace=None):
    """The checked batch ``A`` through every layer. Finite in, finite out: each layer's output is
    checked once (:func:`check_layer_output`, one BLAS dot per layer), and so are the other float
    arrays of its context (:func:`check_layer_context`: a dense layer's ``Z`` unless the output
    overwrote it), so an overflow inside the network from finite inputs is an error naming ``X``
    and the layer, never NaN downstream (and numpy's overflow warnings are silenced meanwhile).
    The caller holds the state guard (:func:`state_kept_on_refusal`)."""
    ctxs = []
    with np.errstate(over="ignore", invalid="ignore"):
        for i, layer in enumerate(net.layers):
            A_in = A
            A, ctx = layer.forward_batched(A, mode, out=_lender(workspace, i))
            check_layer_output(A, i)
            check_layer_context(ctx, i, (A_in, A))
            ctxs.append(ctx)
    return A, ctxs


def loss_and_gradients_batched(net, X, Y, mode: str = "train", workspace: Workspace | None = None, *, scale=None):
    """Mean loss (+ penalty) and its gradients, one dict per layer in the parameters' shapes.

    ``workspace``: an optional :class:`Workspace` reused across calls (no page faults on fresh
    temporaries; bitwise the same results). The gradients returned then live in it: they are
    valid **until the next call with that workspace** (copy them to keep them).

    ``scale`` (None: 1): every gradient multiplied by ``scale``. The gradients are linear in
    the loss gradient ``G = dL/dY_hat`` ``(N, m_out)``, so the factor is applied once to
    ``G`` (the smallest array of the backward pass) and to the penalty weights,
    ``scale (g + l2 W + l1 sign W) = g(scale G) + (scale l2) W + (scale l1) sign W``,
    instead of in a pass over every gradient array; equal to scaling the unscaled gradients
    up to rounding (exactly, for a power of two). The training step uses ``scale = -lr`` (only
    for ``lr <= 1``). Rows that are not finite are refused as the reference's per-sample rows
    ``dX N / scale`` (:func:`_loss_and_gradients_batched`); with ``|scale| > 1`` a row that
    overflows only because of the factor is refused too.

    A loss that is not finite (finite outputs and labels too far apart: mean squared error against
    labels near 1e308) is refused right after the loss, before the backward pass, with the error the
    reference path raises at the same point (:func:`~jacobian_nn._validation.non_finite_loss`: ``Y``,
    the loss and the first sample whose loss is not finite); numpy's overflow warnings in the loss are
    silenced there, and only there.
    """
    A = _checked(net, X, Y, mode)
    with state_kept_on_refusal(net, mode):  # a refusal after the forward leaves running stats and Generators
        return _loss_and_gradients_batched(net, A, Y, mode, workspace, scale)


def _loss_and_gradients_batched(net, A, Y, mode, workspace, scale):
    """:func:`loss_and_gradients_batched` of the checked batch ``A``, without the state guard.

    The rows are checked where the reference driver checks them, with its error
    (:func:`~jacobian_nn._validation.non_finite_row`): the loss's ``G`` ``(N, m_out)`` before the
    backward, and every layer's ``dX`` right after its backward (the first layer's is not
    computed: no input gradient is needed, and the reference does not check it). The reference's
    rows are the per-sample rows ``dL_k/dy_k``, and row k of the batched ``G`` and ``dX`` is
    ``s`` times the reference's row k, ``s = scale / N`` (the batch mean's ``1/N`` is in ``G``;
    ``scale`` None: 1), so the rows ``dX / s`` are what must be finite (:func:`_check_rows`): the
    refusal depends neither on where ``1/N`` nor on where ``scale`` is applied. With ``scale``
    (``|scale| <= 1``: the training step), the gradients are ``scale`` times the mean, and the
    reference's sum over the samples, ``grad / s``, must be finite too (:func:`_check_unscaled_steps`:
    the reference's step is not finite when that sum is not). The
    backward runs under numpy's ``call`` error mode (a refusal is quiet); when an error was signalled,
    no row was refused and some gradient is not finite (returned unchecked, as the reference returns
    it), the backward runs once more under the caller's error state, so that numpy warns as it would
    have (the same operations on the same arrays: bitwise the same results)."""
    Y_hat, ctxs = _forward(net, A, mode, workspace)  # forward
    with np.errstate(over="ignore", invalid="ignore"):  # the loss is checked next: an overflow is refused by name
        loss, G = net.loss.forward_and_gradient_batched(Y_hat, Y, out=_lender(workspace, "loss"))
        loss += net.penalty()
        if not math.isfinite(loss):  # before the backward, as the reference checks it
            raise non_finite_loss(loss, _sample_losses(net, Y_hat, Y))
    per_sample = 1.0 / G.shape[0]  # G carries the batch mean's 1/N: row k is dL_k/dy_hat_k / N
    _check_rows(G, len(net.layers) - 1, per_sample)  # the loss's rows, as the reference checks them
    signalled = []
    with np.errstate(over="call", invalid="call", call=lambda kind, flag: signalled.append(kind)):
        grads = _backward_pass_batched(net, G, ctxs, workspace, scale, check=True)
        if scale is not None:
            _check_unscaled_steps(net, grads, scale * per_sample)  # the reference's sum over the samples
    if signalled and not all(all_finite(v) for g in grads for v in g.values()):
        grads = _backward_pass_batched(net, G, ctxs, workspace, scale, check=False)  # returned unchecked: numpy warns
    return loss, grads


def _backward_pass_batched(net, G, ctxs, workspace, scale, check):
    """The loss gradient ``G`` (unscaled, left unchanged) back through every layer, times ``scale``:
    one gradient dict per layer, the penalty gradient added. ``check``: every layer's ``dX`` is
    checked right after its backward (:func:`_check_rows`)."""
    own = _lender(workspace, "network")
    rows_scale = (1.0 if scale is None else scale) / G.shape[0]  # batched rows = rows_scale * reference rows
    if scale is not None:
        G = np.multiply(G, G.dtype.type(scale), out=lend(own, "G", G.shape, G.dtype))
    owned = scale is not None  # G is an array of this call's own (the loss's G may be the caller's)
    grads = [None] * len(net.layers)
    for i in range(len(net.layers) - 1, -1, -1):  # backward
        out = _OwnGradient(G, _lender(workspace, i)) if owned else _lender(workspace, i)
        G, grads[i] = net.layers[i].backward_batched(G, ctxs[i], input_grad=i > 0, out=out)
        if check and i > 0:
            _check_rows(G, i - 1, rows_scale)
        owned = True  # a layer's dX is the caller's (the layer protocol): this loop's own
    net.add_penalty_gradients(grads, scale=scale, out=own)  # penalty
    return grads


def _check_rows(G, layer: int, scale=None) -> None:
    """The rows ``G`` ``(N, ...)`` into ``layers[layer]`` (row k: sample k), computed times ``scale``
    (None: 1), must be finite unscaled (:func:`~jacobian_nn._validation.all_finite_unscaled`), else the reference driver's
    error naming the layer and the first sample whose row is not
    (:func:`~jacobian_nn._validation.non_finite_row`; its value is that of ``G / scale``)."""
    if all_finite_unscaled(G, scale):
        return
    rows = G.reshape(G.shape[0], -1)
    if scale is not None:  # the unscaled rows, divided in float64, then in G's dtype (inf where they overflow it)
        with np.errstate(over="ignore", invalid="ignore"):
            rows = np.divide(rows, scale, dtype=np.float64).astype(G.dtype)
    k = int(np.flatnonzero(~np.isfinite(rows).all(axis=1))[0])
    raise non_finite_row(layer, k, rows[k])


def _check_unscaled_steps(net, steps, scale) -> None:
    """The steps, computed times ``scale`` (``|scale| <= 1``), must be finite unscaled (the gradients
    ``steps / scale``: :func:`~jacobian_nn._validation.all_finite_unscaled`), else the error :meth:`Network.apply_update`
    raises for a step that is not finite (:func:`~jacobian_nn._validation.non_finite_step`), as the
    reference's step ``-lr g`` is not finite when ``g`` is not. In the parameters' order, as
    ``apply_update`` checks them."""
    for i, (s, p) in enumerate(zip(steps, net.params)):
        for k in p:
            if not all_finite_unscaled(s[k], scale):
                raise non_finite_step("steps", i, k)


def _sample_losses(net, Y_hat, Y) -> np.ndarray:
    """The per-sample data losses ``(N,)`` of the outputs ``Y_hat`` ``(N, m)`` and the checked labels ``Y``."""
    return net.loss.per_sample_losses_batched(
        Y_hat, net.loss.labels_batched(Y, Y_hat.shape[0], net.n_out, dtype=net.dtype)
    )


def train_step_batched(net, X, Y, lr: float, workspace: Workspace | None = None) -> float:
    """One SGD step ``theta -= lr * grad`` with the batched gradients; returns the loss before it.

    ``workspace``: an optional :class:`Workspace`; create it once and pass it to every step:
    the step's large arrays are then reused instead of allocated (and page-faulted) anew
    each step, with bitwise the same parameters afterwards.

    With ``lr <= 1`` the steps ``-lr * grad`` come straight out of the backward pass
    (``scale=-lr`` in :func:`loss_and_gradients_batched`): no pass over the gradient arrays to
    scale them. The refusals do not depend on where ``lr`` is applied: they are the reference's
    :meth:`~jacobian_nn.network.Network.train_batch` refusals, decided on the **unscaled**
    quantities. A loss that is not finite is refused before the backward pass, the rows into every
    layer are refused when the reference's per-sample rows ``dX * N / (-lr)`` are not finite, and so
    is a step whose gradient summed over the samples, ``step * N / (-lr)``, is not (with ``lr = 1e-300``
    a gradient of ``1e350`` would give a finite step ``1e50``; the reference's gradient overflows
    first, and it refuses). With
    ``lr > 1`` a scaled backward could overflow where the unscaled one does not, so the gradients
    are computed unscaled and the steps are ``-lr * grad``, as the reference computes them.
    ``apply_update`` validates every step before writing any parameter: a step that overflows
    (huge ``lr``) is refused there, with its name, so numpy's overflow warnings inside the
    backward pass are silenced. A refused step changes nothing: not the parameters, nor batch
    norm's running statistics, nor the dropout Generators (:func:`state_kept_on_refusal`)."""
    lr = check_positive(lr, "lr")
    A = _checked(net, X, Y, "train")
    with state_kept_on_refusal(net, "train"):
        with np.errstate(over="ignore", invalid="ignore"):
            if lr <= 1.0:  # scaling by -lr cannot make a finite value overflow
                loss, steps = _loss_and_gradients_batched(net, A, Y, "train", workspace, -lr)
            else:
                loss, grads = _loss_and_gradients_batched(net, A, Y, "train", workspace, 1.0)
                steps = [{k: -lr * v for k, v in g.items()} for g in grads]
        net.apply_update(steps)
    return loss


def predict_batched(net, X) -> np.ndarray:
    """Network outputs ``(N, m)`` in test mode."""
    return forward_batched(net, X, "test")[0]


def accuracy_batched(net, X, Y) -> float:
    """Fraction of correct decisions, as the network's loss decides (``Loss.decision_accuracy``: the argmax class,
    or one yes/no per output for the binary losses), on the batched path's outputs."""
    return net.loss.decision_accuracy(predict_batched(net, X), Y)


# --------------------------------------------------------------------------- per-sample results


def per_sample_losses_batched(net, X, Y, mode: str = "train") -> np.ndarray:
    """Per-sample data losses ``(N,)`` (no penalty): ``L_k = L(y_hat_k, y_k)``.

    Their mean plus ``net.penalty()`` is the batch loss of :func:`loss_and_gradients_batched`.
    """
    A = _checked(net, X, Y, mode)
    with state_kept_on_refusal(net, mode):
        Y_hat, _ = _forward(net, A, mode)
    return _sample_losses(net, Y_hat, Y)


def per_sample_gradients_batched(net, X, Y, *, include_penalty: bool = True, mode: str = "train"):
    """Per-sample gradients, no Python loop over samples: one dict per layer,
    ``{"W": (N, n, m), "b": (N, m)}`` for a :class:`~jacobian_nn.layers.Dense` layer.

    Row k of the unscaled loss gradient is ``dL_k/dy_hat_k = N * loss.gradient_batched``
    (``gradient_batched`` carries the ``1/N`` of the batch mean; multiplying back is exact
    when N is a power of two and otherwise costs at most one rounding per entry).
    Each layer's ``backward_batched(..., per_sample=True)`` then gives, with ``delta`` ``(N, m)``::

        grads_W[k] = X[k]^T delta[k]    (einsum "ki,kj->kij")     grads_b[k] = delta[k]

    **Penalty.** With ``include_penalty=True`` (default) the penalty gradient
    ``l2 W + l1 sign(W)`` is added to every sample's slice, so that slice k is the
    gradient of ``L_k + penalty``, the reference result ``net.backward(x_k, y_k)``, and

        mean_k per_sample[k] = (1/N) sum_k dL_k/dW + l2 W + l1 sign(W) = batched gradient

    exactly as :func:`loss_and_gradients_batched` defines it (up to rounding).
    ``include_penalty=False`` returns the data-loss gradients only.

    Every layer is asked first (``per_sample_refusal(mode)``), before anything runs: batch
    normalisation in training mode couples the samples and is refused (use ``mode="test"``);
    dropout in training mode gives each sample's gradient under its own row of the mask (fix
    the masks with ``using_dropout_masks`` to reproduce them).
    """
    check_mode(mode)
    for i, layer in enumerate(net.layers):
        why = layer.per_sample_refusal(mode)
        if why is not None:
            raise TypeError(f"net.layers[{i}]: {why}")
    A = _checked(net, X, Y, mode)
    with state_kept_on_refusal(net, mode):
        Y_hat, ctxs = _forward(net, A, mode)
    N = Y_hat.shape[0]
    Ym = net.loss.labels_batched(Y, N, net.n_out, dtype=net.dtype)
    G = net.loss.gradient_batched(Y_hat, Ym) * Y_hat.dtype.type(N)
    grads = [None] * len(net.layers)
    for i in range(len(net.layers) - 1, -1, -1):
        G, grads[i] = net.layers[i].backward_batched(G, ctxs[i], input_grad=i > 0, per_sample=True)
    if include_penalty:
        net.add_penalty_gradients(grads, per_sample=True)
    return grads


# --------------------------------------------------------------------------- batched Jacobians


def _check_batched_jacobians(net) -> None:
    for i, layer in enumerate(net.layers):
        if not layer.batched_jacobians:
            raise TypeError(f"net.layers[{i}]: {type(layer).__name__} has no batched Jacobians (jacobian_x_batched)")


def input_jacobian_batched(net, X) -> np.ndarray:
    """Input-output Jacobians of the whole network for every row, ``(N, m_out, n_in)``.

    Slice k is ``d y_hat_k / d x_k = J_L(k) ... J_2(k) J_1(k)`` with ``J_l(k)`` the
    layer's ``jacobian_x_batched`` slice ``(m_l, n_l)``. The product is accumulated from
    the output side (reverse mode, ``m_out`` rows per sample): ``P = J_L``, then
    ``P <- P J_l`` for ``l = L-1, ..., 1`` through the layer's ``input_vjp_rows_batched``
    (a dense layer: ``(P * D_l) W_l^T``, one 2-D GEMM). No loop over samples. Test mode.
    """
    _check_batched_jacobians(net)
    A = net.input_batch(X)
    inputs = []
    with np.errstate(over="ignore", invalid="ignore"):  # every output is checked: an overflow is refused by name
        for i, layer in enumerate(net.layers):
            inputs.append(A)
            if i < len(net.layers) - 1:
                A, ctx = layer.forward_batched(A, "test")
                check_layer_output(A, i)
                check_layer_context(ctx, i, (inputs[-1], A))
    J = _last_two_jacobian_batched(net.layers, inputs) if len(net.layers) > 1 else None
    if J is None:
        J, start = net.layers[-1].jacobian_x_batched(inputs[-1]), len(net.layers) - 1
    else:
        start = len(net.layers) - 2
    for layer, A_in in zip(reversed(net.layers[:start]), reversed(inputs[:start])):
        J = layer.input_vjp_rows_batched(J, A_in)
    return J


def _last_two_jacobian_batched(layers, inputs):
    """``J_L(k) J_{L-1}(k)`` ``(N, m_L, n_{L-1})`` as one GEMM when both layers declare input
    Jacobians of the form ``diag(D[k]) M`` (``jacobian_x_factors_batched``; dense layers with
    elementwise activations: ``M = W^T``); None when that form does not apply.

    ``J_L(k) J_{L-1}(k) = diag(D_L[k]) M_L diag(D_{L-1}[k]) M_{L-1}``, linear in ``D_{L-1}[k]``::

        K[j, i, l] = M_L[i, j] M_{L-1}[j, l]                  (m_{L-1}, m_L, n_{L-1}), no sample index
        J[k, i, l] = D_L[k, i] sum_j D_{L-1}[k, j] K[j, i, l]  i.e.  J = D_L * (D_{L-1} @ K)

    (the same products as pulling ``m_L`` rows per sample back, summed in another
    order; the factor ``D_L`` is skipped when it is exactly 1 everywhere, as for an identity
    output). Used when ``K`` is no larger than the result (``m_{L-1} <= N``).
    """
    prev, last = layers[-2], layers[-1]
    X = inputs[-2]
    N = X.shape[0]
    if prev.n_out > N:
        return None
    f1 = prev.jacobian_x_factors_batched(X)
    f2 = last.jacobian_x_factors_batched(inputs[-1]) if f1 is not None else None
    if f2 is None:
        return None
    (D1, M1), (D2, M2) = f1, f2
    m1, m2, n = M1.shape[0], M2.shape[0], M1.shape[1]
    K = (M2.T[:, :, None] * M1[:, None, :]).reshape(m1, m2 * n)
    J = (D1 @ K).reshape(N, m2, n)
    if not (D2 == 1).all():  # multiplying by exact ones (identity output) changes nothing
        J *= D2[:, :, None]
    return J


def activation_jacobians_batched(net, X, mode: str = "test") -> list:
    """Per layer, the activation Jacobians ``J_f(Z)`` ``(N, m, m)`` at the layer's pre-activations,
    i.e. the layer's ``jacobian_b_batched`` (``dy/db = J_f(z)``); ``None`` for a layer without
    batched Jacobians or without such a bias (layer norm, batch norm, dropout, a bare activation)."""
    check_mode(mode)
    A = net.input_batch(X)
    out = []
    with state_kept_on_refusal(net, mode):  # a refused overflow leaves running stats and Generators as found
        for i, layer in enumerate(net.layers):
            out.append(layer.jacobian_b_batched(A) if layer.batched_jacobians else None)
            A_in = A
            with np.errstate(over="ignore", invalid="ignore"):  # checked next: an overflow is refused by name
                A, ctx = layer.forward_batched(A, mode)
            check_layer_output(A, i)
            check_layer_context(ctx, i, (A_in, A))
    return out
