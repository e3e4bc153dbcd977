"""Seed 004's ``Solver``: minibatch training of a :class:`~jacobian_nn.network.Network` by either path.

One epoch is one pass over a fresh permutation of the training set, cut into
minibatches of ``batch_size`` (the last one smaller if ``batch_size`` does not
divide N). Batch norm's training mode refuses a batch of one sample, so a last
minibatch smaller than the network's ``min_train_batch`` (2 with batch norm, 1
otherwise) is merged into the one before it (:meth:`Solver.minibatches`), and a
``batch_size`` below ``min_train_batch`` is refused when the solver is built. Each
iteration::

    loss, grads  = path gradients of the minibatch (mean loss + penalty, as in Network)
    steps, state = optimizer.step(params, grads, state, lr=lr_epoch)
    net.apply_update(steps)                 # theta <- theta + step, checked before writing

with ``lr_epoch = optimizer.lr * lr_decay ** (epoch - 1)`` for epochs 1, 2, ...
(seed 004 multiplies ``learning_rate`` by ``lr_decay`` after each epoch: the same
schedule).

``path="batched"`` uses ``Network.loss_and_gradients_batched`` (with one
:class:`~jacobian_nn.batched.Workspace` for the run) and ``predict_batched``; ``path="reference"`` uses ``Network.loss_and_gradients`` and
``predict`` (explicit Jacobians, one sample at a time). Both consume the same
minibatch sequence, so with one seed the two parameter trajectories agree to
rounding (tested to 1e-10 in float64).

Randomness: the ``seed`` makes one Generator, from which two independent
children are spawned: one draws the epoch permutations, the other the fixed
training subsample used for the training accuracy. Seed 004 instead samples
minibatches *with* replacement (``np.random.choice(num_train, batch_size)``) from
the global RNG and draws a new accuracy subsample every check.

Accuracy is checked before training (epoch 0) and after every epoch: the
training accuracy on at most ``num_train_samples`` training samples, the
validation accuracy on all validation samples (or ``num_val_samples``).
The parameters with the best validation accuracy (the first one on ties; epoch 0,
the initial parameters, included) are copied and written back into the network's
own arrays at the end, together with every layer's non-trainable ``state`` (batch
norm's running statistics, which test-mode predictions use): the restored network
predicts exactly as it did when its validation accuracy was measured. Seed 004 starts from ``best_val_acc = 0`` with an empty
``best_params`` (so a model that never beats 0 is replaced by nothing) and
rebinds ``model.params`` to the copies.

Divergence: a minibatch loss that is not finite, or an overflow the network or the
optimiser refuses (:class:`~jacobian_nn._validation.NonFiniteError`: a layer's output,
a gradient or a step that is not finite), stops training. The refused iteration changes
nothing (batch norm's running statistics and the dropout Generators are put back, no
parameter is written); the best parameters seen so far
are restored, as at the end of a normal run, and :class:`TrainingDiverged` (a
``ValueError`` whose message starts with ``lr:`` and says to lower the learning rate,
carrying the ``history``) is raised.

``KeyboardInterrupt`` (Ctrl-C, or raised by a callback) stops training cleanly:
the best parameters found so far are restored, ``history.interrupted`` is True,
and ``train`` returns the history instead of raising.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

import numpy as np

from ._validation import (
    NonFiniteError,
    as_batch,
    as_generator,
    check_positive,
    check_positive_int,
    state_kept_on_refusal,
)
from .optimizers import Optimizer
from .batched import Workspace
from .losses import binary_label_matrix

PATHS = ("batched", "reference")


def _path_functions(net, path):
    """``(loss_and_gradients, predict)`` for ``path`` (a plain mapping, no getattr).

    The batched path gets one :class:`~jacobian_nn.batched.Workspace` for the whole run:
    every minibatch's large arrays are reused (bitwise the same gradients, no page faults
    on fresh temporaries). Its gradients are valid until the next minibatch, and the
    optimizer consumes them at once (its steps and buffers are new arrays)."""
    workspace = Workspace()

    def loss_and_gradients_batched(X, Y, mode):
        return net.loss_and_gradients_batched(X, Y, mode, workspace=workspace)

    table = {
        "batched": (loss_and_gradients_batched, net.predict_batched),
        "reference": (net.loss_and_gradients, net.predict),
    }
    if path not in table:
        raise ValueError(f"path: expected one of {PATHS}, got {path!r}")
    return table[path]


@dataclass
class IterationInfo:
    """What a callback receives after every parameter update."""

    iteration: int  # 1-based count of updates so far
    epoch: int  # 1-based epoch in progress
    loss: float  # minibatch loss before this update
    lr: float  # learning rate used for this update


class TrainingDiverged(ValueError):
    """Training stopped on a non-finite loss, gradient or step; the network holds the best
    parameters seen (restored). ``history`` is the run's :class:`History` up to that point."""

    def __init__(self, message: str, history: "History"):
        super().__init__(message)
        self.history = history


