r"""CS231n walkthrough: slips found in a full second pass over the document. Matrix expressions that do not
compute what they claim, a claim about gradient steps, batch norm's statistics, its momentum and the
Gaussian claim, the L2 picture, the momentum metaphor, and wording slips (prose) in the text and comments."""

from __future__ import annotations

import numpy as np

from jacobian_nn.normalization import BatchNorm

from ._helpers import assert_close, assert_differs, assert_fd, fd
from ._registry import CONVENTION, WRONG, proof

RNG = np.random.default_rng(2024)


def _raises(exc, fn):
    """True when ``fn()`` raises ``exc`` (a refuted shape or a name that does not exist)."""
    try:
        fn()
    except exc:
        return True
    return False


# --- §3.1: one neuron, one image ---------------------------------------------------------------------------


def _neuron_printed(x, w, b):
    r"""The printed product $[\cdots x_i \cdots]_{1\times D}\cdot[\vdots\ x_i\ \vdots]_{D\times 1} + [b]$."""
    return x @ x + b


def _neuron_right(x, w, b):
    r"""$[\cdots x_i \cdots]_{1\times D}\cdot[\vdots\ w_i\ \vdots]_{D\times 1} + [b] = \sum_i w_ix_i + b$."""
    return x @ w + b


@proof(
    id="affine.neuron_row004",
    seed="004",
    location="§3.1 一个神经元的本事, the single-neuron matrix expression",
    statement=r"$\underbrace{[\sum_iw_ix_i+b]}_{1\times 1} = \underbrace{[\cdots\ x_i\ \cdots]}_{1\times D}\cdot"
    r"\underbrace{[\vdots\ x_i\ \vdots]}_{D\times 1} + \underbrace{[b]}_{1\times 1}$",
    verdict=WRONG,
    corrected=r"the column vector holds the weights: $[\cdots\ x_i\ \cdots]_{1\times D}\cdot[\vdots\ w_i\ \vdots]_{D\times 1} + "
    r"[b]$; as printed the right side is $\sum_i x_i^2 + b$ (the batch version two paragraphs later has "
    r"$w_i$ in that place)",
)
def test_neuron_row004(seed=_neuron_printed, corrected=_neuron_right):
    r"""**CS231n walkthrough, §3.1, one neuron scoring one image.**

    > $$ \underbrace{ \left[\sum_iw_ix_i+b \right] }_{1\times 1} = \underbrace{\left[ \begin{array}{ccc} \cdots & x_i & \cdots \end{array} \right] }_{1\times D}
    > \cdot \underbrace{\left[ \begin{array} \vdots \\ x_i \\ \vdots \end{array} \right] }_{D\times 1} + \underbrace{ \left[b \right] }_{1\times 1} $$
    > (the batch form that follows: $[\cdots x_i \cdots]_{N\times D}\cdot[\vdots\ w_i\ \vdots]_{D\times 1} + [\vdots\ b\ \vdots]_{N\times 1}$).

    Derivation. The shapes type-check, but the column vector is the input again: the right side is
    $\sum_i x_i^2 + b$, which does not depend on the weights at all. The left side is
    $\sum_i w_ix_i + b$; the two agree only when $x\cdot(x - w) = 0$.

    Verdict: **wrong** (a symbol: $x_i$ for $w_i$). Check: the printed product differs from $\sum_i w_ix_i + b$ by
    $|x\cdot x - x\cdot w|$, does not move when $w$ changes, and the corrected product equals the left side.
    """
    D = 5
    x, w, b = RNG.normal(size=D), RNG.normal(size=D), 0.3
    left = float(np.sum(w * x) + b)
    assert abs(corrected(x, w, b) - left) < 1e-12
    assert_differs("printed product vs sum w_i x_i + b", seed(x, w, b), left, by=abs(x @ x - x @ w), atol=1e-9)
    assert seed(x, 2 * w, b) == seed(x, w, b), "as printed the neuron's score ignores its weights"


# --- §4.3: the db expression --------------------------------------------------------------------------------


def _ones_printed(N, M):
    r"""The blue local gradient in the db line: $[\cdots 1 \cdots]_{1\times M}$."""
    return np.ones((1, M))


def _ones_right(N, M):
    r"""The row of ones that sums the N rows of dout: $\mathbf 1_{1\times N}$."""
    return np.ones((1, N))


@proof(
    id="affine.db_ones004",
    seed="004",
    location="§4.3 '矩阵维度匹配', the matrix expression for db",
    statement=r"$\underbrace{[\cdots\ \mathrm{db}\ \cdots]}_{1\times M} = \underbrace{[\cdots\ 1\ \cdots]}_{1\times M}"
    r"\cdot\underbrace{[\mathrm{dout}]}_{N\times M}$ (code: db = np.sum(dout, axis=0))",
    verdict=WRONG,
    corrected=r"$\mathrm{db} = \mathbf 1_{1\times N}\,\mathrm{dout}_{N\times M}$: a $1\times M$ row times an $N\times M$ "
    r"matrix does not type-check unless $M = N$; with the $1\times N$ row it is the code's column sums",
)
def test_db_ones004(seed=_ones_printed, corrected=_ones_right):
    r"""**CS231n walkthrough, §4.3, the "dimension matching" expression for db.**

    > $$ \underbrace{\left[\begin{array}{ccc} \cdots & \text{db} & \cdots \end{array}\right]}_{1\times M} ={\color{blue} {
    > \underbrace{\left[\begin{array}{ccc} \cdots & 1 & \cdots \end{array}\right]}_{1\times M} }} \cdot
    > \underbrace{\left[\begin{array}{ccc} & & \\ & \text{dout} & \\ & & \end{array}\right]}_{N\times M} $$
    > "上面的矩阵表达式分别对应于 Python 代码: ... db = np.sum(dout, axis=0)".

    Derivation. $z = xw + \mathbf 1_N b$ broadcasts $b$ over the $N$ rows, so
    $\partial L/\partial b_j = \sum_k \mathrm{dout}_{kj} = (\mathbf 1_{1\times N}\,\mathrm{dout})_j$. The printed row of ones has
    $M$ entries: $(1\times M)(N\times M)$ is undefined for $M\ne N$. The section's own method (make the
    dimensions match) is violated by its own expression.

    Verdict: **wrong** (a printed size). Check: with $N=4$, $M=3$ the printed product raises; the $1\times N$ row
    gives ``np.sum(dout, axis=0)``, which equals FD of $L = \sum \mathrm{dout}\odot(xw+b)$ w.r.t. $b$.
    """
    N, M, D = 4, 3, 2
    dout, x, w, b = RNG.normal(size=(N, M)), RNG.normal(size=(N, D)), RNG.normal(size=(D, M)), RNG.normal(size=M)
    assert _raises(ValueError, lambda: seed(N, M) @ dout), "the printed (1, M) row times (N, M) should not type-check"
    db = (corrected(N, M) @ dout)[0]
    assert_close("1_N dout = np.sum(dout, axis=0)", db, np.sum(dout, axis=0))
    assert_fd("db", db, lambda v: float(np.sum(dout * (x @ w + v))), b, gradient=True)


