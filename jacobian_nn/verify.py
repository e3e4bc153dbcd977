"""``jacobian-nn verify``: every built-in derivative against finite differences.

The report is a list of rows, one per checked quantity, each a
:class:`~jacobian_nn.fd.Comparison` (max abs and relative error, location,
tolerance, pass/fail) tagged with its group. Groups are plain functions that
return rows; :data:`GROUPS` lists them in the order they run, and later
capabilities (the batched cross-check, the proofs summary) add theirs.

Every point and parameter set is drawn from fixed seeds, so a run is
reproducible bit for bit on one machine.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import numpy as np

from .activations import ACTIVATIONS, get_activation
from .fd import Comparison, compare, fd_gradient, fd_jacobian, fd_loss_gradient
from .layers import Dense
from .losses import (
    BinaryCrossEntropy,
    CrossEntropy,
    MeanSquaredError,
    MulticlassSVM,
    SigmoidBinaryCrossEntropy,
    SoftmaxCrossEntropy,
)
from .network import Network
from .verify_paths import batchnorm_rows, crosscheck_rows  # both paths: cross-check; batch norm, dropout vs FD
from .check.gallery import gallery_rows  # the check toolkit on deliberately wrong code

SEED = 20261122


class _ReferenceActivation(Protocol):
    """The reference path every registered activation defines (see :mod:`.activations`):
    ``forward(z)`` and ``jacobian(z)`` for a column ``z`` ``(m, 1)``. The ``Activation`` base
    class does not declare them, so a registered activation is viewed through this protocol."""

    def forward(self, z: np.ndarray, *, check: bool = True) -> np.ndarray: ...

    def jacobian(self, z: np.ndarray, *, check: bool = True) -> np.ndarray: ...


#: Activations whose derivative jumps at 0, checked there with left differences.
KINKED = ("step", "relu", "leaky_relu", "elu")


#: What each group checks, for the summary.
DESCRIPTIONS = {
    "activation": "activation Jacobians (at a kink: left differences)",
    "loss": "loss gradients",
    "dense": "dense layer: dy/dx, dy/db, dy/dvec(W), backward",
    "network": "sample networks: dL/dtheta and dy/dx",
    "batched": "batched path against the per-sample reference",
    "batchnorm": "batch norm, dropout, FullyConnectedNet",
    "images": "conv, pooling, spatial batch norm (sparse Jacobians)",
    "catalogue": "layer norm, Mul/Add nodes, SVM and binary losses",
    "check": "jacobian-nn check on slips and fixes",
    "proofs": "the source tutorials' derivations (proofs/)",
}

#: Row kinds whose ``max_abs`` / ``max_rel`` are errors of a correct computation (a ``slip`` row's numbers
#: measure deliberately wrong code; ``symbolic`` and ``exact`` rows have none).
MEASURED = ("numeric",)


@dataclass
class Row:
    group: str
    comparison: Comparison

    @property
    def status(self) -> str:
        """``"pass"``, ``"FAIL"`` or ``"skip"`` (a skipped check did not run: it never counts as passed)."""
        c = self.comparison
        return "skip" if c.skipped else "pass" if c.passed else "FAIL"

    @property
    def result(self) -> str:
        """The outcome in words: a slip's row reads "caught: transposed (expected)"."""
        c = self.comparison
        if c.kind == "slip" and c.note:
            return c.note if c.passed else f"FAIL: {c.note}"
        return f"{self.status}: {c.note}" if c.note else self.status

    def as_dict(self) -> dict:
        return {"group": self.group, **self.comparison.as_dict(), "status": self.status}


def _err(x) -> str:
    return "-" if x is None else f"{x:.1e}"


