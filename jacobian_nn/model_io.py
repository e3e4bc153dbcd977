"""Save and load networks as ``.npz`` files, without pickle.

File layout (``numpy.savez_compressed``, read back with ``np.load(allow_pickle=False)``):

* ``__architecture__``: a 0-d unicode array holding one JSON document::

      {"format": "jacobian_nn.model", "version": 1, "dtype": "float64",
       "loss": {"name": "softmax_cross_entropy", "config": {}},
       "l2": 0.0, "l1": 0.0, "regularize_bias": false,
       "layers": [{"type": "Dense", "config": {"n_in": 2, "n_out": 8,
                   "activation": {"name": "relu", "config": {}}},
                   "arrays": ["W", "b"]}, ...]}

* ``layers/<i>/<name>``: the arrays of layer ``i`` listed in its ``"arrays"``, saved
  with their own dtype and shape, so the round trip is bit-exact.

Each layer entry carries a ``"type"``; :data:`LAYER_TYPES` maps the type name to a
pair ``(to_record, from_record)``::

    to_record(layer)             -> (config: JSON-able dict, arrays: {name: ndarray})
    from_record(config, arrays)  -> layer

Another layer type (batch normalisation with its running statistics, dropout, ...)
becomes saveable by :func:`register_layer_type`; nothing else changes.

Loading checks everything and raises ``ValueError`` naming the file and the
problem for a damaged file, a file of another format, an unknown layer type, a
missing or extra array, or a shape/dtype that disagrees with the architecture.
"""

from __future__ import annotations

import json
import os
import zipfile

import numpy as np

from ._validation import FLOAT_DTYPES
from .activations import get_activation
from .layers import Dense
from .losses import LOSSES
from .network import Network

FORMAT = "jacobian_nn.model"
VERSION = 1
ARCH_KEY = "__architecture__"


def _activation_record(act) -> dict:
    return {"name": act.name, "config": act.config()}


def _dense_to_record(layer):
    config = {"n_in": layer.n_in, "n_out": layer.n_out, "activation": _activation_record(layer.activation)}
    return config, {"W": layer.W, "b": layer.b}


def _dense_from_record(config, arrays):
    act = config["activation"]
    layer = Dense.from_params(arrays["W"], arrays["b"], get_activation(act["name"], **act["config"]))
    if (layer.n_in, layer.n_out) != (config["n_in"], config["n_out"]):
        raise ValueError(f"W has shape {layer.W.shape}, the architecture says ({config['n_in']}, {config['n_out']})")
    return layer


#: Layer type name -> (to_record, from_record). Keys are written into the file.
LAYER_TYPES: dict = {"Dense": (_dense_to_record, _dense_from_record)}
_CLASS_TO_TYPE: dict = {Dense: "Dense"}


def register_layer_type(name: str, cls: type, to_record, from_record) -> None:
    """Make layers of class ``cls`` saveable under the type name ``name`` (see the module docstring)."""
    if name in LAYER_TYPES and _CLASS_TO_TYPE.get(cls) != name:
        raise ValueError(f"name: layer type {name!r} is already registered")
    LAYER_TYPES[name] = (to_record, from_record)
    _CLASS_TO_TYPE[cls] = name


def architecture(net: Network) -> dict:
    """The JSON-able description of ``net`` (without the arrays)."""
    return _records(net)[0]


def _records(net: Network):
    layers, arrays = [], {}
    for i, layer in enumerate(net.layers):
        type_name = _CLASS_TO_TYPE.get(type(layer))
        if type_name is None:
            raise TypeError(f"net.layers[{i}]: no saver registered for {type(layer).__name__} "
                            f"(known: {sorted(LAYER_TYPES)}); use register_layer_type")
        config, layer_arrays = LAYER_TYPES[type_name][0](layer)
        layers.append({"type": type_name, "config": config, "arrays": sorted(layer_arrays)})
        for name, arr in layer_arrays.items():
            arrays[f"layers/{i}/{name}"] = np.asarray(arr)
    arch = {
        "format": FORMAT,
        "version": VERSION,
        "dtype": str(net.dtype),
        "loss": {"name": net.loss.name, "config": dict(vars(net.loss))},
        "l2": net.l2,
        "l1": net.l1,
        "regularize_bias": net.regularize_bias,
        "layers": layers,
    }
    return arch, arrays


