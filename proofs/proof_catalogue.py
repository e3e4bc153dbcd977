r"""The library's own statements for layer normalisation, the multiclass SVM (hinge) loss and the binary
cross-entropies. No seed states them (none of the five documents has layer norm, a hinge loss or a binary
cross-entropy), so each entry quotes the library's docstring and checks it: sympy at small sizes, finite
differences, and the library's reference and batched paths."""

from __future__ import annotations

import numpy as np

from jacobian_nn.layernorm import LayerNorm
from jacobian_nn.losses import BinaryCrossEntropy, MulticlassSVM, SigmoidBinaryCrossEntropy

from ._helpers import assert_close, assert_differs, assert_fd, fd, sym_zero
from ._registry import HOLDS, LIBRARY, proof, require_sympy, symbolic

# --------------------------------------------------------------------------- layer norm


def _layernorm_dx(x, gamma, g, eps):
    r"""The stated backward: $dx = \frac{1}{m\sigma}\,(m\hat g - \sum_j \hat g_j - \hat x\sum_j \hat g_j\hat x_j)$,
    $\hat g = \gamma \odot g$, for one sample ``x`` ``(m,)``."""
    m = x.size
    d = x - x.mean()
    sigma = np.sqrt(np.mean(d * d) + eps)
    xh = d / sigma
    gh = gamma * g
    return (m * gh - gh.sum() - xh * (gh * xh).sum()) / (m * sigma)


@proof(
    id="layernorm.backward",
    seed=LIBRARY,
    location="jacobian_nn/layernorm.py, module docstring (reference Jacobian and batched VJP)",
    statement=r"$dy/dx = \operatorname{diag}(\gamma)\frac{1}{\sigma}(I_m - \mathbf 1\mathbf 1^\top/m - \hat x\hat x^\top/m)$; "
    r"$dx = \frac{1}{m\sigma}(m\hat g - \sum\hat g - \hat x\sum(\hat g\odot\hat x))$, $\hat g = \gamma\odot g$",
    verdict=HOLDS,
)
def test_layernorm_backward(claim=_layernorm_dx):
    r"""**jacobian_nn's layer normalisation (CS231n's ``layernorm_backward``).** No seed states it: the
    five documents have batch norm, not layer norm; this entry checks the library's own derivation.

    > ``dy/dx = diag(gamma) (1/sigma) (I_m - 1 1^T / m - x_hat x_hat^T / m)     (m, m)``
    > ``dX = (1 / (m sigma_k)) (m H - rowsum(H) - x_hat * rowsum(H * x_hat))    (N, m)``, ``H = G * gamma``

    Derivation. One sample $x\in\mathbb R^m$: $\mu = \frac1m\mathbf 1^\top x$, $d = x - \mu\mathbf 1 =
    (I - \mathbf 1\mathbf 1^\top/m)x$, $\sigma^2 = \frac1m d^\top d + \epsilon$, $\hat x = d/\sigma$,
    $y = \gamma\odot\hat x + \beta$. Then $\partial d/\partial x = I - \mathbf 1\mathbf 1^\top/m$ and, since
    $\mathbf 1^\top d = 0$, $\partial\sigma/\partial x = \frac{1}{m\sigma}d^\top = \frac1m\hat x^\top$. So
    $\partial\hat x/\partial x = \frac1\sigma(I - \mathbf 1\mathbf 1^\top/m) - \frac{d}{\sigma^2}\frac1m\hat x^\top
    = \frac1\sigma(I - \mathbf 1\mathbf 1^\top/m - \hat x\hat x^\top/m)$ and $dy/dx = \operatorname{diag}(\gamma)$
    times that. A row $g = \partial L/\partial y$ gives $g\,dy/dx = \frac1\sigma(\hat g - \frac1m(\mathbf 1^\top\hat g)
    \mathbf 1^\top - \frac1m(\hat g^\top\hat x)\hat x^\top)$ with $\hat g = \gamma\odot g$, which is the stated $dx$
    (the Jacobian is symmetric up to the $\operatorname{diag}(\gamma)$ on the left, so the row form reads the same).

    Verdict: **holds** for every $x$ and $\epsilon > 0$. Checks: sympy at $m = 3$ (every entry a symbol);
    finite differences of $g\cdot y(x)$; ``LayerNorm.backward`` (reference) and ``LayerNorm.backward_batched``
    on a batch of three samples, including a nearly constant one.
    """
    r = np.random.default_rng(41)
    m = 5
    gamma, beta = r.normal(size=m) + 1.0, r.normal(size=m)
    X = np.vstack([r.normal(size=m), 3.0 * r.normal(size=m) - 2.0, 1e3 + 1e-3 * r.normal(size=m)])
    G = r.normal(size=X.shape)
    layer = LayerNorm(m, gamma=gamma, beta=beta)
    for k, (x, g) in enumerate(zip(X, G)):
        dx = claim(x, gamma, g, layer.eps)
        if k < 2:  # finite differences resolve x at its own scale; the near-constant row is for the paths
            assert_fd(
                f"layer norm dx, sample {k}",
                dx,
                lambda v, g=g: float(g @ layer.forward(v[:, None])[0][:, 0]),
                x,
                gradient=True,
            )
        ref = layer.backward(g[None], layer.forward(x[:, None])[1])[0][0]
        assert_close(f"LayerNorm.backward, sample {k}", ref, dx, atol=1e-12 * float(np.abs(dx).max()), rtol=1e-9)
    dX = layer.backward_batched(G, layer.forward_batched(X)[1])[0]
    want = np.vstack([claim(x, gamma, g, layer.eps) for x, g in zip(X, G)])
    assert_close("LayerNorm.backward_batched", dX, want, atol=1e-12 * float(np.abs(want).max()), rtol=1e-9)


