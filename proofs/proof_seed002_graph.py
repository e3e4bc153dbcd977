r"""DLFS notes (*Deep Learning from Scratch* notes): the computational-graph derivations, the simple
layers, the numerical gradient, and the perceptron gates."""

from __future__ import annotations

import numpy as np

from jacobian_nn.activations import ReLU, Sigmoid
from jacobian_nn.graph import Add, Mul

from ._helpers import assert_close, assert_differs, assert_fd, fd, sym_nonzero, sym_zero
from ._registry import CONVENTION, HOLDS, WRONG, proof, require_sympy, symbolic


def _mul_add_backward(x, y, dout):
    """``MulLayer``: ``dx = dout * y``, ``dy = dout * x``; ``AddLayer``: ``dx = dout * 1``, ``dy = dout * 1``."""
    return dout * y, dout * x, dout * 1, dout * 1


@proof(
    id="graph.mul_add",
    seed="002",
    location="§简单层的实现, MulLayer / AddLayer",
    statement="MulLayer.backward: dx = dout * y, dy = dout * x; AddLayer.backward: dx = dy = dout",
    verdict=HOLDS,
)
def test_mul_add(claim=_mul_add_backward):
    r"""**DLFS notes, multiplication and addition nodes.**

    > ``MulLayer``: ``out = x * y``; ``dx = dout * self.y``; ``dy = dout * self.x``.
    > ``AddLayer``: ``out = x + y``; ``dx = dout * 1``; ``dy = dout * 1``.

    Derivation. $\partial(xy)/\partial x = y$, $\partial(xy)/\partial y = x$, $\partial(x+y)/\partial x = \partial(x+y)/\partial y = 1$;
    the chain rule multiplies by the upstream ``dout``. (Elementwise for arrays.)

    Verdict: **holds**. Checks: sympy; FD of $L = \text{dout}\cdot f(x, y)$; this library's ``Mul`` and
    ``Add`` (their Jacobians $\operatorname{diag}(y)$, $\operatorname{diag}(x)$, $I$, $I$) give the same rows.
    """
    x, y, dout = np.array([1.5, -2.0]), np.array([0.3, 4.0]), np.array([0.7, -1.1])
    xy = np.concatenate([x, y])
    mdx, mdy, adx, ady = claim(x, y, dout)
    assert_fd("mul", np.concatenate([mdx, mdy]), lambda v: float(dout @ (v[:2] * v[2:])), xy, gradient=True)
    assert_fd("add", np.concatenate([adx, ady]), lambda v: float(dout @ (v[:2] + v[2:])), xy, gradient=True)
    for node, rows in ((Mul(), (mdx, mdy)), (Add(), (adx, ady))):
        got = node.backward(dout[None], node.forward(x[:, None], y[:, None])[1])
        assert_close(f"{node!r}.backward", np.concatenate([g[0] for g in got]), np.concatenate(rows))


@symbolic("graph.mul_add")
def test_mul_add_symbolic():
    sp = require_sympy()
    x, y, d = sp.symbols("x y d", real=True)
    sym_zero(
        sp,
        sp.Matrix(
            [
                sp.diff(d * x * y, x) - d * y,
                sp.diff(d * x * y, y) - d * x,
                sp.diff(d * (x + y), x) - d,
                sp.diff(d * (x + y), y) - d,
            ]
        ),
        "mul/add",
    )


def _sigmoid_graph_printed(x, g):
    """The notes' values: the sigmoid's derivative written as $-1/x^2$, and the backward row
    $g y^2$ (after '/' and '+1'), $g y^2 e^{-x}$ (after exp and after $\times(-1)$)."""
    y = 1 / (1 + np.exp(-x))
    return {
        "dsigma_dx": -1 / x**2,
        "after_div": g * y * y,
        "after_plus1": g * y * y,
        "after_exp": g * y * y * np.exp(-x),
        "after_neg": g * y * y * np.exp(-x),
    }