@dataclass
class History:
    """What happened during :meth:`Solver.train`.

    ``loss``       one entry per iteration (the minibatch loss before the update).
    ``train_acc``, ``val_acc``, ``lr``   one entry per accuracy check: index 0 is
                   before training, index k after epoch k (``lr[0]`` is the initial rate).
    ``best_epoch`` the epoch whose parameters and layer state were restored (0 = the initial ones).
    """

    loss: list = field(default_factory=list)
    train_acc: list = field(default_factory=list)
    val_acc: list = field(default_factory=list)
    lr: list = field(default_factory=list)
    best_val_acc: float = -1.0
    best_epoch: int = 0
    epochs_completed: int = 0
    iterations: int = 0
    interrupted: bool = False
    elapsed: float = 0.0
    path: str = "batched"

    def to_dict(self) -> dict:
        return {k: (list(map(float, v)) if isinstance(v, list) else v) for k, v in vars(self).items()}

    def summary(self) -> str:
        """A few lines for the end of training."""
        status = "interrupted" if self.interrupted else "finished"
        last_loss = f"{self.loss[-1]:.4f}" if self.loss else "n/a"
        train = f"{self.train_acc[self.best_epoch]:.4f}" if self.train_acc else "n/a"
        return (
            f"training {status} ({self.path} path): {self.epochs_completed} epochs, "
            f"{self.iterations} iterations in {self.elapsed:.2f} s\n"
            f"  last minibatch loss {last_loss}\n"
            f"  best validation accuracy {self.best_val_acc:.4f} at epoch {self.best_epoch} "
            f"(training accuracy there {train}); those parameters (and layer state) were restored"
        )


class _PlainProgress:
    """Epoch lines only, about 20 per run (and always the last epoch's): for output that is not a terminal,
    or when tqdm is not installed. Plain lines, no carriage returns."""

    def __init__(self, total, epochs, stream):
        self.stream, self.epochs = stream, epochs
        self.every = max(1, epochs // 20)

    def wants(self, epoch) -> bool:
        return epoch % self.every == 0 or epoch == self.epochs

    def update(self, n, loss):
        pass

    def epoch_end(self, epoch, text):
        if self.wants(epoch):
            print(text, file=self.stream, flush=True)

    def close(self):
        pass


class _TqdmProgress(_PlainProgress):
    """A tqdm bar over all iterations (on a terminal), the last epoch's accuracies after the loss; the epoch
    lines of :class:`_PlainProgress` are written above the bar with ``tqdm.write``, so they stay when the bar
    is cleared at the end."""

    def __init__(self, total, epochs, stream, tqdm):
        super().__init__(total, epochs, stream)
        self.tqdm = tqdm
        self.bar = tqdm(total=total, file=stream, unit="it", leave=False, dynamic_ncols=True)
        self.acc = ""

    def update(self, n, loss):
        self.bar.update(n)
        self.bar.set_postfix_str(f"loss={loss:.4f}{self.acc}", refresh=False)

    def epoch_end(self, epoch, text):
        self.acc = ", " + text.split(": ", 1)[1].split(", ", 1)[1]
        if self.wants(epoch):
            self.tqdm.write(text, file=self.stream)

    def close(self):
        self.bar.close()


def _is_terminal(stream) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):  # no isatty, or a closed file
        return False