# --- §4.2: a step along the gradient ------------------------------------------------------------------------


def _full_gradient_step_increases(f, w, g):
    """The claim: adding the gradient itself to the parameters always gives a larger loss."""
    return f(w + g) > f(w)


def _small_gradient_step_increases(f, w, g):
    """What the gradient guarantees: a small enough step along it increases the loss (g != 0)."""
    return f(w + 1e-4 * g) > f(w)


def _fneg(w):
    return -2.0 * w * w


@proof(
    id="opt.gradient_step004",
    seed="004",
    location="§4.2 跟着梯度走!, what adding the gradient does",
    statement="参数 (W, B) 如果加上这个 grad 数值, 在新参数 (W+grad, b+grad) 下 ... 新计算出来的 loss 损失值一定会更大一些, "
    "这正是梯度的定义所保证的 (with the parameters plus grad, the loss is certainly larger; the definition of "
    "the gradient guarantees it)",
    verdict=WRONG,
    corrected=r"the gradient guarantees an increase only for a small enough step: $f(w+\eta g) = f(w) + \eta\|g\|^2 + o(\eta)$; "
    r"a full step can decrease the loss: $f(w) = -2w^2$, $w = 1$, $g = -4$, $f(w+g) = f(-3) = -18 < -2 = f(1)$",
)
def test_gradient_step004(seed=_full_gradient_step_increases, corrected=_small_gradient_step_increases):
    r"""**CS231n walkthrough, §4.2, "adding the gradient certainly increases the loss".**

    > 假若我们同时也知道了该点处 loss 的梯度,记号为 grad,那么也就意味着参数 ($W$, $B$) 如果加上这个 grad 数值,在新参数
    > ($W$+grad, $b$+grad) 下让样本图片经过神经网络新计算出来的 loss 损失值一定会更大一些,这正是梯度的定义所保证的

    Derivation. The gradient is a local, first-order object: $f(w + \eta g) = f(w) + \eta\|g\|^2 + o(\eta)$, so some
    interval $0 < \eta < \eta_0$ increases $f$; nothing bounds $\eta_0$ below 1. One line: $f(w) = -2w^2$ at
    $w = 1$ has $g = f'(1) = -4$, and $f(1 + g) = f(-3) = -18 < f(1) = -2$. (The same section's descent step
    subtracts the full gradient, with the same caveat; §6.1's learning rate is what makes the step small.)

    Verdict: **wrong** ("一定" — certainly — holds only for small steps). Check: the counterexample, by value and with
    $g$ from finite differences; a step of $10^{-4}g$ does increase $f$ there and on a second function.
    """
    w = np.array([1.0])
    g = fd(lambda v: _fneg(v[0]), w, gradient=True)[0]
    assert abs(g[0] + 4.0) < 1e-8
    f = lambda v: float(_fneg(v[0]))  # noqa: E731
    assert abs(f(w + g) + 18.0) < 1e-6 and f(w) == -2.0
    assert not seed(f, w, g), "the full step along the gradient decreased the loss: the claim fails"
    assert corrected(f, w, g), "a small step along the gradient increases it"
    h = lambda v: float(np.sin(3 * v[0]) + v[1] ** 2)  # noqa: E731
    w2 = np.array([0.4, -0.2])
    g2 = fd(h, w2, gradient=True)[0]
    assert corrected(h, w2, g2)


# --- §5.2: batch norm's statistics, its momentum, the Gaussian claim ---------------------------------------


def _same_stats_for_every_batch(batches, w, b):
    """The claim: with fixed parameters every batch yields the same BN mean (that of all the data)."""
    allx = np.concatenate(batches)
    return [np.mean(allx @ w + b, axis=0) for _ in batches]


def _stats_of_each_batch(batches, w, b):
    """What batchnorm_forward computes: ``np.mean(x, axis=0)`` of each batch's scores."""
    return [np.mean(x @ w + b, axis=0) for x in batches]


