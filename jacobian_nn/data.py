"""Built-in data sets, with no download: toy, logic gates, spiral, digits, and a local CIFAR-10 loader.

Every loader returns a :class:`Dataset`: train / validation / test arrays ``X``
``(N, n)`` float64 and integer labels ``y`` ``(N,)``, plus the class names.

Standardisation (spiral, digits, CIFAR-10) uses statistics of the **training
split only**, ``x' = (x - mean_train) / std_train`` per feature (a feature whose
training std is 0 is only centred), and the same ``mean``/``std`` are applied to
the validation and test splits and stored on the Dataset.

Splits are stratified: each class is permuted with the loader's Generator and cut
in the proportions ``train_size`` / ``val_size`` / rest, so every split keeps the
class proportions (seed 003 uses sklearn's ``train_test_split(stratify=y)``
twice, 70 / 15 / 15).

The two tiny sets (seed 001's toy table, seed 002's gates) have no held-out data:
their validation and test splits are the training set itself, and they are not
standardised.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass

import numpy as np

from ._validation import as_generator, check_positive_int, is_integer


@dataclass(frozen=True)
class Dataset:
    """Train / validation / test splits. ``X_*`` ``(N, n)`` float64 (or NCHW images ``(N, C, H, W)``,
    ``n = C*H*W``), ``y_*`` ``(N,)`` int64."""

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    X_val: np.ndarray
    y_val: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    classes: tuple
    mean: np.ndarray | None = None
    std: np.ndarray | None = None

    @property
    def n_features(self) -> int:
        """Numbers per sample (``C*H*W`` for images)."""
        return int(np.prod(self.X_train.shape[1:]))

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}, train={self.X_train.shape}, val={self.X_val.shape}, "
            f"test={self.X_test.shape}, classes={len(self.classes)})"
        )


def standardize(X_train, *others):
    """``(mean, std, X_train', *others')`` with ``x' = (x - mean) / std``, statistics from ``X_train`` only.

    ``mean``, ``std`` ``(n,)``; a feature with training std 0 gets ``std = 1``
    (centred, not scaled) instead of a division by zero.
    """
    mean = X_train.mean(axis=0)
    std = X_train.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    return (mean, std) + tuple((X - mean) / std for X in (X_train,) + others)


def stratified_split(y, train_size: float, val_size: float, seed):
    """Index arrays ``(train, val, test)``: every class permuted and cut in the given proportions.

    ``train_size + val_size < 1``; each class contributes ``round(n_c * train_size)``
    samples to train, ``round(n_c * val_size)`` to validation, the rest to test.
    """
    for name, v in (("train_size", train_size), ("val_size", val_size)):
        if not 0 < v < 1:
            raise ValueError(f"{name}: expected a fraction in (0, 1), got {v!r}")
    if train_size + val_size >= 1:
        raise ValueError(f"train_size + val_size: expected < 1 (a test split must remain), got {train_size + val_size}")
    rng = as_generator(seed)
    y = np.asarray(y)
    parts: tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]] = ([], [], [])
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        n_tr = int(round(len(idx) * train_size))
        n_va = int(round(len(idx) * val_size))
        if n_tr == 0 or n_va == 0 or n_tr + n_va >= len(idx):
            raise ValueError(
                f"y: class {c} has {len(idx)} samples, too few for a train/val/test split "
                f"with train_size={train_size}, val_size={val_size}"
            )
        parts[0].append(idx[:n_tr])
        parts[1].append(idx[n_tr : n_tr + n_va])
        parts[2].append(idx[n_tr + n_va :])
    # sorted: the split does not depend on the order in which classes were visited
    return tuple(np.sort(np.concatenate(p)) for p in parts)


def _split_and_standardize(name, X, y, classes, train_size, val_size, seed) -> Dataset:
    tr, va, te = stratified_split(y, train_size, val_size, seed)
    mean, std, X_tr, X_va, X_te = standardize(X[tr], X[va], X[te])
    return Dataset(name, X_tr, y[tr], X_va, y[va], X_te, y[te], tuple(classes), mean, std)


# --------------------------------------------------------------------------- seed 001: toy table

#: Seed 001's data: columns x1, x2, label.
TOY_TABLE = np.array(
    [[2, 1, 0], [2, 2, 0], [5, 4, 1], [4, 5, 1], [2, 3, 0], [3, 2, 0], [6, 5, 1], [4, 1, 0], [6, 3, 1], [7, 4, 1]]
)


def toy() -> Dataset:
    """Seed 001's 10-point, 2-class table (integers converted on purpose to float64).

    Linearly separable; seed 001 trains a single linear layer + softmax on it.
    No held-out data: validation and test are the training set.
    """
    X = TOY_TABLE[:, :2].astype(np.float64)
    y = TOY_TABLE[:, 2].astype(np.int64)
    return Dataset("toy", X, y, X.copy(), y.copy(), X.copy(), y.copy(), ("0", "1"))


# --------------------------------------------------------------------------- seed 002: logic gates

#: Seed 002's hand-set perceptrons ``y = step(w . x + b)`` (step(0) = 0: ``tmp <= 0`` gives 0).
PERCEPTRON_WEIGHTS = {
    "AND": ((0.5, 0.5), -0.7),
    "NAND": ((-0.5, -0.5), 0.7),
    "OR": ((0.5, 0.5), -0.2),
}

#: The four inputs, in seed 002's order (0,0), (1,0), (0,1), (1,1).
GATE_INPUTS = np.array([[0, 0], [1, 0], [0, 1], [1, 1]], dtype=np.float64)

GATES = ("AND", "NAND", "OR", "XOR")


def step_function(x) -> np.ndarray:
    """Seed 002's step: ``1 if x > 0 else 0`` elementwise (so ``step(0) = 0``), as int64."""
    return (np.asarray(x) > 0).astype(np.int64)


