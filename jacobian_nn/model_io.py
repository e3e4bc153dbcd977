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
``ActivationLayer`` (``m``, ``activation``, ``dtype``); ``Conv2D`` (``input_shape``, ``n_filters``,
``kernel_size``, ``stride``, ``pad``, ``activation``; arrays ``W``, ``b``); ``MaxPool2D`` and ``AvgPool2D``
(``input_shape``, ``pool_size``, ``stride``, ``dtype``); ``SpatialBatchNorm`` (``input_shape`` and
BatchNorm's config, arrays and state).

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

import contextlib
import json
import math
import os
import re
import struct
import tempfile
import zipfile
import zlib

import numpy as np

from ._validation import all_finite, is_integer, is_real
from .activations import ACTIVATIONS, get_activation
from .conv import AvgPool2D, Conv2D, MaxPool2D, SpatialBatchNorm
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
    config = {
        "m": layer.n_in,
        "eps": layer.eps,
        "momentum": layer.momentum,
        "update_running": layer.update_running,
        "dtype": str(layer.dtype),
    }
    return config, {"gamma": layer.gamma, "beta": layer.beta}


def _batchnorm_from_record(cls, size: str):
    """``from_record`` of a batch norm class whose first argument is ``config[size]``:
    ``BatchNorm`` (``"m"``, the width) or ``SpatialBatchNorm`` (``"input_shape"``)."""

    def from_record(config, arrays):
        gamma = arrays["gamma"]
        _check_layer_dtype(config, str(gamma.dtype))
        # running_mean / running_var are state: written by the loader after this returns
        return cls(
            config[size],
            eps=config["eps"],
            momentum=config["momentum"],
            gamma=gamma,
            beta=arrays["beta"],
            update_running=config["update_running"],
            dtype=gamma.dtype,
        )

    return from_record


def _layernorm_to_record(layer):
    return {"m": layer.n_in, "eps": layer.eps, "dtype": str(layer.dtype)}, {"gamma": layer.gamma, "beta": layer.beta}


def _layernorm_from_record(config, arrays):
    gamma = arrays["gamma"]
    _check_layer_dtype(config, str(gamma.dtype))
    return LayerNorm(config["m"], eps=config["eps"], gamma=gamma, beta=arrays["beta"], dtype=gamma.dtype)


#: Bit generators a saved dropout Generator may use (a plain table, no lookup by attribute name).
BIT_GENERATORS = {
    cls.__name__: cls
    for cls in (np.random.PCG64, np.random.PCG64DXSM, np.random.MT19937, np.random.Philox, np.random.SFC64)
}


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
            if value.get("dtype") not in ("uint32", "uint64"):  # an allow-list: no dtype string from a file
                raise ValueError(f"rng: array dtype must be 'uint32' or 'uint64', got {value.get('dtype')!r}")
            return np.array(value["__ndarray__"], dtype=np.dtype(value["dtype"]))
        return {k: _decode_state(v) for k, v in value.items()}
    return value


def generator_record(rng: np.random.Generator) -> dict:
    """The exact state of ``rng`` as JSON-able data (see the module docstring)."""
    state = rng.bit_generator.state
    if state["bit_generator"] not in BIT_GENERATORS:
        raise TypeError(f"rng: cannot save a Generator on {state['bit_generator']} (known: {sorted(BIT_GENERATORS)})")
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


def _conv_to_record(layer):
    config = {
        "input_shape": list(layer.input_shape),
        "n_filters": int(layer.W.shape[0]),
        "kernel_size": list(layer.kernel_size),
        "stride": layer.stride,
        "pad": layer.pad,
        "activation": _activation_record(layer.activation),
    }
    return config, {"W": layer.W, "b": layer.b}


def _conv_from_record(config, arrays):
    act = config["activation"]
    layer = Conv2D.from_params(
        arrays["W"],
        arrays["b"],
        config["input_shape"],
        stride=config["stride"],
        pad=config["pad"],
        activation=get_activation(act["name"], **act["config"]),
    )
    if [int(layer.W.shape[0]), *layer.kernel_size] != [config["n_filters"], *config["kernel_size"]]:
        raise ValueError(
            f"W has shape {layer.W.shape}, the architecture says {config['n_filters']} filters "
            f"of {config['kernel_size']}"
        )
    return layer


def _pool_to_record(layer):
    return {
        "input_shape": list(layer.input_shape),
        "pool_size": list(layer.pool_size),
        "stride": layer.stride,
        "dtype": str(layer.dtype),
    }, {}


def _pool_from_record(cls):
    def from_record(config, arrays):
        return cls(config["input_shape"], config["pool_size"], stride=config["stride"], dtype=config["dtype"])

    return from_record


def _spatial_batchnorm_to_record(layer):
    config, arrays = _batchnorm_to_record(layer.bn)
    del config["m"]
    return {"input_shape": list(layer.input_shape), **config}, arrays


#: Layer type name -> (to_record, from_record). Keys are written into the file.
LAYER_TYPES: dict = {
    "Dense": (_dense_to_record, _dense_from_record),
    "BatchNorm": (_batchnorm_to_record, _batchnorm_from_record(BatchNorm, "m")),
    "Dropout": (_dropout_to_record, _dropout_from_record),
    "ActivationLayer": (_activation_layer_to_record, _activation_layer_from_record),
    "Conv2D": (_conv_to_record, _conv_from_record),
    "MaxPool2D": (_pool_to_record, _pool_from_record(MaxPool2D)),
    "AvgPool2D": (_pool_to_record, _pool_from_record(AvgPool2D)),
    "SpatialBatchNorm": (_spatial_batchnorm_to_record, _batchnorm_from_record(SpatialBatchNorm, "input_shape")),
    "LayerNorm": (_layernorm_to_record, _layernorm_from_record),
}
_CLASS_TO_TYPE: dict = {
    Dense: "Dense",
    BatchNorm: "BatchNorm",
    Dropout: "Dropout",
    ActivationLayer: "ActivationLayer",
    Conv2D: "Conv2D",
    MaxPool2D: "MaxPool2D",
    AvgPool2D: "AvgPool2D",
    SpatialBatchNorm: "SpatialBatchNorm",
    LayerNorm: "LayerNorm",
}


def _fcnet_record(net) -> dict:
    return {
        "hidden_dims": [int(h) for h in net.hidden_dims],
        "dropout": net.dropout,
        "use_batchnorm": net.use_batchnorm,
    }


def _fcnet_from_layers(config, layers, loss, arch) -> FullyConnectedNet:
    """A FullyConnectedNet built from ``config``, then given the loaded ``layers`` (which must have
    exactly the structure the constructor builds: types and widths)."""
    widths = [l.n_out for l in layers if isinstance(l, Dense)][:-1]
    if list(config["hidden_dims"]) != widths:  # before building anything of the declared widths
        raise ValueError(
            f"network: FullyConnectedNet hidden_dims {config['hidden_dims']}, the file's dense "
            f"layers have hidden widths {widths}"
        )
    rates = {l.p for l in layers if isinstance(l, Dropout)}
    if rates - {config["dropout"]} or (config["dropout"] > 0) != bool(rates):
        raise ValueError(
            f"network: FullyConnectedNet dropout {config['dropout']}, the file's dropout layers have "
            f"p = {sorted(rates)}"
        )
    net = FullyConnectedNet(
        config["hidden_dims"],
        input_dim=layers[0].n_in,
        num_classes=layers[-1].n_out,
        dropout=config["dropout"],
        use_batchnorm=config["use_batchnorm"],
        reg=arch["l2"],
        dtype=layers[0].dtype,
        seed=0,
    )
    built = [(type(l).__name__, l.n_in, l.n_out) for l in net.layers]
    loaded = [(type(l).__name__, l.n_in, l.n_out) for l in layers]
    if built != loaded:
        raise ValueError(
            f"network: FullyConnectedNet{tuple(config.values())} has layers {built}, the file has {loaded}"
        )
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
            raise TypeError(
                f"net.layers[{i}]: no saver registered for {type(layer).__name__} "
                f"(known: {sorted(LAYER_TYPES)}); use register_layer_type"
            )
        config, layer_arrays = LAYER_TYPES[type_name][0](layer)
        state = dict(getattr(layer, "state", {}))
        clash = sorted(set(state) & set(layer_arrays))
        if clash:
            raise ValueError(f"net.layers[{i}]: names {clash} are both arrays and state")
        layers.append({"type": type_name, "config": config, "arrays": sorted(layer_arrays), "state": sorted(state)})
        for name, arr in {**layer_arrays, **state}.items():
            arrays[f"layers/{i}/{name}"] = np.asarray(arr)
    network = (
        {"type": "FullyConnectedNet", "config": _fcnet_record(net)}
        if isinstance(net, FullyConnectedNet)
        else {"type": "Network", "config": {}}
    )
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
    """Write ``net`` to ``path`` (``.npz`` is appended if missing); returns the path written.

    Atomic: the archive is written to a temporary file in the target's folder, flushed to disk, then
    moved over ``path`` with ``os.replace``. If anything fails (a full disk, an interrupt) the temporary
    file is removed and a file that was at ``path`` before is left exactly as it was. Every parameter
    and state array must be finite (``ValueError`` naming the layer and array, before anything is
    written); ``FileNotFoundError`` if the target's folder does not exist.
    """
    path = check_output_path(path, "path", suffix=".npz")
    arch, arrays = _records(net)
    for key, arr in arrays.items():
        if arr.dtype.kind != "f" or not all_finite(arr):
            raise ValueError(
                f"net: array {key!r} is not finite (NaN or inf); a saved model must be finite, nothing was written"
            )
    payload = {ARCH_KEY: np.array(json.dumps(arch, allow_nan=False)), **arrays}
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez_compressed(f, **payload)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _new_file_mode(path))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return path


