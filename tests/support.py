"""Helpers shared by the test modules (one copy, imported; not a test module).

Samples as columns and rows (:func:`cols`, :func:`rows`), exact comparison
(:func:`same_bits`; per-layer dicts of arrays: :func:`layers_copy`, :func:`same_layers`), the kinked activations and a hypothesis strategy that keeps away
from their kinks, random networks and batches for every activation and loss, the
stacked reference results, a worst-error tracker for the hypothesis runs, the inner-product
identity of a VJP (:func:`assert_identity`), errors against exact values (:func:`exact_rel_err`),
and nearly constant features against exact rational arithmetic (:func:`near_constant`,
:func:`exact_normalised`).
"""

from __future__ import annotations

import json
import os
from fractions import Fraction

import numpy as np
from hypothesis import strategies as st

from jacobian_nn import ACTIVATIONS, Network
from jacobian_nn._validation import columns as cols, rows_of as rows  # one copy: the library's
from jacobian_nn.layers import Dense
from jacobian_nn.normalization import ActivationLayer, BatchNorm, Dropout

__all__ = ["cols", "rows"]  # re-exported: (N, n) -> N columns (n, 1); (N, m) -> N rows (1, m)

ACTIVATION_NAMES = sorted(ACTIVATIONS)
LOSS_NAMES = ("softmax_cross_entropy", "cross_entropy", "mse")
#: Activations that are piecewise (a kink or jump at 0).
KINKED = ("step", "relu", "leaky_relu", "elu")


def away_from_zero(margin=0.05):
    """Floats in [-5, -margin] U [margin, 5]: at least a step of scipy's FD away from every kink."""
    return st.floats(margin, 5.0).flatmap(lambda v: st.sampled_from([v, -v]))


def same_bits(a, b) -> bool:
    """Exactly the same array: dtype, shape and every bit (NaN payloads and the sign of 0 included)."""
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def build_net(sizes, hidden, loss, seed, *, dtype=np.float64, l2=0.0, l1=0.0, regularize_bias=False, output=None):
    """A network of Dense layers: ``hidden[i]`` on hidden layer i; the output activation fits the loss
    (identity logits for softmax_cross_entropy, softmax for cross_entropy, ``output`` or identity for mse).
    Biases are drawn too (N(0, 0.3^2)), so that no pre-activation is exactly 0 by construction."""
    rng = np.random.default_rng(seed)
    layers = []
    L = len(sizes) - 1
    for i in range(L):
        if i < L - 1:
            act = hidden[i % len(hidden)]
        elif loss == "cross_entropy":
            act = "softmax"
        elif loss == "softmax_cross_entropy":
            act = "identity"
        else:
            act = output or "identity"
        layer = Dense(sizes[i], sizes[i + 1], act, init="xavier", seed=rng, dtype=dtype)
        layer.b[:] = (0.3 * rng.standard_normal(sizes[i + 1])).astype(dtype)
        layers.append(layer)
    return Network(layers, loss, l2=l2, l1=l1, regularize_bias=regularize_bias)


def random_batch(net, N, seed, *, soft_labels=False, dtype=None):
    """``X`` ``(N, n_in)`` standard normal and labels fitting ``net.loss``."""
    rng = np.random.default_rng(seed)
    dtype = net.dtype if dtype is None else dtype
    X = rng.standard_normal((N, net.n_in)).astype(dtype)
    if net.loss.name == "mse":
        Y = rng.standard_normal((N, net.n_out)).astype(dtype)
    elif soft_labels:
        Y = rng.dirichlet(np.ones(net.n_out), size=N).astype(np.float64)
        Y = Y.astype(dtype)
    else:
        Y = rng.integers(0, net.n_out, size=N)
    return X, Y


def stacked_reference(net, X, Y):
    """Reference results, sample by sample, stacked: outputs ``(N, m)``, per-sample losses ``(N,)``,
    per-sample gradients (one dict per layer, ``(N, ...)``), input Jacobians ``(N, m, n)``."""
    from jacobian_nn.losses import label_matrix

    N = X.shape[0]
    Ym = label_matrix(Y, N, net.n_out)
    xs, ys = cols(X), cols(Ym)
    outs = np.stack([net.forward(x)[:, 0] for x in xs])
    losses = np.array([net.loss.forward(o, y) for o, y in zip(cols(outs), ys)])
    per = [net.backward(x, y)[1] for x, y in zip(xs, ys)]
    grads = [
        {name: np.stack([per[k][i][name] for k in range(N)]) for name in per[0][i]} for i in range(len(net.layers))
    ]
    jac = np.stack([net.input_jacobian(x) for x in xs])
    return outs, losses, grads, jac


