r"""Batch norm and dropout statements of the DLFS notes and CS231n walkthrough not covered by ``proof_batchnorm_dropout.py``:
the forward formulas, test mode, the running averages' limit and wording, and both dropout variants."""

from __future__ import annotations

import numpy as np

from jacobian_nn.normalization import BatchNorm, Dropout

from ._helpers import assert_close, assert_differs, assert_fd
from ._registry import HOLDS, WRONG, proof

X = np.array([[0.3, -1.2], [1.1, 0.4], [-0.7, 2.0], [0.2, 0.5]])
GAMMA = np.array([1.5, 0.7])
BETA = np.array([0.1, -0.3])
EPS = 1e-5


def _bn_forward002(x, gamma, beta, eps):
    """The four formulas: batch mean, (1/m) variance, normalise with eps, scale and shift."""
    mu = x.sum(0) / x.shape[0]
    var = ((x - mu) ** 2).sum(0) / x.shape[0]
    x_hat = (x - mu) / np.sqrt(var + eps)
    return gamma * x_hat + beta, x_hat, var


@proof(
    id="batchnorm.forward002",
    seed="002",
    location="§Batch Normalization (formulas); CS231n walkthrough batchnorm_forward train branch",
    statement=r"$\mu_B = \frac1m\sum_i x_i$, $\sigma_B^2 = \frac1m\sum_i(x_i-\mu_B)^2$, "
    r"$\hat x_i = \frac{x_i-\mu_B}{\sqrt{\sigma_B^2+\varepsilon}}$, $y_i = \gamma\hat x_i + \beta$",
    verdict=HOLDS,
)
def test_forward002(claim=_bn_forward002):
    r"""**DLFS notes, the batch-norm forward formulas (CS231n walkthrough's code computes the same).**

    > $\mu_B \leftarrow \frac{1}{m} \sum_{i=1}^{m} x_i$, $\sigma_{B}^{2} \leftarrow \frac{1}{m} \sum_{i = 1}^m(x_i - \mu_{B})^2$,
    > $\hat{x_i} \leftarrow \frac{x_i - \mu_B}{\sqrt{\sigma^2_B + \varepsilon}}$, $y_i \leftarrow \gamma \hat{x_i} + \beta$
    > ($m$ here is the batch size). CS231n walkthrough: ``np.mean(x, axis=0)``, ``np.var(x, axis=0)`` (the uncorrected
    > variance, ddof = 0), ``x_hat = (x - mean) / np.sqrt(var + eps)``, ``out = gamma * x_hat + beta``.

    Derivation. Per feature, $\hat x$ has mean $0$ and variance $\sigma_B^2/(\sigma_B^2+\varepsilon) < 1$ (so "variance 1"
    holds up to $\varepsilon$); $y$ has mean $\beta$ and standard deviation $|\gamma|\sigma_B/\sqrt{\sigma_B^2+\varepsilon}$.

    Verdict: **holds**. Check: those moments; ``BatchNorm.forward_batched`` in training mode.
    """
    y, x_hat, var = claim(X, GAMMA, BETA, EPS)
    assert_close("mean 0", x_hat.mean(0), np.zeros(2))
    assert_close("variance sigma^2/(sigma^2+eps)", x_hat.var(0), var / (var + EPS))
    bn = BatchNorm(2, gamma=GAMMA, beta=BETA, eps=EPS)
    assert_close("library", bn.forward_batched(X, "train")[0], y)


def _bn_test004(x, running_mean, running_var, gamma, beta):
    """``out = (x - running_mean) * gamma / (np.sqrt(running_var + eps)) + beta``."""
    return (x - running_mean) * gamma / np.sqrt(running_var + EPS) + beta


