r"""Softmax: its Jacobian, softmax + cross-entropy combined, and the per-element derivations
of the numpy-layers post and Made-With-ML MLP (see proof_two_layer_seed003.py) and 004, with what each source's code computes.
"""

from __future__ import annotations

import numpy as np

from jacobian_nn.activations import Softmax
from jacobian_nn.losses import CrossEntropy, SoftmaxCrossEntropy

from ._helpers import assert_close, assert_differs, assert_fd, fd, sym_nonzero, sym_zero
from ._registry import HOLDS, WRONG, proof, require_sympy, symbolic

Z = np.array([0.3, -1.2, 0.8, 0.1])


def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _sym_softmax(sp, m):
    """Softmax of m symbols through E_i = exp(x_i) > 0 (rational in E, so simplification is fast)."""
    E = sp.symbols(f"E0:{m}", positive=True)
    S = sum(E)
    return E, sp.Matrix([e / S for e in E])


def _softmax_J_loop(z):
    """The notes' ``Softmax.gradient`` double loop: ``s_i (1 - s_i)`` on the diagonal, ``-s_i s_j`` off it."""
    s = softmax(z)
    m = z.size
    return np.array([[s[i] * (1 - s[i]) if i == j else -s[i] * s[j] for j in range(m)] for i in range(m)])


@proof(
    id="softmax.jacobian",
    seed="000",
    location="§激活函数, Softmax; NNFunctions.py Softmax.gradient",
    statement=r"$J_{ii} = (e^{X_i}\Sigma - (e^{X_i})^2)/\Sigma^2$, $J_{ij} = -e^{X_i}e^{X_j}/\Sigma^2$; "
    r"code: $s_i(1-s_i)$, $-s_i s_j$",
    verdict=HOLDS,
)
def test_softmax_jacobian(claim=_softmax_J_loop):
    r"""**FCNN-Jacobian notes, Softmax row of the table, and its code's double loop.**

    > $J_{i,j} = \frac{e^{X_i}\sum - (e^{X_i})^2}{(\sum)^2}$ ($i=j$), $\frac{-e^{X_i}e^{X_j}}{(\sum)^2}$ ($i\ne j$);
    > code: ``res[i, j] = callz[i] * (1 - callz[i])`` if ``i == j`` else ``- callz[i] * callz[j]``.

    Derivation. With $\Sigma=\sum_k e^{X_k}$ and $s_i = e^{X_i}/\Sigma$, the quotient rule gives
    $\partial s_i/\partial X_j = (\delta_{ij} e^{X_i}\Sigma - e^{X_i}e^{X_j})/\Sigma^2 = s_i(\delta_{ij}-s_j)$,
    i.e. $J = \operatorname{diag}(s) - s s^\top$ (symmetric, rows summing to 0).

    Verdict: **holds** (prose and code). Checks: sympy with $E_i = e^{X_i}$ as positive symbols
    ($m=3$); FD; the restated double loop; ``Softmax.jacobian``.
    """
    E, S = np.exp(Z), np.exp(Z).sum()
    prose = np.where(np.eye(4) == 1, (E * S - E**2)[:, None] / S**2, -np.outer(E, E) / S**2)
    assert_fd("softmax J (the table's formula)", prose, lambda v: softmax(v), Z)
    assert_close("the code's double loop = the table", claim(Z), prose)
    assert_close("library Softmax.jacobian", Softmax().jacobian(Z[:, None]), claim(Z))


@symbolic("softmax.jacobian")
def test_softmax_jacobian_symbolic():
    sp = require_sympy()
    xs = sp.symbols("x0:3", real=True)
    E = [sp.exp(x) for x in xs]
    S = sum(E)
    s = sp.Matrix([e / S for e in E])
    J = s.jacobian(xs)
    seed = sp.Matrix(3, 3, lambda i, j: (E[i] * S - E[i] ** 2) / S**2 if i == j else -E[i] * E[j] / S**2)
    sym_zero(sp, J - seed, "softmax J - seed formula")
    sym_zero(sp, J - (sp.diag(*s) - s * s.T), "softmax J - (diag(s) - s s^T)")


def _ce_combined_seed(s, y):
    r"""The notes' fused row: $(Y - \hat Y)^\top$."""
    return y - s