def check_output_path(path, name: str, suffix: str | None = None) -> str:
    """``path`` as a string (``suffix`` appended if missing) after checking that a file can be created
    there: its folder exists and is writable and the path is not a directory. Writes nothing.
    ``TypeError``/``FileNotFoundError``/``ValueError``/``PermissionError`` name ``name``."""
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"{name}: expected a file path, got {type(path).__name__}")
    path = os.fsdecode(os.fspath(path))
    if not path or "\0" in path:
        raise ValueError(f"{name}: expected a file path, got {path!r}")
    if suffix is not None and not path.endswith(suffix):
        path += suffix
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{name}: the folder {folder} of {path} does not exist")
    if os.path.isdir(path):
        raise ValueError(f"{name}: {path} is a directory, expected a file path")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(f"{name}: cannot create files in {folder} (no write permission)")
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise PermissionError(f"{name}: {path} exists and is not writable")
    return path


def _new_file_mode(path) -> int:
    """The mode an ordinary ``open(path, "w")`` would give: the old file's, or 0o666 minus the umask."""
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


# --------------------------------------------------------------------------- loading, file checks first

#: Largest architecture JSON accepted (bytes of its UTF-32 .npy payload) and its deepest nesting.
MAX_ARCH_BYTES = 2 << 20
MAX_JSON_DEPTH = 12
#: Largest zip central directory accepted (bytes; about 10 000 arrays) and number of members.
MAX_CENTRAL_DIRECTORY = 1 << 20
MAX_MEMBERS = 10_000
#: deflate cannot expand by more than 1032:1; a member claiming more lies about its size.
MAX_DEFLATE_RATIO = 1032
#: Default memory budget for the arrays: max(MIN_BUDGET, BUDGET_FACTOR * file size) bytes.
MIN_BUDGET = 64 << 20
BUDGET_FACTOR = 64
#: The only array encodings a model file may hold (little-endian float64 / float32).
ARRAY_DTYPES = {"float64": np.dtype("<f8"), "float32": np.dtype("<f4")}
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}\Z")
_ARCH_MEMBER = ARCH_KEY + ".npy"


