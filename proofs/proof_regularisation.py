r"""Regularisation: the L0/L1/L2 penalties and their gradients, and the factors each source's code uses."""

from __future__ import annotations

import numpy as np

from jacobian_nn.network import Network

from ._helpers import assert_close, assert_differs, assert_fd, fd, sym_zero
from ._registry import CONVENTION, HOLDS, WRONG, proof, require_sympy, symbolic

W = np.array([[0.5, -1.5], [2.0, -0.25]])


PENALTIES000 = {
    "L0": lambda v: float(np.sum(v != 0)),
    "L1": lambda v: float(np.sum(np.abs(v))),
    "L2": lambda v: float(np.sum(v**2)),
}


@proof(
    id="reg.penalties000",
    seed="000",
    location="§正则化, L0/L1/L2",
    statement=r"$L_0(x)=[x\ne0]$, $L_1(x)=|x|$, $L_2(x)=x^2$",
    verdict=HOLDS,
)
def test_penalties000(claim=PENALTIES000):
    r"""**FCNN-Jacobian notes, the penalty functions.**

    > 常见的有 $L_0,L_1,L_2$ 等。$L_0(x)=[x \ne 0],L_1(x) = |x|, L_2(x)=x^2$.

    Derivation (gradients, which the source leaves to "求导的时候也把正则项加上就好"):
    $L_2' = 2x$; $L_1' = \operatorname{sign}(x)$ for $x\ne0$ (at 0 any value in $[-1,1]$ is a
    subgradient; the library uses $\operatorname{sign}(0)=0$); $L_0$ is piecewise constant, so its
    derivative is 0 wherever it exists: it cannot be minimised by gradient descent.

    Verdict: **holds** (as definitions). Check: FD of each penalty away from 0; the library's
    ``l1`` term contributes $\operatorname{sign}(W)$ and its ``l2`` term $l_2 W$ (for the penalty
    $\frac{l_2}{2}\|W\|^2$, see ``reg.l2_code000``).
    """
    w = W.reshape(-1)
    for name, at, value in (("L0", w, 4.0), ("L1", w, 4.25), ("L2", w, 6.5625), ("L0", np.zeros(2), 0.0)):
        assert abs(claim[name](at) - value) < 1e-12, f"{name} at {at}: {claim[name](at)} != {value}"
    assert_fd("L2", 2 * w, claim["L2"], w, gradient=True)
    assert_fd("L1", np.sign(w), claim["L1"], w, gradient=True)
    assert_fd("L0", np.zeros_like(w), claim["L0"], w, gradient=True)
    net = Network.build([2, 2], "identity", loss="mse", seed=0, l1=0.3)
    net.layers[0].W[...] = W
    X, Y = np.zeros((1, 2)), np.zeros((1, 2))  # zero input and target: the data gradient of W is 0
    _, g = net.loss_and_gradients(X, Y)
    assert_close("library l1 gradient = l1 sign(W)", g[0]["W"], 0.3 * np.sign(W))


@symbolic("reg.penalties000")
def test_penalties000_symbolic():
    sp = require_sympy()
    x = sp.Symbol("x", real=True)
    sym_zero(sp, sp.diff(x**2, x) - 2 * x, "L2'")
    sym_zero(sp, (sp.diff(sp.Abs(x), x) - sp.sign(x)).subs(x, sp.Symbol("p", positive=True)), "L1' (x>0)")
    sym_zero(sp, (sp.diff(sp.Abs(x), x) - sp.sign(x)).subs(x, -sp.Symbol("p", positive=True)), "L1' (x<0)")


def _seed000_update(w, dw_sum, dcnt, lr, lam):
    """FCNN-Jacobian notes ``FullyConnectedLayer._update``: ``w -= (dw + w * lam * 0.5) / dcnt * lr``."""
    return w - (dw_sum + w * lam * 0.5) / dcnt * lr