def _sigmoid_graph_right(x, g):
    r"""Node by node: '/' gives $-gy^2$, '+1' passes it, exp gives $-gy^2e^{-x}$, $\times(-1)$ gives $gy^2e^{-x}$;
    and $d\sigma/dx = y(1-y)$."""
    y = 1 / (1 + np.exp(-x))
    return {
        "dsigma_dx": y * (1 - y),
        "after_div": -g * y * y,
        "after_plus1": -g * y * y,
        "after_exp": -g * y * y * np.exp(-x),
        "after_neg": g * y * y * np.exp(-x),
    }


@proof(
    id="graph.sigmoid",
    seed="002",
    location="§误差反向传播法, sigmoid computational graph",
    statement=r"$y = \frac{1}{1+\exp(-x)}$, $\frac{\partial y}{\partial x} = -\frac{1}{x^2} = -y^2$; backward values "
    r"$\frac{\partial L}{\partial y}y^2$ (after '/' and '+1'), $\frac{\partial L}{\partial y}y^2e^{-x}$ "
    r"(after exp and after $\times(-1)$); result $\frac{\partial L}{\partial y}y(1-y)$",
    verdict=WRONG,
    corrected=r"$-1/u^2 = -y^2$ is the local derivative of the '/' node $y = 1/u$ ($u = 1+e^{-x}$), not of the "
    r"sigmoid, whose derivative is $y(1-y)$ ($-1/x^2$ with the sigmoid's own $x$ is a different function); "
    r"after '/' and '+1' the value is $-\frac{\partial L}{\partial y}y^2$, after exp "
    r"$-\frac{\partial L}{\partial y}y^2e^{-x}$; only the $\times(-1)$ node makes it "
    r"$+\frac{\partial L}{\partial y}y^2e^{-x} = \frac{\partial L}{\partial y}y(1-y)$ (final result holds)",
)
def test_sigmoid_graph(seed=_sigmoid_graph_printed, corrected=_sigmoid_graph_right):
    r"""**DLFS notes, the sigmoid computational graph.**

    > $y = \frac{1}{1 + exp(-x)}$ , $\frac{\partial y}{\partial x} = -\frac{1}{x^2} = -y^2$. Graph:
    > $x \xrightarrow{\times(-1)} -x \xrightarrow{\exp} e^{-x} \xrightarrow{+1} 1+e^{-x} \xrightarrow{/} y$, backward row:
    > $\frac{\partial L}{\partial y}y^2e^{-x} \leftarrow \frac{\partial L}{\partial y}y^2e^{-x} \leftarrow \frac{\partial L}{\partial y}y^2
    > \leftarrow \frac{\partial L}{\partial y}y^2 \leftarrow \frac{\partial L}{\partial y}$;
    > $\frac{\partial L}{\partial y}y^2e^{-x} = \frac{\partial L}{\partial y}y(1-y)$; code ``dx = dout * (1.0 - self.out) * self.out``.

    Derivation. The line before the graph writes the sigmoid $y = 1/(1+\exp(-x))$ and then
    "$\partial y/\partial x = -1/x^2 = -y^2$": that is the local derivative of the '/' node $y = 1/u$
    ($\partial y/\partial u = -1/u^2 = -y^2$), attached to the sigmoid itself. With the sigmoid's $x$,
    $-1/x^2 \ne y(1-y)$ (at $x = 0.7$: $-2.04$ against $0.2217$), and $-y^2$ is negative while the sigmoid
    increases. Node by node with upstream $g = \partial L/\partial y$ and $u = 1+e^{-x}$: '/' gives
    $g\cdot(-1/u^2) = -gy^2$; '+1' passes it: $-gy^2$; 'exp' multiplies by $e^{-x}$: $-gy^2e^{-x}$;
    '$\times(-1)$' flips the sign: $gy^2e^{-x}$. The source drops the minus at '/' (although it states $-y^2$
    one line earlier) and so shows the same sign on both sides of the $\times(-1)$ node. Finally
    $y^2e^{-x} = \frac{1}{u}\frac{e^{-x}}{u} = y(1-y)$.

    Verdict: **wrong** in the derivative line and in the two middle nodes (sign); the result and the code
    hold. Check: sympy node by node; FD of the sigmoid and of the intermediate $L$ w.r.t. each node's
    input; ``Sigmoid.vjp_batched``.
    """
    x, g = 0.7, 1.3
    printed, right = seed(x, g), corrected(x, g)
    d_sigma = fd(lambda v: 1 / (1 + np.exp(-v[0])), np.array([x]), gradient=True)[0, 0]
    assert abs(right["dsigma_dx"] - d_sigma) < 1e-8
    assert_differs(
        "printed dy/dx = -1/x^2 vs the sigmoid's derivative",
        printed["dsigma_dx"],
        d_sigma,
        by=abs(-1 / x**2 - d_sigma),
        atol=1e-7,
    )
    # the value arriving at exp(-x)'s output, i.e. dL/d(exp(-x)), by FD of L = g * 1/(1+t)
    d_t = fd(lambda v: g / (1 + v[0]), np.array([np.exp(-x)]), gradient=True)[0, 0]
    assert abs(d_t - right["after_plus1"]) < 1e-7
    assert_differs("printed value after '+1'", printed["after_plus1"], d_t, by=2 * abs(right["after_plus1"]), atol=1e-7)
    d_negx = fd(lambda v: g / (1 + np.exp(v[0])), np.array([-x]), gradient=True)[0, 0]
    assert abs(d_negx - right["after_exp"]) < 1e-7
    assert_differs("printed value after exp", printed["after_exp"], d_negx, by=2 * abs(right["after_exp"]), atol=1e-7)
    d_x = fd(lambda v: g / (1 + np.exp(-v[0])), np.array([x]), gradient=True)[0, 0]
    assert abs(d_x - right["after_neg"]) < 1e-8 and abs(printed["after_neg"] - d_x) < 1e-8, "the result holds"
    assert_close(
        "code / library",
        Sigmoid().vjp_batched(np.array([[x]]), np.array([[1 / (1 + np.exp(-x))]]), np.array([[g]])),
        [[d_x]],
        atol=1e-8,
    )


