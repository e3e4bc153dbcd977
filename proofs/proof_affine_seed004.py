r"""CS231n walkthrough (CS231n assignment 2 walkthrough): affine forward/backward, the dimension-matching argument,
the two-layer net's gradients and what its code assigns."""

from __future__ import annotations

import ast
import itertools

import numpy as np

from jacobian_nn.layers import Dense
from jacobian_nn.network import Network

from ._helpers import assert_close, assert_fd, fd, sym_zero
from ._registry import CONVENTION, HOLDS, WRONG, proof, require_sympy, symbolic

RNG = np.random.default_rng(4)


def _local004(x, w, b):
    r"""$\partial z/\partial(x, w, b) = (w, x, 1)$ for $z = xw + b$."""
    return [w, x, 1.0]


@proof(
    id="affine.local_gradients004",
    seed="004",
    location="§4.3 affine_backward: local gradients of z = xw + b",
    statement=r"$\frac{\partial z}{\partial x}=w$, $\frac{\partial z}{\partial w}=x$, $\frac{\partial z}{\partial b}=1$; "
    r"$\frac{\partial L}{\partial x} = \frac{\partial L}{\partial z}w$, $\frac{\partial L}{\partial w} = \frac{\partial L}{\partial z}x$, "
    r"$\frac{\partial L}{\partial b} = \frac{\partial L}{\partial z}$",
    verdict=HOLDS,
)
def test_local_gradients004(claim=_local004):
    r"""**CS231n walkthrough, §4.3, the scalar local gradients.**

    > $z(x,w,b)=xw+b$: $\frac{\partial z}{\partial x}=w,\ \frac{\partial z}{\partial w}=x,\ \frac{\partial z}{\partial b}=1$,
    > hence $\frac{\partial L}{\partial x} = \frac{\partial L}{\partial z}w$ etc.

    Derivation. For scalars this is the product and sum rules. For matrices the same statement only fixes
    *which* factor appears; its placement and transposes follow from the index form (proof
    ``affine.dimension_matching004``).

    Verdict: **holds** (scalars). Check: sympy; FD.
    """
    v = np.array([0.7, -1.3, 0.4])  # x, w, b
    assert_fd("dz/d(x, w, b)", claim(*v), lambda u: u[0] * u[1] + u[2], v, gradient=True)


@symbolic("affine.local_gradients004")
def test_local_gradients004_symbolic():
    sp = require_sympy()
    x, w, b = sp.symbols("x w b", real=True)
    z = x * w + b
    sym_zero(sp, sp.Matrix([sp.diff(z, x) - w, sp.diff(z, w) - x, sp.diff(z, b) - 1]), "local gradients")


def _candidates(A, B):
    """Every product of {A, A^T} and {B, B^T}, in both orders, and its transpose."""
    out = {}
    for (na, a), (nb, b) in itertools.product((("x", A), ("x^T", A.T)), (("G", B), ("G^T", B.T))):
        for name, left, right in ((f"{na} {nb}", a, b), (f"{nb} {na}", b, a)):
            if left.shape[1] == right.shape[0]:
                P = left @ right
                out[name] = P
                out[f"({name})^T"] = P.T
    return out


def _distinct_typechecking_unique(square):
    """'The only possible expression': one matrix type-checks, whatever the sizes."""
    return 1


def _distinct_typechecking(square):
    """Distinct (D, M)-shaped candidates: one when N, D, M are distinct; eight when N = D = M."""
    return 8 if square else 1


