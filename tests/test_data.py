"""Built-in data sets and the restricted CIFAR-10 unpickler (on small files in the real format)."""

import io
import os
import pickle
import struct

import numpy as np
import pytest

import jacobian_nn as jn
from jacobian_nn import data


def test_toy_is_seed_001_table():
    ds = data.toy()
    assert ds.X_train.dtype == np.float64 and ds.X_train.shape == (10, 2)
    assert ds.X_train[:, 0].tolist() == [2, 2, 5, 4, 2, 3, 6, 4, 6, 7]
    assert ds.y_train.tolist() == [0, 0, 1, 1, 0, 0, 1, 0, 1, 1]


@pytest.mark.parametrize(
    "gate, table", [("AND", [0, 0, 0, 1]), ("NAND", [1, 1, 1, 0]), ("OR", [0, 1, 1, 1]), ("XOR", [0, 1, 1, 0])]
)
def test_seed_002_perceptrons_compute_the_gates(gate, table):
    ds = data.gates(gate)
    assert ds.X_train.tolist() == [[0, 0], [1, 0], [0, 1], [1, 1]]
    assert ds.y_train.tolist() == table  # labels come from the perceptrons
    assert data.gate_output(gate, ds.X_train).tolist() == table


def test_step_function_at_zero_and_unknown_gate():
    assert data.step_function([-1.0, 0.0, 1e-12]).tolist() == [0, 0, 1]
    W, b = data.perceptron_weights("AND")
    assert W.shape == (2, 1) and b.shape == (1,)
    layer = jn.Dense.from_params(W, b, "step")  # the perceptron as a layer computes the same gate
    np.testing.assert_array_equal(
        layer.forward_batched(data.GATE_INPUTS)[0][:, 0], data.gate_output("AND", data.GATE_INPUTS)
    )
    with pytest.raises(ValueError, match="gate: expected one of"):
        data.gates("NOR")
    with pytest.raises(ValueError, match="XOR needs two layers"):
        data.perceptron_weights("XOR")


def test_spiral_split_is_stratified_seeded_and_standardised_on_train_only():
    ds = data.spiral(n_per_class=100, seed=3)
    assert ds.X_train.shape == (210, 2) and ds.X_val.shape == (45, 2) and ds.X_test.shape == (45, 2)
    for y in (ds.y_train, ds.y_val, ds.y_test):
        counts = np.bincount(y, minlength=3)
        assert counts.max() - counts.min() == 0
    np.testing.assert_allclose(ds.X_train.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(ds.X_train.std(axis=0), 1, atol=1e-12)
    assert np.abs(ds.X_test.mean(axis=0)).max() > 1e-6  # test statistics were not used
    raw, y = data.spiral_points(100, 3, 0.2, np.random.default_rng(3))
    all_std = np.vstack([ds.X_train, ds.X_val, ds.X_test]) * ds.std + ds.mean
    assert sorted(map(tuple, np.round(all_std, 9))) == sorted(map(tuple, np.round(raw, 9)))
    again = data.spiral(n_per_class=100, seed=3)
    assert np.array_equal(again.X_train, ds.X_train)
    assert not np.array_equal(data.spiral(n_per_class=100, seed=4).X_train, ds.X_train)


def test_digits_is_real_bundled_data():
    pytest.importorskip("sklearn", reason="digits needs scikit-learn (the 'data' extra)")
    ds = data.digits(seed=0)
    assert ds.n_features == 64 and ds.n_classes == 10
    assert ds.X_train.shape[0] + ds.X_val.shape[0] + ds.X_test.shape[0] == 1797


def test_unknown_dataset_name():
    with pytest.raises(ValueError, match="dataset: expected one of"):
        data.check_dataset_name("mnist")


# --------------------------------------------------------------------------- CIFAR-10


class _Py2Pickler(pickle._Pickler):
    """Writes ``bytes`` and ``str`` as Python 2 ``str`` (BINSTRING opcodes), like the cPickle that
    wrote the real CIFAR-10 batches, so these files have their format, not Python 3's."""

    dispatch = pickle._Pickler.dispatch.copy()

    def _save_py2_str(self, obj):
        raw = obj if isinstance(obj, bytes) else obj.encode("latin1")
        if len(raw) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(raw)]) + raw)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(raw)) + raw)
        self.memoize(obj)

    dispatch[bytes] = _save_py2_str
    dispatch[str] = _save_py2_str


