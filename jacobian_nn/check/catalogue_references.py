"""References for layer normalisation and the catalogue losses: ``layernorm``, and, for a CS231n-style loss
``loss, dx = loss_fn(X, y)``, ``softmax_cross_entropy``, ``svm``, ``binary_cross_entropy`` and
``sigmoid_binary_cross_entropy``.

Every reference is the library's **reference path** (one sample at a time):

``layernorm``
    :class:`jacobian_nn.LayerNorm`'s forward and ``jacobian_x`` ``(m, m)`` of each sample (for a batch
    ``X`` ``(N, m)``, the per-sample blocks ``(N, m, m)``; for one input, ``x`` of any shape read as the
    ``m = x.size`` features). Keyword arguments (``reference_kwargs``): ``gamma`` and ``beta``, each of
    shape ``(m,)`` exactly (a ``(1, m)`` or ``(m, 1)`` array is refused, never broadcast), ``eps``
    (default 1e-5) or CS231n's ``ln_param={'eps': ...}`` (a ``'mode'`` key, which layer normalisation
    ignores, is accepted so that a ``bn_param``-style dict can be passed again).
a loss ``NAME``
    ``L = (1/N) sum_k L_k`` and its gradient ``(N, C)``, row k ``= (1/N) dL_k/dx_k``, from the loss's
    one-sample ``loss(x_k, y_k)`` (``x_k`` the column ``(C, 1)``): CS231n's ``svm_loss`` and
    ``softmax_loss`` divide by N the same way. ``svm`` takes ``delta`` (default 1, CS231n's margin);
    at a margin of exactly 0 the library's gradient takes the hinge's ``t <= 0`` branch (CS231n's
    ``margins > 0``): a claim that counts that margin lies between the one-sided derivatives and is a
    kink, reported as a convention, not a bug. The labels are the ``y`` of :func:`.api.check_loss` (or
    of :func:`.api.from_cs231n_loss`): integer classes ``(N,)`` for ``svm`` and
    ``softmax_cross_entropy``; for the binary losses, labels in [0, 1] of ``X``'s shape ``(N, C)`` (or
    ``(N,)`` when ``C == 1``), bools and 0/1 integers included. ``binary_cross_entropy`` takes
    probabilities ``X`` in [0, 1] (a sigmoid output), ``sigmoid_binary_cross_entropy`` logits.

A keyword that is unknown, missing, given twice, of the wrong shape, or labels that the loss refuses, are a
``ValueError`` naming them, raised before the checked code is called. A loss reference needs a loss
problem (:func:`.api.check_loss`, or ``check_batch_vjp`` on :func:`.api.from_cs231n_loss`), and a loss
check takes only a loss reference.
"""

from __future__ import annotations

import numpy as np

from .._validation import is_real

#: The loss references, by the library's loss names (:data:`jacobian_nn.losses.LOSSES`).
LOSS_REFERENCES = ("softmax_cross_entropy", "svm", "binary_cross_entropy", "sigmoid_binary_cross_entropy")
#: The loss references whose labels are binary (one yes/no label per output).
BINARY_LOSS_REFERENCES = ("binary_cross_entropy", "sigmoid_binary_cross_entropy")
#: The layer references of this module.
CATALOGUE_LAYER_REFERENCES = ("layernorm",)

#: How each reference's claimed value at a kink is described when it differs from the library there.
KINK_RULES = {
    "svm": "gives a margin of exactly 0 no gradient (the hinge's t <= 0 branch, CS231n's margins > 0)",
}


def _err(key, text):
    return ValueError(f"reference={key!r}: {text}")