def perceptron_weights(gate: str):
    """Seed 002's perceptron for ``AND``, ``NAND`` or ``OR``: ``(W (2, 1), b (1,))`` with
    ``y = step(W^T x + b)``; ``jacobian_nn.Dense.from_params(W, b, "step")`` is that perceptron
    as a layer."""
    key = str(gate).upper()
    if key not in PERCEPTRON_WEIGHTS:
        raise ValueError(
            f"gate: expected one of {sorted(PERCEPTRON_WEIGHTS)} (XOR needs two layers: "
            f"gate_output('XOR', X) composes AND(NAND(x), OR(x))), got {gate!r}"
        )
    w, b = PERCEPTRON_WEIGHTS[key]
    return np.array(w).reshape(2, 1), np.array([b])


def gate_output(gate: str, X) -> np.ndarray:
    """Outputs ``(N,)`` int64 of seed 002's perceptrons on ``X`` ``(N, 2)``.

    ``XOR(x) = AND(NAND(x), OR(x))``: a two-layer perceptron (seed 002), since no
    single line separates XOR's classes.
    """
    X = np.asarray(X, dtype=np.float64)
    key = str(gate).upper()
    if key == "XOR":
        hidden = np.column_stack([gate_output("NAND", X), gate_output("OR", X)]).astype(np.float64)
        return gate_output("AND", hidden)
    W, b = perceptron_weights(key)
    return step_function(X @ W + b)[:, 0]


def gates(gate: str = "XOR") -> Dataset:
    """The truth table of ``gate`` (AND, NAND, OR, XOR) as a 2-class set of 4 points.

    Labels are the outputs of seed 002's perceptrons (:func:`gate_output`). No
    held-out data: validation and test are the training set.
    """
    key = str(gate).upper()
    if key not in GATES:
        raise ValueError(f"gate: expected one of {GATES}, got {gate!r}")
    X = GATE_INPUTS.copy()
    y = gate_output(key, X)
    return Dataset(f"gates-{key}", X, y, X.copy(), y.copy(), X.copy(), y.copy(), ("0", "1"))


# --------------------------------------------------------------------------- seed 003: spiral