@dataclass
class Report:
    """The rows of a run, grouped; ``seconds`` holds each group's wall time."""

    rows: list = field(default_factory=list)
    seconds: dict = field(default_factory=dict)

    def count(self, status: str, rows=None) -> int:
        return sum(r.status == status for r in (self.rows if rows is None else rows))

    @property
    def passed(self) -> bool:
        """No check failed and at least one passed (skipped checks are neither)."""
        return self.count("FAIL") == 0 and self.count("pass") > 0

    def groups(self) -> list[dict]:
        """One summary per group, in the order the groups ran."""
        out = []
        for g in dict.fromkeys(r.group for r in self.rows):
            rows = [r for r in self.rows if r.group == g]
            measured = [r.comparison for r in rows if r.comparison.kind in MEASURED and not r.comparison.skipped]
            slips = [r for r in rows if r.comparison.kind == "slip"]
            what = DESCRIPTIONS.get(g, "")
            if slips:
                what += f"; {sum(r.comparison.passed for r in slips)}/{len(slips)} slips caught"
            out.append(
                {
                    "group": g,
                    "description": what,
                    "checks": len(rows),
                    "passed": self.count("pass", rows),
                    "failed": self.count("FAIL", rows),
                    "skipped": self.count("skip", rows),
                    "max_abs": max((c.max_abs for c in measured), default=None),
                    "max_rel": max((c.max_rel for c in measured), default=None),
                    "seconds": self.seconds.get(g),
                }
            )
        return out

    def as_dict(self) -> dict:
        return {
            "passed": self.passed,
            "counts": {"passed": self.count("pass"), "failed": self.count("FAIL"), "skipped": self.count("skip")},
            "groups": self.groups(),
            "rows": [r.as_dict() for r in self.rows],
        }

    def to_json(self, path) -> None:
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(self.as_dict(), fh, indent=2)

    def format(self, verbose: bool = False) -> str:
        """One line per group, every failure in full, the total; ``verbose``: every row as well."""
        lines = ["jacobian-nn verify: every built-in derivative against an independent witness", ""]
        head = (
            f"{'group':<10} {'checks':>6} {'failed':>6} {'skipped':>7} {'worst error':>11} {'seconds':>7}  "
            "what is checked"
        )
        lines += [head, "-" * len(head)]
        for g in self.groups():
            secs = "" if g["seconds"] is None else f"{g['seconds']:.1f}"
            lines.append(
                f"{g['group']:<10} {g['checks']:>6} {g['failed']:>6} {g['skipped']:>7} "
                f"{_err(g['max_abs']):>11} {secs:>7}  {g['description']}"
            )
        lines.append("-" * len(head))
        lines.append("worst error: the largest absolute error of a correct computation (a slip's size is not one)")
        if verbose:
            lines += ["", self._table()]
        failed = [r for r in self.rows if r.status == "FAIL"]
        if failed:
            lines += ["", f"FAILED ({len(failed)}):"]
            for r in failed:
                c = r.comparison
                lines.append(f"  [{r.group}] {c.name}")
                if c.kind in MEASURED + ("slip",):
                    lines.append(
                        f"      max abs {c.max_abs:.3e}, max rel {c.max_rel:.3e} at {tuple(c.location)}, "
                        f"tolerance there {c.tolerance:.3e}"
                    )
                if c.note:
                    lines.append(f"      {c.note}")
        skipped: dict = {}
        for r in self.rows:
            if r.status == "skip":
                skipped[r.comparison.note] = skipped.get(r.comparison.note, 0) + 1
        if skipped:
            lines.append("")
            lines += [f"{n} checks {why}" for why, n in skipped.items()]
        total = sum(v for v in self.seconds.values())
        n_skip = self.count("skip")
        if self.count("FAIL"):
            verdict = "FAILED"
        elif not self.passed:
            verdict = "FAILED: no check passed"
        else:
            verdict = f"every check that ran passed ({n_skip} skipped)" if n_skip else "all checks passed"
        lines += [
            "",
            verdict
            + f" in {total:.1f} s"
            + ("" if verbose else "; --verbose lists every check, --json FILE writes them all"),
            f"verify: {self.count('pass')} passed, {self.count('FAIL')} failed, {self.count('skip')} skipped",
        ]
        return "\n".join(lines)

    def _table(self) -> str:
        w = max([len(r.comparison.name) for r in self.rows] + [5])
        head = f"{'group':<10} {'check':<{w}} {'max abs':>9} {'max rel':>9} {'tol':>8}  {'where':<12} result"
        lines = [head, "-" * len(head)]
        for r in self.rows:
            c = r.comparison
            if c.kind in MEASURED + ("slip",) and not c.skipped:
                nums = f"{c.max_abs:9.2e} {c.max_rel:9.2e} {c.tolerance:8.1e}  {str(tuple(c.location)):<12}"
            else:
                nums = f"{'':>9} {'':>9} {'':>8}  {'':<12}"
            lines.append(f"{r.group:<10} {c.name:<{w}} {nums} {r.result}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format()


def _away_from_zero(rng, shape, margin=0.1):
    """Uniform in [-2, -margin] U [margin, 2]: at least ``margin`` from every kink at 0."""
    v = rng.uniform(margin, 2.0, size=shape)
    return v * rng.choice([-1.0, 1.0], size=shape)


# --------------------------------------------------------------------------- groups


def activation_rows() -> list[Comparison]:
    rng = np.random.default_rng(SEED)
    out = []
    for name in ACTIVATIONS:
        act = cast(_ReferenceActivation, get_activation(name))
        z = _away_from_zero(rng, (5, 1))
        fd = fd_jacobian(lambda v: act.forward(v[:, None]), z)
        out.append(compare(f"{name}: jacobian(z), random z", act.jacobian(z), fd.df, err=fd.error))
        if name in KINKED:
            zk = np.array([[0.0], [0.0], [-0.7], [0.9]])
            fd = fd_jacobian(lambda v: act.forward(v[:, None]), zk, step_direction=-1)
            out.append(compare(f"{name}: jacobian at z=0 (left branch)", act.jacobian(zk), fd.df, err=fd.error))
    return out


def loss_rows() -> list[Comparison]:
    rng = np.random.default_rng(SEED + 1)
    m = 4
    out = []
    p = rng.dirichlet(np.ones(m))[:, None]
    for label, y in (("one-hot", 2), ("soft", rng.dirichlet(np.ones(m))[:, None])):
        probe = CrossEntropy(check_sum=False)  # FD steps leave the simplex
        fd = fd_gradient(lambda v: probe.forward(v[:, None], y), p, initial_step=1e-3)
        out.append(
            compare(f"cross_entropy: gradient, {label} label", CrossEntropy().gradient(p, y), fd.df, err=fd.error)
        )
    z = rng.normal(size=(m, 1))
    sce = SoftmaxCrossEntropy()
    fd = fd_gradient(lambda v: sce.forward(v[:, None], 1), z)
    out.append(compare("softmax_cross_entropy: gradient", sce.gradient(z, 1), fd.df, err=fd.error))
    mse = MeanSquaredError()
    t = rng.normal(size=(m, 1))
    fd = fd_gradient(lambda v: mse.forward(v[:, None], t), z)
    out.append(compare("mse: gradient", mse.gradient(z, t), fd.df, err=fd.error))
    return out


def dense_rows() -> list[Comparison]:
    rng = np.random.default_rng(SEED + 2)
    out = []
    n, m = 4, 3
    for act in ("sigmoid", "tanh", "elu", "softmax"):
        layer = Dense(n, m, act, init="xavier", seed=rng)
        layer.b[:] = rng.normal(size=m)
        x = rng.normal(size=(n, 1))
        W0, b0 = layer.W.copy(), layer.b.copy()

        def with_W(v, layer=layer, x=x):
            return Dense.from_params(v.reshape(n, m), b0, layer.activation).forward(x)[0]

        def with_b(v, layer=layer, x=x):
            return Dense.from_params(W0, v, layer.activation).forward(x)[0]

        fd = fd_jacobian(lambda v: layer.forward(v[:, None])[0], x)
        out.append(compare(f"dense[{act}]: dy/dx (m, n)", layer.jacobian_x(x), fd.df, err=fd.error))
        fd = fd_jacobian(with_b, b0)
        out.append(compare(f"dense[{act}]: dy/db (m, m)", layer.jacobian_b(x), fd.df, err=fd.error))
        fd = fd_jacobian(with_W, W0)
        out.append(compare(f"dense[{act}]: dy/dvec(W) (m, n*m)", layer.jacobian_W(x), fd.df, err=fd.error))
        # backward: L = u . y for a fixed random row u, so dL/dy = u
        u = rng.normal(size=(1, m))
        y, ctx = layer.forward(x)
        gx, grads = layer.backward(u, ctx)
        fd = fd_gradient(lambda v: (u @ layer.forward(v[:, None])[0]).item(), x)
        out.append(compare(f"dense[{act}]: backward dL/dx (1, n)", gx, fd.df, err=fd.error))
        fd = fd_gradient(lambda v: (u @ with_W(v)).item(), W0)
        out.append(compare(f"dense[{act}]: backward dL/dW (n, m)", grads["W"].reshape(1, -1), fd.df, err=fd.error))
        fd = fd_gradient(lambda v: (u @ with_b(v)).item(), b0)
        out.append(compare(f"dense[{act}]: backward dL/db (m,)", grads["b"][None, :], fd.df, err=fd.error))
    return out


def sample_networks():
    """Small networks covering every loss, every trainable activation and both penalties."""
    return [
        ("3-5-4 tanh, softmax+CE (fused)", Network.build([3, 5, 4], "tanh", seed=1)),
        ("3-5-4 sigmoid, softmax layer + CE", Network.build([3, 5, 4], "sigmoid", loss="cross_entropy", seed=2)),
        ("3-4-4-2 elu, mse, l2=0.1", Network.build([3, 4, 4, 2], "elu", loss="mse", seed=3, l2=0.1)),
        (
            "3-6-3 leaky_relu, l1+l2, bias penalised",
            Network.build([3, 6, 3], "leaky_relu", seed=4, l2=0.05, l1=0.01, regularize_bias=True),
        ),
        ("2-8-3 relu, softmax+CE", Network.build([2, 8, 3], "relu", seed=5)),
    ]


def network_rows() -> list[Comparison]:
    rng = np.random.default_rng(SEED + 3)
    out = []
    for label, net in sample_networks():
        for p in net.params:
            p["b"][:] = rng.normal(scale=0.1, size=p["b"].shape)
        X = rng.normal(size=(4, net.n_in))
        Y = rng.integers(0, net.n_out, size=4)
        loss, grads = net.loss_and_gradients(X, Y)
        fd = fd_loss_gradient(net, X, Y)
        out.append(compare(f"net {label}: dL/dtheta", Network.flatten_gradients(grads)[None, :], fd.df, err=fd.error))
        x = X[:1].T
        fd = fd_jacobian(lambda v, net=net: net.forward(v[:, None]), x)
        out.append(compare(f"net {label}: dy/dx", net.input_jacobian(x), fd.df, err=fd.error))
    return out


def _dense_matrix(J) -> np.ndarray:
    """A Jacobian as a dense array (the image layers return ``scipy.sparse`` ones)."""
    return J.toarray() if hasattr(J, "toarray") else np.asarray(J)


def image_rows() -> list[Comparison]:
    """The image layers' reference Jacobians (sparse) against finite differences, one image each."""
    from .conv import AvgPool2D, Conv2D, MaxPool2D, SpatialBatchNorm

    rng = np.random.default_rng(SEED + 7)
    conv = Conv2D((2, 5, 5), 3, 3, pad=1, activation="tanh", seed=SEED)
    conv.b[:] = rng.normal(size=conv.b.shape)
    sbn = SpatialBatchNorm((2, 3, 3), gamma=rng.uniform(0.5, 2.0, 2), beta=rng.normal(size=2))
    sbn.bn.running_mean[:] = rng.normal(size=2)
    sbn.bn.running_var[:] = rng.uniform(0.5, 2.0, 2)
    layers: list[tuple[str, Any]] = [  # image layers of three classes, each with jacobian_x
        ("conv2d 2x5x5 -> 3x5x5 (3x3, pad 1, tanh)", conv),
        ("conv2d stride 2 (3x3, pad 1)", Conv2D((1, 5, 5), 2, 3, stride=2, pad=1, seed=SEED + 1)),
        ("maxpool2d 2x4x4, 2x2", MaxPool2D((2, 4, 4), 2)),
        ("avgpool2d 2x4x4, 2x2", AvgPool2D((2, 4, 4), 2)),
        ("spatial_batchnorm 2x3x3 (test mode)", sbn),
    ]
    out = []
    for name, layer in layers:
        x = rng.normal(size=(layer.n_in, 1))  # distinct values: no max-pooling tie within a step
        fd = fd_jacobian(lambda v, layer=layer: layer.forward(v[:, None], "test")[0], x)
        out.append(compare(f"{name}: dy/dx (sparse)", _dense_matrix(layer.jacobian_x(x)), fd.df, err=fd.error))
    x = rng.normal(size=(conv.n_in, 1))
    W0 = conv.W.copy()

    def with_W(v):
        return Conv2D.from_params(v.reshape(W0.shape), conv.b, (2, 5, 5), pad=1, activation="tanh").forward(x)[0]

    fd = fd_jacobian(with_W, W0)
    out.append(compare("conv2d: dy/dvec(W) (sparse)", _dense_matrix(conv.jacobian_W(x)), fd.df, err=fd.error))
    return out


def catalogue_rows() -> list[Comparison]:
    """Layer norm's Jacobian, the graph nodes' two Jacobians and the SVM and binary losses' gradients."""
    from .graph import Add, Mul
    from .layernorm import LayerNorm

    rng = np.random.default_rng(SEED + 8)
    out = []
    ln = LayerNorm(5, gamma=rng.uniform(0.5, 2.0, 5), beta=rng.normal(size=5))
    x = rng.normal(size=(5, 1))
    fd = fd_jacobian(lambda v: ln.forward(v[:, None])[0], x)
    out.append(compare("layernorm: dy/dx (m, m)", ln.jacobian_x(x), fd.df, err=fd.error))
    a, b = rng.normal(size=(4, 1)), rng.normal(size=(4, 1))
    for node in (Mul(), Add()):
        fd = fd_jacobian(lambda v, node=node: node.forward(v[:, None], b)[0], a)
        out.append(compare(f"{type(node).__name__.lower()}: d out/dx", node.jacobian_x(a, b), fd.df, err=fd.error))
        fd = fd_jacobian(lambda v, node=node: node.forward(a, v[:, None])[0], b)
        out.append(compare(f"{type(node).__name__.lower()}: d out/dy", node.jacobian_y(a, b), fd.df, err=fd.error))
    s = np.array([[0.3], [1.9], [-0.6], [0.8]])  # margins s_j - s_y + 1 away from 0 (the hinge's kink)
    svm = MulticlassSVM()
    fd = fd_gradient(lambda v: svm.forward(v[:, None], 2), s)
    out.append(compare("svm: gradient (margins off the kink)", svm.gradient(s, 2), fd.df, err=fd.error))
    p, z = np.array([[0.3]]), np.array([[-1.7]])
    for label in (0, 1):
        bce, sbce = BinaryCrossEntropy(), SigmoidBinaryCrossEntropy()
        fd = fd_gradient(lambda v, label=label: bce.forward(v[:, None], label), p, initial_step=1e-3)
        out.append(
            compare(f"binary_cross_entropy: gradient, label {label}", bce.gradient(p, label), fd.df, err=fd.error)
        )
        fd = fd_gradient(lambda v, label=label: sbce.forward(v[:, None], label), z)
        out.append(
            compare(
                f"sigmoid_binary_cross_entropy: gradient, label {label}", sbce.gradient(z, label), fd.df, err=fd.error
            )
        )
    return out


def proof_rows() -> list[Comparison]:
    """Every check in ``proofs/`` (numeric; symbolic when sympy is installed, else counted as skipped)."""
    from ._bundled import bundled

    return bundled("proofs", "_verify").proof_rows()


GROUPS = [
    ("activation", activation_rows),
    ("loss", loss_rows),
    ("dense", dense_rows),
    ("network", network_rows),
    ("batched", crosscheck_rows),
    ("batchnorm", batchnorm_rows),
    ("images", image_rows),
    ("catalogue", catalogue_rows),
    ("check", gallery_rows),
    ("proofs", proof_rows),
]


def run(groups=None) -> Report:
    report = Report()
    for group, fn in groups or GROUPS:
        t0 = time.perf_counter()
        for c in fn():
            report.rows.append(Row(group, c))
        report.seconds[group] = report.seconds.get(group, 0.0) + time.perf_counter() - t0
    return report
