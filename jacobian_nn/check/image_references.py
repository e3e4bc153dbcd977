"""References for image layers: ``conv2d``, ``maxpool2d``, ``avgpool2d`` and ``spatial_batchnorm``.

Each takes the input as images, ``x`` ``(C, H, W)`` (one image) or ``(N, C, H, W)`` (a batch, NCHW as in
CS231n), and returns the library's forward and its explicit Jacobian, the reference path's
``scipy.sparse`` Jacobian of each image made dense and placed on the block diagonal ``(N*m, N*n)``
(spatial batch norm in training mode couples the images: its full batch Jacobian). Keyword arguments
(``reference_kwargs``), with CS231n's names accepted so that the dict given to ``from_cs231n`` can be
passed again:

``conv2d``             ``W`` (or ``w``) ``(F, C, FH, FW)``, ``b`` ``(F,)``, ``stride`` (1), ``pad`` (0), or
                       ``conv_param={'stride': S, 'pad': P}``
``maxpool2d``,         ``pool_size`` (an int or ``(PH, PW)``; or ``pool_height`` and ``pool_width``),
``avgpool2d``          ``stride`` (default ``PH``), or ``pool_param={'pool_height', 'pool_width', 'stride'}``
``spatial_batchnorm``  ``gamma``, ``beta`` ``(C,)``, ``eps`` (1e-5), ``mode`` (``'train'``), and for
                       ``mode='test'`` ``running_mean``, ``running_var`` ``(C,)``; or
                       ``bn_param={'mode', 'eps', 'running_mean', 'running_var', 'momentum'}``

A keyword that is unknown, missing, given twice (directly and in the CS231n dict) or that does not fit
the input (a channel count, a stride that does not divide) is a ``ValueError`` naming it, raised before
the checked code is called. Max pooling at a tie: the library routes the gradient to the window's first
maximal element in C order; a tie is a kink, and a claim whose entries lie between the one-sided
derivatives (0 and 1 for each tied element) and add up to 1 over the tied elements of each window (the
first, the last, or shared out) is reported as ``kink``, not as a bug; one that passes the gradient to
every tied element (a sum of 2 or more), or to none, fails the reference witness (:func:`tie_sums`).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .._validation import is_integer, is_real

IMAGE_REFERENCES = ("conv2d", "maxpool2d", "avgpool2d", "spatial_batchnorm")

_DICTS = {
    "conv2d": ("conv_param", ("stride", "pad")),
    "maxpool2d": ("pool_param", ("pool_height", "pool_width", "stride")),
    "avgpool2d": ("pool_param", ("pool_height", "pool_width", "stride")),
    "spatial_batchnorm": ("bn_param", ("mode", "eps", "momentum", "running_mean", "running_var")),
}
_DIRECT = {
    "conv2d": ("W", "w", "b", "stride", "pad"),
    "maxpool2d": ("pool_size", "pool_height", "pool_width", "stride"),
    "avgpool2d": ("pool_size", "pool_height", "pool_width", "stride"),
    "spatial_batchnorm": ("gamma", "beta", "eps", "mode", "running_mean", "running_var"),
}


def _err(key, text):
    return ValueError(f"reference={key!r}: {text}")


def _images(x, key, batched):
    """``x`` -> ``(N, C, H, W)`` float64 (a single image is a batch of one), else ``ValueError``."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 4 or (x.ndim == 3 and not batched):
        return x.reshape((-1,) + x.shape[-3:])
    want = "(N, C, H, W)" if batched else "(C, H, W) or (N, C, H, W)"
    raise _err(key, f"expected images of shape {want} (NCHW), got shape {x.shape}")


