"""Conformance cases of the image layers and the component catalogue: ``Conv2D``, ``MaxPool2D``,
``AvgPool2D``, ``SpatialBatchNorm``, a small CNN, ``LayerNorm``, the graph nodes ``Mul`` and ``Add``,
and the losses ``MulticlassSVM``, ``BinaryCrossEntropy`` and ``SigmoidBinaryCrossEntropy``.

Every case is built in the ``rows`` layout with the same :class:`~jacobian_nn.vectors_format.Case` and
:class:`~jacobian_nn.vectors_format.Arr` as the other cases (:func:`jacobian_nn.vectors.build_cases` adds them).
Images are NCHW ``(N, C, H, W)`` (kind ``image_batch``), filter banks ``(F, C, FH, FW)`` (kind
``conv_weight``), per-channel vectors ``(C,)`` (kind ``channel_vector``); ``--layout columns`` writes them
NHWC, ``(FH, FW, C, F)`` and ``(1, 1, 1, C)``. Expected VJPs and outputs come from the library's batched
path, full Jacobians from its reference path (the sparse Jacobians of the image layers, ``.toarray()``);
float32 cases are computed in float64 from the float32 inputs and rounded once, as the other cases are.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .conv import AvgPool2D, Conv2D, MaxPool2D, SpatialBatchNorm, build_cnn
from .graph import Add, Mul
from .layernorm import LayerNorm
from .losses import BinaryCrossEntropy, MulticlassSVM, SigmoidBinaryCrossEntropy
from .vectors_format import KINK_RULE, Arr, Case, _blockdiag, _rng, batchnorm_arrays, centring_condition

F64 = np.float64


def _dense(J) -> np.ndarray:
    return J.toarray() if sp.issparse(J) else np.asarray(J)


def _name(dtype) -> str:
    return np.dtype(dtype).name


def _flat_images(X: np.ndarray) -> np.ndarray:
    """``(N, C, H, W)`` -> the library's batched input ``(N, C*H*W)`` in float64."""
    return X.astype(F64).reshape(X.shape[0], -1)


def _sample_columns(X2: np.ndarray) -> list:
    return [X2[k][:, None] for k in range(X2.shape[0])]


# =========================================================================== convolution

CONV_CONVENTIONS = (
    "X (N, C, H, W) images (NCHW), W (F, C, FH, FW), b (F,), stride S, pad P (zeros on each side of H and W); "
    "cross-correlation (no kernel flip): Z[n, f, oh, ow] = sum_{{c, i, j}} W[f, c, i, j] * Xp[n, c, oh*S + i, "
    "ow*S + j] + b[f], OH = (H + 2P - FH)/S + 1, OW = (W + 2P - FW)/S + 1; Y = {act}(Z) (N, F, OH, OW); "
    "G = dL/dY given; dX, dW, db: the VJPs (sums over the batch, no 1/N); J_X, J_W, J_b: full Jacobians of Y "
    "(flat C order of the arrays as written); " + KINK_RULE
)


