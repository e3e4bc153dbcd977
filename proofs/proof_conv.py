r"""DLFS notes (*Deep Learning from Scratch* notes): the convolution and pooling layers (forward code built on
``im2col``), and the derivatives this library adds to them: the sparse Jacobian's pattern and count, the
backward pass through ``im2col``/``col2im``, and the max-pooling Jacobian at ties. (The output-size formula
and the pooling code's missing pad are ``graph.conv_size002`` in ``proof_seed002_graph.py``.)"""

from __future__ import annotations

import numpy as np

from jacobian_nn.conv import Conv2D, MaxPool2D, col2im, im2col, window_indices

from ._helpers import assert_close, assert_differs, assert_fd, fd, rng, sym_zero
from ._registry import CONVENTION, HOLDS, proof, require_sympy, symbolic


def _notes_convolution_forward(x, W, b, stride, pad):
    """The notes' ``Convolution.forward``, restated (``im2col``: the book's layout, rows ``(n, oh, ow)``,
    columns ``(c, i, j)``, which the notes call without printing it)."""
    FN, C, FH, FW = W.shape
    N, C, H, Wd = x.shape
    out_h = int(1 + (H + 2 * pad - FH) / stride)
    out_w = int(1 + (Wd + 2 * pad - FW) / stride)
    col = im2col(x, FH, FW, stride, pad)
    col_W = W.reshape(FN, -1).T
    out = np.dot(col, col_W) + b
    return out.reshape(N, out_h, out_w, -1).transpose(0, 3, 1, 2)


def _windowed(x, W, b, stride, pad, flip):
    """The sliding-window sum of products, ``out[n, f, oh, ow] = sum W'[f, c, i, j] xp[n, c, oh S + i, ow S + j]
    + b[f]`` with ``W' = W`` (cross-correlation) or ``W`` flipped in both spatial axes (convolution)."""
    Wk = W[:, :, ::-1, ::-1] if flip else W
    FN, C, FH, FW = W.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    OH, OW = (xp.shape[2] - FH) // stride + 1, (xp.shape[3] - FW) // stride + 1
    out = np.empty((x.shape[0], FN, OH, OW))
    for oh in range(OH):
        for ow in range(OW):
            patch = xp[:, :, oh * stride : oh * stride + FH, ow * stride : ow * stride + FW]
            out[:, :, oh, ow] = np.einsum("ncij,fcij->nf", patch, Wk) + b
    return out


def _cross_correlation(x, W, b, stride, pad):
    return _windowed(x, W, b, stride, pad, flip=False)


def _flipped_convolution(x, W, b, stride, pad):
    return _windowed(x, W, b, stride, pad, flip=True)


