"""The suite's expected values against witnesses that share no code with the library's derivatives:
finite differences (``scipy.differentiate.jacobian``) of plain numpy forwards written here from the
manifest's conventions, for full Jacobians and for the CS231n FullyConnectedNet's gradients."""

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.special import expit, log_softmax, softmax

import jacobian_nn as jn
from jacobian_nn.vectors import write_suite


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    root = Path(write_suite(tmp_path_factory.mktemp("w") / "suite").path)
    return root, {c["name"]: c for c in json.loads((root / "manifest.json").read_text())["cases"]}


def load(root, case, name):
    return np.load(root / case / f"{name}.npy").astype(np.float64)


# plain numpy forwards of Y (N, d) from Z (N, d), from the conventions in the manifest
FORWARDS = {
    "identity": lambda Z: Z,
    "sigmoid": expit,
    "tanh": np.tanh,
    "relu": lambda Z: np.where(Z > 0, Z, 0.0),
    "leaky_relu": lambda Z: np.where(Z > 0, Z, 0.01 * Z),
    "elu": lambda Z: np.where(Z > 0, Z, np.expm1(np.minimum(Z, 0.0))),
    "softmax": lambda Z: softmax(Z, axis=1),
}


def assert_fd(name, claimed, fn, x, **tol):
    fd = jn.fd_jacobian(fn, x)
    assert jn.compare(name, claimed, fd.df, err=fd.error, **tol).passed, name


#: A float32 case holds the float64 values rounded once (relative error <= 2^-24): its witness tolerance.
TOL = {"float64": {}, "float32": {"rtol": 2.0**-23, "atol": 1e-7}}
#: The relative tolerance of an output against a plain numpy forward.
FWD = {"float64": 1e-13, "float32": 2.0**-23}


@pytest.mark.parametrize("act", sorted(FORWARDS))
def test_activation_jacobians_and_outputs_against_finite_differences(act, suite):
    root, cases = suite
    case = f"{act}-random-float64"
    Z = load(root, case, "Z")
    f = FORWARDS[act]
    assert np.allclose(load(root, case, "Y"), f(Z), rtol=1e-13, atol=1e-15)
    assert_fd(case, load(root, case, "J"), lambda z: f(z.reshape(Z.shape)), Z)


@pytest.mark.parametrize(
    "case", ["dense_tanh-random-float64", "dense_identity-square-float64", "dense_sigmoid-random-float64"]
)
def test_dense_jacobians_against_finite_differences(case, suite):
    root, cases = suite
    f = {"tanh": np.tanh, "identity": lambda Z: Z, "sigmoid": expit}[case.split("-")[0].split("_")[1]]
    X, W, b = (load(root, case, n) for n in ("X", "W", "b"))
    assert np.allclose(load(root, case, "Y"), f(X @ W + b), rtol=1e-13, atol=1e-15)
    assert_fd("J_X", load(root, case, "J_X"), lambda x: f(x.reshape(X.shape) @ W + b), X)
    assert_fd("J_W", load(root, case, "J_W"), lambda w: f(X @ w.reshape(W.shape) + b), W)
    assert_fd("J_b", load(root, case, "J_b"), lambda v: f(X @ W + v), b)


@pytest.mark.parametrize("mode", ["train", "test"])
@pytest.mark.parametrize("point", ["random", "nearly_constant"])
def test_batchnorm_jacobian_against_finite_differences(mode, point, suite):
    root, cases = suite
    case = f"batchnorm_{mode}-{point}-float64"
    X, gamma, beta = (load(root, case, n) for n in ("X", "gamma", "beta"))

    def f(x):
        x = x.reshape(X.shape)
        if mode == "train":
            mu, var = x.mean(axis=0), x.var(axis=0)
        else:
            mu, var = load(root, case, "running_mean"), load(root, case, "running_var")
        return gamma * (x - mu) / np.sqrt(var + 1e-5) + beta

    assert np.allclose(load(root, case, "Y"), f(X), rtol=1e-12, atol=1e-14)
    if point == "random":  # a feature of variance 1e-12 is too close to constant for finite differences
        assert_fd(case, load(root, case, "J_X"), f, X)