@symbolic("graph.sigmoid")
def test_sigmoid_graph_symbolic():
    sp = require_sympy()
    x, g = sp.symbols("x g", real=True)
    u = sp.Symbol("u", positive=True)
    y = 1 / (1 + sp.exp(-x))
    sym_zero(sp, sp.diff(1 / u, u) + (1 / u) ** 2, "d(1/u)/du = -y^2")
    after_div = g * sp.diff(1 / u, u).subs(u, 1 + sp.exp(-x))
    sym_zero(sp, after_div + g * y**2, "after '/': -g y^2")
    sym_nonzero(sp, after_div - g * y**2, "source's +g y^2")
    after_exp = after_div * sp.exp(-x)
    after_neg = after_exp * (-1)
    sym_zero(sp, after_neg - g * sp.diff(y, x), "after x(-1) = dL/dx")
    sym_zero(sp, after_neg - g * y * (1 - y), "= g y (1 - y)")


def _seed002_relu_backward(mask, dout):
    """DLFS notes ``Relu.backward``: ``dout[self.mask] = 0; dx = dout; return dx`` (writes into dout)."""
    dout[mask] = 0
    return dout


def _relu_backward_pure(mask, dout):
    """A side-effect-free backward: ``np.where(mask, 0, dout)``."""
    return np.where(mask, 0.0, dout)


