r"""Optimiser update rules: SGD, momentum (the DLFS notes and CS231n walkthrough), AdaGrad (DLFS notes), checked against
restatements of the sources' code, sympy, and :mod:`jacobian_nn.optimizers`."""

from __future__ import annotations

import numpy as np

from jacobian_nn.optimizers import SGD, AdaGrad, Momentum

from ._helpers import assert_close, assert_differs, assert_raises, sym_zero
from ._registry import CONVENTION, HOLDS, WRONG, proof, require_sympy, symbolic

W0 = np.array([[0.5, -1.0], [2.0, 0.25]])
GRADS = [np.array([[0.1, -0.2], [0.3, 0.05]]), np.array([[-0.4, 0.1], [0.2, 0.2]]), np.array([[0.0, 0.3], [-0.1, 0.6]])]


def _library_steps(opt, grads):
    """Run a library optimiser on one parameter array; return the parameter after each step."""
    params = [{"W": W0.copy()}]
    state = opt.init_state(params)
    out = []
    for g in grads:
        steps, state = opt.step(params, [{"W": g}], state)
        params = [{"W": params[0]["W"] + steps[0]["W"]}]
        out.append(params[0]["W"])
    return out


def _sgd002_literal(w, lr, g):
    r"""$W \leftarrow W \leftarrow \eta\,\partial L/\partial W$ read literally: W becomes $\eta g$."""
    return lr * g


def _sgd002_right(w, lr, g):
    r"""$W - \eta g$."""
    return w - lr * g


@proof(
    id="opt.sgd002",
    seed="002",
    location="§Trick, SGD",
    statement=r"$W \leftarrow W \leftarrow \eta\frac{\partial L}{\partial W}$; code: params[key] -= self.lr * grads[key]",
    verdict=WRONG,
    corrected=r"$W \leftarrow W - \eta\frac{\partial L}{\partial W}$ (what the code does)",
)
def test_sgd002(seed=_sgd002_literal, corrected=_sgd002_right):
    r"""**DLFS notes, SGD.**

    > $W \leftarrow W \leftarrow \eta \frac{\partial{L}}{\partial{W}}$; ``params[key] -= self.lr * grads[key]``.

    Derivation. The second arrow is a typo for a minus sign: read literally, $W$ is replaced by
    $\eta\,\partial L/\partial W$. Gradient descent steps against the gradient: $W - \eta g$. For small
    $\eta$ and $g\ne0$, $L(W - \eta g) = L(W) - \eta\|g\|^2 + O(\eta^2) < L(W)$.

    Verdict: **wrong** (prose typo; code holds). Check: the restated code and ``SGD`` give $W - \eta g$;
    the literal prose differs by $\max|W - \eta g - \eta g|$.
    """
    lr = 0.1
    code = W0.copy()
    code -= lr * GRADS[0]
    assert_close("library SGD", _library_steps(SGD(lr), GRADS[:1])[0], code)
    assert_close("W - eta g", code, corrected(W0, lr, GRADS[0]))
    literal = seed(W0, lr, GRADS[0])
    assert_differs("literal prose", literal, code, by=float(np.max(np.abs(W0 - 2 * lr * GRADS[0]))))


def _any_small_step(eta, lam_max):
    """Read without its condition: every step decreases the loss."""
    return True


def _step_bound(eta, lam_max):
    r"""For an L-smooth loss: a step decreases (never increases) it when $\eta \le 2/L$."""
    return eta <= 2 / lam_max