def _array(key, name, value, shape):
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise _err(key, f"{name}: expected a float array, got {type(value).__name__}") from None
    if arr.shape != shape:
        raise _err(key, f"{name}: expected shape {shape} (one entry per feature), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise _err(key, f"{name}: expected finite values")
    return arr


def _eps(key, value):
    if not is_real(value) or not np.isfinite(value) or not value > 0:
        raise _err(key, f"eps: expected a finite number > 0, got {value!r}")
    return float(value)


# --------------------------------------------------------------------------- layer norm


def layernorm_layer(x, kw, batched):
    """``(LayerNorm, X (N, m))`` for the reference, every keyword argument checked."""
    from ..layernorm import LayerNorm

    key = "layernorm"
    x = np.asarray(x, dtype=np.float64)
    if batched:
        if x.ndim != 2:
            raise _err(key, f"expected a batch X of shape (N, m) (features along the rows), got shape {x.shape}")
        X = x
    else:
        X = x.reshape(1, -1)
    m = X.shape[1]
    if kw is None:
        kw = {}
    if not isinstance(kw, dict):
        raise _err(key, f"reference_kwargs: expected a dict, got {type(kw).__name__}")
    allowed = ("gamma", "beta", "eps", "ln_param")
    unknown = sorted(set(kw) - set(allowed))
    if unknown:
        raise _err(key, f"unknown keyword argument(s) {unknown}; expected some of {list(allowed)}")
    missing = sorted({"gamma", "beta"} - set(kw))
    if missing:
        raise _err(key, f"expected keyword arguments gamma and beta (each of shape ({m},)), missing {missing}")
    eps = 1e-5
    if "ln_param" in kw:
        lp = kw["ln_param"]
        if not isinstance(lp, dict):
            raise _err(key, f"ln_param: expected a dict with some of ['eps', 'mode'], got {type(lp).__name__}")
        bad = sorted(set(lp) - {"eps", "mode"})
        if bad:
            raise _err(key, f"ln_param: unknown key(s) {bad}; expected some of ['eps', 'mode']")
        if "eps" in lp and "eps" in kw:
            raise _err(key, "['eps'] given both directly and in ln_param; give each once")
        if lp.get("mode", "train") not in ("train", "test"):
            raise _err(key, f"ln_param: mode: expected 'train' or 'test', got {lp['mode']!r}")
        if "eps" in lp:
            eps = _eps(key, lp["eps"])
    if "eps" in kw:
        eps = _eps(key, kw["eps"])
    gamma = _array(key, "gamma", kw["gamma"], (m,))
    beta = _array(key, "beta", kw["beta"], (m,))
    return LayerNorm(m, eps=eps, gamma=gamma, beta=beta), X


def _layernorm_one(x, kw):
    layer, X = layernorm_layer(x, kw, False)
    col = X.T
    return layer.forward(col)[0], layer.jacobian_x(col)


def _layernorm_many(X, kw):
    """Per-sample blocks ``(N, m, m)`` of the reference path's ``jacobian_x`` (samples never couple)."""
    layer, X = layernorm_layer(X, kw, True)
    cols = [row[:, None] for row in X]
    Y = np.hstack([layer.forward(c)[0] for c in cols]).T
    return Y, np.stack([layer.jacobian_x(c) for c in cols])


# --------------------------------------------------------------------------- losses


def binary_labels_of(key, y, shape):
    """Binary labels for ``X`` ``(N, C)`` as the library reads them (``(N, C)``, or ``(N,)`` when ``C == 1``;
    bools and 0/1 integers converted), else ``ValueError`` naming ``y``."""
    from ..losses import binary_label_matrix

    arr = np.asarray(y)
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"y: expected binary labels (bools, 0/1 or floats in [0, 1]), got dtype {arr.dtype}")
    try:
        return binary_label_matrix(arr, shape[0], shape[1], name="y")
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{exc} (reference={key!r})") from None


def loss_options(key, kw) -> dict:
    """The loss's own keyword arguments (``svm``: ``delta``), unknown ones refused."""
    if kw is None:
        kw = {}
    if not isinstance(kw, dict):
        raise _err(key, f"reference_kwargs: expected a dict, got {type(kw).__name__}")
    allowed = ("delta",) if key == "svm" else ()
    unknown = sorted(set(kw) - set(allowed))
    if unknown:
        raise _err(
            key,
            f"unknown keyword argument(s) {unknown}; expected "
            + (f"some of {list(allowed)}" if allowed else "none")
            + (" (the labels are check_loss's y, or from_cs231n_loss's)" if "y" in unknown else ""),
        )
    return dict(kw)


def _loss_many(key):
    def run(X, kw):
        from ..losses import get_loss

        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2:
            raise _err(key, f"expected scores X of shape (N, C), got shape {X.shape}")
        kw = dict(kw or {})
        if "y" not in kw:
            raise _err(key, "the labels are missing: check a loss with check_loss(loss_fn, X, y, reference=...)")
        y = kw.pop("y")
        opts = loss_options(key, kw)
        try:
            loss = type(get_loss(key))(**opts)
        except (TypeError, ValueError) as exc:
            raise _err(key, str(exc)) from None
        N, C = X.shape
        labels = binary_labels_of(key, y, X.shape) if key in BINARY_LOSS_REFERENCES else np.asarray(y)
        try:
            per = loss.sample_labels(labels, N, C)
            pairs = [loss(X[k][:, None], per[k]) for k in range(N)]
        except (TypeError, ValueError) as exc:
            raise _err(key, f"the library's {key} refuses the scores x or the labels y: {exc}") from None
        value = sum(L for L, _ in pairs) / N
        grad = np.vstack([row for _, row in pairs]) / N
        return np.float64(value), grad

    return run


def _loss_one(key):
    def run(x, kw):
        raise _err(
            key,
            "a loss reference checks a CS231n loss of a batch: use check_loss(loss_fn, X, y, reference=...) "
            "or check_batch_vjp on from_cs231n_loss(loss_fn, y)",
        )

    return run


def catalogue_references() -> dict:
    """The entries of :data:`.witnesses.REFERENCES` from this module."""
    refs = {"layernorm": (_layernorm_one, _layernorm_many)}
    refs.update({key: (_loss_one(key), _loss_many(key)) for key in LOSS_REFERENCES})
    return refs