@proof(
    id="batchnorm.test_mode004",
    seed="004",
    location="§5.2 batchnorm_forward, test branch",
    statement="out = (x - running_mean) * gamma / np.sqrt(running_var + eps) + beta",
    verdict=HOLDS,
)
def test_test_mode004(claim=_bn_test004):
    r"""**CS231n walkthrough, batch norm at test time.**

    > ``out = (x - running_mean) * gamma / (np.sqrt(running_var + eps)) + beta``.

    Derivation. The training formula with the batch statistics replaced by fixed running ones: an affine map
    of each sample, independent of the other samples, with Jacobian $\operatorname{diag}(\gamma/\sqrt{v+\varepsilon})$.
    When the running statistics equal a batch's statistics it reproduces the training output on that batch.

    Verdict: **holds**. Check: equality with the training output when running = batch statistics; FD of the
    test-mode output; ``BatchNorm`` in test mode.
    """
    bn = BatchNorm(2, gamma=GAMMA, beta=BETA, eps=EPS, update_running=False)
    bn.running_mean[...] = X.mean(0)
    bn.running_var[...] = X.var(0)
    train = bn.forward_batched(X, "train")[0]
    test = bn.forward_batched(X, "test")[0]
    assert_close("test = train when running = batch stats", test, train)
    code = lambda v: claim(v.reshape(4, 2), X.mean(0), X.var(0), GAMMA, BETA)  # noqa: E731
    assert_close("the code = library test mode", code(X), test)
    assert_fd("test-mode Jacobian", np.kron(np.eye(4), np.diag(GAMMA / np.sqrt(X.var(0) + EPS))), code, X)


def _stat_std(x):
    """What the prose calls ``sample_var``: the standard deviation vector."""
    return x.std(0)


def _stat_var(x):
    """What the code computes: ``np.var(x, axis=0)``, the 1/N variance."""
    return ((x - x.mean(0)) ** 2).sum(0) / x.shape[0]


@proof(
    id="batchnorm.running004",
    seed="004",
    location="§5.2 batchnorm_forward docstring and 代码详解 (running averages)",
    statement="running_mean = momentum * running_mean + (1 - momentum) * sample_mean (same for var), used at test "
    "time as the training statistics; 'sample_mean 和 sample_var 分别是 ... 平均值和标准差向量'",
    verdict=WRONG,
    corrected="sample_var is the (uncorrected) variance, not the standard deviation; the running averages start at "
    "0 and after t batches with constant statistics s equal (1 - momentum^t) s, approaching s only "
    "geometrically (0.9^t: 65% of the way after 10 steps)",
)
def test_running004(seed=_stat_std, corrected=_stat_var):
    r"""**CS231n walkthrough, the running averages.**

    > ``running_mean = momentum * running_mean + (1 - momentum) * sample_mean``; ``running_var = ...``;
    > 代码详解: "sample_mean 和 sample_var 分别是对得分矩阵 x 的每一列算得平均值和标准差向量".

    Derivation. From $r_0 = 0$ and constant batch statistic $s$: $r_t = \mu r_{t-1} + (1-\mu)s = (1-\mu^t)s$. So the
    estimate is biased towards 0 early on (the initial value is 0, not the first batch's value: proof
    ``batchnorm.running_init``). ``np.var`` is the variance $\sigma^2_B$ (with $1/N$), not $\sigma_B$.

    Verdict: **wrong** (the wording "standard deviation"; the update rule holds). Check: ten identical batches
    through ``BatchNorm`` give $(1-0.9^{10})$ times the statistics; ``np.var`` differs from the standard deviation.
    """
    bn = BatchNorm(2, momentum=0.9)
    for _ in range(10):
        bn.forward_batched(X, "train")
    assert_close("running_mean", bn.running_mean, (1 - 0.9**10) * X.mean(0))
    assert_close("running_var", bn.running_var, (1 - 0.9**10) * X.var(0))
    assert_close("np.var is the 1/N variance", X.var(0), corrected(X))
    assert_differs("sample_var vs the prose's standard deviation", X.var(0), seed(X), atol=1e-6)


def _dlfs_dropout(x, mask, r, dout):
    """DLFS ``Dropout``: train ``x * mask``; test ``x * (1.0 - dropout_ratio)``; backward ``dout * mask``."""
    return x * mask, x * (1.0 - r), dout * mask


