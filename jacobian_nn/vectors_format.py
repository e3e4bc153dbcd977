"""The conformance suite's format: its layouts and array kinds, the :class:`Case` and :class:`Arr` records
every case builder fills, and the tolerance rule (see :mod:`jacobian_nn.vectors` for the whole suite).
The case builders (:mod:`jacobian_nn.vectors`, :mod:`jacobian_nn.vectors_catalogue`) and the writer sit
above this module; it imports none of them."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ._validation import eps_of, is_real

FORMAT = "jacobian-nn-conformance/1"
LAYOUTS = ("rows", "columns")
ROLES = ("input", "parameter", "cotangent", "expected")
KINDS = (
    "batch",
    "weight",
    "vector",
    "scalar",
    "samples",
    "per_sample_weight",
    "per_sample_vector",
    "per_sample_jacobian",
    "jacobian",
    "image_batch",
    "conv_weight",
    "channel_vector",
    "per_sample_conv_weight",
    "per_sample_channel_vector",
)

#: How each kind of array is written in each layout (the manifest repeats this for every array).
KIND_LAYOUT = {
    "batch": {
        "rows": "(N, n): row k is sample k (CS231n)",
        "columns": "(n, N): column k is sample k (deeplearning.ai)",
    },
    "weight": {"rows": "(n_in, n_out): Z = X W + b", "columns": "(n_out, n_in): Z = W X + b"},
    "vector": {"rows": "(m,): one entry per feature", "columns": "(m, 1): a column"},
    "scalar": {"rows": "(): a single number", "columns": "(): a single number"},
    "samples": {"rows": "(N,): one entry per sample", "columns": "(N,): one entry per sample"},
    "per_sample_weight": {
        "rows": "(N, n_in, n_out): slice k is sample k's gradient",
        "columns": "(N, n_out, n_in): slice k is sample k's gradient",
    },
    "per_sample_vector": {
        "rows": "(N, m): row k is sample k's gradient",
        "columns": "(N, m, 1): slice k is sample k's gradient",
    },
    "per_sample_jacobian": {
        "rows": "(N, m, n): slice k is dy_k/dx_k in numerator layout",
        "columns": "(N, m, n): slice k is dy_k/dx_k in numerator layout",
    },
    "jacobian": {
        "rows": "(M, K): J[i, j] = d out.flat[i] / d in.flat[j], C order as written",
        "columns": "(M, K): J[i, j] = d out.flat[i] / d in.flat[j], C order as written",
    },
    "image_batch": {
        "rows": "(N, C, H, W): NCHW, image k is [k] (CS231n)",
        "columns": "(N, H, W, C): NHWC, image k is [k] (the deeplearning.ai course's (m, n_H, n_W, n_C))",
    },
    "conv_weight": {
        "rows": "(F, C, FH, FW): filter f is W[f] (CS231n)",
        "columns": "(FH, FW, C, F): filter f is W[..., f] (the deeplearning.ai course's (f, f, n_C_prev, n_C))",
    },
    "channel_vector": {
        "rows": "(C,): one entry per channel",
        "columns": "(1, 1, 1, C): one entry per channel (the deeplearning.ai course's conv b)",
    },
    "per_sample_conv_weight": {
        "rows": "(N, F, C, FH, FW): slice k is sample k's gradient",
        "columns": "(N, FH, FW, C, F): slice k is sample k's gradient",
    },
    "per_sample_channel_vector": {
        "rows": "(N, C): row k is sample k's gradient",
        "columns": "(N, 1, 1, 1, C): slice k is sample k's gradient",
    },
}

#: ``columns``: the axes of a ``rows`` array in the order written (``A.transpose(axes)``).
_AXES = {
    "batch": (1, 0),
    "weight": (1, 0),
    "per_sample_weight": (0, 2, 1),
    "image_batch": (0, 2, 3, 1),
    "conv_weight": (2, 3, 1, 0),
    "per_sample_conv_weight": (0, 3, 4, 2, 1),
}
#: ``columns``: the shape a ``rows`` array of these kinds is reshaped to (``-1`` its entries).
_RESHAPE = {
    "vector": lambda s: (s[0], 1),
    "per_sample_vector": lambda s: (s[0], s[1], 1),
    "channel_vector": lambda s: (1, 1, 1, s[0]),
    "per_sample_channel_vector": lambda s: (s[0], 1, 1, 1, s[1]),
}


def to_layout(A: np.ndarray, kind: str, layout: str) -> np.ndarray:
    """An array of ``kind`` in the ``rows`` layout, written in ``layout`` (a view where it can be).

    ``columns`` reorders axes (``_AXES``: a batch or a weight transposed, images NCHW -> NHWC, a
    filter bank ``(F, C, FH, FW)`` -> ``(FH, FW, C, F)``) or reshapes a vector (``_RESHAPE``); a
    scalar, per-sample values and a per-sample Jacobian are written as they are (the Jacobians are
    re-indexed by :func:`flat_permutation`, not here)."""
    if layout == "rows" or kind in ("scalar", "samples", "per_sample_jacobian"):
        return A
    if kind in _AXES:
        return A.transpose(_AXES[kind])
    if kind in _RESHAPE:
        return A.reshape(_RESHAPE[kind](A.shape))
    raise ValueError(f"kind: no layout rule for {kind!r}")


def flat_permutation(kind: str, shape: tuple, layout: str) -> np.ndarray:
    """``perm`` with ``to_layout(A).flat[i] == A.flat[perm[i]]``."""
    idx = np.arange(int(np.prod(shape, dtype=int))).reshape(shape)
    return np.ascontiguousarray(to_layout(idx, kind, layout)).reshape(-1)


# --------------------------------------------------------------------------- cases


@dataclass
class Arr:
    """One array of a case, in the ``rows`` layout. ``of = (out, in)`` for a Jacobian (and for a
    per-sample Jacobian whose samples are images, so that each slice is re-indexed in the order written);
    ``right`` (kink cases): the values the other branch at the kinks gives, for the diagnosis; ``scale``: the
    size of the terms an exactly-zero array sums (its rounding is measured against it, the manifest's
    ``tolerance_scale``), where ``max|expected|`` is 0."""

    role: str
    kind: str
    value: np.ndarray
    of: tuple | None = None
    batch_mean: int | None = None
    labels: str | None = None
    right: np.ndarray | None = None
    scale: float | None = None


@dataclass
class CaseId:
    """What names a case: ``<name>`` is ``<component or variant>-<point>-<dtype>``; a compared case
    (:class:`jacobian_nn.vectors_compare.CaseResult`) keeps the same four."""

    name: str
    component: str
    point: str
    dtype: str


@dataclass
class Case(CaseId):
    conventions: str
    arrays: dict = field(default_factory=dict)
    condition: float = 1.0  # centring_condition of a training-mode normalisation; 1 otherwise


#: The worst error of a sound implementation against the suite, in units of ``condition * eps(dtype) *
#: max|expected|`` of the array, over every expected array of every case of that dtype. Measured by
#: ``tests/test_vectors_tolerance.py`` (plain numpy and sequential-loop implementations of every
#: component computing in the case dtype throughout, VJPs as ``vec(G) @ J`` in both layouts, the
#: library's reference path); that test fails if a measurement exceeds these figures.
MEASURED = {"float64": 3.27, "float32": 3.31}
#: The margin of the rule over the worst measurement.
MARGIN = 4.0
#: ``noise = SUITE_EPS_FACTOR * condition * eps(dtype)``: the smallest integer at least ``MARGIN`` times the
#: worst of :data:`MEASURED` (14: 3.1e-15 of the largest ``|expected|`` in float64, 1.7e-6 in float32).
SUITE_EPS_FACTOR = math.ceil(MARGIN * max(MEASURED.values()))


def centring_condition(X: np.ndarray, axis, eps: float) -> float:
    """``1 + max over groups of |mean| / sqrt(var + eps)``: how much the rounding of ``X - mean`` (about
    ``eps(dtype) |X|`` per entry) grows once divided by ``sqrt(var + eps)``, for a normalisation of the groups
    that ``axis`` reduces over (batch norm: axis 0, layer norm: axis 1, spatial batch norm: ``(0, 2, 3)``).
    About 1 to 3 for centred random data; 3.2e5 for values 1000 +- 1e-4, where two sound orders of the mean
    differ in the sixth significant digit of ``x_hat``."""
    X = np.asarray(X, dtype=np.float64)
    mu = X.mean(axis=axis, keepdims=True)
    var = ((X - mu) ** 2).mean(axis=axis, keepdims=True)
    return float(1.0 + np.max(np.abs(mu) / np.sqrt(var + eps)))


def tolerance(dtype, condition: float = 1.0) -> dict:
    """The tolerance of a case of ``dtype`` (``condition``: the case's :func:`centring_condition`, 1 for a
    case without a training-mode normalisation), with how it is derived.

    Every entry of an expected array ``E`` is held to ``|result - expected| <= noise * max|E|``, with
    ``noise = SUITE_EPS_FACTOR * condition * eps(dtype)``; ``atol = rtol = 0``: a term relative to the entry
    itself would only loosen it (``|expected| <= max|E|``), and sound implementations land up to
    ``MEASURED`` units of ``eps * max|E|`` away from entries of any size (``1 - tanh(50)^2`` is 0, not
    4e-43)."""
    dt = np.dtype(dtype)
    if not (is_real(condition) and math.isfinite(condition) and condition >= 1.0):
        raise ValueError(f"condition: expected a finite number >= 1, got {condition!r}")
    eps = eps_of(dt)
    noise = SUITE_EPS_FACTOR * condition * eps
    return {
        "atol": 0.0,
        "rtol": 0.0,
        "noise": noise,
        "condition": condition,
        "dtype": dt.name,
        "rule": "|result - expected| <= noise * max|expected| for every entry, max over the whole expected array "
        "or the array's tolerance_scale where it states one (an exactly-zero sum: the size of its terms); "
        "atol = rtol = 0; noise = "
        f"{SUITE_EPS_FACTOR}*condition*eps({dt.name}), condition = 1 + max over the normalised groups of "
        "|mean| / sqrt(var + eps) for a training-mode normalisation (batch norm, spatial batch norm, layer "
        "norm), else 1",
        "derived": f"measured: sound implementations written independently of the library (plain numpy and "
        f"sequential loops computing in {dt.name} throughout, VJPs as vec(G) @ J in both layouts, the library's "
        f"reference path) land at most {MEASURED[dt.name]:g}*condition*eps({dt.name})*max|expected| from the "
        f"expected arrays; noise = {SUITE_EPS_FACTOR} = ceil({MARGIN:g} x {max(MEASURED.values()):g}), the "
        f"worst of both dtypes with a margin of {MARGIN:g}: {noise:.3g} of the largest |expected| here",
    }


KINK_RULE = (
    "at a kink the derivative takes the z <= 0 branch: relu'(0) = 0, leaky_relu'(0) = alpha, elu'(0) = "
    "alpha, step'(0) = 0"
)


def _blockdiag(blocks) -> np.ndarray:
    """Per-sample Jacobians ``(m_k, n_k)`` -> the full Jacobian of the batch (row-major vec)."""
    N = len(blocks)
    m, n = blocks[0].shape
    full = np.zeros((N, m, N, n), dtype=blocks[0].dtype)
    for k, B in enumerate(blocks):
        full[k, :, k, :] = B
    return full.reshape(N * m, N * n)


def _rng(*key) -> np.random.Generator:
    return np.random.default_rng([20240617, *key])


def batchnorm_arrays(mode, X, bn, G, Y, dX, grads, J, batch: str, vector: str) -> dict:
    """The arrays of a batch-norm case, in this order: ``X``, ``gamma``, ``beta``, ``eps``, in test mode
    ``running_mean`` and ``running_var`` (from ``bn``, a :class:`BatchNorm`), ``G``, ``Y``, ``dX``, ``dgamma``,
    ``dbeta`` and ``J_X`` (of ``Y`` w.r.t. ``X``). ``batch`` and ``vector`` are the kinds of the batch-shaped
    arrays and of the per-feature ones (``image_batch`` and ``channel_vector`` for spatial batch norm)."""
    arrays = {
        "X": Arr("input", batch, X),
        "gamma": Arr("parameter", vector, bn.gamma.copy()),
        "beta": Arr("parameter", vector, bn.beta.copy()),
        "eps": Arr("parameter", "scalar", np.asarray(bn.eps)),
    }
    if mode == "test":
        arrays["running_mean"] = Arr("parameter", vector, bn.running_mean.copy())
        arrays["running_var"] = Arr("parameter", vector, bn.running_var.copy())
    arrays.update(
        G=Arr("cotangent", batch, G),
        Y=Arr("expected", batch, Y),
        dX=Arr("expected", batch, dX),
        dgamma=Arr("expected", vector, grads["gamma"]),
        dbeta=Arr("expected", vector, grads["beta"]),
        J_X=Arr("expected", "jacobian", J, of=("Y", "X")),
    )
    return arrays
