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


def assert_fd(name, claimed, fn, x):
    fd = jn.fd_jacobian(fn, x)
    assert jn.compare(name, claimed, fd.df, err=fd.error).passed, name


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
