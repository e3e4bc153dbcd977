r"""Activations: every elementwise Jacobian the sources state, including the value at kinks.

Convention (the README's conventions table, "kinks"): at a kink the derivative takes the $x \le 0$ branch, i.e. the left
derivative; finite differences at a kink are therefore taken with ``step_direction=-1``.
"""

from __future__ import annotations

import numpy as np

from jacobian_nn.activations import ELU, LeakyReLU, ReLU, Sigmoid, Step, Tanh

from ._helpers import assert_close, assert_differs, assert_fd, fd, sym_zero
from ._registry import CONVENTION, HOLDS, WRONG, proof, require_sympy, symbolic

Z = np.array([-1.3, -0.4, 0.6, 1.7])  # away from every kink
ZK = np.array([0.0, -0.7, 0.9])  # a kink at index 0


def _fwd(act):
    return lambda v: act.forward(v[:, None])[:, 0]


def _sigmoid_J(z):
    """The table's Sigmoid row: ``diag(e^{-z} / (1 + e^{-z})^2)``."""
    return np.diag(np.exp(-z) / (1 + np.exp(-z)) ** 2)


def _tanh_J(z):
    """The table's tanh row and the code ``np.diag(1 - np.tanh(z) * np.tanh(z))``."""
    return np.diag(1 - np.tanh(z) * np.tanh(z))


@proof(
    id="act.sigmoid",
    seed="000",
    location="§激活函数, Sigmoid",
    statement=r"$J_{ii} = e^{-X_i}/(1+e^{-X_i})^2$, $J_{ij}=0$ for $i \ne j$",
    verdict=HOLDS,
)
def test_sigmoid_jacobian(claim=_sigmoid_J):
    r"""**FCNN-Jacobian notes, activation table, Sigmoid.**

    > $\operatorname{Sigmoid}(X)_i=\frac{1}{1+e^{-X_i}}$, $J_{i,j} = \frac{e^{-X_i}}{(1+e^{-X_i})^2}$ if $i=j$, else $0$.

    Derivation. $\sigma(x) = (1+e^{-x})^{-1}$, so $\sigma'(x) = e^{-x}(1+e^{-x})^{-2}
    = \sigma(x)\,\frac{e^{-x}}{1+e^{-x}} = \sigma(x)(1-\sigma(x)) = \sigma(x)\sigma(-x)$.
    Output $i$ depends on input $i$ only, so $J$ is diagonal.

    Verdict: **holds**. Checks: sympy ($\sigma' - e^{-x}/(1+e^{-x})^2 = 0$ and
    $= \sigma(1-\sigma)$); finite differences; ``Sigmoid.jacobian``.
    """
    assert_fd("sigmoid J (source formula)", claim(Z), _fwd(Sigmoid()), Z)
    assert_close("library Sigmoid.jacobian", Sigmoid().jacobian(Z[:, None]), claim(Z))


@symbolic("act.sigmoid")
def test_sigmoid_jacobian_symbolic():
    sp = require_sympy()
    xs = sp.symbols("x0:3", real=True)
    f = sp.Matrix([1 / (1 + sp.exp(-x)) for x in xs])
    J = f.jacobian(xs)
    seed = sp.diag(*[sp.exp(-x) / (1 + sp.exp(-x)) ** 2 for x in xs])
    sym_zero(sp, J - seed, "sigmoid J - seed")
    sym_zero(sp, J - sp.diag(*[fi * (1 - fi) for fi in f]), "sigmoid J - s(1-s)")


@proof(
    id="act.tanh",
    seed="000",
    location="§激活函数, tanh",
    statement=r"$J_{ii} = 1-\tanh^2(X_i)$, off-diagonal 0",
    verdict=HOLDS,
)
def test_tanh_jacobian(claim=_tanh_J):
    r"""**FCNN-Jacobian notes, activation table, tanh.**

    > $J_{i,j} = 1-\tanh^2(X_i)$ if $i=j$, else $0$.

    Derivation. $\tanh = \sinh/\cosh$, $\tanh' = (\cosh^2-\sinh^2)/\cosh^2 = 1-\tanh^2$.
    FCNN-Jacobian notes' code computes ``np.diag(1 - np.tanh(z) * np.tanh(z))``: the same.

    Verdict: **holds**. Checks: sympy, finite differences, ``Tanh.jacobian``.
    """
    assert_fd("tanh J (source formula)", claim(Z), _fwd(Tanh()), Z)
    assert_close("library Tanh.jacobian", Tanh().jacobian(Z[:, None]), claim(Z))