@symbolic("layernorm.backward")
def test_layernorm_backward_symbolic():
    sp = require_sympy()
    m = 3
    x = sp.symbols("x0:3", real=True)
    g = sp.symbols("g0:3", real=True)
    c = sp.symbols("c0:3", real=True)  # gamma
    eps = sp.symbols("epsilon", positive=True)
    mu = sum(x) / m
    d = [xi - mu for xi in x]
    sigma = sp.sqrt(sum(di**2 for di in d) / m + eps)
    xh = [di / sigma for di in d]
    L = sum(g[i] * c[i] * xh[i] for i in range(m))  # g . y, beta drops out
    gh = [c[i] * g[i] for i in range(m)]
    s1, s2 = sum(gh), sum(gh[i] * xh[i] for i in range(m))
    stated = [(m * gh[j] - s1 - xh[j] * s2) / (m * sigma) for j in range(m)]
    sym_zero(sp, sp.Matrix([sp.diff(L, x[j]) - stated[j] for j in range(m)]), "layer norm dx")


# --------------------------------------------------------------------------- multiclass SVM (hinge)


def _svm_gradient(s, y, delta=1.0):
    r"""The stated gradient: $\partial L/\partial s_j = 1[m_j > 0]$ ($j\ne y$), $\partial L/\partial s_y =
    -\sum_{j\ne y}1[m_j>0]$, $m_j = s_j - s_y + \Delta$ (a margin of exactly 0 counts as inactive)."""
    margins = s - s[y] + delta
    margins[y] = 0.0
    active = (margins > 0).astype(float)
    active[y] = -active.sum()
    return active


def _svm_loss(s, y, delta=1.0):
    margins = s - s[y] + delta
    margins[y] = 0.0
    return float(np.maximum(margins, 0.0).sum())