def _prose_penalty_grad(w, lam, N):
    r"""The gradient of the prose's penalty $\lambda\sum L_2(W)$: $2\lambda W$."""
    return 2 * lam * w


def _code_penalty_grad(w, lam, N):
    r"""The penalty gradient the code's step applies: $\frac{\lambda}{2N}W$."""
    return lam / (2 * N) * w


@proof(
    id="reg.l2_code000",
    seed="000",
    location="§正则化 prose vs NNLayers.py _update",
    statement=r"prose: $L' = L + \lambda\sum L_2(W)$ (gradient $2\lambda W$); code: "
    r"w -= (dw + w*lam*0.5) / dcnt * lr",
    verdict=WRONG,
    corrected=r"the code's step is the gradient of $\frac1N\sum_n L_n + \frac{\lambda}{4N}\|W\|^2$ (penalty "
    r"gradient $\frac{\lambda}{2N}W$, shrinking as the batch grows), a factor $4N$ below the prose's "
    r"$2\lambda W$; the library uses $\frac{l_2}{2}\|W\|^2$ with gradient $l_2 W$, independent of $N$",
)
def test_l2_code000(seed=_prose_penalty_grad, corrected=_code_penalty_grad):
    r"""**FCNN-Jacobian notes, L2 in prose vs in ``_update``.**

    > $L'(\hat Y, Y)=L(\hat Y, Y) + \lambda \sum L_2(W)+L_2(b)$, $L_2(x) = x^2$;
    > ``self.w -= (self.dw + self.w * lam * 0.5) / self.dcnt * learningRate``.

    Derivation. ``dw`` is the *sum* of the $N$ per-sample gradients, so the step is
    $-\eta(\frac1N\sum_n\nabla L_n + \frac{\lambda}{2N}W)$: the gradient of the batch-mean loss plus a penalty
    $\frac{\lambda}{4N}\|W\|^2$. The prose penalty $\lambda\|W\|^2$ has gradient $2\lambda W$: the two differ by
    the factor $4N$, and the code's regularisation weakens as the batch grows.

    Verdict: **wrong** (code and prose disagree). Check: the restated update minus the plain mean-gradient
    step is $-\eta\frac{\lambda}{2N}W$ exactly; FD of the prose penalty gives $2\lambda W$; the ratio is $4N$.
    Library: FD of ``Network`` batch loss with ``l2`` equals its gradient (mean + $l_2 W$) for any $N$.
    """
    lr, lam, N = 0.1, 0.2, 5
    dw_sum = np.array([[0.3, -0.1], [0.05, 0.4]])
    step = _seed000_update(W, dw_sum, N, lr, lam) - (W - lr * dw_sum / N)
    code_penalty_grad = -step / lr
    assert_close("code penalty gradient = lam/(2N) W", code_penalty_grad, corrected(W, lam, N))
    prose = fd(lambda v: lam * np.sum(v**2), W.reshape(-1), gradient=True).reshape(2, 2)
    assert_close("prose penalty gradient 2 lam W", prose, seed(W, lam, N), atol=1e-8)
    assert_close("ratio 4N", prose / code_penalty_grad, np.full((2, 2), 4 * N), atol=1e-6)
    for n in (1, 4):
        net = Network.build([2, 3, 2], "tanh", loss="mse", seed=3, l2=0.7)
        rng = np.random.default_rng(n)
        X, Y = rng.normal(size=(n, 2)), rng.normal(size=(n, 2))
        _, g = net.loss_and_gradients(X, Y)
        W0 = net.layers[0].W.copy()

        def loss_of(v, net=net, X=X, Y=Y):
            net.layers[0].W[...] = v.reshape(W0.shape)
            out = net.loss_and_gradients(X, Y)[0]
            net.layers[0].W[...] = W0
            return out

        assert_fd(f"library l2, N={n}", g[0]["W"].reshape(1, -1), loss_of, W0.reshape(-1), gradient=True)