@proof(
    id="opt.sgd004",
    seed="004",
    location="§6.1 sgd(w, dw, config)",
    statement="w -= config['learning_rate'] * dw; return w, config; 'as long as the learning rate is low enough, "
    "[full-batch descent] always makes non-negative progress on the loss'",
    verdict=CONVENTION,
    corrected=r"the rule holds, and for an $L$-smooth loss a step with $0 < \eta \le 2/L$ never increases it "
    r"(larger steps can); the update is in place: the caller's w is modified and returned",
)
def test_sgd004(seed=_any_small_step, corrected=_step_bound):
    r"""**CS231n walkthrough, ``sgd``.**

    > ``w -= config['learning_rate'] * dw``; ``return w, config``; "只要学习率足够低,总是能在损失函数上得到非负的进展".

    Derivation. For $L$ with $L$-Lipschitz gradient (constant $\lambda_{\max}$ for a quadratic),
    $f(w - \eta g) \le f(w) - \eta(1 - \frac{\eta\lambda_{\max}}{2})\|g\|^2$, which is $\le f(w)$ for $\eta\le 2/\lambda_{\max}$.
    For a quadratic the step multiplies each eigencomponent by $1-\eta\lambda$, so $\eta > 2/\lambda_{\max}$
    increases the loss. ``w -= ...`` writes into the array that was passed in.

    Verdict: **holds under a stated convention** (full batch, $\eta \le 2/\lambda_{\max}$; in-place).
    Check: a quadratic with $\lambda_{\max} = 4$: $\eta = 0.45$ decreases $f$, $\eta = 0.55$ increases it; the
    restated update returns the same array object it was given; ``SGD`` matches the rule.
    """
    A = np.diag([4.0, 1.0])
    f = lambda w: 0.5 * w @ A @ w  # noqa: E731
    w = np.array([1.0, 1.0])
    for eta in (0.45, 0.55):
        new = w - eta * (A @ w)
        assert (f(new) <= f(w)) == corrected(eta, 4.0), (eta, f(new), f(w))
    assert seed(0.55, 4.0) != (f(w - 0.55 * (A @ w)) <= f(w)), "without the bound, eta = 0.55 would count as progress"

    def sgd(w, dw, lr):
        w -= lr * dw
        return w

    arg = W0.copy()
    out = sgd(arg, GRADS[0], 0.1)
    assert out is arg and not np.array_equal(arg, W0)
    assert_close("library SGD", _library_steps(SGD(0.1), GRADS[:1])[0], out)


def _momentum_code(grads, lr, mu):
    """The DLFS notes and CS231n walkthrough: ``v = mu * v - lr * g``; ``w = w + v`` (v starts at zeros)."""
    w, v, out = W0.copy(), np.zeros_like(W0), []
    for g in grads:
        v = mu * v - lr * g
        w = w + v
        out.append(w)
    return out


@proof(
    id="opt.momentum",
    seed="004",
    location="§6.1 sgd_momentum and the momentum-theorem derivation; DLFS notes §Momentum",
    statement=r"$p_1 = \mu p_0 - a\nabla L$; $v \leftarrow \alpha v - \eta\frac{\partial L}{\partial W}$, "
    r"$W \leftarrow W + v$; 'Setting momentum = 0 reduces to sgd'",
    verdict=HOLDS,
)
def test_momentum(claim=_momentum_code):
    r"""**CS231n walkthrough ``sgd_momentum`` and its physical derivation; DLFS notes ``Momentum``.**

    > CS231n walkthrough: $F\,dt = m\,dv$ gives $p_1 = p_0 - a\nabla L$, with decay $p_1=\mu p_0-a\nabla L$;
    > ``v = config["momentum"] * v - config["learning_rate"] * dw``; ``next_w = w + v``; "Setting momentum = 0 reduces to sgd".
    > DLFS notes: $v \leftarrow \alpha v - \eta \frac{\partial L}{\partial W}$, $W \leftarrow W + v$; the same code.

    Derivation. Unrolling from $v_0 = 0$: $v_t = -\eta\sum_{k=1}^t \mu^{t-k}g_k$ and
    $W_t = W_0 + \sum_{s\le t} v_s$. With $\mu = 0$, $v_t = -\eta g_t$: SGD.

    Verdict: **holds**. Check: sympy (unrolled form, 3 steps, symbolic $\mu,\eta,g_k$); the restated code equals
    ``Momentum`` step by step; $\mu = 0$ equals ``SGD``.
    """
    lr, mu = 0.1, 0.9
    code = claim(GRADS, lr, mu)
    for a, b in zip(_library_steps(Momentum(lr, mu), GRADS), code):
        assert_close("library Momentum", a, b)
    v3 = -lr * sum(mu ** (3 - k) * GRADS[k - 1] for k in (1, 2, 3))
    assert_close("unrolled v_3", code[2] - code[1], v3)
    for a, b in zip(claim(GRADS, lr, 0.0), _library_steps(SGD(lr), GRADS)):
        assert_close("mu = 0 is SGD", a, b)


