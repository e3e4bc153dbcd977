"""The batched path against the stacked per-sample reference (hypothesis), float32, bad input.

Every quantity is compared two ways, each labelled: forward (outputs, losses) and
backward (gradients, per-sample gradients, Jacobians). Errors are relative to the
quantity's scale (``support.rel_err``); the worst value per quantity is
tracked and written to ``$JNN_WORST_ERRORS`` when that variable is set.
"""

from __future__ import annotations

import numpy as np
import pytest
from support import (
    cols,
    ACTIVATION_NAMES,
    KINKED,
    LOSS_NAMES,
    WorstErrors,
    build_net,
    random_batch,
    rel_err,
    stacked_reference,
)
from hypothesis import given
from hypothesis import strategies as st

from jacobian_nn import Network, cross_check, fd_jacobian
from jacobian_nn.batched import per_sample_gradients_batched

#: float64 agreement of the two paths, relative to each quantity's scale.
REL_TOL_F64 = 1e-12
#: Two identically seeded networks trained k steps, one by each path: max parameter difference.
TRAIN_TOL_F64 = 1e-10
#: float32 against the float64 reference of the same numbers: a multiple of eps(float32) per layer.
F32_ULPS_PER_LAYER = 256

WORST = WorstErrors()


_dump_worst = WORST.dump_at_module_end("test_batched")


architectures = st.builds(
    lambda depth, widths, hidden, loss: (widths[: depth + 1], hidden, loss),
    st.integers(1, 4),
    st.lists(st.integers(1, 64), min_size=5, max_size=5),
    st.lists(st.sampled_from(ACTIVATION_NAMES), min_size=3, max_size=3),
    st.sampled_from(LOSS_NAMES),
)


def _fix_sizes(sizes, loss):
    sizes = list(sizes)
    if loss != "mse":
        sizes[-1] = max(sizes[-1], 2)  # a class label needs at least 2 outputs to mean anything
    return sizes


# --------------------------------------------------------------------------- float64 agreement


@given(
    arch=architectures,
    N=st.sampled_from([1, 2, 5, 17, 64]),
    seed=st.integers(0, 2**31 - 1),
    penalty=st.sampled_from([(0.0, 0.0), (0.01, 0.0), (0.0, 0.01), (0.05, 0.02)]),
    soft=st.booleans(),
)
def test_batched_matches_stacked_reference(arch, N, seed, penalty, soft):
    sizes, hidden, loss = arch
    sizes = _fix_sizes(sizes, loss)
    net = build_net(sizes, hidden, loss, seed, l2=penalty[0], l1=penalty[1], regularize_bias=soft)
    X, Y = random_batch(net, N, seed + 1, soft_labels=soft)
    outs, losses, per_ref, jac = stacked_reference(net, X, Y)

    # forward
    out_b = net.predict_batched(X)
    assert WORST.record("outputs", rel_err(out_b, outs)) <= REL_TOL_F64
    loss_b, grads_b = net.loss_and_gradients_batched(X, Y)
    loss_r, grads_r = net.loss_and_gradients(X, Y)
    assert WORST.record("batch loss", rel_err(loss_b, loss_r)) <= REL_TOL_F64
    assert WORST.record("per-sample losses", rel_err(net.per_sample_losses_batched(X, Y), losses)) <= REL_TOL_F64

    # backward
    per_b = per_sample_gradients_batched(net, X, Y)
    for i in range(len(net.layers)):
        for name in ("W", "b"):
            assert WORST.record(f"gradient {name}", rel_err(grads_b[i][name], grads_r[i][name])) <= REL_TOL_F64
            assert WORST.record(f"per-sample gradient {name}", rel_err(per_b[i][name], per_ref[i][name])) <= REL_TOL_F64
            assert (
                WORST.record(
                    f"mean per-sample == batched {name}", rel_err(per_b[i][name].mean(axis=0), grads_b[i][name])
                )
                <= REL_TOL_F64
            )
    assert WORST.record("network input Jacobian", rel_err(net.input_jacobian_batched(X), jac)) <= REL_TOL_F64
    Z = X
    for layer in net.layers:
        Jb = layer.jacobian_b_batched(Z)
        Z64 = Z @ layer.W + layer.b
        Jr = np.stack([layer.activation.jacobian(z) for z in cols(Z64)])
        assert WORST.record("activation Jacobian", rel_err(Jb, Jr)) <= REL_TOL_F64
        Z = layer.forward_batched(Z, "test")[0]


