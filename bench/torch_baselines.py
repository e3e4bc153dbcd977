"""PyTorch baselines (eager CPU), used only when torch is importable. torch is never a dependency.

Each builder takes the same parameters and data as the numpy paths (copied into
tensors of the same dtype) and returns a zero-argument callable:

* :func:`make_step`: one SGD step, autograd in eager mode
  (``cross_entropy`` mean, ``loss.backward()``, ``p -= lr * p.grad``).
* :func:`make_forward`: the forward pass under ``torch.no_grad()``.
* :func:`make_grads`: forward + gradients (``torch.autograd.grad``).
* :func:`make_per_sample_grads`: ``torch.func.vmap(torch.func.grad(loss_one))``.
* :func:`make_input_jacobians`: ``torch.func.vmap(torch.func.jacrev(f))`` of the
  network's output with respect to its input, ``(N, m_out, n_in)``.
* :func:`make_softmax_jacobians`: ``vmap(jacrev(softmax))``, ``(N, m, m)``.
"""

from __future__ import annotations


def load(threads: int):
    """``torch`` with ``threads`` intra-op threads (matched to numpy's BLAS), or None."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(threads)
    return torch


def _tensors(torch, params, X, y):
    P = [(torch.tensor(W.copy()), torch.tensor(b.copy())) for W, b in params]
    return P, torch.tensor(X), torch.tensor(y, dtype=torch.long)


def _forward(torch, P, X):
    a = X
    for i, (W, b) in enumerate(P):
        a = a @ W + b
        if i < len(P) - 1:
            a = torch.relu(a)
    return a


def make_forward(torch, params, X, y):
    P, Xt, _ = _tensors(torch, params, X, y)

    def fwd():
        with torch.no_grad():
            return _forward(torch, P, Xt)

    return fwd


def make_grads(torch, params, X, y):
    P, Xt, yt = _tensors(torch, params, X, y)
    flat = [t.requires_grad_() for pair in P for t in pair]
    F = torch.nn.functional

    def grads():
        loss = F.cross_entropy(_forward(torch, P, Xt), yt)
        return torch.autograd.grad(loss, flat)

    return grads


def sgd_step(torch, forward, flat, yt, lr):
    """One eager SGD step: ``cross_entropy(forward(), yt)``, ``loss.backward()``, ``p -= lr * p.grad`` for ``flat``."""
    F = torch.nn.functional

    def step():
        loss = F.cross_entropy(forward(), yt)
        loss.backward()
        with torch.no_grad():
            for t in flat:
                t -= lr * t.grad
                t.grad = None
        return loss

    return step


def make_step(torch, params, X, y, lr):
    P, Xt, yt = _tensors(torch, params, X, y)
    flat = [t.requires_grad_() for pair in P for t in pair]
    return sgd_step(torch, lambda: _forward(torch, P, Xt), flat, yt, lr)


def make_per_sample_grads(torch, params, X, y):
    from torch.func import grad, vmap

    P, Xt, yt = _tensors(torch, params, X, y)
    flat = tuple(t for pair in P for t in pair)
    F = torch.nn.functional

    def loss_one(ps, x, t):
        pairs = list(zip(ps[0::2], ps[1::2]))
        logits = _forward(torch, pairs, x[None, :])
        return F.cross_entropy(logits, t[None])

    per_sample = vmap(grad(loss_one), in_dims=(None, 0, 0))
    return lambda: per_sample(flat, Xt, yt)


def make_input_jacobians(torch, params, X):
    from torch.func import jacrev, vmap

    P = [(torch.tensor(W), torch.tensor(b)) for W, b in params]
    Xt = torch.tensor(X)
    jac = vmap(jacrev(lambda x: _forward(torch, P, x)))
    return lambda: jac(Xt)


def make_softmax_jacobians(torch, Z):
    from torch.func import jacrev, vmap

    Zt = torch.tensor(Z)
    jac = vmap(jacrev(lambda z: torch.softmax(z, dim=0)))
    return lambda: jac(Zt)


def make_layernorm_jacobians(torch, X, gamma, beta, eps):
    """``vmap(jacrev(layer_norm))`` over the rows of ``X`` ``(N, m)``: per-sample ``(m, m)`` Jacobians of
    ``torch.nn.functional.layer_norm`` with the same ``gamma``, ``beta`` and ``eps`` as the library's."""
    from torch.func import jacrev, vmap

    Xt, g, b = torch.tensor(X), torch.tensor(gamma), torch.tensor(beta)
    m = X.shape[1]
    jac = vmap(jacrev(lambda x: torch.nn.functional.layer_norm(x, (m,), g, b, eps)))
    return lambda: jac(Xt)
