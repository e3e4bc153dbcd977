r"""Made-With-ML MLP (MLP on spiral data): the model equations, the loss, the W2/W1 gradient derivations and the code."""

from __future__ import annotations

import numpy as np

from jacobian_nn.layers import Dense
from jacobian_nn.losses import SoftmaxCrossEntropy
from jacobian_nn.network import Network

from ._helpers import assert_close, assert_differs, assert_fd, fd, sym_zero
from ._registry import CONVENTION, HOLDS, WRONG, proof, require_sympy, symbolic

RNG = np.random.default_rng(3)
N, D, H, C = 5, 2, 4, 3
X = RNG.normal(size=(N, D))
Y = np.array([0, 2, 1, 1, 2])
W1, B1 = RNG.normal(size=(D, H)), RNG.normal(size=(1, H)) * 0.3
W2, B2 = RNG.normal(size=(H, C)), RNG.normal(size=(1, C)) * 0.3


def _seed003_step(X, y, W1, b1, W2, b2):
    """Made-With-ML MLP's training-loop body (forward, loss, gradients), restated; ``dscores`` aliases ``y_hat``."""
    z1 = X @ W1 + b1
    a1 = np.maximum(0, z1)
    logits = a1 @ W2 + b2
    exp_logits = np.exp(logits)
    y_hat = exp_logits / np.sum(exp_logits, axis=1, keepdims=True)
    loss = np.sum(-np.log(y_hat[range(len(y_hat)), y])) / len(y)
    y_hat_before = y_hat.copy()
    dscores = y_hat
    dscores[range(len(y_hat)), y] -= 1
    dscores /= len(y)
    dW2 = a1.T @ dscores
    db2 = np.sum(dscores, axis=0, keepdims=True)
    dhidden = dscores @ W2.T
    dhidden[a1 <= 0] = 0
    dW1 = X.T @ dhidden
    db1 = np.sum(dhidden, axis=0, keepdims=True)
    return loss, {"W1": dW1, "b1": db1, "W2": dW2, "b2": db2}, y_hat_before, y_hat


def _loss(params):
    return _seed003_step(X, Y, *params)[0]


@proof(
    id="two_layer.code003",
    seed="003",
    location="§Gradients / §Training, the numpy training loop",
    statement="dscores = y_hat; dscores[range(N), y] -= 1; dscores /= N; dW2 = a1^T dscores; db2 = sum(dscores); "
    "dhidden = dscores W2^T; dhidden[a1 <= 0] = 0; dW1 = X^T dhidden; db1 = sum(dhidden)",
    verdict=HOLDS,
)
def test_code003(claim=_seed003_step):
    r"""**Made-With-ML MLP, the numpy gradients of the two-layer MLP.**

    > ``dscores = y_hat``; ``dscores[range(len(y_hat)), y_train] -= 1``; ``dscores /= len(y_train)``;
    > ``dW2 = np.dot(a1.T, dscores)``; ``db2 = np.sum(dscores, axis=0, keepdims=True)``;
    > ``dhidden = np.dot(dscores, W2.T)``; ``dhidden[a1 <= 0] = 0``; ``dW1 = np.dot(X_train.T, dhidden)``;
    > ``db1 = np.sum(dhidden, axis=0, keepdims=True)``.

    Derivation. ``dscores`` $= (\hat Y - \text{onehot}(y))/N = \partial J/\partial z_2$ (proof ``softmax.loss_code_batch``);
    affine backward gives ``dW2``, ``db2`` and $\partial J/\partial a_1 = $ ``dscores`` $W_2^\top$; ReLU backward zeroes it
    where $a_1 \le 0$, which is the same set as $z_1 \le 0$ (so relu'(0) = 0); affine backward again gives ``dW1``, ``db1``.

    Verdict: **holds**. Check: FD of the restated mean loss w.r.t. all four parameters; the library's
    ``Network`` (relu, fused softmax-CE; ``b`` stored 1-D instead of ``(1, H)``) gives the same numbers.
    """
    params = [W1, B1, W2, B2]
    loss, g, _, _ = claim(X, Y, *params)
    for i, name in enumerate(("W1", "b1", "W2", "b2")):

        def f(v, i=i):
            q = list(params)
            q[i] = v.reshape(params[i].shape)
            return claim(X, Y, *q)[0]

        assert_fd(name, g[name].reshape(1, -1), f, params[i].reshape(-1), gradient=True)
    net = Network([Dense.from_params(W1, B1[0], "relu"), Dense.from_params(W2, B2[0])], SoftmaxCrossEntropy())
    lib_loss, lib = net.loss_and_gradients(X, Y)
    assert abs(lib_loss - loss) < 1e-12
    assert_close("W1", lib[0]["W"], g["W1"])
    assert_close("b1", lib[0]["b"], g["b1"][0])
    assert_close("W2", lib[1]["W"], g["W2"])
    assert_close("b2", lib[1]["b"], g["b2"][0])


