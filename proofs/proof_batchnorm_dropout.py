r"""Batch normalisation (training and test mode) and inverted dropout: CS231n walkthrough's backward code,
the explicit Jacobians of :mod:`jacobian_nn.normalization`, and CS231n walkthrough's statements about eps,
the running averages and the dropout mask.
"""

from __future__ import annotations

import numpy as np

from jacobian_nn.normalization import BatchNorm, Dropout

from ._helpers import assert_close, assert_differs, assert_fd, sym_zero
from ._registry import HOLDS, WRONG, proof, require_sympy, symbolic

X = np.array([[0.3, -1.2], [1.1, 0.4], [-0.7, 2.0], [0.2, 0.5]])  # N = 4, m = 2
GAMMA = np.array([1.5, 0.7])
BETA = np.array([0.1, -0.3])
EPS = 1e-5


def bn_train(x, gamma=GAMMA, beta=BETA):
    mu = x.mean(0)
    var = x.var(0)
    return gamma * (x - mu) / np.sqrt(var + EPS) + beta


def seed004_batchnorm_backward(dout, x, gamma):
    """CS231n walkthrough's ``batchnorm_backward``, restated line by line."""
    N = x.shape[0]
    mean, var = x.mean(0), x.var(0)
    x_hat = (x - mean) / np.sqrt(var + EPS)
    dgamma = np.sum(dout * x_hat, axis=0)
    dbeta = np.sum(dout, axis=0)
    dx_hat = dout * gamma
    dx_hat_numerator = dx_hat / np.sqrt(var + EPS)
    dx_hat_denominator = np.sum(dx_hat * (x - mean), axis=0)
    dvar = -0.5 * ((var + EPS) ** (-1.5)) * dx_hat_denominator
    dmean = -1.0 * np.sum(dx_hat_numerator, axis=0) + dvar * np.mean(-2.0 * (x - mean), axis=0)
    dx = dx_hat_numerator + dvar * 2.0 / N * (x - mean) + dmean / N
    return dx, dgamma, dbeta


@proof(
    id="batchnorm.train_jacobian",
    seed="004",
    location="§5.2 batchnorm_backward",
    statement=r"batchnorm_backward: dvar, dmean, dx = dx_hat/sqrt(var+eps) + dvar 2(x-mu)/N + dmean/N",
    verdict=HOLDS,
)
def test_batchnorm_train_jacobian(claim=seed004_batchnorm_backward):
    r"""**CS231n walkthrough, ``batchnorm_backward``** (the chain through $\hat x$, $\sigma^2$ and $\mu$).

    > ``dgamma = np.sum(dout * x_hat, axis=0)``; ``dbeta = np.sum(dout * 1.0, axis=0)``; ``dx_hat = dout * gamma``;
    > ``dvar = -0.5 * ((var + eps) ** (-1.5)) * np.sum(dx_hat * (x - mean), axis=0)``;
    > ``dmean = -1.0 * np.sum(dx_hat / np.sqrt(var + eps), axis=0) + dvar * np.mean(-2.0 * (x - mean), axis=0)``;
    > ``dx = dx_hat / np.sqrt(var + eps) + dvar * 2.0 / N * (x - mean) + dmean * 1.0 / N``.

    Derivation. Per feature, with $\sigma = \sqrt{\sigma^2_B + \epsilon}$, $\hat x_i = (x_i-\mu)/\sigma$,
    $\partial\mu/\partial x_k = 1/N$, $\partial\sigma/\partial x_k = (x_k-\mu)/(N\sigma)$ (the
    $\mu$-terms of $\partial\sigma^2_B/\partial x_k$ sum to zero), so
    $$\frac{\partial \hat x_i}{\partial x_k} = \frac{1}{\sigma}\Big(\delta_{ik} - \frac1N - \frac{\hat x_i \hat x_k}{N}\Big),
    \qquad \frac{\partial y_i}{\partial x_k} = \frac{\gamma}{\sigma}\Big(\delta_{ik} - \frac1N - \frac{\hat x_i \hat x_k}{N}\Big)$$
    exactly, $\epsilon$ included: one symmetric $N\times N$ matrix per feature, rows summing to 0.
    Chaining the rows $g = \partial L/\partial y$ through it gives the compact form
    $dx = \frac{\gamma}{N\sigma}(N g - \sum_i g_i - \hat x \sum_i g_i \hat x_i)$; $\partial y_i/\partial\gamma = \hat x_i$,
    $\partial y_i/\partial\beta = 1$.

    Verdict: **holds**. CS231n walkthrough's code (its `dmean` keeps the term
    $\mathrm{dvar}\cdot\mathrm{mean}(-2(x-\mu))$, which is 0) equals $g J$. Checks: FD of the batch
    output; the source's code restated; ``BatchNorm.jacobian_x_coupled`` (reference) and
    ``backward_batched`` (batched); sympy with N = 3 symbols and a symbolic $\epsilon$.
    """
    N, m = X.shape
    bn = BatchNorm(m, gamma=GAMMA, beta=BETA, eps=EPS, update_running=False)
    cols = [X[k][:, None] for k in range(N)]
    assert_fd("d vec(Y)/d vec(X)", bn.jacobian_x_coupled(cols), lambda v: bn_train(v.reshape(N, m)), X)
    G = np.random.default_rng(0).normal(size=(N, m))
    dx, dgamma, dbeta = claim(G, X, GAMMA)
    assert_close(
        "CS231n walkthrough code vs g J (reference)", dx.reshape(-1), G.reshape(-1) @ bn.jacobian_x_coupled(cols)
    )
    dX, grads = bn.backward_batched(G, bn.forward_batched(X, "train")[1])
    assert_close("CS231n walkthrough code vs compact batched dx", dx, dX)
    assert_close("dgamma", dgamma, grads["gamma"])
    assert_close("dbeta", dbeta, grads["beta"])