def _conv_case(point, X, W, b, G, stride, pad, act, dtype) -> Case:
    N = X.shape[0]
    layer = Conv2D.from_params(W.astype(F64), b.astype(F64), X.shape[1:], stride=stride, pad=pad, activation=act)
    X2 = _flat_images(X)
    Y, ctx = layer.forward_batched(X2)
    dX, g = layer.backward_batched(G.astype(F64).reshape(Y.shape), ctx)
    cols = _sample_columns(X2)
    out_shape = (N,) + tuple(layer.output_shape)
    F, C, FH, FW = W.shape
    tag = f"conv2d_{act}_s{stride}_p{pad}" + ("" if FH == FW else f"_k{FH}x{FW}")
    c = Case(f"{tag}-{point}-{_name(dtype)}", "conv2d", point, _name(dtype), CONV_CONVENTIONS.format(act=act))
    c.arrays.update(
        X=Arr("input", "image_batch", X),
        W=Arr("parameter", "conv_weight", W),
        b=Arr("parameter", "channel_vector", b),
        stride=Arr("parameter", "scalar", np.asarray(stride, dtype=np.int64)),
        pad=Arr("parameter", "scalar", np.asarray(pad, dtype=np.int64)),
        G=Arr("cotangent", "image_batch", G),
        Y=Arr("expected", "image_batch", Y.reshape(out_shape).astype(dtype)),
        dX=Arr("expected", "image_batch", dX.reshape(X.shape).astype(dtype)),
        dW=Arr("expected", "conv_weight", g["W"].astype(dtype)),
        db=Arr("expected", "channel_vector", g["b"].astype(dtype)),
        J_X=Arr(
            "expected", "jacobian", _blockdiag([_dense(layer.jacobian_x(x)) for x in cols]).astype(dtype), of=("Y", "X")
        ),
        J_W=Arr(
            "expected", "jacobian", np.vstack([_dense(layer.jacobian_W(x)) for x in cols]).astype(dtype), of=("Y", "W")
        ),
        J_b=Arr(
            "expected", "jacobian", np.vstack([_dense(layer.jacobian_b(x)) for x in cols]).astype(dtype), of=("Y", "b")
        ),
    )
    if point == "kink":  # the z > 0 branch at the kinks: the linear layer's VJPs and Jacobians, scaled by 1[z >= 0]
        lin = Conv2D.from_params(W.astype(F64), b.astype(F64), X.shape[1:], stride=stride, pad=pad)
        Z, lctx = lin.forward_batched(X2)
        assert np.any(Z == 0), "a kink case needs exact zeros in Z"
        slope = (Z >= 0).astype(F64)
        dXr, gr = lin.backward_batched(G.astype(F64).reshape(Z.shape) * slope, lctx)
        c.arrays["dX"].right = dXr.reshape(X.shape).astype(dtype)
        c.arrays["dW"].right = gr["W"].astype(dtype)
        c.arrays["db"].right = gr["b"].astype(dtype)
        s = slope.reshape(-1)[:, None]
        c.arrays["J_X"].right = (s * _blockdiag([_dense(lin.jacobian_x(x)) for x in cols])).astype(dtype)
        c.arrays["J_W"].right = (s * np.vstack([_dense(lin.jacobian_W(x)) for x in cols])).astype(dtype)
        c.arrays["J_b"].right = (s * np.vstack([_dense(lin.jacobian_b(x)) for x in cols])).astype(dtype)
    return c


def conv_cases() -> list:
    cases = []
    for j, dtype in enumerate((np.float64, np.float32)):
        r = _rng(900, j)
        # F = 3 != C = 2, stride 2 and pad 1: a swapped axis, a missing stride or pad is far outside tolerance
        X, W, b, G = (r.standard_normal(s).astype(dtype) for s in ((2, 2, 5, 5), (3, 2, 3, 3), (3,), (2, 3, 3, 3)))
        cases.append(_conv_case("random", X, W, b, G, 2, 1, "identity", dtype))
    # integers and a rectangular kernel (FH = 2 != FW = 3): Z is exact, with exact zeros at the relu kink
    r = _rng(910)
    X = r.integers(-2, 3, (2, 2, 3, 4)).astype(F64)
    W = r.integers(-1, 2, (2, 2, 2, 3)).astype(F64)
    Z0 = Conv2D.from_params(W, np.zeros(2), X.shape[1:]).forward_batched(_flat_images(X))[0].reshape(2, 2, 4)
    b = -Z0[0, :, 0]  # filter f's first output of image 0 is exactly 0, the other outputs on both sides
    G = r.standard_normal((2, 2, 2, 2))
    cases.append(_conv_case("kink", X, W, b, G, 1, 0, "relu", np.float64))
    return cases


# =========================================================================== pooling

POOL_CONVENTIONS = {
    "maxpool2d": "X (N, C, H, W) images (NCHW); window pool x pool, stride S, no padding; Y[n, c, oh, ow] = max of "
    "X[n, c, oh*S : oh*S + pool, ow*S : ow*S + pool]; dX = the VJP with G = dL/dY: each G entry goes to its "
    "window's maximal input, overlapping windows add; J_X full Jacobian (one 1 per row). Ties (a kink): the "
    "FIRST maximal element of the window in C order (row i first, then column j) takes the gradient, the "
    "others get 0; the other branch recorded (.right) gives it to every maximal element (the mask X == max)",
    "avgpool2d": "X (N, C, H, W) images (NCHW); window pool x pool, stride S, no padding; Y[n, c, oh, ow] = mean "
    "of X[n, c, oh*S : oh*S + pool, ow*S : ow*S + pool]; dX = the VJP with G = dL/dY: G / pool^2 spread "
    "over each window, overlapping windows add; J_X full Jacobian",
}


