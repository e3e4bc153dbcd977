"""cross_check's tolerance where gradients cancel: batch norm's gain, and the mean of per-sample gradients.

Each rule is shown three ways: a case that fails without it passes, a real error of 1e-9 (of the
quantity's scale) still fails in the worst case the rule allows, and the rule changes no row it
does not apply to (no batch norm, layers downstream of it, test-mode quantities).
"""

from __future__ import annotations

import numpy as np
import pytest

from support import bn_dropout_case

from jacobian_nn import Network, batched, crosscheck
from jacobian_nn.crosscheck import BATCHNORM_ULPS, CROSSCHECK_ULPS, batchnorm_gains, cross_check
from jacobian_nn.fcnet import FullyConnectedNet
from jacobian_nn.normalization import same_randomness

EPS = float(np.finfo(np.float64).eps)


def _without_gain(monkeypatch):
    """cross_check as before the gain: every layer's gain 1."""
    monkeypatch.setattr(crosscheck, "batchnorm_gains", lambda net, X: [1.0] * len(net.layers))


def _kappa(net, X, i):
    """``max(1, max_j |gamma_j| / sigma_j)`` of batch-norm layer ``i`` from its training-mode input
    batch, computed here with numpy's variance (the networks this is used on have no dropout)."""
    A = net.input_batch(X)
    for layer in net.layers[:i]:
        A = layer.forward_batched(A, "train")[0]
    bn = net.layers[i]
    return max(1.0, float(np.max(np.abs(bn.gamma) / np.sqrt(A.var(axis=0) + bn.eps))))


# --------------------------------------------------------------------------- batch norm's gain


@pytest.mark.parametrize(("seed", "p"), [(760, 0.0), (1705, 0.0), (2413, 0.0), (399, 0.5)])
def test_two_samples_through_batch_norm_pass_and_fail_without_the_gain(monkeypatch, seed, p):
    # N = 2: batch norm's projection cancels its input gradient, whose rounding (amplified by gamma / sigma)
    # then lies far above the gradient itself; these draws failed by 1.2x to 5.8x the gain-free tolerance
    net, X, Y = bn_dropout_case(seed, p, 2)
    report = cross_check(net, X, Y)
    assert report.passed, str(report)
    _without_gain(monkeypatch)
    assert [r.quantity for r in cross_check(net, X, Y).failures()] == ["grad layer 0 W (3, 5)"]


def test_the_gain_is_the_product_of_kappa_over_the_batch_norm_layers_after_the_layer():
    net = FullyConnectedNet([5, 4], input_dim=3, num_classes=3, use_batchnorm=True, weight_scale=0.5, seed=1)
    X = np.random.default_rng(2).normal(size=(2, 3))
    with same_randomness(net, 2):
        gains = batchnorm_gains(net, X)
        k1, k4 = _kappa(net, X, 1), _kappa(net, X, 4)
    assert k1 > 1 and k4 > 1
    # layers: Dense 0, BatchNorm 1, ReLU 2, Dense 3, BatchNorm 4, ReLU 5, Dense 6 (a batch norm's own
    # gamma and beta are not after it: gain k4 for layer 1, 1 for layer 4)
    np.testing.assert_allclose(gains, [k1 * k4, k4, k4, k4, 1.0, 1.0, 1.0], rtol=1e-10)


def test_without_batch_norm_every_gain_is_one_and_no_tolerance_changes(monkeypatch):
    net = Network.build([3, 6, 5, 3], "tanh", seed=0)
    X, Y = np.random.default_rng(0).normal(size=(4, 3)), np.array([0, 1, 2, 1])
    assert batchnorm_gains(net, X) == [1.0, 1.0, 1.0]
    with_rule = [r.comparison.tolerance for r in cross_check(net, X, Y).rows]
    _without_gain(monkeypatch)
    assert [r.comparison.tolerance for r in cross_check(net, X, Y).rows] == with_rule


def test_only_the_batch_gradients_upstream_of_a_batch_norm_get_the_gain(monkeypatch):
    net, X, Y = bn_dropout_case(760, 0.0, 2)
    with_rule = {r.quantity: r.comparison.tolerance for r in cross_check(net, X, Y).rows}
    _without_gain(monkeypatch)
    without = {r.quantity: r.comparison.tolerance for r in cross_check(net, X, Y).rows}
    widened = sorted(q for q in with_rule if with_rule[q] != without[q])
    assert widened == sorted(q for q in with_rule if q.startswith(("grad layer 0 ", "grad layer 1 ", "grad layer 3 ")))
    assert all(with_rule[q] > without[q] for q in widened)