@symbolic("batchnorm.train_jacobian")
def test_batchnorm_train_jacobian_symbolic():
    sp = require_sympy()
    N = 3
    x = sp.symbols(f"x0:{N}", real=True)
    eps, gamma = sp.symbols("epsilon gamma", positive=True)
    mu = sum(x) / N
    var = sum((xi - mu) ** 2 for xi in x) / N
    sigma = sp.sqrt(var + eps)
    y = sp.Matrix([gamma * (xi - mu) / sigma for xi in x])
    x_hat = [(xi - mu) / sigma for xi in x]
    J = sp.Matrix(
        N, N, lambda i, k: gamma / sigma * ((1 if i == k else 0) - sp.Rational(1, N) - x_hat[i] * x_hat[k] / N)
    )
    sym_zero(sp, y.jacobian(x) - J, "dy/dx - gamma/sigma (I - 1/N - x_hat x_hat^T / N)")


def _sample_var(x):
    """The code's ``sample_var = np.var(x, axis=0)``."""
    return np.var(x, axis=0)


@proof(
    id="batchnorm.eps_single_image",
    seed="004",
    location="§5.2 代码详解, eps",
    statement="eps is needed because a column's variance can be 0, e.g. when only one image flows in",
    verdict=HOLDS,
)
def test_batchnorm_eps_single_image(claim=_sample_var):
    r"""**CS231n walkthrough: eps and the one-image batch.**

    > 在公式中 eps 的存在是必要的,因为数据某一列的标准差 sample_var 为 0 是可能的,比如仅一张图片流入神经网络的时候。

    Derivation.
    With $N = 1$: $\mu = x$, $\sigma^2_B = 0$, $\hat x = 0/\sqrt{\epsilon} = 0$, so $y = \beta$ whatever
    $x$ is, and $\partial y/\partial x = \frac{\gamma}{\sqrt\epsilon}(1 - 1 - 0) = 0$. $\epsilon$ keeps the
    division finite but the layer then carries no information and no gradient.

    The statement says only that eps is needed because the variance can be 0, with one image as the
    example: that is literally true (without eps, $\hat x = 0/0$). What it leaves out (the layer is then
    constant) is an observation, not a condition the statement needs.

    Verdict: **holds**. (The library refuses training mode with N = 1 instead.) Checks: the code's variance
    of one row is exactly 0, so without eps $\hat x$ is nan and with eps it is 0; the formula gives
    $y = \beta$ and FD gives 0.
    """
    x1 = np.array([[0.7, -2.0]])
    var = claim(x1)
    assert np.array_equal(var, np.zeros(2)), f"the variance of one image is {var}, not 0"
    with np.errstate(invalid="ignore"):
        assert np.all(np.isnan((x1 - x1.mean(0)) / np.sqrt(var))), "without eps: 0/0"
    assert np.array_equal((x1 - x1.mean(0)) / np.sqrt(var + EPS), np.zeros((1, 2))), "with eps: finite"
    assert_close("y = beta", bn_train(x1), BETA[None, :])
    assert_fd("dy/dx = 0 for N = 1", np.zeros((2, 2)), lambda v: bn_train(v.reshape(1, 2)), x1)
    try:
        BatchNorm(2).forward_batched(x1, "train")
    except ValueError as exc:
        assert "N >= 2" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("BatchNorm accepted N = 1 in training mode")


