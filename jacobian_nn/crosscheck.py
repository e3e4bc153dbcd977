"""Cross-check: the batched path against the stacked per-sample reference path.

One call, :func:`cross_check`, runs both paths on one network and one batch and
compares, quantity by quantity:

==============================  ================================  =================================
quantity                        batched path                      reference path (stacked)
==============================  ================================  =================================
outputs ``(N, m)``              ``predict_batched``               ``predict`` (per column)
batch loss ``()``               ``loss_and_gradients_batched``    ``loss_and_gradients``
per-sample losses ``(N,)``      ``per_sample_losses_batched``     ``loss.forward`` per sample
gradient of every parameter     ``loss_and_gradients_batched``    ``loss_and_gradients``
per-sample gradients            ``per_sample_gradients_batched``  ``backward(x_k, y_k)``, stacked
  ``(N, n, m)`` / ``(N, m)``
mean of per-sample gradients    ``per_sample_gradients_batched``  ``loss_and_gradients_batched``
  (internal consistency)        mean over samples                 (both batched; penalty included)
activation Jacobians            ``jacobian_b_batched`` =            ``activation.jacobian(z_k)``,
  ``(N, m, m)`` per layer       ``activation.jacobian_batched(Z)``  stacked
network input Jacobian          ``input_jacobian_batched``        ``input_jacobian(x_k)``, stacked
  ``(N, m_out, n_in)``
==============================  ================================  =================================

Tolerance (derived from the dtype of the batched computation)::

    eps   = eps_of(net.dtype)                # 2.2e-16 (float64), 1.2e-7 (float32)
    rtol  = ulps * eps                       # ulps = CROSSCHECK_ULPS = 1024 by default
    atol  = (ulps + 16 (gain - 1)) * eps * scale   # scale = max |reference| over the quantity (1 if all 0)
    pass  <=>  |batched - reference| <= atol + rtol * |reference|   for every entry

The two paths sum in different orders (``X^T delta`` against a sum of outer
products; a matmul against a per-sample chain), so each entry can differ by a
few roundings of the *largest* terms it sums; ``atol`` scales with the
quantity's magnitude for that reason, and an entry that cancels to near zero is
judged by its absolute error. A parameter gradient's scale is at least the
largest gradient entry of the whole network: a gradient is a sum of upstream
terms that can cancel (the bias before a training-mode batch norm has gradient
exactly 0, and batch norm's ``dgamma = sum_i G_i x_hat_i`` cancels when N is
small), and the rounding is relative to those terms, not to the result. The mean
of the per-sample gradients is compared with the batch gradient at the scale of
the largest per-sample gradient entry of that parameter (its terms: a mean that
cancels, such as the output bias's ``mean_k (p_k - y_k)``, is rounded relative
to them). 1024 ulps leaves room for depth 4, width 64 and N
in the hundreds on well-conditioned networks (float64: rtol = 2.3e-13, inside
the issue's 1e-12); the worst errors measured are in the README section of the
batched path. ``max_rel`` is reported as in :func:`jacobian_nn.fd.compare`:
``|a - b| / max(|a|, |b|)`` over entries above ``atol``.

Batch norm's gain. ``gain`` is 1 except for the (training-mode) gradients of a
layer upstream of a batch-norm layer, where it is the product, over the batch-norm
layers ``b`` after it, of ``max(1, kappa_b)``::

    kappa_b = max_j |gamma_j| / sigma_j        sigma_j = sqrt(var_j + eps_b), the batch's (m,) std at b

In training mode batch norm's input gradient is
``dX[:, j] = gamma_j / sigma_j * P_j G[:, j]`` with ``P_j = I - 1 1^T / N - x_hat_j x_hat_j^T / N``
``(N, N)``, a projection (norm <= 1), so the map ``G -> dX`` has norm ``kappa_b``: the
rounding errors of ``G`` and of batch norm's own sums, each relative to ``|G|``, reach
``dX`` multiplied by up to ``kappa_b``, while ``P_j`` may cancel ``dX`` itself to far
below ``kappa_b |G|`` (N = 2: ``x_hat_j = +-1`` and ``P_j = 0`` up to ``eps_b / sigma_j^2``).
Every gradient upstream is computed from that ``dX``. The discrepancy between the two
paths before any batch norm is a few roundings of the scale (measured: at most 0.8 roundings
of the scale per unit of gain on the draws of ``tests/test_fcnet.py``'s hypothesis test that
failed without the gain), so the gain multiplies
those, not the 1024-ulp budget of summation order: ``BATCHNORM_ULPS = 16`` roundings per
unit of gain are added to it. ``sigma_j >= sqrt(eps_b)``, so ``kappa_b <= |gamma|_max /
sqrt(eps_b)`` (316 for ``gamma = 1``, ``eps_b = 1e-5``): with one batch norm the tolerance
of those rows stays below 1.4e-12 of the scale, with two in a row below 3.6e-10 (float64),
and a gradient wrong by 1e-9 of it still fails.

float32. The reference path computes in float64 only
(:mod:`jacobian_nn.reference` refuses another dtype). For a float32 network the reference runs
on a **float64 copy** of the parameters and of ``X`` (an exact upcast), so the
report measures the float32 batched path against the float64 answer for the
same float32 numbers, with float32 tolerances. Near a kink the float32 and
float64 pre-activations can fall on opposite sides; check float32 on inputs
kept away from kinks.

Quantities that a network cannot provide (per-sample gradients or batched
Jacobians for a layer that does not declare ``per_sample_gradients`` / ``batched_jacobians``)
are listed in ``report.skipped`` with the reason, never silently passed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import batched
from ._validation import columns, eps_of, generator_states
from .fd import Comparison, compare
from .layers import Dense

#: Tolerance multiplier, in units of the dtype's machine epsilon (see the module docstring).
CROSSCHECK_ULPS = 1024
#: Roundings of the scale per unit of batch norm's gain (module docstring, "Batch norm's gain").
BATCHNORM_ULPS = 16

_AXES_PARAM = {1: ("entry",), 2: ("row", "column")}


@dataclass
class CrossCheckRow:
    """One compared quantity: ``comparison`` (from :func:`jacobian_nn.fd.compare`) plus the
    names of its axes, so that ``location`` reads as ``sample=3, row=1, column=0``."""

    quantity: str
    comparison: Comparison
    axes: tuple

    @property
    def where(self) -> dict:
        return {a: int(i) for a, i in zip(self.axes, self.comparison.location)}

    @property
    def passed(self) -> bool:
        return self.comparison.passed

    def as_dict(self) -> dict:
        c = self.comparison
        return {
            "quantity": self.quantity,
            "max_abs": c.max_abs,
            "max_rel": c.max_rel,
            "location": self.where,
            "tolerance": c.tolerance,
            "passed": c.passed,
        }


@dataclass
class CrossCheckReport:
    """Result of :func:`cross_check`: one :class:`CrossCheckRow` per quantity."""

    dtype: str
    n_samples: int
    ulps: float
    rows: list = field(default_factory=list)
    skipped: list = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.rows)

    def __getitem__(self, quantity: str) -> CrossCheckRow:
        for r in self.rows:
            if r.quantity == quantity:
                return r
        raise KeyError(f"quantity: no row named {quantity!r}; have {[r.quantity for r in self.rows]}")

    def failures(self) -> list:
        return [r for r in self.rows if not r.passed]

    def as_dict(self) -> dict:
        return {
            "passed": self.passed,
            "dtype": self.dtype,
            "n_samples": self.n_samples,
            "ulps": self.ulps,
            "rtol": self.ulps * eps_of(self.dtype),
            "rows": [r.as_dict() for r in self.rows],
            "skipped": list(self.skipped),
        }

    def __str__(self) -> str:
        head = f"{'quantity':<40} {'max abs':>10} {'max rel':>10} {'tol':>9}  {'where':<30} result"
        lines = [
            f"cross-check batched vs reference: dtype {self.dtype}, N = {self.n_samples}, "
            f"rtol = {self.ulps:g} eps = {self.ulps * eps_of(self.dtype):.1e}",
            head,
            "-" * len(head),
        ]
        for r in self.rows:
            c = r.comparison
            where = ", ".join(f"{k}={v}" for k, v in r.where.items()) or "-"
            lines.append(
                f"{r.quantity:<40} {c.max_abs:10.2e} {c.max_rel:10.2e} {c.tolerance:9.1e}  "
                f"{where:<30} {'pass' if c.passed else 'FAIL'}"
            )
        lines.append("-" * len(head))
        n_fail = len(self.failures())
        lines.append(
            f"{len(self.rows) - n_fail} passed, {n_fail} failed"
            + (f", {len(self.skipped)} skipped" if self.skipped else "")
        )
        lines.extend(f"  skipped: {s}" for s in self.skipped)
        return "\n".join(lines)


def _dense(J):
    """``J`` as an ndarray (``.toarray()`` of a ``scipy.sparse`` array)."""
    return J.toarray() if hasattr(J, "toarray") else J


def _float64_copy(net):
    """A deep copy of ``net`` computing in float64 (``Network.astype``): parameters and state
    (running statistics) upcast exactly, layers without parameters (dropout, activation
    layers) switched to float64, dropout Generators and fixed masks copied as they are."""
    return net.astype(np.float64)


def batchnorm_gains(net, X) -> list:
    """Per layer ``i``, the factor ``gain_i`` of its gradients' tolerance (module docstring):
    ``prod_{b > i} max(1, kappa_b)`` over the training-mode batch-norm layers ``b`` after it,
    ``kappa_b = max_j |gamma_j| / sigma_j`` with the batch's ``sigma`` at ``b`` (the third entry
    of batch norm's batched context, ``(mode, x_hat, sigma)``; spatial batch norm shares it).
    Runs one training-mode batched forward: call it where the running statistics are frozen and
    the dropout masks fixed (:func:`~jacobian_nn.normalization.same_randomness`)."""
    from .normalization import BatchNorm

    kappas = [1.0] * len(net.layers)
    if any(isinstance(getattr(layer, "bn", layer), BatchNorm) for layer in net.layers):
        _, ctxs = batched.forward_batched(net, X, "train")
        for i, layer in enumerate(net.layers):
            bn = getattr(layer, "bn", layer)
            if isinstance(bn, BatchNorm):
                sigma = np.asarray(ctxs[i][2], dtype=np.float64)
                kappas[i] = max(1.0, float(np.max(np.abs(bn.gamma.astype(np.float64)) / sigma)))
    gains, g = [1.0] * len(net.layers), 1.0
    for i in range(len(net.layers) - 1, -1, -1):
        gains[i] = g
        g *= kappas[i]
    return gains


def _upcast(a):
    arr = np.asarray(a)
    return arr.astype(np.float64) if arr.dtype == np.float32 else arr


def cross_check(
    net, X, Y, *, ulps: float = CROSSCHECK_ULPS, jacobians: bool = True, per_sample: bool = True
) -> CrossCheckReport:
    """Compare the batched path with the stacked per-sample reference on one batch.

    Parameters
    ----------
    net : a :class:`~jacobian_nn.network.Network` (float64 or float32).
    X : ``(N, n_in)`` batch in the network's dtype. Y : labels, ``(N, n_out)`` or integer ``(N,)``.
    ulps : tolerance multiplier in units of ``eps(net.dtype)`` (module docstring).
    jacobians, per_sample : include the batched Jacobians / per-sample quantities.

    Returns a :class:`CrossCheckReport`; ``report.passed`` is True when every quantity
    is within tolerance. Neither ``net`` nor the inputs are modified: parameters, running
    statistics and the dropout layers' Generator states are as they were, on success and on error.
    """
    # Batch norm and dropout: both paths see the same dropout masks (drawn once here) and
    # training-mode forwards leave the running statistics alone (jacobian_nn.normalization).
    from .normalization import same_randomness

    # The masks are drawn from the layers' own Generators: their states are put back afterwards
    # (also on an error), so the network is left exactly as it was found, Generators included.
    N = net.input_batch(X).shape[0]  # X checked before any mask is drawn (its message names X)
    saved = generator_states(net)
    try:
        with same_randomness(net, N):
            return _cross_check(net, X, Y, ulps=ulps, jacobians=jacobians, per_sample=per_sample)
    finally:
        for rng, state in saved:
            rng.bit_generator.state = state


def _cross_check(net, X, Y, *, ulps, jacobians, per_sample) -> CrossCheckReport:
    dtype = np.dtype(net.dtype)
    rtol = float(ulps) * eps_of(dtype)
    # Batched side first: it validates X and Y (dtype, shape, finiteness) with its own messages.
    out_b = batched.predict_batched(net, X)
    loss_b, grads_b = batched.loss_and_gradients_batched(net, X, Y)
    N = out_b.shape[0]
    report = CrossCheckReport(dtype=dtype.name, n_samples=N, ulps=float(ulps))

    ref = net if dtype == np.float64 else _float64_copy(net)
    X64 = _upcast(net.input_batch(X))  # images (N, C, H, W) flattened, as both drivers see them
    Y64 = net.loss.labels_batched(_upcast(Y), N, net.n_out)  # float64 labels for the reference
    cols, ycols = columns(X64), columns(Y64)

    def add(quantity, b, r, axes, floor=0.0, gain=1.0):
        r = np.asarray(r, dtype=np.float64)
        scale = max(float(np.max(np.abs(r))) if r.size else 0.0, floor)
        atol = (rtol + BATCHNORM_ULPS * eps_of(dtype) * (gain - 1.0)) * (scale if scale > 0 else 1.0)
        c = compare(quantity, b, r, atol=atol, rtol=rtol)
        report.rows.append(CrossCheckRow(quantity, c, tuple(axes)))

    # -- forward
    add("outputs (N, m)", out_b, ref.predict(X64), ("sample", "column"))
    loss_r, grads_r = ref.loss_and_gradients(X64, Y64)
    add("loss (mean + penalty)", np.float64(loss_b), np.float64(loss_r), ())
    if per_sample:
        ref_outs = ref.predict(X64)
        losses_r = np.array([ref.loss.forward(o, y) for o, y in zip(columns(ref_outs), ycols)])
        add("per-sample losses (N,)", batched.per_sample_losses_batched(net, X, Y, mode="test"), losses_r, ("sample",))

    # -- mean gradients
    grad_scale = max((float(np.max(np.abs(v))) for g in grads_r for v in g.values() if np.size(v)), default=0.0)
    gains = batchnorm_gains(net, X)
    for i, (gb, gr) in enumerate(zip(grads_b, grads_r)):
        for name in gb:
            add(
                f"grad layer {i} {name} {tuple(gb[name].shape)}",
                gb[name],
                gr[name],
                _AXES_PARAM.get(gb[name].ndim, ()),
                floor=grad_scale,
                gain=gains[i],
            )

    # -- per-sample gradients
    if per_sample:
        missing = [i for i, layer in enumerate(net.layers) if layer.per_sample_refusal("test") is not None]
        if missing:
            report.skipped.append(f"per-sample gradients: layers {missing} have no per-sample gradients")
        else:  # test mode, as the reference's per-sample backward
            ps_b = batched.per_sample_gradients_batched(net, X, Y, mode="test")
            ps_r = [ref.backward(cols[k], ycols[k], "test")[1] for k in range(N)]
            for i, g in enumerate(ps_b):
                for name in g:
                    stacked = np.stack([ps_r[k][i][name] for k in range(N)])
                    axes = ("sample",) + _AXES_PARAM.get(stacked.ndim - 1, ())
                    add(f"per-sample grad layer {i} {name} {tuple(g[name].shape)}", g[name], stacked, axes)
            grads_test = batched.loss_and_gradients_batched(net, X, Y, mode="test")[1]
            for i, g in enumerate(ps_b):
                for name in g:
                    add(
                        f"mean per-sample == grad, layer {i} {name}",
                        g[name].mean(axis=0, dtype=np.float64),
                        grads_test[i][name],
                        _AXES_PARAM.get(g[name].ndim - 1, ()),
                        floor=max(float(np.max(np.abs(ps_r[k][i][name]))) for k in range(N)),
                    )

    # -- batched Jacobians
    if jacobians:
        missing = [i for i, layer in enumerate(net.layers) if not layer.batched_jacobians]
        if missing:
            report.skipped.append(f"batched Jacobians: layers {missing} have no batched Jacobians")
        else:
            A = net.input_batch(X)  # images (N, C, H, W) flattened
            for i, (layer, Jb) in enumerate(zip(net.layers, batched.activation_jacobians_batched(net, X))):
                if not isinstance(layer, Dense):  # only a dense layer has an activation J_f(Z)
                    A = layer.forward_batched(A, "test")[0]
                    continue
                Z64 = A.astype(np.float64) @ ref.layers[i].W + ref.layers[i].b
                Jr = np.stack([ref.layers[i].activation.jacobian(z) for z in columns(Z64)])
                add(f"layer {i} {layer.activation.name} J_f(Z) (N, m, m)", Jb, Jr, ("sample", "row", "column"))
                A = layer.forward_batched(A, "test")[0]
            # image layers return scipy.sparse Jacobians; a product of only those stays sparse
            Jr = np.stack([_dense(ref.input_jacobian(c)) for c in cols])
            add(
                "network dy/dx (N, m_out, n_in)",
                batched.input_jacobian_batched(net, X),
                Jr,
                ("sample", "row", "column"),
            )
    return report