@proof(
    id="batchnorm.stats_fixed004",
    seed="004",
    location="§5.2 代码详解, why running averages may stand in at test time",
    statement="神经网络一旦训练完毕, 参数都会基本固定下来, 这个时候即使是每批样本图片再进入我们的神经网络, 那么 BN 层计算的平均值和"
    "标准差都是固定不变的 (once trained, the parameters are fixed, so the mean and standard deviation a BN layer "
    "computes are the same for every batch)",
    verdict=WRONG,
    corrected="with the parameters fixed, a batch's mean and variance still depend on which samples are in the batch: "
    "they vary from batch to batch around the population values; what is fixed is their expectation over "
    "batches, which the running averages (or the paper's large-sample estimate) approximate",
)
def test_stats_fixed004(seed=_same_stats_for_every_batch, corrected=_stats_of_each_batch):
    r"""**CS231n walkthrough, §5.2, "the statistics are fixed once training is over".**

    > 其本意是由于神经网络一旦训练完毕,参数都会基本固定下来,这个时候即使是每批样本图片再进入我们的神经网络,那么 BN 层
    > 计算的平均值和标准差都是固定不变的,所以我们可以采用这些数值来作为测试样本所需要的均值、标准差。

    Derivation. ``batchnorm_forward`` computes ``np.mean(x, axis=0)`` and ``np.var(x, axis=0)`` of the batch it
    receives; with fixed $W, b$ these are functions of the batch's samples, so two batches give two
    results (their spread shrinks like $1/\sqrt N$ but is not zero). Only the expectation over batches is
    fixed; that is why the paper estimates it from many training images and the code averages.

    Verdict: **wrong** (a statement about the statistics). Check: one fixed affine layer, three batches of
    a data set: the three batch means differ (by more than 0.05 here); ``BatchNorm`` in training mode
    normalises each batch by its own statistics, so the same sample gets different outputs in different
    batches.
    """
    Xall = RNG.normal(size=(60, 3))
    w, b = RNG.normal(size=(3, 2)), RNG.normal(size=2)
    batches = [Xall[:20], Xall[20:40], Xall[40:]]
    computed = [np.mean(x @ w + b, axis=0) for x in batches]  # what the BN layer computes per batch
    for c, r in zip(computed, corrected(batches, w, b)):
        assert_close("the BN layer's batch mean", c, r)
    spread = max(float(np.max(np.abs(c - computed[0]))) for c in computed)
    assert spread > 0.05, spread
    claimed = seed(batches, w, b)
    assert max(float(np.max(np.abs(c - d))) for c, d in zip(computed, claimed)) > 0.02
    bn = BatchNorm(2, update_running=False)
    s1 = bn.forward_batched(np.vstack([batches[0][:1], batches[1]]) @ w + b, "train")[0][0]
    s2 = bn.forward_batched(np.vstack([batches[0][:1], batches[2]]) @ w + b, "train")[0][0]
    assert_differs("one sample, two batches", s1, s2, atol=1e-3)


def _skew(v):
    v = v - v.mean(0)
    return (v**3).mean(0) / (v**2).mean(0) ** 1.5


def _gaussian_skewness(x):
    """The claim 'standard Gaussian after normalisation': skewness 0 whatever the input."""
    return np.zeros(x.shape[1])


def _input_skewness(x):
    """Normalisation is affine per feature: it keeps the input's skewness."""
    return _skew(x)


@proof(
    id="batchnorm.gaussian004",
    seed="004",
    location="§5.2 代码详解, what the normalisation achieves",
    statement="对得分矩阵的每一列 x_i 特征数据进行'归一化', 即使得每一维特征均值为0, 标准差为1, 服从标准高斯分布 (normalise each "
    "column to mean 0, standard deviation 1, following the standard Gaussian distribution)",
    verdict=WRONG,
    corrected=r"the normalisation $\hat x = (x-\mu_B)/\sqrt{\sigma_B^2+\epsilon}$ is an affine map per feature: it gives "
    r"mean 0 and variance $\sigma_B^2/(\sigma_B^2+\epsilon)$ (just under 1) but keeps the shape of the "
    r"distribution (skewness, kurtosis); the result is Gaussian only if the scores were",
)
def test_gaussian004(seed=_gaussian_skewness, corrected=_input_skewness):
    r"""**CS231n walkthrough, §5.2, "normalised features follow the standard Gaussian".**

    > 然后,我们就要利用这两个信息,对得分矩阵的每一列 $x_i$ 特征数据进行" 归一化 “,即使得每一维特征均值为0,标准差为1,
    > 服从 标准高斯分布 。

    Derivation. Per feature, $\hat x = a x + c$ with $a = 1/\sqrt{\sigma_B^2+\epsilon} > 0$: moments of order 1 and 2 are
    set, and every standardised moment (skewness $E[(x-\mu)^3]/\sigma^3$, kurtosis) is unchanged. A skewed
    column (here exponential scores, skewness about 2) stays skewed. Mean 0 holds; "standard deviation 1"
    holds up to $\epsilon$ (proof ``batchnorm.forward002``); "standard Gaussian" does not.

    Verdict: **wrong** (a statistical claim). Check: on 4000 exponential scores, ``BatchNorm``'s training
    output has mean 0, standard deviation $\sqrt{\sigma^2/(\sigma^2+\epsilon)}$, and the input's skewness
    (about 2, not 0).
    """
    x = RNG.exponential(size=(4000, 2))
    bn = BatchNorm(2, eps=1e-5, update_running=False)
    xh = bn.forward_batched(x, "train")[0]
    assert_close("mean 0", xh.mean(0), np.zeros(2), atol=1e-10)
    assert_close("std just under 1", xh.std(0), np.sqrt(x.var(0) / (x.var(0) + 1e-5)))
    assert_close("skewness kept", _skew(xh), corrected(x), atol=1e-8)
    assert np.all(np.abs(_skew(xh) - seed(x)) > 1.0), f"skewness {_skew(xh)}: far from a Gaussian's 0"


def _smoothing_factor_claimed(momentum):
    """The claim: momentum is the smoothing coefficient (the weight of the newest observation)."""
    return momentum


def _smoothing_factor_code(momentum):
    """In ``running = momentum * running + (1 - momentum) * sample`` the newest value has weight 1 - momentum."""
    return 1 - momentum