@proof(
    id="affine.dimension_matching004",
    seed="004",
    location="§4.3 '矩阵维度匹配' argument for dx, dw, db; affine_backward code",
    statement="the gradient of L w.r.t. each of (x, w, b) has that variable's shape, and dx = dout w^T, "
    "dw = reshaped_x^T dout, db = sum(dout, axis=0) are 'the only possible' expressions with matching "
    "dimensions",
    verdict=CONVENTION,
    corrected="the formulas hold for all shapes; 'the only expression that type-checks' is true only when N, D, M "
    "are distinct (with N = D = M several products type-check and only x^T dout is right); the "
    "formulas follow from the index form, not from the dimensions",
)
def test_dimension_matching004(seed=_distinct_typechecking_unique, corrected=_distinct_typechecking):
    r"""**CS231n walkthrough, §4.3, the dimension-matching argument.**

    > 我们就要求损失函数 $L$ 关于正向输入矩阵 (x, w, b) 的梯度矩阵 (dx, dw, db) 与矩阵 (x, w, b) 维度相同 ...
    > 都是考虑到梯度矩阵 (dx, dw, db) 维数满足约定的前提下,所得到唯一可能的梯度矩阵表达形式。
    > ``dx = np.reshape(dout.dot(w.T), x.shape); dw = (reshaped_x.T).dot(dout); db = np.sum(dout, axis=0)``.
    > (Also: "(严格说 ... 我们如此约定不过是相当于取定 denominator layout)".)

    Derivation. From $z_{kj} = \sum_i x_{ki}w_{ij} + b_j$: $\partial L/\partial w_{ij} = \sum_k x_{ki}G_{kj} = (x^\top G)_{ij}$,
    $\partial L/\partial x_{ki} = (Gw^\top)_{ki}$, $\partial L/\partial b_j = \sum_k G_{kj}$ (proof ``dense.affine_batch``). The
    matching argument: among products of $\{x, x^\top\}$ and $\{G, G^\top\}$ (either order, optionally
    transposed) only $x^\top G$ (also written $(G^\top x)^\top$) has shape $(D, M)$ when $N, D, M$ are distinct, so there it finds the right
    answer. When dimensions coincide it cannot decide: with $N=D=M$ all 16 candidates type-check, giving 8
    different matrices, and only one equals the gradient. Gradients shaped like their variables is the *denominator*-layout
    convention (the source says so); the project's reference path uses numerator layout for Jacobians and
    the same-shape convention for parameter gradients.

    Verdict: **holds under a stated convention** (distinct N, D, M). Check: enumerate the candidates;
    FD picks exactly one in the square case; the code's formulas equal FD (and the multi-dimensional ``x``
    reshape) and ``Dense.backward_batched``.
    """
    N, D, M = 4, 3, 2
    x, G = RNG.normal(size=(N, D)), RNG.normal(size=(N, M))
    cands = _candidates(x, G)
    ok = [k for k, v in cands.items() if v.shape == (D, M)]
    assert sorted(ok) == ["(G^T x)^T", "x^T G"], ok  # one matrix written two ways: (G^T x)^T = x^T G
    assert np.array_equal(cands["(G^T x)^T"], cands["x^T G"])
    assert len({np.round(cands[k], 12).tobytes() for k in ok}) == corrected(False)
    S = 3
    xs, Gs, w, b = RNG.normal(size=(S, S)), RNG.normal(size=(S, S)), RNG.normal(size=(S, S)), RNG.normal(size=S)
    cands = _candidates(xs, Gs)
    dw = fd(lambda v: float(np.sum(Gs * (xs @ v.reshape(S, S) + b))), w.reshape(-1), gradient=True).reshape(S, S)
    right = [k for k, v in cands.items() if np.allclose(v, dw, atol=1e-7)]
    distinct = {np.round(v, 12).tobytes() for v in cands.values()}
    assert len(cands) == 16 and sorted(right) == ["(G^T x)^T", "x^T G"], right
    assert len(distinct) == corrected(True), "with N = D = M eight different matrices type-check; one is the gradient"
    assert seed(True) != len(distinct), "'the only possible expression' fails in the square case"
    # the code, with a 4-D input reshaped to (N, D)
    x4 = RNG.normal(size=(2, 1, 2, 3))
    W = RNG.normal(size=(6, M))
    bb = RNG.normal(size=M)
    G2 = RNG.normal(size=(2, M))
    L = lambda xv, wv, bv: float(np.sum(G2 * (xv.reshape(2, -1) @ wv + bv)))  # noqa: E731
    dx = np.reshape(G2 @ W.T, x4.shape)
    assert_fd(
        "dx (reshaped)", dx.reshape(1, -1), lambda v: L(v.reshape(x4.shape), W, bb), x4.reshape(-1), gradient=True
    )
    assert_fd(
        "dw",
        (x4.reshape(2, -1).T @ G2).reshape(1, -1),
        lambda v: L(x4, v.reshape(6, M), bb),
        W.reshape(-1),
        gradient=True,
    )
    layer = Dense.from_params(W, bb)
    _, cache = layer.forward_batched(x4.reshape(2, -1))
    dX, g = layer.backward_batched(G2, cache)
    assert_close("library", dX, dx.reshape(2, -1))
    assert_close("library db", g["b"], G2.sum(axis=0))


