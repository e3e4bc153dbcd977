r"""The dense layer (FCNN-Jacobian notes' convention $Y = f(W^\top X + b)$) and the batch forms in the numpy-layers post and DLFS notes."""

from __future__ import annotations

import numpy as np

from jacobian_nn.activations import Identity
from jacobian_nn.layers import Dense

from ._helpers import assert_close, assert_fd, fd, sym_zero
from ._registry import HOLDS, WRONG, proof, require_sympy, symbolic

n, m = 3, 2
RNG = np.random.default_rng(7)
W = RNG.normal(size=(n, m))
B = RNG.normal(size=m)
X = RNG.normal(size=n)
U = RNG.normal(size=m)  # an upstream row dL/dY


def _shape_seed(n_in, m_out):
    """The FCNN-Jacobian notes' shape of the Jacobian of a map R^n -> R^m: n x m."""
    return (n_in, m_out)


def _shape_numerator(n_in, m_out):
    """Numerator layout: m x n."""
    return (m_out, n_in)


@proof(
    id="dense.jacobian_shape",
    seed="000",
    location="§全连接层的数学原理, 'R^n -> R^m 的雅克布矩阵是 R^{n x m}'",
    statement=r"the Jacobian of a map $\mathbb R^n\to\mathbb R^m$ is $n\times m$",
    verdict=WRONG,
    corrected=r"$m\times n$ (numerator layout, $J_{ij} = \partial g_i/\partial x_j$): the only shape with which the "
    r"source's own chain $\frac{\partial L}{\partial Y}J_f W^\top$ (row $1\times m$ first) type-checks",
)
def test_jacobian_shape(seed=_shape_seed, corrected=_shape_numerator):
    r"""**FCNN-Jacobian notes: "函数($\mathbb{R}^n \to \mathbb{R}^m$)的雅克布矩阵是 $\mathbb{R}^{n\times m}$".**

    > 数对向量求导是行向量,函数 ($\mathbb{R}^n \to \mathbb{R}^m$) 的雅克布矩阵是 $\mathbb{R}^{n\times m}$。

    Derivation. The source's own formula $\frac{\partial L}{\partial X} = \frac{\partial L}{\partial Y}J_f(W^\top X+b)W^\top$
    multiplies a row $1\times m$ by $J_f$ ($m\times m$) and by $W^\top$ ($m\times n$), giving $1\times n$: the
    Jacobian of $X\mapsto Y$ there is $J_fW^\top$, $m\times n$. An $n\times m$ Jacobian cannot be
    left-multiplied by the $1\times m$ row $\partial L/\partial Y$ unless $n = m$.

    Verdict: **wrong**. Corrected: $m\times n$. Check: FD Jacobian of the layer has shape $(m, n)$ with
    $n\ne m$; the chain with an $(m,n)$ Jacobian type-checks and equals FD of $L$; with the transposed
    $(n,m)$ shape the product raises; ``Dense.jacobian_x`` is $(m, n)$.
    """
    layer = Dense.from_params(W, B, "tanh")
    J = fd(lambda v: layer.forward(v[:, None])[0][:, 0], X)
    assert n != m and J.shape == corrected(n, m), f"FD Jacobian shape {J.shape} vs the corrected {corrected(n, m)}"
    row = U[None, :] @ J
    assert_fd("dL/dX = dL/dY J", row, lambda v: float(U @ layer.forward(v[:, None])[0][:, 0]), X, gradient=True)
    J_seed = J.T if seed(n, m) == J.T.shape else J
    try:
        U[None, :] @ J_seed
    except ValueError:
        pass
    else:
        raise AssertionError(f"a (1, m) row times a {seed(n, m)} Jacobian type-checked, so that shape is not refuted")
    assert layer.jacobian_x(X[:, None]).shape == corrected(n, m)


def _backward000(u, J, x, w):
    """The notes' backward: delta = dL/dY J_f; dL/dX = delta W^T, dL/dW = X delta, dL/db = delta."""
    delta = u @ J
    return delta @ w.T, x @ delta, delta[0]