def make_progress(total: int, epochs: int, stream=None):
    """A progress reporter on ``stream`` (default stderr): on a terminal, a tqdm bar (optional extra
    ``progress``) with the epoch lines written above it; otherwise, or without tqdm, plain epoch lines
    (about 20 per run, no carriage returns)."""
    stream = sys.stderr if stream is None else stream
    if not _is_terminal(stream):
        return _PlainProgress(total, epochs, stream)
    try:
        from tqdm import tqdm
    except ImportError:
        return _PlainProgress(total, epochs, stream)
    return _TqdmProgress(total, epochs, stream, tqdm)


def _check_count(value, name, upper=None, upper_name=None, allow_none=False):
    if value is None and allow_none:
        return None
    value = check_positive_int(value, name)
    if upper is not None and value > upper:
        raise ValueError(f"{name}: expected at most {upper} ({upper_name}), got {value}")
    return int(value)


def _labels(y, name, N, net):
    """Class labels ``(N,)`` in ``[0, n_out)``; for a loss with yes/no labels (``loss.binary_labels``),
    labels in [0, 1] of shape ``(N, n_out)`` (or ``(N,)`` for one output), bools included."""
    y = np.asarray(y)
    if net.loss.binary_labels:
        binary_label_matrix(y, N, net.n_out, name=name)
        return y
    if y.shape != (N,) or y.dtype.kind not in "iu":
        raise ValueError(f"{name}: expected integer labels of shape ({N},), got {y.dtype} {y.shape}")
    if y.size and (y.min() < 0 or y.max() >= net.n_out):
        raise ValueError(
            f"{name}: expected labels in [0, {net.n_out - 1}] (the network's outputs), "
            f"got values in [{y.min()}, {y.max()}]"
        )
    return y