def save_model(net: Network, path) -> str:
    """Write ``net`` to ``path`` (``.npz`` is appended by numpy if missing); returns the path written."""
    arch, arrays = _records(net)
    path = os.fspath(path)
    if not path.endswith(".npz"):
        path += ".npz"
    np.savez_compressed(path, **{ARCH_KEY: np.array(json.dumps(arch))}, **arrays)
    return path


def load_model(path) -> Network:
    """Rebuild the network saved at ``path`` (bit-exact parameters); ``ValueError`` if the file is
    damaged or not a jacobian_nn model, ``FileNotFoundError`` if it does not exist."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"model file not found: {path}")
    try:
        f = np.load(path, allow_pickle=False)
        if not isinstance(f, np.lib.npyio.NpzFile):
            raise ValueError("it holds a single .npy array, not an .npz archive")
        with f:
            contents = {k: f[k] for k in f.files}
    except ValueError as exc:
        raise ValueError(f"{path}: not a jacobian_nn model file ({exc})") from None
    except (OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise ValueError(f"{path}: damaged or not an .npz file ({type(exc).__name__}: {exc})") from None
    try:
        return _from_contents(contents)
    except (KeyError, TypeError, ValueError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a valid jacobian_nn model file: {exc}") from None


def _from_contents(contents: dict) -> Network:
    if ARCH_KEY not in contents:
        raise ValueError(f"no {ARCH_KEY!r} entry (arrays present: {sorted(contents)[:5]})")
    raw = contents.pop(ARCH_KEY)
    if raw.shape != () or raw.dtype.kind != "U":
        raise ValueError(f"{ARCH_KEY!r} must be a 0-d string array, got {raw.dtype} {raw.shape}")
    arch = json.loads(str(raw))
    if not isinstance(arch, dict) or arch.get("format") != FORMAT:
        raise ValueError(f"format: expected {FORMAT!r}, got {arch.get('format') if isinstance(arch, dict) else arch!r}")
    if arch.get("version") != VERSION:
        raise ValueError(f"version: this reader knows version {VERSION}, the file has {arch.get('version')!r}")
    dtype = np.dtype(arch["dtype"])
    if dtype not in FLOAT_DTYPES:
        raise ValueError(f"dtype: expected float64 or float32, got {dtype}")
    layers, used = [], set()
    for i, rec in enumerate(arch["layers"]):
        if rec["type"] not in LAYER_TYPES:
            raise ValueError(f"layers[{i}]: unknown layer type {rec['type']!r} (known: {sorted(LAYER_TYPES)})")
        arrays = {}
        for name in rec["arrays"]:
            key = f"layers/{i}/{name}"
            if key not in contents:
                raise ValueError(f"missing array {key!r}")
            arr = contents[key]
            if arr.dtype != dtype:
                raise ValueError(f"array {key!r} has dtype {arr.dtype}, the architecture says {dtype}")
            arrays[name] = arr
            used.add(key)
        try:
            layers.append(LAYER_TYPES[rec["type"]][1](rec["config"], arrays))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"layers[{i}] ({rec['type']}): {exc}") from None
    extra = sorted(set(contents) - used)
    if extra:
        raise ValueError(f"unexpected arrays {extra}")
    loss = arch["loss"]
    if loss["name"] not in LOSSES:
        raise ValueError(f"loss: unknown loss {loss['name']!r}")
    return Network(layers, LOSSES[loss["name"]](**loss["config"]), l2=arch["l2"], l1=arch["l1"],
                   regularize_bias=arch["regularize_bias"])