@proof(
    id="batchnorm.momentum_smoothing004",
    seed="004",
    location="§5.2 代码详解, momentum and single exponential smoothing",
    statement="参数 momentum 对应于平滑系数, 或者叫加权因子 (momentum corresponds to the smoothing coefficient, the "
    "weighting factor); steady statistics: momentum 0.7~0.9; rapidly changing: 0.1~0.4",
    verdict=WRONG,
    prose=True,
    corrected=r"in single exponential smoothing $s_t = \alpha x_t + (1-\alpha)s_{t-1}$ the smoothing coefficient "
    r"$\alpha$ weights the newest observation; in the code that weight is $1 - $ momentum, so momentum "
    r"$= 1-\alpha$ (the damping factor). The suggested ranges fit momentum $= 1-\alpha$ (steady series: "
    r"small $\alpha$, large momentum)",
)
def test_momentum_smoothing004(seed=_smoothing_factor_claimed, corrected=_smoothing_factor_code):
    r"""**CS231n walkthrough, §5.2, momentum named the smoothing coefficient.**

    > 从上述资料中,我们就可以知晓:参数 momentum 对应于平滑系数,或者叫加权因子。其值大小的取定是要考虑到每一次 BN 层
    > 算得的平均值和标准差的变化特性所决定的,算是一个经验超参数:在我们的神经网络中,若每层每次算得波动不大,比较平稳,
    > 则参数 momentum 可取 0.7~0.9;若具有迅速且明显的变动倾向,则应取为 0.1~0.4。
    > Code: ``running_mean = momentum * running_mean + (1 - momentum) * sample_mean``.

    Derivation. Single exponential smoothing (the reference the text cites) is
    $s_t = \alpha x_t + (1-\alpha)s_{t-1}$, with the smoothing coefficient $\alpha$ the weight of the newest
    value $x_t$. In the code the newest value is ``sample_mean`` and its weight is
    $\partial\,\text{running}_t/\partial\,\text{sample} = 1 - \text{momentum}$. So momentum is $1 - \alpha$; with the
    default 0.9 the smoothing coefficient is 0.1. The advice that follows (steady: 0.7-0.9) is right for
    momentum $= 1-\alpha$, which is how the code uses it: only the name is swapped.

    Verdict: **wrong** (prose: the quantity is misnamed). Check: FD of one update w.r.t. the batch mean is
    $1-\text{momentum}$ (0.1 at the default), and the recursion with $\alpha :=$ momentum differs from the
    code's.
    """
    m = 0.9
    running, sample = np.array([0.4, -1.0]), np.array([1.5, 0.2])
    update = lambda s: m * running + (1 - m) * s  # noqa: E731
    weight = np.diag(fd(update, sample))
    assert_close("weight of the newest value", weight, np.full(2, corrected(m)), atol=1e-9)
    assert_differs("the claimed smoothing coefficient", np.full(2, seed(m)), weight, by=abs(2 * m - 1), atol=1e-8)
    smoothing_with_alpha_momentum = seed(m) * sample + (1 - seed(m)) * running
    assert_differs(
        "recursion with alpha = momentum vs the code", smoothing_with_alpha_momentum, update(sample), atol=1e-6
    )


# --- §5.1: the L2 picture -----------------------------------------------------------------------------------

A_L2 = np.diag([1.0, 10.0])  # an anisotropic quadratic loss L(w) = (w - w0)^T A (w - w0) / 2
W0_L2 = np.array([1.0, 1.0])  # its unpenalised minimum
LAM_L2 = 1.0


def _nearest_on_circle(A, w0, lam):
    """The claim: the penalised optimum is the point of the disc (radius |w*|) closest to the unpenalised minimum."""
    r = np.linalg.norm(np.linalg.solve(A + lam * np.eye(2), A @ w0))
    return r * w0 / np.linalg.norm(w0)


def _penalised_minimiser(A, w0, lam):
    r"""The minimiser of $L(w) + \frac{\lambda}{2}\|w\|^2$: $(A + \lambda I)^{-1}Aw_0$."""
    return np.linalg.solve(A + lam * np.eye(2), A @ w0)


@proof(
    id="reg.l2_disc004",
    seed="004",
    location="§5.1 正则化, the disc picture of L2 regularisation",
    statement="经过惩罚且最小化的 loss 损失值所对应的最优参数 w1, w2, 就是距离未经历惩罚的最小化 loss 损失值最近, 位于圆形区域边界上"
    "的一点 (the penalised optimum is the point on the boundary of the disc closest to the unpenalised minimum)",
    verdict=WRONG,
    corrected=r"the penalised optimum $w^* = (A+\lambda I)^{-1}Aw_0$ (quadratic loss) lies on the circle $\|w\| = \|w^*\|$ "
    r"where a level set of the loss touches it: the loss's minimiser on the disc, not the point nearest to "
    r"$w_0$; the two coincide only when the loss's level sets are circles ($A \propto I$)",
)
def test_l2_disc004(seed=_nearest_on_circle, corrected=_penalised_minimiser):
    r"""**CS231n walkthrough, §5.1, where the L2-penalised optimum lies.**

    > 于是,在最优化的过程中,解空间缩小了,解参数 $w_1,w_2$ 的可选范围不再是整个平面,而是被限制在图中阴影的圆形区域内。
    > 所以,经过惩罚且最小化的 loss 损失值所对应的最优参数 $w_1,w_2$,就是距离未经历惩罚的最小化 loss 损失值最近,位于圆形区域
    > 边界上的一点。

    Derivation. For $L(w) = \frac12(w-w_0)^\top A(w-w_0)$ the penalised loss $L + \frac\lambda2\|w\|^2$ has gradient
    $A(w-w_0) + \lambda w$, zero at $w^* = (A+\lambda I)^{-1}Aw_0$. By Lagrange duality $w^*$ minimises $L$ on the
    disc of radius $\|w^*\|$, where the circle is tangent to a level set of $L$. The point of that circle
    nearest to $w_0$ (in Euclidean distance) is $\|w^*\|\,w_0/\|w_0\|$, which is $w^*$ only when $A$'s level sets
    are circles. With $A = \operatorname{diag}(1, 10)$, $w_0 = (1, 1)$, $\lambda = 1$: $w^* = (0.5, 0.909)$, the nearest
    point is $(0.737, 0.737)$, and $L$ is lower at $w^*$.

    Verdict: **wrong** in general (holds for an isotropic loss). Check: FD of the penalised loss is 0 at the
    corrected point and not at the claimed one; both lie on the same circle; $L$ is lower at $w^*$; with
    $A = I$ the two coincide.
    """
    pen = lambda w: float(0.5 * (w - W0_L2) @ A_L2 @ (w - W0_L2) + 0.5 * LAM_L2 * w @ w)  # noqa: E731
    loss = lambda w: float(0.5 * (w - W0_L2) @ A_L2 @ (w - W0_L2))  # noqa: E731
    w_star, w_near = corrected(A_L2, W0_L2, LAM_L2), seed(A_L2, W0_L2, LAM_L2)
    assert_fd("gradient of the penalised loss at w*", np.zeros(2), pen, w_star, gradient=True)
    assert np.linalg.norm(fd(pen, w_near, gradient=True)) > 0.1, "the nearest point is not stationary"
    assert abs(np.linalg.norm(w_star) - np.linalg.norm(w_near)) < 1e-12
    assert loss(w_star) < loss(w_near) - 0.01
    iso = np.eye(2)
    assert_close("isotropic loss: the claim holds", seed(iso, W0_L2, LAM_L2), corrected(iso, W0_L2, LAM_L2))