def _plant_in_gradients(monkeypatch, layer, name, fraction):
    """The batched gradients made wrong: ``fraction`` of the largest gradient entry of the network
    added to entry 0 of ``grads[layer][name]``."""
    real = batched.loss_and_gradients_batched

    def planted(*args, **kwargs):
        loss, grads = real(*args, **kwargs)
        scale = max(float(np.abs(v).max()) for g in grads for v in g.values())
        grads[layer][name].reshape(-1)[0] += fraction * scale
        return loss, grads

    monkeypatch.setattr(batched, "loss_and_gradients_batched", planted)


@pytest.mark.parametrize("fraction", [1e-9, -1e-9])
def test_a_gradient_wrong_by_1e9_of_its_scale_fails_at_the_largest_gain_there_is(monkeypatch, fraction):
    # two identical samples: sigma_j = sqrt(eps_bn) at both batch norms, the smallest sigma and so the
    # largest gain (kappa = 1 / sqrt(1e-5) = 316 each, 1e5 for layer 0), the widest tolerance the rule gives
    net = FullyConnectedNet([5, 4], input_dim=3, num_classes=3, use_batchnorm=True, weight_scale=0.5, seed=3)
    X, Y = np.array([[0.3, -1.2, 0.7]] * 2), np.array([0, 2])
    with same_randomness(net, 2):
        gains = batchnorm_gains(net, X)
    assert gains[0] == pytest.approx(1e5, rel=1e-9)
    widest = (CROSSCHECK_ULPS + BATCHNORM_ULPS * (gains[0] - 1)) * EPS  # of the scale: the documented formula
    assert widest < 3.6e-10
    assert cross_check(net, X, Y, jacobians=False, per_sample=False).passed  # near miss: nothing planted
    _plant_in_gradients(monkeypatch, 0, "W", fraction)
    report = cross_check(net, X, Y, jacobians=False, per_sample=False)
    assert [r.quantity for r in report.failures()] == ["grad layer 0 W (3, 5)"]
    _, grads = net.loss_and_gradients(X, Y)
    scale = max(float(np.abs(v).max()) for g in grads for v in g.values())
    assert report["grad layer 0 W (3, 5)"].comparison.tolerance == pytest.approx(widest * scale, rel=1e-6)


def test_a_gradient_wrong_by_1e9_fails_on_the_draws_the_gain_lets_pass(monkeypatch):
    for seed, p in [(760, 0.0), (2413, 0.0), (399, 0.5)]:
        net, X, Y = bn_dropout_case(seed, p, 2)
        with monkeypatch.context() as m:
            _plant_in_gradients(m, 0, "W", 1e-9)
            assert "grad layer 0 W (3, 5)" in [r.quantity for r in cross_check(net, X, Y).failures()], seed


# --------------------------------------------------------------------------- the mean of per-sample gradients


@pytest.mark.parametrize("seed", [632, 1153])
def test_the_mean_of_per_sample_gradients_is_judged_at_the_scale_of_its_terms(seed):
    # the output bias's test-mode gradient mean_k (p_k - y_k) cancels to ~1e-17 (every ReLU off, one label of
    # each class), while its terms are ~1: relative to the result, the former tolerance was 1.3e-29
    net, X, Y = bn_dropout_case(seed, 0.0, 3)
    report = cross_check(net, X, Y)
    assert report.passed, str(report)
    assert abs(float(net.loss_and_gradients_batched(X, Y, "test")[1][6]["b"][0])) < 1e-15
    terms = net.per_sample_gradients_batched(X, Y, mode="test")[6]["b"]
    tol = report["mean per-sample == grad, layer 6 b"].comparison.tolerance
    assert tol == pytest.approx(CROSSCHECK_ULPS * EPS * float(np.abs(terms).max()), rel=1e-3)


def test_a_mean_of_per_sample_gradients_wrong_by_1e9_of_its_terms_fails(monkeypatch):
    net, X, Y = bn_dropout_case(632, 0.0, 3)
    real = batched.per_sample_gradients_batched

    def planted(*args, **kwargs):
        grads = real(*args, **kwargs)
        g = grads[6]["b"]
        g[:, 0] += 1e-9 * float(np.abs(g).max())  # every sample's term: their mean moves by as much
        return grads

    monkeypatch.setattr(batched, "per_sample_gradients_batched", planted)
    report = cross_check(net, X, Y, jacobians=False)
    assert "mean per-sample == grad, layer 6 b" in [r.quantity for r in report.failures()]