class Solver:
    """Train ``net`` with ``optimizer`` on ``data`` (seed 004's Solver; see the module docstring).

    Parameters
    ----------
    net : Network, trained in place.
    data : a :class:`~jacobian_nn.data.Dataset`, or a dict with ``X_train`` ``(N, n)``,
        ``y_train`` ``(N,)`` int, ``X_val``, ``y_val`` (for a binary loss, yes/no labels
        ``(N, m)`` or ``(N,)`` in [0, 1], bools included).
    optimizer : an :class:`~jacobian_nn.optimizers.Optimizer` (its ``lr`` is the initial rate).
    epochs : number of passes over the training set (>= 1).
    batch_size : minibatch size, ``net.min_train_batch`` (1, or 2 with batch norm) <= batch_size <= N.
    lr_decay : multiply the learning rate by this after every epoch (> 0; 1 = constant).
    path : ``"batched"`` or ``"reference"``.
    seed : int, None or Generator for the minibatch order and the accuracy subsample.
    num_train_samples : training accuracy on at most this many samples (default 1000).
    num_val_samples : validation accuracy on at most this many samples (None: all).
    progress : show a progress bar / epoch lines on ``stream`` (default stderr).
    callback : called with an :class:`IterationInfo` after every update.
    """

    def __init__(
        self,
        net,
        data,
        optimizer: Optimizer,
        *,
        epochs: int = 10,
        batch_size: int = 100,
        lr_decay: float = 1.0,
        path: str = "batched",
        seed=0,
        num_train_samples: int | None = 1000,
        num_val_samples: int | None = None,
        progress: bool = False,
        stream=None,
        callback=None,
    ):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer: expected an Optimizer instance, got {type(optimizer).__name__}")
        get = (lambda k: data[k]) if isinstance(data, dict) else (lambda k: getattr(data, k))
        try:
            X_train, y_train, X_val, y_val = (get(k) for k in ("X_train", "y_train", "X_val", "y_val"))
        except (KeyError, AttributeError) as exc:
            raise TypeError(
                f"data: expected a Dataset or a dict with X_train, y_train, X_val, y_val; missing {exc}"
            ) from None
        self.net = net
        self.X_train = as_batch(X_train, "X_train", net.n_in, net.dtype)
        self.y_train = _labels(y_train, "y_train", self.X_train.shape[0], net)
        self.X_val = as_batch(X_val, "X_val", net.n_in, net.dtype)
        self.y_val = _labels(y_val, "y_val", self.X_val.shape[0], net)
        N = self.X_train.shape[0]
        self.optimizer = optimizer
        self.epochs = _check_count(epochs, "epochs")
        self.batch_size = _check_count(batch_size, "batch_size", N, "the number of training samples")
        min_batch = net.min_train_batch
        if self.batch_size < min_batch:
            raise ValueError(
                f"batch_size: expected at least {min_batch} (the network has a batch-coupled layer, "
                f"e.g. batch norm, whose training mode needs {min_batch} samples), got {self.batch_size}"
            )
        self.lr_decay = check_positive(lr_decay, "lr_decay")
        self.path = path
        self._loss_and_gradients, self._predict = _path_functions(net, path)
        self.seed = seed
        self.num_train_samples = _check_count(num_train_samples, "num_train_samples", allow_none=True)
        self.num_val_samples = _check_count(num_val_samples, "num_val_samples", allow_none=True)
        self.progress = bool(progress)
        self.stream = stream
        if callback is not None and not callable(callback):
            raise TypeError(f"callback: expected a callable or None, got {type(callback).__name__}")
        self.callback = callback

    # -- helpers -----------------------------------------------------------------------------

    def accuracy(self, X, y, batch_size: int = 1000) -> float:
        """Fraction of correct decisions on ``X``, predicted in chunks (test mode), as the network's loss
        decides (``Loss.count_correct``: the argmax class per sample; for the binary losses one yes/no per
        output, ``p >= 0.5`` or ``z >= 0``)."""
        correct = total = 0
        for start in range(0, X.shape[0], batch_size):
            out = self._predict(X[start : start + batch_size])
            c, n = self.net.loss.count_correct(out, y[start : start + batch_size])
            correct, total = correct + c, total + n
        return correct / total

    def _live_arrays(self):
        """Per layer, every array inference depends on: ``params`` and ``state`` (e.g. batch
        norm's running statistics), as live arrays. No layer type is special-cased."""
        return [
            {**{("param", k): v for k, v in p.items()}, **{("state", k): v for k, v in s.items()}}
            for p, s in zip(self.net.params, self.net.state)
        ]

    def _snapshot(self):
        return [{k: v.copy() for k, v in d.items()} for d in self._live_arrays()]

    def _restore(self, snapshot):
        for d, s in zip(self._live_arrays(), snapshot):
            for k in d:
                d[k][...] = s[k]

    def minibatches(self, order):
        """Cut a permutation ``order`` of the training indices into this epoch's minibatches.

        Consecutive slices of ``batch_size``; the last one is smaller when ``batch_size``
        does not divide N. If that last slice is smaller than the network's
        ``min_train_batch`` (2 with batch norm, whose training mode refuses N = 1), it is
        merged into the previous minibatch instead, which then has up to
        ``batch_size + min_train_batch - 1`` samples: every sample is still used once per
        epoch and no minibatch is refused. Networks without batch-coupled layers are never
        affected.
        """
        N, B = len(order), self.batch_size
        starts = list(range(0, N, B))
        if len(starts) > 1 and N - starts[-1] < self.net.min_train_batch:
            starts.pop()
        ends = starts[1:] + [N]
        return [order[a:b] for a, b in zip(starts, ends)]

    @staticmethod
    def _subsample(rng, N, n):
        if n is None or n >= N:
            return None
        return np.sort(rng.choice(N, size=n, replace=False))

    # -- training -------------------------------------------------------------------------------

    def train(self) -> History:
        """Run the epochs; returns the :class:`History`. The network ends with the best parameters."""
        net, opt = self.net, self.optimizer
        rng_batches, rng_eval = as_generator(self.seed).spawn(2)
        N = self.X_train.shape[0]
        tr_idx = self._subsample(rng_eval, N, self.num_train_samples)
        va_idx = self._subsample(rng_eval, self.X_val.shape[0], self.num_val_samples)
        X_tr_eval, y_tr_eval = (
            (self.X_train, self.y_train) if tr_idx is None else (self.X_train[tr_idx], self.y_train[tr_idx])
        )
        X_va_eval, y_va_eval = (self.X_val, self.y_val) if va_idx is None else (self.X_val[va_idx], self.y_val[va_idx])
        per_epoch = len(self.minibatches(np.arange(N)))
        history = History(path=self.path)
        progress = make_progress(self.epochs * per_epoch, self.epochs, self.stream) if self.progress else None
        t0 = time.perf_counter()
        state = opt.init_state(net.params)
        best = diverged = None

        def check(epoch, lr):
            nonlocal best
            history.train_acc.append(self.accuracy(X_tr_eval, y_tr_eval))
            history.val_acc.append(self.accuracy(X_va_eval, y_va_eval))
            history.lr.append(lr)
            if history.val_acc[-1] > history.best_val_acc:
                history.best_val_acc, history.best_epoch = history.val_acc[-1], epoch
                best = self._snapshot()

        try:
            check(0, opt.lr)
            for epoch in range(1, self.epochs + 1):
                lr = opt.lr * self.lr_decay ** (epoch - 1)
                for idx in self.minibatches(rng_batches.permutation(N)):
                    # a refused iteration changes nothing (running statistics and dropout Generators put
                    # back); every result is checked before it is used, so numpy's warnings are silenced
                    with state_kept_on_refusal(net, "train"), np.errstate(over="ignore", invalid="ignore"):
                        loss, grads = self._loss_and_gradients(self.X_train[idx], self.y_train[idx], "train")
                        if not np.isfinite(loss):
                            raise NonFiniteError(f"the minibatch loss is {float(loss)!r}")
                        steps, new_state = opt.step(net.params, grads, state, lr=lr)
                        net.apply_update(steps)
                    state = new_state
                    history.loss.append(float(loss))
                    history.iterations += 1
                    if progress is not None:
                        progress.update(1, float(loss))
                    if self.callback is not None:
                        self.callback(IterationInfo(history.iterations, epoch, float(loss), lr))
                check(epoch, lr)
                history.epochs_completed = epoch
                if progress is not None:
                    progress.epoch_end(
                        epoch,
                        f"epoch {epoch}/{self.epochs}: loss {history.loss[-1]:.4f}, "
                        f"train acc {history.train_acc[-1]:.4f}, val acc {history.val_acc[-1]:.4f}",
                    )
        except KeyboardInterrupt:
            history.interrupted = True
        except NonFiniteError as exc:  # diverged: the best parameters back, then say what to change
            diverged = exc
        finally:
            if progress is not None:
                progress.close()
        if best is not None:
            self._restore(best)
        if diverged is not None and best is None:  # refused before any update: not the learning rate
            raise diverged
        if diverged is not None:
            history.elapsed = time.perf_counter() - t0
            raise TrainingDiverged(
                f"lr: training diverged in epoch {history.epochs_completed + 1}, iteration "
                f"{history.iterations + 1} ({diverged}); the parameters of epoch {history.best_epoch} "
                f"(the best validation accuracy, {history.best_val_acc:.4f}) were restored; lower the "
                f"learning rate (now {opt.lr!r})",
                history,
            ) from diverged
        history.elapsed = time.perf_counter() - t0
        return history
