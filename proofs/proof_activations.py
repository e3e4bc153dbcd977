r"""Activations: every elementwise Jacobian the seeds state, including the value at kinks.

Convention (the README's conventions table, "kinks"): at a kink the derivative takes the $x \le 0$ branch, i.e. the left
derivative; finite differences at a kink are therefore taken with ``step_direction=-1``.
"""

from __future__ import annotations

import numpy as np

from jacobian_nn.activations import ELU, LeakyReLU, ReLU, Sigmoid, Step, Tanh

from ._helpers import assert_close, assert_differs, assert_fd, fd, sym_zero
from ._registry import HOLDS, WRONG, proof, require_sympy, symbolic

Z = np.array([-1.3, -0.4, 0.6, 1.7])  # away from every kink
ZK = np.array([0.0, -0.7, 0.9])       # a kink at index 0


def _fwd(act):
    return lambda v: act.forward(v[:, None])[:, 0]


@proof(id="act.sigmoid", seed="000", location="§激活函数, Sigmoid",
       statement=r"$J_{ii} = e^{-X_i}/(1+e^{-X_i})^2$, $J_{ij}=0$ for $i \ne j$", verdict=HOLDS)
def test_sigmoid_jacobian():
    r"""**Seed 000, activation table, Sigmoid.**

    > $\operatorname{Sigmoid}(X)_i=\frac{1}{1+e^{-X_i}}$, $J_{i,j} = \frac{e^{-X_i}}{(1+e^{-X_i})^2}$ if $i=j$, else $0$.

    Derivation. $\sigma(x) = (1+e^{-x})^{-1}$, so $\sigma'(x) = e^{-x}(1+e^{-x})^{-2}
    = \sigma(x)\,\frac{e^{-x}}{1+e^{-x}} = \sigma(x)(1-\sigma(x)) = \sigma(x)\sigma(-x)$.
    Output $i$ depends on input $i$ only, so $J$ is diagonal.

    Verdict: **holds**. Checks: sympy ($\sigma' - e^{-x}/(1+e^{-x})^2 = 0$ and
    $= \sigma(1-\sigma)$); finite differences; ``Sigmoid.jacobian``.
    """
    seed = np.diag(np.exp(-Z) / (1 + np.exp(-Z)) ** 2)
    assert_fd("sigmoid J (seed formula)", seed, _fwd(Sigmoid()), Z)
    assert_close("library Sigmoid.jacobian", Sigmoid().jacobian(Z[:, None]), seed)


@symbolic("act.sigmoid")
def test_sigmoid_jacobian_symbolic():
    sp = require_sympy()
    xs = sp.symbols("x0:3", real=True)
    f = sp.Matrix([1 / (1 + sp.exp(-x)) for x in xs])
    J = f.jacobian(xs)
    seed = sp.diag(*[sp.exp(-x) / (1 + sp.exp(-x)) ** 2 for x in xs])
    sym_zero(sp, J - seed, "sigmoid J - seed")
    sym_zero(sp, J - sp.diag(*[fi * (1 - fi) for fi in f]), "sigmoid J - s(1-s)")


@proof(id="act.tanh", seed="000", location="§激活函数, tanh",
       statement=r"$J_{ii} = 1-\tanh^2(X_i)$, off-diagonal 0", verdict=HOLDS)
def test_tanh_jacobian():
    r"""**Seed 000, activation table, tanh.**

    > $J_{i,j} = 1-\tanh^2(X_i)$ if $i=j$, else $0$.

    Derivation. $\tanh = \sinh/\cosh$, $\tanh' = (\cosh^2-\sinh^2)/\cosh^2 = 1-\tanh^2$.
    Seed 000's code computes ``np.diag(1 - np.tanh(z) * np.tanh(z))``: the same.

    Verdict: **holds**. Checks: sympy, finite differences, ``Tanh.jacobian``.
    """
    seed = np.diag(1 - np.tanh(Z) ** 2)
    assert_fd("tanh J (seed formula)", seed, _fwd(Tanh()), Z)
    assert_close("library Tanh.jacobian", Tanh().jacobian(Z[:, None]), seed)


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


@proof(id="act.relu", seed="000", location="§激活函数, ReLU (also seed 002 §误差反向传播法, ReLU)",
       statement=r"$J_{ii}=1$ if $X_i>0$, $0$ otherwise (so relu'(0) = 0)", verdict=HOLDS)
