"""Inner-product identity ⟨u, vjp(v)⟩ = ⟨v, J u⟩ for every component (autograd's check_vjp).

The VJP always comes from the batched path (``vjp_batched``, ``gradient_batched``,
``backward_batched``, ``backward_batched(..., per_sample=True)``); ``J u`` comes from the
reference Jacobians (one sample at a time), from the batched Jacobians, or, for
the network's parameters, from the finite-difference witness. u and v are random
(standard normal), one pair per sample; the identity is checked sample by sample.

Tolerance: ``|lhs - rhs| <= IDENTITY_RTOL * (|u|·|vjp(v)| + |v|·|J u|)`` (the
natural scale of a dot product's rounding, with absolute values taken entrywise);
``FD_IDENTITY_RTOL`` when ``J u`` is a finite-difference estimate.
"""

from __future__ import annotations

import numpy as np
import pytest
from support import FD_IDENTITY_RTOL, ACTIVATION_NAMES, assert_identity, build_net, cols, random_batch

from jacobian_nn import fd_jacobian, get_activation
from jacobian_nn.layers import Dense

SEEDS = (0, 1, 2)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("name", ACTIVATION_NAMES)
def test_dense_identity(name, seed):
    """Dense wrt x (backward_batched's dX), W and b (backward_batched(..., per_sample=True)) against the reference
    jacobian_x / jacobian_W / jacobian_b and the batched jacobian_*_batched."""
    rng = np.random.default_rng(seed)
    N, n, m = 4, 5, 3
    layer = Dense(n, m, name, init="xavier", seed=rng)
    layer.b[:] = 0.3 * rng.standard_normal(m)
    X = rng.standard_normal((N, n))
    V = rng.standard_normal((N, m))
    Ux, UW, Ub = rng.standard_normal((N, n)), rng.standard_normal((N, n, m)), rng.standard_normal((N, m))
    _, ctx = layer.forward_batched(X)
    dX, _ = layer.backward_batched(V, ctx)
    _, per = layer.backward_batched(V, ctx, per_sample=True)
    xs = cols(X)
    for label, U, vjp, ref, bat in (
        ("x", Ux, dX, [layer.jacobian_x(x) for x in xs], layer.jacobian_x_batched(X)),
        ("W", UW, per["W"], [layer.jacobian_W(x) for x in xs], layer.jacobian_W_batched(X)),
        ("b", Ub, per["b"], [layer.jacobian_b(x) for x in xs], layer.jacobian_b_batched(X)),
    ):
        Uf = U.reshape(N, -1)  # vec(W) row-major, as jacobian_W
        Ju_ref = np.stack([J @ u for J, u in zip(ref, Uf)])
        Ju_bat = np.einsum("kij,kj->ki", bat, Uf)
        assert_identity(U, vjp, V, Ju_ref, label=f"dense[{name}] wrt {label} vs reference")
        assert_identity(U, vjp, V, Ju_bat, label=f"dense[{name}] wrt {label} vs batched Jacobian")


def _network_vjp_x(net, X, V):
    """Batched VJP of the network output wrt its input: chain backward_batched from G = V."""
    from jacobian_nn.batched import forward_batched

    _, ctxs = forward_batched(net, X, "test")
    G = V
    for layer, ctx in zip(reversed(net.layers), reversed(ctxs)):
        G, _ = layer.backward_batched(G, ctx)
    return G


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("hidden", [("tanh", "relu"), ("sigmoid", "elu"), ("leaky_relu", "softmax")])
def test_network_input_identity(hidden, seed):
    net = build_net([4, 6, 5, 3], hidden, "mse", seed)
    X, _ = random_batch(net, 5, seed + 100)
    rng = np.random.default_rng(seed + 200)
    U, V = rng.standard_normal((5, 4)), rng.standard_normal((5, 3))
    vjp = _network_vjp_x(net, X, V)
    Ju_ref = np.stack([net.input_jacobian(x) @ u for x, u in zip(cols(X), U)])
    Ju_bat = np.einsum("kij,kj->ki", net.input_jacobian_batched(X), U)
    assert_identity(U, vjp, V, Ju_ref, label="network dy/dx vs reference input_jacobian")
    assert_identity(U, vjp, V, Ju_bat, label="network dy/dx vs input_jacobian_batched")


@pytest.mark.parametrize("seed", SEEDS[:2])
def test_network_parameter_identity(seed):
    """Network output wrt all parameters, sample by sample: the VJP is the per-sample gradient of
    the scalar ``<v_k, y_hat_k>`` (mse against 0 labels would square; instead chain G = V through
    backward_batched(..., per_sample=True)), and ``J u`` is the FD directional derivative d/dt y_hat_k(theta + t u)."""
    net = build_net([3, 5, 4, 2], ("tanh", "sigmoid"), "mse", seed)
    X, _ = random_batch(net, 3, seed + 100)
    rng = np.random.default_rng(seed + 300)
    V = rng.standard_normal((3, 2))
    from jacobian_nn.batched import forward_batched

    _, ctxs = forward_batched(net, X, "train")
    G, per = V, [None] * len(net.layers)
    for i in range(len(net.layers) - 1, -1, -1):
        G, per[i] = net.layers[i].backward_batched(G, ctxs[i], per_sample=True)
    vjp = np.concatenate([g[name].reshape(3, -1) for g in per for name in g], axis=1)  # (N, P)
    theta0 = net.flat_params()
    U = rng.standard_normal(theta0.size)
    probe = net.copy()

    def outputs_along(t):
        probe.set_flat_params(theta0 + t[0] * U)
        return probe.predict_batched(X)

    fd = fd_jacobian(outputs_along, np.zeros(1))  # (N*m, 1)
    Ju = fd.df.reshape(3, 2)
    assert_identity(
        np.broadcast_to(U, vjp.shape),
        vjp,
        V,
        Ju,
        rtol=FD_IDENTITY_RTOL,
        label="network parameters vs FD directional derivative",
    )


def test_identity_check_can_fail():
    """The checker is not vacuous: a VJP off by a factor 1 + 1e-9 is caught."""
    rng = np.random.default_rng(0)
    U, V = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    act = get_activation("tanh")
    Z = rng.standard_normal((3, 4))
    vjp = act.vjp_batched(Z, act.forward_batched(Z), V) * (1 + 1e-9)
    Ju = np.einsum("kij,kj->ki", act.jacobian_batched(Z), U)
    with pytest.raises(AssertionError):
        assert_identity(U, vjp, V, Ju)