def test_softmax_cross_entropy_gradient_against_finite_differences(suite):
    root, cases = suite
    for case in ("softmax_cross_entropy-random-float64", "softmax_cross_entropy-spread1000-float64"):
        Z, y = load(root, case, "Z"), np.load(root / case / "y.npy")
        N = len(y)

        def f(z):
            return -log_softmax(z.reshape(Z.shape), axis=1)[np.arange(N), y].mean()

        assert abs(load(root, case, "loss") - f(Z)) <= 1e-13 * max(1.0, abs(f(Z)))
        fd = jn.fd_gradient(f, Z, initial_step=1e-3)
        assert jn.compare(case, load(root, case, "dZ").reshape(1, -1), fd.df, err=fd.error).passed


def test_fcnet_with_batchnorm_and_dropout_against_an_independent_numpy_forward(suite):
    root, cases = suite
    case = "network_fcnet_batchnorm_dropout-mask-float64"
    g = {n: load(root, case, n) for n in cases[case]["arrays"] if cases[case]["arrays"][n]["role"] != "expected"}
    y, keep, p, reg = np.load(root / case / "y.npy"), g["keep1"], float(g["p"]), float(g["reg"])
    names = ["W1", "b1", "gamma1", "beta1", "W2", "b2"]

    def forward(P, train=True):
        h = g["X"] @ P["W1"] + P["b1"]
        mu, var = (h.mean(axis=0), h.var(axis=0)) if train else (g["running_mean1"], g["running_var1"])
        a = np.maximum(P["gamma1"] * (h - mu) / np.sqrt(var + 1e-5) + P["beta1"], 0.0)
        if train:
            a = a * keep / (1 - p)
        return a @ P["W2"] + P["b2"]

    def loss(P):
        s = forward(P)
        return -log_softmax(s, axis=1)[np.arange(len(y)), y].mean() + reg / 2 * (
            np.sum(P["W1"] ** 2) + np.sum(P["W2"] ** 2)
        )

    P0 = {n: g[n] for n in names}
    assert np.allclose(load(root, case, "out_train"), forward(P0), rtol=1e-12, atol=1e-14)
    assert np.allclose(load(root, case, "out_test"), forward(P0, train=False), rtol=1e-12, atol=1e-14)
    assert abs(load(root, case, "loss") - loss(P0)) < 1e-13
    for n in names:

        def of(v, n=n):
            return loss({**P0, n: v.reshape(P0[n].shape)})

        fd = jn.fd_gradient(of, P0[n], initial_step=1e-4)
        assert jn.compare(n, load(root, case, "d" + n).reshape(1, -1), fd.df, err=fd.error).passed, n


# --------------------------------------------------------------------------- image layers, catalogue, CNN


def conv_forward(X, W, b, S, P):
    """Plain numpy cross-correlation: every window by sliding_window_view of the padded images, then einsum."""
    F, C, FH, FW = W.shape
    Xp = np.pad(X, ((0, 0), (0, 0), (P, P), (P, P)))
    win = np.lib.stride_tricks.sliding_window_view(Xp, (FH, FW), axis=(2, 3))[:, :, ::S, ::S]
    return np.einsum("nchwij,fcij->nfhw", win, W) + b[None, :, None, None]


def pool_windows(X, k, S):
    return np.lib.stride_tricks.sliding_window_view(X, (k, k), axis=(2, 3))[:, :, ::S, ::S]


@pytest.mark.parametrize(
    "case",
    [
        "conv2d_identity_s2_p1-random-float64",
        "conv2d_identity_s2_p1-random-float32",
        "conv2d_relu_s1_p0_k2x3-kink-float64",
    ],
)
def test_conv2d_against_finite_differences(case, suite):
    """Y against a plain numpy forward; the Jacobians of the linear part Z against finite differences,
    times relu'(Z) = 1[Z > 0] at the kink case (finite differences cannot judge a kink themselves)."""
    root, cases = suite
    X, W, b = (load(root, case, n) for n in ("X", "W", "b"))
    S, P = int(np.load(root / case / "stride.npy")), int(np.load(root / case / "pad.npy"))
    Z = conv_forward(X, W, b, S, P)
    relu, dt = "relu" in case, cases[case]["dtype"]
    assert np.allclose(load(root, case, "Y"), np.maximum(Z, 0) if relu else Z, rtol=FWD[dt], atol=1e-14)
    slope = (Z.reshape(-1, 1) > 0) if relu else 1.0
    assert_fd(
        "J_X",
        load(root, case, "J_X"),
        lambda x: slope * conv_forward(x.reshape(X.shape), W, b, S, P).reshape(-1, 1),
        X,
        **TOL[dt],
    )
    assert_fd(
        "J_W",
        load(root, case, "J_W"),
        lambda w: slope * conv_forward(X, w.reshape(W.shape), b, S, P).reshape(-1, 1),
        W,
        **TOL[dt],
    )
    assert_fd(
        "J_b", load(root, case, "J_b"), lambda v: slope * conv_forward(X, W, v, S, P).reshape(-1, 1), b, **TOL[dt]
    )
    if relu:
        assert (Z == 0).sum() >= 2 and (Z > 0).any() and (Z < 0).any()