@given(arch=architectures, seed=st.integers(0, 2**31 - 1), k=st.integers(1, 5), N=st.sampled_from([1, 3, 16]))
def test_two_paths_train_identically(arch, seed, k, N):
    sizes, hidden, loss = arch
    sizes = _fix_sizes(sizes, loss)
    net_ref = build_net(sizes, hidden, loss, seed, l2=0.01, l1=0.001)
    net_bat = build_net(sizes, hidden, loss, seed, l2=0.01, l1=0.001)
    assert all(np.array_equal(a, b) for a, b in zip(net_ref.flat_params(), net_bat.flat_params()))
    for step in range(k):
        X, Y = random_batch(net_ref, N, seed + 10 + step)
        l_ref = net_ref.train_batch(X, Y, lr=0.05)
        l_bat = net_bat.train_step_batched(X, Y, lr=0.05)
        assert abs(l_ref - l_bat) <= REL_TOL_F64 * max(1.0, abs(l_ref))
    diff = float(np.max(np.abs(net_ref.flat_params() - net_bat.flat_params())))
    WORST.record("parameters after k training steps (abs)", diff)
    assert diff <= TRAIN_TOL_F64


@given(seed=st.integers(0, 2**31 - 1), name=st.sampled_from(ACTIVATION_NAMES), N=st.integers(1, 3))
def test_batched_input_jacobian_vs_fd_witness(seed, name, N):
    """Batched network input Jacobian against scipy's finite differences, per sample (small cases).
    Kinked activations: inputs whose pre-activations stay away from 0 by the FD reach."""
    net = build_net([3, 4, 2], (name,), "mse", seed)
    X, _ = random_batch(net, N, seed + 1)
    if name in KINKED and np.min(np.abs(X @ net.layers[0].W + net.layers[0].b)) < 0.05:
        return  # a kink within the FD probes' reach (initial step 1e-2): not a derivative test
    J = net.input_jacobian_batched(X)
    for k in range(N):
        fd = fd_jacobian(lambda v: net.predict_batched(v[None, :])[0], X[k])
        err = np.abs(J[k] - fd.df)
        assert np.all(err <= 1e-7 + 1e-6 * np.abs(fd.df) + 10 * fd.error), (name, k, err.max())
        WORST.record("input Jacobian vs FD (abs)", float(err.max()))


# --------------------------------------------------------------------------- float32


@given(arch=architectures, N=st.sampled_from([1, 4, 32]), seed=st.integers(0, 2**31 - 1))
def test_float32_agrees_with_float64_reference(arch, N, seed):
    """A float32 network against the float64 reference of the same (upcast) numbers, inputs kept
    away from kinks: every pre-activation at least ``margin`` from 0 (else the case is skipped by
    nudging X). Tolerance F32_ULPS_PER_LAYER * eps(float32) * depth, relative to each quantity."""
    sizes, hidden, loss = arch
    sizes = _fix_sizes(sizes, loss)
    net32 = build_net(sizes, hidden, loss, seed, dtype=np.float32)
    X32, Y = random_batch(net32, N, seed + 1)
    Z = X32.astype(np.float64)
    margin = 1e-3
    for layer in net32.layers:
        Z = Z @ layer.W.astype(np.float64) + layer.b.astype(np.float64)
        if layer.activation.name in KINKED and np.min(np.abs(Z)) < margin:
            return  # too close to a kink for a float32/float64 comparison (float32 and float64 inputs near a kink can round to opposite sides)
        Z = layer.activation.forward_batched(Z)
    report = cross_check(net32, X32, Y, ulps=F32_ULPS_PER_LAYER * len(net32.layers))
    for r in report.rows:
        WORST.record(f"float32: {r.quantity.split(' (')[0].split(' layer')[0]}", r.comparison.max_rel)
    assert report.passed, str(report)