def _w2_hat_y_as_label_prob(a1, yh, y):
    r"""The results read with $\hat y$ as in the derivation's first lines ($J = -\log\hat y$, $-1/\hat y$):
    the label's probability $\hat y_y$ in every column."""
    return np.outer(a1, np.full(yh.size, yh[y]) - np.eye(yh.size)[y])


def _w2_hat_y_as_column_prob(a1, yh, y):
    r"""$\hat y$ read as $\hat y_j$ in column $j$, $a_1$ as a column: $a_1^\top(\hat y_j - [j=y])$."""
    return np.outer(a1, yh - np.eye(yh.size)[y])


@proof(
    id="two_layer.w2_elementwise003",
    seed="003",
    location="§Gradients, the derivations of dJ/dW2j and dJ/dW2y",
    statement=r"$\frac{\partial J}{\partial W_{2j}} = -\frac{1}{\hat y}\frac{\partial \hat y}{\partial W_{2j}} = \dots = a_1\hat y$, "
    r"$\frac{\partial J}{\partial W_{2y}} = \dots = \frac1{\hat y}(a_1\hat y^2 - a_1\hat y) = a_1(\hat y - 1)$",
    verdict=CONVENTION,
    corrected=r"per sample, $\frac{\partial J}{\partial W_{2j}} = a_1^\top(\hat y_j - [j=y])$: the results hold with "
    r"$\hat y$ read as $\hat y_j$ in the $W_{2j}$ line (and $\hat y_y$ in the $W_{2y}$ line) and $a_1$ as a column; "
    r"the derivation uses the same letter $\hat y$ for $\hat y_y$ ($-1/\hat y$), so reading it as $\hat y_y$ "
    r"throughout gives $a_1\hat y_y$ for $j\ne y$, which is wrong",
)
def test_w2_elementwise003(seed=_w2_hat_y_as_label_prob, corrected=_w2_hat_y_as_column_prob):
    r"""**Made-With-ML MLP, the per-column derivation for $W_2$.**

    > $\frac{\partial J}{\partial W_{2j}} = -\frac{1}{\hat y}\frac{\partial \hat y}{\partial W_{2j}} = \dots = \frac{a_1 e^{a_1 W_{2j}}}{\sum_j e^{a_1 W}} = a_1\hat y$;
    > $\frac{\partial J}{\partial W_{2y}} = \dots = \frac{1}{\hat y}(a_1\hat y^2 - a_1\hat y) = a_1(\hat y - 1)$.

    Derivation. For one sample $J = -\log\hat y_y$ with $\hat y = \operatorname{softmax}(a_1W_2)$. The logit $z_j = a_1W_{2j}$
    ($W_{2j}$ the $j$-th column) so $\partial J/\partial W_{2j} = a_1^\top(\hat y_j - [j=y])$. The source's $\hat y$ in the
    results means $\hat y_j$ resp. $\hat y_y$; the middle lines drop indices and the bias but reach this. Per
    sample; the code's mean adds $1/N$.

    The index is not a notation the text defines: the same letter $\hat y$ is the label's probability
    $\hat y_y$ in the lines $J = -\log\hat y$ and $-\frac{1}{\hat y}$, and has to be $\hat y_j$ in the result
    $a_1\hat y$. So the result needs a stated reading.

    Verdict: **holds under a stated convention** (per sample; $\hat y$ = $\hat y_j$ resp. $\hat y_y$; $a_1$ a
    column). Check: sympy with $H=2$, $C=3$; FD per column equals the corrected reading and differs from
    the reading $\hat y = \hat y_y$ throughout.
    """
    a1 = np.maximum(0, X[0] @ W1 + B1[0])
    y = Y[0]

    def J(v):
        z = a1 @ v.reshape(H, C)
        return -(z[y] - np.log(np.sum(np.exp(z))))

    yh = np.exp(a1 @ W2) / np.sum(np.exp(a1 @ W2))
    true = fd(J, W2.reshape(-1), gradient=True).reshape(H, C)
    assert_fd("dJ/dW2 per column", corrected(a1, yh, y).reshape(1, -1), J, W2.reshape(-1), gradient=True)
    assert_differs("y_hat read as y_hat_y throughout", seed(a1, yh, y), true, atol=1e-6)


