"""Model save/load: bit-exact round trip, architecture kept, damaged or foreign files refused clearly."""

import json
import zipfile

import numpy as np
import pytest

from jacobian_nn import Dense, LeakyReLU, Network
from jacobian_nn.model_io import ARCH_KEY, architecture, load_model, save_model
from support import same_layers


def _net(dtype=np.float64):
    layers = [
        Dense(3, 5, LeakyReLU(alpha=0.07), seed=1, dtype=dtype),
        Dense(5, 4, "elu", seed=2, dtype=dtype),
        Dense(4, 2, "softmax", seed=3, dtype=dtype),
    ]
    net = Network(layers, "cross_entropy", l2=1e-3, l1=2e-4, regularize_bias=True)
    rng = np.random.default_rng(0)
    for p in net.params:  # non-zero biases and full-precision values
        for v in p.values():
            v[...] = rng.normal(size=v.shape).astype(dtype)
    return net


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_round_trip_is_bit_exact_and_keeps_the_architecture(tmp_path, dtype):
    net = _net(dtype)
    path = save_model(net, tmp_path / "m")
    assert path.endswith(".npz")
    back = load_model(path)
    assert back.dtype == np.dtype(dtype) and architecture(back) == architecture(net)
    assert [l.activation for l in back.layers] == [l.activation for l in net.layers]
    assert back.layers[0].activation.alpha == 0.07 and back.loss == net.loss
    assert (back.l2, back.l1, back.regularize_bias) == (1e-3, 2e-4, True)
    assert same_layers(net.params, back.params)
    X = np.random.default_rng(1).normal(size=(4, 3)).astype(dtype)
    assert np.array_equal(net.predict_batched(X), back.predict_batched(X))


def test_architecture_is_a_json_string_with_layer_types(tmp_path):
    path = save_model(_net(), tmp_path / "m.npz")
    with np.load(path, allow_pickle=False) as f:
        arch = json.loads(str(f[ARCH_KEY]))
        assert f[ARCH_KEY].dtype.kind == "U"
    assert [l["type"] for l in arch["layers"]] == ["Dense"] * 3
    assert arch["layers"][0]["config"]["activation"] == {"name": "leaky_relu", "config": {"alpha": 0.07}}


def test_damaged_and_foreign_files_fail_clearly(tmp_path):
    good = save_model(_net(), tmp_path / "good.npz")
    raw = open(good, "rb").read()
    (tmp_path / "trunc.npz").write_bytes(raw[: len(raw) // 2])
    (tmp_path / "text.npz").write_text("hello")
    np.save(tmp_path / "single.npy", np.zeros(3))
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    np.savez(tmp_path / "objects.npz", **{ARCH_KEY: np.array([{"x": 1}], dtype=object)})
    np.savez(tmp_path / "badjson.npz", **{ARCH_KEY: np.array("{not json")})
    np.savez(tmp_path / "wrongformat.npz", **{ARCH_KEY: np.array(json.dumps({"format": "keras"}))})
    with zipfile.ZipFile(good) as z, zipfile.ZipFile(tmp_path / "missing.npz", "w") as out:
        for name in z.namelist():
            if name != "layers/1/W.npy":
                out.writestr(name, z.read(name))
    for name in (
        "trunc.npz",
        "text.npz",
        "single.npy",
        "other.npz",
        "objects.npz",
        "badjson.npz",
        "wrongformat.npz",
        "missing.npz",
    ):
        with pytest.raises(ValueError, match=name.replace(".", r"\.")):
            load_model(tmp_path / name)
    with pytest.raises(ValueError, match="missing array 'layers/1/W'"):
        load_model(tmp_path / "missing.npz")
    with pytest.raises(FileNotFoundError, match="not found"):
        load_model(tmp_path / "nothing.npz")


def test_unregistered_layer_type_is_refused_on_save(tmp_path):
    class Custom(Dense):
        pass

    net = Network([Custom(2, 2, seed=0)], "mse")
    with pytest.raises(TypeError, match="no saver registered for Custom"):
        save_model(net, tmp_path / "x.npz")


def test_save_is_atomic_a_failed_write_leaves_the_old_model(tmp_path, monkeypatch):
    path = save_model(_net(), tmp_path / "m.npz")
    old = open(path, "rb").read()
    real = np.savez_compressed

    def fails_half_way(file, **arrays):  # a full disk: some bytes written, then ENOSPC
        real(file, **arrays)
        file.truncate(100)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez_compressed", fails_half_way)
    other = Network.build([3, 7, 2], "relu", seed=5)
    with pytest.raises(OSError, match="No space left"):
        save_model(other, path)
    assert open(path, "rb").read() == old  # the old model, byte for byte
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.npz"]  # no temporary file left behind
    monkeypatch.setattr(np, "savez_compressed", real)
    assert architecture(load_model(save_model(other, path))) == architecture(other)  # near miss: it does replace


def test_save_refuses_before_writing(tmp_path):
    net = _net()
    with pytest.raises(FileNotFoundError, match="path: the folder"):
        save_model(net, tmp_path / "no" / "m.npz")
    (tmp_path / "d.npz").mkdir()
    with pytest.raises(ValueError, match="path: .* is a directory"):
        save_model(net, tmp_path / "d.npz")
    net.layers[1].b[2] = np.nan
    with pytest.raises(ValueError, match=r"net: array 'layers/1/b' is not finite"):
        save_model(net, tmp_path / "nan.npz")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.npz"]


def test_saved_file_gets_the_ordinary_file_mode(tmp_path):
    import os

    path = save_model(_net(), tmp_path / "m.npz")
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask
    os.chmod(path, 0o640)
    save_model(_net(), path)  # replacing keeps the old file's mode
    assert os.stat(path).st_mode & 0o777 == 0o640


def test_memory_budget_near_miss(tmp_path):
    net = Network.build([300, 300, 2], "relu", seed=0)  # ~0.7 MB of float64, stored ~0.7 MB
    path = save_model(net, tmp_path / "big.npz")
    assert load_model(path, max_bytes=800_000).n_in == 300  # fits
    with pytest.raises(ValueError, match=r"big\.npz: .*layers/\d/\w: the arrays need more than .* max_bytes"):
        load_model(path, max_bytes=100_000)


def test_fortran_ordered_arrays_load_bit_exact(tmp_path):
    # near miss of the header checks: numpy writes an F-contiguous array with fortran_order True
    import io

    net = _net()
    path = save_model(net, tmp_path / "m.npz")
    with zipfile.ZipFile(path) as z:
        members = {n: z.read(n) for n in z.namelist()}
    buf = io.BytesIO()
    np.save(buf, np.asfortranarray(net.layers[0].W))
    members["layers/0/W.npy"] = buf.getvalue()
    assert b"'fortran_order': True" in members["layers/0/W.npy"][:128]
    with zipfile.ZipFile(path, "w") as out:
        for n, raw in members.items():
            out.writestr(n, raw)
    back = load_model(path)
    assert back.layers[0].W.tobytes() == net.layers[0].W.tobytes()