@symbolic("act.tanh")
def test_tanh_jacobian_symbolic():
    sp = require_sympy()
    xs = sp.symbols("x0:3", real=True)
    J = sp.Matrix([sp.tanh(x) for x in xs]).jacobian(xs)
    sym_zero(sp, J - sp.diag(*[1 - sp.tanh(x) ** 2 for x in xs]), "tanh J - (1 - tanh^2)")


def _piecewise_symbolic(sp, f_pos, f_neg, d_pos, d_neg):
    """d/dx of each branch equals the stated branch derivative."""
    x = sp.Symbol("x", real=True)
    sym_zero(sp, sp.diff(f_pos(x), x) - d_pos(x), "positive branch")
    sym_zero(sp, sp.diff(f_neg(x), x) - d_neg(x), "non-positive branch")


def _relu_J_left(z):
    """The table's ReLU row read literally: 1 on the diagonal where ``z > 0``, 0 everywhere else (0 at 0)."""
    return np.diag((z > 0).astype(float))


def _relu_J_right(z):
    """The other one-sided choice at the kink: 1 where ``z >= 0``."""
    return np.diag((z >= 0).astype(float))


@proof(
    id="act.relu",
    seed="000",
    location="§激活函数, ReLU (also DLFS notes §误差反向传播法, ReLU)",
    statement=r"$J_{ij}=1$ if $i=j, X_i>0$; $0$ otherwise (so the entry at $X_i = 0$ is 0)",
    verdict=CONVENTION,
    corrected=r"true for $X_i \ne 0$; at $X_i = 0$ ReLU has no derivative, and the table's 0 is the left "
    r"derivative: the statement holds with relu'(0) := 0 (the project's convention)",
)
def test_relu_jacobian(seed=_relu_J_right, corrected=_relu_J_left):
    r"""**FCNN-Jacobian notes, activation table, ReLU; DLFS notes, ReLU layer.**

    > $\operatorname{ReLU}(X)_i=\max(X_i,0)$, $J_{i,j} = 1$ if $i=j, X_i>0$; $0$ otherwise.
    > (DLFS notes: $\frac{\partial y}{\partial x} = 1\ (x>0)$, $0\ (x\le 0)$.)

    Derivation. On $x>0$, $\max(x,0)=x$ (slope 1); on $x<0$ it is $0$ (slope 0). At $x=0$
    the function has no derivative; the left derivative is $0$, the right one $1$. The
    table's "otherwise" puts $x=0$ in the 0 branch: a value at a point where the derivative does
    not exist, so the row holds only with a convention at the kink, here the left derivative
    (the project's convention, relu'(0) = 0). Off the diagonal "otherwise" gives 0, which is right.

    Verdict: **holds under a stated convention** (relu'(0) := left derivative = 0). Checks: the row
    equals finite differences away from 0; at 0 it equals the *left* difference and differs from the
    *right* one by 1 (the other choice, ``seed`` in the substitution test, is the right derivative);
    ``ReLU.jacobian`` gives exactly 0 at 0.
    """
    assert_fd("relu J", corrected(Z), _fwd(ReLU()), Z)
    assert_fd("relu J at 0 (left)", corrected(ZK), _fwd(ReLU()), ZK, step_direction=-1)
    right = fd(_fwd(ReLU()), ZK, step_direction=1)
    assert_close("the other choice = right derivative", seed(ZK), right, atol=1e-8)
    assert_differs("the two one-sided values at 0", seed(ZK), corrected(ZK), by=1.0, atol=1e-12)
    assert_close("library ReLU.jacobian incl. kink", ReLU().jacobian(ZK[:, None]), corrected(ZK))
    assert ReLU().jacobian(np.zeros((1, 1)))[0, 0] == corrected(np.zeros(1))[0, 0] == 0.0


