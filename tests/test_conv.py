"""Convolution, pooling and spatial batch norm: the reference path's sparse Jacobians, the batched path's
im2col/col2im VJPs and finite differences (``scipy.differentiate.jacobian``), three witnesses per derivative,
in float64, at random points and at exact kinks (ReLU zeros, max-pooling ties). Tails: the layers are
linear but for their activation, whose tails (both paths) are in ``test_activations.py``.

Networks of these layers (both paths, cross_check, FD, the Solver, saving): ``test_conv_network.py``;
the command line's CNN: ``test_conv_cli.py``; the checker's CS231n-style image references:
``test_check_conv.py``."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from jacobian_nn import fd_jacobian
from jacobian_nn.conv import AvgPool2D, Conv2D, MaxPool2D, SpatialBatchNorm, col2im, im2col, output_size, window_indices
from support import WorstErrors, cols, rel_err

WORST = WorstErrors()

#: float64 agreement of two exact computations summed in different orders
PATHS_RTOL = 1e-12
#: agreement with scipy's finite differences (plus 10x its own error estimate)
FD_RTOL, FD_ATOL = 1e-7, 1e-9


_dump_worst = WORST.dump_at_module_end("test_conv")


def close(name, a, b, rtol=PATHS_RTOL):
    err = WORST.record(name, rel_err(a, b))
    assert err <= rtol, f"{name}: relative error {err:.3g} > {rtol:.1g}"


def fd_close(name, analytic, fd):
    """``analytic`` against an :class:`~jacobian_nn.fd.FDResult` (entry tolerance with the FD error estimate)."""
    analytic = analytic.toarray() if sp.issparse(analytic) else np.asarray(analytic)
    tol = FD_ATOL + FD_RTOL * np.abs(fd.df) + 10 * fd.error
    WORST.record(name, rel_err(analytic, fd.df))
    bad = np.abs(analytic - fd.df) > tol
    assert not bad.any(), f"{name}: {bad.sum()} entries beyond tolerance, max {np.abs(analytic - fd.df).max():.3g}"


def naive_conv(x, W, b, stride, pad):
    """The definition, written as loops (a witness for tests only): cross-correlation of one image (C, H, W)."""
    F, C, FH, FW = W.shape
    xp = np.pad(x, ((0, 0), (pad, pad), (pad, pad)))
    OH = (xp.shape[1] - FH) // stride + 1
    OW = (xp.shape[2] - FW) // stride + 1
    out = np.zeros((F, OH, OW))
    for f in range(F):
        for i in range(OH):
            for j in range(OW):
                out[f, i, j] = np.sum(W[f] * xp[:, i * stride : i * stride + FH, j * stride : j * stride + FW]) + b[f]
    return out


def reference_rows(layer, X, G):
    """The reference path over a batch: outputs (N, m), input-gradient rows (N, n), gradients summed."""
    ys, dxs, total = [], [], {k: np.zeros_like(v) for k, v in layer.params.items()}
    for x, g in zip(cols(X), G):
        y, ctx = layer.forward(x)
        dx, grads = layer.backward(g[None], ctx)
        ys.append(y[:, 0])
        dxs.append(dx[0])
        for k in grads:
            total[k] += grads[k]
    return np.array(ys), np.array(dxs), total


CONV_CASES = [  # (input_shape, F, kernel, stride, pad, activation)
    ((2, 5, 5), 3, 3, 1, 1, "relu"),
    ((3, 7, 7), 2, (2, 3), 1, 0, "tanh"),
    ((1, 7, 7), 2, 3, 2, 1, "identity"),
    ((2, 6, 6), 2, 2, 2, 0, "sigmoid"),
    ((1, 4, 5), 1, 1, 1, 0, "elu"),
]


def conv_layer(case, seed=0):
    shape, F, k, s, p, act = case
    layer = Conv2D(shape, F, k, stride=s, pad=p, activation=act, seed=seed)
    layer.b[:] = np.random.default_rng(seed + 1).normal(size=F)
    return layer


# --------------------------------------------------------------------------- sizes, im2col, col2im


def test_output_size_formula_and_refusal():
    assert output_size(32, 3, 1, 1) == 32 and output_size(7, 3, 2, 1) == 4 and output_size(28, 5, 1, 0) == 24
    with pytest.raises(ValueError, match=r"\(6 \+ 2\*0 - 3\) / 2 is not an integer"):
        output_size(6, 3, 2, 0)
    with pytest.raises(ValueError, match="does not fit"):
        output_size(2, 5, 1, 1)
    with pytest.raises(ValueError, match="W:"):
        Conv2D((1, 7, 6), 2, 3, stride=2)  # H divides, W does not
    Conv2D((1, 7, 7), 2, 3, stride=2)  # the near miss: both divide


def test_im2col_rows_are_the_windows():
    rng = np.random.default_rng(0)
    X4 = rng.normal(size=(2, 3, 5, 5))
    col = im2col(X4, 3, 3, stride=2, pad=1)
    Xp = np.pad(X4, ((0, 0), (0, 0), (1, 1), (1, 1)))
    assert col.shape == (2 * 3 * 3, 3 * 9)
    for n, oh, ow in [(0, 0, 0), (1, 2, 1), (1, 1, 2)]:
        assert np.array_equal(col[n * 9 + oh * 3 + ow], Xp[n, :, 2 * oh : 2 * oh + 3, 2 * ow : 2 * ow + 3].reshape(-1))
    D = rng.normal(size=col.shape)
    back = col2im(D, X4.shape, 3, 3, stride=2, pad=1)
    assert back.shape == X4.shape
    # adjoint: <col2im(D), X> = <D, im2col(X)>
    assert abs(np.sum(back * X4) - np.sum(D * col)) <= 1e-12 * np.sum(np.abs(D * col))


# --------------------------------------------------------------------------- convolution


@pytest.mark.parametrize("case", CONV_CASES, ids=[f"{c[0]}-F{c[1]}-k{c[2]}-s{c[3]}-p{c[4]}-{c[5]}" for c in CONV_CASES])
def test_conv_both_paths_agree(case):
    layer = conv_layer(case)
    rng = np.random.default_rng(2)
    X = rng.normal(size=(3, layer.n_in))
    Y, ctx = layer.forward_batched(X)
    G = rng.normal(size=Y.shape)
    dX, grads = layer.backward_batched(G, ctx)
    _, per = layer.backward_batched(G, ctx, per_sample=True, input_grad=False)
    Yr, dXr, gr = reference_rows(layer, X, G)
    close("conv forward", Y, Yr)
    for n in range(X.shape[0]):
        Z = naive_conv(X[n].reshape(layer.input_shape), layer.W, layer.b, layer.stride, layer.pad).reshape(-1)
        close("conv forward vs definition", layer.activation.forward(Z[:, None])[:, 0], Y[n])
    close("conv dX", dX, dXr)
    close("conv dW", grads["W"], gr["W"])
    close("conv db", grads["b"], gr["b"])
    close("conv per-sample dW (sum)", per["W"].sum(axis=0), grads["W"])
    close("conv per-sample db (sum)", per["b"].sum(axis=0), grads["b"])
    x0, g0 = X[:1].T, G[:1]
    _, c0 = layer.forward(x0)
    _, g_ref = layer.backward(g0, c0)
    close("conv per-sample dW", per["W"][0], g_ref["W"])


@pytest.mark.parametrize("case", CONV_CASES[:4], ids=[f"case{i}" for i in range(4)])
def test_conv_jacobians_against_finite_differences(case):
    layer = conv_layer(case)
    rng = np.random.default_rng(3)
    x = rng.normal(size=(layer.n_in, 1))
    shape = layer.input_shape
    kw = dict(stride=layer.stride, pad=layer.pad, activation=layer.activation)

    def y_of_x(v):
        return layer.forward(v[:, None])[0][:, 0]

    def y_of_W(w):
        return Conv2D.from_params(w.reshape(layer.W.shape), layer.b, shape, **kw).forward(x)[0][:, 0]

    def y_of_b(b):
        return Conv2D.from_params(layer.W, b, shape, **kw).forward(x)[0][:, 0]

    Jx = layer.jacobian_x(x)
    assert sp.issparse(Jx) and Jx.shape == (layer.n_out, layer.n_in)
    fd_close("conv dy/dx vs FD", Jx, fd_jacobian(y_of_x, x))
    fd_close("conv dy/dvec(W) vs FD", layer.jacobian_W(x), fd_jacobian(y_of_W, layer.W))
    fd_close("conv dy/db vs FD", layer.jacobian_b(x), fd_jacobian(y_of_b, layer.b))
    close("conv batched dy/db vs reference", layer.jacobian_b_batched(x.T)[0], layer.jacobian_b(x).toarray())
    assert MaxPool2D((1, 4, 4), 2).jacobian_b_batched(np.ones((1, 16))) is None  # no bias
    # the batched VJP of every unit row assembles the same Jacobian (third witness)
    E = np.eye(layer.n_out)
    _, ctx = layer.forward_batched(np.repeat(x.T, layer.n_out, axis=0))
    dX, _ = layer.backward_batched(E, ctx)
    fd_close("conv batched VJP rows vs FD", dX, fd_jacobian(y_of_x, x))
    close("conv batched VJP rows vs reference", dX, Jx.toarray())


def test_conv_jacobian_sparsity_pattern_and_count():
    """At most C*FH*FW non-zeros per row; the total is F times the number of (position, kernel entry)
    pairs inside the image; every stored entry is a weight."""
    layer = Conv2D((2, 5, 4), 3, 3, pad=1, seed=0)
    Jx = layer.jacobian_x(np.random.default_rng(0).normal(size=(layer.n_in, 1)))
    per_row = np.diff(Jx.indptr)
    assert per_row.max() == 2 * 9 and per_row.min() == 2 * 4  # interior rows full, corner rows 2x2
    _, inside = window_indices((2, 5, 4), 3, 3, 1, 1)
    assert Jx.nnz == 3 * inside.sum()
    assert set(np.unique(Jx.data)) <= set(np.unique(layer.W))
    index, _ = window_indices((2, 5, 4), 3, 3, 1, 1)
    P = 5 * 4
    for r in (0, 7, P + 13, 2 * P + 19):  # row f*P + p: the window of p, inside the image
        p = r % P
        assert sorted(Jx[[r], :].nonzero()[1]) == sorted(index[p][inside[p]])


def test_flipped_kernel_is_a_different_function():
    """Convolution here is cross-correlation: flipping the kernel (true convolution) changes the output."""
    layer = Conv2D((1, 5, 5), 1, 3, seed=0)
    x = np.random.default_rng(1).normal(size=(25, 1))
    flipped = Conv2D.from_params(layer.W[:, :, ::-1, ::-1], layer.b, (1, 5, 5))
    assert not np.allclose(layer.forward(x)[0], flipped.forward(x)[0])
    sym = Conv2D.from_params(np.ones((1, 1, 3, 3)), layer.b, (1, 5, 5))  # a symmetric kernel: flipping is a no-op
    sym_flipped = Conv2D.from_params(np.ones((1, 1, 3, 3))[:, :, ::-1, ::-1], layer.b, (1, 5, 5))
    assert np.array_equal(sym.forward(x)[0], sym_flipped.forward(x)[0])


def test_conv_relu_at_exact_zero_takes_the_left_branch():
    """A window of zeros with b = 0 gives z = 0 exactly: relu'(0) = 0, so that output's Jacobian row is 0 in
    both paths, and the claim lies between the one-sided finite differences."""
    layer = Conv2D((1, 5, 5), 2, 3, activation="relu", seed=0)
    x = np.random.default_rng(4).normal(size=(25, 1))
    x.reshape(5, 5)[:3, :3] = 0.0  # output position (0, 0) sees only zeros
    y, ctx = layer.forward(x)
    z = ctx[1][:, 0]
    kinks = np.flatnonzero(z == 0.0)
    assert set(kinks) >= {0, 9}  # filter 0 and filter 1 at position (0, 0)
    Jx = layer.jacobian_x(x).toarray()
    assert not Jx[kinks].any()
    _, bctx = layer.forward_batched(np.repeat(x.T, layer.n_out, axis=0))
    dX, _ = layer.backward_batched(np.eye(layer.n_out), bctx)
    assert np.array_equal(dX[kinks], Jx[kinks])
    f = lambda v: layer.forward(v[:, None])[0][:, 0]
    left = fd_jacobian(f, x, step_direction=-1).df
    right = fd_jacobian(f, x, step_direction=1).df
    lo, hi = np.minimum(left, right) - 1e-7, np.maximum(left, right) + 1e-7
    assert np.all((lo <= Jx) & (Jx <= hi))
    assert not np.allclose(left[kinks], right[kinks])  # the near miss: a real kink, the sides differ


def test_cifar_shaped_conv_jacobian_fits_in_memory():
    """3x32x32 images, 16 filters 3x3, pad 1: the sparse dy/dx holds its non-zeros, not the dense matrix."""
    layer = Conv2D((3, 32, 32), 16, 3, pad=1, seed=0)
    Jx = layer.jacobian_x(np.random.default_rng(0).normal(size=(layer.n_in, 1)))
    assert Jx.shape == (16 * 32 * 32, 3 * 32 * 32)
    assert Jx.nnz == 16 * 3 * (30 * 30 * 9 + 4 * 30 * 6 + 4 * 4)  # interior, edges, corners
    sparse_bytes = Jx.data.nbytes + Jx.indices.nbytes + Jx.indptr.nbytes
    dense_bytes = Jx.shape[0] * Jx.shape[1] * 8
    assert sparse_bytes < 8 * 2**20 and dense_bytes > 50 * sparse_bytes  # 6.9 MB against 403 MB


# --------------------------------------------------------------------------- pooling

POOL_CASES = [((2, 4, 6), 2, None), ((1, 5, 5), 3, 1), ((3, 6, 7), (2, 3), 2), ((1, 5, 7), 3, 2)]


@pytest.mark.parametrize("cls", [MaxPool2D, AvgPool2D])
@pytest.mark.parametrize("case", POOL_CASES, ids=[str(c) for c in POOL_CASES])
def test_pooling_paths_and_finite_differences(cls, case):
    shape, pool, stride = case
    layer = cls(shape, pool, stride=stride)
    rng = np.random.default_rng(5)
    X = rng.normal(size=(3, layer.n_in))  # continuous draws: no ties
    Y, ctx = layer.forward_batched(X)
    G = rng.normal(size=Y.shape)
    dX, grads = layer.backward_batched(G, ctx)
    Yr, dXr, _ = reference_rows(layer, X, G)
    name = cls.__name__
    close(f"{name} forward", Y, Yr)
    close(f"{name} dX", dX, dXr)
    assert grads == {}
    for n in range(2):
        x = X[n][:, None]
        J = layer.jacobian_x(x)
        assert sp.issparse(J) and J.shape == (layer.n_out, layer.n_in)
        fd_close(f"{name} dy/dx vs FD", J, fd_jacobian(lambda v: layer.forward(v[:, None])[0][:, 0], x))
        K = np.prod(layer.pool_size)
        assert J.nnz == (layer.n_out if cls is MaxPool2D else layer.n_out * K)


def last_max_selection(layer, x):
    """The other tie convention (the *last* maximal element), for the near-miss test only."""
    C, H, W = layer.input_shape
    PH, PW = layer.pool_size
    S = layer.stride
    OH, OW = layer.output_shape[1:]
    J = np.zeros((layer.n_out, layer.n_in))
    x3 = x.reshape(C, H, W)
    for c in range(C):
        for i in range(OH):
            for j in range(OW):
                win = x3[c, i * S : i * S + PH, j * S : j * S + PW].reshape(-1)
                k = len(win) - 1 - int(np.argmax(win[::-1]))
                a, b = divmod(k, PW)
                J[c * OH * OW + i * OW + j, c * H * W + (i * S + a) * W + (j * S + b)] = 1.0
    return J


def test_maxpool_exact_tie_first_maximal_takes_the_gradient():
    layer = MaxPool2D((1, 4, 4), 2)
    x = np.random.default_rng(6).normal(size=(16, 1))
    img = x.reshape(4, 4)
    img[0, 0] = img[1, 1] = 5.0  # window (0, 0): a tie between entries 0 and 3
    img[2, 3] = img[3, 2] = 5.0  # window (1, 1): a tie between entries 1 and 2
    J = layer.jacobian_x(x).toarray()
    assert J[0, 0] == 1 and J[0, 5] == 0  # first maximal in C order
    assert J[3, 11] == 1 and J[3, 14] == 0
    _, ctx = layer.forward_batched(np.repeat(x.T, 4, axis=0))
    dX, _ = layer.backward_batched(np.eye(4), ctx)
    assert np.array_equal(dX, J)  # the batched path, independently, the same convention
    other = last_max_selection(layer, x[:, 0])
    assert not np.array_equal(other, J)  # near miss: the other tie-break is a different answer
    assert np.array_equal(other[[1, 2]], J[[1, 2]])  # ... and the same one where there is no tie
    f = lambda v: layer.forward(v[:, None])[0][:, 0]
    left = fd_jacobian(f, x, step_direction=-1).df
    right = fd_jacobian(f, x, step_direction=1).df
    assert np.all((np.minimum(left, right) - 1e-7 <= J) & (J <= np.maximum(left, right) + 1e-7))
    assert not np.allclose(left[0], right[0])  # the tie is a kink


def test_overlapping_max_windows_add_their_gradients():
    layer = MaxPool2D((1, 3, 3), 2, stride=1)
    x = np.zeros((9, 1))
    x[4] = 1.0  # the centre is the maximum of all four windows
    J = layer.jacobian_x(x)
    assert np.array_equal(J.toarray()[:, 4], np.ones(4))
    _, ctx = layer.forward_batched(x.T)
    dX, _ = layer.backward_batched(np.ones((1, 4)), ctx)
    assert dX[0, 4] == 4.0 and dX[0].sum() == 4.0


def test_pool_size_that_does_not_divide_is_refused():
    with pytest.raises(ValueError, match="not an integer"):
        MaxPool2D((1, 5, 5), 2)
    AvgPool2D((1, 6, 6), 2)  # near miss: divides


# --------------------------------------------------------------------------- spatial batch norm


def sbn_layer(shape=(2, 3, 2), seed=0):
    rng = np.random.default_rng(seed)
    layer = SpatialBatchNorm(shape, gamma=rng.normal(size=shape[0]) + 2, beta=rng.normal(size=shape[0]))
    layer.bn.running_mean[:] = rng.normal(size=shape[0])
    layer.bn.running_var[:] = rng.uniform(0.5, 2, size=shape[0])
    return layer


def test_spatial_batchnorm_is_batchnorm_over_n_h_w():
    layer = sbn_layer()
    layer.bn.update_running = False
    X4 = np.random.default_rng(7).normal(size=(3, 2, 3, 2))
    Y, _ = layer.forward_batched(X4.reshape(3, -1), "train")
    mu = X4.mean(axis=(0, 2, 3), keepdims=True)
    var = X4.var(axis=(0, 2, 3), keepdims=True)
    expect = (
        layer.bn.gamma[None, :, None, None] * (X4 - mu) / np.sqrt(var + layer.bn.eps)
        + layer.bn.beta[None, :, None, None]
    )
    close("spatial BN forward vs CS231n definition", Y, expect.reshape(3, -1))
    # near miss: normalising over H, W of each image alone (instance norm) is a different function
    mu_i = X4.mean(axis=(2, 3), keepdims=True)
    var_i = X4.var(axis=(2, 3), keepdims=True)
    other = layer.bn.gamma[None, :, None, None] * (X4 - mu_i) / np.sqrt(var_i + layer.bn.eps)
    assert not np.allclose(Y, (other + layer.bn.beta[None, :, None, None]).reshape(3, -1))


@pytest.mark.parametrize("mode", ["train", "test"])
def test_spatial_batchnorm_paths_and_finite_differences(mode):
    layer = sbn_layer()
    layer.bn.update_running = False
    rng = np.random.default_rng(8)
    N = 3
    X = rng.normal(size=(N, layer.n_in))
    G = rng.normal(size=X.shape)
    Y, ctx = layer.forward_batched(X, mode)
    dX, grads = layer.backward_batched(G, ctx)
    if mode == "train":
        assert layer.couples_samples("train")
        ys, rctx = layer.forward_samples(cols(X), "train")
        rows, rgrads = layer.backward_samples([g[None] for g in G], rctx)
        Yr, dXr = np.hstack(ys).T, np.vstack(rows)
    else:
        Yr, dXr, rgrads = reference_rows(layer, X, G)
    close(f"spatial BN {mode} forward", Y, Yr)
    close(f"spatial BN {mode} dX", dX, dXr)
    for k in ("gamma", "beta"):
        close(f"spatial BN {mode} d{k}", grads[k], rgrads[k])

    def scalar_of_X(v):  # <G, Y(X)>: its gradient is the VJP dX (the batch coupled in train mode)
        return np.atleast_1d(np.sum(G * layer.forward_batched(v.reshape(N, -1), mode)[0]))

    fd = fd_jacobian(scalar_of_X, X)
    fd_close(f"spatial BN {mode} dX vs FD", dXr.reshape(1, -1), fd)

    def scalar_of_gamma(gm):
        probe = SpatialBatchNorm(layer.input_shape, gamma=gm, beta=layer.bn.beta, update_running=False)
        probe.bn.running_mean[:], probe.bn.running_var[:] = layer.bn.running_mean, layer.bn.running_var
        return np.atleast_1d(np.sum(G * probe.forward_batched(X, mode)[0]))

    fd_close(f"spatial BN {mode} dgamma vs FD", rgrads["gamma"][None], fd_jacobian(scalar_of_gamma, layer.bn.gamma))


def test_spatial_batchnorm_test_jacobian_is_sparse_diagonal():
    layer = sbn_layer()
    x = np.random.default_rng(9).normal(size=(layer.n_in, 1))
    J = layer.jacobian_x(x)
    assert sp.issparse(J) and J.nnz == layer.n_in
    fd_close("spatial BN test dy/dx vs FD", J, fd_jacobian(lambda v: layer.forward(v[:, None])[0][:, 0], x))


def test_spatial_batchnorm_single_image_train_uses_its_pixels():
    """N = 1 is a valid training batch when H*W >= 2 (the statistics run over H*W); a 1x1 image is not."""
    assert SpatialBatchNorm((2, 2, 2)).min_train_batch == 1
    layer = SpatialBatchNorm((2, 1, 1))
    assert layer.min_train_batch == 2
    with pytest.raises(ValueError, match="N >= 2"):
        layer.forward_batched(np.ones((1, 2)), "train")


@settings(max_examples=40, deadline=None)
@given(
    C=st.integers(1, 3),
    H=st.integers(2, 7),
    W=st.integers(2, 7),
    F=st.integers(1, 3),
    FH=st.integers(1, 3),
    FW=st.integers(1, 3),
    S=st.integers(1, 2),
    pad=st.integers(0, 1),
    act=st.sampled_from(["relu", "tanh", "identity"]),
    seed=st.integers(0, 2**16),
)
def test_conv_paths_agree_on_random_shapes(C, H, W, F, FH, FW, S, pad, act, seed):
    """Both paths, random shapes: where the size divides, forward, dX, dW and db agree; where it does not,
    both the layer and im2col refuse it."""
    spans = (H + 2 * pad - FH, W + 2 * pad - FW)
    if min(spans) < 0 or spans[0] % S or spans[1] % S:
        with pytest.raises(ValueError):
            Conv2D((C, H, W), F, (FH, FW), stride=S, pad=pad)
        with pytest.raises(ValueError):
            im2col(np.zeros((1, C, H, W)), FH, FW, S, pad)
        return
    layer = Conv2D((C, H, W), F, (FH, FW), stride=S, pad=pad, activation=act, seed=seed)
    rng = np.random.default_rng(seed)
    layer.b[:] = rng.normal(size=F)
    X = rng.normal(size=(2, layer.n_in))
    Y, ctx = layer.forward_batched(X)
    G = rng.normal(size=Y.shape)
    dX, grads = layer.backward_batched(G, ctx)
    Yr, dXr, gr = reference_rows(layer, X, G)
    close("conv forward (random shapes)", Y, Yr)
    close("conv dX (random shapes)", dX, dXr)
    close("conv dW (random shapes)", grads["W"], gr["W"])
    close("conv db (random shapes)", grads["b"], gr["b"])