@proof(
    id="dense.backward000",
    seed="000",
    location="§全连接层的数学原理, backward formulas",
    statement=r"$\frac{\partial L}{\partial X} = \frac{\partial L}{\partial Y}J_f W^\top$, "
    r"$\frac{\partial L}{\partial W} = X\frac{\partial L}{\partial Y}J_f$, "
    r"$\frac{\partial L}{\partial b} = \frac{\partial L}{\partial Y}J_f$; $J_f$ diagonal for elementwise f",
    verdict=HOLDS,
)
def test_backward000(claim=_backward000):
    r"""**FCNN-Jacobian notes, the dense layer's backward.**

    > $\frac{\partial L}{\partial X} = \frac{\partial L}{\partial Y}J_f(W^TX+b)W^T$,
    > $\frac{\partial L}{\partial W} = X\frac{\partial L}{\partial Y}J_f(W^TX+b)$,
    > $\frac{\partial L}{\partial b} = \frac{\partial L}{\partial Y}J_f(W^TX+b)$;
    > "由于 $f(X)^{(i)}$ 只与 $X^{(i)}$ 有关,所以 $J_f$ 是一个对角阵". Code: ``dz = dY @ f.gradient(z)``,
    > ``dw += X @ dz``, ``db += dz.T``, ``return dz @ w.T``.

    Derivation. Let $z = W^\top X + b$, $\delta = \frac{\partial L}{\partial Y}J_f(z)$ ($1\times m$). Then
    $z_j = \sum_i W_{ij}X_i + b_j$, so $\partial z_j/\partial X_i = W_{ij}$ (the Jacobian of $z$ is $W^\top$),
    $\partial z_j/\partial W_{ij} = X_i$ and $\partial z_j/\partial b_j = 1$. Hence
    $\partial L/\partial X_i = \sum_j\delta_j W_{ij} = (\delta W^\top)_i$, $\partial L/\partial W_{ij} = X_i\delta_j = (X\delta)_{ij}$
    ($n\times m$, the shape of $W$), $\partial L/\partial b = \delta$ (a row; the code stores it as a column
    ``dz.T``, the library in $b$'s 1-D shape). $J_f$ is diagonal for elementwise $f$; for softmax it is dense
    and the same formulas hold with the full $J$.

    Verdict: **holds**. Checks: sympy at $n=3, m=2$ with $f=\tanh$ (symbols for every entry of $W, b, X$ and
    of the upstream row); FD; ``Dense.backward``.
    """
    for act in ("tanh", "softmax"):
        layer = Dense.from_params(W, B, act)
        y, ctx = layer.forward(X[:, None])
        gx, g = layer.backward(U[None, :], ctx)
        J = layer.activation.jacobian(ctx[1])
        cx, cW, cb = claim(U[None, :], J, X[:, None], W)
        assert_close(f"{act}: dL/dX = delta W^T", gx, cx)
        assert_close(f"{act}: dL/dW = X delta", g["W"], cW)
        assert_close(f"{act}: dL/db = delta", g["b"], cb)
        lw = lambda v, a=act: float(U @ Dense.from_params(v.reshape(n, m), B, a).forward(X[:, None])[0][:, 0])  # noqa: E731
        lb = lambda v, a=act: float(U @ Dense.from_params(W, v, a).forward(X[:, None])[0][:, 0])  # noqa: E731
        lx = lambda v, a=act: float(U @ Dense.from_params(W, B, a).forward(v[:, None])[0][:, 0])  # noqa: E731
        assert_fd(f"{act}: dL/dX", cx, lx, X, gradient=True)
        assert_fd(f"{act}: dL/dW", cW.reshape(1, -1), lw, W.reshape(-1), gradient=True)
        assert_fd(f"{act}: dL/db", cb, lb, B, gradient=True)


@symbolic("dense.backward000")
def test_backward000_symbolic():
    sp = require_sympy()
    Ws = sp.Matrix(n, m, lambda i, j: sp.Symbol(f"w{i}{j}", real=True))
    bs = sp.Matrix(m, 1, lambda i, _: sp.Symbol(f"b{i}", real=True))
    xs = sp.Matrix(n, 1, lambda i, _: sp.Symbol(f"x{i}", real=True))
    us = sp.Matrix(1, m, lambda _, j: sp.Symbol(f"u{j}", real=True))
    z = Ws.T * xs + bs
    Y = z.applyfunc(sp.tanh)
    L = (us * Y)[0, 0]
    Jf = sp.diag(*[1 - sp.tanh(zi) ** 2 for zi in z])
    delta = us * Jf
    sym_zero(sp, sp.Matrix([[sp.diff(L, xi) for xi in xs]]) - delta * Ws.T, "dL/dX")
    sym_zero(sp, Ws.applyfunc(lambda w: sp.diff(L, w)) - xs * delta, "dL/dW")
    sym_zero(sp, sp.Matrix([[sp.diff(L, bi) for bi in bs]]) - delta, "dL/db")
    sym_zero(sp, Y.jacobian(list(xs)) - Jf * Ws.T, "dY/dX = J_f W^T (m x n)")


