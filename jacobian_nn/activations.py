"""Activations: forward, full Jacobian, and batched VJP, side by side.

Every activation ``f: R^m -> R^m`` carries two independent derivative paths:

Reference path (one sample, seed 000's convention)
    ``forward(z)``      z ``(m, 1)`` -> ``(m, 1)``
    ``jacobian(z)``     z ``(m, 1)`` -> ``J`` ``(m, m)``, numerator layout
                        ``J[i, j] = d f_i / d z_j``; a row gradient chains as
                        ``dL/dz = dL/dy @ J``.
    Both check that ``z`` is a real column with finite values; ``check=False`` (a dense
    layer passing its own pre-activation ``z``) skips that check, never the formula.

Batched path (rows are samples)
    ``forward_batched(Z, out=None)``     Z ``(N, m)`` -> ``A`` ``(N, m)``
    ``vjp_batched(Z, A, G, out=None)``   ``G`` ``(N, m)`` upstream rows -> ``(N, m)``, row k
                                       equal to ``G[k] @ jacobian(Z[k].T)``, computed without
                                       forming any ``(m, m)`` matrix.
    ``jacobian_batched(Z)``      ``(N, m, m)``: the per-sample Jacobians, stacked. This is
                               the explicit, opt-in way to get matrices in the batched
                               path.

The two paths share the forward formula and nothing on the derivative side: a
test builds the call graph of every ``*_batched`` method and fails if it reaches a
reference ``jacobian``. ``A`` is passed to ``vjp_batched`` so that the backward
pass reuses the forward output instead of recomputing it. ``out`` is numpy's: an
``(N, m)`` array of the result's dtype to write the result into (it may be ``G``
itself for ``vjp_batched``, or ``Z`` for ``forward_batched``); the values are the same.
Each method a reader sees here is the one both paths run: there is no second copy
of a formula.

Kinks follow seed 000's math: at a non-differentiable point the derivative takes
the ``z <= 0`` branch (relu'(0) = 0, leaky_relu'(0) = alpha, elu'(0) = alpha,
step'(0) = 0). Proofs (``proofs/proof_activations.py``, ``proof_softmax.py``,
``proof_stable_softmax.py``; index in ``proofs/README.md``): ``proofs:act.sigmoid``,
``proofs:act.tanh``, ``proofs:act.relu``, ``proofs:act.leaky_relu``, ``proofs:act.elu``,
``proofs:act.step``, the kink convention ``proofs:act.code000_kinks``, softmax's Jacobian
``proofs:softmax.jacobian``, its VJP ``proofs:softmax.backward001``, the max shift
``proofs:stable.shift_identity``.
"""

from __future__ import annotations

import numpy as np
from scipy.special import expit

from ._validation import check_positive


def _check_column(z: np.ndarray, name: str = "z") -> None:
    if not isinstance(z, np.ndarray) or z.ndim != 2 or z.shape[1] != 1:
        raise ValueError(
            f"{name}: expected a column vector of shape (m, 1), got {getattr(z, 'shape', type(z).__name__)}"
        )
    if z.dtype.kind not in "fiub":
        raise TypeError(f"{name}: expected a real floating or integer column, got dtype {z.dtype}")
    if not np.isfinite(z).all():
        k = int(np.argmax(~np.isfinite(z[:, 0])))
        raise ValueError(f"{name}: expected finite values, got {z[k, 0].item()!r} at index ({k}, 0)")


def _check_batch(Z: np.ndarray, name: str = "Z") -> None:
    if not isinstance(Z, np.ndarray) or Z.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D batch of shape (N, m), got {getattr(Z, 'shape', type(Z).__name__)}")


def _into(out, value: np.ndarray) -> np.ndarray:
    """``value``, or ``value`` copied into ``out`` when given (for formulas built by ``np.where``)."""
    if out is None:
        return value
    np.copyto(out, value)
    return out


def _embed_diagonal(D: np.ndarray) -> np.ndarray:
    """``(N, m)`` -> ``(N, m, m)`` with ``D[k]`` on the diagonal of slice k, exact zeros elsewhere."""
    N, m = D.shape
    J = np.zeros((N, m, m), dtype=D.dtype)
    idx = np.arange(m)
    J[:, idx, idx] = D
    return J