@symbolic("two_layer.w2_elementwise003")
def test_w2_elementwise003_symbolic():
    sp = require_sympy()
    a = sp.symbols("a0:2", real=True)
    Wm = sp.Matrix(2, 3, lambda i, j: sp.Symbol(f"w{i}{j}", real=True))
    z = [sum(a[i] * Wm[i, j] for i in range(2)) for j in range(3)]
    S = sum(sp.exp(v) for v in z)
    yh = [sp.exp(v) / S for v in z]
    y = 0
    J = -sp.log(yh[y])
    for j in range(3):
        for i in range(2):
            target = a[i] * (yh[j] - (1 if j == y else 0))
            sym_zero(sp, sp.diff(J, Wm[i, j]) - target, f"dJ/dW2[{i},{j}]")
    sym_zero(sp, (a[0] * yh[y] ** 2 - a[0] * yh[y]) / yh[y] - a[0] * (yh[y] - 1), "source's last step")


def _w1_prose(X, G2, W2, z1):
    r"""The prose's order $W_2(\partial\hat y)(\partial\mathrm{ReLU})X$ with shape-compatible middle factors
    ($G_2^\top$ for $\partial\hat y$, the identity for $\partial$ReLU)."""
    return W2 @ G2.T @ X


def _w1_right(X, G2, W2, z1):
    r"""$X^\top[(G_2W_2^\top)\odot[z_1>0]]$."""
    return X.T @ ((G2 @ W2.T) * (z1 > 0))


@proof(
    id="two_layer.w1_prose003",
    seed="003",
    location="§Gradients, dJ/dW1",
    statement=r"$\frac{\partial J}{\partial W_1} = \frac{\partial J}{\partial \hat y}\frac{\partial \hat y}{\partial X}"
    r"\frac{\partial X}{\partial z_1}\frac{\partial z_1}{\partial W_1} = W_2(\partial\hat y)(\partial \mathrm{ReLU})X$",
    verdict=WRONG,
    corrected=r"$\frac{\partial J}{\partial W_1} = X^\top\big[(\frac{\partial J}{\partial z_2}W_2^\top)\odot[z_1>0]\big]$ "
    r"($D\times H$); the chain runs through $a_1$, not $X$, and the source's product does not type-check "
    r"($W_2$ is $H\times C$, $X$ is $N\times D$); the code computes the corrected form",
)
def test_w1_prose003(seed=_w1_prose, corrected=_w1_right):
    r"""**Made-With-ML MLP, the $W_1$ gradient in prose.**

    > $\frac{\partial{J}}{\partial{W_1}} = \frac{\partial{J}}{\partial{\hat{y}}} \frac{\partial{\hat{y}}}{\partial{X}} \frac{\partial{X}}{\partial{z_1}} \frac{\partial{z_1}}{\partial{W_1}}
    > = W_2 (\partial{\hat{y}})(\partial{ReLU})X$.

    Derivation. The path is $W_1 \to z_1 = XW_1 + b_1 \to a_1 = \operatorname{ReLU}(z_1) \to z_2 = a_1W_2 + b_2 \to J$.
    With $G_2 = \partial J/\partial z_2$ $(N, C)$: $\partial J/\partial a_1 = G_2W_2^\top$, $\partial J/\partial z_1 = (G_2W_2^\top)\odot[z_1>0]$,
    $\partial J/\partial W_1 = X^\top(\partial J/\partial z_1)$, shape $(D, H)$. The prose names $X$ where it means $a_1$,
    and its product $W_2\,(\partial\hat y)\,(\partial\text{ReLU})\,X$ has $W_2$ $(H, C)$ on the left and $X$ $(N, D)$ on the
    right: whatever the middle factors, the result is $H\times D$ at best, the transpose of $W_1$'s shape, with
    $X$ untransposed.

    Verdict: **wrong** (as a formula); the code is right (proof ``two_layer.code003``). Check: the corrected
    formula equals FD; a product of the source's factors in the source's order with shape-compatible middle
    factors has shape $(H, D) \ne (D, H)$.
    """
    z1 = X @ W1 + B1
    a1 = np.maximum(0, z1)
    lg = a1 @ W2 + B2
    P = np.exp(lg - lg.max(axis=1, keepdims=True))
    P /= P.sum(axis=1, keepdims=True)
    G2 = (P - np.eye(C)[Y]) / N
    right = corrected(X, G2, W2, z1)
    assert right.shape == W1.shape
    assert_fd(
        "corrected dJ/dW1",
        right.reshape(1, -1),
        lambda v: _loss([v.reshape(D, H), B1, W2, B2]),
        W1.reshape(-1),
        gradient=True,
    )
    assert seed(X, G2, W2, z1).shape == (H, D) != W1.shape, "the prose's product has the transposed shape"