@proof(
    id="loss.svm",
    seed=LIBRARY,
    location="jacobian_nn/losses.py, MulticlassSVM",
    statement=r"$L = \sum_{j\ne y}\max(0, s_j - s_y + \Delta)$; $\partial L/\partial s_j = 1[m_j > 0]$, "
    r"$\partial L/\partial s_y = -\sum_{j\ne y}1[m_j > 0]$; at $m_j = 0$ the term contributes nothing",
    verdict=HOLDS,
)
def test_svm(claim=_svm_gradient):
    r"""**jacobian_nn's multiclass SVM (hinge) loss (CS231n's ``svm_loss``, $\Delta = 1$).** No seed states
    it: none of the five documents has a hinge loss; this entry checks the library's own statement.

    > ``margin_j = s_j - s_y + delta  (j != y)          L = sum_{j != y} max(0, margin_j)``
    > ``dL/ds_j  = 1[margin_j > 0]    (j != y)          dL/ds_y = -sum_{j != y} 1[margin_j > 0]``
    > **Kink**: a margin of exactly 0 contributes nothing to the gradient (``1[0 > 0] = 0``, CS231n's
    > ``margins > 0``) [...]: the one-sided derivative along ``s_j`` from below, and along ``s_y`` from above.

    Derivation. Each term $\max(0, m_j)$, $m_j = s_j - s_y + \Delta$, has derivative $1[m_j > 0]$ with
    respect to $m_j$ away from $m_j = 0$; $\partial m_j/\partial s_j = 1$ and $\partial m_j/\partial s_y = -1$,
    so $\partial L/\partial s_j = 1[m_j>0]$ and $\partial L/\partial s_y = -\sum_{j\ne y}1[m_j>0]$. At
    $m_j = 0$ the hinge has one-sided derivatives 0 (from below) and 1 (from above); the library takes the
    $t\le 0$ branch, 0, as relu'(0) = 0. Along $s_j$, "from below" is $m_j \uparrow 0$: the left derivative
    in $s_j$ is 0. Along $s_y$, $m_j$ decreases as $s_y$ grows: the right derivative in $s_y$ sees $m_j \le 0$,
    so the term adds 0 there too.

    Verdict: **holds** (a convention at the kink, stated in the docstring, which is part of the statement).
    Checks: sympy (piecewise-linear: $\max$ written as $\frac{t + |t|}{2}$, derivative $\frac{1 + \operatorname{sign} t}{2}$ away
    from 0); central differences away from the kink; at a margin of exactly 0 the left difference in $s_j$ and
    the right difference in $s_y$; ``MulticlassSVM`` on both paths.
    """
    s = np.array([0.3, 1.1, -0.4, 0.9])
    for y in range(4):
        assert_fd(f"svm gradient, y = {y}", claim(s, y), lambda v, y=y: _svm_loss(v, y), s, gradient=True)
    # a margin of exactly 0: class 1 against y = 0 (s_1 - s_0 + 1 = 0)
    sk = np.array([0.5, -0.5, -2.0, 0.25])
    assert sk[1] - sk[0] + 1.0 == 0.0
    g = claim(sk, 0)
    along_j = lambda v: _svm_loss(np.array([sk[0], v[0], sk[2], sk[3]]), 0)  # noqa: E731
    along_y = lambda v: _svm_loss(np.array([v[0], sk[1], sk[2], sk[3]]), 0)  # noqa: E731
    assert_fd("at the kink, along s_j from below", g[1:2], along_j, sk[1:2], gradient=True, step_direction=-1)
    assert_fd("at the kink, along s_y from above", g[0:1], along_y, sk[0:1], gradient=True, step_direction=1)
    above = fd(along_j, sk[1:2], gradient=True, step_direction=1)[0, 0]
    assert_differs("the other side along s_j (1, the t >= 0 branch)", g[1], above, by=1.0, atol=1e-6)
    lib = MulticlassSVM()
    for v, y in ((s, 2), (sk, 0)):
        assert_close("MulticlassSVM (reference)", lib.gradient(v[:, None], y)[0], claim(v, y))
    S = np.vstack([s, sk])
    G = lib.gradient_batched(S, np.array([2, 0]))
    assert_close("MulticlassSVM (batched, mean over N = 2)", G, np.vstack([claim(s, 2), claim(sk, 0)]) / 2)


@symbolic("loss.svm")
def test_svm_symbolic():
    sp = require_sympy()
    s = sp.symbols("s0:3", real=True)
    y, delta = 0, 1

    def hinge(t):
        return (t + sp.Abs(t)) / 2

    def active(t):  # 1[t > 0] away from t = 0
        return (1 + sp.sign(t)) / 2

    margins = {j: s[j] - s[y] + delta for j in range(3) if j != y}
    L = sum(hinge(t) for t in margins.values())
    stated = [-sum(active(t) for t in margins.values())] + [active(margins[j]) for j in (1, 2)]
    sym_zero(sp, sp.Matrix([sp.diff(L, s[j]).rewrite(sp.sign) - stated[j] for j in range(3)]), "svm gradient")


# --------------------------------------------------------------------------- binary cross-entropy


def _bce_gradient(p, y):
    r"""The stated $\partial L/\partial p_i = -y_i/p_i + (1-y_i)/(1-p_i)$."""
    return -y / p + (1 - y) / (1 - p)