class _Refused(ValueError):
    """A refusal for one field of the file; :func:`load_model` adds the file name."""

    def __init__(self, field: str, message: str):
        super().__init__(f"{field}: {message}")


def load_model(path, *, max_bytes: int | None = None) -> Network:
    """Rebuild the network saved at ``path`` (bit-exact parameters).

    The file is treated as hostile until checked. In order, before any array is allocated: the zip
    directory (size, member names, compression methods), the architecture JSON (size, nesting depth,
    every key and type), every declared size against the ``.npy`` header of the matching member
    (shape, an allow-listed dtype, and the member's compressed and uncompressed sizes), and the total
    against the memory budget ``max_bytes`` (default ``max(64 MiB, 64 x file size)``). Only the members
    the architecture names are read; an unknown member is refused without being read.

    Every refusal is a ``ValueError`` naming the file and the field (``layers[0].config.n_out``,
    ``layers/0/W``, ...); ``FileNotFoundError`` if ``path`` does not exist.
    """
    if not isinstance(path, (str, bytes, os.PathLike)):
        raise TypeError(f"path: expected a file path, got {type(path).__name__}")
    path = os.fsdecode(os.fspath(path))
    if not os.path.isfile(path):
        raise FileNotFoundError(f"model file not found: {path}")
    if max_bytes is not None and (not is_integer(max_bytes) or max_bytes < 1):
        raise ValueError(f"max_bytes: expected a positive integer or None, got {max_bytes!r}")
    try:
        return _load_checked(path, max_bytes)
    except _Refused as exc:
        raise ValueError(f"{path}: not a valid jacobian_nn model file: {exc}") from None
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError) as exc:
        raise ValueError(f"{path}: damaged or not an .npz file ({type(exc).__name__}: {exc})") from None