def _loss_prose(yh, y):
    r"""$-\sum_i^K\log\hat y_i$ read literally: the K class probabilities of one sample."""
    return -np.sum(np.log(yh[0]))


def _loss_mean(yh, y):
    r"""$-\frac1N\sum_{i=1}^N\log\hat y_{i,y_i}$."""
    return -np.mean(np.log(yh[np.arange(len(y)), y]))


@proof(
    id="two_layer.loss_prose003",
    seed="003",
    location="§Loss, J(theta)",
    statement=r"$J(\theta) = -\sum_i^K\log(\hat y_i) = -\sum_i^K\log\frac{e^{W_yX_i}}{\sum_j e^{WX_i}}$; "
    r"code: np.sum(-np.log(y_hat[range(N), y])) / N",
    verdict=WRONG,
    corrected=r"$J = -\frac1N\sum_{i=1}^N\log\hat y_{i,y_i}$ (a mean over the N samples of the correct class's "
    r"log-probability), which is what the code computes",
)
def test_loss_prose003(seed=_loss_prose, corrected=_loss_mean):
    r"""**Made-With-ML MLP, the loss.**

    > $J(\theta) = - \sum_i^K{log(\hat{y}_i)} = - \sum_i^K{log(\frac{e^{W_yX_i}}{\sum_j{e^{WX_i}}})}$;
    > ``correct_class_logprobs = -np.log(y_hat[range(len(y_hat)), y_train]); loss = np.sum(correct_class_logprobs) / len(y_train)``.

    Derivation. The prose sums over $K$ (the number of classes) without $1/N$; read literally (sum of the log
    of every class probability of one sample) it is a different function, minimised by a *uniform*
    prediction. The code takes, for each sample, the log-probability of its label, and averages over $N$.

    Verdict: **wrong** as written; the code holds. Check: the literal prose differs from the code's value; the
    code equals ``SoftmaxCrossEntropy.forward_batched``.
    """
    loss, _, yh, _ = _seed003_step(X, Y, W1, B1, W2, B2)
    assert_differs("literal prose vs code", seed(yh, Y), loss, atol=1e-6)
    assert abs(corrected(yh, Y) - loss) < 1e-12
    logits = np.maximum(0, X @ W1 + B1) @ W2 + B2
    assert abs(SoftmaxCrossEntropy().forward_batched(logits, Y) - loss) < 1e-12
    assert abs(np.sum(-np.log(yh[np.arange(N), Y])) - N * loss) < 1e-12


def _model003_tldr(X, z2):
    r"""The TL;DR's $\hat y = \mathrm{softmax}(x)$."""
    return np.exp(X) / np.exp(X).sum(axis=1, keepdims=True)


def _model003_right(X, z2):
    r"""$\hat y = \mathrm{softmax}(z_2)$."""
    return np.exp(z2) / np.exp(z2).sum(axis=1, keepdims=True)