# --- §6.1: the momentum metaphor ----------------------------------------------------------------------------


def _momentum_without_slope(w, dw, v, lr, mu):
    """The claim: the update no longer refers to the local slope, only to the velocity."""
    return w + mu * v


def _momentum_code(w, dw, v, lr, mu):
    """``v = config["momentum"] * v - config["learning_rate"] * dw; next_w = w + v``."""
    return w + (mu * v - lr * dw)


@proof(
    id="opt.momentum_slope004",
    seed="004",
    location="§6.1, the ball-on-a-hill picture of momentum",
    statement="模型参数的更新不再去参考小球所在处的山体倾斜情况, 而是改用小球的速度矢量在模型参数空间的投影来修正更新参数 (the update no "
    "longer refers to the slope where the ball is, but to its velocity)",
    verdict=WRONG,
    corrected=r"every step still adds the current slope: $v_t = \mu v_{t-1} - \eta\nabla L(w_t)$, $w_{t+1} = w_t + v_t$, so "
    r"$\partial w_{t+1}/\partial \nabla L(w_t) = -\eta I$; what changes is that the step is no longer the "
    r"negative gradient alone but adds the decayed previous velocity",
)
def test_momentum_slope004(seed=_momentum_without_slope, corrected=_momentum_code):
    r"""**CS231n walkthrough, §6.1, "the update no longer looks at the slope".**

    > 而动量版本的梯度下降方法可以看作是将初速度为 0 的小球从在一个山体表面上放手,不同的损失值代表山体表面的海拔高度,
    > 那么模型参数的更新不再去参考小球所在处的山体倾斜情况,而是改用小球的速度矢量在模型参数空间的投影来修正更新参数。
    > Code: ``v = config["momentum"] * v - config["learning_rate"] * dw``; ``next_w = w + v``.

    Derivation. The velocity update contains $-\eta\,dw$, the slope at the current point, at every step (the
    force $F = -\nabla L$ of the text's own derivation two sentences later). In the first step ($v = 0$) the
    update is exactly SGD's. The local slope enters with weight $-\eta$; the velocity adds memory of
    earlier slopes, it does not replace the current one.

    Verdict: **wrong**. Check: FD of ``next_w`` w.r.t. ``dw`` is $-\eta I$ (not 0); with $v = 0$ the step is
    $-\eta\,dw$; the restated code differs from an update that ignores ``dw``.
    """
    lr, mu = 0.1, 0.9
    w, dw, v = RNG.normal(size=3), RNG.normal(size=3), RNG.normal(size=3)
    code = lambda g: _momentum_code(w, g, v, lr, mu)  # noqa: E731
    assert_close("the code", corrected(w, dw, v, lr, mu), code(dw))
    assert_close("d next_w / d dw = -lr I", fd(code, dw), -lr * np.eye(3), atol=1e-9)
    assert_close("first step (v = 0) is SGD", _momentum_code(w, dw, 0 * v, lr, mu), w - lr * dw)
    assert_differs(
        "an update that ignores the slope", seed(w, dw, v, lr, mu), code(dw), by=lr * np.max(np.abs(dw)), atol=1e-12
    )


# --- wording slips (prose) ----------------------------------------------------------------------------------


def _divergence_of_gradient(x, y):
    r"""The divergence of the field $x \mapsto \nabla_x L$ (what 散度 names): the scalar $\sum_{ij}\partial^2L/\partial x_{ij}^2$."""
    N = x.shape[0]
    e = np.exp(x - x.max(1, keepdims=True))
    S = e / e.sum(1, keepdims=True)
    return float(np.sum(S * (1 - S)) / N)


def _gradient_matrix(x, y):
    """The gradient ``dx`` = (probs - onehot(y)) / N, shape (N, C)."""
    N = x.shape[0]
    e = np.exp(x - x.max(1, keepdims=True))
    S = e / e.sum(1, keepdims=True)
    S[np.arange(N), y] -= 1
    return S / N


