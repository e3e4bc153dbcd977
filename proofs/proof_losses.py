r"""Losses: cross-entropy, MSE, the mini-batch reductions, and what each source's loss code computes."""

from __future__ import annotations

import numpy as np

from jacobian_nn.losses import CrossEntropy, MeanSquaredError, SoftmaxCrossEntropy

from ._helpers import assert_close, assert_differs, assert_fd, assert_raises, fd, sym_zero
from ._registry import CONVENTION, HOLDS, WRONG, proof, require_sympy, symbolic

P = np.array([0.1, 0.6, 0.3])


def _ce_grad(yhat, y):
    """The notes' derivative ``-Y / yHat`` (a row)."""
    return -y / yhat


@proof(
    id="loss.cross_entropy",
    seed="000",
    location="§损失函数, CrossEntropy",
    statement=r"$L = -\sum_i Y_i\log\hat Y_i$, $\partial L/\partial \hat Y_i = -Y_i/\hat Y_i$",
    verdict=HOLDS,
)
def test_cross_entropy(claim=_ce_grad):
    r"""**FCNN-Jacobian notes, cross-entropy (also DLFS notes $E = -\sum_k t_k\log y_k$).**

    > $L(\hat Y, Y) = -\sum_i Y_i \log \hat Y_i$, $\frac{\partial L}{\partial \hat Y_i} = -\frac{Y_i}{\hat Y_i}$;
    > code: ``return (-Y / yHat).reshape(1, -1)`` (a row).

    Derivation. Each term depends on one $\hat Y_i$: $\partial(-Y_i\log\hat Y_i)/\partial\hat Y_i = -Y_i/\hat Y_i$.
    The gradient is a row $(1, m)$, the project's layout.

    Verdict: **holds** (on $\hat Y > 0$). Checks: sympy, FD, ``CrossEntropy.gradient``.
    """
    for y in (np.array([0.0, 1.0, 0.0]), np.array([0.2, 0.5, 0.3])):
        f = lambda v, y=y: CrossEntropy(check_sum=False).forward(v[:, None], y[:, None])  # noqa: E731
        assert_fd("CE gradient", claim(P, y), f, P, gradient=True, initial_step=1e-3)
        assert_close("library", CrossEntropy().gradient(P[:, None], y[:, None])[0], claim(P, y))


@symbolic("loss.cross_entropy")
def test_cross_entropy_symbolic():
    sp = require_sympy()
    yh = sp.symbols("h0:3", positive=True)
    y = sp.symbols("y0:3", positive=True)
    L = -sum(a * sp.log(b) for a, b in zip(y, yh))
    sym_zero(sp, sp.Matrix([sp.diff(L, b) + a / b for a, b in zip(y, yh)]), "dL/dyhat + y/yhat")


def _seed000_log(z):
    """FCNN-Jacobian notes ``_log``: ``np.log(z, out=np.zeros_like(z), where=(z != 0))`` -> 0 where z == 0."""
    return np.log(z, out=np.zeros_like(z), where=(z != 0))


def _true_log(z):
    """``log`` itself: ``-inf`` at 0."""
    with np.errstate(divide="ignore"):
        return np.log(z)


@proof(
    id="loss.log0_000",
    seed="000",
    location="NNFunctions.py, _log and CrossEntropy.__call__",
    statement="_log(z) returns 0 where z == 0, so -sum(Y * _log(yHat)) is finite when yHat_i = 0 < Y_i",
    verdict=WRONG,
    corrected="-Y_i log 0 = +inf where Y_i > 0 (0 log 0 = 0 only where Y_i = 0); "
    "the library refuses that input with a ValueError instead of returning a finite loss",
)
def test_log0_000(seed=_seed000_log, corrected=_true_log):
    r"""**FCNN-Jacobian notes, ``_log`` inside ``CrossEntropy``.**

    > ``def _log(z): return np.log(z, out=np.zeros_like(z), where=(z!=0))``; ``return -np.sum(Y * _log(yHat))``.

    Derivation. $\lim_{p\to0^+}-y\log p = +\infty$ for $y>0$, so a zero probability on the true
    class has infinite loss. Setting $\log 0 := 0$ makes that term 0: the worst prediction gets
    the best possible term. (Where $Y_i = 0$, $0\log0 = 0$ is the right limit.) The gradient
    ``-Y / yHat`` is $-\infty$/NaN there, so code loss and code gradient disagree.

    Verdict: **wrong**. Check: restated code gives a finite loss (here $-0.5\log 0.5$... and 0 for the
    zero entry) where the true loss is $+\infty$; the library raises ``ValueError``; for $p\to0$ the true
    loss grows without bound.
    """
    yhat = np.array([0.0, 0.5, 0.5])
    y = np.array([1.0, 0.0, 0.0])
    code = -np.sum(y[y > 0] * seed(yhat)[y > 0])
    assert code == 0.0, f"the notes' _log gives a finite loss ({code}) for p = 0 on the true class"
    true = -np.sum(y[y > 0] * corrected(yhat)[y > 0])
    assert np.isinf(true) and true > 0
    losses = [CrossEntropy(check_sum=False).forward(np.array([[e], [0.5], [0.5]]), y[:, None]) for e in (1e-4, 1e-8)]
    assert losses[1] > losses[0] > 9.0  # grows like -log(eps), the code's value 0 is the opposite extreme
    assert_raises(ValueError, lambda: CrossEntropy().forward(yhat[:, None], y[:, None]), "probability 0")