@proof(
    id="two_layer.model003",
    seed="003",
    location="TL;DR and §Model equations",
    statement=r"$z_1 = XW_1$, $a_1 = f(z_1)$, $z_2 = a_1W_2$, $\hat y = \mathrm{softmax}(x)$",
    verdict=WRONG,
    corrected=r"$\hat y = \mathrm{softmax}(z_2)$ (as §Model later writes); and the code adds biases: "
    r"$z_1 = XW_1 + b_1$, $z_2 = a_1W_2 + b_2$",
)
def test_model003(seed=_model003_tldr, corrected=_model003_right):
    r"""**Made-With-ML MLP, the model equations.**

    > TL;DR: $z_1 = XW_1$, $a_1 = f(z_1)$, $z_2 = a_1W_2$, $\hat{y} = softmax(x)$. Code: ``z1 = np.dot(X_train, W1) + b1``,
    > ``logits = np.dot(a1, W2) + b2``, ``y_hat = exp_logits / np.sum(exp_logits, axis=1, keepdims=True)``.

    Derivation. $\operatorname{softmax}(x)$ of the input would have $D$ entries, not $C$ class probabilities, and would
    ignore both layers; the output is $\operatorname{softmax}(z_2)$ (§Model writes this). The code includes $b_1$, $b_2$.

    Verdict: **wrong** (TL;DR typo; missing biases). Check: softmax of the input has shape $(N, D) \ne (N, C)$;
    softmax of $z_2 + b_2$ reproduces the code's ``y_hat``.
    """
    _, _, yh, _ = _seed003_step(X, Y, W1, B1, W2, B2)
    z2 = np.maximum(0, X @ W1 + B1) @ W2 + B2
    assert seed(X, z2).shape == (N, D) != yh.shape
    assert_close("softmax(z2)", corrected(X, z2), yh)


def _dscores_copy(y_hat, y):
    """``dscores = y_hat.copy()`` then the same in-place updates (y_hat kept)."""
    d = y_hat.copy()
    d[range(len(y)), y] -= 1
    d /= len(y)
    return d


def _dscores_alias(y_hat, y):
    """The MLP's ``dscores = y_hat`` then ``dscores[range(N), y] -= 1; dscores /= N``."""
    d = y_hat
    d[range(len(y)), y] -= 1
    d /= len(y)
    return d


@proof(
    id="two_layer.alias003",
    seed="003",
    location="§Gradients/§Training: dscores = y_hat",
    statement="dscores = y_hat; dscores[range(N), y] -= 1; dscores /= N",
    verdict=CONVENTION,
    corrected="the values are right, but dscores is the same array as y_hat, so y_hat is overwritten by the "
    "gradient; use dscores = y_hat.copy() if y_hat is needed afterwards (CS231n walkthrough copies)",
)
def test_alias003(seed=_dscores_copy, corrected=_dscores_alias):
    r"""**Made-With-ML MLP, ``dscores = y_hat``.**

    > ``dscores = y_hat``; ``dscores[range(len(y_hat)), y_train] -= 1``; ``dscores /= len(y_train)``.

    Derivation. Assignment binds a second name to the same array, so the in-place updates rewrite ``y_hat``:
    after the backward pass it holds $(\hat Y - \text{onehot})/N$, no longer probabilities. The training loop
    does not read ``y_hat`` again (accuracy uses ``logits``), so training is unaffected.

    Verdict: **holds under a stated convention** (y_hat not reused). Check: after the restated step
    ``y_hat`` equals the gradient, not the probabilities it held.
    """
    _, g, before, after = _seed003_step(X, Y, W1, B1, W2, B2)
    assert_close("y_hat now holds dscores", after, (before - np.eye(C)[Y]) / N)
    yh = before.copy()
    d = corrected(yh, Y)
    assert_close("the values are right", d, (before - np.eye(C)[Y]) / N)
    assert d is yh, "dscores is y_hat: the probabilities are overwritten"
    yh2 = before.copy()
    d2 = seed(yh2, Y)
    assert d2 is not yh2 and np.array_equal(yh2, before), "with a copy y_hat is kept"


@symbolic("two_layer.w1_prose003")
def test_w1_prose003_symbolic():
    sp = require_sympy()
    d, hdim, c = 2, 2, 2
    x = sp.Matrix(1, d, lambda _, j: sp.Symbol(f"x{j}", real=True))
    W1s = sp.Matrix(d, hdim, lambda i, j: sp.Symbol(f"v{i}{j}", real=True))
    W2s = sp.Matrix(hdim, c, lambda i, j: sp.Symbol(f"w{i}{j}", real=True))
    active = sp.diag(1, 0)  # a region where unit 0 is active (z1 > 0) and unit 1 is not
    z1 = x * W1s
    a1 = z1 * active
    z2 = a1 * W2s
    E = [sp.exp(v) for v in z2]
    J = -sp.log(E[0] / sum(E))  # label 0
    grad = W1s.applyfunc(lambda v: sp.diff(J, v))
    S = sp.Matrix(1, c, lambda _, j: E[j] / sum(E))
    G2 = S - sp.Matrix([[1, 0]])
    corrected = x.T * ((G2 * W2s.T) * active)
    sym_zero(sp, grad - corrected, "dJ/dW1 = X^T [(G2 W2^T) * relu'(z1)]")