def _bias_literal_grad(b, lam):
    r"""The gradient w.r.t. b of the penalty as printed, $\lambda\sum L_2(W) + L_2(b)$: $2b$."""
    return 2 * b


def _bias_code_grad(b, lam):
    """What the code applies to b (per summed gradient): ``b * lam * 0.5``."""
    return b * lam * 0.5


@proof(
    id="reg.bias000",
    seed="000",
    location="§正则化, the penalised expression; NNLayers.py _update for b",
    statement=r"$L' = L + \lambda\sum L_2(W) + L_2(b)$; code: b -= (db + b*lam*0.5) / dcnt * lr",
    verdict=WRONG,
    corrected=r"as written $\lambda$ multiplies only $\sum L_2(W)$, so $\partial/\partial b$ of the penalty is "
    r"$2b$ with no $\lambda$; the code applies $\frac{\lambda}{2N}b$; the intended penalty is "
    r"$\lambda(\sum L_2(W) + \sum L_2(b))$. Penalising b at all is optional (library: regularize_bias)",
)
def test_bias000(seed=_bias_literal_grad, corrected=_bias_code_grad):
    r"""**FCNN-Jacobian notes, the bias in the penalty.**

    > $L'(\hat Y, Y)=L(\hat Y, Y) + \lambda \sum L_2(W)+L_2(b)$; ``self.b -= (self.db + self.b * lam * 0.5) / self.dcnt * learningRate``.

    Derivation. By precedence, $\lambda$ scales $\sum L_2(W)$ only, and $L_2(b)$ (a vector, not summed) enters
    with weight 1: $\partial/\partial b = 2b$, even at $\lambda = 0$. The code scales the bias term by
    $\lambda$ like the weights. The common practice (CS231n walkthrough, the library's default) is not to penalise
    biases at all; ``regularize_bias=True`` penalises them with the same $l_2$.

    Verdict: **wrong** as written (precedence). Check: FD of the literal expression w.r.t. $b$ at
    $\lambda=0$ is $2b \ne 0$ while the code's bias penalty vanishes; the library with
    ``regularize_bias=True`` adds $l_2 b$, without it nothing.
    """
    b = np.array([0.3, -0.8])
    lam = 0.0
    literal = fd(lambda v: lam * np.sum(W**2) + np.sum(v**2), b, gradient=True)[0]
    assert_close("the printed expression's bias gradient", literal, seed(b, lam), atol=1e-8)
    assert np.array_equal(corrected(b, lam), b * lam * 0.5), "the code's bias term"
    assert_differs(
        "literal prose vs code at lambda=0", literal, corrected(b, lam), by=float(np.max(np.abs(2 * b))), atol=1e-7
    )
    for rb, expected in ((True, 0.4 * b), (False, 0 * b)):
        net = Network.build([2, 2], "identity", loss="mse", seed=0, l2=0.4, regularize_bias=rb)
        net.layers[0].b[...] = b
        _, g = net.loss_and_gradients(np.zeros((1, 2)), (np.zeros(2) + b)[None, :])  # output = b = target
        assert_close(f"library bias penalty (regularize_bias={rb})", g[0]["b"], expected)


def _seed004_reg(params, grads, loss, reg, names):
    """CS231n walkthrough TwoLayerNet/FullyConnectedNet: loss += 0.5*reg*sum(W**2) per layer; dW += reg*W."""
    loss = loss + sum(0.5 * reg * np.sum(params[k] ** 2) for k in names)
    grads = {k: grads[k] + reg * params[k] if k in names else grads[k] for k in grads}
    return loss, grads


def _decay_linear(t, lr, reg):
    r"""'decay linearly toward 0', read as linear in time: $1 - t\,\eta\,reg$."""
    return 1 - t * lr * reg


def _decay_geometric(t, lr, reg):
    r"""The iterated update $W \leftarrow W - \eta\,reg\,W$: $(1-\eta\,reg)^t$."""
    return (1 - lr * reg) ** t