@proof(
    id="loss.bce",
    seed=LIBRARY,
    location="jacobian_nn/losses.py, BinaryCrossEntropy",
    statement=r"$L = -\sum_i[y_i\log p_i + (1-y_i)\log(1-p_i)]$, $\partial L/\partial p_i = -y_i/p_i + (1-y_i)/(1-p_i)$",
    verdict=HOLDS,
)
def test_bce(claim=_bce_gradient):
    r"""**jacobian_nn's binary cross-entropy on probabilities (deeplearning.ai's logistic-regression cost).**
    No seed states it: the five documents have the multiclass cross-entropy only; this entry checks the
    library's own statement.

    > ``L = -sum_i [y_i log p_i + (1 - y_i) log(1 - p_i)]``
    > ``dL/dp_i = -y_i / p_i + (1 - y_i) / (1 - p_i)           (a row (1, m))``

    Derivation. Term by term, $\frac{d}{dp}[-y\log p - (1-y)\log(1-p)] = -\frac yp + \frac{1-y}{1-p}$ on
    $0 < p < 1$, for any label $y\in[0,1]$ (a bool label is 0 or 1). It vanishes at $p = y$, the minimum.

    Verdict: **holds** on $0 < p < 1$. Checks: sympy; finite differences at hard and soft labels;
    ``BinaryCrossEntropy`` on both paths (bool labels included).
    """
    p = np.array([0.2, 0.7, 0.55, 0.9])
    for y in (np.array([1.0, 0.0, 1.0, 0.0]), np.array([0.3, 0.9, 0.5, 1.0])):
        f = lambda v, y=y: BinaryCrossEntropy().forward(v[:, None], y[:, None])  # noqa: E731
        assert_fd("BCE gradient", claim(p, y), f, p, gradient=True, initial_step=1e-3)
        assert_close(
            "BinaryCrossEntropy (reference)", BinaryCrossEntropy().gradient(p[:, None], y[:, None])[0], claim(p, y)
        )
    yb = np.array([True, False, True, True])
    P = np.vstack([p, p[::-1]])
    Yb = np.vstack([yb, ~yb])
    G = BinaryCrossEntropy().gradient_batched(P, Yb)
    assert_close(
        "BinaryCrossEntropy (batched, bool labels)", G, np.vstack([claim(p, yb * 1.0), claim(p[::-1], ~yb * 1.0)]) / 2
    )


@symbolic("loss.bce")
def test_bce_symbolic():
    sp = require_sympy()
    p = sp.symbols("p", positive=True)
    y = sp.symbols("y", real=True)
    L = -(y * sp.log(p) + (1 - y) * sp.log(1 - p))
    sym_zero(sp, sp.diff(L, p) - (-y / p + (1 - y) / (1 - p)), "dL/dp")


def _sigmoid_bce(z, y):
    r"""The stated fused pair: $L = \max(z,0) - yz + \log(1 + e^{-|z|})$ and $dL/dz = (1-y)\sigma(z) - y\sigma(-z)$,
    each $\sigma(\pm z)$ written as $1/(1+e)$ or $e/(1+e)$ with $e = e^{-|z|}$."""
    e = np.exp(-np.abs(z))
    near, far = 1 / (1 + e), e / (1 + e)
    s_pos, s_neg = np.where(z >= 0, near, far), np.where(z >= 0, far, near)
    return np.maximum(z, 0) - y * z + np.log1p(e), (1 - y) * s_pos - y * s_neg