def test_relu_jacobian():
    r"""**Seed 000, activation table, ReLU; seed 002, ReLU layer.**

    > $J_{i,j} = 1$ if $i=j, X_i>0$; $0$ otherwise. (Seed 002: $\partial y/\partial x = 1\ (x>0)$, $0\ (x\le 0)$.)

    Derivation. On $x>0$, $\max(x,0)=x$ (slope 1); on $x<0$ it is $0$ (slope 0). At $x=0$
    the function has no derivative; the left derivative is $0$, the right one $1$. The
    seed's "otherwise" puts $x=0$ in the 0 branch, which is the left derivative: the
    project's convention (relu'(0) = 0).

    Verdict: **holds**. Checks: finite differences away from 0 and *left* differences at 0;
    ``ReLU.jacobian`` gives exactly 0 at 0.
    """
    seed = lambda z: np.diag((z > 0).astype(float))  # noqa: E731
    assert_fd("relu J", seed(Z), _fwd(ReLU()), Z)
    assert_fd("relu J at 0 (left)", seed(ZK), _fwd(ReLU()), ZK, step_direction=-1)
    assert_close("library ReLU.jacobian incl. kink", ReLU().jacobian(ZK[:, None]), seed(ZK))
    assert ReLU().jacobian(np.zeros((1, 1)))[0, 0] == 0.0


@symbolic("act.relu")
def test_relu_jacobian_symbolic():
    sp = require_sympy()
    _piecewise_symbolic(sp, lambda x: x, lambda x: 0 * x, lambda x: 1, lambda x: 0)


@proof(id="act.leaky_relu", seed="000", location="§激活函数, Leaky ReLU",
       statement=r"$J_{ii}=1$ if $X_i>0$, $\alpha$ otherwise", verdict=HOLDS)
def test_leaky_relu_jacobian():
    r"""**Seed 000, activation table, Leaky ReLU.**

    > $\operatorname{LeakyReLU}(X)_i=\max(X_i,\alpha X_i)$, $J_{i,j} = 1$ if $i=j, X_i>0$; $\alpha$ otherwise.

    Derivation. For $0<\alpha<1$, $\max(x,\alpha x)$ is $x$ on $x>0$ and $\alpha x$ on
    $x\le 0$: slopes $1$ and $\alpha$; at 0 the left derivative is $\alpha$. ("otherwise"
    must be read as "$i=j$, $X_i\le 0$"; off the diagonal the entry is $0$.)

    Verdict: **holds** (diagonal entries; off-diagonal entries are 0). Checks: FD, left FD at 0,
    ``LeakyReLU.jacobian``.
    """
    a = 0.1
    act = LeakyReLU(a)
    seed = lambda z: np.diag(np.where(z > 0, 1.0, a))  # noqa: E731
    assert_fd("leaky J", seed(Z), _fwd(act), Z)
    assert_fd("leaky J at 0 (left)", seed(ZK), _fwd(act), ZK, step_direction=-1)
    assert_close("library LeakyReLU.jacobian", act.jacobian(ZK[:, None]), seed(ZK))


@symbolic("act.leaky_relu")
def test_leaky_relu_jacobian_symbolic():
    sp = require_sympy()
    a = sp.Symbol("alpha", positive=True)
    _piecewise_symbolic(sp, lambda x: x, lambda x: a * x, lambda x: 1, lambda x: a)


@proof(id="act.elu", seed="000", location="§激活函数, ELU",
       statement=r"ELU$(X)_i = e^{X_i}-1$ for $X_i\le 0$, and $J_{ii} = 0$ for $X_i \le 0$ ('0 otherwise')",
       verdict=WRONG,
       corrected=r"$J_{ii} = e^{X_i}$ for $X_i\le 0$ ($\alpha e^{X_i}$ with a scale $\alpha$); elu'(0) = 1 (= $\alpha$)")