@proof(
    id="conv.cross_correlation002",
    seed="002",
    location="§卷积神经网络, class Convolution (forward)",
    statement="col = im2col(x, FH, FW, self.stride, self.pad); col_W = self.W.reshape(FN, -1).T; "
    "out = np.dot(col, col_W) + self.b; out.reshape(N, out_h, out_w, -1).transpose(0, 3, 1, 2)",
    verdict=CONVENTION,
    corrected="with im2col laying out rows (n, oh, ow) and columns (c, i, j) (the book's, not printed in the "
    "notes), the code computes the cross-correlation of x with W plus b (no kernel flip): the "
    "'convolution' of the notes is not the flipped-kernel convolution of signal processing",
)
def test_cross_correlation002(seed=_flipped_convolution, corrected=_cross_correlation):
    r"""**DLFS notes, the convolution layer's forward code.**

    > ``col = im2col(x, FH, FW, self.stride, self.pad)``
    > ``col_W = self.W.reshape(FN, -1).T # 滤波器的展开``
    > ``out = np.dot(col, col_W) + self.b``
    > ``out = out.reshape(N, out_h, out_w, -1).transpose(0, 3, 1, 2)``

    Derivation. Row $(n, o_h, o_w)$ of ``col`` is the padded window
    $x_p[n, :, o_h S : o_h S + F_H, o_w S : o_w S + F_W]$ flattened as $(c, i, j)$, and column $f$ of
    ``col_W`` is $W[f]$ flattened the same way, so their product is
    $\sum_{c,i,j} W[f,c,i,j]\, x_p[n, c, o_h S + i, o_w S + j] + b_f$: a cross-correlation. The
    convolution of signal processing flips the kernel, $W[f, c, F_H-1-i, F_W-1-j]$; the two differ unless
    the kernel is symmetric. ``im2col`` itself is called but not printed in the notes; its layout is the
    convention stated here (the book's, and this library's ``jacobian_nn.conv.im2col``).

    Verdict: **holds under a stated convention** (the im2col layout; "convolution" meaning
    cross-correlation). Check: the restated code against both sliding-window definitions, and against the
    library's ``Conv2D``, on random inputs with stride and padding.
    """
    r = rng(0)
    x, W, b = r.normal(size=(2, 3, 7, 7)), r.normal(size=(4, 3, 3, 3)), r.normal(size=4)
    for stride, pad in ((1, 0), (2, 1), (1, 2)):
        notes = _notes_convolution_forward(x, W, b, stride, pad)
        assert_close(
            f"the notes' code = the stated convention (S={stride}, P={pad})", notes, corrected(x, W, b, stride, pad)
        )
        assert_differs(
            f"the notes' code != the excluded reading (S={stride}, P={pad})", notes, seed(x, W, b, stride, pad)
        )
        layer = Conv2D.from_params(W, b, (3, 7, 7), stride=stride, pad=pad)
        lib = layer.forward_batched(x.reshape(2, -1))[0].reshape(notes.shape)
        assert_close("the library's Conv2D", lib, notes)


def _nnz_formula(shape, F, FH, FW, S, P):
    r"""$F \cdot C \cdot \sum_{o_h} \#\{i : 0 \le o_h S + i - P < H\} \cdot \sum_{o_w} \#\{j : 0 \le o_w S + j - P < W\}$."""
    C, H, W = shape
    OH, OW = (H + 2 * P - FH) // S + 1, (W + 2 * P - FW) // S + 1
    rows_in = sum(sum(0 <= oh * S + i - P < H for i in range(FH)) for oh in range(OH))
    cols_in = sum(sum(0 <= ow * S + j - P < W for j in range(FW)) for ow in range(OW))
    return F * C * rows_in * cols_in