def _pool_case(component, point, X, pool, stride, G) -> Case:
    cls = MaxPool2D if component == "maxpool2d" else AvgPool2D
    N = X.shape[0]
    layer = cls(X.shape[1:], pool, stride=stride)
    X2 = _flat_images(X)
    Y, ctx = layer.forward_batched(X2)
    dX, _ = layer.backward_batched(G.reshape(Y.shape), ctx)
    J = _blockdiag([_dense(layer.jacobian_x(x)) for x in _sample_columns(X2)])
    c = Case(f"{component}_{pool}_s{stride}-{point}-float64", component, point, "float64", POOL_CONVENTIONS[component])
    c.arrays.update(
        X=Arr("input", "image_batch", X),
        pool=Arr("parameter", "scalar", np.asarray(pool, dtype=np.int64)),
        stride=Arr("parameter", "scalar", np.asarray(stride, dtype=np.int64)),
        G=Arr("cotangent", "image_batch", G),
        Y=Arr("expected", "image_batch", Y.reshape((N,) + tuple(layer.output_shape))),
        dX=Arr("expected", "image_batch", dX.reshape(X.shape)),
        J_X=Arr("expected", "jacobian", J, of=("Y", "X")),
    )
    if point.startswith("ties"):
        # the other branch: every maximal element of a window takes the gradient (window entries from the layer)
        blocks = []
        for x in X2:
            v = x[layer._windows]  # (C*OH*OW, PH*PW)
            rows, k = np.nonzero(v == v.max(axis=1, keepdims=True))
            B = np.zeros((v.shape[0], x.size))
            np.add.at(B, (rows, layer._windows[rows, k]), 1.0)
            blocks.append(B)
        Jr = _blockdiag(blocks)
        assert not np.array_equal(Jr, J), "a ties case needs windows with several maximal elements"
        c.arrays["J_X"].right = Jr
        c.arrays["dX"].right = (G.reshape(-1) @ Jr).reshape(X.shape)
    return c


def pool_cases() -> list:
    r = _rng(920)
    X = r.standard_normal((2, 2, 4, 4))
    cases = [_pool_case("maxpool2d", "random", X, 2, 2, r.standard_normal((2, 2, 2, 2)))]
    # exact ties: a constant window, ties at the first, a middle and the last entry, in two channels
    T = np.array(
        [
            [
                [[1, 1, 0, 2], [1, 1, 2, 0], [3, 0, -1, 4], [1, 3, 4, -1]],
                [[0, 0, 5, 1], [0, -1, 5, 5], [2, 2, 0, 1], [2, 2, 1, 1]],
            ],
            [
                [[-1, -1, 7, 7], [-1, -1, 7, 7], [0, 6, 0, 0], [6, 0, 0, 0]],
                [[2, 1, 3, 3], [1, 2, 0, 3], [4, 4, 4, 0], [0, 4, 0, 4]],
            ],
        ],
        dtype=F64,
    )
    cases.append(_pool_case("maxpool2d", "ties", T, 2, 2, r.standard_normal((2, 2, 2, 2))))
    # overlapping windows (stride 1): a tied element is the first maximal one in one window and not in another
    O = np.array([[[[1.0, 2.0, 2.0], [2.0, 2.0, 1.0], [0.0, 2.0, 2.0]]]])
    cases.append(_pool_case("maxpool2d", "ties_overlap", O, 2, 1, r.standard_normal((1, 1, 2, 2))))
    cases.append(_pool_case("avgpool2d", "random", X, 2, 1, r.standard_normal((2, 2, 3, 3))))
    return cases


# =========================================================================== spatial batch norm

SBN_CONVENTIONS = (
    "mode {mode}, eps = 1e-5; X (N, C, H, W) images (NCHW); CS231n's spatial batch norm: batch norm of each "
    "channel c over its N*H*W values; train: mu_c, var_c = the mean and biased variance of X[:, c, :, :], "
    "test: running_mean[c], running_var[c]; Y = gamma[c] * (X - mu_c) / sqrt(var_c + eps) + beta[c]; "
    "G = dL/dY given; dX, dgamma[c] = sum over n, h, w of G * x_hat, dbeta[c] = sum of G (VJPs, sums over "
    "the batch); J_X: full Jacobian of Y w.r.t. X (train mode couples every value of a channel)"
)