def test_float32_end_to_end():
    net = Network.build([4, 16, 3], "tanh", seed=0, dtype=np.float32)
    rng = np.random.default_rng(1)
    X = rng.standard_normal((32, 4)).astype(np.float32)
    Y = rng.integers(0, 3, 32)
    loss0 = net.train_step_batched(X, Y, lr=0.1)
    for _ in range(20):
        net.train_step_batched(X, Y, lr=0.1)
    assert all(v.dtype == np.float32 for p in net.params for v in p.values())
    assert net.predict_batched(X).dtype == np.float32
    assert net.input_jacobian_batched(X).dtype == np.float32
    assert net.per_sample_gradients_batched(X, Y)[0]["W"].dtype == np.float32
    assert net.loss_and_gradients_batched(X, Y)[0] < loss0
    assert 0.0 <= net.accuracy_batched(X, Y) <= 1.0


def test_float32_net_refuses_float64_input_and_labels():
    net = Network.build([3, 4, 2], "relu", loss="mse", seed=0, dtype=np.float32)
    X = np.zeros((2, 3))
    with pytest.raises(TypeError, match=r"X: expected dtype float32, got float64"):
        net.predict_batched(X)
    with pytest.raises(TypeError, match=r"Y: expected dtype float32, got float64"):
        net.loss_and_gradients_batched(X.astype(np.float32), np.zeros((2, 2)))
    with pytest.raises(TypeError, match="float64"):
        net.loss_and_gradients(X, np.zeros((2, 2)))  # the reference path is float64 only
    # integers are converted on purpose
    assert net.predict_batched(np.ones((2, 3), dtype=np.int64)).dtype == np.float32


def test_float64_net_refuses_float32_input():
    net = Network.build([3, 4, 2], "relu", seed=0)
    with pytest.raises(TypeError, match="X: expected dtype float64, got float32"):
        net.input_jacobian_batched(np.zeros((2, 3), dtype=np.float32))


# --------------------------------------------------------------------------- cross-check report


def test_cross_check_report_passes_and_serialises():
    import json

    net = build_net([3, 6, 5, 4], ("tanh", "relu"), "cross_entropy", 0, l2=0.01)
    X, Y = random_batch(net, 7, 1)
    report = cross_check(net, X, Y)
    assert report.passed, str(report)
    names = [r.quantity for r in report.rows]
    for needed in (
        "outputs (N, m)",
        "loss (mean + penalty)",
        "per-sample losses (N,)",
        "grad layer 0 W (3, 6)",
        "per-sample grad layer 2 b (7, 4)",
        "network dy/dx (N, m_out, n_in)",
    ):
        assert needed in names
    assert report["per-sample grad layer 0 W (7, 3, 6)"].where.keys() == {"sample", "row", "column"}
    d = json.loads(json.dumps(report.as_dict()))
    assert d["passed"] is True and d["dtype"] == "float64" and len(d["rows"]) == len(report.rows)
    assert "pass" in str(report) and "FAIL" not in str(report)


def test_cross_check_detects_a_wrong_batched_vjp(monkeypatch):
    """The report can fail: a batched tanh VJP off by 1e-9 relative is flagged, with its location."""
    from jacobian_nn.activations import Tanh

    net = build_net([3, 5, 2], ("tanh",), "mse", 0)
    X, Y = random_batch(net, 4, 1)
    good = Tanh.vjp_batched
    monkeypatch.setattr(Tanh, "vjp_batched", lambda self, Z, A, G, out=None: good(self, Z, A, G) * (1 + 1e-9))
    report = cross_check(net, X, Y)
    failed = {r.quantity for r in report.failures()}
    assert "grad layer 0 W (3, 5)" in failed and "per-sample grad layer 0 W (4, 3, 5)" in failed
    assert "outputs (N, m)" not in failed
    assert "FAIL" in str(report) and report.as_dict()["passed"] is False


