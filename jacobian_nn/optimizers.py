"""Optimisers: hyperparameters in the object, state in an explicit value, updates returned, not applied.

Every optimiser has the same pure interface::

    opt   = Adam(lr=1e-3)                     # hyperparameters only, never changed by training
    state = opt.init_state(params)            # an explicit OptimizerState (step counter + buffers)
    steps, state = opt.step(params, grads, state)   # nothing is mutated
    net.apply_update(steps)                   # theta <- theta + step, checked before writing

``params`` and ``grads`` are lists with one dict per layer (``net.params`` and the
``grads`` of ``Network.loss_and_gradients[_batched]``); ``steps`` has the same
structure, and the update is ``theta <- theta + step``. ``step`` neither writes the
parameters nor the state it is given: it returns a new state. A caller whose
``apply_update`` fails (a non-finite step, say) therefore keeps both the old
parameters and the old state, exactly as they were.

The learning rate can be overridden per call (``lr=``): that is how the solver
applies a per-epoch decay without writing the decayed rate into the state or into
the hyperparameters (seed 004 stores ``learning_rate`` inside the per-parameter
``config`` dict next to the velocity, mixing the two).

Below, ``g`` is a gradient array, ``eta`` the learning rate, products and powers
are elementwise, and ``t`` is the step counter stored in the state. Proofs of the
seeds' rules: ``proofs:opt.sgd002``, ``proofs:opt.momentum``, ``proofs:opt.velocity004``,
``proofs:opt.adagrad002`` (``proofs/proof_optimisers.py``).

Step counter convention: ``state.t`` is the number of updates already computed.
``init_state`` returns ``t = 0``; ``step`` first sets ``t <- t + 1`` and then uses
the new ``t``, so the first update uses ``t = 1`` (Adam's bias correction
``1 - beta^t`` is then ``1 - beta``, never 0). Every optimiser advances ``t``.

Starting from a course's state
------------------------------
Build the :class:`OptimizerState` yourself: ``OptimizerState(t, buffers)``, each buffer a list with
one dict per layer shaped like ``params``. The courses' names and counters map as follows.

* **CS231n** (``optim.py``, ``config`` dicts): ``sgd_momentum``'s ``velocity`` -> ``"velocity"``
  (:class:`Momentum`); ``rmsprop``'s ``cache`` -> ``"s"`` (:class:`RMSprop`, ``decay_rate`` -> ``rho``);
  ``adam``'s ``m``, ``v``, ``t`` -> ``"m"``, ``"v"`` and ``t`` unchanged: CS231n's ``t`` counts the
  updates already made and its ``adam`` increments it before using it, as here (its test
  ``config = {..., 't': 5}`` is ``OptimizerState(5, ...)``; the update uses ``t = 6``).
* **deeplearning.ai** (Improving Deep Neural Networks, ``update_parameters_with_adam(..., v, s, t)``):
  its ``v`` is the first moment -> ``"m"`` and its ``s`` the second -> ``"v"``; its ``t`` is the
  number of the update being made (the caller increments it first, so the first update passes
  ``t = 1``): use ``OptimizerState(t - 1, ...)``. Its momentum, ``v = beta v + (1 - beta) dW`` applied
  as ``W -= lr v``, is an exponential average, a different rule from :class:`Momentum`'s.
* **Deep Learning from Scratch** (``common/optimizer.py``): ``Momentum.v`` -> ``"velocity"``,
  ``AdaGrad.h`` -> ``"h"``; ``Adam.iter`` counts the updates made, as ``t`` here, ``Adam.m``,
  ``Adam.v`` -> ``"m"``, ``"v"``. The book's Adam folds the bias correction into the learning rate
  and adds its ``1e-7`` to ``sqrt(v)`` rather than to ``sqrt(v_hat)``, so its steps differ from
  :class:`Adam`'s by that placement of eps.

The state is checked against the parameters (buffer names, layers, keys, shapes) by ``step``,
before anything is computed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ._validation import check_like_params, check_nonnegative, check_positive, is_integer


@dataclass(frozen=True)
class OptimizerState:
    """Training state of an optimiser, separate from its hyperparameters.

    ``t``        number of updates computed so far (0 after ``init_state``).
    ``buffers``  named per-parameter arrays, each a list of dicts shaped like
                 ``params`` (``"velocity"`` for momentum, ``"h"`` for AdaGrad,
                 ``"s"`` for RMSprop, ``"m"`` and ``"v"`` for Adam).
    """

    t: int = 0
    buffers: dict = field(default_factory=dict)

    def __post_init__(self):
        # The structure is checked here; shapes, dtypes and values against the parameters in ``step``.
        t = self.t
        if not is_integer(t):
            raise TypeError(f"state.t: expected a non-negative integer step counter, got {type(t).__name__} {t!r}")
        if t < 0:
            raise ValueError(f"state.t: expected a non-negative integer step counter, got {t!r}")
        object.__setattr__(self, "t", int(t))
        if not isinstance(self.buffers, dict):
            raise TypeError(
                f"state.buffers: expected a dict of buffer name -> list of dicts, got {type(self.buffers).__name__}"
            )
        for name, buf in self.buffers.items():
            if not isinstance(buf, (list, tuple)) or not all(isinstance(b, dict) for b in buf):
                raise TypeError(
                    f"state.buffers[{name!r}]: expected a list with one dict of arrays per layer, "
                    f"got {type(buf).__name__}"
                )


def _zeros_like(params) -> list[dict]:
    return [{k: np.zeros_like(v) for k, v in p.items()} for p in params]


#: Buffers that hold sums of squares: a negative entry would give NaN from ``sqrt``.
_NON_NEGATIVE_BUFFERS = frozenset({"h", "s", "v"})


def _check_state(params, state, names) -> None:
    """``state`` must be an OptimizerState of this optimiser whose buffers mirror ``params`` exactly:
    layers, keys, shape, the parameter's dtype (another precision is refused, never cast), finite,
    and non-negative for the sums of squares. Raises naming ``state.buffers[name][i][key]``."""
    if not isinstance(state, OptimizerState):
        raise TypeError(f"state: expected an OptimizerState (from init_state), got {type(state).__name__}")
    if set(state.buffers) != set(names):
        raise ValueError(
            f"state: expected buffers {sorted(names)}, got {sorted(state.buffers)}; was it made by another optimiser?"
        )
    for name in names:
        buf, where = state.buffers[name], f"state.buffers[{name!r}]"
        check_like_params(buf, params, where)  # layers, keys, shape, dtype (never cast), finite
        for i, b in enumerate(buf):
            for k, v in b.items():
                if not isinstance(v, np.ndarray):
                    raise TypeError(f"{where}[{i}][{k!r}]: expected an ndarray, got {type(v).__name__}")
                if name in _NON_NEGATIVE_BUFFERS and v.size and v.min() < 0:
                    raise ValueError(f"{where}[{i}][{k!r}]: a sum of squares must be >= 0, got {float(v.min())!r}")


def _map(fn, *trees) -> list[dict]:
    """Apply ``fn`` to matching arrays of lists-of-dicts; returns a new list of dicts."""
    return [{k: fn(*(t[i][k] for t in trees)) for k in trees[0][i]} for i in range(len(trees[0]))]


class Optimizer:
    """Base class. Subclasses set ``buffer_names`` and implement ``_update``."""

    buffer_names: tuple = ()

    def __init__(self, lr: float = 1e-2):
        self.lr = lr

    def __setattr__(self, name, value):
        # every hyperparameter is checked whenever it is set, in the constructor or later (opt.lr = ...)
        check = _HYPERPARAMETER_CHECKS.get(name)
        super().__setattr__(name, value if check is None else check(value, name))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hyperparameters().items())
        return f"{type(self).__name__}({args})"

    def hyperparameters(self) -> dict:
        """The constructor arguments (enough to rebuild the optimiser)."""
        return dict(vars(self))

    def init_state(self, params) -> OptimizerState:
        """Fresh state: ``t = 0`` and zero buffers shaped like ``params``."""
        return OptimizerState(0, {name: _zeros_like(params) for name in self.buffer_names})

    def step(self, params, grads, state: OptimizerState, *, lr: float | None = None):
        """``(steps, new_state)`` for gradients ``grads``; mutates nothing.

        ``lr`` overrides ``self.lr`` for this call only (learning-rate decay).
        """
        eta = self.lr if lr is None else check_positive(lr, "lr")
        check_like_params(grads, params, "grads")
        _check_state(params, state, self.buffer_names)
        t = state.t + 1
        steps, buffers = self._update(params, grads, state.buffers, eta, t)
        return steps, OptimizerState(t, buffers)

    def _update(self, params, grads, buffers, eta, t):  # pragma: no cover - abstract
        raise NotImplementedError


class SGD(Optimizer):
    """Vanilla stochastic gradient descent (seed 002 ``SGD``, seed 004 ``sgd``)::

    step = -eta * g
    """

    def _update(self, params, grads, buffers, eta, t):
        return _map(lambda g: -eta * g, grads), {}


class _WithMomentum(Optimizer):
    """Shared constructor of the two momentum methods: ``lr`` and ``momentum`` in [0, 1)."""

    buffer_names = ("velocity",)

    def __init__(self, lr: float = 1e-2, momentum: float = 0.9):
        super().__init__(lr)
        self.momentum = momentum


class Momentum(_WithMomentum):
    """SGD with momentum (seed 002 ``Momentum``, seed 004 ``sgd_momentum``)::

        v    <- mu * v - eta * g          (v starts at 0)
        step  = v                         (w <- w + v)

    ``momentum = mu`` in [0, 1); ``mu = 0`` is SGD.
    """

    def _update(self, params, grads, buffers, eta, t):
        mu = self.momentum
        v = _map(lambda v, g: mu * v - eta * g, buffers["velocity"], grads)
        return _map(lambda x: x.copy(), v), {"velocity": v}


class Nesterov(_WithMomentum):
    """Nesterov accelerated gradient in the look-ahead form (CS231n notes)::

        v_new = mu * v - eta * g
        step  = -mu * v + (1 + mu) * v_new

    The parameters are stored at the look-ahead point ``w + mu v``, so ``g`` is the
    gradient there, as Nesterov's method requires; ``mu = 0`` is SGD.
    """

    def _update(self, params, grads, buffers, eta, t):
        mu = self.momentum
        v_new = _map(lambda v, g: mu * v - eta * g, buffers["velocity"], grads)
        steps = _map(lambda v, vn: -mu * v + (1.0 + mu) * vn, buffers["velocity"], v_new)
        return steps, {"velocity": v_new}


class AdaGrad(Optimizer):
    """AdaGrad (seed 002 ``AdaGrad``)::

        h    <- h + g * g                 (h starts at 0)
        step  = -eta * g / (sqrt(h) + eps)

    ``eps = 1e-7`` as in seed 002.
    """

    buffer_names = ("h",)

    def __init__(self, lr: float = 1e-2, eps: float = 1e-7):
        super().__init__(lr)
        self.eps = eps

    def _update(self, params, grads, buffers, eta, t):
        h = _map(lambda h, g: h + g * g, buffers["h"], grads)
        steps = _map(lambda h, g: -eta * g / (np.sqrt(h) + self.eps), h, grads)
        return steps, {"h": h}


class RMSprop(Optimizer):
    """RMSprop::

        s    <- rho * s + (1 - rho) * g * g      (s starts at 0)
        step  = -eta * g / (sqrt(s) + eps)

    Defaults ``rho = 0.99``, ``eps = 1e-8`` (CS231n ``rmsprop``).
    """

    buffer_names = ("s",)

    def __init__(self, lr: float = 1e-2, rho: float = 0.99, eps: float = 1e-8):
        super().__init__(lr)
        self.rho = rho
        self.eps = eps

    def _update(self, params, grads, buffers, eta, t):
        rho = self.rho
        s = _map(lambda s, g: rho * s + (1.0 - rho) * g * g, buffers["s"], grads)
        steps = _map(lambda s, g: -eta * g / (np.sqrt(s) + self.eps), s, grads)
        return steps, {"s": s}


class Adam(Optimizer):
    """Adam with bias correction (Kingma and Ba, Algorithm 1)::

        t    <- t + 1                              (the first update uses t = 1)
        m    <- beta1 * m + (1 - beta1) * g        (m, v start at 0)
        v    <- beta2 * v + (1 - beta2) * g * g
        m_hat = m / (1 - beta1**t)
        v_hat = v / (1 - beta2**t)
        step  = -eta * m_hat / (sqrt(v_hat) + eps)

    Defaults ``beta1 = 0.9``, ``beta2 = 0.999``, ``eps = 1e-8``. ``t`` is the
    state's step counter (module docstring): it counts the updates including the
    current one.
    """

    buffer_names = ("m", "v")

    def __init__(self, lr: float = 1e-3, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8):
        super().__init__(lr)
        self.beta1 = beta1
        self.beta2 = beta2
        self.eps = eps

    def _update(self, params, grads, buffers, eta, t):
        b1, b2 = self.beta1, self.beta2
        m = _map(lambda m, g: b1 * m + (1.0 - b1) * g, buffers["m"], grads)
        v = _map(lambda v, g: b2 * v + (1.0 - b2) * g * g, buffers["v"], grads)
        c1, c2 = 1.0 - b1**t, 1.0 - b2**t
        steps = _map(lambda m, v: -eta * (m / c1) / (np.sqrt(v / c2) + self.eps), m, v)
        return steps, {"m": m, "v": v}


def _check_unit_interval(value, name: str) -> float:
    value = check_nonnegative(value, name)
    if value >= 1.0:
        raise ValueError(f"{name}: expected a number in [0, 1), got {value!r}")
    return value


#: Hyperparameter name -> its check (applied by ``Optimizer.__setattr__``).
_HYPERPARAMETER_CHECKS = {
    "lr": check_positive,
    "eps": check_positive,
    "momentum": _check_unit_interval,
    "rho": _check_unit_interval,
    "beta1": _check_unit_interval,
    "beta2": _check_unit_interval,
}


#: Name -> class, for the command line (a plain dict: no lookup by attribute name).
OPTIMIZERS: dict[str, type[Optimizer]] = {
    "sgd": SGD,
    "momentum": Momentum,
    "nesterov": Nesterov,
    "adagrad": AdaGrad,
    "rmsprop": RMSprop,
    "adam": Adam,
}


def make_optimizer(name: str, lr: float, **kwargs) -> Optimizer:
    """The optimiser registered under ``name`` (see :data:`OPTIMIZERS`) with learning rate ``lr``."""
    if not isinstance(name, str) or name.lower() not in OPTIMIZERS:
        raise ValueError(f"optimizer: expected one of {sorted(OPTIMIZERS)}, got {name!r}")
    return OPTIMIZERS[name.lower()](lr=lr, **kwargs)