def spatial_batchnorm_cases() -> list:
    cases = []
    for mode in ("train", "test"):
        r = _rng(930, mode == "train")
        X, G = r.standard_normal((3, 2, 2, 2)), r.standard_normal((3, 2, 2, 2))
        gamma, beta = r.uniform(0.5, 1.5, 2), r.standard_normal(2)
        rm, rv = r.standard_normal(2), r.uniform(0.5, 2.0, 2)
        layer = SpatialBatchNorm(X.shape[1:], eps=1e-5, gamma=gamma, beta=beta, update_running=False)
        layer.bn.running_mean[...], layer.bn.running_var[...] = rm, rv
        X2 = _flat_images(X)
        Y, ctx = layer.forward_batched(X2, mode)
        dX, g = layer.backward_batched(G.reshape(Y.shape), ctx)
        if mode == "train":
            # BatchNorm's explicit coupled Jacobian of the rearranged batch Xt (N*H*W, C), put back in X's order
            Xt = layer._to_channels(X2)
            order = layer._to_channels(np.arange(X2.size).reshape(X2.shape)).reshape(
                -1
            )  # Xt.flat[i] = X.flat[order[i]]
            J = np.zeros((X2.size, X2.size))
            J[np.ix_(order, order)] = layer.bn.jacobian_x_coupled(_sample_columns(Xt), "train")
        else:
            J = _blockdiag([_dense(layer.jacobian_x(x)) for x in _sample_columns(X2)])
        c = Case(
            f"spatial_batchnorm_{mode}-random-float64",
            f"spatial_batchnorm_{mode}",
            "random",
            "float64",
            SBN_CONVENTIONS.format(mode=mode),
        )
        shape = X.shape
        c.arrays.update(
            batchnorm_arrays(
                mode, X, layer.bn, G, Y.reshape(shape), dX.reshape(shape), g, J, "image_batch", "channel_vector"
            )
        )
        if mode == "train":
            c.condition = centring_condition(X, (0, 2, 3), layer.bn.eps)
        cases.append(c)
    return cases


# =========================================================================== a small CNN

CNN_CONVENTIONS = (
    "build_cnn((1, 4, 4), 3, filters=(2, 3)): conv1 (W1 (2, 1, 3, 3), b1, stride 1, pad 1) - relu - max-pool 2x2 "
    "- conv2 (W2 (3, 2, 3, 3), b2, stride 1, pad 1) - relu - max-pool 2x2 - flatten (3, 1, 1) -> 3 - affine "
    "(W3 (3, 3), b3) - softmax cross-entropy; X (N, 1, 4, 4) images; loss = mean over samples + l2/2 * "
    "(||W1||^2 + ||W2||^2 + ||W3||^2), l2 = {l2}; dW_i, db_i: gradients of that loss; *_per_sample: sample k's "
    "own gradient (penalty gradient included), whose mean over k is the gradient; losses: per-sample data "
    "losses; J_input: per-sample input Jacobians d out_k / d X_k (N, 3, 16), X_k flattened in the C order of one "
    "image as written (NCHW: c, h, w; NHWC: h, w, c). The flatten before the affine layer takes (C, 1, 1), the "
    "same in both orders; relu'(0) = 0, max-pool ties to the first maximal element"
)