@pytest.mark.parametrize("case", ["maxpool2d_2_s2-random-float64", "avgpool2d_2_s1-random-float64"])
def test_pooling_against_finite_differences(case, suite):
    root, cases = suite
    X = load(root, case, "X")
    k, S = int(np.load(root / case / "pool.npy")), int(np.load(root / case / "stride.npy"))
    reduce = (lambda w: w.max(axis=(4, 5))) if case.startswith("max") else (lambda w: w.mean(axis=(4, 5)))
    assert np.array_equal(load(root, case, "Y"), reduce(pool_windows(X, k, S))) or np.allclose(
        load(root, case, "Y"), reduce(pool_windows(X, k, S)), rtol=1e-15, atol=0
    )
    fd = jn.fd_jacobian(lambda x: reduce(pool_windows(x.reshape(X.shape), k, S)), X, initial_step=1e-4)
    assert jn.compare(case, load(root, case, "J_X"), fd.df, err=fd.error).passed


@pytest.mark.parametrize("case", ["maxpool2d_2_s2-ties-float64", "maxpool2d_2_s1-ties_overlap-float64"])
def test_max_pooling_ties_follow_the_stated_convention(case, suite):
    """At exact ties finite differences have no answer; the witness builds both branches from the
    conventions: np.argmax of each flattened window (its first maximal entry in C order), and the mask
    of every maximal entry for the other branch."""
    root, cases = suite
    X = load(root, case, "X")
    k, S = int(np.load(root / case / "pool.npy")), int(np.load(root / case / "stride.npy"))
    win = pool_windows(X, k, S)
    N, C, OH, OW = win.shape[:4]
    H, W = X.shape[2:]
    first = np.zeros((N, C, OH, OW) + X.shape)
    every = np.zeros_like(first)
    for n, c, oh, ow in np.ndindex(N, C, OH, OW):
        v = win[n, c, oh, ow].reshape(-1)
        i, j = divmod(int(np.argmax(v)), k)
        first[n, c, oh, ow, n, c, oh * S + i, ow * S + j] = 1.0
        for t in np.flatnonzero(v == v.max()):
            i, j = divmod(int(t), k)
            every[n, c, oh, ow, n, c, oh * S + i, ow * S + j] = 1.0
    shape = (N * C * OH * OW, X.size)
    assert np.array_equal(load(root, case, "J_X"), first.reshape(shape))
    assert np.array_equal(load(root, case, "J_X.right"), every.reshape(shape))
    assert (every.sum() - first.sum()) >= 3  # the case has ties that matter


@pytest.mark.parametrize("mode", ["train", "test"])
def test_spatial_batchnorm_against_finite_differences(mode, suite):
    root, cases = suite
    case = f"spatial_batchnorm_{mode}-random-float64"
    X, gamma, beta = (load(root, case, n) for n in ("X", "gamma", "beta"))
    c4 = (None, slice(None), None, None)

    def f(x):
        x = x.reshape(X.shape)
        if mode == "train":
            mu, var = x.mean(axis=(0, 2, 3)), x.var(axis=(0, 2, 3))
        else:
            mu, var = load(root, case, "running_mean"), load(root, case, "running_var")
        return gamma[c4] * (x - mu[c4]) / np.sqrt(var[c4] + 1e-5) + beta[c4]

    assert np.allclose(load(root, case, "Y"), f(X), rtol=1e-12, atol=1e-14)
    assert_fd(case, load(root, case, "J_X"), f, X)
    G = load(root, case, "G")
    xh = (f(X) - beta[c4]) / gamma[c4]
    assert np.allclose(load(root, case, "dgamma"), (G * xh).sum(axis=(0, 2, 3)), rtol=1e-12, atol=1e-14)
    assert np.allclose(load(root, case, "dbeta"), G.sum(axis=(0, 2, 3)), rtol=1e-13, atol=1e-14)