@proof(
    id="graph.relu_layer002",
    seed="002",
    location="§ReLU 层, Relu.forward/backward",
    statement="mask = (x <= 0); backward: dout[self.mask] = 0; dx = dout",
    verdict=CONVENTION,
    corrected="the values are right (relu'(0) = 0 via x <= 0), but backward overwrites the caller's dout "
    "in place; a side-effect-free backward returns np.where(mask, 0, dout)",
)
def test_relu_layer002(seed=_relu_backward_pure, corrected=_seed002_relu_backward):
    r"""**DLFS notes, ``Relu`` layer.**

    > ``self.mask = (x <= 0); out = x.copy(); out[self.mask] = 0``; ``dout[self.mask] = 0; dx = dout; return dx``.

    Derivation. $\partial\max(x,0)/\partial x = [x>0]$, with $x=0$ in the 0 branch (the project's convention),
    so $dx = dout\cdot[x>0]$: the values hold. But ``dout[mask] = 0`` writes into the caller's array: after the
    call the upstream gradient is changed too, so any other consumer of ``dout`` (a branch, a gradient check,
    a log) sees the masked values. This library never mutates its inputs (a test checks it).

    Verdict: **holds under a stated convention** (values right; the input is mutated). Check: the returned
    values equal FD (left FD at the kink) and ``ReLU.vjp_batched``; the restatement changes ``dout`` in place while
    the library leaves ``G`` unchanged.
    """
    x = np.array([[-1.0, 0.0, 2.0]])
    dout = np.array([[0.5, 0.5, 0.5]])
    keep = dout.copy()
    dx = corrected(x <= 0, dout)
    assert_fd(
        "values (left FD at 0)", dx, lambda v: float(keep[0] @ np.maximum(v, 0)), x[0], gradient=True, step_direction=-1
    )
    assert dx is dout and not np.array_equal(dout, keep), "the source's backward mutates its input"
    d2 = keep.copy()
    assert_close("a pure backward gives the same values", seed(x <= 0, d2), dx)
    assert np.array_equal(d2, keep), "and leaves dout alone"
    G = keep.copy()
    out = ReLU().vjp_batched(x, np.maximum(x, 0), G)
    assert_close("library values", out, dx)
    assert np.array_equal(G, keep), "the library does not mutate G"


def _seed002_numerical_gradient(f, x):
    """DLFS notes ``numerical_gradient``: central differences, h = 1e-4, x perturbed in place and restored."""
    h = 1e-4
    grad = np.zeros_like(x)
    for idx in range(x.size):
        tmp = x[idx]
        x[idx] = tmp + h
        f1 = f(x)
        x[idx] = tmp - h
        f2 = f(x)
        grad[idx] = (f1 - f2) / (2 * h)
        x[idx] = tmp
    return grad


def _forward_difference_gradient(f, x):
    """The prose's formula at h = 1e-4: ``(f(x + h) - f(x)) / h`` per coordinate (x restored)."""
    h = 1e-4
    grad = np.zeros_like(x)
    for idx in range(x.size):
        tmp = x[idx]
        f0 = f(x)
        x[idx] = tmp + h
        grad[idx] = (f(x) - f0) / h
        x[idx] = tmp
    return grad