def test_cross_check_float32_uses_float64_copy_and_leaves_net_alone():
    net = build_net([3, 5, 2], ("sigmoid",), "mse", 0, dtype=np.float32)
    theta = net.flat_params().copy()
    X, Y = random_batch(net, 4, 1)
    report = cross_check(net, X, Y)
    assert report.passed and report.dtype == "float32"
    assert net.dtype == np.float32 and np.array_equal(net.flat_params(), theta)


# --------------------------------------------------------------------------- bad input


@pytest.fixture()
def net():
    return build_net([3, 4, 2], ("tanh",), "softmax_cross_entropy", 0, l2=0.01)


BAD_INPUTS = [
    ("X and Y with different N", np.zeros((4, 3)), np.array([0, 1, 0]), ValueError, r"Y: expected 4 labels"),
    ("1-D X", np.zeros(3), np.array([0]), ValueError, r"X: expected a 2-D batch of shape \(N, 3\), got 1-D"),
    (
        "wrong feature count",
        np.zeros((2, 5)),
        np.array([0, 1]),
        ValueError,
        r"X: expected 3 features per sample, shape \(N, 3\), got shape \(2, 5\)",
    ),
    ("NaN in X", np.array([[0.0, np.nan, 1.0]]), np.array([0]), ValueError, r"X: expected finite values"),
    ("inf in X", np.array([[0.0, np.inf, 1.0]]), np.array([0]), ValueError, r"X: expected finite values"),
    ("empty batch", np.zeros((0, 3)), np.zeros(0, dtype=int), ValueError, r"X: expected a non-empty batch"),
    ("label out of range", np.zeros((2, 3)), np.array([0, 2]), ValueError, r"Y: expected class indices"),
    ("float class labels 1-D", np.zeros((2, 3)), np.array([0.0, 1.0]), TypeError, r"Y: a 1-D label array"),
    (
        "one-hot labels of the wrong width",
        np.zeros((2, 3)),
        np.eye(3)[:2],
        ValueError,
        r"Y: expected labels of shape \(2, 2\)",
    ),
]


@pytest.mark.parametrize("label, X, Y, exc, match", BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
@pytest.mark.parametrize(
    "entry", ["train_step_batched", "loss_and_gradients_batched", "per_sample_gradients_batched", "cross_check"]
)
def test_bad_input_is_refused_and_parameters_untouched(net, label, X, Y, exc, match, entry):
    theta = net.flat_params().copy()
    with pytest.raises(exc, match=match):
        if entry == "train_step_batched":
            net.train_step_batched(X, Y, lr=0.1)
        elif entry == "cross_check":
            cross_check(net, X, Y)
        else:
            getattr(net, entry)(X, Y)
    assert np.array_equal(net.flat_params(), theta)


@pytest.mark.parametrize(
    "X, match",
    BAD_INPUTS_X := [
        (np.zeros(3), r"X: expected a 2-D batch"),
        (np.zeros((2, 5)), r"X: expected 3 features"),
        (np.zeros((0, 3)), r"non-empty"),
        (np.array([[np.nan, 0.0, 0.0]]), r"finite"),
    ],
)
def test_batched_jacobian_bad_input(net, X, match):
    with pytest.raises(ValueError, match=match):
        net.input_jacobian_batched(X)


@pytest.mark.parametrize("lr", [0.0, -1.0, np.nan, "0.1"])
def test_bad_learning_rate_leaves_parameters(net, lr):
    theta = net.flat_params().copy()
    with pytest.raises((ValueError, TypeError), match="lr"):
        net.train_step_batched(np.zeros((2, 3)), np.array([0, 1]), lr=lr)
    assert np.array_equal(net.flat_params(), theta)


@pytest.mark.filterwarnings("ignore:overflow encountered")
def test_non_finite_step_leaves_parameters():
    """A step that overflows to inf (gradient ~1e10 times lr 1e300) is refused by apply_update
    before any write."""
    net = build_net([3, 4, 2], ("tanh",), "mse", 0)
    theta = net.flat_params().copy()
    with pytest.raises(ValueError, match="not finite"):
        net.train_step_batched(np.ones((2, 3)), np.full((2, 2), 1e10), lr=1e300)
    assert np.array_equal(net.flat_params(), theta)