def _ce_combined_right(s, y):
    r"""$(\hat Y - Y)^\top$ (the notes' code passes ``yHat - Y``)."""
    return s - y


@proof(
    id="softmax.ce_combined",
    seed="000",
    location="§损失函数, CrossEntropy + Softmax combined",
    statement=r"$\frac{\partial L}{\partial \hat Y} J_{\mathrm{Softmax}} = (Y - \hat Y)^T$",
    verdict=WRONG,
    corrected=r"$(\hat Y - Y)^T$, valid when $\sum_i Y_i = 1$ (the source's own code passes ``yHat - Y``)",
)
def test_softmax_ce_combined(seed=_ce_combined_seed, corrected=_ce_combined_right):
    r"""**FCNN-Jacobian notes, softmax + cross-entropy combined.**

    > $\frac{\partial L}{\partial \hat Y} J_{\operatorname{Softmax}}=(Y - \hat Y)^T$; in ``trainBatch``:
    > ``self._backward(yHat.reshape(1, -1) - Y[i].reshape(1, -1), True)``.

    Derivation. $\partial L/\partial \hat Y = -(Y/\hat Y)^\top$ (row) and
    $J = \operatorname{diag}(\hat Y) - \hat Y \hat Y^\top$, so
    $-(Y/\hat Y)^\top J = -Y^\top + (\sum_i Y_i)\hat Y^\top = (\hat Y - Y)^\top$ when $\sum Y = 1$.
    The prose has the sign flipped; used in gradient descent it would *ascend* the loss.
    The code's ``yHat - Y`` is right.

    Verdict: **wrong** (sign). Check: sympy (the product minus $(\hat Y - Y)^\top$ is 0 once
    $\sum Y = 1$; minus $(Y-\hat Y)^\top$ is not); FD of the fused loss differs from the source's
    row by exactly $2|\hat Y - Y|$; ``SoftmaxCrossEntropy.gradient`` matches the corrected row.
    """
    y = np.array([0.0, 1.0, 0.0, 0.0])
    loss = SoftmaxCrossEntropy()
    s = softmax(Z)
    g_fd = fd(lambda v: loss.forward(v[:, None], y[:, None]), Z, gradient=True)[0]
    assert_fd("corrected (yhat - y)", corrected(s, y), lambda v: loss.forward(v[:, None], y[:, None]), Z, gradient=True)
    assert_differs("source (y - yhat) vs FD", seed(s, y), g_fd, by=2 * np.max(np.abs(s - y)), atol=1e-7)
    assert_close("library SoftmaxCrossEntropy.gradient", loss.gradient(Z[:, None], y[:, None])[0], corrected(s, y))
    # the chain through the explicit Jacobian (what the reference path does without fusing)
    chained = CrossEntropy().gradient(s[:, None], y[:, None]) @ Softmax().jacobian(Z[:, None])
    assert_close("dL/dyhat @ J_softmax", chained[0], corrected(s, y))


@symbolic("softmax.ce_combined")
def test_softmax_ce_combined_symbolic():
    sp = require_sympy()
    E, s = _sym_softmax(sp, 3)
    y = sp.symbols("y0:3", positive=True)
    J = sp.diag(*s) - s * s.T
    row = sp.Matrix([[-yi / si for yi, si in zip(y, s)]]) * J
    sub = {y[2]: 1 - y[0] - y[1]}
    sym_zero(sp, (row - (s.T - sp.Matrix([y]).T.T)).subs(sub), "dL/dyhat J - (yhat - y)^T")
    sym_nonzero(sp, (row - (sp.Matrix([y]) - s.T)).subs(sub), "dL/dyhat J - (y - yhat)^T")


def _elementwise001_line(p, y):
    """The post's third line: $-y_1(p_2+p_3)+y_2 p_2+y_3 p_3$."""
    return -y[0] * (p[1] + p[2]) + y[1] * p[1] + y[2] * p[2]


def _elementwise001_line_right(p, y):
    """What the second line simplifies to: $-y_1(p_2+p_3)+y_2 p_1+y_3 p_1$."""
    return -y[0] * (p[1] + p[2]) + y[1] * p[0] + y[2] * p[0]