@proof(
    id="reg.l2_004",
    seed="004",
    location="§5.1 正则化 code; §5.4 FullyConnectedNet.loss",
    statement=r"loss += 0.5*reg*(sum W1^2 + sum W2^2); dW += reg*W; 'all weights decay linearly toward 0 by "
    r"w += -reg*W'",
    verdict=CONVENTION,
    corrected=r"penalty $\frac{reg}{2}\|W\|^2$ has gradient $reg\,W$ (holds); the decay step is "
    r"$W \leftarrow W - \eta\,reg\,W$ (the source omits $\eta$): linear in $W$, so alone it shrinks "
    r"$W$ geometrically, $(1-\eta\,reg)^t W_0$, not linearly in time",
)
def test_l2_004(seed=_decay_linear, corrected=_decay_geometric):
    r"""**CS231n walkthrough, L2 regularisation.**

    > ``loss += 0.5 * self.reg * (np.sum(W1 ** 2) + np.sum(W2 ** 2))``; ``dW2 += self.reg * W2``; ``dW1 += self.reg * W1``;
    > "使用L2正则化意味着所有的权重都以 w += -reg * W 向着0线性下降". ``FullyConnectedNet`` adds the same
    > term layer by layer during the backward loop (only weights; not b, gamma, beta).

    Derivation. $\nabla_W \frac{reg}{2}\sum W^2 = reg\,W$: code and penalty agree (and agree with the
    library's ``l2``). The per-step decay, in the absence of data gradients, is $W_{t+1} = (1-\eta\,reg)W_t$:
    the *update* is linear in $W$ but the decay over time is geometric.

    Verdict: **holds under a stated convention** ("linearly" = the update is a linear function of $W$; $\eta$
    omitted). Check: FD of the penalty; the FullyConnectedNet incremental sum equals the total; the library's
    ``l2`` term equals the source's; iterating the decay gives $(1-\eta\,reg)^t$, not $1 - t\,\eta\,reg$.
    """
    reg = 0.3
    params = {"W1": W, "W2": W.T * 2, "b1": np.ones(2)}
    loss, grads = _seed004_reg(params, {k: np.zeros_like(v) for k, v in params.items()}, 0.0, reg, ("W1", "W2"))
    flat = np.concatenate([W.reshape(-1), (W.T * 2).reshape(-1)])
    assert_fd(
        "penalty gradient",
        np.concatenate([grads["W1"].reshape(-1), grads["W2"].reshape(-1)]),
        lambda v: 0.5 * reg * np.sum(v**2),
        flat,
        gradient=True,
    )
    incremental = 0.0
    for k in ("W2", "W1"):  # FullyConnectedNet: output layer first, then the hidden ones in the backward loop
        incremental += 0.5 * reg * np.sum(params[k] ** 2)
    assert abs(incremental - loss) < 1e-12
    net = Network.build([2, 2], "identity", loss="mse", seed=0, l2=reg)
    net.layers[0].W[...] = W
    assert abs(net.penalty() - 0.5 * reg * np.sum(W**2)) < 1e-12
    lr, t = 0.1, 5
    w = 1.0
    for _ in range(t):
        w += -lr * reg * w
    assert abs(w - corrected(t, lr, reg)) < 1e-12
    assert_differs("geometric vs linear decay", w, seed(t, lr, reg), atol=1e-6)


@symbolic("reg.l2_code000")
def test_l2_code000_symbolic():
    sp = require_sympy()
    w, dw, lam, lr = sp.symbols("w dw lambda eta", real=True)
    Nn = sp.Symbol("N", positive=True)
    code = w - (dw + w * lam * sp.Rational(1, 2)) / Nn * lr
    plain = w - lr * dw / Nn
    sym_zero(sp, (code - plain) / (-lr) - lam / (2 * Nn) * w, "code penalty gradient = lam/(2N) w")
    sym_zero(sp, sp.diff(lam * w**2, w) / (lam / (2 * Nn) * w) - 4 * Nn, "prose / code = 4N")