@proof(
    id="softmax.divergence004",
    seed="004",
    location="§4.2 小结 and affine_backward docstring: '散度' for the gradient",
    statement="还输出了一个和得分矩阵x相同shape的散度矩阵 dx, 代表的是损失函数关于输入得分矩阵x的梯度; "
    "'dout: Upstream derivative, of shape (N, M)  上一层的散度输出'",
    verdict=WRONG,
    prose=True,
    corrected=r"dx is the gradient $\partial L/\partial x$, an $(N, C)$ array; the divergence (散度) of a vector field is "
    r"a scalar, $\sum_i\partial F_i/\partial x_i$: for the field $x\mapsto\nabla L$ it is "
    r"$\frac1N\sum_{ij}S_{ij}(1-S_{ij})$, not dx",
)
def test_divergence004(seed=_divergence_of_gradient, corrected=_gradient_matrix):
    r"""**CS231n walkthrough, "散度矩阵 dx" (divergence matrix).**

    > 在我们定义的 softmax_loss(x, y) 函数中,不仅对神经网络的输出层给出的得分矩阵x给出了一个最终打分 loss ——即损失函数,
    > 同时还输出了一个和得分矩阵x相同shape的散度矩阵 dx,代表的是损失函数关于输入得分矩阵x的梯度;
    > ``- dout: Upstream derivative, of shape (N, M)    上一层的散度输出``.

    Derivation. 散度 is divergence, $\operatorname{div}F = \sum_i \partial F_i/\partial x_i$, a scalar for every point.
    The text itself says what dx is: the gradient of the loss w.r.t. x, same shape as x. The divergence
    of the gradient field is the Laplacian of $L$: $\sum_{ij}\partial^2 L/\partial x_{ij}^2 = \frac1N\sum_{ij}S_{ij}(1-S_{ij})$.

    Verdict: **wrong** (prose: a wrong word). Check: FD of $L$ equals the gradient matrix ``dx`` (shape
    $(N, C)$); the divergence, computed by FD of ``dx`` (the trace of its Jacobian), is a different object,
    one number.
    """
    x, y = RNG.normal(size=(3, 4)), np.array([2, 0, 1])
    L = lambda v: float(
        -np.mean(
            np.log(
                np.exp(v.reshape(3, 4) - v.reshape(3, 4).max(1, keepdims=True))[np.arange(3), y]  # noqa: E731
                / np.exp(v.reshape(3, 4) - v.reshape(3, 4).max(1, keepdims=True)).sum(1)
            )
        )
    )
    g = corrected(x, y)
    assert np.shape(g) == x.shape
    assert_fd("dx = dL/dx", g.reshape(1, -1), L, x.reshape(-1), gradient=True)
    div = float(np.trace(fd(lambda v: _gradient_matrix(v.reshape(3, 4), y).reshape(-1), x.reshape(-1))))
    assert abs(div - seed(x, y)) < 1e-7 and np.ndim(seed(x, y)) == 0, "the divergence is one number"


def _epoch_end_comment(num_iterations, iterations_per_epoch):
    """The comment: '只有当t = iterations_per_epoch-1 时为True' (only at that one t)."""
    return [iterations_per_epoch - 1]


def _epoch_end_code(num_iterations, iterations_per_epoch):
    """``(t + 1) % iterations_per_epoch == 0``: the last iteration of every epoch."""
    return list(range(iterations_per_epoch - 1, num_iterations, iterations_per_epoch))


@proof(
    id="solver.epoch_end004",
    seed="004",
    location="§6.2 Solver.train, the comment on epoch_end",
    statement="epoch_end = (t + 1) % iterations_per_epoch == 0; if epoch_end:  # 只有当t = iterations_per_epoch-1 时为True "
    "(True only when t = iterations_per_epoch - 1)",
    verdict=WRONG,
    prose=True,
    corrected="epoch_end is True at t = k * iterations_per_epoch - 1 for every k = 1 .. num_epochs: the end of every "
    "epoch (as the English comment above it says), so the learning rate decays once per epoch",
)
def test_epoch_end004(seed=_epoch_end_comment, corrected=_epoch_end_code):
    r"""**CS231n walkthrough, ``Solver.train``: a comment that contradicts its line.**

    > ``# At the end of every epoch, increment the epoch counter and decay the learning rate.``
    > ``epoch_end = (t + 1) % iterations_per_epoch == 0``
    > ``if epoch_end:       # 只有当t = iterations_per_epoch-1 时为True``

    Derivation. $(t+1) \bmod I = 0$ exactly when $t + 1 \in \{I, 2I, \dots\}$: the last iteration of each epoch,
    not only of the first. With ``num_epochs`` epochs the learning rate is multiplied by ``lr_decay`` that many
    times, and the accuracy is checked at each epoch's end.

    Verdict: **wrong** (prose: the Chinese comment; the code and the English comment hold). Check: the line
    evaluated for 3 epochs of 5 iterations is True at t = 4, 9, 14.
    """
    num_epochs, ipe = 3, 5
    num_iterations = num_epochs * ipe
    true_at = [t for t in range(num_iterations) if (t + 1) % ipe == 0]
    assert true_at == corrected(num_iterations, ipe) == [4, 9, 14]
    assert true_at != seed(num_iterations, ipe)


def _input_width_claimed(X_batch):
    """The comments: batch_size (the rows of X_batch) is 'the number of input-layer neurons'."""
    return X_batch.shape[0]


def _input_width(X_batch):
    """The input layer has one neuron per pixel value: d_1 * ... * d_k (3 * 32 * 32 = 3072 for CIFAR-10)."""
    return int(np.prod(X_batch.shape[1:]))