@proof(
    id="softmax.ce_elementwise001",
    seed="001",
    location="§2 Softmax+CrossEntropy, derivation of dL/dx1",
    statement=r"$\partial L/\partial x_1 = \dots = -y_1(p_2+p_3)+y_2 p_2+y_3 p_3 = y_1(p_1-1)+y_2p_1+y_3p_1$",
    verdict=WRONG,
    corrected=r"the intermediate line is $-y_1(p_2+p_3)+y_2 p_1+y_3 p_1$; the final "
    r"$y_1(p_1-1)+y_2p_1+y_3p_1 = p_1 - y_1$ (one-hot $y$) holds",
)
def test_softmax_ce_elementwise001(seed=_elementwise001_line, corrected=_elementwise001_line_right):
    r"""**numpy-layers post, §2, the per-element softmax + cross-entropy derivation.**

    > $\frac{\partial L}{\partial x_1} = -y_1\frac{1}{p_1}(p_1p_2+p_1p_3) - y_2\frac{1}{p_2}(-p_1p_2) - y_3\frac{1}{p_3}(-p_1p_3)$
    > $= -y_1(p_2+p_3)+y_2 p_2+y_3 p_3 = -y_1(1-p_1)+y_2p_1+y_3p_1 = y_1(p_1-1)+y_2p_1+y_3p_1$;
    > likewise $\partial L/\partial x_2 = y_1p_2+y_2(p_2-1)+y_3p_2$, $\partial L/\partial x_3 = y_1p_3+y_2p_3+y_3(p_3-1)$.

    Derivation. $-y_2\frac{1}{p_2}(-p_1p_2) = y_2 p_1$, not $y_2 p_2$ (and $y_3p_1$, not $y_3p_3$).
    The next line has $p_1$ again, so only that one line is wrong. In general
    $\partial L/\partial x_j = p_j\sum_i y_i - y_j = p_j - y_j$ for a label summing to 1.

    Verdict: **wrong** in one intermediate line; the final results hold.
    Check: sympy (line 3 minus line 2 is $y_2(p_2-p_1)+y_3(p_3-p_1)\ne0$; the final lines equal
    the gradient of $L$); numeric: the source's line differs from FD at a concrete point; the final
    formula matches FD and ``SoftmaxCrossEntropy.gradient``.
    """
    x = np.array([0.2, -0.5, 0.9])
    y = np.array([0.0, 1.0, 0.0])
    p = softmax(x)
    f = lambda v: SoftmaxCrossEntropy().forward(v[:, None], y[:, None])  # noqa: E731
    final = np.array(
        [
            y[0] * (p[0] - 1) + y[1] * p[0] + y[2] * p[0],
            y[0] * p[1] + y[1] * (p[1] - 1) + y[2] * p[1],
            y[0] * p[2] + y[1] * p[2] + y[2] * (p[2] - 1),
        ]
    )
    assert_fd("numpy-layers post final dL/dx", final, f, x, gradient=True)
    g1 = fd(f, x, gradient=True)[0, 0]
    assert_differs("numpy-layers post intermediate line vs dL/dx1", seed(p, y), g1, by=abs(p[1] - p[0]), atol=1e-7)
    assert abs(corrected(p, y) - g1) < 1e-8, "the corrected line equals dL/dx1"
    assert_close("library", SoftmaxCrossEntropy().gradient(x[:, None], y[:, None])[0], final)


@symbolic("softmax.ce_elementwise001")
def test_softmax_ce_elementwise001_symbolic():
    sp = require_sympy()
    E, p = _sym_softmax(sp, 3)
    y = sp.symbols("y0:3", positive=True)
    L = -sum(yi * sp.log(pi) for yi, pi in zip(y, p))
    dL = [sp.diff(L, e) * e for e in E]  # dL/dx_j = dL/dE_j * dE_j/dx_j, with dE_j/dx_j = E_j
    final = [
        y[0] * (p[0] - 1) + y[1] * p[0] + y[2] * p[0],
        y[0] * p[1] + y[1] * (p[1] - 1) + y[2] * p[1],
        y[0] * p[2] + y[1] * p[2] + y[2] * (p[2] - 1),
    ]
    sub = {y[2]: 1 - y[0] - y[1]}
    sym_zero(sp, sp.Matrix([(a - b).subs(sub) for a, b in zip(dL, final)]), "final lines")
    line2 = -y[0] / p[0] * (p[0] * p[1] + p[0] * p[2]) - y[1] / p[1] * (-p[0] * p[1]) - y[2] / p[2] * (-p[0] * p[2])
    sym_zero(sp, line2 - dL[0], "second line = dL/dx1")
    line3 = -y[0] * (p[1] + p[2]) + y[1] * p[1] + y[2] * p[2]
    sym_nonzero(sp, line3 - line2, "third line")
    sym_zero(sp, (line3 - line2) - (y[1] * (p[1] - p[0]) + y[2] * (p[2] - p[0])), "size of the slip")