def spiral_points(n_per_class: int = 500, n_classes: int = 3, noise: float = 0.2, seed=0):
    """Raw spiral ``(X (K*n, 2), y (K*n,))``, the CS231n case-study generator that seed 003's
    CSV comes from (its ``plot_multiclass_decision_boundary`` credits that page)::

        for class j, i = 0..n-1:   r = i / (n - 1)
                                   t = 4 j + 4 i / (n - 1) + noise * N(0, 1)
                                   x = (r sin t, r cos t)

    The normal draws come from one Generator made from ``seed``, class by class.
    """
    n_per_class = check_positive_int(n_per_class, "n_per_class", 2)
    n_classes = check_positive_int(n_classes, "n_classes", 2)
    if not np.isfinite(noise) or noise < 0:
        raise ValueError(f"noise: expected a finite number >= 0, got {noise!r}")
    rng = as_generator(seed)
    X = np.zeros((n_per_class * n_classes, 2))
    y = np.zeros(n_per_class * n_classes, dtype=np.int64)
    for j in range(n_classes):
        sl = slice(n_per_class * j, n_per_class * (j + 1))
        r = np.linspace(0.0, 1.0, n_per_class)
        t = np.linspace(j * 4.0, (j + 1) * 4.0, n_per_class) + rng.standard_normal(n_per_class) * noise
        X[sl] = np.column_stack([r * np.sin(t), r * np.cos(t)])
        y[sl] = j
    return X, y


def spiral(
    n_per_class: int = 500,
    n_classes: int = 3,
    noise: float = 0.2,
    seed=0,
    train_size: float = 0.7,
    val_size: float = 0.15,
) -> Dataset:
    """Seed 003's spiral: :func:`spiral_points`, a stratified 70/15/15 split, standardised with
    training statistics. One Generator from ``seed`` draws the points, then the split."""
    rng = as_generator(seed)
    X, y = spiral_points(n_per_class, n_classes, noise, rng)
    return _split_and_standardize("spiral", X, y, [f"c{j + 1}" for j in range(n_classes)], train_size, val_size, rng)


# --------------------------------------------------------------------------- digits (scikit-learn)