@proof(
    id="graph.numerical_gradient002",
    seed="002",
    location="§导数/梯度, numerical_diff, numerical_gradient, gradient_descent",
    statement=r"$\frac{df}{dx} = \lim_{h\to0}\frac{f(x+h)-f(x)}{h}$; code: (f(x+h) - f(x-h)) / (2h), h = 1e-4, "
    r"x[idx] restored after each probe; gradient_descent: x -= lr * grad",
    verdict=CONVENTION,
    corrected="the code uses the central difference (error O(h^2), not the forward difference's O(h)); it is "
    "exact to ~1e-8 for smooth f on a float array; it handles "
    "only 1-D x, and gradient_descent updates init_x in place; on an integer array x[idx] = tmp +/- h truncates "
    "(to tmp and tmp - 1), giving (f(tmp) - f(tmp - 1)) / 2h, garbage",
)
def test_numerical_gradient002(seed=_forward_difference_gradient, corrected=_seed002_numerical_gradient):
    r"""**DLFS notes, numerical differentiation and gradient descent.**

    > $\frac{df(x)}{dx} = \lim_{h \to 0}\frac{f(x+h)-f(x)}{h}$; ``return (f(x + h) - f(x - h)) / (2 * h)``;
    > ``numerical_gradient`` perturbs ``x[idx]`` in place and restores it (``x[idx] = tmp_val``);
    > ``gradient_descent``: ``x = init_x; ... x -= lr * grad``.

    Derivation. Taylor: $\frac{f(x+h)-f(x-h)}{2h} = f'(x) + \frac{h^2}{6}f'''(x) + O(h^4)$, while the prose's
    forward difference has error $\frac h2 f''(x)$. Both tend to $f'(x)$; the code is the better one. Restoring
    ``x[idx]`` leaves ``x`` bit-identical. On an integer array ``x[idx] = tmp + h`` truncates to ``tmp`` and
    ``tmp - h`` to ``tmp - 1``, so the result is $(f(tmp) - f(tmp-1))/2h$: for $\sum x^2$ at $(1,2,3)$, $(5000, 15000, 25000)$
    instead of $(2, 4, 6)$. ``x -= lr * grad`` with ``x = init_x`` modifies the caller's ``init_x``.

    Verdict: **holds under a stated convention** (float 1-D input; in-place update). Check: against
    ``fd_gradient`` (scipy); error ratio of forward vs central differences; integer input gives the truncated values; ``init_x``
    is modified by the restated ``gradient_descent``.
    """
    f = lambda v: float(np.sum(np.sin(v) * v**2))  # noqa: E731
    x = np.array([0.3, -1.1, 2.0])
    x0 = x.copy()
    g = corrected(f, x)
    assert np.array_equal(x, x0), "x restored bit for bit"
    assert_close("vs scipy FD", g, fd(f, x0, gradient=True)[0], atol=1e-7)
    exact = np.sin(x0) * 2 * x0 + np.cos(x0) * x0**2
    h = 1e-4
    fwd = seed(f, x0.copy())
    assert_close("the prose's forward difference", fwd, np.array([(f(x0 + h * e) - f(x0)) / h for e in np.eye(3)]))
    assert np.max(np.abs(fwd - exact)) > 100 * np.max(np.abs(g - exact)), "central is far more accurate"
    xi = np.array([1, 2, 3])
    g_int = corrected(lambda v: float(np.sum(v.astype(float) ** 2)), xi)
    # x[idx] = tmp + h truncates to tmp and tmp - h to tmp - 1: (f(tmp) - f(tmp - 1)) / 2h, not 2x
    assert np.array_equal(g_int, [5000, 15000, 25000])
    assert_differs("integer input vs true gradient", g_int, 2 * xi, by=25000 - 6, atol=1e-9)
    init_x = np.array([-3.0, 4.0])
    x = init_x
    for _ in range(3):
        x -= 0.1 * corrected(lambda v: float(np.sum(v**2)), x)
    assert x is init_x and not np.allclose(init_x, [-3.0, 4.0]), "gradient_descent updates init_x in place"


NOR_TABLE = (1, 0, 0, 0)
XOR_TABLE = (0, 1, 1, 0)


@proof(
    id="graph.perceptron002",
    seed="002",
    location="§Perceptron, AND/NAND/OR and 'Use AND, NAND, OR gate to build NOR gate'",
    statement="AND (w=0.5,0.5,b=-0.7), NAND (-0.5,-0.5,0.7), OR (0.5,0.5,-0.2); "
    "heading 'build NOR gate' over def XOR(x1, x2): AND(NAND, OR)",
    verdict=WRONG,
    corrected="the gates hold; the composition AND(NAND(x), OR(x)) is XOR (as the function's name says), not NOR",
    prose=True,
)
def test_perceptron002(seed=NOR_TABLE, corrected=XOR_TABLE):
    r"""**DLFS notes, perceptron gates.**

    > AND: $w=(0.5, 0.5)$, $b=-0.7$; NAND: $w=(-0.5,-0.5)$, $b=0.7$; OR: $w=(0.5,0.5)$, $b=-0.2$;
    > $y = 0$ if $b + w_1x_1+w_2x_2 \le 0$ else 1. "Use AND, NAND, OR gate to build NOR gate": ``def XOR(x1, x2):
    > s1 = NAND(x1, x2); s2 = OR(x1, x2); y = AND(s1, s2)``.

    Derivation. Truth tables: AND fires only at (1,1) ($0.3>0$); NAND is its negation; OR fires unless (0,0)
    ($-0.2 \le 0$). $\text{AND}(\text{NAND}, \text{OR})$ is 1 exactly when one input is 1: XOR. NOR is $1$ only at (0,0).

    Verdict: **wrong** (prose: the heading names the wrong gate; the code and its name are right). Check: the
    truth tables.
    """

    def gate(w, b):
        return lambda a, c: int(w[0] * a + w[1] * c + b > 0)

    AND, NAND, OR = gate((0.5, 0.5), -0.7), gate((-0.5, -0.5), 0.7), gate((0.5, 0.5), -0.2)
    ins = [(0, 0), (1, 0), (0, 1), (1, 1)]
    assert [AND(*i) for i in ins] == [0, 0, 0, 1]
    assert [NAND(*i) for i in ins] == [1, 1, 1, 0]
    assert [OR(*i) for i in ins] == [0, 1, 1, 1]
    comp = tuple(AND(NAND(*i), OR(*i)) for i in ins)
    assert comp == tuple(corrected), f"the composition's truth table {comp} vs the corrected {corrected}"
    assert comp != tuple(seed), "the heading's gate"
    assert [int(not (a or c)) for a, c in ins] == list(NOR_TABLE) and [a ^ c for a, c in ins] == list(XOR_TABLE)