def _example001():
    """The post's worked derivative for probabilities (0.2, 0.3, 0.5) and label (0, 0, 1)."""
    return np.array([0.2, 0.3, -0.5])


@proof(
    id="softmax.example001",
    seed="001",
    location="§2, worked example",
    statement="probabilities (0.2, 0.3, 0.5), label (0, 0, 1): derivative (0.2, 0.3, -0.5)",
    verdict=HOLDS,
)
def test_softmax_example001(claim=_example001):
    r"""**numpy-layers post, §2, the worked example.**

    > 例如求得概率为 $(0.2, 0.3, 0.5)$, label 为 $(0, 0, 1)$, 则导数为 $(0.2, 0.3, -0.5)$.

    Derivation. $\partial L/\partial x = p - y = (0.2, 0.3, 0.5-1)$.

    Verdict: **holds**. Check: logits $\log p$ give these probabilities; the library gradient
    and FD at those logits equal $(0.2, 0.3, -0.5)$.
    """
    x = np.log(np.array([0.2, 0.3, 0.5]))
    y = np.array([[0.0], [0.0], [1.0]])
    expected = claim()
    assert_close("library gradient", SoftmaxCrossEntropy().gradient(x[:, None], y)[0], expected)
    assert_fd("FD", expected, lambda v: SoftmaxCrossEntropy().forward(v[:, None], y), x, gradient=True)


def _seed001_softmax_backward_as_written(out, g):
    """numpy-layers post §'单独的Softmax层' backward, as written: ``o * (I - o^T)`` then
    ``einsum('b c c, b c m -> b c m')``, whose repeated index takes the *diagonal* of J."""
    b, c = out.shape
    o = np.repeat(out[:, :, None], c, axis=2)  # o[b, i, r] = s_i
    J = o * (np.eye(c)[None] - o.transpose(0, 2, 1))  # J[b, i, j] = s_i (delta_ij - s_j)
    return np.einsum("bcc,bcm->bcm", J, g[..., None])[..., 0]


def _softmax_vjp(S, G):
    r"""The vector-Jacobian product $gJ = s \odot (g - (g\cdot s)\mathbf 1)$, row by row."""
    return S * (G - np.sum(G * S, axis=1, keepdims=True))


@proof(
    id="softmax.backward001",
    seed="001",
    location="§'单独的Softmax层' (separate softmax layer), backward",
    statement="self.grad = o * (I - o^T); return einsum(self.grad, grad[..., None], 'b c c, b c m -> b c m')",
    verdict=WRONG,
    corrected=r"$J$ is right, but the einsum with a repeated index uses only diag(J): "
    r"it must contract the full matrix, $g J = s \odot (g - (g\cdot s)\mathbf 1)$",
)
def test_softmax_backward001(seed=_seed001_softmax_backward_as_written, corrected=_softmax_vjp):
    r"""**numpy-layers post, the separate softmax layer's backward.**

    > ``o = repeat(self.output, 'b c -> b c r', r=c)``; ``self.grad = o * (I - rearrange(o, 'b c1 c2 -> b c2 c1'))``;
    > ``return einsum(self.grad, grad[..., None], 'b c c, b c m -> b c m')[..., 0]``.
    > (The forward is ``np.exp(x) / sum``, without the max shift; the code also has typos:
    > ``x_xep``, ``keep_dims``, undefined ``x`` and ``grad``.)

    Derivation. ``o * (I - o^T)`` has entries $s_i(\delta_{ij}-s_j)$: the Jacobian, correctly.
    But in an einsum a label repeated within one operand (``c c``) selects the diagonal, so the
    result is $g_i\, s_i(1-s_i)$: the off-diagonal terms $-s_i s_j g_j$ are lost. The
    vector-Jacobian product is $g J = s\odot(g - (g\cdot s)\mathbf{1})$ ($J$ is symmetric).

    Verdict: **wrong**. Check: the restatement (numpy einsum with the same subscripts) differs
    from the FD VJP by exactly $\max_i |s_i (g\cdot s - s_i g_i)|$; the corrected VJP and
    ``Softmax.vjp_batched`` match FD.
    """
    Xb = np.array([[0.3, -1.2, 0.8], [1.0, 0.2, -0.4]])
    G = np.array([[0.5, -1.0, 2.0], [1.5, 0.3, -0.7]])
    S = softmax(Xb)
    written = seed(S, G)
    numeric = np.stack([fd(lambda v, g=g: g @ softmax(v), x, gradient=True)[0] for x, g in zip(Xb, G)])
    assert_close("corrected VJP vs FD", corrected(S, G), numeric, atol=1e-8, rtol=1e-7)
    assert_close("library Softmax.vjp_batched", Softmax().vjp_batched(Xb, S, G), corrected(S, G))
    assert_differs(
        "as written vs FD",
        written,
        numeric,
        by=float(np.max(np.abs(S * (np.sum(G * S, axis=1, keepdims=True) - S * G)))),
        atol=1e-7,
    )


