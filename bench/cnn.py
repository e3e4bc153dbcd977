"""Convolutional networks: the reference path's sparse Jacobians and the batched path's im2col VJPs,
against torch eager (``conv2d``, ``max_pool2d``) when torch is importable.

====================  ==============================================================  ====
digits-cnn            1x8x8 -> conv 16 3x3 pad 1 relu -> max-pool 2 -> conv 32 3x3       128
                      pad 1 relu -> max-pool 2 -> affine 10 (``build_cnn``)
cifar-conv            3x32x32 -> conv 16 3x3 pad 1 -> max-pool 2 -> affine 10             32
====================  ==============================================================  ====

Task ``step``: one SGD training step (softmax cross-entropy), reference ``train_batch`` (per sample, sparse
Jacobians), batched ``train_step_batched`` (with a Workspace, as the dense networks are timed) and torch
eager (autograd). Beside the times: the memory of the first convolution's explicit Jacobian ``dz/dx`` for
one sample, sparse (``data + indices + indptr`` bytes) against dense (``m * n * 8``).
"""

from __future__ import annotations

import numpy as np

import jacobian_nn as jn
from jacobian_nn.conv import Conv2D, MaxPool2D, build_cnn

from .torch_baselines import sgd_step

LR = 1e-3

#: name -> (image shape, N in quick/full mode, N in smoke mode)
CNN_NETWORKS = {"digits-cnn": ((1, 8, 8), 128, 8), "cifar-conv": ((3, 32, 32), 32, 0)}


def make_cnn(name: str, N: int, seed: int = 0):
    shape = CNN_NETWORKS[name][0]
    if name == "digits-cnn":
        net = build_cnn(shape, 10, filters=(16, 32), seed=seed)
    else:
        conv = Conv2D(shape, 16, 3, pad=1, seed=seed)
        pool = MaxPool2D(conv.output_shape, 2)
        net = jn.Network([conv, pool, jn.Dense(pool.n_out, 10, seed=seed + 1)], "softmax_cross_entropy")
    rng = np.random.default_rng(seed + 2)
    X = rng.standard_normal((N, int(np.prod(shape))))
    y = rng.integers(0, 10, size=N)
    return net, X, y


def jacobian_memory(net, X) -> dict:
    """The first layer's ``dz/dx`` for sample 0: its shape, non-zeros, sparse and dense bytes."""
    J = net.layers[0].jacobian_x(X[0][:, None])
    sparse = int(J.data.nbytes + J.indices.nbytes + J.indptr.nbytes)
    dense = int(J.shape[0] * J.shape[1] * J.dtype.itemsize)
    return dict(shape=list(J.shape), nnz=int(J.nnz), sparse_bytes=sparse, dense_bytes=dense)


def make_torch_step(torch, net, X, y, lr):
    """One eager SGD step of the same network in torch: ``conv2d`` (+ relu), ``max_pool2d``, ``x @ W + b``."""
    F = torch.nn.functional
    params, ops = [], []
    for layer in net.layers:
        if isinstance(layer, Conv2D):
            W, b = torch.tensor(layer.W.copy()).requires_grad_(), torch.tensor(layer.b.copy()).requires_grad_()
            params += [W, b]
            relu = layer.activation.name == "relu"
            ops.append(
                lambda a, W=W, b=b, s=layer.stride, p=layer.pad, relu=relu, shape=layer.input_shape: (
                    F.relu if relu else (lambda t: t)
                )(F.conv2d(a.reshape(a.shape[0], *shape), W, b, s, p))
            )
        elif isinstance(layer, MaxPool2D):
            ops.append(lambda a, k=layer.pool_size, s=layer.stride: F.max_pool2d(a, k, s))
        else:
            W, b = torch.tensor(layer.W.copy()).requires_grad_(), torch.tensor(layer.b.copy()).requires_grad_()
            params += [W, b]
            relu = layer.activation.name == "relu"
            ops.append(
                lambda a, W=W, b=b, relu=relu: (torch.relu if relu else (lambda t: t))(
                    a.reshape(a.shape[0], -1) @ W + b
                )
            )
    Xt, yt = torch.tensor(X), torch.tensor(y, dtype=torch.long)

    def forward():
        a = Xt
        for op in ops:
            a = op(a)
        return a

    return sgd_step(torch, forward, params, yt, lr)


def bench_cnns(rec, torch, smoke: bool) -> list:
    """Times the step of every CNN network (in ``rec``, arch = the network's name); returns the memory rows."""
    memory = []
    for name, (_, N, N_smoke) in CNN_NETWORKS.items():
        N = N_smoke if smoke else N
        if N == 0:
            continue
        net, X, y = make_cnn(name, N)
        ref_net, bat_net, ws = net.copy(), net.copy(), jn.Workspace()
        rec.group(
            "step",
            {
                "reference": (lambda: ref_net.train_batch(X, y, LR), True),
                "batched": (lambda: bat_net.train_step_batched(X, y, LR, workspace=ws), False),
                "torch": (make_torch_step(torch, net, X, y, LR), False) if torch is not None else None,
            },
            arch=name,
            dtype="float64",
            N=N,
            sizes=[int(np.prod(CNN_NETWORKS[name][0])), net.n_out],
        )
        memory.append(dict(arch=name, **jacobian_memory(net, X)))
    return memory
