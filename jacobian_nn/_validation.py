"""Input checks shared by every public entry point.

Policy (recorded here once, referenced from the README):

* Floating inputs keep their dtype. The reference path computes in float64; the
  batched path computes in the network's dtype (float64 or float32). A float
  array whose dtype differs from the one required is **refused**, never cast
  silently, because a silent float64 -> float32 cast loses bits the user may be
  checking.
* Integer and boolean arrays are **converted on purpose** to the required float
  dtype (labels, toy data such as seed 001's integer table). Integers are exact
  in float64 up to 2**53, which covers every realistic input.
* Complex, object, string and other dtypes are refused with a ``TypeError``.
* NaN and inf are refused with a ``ValueError`` naming the argument.
* Nothing is broadcast: shapes must match exactly.

Every error names the argument, what was expected and what was received.

This module is the bottom of the package: it imports nothing from it, and every other
module takes its input checks (and the two array idioms shared by both paths,
:func:`columns` / :func:`rows_of` and :func:`lend`) from here. Each rule is written once:

* a float dtype: :func:`check_float_dtype` (a requested dtype), :func:`float_dtype_of` (the
  dtype an input keeps);
* a number: :func:`is_integer` / :func:`is_real` (the type tests, a bool is neither),
  :func:`check_positive_int`, :func:`check_positive`, :func:`check_nonnegative`;
* the arithmetic every comparison shares: :func:`eps_of` (machine epsilon of a dtype) and
  :func:`relative_error` (``|a - b| / max(|a|, |b|)`` above a floor).

The tolerances built on these differ on purpose, one per kind of comparison:

* finite differences as a witness: the witness carries a truncation error of order
  ``sqrt(eps)`` and scipy's own error estimate ``err``, so the bound is a multiple of
  ``sqrt(eps)`` plus ``FD_ERR_FACTOR * err``. :func:`jacobian_nn.fd.compare` (the library's
  own float64 derivatives) uses fixed ``FD_ATOL + FD_RTOL |numeric|`` (``FD_RTOL = 1e-7``,
  about ``7 sqrt(eps)``); :class:`jacobian_nn.check.Tolerance` (other people's code, float64
  or float32) derives ``10 sqrt(eps(dtype))`` and measures each entry against its row's and
  column's size;
* two exact formulas of one quantity (:func:`jacobian_nn.cross_check`): they differ only by
  rounding, so the bound is ``ulps * eps(dtype)`` times the quantity's scale (through ``compare``);
* rounding of a sum of ``m`` terms (probabilities summing to 1): ``ulps * m * eps(dtype)``.
"""

from __future__ import annotations

import copy
import math

import numpy as np

FLOAT_DTYPES = (np.dtype(np.float64), np.dtype(np.float32))

#: a forward's mode: ``"train"`` (batch statistics, fresh dropout masks) or ``"test"``
MODES = ("train", "test")


def check_mode(mode) -> str:
    if mode not in MODES:
        raise ValueError(f"mode: expected one of {MODES}, got {mode!r}")
    return mode


def check_float_dtype(dtype, name: str = "dtype") -> np.dtype:
    """``dtype`` as a numpy dtype, float64 or float32, else ``TypeError``."""
    dtype = np.dtype(dtype)
    if dtype not in FLOAT_DTYPES:
        raise TypeError(f"{name}: expected float64 or float32, got {dtype}")
    return dtype


def float_dtype_of(value) -> np.dtype:
    """The dtype an input computes in: its own when it is float64 or float32, else float64
    (integers and bools are converted on purpose; any other dtype, float16 included, is then
    refused by :func:`as_float_array` with a message naming the argument)."""
    dtype = np.asarray(value).dtype
    return dtype if dtype in FLOAT_DTYPES else np.dtype(np.float64)