def _mse002(y, t):
    """DLFS notes ``mean_squared_error``: ``0.5 * np.sum((y - t)**2)``; its gradient ``y - t``."""
    return 0.5 * np.sum((y - t) ** 2), y - t


@proof(
    id="loss.mse002",
    seed="002",
    location="§均方误差 mean squared error",
    statement=r"$E = \frac12\sum_k(y_k-t_k)^2$; example value 0.0975; (FCNN-Jacobian notes: 'too simple, not written')",
    verdict=HOLDS,
)
def test_mse002(claim=_mse002):
    r"""**DLFS notes, mean squared error.**

    > $E = \frac{1}{2}\sum_k (y_k - t_k)^2$, ``0.5 * np.sum((y - t)**2)``, with the example
    > $y = (0.1, 0.05, 0.6, 0, 0.05, 0.1, 0, 0.1, 0, 0)$, $t = e_2$.

    Derivation. $\partial E/\partial y_k = y_k - t_k$ (the $\frac12$ cancels the 2). In the example
    $E = \frac12(0.01+0.0025+0.16+0.0025+0.01+0.01) = 0.0975$.

    Verdict: **holds** (the library's ``MeanSquaredError`` uses this convention). Checks: sympy,
    FD, library, the example value.
    """
    y = np.array([0.1, 0.05, 0.6, 0.0, 0.05, 0.1, 0.0, 0.1, 0.0, 0.0])
    t = np.eye(10)[2]
    value, grad = claim(y, t)
    assert abs(value - 0.0975) < 1e-12 and abs(MeanSquaredError().forward(y[:, None], t[:, None]) - value) < 1e-12
    assert_fd("MSE gradient", grad, lambda v: claim(v, t)[0], y, gradient=True)
    assert_fd(
        "library MSE gradient", grad, lambda v: MeanSquaredError().forward(v[:, None], t[:, None]), y, gradient=True
    )
    assert_close("library", MeanSquaredError().gradient(y[:, None], t[:, None])[0], grad)


@symbolic("loss.mse002")
def test_mse002_symbolic():
    sp = require_sympy()
    y = sp.symbols("y0:3", real=True)
    t = sp.symbols("t0:3", real=True)
    E = sp.Rational(1, 2) * sum((a - b) ** 2 for a, b in zip(y, t))
    sym_zero(sp, sp.Matrix([sp.diff(E, a) - (a - b) for a, b in zip(y, t)]), "dE/dy - (y - t)")


def _ce_exact(y, t):
    r"""The formula $E = -\sum_k t_k\log y_k$ as printed."""
    with np.errstate(divide="ignore"):
        return -np.sum(t * np.log(y))


def _ce_code002(y, t):
    """The code: ``delta = 1e-7; -np.sum(t * np.log(y + delta))``."""
    return -np.sum(t * np.log(y + 1e-7))