def _seed004_two_layer(params, X, y):
    """CS231n walkthrough TwoLayerNet.loss (no regularisation), as the intended computation:
    affine-relu, affine, softmax_loss, affine_backward, affine_relu_backward."""
    W1, b1, W2, b2 = params
    a = X @ W1 + b1
    h = np.maximum(0, a)
    s = h @ W2 + b2
    p = np.exp(s - s.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    N = X.shape[0]
    loss = -np.sum(np.log(p[np.arange(N), y])) / N
    dout = p.copy()
    dout[np.arange(N), y] -= 1
    dout /= N
    dW2, db2, dh = h.T @ dout, dout.sum(axis=0), dout @ W2.T
    da = (a > 0) * dh
    return loss, {"W1": X.T @ da, "b1": da.sum(axis=0), "W2": dW2, "b2": db2}


@proof(
    id="affine.two_layer004",
    seed="004",
    location="§4.4 TwoLayerNet.loss (and §5.4 FullyConnectedNet without BN/dropout)",
    statement="loss, dout = softmax_loss(scores, y); dout, dw2, db2 = affine_backward(dout, out_cache); "
    "_, dw1, db1 = affine_relu_backward(dout, h1_cache)",
    verdict=HOLDS,
)
def test_two_layer004(claim=_seed004_two_layer):
    r"""**CS231n walkthrough, ``TwoLayerNet.loss``: the gradients of a two-layer ReLU net.**

    > ``h1_out, h1_cache = affine_relu_forward(X, W1, b1)``; ``scores, out_cache = affine_forward(h1_out, W2, b2)``;
    > ``loss, dout = softmax_loss(scores, y)``; ``dout, dw2, db2 = affine_backward(dout, out_cache)``;
    > ``_, dw1, db1 = affine_relu_backward(dout, h1_cache)``. (The comment ``# da = (x > 0) * relu_cache``
    > in ``affine_relu_backward`` should read ``(a > 0) * dout``; the code line itself is right.)

    Derivation. Chain the proven pieces: ``softmax_loss`` (proof ``softmax.loss_code_batch``), affine backward
    (``affine.dimension_matching004``), ReLU backward ``(a > 0) * dout`` (``act.relu004_prose``).

    Verdict: **holds** (the computation; see ``affine.grads_assignment004`` for how the code stores it).
    Check: FD of the loss w.r.t. every parameter; the library's ``Network`` (relu, fused softmax-CE, the same
    ``W``, ``b``) gives the same loss and gradients.
    """
    D, H, C, N = 3, 4, 3, 5
    params = [RNG.normal(size=(D, H)), RNG.normal(size=H) * 0.1, RNG.normal(size=(H, C)), RNG.normal(size=C) * 0.1]
    X, y = RNG.normal(size=(N, D)), np.array([0, 2, 1, 1, 0])
    loss, grads = claim(params, X, y)
    for i, name in enumerate(("W1", "b1", "W2", "b2")):

        def f(v, i=i):
            q = list(params)
            q[i] = v.reshape(params[i].shape)
            return claim(q, X, y)[0]

        assert_fd(name, grads[name].reshape(1, -1), f, params[i].reshape(-1), gradient=True)
    net = Network(
        [Dense.from_params(params[0], params[1], "relu"), Dense.from_params(params[2], params[3])],
        "softmax_cross_entropy",
    )
    lib_loss, lib = net.loss_and_gradients(X, y)
    assert abs(lib_loss - loss) < 1e-12
    for li, (wn, bn) in enumerate((("W1", "b1"), ("W2", "b2"))):
        assert_close(f"library {wn}", lib[li]["W"], grads[wn])
        assert_close(f"library {bn}", lib[li]["b"], grads[bn])


GRADS_LINE_004 = 'g["W2"] = dw2 , g["b2"] = db2'
GRADS_LINES_RIGHT = 'g["W2"] = dw2; g["b2"] = db2'


@proof(
    id="affine.grads_assignment004",
    seed="004",
    location="§4.4 TwoLayerNet.loss, storing the gradients",
    statement='grads["W2"] = dw2 , grads["b2"] = db2  (and the same for W1, b1)',
    verdict=WRONG,
    corrected='Python parses this as the chained assignment grads["W2"] = (dw2, grads["b2"]) = db2: it stores db2 '
    'under "W2" and unpacks db2 into (dw2, grads["b2"]) (ValueError unless len(db2) == 2); write two '
    'statements: grads["W2"] = dw2; grads["b2"] = db2',
)
def test_grads_assignment004(seed=GRADS_LINE_004, corrected=GRADS_LINES_RIGHT):
    r"""**CS231n walkthrough, §4.4, how ``TwoLayerNet.loss`` stores its gradients.**

    > ``grads["W2"] = dw2 , grads["b2"] = db2`` and ``grads["W1"] = dw1 , grads["b1"] = db1``.

    Derivation. ``a = b, c = d`` is not two assignments: it is one assignment with two targets, ``a`` and the
    tuple ``(b, c)``, and the value ``d``. So ``grads["W2"]`` receives ``db2`` (shape $(C,)$), and ``db2`` is then
    unpacked into ``dw2, grads["b2"]``: for $C=10$ classes this raises ``ValueError: too many values to
    unpack``; for $C = 2$ it silently stores wrong arrays.

    Verdict: **wrong**. Check: ``ast`` parses a statement of this form as one ``Assign`` with two targets;
    a restatement of that semantics raises for $C=3$ and stores ``db2`` under ``"W2"`` for $C=2$.
    """
    tree = ast.parse(seed)
    node = tree.body[0]
    assert isinstance(node, ast.Assign) and len(node.targets) == 2 and isinstance(node.targets[1], ast.Tuple)

    def run(stmt, dw2, db2):  # the printed statement, executed as printed
        ns = {"g": {}, "dw2": dw2, "db2": db2}
        exec(compile(stmt, "<TwoLayerNet.loss>", "exec"), ns)  # noqa: S102 - a fixed line of the source
        return ns["g"]

    try:
        run(seed, np.ones((4, 3)), np.zeros(3))
    except ValueError as e:
        assert "unpack" in str(e)
    else:
        raise AssertionError("expected a ValueError for 3 classes")
    g = run(seed, np.ones((4, 2)), np.array([0.5, -0.5]))
    assert g["W2"].shape == (2,) and g["b2"] == -0.5, "for 2 classes the wrong arrays are stored silently"
    dw2, db2 = np.ones((4, 3)), np.zeros(3)
    g = run(corrected, dw2, db2)
    assert g["W2"] is dw2 and g["b2"] is db2


FORWARD004 = {"code": "out = reshape_x.dot(w) +b", "product": lambda x, w: w @ x, "w_shape": lambda D1, D2: (D2, D2)}
FORWARD004_RIGHT = {
    "code": "out = reshaped_x.dot(w) + b",
    "product": lambda x, w: x @ w,
    "w_shape": lambda D1, D2: (D1, D2),
}


@proof(
    id="affine.forward004",
    seed="004",
    location="§3.3 affine_forward and §5.2 affine_bn_relu_forward docstring; footnote 2",
    statement="reshaped_x = np.reshape(x, (N, -1)); out = reshape_x.dot(w) + b  # out = w x + b; "
    "affine_bn_relu_forward: 'w, b: Arrays of shape (D2, D2) and (D2,)'; "
    "0.2*56 - 0.5*231 + 0.1*24 + 2.0*2 + 1.1 = -96.8",
    verdict=WRONG,
    corrected="out = reshaped_x.dot(w) + b (the name is reshaped_x; the product is x w, not w x, which does not "
    "type-check); w has shape (D1, D2); the footnote's arithmetic holds",
)
def test_forward004(seed=FORWARD004, corrected=FORWARD004_RIGHT):
    r"""**CS231n walkthrough, ``affine_forward`` and a docstring shape.**

    > ``reshaped_x = np.reshape(x, (x.shape[0],-1))``; ``out = reshape_x.dot(w) +b     # out = w x +b``;
    > ``affine_bn_relu_forward``: "- w, b: Arrays of shape (D2, D2) and (D2,)"; footnote 2:
    > $0.2\cdot56 -0.5\cdot231 +0.1\cdot24 +2.0\cdot2 +1.1 = -96.8$.

    Derivation. ``reshape_x`` is undefined (``NameError``); with the intended name the product is
    $xW$ with $x$ $(N, D)$, $W$ $(D, M)$. The comment's $wx$ is $(D,M)(N,D)$, which type-checks only if
    $M = N$. The affine layer inside ``affine_bn_relu_forward`` maps $D_1 \to D_2$, so $w$ is $(D_1, D_2)$; a
    $(D_2, D_2)$ matrix cannot multiply an $(N, D_1)$ input unless $D_1 = D_2$. Footnote: $11.2-115.5+2.4+4+1.1 = -96.8$.

    Verdict: **wrong** (code typo, comment and docstring shape; the footnote holds). Check: shapes; the
    footnote; the intended forward equals ``Dense.forward_batched``.
    """
    N, D1, D2 = 4, 3, 5
    x, w, b = RNG.normal(size=(N, D1)), RNG.normal(size=(D1, D2)), RNG.normal(size=D2)
    ns = {"reshaped_x": x.reshape(N, -1), "w": w, "b": b}
    try:
        exec(seed["code"], dict(ns))  # noqa: S102 - the printed line
    except NameError as e:
        assert "reshape_x" in str(e)
    else:
        raise AssertionError("the printed line ran")
    exec(corrected["code"], ns)  # noqa: S102
    out = ns["out"]
    assert_close("library forward_batched", Dense.from_params(w, b).forward_batched(x)[0], out)
    assert_close("x w", corrected["product"](x, w) + b, out)
    for bad in (lambda: seed["product"](x, w), lambda: x @ np.zeros(seed["w_shape"](D1, D2))):
        try:
            bad()
        except ValueError:
            continue
        raise AssertionError("expected a shape mismatch")
    assert (x @ np.zeros(corrected["w_shape"](D1, D2))).shape == (N, D2)
    assert abs((0.2 * 56 - 0.5 * 231 + 0.1 * 24 + 2.0 * 2 + 1.1) - (-96.8)) < 1e-9