@symbolic("act.relu")
def test_relu_jacobian_symbolic():
    sp = require_sympy()
    _piecewise_symbolic(sp, lambda x: x, lambda x: 0 * x, lambda x: 1, lambda x: 0)


LEAKY_A = 0.1


def _leaky_J_literal(z, a=LEAKY_A):
    """The Leaky ReLU row read literally: 1 where ``i = j, X_i > 0``, alpha in *every* other entry."""
    J = np.full((z.size, z.size), a)
    J[np.diag_indices(z.size)] = np.where(z > 0, 1.0, a)
    return J


def _leaky_J_diagonal(z, a=LEAKY_A):
    """The row with 'otherwise' read as 'i = j, X_i <= 0' and 0 off the diagonal (the document's own code)."""
    return np.diag(np.where(z > 0, 1.0, a))


@proof(
    id="act.leaky_relu",
    seed="000",
    location="§激活函数, Leaky ReLU",
    statement=r"$J_{ij}=1$ if $i=j, X_i>0$; $\alpha$ otherwise",
    verdict=CONVENTION,
    corrected=r"read literally, 'otherwise' puts $\alpha$ on every off-diagonal entry, where the derivative is 0; "
    r"the row holds with 'otherwise' meaning '$i=j$, $X_i\le0$' (the document says $J_f$ is diagonal and "
    r"its code builds np.diag) and 0 off the diagonal, with the left derivative $\alpha$ at $X_i = 0$",
)
def test_leaky_relu_jacobian(seed=_leaky_J_literal, corrected=_leaky_J_diagonal):
    r"""**FCNN-Jacobian notes, activation table, Leaky ReLU.**

    > $\operatorname{LeakyReLU}(X)_i=\max(X_i,\alpha X_i)$, $J_{i,j} = 1$ if $i=j, X_i>0$; $\alpha$ otherwise.
    > (Same document: "由于 $f(X)^{(i)}$ 只与 $X^{(i)}$ 有关,所以 $J_f$ 是一个对角阵的形式";
    > code ``np.diag(np.where(z >= 0, 1, self.alpha))``.)

    Derivation. For $0<\alpha<1$, $\max(x,\alpha x)$ is $x$ on $x>0$ and $\alpha x$ on
    $x\le 0$: slopes $1$ and $\alpha$; at 0 the left derivative is $\alpha$. Output $i$ does not
    depend on $X_j$, $j\ne i$, so every off-diagonal entry is $0$. Read literally, "otherwise" covers
    the off-diagonal entries too and sets them to $\alpha$: finite differences give 0 there. The row
    is right only with "otherwise" restricted to the diagonal, which the document's own sentence about
    $J_f$ and its code support; no printed symbol has to change.

    Verdict: **holds under a stated convention** ("otherwise" = "$i=j$, $X_i\le0$"; left derivative at 0).
    Checks: the literal row differs from FD by $\alpha$ off the diagonal; the diagonal reading equals FD
    (left FD at the kink) and ``LeakyReLU.jacobian``.
    """
    act = LeakyReLU(LEAKY_A)
    assert_differs("literal row (alpha off the diagonal) vs FD", seed(Z), fd(_fwd(act), Z), by=LEAKY_A, atol=1e-8)
    assert_fd("leaky J", corrected(Z), _fwd(act), Z)
    assert_fd("leaky J at 0 (left)", corrected(ZK), _fwd(act), ZK, step_direction=-1)
    assert_close("library LeakyReLU.jacobian", act.jacobian(ZK[:, None]), corrected(ZK))


@symbolic("act.leaky_relu")
def test_leaky_relu_jacobian_symbolic():
    sp = require_sympy()
    a = sp.Symbol("alpha", positive=True)
    _piecewise_symbolic(sp, lambda x: x, lambda x: a * x, lambda x: 1, lambda x: a)
    xs = sp.symbols("x0:2", negative=True)
    J = sp.Matrix([a * x for x in xs]).jacobian(xs)
    assert J[0, 1] == 0 and a != 0, "off-diagonal entries are 0, not alpha"