def _softmax_loss_code(x, y):
    """CS231n walkthrough ``softmax_loss`` (the same code in the numpy-layers post and the Made-With-ML MLP)."""
    N = x.shape[0]
    probs = np.exp(x - np.max(x, axis=1, keepdims=True))
    probs /= np.sum(probs, axis=1, keepdims=True)
    loss = -np.sum(np.log(probs[np.arange(N), y])) / N
    dx = probs.copy()
    dx[np.arange(N), y] -= 1
    dx /= N
    return loss, dx


@proof(
    id="softmax.loss_code_batch",
    seed="004",
    location="§4.1-4.2 softmax_loss (same code in numpy-layers post Softmax.forward and Made-With-ML MLP dscores)",
    statement=r"loss = $-\frac1N\sum_i \log S_{i,y_i}$; dx = (probs - onehot(y)) / N",
    verdict=HOLDS,
)
def test_softmax_loss_code_batch(claim=_softmax_loss_code):
    r"""**CS231n walkthrough ``softmax_loss``; numpy-layers post ``Softmax.forward`` (loss layer); Made-With-ML MLP ``dscores``.**

    > ``loss = -np.sum(np.log(probs[np.arange(N), y])) / N``; ``dx = probs.copy(); dx[np.arange(N), y] -= 1; dx /= N``.
    > numpy-layers post: "因为后面求导数都是直接np.sum而不是np.mean, 因此这里mean一次就可以了" (divide by N once here,
    > because the later layers sum over the batch).

    Derivation. $L = \frac1N\sum_i L_i$ with $L_i = -\log S_{i,y_i}$, and $L_i$ depends only on row $i$,
    so $\partial L/\partial x_{il} = \frac1N (S_{il} - [l = y_i])$. Dividing by $N$ once at the loss
    makes every later ``sum`` over the batch a mean: the README's batch convention ("reductions").

    Verdict: **holds**. Check: FD of the batch loss; ``SoftmaxCrossEntropy.forward_batched`` /
    ``gradient_batched`` equal the restated code.
    """
    X = np.array([[1.0, 1.0, 1.0, 2.0], [2.0, 2.0, 2.0, 3.0], [3.0, 3.0, 3.0, 5.0]])
    y = np.array([2, 0, 1])
    N = 3

    def code(x):
        return claim(x, y)

    loss, dx = code(X)
    assert_fd("dx vs FD", dx.reshape(1, -1), lambda v: code(v.reshape(N, 4))[0], X.reshape(-1), gradient=True)
    lib = SoftmaxCrossEntropy()
    assert abs(lib.forward_batched(X, y) - loss) < 1e-12
    assert_close("library gradient_batched", lib.gradient_batched(X, y), dx)


def _example004_printed():
    """The walkthrough's printed ``probs[np.arange(N), y]``."""
    return np.array([0.175, 0.096, 0.175])


def _example004_right():
    """What the indexing picks, to 3 decimals."""
    return np.array([0.175, 0.175, 0.096])