def _train000_dz(yhat, y):
    """The training code's upstream row for softmax + CrossEntropy: ``yHat.reshape(1, -1) - Y.reshape(1, -1)``."""
    return yhat.reshape(1, -1) - y.reshape(1, -1)


@proof(
    id="dense.train000",
    seed="000",
    location="NeuralNetwork.py trainBatch/trainOne (skipLastCalc) and NNLayers.py _backward",
    statement="for softmax + CrossEntropy the code passes dz = yHat - Y straight to the last layer (skipCalc); "
    "dw, db are summed over the batch and divided by dcnt",
    verdict=HOLDS,
)
def test_train000(claim=_train000_dz):
    r"""**FCNN-Jacobian notes, the training code's backward.**

    > ``self._backward(yHat.reshape(1, -1) - Y[i].reshape(1, -1), True)`` (skip the softmax Jacobian);
    > ``dz = dY if skipCalc else np.dot(dY, self.func.gradient(self.z))``; ``self.dw += np.dot(self.X, dz)``;
    > ``self.db += dz.T``; ``self.dcnt += 1``; ``return np.dot(dz, self.w.T)``.

    Derivation. With softmax output and cross-entropy, $\frac{\partial L}{\partial \hat Y}J_{\text{softmax}} = (\hat Y - Y)^\top$
    (proof ``softmax.ce_combined``), so passing $\hat Y - Y$ as ``dz`` and skipping the Jacobian is exact. The
    accumulated sums divided by ``dcnt`` are the mean gradients (proof ``loss.batch_mean``).

    Verdict: **holds** (for labels summing to 1). Check: the restated per-sample code, summed and divided
    by N, equals FD of the batch-mean loss of a softmax-output layer, and the library's
    ``Network.loss_and_gradients`` with a softmax layer + ``CrossEntropy``.
    """
    from jacobian_nn.losses import CrossEntropy
    from jacobian_nn.network import Network

    Xb = RNG.normal(size=(4, n))
    Yb = np.eye(m)[[0, 1, 1, 0]]
    layer = Dense.from_params(W, B, "softmax")
    dw, db = np.zeros((n, m)), np.zeros((m, 1))
    for x, y in zip(Xb, Yb):
        yhat, (xc, z) = layer.forward(x[:, None])
        dz = claim(yhat, y)
        dw += xc @ dz
        db += dz.T
    dw, db = dw / 4, db / 4

    def batch_loss(v):
        lay = Dense.from_params(v.reshape(n, m), B, "softmax")
        return np.mean([CrossEntropy().forward(lay.forward(x[:, None])[0], y[:, None]) for x, y in zip(Xb, Yb)])

    assert_fd("code dw / dcnt", dw.reshape(1, -1), batch_loss, W.reshape(-1), gradient=True)
    net = Network([Dense.from_params(W, B, "softmax")], "cross_entropy")
    _, g = net.loss_and_gradients(Xb, Yb)
    assert_close("library W", g[0]["W"], dw)
    assert_close("library b", g[0]["b"], db[:, 0])


def _affine_batch(G, x, w):
    """DLFS notes ``Affine.backward``: ``dx = dout W^T``, ``dW = x^T dout``, ``db = np.sum(dout, axis=0)``."""
    return G @ w.T, x.T @ G, np.sum(G, axis=0)