def _elu_J_table(x):
    """The ELU row of the table: 1 where ``x > 0``, 0 otherwise."""
    return np.diag(np.where(x > 0, 1.0, 0.0))


def _elu_J_true(x):
    """ELU (alpha = 1): 1 where ``x > 0``, ``e^x`` where ``x <= 0``."""
    return np.diag(np.where(x > 0, 1.0, np.exp(np.minimum(x, 0.0))))


@proof(
    id="act.elu",
    seed="000",
    location="§激活函数, ELU",
    statement=r"ELU$(X)_i = e^{X_i}-1$ for $X_i\le 0$, and $J_{ii} = 0$ for $X_i \le 0$ ('0 otherwise')",
    verdict=WRONG,
    corrected=r"$J_{ii} = e^{X_i}$ for $X_i\le 0$ ($\alpha e^{X_i}$ with a scale $\alpha$); elu'(0) = 1 (= $\alpha$)",
)
def test_elu_jacobian(seed=_elu_J_table, corrected=_elu_J_true):
    r"""**FCNN-Jacobian notes, activation table, ELU.**

    > $\operatorname{ELU}(X)_i = X_i$ ($X_i>0$), $e^{X_i}-1$ ($X_i\le0$);
    > $J_{i,j} = 1$ if $i=j, X_i>0$; $0$ otherwise.

    Derivation. $\frac{d}{dx}(e^x-1) = e^x \neq 0$. With the usual scale,
    $\alpha(e^x-1)$ has derivative $\alpha e^x$; at $0$ the left derivative is $\alpha$
    (for $\alpha=1$ ELU is $C^1$). The source's table copies the ReLU row. Its **code** is
    right: ``np.diag(np.where(z >= 0, 1, _exp(z)))``.

    Verdict: **wrong**. Corrected: $J_{ii} = \alpha e^{X_i}$ for $X_i \le 0$.
    Check: at $x=-0.5$ the source's $0$ differs from the finite difference by exactly
    $e^{-0.5}=0.6065$; the corrected entry matches FD and ``ELU.jacobian``.
    """
    act = ELU(1.0)
    x = np.array([-0.5, 0.8])
    numeric = fd(_fwd(act), x)
    assert_differs("table's ELU J vs FD", seed(x), numeric, by=np.exp(-0.5), atol=1e-7)
    assert_fd("corrected ELU J", corrected(x), _fwd(act), x)
    assert_close("library ELU.jacobian", act.jacobian(x[:, None]), corrected(x))
    a = 0.5
    assert_close(
        "library ELU(alpha) at kink = alpha",
        ELU(a).jacobian(ZK[:, None]),
        np.diag(np.where(ZK > 0, 1.0, a * np.exp(ZK))),
    )
    assert_fd("ELU(alpha) left FD at 0", ELU(a).jacobian(ZK[:, None]), _fwd(ELU(a)), ZK, step_direction=-1)


@symbolic("act.elu")
def test_elu_jacobian_symbolic():
    sp = require_sympy()
    x = sp.Symbol("x", real=True)
    a = sp.Symbol("alpha", positive=True)
    sym_zero(sp, sp.diff(a * (sp.exp(x) - 1), x) - a * sp.exp(x), "ELU branch derivative")
    assert sp.simplify(sp.diff(sp.exp(x) - 1, x) - 0) != 0  # the source's 0 is not the derivative


def _code000_kink_values(alpha_leaky=0.01):
    """What the FCNN-Jacobian notes' NNFunctions.py computes at z = 0: ``np.where(z >= 0, 1, ...)`` -> 1."""
    z = np.array([0.0])
    return {"relu": float(np.where(z >= 0, 1.0, 0.0)[0]), "leaky": float(np.where(z >= 0, 1.0, alpha_leaky)[0])}


def _left_kink_values(alpha_leaky=0.01):
    """The table's values at 0 (its 'otherwise' branch): the left derivatives."""
    return {"relu": 0.0, "leaky": alpha_leaky}