def digits(seed=0, train_size: float = 0.7, val_size: float = 0.15) -> Dataset:
    """scikit-learn's bundled handwritten digits (1797 images 8x8, 10 classes), read from files
    installed with scikit-learn (no network). Optional extra ``data``.

    Stratified 70/15/15 split from ``seed``, standardised with training statistics.
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:
        raise ImportError(
            "digits: needs scikit-learn, the optional extra 'data': pip install 'jacobian-nn[data]'"
        ) from exc
    bunch = load_digits()
    X = np.asarray(bunch.data, dtype=np.float64)
    y = np.asarray(bunch.target, dtype=np.int64)
    return _split_and_standardize("digits", X, y, [str(c) for c in range(10)], train_size, val_size, seed)


# --------------------------------------------------------------------------- CIFAR-10 (local files)

CIFAR10_TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
CIFAR10_TEST_FILE = "test_batch"
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR10_DIM = 3 * 32 * 32
#: one CIFAR-10 image, (C, H, W)
CIFAR10_IMAGE = (3, 32, 32)


#: A CIFAR-10 python batch holds at most this many images (the real ones hold exactly 10 000).
CIFAR10_MAX_ROWS = 10_000
#: Bytes a batch file may hold beyond its pixels (the real files carry about 320 KB of labels,
#: file names and pickle framing).
CIFAR10_MAX_OVERHEAD = 1 << 20
#: Most pickle opcodes a batch may contain (a real one has about 40 000).
CIFAR10_MAX_OPCODES = 200_000
#: The keys of a batch's dict (Python 2 ``str``, read as ``bytes``).
CIFAR10_KEYS = {b"data", b"labels", b"batch_label", b"filenames"}

#: The only pickle opcodes the format uses: containers, strings, small ints, memo, the globals
#: below, ``REDUCE``/``BUILD`` for the array and its dtype. No object construction by class
#: (``INST``, ``OBJ``, ``NEWOBJ``), no extensions, no persistent ids, no out-of-band buffers.
_CIFAR_OPCODES = frozenset(
    """PROTO FRAME STOP MARK EMPTY_DICT EMPTY_LIST EMPTY_TUPLE TUPLE TUPLE1 TUPLE2 TUPLE3
    SETITEM SETITEMS APPEND APPENDS BINPUT LONG_BINPUT MEMOIZE BINGET LONG_BINGET NONE NEWTRUE NEWFALSE
    BININT BININT1 BININT2 LONG1 SHORT_BINSTRING BINSTRING SHORT_BINBYTES BINBYTES SHORT_BINUNICODE BINUNICODE
    GLOBAL STACK_GLOBAL REDUCE BUILD""".split()
)


class _NdarrayName:
    """Stands for ``numpy.ndarray`` inside a batch: a name, never called."""


class _ArrayRecord:
    """What ``numpy.core.multiarray._reconstruct(ndarray, (0,), b'b')`` and the following ``BUILD``
    would have used to make the pixel array: the arguments and the state, recorded, nothing built."""

    def __init__(self, args):
        self.args, self.state = args, None

    def __setstate__(self, state):
        self.state = state


class _DtypeRecord:
    """Stands for ``numpy.dtype(...)`` inside a batch: arguments and state recorded, nothing built."""

    def __init__(self, *args):
        self.args, self.state = args, None

    def __setstate__(self, state):
        self.state = state


def _reconstruct_record(*args):
    return _ArrayRecord(args)


#: The only globals a CIFAR-10 batch may name, each mapped to a recorder (never to numpy itself).
#: The real batches were written by Python 2 ``cPickle`` and name ``numpy.core.multiarray``;
#: numpy >= 2 writes ``numpy._core.multiarray``.
_CIFAR_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct_record,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct_record,
    ("numpy", "ndarray"): _NdarrayName,
    ("numpy", "dtype"): _DtypeRecord,
}


class RestrictedUnpickler(pickle.Unpickler):
    """An unpickler for CIFAR-10 batches that can build nothing but dicts, lists, tuples, bytes,
    strings and ints.

    The batch's array is pickled as ``_reconstruct(ndarray, ...)`` plus a state holding its shape,
    dtype and raw bytes; here those globals resolve to recorders that keep the arguments and build
    no array (:func:`load_cifar10_batch` then checks the record and decodes the bytes itself with
    ``np.frombuffer``). Any other global (``os.system``, ``builtins.eval``, ...) raises
    ``pickle.UnpicklingError`` before anything is imported. Python 2 strings are read as ``bytes``
    (``encoding="bytes"``), which is why the keys are ``b"data"``.
    """

    def __init__(self, file):
        super().__init__(file, encoding="bytes")

    def find_class(self, module, name):
        key = (module, name)
        if key not in _CIFAR_GLOBALS:
            raise pickle.UnpicklingError(
                f"refused global {module}.{name}: a CIFAR-10 batch may only reference "
                f"{sorted('.'.join(k) for k in _CIFAR_GLOBALS)}"
            )
        return _CIFAR_GLOBALS[key]


def _scan_pickle(f, path):
    """Refuse opcodes the format never uses and more opcodes than a batch has, before unpickling."""
    import pickletools

    count = 0
    try:
        for op, _, _ in pickletools.genops(f):
            count += 1
            if op.name not in _CIFAR_OPCODES:
                raise ValueError(f"{path}: refused pickle opcode {op.name}: not part of the CIFAR-10 batch format")
            if count > CIFAR10_MAX_OPCODES:
                raise ValueError(
                    f"{path}: more than {CIFAR10_MAX_OPCODES} pickle opcodes; a CIFAR-10 batch has about 40 000"
                )
    except ValueError as exc:
        if str(exc).startswith(f"{path}:"):
            raise
        raise ValueError(f"{path}: not a readable CIFAR-10 pickle ({exc})") from None
    f.seek(0)


def _decode_pixels(record, path):
    """The ``(N, 3072)`` uint8 pixels from a recorded ``_reconstruct`` + ``BUILD``, checked field by field."""
    where = f"{path}: b'data'"
    if not isinstance(record, _ArrayRecord):
        raise ValueError(
            f"{where}: expected a numpy uint8 array as the CIFAR-10 batches store it, got {type(record).__name__}"
        )
    if (
        len(record.args) != 3
        or record.args[0] is not _NdarrayName
        or record.args[1] != (0,)
        or record.args[2] not in (b"b", "b")
    ):
        raise ValueError(f"{where}: unexpected array reconstruction arguments")
    state = record.state
    if not (isinstance(state, tuple) and len(state) == 5 and state[0] == 1 and not isinstance(state[0], bool)):
        raise ValueError(f"{where}: expected an array state (1, shape, dtype, fortran, bytes)")
    _, shape, dtype, fortran, raw = state
    if not (
        isinstance(dtype, _DtypeRecord)
        and len(dtype.args) == 3
        and dtype.args[0] in (b"u1", "u1")
        and dtype.args[1:] in ((0, 1), (False, True))
        and (
            dtype.state is None
            or (isinstance(dtype.state, tuple) and len(dtype.state) >= 2 and dtype.state[1] in (b"|", "|"))
        )
    ):
        raise ValueError(f"{where}: expected dtype uint8")
    if fortran is not False and fortran != 0:
        raise ValueError(f"{where}: expected a C-ordered array, got a Fortran-ordered one")
    if not (
        isinstance(shape, tuple)
        and len(shape) == 2
        and all(is_integer(s) for s in shape)
        and 1 <= shape[0] <= CIFAR10_MAX_ROWS
        and shape[1] == CIFAR10_DIM
    ):
        raise ValueError(f"{where}: expected shape (N, {CIFAR10_DIM}) with 1 <= N <= {CIFAR10_MAX_ROWS}, got {shape!r}")
    if not isinstance(raw, bytes) or len(raw) != shape[0] * shape[1]:
        got = len(raw) if isinstance(raw, (bytes, str)) else type(raw).__name__
        raise ValueError(f"{where}: expected {shape[0] * shape[1]} bytes of pixels for shape {shape}, got {got}")
    return np.frombuffer(raw, dtype=np.uint8).reshape(shape).copy()


def load_cifar10_batch(path):
    """``(X (N, 3072) uint8, y (N,) int64)`` from one CIFAR-10 python batch file.

    Only the real layout is accepted: a dict with ``b"data"``, ``b"labels"`` and optionally
    ``b"batch_label"`` (bytes) and ``b"filenames"`` (N bytes); the data is a pickled C-ordered uint8
    array of shape ``(N, 3072)`` (1024 red, 1024 green, 1024 blue values per row, N <= 10 000; the
    real batches have N = 10 000) whose raw bytes are decoded here with ``np.frombuffer`` (the
    unpickler builds no array); the labels are a list of N ints in 0..9. The file is limited to the
    pixels plus 1 MiB and its pickle opcodes to the ones the format uses, so memory stays within
    about twice the file's size. Errors: ``FileNotFoundError`` if missing, ``ValueError`` naming the
    file (and the key) for a malformed, hostile or wrongly shaped pickle.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"CIFAR-10 batch file not found: {path}")
    size = os.path.getsize(path)
    limit = CIFAR10_MAX_ROWS * CIFAR10_DIM + CIFAR10_MAX_OVERHEAD
    if size > limit:
        raise ValueError(f"{path}: {size} bytes, more than a CIFAR-10 batch can hold ({limit})")
    with open(path, "rb") as f:
        _scan_pickle(f, path)
        try:
            obj = RestrictedUnpickler(f).load()
        except pickle.UnpicklingError as exc:
            raise ValueError(f"{path}: refused or malformed pickle: {exc}") from None
        except Exception as exc:  # truncated or garbage data raise many types (EOFError, KeyError, ...)
            raise ValueError(f"{path}: not a readable CIFAR-10 pickle ({type(exc).__name__}: {exc})") from None
    if not isinstance(obj, dict) or not {b"data", b"labels"} <= set(obj) <= CIFAR10_KEYS:
        keys = sorted(map(repr, obj)) if isinstance(obj, dict) else type(obj).__name__
        raise ValueError(
            f"{path}: expected a dict with keys b'data' and b'labels' (and optionally "
            f"b'batch_label', b'filenames'), got {keys}"
        )
    data = _decode_pixels(obj[b"data"], path)
    labels = obj[b"labels"]
    if not isinstance(labels, list) or not all(is_integer(v) for v in labels):
        raise ValueError(f"{path}: b'labels': expected a list of ints, got {type(labels).__name__}")
    if len(labels) != data.shape[0]:
        raise ValueError(f"{path}: b'labels': {data.shape[0]} images but {len(labels)} labels")
    if labels and not all(0 <= v <= 9 for v in labels):
        raise ValueError(f"{path}: b'labels': expected labels in 0..9, got values in [{min(labels)}, {max(labels)}]")
    if not isinstance(obj.get(b"batch_label", b""), bytes):
        raise ValueError(f"{path}: b'batch_label': expected bytes, got {type(obj[b'batch_label']).__name__}")
    names = obj.get(b"filenames", [b""] * len(labels))
    if not isinstance(names, list) or len(names) != len(labels) or not all(isinstance(n, bytes) for n in names):
        raise ValueError(f"{path}: b'filenames': expected a list of {len(labels)} byte strings")
    return data, np.array(labels, dtype=np.int64)