def test_elu_jacobian():
    r"""**Seed 000, activation table, ELU.**

    > $\operatorname{ELU}(X)_i = X_i$ ($X_i>0$), $e^{X_i}-1$ ($X_i\le0$);
    > $J_{i,j} = 1$ if $i=j, X_i>0$; $0$ otherwise.

    Derivation. $\frac{d}{dx}(e^x-1) = e^x \neq 0$. With the usual scale,
    $\alpha(e^x-1)$ has derivative $\alpha e^x$; at $0$ the left derivative is $\alpha$
    (for $\alpha=1$ ELU is $C^1$). The seed's table copies the ReLU row. Its **code** is
    right: ``np.diag(np.where(z >= 0, 1, _exp(z)))``.

    Verdict: **wrong**. Corrected: $J_{ii} = \alpha e^{X_i}$ for $X_i \le 0$.
    Check: at $x=-0.5$ the seed's $0$ differs from the finite difference by exactly
    $e^{-0.5}=0.6065$; the corrected entry matches FD and ``ELU.jacobian``.
    """
    act = ELU(1.0)
    x = np.array([-0.5, 0.8])
    seed = np.diag(np.where(x > 0, 1.0, 0.0))
    corrected = np.diag(np.where(x > 0, 1.0, np.exp(x)))
    numeric = fd(_fwd(act), x)
    assert_differs("seed ELU J vs FD", seed, numeric, by=np.exp(-0.5), atol=1e-7)
    assert_fd("corrected ELU J", corrected, _fwd(act), x)
    assert_close("library ELU.jacobian", act.jacobian(x[:, None]), corrected)
    a = 0.5
    assert_close("library ELU(alpha) at kink = alpha", ELU(a).jacobian(ZK[:, None]),
                 np.diag(np.where(ZK > 0, 1.0, a * np.exp(ZK))))
    assert_fd("ELU(alpha) left FD at 0", ELU(a).jacobian(ZK[:, None]), _fwd(ELU(a)), ZK, step_direction=-1)


@symbolic("act.elu")
def test_elu_jacobian_symbolic():
    sp = require_sympy()
    x = sp.Symbol("x", real=True)
    a = sp.Symbol("alpha", positive=True)
    sym_zero(sp, sp.diff(a * (sp.exp(x) - 1), x) - a * sp.exp(x), "ELU branch derivative")
    assert sp.simplify(sp.diff(sp.exp(x) - 1, x) - 0) != 0  # the seed's 0 is not the derivative


def _seed000_code_relu_family(z, alpha_leaky=0.01):
    """What seed 000's NNFunctions.py computes: the derivative branch test is ``z >= 0``."""
    return {
        "relu": np.where(z >= 0, 1.0, 0.0),
        "leaky": np.where(z >= 0, 1.0, alpha_leaky),
        "elu": np.where(z >= 0, 1.0, np.exp(np.clip(z, -88.72, 88.72))),
    }


@proof(id="act.code000_kinks", seed="000", location="NNFunctions.py, ReLU/LeakyReLU/ELU.gradient",
       statement="code uses np.where(z >= 0, 1, ...): relu'(0) = 1, leaky'(0) = 1 (ELU's 1 equals its implicit alpha = 1)",
       verdict=WRONG,
       corrected="the prose's x <= 0 branch at 0 (left derivative): relu'(0)=0, leaky'(0)=alpha, elu'(0)=alpha; "
                 "the code's value at 0 is the right derivative")
def test_code000_kinks():
    r"""**Seed 000, ``NNFunctions.py``: ReLU, LeakyReLU, ELU.**

    > ``return np.diag(np.where(z >= 0, 1, 0))`` (ReLU), ``np.where(z >= 0, 1, self.alpha)`` (Leaky),
    > ``np.where(z >= 0, 1, _exp(z))`` (ELU); the forwards also test ``z >= 0``.

    Derivation. Away from 0 the code agrees with the prose table. At exactly $z=0$ the code
    takes the $z>0$ branch, i.e. the right derivative $1$, while the prose ("$X_i>0$ ... otherwise")
    gives the left one ($0$, $\alpha$, $\alpha$). Both are one-sided derivatives; the code and
    its own prose disagree, and the project follows the prose (the $x \le 0$ branch).

    Verdict: **wrong** (code vs. its prose at the kink). Check: the restated code gives 1 at 0,
    which equals the *right* finite difference and differs from the *left* one by $1$
    (ReLU), $1-\alpha$ (Leaky); the library gives the left values.
    """
    z0 = np.array([0.0])
    code = _seed000_code_relu_family(z0, 0.01)
    for name, act, left in (("relu", ReLU(), 0.0), ("leaky", LeakyReLU(0.01), 0.01), ("elu", ELU(1.0), 1.0)):
        right_fd = fd(_fwd(act), z0, step_direction=1)[0, 0]
        left_fd = fd(_fwd(act), z0, step_direction=-1)[0, 0]
        assert abs(code[name][0] - right_fd) < 1e-7, f"{name}: code value is the right derivative"
        assert abs(left_fd - left) < 1e-7 and act.jacobian(z0[:, None])[0, 0] == left
        if name != "elu":  # ELU with alpha = 1 is C^1: both sides agree, the disagreement is only for alpha != 1
            assert_differs(f"{name}: code vs left derivative", code[name][0], left_fd, by=1.0 - left, atol=1e-7)