@symbolic("opt.momentum")
def test_momentum_symbolic():
    sp = require_sympy()
    mu, eta = sp.symbols("mu eta", positive=True)
    g = sp.symbols("g1:4", real=True)
    v = 0
    for t in range(1, 4):
        v = mu * v - eta * g[t - 1]
        sym_zero(sp, v + eta * sum(mu ** (t - k) * g[k - 1] for k in range(1, t + 1)), f"v_{t}")


def _velocity_is_average(m, lr, mu):
    """The docstring's claim: the velocity *is* a moving average of the gradients."""
    return m


def _velocity_scaled(m, lr, mu):
    r"""What it is: $-\frac{\eta}{1-\mu}m_t$."""
    return -lr / (1 - mu) * m


@proof(
    id="opt.velocity004",
    seed="004",
    location="§6.1 sgd_momentum docstring, 'velocity'",
    statement="velocity: a numpy array ... used to store a moving average of the gradients",
    verdict=WRONG,
    prose=True,
    corrected=r"$v_t = -\eta\sum_k\mu^{t-k}g_k = -\frac{\eta}{1-\mu}m_t$ with $m_t = (1-\mu)\sum_k\mu^{t-k}g_k$ the "
    r"exponential moving average started at 0: the velocity is the average scaled by $-\eta/(1-\mu)$ "
    r"(a step, pointing against the gradients), not an average of them",
)
def test_velocity004(seed=_velocity_is_average, corrected=_velocity_scaled):
    r"""**CS231n walkthrough, what the velocity stores.**

    > "velocity: A numpy array of the same shape as w and dw used to store a moving average of the gradients."

    Derivation. An exponential moving average $m_t = \mu m_{t-1} + (1-\mu)g_t$ ($m_0=0$) has weights summing to
    $1-\mu^t$. The velocity $v_t = \mu v_{t-1} - \eta g_t$ is $-\frac{\eta}{1-\mu}m_t$: the average scaled by
    $-\eta/(1-\mu)$ ($= -10\eta$ for $\mu = 0.9$).

    The words "a moving average of the gradients" name a different quantity: an average of the gradients
    points along them and has their scale; the velocity points against them and is $10\eta$ times larger.
    Making the sentence true needs words changed ("minus $\eta/(1-\mu)$ times a moving average").

    Verdict: **wrong** (prose: a mislabelled quantity; the code is right). Check: sympy over 3 steps;
    numerically, the velocity equals $-\eta/(1-\mu)$ times the EMA and differs from the EMA itself.
    """
    lr, mu = 0.1, 0.9
    v, m = np.zeros_like(W0), np.zeros_like(W0)
    for g in GRADS:
        v = mu * v - lr * g
        m = mu * m + (1 - mu) * g
    assert_close("v = -eta/(1-mu) m", v, corrected(m, lr, mu))
    assert_differs("v is not the average itself", v, seed(m, lr, mu), atol=1e-6)


@symbolic("opt.velocity004")
def test_velocity004_symbolic():
    sp = require_sympy()
    mu = sp.Symbol("mu", positive=True)
    eta = sp.Symbol("eta", positive=True)
    g = sp.symbols("g1:4", real=True)
    v = m = 0
    for gt in g:
        v = mu * v - eta * gt
        m = mu * m + (1 - mu) * gt
    sym_zero(sp, v + eta / (1 - mu) * m, "v + eta/(1-mu) m")