def _options(key, kw) -> dict:
    """The keyword arguments with the CS231n dict merged in; unknown or doubly given names refused."""
    if kw is None:
        kw = {}
    if not isinstance(kw, dict):
        raise _err(key, f"reference_kwargs: expected a dict, got {type(kw).__name__}")
    dname, dkeys = _DICTS[key]
    allowed = _DIRECT[key] + (dname,)
    unknown = sorted(set(kw) - set(allowed))
    if unknown:
        raise _err(key, f"unknown keyword argument(s) {unknown}; expected some of {list(allowed)}")
    opts = {k: v for k, v in kw.items() if k != dname}
    if dname in kw:
        d = kw[dname]
        if not isinstance(d, dict):
            raise _err(key, f"{dname}: expected a dict with some of {list(dkeys)}, got {type(d).__name__}")
        bad = sorted(set(d) - set(dkeys))
        if bad:
            raise _err(key, f"{dname}: unknown key(s) {bad}; expected some of {list(dkeys)}")
        twice = sorted(set(d) & set(opts))
        if twice:
            raise _err(key, f"{twice} given both directly and in {dname}; give each once")
        opts.update(d)
    if "w" in opts:
        if "W" in opts:
            raise _err(key, "give the weights once, as W or as w (CS231n's name), not both")
        opts["W"] = opts.pop("w")
    return opts


def _int(key, name, value, minimum):
    if not is_integer(value) or value < minimum:
        raise _err(key, f"{name}: expected an integer >= {minimum}, got {value!r}")
    return int(value)