@proof(
    id="solver.batch_size004",
    seed="004",
    location="§6.2 Solver (batch_size comments); §3.2 (N)",
    statement="self.batch_size = kwargs.pop('batch_size', 100)  # 默认输入层神经元数100; X_batch = self.X_train[batch_mask]  "
    "# 随机取得输入神经元个数的样本图片数据; §3.2: 'N表示数据样本的个数(亦输入层的圈圈数)'",
    verdict=WRONG,
    prose=True,
    corrected="batch_size (N) is the number of images in a minibatch, the rows of X_batch; the input layer has "
    "D = d_1 * ... * d_k neurons (3 * 32 * 32 = 3072 for CIFAR-10, input_dim), one per pixel value, "
    "whatever the batch size (the text itself says so in §2: 输入层的维数就是 32x32x3)",
)
def test_batch_size004(seed=_input_width_claimed, corrected=_input_width):
    r"""**CS231n walkthrough: the batch size called the number of input neurons.**

    > ``self.batch_size = kwargs.pop('batch_size', 100)     # 默认输入层神经元数100``;
    > ``X_batch = self.X_train[batch_mask]  # 随机取得输入神经元个数的样本图片数据``;
    > §3.2: "N表示数据样本的个数(亦输入层的圈圈数)"; §2: "对于 CIFAR-10 数据集来说,输入层的维数就是 $32\times32\times3$,共 3072 个圈圈".

    Derivation. ``np.random.choice(num_train, self.batch_size)`` picks ``batch_size`` images; ``X_batch`` has shape
    ``(batch_size, 3, 32, 32)``, and ``affine_forward`` reshapes it to ``(N, 3072)`` and multiplies by ``W1`` of
    shape ``(3072, H)``: the input layer's width is ``input_dim`` = 3072 for every batch size. The comments
    (and §3.2's parenthesis) give the batch dimension the name of the feature dimension, which §2 of the
    same text gets right.

    Verdict: **wrong** (prose: a mislabelled quantity). Check: a minibatch drawn as the Solver draws it, from
    images of shape (3, 4, 4): its rows are ``batch_size``, the affine layer accepts it only with
    ``W1`` of 48 rows, and a ``W1`` with ``batch_size`` rows is refused.
    """
    X_train = RNG.normal(size=(49, 3, 4, 4))
    batch_size = 10
    X_batch = X_train[RNG.choice(49, batch_size)]

    def accepts(rows):  # affine_forward: reshape to (N, -1), then dot with W1 of shape (rows, H)
        return not _raises(ValueError, lambda: X_batch.reshape(X_batch.shape[0], -1) @ np.ones((rows, 7)))

    assert accepts(corrected(X_batch)) and corrected(X_batch) == 48, "the input layer is 3 * 4 * 4 = 48 wide"
    assert seed(X_batch) == batch_size != corrected(X_batch)
    assert not accepts(seed(X_batch)), "a W1 with batch_size rows is refused"


SGD_CONFIG_PRINTED = ("{'learning_rate', 1e-2}", "{'learning_rate': le-2, 'momentum': 0.9}")
SGD_CONFIG_RIGHT = ("{'learning_rate': 1e-2}", "{'learning_rate': 1e-2, 'momentum': 0.9}")


@proof(
    id="opt.sgd_config004",
    seed="004",
    location="§6.1 代码详解 of sgd and sgd_momentum, the default config",
    statement="config 如果没有在函数中输入的话, 会默认为一个字典:{'learning_rate', 1e-2}; sgd_momentum: "
    "{'learning_rate': le-2, 'momentum': 0.9, 'velocity': np.zeros_like(w)}",
    verdict=WRONG,
    prose=True,
    corrected="the code's default is the dict {'learning_rate': 1e-2} (config.setdefault); {'learning_rate', 1e-2} is "
    "a set, and le-2 is the name le minus 2, not the number 1e-2",
)
def test_sgd_config004(seed=SGD_CONFIG_PRINTED, corrected=SGD_CONFIG_RIGHT):
    r"""**CS231n walkthrough, §6.1, the default configurations as the text writes them.**

    > config 如果没有在函数中输入的话,会默认为一个字典:{'learning_rate', 1e-2}, ...
    > sgd_momentum() 函数的最优化超参数有三个 {'learning_rate': le-2, 'momentum': 0.9, 'velocity': np.zeros_like(w)}
    > Code: ``config.setdefault('learning_rate', 1e-2)``; ``config.setdefault('momentum', 0.9)``.

    Derivation. In Python ``{a, b}`` is a set literal; a dict needs ``{a: b}``. ``le-2`` is the expression
    ``le - 2`` with an undefined name ``le``. The code's own defaults are the dicts that
    ``setdefault`` builds.

    Verdict: **wrong** (prose: the text's Python). Check: evaluating the printed literals gives a set and a
    ``NameError``; the corrected literals equal what the code's ``setdefault`` calls build.
    """
    sgd_default = {}
    sgd_default.setdefault("learning_rate", 1e-2)
    mom_default = {}
    mom_default.setdefault("learning_rate", 1e-2)
    mom_default.setdefault("momentum", 0.9)
    first = eval(seed[0], {})  # noqa: S307 - a fixed literal from the text
    assert isinstance(first, set) and first != sgd_default, f"{seed[0]} evaluates to {first!r}"
    assert _raises(NameError, lambda: eval(seed[1], {})), f"{seed[1]} should not evaluate"  # noqa: S307
    assert eval(corrected[0], {}) == sgd_default and eval(corrected[1], {}) == mom_default  # noqa: S307


def _lr_constant(lr0, lr_decay, epochs):
    """'它是一个固定的常量': the learning rate of every epoch is the initial one."""
    return [lr0] * epochs


def _lr_solver(lr0, lr_decay, epochs):
    """The Solver: at the end of every epoch ``optim_configs[k]['learning_rate'] *= self.lr_decay``."""
    out, lr = [], lr0
    for _ in range(epochs):
        out.append(lr)
        lr *= lr_decay
    return out