@proof(id="act.relu004_prose", seed="004", location="§4.3, relu_backward: local gradient of max(0,x)",
       statement=r"$\partial f/\partial x = 1$ for $x \geqslant 0$, $0$ for $x<0$", verdict=WRONG,
       corrected=r"$1$ for $x>0$, $0$ for $x \le 0$ (what its code ``dx = (x > 0) * dout`` computes; relu'(0)=0)")
def test_relu004_prose():
    r"""**Seed 004, §4.3, ReLU's local gradient.**

    > $\frac{\partial f}{\partial x}= 1,\ x \geqslant 0\ (\hat{x}>0)$; $\frac{\partial f}{\partial x}= 0,\ x < 0\ (\hat{x}=0)$,
    > next to the code ``dx = (x > 0) * dout``.

    Derivation. The parenthetical conditions contradict the main ones at $x=0$: there
    $\hat x = 0$, which the prose files under the 0 branch, while "$x\geqslant 0$" files it under 1.
    The code gives 0 at $x=0$ (the left derivative, the project's convention).
    The seed's worked example (a $3\times3$ ``x``, ``dout`` and ``dx``) has no zero entry and
    holds; it is checked here too.

    Verdict: **wrong** at $x=0$ (prose vs code). Check: restated code at 0 gives 0 = left FD;
    the prose value 1 differs by 1. The worked example is reproduced.
    """
    dout = np.array([[0.1, -0.3, 0.7], [0.4, 0.25, -0.5], [-0.2, 0.3, 0.8]])
    x = np.array([[-1.0, -1.0, 3.0], [-2.0, 1.5, 4.0], [2.0, 4.0, -5.0]])  # (x) centre entry: any positive value
    code = (x > 0) * dout
    expected = np.array([[0, 0, 0.7], [0, 0.25, -0.5], [-0.2, 0.3, 0]])
    assert_close("seed 004 relu_backward worked example", code, expected)
    prose_at_0 = 1.0
    code_at_0 = float((np.array(0.0) > 0) * 1.0)
    left = fd(_fwd(ReLU()), np.array([0.0]), step_direction=-1)[0, 0]
    assert abs(code_at_0 - left) < 1e-9
    assert_differs("prose relu'(0) vs left derivative", prose_at_0, left, by=1.0, atol=1e-7)
    assert_close("library ReLU.vjp_batch = code", ReLU().vjp_batch(x, np.maximum(x, 0), dout), code)


@proof(id="act.step", seed="002", location="§激活函数, step_function h(x)",
       statement=r"$h(x)=1\ (x>0)$, $0\ (x\le0)$; its derivative is 0 wherever it exists", verdict=HOLDS)
def test_step():
    r"""**Seed 002, perceptron/step function.**

    > $h(x) = 0\ (x\le0)$, $1\ (x>0)$; ``np.array(x > 0, dtype=np.int64)``.

    Derivation. $h$ is constant on $x<0$ and on $x>0$, so $h'=0$ there; at $0$ it jumps
    (no derivative), and the left derivative ($x\le0$ branch) is 0. This is why the book
    sets perceptron weights by hand and switches to sigmoid for learning.

    Verdict: **holds**. Check: FD away from 0 and left FD at 0 are 0; ``Step.jacobian`` is 0;
    ``Step.forward(0) = 0`` as in the seed.
    """
    z = np.array([-1.0, 0.7, 0.0])
    assert_fd("step J", np.zeros((3, 3)), _fwd(Step()), z, step_direction=-1)
    assert_close("library Step.jacobian", Step().jacobian(z[:, None]), np.zeros((3, 3)))
    assert Step().forward(np.zeros((1, 1)))[0, 0] == 0.0