@proof(
    id="softmax.example004",
    seed="004",
    location="§4.1 worked example: probs, probs[np.arange(N), y], log",
    statement=r"probs rows (0.175,0.175,0.175,1/2.104), (…, 1/2.104), (0.096,…,1/1.405); with y=(2,0,1) "
    r"probs[arange(N), y] = (0.175, 0.096, 0.175) and log = (-1.743, -2.343, -1.743)",
    verdict=WRONG,
    corrected="probs[arange(N), y] = (0.175, 0.175, 0.096), log = (-1.743, -1.743, -2.343); "
    "the loss (their mean, negated, = 1.943) is unchanged",
)
def test_softmax_example004(seed=_example004_printed, corrected=_example004_right):
    r"""**CS231n walkthrough, §4.1, worked example.**

    > $x = [[1,1,1,2],[2,2,2,3],[3,3,3,5]]$, $y = [2, 0, 1]$; probs $= [[0.175, 0.175, 0.175, 1/2.104], \dots,
    > [0.096, 0.096, 0.096, 1/1.405]]$; ``probs[np.arange(N), y]`` $= [0.175, 0.096, 0.175]$, $\log = [-1.743, -2.343, -1.743]$.
    > Then ``dx`` has $-0.825$ and $-0.904$ at the label positions, divided by 3.

    Derivation. Row 0 of $x - \max$ is $(-1,-1,-1,0)$, $e^{-1}=0.368$, sum $2.104$, $0.368/2.104=0.175$;
    row 2 is $(-2,-2,-2,0)$, sum $1.406$, $0.135/1.406 = 0.096$. Picking (row 0, col 2), (row 1, col 0),
    (row 2, col 1) gives $(0.175, 0.175, 0.096)$: the source lists the last two in swapped order.
    The mean (the loss) does not depend on the order.

    Verdict: **wrong** (order of the picked entries; values and loss hold). Check: the numbers to
    3 decimals; the source's order differs from the indexing result.
    """
    X = np.array([[1.0, 1.0, 1.0, 2.0], [2.0, 2.0, 2.0, 3.0], [3.0, 3.0, 3.0, 5.0]])
    y = np.array([2, 0, 1])
    P = softmax(X)
    assert_close("probs to 3 decimals", np.round(P[:, :3], 3), [[0.175] * 3, [0.175] * 3, [0.096] * 3], atol=1e-12)
    assert_close("last column 1/sum", P[:, 3], 1 / np.array([2.104, 2.104, 1.406]), atol=5e-4)
    picked = P[np.arange(3), y]
    assert_close("picked, right order", np.round(picked, 3), corrected())
    assert_differs("source's order", np.round(picked, 3), seed(), by=0.079, atol=1e-9)
    assert_close("log", np.round(np.log(picked), 2), [-1.74, -1.74, -2.34])
    assert round(-np.mean(np.log(picked)), 3) == 1.943
    dx = P.copy()
    dx[np.arange(3), y] -= 1
    assert_close("dx label entries", np.round(dx[np.arange(3), y], 3), [-0.825, -0.825, -0.904])


def _appendix_line_coef(S, j, N):
    r"""The coefficient of $dx_{ij}$ in the appendix's fourth line: $\frac1N(1-S_{ij})$."""
    return (1 - S[j]) / N


def _appendix_right_coef(S, j, N):
    r"""Expanding the third line: $-\frac1N(1-S_{ij})$."""
    return -(1 - S[j]) / N


