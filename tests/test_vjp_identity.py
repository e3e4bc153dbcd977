"""Inner-product identity ⟨u, vjp(v)⟩ = ⟨v, J u⟩ for whole networks (autograd's check_vjp).

The VJP comes from the batched path (``backward_batched`` chained through the layers, with
``per_sample=True`` for the parameters); ``J u`` from the reference ``input_jacobian`` (one sample at
a time), the batched ``input_jacobian_batched``, or, for the parameters, the finite-difference
directional derivative. u and v are random (standard normal), one pair per sample; the identity is
checked sample by sample by ``support.assert_identity`` (tolerance there: ``IDENTITY_RTOL`` times the
dot products' scale; ``FD_IDENTITY_RTOL`` against finite differences).

The same identity for each component is in that component's file: ``test_activations.py``
(``test_activation_identity``), ``test_losses.py`` (``test_loss_identity``), ``test_dense.py``
(``test_dense_identity``).
"""

from __future__ import annotations

import numpy as np
import pytest
from support import FD_IDENTITY_RTOL, assert_identity, build_net, cols, random_batch

from jacobian_nn import fd_jacobian, get_activation

SEEDS = (0, 1, 2)


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