def _pool_out_h(H, F, S, P):
    """Pooling.forward: ``int(1 + (H - pool_h) / stride)`` (no pad)."""
    return int(1 + (H - F) / S)


def _conv_out_h(H, F, S, P):
    r"""$OH = \frac{H + 2P - FH}{S} + 1$ (floor when S does not divide)."""
    return (H + 2 * P - F) // S + 1


@proof(
    id="graph.conv_size002",
    seed="002",
    location="§卷积神经网络 output size; Pooling.forward",
    statement=r"$OH = \frac{H+2P-FH}{S}+1$; Pooling: out_h = int(1 + (H - pool_h) / stride) with im2col(..., pad)",
    verdict=WRONG,
    corrected=r"the convolution formula holds (when $S$ divides $H+2P-FH$); the pooling code leaves $P$ out of "
    r"out_h while its im2col pads, so for pad > 0 the reshape gets the wrong size",
)
def test_conv_size002(seed=_pool_out_h, corrected=_conv_out_h):
    r"""**DLFS notes, convolution output size and the pooling layer.**

    > $OH = \frac{H + 2P -FH}{S} + 1$; ``Pooling.forward``: ``out_h = int(1 + (H - self.pool_h) / self.stride)`` ...
    > ``col = im2col(x, self.pool_h, self.pool_w, self.stride, self.pad)``.

    Derivation. The padded input has $H+2P$ rows; a window of $FH$ rows starts at $0, S, 2S, \dots$ up to
    $H+2P-FH$: $\lfloor (H+2P-FH)/S\rfloor + 1$ positions. The pooling code computes its output size without
    $2P$ but extracts windows from the padded input, so the two disagree whenever ``pad > 0``.

    Verdict: **wrong** (pooling code for pad > 0; the formula holds). Check: count window positions directly.
    """

    def count(H, F, S, P):
        return len(range(0, H + 2 * P - F + 1, S))

    for H, F, S, P in ((7, 3, 1, 0), (7, 3, 2, 1), (32, 5, 1, 2), (6, 2, 2, 0)):
        assert count(H, F, S, P) == corrected(H, F, S, P)
    H, F, S, P = 6, 2, 2, 1
    assert seed(H, F, S, P) != count(H, F, S, P), "the pooling code's size without the pad"


@symbolic("graph.numerical_gradient002")
def test_numerical_gradient002_symbolic():
    sp = require_sympy()
    x, h = sp.symbols("x h", real=True)
    f = sp.sin(x) * x**2
    central = (f.subs(x, x + h) - f.subs(x, x - h)) / (2 * h)
    forward = (f.subs(x, x + h) - f) / h
    d1, d2, d3 = (sp.diff(f, x, k) for k in (1, 2, 3))
    c = sp.series(central - d1, h, 0, 3).removeO()
    fw = sp.series(forward - d1, h, 0, 2).removeO()
    sym_zero(sp, c - h**2 * d3 / 6, "central error h^2 f'''/6")
    sym_zero(sp, fw - h * d2 / 2, "forward error h f''/2")