@proof(
    id="dropout.noninverted002",
    seed="002",
    location="§Dropout (class Dropout)",
    statement="train: mask = np.random.rand(*x.shape) > dropout_ratio, return x * mask; test: x * (1.0 - dropout_ratio); "
    "backward: dout * self.mask",
    verdict=HOLDS,
)
def test_noninverted002(claim=_dlfs_dropout):
    r"""**DLFS notes, (non-inverted) dropout.**

    > ``self.mask = np.random.rand(*x.shape) > self.dropout_ratio``; ``return x * self.mask`` (train);
    > ``return x * (1.0 - self.dropout_ratio)`` (test); ``backward``: ``return dout * self.mask``.

    Derivation. With $U\sim\mathcal U[0,1)$, $P(U > r) = 1-r$, so $E[x\cdot\text{mask}] = (1-r)x$: the test output is the
    training output's expectation. For a fixed mask, $y = x\odot\text{mask}$ is linear with Jacobian
    $\operatorname{diag}(\text{mask})$, so the backward is right. This is the original scheme; CS231n walkthrough's inverted
    dropout (and the library) divides by $1-r$ during training instead, so that test mode is the identity; the
    two differ by the constant factor $1-r$ on the training output.

    Verdict: **holds**. Check: FD with a fixed mask; the keep frequency over $2\cdot10^5$ draws (fixed seed)
    is within 5 standard errors of $1-r$; DLFS notes' training output is $(1-r)$ times ``Dropout``'s for the same mask.
    """
    r = 0.3
    x = np.array([0.5, -1.0, 2.0, 0.1])
    mask = np.array([True, False, True, True])
    train, test, _ = claim(x, mask, r, x)
    back = np.stack([claim(x, mask, r, e)[2] for e in np.eye(4)])  # rows: dout = e_k
    assert_fd("backward = dout * mask", back, lambda v: claim(v, mask, r, v)[0], x)
    # test output = the expectation of the training output over masks with P(keep) = 1 - r
    assert_close("test = E[train]", test, (1 - r) * x)
    u = np.random.default_rng(0).random(200_000)
    freq = np.mean(u > r)
    assert abs(freq - (1 - r)) < 5 * np.sqrt(r * (1 - r) / u.size)
    drop = Dropout(4, r)
    with drop.using_mask(mask[None, :]):
        lib = drop.forward_batched(x[None, :], "train")[0][0]
    assert_close("DLFS notes train = (1 - r) * inverted", train, (1 - r) * lib)


def _inverted004(x, keep_mask, p):
    """``mask = (U < keep_prob) / keep_prob; out = mask * x`` for a given keep pattern."""
    return keep_mask / (1 - p) * x


@proof(
    id="dropout.inverted004",
    seed="004",
    location="§5.3 dropout_forward (inverted dropout)",
    statement="keep_prob = 1 - p; mask = (np.random.rand(*x.shape) < keep_prob) / keep_prob; out = mask * x; "
    "test: out = x",
    verdict=HOLDS,
)
def test_inverted004(claim=_inverted004):
    r"""**CS231n walkthrough, inverted dropout forward.**

    > ``keep_prob = 1 - p``; ``mask = (np.random.rand(*x.shape) < keep_prob) / keep_prob``; ``out = mask * x``;
    > test mode ``out = x``; "直接在训练模式下多除以一个概率 keep_prob,那么在测试模式下就不用做任何操作了".

    Derivation. $E[\text{mask}] = P(U<1-p)/(1-p) = 1$, so $E[\text{out}] = x$ = the test output. (The source calls ``p``
    the probability of dropping; ``keep_prob = 1 - p``.) ``np.random.seed(dropout_param['seed'])`` reseeds the global
    generator, which the project replaces by an explicit ``Generator``.

    Verdict: **holds**. Check: exact expectation over the two mask values; ``Dropout`` with the same mask gives
    ``mask * x``; test mode is the identity.
    """
    p = 0.4
    keep = 1 - p
    assert abs(keep * (1 / keep) + p * 0.0 - 1.0) < 1e-15  # E[mask] over {1/keep w.p. keep, 0 w.p. p}
    x = np.array([[0.5, -1.0, 2.0]])
    k = np.array([[True, False, True]])
    drop = Dropout(3, p)
    with drop.using_mask(k):
        out = drop.forward_batched(x, "train")[0]
    assert_close("library train", out, claim(x, k, p))
    # E[out] = x: average the code's output over the two mask values, weighted by their probabilities
    expect = keep * claim(x, np.ones_like(k), p) + p * claim(x, np.zeros_like(k), p)
    assert_close("E[out] = x", expect, x)
    assert_close("library test", drop.forward_batched(x, "test")[0], x)