@pytest.mark.parametrize(
    "case", ["layernorm-random-float64", "layernorm-nearly_constant-float64", "layernorm-random-float32"]
)
def test_layernorm_against_finite_differences(case, suite):
    root, cases = suite
    point, dt = cases[case]["point"], cases[case]["dtype"]
    X, gamma, beta = (load(root, case, n) for n in ("X", "gamma", "beta"))

    # layer norm is shift invariant per sample (its value and its Jacobian): the witness works at X0, each row
    # shifted by its first entry rounded, an exact subtraction, so the sample at 1000 keeps its 1e-4 spread's digits
    X0 = X - np.round(X[:, :1])

    def f(x, g=gamma, bt=beta):
        d = x.reshape(X.shape) - x.reshape(X.shape).mean(axis=1, keepdims=True)
        return g * d / np.sqrt((d * d).mean(axis=1, keepdims=True) + 1e-5) + bt

    assert np.allclose(load(root, case, "Y"), f(X0), rtol=max(FWD[dt], 1e-11), atol=1e-12)
    fd = jn.fd_jacobian(f, X0, initial_step=1e-6 if point == "nearly_constant" else 1e-2)
    assert jn.compare("J_X", load(root, case, "J_X"), fd.df, err=fd.error, **TOL[dt]).passed
    assert_fd("J_gamma", load(root, case, "J_gamma"), lambda g: f(X0, g=g), gamma, **TOL[dt])
    assert_fd("J_beta", load(root, case, "J_beta"), lambda v: f(X0, bt=v), beta, **TOL[dt])


@pytest.mark.parametrize("case", ["mul-random-float64", "mul-random-float32", "add-random-float64"])
def test_graph_nodes_against_finite_differences(case, suite):
    root, cases = suite
    X, Y, dt = load(root, case, "X"), load(root, case, "Y"), cases[case]["dtype"]
    op = np.multiply if case.startswith("mul") else np.add
    assert np.array_equal(load(root, case, "OUT"), op(X, Y).astype(dt))  # one rounding of the exact float64 value
    assert_fd("J_X", load(root, case, "J_X"), lambda x: op(x.reshape(X.shape), Y), X, **TOL[dt])
    assert_fd("J_Y", load(root, case, "J_Y"), lambda v: op(X, v.reshape(Y.shape)), Y, **TOL[dt])


def svm_loss(S, y):
    N = len(y)
    M = S - S[np.arange(N), y][:, None] + 1.0
    M[np.arange(N), y] = 0.0
    return np.maximum(M, 0).sum(axis=1)


def bce_loss(P, Y):
    with np.errstate(divide="ignore", invalid="ignore"):
        T = np.where(Y > 0, Y * np.log(P), 0.0) + np.where(Y < 1, (1 - Y) * np.log1p(-P), 0.0)
    return -T.sum(axis=1)


def sbce_loss(Z, Y):
    return (np.maximum(Z, 0) - Y * Z + np.log1p(np.exp(-np.abs(Z)))).sum(axis=1)


@pytest.mark.parametrize("dt", ["float64", "float32"])
@pytest.mark.parametrize(
    "loss,fn,inp",
    [("svm", svm_loss, "S"), ("binary_cross_entropy", bce_loss, "P"), ("sigmoid_binary_cross_entropy", sbce_loss, "Z")],
)
def test_svm_and_binary_losses_against_finite_differences(loss, fn, inp, dt, suite):
    root, cases = suite
    case = f"{loss}-random-{dt}"
    A = load(root, case, inp)
    t = np.load(root / case / "y.npy") if loss == "svm" else load(root, case, "Y")
    assert np.allclose(load(root, case, "losses"), fn(A, t), rtol=FWD[dt], atol=1e-15)
    assert abs(float(load(root, case, "loss")) - fn(A, t).mean()) <= FWD[dt] * max(1.0, abs(fn(A, t).mean()))
    fd = jn.fd_gradient(lambda v: fn(v.reshape(A.shape), t).mean(), A, initial_step=1e-4)
    assert jn.compare(case, load(root, case, "d" + inp).reshape(1, -1), fd.df, err=fd.error, **TOL[dt]).passed