@proof(
    id="act.code000_kinks",
    seed="000",
    location="NNFunctions.py, ReLU/LeakyReLU.gradient (and ELU.gradient)",
    statement="code uses np.where(z >= 0, 1, ...): relu'(0) = 1, leaky'(0) = 1 (ELU: np.where(z >= 0, 1, _exp(z)))",
    verdict=CONVENTION,
    corrected="at z = 0 ReLU and Leaky ReLU have no derivative; the code's 1 is the right derivative, as valid a "
    "choice as the table's left one (0, alpha), but a different one, so code and table disagree at 0 "
    "(the project follows the table: the x <= 0 branch). ELU with its implicit alpha = 1 is "
    "differentiable at 0 with elu'(0) = 1: both branches agree there and nothing needs a convention",
)
def test_code000_kinks(seed=_left_kink_values, corrected=_code000_kink_values):
    r"""**FCNN-Jacobian notes, ``NNFunctions.py``: ReLU, LeakyReLU, ELU.**

    > ``return np.diag(np.where(z >= 0, 1, 0))`` (ReLU), ``np.diag(np.where(z >= 0, 1, self.alpha))`` (Leaky),
    > ``np.diag(np.where(z >= 0, 1, _exp(z)))`` (ELU); the forwards also test ``z >= 0``.

    Derivation. Away from 0 the code agrees with the table. At exactly $z=0$ ReLU and Leaky ReLU
    have no derivative; the code takes the $z>0$ branch, i.e. the right derivative $1$, while
    the table's "otherwise" gives the left one ($0$, $\alpha$). Both are one-sided derivatives (both
    are subgradients of ReLU), so the code is not wrong: it holds under the right-derivative
    convention, and differs from its own table's convention at that one point. ELU with the
    code's implicit $\alpha=1$ is $C^1$: $\lim_{z\to0^-} e^z = 1$, so its value at 0 is the derivative and
    needs no convention.

    Verdict: **holds under a stated convention** (right derivative at the kink). Check: the code's
    values at 0 equal the *right* finite differences and differ from the *left* ones (the table's values,
    ``seed`` in the substitution test) by $1$ (ReLU) and $1-\alpha$ (Leaky); ELU's left and right
    differences at 0 agree with the code's 1; the library gives the left values.
    """
    z0 = np.array([0.0])
    code, left_vals = corrected(), seed()
    for name, act in (("relu", ReLU()), ("leaky", LeakyReLU(0.01))):
        right_fd = fd(_fwd(act), z0, step_direction=1)[0, 0]
        left_fd = fd(_fwd(act), z0, step_direction=-1)[0, 0]
        assert abs(code[name] - right_fd) < 1e-7, f"{name}: the code's value is the right derivative"
        assert abs(left_vals[name] - left_fd) < 1e-7, f"{name}: the table's value is the left derivative"
        assert_differs(f"{name}: right vs left derivative", code[name], left_fd, by=1.0 - left_vals[name], atol=1e-7)
        assert act.jacobian(z0[:, None])[0, 0] == left_vals[name]
    elu_code = float(np.where(z0 >= 0, 1.0, np.exp(z0))[0])
    for d in (-1, 1):
        assert abs(fd(_fwd(ELU(1.0)), z0, step_direction=d)[0, 0] - elu_code) < 1e-7, "ELU(1) is C^1 at 0"


def _relu004_prose(x):
    """CS231n walkthrough §4.3 prose: df/dx = 1 for x >= 0, 0 for x < 0."""
    return (np.asarray(x) >= 0).astype(float)


def _relu004_code(x):
    """Its code ``dx = (x > 0) * dout`` with dout = 1."""
    return (np.asarray(x) > 0).astype(float)


