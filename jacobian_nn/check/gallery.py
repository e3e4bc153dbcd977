"""A gallery of deliberately wrong derivative code, and the verdict and diagnosis each must get.

Two kinds of entries, all written for this gallery:

* :data:`GALLERY`: :class:`Case` rows, a slip or its correct twin at a small size, with the verdict
  (``pass``, ``fail``, ``refused``) and diagnosis (or refusal cause) the checker must give.
  ``jacobian-nn verify`` runs them in its ``check`` group (:func:`gallery_rows`).
* :data:`SLIPS`: families built at any batch size N and width D, in float64 or float32, each a slip
  and its correct twin; every slip must keep its diagnosis at the three :data:`SIZES`.
  ``python -m jacobian_nn.check.gallery [small,medium,large]`` prints the table with timings.

The same slips exist as standalone files in ``examples/gallery/`` for the ``jacobian-nn check``
command line. Every case draws its parameters and points from ``numpy.random.default_rng``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.special import expit

from .api import check_batch_jacobian, check_batch_vjp, check_jacobian, check_loss, check_vjp, from_cs231n
from .report import CheckReport
from ..fd import Comparison

SEED = 8


@dataclass(frozen=True)
class Case:
    name: str
    run: Callable[[], CheckReport]
    expected: str  # the diagnosis (or refusal cause) the toolkit must give
    verdict: str  # "pass", "fail" or "refused"
    factor: float | None = None  # the factor a factor-type slip must report


# --------------------------------------------------------------------------- dense layer (reference path)


def _dense_setup(seed=SEED):
    rng = np.random.default_rng(seed)
    W, b = rng.normal(size=(4, 4)), rng.normal(size=4)
    x = rng.normal(size=(4, 1))

    def forward(x):
        return np.tanh(W.T @ x + b[:, None])

    def jac_right(x):
        d = 1.0 - np.tanh(W.T @ x + b[:, None])[:, 0] ** 2
        return np.diag(d) @ W.T  # (m, n) = J_f(z) W^T

    def jac_transposed(x):
        d = 1.0 - np.tanh(W.T @ x + b[:, None])[:, 0] ** 2
        return W @ np.diag(d)  # slip: (J_f(z) W^T)^T

    return forward, jac_right, jac_transposed, x, {"W": W, "b": b, "activation": "tanh"}


def _dense(transposed):
    forward, right, wrong, x, kw = _dense_setup()
    return lambda: check_jacobian(
        forward, wrong if transposed else right, x, reference="dense", reference_kwargs=kw, name="dense tanh dy/dx"
    )


# --------------------------------------------------------------------------- squared error, sign


def _mse(flipped):
    rng = np.random.default_rng(SEED + 1)
    t = rng.normal(size=(5, 1))
    y = rng.normal(size=(5, 1))

    def loss(y):
        return 0.5 * float(np.sum((y - t) ** 2))

    def grad(y):
        return (t - y).T if flipped else (y - t).T  # slip: (t - y)

    return lambda: check_jacobian(loss, grad, y, name="0.5 ||y - t||^2 gradient")


# --------------------------------------------------------------------------- L2 regularisation, factor


def _l2(doubled):
    rng = np.random.default_rng(SEED + 2)
    W = rng.normal(size=(3, 4))
    reg = 0.1

    def penalty(W):
        return 0.5 * reg * float(np.sum(W * W))

    def grad(W):
        return (2.0 if doubled else 1.0) * reg * W  # slip: d/dW of 0.5 reg |W|^2 taken as 2 reg W

    return lambda: check_jacobian(penalty, grad, W, name="0.5 reg ||W||^2 gradient")


# --------------------------------------------------------------------------- batch mean, 1/N


def _batch_mse(missing):
    rng = np.random.default_rng(SEED + 3)
    T = rng.normal(size=(5, 3))
    Y = rng.normal(size=(5, 3))

    def loss(Y):
        return 0.5 * float(np.sum((Y - T) ** 2)) / Y.shape[0]

    def vjp(Y, g):
        return g * (Y - T) if missing else g * (Y - T) / Y.shape[0]  # slip: no 1/N

    return lambda: check_batch_vjp(loss, vjp, Y, name="batch mean squared error")


# --------------------------------------------------------------------------- softmax VJP, diagonal only


def _softmax(diag_only):
    X = np.random.default_rng(SEED + 4).normal(size=(3, 4))

    def softmax(Z):
        E = np.exp(Z - Z.max(axis=1, keepdims=True))
        return E / E.sum(axis=1, keepdims=True)

    def vjp(Z, G):
        S = softmax(Z)
        if diag_only:
            return G * S * (1.0 - S)  # slip: only d s_i / d z_i
        return S * (G - np.sum(G * S, axis=1, keepdims=True))

    return lambda: check_batch_vjp(softmax, vjp, X, reference="softmax", name="softmax vjp")


# --------------------------------------------------------------------------- tanh, sigmoid derivatives


def _tanh(wrong, dtype=np.float64):
    X = np.random.default_rng(SEED + 5).normal(size=(3, 4)).astype(dtype)

    def vjp(X, G):
        return G * (1.0 - np.tanh(X)) if wrong else G * (1.0 - np.tanh(X) ** 2)  # slip: 1 - tanh

    return lambda: check_batch_vjp(np.tanh, vjp, X, reference="tanh", name=f"tanh vjp ({np.dtype(dtype).name})")


def _sigmoid(wrong):
    X = np.random.default_rng(SEED + 6).normal(size=(3, 4))

    def sigmoid_jacobians(X):
        s = expit(X)
        d = s * (1.0 - X) if wrong else s * (1.0 - s)  # slip: the input where the output belongs
        N, m = X.shape
        J = np.zeros((N, m, m))
        J[:, np.arange(m), np.arange(m)] = d
        return J

    return lambda: check_batch_jacobian(expit, sigmoid_jacobians, X, reference="sigmoid", name="sigmoid jacobians")


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
    return lambda: check_batch_vjp(f, vjp, X, reference="relu", name=f"cs231n {backward.__name__}")


# --------------------------------------------------------------------------- slips at any size
#
# Each family builds, for a batch of N samples with D features in a dtype, the slip and its
# correct twin as two thunks () -> CheckReport. SIZES are the three sizes every slip must keep
# its diagnosis at. All the code below is written for this gallery.

SIZES = {"small": (4, 5), "medium": (32, 100), "large": (128, 512)}


@dataclass(frozen=True)
class Slip:
    name: str
    verdict: str  # "fail" or "refused"
    expected: str  # the diagnosis (or refusal cause) the slip must get
    build: Callable[[int, int, np.dtype], dict[str, Callable[[], CheckReport]]]  # {"slip": thunk, "twin": thunk}
    factor: Callable[[int, int], float] | None = None  # (N, D) -> the expected factor, for factor-type slips


def _data(N, D, dtype, k):
    rng = np.random.default_rng([SEED, k, N, D])
    return rng, rng.standard_normal((N, D)).astype(dtype)


def softmax_rows(Z):
    """Row-wise softmax of Z (N, D), the max subtracted."""
    E = np.exp(Z - Z.max(axis=1, keepdims=True))
    return E / E.sum(axis=1, keepdims=True)


def _fam_dense_backward(N, D, dtype):
    """tanh(X W + b) with a square W; the slip chains the two factors of J = diag(tanh') W^T in the
    transposed order, (G W) * tanh', which is G J^T."""
    rng, X = _data(N, D, dtype, 1)
    W = (rng.standard_normal((D, D)) / np.sqrt(D)).astype(dtype)
    b = rng.standard_normal(D).astype(dtype)
    f = lambda X: np.tanh(X @ W + b)
    right = lambda X, G: (G * (1 - f(X) ** 2)) @ W.T
    wrong = lambda X, G: (G @ W) * (1 - f(X) ** 2)
    return {
        "slip": lambda: check_batch_vjp(f, wrong, X, name="dense backward, transposed chain"),
        "twin": lambda: check_batch_vjp(f, right, X, name="dense backward"),
    }


def _fam_sign(N, D, dtype):
    rng, Y = _data(N, D, dtype, 2)
    T = rng.standard_normal((N, D)).astype(dtype)
    loss = lambda Y: 0.5 * np.sum((Y - T) ** 2)
    return {
        "slip": lambda: check_batch_vjp(loss, lambda Y, g: g * (T - Y), Y, name="squared error, t - y"),
        "twin": lambda: check_batch_vjp(loss, lambda Y, g: g * (Y - T), Y, name="squared error"),
    }


def _fam_l2(N, D, dtype):
    _, W = _data(N, D, dtype, 3)
    reg = 0.1
    pen = lambda W: 0.5 * reg * np.sum(W * W)
    return {
        "slip": lambda: check_vjp(pen, lambda W, g: g * 2 * reg * W, W, name="L2 gradient 2 reg W"),
        "twin": lambda: check_vjp(pen, lambda W, g: g * reg * W, W, name="L2 gradient"),
    }


def _fam_batch_mean(N, D, dtype):
    rng, Y = _data(N, D, dtype, 4)
    T = rng.standard_normal((N, D)).astype(dtype)
    loss = lambda Y: 0.5 * np.sum((Y - T) ** 2) / Y.shape[0]
    return {
        "slip": lambda: check_batch_vjp(loss, lambda Y, g: g * (Y - T), Y, name="batch mean, no 1/N"),
        "twin": lambda: check_batch_vjp(loss, lambda Y, g: g * (Y - T) / Y.shape[0], Y, name="batch mean"),
    }


def _fam_softmax(N, D, dtype):
    _, Z = _data(N, D, dtype, 5)

    def right(Z, G):
        S = softmax_rows(Z)
        return S * (G - np.sum(G * S, axis=1, keepdims=True))

    def wrong(Z, G):
        S = softmax_rows(Z)
        return G * S * (1 - S)

    return {
        "slip": lambda: check_batch_vjp(softmax_rows, wrong, Z, name="softmax vjp, diagonal only"),
        "twin": lambda: check_batch_vjp(softmax_rows, right, Z, name="softmax vjp"),
    }


def _fam_tanh(N, D, dtype):
    _, X = _data(N, D, dtype, 6)
    return {
        "slip": lambda: check_batch_vjp(np.tanh, lambda X, G: G * (1 - np.tanh(X)), X, name="1 - tanh"),
        "twin": lambda: check_batch_vjp(np.tanh, lambda X, G: G * (1 - np.tanh(X) ** 2), X, name="tanh"),
    }


def _fam_relu(N, D, dtype):
    _, X = _data(N, D, dtype, 7)
    X.reshape(-1)[:: max(1, X.size // 7)] = 0.0  # some inputs exactly at the kink
    f_wrong, v_wrong = from_cs231n(relu_forward, relu_backward_inverted)
    f_right, v_right = from_cs231n(relu_forward, relu_backward)
    return {
        "slip": lambda: check_batch_vjp(f_wrong, v_wrong, X),
        "twin": lambda: check_batch_vjp(f_right, v_right, X),
    }


def dropout_forward(x, dropout_param):
    """CS231n-style inverted dropout: keep with probability p; the mask from dropout_param's seed."""
    p = dropout_param["p"]
    mask = (np.random.default_rng(dropout_param.get("seed")).random(x.shape) < p) / p
    return x * mask, mask


def dropout_backward(dout, cache):
    return dout * cache


def _fam_dropout(N, D, dtype):
    _, X = _data(N, D, dtype, 8)
    fw, vw = from_cs231n(dropout_forward, dropout_backward, {"p": 0.5})  # no seed: a new mask per call
    fr, vr = from_cs231n(dropout_forward, dropout_backward, {"p": 0.5, "seed": 1})
    return {"slip": lambda: check_batch_vjp(fw, vw, X), "twin": lambda: check_batch_vjp(fr, vr, X)}


def _fam_ignores(N, D, dtype):
    rng, Y = _data(N, D, dtype, 9)
    T = rng.standard_normal((N, D)).astype(dtype)
    loss = lambda Y: 0.5 * np.sum((Y - T) ** 2) / Y.shape[0]
    return {
        "slip": lambda: check_batch_vjp(loss, lambda Y, g: (Y - T) / Y.shape[0], Y, name="gradient, no g"),
        "twin": lambda: check_batch_vjp(loss, lambda Y, g: g * (Y - T) / Y.shape[0], Y, name="vjp"),
    }


def relu_backward_in_place(dout, cache):
    """The slip: zeroes dout in place and returns it."""
    dout[cache <= 0] = 0
    return dout


def relu_backward_copy(dout, cache):
    dx = dout.copy()
    dx[cache <= 0] = 0
    return dx


def _fam_mutates(N, D, dtype):
    _, X = _data(N, D, dtype, 10)
    return {
        "slip": lambda: check_batch_vjp(*from_cs231n(relu_forward, relu_backward_in_place), X),
        "twin": lambda: check_batch_vjp(*from_cs231n(relu_forward, relu_backward_copy), X),
    }


def scale_forward(x, gamma, beta):
    """y = gamma * x + beta per feature; cache (x, gamma)."""
    return gamma * x + beta, (x, gamma)


def scale_backward(dout, cache):
    x, gamma = cache
    return dout * gamma, np.sum(dout * x, axis=0), np.sum(dout, axis=0)


def scale_backward_keepdims(dout, cache):
    """The slip: dgamma summed with keepdims, shape (1, D) for gamma (D,)."""
    x, gamma = cache
    return dout * gamma, np.sum(dout * x, axis=0, keepdims=True), np.sum(dout, axis=0)


def _fam_shape(N, D, dtype):
    rng, X = _data(N, D, dtype, 11)
    gamma, beta = rng.standard_normal(D).astype(dtype), rng.standard_normal(D).astype(dtype)
    return {
        "slip": lambda: check_batch_vjp(*from_cs231n(scale_forward, scale_backward_keepdims, gamma, beta), X),
        "twin": lambda: check_batch_vjp(*from_cs231n(scale_forward, scale_backward, gamma, beta), X),
    }


def affine_forward(x, w, b):
    """CS231n affine: out = x w + b, x (N, D), w (D, M), b (M,)."""
    return x @ w + b, (x, w, b)


def affine_backward(dout, cache):
    x, w, b = cache
    return dout @ w.T, x.T @ dout, dout.sum(axis=0)


def affine_backward_dw_transposed(dout, cache):
    """The slip: dw computed as dout^T x, the transpose of x^T dout."""
    x, w, b = cache
    return dout @ w.T, dout.T @ x, dout.sum(axis=0)


def _fam_affine_dw(N, D, dtype):
    rng, X = _data(N, D, dtype, 12)
    w = (rng.standard_normal((D, D)) / np.sqrt(D)).astype(dtype)
    b = rng.standard_normal(D).astype(dtype)
    return {
        "slip": lambda: check_batch_vjp(*from_cs231n(affine_forward, affine_backward_dw_transposed, w, b), X),
        "twin": lambda: check_batch_vjp(*from_cs231n(affine_forward, affine_backward, w, b), X),
    }


def softmax_loss(x, y):
    """CS231n softmax loss: the mean cross-entropy of scores x (N, C), labels y (N,); dx = (p - onehot(y)) / N."""
    N = x.shape[0]
    z = x - x.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    loss = -logp[np.arange(N), y].mean()
    dx = np.exp(logp)
    dx[np.arange(N), y] -= 1
    return loss, dx / N


def softmax_loss_no_label_term(x, y):
    """The slip: dx = p / N, the -1 at the label forgotten."""
    N = x.shape[0]
    z = x - x.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return -logp[np.arange(N), y].mean(), np.exp(logp) / N


def _fam_softmax_loss(N, D, dtype):
    _, X = _data(N, D, dtype, 13)
    return {"slip": lambda: check_loss(softmax_loss_no_label_term, X), "twin": lambda: check_loss(softmax_loss, X)}


SLIPS = [
    Slip("dense backward, J transposed", "fail", "transposed", _fam_dense_backward),
    Slip("squared-error gradient sign flipped", "fail", "sign_flipped", _fam_sign),
    Slip("L2 gradient off by 2", "fail", "constant_factor", _fam_l2, lambda N, D: 2.0),
    Slip("batch-mean gradient missing 1/N", "fail", "missing_batch_scaling", _fam_batch_mean, lambda N, D: float(N)),
    Slip("softmax vjp diagonal only", "fail", "diagonal_only", _fam_softmax),
    Slip("tanh' as 1 - tanh(x)", "fail", "mismatch", _fam_tanh),
    Slip("cs231n relu mask inverted", "fail", "mismatch", _fam_relu),
    Slip("dropout without a fixed seed", "refused", "not_deterministic", _fam_dropout),
    Slip("backward ignoring its cotangent", "refused", "ignores_cotangent", _fam_ignores),
    Slip("backward mutating dout", "refused", "mutates_argument", _fam_mutates),
    Slip("dgamma of shape (1, D)", "refused", "wrong_shape", _fam_shape),
    Slip("cs231n affine, dw transposed", "fail", "transposed", _fam_affine_dw),
    Slip("softmax loss missing -1 at the label", "fail", "off_at_label", _fam_softmax_loss),
]


def slip_outcome(slip: Slip, size: str, dtype) -> dict:
    """Run one slip and its twin at a named size: what each got, and whether both are as expected."""
    N, D = SIZES[size]
    runs = slip.build(N, D, np.dtype(dtype))
    bad, good = runs["slip"](), runs["twin"]()
    ok = bad.verdict == slip.verdict and bad.diagnosis == slip.expected and good.verdict == "pass"
    if slip.factor is not None:
        ok = ok and bad.factor is not None and abs(bad.factor / slip.factor(N, D) - 1) < 1e-3
    return {
        "slip": slip.name,
        "size": size,
        "N": N,
        "D": D,
        "dtype": np.dtype(dtype).name,
        "got": bad.verdict,
        "diagnosis": bad.diagnosis,
        "factor": bad.factor,
        "twin": f"{good.verdict} ({good.diagnosis})",
        "ok": ok,
        "gradient": bad.gradient,
    }


def _slip_case(slip: Slip, which: str):
    def run():
        return slip.build(*SIZES["small"], np.dtype(np.float64))[which]()

    return run


GALLERY = [
    Case("dense J transposed", _dense(True), "transposed", "fail"),
    Case("mse gradient sign flipped", _mse(True), "sign_flipped", "fail"),
    Case("L2 gradient off by 2", _l2(True), "constant_factor", "fail", 2.0),
    Case("batch grad missing 1/N", _batch_mse(True), "missing_batch_scaling", "fail", 5.0),
    Case("softmax vjp diagonal only", _softmax(True), "diagonal_only", "fail"),
    Case("tanh' as 1 - tanh(x)", _tanh(True), "mismatch", "fail"),
    Case("sigmoid' as s (1 - x)", _sigmoid(True), "mismatch", "fail"),
    Case("cs231n relu mask inverted", _relu(relu_backward_inverted, False), "mismatch", "fail"),
    Case("ok dense J", _dense(False), "rounding", "pass"),
    Case("ok mse gradient", _mse(False), "rounding", "pass"),
    Case("ok L2 gradient", _l2(False), "rounding", "pass"),
    Case("ok batch-mean gradient", _batch_mse(False), "rounding", "pass"),
    Case("ok softmax vjp", _softmax(False), "rounding", "pass"),
    Case("ok tanh vjp", _tanh(False), "rounding", "pass"),
    Case("ok tanh vjp float32", _tanh(False, np.float32), "rounding", "pass"),
    Case("ok sigmoid jacobians", _sigmoid(False), "rounding", "pass"),
    Case("ok cs231n relu", _relu(relu_backward, False), "rounding", "pass"),
    Case("ok relu at 0, x <= 0 branch", _relu(relu_backward, True), "kink", "pass"),
    Case("ok relu at 0, x >= 0 branch", _relu(relu_backward_right, True), "kink", "pass"),
]
# every slip family at the small size, N=4, D=5 (float64), with its correct twin
_NEW = {
    "dropout without a fixed seed",
    "backward ignoring its cotangent",
    "backward mutating dout",
    "dgamma of shape (1, D)",
    "cs231n affine, dw transposed",
    "softmax loss missing -1 at the label",
    "dense backward, J transposed",
}
for _slip in SLIPS:
    if _slip.name in _NEW:
        GALLERY.append(Case(_slip.name, _slip_case(_slip, "slip"), _slip.expected, _slip.verdict))
        GALLERY.append(Case(f"ok twin of: {_slip.name}", _slip_case(_slip, "twin"), "rounding", "pass"))


def _large_batch_mean(which):
    def run():
        return _fam_batch_mean(*SIZES["large"], np.dtype(np.float64))[which]()

    return run


# a missing 1/N at a realistic size, N=128, D=512 (examples/gallery/batch_mean_large.py)
GALLERY.append(
    Case("batch grad missing 1/N, N=128, D=512", _large_batch_mean("slip"), "missing_batch_scaling", "fail", 128.0)
)
GALLERY.append(Case("ok batch-mean gradient, N=128, D=512", _large_batch_mean("twin"), "rounding", "pass"))


# --------------------------------------------------------------------------- loss references (svm)


def svm_loss(x, y, delta=1.0):
    """CS231n svm_loss: mean hinge loss of scores x (N, C), labels y (N,); a margin of exactly 0 gets no gradient."""
    N = x.shape[0]
    rows = np.arange(N)
    margins = x - x[rows, y][:, None] + delta
    margins[rows, y] = 0
    pos = (margins > 0).astype(x.dtype)
    pos[rows, y] = -pos.sum(axis=1)
    return np.maximum(0, margins).sum() / N, pos / N


def svm_loss_summed(x, y):
    """The slip (against the library): right for its own loss, summed over the batch instead of averaged."""
    loss, dx = svm_loss(x, y)
    return loss * x.shape[0], dx * x.shape[0]


def _svm(which):
    def run():
        rng = np.random.default_rng(SEED)
        X, y = rng.normal(size=(5, 4)), rng.integers(0, 4, size=5)
        if which == "kink":  # sample 0: a margin of exactly 0
            X[0, (y[0] + 1) % 4] = X[0, y[0]] - 1.0
        fn = svm_loss_summed if which == "summed" else svm_loss
        return check_loss(fn, X, y, reference="svm")

    return run


GALLERY.append(Case("svm loss summed, against the library's svm", _svm("summed"), "missing_batch_scaling", "fail", 5.0))
GALLERY.append(Case("ok svm loss", _svm("ok"), "rounding", "pass"))
GALLERY.append(Case("ok svm loss at a zero margin", _svm("kink"), "kink", "pass"))


def gallery_rows() -> list[Comparison]:
    """``verify`` group ``check``: one row per case, passing when the verdict and diagnosis are the expected ones.

    A slip's row (``kind="slip"``) reads "caught: transposed (expected)" or "refused: wrong_shape (expected)";
    a correct twin's row is numeric (its numbers are errors of a correct computation)."""
    rows = []
    for case in GALLERY:
        report = case.run()
        ok = report.verdict == case.verdict and report.diagnosis == case.expected
        if case.factor is not None:
            ok = ok and report.factor is not None and abs(report.factor - case.factor) < 1e-6
        where = report.worst[0] if report.worst else None
        fd = report.witnesses[0] if report.witnesses else None

        def words(verdict, diagnosis):
            return {"pass": diagnosis, "fail": f"caught: {diagnosis}", "refused": f"refused: {diagnosis}"}[verdict]

        got, want = words(report.verdict, report.diagnosis), words(case.verdict, case.expected)
        if case.factor is not None:
            got += ", no factor" if report.factor is None else f", factor {report.factor:.6g}"
            want += f", factor {case.factor:g}"
        label = case.name if ok else f"{case.name} (want {case.verdict}, {case.expected})"
        note = f"{got} (expected)" if ok else f"{got}; expected {want}"
        rows.append(
            Comparison(
                label,
                fd.max_abs if fd else 0.0,
                fd.max_rel if fd else 0.0,
                (where.where,) if where else (),
                where.tolerance if where else 0.0,
                ok,
                kind="numeric" if case.verdict == "pass" else "slip",
                note=note,
            )
        )
    return rows


def table(sizes=tuple(SIZES), dtypes=("float64", "float32")) -> list:
    """Every slip of :data:`SLIPS` at every size and dtype: :func:`slip_outcome` rows."""
    return [slip_outcome(slip, size, dt) for slip in SLIPS for size in sizes for dt in dtypes]


def main(argv=None) -> int:
    """``python -m jacobian_nn.check.gallery [small,medium,large]``: the slip x size x dtype table."""
    import sys
    import time

    args = sys.argv[1:] if argv is None else argv
    sizes = tuple(args[0].split(",")) if args else tuple(SIZES)
    print(f"| slip | {' | '.join(f'{s} {d}' for s in sizes for d in ('float64', 'float32'))} |")
    print("|---" * (1 + 2 * len(sizes)) + "|")
    bad = 0
    for slip in SLIPS:
        cells = []
        for size in sizes:
            for dt in ("float64", "float32"):
                t = time.perf_counter()
                o = slip_outcome(slip, size, dt)
                bad += not o["ok"]
                cells.append(f"{o['diagnosis']}{'' if o['ok'] else ' (WRONG)'} {time.perf_counter() - t:.1f} s")
        print(f"| {slip.name} ({slip.verdict}: {slip.expected}) | {' | '.join(cells)} |", flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
