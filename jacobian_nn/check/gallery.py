"""A gallery of deliberately wrong derivative code, and the diagnosis each must get.

Each case is a small, user-style implementation (one correct, one with a classic
slip) run through :mod:`jacobian_nn.check`. ``jacobian-nn verify`` runs them in
its ``check`` group (:func:`gallery_rows`): a row passes when the toolkit gives
the expected verdict and diagnosis. The same entries exist as standalone files in
``examples/gallery/`` for the ``jacobian-nn check`` command line.

Every case draws its parameters and points from ``numpy.random.default_rng(seed)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit

from .api import check_jacobian, check_jacobian_batched, check_vjp_batched, from_cs231n
from ..fd import Comparison

SEED = 8


@dataclass(frozen=True)
class Case:
    name: str
    run: object          # () -> CheckReport
    expected: str        # the diagnosis the toolkit must give
    should_pass: bool


# --------------------------------------------------------------------------- dense layer (reference path)


def _dense_setup(seed=SEED):
    rng = np.random.default_rng(seed)
    W, b = rng.normal(size=(4, 4)), rng.normal(size=4)
    x = rng.normal(size=(4, 1))

    def forward(x):
        return np.tanh(W.T @ x + b[:, None])

    def jac_right(x):
        d = 1.0 - np.tanh(W.T @ x + b[:, None])[:, 0] ** 2
        return np.diag(d) @ W.T                           # (m, n) = J_f(z) W^T

    def jac_transposed(x):
        d = 1.0 - np.tanh(W.T @ x + b[:, None])[:, 0] ** 2
        return W @ np.diag(d)                             # slip: (J_f(z) W^T)^T

    return forward, jac_right, jac_transposed, x, {"W": W, "b": b, "activation": "tanh"}


def _dense(transposed):
    forward, right, wrong, x, kw = _dense_setup()
    return lambda: check_jacobian(forward, wrong if transposed else right, x, reference="dense",
                                  reference_kwargs=kw, name="dense tanh dy/dx")


# --------------------------------------------------------------------------- squared error, sign


def _mse(flipped):
    rng = np.random.default_rng(SEED + 1)
    t = rng.normal(size=(5, 1))
    y = rng.normal(size=(5, 1))

    def loss(y):
        return 0.5 * float(np.sum((y - t) ** 2))

    def grad(y):
        return (t - y).T if flipped else (y - t).T       # slip: (t - y)

    return lambda: check_jacobian(loss, grad, y, name="0.5 ||y - t||^2 gradient")


# --------------------------------------------------------------------------- L2 regularisation, factor


def _l2(doubled):
    rng = np.random.default_rng(SEED + 2)
    W = rng.normal(size=(3, 4))
    reg = 0.1

    def penalty(W):
        return 0.5 * reg * float(np.sum(W * W))

    def grad(W):
        return (2.0 if doubled else 1.0) * reg * W      # slip: d/dW of 0.5 reg |W|^2 taken as 2 reg W

    return lambda: check_jacobian(penalty, grad, W, name="0.5 reg ||W||^2 gradient")


# --------------------------------------------------------------------------- batch mean, 1/N


def _batch_mse(missing):
    rng = np.random.default_rng(SEED + 3)
    T = rng.normal(size=(5, 3))
    Y = rng.normal(size=(5, 3))

    def loss(Y):
        return 0.5 * float(np.sum((Y - T) ** 2)) / Y.shape[0]

    def vjp(Y, g):
        return g * (Y - T) if missing else g * (Y - T) / Y.shape[0]   # slip: no 1/N

    return lambda: check_vjp_batched(loss, vjp, Y, name="batch mean squared error")


# --------------------------------------------------------------------------- softmax VJP, diagonal only


def _softmax(diag_only):
    X = np.random.default_rng(SEED + 4).normal(size=(3, 4))

    def softmax(Z):
        E = np.exp(Z - Z.max(axis=1, keepdims=True))
        return E / E.sum(axis=1, keepdims=True)

    def vjp(Z, G):
        S = softmax(Z)
        if diag_only:
            return G * S * (1.0 - S)                       # slip: only d s_i / d z_i
        return S * (G - np.sum(G * S, axis=1, keepdims=True))

    return lambda: check_vjp_batched(softmax, vjp, X, reference="softmax", name="softmax vjp")


# --------------------------------------------------------------------------- tanh, sigmoid derivatives


def _tanh(wrong, dtype=np.float64):
    X = np.random.default_rng(SEED + 5).normal(size=(3, 4)).astype(dtype)

    def vjp(X, G):
        return G * (1.0 - np.tanh(X)) if wrong else G * (1.0 - np.tanh(X) ** 2)   # slip: 1 - tanh

    return lambda: check_vjp_batched(np.tanh, vjp, X, reference="tanh", name=f"tanh vjp ({np.dtype(dtype).name})")


def _sigmoid(wrong):
    X = np.random.default_rng(SEED + 6).normal(size=(3, 4))

    def sigmoid_jacobians(X):
        s = expit(X)
        d = s * (1.0 - X) if wrong else s * (1.0 - s)    # slip: the input where the output belongs
        N, m = X.shape
        J = np.zeros((N, m, m))
        J[:, np.arange(m), np.arange(m)] = d
        return J

    return lambda: check_jacobian_batched(expit, sigmoid_jacobians, X, reference="sigmoid",
                                          name="sigmoid jacobians")


# --------------------------------------------------------------------------- CS231n relu


def relu_forward(x):
    """CS231n: ``out = max(0, x)``, ``cache = x``."""
    return np.maximum(0, x), x


def relu_backward(dout, cache):
    """CS231n, correct, with the ``x <= 0`` convention: ``dx = dout * (x > 0)``."""
    return dout * (cache > 0)


def relu_backward_inverted(dout, cache):
    """The slip: the mask inverted, ``dx = dout * (x <= 0)``."""
    return dout * (cache <= 0)


def relu_backward_right(dout, cache):
    """The other convention at the kink, ``x >= 0``: relu'(0) = 1."""
    return dout * (cache >= 0)