@proof(
    id="dense.affine_batch",
    seed="002",
    location="§Affine 层 (also numpy-layers post §3 Linear.backward, CS231n walkthrough §4.3 affine_backward)",
    statement=r"$\frac{\partial L}{\partial X} = \frac{\partial L}{\partial Y}W^\top$, "
    r"$\frac{\partial L}{\partial W} = X^\top\frac{\partial L}{\partial Y}$, db = np.sum(dout, axis=0)",
    verdict=HOLDS,
)
def test_affine_batch(claim=_affine_batch):
    r"""**DLFS notes ``Affine``; numpy-layers post ``Linear.backward``; CS231n walkthrough ``affine_backward``.**

    > $\frac{\partial L}{\partial X} = \frac{\partial L}{\partial Y} \cdot W^T$, $\frac{\partial L}{\partial W} = X^T \cdot \frac{\partial L}{\partial Y}$;
    > ``dx = np.dot(dout, self.W.T); self.dW = np.dot(self.x.T, dout); self.db = np.sum(dout, axis=0)``.

    Derivation. $Y = XW + \mathbf 1 b$ with $X$ $(N,n)$: $Y_{kj} = \sum_i X_{ki}W_{ij} + b_j$, so
    $\partial L/\partial X_{ki} = \sum_j G_{kj}W_{ij} = (GW^\top)_{ki}$, $\partial L/\partial W_{ij} = \sum_k X_{ki}G_{kj}
    = (X^\top G)_{ij}$, $\partial L/\partial b_j = \sum_k G_{kj}$ (the bias is broadcast over the $N$ rows, so its
    gradient sums over them). Row $k$ of these is FCNN-Jacobian notes' per-sample formula with $f$ = identity.

    Verdict: **holds**. Checks: sympy ($N=2, n=2, m=2$, every entry a symbol); FD; ``Dense.backward_batched``
    with identity activation.
    """
    Xb = RNG.normal(size=(3, n))
    G = RNG.normal(size=(3, m))
    L = lambda Xv, Wv, bv: float(np.sum(G * (Xv @ Wv + bv)))  # noqa: E731
    dx, dW, db = claim(G, Xb, W)
    assert_fd("dx", dx.reshape(1, -1), lambda v: L(v.reshape(3, n), W, B), Xb.reshape(-1), gradient=True)
    assert_fd("dW", dW.reshape(1, -1), lambda v: L(Xb, v.reshape(n, m), B), W.reshape(-1), gradient=True)
    assert_fd("db", db, lambda v: L(Xb, W, v), B, gradient=True)
    layer = Dense.from_params(W, B, Identity())
    _, cache = layer.forward_batched(Xb)
    dX, g = layer.backward_batched(G, cache)
    assert_close("library dX", dX, dx)
    assert_close("library dW", g["W"], dW)
    assert_close("library db", g["b"], db)


@symbolic("dense.affine_batch")
def test_affine_batch_symbolic():
    sp = require_sympy()
    N_, n_, m_ = 2, 2, 2
    Xs = sp.Matrix(N_, n_, lambda i, j: sp.Symbol(f"x{i}{j}", real=True))
    Ws = sp.Matrix(n_, m_, lambda i, j: sp.Symbol(f"w{i}{j}", real=True))
    bs = sp.Matrix(1, m_, lambda _, j: sp.Symbol(f"b{j}", real=True))
    Gs = sp.Matrix(N_, m_, lambda i, j: sp.Symbol(f"g{i}{j}", real=True))
    Y = Xs * Ws + sp.ones(N_, 1) * bs
    L = sum(Gs[i, j] * Y[i, j] for i in range(N_) for j in range(m_))
    sym_zero(sp, Xs.applyfunc(lambda v: sp.diff(L, v)) - Gs * Ws.T, "dX")
    sym_zero(sp, Ws.applyfunc(lambda v: sp.diff(L, v)) - Xs.T * Gs, "dW")
    sym_zero(sp, bs.applyfunc(lambda v: sp.diff(L, v)) - sp.ones(1, N_) * Gs, "db")


def _seed001_full_linear_backward(x, w, prev_grad):
    """numpy-layers post §5 (full training code) ``Linear.backward``: returns ``cur_grad = x^T @ prev_grad``."""
    return x.T @ prev_grad


def _linear001_dx(x, w, prev_grad):
    """What the previous layer needs (the same post's §3 ``Linear.backward``): ``dx = prev_grad w^T``."""
    return prev_grad @ w.T