class Activation:
    """Base class. Subclasses define the five methods listed in the module docstring:
    ``forward`` and ``jacobian`` check that ``z`` is a real column with finite values, then
    apply the formula."""

    name: str = ""
    elementwise: bool = True
    #: True when ``vjp_batched(Z, A, G)`` reads ``Z`` only through a quantity ``A`` gives as
    #: well (ReLU: ``A > 0`` exactly where ``Z > 0``; identity: ``A = Z``), so that
    #: ``vjp_batched(A, A, G)`` is the same VJP and ``forward_batched(Z, out=Z)`` may overwrite
    #: the pre-activations. A dense layer then keeps one ``(N, m)`` array instead of two.
    #: (A declared property of the formula, not a second formula.)
    vjp_reads_output_only: bool = False

    def __call__(self, z: np.ndarray) -> np.ndarray:
        return self.forward(z)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"

    def __eq__(self, other) -> bool:
        return type(self) is type(other) and self.config() == other.config()

    def __hash__(self) -> int:
        return hash((type(self), tuple(sorted(self.config().items()))))

    def config(self) -> dict:
        """Hyperparameters, enough to rebuild the activation with :func:`get_activation`."""
        return {}

    # The contract every subclass implements (see the module docstring); declared here so
    # that code holding an ``Activation`` type-checks.

    def forward(self, z: np.ndarray, *, check: bool = True) -> np.ndarray:
        """Reference path: ``z`` ``(m, 1)`` -> ``f(z)`` ``(m, 1)``."""
        raise NotImplementedError

    def jacobian(self, z: np.ndarray, *, check: bool = True) -> np.ndarray:
        """Reference path: ``z`` ``(m, 1)`` -> ``J`` ``(m, m)``, ``J[i, j] = d f_i / d z_j``."""
        raise NotImplementedError

    def forward_batched(self, Z: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Batched path: ``Z`` ``(N, m)`` -> ``A`` ``(N, m)``, row k = ``f(Z[k])``."""
        raise NotImplementedError

    def vjp_batched(self, Z: np.ndarray, A: np.ndarray, G: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Batched path: upstream rows ``G`` ``(N, m)`` -> ``(N, m)``, row k equal to
        ``G[k] @ jacobian(Z[k].T)``, without forming any ``(m, m)`` matrix."""
        raise NotImplementedError

    def jacobian_batched(self, Z: np.ndarray) -> np.ndarray:
        """Batched path: ``Z`` ``(N, m)`` -> the per-sample Jacobians stacked, ``(N, m, m)``."""
        raise NotImplementedError


class ElementwiseActivation(Activation):
    """An activation with ``f(z)_i = g(z_i)``: diagonal Jacobian.

    ``jacobian_batched`` is built from ``vjp_batched`` with ``G = 1`` (the batched
    derivative, on the diagonal): both belong to the batched path.
    """

    def jacobian_batched(self, Z: np.ndarray) -> np.ndarray:
        """``(N, m)`` -> ``(N, m, m)``, diagonal slices with exact zeros off the diagonal."""
        _check_batch(Z)
        A = self.forward_batched(Z)
        return _embed_diagonal(self.vjp_batched(Z, A, np.ones_like(Z)))


# --------------------------------------------------------------------------- identity


class Identity(ElementwiseActivation):
    """``f(z) = z``; ``J = I``."""

    name = "identity"

    def forward(self, z, *, check=True):
        if check:
            _check_column(z)
        return z.copy()

    def jacobian(self, z, *, check=True):
        if check:
            _check_column(z)
        return np.eye(z.shape[0], dtype=z.dtype)

    vjp_reads_output_only = True

    def forward_batched(self, Z, out=None):
        """A copy of ``Z`` (or ``Z`` written into ``out``; ``out=Z`` returns ``Z`` itself)."""
        if out is None:
            return Z.copy()
        if out is not Z:
            np.copyto(out, Z)
        return out

    def vjp_batched(self, Z, A, G, out=None):
        """``G`` (a copy, or ``G`` written into ``out``; ``out=G`` returns ``G`` itself)."""
        if out is None:
            return G.copy()
        if out is not G:
            np.copyto(out, G)
        return out


# --------------------------------------------------------------------------- step


class Step(ElementwiseActivation):
    """Seed 002's perceptron step: ``f(z) = 1 if z > 0 else 0`` (so ``f(0) = 0``).

    Derivative: 0 wherever it exists (every ``z != 0``). At the jump ``z = 0`` it
    does not exist; by the ``z <= 0`` branch rule ``step'(0) = 0``. The Jacobian is
    therefore the zero matrix: a step network cannot be trained by gradients,
    which is why seed 002 sets perceptron weights by hand.
    """

    name = "step"

    def forward(self, z, *, check=True):
        if check:
            _check_column(z)
        return (z > 0).astype(z.dtype)

    def jacobian(self, z, *, check=True):
        if check:
            _check_column(z)
        return np.zeros((z.shape[0], z.shape[0]), dtype=z.dtype)

    def forward_batched(self, Z, out=None):
        return _into(out, (Z > 0).astype(Z.dtype))

    def vjp_batched(self, Z, A, G, out=None):
        if out is None:
            return np.zeros_like(G)
        out.fill(0)
        return out


# --------------------------------------------------------------------------- sigmoid


class Sigmoid(ElementwiseActivation):
    """``f(z) = 1 / (1 + exp(-z))``; ``J = diag(s(z) * s(-z))`` (= ``s(1 - s)``).

    Computed with ``scipy.special.expit``, which does not overflow for any
    finite z. The derivative is evaluated as ``s(z) s(-z)`` rather than
    ``s (1 - s)``: the two are equal in exact arithmetic, but ``1 - s`` rounds to
    0 for z > 37 while ``s(-z)`` keeps full relative precision.
    """

    name = "sigmoid"

    def forward(self, z, *, check=True):
        if check:
            _check_column(z)
        return expit(z)

    def jacobian(self, z, *, check=True):
        if check:
            _check_column(z)
        z = z[:, 0]
        return np.diag(expit(z) * expit(-z))

    def forward_batched(self, Z, out=None):
        return expit(Z, out=out)

    def vjp_batched(self, Z, A, G, out=None):
        return np.multiply(G * A, expit(-Z), out=out)


# --------------------------------------------------------------------------- tanh


class Tanh(ElementwiseActivation):
    """``f(z) = tanh(z)``; ``J = diag(1 - tanh(z)^2)`` = ``diag(sech(z)^2)``.

    The derivative is evaluated as ``sech^2 z = 4u / (1 + u)^2`` with
    ``u = exp(-2|z|)``: no overflow, and full relative precision in the tails,
    where ``1 - tanh^2`` cancels to 0.
    """

    name = "tanh"

    def forward(self, z, *, check=True):
        if check:
            _check_column(z)
        return np.tanh(z)

    def jacobian(self, z, *, check=True):
        if check:
            _check_column(z)
        u = np.exp(-2.0 * np.abs(z[:, 0]))
        return np.diag(4.0 * u / (1.0 + u) ** 2)

    def forward_batched(self, Z, out=None):
        return np.tanh(Z, out=out)

    def vjp_batched(self, Z, A, G, out=None):
        e = np.exp(-2.0 * np.abs(Z))
        return np.divide(G * (4.0 * e), (1.0 + e) * (1.0 + e), out=out)


# --------------------------------------------------------------------------- relu


class ReLU(ElementwiseActivation):
    """``f(z) = max(z, 0)``; ``J = diag([z > 0])``.

    Kink: ``relu'(0) = 0`` (the ``z <= 0`` branch).
    """

    name = "relu"

    def forward(self, z, *, check=True):
        if check:
            _check_column(z)
        return np.maximum(z, 0.0)

    def jacobian(self, z, *, check=True):
        if check:
            _check_column(z)
        return np.diag((z[:, 0] > 0).astype(z.dtype))

    vjp_reads_output_only = True

    def forward_batched(self, Z, out=None):
        """``max(Z, 0)``, into ``out`` when given (``out=Z`` overwrites the pre-activations)."""
        return np.maximum(Z, 0.0, out=out)

    def vjp_batched(self, Z, A, G, out=None):
        # G * [A > 0], with A > 0 exactly where Z > 0 (A = max(Z, 0)): the same values as
        # np.where(Z > 0, G, 0) (a zero may carry G's sign), several times faster than
        # np.where's masked select on unpredictable signs; reading A lets a dense layer
        # overwrite Z with A (vjp_reads_output_only)
        return np.multiply(G, A > 0, out=out)


# --------------------------------------------------------------------------- leaky relu


class LeakyReLU(ElementwiseActivation):
    """``f(z) = z if z > 0 else alpha z``; ``J = diag(1 if z > 0 else alpha)``.

    Kink: ``leaky_relu'(0) = alpha`` (the ``z <= 0`` branch). ``alpha`` defaults
    to 0.01 and must be > 0.
    """

    name = "leaky_relu"

    def __init__(self, alpha: float = 0.01):
        self.alpha = check_positive(alpha, "alpha")

    def __repr__(self):
        return f"LeakyReLU(alpha={self.alpha!r})"

    def config(self):
        return {"alpha": self.alpha}

    def forward(self, z, *, check=True):
        if check:
            _check_column(z)
        return np.where(z > 0, z, self.alpha * z)

    def jacobian(self, z, *, check=True):
        if check:
            _check_column(z)
        return np.diag(np.where(z[:, 0] > 0, 1.0, self.alpha).astype(z.dtype))

    def forward_batched(self, Z, out=None):
        return _into(out, np.where(Z > 0, Z, Z.dtype.type(self.alpha) * Z))

    def vjp_batched(self, Z, A, G, out=None):
        return _into(out, np.where(Z > 0, G, G.dtype.type(self.alpha) * G))


# --------------------------------------------------------------------------- elu


class ELU(ElementwiseActivation):
    """``f(z) = z if z > 0 else alpha (exp(z) - 1)``;
    ``J = diag(1 if z > 0 else alpha exp(z))``.

    Kink: ``elu'(0) = alpha`` (the ``z <= 0`` branch; for ``alpha = 1`` ELU is C^1
    and both one-sided derivatives are 1). ``alpha`` defaults to 1.0 and must be
    > 0. ``exp(z) - 1`` is computed as ``expm1`` of ``min(z, 0)`` for accuracy
    near 0 and no overflow in the unused branch.

    Seed 000's table gives the ELU Jacobian as 0 for ``z <= 0``; that is an
    erratum (``proofs:act.elu``): the derivative there is ``alpha exp(z)``.
    """

    name = "elu"

    def __init__(self, alpha: float = 1.0):
        self.alpha = check_positive(alpha, "alpha")

    def __repr__(self):
        return f"ELU(alpha={self.alpha!r})"

    def config(self):
        return {"alpha": self.alpha}

    def forward(self, z, *, check=True):
        if check:
            _check_column(z)
        return np.where(z > 0, z, self.alpha * np.expm1(np.minimum(z, 0.0)))

    def jacobian(self, z, *, check=True):
        if check:
            _check_column(z)
        z = z[:, 0]
        return np.diag(np.where(z > 0, 1.0, self.alpha * np.exp(np.minimum(z, 0.0))).astype(z.dtype))

    def forward_batched(self, Z, out=None):
        alpha = Z.dtype.type(self.alpha)
        return _into(out, np.where(Z > 0, Z, alpha * np.expm1(np.minimum(Z, 0))))

    def vjp_batched(self, Z, A, G, out=None):
        # alpha * exp(z) is evaluated directly, not as A + alpha, which cancels
        # for very negative z.
        alpha = G.dtype.type(self.alpha)
        return _into(out, np.where(Z > 0, G, G * (alpha * np.exp(np.minimum(Z, 0)))))


# --------------------------------------------------------------------------- softmax


def _minus_max(z: np.ndarray, top) -> np.ndarray:
    """``z - top`` for softmax's shift (``top`` the max, a scalar or ``(N, 1)``). An infinite max comes
    only from a non-finite ``z`` that was not checked (``check=False``: the drivers' own values, which
    they refuse afterwards with their own error, or ``forward_batched``): ``inf - inf`` is then NaN
    without numpy's invalid-value warning, so that the refusal is the only message."""
    if np.isinf(top).any():
        with np.errstate(invalid="ignore"):
            return z - top
    return z - top


class Softmax(Activation):
    """``s(z)_i = exp(z_i - max z) / sum_j exp(z_j - max z)``.

    Jacobian (dense, symmetric, rows sum to 0): ``J = diag(s) - s s^T``, shape
    ``(m, m)``, ``J[i, j] = s_i (delta_ij - s_j)``. The diagonal
    ``s_i (1 - s_i)`` is evaluated as ``s_i * sum_{j != i} s_j`` so that it keeps
    full relative precision when ``s_i`` is close to 1.

    Batched VJP without forming J: for upstream rows ``G`` ``(N, m)`` and
    ``S = softmax(Z)``, ``G J = S * (G' - rowsum(G' * S))`` with ``G' = G - G[k, r_k]``, ``r_k`` the
    argmax of row k (``1^T J = 0``, so the shift changes nothing exactly; numerically it makes
    ``G'[k, r_k] = 0``, so at saturation, ``s_r`` close to 1, the entry ``r`` is
    ``-s_r sum_{j != r} s_j G'_j`` without the cancellation of ``g_r - (g_r s_r + ...)``).
    Batched Jacobians: off-diagonal ``-s_i s_j``, diagonal ``s_i * sum_{j != i} s_j`` (as the
    reference).

    The shift by the max does not change s (numerator and denominator are both
    scaled by ``exp(-max z)``) and keeps every exponent <= 0, so nothing overflows.
    """

    name = "softmax"
    elementwise = False

    def forward(self, z, *, check=True):
        if check:
            _check_column(z)
        e = np.exp(_minus_max(z, z.max()))
        return e / e.sum()

    def jacobian(self, z, *, check=True):
        s = self.forward(z, check=check)
        J = -(s @ s.T)
        # diagonal s_i (1 - s_i), with 1 - s_i evaluated as the sum of the other
        # entries (all positive, no cancellation when s_i is close to 1)
        others = (np.ones((s.shape[0], s.shape[0])) - np.eye(s.shape[0])) @ s
        J[np.diag_indices_from(J)] = s[:, 0] * others[:, 0]
        return J

    def forward_batched(self, Z, out=None):
        E = np.exp(_minus_max(Z, Z.max(axis=1, keepdims=True)), out=out)
        E /= E.sum(axis=1, keepdims=True)
        return E

    def vjp_batched(self, Z, A, G, out=None):
        """``A * (G' - rowsum(G' * A))``, ``G' = G - G[k, argmax A[k]]`` (class docstring)."""
        Gs = G - np.take_along_axis(G, A.argmax(axis=1)[:, None], axis=1)
        return np.multiply(A, Gs - np.sum(Gs * A, axis=1, keepdims=True), out=out)

    def jacobian_batched(self, Z):
        """``(N, m, m)`` with slice k equal to ``diag(S[k]) - S[k]^T S[k]``; the diagonal
        ``s_i (1 - s_i)`` as ``s_i * sum_{j != i} s_j`` (``S @ (1 1^T - I)``, positive terms only)."""
        _check_batch(Z)
        S = self.forward_batched(Z)
        m = S.shape[1]
        J = -S[:, :, None] * S[:, None, :]
        idx = np.arange(m)
        J[:, idx, idx] = S * (S @ (np.ones((m, m), dtype=S.dtype) - np.eye(m, dtype=S.dtype)))
        return J


# --------------------------------------------------------------------------- registry

ACTIVATIONS: dict[str, type[Activation]] = {
    cls.name: cls for cls in (Identity, Step, Sigmoid, Tanh, ReLU, LeakyReLU, ELU, Softmax)
}


def get_activation(spec, **kwargs) -> Activation:
    """Return an activation from an instance, a class, or a registered name.

    Names: ``identity, step, sigmoid, tanh, relu, leaky_relu, elu, softmax``.
    Keyword arguments (``alpha``) go to the constructor.
    """
    if isinstance(spec, Activation):
        if kwargs:
            raise TypeError(f"activation: keyword arguments {sorted(kwargs)} given with an instance {spec!r}")
        return spec
    if isinstance(spec, type) and issubclass(spec, Activation):
        return spec(**kwargs)
    if isinstance(spec, str):
        key = spec.lower().replace("-", "_")
        if key not in ACTIVATIONS:
            raise ValueError(f"activation: expected one of {sorted(ACTIVATIONS)}, got {spec!r}")
        return ACTIVATIONS[key](**kwargs)
    raise TypeError(f"activation: expected a name, an Activation class or instance, got {type(spec).__name__}")