@proof(
    id="conv.sparsity002",
    seed="002",
    location="§卷积运算的处理流(批处理), the shapes of the batched convolution",
    statement="(N, C, H, W) * (FN, C, FH, FW) -> (N, FN, OH, OW) + (FN, 1, 1) -> (N, FN, OH, OW)",
    verdict=HOLDS,
)
def test_sparsity002(claim=_nnz_formula):
    r"""**DLFS notes, the shapes of a convolution.**

    > $(N, C, H, W) \ast (FN, C, FH, FW) \rightarrow (N, FN, OH, OW) + (FN, 1, 1) \rightarrow (N, FN, OH, OW)$

    Derivation. For one image the layer is linear in $x \in \mathbb{R}^{C H W}$ (plus $b$), so its Jacobian
    $\partial z / \partial x$ is a constant $(F\,OH\,OW) \times (C H W)$ matrix. Row $f\,OH\,OW + o_h OW + o_w$
    has the entry $W[f, c, i, j]$ in column $c H W + (o_h S + i - P) W + (o_w S + j - P)$ for every
    $(c, i, j)$ whose input position lies inside the image (the padding contributes zeros, not entries): at
    most $C F_H F_W$ non-zeros per row, and in total
    $F\,C\,\big(\sum_{o_h} \#\{i\}\big)\big(\sum_{o_w} \#\{j\}\big)$ (the row and column conditions are
    independent).

    Verdict: **holds** (the shapes; the count is derived from them). Check: the library's sparse Jacobian
    against finite differences (the pattern: every non-zero of the FD Jacobian is a stored entry, and no
    more), and its ``nnz`` against the formula, for several strides and paddings, including the CIFAR shape.
    """
    r = rng(1)
    for shape, F, FH, FW, S, P in (((2, 5, 4), 3, 3, 3, 1, 1), ((1, 7, 6), 2, 3, 2, 2, 1), ((3, 6, 6), 2, 2, 2, 2, 0)):
        layer = Conv2D(shape, F, (FH, FW), stride=S, pad=P, seed=r)
        x = r.normal(size=(layer.n_in, 1))
        J = layer.jacobian_x(x)
        if layer.n_in <= 64:  # the finite-difference witness on the two small layers (verify stays quick)
            numeric = fd(lambda v: layer.forward(v[:, None])[0][:, 0], x)
            assert_close("dz/dx against finite differences", J.toarray(), numeric, atol=1e-8, rtol=1e-8)
            assert np.array_equal(J.toarray() != 0, np.abs(numeric) > 1e-8), "the pattern"
        assert np.diff(J.indptr).max() <= shape[0] * FH * FW
        assert J.nnz == claim(shape, F, FH, FW, S, P), f"nnz {J.nnz} vs the formula {claim(shape, F, FH, FW, S, P)}"
    big = Conv2D((3, 32, 32), 16, 3, pad=1, seed=0)
    _, inside = window_indices((3, 32, 32), 3, 3, 1, 1)
    assert 16 * int(inside.sum()) == claim((3, 32, 32), 16, 3, 3, 1, 1) == big.jacobian_x(np.ones((3072, 1))).nnz


def _backward_through_im2col(x, W, dout, stride, pad):
    r"""From ``out = col col_W + b``: ``dcol = dout col_W^T``, ``dx = col2im(dcol)``, ``dW = (col^T dout)^T``
    reshaped to ``W``, ``db = sum dout``; ``dout`` arranged ``(N OH OW, FN)`` as ``out`` is before its reshape."""
    FN, C, FH, FW = W.shape
    col = im2col(x, FH, FW, stride, pad)
    d = dout.transpose(0, 2, 3, 1).reshape(-1, FN)
    dx = col2im(d @ W.reshape(FN, -1), x.shape, FH, FW, stride, pad)
    dW = (col.T @ d).T.reshape(W.shape)
    return dx, dW, d.sum(axis=0)


@proof(
    id="conv.backward002",
    seed="002",
    location="§卷积神经网络, class Convolution (forward through im2col)",
    statement="col = im2col(x, ...); col_W = self.W.reshape(FN, -1).T; out = np.dot(col, col_W) + self.b",
    verdict=HOLDS,
)
def test_backward002(claim=_backward_through_im2col):
    r"""**DLFS notes, the backward pass implied by the im2col forward.**

    > ``col = im2col(x, FH, FW, self.stride, self.pad)``; ``col_W = self.W.reshape(FN, -1).T``;
    > ``out = np.dot(col, col_W) + self.b``

    Derivation. The forward is a matrix product of the copy ``col = im2col(x)``: for $L = \langle G,
    \mathrm{out}\rangle$, $\partial L/\partial\,\mathrm{col} = G\, \mathrm{col\_W}^\top$,
    $\partial L/\partial\,\mathrm{col\_W} = \mathrm{col}^\top G$, $\partial L/\partial b = \mathbf{1}^\top G$.
    ``im2col`` copies each input entry into every window that contains it, so its adjoint ``col2im`` adds each
    column entry back to the input position it came from: $dx = \mathrm{col2im}(G\,W_{\mathrm{mat}})$,
    $dW = (\mathrm{col}^\top G)^\top$ in $W$'s shape.

    Verdict: **holds**. Checks: finite differences of $L$ w.r.t. $x$, $W$ and $b$ (stride 2, pad 1), and sympy
    at $C = F = 1$, $3 \times 3$ input, $2 \times 2$ kernel.
    """
    r = rng(2)
    x, W, b = r.normal(size=(2, 2, 5, 5)), r.normal(size=(3, 2, 3, 3)), r.normal(size=3)
    G = r.normal(size=_notes_convolution_forward(x, W, b, 2, 1).shape)
    dx, dW, db = claim(x, W, G, 2, 1)

    def loss(x_, W_, b_):
        return float(np.sum(G * _notes_convolution_forward(x_, W_, b_, 2, 1)))

    assert_fd("dx = col2im(dcol)", dx.reshape(1, -1), lambda v: loss(v.reshape(x.shape), W, b), x, gradient=True)
    assert_fd("dW = dout . col", dW.reshape(1, -1), lambda v: loss(x, v.reshape(W.shape), b), W, gradient=True)
    assert_fd("db = sum dout", db.reshape(1, -1), lambda v: loss(x, W, v), b, gradient=True)