@proof(
    id="loss.sigmoid_bce",
    seed=LIBRARY,
    location="jacobian_nn/losses.py, SigmoidBinaryCrossEntropy",
    statement=r"$L = \max(z,0) - yz + \log(1+e^{-|z|}) = \mathrm{BCE}(\sigma(z), y)$; "
    r"$dL/dz = \sigma(z) - y = (1-y)\sigma(z) - y\sigma(-z)$, stable for any finite $z$",
    verdict=HOLDS,
)
def test_sigmoid_bce(claim=_sigmoid_bce):
    r"""**jacobian_nn's fused sigmoid + binary cross-entropy from logits (deeplearning.ai's logistic regression
    and planar networks).** No seed states it: this entry checks the library's own statement.

    > ``L = sum_i [max(z_i, 0) - y_i z_i + log(1 + exp(-|z_i|))]      (= BCE(sigmoid(z), y))``
    > ``dL/dz_i = sigmoid(z_i) - y_i = (1 - y_i) sigmoid(z_i) - y_i sigmoid(-z_i)``

    Derivation. With $\sigma(z) = 1/(1+e^{-z})$: $-\log\sigma(z) = \log(1+e^{-z})$ and $-\log(1-\sigma(z)) =
    -\log\sigma(-z) = z + \log(1+e^{-z})$, so $\mathrm{BCE} = (1-y)z + \log(1+e^{-z})$. For $z \ge 0$ that is
    $z - yz + \log(1+e^{-|z|})$; for $z < 0$, $\log(1+e^{-z}) = -z + \log(1+e^{z})$ gives $-yz + \log(1+e^{-|z|})$:
    both are $\max(z,0) - yz + \log(1+e^{-|z|})$, whose exponent is never positive (no overflow). Differentiating
    $(1-y)z + \log(1+e^{-z})$: $(1-y) - \sigma(-z) = \sigma(z) - y$, and with $1 = \sigma(z) + \sigma(-z)$ this is
    $(1-y)\sigma(z) - y\sigma(-z)$: for a 0/1 label one of the two terms, never a difference of nearly equal
    numbers. At $z = 40$, $y = 1$: $-\sigma(-40) \approx -4.2\times10^{-18}$, which $\sigma(40) - 1$ rounds
    to 0.

    Verdict: **holds** for every finite $z$. Checks: sympy for $z > 0$ and $z < 0$ (the loss against BCE of
    the sigmoid, the gradient against the derivative); finite differences; the stable gradient at $z = \pm40$
    against $e^{-40}/(1+e^{-40})$ to 4 ulp where the naive form loses every digit; ``SigmoidBinaryCrossEntropy``
    on both paths.
    """
    z = np.array([-3.0, -0.4, 0.0, 0.8, 5.0])
    for y in (np.array([1.0, 0.0, 1.0, 0.0, 1.0]), np.array([0.25, 0.5, 0.75, 1.0, 0.0])):
        L, g = claim(z, y)
        sig = 1 / (1 + np.exp(-z))
        assert_close("loss = BCE(sigmoid(z), y)", L, -(y * np.log(sig) + (1 - y) * np.log1p(-sig)))
        assert_fd("dL/dz", g, lambda v, y=y: float(claim(v, y)[0].sum()), z, gradient=True)
        lib = SigmoidBinaryCrossEntropy()
        assert_close("SigmoidBinaryCrossEntropy (reference)", lib.gradient(z[:, None], y[:, None])[0], g)
        assert_close("SigmoidBinaryCrossEntropy (batched)", lib.gradient_batched(z[None], y[None])[0], g)
    # saturation: the stated form keeps the tail digits
    zt, yt = np.array([40.0, -40.0]), np.array([1.0, 0.0])
    _, gt = claim(zt, yt)
    tail = np.exp(-40.0) / (1 + np.exp(-40.0))
    assert_close("tail at |z| = 40", gt, np.array([-tail, tail]), atol=0.0, rtol=4 * np.finfo(float).eps)
    naive = 1 / (1 + np.exp(-zt)) - yt
    assert_differs("naive sigma(z) - y at z = 40, y = 1", naive[0] / tail, -1.0, by=1.0, atol=1e-12)
    Lbig, _ = claim(np.array([-1000.0]), np.array([1.0]))
    assert Lbig[0] == 1000.0, "z = -1000 with label 1: the loss is 1000, finite"


@symbolic("loss.sigmoid_bce")
def test_sigmoid_bce_symbolic():
    sp = require_sympy()
    y = sp.symbols("y", real=True)
    for z in (sp.symbols("z", positive=True), -sp.symbols("w", positive=True)):
        sig = 1 / (1 + sp.exp(-z))
        bce = -(y * sp.log(sig) + (1 - y) * sp.log(1 - sig))
        stable = sp.Max(z, 0) - y * z + sp.log(1 + sp.exp(-sp.Abs(z)))
        sym_zero(sp, sp.expand_log(sp.simplify(bce - stable), force=True), "stable loss")
        t = sp.symbols("t", real=True)
        bce_t = -(y * sp.log(1 / (1 + sp.exp(-t))) + (1 - y) * sp.log(1 - 1 / (1 + sp.exp(-t))))
        sym_zero(sp, (sp.diff(bce_t, t) - (1 / (1 + sp.exp(-t)) - y)).subs(t, z), "dL/dz")
        sym_zero(sp, (1 - y) * sig - y / (1 + sp.exp(z)) - (sig - y), "stable gradient")