def cnn_case() -> Case:
    l2, N = 1e-2, 4
    net = build_cnn((1, 4, 4), 3, filters=(2, 3), kernel_size=3, pool_size=2, seed=5, l2=l2)
    r = _rng(940)
    for layer in net.layers:
        if hasattr(layer, "b"):
            layer.b[...] = 0.1 * r.standard_normal(layer.b.shape)
    X, y = r.standard_normal((N, 1, 4, 4)), r.integers(0, 3, N)
    X2 = _flat_images(X)
    out = net.forward_batched(X2)
    L, grads = net.loss_and_gradients_batched(X2, y)
    per = net.per_sample_gradients_batched(X2, y)
    # the reference path's input Jacobians: the product of every layer's explicit (sparse) Jacobian
    J_input = np.stack([_dense(net.input_jacobian(x)) for x in _sample_columns(X2)])
    c = Case("network_cnn-random-float64", "network", "random", "float64", CNN_CONVENTIONS.format(l2=l2))
    c.arrays.update(
        X=Arr("input", "image_batch", X),
        y=Arr("input", "samples", y.astype(np.int64)),
        l2=Arr("parameter", "scalar", np.asarray(l2)),
    )
    expected = {}
    i = 0
    for layer, g, ps in zip(net.layers, grads, per):
        if not g:
            continue
        i += 1
        conv = isinstance(layer, Conv2D)
        kw, kb = ("conv_weight", "channel_vector") if conv else ("weight", "vector")
        c.arrays[f"W{i}"] = Arr("parameter", kw, layer.W.copy())
        c.arrays[f"b{i}"] = Arr("parameter", kb, layer.b.copy())
        expected[f"dW{i}"] = Arr("expected", kw, g["W"], batch_mean=N)
        expected[f"db{i}"] = Arr("expected", kb, g["b"], batch_mean=N)
        expected[f"dW{i}_per_sample"] = Arr("expected", "per_sample_" + kw, ps["W"])
        expected[f"db{i}_per_sample"] = Arr("expected", "per_sample_" + kb, ps["b"])
    c.arrays.update(
        out=Arr("expected", "batch", out),
        loss=Arr("expected", "scalar", np.asarray(L)),
        losses=Arr("expected", "samples", net.per_sample_losses_batched(X2, y)),
        **expected,
        J_input=Arr("expected", "per_sample_jacobian", J_input, of=("out", "X")),
    )
    return c


# =========================================================================== layer norm

LN_CONVENTIONS = (
    "X (N, m); each sample normalised over its own m features: mu_k, var_k = mean and biased variance of row k, "
    "x_hat = (X - mu_k) / sqrt(var_k + eps), Y = gamma * x_hat + beta, eps = 1e-5, gamma, beta (m,); the same in "
    "training and test mode; G = dL/dY given; dX, dgamma = sum_k G_k * x_hat_k, dbeta = sum_k G_k (VJPs, sums "
    "over the batch); J_X, J_gamma, J_beta: full Jacobians of Y (samples never couple: J_X is block diagonal)"
)


def _layernorm_case(point, X, gamma, beta, G, dtype) -> Case:
    ln = LayerNorm(X.shape[1], eps=1e-5, gamma=gamma.astype(F64), beta=beta.astype(F64))
    X64 = X.astype(F64)
    Y, ctx = ln.forward_batched(X64)
    dX, g = ln.backward_batched(G.astype(F64), ctx)
    cols = _sample_columns(X64)
    c = Case(f"layernorm-{point}-{_name(dtype)}", "layernorm", point, _name(dtype), LN_CONVENTIONS)
    c.condition = centring_condition(X, 1, ln.eps)
    c.arrays.update(
        X=Arr("input", "batch", X),
        gamma=Arr("parameter", "vector", gamma),
        beta=Arr("parameter", "vector", beta),
        eps=Arr("parameter", "scalar", np.asarray(1e-5)),
        G=Arr("cotangent", "batch", G),
        Y=Arr("expected", "batch", Y.astype(dtype)),
        dX=Arr("expected", "batch", dX.astype(dtype)),
        dgamma=Arr("expected", "vector", g["gamma"].astype(dtype)),
        dbeta=Arr("expected", "vector", g["beta"].astype(dtype)),
        J_X=Arr("expected", "jacobian", _blockdiag([ln.jacobian_x(x) for x in cols]).astype(dtype), of=("Y", "X")),
        J_gamma=Arr(
            "expected", "jacobian", np.vstack([ln.jacobian_gamma(x) for x in cols]).astype(dtype), of=("Y", "gamma")
        ),
        J_beta=Arr(
            "expected", "jacobian", np.vstack([ln.jacobian_beta(x) for x in cols]).astype(dtype), of=("Y", "beta")
        ),
    )
    return c


def layernorm_cases() -> list:
    cases = []
    for j, dtype in enumerate((np.float64, np.float32)):
        r = _rng(950, j)
        X, gamma, beta, G = (r.standard_normal(s).astype(dtype) for s in ((3, 4), (4,), (4,), (3, 4)))
        cases.append(_layernorm_case("random", X, gamma, beta, G, dtype))
    r = _rng(951)
    X = r.standard_normal((3, 4))
    X[1] = 1000.0 + 1e-4 * r.standard_normal(4)  # a large offset, a spread of 1e-4: variance ~1e-8, below eps
    cases.append(
        _layernorm_case(
            "nearly_constant", X, r.standard_normal(4), r.standard_normal(4), r.standard_normal((3, 4)), F64
        )
    )
    return cases