@proof(
    id="dense.linear001_return",
    seed="001",
    location="§5 完整训练代码, Linear.backward",
    statement="cur_grad = einsum(x^T, prev_grad) ... return cur_grad (the gradient passed to the previous layer)",
    verdict=WRONG,
    corrected="it returns dW = x^T prev_grad (in, out); the previous layer needs dx = prev_grad w^T (N, in), "
    "as in the same source's §3 Linear.backward",
)
def test_linear001_return(seed=_seed001_full_linear_backward, corrected=_linear001_dx):
    r"""**numpy-layers post, §5 ``Linear.backward`` in the complete training code.**

    > ``cur_grad = einsum(rearrange(self.x, 'b c -> c b'), prev_grad, 'c1 b, b c2 -> c1 c2')``;
    > ``self.w -= self.lr * cur_grad``; ``return cur_grad``. (§3's version returns ``dx``; its comment:
    > "往上一层传递的是dx".)

    Derivation. ``cur_grad`` is $X^\top G = \partial L/\partial W$, shape $(n_{in}, n_{out})$. The gradient for the
    previous layer is $\partial L/\partial X = GW^\top$, shape $(N, n_{in})$ (proof ``dense.affine_batch``). In
    the one-layer network of §5 the return value is discarded, so training is unaffected; stacked, it breaks.

    Verdict: **wrong**. Check: the returned array has shape $(n, m)$, not $(N, n)$; the right value matches FD.
    """
    Xb = RNG.normal(size=(4, n))
    G = RNG.normal(size=(4, m))
    ret = seed(Xb, W, G)
    right = fd(lambda v: float(np.sum(G * (v.reshape(4, n) @ W + B))), Xb.reshape(-1), gradient=True).reshape(4, n)
    assert ret.shape == (n, m) != right.shape, f"the returned value has shape {ret.shape}, dL/dx has {right.shape}"
    assert_close("dx = G W^T", right, corrected(Xb, W, G), atol=1e-8)


def _forward002_values():
    """The DLFS notes' printed values: ``A1 = [0.3, 0.7, 1.1]``, ``Z1 = [0.57444252, 0.66818777, 0.75026011]``."""
    return np.array([0.3, 0.7, 1.1]), np.array([0.57444252, 0.66818777, 0.75026011])


@proof(
    id="dense.forward002",
    seed="002",
    location="§各层间信号传递的实现 (3-layer forward example)",
    statement="A1 = X W1 + B1 = [0.3, 0.7, 1.1], Z1 = sigmoid(A1) = [0.57444252, 0.66818777, 0.75026011]; "
    "W^(1) has w_{ij} = weight from input j to unit i, laid out as the (2, 3) matrix of w_{ji}",
    verdict=HOLDS,
)
def test_forward002(claim=_forward002_values):
    r"""**DLFS notes, the three-layer forward example.**

    > ``X = [1.0, 0.5]``, ``W1 = [[0.1, 0.3, 0.5], [0.2, 0.4, 0.6]]``, ``B1 = [0.1, 0.2, 0.3]``;
    > ``A1 = np.dot(X, W1) + B1  # [0.3, 0.7, 1.1]``; ``Z1 = sigmoid(A1)  # [0.57444252, 0.66818777, 0.75026011]``;
    > $W^{(1)} = \begin{pmatrix} w_{11} & w_{21} & w_{31}\\ w_{12} & w_{22} & w_{32}\end{pmatrix}$ ("后一层的索引号、前一层的索引号").

    Derivation. $a_1 = 1.0\cdot0.1 + 0.5\cdot0.2 + 0.1 = 0.3$, $a_2 = 0.3+0.2+0.2 = 0.7$, $a_3 = 0.5+0.3+0.3=1.1$.
    The matrix layout puts $w_{ji}$ (to unit $i$ from input $j$) at row $j$, column $i$: exactly FCNN-Jacobian notes'
    $W$ $(n, m)$ with $z = W^\top x + b$, and the library's ``Dense``.

    Verdict: **holds**. Check: the numbers, and ``Dense`` with these parameters.
    """
    x = np.array([1.0, 0.5])
    W1 = np.array([[0.1, 0.3, 0.5], [0.2, 0.4, 0.6]])
    B1 = np.array([0.1, 0.2, 0.3])
    a1, z1_printed = claim()
    assert_close("A1", x @ W1 + B1, a1)
    z1 = Dense.from_params(W1, B1, "sigmoid").forward(x[:, None])[0][:, 0]
    assert_close("Z1", z1, z1_printed, atol=5e-9)


def _route_to_forward(layer, row, ctx):
    """'把后一层后向的输出发给前一层的前向': the later layer's backward output fed to the earlier layer's forward."""
    return layer.forward(row.T)[0]