@proof(
    id="loss.ce_delta002",
    seed="002",
    location="§交叉熵误差 cross_entropy_error (delta = 1e-7)",
    statement=r"$E = -\sum_k t_k\log y_k$, code -np.sum(t * np.log(y + 1e-7))",
    verdict=CONVENTION,
    corrected=r"the code computes $-\sum t_k\log(y_k+\delta)$, $\delta=10^{-7}$: it differs from $E$ by "
    r"$\sum t_k\log(1+\delta/y_k) \le \delta\sum t_k/y_k$ and its gradient is $-t/(y+\delta)$",
)
def test_ce_delta002(seed=_ce_exact, corrected=_ce_code002):
    r"""**DLFS notes, ``cross_entropy_error`` with ``delta = 1e-7``.**

    > $E = -\sum_k t_k \log y_k$; ``delta = 1e-7; return -np.sum(t * np.log(y + delta))``;
    > mini-batch: $E = -\frac1N\sum_n\sum_k t_{nk}\log y_{nk}$, ``... / batch_size``; for integer labels
    > (commented out): ``-np.sum(np.log(y[np.arange(batch_size), t] + 1e-7)) / batch_size``.

    Derivation. $-\log(y+\delta) = -\log y - \log(1+\delta/y)$, so the code's value is below $E$ by
    $\sum_k t_k\log(1+\delta/y_k)\in(0, \delta\sum_k t_k/y_k]$, negligible unless some $y_k \lesssim \delta$;
    it stays finite at $y_k=0$ (value $-\log\delta = 16.1$) where $E=\infty$. The mini-batch version divides
    by $N$: the mean of per-sample losses, the project's batch convention.

    Verdict: **holds under a stated convention** (the $\delta$-shifted loss; the library has no $\delta$ and
    refuses zero probabilities instead). Check: the bound on the difference; FD of the code's loss equals
    $-t/(y+\delta)$; the batch version equals ``CrossEntropy.forward_batched`` within the bound.
    """
    d = 1e-7
    t = np.array([0.0, 1.0, 0.0])
    code = lambda y: corrected(y, t)  # noqa: E731
    exact = CrossEntropy(check_sum=False).forward(P[:, None], t[:, None])
    assert abs(seed(P, t) - exact) < 1e-12, "the printed formula is the exact cross-entropy"
    gap = exact - code(P)
    assert 0 < gap <= d * np.sum(t / P), f"the code's value is below E by {gap} (expected in (0, delta sum t/y])"
    assert_fd("code gradient", -t / (P + d), code, P, gradient=True, initial_step=1e-3)
    Yb = np.array([[0.2, 0.7, 0.1], [0.5, 0.25, 0.25]])
    Tb = np.array([[0, 1, 0], [1, 0, 0]], dtype=float)
    code_batch = corrected(Yb, Tb) / 2
    lib = CrossEntropy().forward_batched(Yb, Tb)
    assert 0 < lib - code_batch <= d * np.sum(Tb / Yb) / 2
    assert abs(code(np.zeros(3)) + np.log(d)) < 1e-12
    labels = np.argmax(Tb, axis=1)  # the commented-out index-label version gives the same value
    assert abs(-np.sum(np.log(Yb[np.arange(2), labels] + 1e-7)) / 2 - code_batch) < 1e-15


def _seed001_entropy(x, y, C):
    """numpy-layers post ``Entropy.forward``: grad = onehot * -1 / x; returns np.mean(-onehot * log(x), axis=0)."""
    onehot = np.zeros((len(y), C))
    onehot[np.arange(len(y)), y] = 1
    return np.mean(-onehot * np.log(x), axis=0), onehot * -1 / x


def _entropy001_stored(x, y, C=3):
    """The stored gradient ``one_hot_y * -1 / x``."""
    return _seed001_entropy(x, y, C)[1]


def _entropy001_right(x, y, C=3):
    """The gradient of the returned loss: ``-one_hot_y / (N x)``."""
    return _seed001_entropy(x, y, C)[1] / len(y)


@proof(
    id="loss.entropy001",
    seed="001",
    location="§3 单独的CrossEntropy, class Entropy",
    statement="forward returns np.mean(-one_hot_y * np.log(x), axis=0); self.grad = one_hot_y * -1 / x",
    verdict=WRONG,
    corrected="the forward is a per-class vector (mean over the batch axis), and the gradient of its sum "
    "(the batch-mean loss) is -onehot / (N x): the stored grad lacks the 1/N",
)
def test_entropy001(seed=_entropy001_stored, corrected=_entropy001_right):
    r"""**numpy-layers post, the separate cross-entropy layer.**

    > ``self.grad = one_hot_y * -1 / x``; ``return np.mean(-one_hot_y * np.log(x), axis=0)``.

    Derivation. ``np.mean(..., axis=0)`` averages over the batch for every class, giving a vector of
    $C$ numbers whose sum is the batch-mean loss $L = -\frac1N\sum_n\log x_{n,y_n}$. Its gradient is
    $\partial L/\partial x_{nk} = -[k=y_n]/(N x_{nk})$. The stored gradient has no $1/N$, so it is the
    gradient of the *sum* of per-sample losses, inconsistent with the value returned (and with the
    ``Softmax`` loss layer of the same seed, which divides by $N$).

    Verdict: **wrong** (factor $N$). Check: FD of the sum of the returned vector equals grad$/N$;
    the restated grad differs from it; ``CrossEntropy.gradient_batched`` equals the corrected one.
    """
    x = np.array([[0.2, 0.7, 0.1], [0.5, 0.25, 0.25]])
    y = np.array([1, 0])
    vec, _ = _seed001_entropy(x, y, 3)
    assert vec.shape == (3,)
    f = lambda v: np.sum(_seed001_entropy(v.reshape(2, 3), y, 3)[0])  # noqa: E731
    true = fd(f, x.reshape(-1), gradient=True, initial_step=1e-3).reshape(2, 3)
    assert_fd("grad / N", corrected(x, y).reshape(1, -1), f, x.reshape(-1), gradient=True, initial_step=1e-3)
    assert_differs("stored grad vs true", seed(x, y), true, by=float(np.max(np.abs(seed(x, y)))) / 2, atol=1e-6)
    assert_close("library gradient_batched", CrossEntropy().gradient_batched(x, y), corrected(x, y))


