"""Save and load networks as ``.npz`` files, without pickle.

File layout (``numpy.savez_compressed``, read back with ``np.load(allow_pickle=False)``):

* ``__architecture__``: a 0-d unicode array holding one JSON document::

      {"format": "jacobian_nn.model", "version": 1, "dtype": "float64",
       "loss": {"name": "softmax_cross_entropy", "config": {}},
       "l2": 0.0, "l1": 0.0, "regularize_bias": false,
       "network": {"type": "Network", "config": {}},
       "layers": [{"type": "Dense", "config": {"n_in": 2, "n_out": 8,
                   "activation": {"name": "relu", "config": {}}},
                   "arrays": ["W", "b"], "state": []}, ...]}

* ``layers/<i>/<name>``: the arrays of layer ``i`` listed in its ``"arrays"`` and
  ``"state"``, saved with their own dtype and shape, so the round trip is bit-exact.

``"state"`` lists the layer's non-trainable arrays (``layer.state``, e.g. batch
norm's ``running_mean`` and ``running_var``). They are saved and restored for every
layer type generically: after ``from_record`` builds the layer, the loader writes
each saved state array into the new layer's ``state`` array of the same name, and
refuses a file whose state names, shapes or dtype disagree with the layer.

``"network"`` names the network class: ``"Network"``, or ``"FullyConnectedNet"``
with ``{"hidden_dims", "dropout", "use_batchnorm"}``, which loads back as a
:class:`~jacobian_nn.fcnet.FullyConnectedNet` (seed 004's names, flattened inputs)
holding the loaded layers. Files written before these two keys existed load as a
plain Network with no state.

Built-in layer types: ``Dense``; ``BatchNorm`` (``m``, ``eps``, ``momentum``,
``update_running``, ``dtype``; arrays ``gamma``, ``beta``; state ``running_mean``,
``running_var``); ``Dropout`` (``m``, ``p``, ``dtype``, ``rng``);
``ActivationLayer`` (``m``, ``activation``, ``dtype``).

Dropout's Generator. ``"rng"`` holds the exact state of the layer's
``numpy.random.Generator`` at save time (its bit generator's name and ``state``,
integers as JSON numbers, arrays as lists). A loaded dropout layer gets a
Generator in that same state: it draws exactly the masks the saved layer would
have drawn next, so a run resumed from a file, or two loads of one file, are
reproducible. For different masks, give the loaded layer a new Generator
(``layer.rng = np.random.default_rng(seed)``). A mask fixed temporarily with
``using_mask`` is not saved.

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
from .fcnet import FullyConnectedNet
from .layernorm import LayerNorm
from .layers import Dense
from .losses import LOSSES
from .network import Network
from .normalization import ActivationLayer, BatchNorm, Dropout

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


def _check_layer_dtype(config, dtype_name):
    if config["dtype"] != dtype_name:
        raise ValueError(f"dtype: the layer says {config['dtype']!r}, the architecture says {dtype_name!r}")


def _batchnorm_to_record(layer):
    config = {"m": layer.n_in, "eps": layer.eps, "momentum": layer.momentum,
              "update_running": layer.update_running, "dtype": str(layer.dtype)}
    return config, {"gamma": layer.gamma, "beta": layer.beta}


def _batchnorm_from_record(config, arrays):
    gamma = arrays["gamma"]
    _check_layer_dtype(config, str(gamma.dtype))
    # running_mean / running_var are state: written by the loader after this returns
    return BatchNorm(config["m"], eps=config["eps"], momentum=config["momentum"], gamma=gamma,
                     beta=arrays["beta"], update_running=config["update_running"], dtype=gamma.dtype)


def _layernorm_to_record(layer):
    return {"m": layer.n_in, "eps": layer.eps, "dtype": str(layer.dtype)}, {"gamma": layer.gamma,
                                                                           "beta": layer.beta}


def _layernorm_from_record(config, arrays):
    gamma = arrays["gamma"]
    _check_layer_dtype(config, str(gamma.dtype))
    return LayerNorm(config["m"], eps=config["eps"], gamma=gamma, beta=arrays["beta"], dtype=gamma.dtype)


#: Bit generators a saved dropout Generator may use (a plain table, no lookup by attribute name).
BIT_GENERATORS = {cls.__name__: cls for cls in (np.random.PCG64, np.random.PCG64DXSM, np.random.MT19937,
                                                 np.random.Philox, np.random.SFC64)}


def _encode_state(value):
    """A bit generator's ``state`` dict -> JSON-able: ints stay ints, arrays become tagged lists."""
    if isinstance(value, dict):
        return {k: _encode_state(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return {"__ndarray__": value.tolist(), "dtype": str(value.dtype)}
    if isinstance(value, np.integer):
        return int(value)
    return value


def _decode_state(value):
    if isinstance(value, dict):
        if "__ndarray__" in value:
            return np.array(value["__ndarray__"], dtype=np.dtype(value["dtype"]))
        return {k: _decode_state(v) for k, v in value.items()}
    return value


def generator_record(rng: np.random.Generator) -> dict:
    """The exact state of ``rng`` as JSON-able data (see the module docstring)."""
    state = rng.bit_generator.state
    if state["bit_generator"] not in BIT_GENERATORS:
        raise TypeError(f"rng: cannot save a Generator on {state['bit_generator']} "
                        f"(known: {sorted(BIT_GENERATORS)})")
    return _encode_state(state)


def generator_from_record(record: dict) -> np.random.Generator:
    """A Generator in the state described by :func:`generator_record`."""
    name = record.get("bit_generator") if isinstance(record, dict) else None
    if name not in BIT_GENERATORS:
        raise ValueError(f"rng: unknown bit generator {name!r} (known: {sorted(BIT_GENERATORS)})")
    bit_generator = BIT_GENERATORS[name]()
    bit_generator.state = _decode_state(record)
    return np.random.Generator(bit_generator)


def _dropout_to_record(layer):
    return {"m": layer.m, "p": layer.p, "dtype": str(layer.dtype), "rng": generator_record(layer.rng)}, {}


def _dropout_from_record(config, arrays):
    return Dropout(config["m"], config["p"], seed=generator_from_record(config["rng"]), dtype=config["dtype"])


def _activation_layer_to_record(layer):
    return {"m": layer.m, "activation": _activation_record(layer.activation), "dtype": str(layer.dtype)}, {}


def _activation_layer_from_record(config, arrays):
    act = config["activation"]
    return ActivationLayer(config["m"], get_activation(act["name"], **act["config"]), dtype=config["dtype"])


#: Layer type name -> (to_record, from_record). Keys are written into the file.
LAYER_TYPES: dict = {
    "Dense": (_dense_to_record, _dense_from_record),
    "BatchNorm": (_batchnorm_to_record, _batchnorm_from_record),
    "Dropout": (_dropout_to_record, _dropout_from_record),
    "ActivationLayer": (_activation_layer_to_record, _activation_layer_from_record),
    "LayerNorm": (_layernorm_to_record, _layernorm_from_record),
}
_CLASS_TO_TYPE: dict = {Dense: "Dense", BatchNorm: "BatchNorm", Dropout: "Dropout",
                        ActivationLayer: "ActivationLayer", LayerNorm: "LayerNorm"}


def _fcnet_record(net) -> dict:
    return {"hidden_dims": [int(h) for h in net.hidden_dims], "dropout": net.dropout,
            "use_batchnorm": net.use_batchnorm}


def _fcnet_from_layers(config, layers, loss, arch) -> FullyConnectedNet:
    """A FullyConnectedNet built from ``config``, then given the loaded ``layers`` (which must have
    exactly the structure the constructor builds: types and widths)."""
    net = FullyConnectedNet(config["hidden_dims"], input_dim=layers[0].n_in, num_classes=layers[-1].n_out,
                            dropout=config["dropout"], use_batchnorm=config["use_batchnorm"], reg=arch["l2"],
                            dtype=layers[0].dtype, seed=0)
    built = [(type(l).__name__, l.n_in, l.n_out) for l in net.layers]
    loaded = [(type(l).__name__, l.n_in, l.n_out) for l in layers]
    if built != loaded:
        raise ValueError(f"network: FullyConnectedNet{tuple(config.values())} has layers {built}, "
                         f"the file has {loaded}")
    if type(loss) is not type(net.loss) or arch["l1"] != 0.0 or arch["regularize_bias"]:
        raise ValueError("network: a FullyConnectedNet has softmax cross-entropy, no l1 and no bias penalty")
    net.layers = layers
    return net


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
        state = dict(getattr(layer, "state", {}))
        clash = sorted(set(state) & set(layer_arrays))
        if clash:
            raise ValueError(f"net.layers[{i}]: names {clash} are both arrays and state")
        layers.append({"type": type_name, "config": config, "arrays": sorted(layer_arrays), "state": sorted(state)})
        for name, arr in {**layer_arrays, **state}.items():
            arrays[f"layers/{i}/{name}"] = np.asarray(arr)
    network = {"type": "FullyConnectedNet", "config": _fcnet_record(net)} if isinstance(net, FullyConnectedNet) \
        else {"type": "Network", "config": {}}
    arch = {
        "format": FORMAT,
        "version": VERSION,
        "dtype": str(net.dtype),
        "loss": {"name": net.loss.name, "config": dict(vars(net.loss))},
        "l2": net.l2,
        "l1": net.l1,
        "regularize_bias": net.regularize_bias,
        "network": network,
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
        arrays, state = {}, {}
        for names, into in ((rec["arrays"], arrays), (rec.get("state", []), state)):
            for name in names:
                key = f"layers/{i}/{name}"
                if key not in contents:
                    raise ValueError(f"missing array {key!r}")
                arr = contents[key]
                if arr.dtype != dtype:
                    raise ValueError(f"array {key!r} has dtype {arr.dtype}, the architecture says {dtype}")
                into[name] = arr
                used.add(key)
        try:
            layer = LAYER_TYPES[rec["type"]][1](rec["config"], arrays)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"layers[{i}] ({rec['type']}): {exc}") from None
        if np.dtype(layer.dtype) != dtype:
            raise ValueError(f"layers[{i}] ({rec['type']}): dtype {layer.dtype}, the architecture says {dtype}")
        live = getattr(layer, "state", {})
        if sorted(live) != sorted(state):
            raise ValueError(f"layers[{i}] ({rec['type']}): state arrays {sorted(state)} in the file, "
                             f"the layer has {sorted(live)}")
        for name, arr in state.items():
            if arr.shape != live[name].shape:
                raise ValueError(f"array 'layers/{i}/{name}' has shape {arr.shape}, the layer's state "
                                 f"has {live[name].shape}")
            live[name][...] = arr
        layers.append(layer)
    extra = sorted(set(contents) - used)
    if extra:
        raise ValueError(f"unexpected arrays {extra}")
    loss = arch["loss"]
    if loss["name"] not in LOSSES:
        raise ValueError(f"loss: unknown loss {loss['name']!r}")
    loss_obj = LOSSES[loss["name"]](**loss["config"])
    network = arch.get("network", {"type": "Network", "config": {}})
    if network["type"] == "FullyConnectedNet":
        return _fcnet_from_layers(network["config"], layers, loss_obj, arch)
    if network["type"] != "Network":
        raise ValueError(f"network: unknown network type {network['type']!r} (known: Network, FullyConnectedNet)")
    return Network(layers, loss_obj, l2=arch["l2"], l1=arch["l1"], regularize_bias=arch["regularize_bias"])