def _py2_batch_bytes(data_u8, labels, name=b"training batch 1 of 5"):
    obj = {
        b"batch_label": name,
        b"labels": list(labels),
        b"data": data_u8,
        b"filenames": [b"img_%d.png" % i for i in range(len(labels))],
    }
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    raw = buf.getvalue()
    # the real files name numpy's pre-2.0 module
    return raw.replace(b"cnumpy._core.multiarray\n_reconstruct\n", b"cnumpy.core.multiarray\n_reconstruct\n")


def _write_cifar_dir(root, n_per_file=6, seed=0):
    rng = np.random.default_rng(seed)
    for name in data.CIFAR10_TRAIN_FILES + (data.CIFAR10_TEST_FILE,):
        X = rng.integers(0, 256, size=(n_per_file, 3072), dtype=np.uint8)
        y = rng.integers(0, 10, size=n_per_file).tolist()
        (root / name).write_bytes(_py2_batch_bytes(X, y))
    return root


def test_py2_format_file_loads(tmp_path):
    X = np.arange(2 * 3072, dtype=np.int64).reshape(2, 3072).astype(np.uint8)
    raw = _py2_batch_bytes(X, [3, 9])
    assert b"numpy.core.multiarray" in raw and b"\x8c" not in raw[:40]  # BINSTRING keys, py2 module name
    (tmp_path / "b").write_bytes(raw)
    Xl, yl = data.load_cifar10_batch(tmp_path / "b")
    assert Xl.dtype == np.uint8 and np.array_equal(Xl, X) and yl.tolist() == [3, 9]


@pytest.mark.parametrize("protocol", [3, 4])
def test_python3_written_batches_load_too(tmp_path, protocol):
    X = np.full((3, 3072), 7, dtype=np.uint8)
    obj = {b"batch_label": b"x", b"labels": [0, 1, 2], b"data": X, b"filenames": [b"a", b"b", b"c"]}
    (tmp_path / "b").write_bytes(pickle.dumps(obj, protocol=protocol))
    assert np.array_equal(data.load_cifar10_batch(tmp_path / "b")[0], X)


def test_cifar10_directory_splits_and_standardises(tmp_path):
    ds = data.cifar10(_write_cifar_dir(tmp_path), num_validation=4)
    assert ds.X_train.shape == (26, 3072) and ds.X_val.shape == (4, 3072) and ds.X_test.shape == (6, 3072)
    np.testing.assert_allclose(ds.X_train.mean(axis=0), 0, atol=1e-9)
    assert ds.classes[0] == "airplane" and ds.n_classes == 10


def test_cifar10_as_nchw_images(tmp_path):
    root = _write_cifar_dir(tmp_path)
    flat = data.cifar10(root, num_validation=4)
    ds = data.cifar10(root, num_validation=4, images=True)
    assert ds.X_train.shape[1:] == (3, 32, 32) and ds.n_features == 3072 == flat.n_features
    for a, b in ((ds.X_train, flat.X_train), (ds.X_val, flat.X_val), (ds.X_test, flat.X_test)):
        assert np.array_equal(a.reshape(a.shape[0], -1), b)  # the same numbers, image k in C order
    assert np.array_equal(ds.X_train[0, 1, 2, 3], flat.X_train[0, 1 * 1024 + 2 * 32 + 3])
    with pytest.raises(TypeError, match="images"):
        data.cifar10(root, images="yes")


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_hostile_pickles_are_refused(tmp_path):
    marker = tmp_path / "pwned"
    payloads = {
        "system": pickle.dumps({b"data": _Evil(marker), b"labels": []}, protocol=2),
        "eval": b'cbuiltins\neval\n(S\'__import__("os").system("touch %s")\'\ntR.' % str(marker).encode(),
        "popen": b"csubprocess\nPopen\n((S'touch'\nS'%s'\nltR." % str(marker).encode(),
        "eval2": b"\x80\x02cbuiltins\neval\nX\x05\x00\x00\x001 + 1\x85R.",  # opcodes of the format, bad global
    }
    for name, raw in payloads.items():
        (tmp_path / name).write_bytes(raw)
        with pytest.raises(ValueError, match="refused global|refused pickle opcode STRING"):
            data.load_cifar10_batch(tmp_path / name)
    assert not marker.exists()