# =========================================================================== graph nodes

NODE_CONVENTIONS = {
    "mul": "two inputs X, Y (N, m) of one shape; OUT = X * Y elementwise; G = dL/dOUT given; dX = G * Y, "
    "dY = G * X (VJPs); J_X = d OUT / d X (diagonal, the entries of Y), J_Y = d OUT / d Y (the entries of X)",
    "add": "two inputs X, Y (N, m) of one shape; OUT = X + Y; G = dL/dOUT given; dX = dY = G (VJPs); "
    "J_X = J_Y = the identity",
}


def _node_case(component, X, Y, G, dtype) -> Case:
    node = Mul() if component == "mul" else Add()
    X64, Y64 = X.astype(F64), Y.astype(F64)
    OUT, ctx = node.forward_batched(X64, Y64)
    dX, dY = node.backward_batched(G.astype(F64), ctx)
    xs, ys = _sample_columns(X64), _sample_columns(Y64)
    c = Case(f"{component}-random-{_name(dtype)}", component, "random", _name(dtype), NODE_CONVENTIONS[component])
    c.arrays.update(
        X=Arr("input", "batch", X),
        Y=Arr("input", "batch", Y),
        G=Arr("cotangent", "batch", G),
        OUT=Arr("expected", "batch", OUT.astype(dtype)),
        dX=Arr("expected", "batch", dX.astype(dtype)),
        dY=Arr("expected", "batch", dY.astype(dtype)),
        J_X=Arr(
            "expected",
            "jacobian",
            _blockdiag([node.jacobian_x(x, y) for x, y in zip(xs, ys)]).astype(dtype),
            of=("OUT", "X"),
        ),
        J_Y=Arr(
            "expected",
            "jacobian",
            _blockdiag([node.jacobian_y(x, y) for x, y in zip(xs, ys)]).astype(dtype),
            of=("OUT", "Y"),
        ),
    )
    return c


def node_cases() -> list:
    cases = []
    for j, (component, dtype) in enumerate((("mul", np.float64), ("mul", np.float32), ("add", np.float64))):
        r = _rng(960, j)
        X, Y, G = (r.standard_normal((3, 4)).astype(dtype) for _ in range(3))
        cases.append(_node_case(component, X, Y, G, dtype))
    return cases


# =========================================================================== losses

LOSS_CONVENTIONS = {
    "svm": "S (N, C) scores, y (N,) integer labels, delta = 1; M[k, j] = S[k, j] - S[k, y_k] + delta (j != y_k); "
    "L = mean_k sum_{j != y_k} max(0, M[k, j]); dS = dL/dS = (1[M > 0] at j != y_k, minus their count at y_k) "
    "/ N (the batch mean's 1/N included). Kink: a margin of exactly 0 contributes nothing, 1[0 > 0] = 0 "
    "(CS231n's margins > 0; the hinge takes its t <= 0 branch, as relu'(0) = 0); the other branch recorded "
    "(.right) counts it, 1[M >= 0]",
    "binary_cross_entropy": "P (N, m) probabilities in [0, 1], Y (N, m) labels in [0, 1] (0/1, or soft; written "
    "as float64, bools mean 0/1); each output is its own yes/no question; L = mean_k -sum_i [Y log P + (1 - Y) "
    "log(1 - P)], a term whose label weight is 0 left out (0 log 0 = 0, so P = 0 with Y = 0 and P = 1 with "
    "Y = 1 are finite); dP = (-Y / P + (1 - Y) / (1 - P)) / N, the same terms left out",
    "sigmoid_binary_cross_entropy": "Z (N, m) logits, Y (N, m) labels in [0, 1] (0/1, or soft; written as "
    "float64, bools mean 0/1); L = mean_k sum_i [max(Z, 0) - Y Z + log(1 + exp(-|Z|))] (= binary cross-entropy "
    "of sigmoid(Z), finite for every finite logit: Z = -1000 with Y = 1 gives 1000); dZ = (sigmoid(Z) - Y) / N, "
    "to full relative precision (sigmoid(-Z) never computed as 1 - sigmoid(Z))",
}