def _load_checked(path, max_bytes):
    file_size = os.path.getsize(path)
    budget = max(MIN_BUDGET, BUDGET_FACTOR * file_size) if max_bytes is None else int(max_bytes)
    with open(path, "rb") as fh:
        _check_zip_directory(fh, file_size)
        with zipfile.ZipFile(fh) as zf:
            infos = {}
            for info in zf.infolist():
                if info.filename in infos:
                    raise _Refused(info.filename, "appears twice in the archive")
                if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                    raise _Refused(
                        info.filename, f"compression method {info.compress_type} (expected stored or deflate)"
                    )
                infos[info.filename] = info
            if _ARCH_MEMBER not in infos:
                raise _Refused(ARCH_KEY, f"no architecture entry (members: {sorted(infos)[:5]})")
            arch = _read_architecture(zf, infos[_ARCH_MEMBER], file_size)
            expected = _expected_arrays(arch)  # {member: (field, shape or None)}
            unknown = sorted(set(infos) - set(expected) - {_ARCH_MEMBER})
            if unknown:
                raise _Refused("arrays", f"unexpected members {unknown[:5]} (not read)")
            missing = sorted(set(expected) - set(infos))
            if missing:
                raise _Refused(expected[missing[0]][0], f"missing array {expected[missing[0]][0]!r}")
            dtype = ARRAY_DTYPES[arch["dtype"]]
            headers, total = {}, 0
            for member, (field, shape) in expected.items():
                headers[member] = _array_header(zf, infos[member], field, shape, dtype, file_size)
                total += headers[member][2]
                if total > budget:
                    raise _Refused(
                        field,
                        f"the arrays need more than {total} bytes, over the memory budget of "
                        f"{budget} bytes (max(64 MiB, 64 x the file's {file_size} bytes); "
                        f"pass max_bytes to load a larger model)",
                    )
            arrays = {
                member: _read_array(zf, infos[member], expected[member][0], dtype, *headers[member])
                for member in expected
            }
    return _build(arch, {expected[m][0]: a for m, a in arrays.items()})


def _check_zip_directory(fh, file_size):
    """Refuse a zip whose end record declares an oversized central directory, before zipfile reads it."""
    tail_len = min(file_size, 22 + 65535)
    fh.seek(file_size - tail_len)
    tail = fh.read(tail_len)
    at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < 22:
        raise zipfile.BadZipFile("no zip end-of-central-directory record")
    _, _, _, _, n_entries, cd_size, _, _ = struct.unpack("<4s4H2LH", tail[at : at + 22])
    if cd_size > MAX_CENTRAL_DIRECTORY or n_entries > MAX_MEMBERS:
        raise _Refused(
            "archive",
            f"a central directory of {cd_size} bytes and {n_entries} members "
            f"(at most {MAX_CENTRAL_DIRECTORY} bytes and {MAX_MEMBERS} members)",
        )
    fh.seek(0)


def _read_npy_header(stream, field):
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            return np.lib.format.read_array_header_1_0(stream, max_header_size=4096)
        if version == (2, 0):
            return np.lib.format.read_array_header_2_0(stream, max_header_size=4096)
    except (ValueError, SyntaxError, TypeError) as exc:
        raise _Refused(field, f"bad .npy header ({exc})") from None
    raise _Refused(field, f".npy format version {version} (expected 1.0 or 2.0)")


def _check_member_sizes(info, field, nbytes, header_len, file_size):
    if info.file_size != header_len + nbytes:
        raise _Refused(
            field,
            f"the .npy header declares {nbytes} bytes of data, the archive member holds {info.file_size - header_len}",
        )
    if info.compress_size > file_size:
        raise _Refused(field, f"compressed size {info.compress_size} exceeds the file's {file_size} bytes")
    limit = info.compress_size * (MAX_DEFLATE_RATIO if info.compress_type == zipfile.ZIP_DEFLATED else 1) + 64
    if info.file_size > limit:
        raise _Refused(
            field,
            f"claims {info.file_size} bytes from {info.compress_size} compressed bytes "
            f"(impossible for its compression method: a zip bomb or a damaged file)",
        )