@proof(
    id="softmax.appendix004",
    seed="004",
    location="appendix 'Softmax 分类器梯度的证明过程'",
    statement=r"$dL_{ij} = \dots = -\frac1N(dx_{ij} - \frac{e^{x_{ij}}dx_{ij}+e^{x_{ik}}dx_{ik}}{\sum_l e^{x_{il}}}) "
    r"= \frac1N(1-S_{ij})dx_{ij} + \frac1N S_{ik}dx_{ik}$, hence $\partial L_{ij}/\partial x_{ij} = \frac1N(S_{ij}-1)$",
    verdict=WRONG,
    corrected=r"the line is $-\frac1N(1-S_{ij})dx_{ij} + \frac1N S_{ik}dx_{ik}$ (sign of the first term); "
    r"the conclusion $\frac1N(S_{ij}-1)$, $\frac1N S_{il}$ holds",
)
def test_softmax_appendix004(seed=_appendix_line_coef, corrected=_appendix_right_coef):
    r"""**CS231n walkthrough, appendix: the proof of the softmax gradient.**

    > $dL_{ij}=-\frac{1}{N}\left(dx_{ij} -\frac{e^{x_{ij}}dx_{ij}+e^{x_{ik}}dx_{ik}}{\sum_le^{x_{il}}} \right)
    > =\frac{1}{N}(1-S_{ij})dx_{ij} +\frac{1}{N}S_{ik}dx_{ik}$, then
    > $\frac{\partial L_{ij}}{\partial x_{ij}} = \frac{1}{N}(S_{ij}-1)$, $\frac{\partial L_{ij}}{\partial x_{il}} = \frac{1}{N}S_{il}$.
    > (Also §4.2: $dL = \sum_i[\frac1N(S_{iy_j}-1)dx_{iy_i} + \frac1N S_{il}dx_{il}]$, where $S_{iy_j}$ should read
    > $S_{iy_i}$ and the second term needs $\sum_{l\ne y_i}$.)

    Derivation. Expanding $-\frac1N(dx_{ij} - S_{ij}dx_{ij} - S_{ik}dx_{ik})$ gives
    $-\frac1N(1-S_{ij})dx_{ij} + \frac1N S_{ik}dx_{ik}$: the source drops the minus on the first term, then
    reads off the coefficient with the right sign. (The first line also writes $\sum_k e^{x_{ik}}/e^{x_{ik}}$
    for $\sum_k e^{x_{ik}}/e^{x_{ij}}$.)

    Verdict: **wrong** in one line; the final partial derivatives hold. Check: sympy; numeric:
    the coefficient in the source's line differs from FD by $\frac2N(1-S_{ij})$.
    """
    N = 2
    x = np.array([0.4, -0.3, 1.1])
    j = 1
    S = softmax(x)
    f = lambda v: -np.log(softmax(v)[j]) / N  # noqa: E731
    g = fd(f, x, gradient=True)[0]
    assert_close("final result", g, (S - np.eye(3)[j]) / N, atol=1e-8, rtol=1e-7)
    assert_differs("source's line coefficient", seed(S, j, N), g[j], by=2 * (1 - S[j]) / N, atol=1e-7)
    assert abs(corrected(S, j, N) - g[j]) < 1e-8, "the expanded line's coefficient is dL_ij/dx_ij"


@symbolic("softmax.appendix004")
def test_softmax_appendix004_symbolic():
    sp = require_sympy()
    E, S = _sym_softmax(sp, 3)
    N = sp.Symbol("N", positive=True)
    j = 0
    L = -sp.log(S[j]) / N
    dL = [sp.diff(L, e) * e for e in E]
    sym_zero(sp, dL[j] - (S[j] - 1) / N, "dL/dx_ij")
    sym_zero(sp, dL[1] - S[1] / N, "dL/dx_il")
    sym_nonzero(sp, dL[j] - (1 - S[j]) / N, "source's line coefficient")


def _softmax_whole(a):
    """The DLFS notes' overflow-safe ``softmax``: ``c = np.max(a); exp_a = np.exp(a - c); exp_a / np.sum(exp_a)``
    (one max and one sum over the **whole** array, also for a 2-D batch)."""
    e = np.exp(a - np.max(a))
    return e / np.sum(e)


def _seed002_softmax_with_loss_backward(x, t):
    """DLFS notes ``SoftmaxWithLoss``: ``y = softmax(x)``; backward ``batch_size = t.shape[0]; (y - t) / batch_size``."""
    return (_softmax_whole(x) - t) / t.shape[0]


def _with_loss_gradient(x, t):
    """The gradient of the layer's own forward, ``cross_entropy_error(softmax(x), t)`` (without its 1e-7):
    with the whole-array softmax, $\\partial E/\\partial x = ((\\sum t)\\,y - t)/N$, N = 1 for a 1-D ``t``."""
    N = 1 if t.ndim == 1 else t.shape[0]
    return (np.sum(t) * _softmax_whole(x) - t) / N


