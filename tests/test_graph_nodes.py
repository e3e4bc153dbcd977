"""Mul and Add graph nodes (Deep Learning from Scratch's MulLayer/AddLayer): the book's apple and
orange example, each Jacobian against finite differences, the batched VJPs against the reference
rows, composition with Dense layers, and bad input. Kinks and tails: none (bilinear and linear)."""

from __future__ import annotations

import numpy as np
import pytest

import jacobian_nn as jn
from jacobian_nn.fd import compare, fd_jacobian

from support import cols, rows, same_bits


def c(v):
    return np.array([[float(v)]])


def test_apple_example():
    """The book's first graph: 2 apples at 100 with tax 1.1 -> 220; dprice = 1 gives
    dapple = 2.2, dapple_num = 110, dtax = 200."""
    mul_apple, mul_tax = jn.Mul(), jn.Mul()
    apple_price, ctx1 = mul_apple.forward(c(100), c(2))
    price, ctx2 = mul_tax.forward(apple_price, c(1.1))
    assert price[0, 0] == pytest.approx(220.0, rel=1e-15, abs=0)
    d_apple_price, d_tax = mul_tax.backward(c(1), ctx2)
    d_apple, d_apple_num = mul_apple.backward(d_apple_price, ctx1)
    assert (d_apple[0, 0], d_apple_num[0, 0], d_tax[0, 0]) == pytest.approx((2.2, 110.0, 200.0), rel=1e-15, abs=0)


def test_apple_and_orange_example():
    """The book's second graph: 2 apples at 100, 3 oranges at 150, tax 1.1 -> 715.0000000000001 (as the
    book prints it); gradients 110, 2.2, 3.3, 165, 650."""
    mul_apple, mul_orange, add, mul_tax = jn.Mul(), jn.Mul(), jn.Add(), jn.Mul()
    a, ca = mul_apple.forward(c(100), c(2))
    o, co = mul_orange.forward(c(150), c(3))
    s, cs = add.forward(a, o)
    price, ct = mul_tax.forward(s, c(1.1))
    assert price[0, 0] == 715.0000000000001  # the book's printed value, bit for bit
    ds, dtax = mul_tax.backward(c(1), ct)
    da, do = add.backward(ds, cs)
    d_apple, d_apple_num = mul_apple.backward(da, ca)
    d_orange, d_orange_num = mul_orange.backward(do, co)
    got = [v[0, 0] for v in (d_apple_num, d_apple, d_orange, d_orange_num, dtax)]
    assert got == pytest.approx([110.0, 2.2, 3.3, 165.0, 650.0], rel=1e-15, abs=0)


@pytest.mark.parametrize("node", [jn.Mul(), jn.Add()], ids=repr)
def test_jacobians_against_finite_differences(node):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(4, 1)), rng.normal(size=(4, 1))
    fx = fd_jacobian(lambda v: node.forward(v[:, None], y)[0], x)
    fy = fd_jacobian(lambda v: node.forward(x, v[:, None])[0], y)
    assert compare("d out/dx", node.jacobian_x(x, y), fx.df, err=fx.error).passed
    assert compare("d out/dy", node.jacobian_y(x, y), fy.df, err=fy.error).passed


def test_mul_jacobians_are_the_diagonals_of_the_other_input():
    x, y = np.array([[1.0], [-2.0], [0.0]]), np.array([[3.0], [0.5], [-4.0]])
    assert np.array_equal(jn.Mul().jacobian_x(x, y), np.diag([3.0, 0.5, -4.0]))
    assert np.array_equal(jn.Mul().jacobian_y(x, y), np.diag([1.0, -2.0, 0.0]))
    assert np.array_equal(jn.Add().jacobian_x(x, y), np.eye(3))