def _route_to_backward(layer, row, ctx):
    """What the code does (``FCNN._backward``: ``dY = layer._backward(dY)`` in reverse order)."""
    return layer.backward(row, ctx)[1]["W"]


@proof(
    id="dense.backward_order000",
    seed="000",
    location="§架构, what the model does in training",
    statement="再反过来把后一层后向的输出发给前一层的前向 (then, in reverse, send the output of the later layer's "
    "backward to the earlier layer's forward)",
    verdict=WRONG,
    prose=True,
    corrected="the output of a layer's backward (dL/dX, a row) goes to the earlier layer's backward, as the "
    "notes' own FCNN._backward does (for layer in self.layers[::-1]: dY = layer._backward(dY))",
)
def test_backward_order000(seed=_route_to_forward, corrected=_route_to_backward):
    r"""**FCNN-Jacobian notes, the architecture paragraph: where the backward output goes.**

    > 而整个模型要做的事就很简单:将输入发给第一层的前向,然后把每一层的输出传给下一层的前向,得到预测输出 $\hat{Y}$;
    > 计算损失 $L(\hat{Y},Y)$ 以及 $\frac{\partial L}{\partial \hat{Y}}$,再反过来把后一层后向的输出发给前一层的前向。
    > Code: ``def _backward(self, dY, skipLastCalc = False): for layer in self.layers[::-1]: dY = layer._backward(dY, skipLastCalc)``.

    Derivation. The backward of layer $k+1$ returns $\partial L/\partial X_{k+1} = \partial L/\partial Y_k$, a row of
    layer $k$'s *output* size; the chain rule continues in layer $k$'s backward, which turns it into
    $\partial L/\partial W_k$ and $\partial L/\partial X_k$. Layer $k$'s forward takes an input column of its
    *input* size and computes activations, not derivatives. The same paragraph defines the backward as
    the method that receives $\partial L/\partial Y$; the last word should be 后向 (backward).

    Verdict: **wrong** (prose: a wrong word). Check: in a two-layer network the row from layer 2's backward,
    passed to layer 1's backward, gives FD's $\partial L/\partial W_1$; passed to layer 1's forward it is refused
    (its size is layer 1's output size, 2, not its input size, 3).
    """
    l1 = Dense.from_params(W, B, "tanh")
    W2 = RNG.normal(size=(m, 2))
    l2 = Dense.from_params(W2, np.zeros(2), "sigmoid")
    y1, c1 = l1.forward(X[:, None])
    y2, c2 = l2.forward(y1)
    u = np.array([[0.7, -1.2]])
    row, _ = l2.backward(u, c2)  # dL/dX2 = dL/dY1, shape (1, m)

    def loss(v):
        lay = Dense.from_params(v.reshape(n, m), B, "tanh")
        return (u @ l2.forward(lay.forward(X[:, None])[0])[0]).item()

    try:
        routed = corrected(l1, row, c1)
    except ValueError as e:
        raise AssertionError(f"the corrected route was refused: {e}") from None
    assert_fd(
        "row -> earlier layer's backward = dL/dW1",
        np.asarray(routed).reshape(1, -1),
        loss,
        W.reshape(-1),
        gradient=True,
    )
    try:
        seed(l1, row, c1)
    except ValueError:
        pass
    else:
        raise AssertionError("the earlier layer's forward accepted the backward row")


@symbolic("dense.jacobian_shape")
def test_jacobian_shape_symbolic():
    sp = require_sympy()
    Ws = sp.Matrix(n, m, lambda i, j: sp.Symbol(f"w{i}{j}", real=True))
    xs = sp.Matrix(n, 1, lambda i, _: sp.Symbol(f"x{i}", real=True))
    bs = sp.Matrix(m, 1, lambda i, _: sp.Symbol(f"b{i}", real=True))
    Y = (Ws.T * xs + bs).applyfunc(sp.tanh)
    J = Y.jacobian(list(xs))
    assert J.shape == (m, n) != (n, m)
    us = sp.Matrix(1, m, lambda _, j: sp.Symbol(f"u{j}", real=True))
    L = (us * Y)[0, 0]
    sym_zero(sp, sp.Matrix([[sp.diff(L, v) for v in xs]]) - us * J, "dL/dX = dL/dY J with J (m, n)")
