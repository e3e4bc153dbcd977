"""The repository's ``bench/`` and ``proofs/`` folders, reached from inside the package.

A checkout has them as top-level packages (``python -m bench``, ``python -m proofs``).
An installed copy has them inside the package, as ``jacobian_nn._bench`` and
``jacobian_nn._proofs`` (``pip install .`` puts only ``jacobian_nn`` into
site-packages, so no generic top-level name collides with another distribution).
"""

from __future__ import annotations

import importlib
from types import ModuleType

#: Folders of the repository that install as ``jacobian_nn._<name>``.
BUNDLED = ("bench", "proofs")


def bundled(name: str, module: str = "") -> ModuleType:
    """Import ``<name>[.<module>]`` for ``name`` in :data:`BUNDLED`: the installed subpackage
    ``jacobian_nn._<name>`` when it exists, else the checkout's top-level package ``<name>``.

    An import error raised *inside* the installed subpackage (a missing dependency, say)
    propagates; only the subpackage's own absence falls back to the checkout.
    """
    if name not in BUNDLED:
        raise ValueError(f"name: expected one of {BUNDLED}, got {name!r}")
    suffix = f".{module}" if module else ""
    installed = f"{__package__}._{name}"
    try:
        importlib.import_module(installed)
    except ModuleNotFoundError as e:
        if e.name != installed:
            raise
        return importlib.import_module(name + suffix)
    return importlib.import_module(installed + suffix)