@proof(
    id="opt.lr_constant004",
    seed="004",
    location="§6.1 代码详解 of sgd, 'learning_rate ... 是一个固定的常量'",
    statement="learning_rate 通常叫做学习率, 它是一个固定的常量, 是一个超参数 (the learning rate is a fixed constant, "
    "a hyperparameter)",
    verdict=CONVENTION,
    prose=True,
    corrected="a hyperparameter, not learned, yes; constant only with the Solver's default lr_decay = 1.0: the "
    "same document's Solver multiplies it by lr_decay at the end of every epoch (its docstring example "
    "uses lr_decay = 0.95)",
)
def test_lr_constant004(seed=_lr_constant, corrected=_lr_solver):
    r"""**CS231n walkthrough, §6.1 vs §6.2: is the learning rate constant?**

    > §6.1: learning_rate 通常叫做学习率,它是一个固定的常量,是一个超参数,即与"模型参数"不同,是需要人工经验在神经网络外部
    > 设置调整的; §6.2 ``Solver.train``: ``for k in self.optim_configs: self.optim_configs[k]['learning_rate'] *= self.lr_decay``
    > (at each epoch's end); docstring example ``lr_decay=0.95``; ``self.lr_decay = kwargs.pop('lr_decay', 1.0)``.

    Derivation. ``sgd`` reads ``config['learning_rate']`` at every call, and the Solver rewrites that entry
    after every epoch: epoch $e$ uses $\eta_0\,\text{lr\_decay}^{e}$. It is a hyperparameter (set outside, not
    learned) and constant within an epoch; across epochs it is constant only with the default decay 1.0.

    Verdict: **holds under a stated convention** (prose; lr_decay = 1, the default). Check: the Solver's update
    over 3 epochs with the docstring's 0.95 gives $(\eta_0, 0.95\eta_0, 0.9025\eta_0)$, not a constant; with the
    default 1.0 it is constant.
    """
    lr0 = 1e-3
    schedule = []
    configs = {"W1": {"learning_rate": lr0}}
    for _ in range(3):  # the Solver's loop, one update per epoch end
        schedule.append(configs["W1"]["learning_rate"])
        for k in configs:
            configs[k]["learning_rate"] *= 0.95
    assert_close("the Solver's schedule", schedule, corrected(lr0, 0.95, 3))
    assert_differs("'a fixed constant'", schedule, seed(lr0, 0.95, 3), atol=1e-7)
    assert corrected(lr0, 1.0, 3) == seed(lr0, 1.0, 3) == [lr0] * 3, "constant with the default lr_decay = 1.0"


DATA004_PRINTED_SHAPES = """y_train:  (49000,)
y_test:  (1000,)
X_val:  (1000, 3, 32, 32)
y_val:  (1000,)
X_test:  (1000, 3, 32, 32)
X_train:  (49000, 3, 32, 32)"""


def _data_claimed(shapes):
    """§1 and §3.3: the test images carry no labels; an image batch has shape (N, 32, 32, 3)."""
    return {"test_labels": False, "image_axes": (32, 32, 3)}


def _data_printed(shapes):
    """What §6.2's printout of the loaded data shows."""
    return {"test_labels": "y_test" in shapes, "image_axes": tuple(shapes["X_train"][1:])}


@proof(
    id="data.cifar004",
    seed="004",
    location="§1 (CIFAR-10's test set) and §3.3 (an input batch's shape) vs §6.2",
    statement="包含不带有标签的 10000 张图像的测试集 (a test set of 10000 images without labels); 其每张图片输入进来的数据 x "
    "的 shape 是 (N,32,32,3)",
    verdict=WRONG,
    prose=True,
    corrected="CIFAR-10's test images are labelled: the same document loads and prints y_test (1000,) in §6.2 and "
    "accuracy on a test split needs them; the loaded image batches are (N, 3, 32, 32), channels first "
    "(the 3072 numbers per image are the same, so the reshape to (N, 3072) works either way)",
)
def test_cifar004(seed=_data_claimed, corrected=_data_printed):
    r"""**CS231n walkthrough, two statements about the data that its own printout contradicts.**

    > §1: 此外,这60000张图像被分为包含带有标签的 50000 张图像的训练集和包含不带有标签的 10000 张图像的测试集。
    > §3.3: 对于我们的图片数据集 CIFAR-10,其每张图片输入进来的数据 $x$ 的 shape 是 $(N,32,32,3)$ ...
    > §6.2 prints: ``y_train: (49000,)``, ``y_test: (1000,)``, ``X_val: (1000, 3, 32, 32)``, ``y_val: (1000,)``,
    > ``X_test: (1000, 3, 32, 32)``, ``X_train: (49000, 3, 32, 32)``.

    Derivation. The evidence is in the document: the test split it loads comes with ``y_test``, one
    label per test image, and every image array is (N, 3, 32, 32). (CIFAR-10's test batch is distributed
    with its labels; a test accuracy could not be computed otherwise.) Only the order of the axes differs
    in the shape slip: ``np.reshape(x, (N, -1))`` gives (N, 3072) in both cases, but the feature order
    differs (channels first: all red values, then green, then blue).

    Verdict: **wrong** (prose: two factual slips about the data). Check: the printed shapes contain labels
    for the test images and images of shape (3, 32, 32), against the text's claims.
    """
    shapes = {}
    for line in DATA004_PRINTED_SHAPES.splitlines():
        name, shape = line.split(":")
        shapes[name.strip()] = tuple(int(v) for v in shape.strip(" ()").split(",") if v.strip())
    right, claimed = corrected(shapes), seed(shapes)
    assert right["test_labels"] and shapes.get("y_test") == (1000,) == shapes["X_test"][:1]
    assert right["image_axes"] == shapes["X_test"][1:] == (3, 32, 32)
    assert claimed["test_labels"] != ("y_test" in shapes), "the text says the test images have no labels"
    assert claimed["image_axes"] != shapes["X_train"][1:], "the text's image axes"
    assert int(np.prod(claimed["image_axes"])) == int(np.prod(shapes["X_train"][1:])) == 3072