@proof(
    id="act.relu004_prose",
    seed="004",
    location="§4.3, relu_backward: local gradient of max(0,x)",
    statement=r"$\partial f/\partial x = 1$ for $x \geqslant 0$ ($\hat x>0$), $0$ for $x<0$ ($\hat x=0$)",
    verdict=WRONG,
    corrected=r"$1$ for $x>0$, $0$ for $x \le 0$ (what its code ``dx = (x > 0) * dout`` computes; relu'(0)=0): at "
    r"$x=0$ the two conditions the text gives for one case disagree ($x\geqslant0$ says 1, $\hat x = 0$ says 0)",
)
def test_relu004_prose(seed=_relu004_prose, corrected=_relu004_code):
    r"""**CS231n walkthrough, §4.3, ReLU's local gradient.**

    > $\frac{\partial f}{\partial x}= 1,\ x \geqslant 0\ (\hat{x}>0)$; $\frac{\partial f}{\partial x}= 0,\ x < 0\ (\hat{x}=0)$,
    > next to the code ``dx = (x > 0) * dout``.

    Derivation. The parenthetical conditions contradict the main ones at $x=0$: there
    $\hat x = 0$, which the prose files under the 0 branch, while "$x\geqslant 0$" files it under 1.
    Taken alone, "1 for $x \geqslant 0$" would be the right-derivative convention (like
    ``act.code000_kinks``); but the text gives two conditions for the same case that disagree, and
    its own code gives 0 at $x=0$ (the left derivative, the project's convention): a printed
    condition has to change.
    The source's worked example (a $3\times3$ ``x``, ``dout`` and ``dx``) has no zero entry and
    holds; it is checked here too.

    Verdict: **wrong** at $x=0$ (prose vs its parentheticals and its code). Check: at 0 the prose gives 1
    while $\hat x = \max(0, 0) = 0$ files 0 under its 0 row and the code gives 0 = left FD; the worked
    example is reproduced.
    """
    dout = np.array([[0.1, -0.3, 0.7], [0.4, 0.25, -0.5], [-0.2, 0.3, 0.8]])
    x = np.array([[-1.0, -1.0, 3.0], [-2.0, 1.5, 4.0], [2.0, 4.0, -5.0]])  # (x) centre entry: any positive value
    expected = np.array([[0, 0, 0.7], [0, 0.25, -0.5], [-0.2, 0.3, 0]])
    assert_close("CS231n walkthrough relu_backward worked example", corrected(x) * dout, expected)
    xhat0 = max(0.0, 0.0)
    parenthetical_at_0 = 1.0 if xhat0 > 0 else 0.0
    left = fd(_fwd(ReLU()), np.array([0.0]), step_direction=-1)[0, 0]
    assert abs(corrected(0.0) - left) < 1e-9 and corrected(0.0) == parenthetical_at_0
    assert_differs("prose relu'(0) vs its own parenthetical and the code", seed(0.0), parenthetical_at_0, by=1.0)
    assert_close("library ReLU.vjp_batched = code", ReLU().vjp_batched(x, np.maximum(x, 0), dout), corrected(x) * dout)


def _step_code(x):
    """DLFS notes ``step_function``: ``np.array(x > 0, dtype=np.int64)``."""
    return np.array(x > 0, dtype=np.int64)


@proof(
    id="act.step",
    seed="002",
    location="§激活函数, step_function h(x)",
    statement=r"$h(x)=1\ (x>0)$, $0\ (x\le0)$; code np.array(x > 0, dtype=np.int64)",
    verdict=HOLDS,
)
def test_step(claim=_step_code):
    r"""**DLFS notes, perceptron/step function.**

    > $h(x) = 0\ (x\le0)$, $1\ (x>0)$; ``def step_function(x): return np.array(x > 0, dtype=np.int64)``.

    Derivation. The code's comparison ``x > 0`` is the formula's case split, including $h(0)=0$.
    (The document states no derivative; $h$ is constant on each side of 0, which is why the book sets
    perceptron weights by hand and switches to sigmoid for learning. The library's ``Step.jacobian`` is 0,
    the left derivative at 0.)

    Verdict: **holds**. Check: the code equals the formula at $-1, 0.7, 0$ (and $h(0)=0$); ``Step.forward``
    gives the same values; FD (left at 0) and ``Step.jacobian`` are 0.
    """
    z = np.array([-1.0, 0.7, 0.0])
    assert_close("code = formula", claim(z), [0.0, 1.0, 0.0], atol=0, rtol=0)
    assert_close("library Step.forward", Step().forward(z[:, None])[:, 0], claim(z), atol=0, rtol=0)
    assert_fd("step J", np.zeros((3, 3)), _fwd(Step()), z, step_direction=-1)
    assert_close("library Step.jacobian", Step().jacobian(z[:, None]), np.zeros((3, 3)))