def _relu(backward, at_kink):
    X = np.random.default_rng(SEED + 7).normal(size=(4, 5))
    if at_kink:
        X[0, 0] = X[1, 3] = X[3, 2] = 0.0
    f, vjp = from_cs231n(relu_forward, backward)
    return lambda: check_vjp_batched(f, vjp, X, reference="relu", name=f"cs231n {backward.__name__}")


GALLERY = [
    Case("dense J transposed", _dense(True), "transposed", False),
    Case("mse gradient sign flipped", _mse(True), "sign_flipped", False),
    Case("L2 gradient off by 2", _l2(True), "constant_factor", False),
    Case("batch grad missing 1/N", _batch_mse(True), "missing_batch_scaling", False),
    Case("softmax vjp diagonal only", _softmax(True), "diagonal_only", False),
    Case("tanh' as 1 - tanh(x)", _tanh(True), "mismatch", False),
    Case("sigmoid' as s (1 - x)", _sigmoid(True), "mismatch", False),
    Case("cs231n relu mask inverted", _relu(relu_backward_inverted, False), "mismatch", False),
    Case("ok dense J", _dense(False), "rounding", True),
    Case("ok mse gradient", _mse(False), "rounding", True),
    Case("ok L2 gradient", _l2(False), "rounding", True),
    Case("ok batch-mean gradient", _batch_mse(False), "rounding", True),
    Case("ok softmax vjp", _softmax(False), "rounding", True),
    Case("ok tanh vjp", _tanh(False), "rounding", True),
    Case("ok tanh vjp float32", _tanh(False, np.float32), "rounding", True),
    Case("ok sigmoid jacobians", _sigmoid(False), "rounding", True),
    Case("ok cs231n relu", _relu(relu_backward, False), "rounding", True),
    Case("ok relu at 0, x <= 0 branch", _relu(relu_backward, True), "kink", True),
    Case("ok relu at 0, x >= 0 branch", _relu(relu_backward_right, True), "kink", True),
]

#: The expected factor of the factor-type cases.
EXPECTED_FACTOR = {"L2 gradient off by 2": 2.0, "batch grad missing 1/N": 5.0}


def gallery_rows() -> list[Comparison]:
    """``verify`` group ``check``: one row per case, passing when the verdict and diagnosis are the expected ones."""
    rows = []
    for case in GALLERY:
        report = case.run()
        ok = report.passed == case.should_pass and report.diagnosis == case.expected
        if case.name in EXPECTED_FACTOR:
            ok = ok and report.factor is not None and abs(report.factor - EXPECTED_FACTOR[case.name]) < 1e-6
        fd = report.witnesses[0]
        where = report.worst[0] if report.worst else None
        loc = () if where is None else tuple(v for v in (where.sample, where.row, where.column) if v is not None)
        label = f"{case.name}: {report.diagnosis}"
        if case.expected != report.diagnosis or report.passed != case.should_pass:
            label += f" (want {'pass' if case.should_pass else 'fail'}, {case.expected})"
        rows.append(Comparison(label, fd.max_abs, fd.max_rel, loc, report.worst[0].tolerance if where else 0.0, ok))
    return rows