def _loss_case(component, point, inp, target, dtype) -> Case:
    loss = {"svm": MulticlassSVM, "binary_cross_entropy": BinaryCrossEntropy}.get(
        component, SigmoidBinaryCrossEntropy
    )()
    in_name = {"svm": "S", "binary_cross_entropy": "P"}.get(component, "Z")
    x64 = inp.astype(F64)
    t = target if component == "svm" else target.astype(F64)
    N = inp.shape[0]
    c = Case(f"{component}-{point}-{_name(dtype)}", component, point, _name(dtype), LOSS_CONVENTIONS[component])
    c.arrays[in_name] = Arr("input", "batch", inp)
    if component == "svm":
        c.arrays["y"] = Arr("input", "samples", target.astype(np.int64))
        c.arrays["delta"] = Arr("parameter", "scalar", np.asarray(1.0))
    else:
        c.arrays["Y"] = Arr("input", "batch", target.astype(dtype))
    L, G = loss.forward_and_gradient_batched(x64, t)
    c.arrays["loss"] = Arr("expected", "scalar", np.asarray(L, dtype=dtype))
    c.arrays["losses"] = Arr("expected", "samples", loss.per_sample_losses_batched(x64, t).astype(dtype))
    c.arrays["d" + in_name] = Arr(
        "expected", "batch", G.astype(dtype), batch_mean=N, labels="y" if component == "svm" else None
    )
    if point == "kink":
        rows = np.arange(N)
        M = x64 - x64[rows, target][:, None] + 1.0
        M[rows, target] = -np.inf
        assert np.any(M == 0), "an SVM kink case needs margins of exactly 0"
        Gr = (M >= 0).astype(F64)
        Gr[rows, target] = -Gr.sum(axis=1)
        c.arrays["dS"].right = (Gr / N).astype(dtype)
    return c


def loss_cases() -> list:
    cases = []
    for j, dtype in enumerate((np.float64, np.float32)):
        r = _rng(970, j)
        cases.append(_loss_case("svm", "random", r.standard_normal((4, 3)).astype(dtype), r.integers(0, 3, 4), dtype))
        P = r.uniform(0.05, 0.95, (4, 2)).astype(dtype)
        Y = r.integers(0, 2, (4, 2)).astype(F64)
        Y[1, 0] = 0.25  # a soft label
        cases.append(_loss_case("binary_cross_entropy", "random", P, Y, dtype))
        Z = (3 * r.standard_normal((4, 2))).astype(dtype)
        cases.append(_loss_case("sigmoid_binary_cross_entropy", "random", Z, r.integers(0, 2, (4, 2)), dtype))
    # integer scores: margins S_j - S_y + 1 of exactly 0 (three of them), positive and negative ones
    S = np.array([[2.0, 1.0, 0.0], [0.0, 2.0, 3.0], [1.0, 0.0, 1.0], [4.0, 3.0, 5.0]])
    cases.append(_loss_case("svm", "kink", S, np.array([0, 2, 0, 1]), np.float64))
    # saturation: probabilities at and next to 0 and 1 (P = 0 with Y = 0 and P = 1 with Y = 1 are finite)
    tiny, near1 = 1e-300, 1.0 - 2.0**-53
    P = np.array([[0.0, 1.0], [tiny, near1], [near1, tiny], [1.0 / (1.0 + np.exp(50.0)), 1.0 / (1.0 + np.exp(-50.0))]])
    Y = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 0.0], [1.0, 1.0]])
    cases.append(_loss_case("binary_cross_entropy", "saturated", P, Y, np.float64))
    # logits at +-50 and beyond (the sigmoid rounds to 1 at 37, exp(1000) overflows), each with labels 0 and 1
    Z = np.array([[50.0, -50.0], [50.0, -50.0], [1000.0, -1000.0], [1000.0, -1000.0], [1e10, -36.5], [-1e10, 36.5]])
    Y = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
    cases.append(_loss_case("sigmoid_binary_cross_entropy", "saturated", Z, Y, np.float64))
    return cases


def catalogue_cases() -> list:
    """The image layers, the CNN, layer norm, the graph nodes and the SVM and binary losses (``rows`` layout)."""
    builders = (conv_cases, pool_cases, spatial_batchnorm_cases, layernorm_cases, node_cases, loss_cases)
    return [c for build in builders for c in build()] + [cnn_case()]