def _array(key, name, value, shape=None):
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise _err(key, f"{name}: expected a float array, got {type(value).__name__}") from None
    if shape is not None and arr.shape != shape:
        raise _err(key, f"{name}: expected shape {shape}, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise _err(key, f"{name}: expected finite values")
    return arr


def build_layer(key, x, kw, batched):
    """``(layer, images (N, C, H, W), mode)``: the library layer for the reference, every keyword checked."""
    from ..conv import AvgPool2D, Conv2D, MaxPool2D, SpatialBatchNorm

    X4 = _images(x, key, batched)
    shape = X4.shape[1:]
    opts = _options(key, kw)
    mode = "test"
    try:
        if key == "conv2d":
            missing = sorted({"W", "b"} - set(opts))
            if missing:
                raise _err(key, f"expected keyword arguments W (or w) and b, missing {missing}")
            W = _array(key, "W", opts["W"])
            if W.ndim != 4:
                raise _err(key, f"W: expected shape (F, C, FH, FW), got {W.shape}")
            if W.shape[1] != shape[0]:
                raise _err(key, f"W: expected {shape[0]} input channels (x has shape {x.shape}), got W {W.shape}")
            b = _array(key, "b", opts["b"], (W.shape[0],))
            layer = Conv2D.from_params(
                W,
                b,
                shape,
                stride=_int(key, "stride", opts.get("stride", 1), 1),
                pad=_int(key, "pad", opts.get("pad", 0), 0),
            )
        elif key in ("maxpool2d", "avgpool2d"):
            if "pool_size" in opts and ({"pool_height", "pool_width"} & set(opts)):
                raise _err(key, "give the window once, as pool_size or as pool_height and pool_width")
            if "pool_size" in opts:
                ps = opts["pool_size"]
                ph, pw = (
                    (ps, ps)
                    if isinstance(ps, (int, np.integer))
                    else tuple(ps)
                    if isinstance(ps, (tuple, list)) and len(ps) == 2
                    else (None, None)
                )
                if ph is None:
                    raise _err(key, f"pool_size: expected an int or (PH, PW), got {ps!r}")
                ph, pw = _int(key, "pool_size", ph, 1), _int(key, "pool_size", pw, 1)
            else:
                missing = sorted({"pool_height", "pool_width"} - set(opts))
                if missing:
                    raise _err(key, f"expected pool_size, or pool_height and pool_width, missing {missing}")
                ph = _int(key, "pool_height", opts["pool_height"], 1)
                pw = _int(key, "pool_width", opts["pool_width"], 1)
            stride = _int(key, "stride", opts.get("stride", ph), 1)
            cls = MaxPool2D if key == "maxpool2d" else AvgPool2D
            layer = cls(shape, (ph, pw), stride=stride)
        else:
            C = shape[0]
            missing = sorted({"gamma", "beta"} - set(opts))
            if missing:
                raise _err(key, f"expected keyword arguments gamma and beta, missing {missing}")
            mode = opts.get("mode", "train")
            if mode not in ("train", "test"):
                raise _err(key, f"mode: expected 'train' or 'test', got {mode!r}")
            gamma, beta = _array(key, "gamma", opts["gamma"], (C,)), _array(key, "beta", opts["beta"], (C,))
            eps = opts.get("eps", 1e-5)
            if not is_real(eps) or not eps > 0:
                raise _err(key, f"eps: expected a number > 0, got {eps!r}")
            running = {}
            if mode == "test":
                missing = sorted({"running_mean", "running_var"} - set(opts))
                if missing:
                    raise _err(key, f"mode='test' needs running_mean and running_var, missing {missing}")
                running = {k: _array(key, k, opts[k], (C,)) for k in ("running_mean", "running_var")}
                if np.any(running["running_var"] + eps <= 0):
                    raise _err(key, "running_var: expected running_var + eps > 0")
            elif X4.shape[0] * shape[1] * shape[2] < 2:
                raise _err(key, "mode='train' normalises over N*H*W values, and x has only one per channel")
            layer = SpatialBatchNorm(shape, eps=float(eps), gamma=gamma, beta=beta, update_running=False)
            for k, v in running.items():
                getattr(layer.bn, k)[...] = v
    except ValueError as exc:
        text = str(exc)
        raise exc if text.startswith("reference=") else _err(key, text) from None
    return layer, X4, mode


def image_reference(key):
    """``run(x, kw) -> (y, J)`` for :data:`REFERENCES` (the same function for one input and for a batch)."""

    def make(batched):
        def run(x, kw):
            layer, X4, mode = build_layer(key, x, kw, batched)
            N = X4.shape[0]
            cols = [row[:, None] for row in X4.reshape(N, -1)]
            if key == "spatial_batchnorm":
                ys, _ = layer.forward_samples(cols, mode)
                Xt = layer._to_channels(X4.reshape(N, -1))
                Jt = layer.bn.jacobian_x_coupled([r[:, None] for r in Xt], mode)  # (pixel, channel) order
                order = np.arange(X4.size).reshape(X4.shape).transpose(0, 2, 3, 1).reshape(-1)
                inv = np.argsort(order)  # NCHW index -> Jt index
                J = Jt[np.ix_(inv, inv)]
            else:
                ys = [layer.forward(c)[0] for c in cols]
                J = sp.block_diag([layer.jacobian_x(c) for c in cols], format="csr").toarray()
            Y = np.hstack(ys).T.reshape((N,) + tuple(layer.output_shape))
            return (Y if np.ndim(x) == 4 else Y[0]), J

        return run

    return make(False), make(True)


def tie_sums(x, kw, batched, A, tol_abs):
    """Max pooling at exact ties: ``(rows, sums)`` of the windows whose claimed gradients over the tied
    maximal elements do not add up to 1, the derivative of the window's maximum along all of them at once.

    Entry by entry each tied element's claim only has to lie between its one-sided derivatives 0 and 1;
    together they must form a convex combination (a subgradient of the maximum): 1 at the first maximum
    (the library), at the last or shared out all pass, 1 at every tied element (a sum of 2 or more) does not.
    ``A`` is the claimed ``(N*C*OH*OW, N*C*H*W)`` Jacobian; ``tol_abs`` the tolerance of a sum."""
    layer, X4, _ = build_layer("maxpool2d", x, kw, batched)
    N = X4.shape[0]
    win = layer._windows  # (C*P, PH*PW) flat indices in one image
    R, n_in = win.shape[0], layer.n_in
    rows = (np.arange(N)[:, None] * R + np.arange(R)[None]).reshape(-1)  # (N*R,)
    cols = (np.arange(N)[:, None, None] * n_in + win[None]).reshape(N * R, -1)  # (N*R, PH*PW)
    v = X4.reshape(-1)[cols]
    tied = v == v.max(axis=1, keepdims=True)
    multi = tied.sum(axis=1) > 1
    sums = np.where(tied, A[rows[:, None], cols], 0.0).sum(axis=1)
    bad = multi & (np.abs(sums - 1.0) > tol_abs)
    return rows[bad], sums[bad]