@proof(
    id="softmax.with_loss002",
    seed="002",
    location="§Softmax-with-Loss 层, backward (with the notes' softmax)",
    statement="self.y = softmax(x) (c = np.max(a); exp_a / np.sum(exp_a)); batch_size = self.t.shape[0]; "
    "dx = (self.y - self.t) / batch_size",
    verdict=WRONG,
    corrected="(y - t) / N is the gradient only with a row-wise softmax of a 2-D batch; the notes' softmax takes "
    "one max and one sum over the whole array, and then the gradient of the layer's forward is "
    "y - t/N for a 2-D one-hot batch (N, C); for a single 1-D one-hot t (C,) it is y - t, while "
    "t.shape[0] = C divides it by C",
)
def test_softmax_with_loss002(seed=_seed002_softmax_with_loss_backward, corrected=_with_loss_gradient):
    r"""**DLFS notes, ``SoftmaxWithLoss``, with the notes' own ``softmax``.**

    > ``def softmax(a): c = np.max(a); exp_a = np.exp(a - c); sum_exp_a = np.sum(exp_a); y = exp_a / sum_exp_a``;
    > ``self.y = softmax(x); self.loss = cross_entropy_error(self.y, self.t)``;
    > ``batch_size = self.t.shape[0]; dx = (self.y - self.t) / batch_size``.

    Derivation. The layer's forward is $E = -\frac1N\sum_{n,k} t_{nk}\log y_{nk}$ (``cross_entropy_error``,
    ignoring its $10^{-7}$), with $y$ the notes' ``softmax``. That softmax has no ``axis``: for a 2-D batch
    it normalises all $N\cdot C$ entries together, $y_{nk} = e^{x_{nk}}/\sum_{m,l}e^{x_{ml}}$, so
    $\partial E/\partial x_{nk} = \frac1N\big((\sum t)\,y_{nk} - t_{nk}\big) = y_{nk} - t_{nk}/N$ for one-hot rows;
    the backward's $(y-t)/N$ is the gradient only when $y$ is a **row-wise** softmax (each row summing to
    1). For a 1-D ``t``, ``cross_entropy_error`` reshapes to a batch of 1 (gradient $y - t$) while
    ``backward`` divides by ``t.shape[0]`` $= C$.

    Verdict: **wrong** (for the notes' softmax on a 2-D batch, and for 1-D input). Check: on a 2-D batch the
    written backward differs from FD of the layer's forward (by more than 0.1 here) and the corrected
    gradient matches FD; with a row-wise softmax $(y-t)/N$ does match FD (the condition); for one 1-D sample
    the written value is $C$ times too small.
    """
    x = np.array([[0.3, -1.2, 0.8], [1.0, 0.2, -0.4]])
    t = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])

    def forward(v, tt):  # cross_entropy_error(softmax(x), t) without the 1e-7 (see loss.ce_delta002)
        y = _softmax_whole(v.reshape(tt.shape))
        return -np.sum(tt * np.log(y)) / (1 if tt.ndim == 1 else tt.shape[0])

    true = fd(lambda v: forward(v, t), x.reshape(-1), gradient=True).reshape(x.shape)
    assert_fd(
        "2-D batch: corrected", corrected(x, t).reshape(1, -1), lambda v: forward(v, t), x.reshape(-1), gradient=True
    )
    written = seed(x, t)
    assert_differs(
        "2-D batch: written vs the gradient of its forward",
        written,
        true,
        by=float(np.max(np.abs(written - corrected(x, t)))),
        atol=1e-7,
    )
    assert np.max(np.abs(written - true)) > 0.1
    # the condition: with a row-wise softmax, (y - t) / N is the gradient
    rowwise = lambda v: -np.sum(t * np.log(softmax(v.reshape(x.shape)))) / x.shape[0]  # noqa: E731
    assert_fd(
        "2-D, row-wise softmax: (y - t)/N", (softmax(x) - t).reshape(1, -1) / 2, rowwise, x.reshape(-1), gradient=True
    )
    x1, t1 = x[0], t[0]
    true1 = fd(lambda v: forward(v, t1), x1, gradient=True)[0]
    assert_close("1-D: corrected = y - t", corrected(x1, t1), true1, atol=1e-8, rtol=1e-7)
    assert_differs(
        "1-D: written = (y - t)/C", seed(x1, t1), true1, by=float(np.max(np.abs(true1))) * (1 - 1 / 3), atol=1e-7
    )