def _seed002_adagrad_as_written(params, grads, h, lr=0.01):
    """DLFS notes ``AdaGrad.update`` as written: ``for key in params.items(): self.h[key] += ...``."""
    for key in params.items():
        h[key] += grads[key] * grads[key]
        params[key] -= lr * grads[key] / (np.sqrt(h[key]) + 1e-7)


def _adagrad_keys(params, grads, h, lr=0.01):
    """The loop over ``params.keys()``."""
    for key in params.keys():
        h[key] += grads[key] * grads[key]
        params[key] -= lr * grads[key] / (np.sqrt(h[key]) + 1e-7)


@proof(
    id="opt.adagrad002",
    seed="002",
    location="§Trick, AdaGrad",
    statement=r"$h \leftarrow h + \frac{\partial L}{\partial W}\odot\frac{\partial L}{\partial W}$, "
    r"$W \leftarrow W - \eta\frac{1}{\sqrt h}\frac{\partial L}{\partial W}$; code loops "
    r"`for key in params.items():`",
    verdict=WRONG,
    corrected="the rule holds (the code adds 1e-7 to sqrt(h)); the loop must run over params.keys(): "
    "items() yields (name, array) pairs, and indexing a dict with such a pair raises TypeError",
)
def test_adagrad002(seed=_seed002_adagrad_as_written, corrected=_adagrad_keys):
    r"""**DLFS notes, AdaGrad.**

    > $h \leftarrow h + \frac{\partial L}{\partial W} \odot \frac{\partial L}{\partial W}$,
    > $W \leftarrow W - \eta \frac{1}{\sqrt{h}} \frac{\partial L}{\partial W}$;
    > ``for key in params.items(): self.h[key] += grads[key] * grads[key]; params[key] -= self.lr * grads[key] / (np.sqrt(self.h[key]) + 1e-7)``.

    Derivation. The rule divides each coordinate's step by the root of its accumulated squared gradients;
    the first step is $-\eta g/(|g| + 10^{-7}) \approx -\eta\,\operatorname{sign}(g)$. The loop iterates over
    ``params.items()``: each ``key`` is a tuple ``(name, array)``, which is unhashable (it holds an ndarray),
    so ``self.h[key]`` raises ``TypeError`` on the first iteration: the update never runs.

    Verdict: **wrong** (code); the rule holds with the $10^{-7}$ convention. Check: the restatement raises
    ``TypeError``; the corrected loop equals ``AdaGrad(eps=1e-7)`` over three steps and its first step is
    $\approx -\eta\operatorname{sign}(g)$.
    """
    params, grads = {"W": W0.copy()}, {"W": GRADS[0]}
    h = {"W": np.zeros_like(W0)}
    assert_raises(TypeError, lambda: seed(params, grads, h), "unhashable")
    lr = 0.01
    state, hh, out = {"W": W0.copy()}, {"W": np.zeros_like(W0)}, []
    for g in GRADS:
        corrected(state, {"W": g}, hh, lr)
        out.append(state["W"].copy())
    for a, b in zip(_library_steps(AdaGrad(lr, eps=1e-7), GRADS), out):
        assert_close("library AdaGrad", a, b)
    first = out[0] - W0
    nz = GRADS[0] != 0
    assert_close("first step ~ -eta sign(g)", first[nz], -lr * np.sign(GRADS[0][nz]), atol=1e-7)


@symbolic("opt.adagrad002")
def test_adagrad002_symbolic():
    sp = require_sympy()
    eta = sp.Symbol("eta", positive=True)
    g1, g2 = sp.symbols("g1 g2", positive=True)
    h1 = g1**2
    sym_zero(sp, -eta * g1 / sp.sqrt(h1) + eta, "first step = -eta for g > 0 (eps -> 0)")
    h2 = h1 + g2**2
    sym_zero(sp, (-eta * g2 / sp.sqrt(h2)) ** 2 - eta**2 * g2**2 / (g1**2 + g2**2), "second step")
