"""The opt-in Workspace of the batched path: bitwise the same results, reuse, aliasing, atomic updates.

A workspace only changes where the batched step's arrays live (numpy's ``out=``), so
every comparison here is exact (``np.array_equal`` on the bits), never a tolerance.
"""

from __future__ import annotations

import copy
import re

import numpy as np
import pytest
from support import ACTIVATION_NAMES, LOSS_NAMES, build_net, random_batch, same_bits, same_layers
from hypothesis import given
from hypothesis import strategies as st

from jacobian_nn import BatchNorm, Dense, Dropout, Network, Workspace
from jacobian_nn import batched
from jacobian_nn.batched import loss_and_gradients_batched, train_step_batched


cases = st.tuples(
    st.lists(st.integers(1, 40), min_size=2, max_size=4),  # sizes
    st.lists(st.sampled_from(ACTIVATION_NAMES), min_size=3, max_size=3),
    st.sampled_from(LOSS_NAMES),
    st.sampled_from([np.float64, np.float32]),
    st.lists(st.integers(1, 70), min_size=3, max_size=3),  # N of three successive calls
    st.sampled_from([(0.0, 0.0, False), (1e-2, 0.0, False), (0.0, 1e-3, True), (1e-2, 1e-3, True)]),
    st.integers(0, 2**31 - 1),
)


@given(cases)
def test_gradients_and_steps_bitwise_identical_with_and_without_workspace(case):
    """For every activation and loss, float32 and float64, penalties, and N changing between
    calls: gradients and trained parameters are bit for bit those of the no-workspace path."""
    sizes, hidden, loss, dtype, Ns, (l2, l1, reg_b), seed = case
    plain = build_net(sizes, hidden, loss, seed, dtype=dtype, l2=l2, l1=l1, regularize_bias=reg_b)
    reused = copy.deepcopy(plain)
    ws = Workspace()
    for t, N in enumerate(Ns):
        X, Y = random_batch(plain, N, seed + t)
        try:
            l_a, g_a = loss_and_gradients_batched(plain, X, Y)
        except ValueError as exc:  # e.g. a softmax output underflowed to 0: refused the same way
            with pytest.raises(ValueError, match=re.escape(str(exc))):
                loss_and_gradients_batched(reused, X, Y, workspace=ws)
            return
        l_b, g_b = loss_and_gradients_batched(reused, X, Y, workspace=ws)
        assert l_a == l_b
        assert same_layers(g_a, g_b)
        assert train_step_batched(plain, X, Y, 0.05) == train_step_batched(reused, X, Y, 0.05, workspace=ws)
        assert same_layers(plain.params, reused.params)
        assert len(ws) > 0  # the workspace was used (Dense layers always take it)


def test_network_methods_take_the_workspace():
    net = Network.build([5, 7, 3], "tanh", seed=1)
    other = net.copy()
    X, Y = random_batch(net, 9, 2)
    ws = Workspace()
    l_a, g_a = net.loss_and_gradients_batched(X, Y)
    l_b, g_b = other.loss_and_gradients_batched(X, Y, workspace=ws)
    assert l_a == l_b
    assert same_layers(g_a, g_b)
    assert net.train_step_batched(X, Y, 0.1) == other.train_step_batched(X, Y, 0.1, workspace=ws)
    assert same_layers(net.params, other.params)


def test_arrays_are_reused_for_the_same_shapes_and_new_for_a_new_batch_size():
    net = Network.build([6, 8, 4], "relu", seed=3)
    ws = Workspace()
    X, Y = random_batch(net, 10, 4)
    train_step_batched(net, X, Y, 0.1, workspace=ws)
    count, nbytes = len(ws), ws.nbytes
    train_step_batched(net, X, Y, 0.1, workspace=ws)
    assert (len(ws), ws.nbytes) == (count, nbytes)  # nothing new allocated
    X2, Y2 = random_batch(net, 11, 5)
    train_step_batched(net, X2, Y2, 0.1, workspace=ws)
    assert len(ws) > count  # (N, m) arrays for N = 11 added
    ws.clear()
    assert len(ws) == 0 and ws.nbytes == 0