@pytest.mark.parametrize("node", [jn.Mul(), jn.Add()], ids=repr)
def test_batched_against_stacked_reference(node):
    rng = np.random.default_rng(1)
    X, Y, G = (rng.normal(size=(6, 3)) for _ in range(3))
    X0, Y0, G0 = X.copy(), Y.copy(), G.copy()
    OUT, ctx = node.forward_batched(X, Y)
    dX, dY = node.backward_batched(G, ctx)
    ref = [node.forward(x, y) for x, y in zip(cols(X), cols(Y))]
    assert np.allclose(OUT, np.hstack([o for o, _ in ref]).T, rtol=1e-15, atol=0)
    back = [node.backward(g, cx) for g, (_, cx) in zip(rows(G), ref)]
    assert np.allclose(dX, np.vstack([b[0] for b in back]), rtol=1e-15, atol=0)
    assert np.allclose(dY, np.vstack([b[1] for b in back]), rtol=1e-15, atol=0)
    JX, JY = node.jacobian_x_batched(X, Y), node.jacobian_y_batched(X, Y)
    for k in range(6):
        assert np.array_equal(JX[k], node.jacobian_x(X[k][:, None], Y[k][:, None]))
        assert np.array_equal(JY[k], node.jacobian_y(X[k][:, None], Y[k][:, None]))
    assert same_bits(X, X0) and same_bits(Y, Y0) and same_bits(G, G0)  # inputs untouched
    dX[...] = 7.0  # dX is the caller's
    assert same_bits(G, G0) and same_bits(X, X0) and same_bits(Y, Y0)


def test_composes_with_dense_layers():
    """out = Dense_a(x) * Dense_b(x) + x: the rows of the nodes go into each layer's backward; the
    gradient w.r.t. x and W matches finite differences."""
    la = jn.Dense(3, 3, "tanh", init="xavier", seed=0)
    lb = jn.Dense(3, 3, "sigmoid", init="xavier", seed=1)
    mul, add = jn.Mul(), jn.Add()
    x = np.random.default_rng(2).normal(size=(3, 1))
    w = np.array([[1.0, -0.5, 2.0]])

    def loss(xv):
        a, _ = la.forward(xv)
        b, _ = lb.forward(xv)
        p, _ = mul.forward(a, b)
        s, _ = add.forward(p, xv)
        return float((w @ s)[0, 0])

    a, ca = la.forward(x)
    b, cb = lb.forward(x)
    p, cm = mul.forward(a, b)
    s, cs = add.forward(p, x)
    dp, dx_skip = add.backward(w, cs)
    da, db = mul.backward(dp, cm)
    dxa, ga = la.backward(da, ca)
    dxb, _ = lb.backward(db, cb)
    dx = dxa + dxb + dx_skip
    fd = jn.fd_gradient(lambda v: loss(v[:, None]), x)
    assert compare("dL/dx", dx, fd.df, err=fd.error).passed
    W0 = la.W.copy()

    def loss_W(wv):
        la.W[...] = wv.reshape(W0.shape)
        try:
            return loss(x)
        finally:
            la.W[...] = W0

    fdW = jn.fd_gradient(loss_W, W0)
    assert compare("dL/dW_a", ga["W"].reshape(1, -1), fdW.df, err=fdW.error).passed


def test_bad_input_names_the_argument():
    with pytest.raises(ValueError, match=r"y: expected shape \(3, 1\)"):
        jn.Mul().forward(np.ones((3, 1)), np.ones((2, 1)))
    with pytest.raises(ValueError, match="x: expected a column"):
        jn.Add().forward(np.ones(3), np.ones((3, 1)))
    with pytest.raises(ValueError, match=r"Y: expected shape \(4, 2\)"):
        jn.Mul().forward_batched(np.ones((4, 2)), np.ones((5, 2)))
    _, ctx = jn.Add().forward_batched(np.ones((4, 2)), np.ones((4, 2)))
    with pytest.raises(ValueError, match=r"G: expected shape \(4, 2\)"):
        jn.Add().backward_batched(np.ones((3, 2)), ctx)
    _, ctx = jn.Mul().forward(np.ones((2, 1)), np.ones((2, 1)))
    with pytest.raises(ValueError, match="grad_out"):
        jn.Mul().backward(np.ones((1, 3)), ctx)
    # the near miss: matching shapes pass
    out, _ = jn.Mul().forward_batched(np.ones((4, 2)), np.full((4, 2), 2.0))
    assert np.array_equal(out, np.full((4, 2), 2.0))