def test_svm_kink_against_the_reference_path(suite):
    """At a margin of exactly 0 the two paths agree (the other path: the reference loss, sample by sample),
    and the case really holds such margins."""
    root, cases = suite
    case = "svm-kink-float64"
    S, y = load(root, case, "S"), np.load(root / case / "y.npy")
    svm = jn.get_loss("svm")
    rows = np.vstack([svm(S[k][:, None], int(y[k]))[1] for k in range(len(y))]) / len(y)
    assert np.array_equal(load(root, case, "dS"), rows)
    M = S - S[np.arange(len(y)), y][:, None] + 1.0
    M[np.arange(len(y)), y] = -1.0
    assert (M == 0).sum() == 3 and (M > 0).any()
    assert not np.array_equal(load(root, case, "dS.right"), load(root, case, "dS"))


def test_binary_losses_saturated_against_exact_arithmetic(suite):
    """Every loss and gradient entry at saturation against mpmath at 60 digits, to float64 rounding."""
    mpmath = pytest.importorskip("mpmath")
    mp = mpmath.mp
    mp.dps = 60
    root, cases = suite
    for case, inp in (
        ("binary_cross_entropy-saturated-float64", "P"),
        ("sigmoid_binary_cross_entropy-saturated-float64", "Z"),
    ):
        A, Y = load(root, case, inp), load(root, case, "Y")
        N = A.shape[0]
        losses, grads = np.zeros(N), np.zeros(A.shape)
        for (k, i), a in np.ndenumerate(A):
            a, y = mp.mpf(float(a)), mp.mpf(float(Y[k, i]))
            if inp == "P":
                term = (-y * mp.log(a) if y > 0 else 0) + (-(1 - y) * mp.log(1 - a) if y < 1 else 0)
                g = (-y / a if y > 0 else 0) + ((1 - y) / (1 - a) if y < 1 else 0)
            else:
                term = y * mp.log(1 + mp.exp(-a)) + (1 - y) * mp.log(1 + mp.exp(a))
                g = 1 / (1 + mp.exp(-a)) - y
            losses[k] += float(term)
            grads[k, i] = float(g / N)
        assert np.allclose(load(root, case, "losses"), losses, rtol=4e-16, atol=0), case
        assert np.allclose(load(root, case, "d" + inp), grads, rtol=4e-16, atol=0), case


def test_cnn_against_an_independent_numpy_forward(suite):
    """The CNN's outputs, loss and every gradient against finite differences of a plain numpy forward;
    per-sample gradients average to the gradient; input Jacobians against finite differences."""
    root, cases = suite
    case = "network_cnn-random-float64"
    X, y, l2 = load(root, case, "X"), np.load(root / case / "y.npy"), float(load(root, case, "l2"))
    P0 = {n: load(root, case, n) for n in ("W1", "b1", "W2", "b2", "W3", "b3")}

    def maxpool(A):
        return pool_windows(A, 2, 2).max(axis=(4, 5))

    def forward(P, x=X):
        a = maxpool(np.maximum(conv_forward(x, P["W1"], P["b1"], 1, 1), 0))
        a = maxpool(np.maximum(conv_forward(a, P["W2"], P["b2"], 1, 1), 0))
        return a.reshape(a.shape[0], -1) @ P["W3"] + P["b3"]

    def loss(P):
        pen = l2 / 2 * sum(np.sum(P[w] ** 2) for w in ("W1", "W2", "W3"))
        return -log_softmax(forward(P), axis=1)[np.arange(len(y)), y].mean() + pen

    assert np.allclose(load(root, case, "out"), forward(P0), rtol=1e-12, atol=1e-14)
    assert abs(float(load(root, case, "loss")) - loss(P0)) < 1e-13
    for n in P0:
        fd = jn.fd_gradient(lambda v, n=n: loss({**P0, n: v.reshape(P0[n].shape)}), P0[n], initial_step=1e-4)
        assert jn.compare(n, load(root, case, "d" + n).reshape(1, -1), fd.df, err=fd.error).passed, n
        per = load(root, case, f"d{n}_per_sample")
        assert np.allclose(per.mean(axis=0), load(root, case, "d" + n), rtol=1e-12, atol=1e-14), n
    J = load(root, case, "J_input")
    for k in range(len(y)):
        fd = jn.fd_jacobian(lambda v, k=k: forward(P0, v.reshape((1,) + X.shape[1:]))[0], X[k], initial_step=1e-4)
        assert jn.compare(f"J_input[{k}]", J[k], fd.df, err=fd.error).passed, k