def _running_after_one_first_batch_init(stat, momentum):
    """The prose: the first batch's statistic is the initial value, so after one batch the running value is it."""
    return stat


def _running_after_one_zero_init(stat, momentum):
    """The code: zeros, then ``momentum * 0 + (1 - momentum) * stat``."""
    return (1 - momentum) * stat


@proof(
    id="batchnorm.running_init",
    seed="004",
    location="§5.2, 一次指数平滑法的初值",
    statement="the code takes the first batch's mean / std as the initial value of the running averages",
    verdict=WRONG,
    corrected="the code starts running_mean and running_var at zeros; after one step they are "
    "(1 - momentum) times the batch statistics",
)
def test_batchnorm_running_init(seed=_running_after_one_first_batch_init, corrected=_running_after_one_zero_init):
    r"""**CS231n walkthrough, the initial value of the exponential smoothing.**

    > 关于一次指数平滑法的初值取法也是有讲究的。可以看到我们上面的代码就是取第一次算得的平均值或标准差来作为初始默认值的。

    Derivation.
    The prose: 可以看到我们上面的代码就是取第一次算得的平均值或标准差来作为初始默认值的. The code:
    ``running_mean = bn_param.get('running_mean', np.zeros(D))``, then
    ``running = momentum * running + (1 - momentum) * sample``. After the first batch the running
    mean is $(1-m)\mu_1$, not $\mu_1$ (and it is the variance, not the standard deviation, that is
    tracked).

    Verdict: **wrong**. ``BatchNorm`` follows the code (zeros). Check: one step.
    """
    bn = BatchNorm(2, momentum=0.9)
    bn.forward_batched(X, "train")
    code = {"mean": np.zeros(2), "var": np.zeros(2)}  # bn_param.get('running_mean', np.zeros(D))
    for k, stat in (("mean", X.mean(0)), ("var", X.var(0))):
        code[k] = 0.9 * code[k] + (1 - 0.9) * stat
        assert_close(f"running_{k} after one batch", code[k], corrected(stat, 0.9))
        assert_differs(
            f"running_{k}: first batch's value as initial value",
            code[k],
            seed(stat, 0.9),
            by=float(np.max(np.abs(0.9 * stat))),
            atol=1e-12,
        )
    assert_close("library running_mean", bn.running_mean, code["mean"])
    assert_close("library running_var (biased)", bn.running_var, code["var"])


def _dropout_local_grad(keep, p):
    """The local gradient is the mask, ``(U < keep_prob) / keep_prob``: ``diag(keep / (1 - p))``."""
    return np.diag(keep / (1 - p))


@proof(
    id="dropout.jacobian",
    seed="004",
    location="§5.3 dropout_backward",
    statement="in training mode the local gradient of the dropout layer is the mask (dx = mask * dout)",
    verdict=HOLDS,
)
def test_dropout_jacobian(claim=_dropout_local_grad):
    r"""**CS231n walkthrough, ``dropout_backward``.**

    > ``if mode == 'train': dx = mask * dout``; ``elif mode == 'test': dx = dout``;
    > "显然在训练模式下,dropout 层的局部梯度就是随机失活遮罩 mask".

    Derivation.
    CS231n walkthrough's ``mask`` is already ``(U < keep_prob) / keep_prob``. With $y = x \odot k/(1-p)$ per
    sample, $J = \operatorname{diag}(k/(1-p))$, so $g J = g \odot \text{mask}$; in test mode $J = I$.

    Verdict: **holds** (for the inverted mask). Checks: FD with a fixed mask; ``Dropout.jacobian_x``.
    """
    drop = Dropout(5, 0.4)
    keep = np.array([True, False, True, True, False])
    x = np.array([0.3, -1.0, 2.0, 0.5, 0.1])
    J = drop.jacobian_x(x[:, None], "train", keep)
    assert_close("J = diag(keep / (1 - p))", J, claim(keep, 0.4))
    assert_fd("dy/dx", claim(keep, 0.4), lambda v: v * keep / 0.6, x)
    assert_close("test mode J = I", drop.jacobian_x(x[:, None], "test"), np.eye(5))


@symbolic("dropout.jacobian")
def test_dropout_jacobian_symbolic():
    sp = require_sympy()
    x = sp.symbols("x0:3", real=True)
    p = sp.symbols("p", positive=True)
    keep = [1, 0, 1]
    y = sp.Matrix([xi * k / (1 - p) for xi, k in zip(x, keep)])
    sym_zero(sp, y.jacobian(x) - sp.diag(*[sp.Integer(k) / (1 - p) for k in keep]), "J - diag(keep/(1-p))")