@symbolic("conv.backward002")
def test_backward002_symbolic():
    sp = require_sympy()
    xs = sp.Matrix(3, 3, lambda i, j: sp.Symbol(f"x{i}{j}"))
    ws = sp.Matrix(2, 2, lambda i, j: sp.Symbol(f"w{i}{j}"))
    gs = sp.Matrix(2, 2, lambda i, j: sp.Symbol(f"g{i}{j}"))
    out = sp.Matrix(2, 2, lambda a, c: sum(ws[i, j] * xs[a + i, c + j] for i in range(2) for j in range(2)))
    L = sum(gs[a, c] * out[a, c] for a in range(2) for c in range(2))
    # im2col / col2im written out at this size: col row (a, c) = window, dcol = g w^T, dx = sum of dcol entries
    col = sp.Matrix(4, 4, lambda r, k: xs[r // 2 + k // 2, r % 2 + k % 2])
    g = sp.Matrix(4, 1, lambda r, _: gs[r // 2, r % 2])
    wv = sp.Matrix(4, 1, lambda k, _: ws[k // 2, k % 2])
    dcol = g * wv.T
    dx = sp.zeros(3, 3)
    for r_ in range(4):
        for k in range(4):
            dx[r_ // 2 + k // 2, r_ % 2 + k % 2] += dcol[r_, k]
    dW = (col.T * g).reshape(2, 2)
    sym_zero(sp, dx - sp.Matrix(3, 3, lambda i, j: sp.diff(L, xs[i, j])), "dx = col2im(dcol)")
    sym_zero(sp, dW - sp.Matrix(2, 2, lambda i, j: sp.diff(L, ws[i, j])), "dW = col^T dout")


def _first_maximal(window):
    """The tie convention stated here: the first maximal element in C order takes the gradient."""
    return int(np.argmax(window))


def _last_maximal(window):
    """The other tie-break (the last maximal element)."""
    return len(window) - 1 - int(np.argmax(window[::-1]))


def _notes_pooling_forward(x, pool_h, pool_w, stride):
    """The notes' ``Pooling.forward`` with ``pad = 0`` (its size formula has no pad: ``graph.conv_size002``)."""
    N, C, H, W = x.shape
    out_h = int(1 + (H - pool_h) / stride)
    out_w = int(1 + (W - pool_w) / stride)
    col = im2col(x, pool_h, pool_w, stride, 0)
    col = col.reshape(-1, pool_h * pool_w)
    out = np.max(col, axis=1)
    return out.reshape(N, out_h, out_w, C).transpose(0, 3, 1, 2)


@proof(
    id="conv.maxpool002",
    seed="002",
    location="§池化层, class Pooling (forward)",
    statement="col = col.reshape(-1, self.pool_h*self.pool_w); out = np.max(col, axis=1); "
    "out = out.reshape(N, out_h, out_w, C).transpose(0, 3, 1, 2)",
    verdict=CONVENTION,
    corrected="the max is differentiable except at ties; its Jacobian is a selection matrix with one 1 per "
    "row at the window's maximum, and at a tie this library gives the 1 to the first maximal "
    "element in C order (a kink: any point between the one-sided derivatives is a subgradient)",
)
def test_maxpool002(seed=_last_maximal, corrected=_first_maximal):
    r"""**DLFS notes, the max-pooling layer's forward code.**

    > ``col = col.reshape(-1, self.pool_h*self.pool_w)``
    > ``out = np.max(col, axis=1)``
    > ``out = out.reshape(N, out_h, out_w, C).transpose(0, 3, 1, 2)``

    Derivation. With the im2col layout, each row of the reshaped ``col`` is one channel's window, so ``out``
    is the window maximum. Where the maximum is unique, $\partial y_r/\partial x_k = 1$ at its position and
    0 elsewhere: a selection matrix $(C\,OH\,OW) \times (C H W)$. At a tie the maximum is not differentiable:
    moving either tied element up makes it the unique maximum (right derivative 1), moving it down leaves
    the other (left derivative 0). The notes do not say which element gets the gradient; this library
    states it: the first maximal element in C order.

    Verdict: **holds under a stated convention** (the tie-break). Check: the notes' code equals the
    library's forward; at an exact tie the library's Jacobian (both paths) selects by the stated rule, not by
    the other one, and lies between the one-sided finite differences; away from ties it equals them.
    """
    r = rng(3)
    x = r.normal(size=(1, 2, 4, 4))
    x[0, 0, 0, 0] = x[0, 0, 1, 1] = 4.0  # a tie in channel 0, window (0, 0)
    x[0, 1, 2, 3] = x[0, 1, 3, 2] = 4.0  # a tie in channel 1, window (1, 1)
    layer = MaxPool2D((2, 4, 4), 2)
    flat = x.reshape(1, -1)
    assert_close(
        "the notes' Pooling.forward", _notes_pooling_forward(x, 2, 2, 2).reshape(1, -1), layer.forward_batched(flat)[0]
    )
    J = layer.jacobian_x(flat.T).toarray()
    _, ctx = layer.forward_batched(np.repeat(flat, layer.n_out, axis=0))
    Jb, _ = layer.backward_batched(np.eye(layer.n_out), ctx)
    assert_close("batched VJP rows = reference Jacobian", Jb, J)
    expected, excluded = np.zeros_like(J), np.zeros_like(J)
    windows = x[0].reshape(2, 2, 2, 2, 2).transpose(0, 1, 3, 2, 4).reshape(2, 2, 2, 4)  # (c, oh, ow, i*2 + j)
    for c in range(2):
        for oh in range(2):
            for ow in range(2):
                row = c * 4 + oh * 2 + ow
                for pick, M in ((corrected, expected), (seed, excluded)):
                    i, j = divmod(pick(windows[c, oh, ow]), 2)
                    M[row, c * 16 + (2 * oh + i) * 4 + (2 * ow + j)] = 1.0
    assert_close("the stated tie convention", J, expected)
    assert_differs("the other tie-break", J, excluded, by=1.0)
    f = lambda v: layer.forward(v[:, None])[0][:, 0]  # noqa: E731
    left, right = fd(f, flat[0], step_direction=-1), fd(f, flat[0], step_direction=1)
    assert np.all((np.minimum(left, right) - 1e-7 <= J) & (J <= np.maximum(left, right) + 1e-7)), (
        "between the one-sided derivatives"
    )
    untied = [1, 2, 3, 4, 5, 6]  # rows without a tie (rows 0 and 7 have one)
    assert_fd("away from ties", J[untied], lambda v: f(v)[untied], flat[0])