def test_object_array_and_wrong_contents_refused(tmp_path):
    cases = {
        "objarr": {b"data": np.array([[1, 2]], dtype=object), b"labels": [0]},
        "float": {b"data": np.zeros((1, 3072)), b"labels": [0]},
        "shape": {b"data": np.zeros((1, 100), np.uint8), b"labels": [0]},
        "labels": {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]},
        "range": {b"data": np.zeros((1, 3072), np.uint8), b"labels": [10]},
        "nodict": [1, 2, 3],
    }
    for name, obj in cases.items():
        (tmp_path / name).write_bytes(pickle.dumps(obj, protocol=4))
        with pytest.raises(ValueError, match=name if name in ("shape",) else r"CIFAR|expected|refused|labels"):
            data.load_cifar10_batch(tmp_path / name)


def test_malformed_and_missing_files(tmp_path):
    good = _py2_batch_bytes(np.zeros((1, 3072), np.uint8), [1])
    (tmp_path / "trunc").write_bytes(good[: len(good) // 2])
    (tmp_path / "junk").write_bytes(b"this is not a pickle at all")
    for name in ("trunc", "junk"):
        with pytest.raises(ValueError, match=name):
            data.load_cifar10_batch(tmp_path / name)
    with pytest.raises(FileNotFoundError, match="not found"):
        data.load_cifar10_batch(tmp_path / "nope")
    with pytest.raises(FileNotFoundError, match="directory not found"):
        data.cifar10(tmp_path / "missing_dir")
    (tmp_path / "partial").mkdir()
    (tmp_path / "partial" / "data_batch_1").write_bytes(good)
    with pytest.raises(FileNotFoundError, match="data_batch_2"):
        data.cifar10(tmp_path / "partial")


def _array_pickle(shape, raw, dtype_args=(b"u1", 0, 1), fortran=False, labels=None, extra=None, label_ops=None):
    """A protocol-2 batch whose b'data' is written opcode by opcode as numpy pickles an array
    (``_reconstruct(ndarray, (0,), b'b')`` then ``BUILD`` with ``(1, shape, dtype, fortran, raw)``),
    with any shape, dtype or bytes, true or not."""

    def s(b):
        return b"U" + bytes([len(b)]) + b if len(b) < 256 else b"T" + struct.pack("<i", len(b)) + b

    def i(v):
        return b"J" + struct.pack("<i", v)

    dt = (
        b"cnumpy\ndtype\n("
        + s(dtype_args[0])
        + i(dtype_args[1])
        + i(dtype_args[2])
        + b"tR"
        + b"(K\x03U\x01|NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00tb"
    )
    arr = (
        b"cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85U\x01b\x87R"
        + b"(K\x01("
        + b"".join(i(d) for d in shape)
        + b"t"
        + dt
        + (b"\x88" if fortran else b"\x89")
        + s(raw)
        + b"tb"
    )
    labels = [0] * shape[0] if labels is None else labels
    lab = b"]" + (b"(" + (label_ops or b"".join(i(v) for v in labels)) + b"e" if labels else b"")
    body = b"}(" + s(b"data") + arr + s(b"labels") + lab + (extra or b"") + b"u."
    return b"\x80\x02" + body


def test_the_recorded_array_format_loads_and_builds_no_array(tmp_path):
    X = np.random.default_rng(0).integers(0, 256, size=(3, 3072), dtype=np.uint8)
    (tmp_path / "b").write_bytes(_array_pickle((3, 3072), X.tobytes(), labels=[1, 2, 9]))
    Xl, yl = data.load_cifar10_batch(tmp_path / "b")  # near miss of every refusal below
    assert np.array_equal(Xl, X) and yl.tolist() == [1, 2, 9] and Xl.flags.writeable
    with open(tmp_path / "b", "rb") as f:
        obj = data.RestrictedUnpickler(f).load()
    assert not isinstance(obj[b"data"], np.ndarray)  # the unpickler itself builds no array


@pytest.mark.parametrize(
    "name, raw, message",
    [
        ("short_bytes", _array_pickle((2, 3072), b"\x00" * 3072), "expected 6144 bytes of pixels"),
        ("long_bytes", _array_pickle((1, 3072), b"\x00" * 3073), "expected 3072 bytes of pixels"),
        ("too_many_rows", _array_pickle((10001, 3072), b"\x00"), r"1 <= N <= 10000"),
        ("zero_rows", _array_pickle((0, 3072), b""), r"1 <= N <= 10000"),
        ("wrong_width", _array_pickle((1, 3073), b"\x00" * 3073), r"shape \(N, 3072\)"),
        ("three_d", _array_pickle((1, 3, 1024), b"\x00" * 3072), r"shape \(N, 3072\)"),
        ("float_dtype", _array_pickle((1, 384), b"\x00" * 3072, dtype_args=(b"f8", 0, 1)), "expected dtype uint8"),
        (
            "unicode_dtype",
            _array_pickle((1, 3072), b"\x00" * 3072, dtype_args=(b"U100000000", 0, 1)),
            "expected dtype uint8",
        ),
        ("fortran", _array_pickle((1, 3072), b"\x00" * 3072, fortran=True), "Fortran"),
        ("bool_labels", _array_pickle((1, 3072), b"\x00" * 3072, label_ops=b"\x89"), "expected a list of ints"),
        ("str_labels", _array_pickle((1, 3072), b"\x00" * 3072, label_ops=b"U\x010"), "expected a list of ints"),
        ("label_range", _array_pickle((2, 3072), b"\x00" * 6144, labels=[0, 10]), r"labels in 0\.\.9"),
        ("label_count", _array_pickle((2, 3072), b"\x00" * 6144, labels=[0]), "2 images but 1 labels"),
        ("extra_key", _array_pickle((1, 3072), b"\x00" * 3072, extra=b"U\x04evilK\x01"), "expected a dict with keys"),
        # numpy.ndarray called directly: with the old unpickler, np.empty's uninitialised memory came back as pixels
        (
            "ndarray_call",
            b"\x80\x02}(U\x04datacnumpy\nndarray\nJ\x10'\x00\x00M\x00\x0c\x86\x85RU\x06labels]u.",
            "not a readable CIFAR-10 pickle",
        ),
        # zero strides: ndarray(shape, uint8, buffer of 1 byte, 0, (0, 0)) expanded 1 byte into 30 MB
        (
            "zero_strides",
            b"\x80\x02}(U\x04datacnumpy\nndarray\n(J\x10'\x00\x00M\x00\x0c\x86U\x02u1U\x01\x07K\x00"
            b"K\x00K\x00\x86tRU\x06labels]u.",
            "not a readable CIFAR-10 pickle",
        ),
        ("not_a_dict", b"\x80\x02]q\x00.", "expected a dict"),
        ("inst_opcode", b"(ios\nsystem\nS'true'\no.", "refused pickle opcode"),
        ("newobj", b"\x80\x02cnumpy\nndarray\n)\x81.", "refused pickle opcode NEWOBJ"),
    ],
)
def test_hostile_and_malformed_arrays_are_refused(tmp_path, name, raw, message):
    (tmp_path / name).write_bytes(raw)
    with pytest.raises(ValueError, match=message) as exc:
        data.load_cifar10_batch(tmp_path / name)
    assert str(tmp_path / name) in str(exc.value)


def test_size_and_opcode_limits(tmp_path):
    big = tmp_path / "big"
    with open(big, "wb") as f:  # sparse: no 31 MB written
        f.truncate(data.CIFAR10_MAX_ROWS * data.CIFAR10_DIM + data.CIFAR10_MAX_OVERHEAD + 1)
    with pytest.raises(ValueError, match="more than a CIFAR-10 batch can hold"):
        data.load_cifar10_batch(big)
    # a MARK bomb: each 1-byte MARK would make the unpickler allocate a new list (56 bytes)
    (tmp_path / "marks").write_bytes(b"\x80\x02" + b"(" * (data.CIFAR10_MAX_OPCODES + 1) + b".")
    with pytest.raises(ValueError, match="more than 200000 pickle opcodes"):
        data.load_cifar10_batch(tmp_path / "marks")


def test_a_full_size_batch_in_the_real_layout_loads(tmp_path):
    X = np.random.default_rng(1).integers(0, 256, size=(10_000, 3072), dtype=np.uint8)
    y = np.random.default_rng(2).integers(0, 10, size=10_000).tolist()
    raw = _py2_batch_bytes(X, y)
    assert data.CIFAR10_MAX_ROWS * 3072 < len(raw) < data.CIFAR10_MAX_ROWS * 3072 + data.CIFAR10_MAX_OVERHEAD
    (tmp_path / "data_batch_1").write_bytes(raw)
    Xl, yl = data.load_cifar10_batch(tmp_path / "data_batch_1")
    assert np.array_equal(Xl, X) and yl.tolist() == y
