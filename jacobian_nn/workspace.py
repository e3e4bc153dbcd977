"""An explicit, opt-in set of reusable arrays for the batched training step.

Why: a batched step makes a handful of large temporaries (pre-activations ``Z``
``(N, m)``, input gradients ``dX`` ``(N, n)``, weight gradients ``(n, m)``...).
glibc serves arrays above its mmap threshold (128 KiB by default, adjusted at run
time) with fresh pages and returns them to the OS when they are freed, so a step
that allocates them anew page-faults on every one of their pages, every step
(measured: ~670 faults, about 1.5 ms, per step of the 64-100-10 network on 1797
samples; ~2700 per step of 784-512-512-10 on 128). A :class:`Workspace` holds those
arrays between calls instead: the first call allocates them, later calls with the
same shapes and dtype write into the same memory.

Contract
--------
* Opt-in and explicit: pass ``workspace=ws`` to
  :func:`jacobian_nn.batched.train_step_batched`,
  :func:`~jacobian_nn.batched.loss_and_gradients_batched` (or the ``Network.*_batched``
  methods). Nothing is stored on layers or networks.
* The results are **bitwise identical** with and without a workspace: the same numpy
  operations run, only their ``out=`` arrays differ.
* Arrays are keyed by ``(owner, role, shape, dtype)``: ``owner`` is the layer index
  (or ``"loss"`` / ``"network"``), ``role`` names the array (``"Z"``, ``"dX"``, ``"dW"``...).
  A key seen before returns the same array; a new shape (another batch size N, another
  network) allocates a new one, so one workspace may serve several batch sizes or
  networks (its memory grows with every distinct shape; :meth:`Workspace.clear` frees it).
* **Aliasing.** Whatever a call returns that lives in the workspace (the gradients of
  ``loss_and_gradients_batched(..., workspace=ws)``) is valid **until the next call with
  the same workspace**, which overwrites it. Copy it to keep it.
  ``train_step_batched`` returns only the loss (a float).
* One workspace per thread: two calls sharing a workspace must not run concurrently.
"""

from __future__ import annotations

import numpy as np


class Workspace:
    """Named preallocated arrays, allocated on first use and reused when the key matches.

    >>> ws = Workspace()
    >>> a = ws.array(0, "Z", (4, 3), np.float64)
    >>> a is ws.array(0, "Z", (4, 3), np.float64), a is ws.array(0, "Z", (5, 3), np.float64)
    (True, False)
    """

    def __init__(self):
        self._arrays: dict = {}   # (owner, role, shape as a tuple of ints, np.dtype) -> array
        self._as_given: dict = {}   # the same arrays under the key as the caller spelled it (fast path)

    def array(self, owner, role: str, shape: tuple, dtype) -> np.ndarray:
        """The array for ``(owner, role, shape, dtype)``: uninitialised the first time, afterwards
        whatever the previous user of that key left in it (callers overwrite it entirely).
        ``shape`` is a tuple (e.g. an array's ``.shape``)."""
        given = (owner, role, shape, dtype)
        arr = self._as_given.get(given)   # one dict look-up per call once warm
        if arr is None:
            shape, dtype = tuple(int(s) for s in shape), np.dtype(dtype)
            key = (owner, role, shape, dtype)
            arr = self._arrays.get(key)
            if arr is None:
                arr = self._arrays[key] = np.empty(shape, dtype)
            self._as_given[given] = arr
        return arr

    def scope(self, owner) -> "WorkspaceScope":
        """This workspace seen by one owner (a layer index, ``"loss"``): ``scope.array(role, shape, dtype)``."""
        return WorkspaceScope(self, owner)

    @property
    def nbytes(self) -> int:
        """Total bytes held."""
        return sum(a.nbytes for a in self._arrays.values())

    def __len__(self) -> int:
        return len(self._arrays)

    def clear(self) -> None:
        """Drop every array (the next call allocates again)."""
        self._arrays.clear()
        self._as_given.clear()

    def __repr__(self) -> str:
        return f"Workspace({len(self)} arrays, {self.nbytes / 2**20:.2f} MiB)"


class WorkspaceScope:
    """A :class:`Workspace` bound to one owner; what a layer or loss receives as ``workspace=``."""

    __slots__ = ("workspace", "owner")

    def __init__(self, workspace: Workspace, owner):
        self.workspace, self.owner = workspace, owner

    def array(self, role: str, shape, dtype) -> np.ndarray:
        return self.workspace.array(self.owner, role, shape, dtype)


def buffer(workspace, role: str, shape, dtype):
    """``workspace.array(role, shape, dtype)``, or None without a workspace: the value to pass as
    numpy's ``out=``, so that one line of code serves both cases (``out=None`` allocates)."""
    return None if workspace is None else workspace.array(role, shape, dtype)