def rel_err(a, b, floor=1e-300):
    """``max |a - b| / max(max|b|, floor)``: the error relative to the quantity's scale."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    scale = max(float(np.max(np.abs(b))) if b.size else 0.0, floor)
    return float(np.max(np.abs(a - b))) / scale if a.size else 0.0


class WorstErrors:
    """Largest relative error seen per quantity. Written as JSON at the end of a module when the
    environment variable ``JNN_WORST_ERRORS`` names a file (used to report the figures)."""

    def __init__(self):
        self.worst = {}

    def record(self, quantity: str, err: float) -> float:
        self.worst[quantity] = max(self.worst.get(quantity, 0.0), float(err))
        return err

    def dump_at_module_end(self, tag: str):
        """A module-scoped autouse fixture that calls :meth:`dump` with ``tag`` once the module's tests
        have run; assign it in the module: ``_dump_worst = WORST.dump_at_module_end("test_conv")``."""
        import pytest

        @pytest.fixture(scope="module", autouse=True)
        def _dump_worst():
            yield
            self.dump(tag)

        return _dump_worst

    def dump(self, tag: str) -> None:
        path = os.environ.get("JNN_WORST_ERRORS")
        if not path:
            return
        data = {}
        if os.path.exists(path):
            with open(path, encoding="utf-8") as fh:
                data = json.load(fh)
        for k, v in self.worst.items():
            key = f"{tag}: {k}"
            data[key] = max(data.get(key, 0.0), v)
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(dict(sorted(data.items())), fh, indent=2)


def assert_three_witnesses(net, X, Y):
    """The batched path against the stacked reference (``cross_check``, per-sample results and batched
    Jacobians included), and the reference gradients against finite differences of the loss; returns the
    reference ``(loss, grads)``."""
    from jacobian_nn import cross_check
    from jacobian_nn.fd import compare, fd_loss_gradient

    report = cross_check(net, X, Y)
    assert report.passed, str(report)
    loss, grads = net.loss_and_gradients(X, Y)
    fd = fd_loss_gradient(net, X, Y)
    assert compare("dL/dtheta", net.flatten_gradients(grads)[None], fd.df, err=fd.error).passed
    return loss, grads


#: ``<u, vjp(v)>`` against ``<v, J u>`` in float64: a multiple of eps of the dot products' scale.
IDENTITY_RTOL = 1e-13
#: The same when ``J u`` is a finite-difference estimate.
FD_IDENTITY_RTOL = 1e-7


def dots(U, V):
    """Row-wise inner products of ``(N, ...)`` arrays -> ``(N,)``."""
    return np.sum((U * V).reshape(U.shape[0], -1), axis=1)


def assert_identity(lhs_u, lhs_vjp, rhs_v, rhs_ju, rtol=IDENTITY_RTOL, label=""):
    """autograd's check_vjp, sample by sample: ``<u_k, vjp(v)_k> = <v_k, (J u)_k>`` within
    ``rtol * (|u_k|.|vjp_k| + |v_k|.|(J u)_k|)`` (absolute values entrywise: the natural scale of a dot
    product's rounding). ``lhs_u``, ``lhs_vjp``: ``(N, ...)`` in the input space; ``rhs_v``, ``rhs_ju``:
    ``(N, ...)`` in the output space."""
    lhs = dots(lhs_u, lhs_vjp)
    rhs = dots(rhs_v, rhs_ju)
    scale = dots(np.abs(lhs_u), np.abs(lhs_vjp)) + dots(np.abs(rhs_v), np.abs(rhs_ju))
    bad = np.abs(lhs - rhs) > rtol * scale + 1e-300
    assert not bad.any(), f"{label}: <u, vjp(v)> = {lhs[bad]} but <v, J u> = {rhs[bad]} (scale {scale[bad]})"


def exact_rel_err(a, exact):
    """Worst entrywise relative error ``max |a_i - exact_i| / |exact_i|`` over the entries whose exact
    value (already rounded to float64) is nonzero; the entries whose exact value is 0 must be exactly 0."""
    a, exact = np.asarray(a), np.asarray(exact)
    nz = exact != 0
    assert np.all(a[~nz] == 0), a[~nz]
    return float(np.max(np.abs(a[nz] - exact[nz]) / np.abs(exact[nz]))) if nz.any() else 0.0


def near_constant(N=8, seed=0):
    """A nearly constant feature: ``1e3 + 1e-6 u``, ``u ~ U(-1, 1)``, shape ``(N,)``."""
    u = np.random.default_rng(seed).uniform(-1, 1, N)
    return 1e3 + 1e-6 * u


def exact_normalised(x, eps):
    """``x_hat = (x - mu) / sqrt(var + eps)`` with ``mu``, ``var`` and ``x - mu`` exact (Fractions) and
    ``sigma`` rounded once (its relative condition number is 1/2). Returns ``(x_hat, x - mu, mu, sigma)``:
    float64 arrays ``(N,)``, the exact ``mu`` as a Fraction and ``sigma`` as a float."""
    fx = [Fraction(float(v)) for v in x]
    mu = sum(fx) / len(fx)
    d = [v - mu for v in fx]
    var = sum(v * v for v in d) / len(fx)
    sigma = float(var + Fraction(eps)) ** 0.5
    return np.array([float(v) for v in d]) / sigma, np.array([float(v) for v in d]), mu, sigma


def layers_copy(layers):
    """A deep copy of per-layer dicts of arrays (``net.params``, ``net.state``, gradients)."""
    return [{k: np.array(v, copy=True) for k, v in d.items()} for d in layers]


def same_layers(a, b) -> bool:
    """Two sequences of per-layer dicts of arrays are the same: as many layers, the same keys, and
    every array the same to the bit (:func:`same_bits`: dtype, shape, NaN payloads, signs of 0)."""
    a, b = list(a), list(b)
    return len(a) == len(b) and all(
        d1.keys() == d2.keys() and all(same_bits(d1[k], d2[k]) for k in d1) for d1, d2 in zip(a, b)
    )


def stateful_net(batchnorm=True, loss="mse", seed=0, l2=0.0):
    """Dense, [BatchNorm,] ReLU, Dropout, Dense: running statistics and a Generator to move."""
    layers = [Dense(3, 6, seed=seed)]
    if batchnorm:
        layers.append(BatchNorm(6))
    layers += [ActivationLayer(6, "relu"), Dropout(6, 0.3, seed=seed + 1), Dense(6, 3, seed=seed + 2)]
    return Network(layers, loss, l2=l2)


def state_snapshot(net):
    """Copies of every parameter, every state array, and every Generator's state."""
    return (
        [{k: v.copy() for k, v in p.items()} for p in net.params],
        [{k: v.copy() for k, v in s.items()} for s in net.state],
        [layer.rng.bit_generator.state for layer in net.layers if isinstance(layer, Dropout)],
    )


def same_snapshot(a, b) -> bool:
    """Two :func:`state_snapshot` results are the same: every parameter and state array to the bit, and the
    Generator states."""
    arrays = lambda s: [v for d in s[0] + s[1] for v in d.values()]  # noqa: E731
    return all(same_bits(x, y) for x, y in zip(arrays(a), arrays(b), strict=True)) and a[2] == b[2]


def moved_everything(a, b) -> bool:
    """Parameters, running statistics (if any) and Generator states all differ: the near miss moved them."""
    pairs = lambda i: [(x, y) for p, q in zip(a[i], b[i]) for x, y in zip(p.values(), q.values())]  # noqa: E731
    params_moved = not all(same_bits(x, y) for x, y in pairs(0))
    state_moved = not pairs(1) or not all(same_bits(x, y) for x, y in pairs(1))
    return params_moved and state_moved and a[2] != b[2]


def bn_dropout_case(seed, p, N, use_bn=True):
    """``(net, X, Y)`` of ``test_fcnet.py::test_paths_agree_on_batchnorm_and_dropout_nets`` for one draw: a
    ``FullyConnectedNet`` 3-5-4-3 (batch norm when ``use_bn``, dropout ``p``, reg 0.1, weight scale 0.5),
    running variances drawn in [0.5, 2], then ``X`` ``(N, 3)`` and labels ``(N,)`` from the same Generator."""
    from jacobian_nn.fcnet import FullyConnectedNet
    from jacobian_nn.normalization import BatchNorm

    rng = np.random.default_rng(seed)
    net = FullyConnectedNet(
        [5, 4], input_dim=3, num_classes=3, dropout=p, use_batchnorm=use_bn, reg=0.1, weight_scale=0.5, seed=seed
    )
    for layer in net.layers:
        if isinstance(layer, BatchNorm):
            layer.running_var[:] = rng.uniform(0.5, 2.0, layer.n_in)
    return net, rng.normal(size=(N, 3)), rng.integers(0, 3, N)