def is_integer(value) -> bool:
    """``value`` is a Python or numpy integer, and not a bool (``True`` is no count or seed)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def is_real(value) -> bool:
    """``value`` is a Python or numpy integer or float, and not a bool (NaN and inf included:
    finiteness is each caller's rule)."""
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def check_positive_int(value, name: str, minimum: int = 1) -> int:
    """``value`` as an int if it is an integer >= ``minimum`` (default 1; not a bool), else ``ValueError``."""
    if not is_integer(value) or value < minimum:
        what = "a positive integer" if minimum == 1 else f"an integer >= {minimum}"
        raise ValueError(f"{name}: expected {what}, got {value!r}")
    return int(value)


def as_generator(seed) -> np.random.Generator:
    """An explicit ``numpy.random.Generator`` from a Generator, an int seed, or None (fresh entropy)."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or is_integer(seed):
        return np.random.default_rng(seed)
    raise TypeError(f"seed: expected an int, None or a numpy.random.Generator, got {type(seed).__name__}")


def columns(X: np.ndarray) -> list:
    """The rows of a batch ``X`` ``(N, n)`` as N columns ``(n, 1)`` (views): the reference path's samples."""
    return [X[k][:, None] for k in range(X.shape[0])]


def rows_of(G: np.ndarray) -> list:
    """The rows of ``G`` ``(N, m)`` as N row vectors ``(1, m)`` (views)."""
    return [G[k][None, :] for k in range(G.shape[0])]


def lend(out, role: str, shape, dtype):
    """The array the batched driver lends for ``role`` (``out.array(role, shape, dtype)``), or
    None when it lends none: the value to pass as numpy's ``out=`` (``out=None`` allocates)."""
    return None if out is None else out.array(role, shape, dtype)


def all_finite(arr: np.ndarray) -> bool:
    """``np.isfinite(arr).all()`` for a real array, faster on contiguous float arrays.

    The dot product ``v . v`` of the flattened array is not finite whenever an entry is
    not (``inf * inf = inf``, NaN propagates), and it is one BLAS pass with no temporary.
    When it is not finite although every entry is (the sum of squares overflowed), the
    entrywise test decides, so the answer is always exactly ``np.isfinite(arr).all()``.
    ``np.vdot`` is used because it raises no floating-point warning when the sum of squares
    overflows (``np.dot`` and ``@`` do; measured: 0.6 us against 1.2 us for
    ``isfinite().all()`` at 900 entries, 26 us against 33 us at 180 000).
    """
    if arr.dtype.kind == "f" and arr.flags.c_contiguous and math.isfinite(np.vdot(arr, arr)):
        return True
    return bool(np.isfinite(arr).all())


def all_finite_unscaled(v, scale) -> bool:
    """Whether ``v / scale`` is finite everywhere, for ``v`` a result computed times ``scale``
    (``|scale| <= 1``; None: 1): the unscaled result is then finite too (up to rounding).

    Screen: ``sqrt(v . v) <= |scale| max / 2`` bounds every ``|v_i| / |scale|`` by ``max / 2``
    (``max`` the dtype's largest finite value; the factor 1/2 covers the rounding of the dot
    product), one BLAS dot as in :func:`all_finite`; only when it fails
    (NaN or inf in ``v``, entries above the square root of ``max``, or within a factor 2 of the limit)
    is the largest ``|v_i|`` found, divided by ``|scale|`` in float64 and rounded to ``v``'s dtype (as
    ``v / scale`` computed in float64 would be; ``scale`` is never rounded to ``v``'s dtype: in float32,
    ``1e-40`` would be 0), and that quotient decides."""
    if scale is None:
        return all_finite(v)
    if v.flags.c_contiguous:
        ss = float(np.vdot(v, v))
        if math.isfinite(ss) and math.sqrt(ss) <= 0.5 * abs(scale) * float(np.finfo(v.dtype).max):
            return True
    if v.size == 0:
        return True
    largest = np.float64(np.max(np.abs(v)))  # NaN if any entry is NaN
    with np.errstate(over="ignore", invalid="ignore"):
        return bool(np.isfinite((largest / np.float64(abs(scale))).astype(v.dtype)))


def as_float_array(value, name: str, dtype=np.float64) -> np.ndarray:
    """Return ``value`` as an ndarray of ``dtype`` following the module policy.

    Integer and boolean inputs are converted; floating inputs of another
    precision, complex, object and string inputs are refused; NaN and inf are
    refused.
    """
    dtype = check_float_dtype(dtype)
    try:
        arr = np.asarray(value)
    except ValueError as exc:  # a ragged nested list: numpy's message does not say which argument
        raise ValueError(
            f"{name}: expected a rectangular array (every row of one length), got a ragged nested sequence ({exc})"
        ) from None
    kind = arr.dtype.kind
    if kind in "iub":
        arr = arr.astype(dtype)
    elif kind == "f":
        if arr.dtype != dtype:
            raise TypeError(
                f"{name}: expected dtype {dtype}, got {arr.dtype}; cast it explicitly "
                f"(e.g. {name}.astype(np.{dtype.name})) so that no precision is changed silently"
            )
    else:
        raise TypeError(f"{name}: expected a real floating or integer array, got dtype {arr.dtype}")
    if arr.size and not all_finite(arr):
        bad = np.argwhere(~np.isfinite(arr))[0]
        raise ValueError(
            f"{name}: expected finite values, got {arr[tuple(bad)].item()!r} at index {tuple(int(i) for i in bad)}"
        )
    return arr


def as_weight_and_bias(W, b, layout: tuple, bias_axis: int) -> tuple[np.ndarray, np.ndarray]:
    """Copies of a layer's ``W`` (``len(layout)``-D, non-empty; float64 or float32, integers converted to
    float64) and ``b`` of shape ``(W.shape[bias_axis],)`` in ``W``'s dtype; ``layout`` names W's axes
    for the error message, e.g. ``("n", "m")`` or ``("F", "C", "FH", "FW")``."""
    W_arr = np.asarray(W)
    W_arr = as_float_array(W_arr, "W", float_dtype_of(W_arr))
    if W_arr.ndim != len(layout) or 0 in W_arr.shape:
        raise ValueError(
            f"W: expected a non-empty {len(layout)}-D array of shape ({', '.join(layout)}), got shape {W_arr.shape}"
        )
    b_arr = as_float_array(b, "b", W_arr.dtype)
    m = W_arr.shape[bias_axis]
    if b_arr.shape != (m,):
        raise ValueError(f"b: expected shape ({m},) to match W {W_arr.shape}, got {b_arr.shape}")
    return W_arr.copy(), b_arr.copy()


def as_column(value, name: str, n: int | None = None, dtype=np.float64) -> np.ndarray:
    """Return a column vector of shape ``(n, 1)``; refuse rows, 1-D and wrong ``n``."""
    arr = as_float_array(value, name, dtype)
    if arr.ndim != 2 or arr.shape[1] != 1:
        raise ValueError(
            f"{name}: expected a column vector of shape ({n if n is not None else 'n'}, 1), got shape {arr.shape}"
        )
    if arr.shape[0] == 0:
        raise ValueError(f"{name}: expected a non-empty column, got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name}: expected shape ({n}, 1), got shape {arr.shape}")
    return arr


def as_row(value, name: str, m: int | None = None, dtype=np.float64) -> np.ndarray:
    """Return a row vector of shape ``(1, m)``; refuse columns, 1-D and wrong ``m``."""
    arr = as_float_array(value, name, dtype)
    if arr.ndim != 2 or arr.shape[0] != 1:
        raise ValueError(
            f"{name}: expected a row vector of shape (1, {m if m is not None else 'm'}), got shape {arr.shape}"
        )
    if m is not None and arr.shape[1] != m:
        raise ValueError(f"{name}: expected shape (1, {m}), got shape {arr.shape}")
    return arr


def as_batch(value, name: str, n: int | None = None, dtype=np.float64) -> np.ndarray:
    """Return a batch of shape ``(N, n)`` with ``N >= 1``; refuse 1-D and wrong ``n``."""
    arr = as_float_array(value, name, dtype)
    if arr.ndim != 2:
        raise ValueError(
            f"{name}: expected a 2-D batch of shape (N, {n if n is not None else 'n'}), "
            f"got {arr.ndim}-D shape {arr.shape}"
        )
    if arr.shape[0] == 0:
        raise ValueError(f"{name}: expected a non-empty batch (N >= 1), got shape {arr.shape}")
    if n is not None and arr.shape[1] != n:
        raise ValueError(f"{name}: expected {n} features per sample, shape (N, {n}), got shape {arr.shape}")
    return arr


class NonFiniteError(ValueError):
    """A non-finite value computed from finite inputs (an overflow inside the network, a step
    that overflowed): a ``ValueError`` that a caller such as the Solver may tell apart from
    bad input."""


def check_layer_output(A: np.ndarray, layer: int, what: str = "output row") -> None:
    """Finite in, finite out, for both drivers: ``A`` (the outputs of ``layers[layer]``, one row
    per sample) must be finite, else :class:`NonFiniteError` naming the public argument ``X``,
    the layer, and the first sample whose output is not. One :func:`all_finite` pass (one BLAS
    dot on a large array); the slow search runs only when it fails."""
    if not all_finite(A):
        bad = np.argwhere(~np.isfinite(A))[0]
        raise NonFiniteError(
            f"X: finite inputs overflow inside the network: layers[{layer}] {what} {int(bad[0])} is not "
            f"finite ({A[tuple(bad)].item()!r}); scale X down (or the weights) so that every layer's "
            f"output stays within the dtype's range"
        )


def non_finite_row(layer: int, k: int, row) -> NonFiniteError:
    """The error for a gradient row that is not finite: a :class:`NonFiniteError` naming the layer the
    rows go into, the first sample ``k`` whose row is not finite and its first such entry (``row`` is that
    sample's row, any shape; flattened in C order). Both drivers raise it at the same points: the loss's
    rows before the last layer's backward, and the rows every layer's backward pulls into the layer before
    it (the first layer's ``dL/dx`` is not used, and not checked)."""
    flat = np.asarray(row).ravel()
    return NonFiniteError(
        f"layers[{layer}]: gradient row into the layer[{k}]: expected finite values, got "
        f"{flat[~np.isfinite(flat)][0]!r} (an overflow inside the network)"
    )


def non_finite_loss(loss: float, sample_losses) -> NonFiniteError:
    """The error for a batch loss that is not finite: a :class:`NonFiniteError` naming the labels ``Y``,
    the loss and the first sample whose loss is not finite. Both drivers raise it at the same point,
    right after the loss (penalty added) and before any gradient is pulled back, when
    ``math.isfinite(loss)`` fails, so that a loss that overflowed from finite outputs and labels (mean
    squared error against labels near 1e308: ``(y_hat - y)^2`` is inf) is refused the same way on both
    paths, quietly, before the backward pass or a step. ``loss`` is the batch loss,
    ``(1/N) sum_k L_k + penalty``; ``sample_losses`` the per-sample losses ``L_k`` ``(N,)`` (the batched
    driver computes them only then; the reference driver has them). When every ``L_k`` is finite, their
    mean or the penalty overflowed, and the error says so."""
    L = np.asarray(sample_losses)
    bad = np.flatnonzero(~np.isfinite(L))
    if bad.size:
        k = int(bad[0])
        return NonFiniteError(
            f"Y: the loss of sample {k} is not finite ({L[k].item()!r}) although the network's outputs and the "
            f"labels are: an overflow in the loss (the outputs and the labels are too far apart for the dtype's "
            f"range); scale the labels (or the outputs) down"
        )
    return NonFiniteError(
        f"Y: the batch loss is not finite ({float(loss)!r}) although every sample's loss is: their mean plus "
        f"the penalty overflowed; scale the labels (or the outputs, or the penalty) down"
    )


def check_layer_context(ctx, layer: int, checked=()) -> None:
    """The other half of :func:`check_layer_output`: the float arrays a layer's forward saved in
    its context (a tuple; a dense layer's pre-activation ``Z``), except those in ``checked``
    (compared by identity: the input, and the output already checked), must be finite. An
    activation that saturates (tanh, sigmoid) turns an overflowed ``Z = inf`` into a finite
    output; the overflow happened inside the layer all the same, and is refused here."""
    if not isinstance(ctx, tuple):
        return
    for c in ctx:
        if isinstance(c, np.ndarray) and c.dtype.kind == "f":
            for a in checked:
                if c is a:
                    break
            else:
                check_layer_output(c, layer, "intermediate result (e.g. pre-activation) for sample")


def generator_states(net) -> list:
    """``(Generator, copy of its bit_generator.state)`` for every layer of ``net`` holding one as
    ``rng`` (dropout), so that a caller can put them back."""
    gens = [layer.rng for layer in net.layers if isinstance(getattr(layer, "rng", None), np.random.Generator)]
    return [(g, copy.deepcopy(g.bit_generator.state)) for g in gens]


class KeptState:
    """What :func:`state_kept_on_refusal` returns: a context manager holding copies of the state."""

    __slots__ = ("saved", "gens")

    def __init__(self, saved: list, gens: list):
        self.saved, self.gens = saved, gens

    def __enter__(self) -> "KeptState":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:  # None: the exception propagates
        if exc_type is not None:
            for v, c in self.saved:
                v[...] = c
            for g, st in self.gens:
                g.bit_generator.state = st


_NOTHING_KEPT = KeptState([], [])


def state_kept_on_refusal(net, mode: str) -> KeptState:
    """A context manager for a public call that may update state in ``mode`` and refuse later: if
    the block raises (an overflow found after the forward, a non-finite loss row or step, a
    read-only parameter, an interrupt), the layers' ``state`` arrays (batch norm's running
    statistics, which the forward has already updated) and the dropout layers' Generator states are
    put back before the exception propagates, so that a call that raises changes nothing. The
    parameters need no copy: :meth:`Network.apply_update` checks every step before it writes any.
    Test mode changes no state and costs nothing; training mode copies the (small) state arrays
    and Generator states once per call, on entry."""
    if mode != "train":
        return _NOTHING_KEPT
    saved, gens = [], []
    for layer in net.layers:  # one pass (a training step takes this guard once): state arrays, Generators
        for v in layer.state.values():
            saved.append((v, v.copy()))
        rng = getattr(layer, "rng", None)
        if isinstance(rng, np.random.Generator):
            gens.append((rng, copy.deepcopy(rng.bit_generator.state)))
    return KeptState(saved, gens) if saved or gens else _NOTHING_KEPT


def check_writeable(params, name: str) -> None:
    """Every array of ``params`` (one dict per layer) must be writeable: checked before an
    update writes any of them, so that an update is all or nothing. Raises naming ``name[i][key]``."""
    for i, p in enumerate(params):
        for k, v in p.items():
            if not v.flags.writeable:
                raise ValueError(
                    f"{name}[{i}][{k!r}]: the parameter it updates is read-only "
                    f"(flags.writeable is False); nothing was written"
                )


def non_finite_step(name: str, i: int, k: str) -> NonFiniteError:
    """The error for a step (or any per-layer array ``name[i][k]``) that is not finite; nothing was written."""
    return NonFiniteError(
        f"{name}[{i}][{k!r}]: expected finite values, got NaN or inf (not finite: nothing was written)"
    )


def check_like_params(arrays, params, name: str) -> None:
    """``arrays`` must mirror ``params`` (one dict per layer): same length, same keys, and
    for every entry the same shape and dtype, with finite values. Raises naming
    ``name[i][key]`` (a non-finite value: :class:`NonFiniteError`); writes nothing."""
    if len(arrays) != len(params):
        raise ValueError(f"{name}: expected {len(params)} layer entries (one per layer), got {len(arrays)}")
    for i, (a, p) in enumerate(zip(arrays, params)):
        if set(a) != set(p):
            raise ValueError(f"{name}[{i}]: expected keys {sorted(p)}, got {sorted(a)}")
        for k in p:
            v = np.asarray(a[k])
            if v.shape != p[k].shape:
                raise ValueError(f"{name}[{i}][{k!r}]: expected shape {p[k].shape}, got {v.shape}")
            if v.dtype != p[k].dtype:
                raise TypeError(f"{name}[{i}][{k!r}]: expected dtype {p[k].dtype}, got {v.dtype}")
            if not all_finite(v):
                raise non_finite_step(name, i, k)


def check_positive(value, name: str) -> float:
    """Return ``value`` as a float if it is a finite number > 0, else raise."""
    if not is_real(value):
        raise TypeError(f"{name}: expected a positive number, got {type(value).__name__} {value!r}")
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{name}: expected a finite number > 0, got {value!r}")
    return float(value)


def check_nonnegative(value, name: str) -> float:
    """Return ``value`` as a float if it is a finite number >= 0, else raise."""
    if not is_real(value):
        raise TypeError(f"{name}: expected a number >= 0, got {type(value).__name__} {value!r}")
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"{name}: expected a finite number >= 0, got {value!r}")
    return float(value)


# --------------------------------------------------------------------------- comparison arithmetic


def eps_of(dtype) -> float:
    """Machine epsilon of a float dtype as a Python float: 2.22e-16 (float64), 1.19e-7 (float32)."""
    return float(np.finfo(np.dtype(dtype)).eps)


def relative_error(a, b, *, floor: float = 0.0, scale=None) -> np.ndarray:
    """Entrywise relative error ``|a - b| / s`` where ``s > floor``, else 0.

    ``s = max(|a|, |b|)`` entrywise, or the given ``scale`` (a number, or an array broadcast
    against ``a - b``) when the size to measure against is another quantity's (the terms of a
    sum that cancels). An entry whose size is at most ``floor`` gets 0: a relative error of an
    exact zero against rounding noise means nothing, and such an entry is judged by its
    absolute error. ``a`` and ``b`` (one shape, or scalars) are used in their own dtype;
    the result has the shape of ``a - b``.
    """
    a, b = np.asarray(a), np.asarray(b)
    diff = np.abs(a - b)
    s = np.maximum(np.abs(a), np.abs(b)) if scale is None else np.broadcast_to(np.asarray(scale), diff.shape)
    live = s > floor
    return np.where(live, diff / np.where(live, s, 1.0), 0.0)