def _read_architecture(zf, info, file_size):
    field = ARCH_KEY
    if info.file_size > MAX_ARCH_BYTES:
        raise _Refused(field, f"{info.file_size} bytes, more than the {MAX_ARCH_BYTES} an architecture may take")
    with zf.open(info) as stream:
        shape, fortran, dtype = _read_npy_header(stream, field)
        if shape != () or dtype.kind != "U" or dtype.byteorder == ">":
            raise _Refused(field, f"expected a 0-d string array, got {dtype} {shape}")
        header_len = stream.tell()
        _check_member_sizes(info, field, dtype.itemsize, header_len, file_size)
        raw = stream.read(dtype.itemsize)
    text = str(np.frombuffer(raw, dtype=dtype.newbyteorder("<"))[0])
    if _json_depth(text) > MAX_JSON_DEPTH:
        raise _Refused(field, f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        arch = json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:
        raise _Refused(field, f"not valid JSON ({exc})") from None
    return _check_architecture(arch)


def _refuse_constant(name):
    raise ValueError(f"non-finite number {name}")


def _json_depth(text: str) -> int:
    """Deepest nesting of ``[``/``{`` in a JSON text, outside strings (no parsing, no recursion)."""
    depth = deepest = 0
    for m in re.finditer(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', text):
        c = m.group()
        if c in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif c in "]}":
            depth -= 1
    return deepest


# -- the architecture's schema: every key and type, before anything is built


def _expect(cond, field, message):
    if not cond:
        raise _Refused(field, message)


def _dict(value, field, required, optional=()):
    _expect(isinstance(value, dict), field, f"expected an object, got {type(value).__name__}")
    keys = set(value)
    _expect(
        set(required) <= keys <= set(required) | set(optional),
        field,
        f"expected keys {sorted(required)}"
        + (f" (optional {sorted(optional)})" if optional else "")
        + f", got {sorted(keys)}",
    )
    return value


def _int(value, field, low=1, high=1 << 40):
    _expect(
        is_integer(value) and low <= value <= high,
        field,
        f"expected an integer in [{low}, {high}], got {value!r}",
    )
    return value


def _number(value, field, low=0.0, high=float("inf")):
    _expect(
        is_real(value) and np.isfinite(value) and low <= value <= high,
        field,
        f"expected a finite number in [{low}, {high}], got {value!r}",
    )
    return value


def _bool(value, field):
    _expect(isinstance(value, bool), field, f"expected true or false, got {value!r}")
    return value


def _scalars(value, field):
    _dict(value, field, (), value.keys() if isinstance(value, dict) else ())
    for k, v in value.items():
        _expect(
            isinstance(v, bool) or (is_real(v) and np.isfinite(v)),
            f"{field}.{k}",
            f"expected a finite number or a boolean, got {v!r}",
        )
    return value


def _named(value, field, table):
    _dict(value, field, ("name", "config"))
    _expect(
        isinstance(value["name"], str) and value["name"] in table,
        f"{field}.name",
        f"expected one of {sorted(table)}, got {value['name']!r}",
    )
    _scalars(value["config"], f"{field}.config")
    return value


def _dtype_name(value, field, arch_dtype):
    _expect(value == arch_dtype, field, f"expected {arch_dtype!r} (the architecture's dtype), got {value!r}")


def _rng_record(value, field):
    _dict(value, field, ("bit_generator", "state"), ("has_uint32", "uinteger"))
    _expect(
        value["bit_generator"] in BIT_GENERATORS,
        f"{field}.bit_generator",
        f"unknown bit generator {value['bit_generator']!r} (known: {sorted(BIT_GENERATORS)})",
    )

    def walk(v, f):
        if isinstance(v, dict):
            if "__ndarray__" in v:
                _dict(v, f, ("__ndarray__", "dtype"))
                _expect(
                    v["dtype"] in ("uint32", "uint64"),
                    f"{f}.dtype",
                    f"expected 'uint32' or 'uint64', got {v['dtype']!r}",
                )
                items = v["__ndarray__"]
                _expect(
                    isinstance(items, list) and len(items) <= 1024,
                    f"{f}.__ndarray__",
                    "expected a list of at most 1024 integers",
                )
                for x in items:
                    _int(x, f"{f}.__ndarray__", 0, (1 << 64) - 1)
            else:
                for k, x in v.items():
                    walk(x, f"{f}.{k}")
        elif not isinstance(v, str):
            _int(v, f, -(1 << 128), 1 << 128)

    walk(value, field)


def _layer_schema(rec, field, arch_dtype):
    """Check one layer record; return ``(n_in, n_out, {array name: shape or None})``."""
    _dict(rec, field, ("type", "config", "arrays"), ("state",))
    kind = rec["type"]
    _expect(
        isinstance(kind, str) and kind in LAYER_TYPES,
        f"{field}.type",
        f"unknown layer type {kind!r} (known: {sorted(LAYER_TYPES)})",
    )
    names = {}
    for part in ("arrays", "state"):
        listed = rec.get(part, [])
        _expect(
            isinstance(listed, list)
            and len(listed) <= 64
            and all(isinstance(n, str) and _NAME.match(n) for n in listed),
            f"{field}.{part}",
            f"expected a list of array names, got {listed!r}",
        )
        for n in listed:
            _expect(n not in names, f"{field}.{part}", f"array name {n!r} listed twice")
            names[n] = None
    c, cf = rec["config"], f"{field}.config"
    if kind == "Dense":
        _dict(c, cf, ("n_in", "n_out", "activation"))
        n_in, n_out = _int(c["n_in"], f"{cf}.n_in"), _int(c["n_out"], f"{cf}.n_out")
        _named(c["activation"], f"{cf}.activation", ACTIVATIONS)
        shapes = {"W": (n_in, n_out), "b": (n_out,)}
    elif kind == "BatchNorm":
        _dict(c, cf, ("m", "eps", "momentum", "update_running", "dtype"))
        n_in = n_out = _int(c["m"], f"{cf}.m")
        _number(c["eps"], f"{cf}.eps", 0.0)
        _number(c["momentum"], f"{cf}.momentum", 0.0, 1.0)
        _bool(c["update_running"], f"{cf}.update_running")
        _dtype_name(c["dtype"], f"{cf}.dtype", arch_dtype)
        shapes = {"gamma": (n_in,), "beta": (n_in,), "running_mean": (n_in,), "running_var": (n_in,)}
    elif kind == "Dropout":
        _dict(c, cf, ("m", "p", "dtype", "rng"))
        n_in = n_out = _int(c["m"], f"{cf}.m")
        _number(c["p"], f"{cf}.p", 0.0, 1.0)
        _dtype_name(c["dtype"], f"{cf}.dtype", arch_dtype)
        _rng_record(c["rng"], f"{cf}.rng")
        shapes = {}
    elif kind == "ActivationLayer":
        _dict(c, cf, ("m", "activation", "dtype"))
        n_in = n_out = _int(c["m"], f"{cf}.m")
        _named(c["activation"], f"{cf}.activation", ACTIVATIONS)
        _dtype_name(c["dtype"], f"{cf}.dtype", arch_dtype)
        shapes = {}
    elif kind == "LayerNorm":
        _dict(c, cf, ("m", "eps", "dtype"))
        n_in = n_out = _int(c["m"], f"{cf}.m")
        _number(c["eps"], f"{cf}.eps", 0.0)
        _dtype_name(c["dtype"], f"{cf}.dtype", arch_dtype)
        shapes = {"gamma": (n_in,), "beta": (n_in,)}
    elif kind in ("Conv2D", "MaxPool2D", "AvgPool2D", "SpatialBatchNorm"):
        n_in, n_out, shapes = _image_layer_schema(kind, c, cf, arch_dtype)
    else:  # a registered type: its own from_record checks its config; shapes come from the headers
        _expect(isinstance(c, dict), cf, f"expected an object, got {type(c).__name__}")
        return None, None, names
    want_arrays = sorted(k for k in shapes if k not in ("running_mean", "running_var"))
    want_state = sorted(k for k in shapes if k in ("running_mean", "running_var"))
    _expect(sorted(rec["arrays"]) == want_arrays, f"{field}.arrays", f"expected {want_arrays}, got {rec['arrays']}")
    _expect(
        sorted(rec.get("state", [])) == want_state,
        f"{field}.state",
        f"expected {want_state}, got {rec.get('state', [])}",
    )
    return n_in, n_out, shapes


def _image_shape(value, field):
    _expect(isinstance(value, list) and len(value) == 3, field, f"expected [C, H, W], got {value!r}")
    return tuple(_int(v, f"{field}[{j}]", high=1 << 20) for j, v in enumerate(value))


def _window_out(size, window, stride, pad, field):
    """Output size ``(size + 2 pad - window) / stride + 1``, refused unless it divides (as the layers do)."""
    span = size + 2 * pad - window
    _expect(
        span >= 0 and span % stride == 0,
        field,
        f"({size} + 2*{pad} - {window}) / {stride} is not a non-negative integer",
    )
    return span // stride + 1


def _image_layer_schema(kind, c, cf, arch_dtype):
    """``(n_in, n_out, {array name: shape})`` of an image layer record (sizes checked before any allocation)."""
    if kind == "Conv2D":
        _dict(c, cf, ("input_shape", "n_filters", "kernel_size", "stride", "pad", "activation"))
        C, H, W = _image_shape(c["input_shape"], f"{cf}.input_shape")
        F = _int(c["n_filters"], f"{cf}.n_filters", high=1 << 20)
        _expect(
            isinstance(c["kernel_size"], list) and len(c["kernel_size"]) == 2,
            f"{cf}.kernel_size",
            f"expected [FH, FW], got {c['kernel_size']!r}",
        )
        FH, FW = (_int(v, f"{cf}.kernel_size[{j}]", high=1 << 20) for j, v in enumerate(c["kernel_size"]))
        S, P = _int(c["stride"], f"{cf}.stride", high=1 << 20), _int(c["pad"], f"{cf}.pad", 0, 1 << 20)
        _named(c["activation"], f"{cf}.activation", ACTIVATIONS)
        OH, OW = _window_out(H, FH, S, P, f"{cf}.input_shape"), _window_out(W, FW, S, P, f"{cf}.input_shape")
        return C * H * W, F * OH * OW, {"W": (F, C, FH, FW), "b": (F,)}
    if kind in ("MaxPool2D", "AvgPool2D"):
        _dict(c, cf, ("input_shape", "pool_size", "stride", "dtype"))
        C, H, W = _image_shape(c["input_shape"], f"{cf}.input_shape")
        _expect(
            isinstance(c["pool_size"], list) and len(c["pool_size"]) == 2,
            f"{cf}.pool_size",
            f"expected [PH, PW], got {c['pool_size']!r}",
        )
        PH, PW = (_int(v, f"{cf}.pool_size[{j}]", high=1 << 20) for j, v in enumerate(c["pool_size"]))
        S = _int(c["stride"], f"{cf}.stride", high=1 << 20)
        _dtype_name(c["dtype"], f"{cf}.dtype", arch_dtype)
        OH, OW = _window_out(H, PH, S, 0, f"{cf}.input_shape"), _window_out(W, PW, S, 0, f"{cf}.input_shape")
        return C * H * W, C * OH * OW, {}
    _dict(c, cf, ("input_shape", "eps", "momentum", "update_running", "dtype"))
    C, H, W = _image_shape(c["input_shape"], f"{cf}.input_shape")
    _number(c["eps"], f"{cf}.eps", 0.0)
    _number(c["momentum"], f"{cf}.momentum", 0.0, 1.0)
    _bool(c["update_running"], f"{cf}.update_running")
    _dtype_name(c["dtype"], f"{cf}.dtype", arch_dtype)
    return C * H * W, C * H * W, {"gamma": (C,), "beta": (C,), "running_mean": (C,), "running_var": (C,)}


def _check_architecture(arch):
    _dict(
        arch,
        "architecture",
        ("format", "version", "dtype", "loss", "l2", "l1", "regularize_bias", "layers"),
        ("network",),
    )
    _expect(arch["format"] == FORMAT, "format", f"expected {FORMAT!r}, got {arch['format']!r}")
    _expect(
        arch["version"] == VERSION and not isinstance(arch["version"], bool),
        "version",
        f"this reader knows version {VERSION}, the file has {arch['version']!r}",
    )
    _expect(
        isinstance(arch["dtype"], str) and arch["dtype"] in ARRAY_DTYPES,
        "dtype",
        f"expected one of {sorted(ARRAY_DTYPES)}, got {arch['dtype']!r}",
    )
    _named(arch["loss"], "loss", LOSSES)
    _number(arch["l2"], "l2")
    _number(arch["l1"], "l1")
    _bool(arch["regularize_bias"], "regularize_bias")
    network = arch.get("network", {"type": "Network", "config": {}})
    _dict(network, "network", ("type", "config"))
    _expect(
        network["type"] in ("Network", "FullyConnectedNet"),
        "network.type",
        f"unknown network type {network['type']!r} (known: Network, FullyConnectedNet)",
    )
    if network["type"] == "FullyConnectedNet":
        nc = _dict(network["config"], "network.config", ("hidden_dims", "dropout", "use_batchnorm"))
        _expect(
            isinstance(nc["hidden_dims"], list) and len(nc["hidden_dims"]) <= 1000,
            "network.config.hidden_dims",
            f"expected a list of positive integers, got {nc['hidden_dims']!r}",
        )
        for j, h in enumerate(nc["hidden_dims"]):
            _int(h, f"network.config.hidden_dims[{j}]")
        _number(nc["dropout"], "network.config.dropout", 0.0, 1.0)
        _bool(nc["use_batchnorm"], "network.config.use_batchnorm")
    else:
        _dict(network["config"], "network.config", ())
    layers = arch["layers"]
    _expect(
        isinstance(layers, list) and 1 <= len(layers) <= MAX_MEMBERS,
        "layers",
        f"expected a non-empty list of at most {MAX_MEMBERS} layers",
    )
    previous = None
    for i, rec in enumerate(layers):
        n_in, n_out, _ = _layer_schema(rec, f"layers[{i}]", arch["dtype"])
        if previous is not None and n_in is not None:
            _expect(previous == n_in, f"layers[{i}]", f"takes {n_in} inputs but layers[{i - 1}] gives {previous}")
        previous = n_out
    return arch


def _expected_arrays(arch):
    """``{zip member: (field name, shape or None)}`` for every array the architecture names."""
    out = {}
    for i, rec in enumerate(arch["layers"]):
        _, _, shapes = _layer_schema(rec, f"layers[{i}]", arch["dtype"])
        for name in (*rec["arrays"], *rec.get("state", [])):
            out[f"layers/{i}/{name}.npy"] = (f"layers/{i}/{name}", shapes.get(name))
    return out


def _array_header(zf, info, field, shape, dtype, file_size):
    """``(shape, fortran_order, nbytes, header_len)`` from the member's .npy header (data not read)."""
    with zf.open(info) as stream:
        got_shape, fortran, got_dtype = _read_npy_header(stream, field)
        header_len = stream.tell()
    _expect(
        got_dtype == dtype, field, f"dtype {got_dtype}, expected {dtype.name} (the architecture's dtype, little-endian)"
    )
    _expect(
        isinstance(got_shape, tuple) and len(got_shape) <= 4 and all(is_integer(d) and d >= 0 for d in got_shape),
        field,
        f"shape {got_shape!r}",
    )
    if shape is not None:
        _expect(got_shape == shape, field, f"shape {got_shape}, the architecture says {shape}")
    nbytes = dtype.itemsize * math.prod(got_shape)
    _check_member_sizes(info, field, nbytes, header_len, file_size)
    return got_shape, fortran, nbytes, header_len


def _read_array(zf, info, field, dtype, shape, fortran, nbytes, header_len):
    """The member's data, read straight into an array of the checked shape (one allocation of ``nbytes``)."""
    arr = np.empty(shape[::-1] if fortran else shape, dtype=dtype)
    with zf.open(info) as stream:
        stream.read(header_len)
        view = memoryview(arr).cast("B") if arr.size else memoryview(b"")
        got = 0
        while got < nbytes:
            n = stream.readinto(view[got:])
            if not n:
                raise _Refused(field, f"the data ends after {got} of {nbytes} bytes")
            got += n
        if stream.read(1):
            raise _Refused(field, "more data than the .npy header declares")
    return arr.T if fortran else arr


def _build(arch, arrays):
    dtype = ARRAY_DTYPES[arch["dtype"]]
    layers = []
    for i, rec in enumerate(arch["layers"]):
        field = f"layers[{i}]"
        params = {n: arrays[f"layers/{i}/{n}"] for n in rec["arrays"]}
        state = {n: arrays[f"layers/{i}/{n}"] for n in rec.get("state", [])}
        for name, arr in {**params, **state}.items():
            _expect(all_finite(arr), f"layers/{i}/{name}", "not finite (NaN or inf)")
        try:
            layer = LAYER_TYPES[rec["type"]][1](rec["config"], params)
        except (KeyError, TypeError, ValueError) as exc:
            raise _Refused(field, f"({rec['type']}) {exc}") from None
        _expect(
            np.dtype(layer.dtype) == dtype,
            f"{field}.dtype",
            f"the layer has {layer.dtype}, the architecture says {dtype.name}",
        )
        live = getattr(layer, "state", {})
        _expect(
            sorted(live) == sorted(state),
            f"{field}.state",
            f"state arrays {sorted(state)} in the file, the layer has {sorted(live)}",
        )
        for name, arr in state.items():
            _expect(
                arr.shape == live[name].shape,
                f"layers/{i}/{name}",
                f"shape {arr.shape}, the layer's state has {live[name].shape}",
            )
            live[name][...] = arr
        layers.append(layer)
    loss = arch["loss"]
    try:
        loss_obj = LOSSES[loss["name"]](**loss["config"])
    except (TypeError, ValueError) as exc:
        raise _Refused("loss.config", str(exc)) from None
    network = arch.get("network", {"type": "Network", "config": {}})
    try:
        if network["type"] == "FullyConnectedNet":
            return _fcnet_from_layers(network["config"], layers, loss_obj, arch)
        return Network(layers, loss_obj, l2=arch["l2"], l1=arch["l1"], regularize_bias=arch["regularize_bias"])
    except (TypeError, ValueError) as exc:
        raise _Refused("network", str(exc)) from None