def test_workspace_array_keys():
    ws = Workspace()
    a = ws.array(0, "Z", (4, 3), np.float64)
    assert a is ws.array(0, "Z", (4, 3), np.float64)
    assert a is not ws.array(1, "Z", (4, 3), np.float64)
    assert a is not ws.array(0, "dX", (4, 3), np.float64)
    assert a is not ws.array(0, "Z", (4, 3), np.float32)
    assert ws.lender(0).array("Z", (4, 3), np.float64) is a


def test_returned_gradients_live_in_the_workspace_until_its_next_use():
    """Documented aliasing: the gradients returned with a workspace are overwritten by the
    next call with it; a copy keeps them."""
    net = Network.build([4, 6, 3], "relu", seed=5)
    ws = Workspace()
    X1, Y1 = random_batch(net, 8, 6)
    X2, Y2 = random_batch(net, 8, 7)
    _, g1 = net.loss_and_gradients_batched(X1, Y1, workspace=ws)
    kept = [{k: v.copy() for k, v in d.items()} for d in g1]
    _, g2 = net.loss_and_gradients_batched(X2, Y2, workspace=ws)
    assert g1[0]["W"] is g2[0]["W"]  # the same memory...
    assert not np.array_equal(kept[0]["W"], g2[0]["W"])  # ...now holding the second batch's gradient
    assert same_layers(kept, net.loss_and_gradients_batched(X1, Y1)[1])


def test_failed_step_with_workspace_leaves_parameters_untouched():
    net = Network.build([3, 5, 2], "relu", loss="mse", seed=6)
    before = copy.deepcopy(net.params)
    X = np.full((4, 3), 1e150)
    Y = np.zeros((4, 2))
    ws = Workspace()
    with pytest.raises(ValueError, match="steps"):
        train_step_batched(net, X, Y, 1e300, workspace=ws)
    for p, q in zip(before, net.params):
        for k in p:
            assert same_bits(p[k], q[k])


def test_bad_input_with_workspace_is_refused_as_without():
    net = Network.build([3, 4, 2], "relu", seed=7)
    ws = Workspace()
    with pytest.raises(ValueError, match="X"):
        net.train_step_batched(np.zeros((5, 4)), np.zeros(5, dtype=int), 0.1, workspace=ws)
    with pytest.raises(TypeError, match="X"):
        net.train_step_batched(np.zeros((5, 3), dtype=np.float32), np.zeros(5, dtype=int), 0.1, workspace=ws)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_batch_norm_and_dropout_networks_work_with_a_workspace(dtype):
    """Layers without workspace support (batch norm, dropout) allocate as before; the network's
    results are still bitwise those of the no-workspace path (dropout draws from identical copies)."""
    rng = np.random.default_rng(8)
    layers = [
        Dense(6, 10, "identity", seed=rng, dtype=dtype),
        BatchNorm(10, dtype=dtype),
        Dense(10, 8, "relu", seed=rng, dtype=dtype),
        Dropout(8, 0.3, seed=9, dtype=dtype),
        Dense(8, 3, "identity", seed=rng, dtype=dtype),
    ]
    plain = Network(layers, "softmax_cross_entropy", l2=1e-3)
    reused = copy.deepcopy(plain)
    ws = Workspace()
    for t, N in enumerate((12, 12, 7)):
        X, Y = random_batch(plain, N, 10 + t)
        l_a, g_a = plain.loss_and_gradients_batched(X, Y)
        l_b, g_b = reused.loss_and_gradients_batched(X, Y, workspace=ws)
        assert l_a == l_b
        assert same_layers(g_a, g_b)
        assert plain.train_step_batched(X, Y, 0.05) == reused.train_step_batched(X, Y, 0.05, workspace=ws)
        assert same_layers(plain.params, reused.params)
        for s1, s2 in zip(plain.layers, reused.layers):
            for k, v in s1.state.items():
                assert same_bits(v, s2.state[k])


def test_workspace_is_reexported():
    assert batched.Workspace is Workspace