def _batch_mean(values):
    r"""The batch reduction: $E = \frac1N\sum_n E_n$ (and the same for the gradient rows)."""
    return np.mean(values, axis=0)


@proof(
    id="loss.batch_mean",
    seed="002",
    location="§mini-batch 学习; FCNN-Jacobian notes trainBatch `return loss / X.shape[0]`",
    statement=r"$E = -\frac1N\sum_n\sum_k t_{nk}\log y_{nk}$ (the batch loss is the mean of per-sample losses)",
    verdict=HOLDS,
)
def test_batch_mean(claim=_batch_mean):
    r"""**DLFS notes mini-batch cross-entropy; FCNN-Jacobian notes ``trainBatch`` (loss and gradient means).**

    > $E = -\frac{1}{N}\sum_n\sum_k t_{nk}\log y_{nk}$; FCNN-Jacobian notes: ``loss += self.lossFunc(yHat, Y[i])`` ...
    > ``return loss / X.shape[0]``, and ``_update`` divides the summed ``dw`` by ``dcnt`` (= N).

    Derivation. The batch loss is $\frac1N\sum_n L_n$, so its gradient is $\frac1N\sum_n\nabla L_n$
    (linearity). FCNN-Jacobian notes accumulates ``dw += X dz`` per sample and divides by ``dcnt`` = the number of
    samples: the mean gradient. This is the project's batch convention.

    Verdict: **holds**. Check: the library's batch loss/gradient equal the mean of its per-sample
    values; FD of the batch loss.
    """
    Z = np.array([[0.3, -1.2, 0.8], [1.0, 0.2, -0.4], [0.0, 0.5, -0.5]])
    y = np.array([2, 0, 1])
    lib = SoftmaxCrossEntropy()
    per = [lib.forward(Z[k][:, None], int(y[k])) for k in range(3)]
    rows = np.vstack([lib.gradient(Z[k][:, None], int(y[k])) for k in range(3)])
    assert abs(lib.forward_batched(Z, y) - claim(per)) < 1e-12
    # the gradient of the mean w.r.t. sample k's logits is its row divided by N (row k of the batch matrix)
    grad_rows = np.vstack([claim([rows[k] if j == k else 0 * rows[k] for j in range(3)]) for k in range(3)])
    assert_close("mean of rows / N layout", lib.gradient_batched(Z, y), grad_rows)
    assert_fd(
        "FD of the batch mean",
        grad_rows.reshape(1, -1),
        lambda v: lib.forward_batched(v.reshape(3, 3), y),
        Z.reshape(-1),
        gradient=True,
    )


@symbolic("loss.entropy001")
def test_entropy001_symbolic():
    sp = require_sympy()
    Nn, Cc = 2, 2
    x = sp.Matrix(Nn, Cc, lambda i, j: sp.Symbol(f"x{i}{j}", positive=True))
    y = [1, 0]
    onehot = sp.Matrix(Nn, Cc, lambda i, j: 1 if j == y[i] else 0)
    vec = [sum(-onehot[i, j] * sp.log(x[i, j]) for i in range(Nn)) / Nn for j in range(Cc)]  # mean over axis 0
    total = sum(vec)
    grad = x.applyfunc(lambda v: sp.diff(total, v))
    stored = sp.Matrix(Nn, Cc, lambda i, j: -onehot[i, j] / x[i, j])
    sym_zero(sp, grad - stored / Nn, "gradient of the returned loss = stored grad / N")
    assert any(sp.simplify(e) != 0 for e in grad - stored), "the stored grad is not the gradient"