def cifar10(
    data_dir, num_validation: int | None = None, max_train: int | None = None, *, images: bool = False
) -> Dataset:
    """CIFAR-10 from the python batches in ``data_dir`` (``data_batch_1..5``, ``test_batch``).

    As seed 004's ``get_CIFAR10_data``: the last ``num_validation`` training images
    (default ``min(1000, N // 10)``: 1000 for the real 50000) form the validation split (the training order of the files is kept). ``max_train``
    keeps only the first ``max_train`` remaining training images (memory). Pixels are
    standardised per feature with training statistics only. ``images=True`` returns every ``X_*`` as
    NCHW images ``(N, 3, 32, 32)`` (the same numbers: the files store each image channel by channel,
    so row k of the flat ``(N, 3072)`` is image k flattened in C order), for convolutional networks.
    """
    if not isinstance(images, (bool, np.bool_)):
        raise TypeError(f"images: expected True or False, got {type(images).__name__} {images!r}")
    data_dir = os.fspath(data_dir)
    if not os.path.isdir(data_dir):
        raise FileNotFoundError(
            f"data_dir: CIFAR-10 directory not found: {data_dir} (expected the extracted 'cifar-10-batches-py' folder)"
        )
    missing = [f for f in CIFAR10_TRAIN_FILES + (CIFAR10_TEST_FILE,) if not os.path.isfile(os.path.join(data_dir, f))]
    if missing:
        raise FileNotFoundError(f"data_dir: {data_dir} lacks the CIFAR-10 batch files {missing}")
    parts = [load_cifar10_batch(os.path.join(data_dir, f)) for f in CIFAR10_TRAIN_FILES]
    X = np.concatenate([p[0] for p in parts])
    y = np.concatenate([p[1] for p in parts])
    X_test, y_test = load_cifar10_batch(os.path.join(data_dir, CIFAR10_TEST_FILE))
    if num_validation is None:
        num_validation = max(1, min(1000, X.shape[0] // 10))
    if check_positive_int(num_validation, "num_validation") >= X.shape[0]:
        raise ValueError(f"num_validation: expected an integer in [1, {X.shape[0] - 1}], got {num_validation!r}")
    X_tr, y_tr = X[:-num_validation], y[:-num_validation]
    X_va, y_va = X[-num_validation:], y[-num_validation:]
    if max_train is not None:
        check_positive_int(max_train, "max_train")
        X_tr, y_tr = X_tr[:max_train], y_tr[:max_train]
    mean, std, X_tr, X_va, X_te = standardize(
        X_tr.astype(np.float64), X_va.astype(np.float64), X_test.astype(np.float64)
    )
    if images:
        X_tr, X_va, X_te = (A.reshape(A.shape[0], *CIFAR10_IMAGE) for A in (X_tr, X_va, X_te))
    return Dataset("cifar10", X_tr, y_tr, X_va, y_va, X_te, y_test, CIFAR10_CLASSES, mean, std)


#: Name -> loader, for the command line.
DATASETS = {
    "toy": toy,
    "gates": gates,
    "spiral": spiral,
    "digits": digits,
    "cifar10": cifar10,
}


def check_dataset_name(name) -> str:
    """``name`` if it is a built-in data set, else a ValueError listing them."""
    if not isinstance(name, str) or name not in DATASETS:
        raise ValueError(f"dataset: expected one of {sorted(DATASETS)}, got {name!r}")
    return name
