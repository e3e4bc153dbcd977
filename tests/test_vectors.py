"""Conformance vectors: the suite's contents, its file forms and layouts, and compare's verdicts.

Results are produced three ways: recomputed with the library from the suite's own input files (the
library's outputs fed back through the file format), copied from the expected arrays in another form,
and edited with one deliberate slip each (each diagnosis and its near miss).
"""

import io
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from jacobian_nn import __version__, get_activation, get_loss
from jacobian_nn.cli import main
from jacobian_nn.vectors import array_text, build_suite, write_suite
from jacobian_nn.vectors_format import KIND_LAYOUT, flat_permutation, to_layout
from jacobian_nn.vectors_compare import compare_results, read_json_array, read_npy, read_text_array

HERE = Path(__file__).resolve().parent
EXAMPLE = HERE.parent / "examples" / "conformance" / "conformance.c"


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    return write_suite(tmp_path_factory.mktemp("v") / "suite").path


@pytest.fixture(scope="module")
def suite_columns(tmp_path_factory):
    return write_suite(tmp_path_factory.mktemp("v") / "suite", "columns").path


def manifest(path):
    return json.loads((Path(path) / "manifest.json").read_text())


def save(path: Path, A, form=".npy"):
    path.parent.mkdir(parents=True, exist_ok=True)
    for s in (".npy", ".json", ".txt"):
        path.with_name(path.name + s).unlink(missing_ok=True)
    A = np.asarray(A)
    if form == ".npy":
        np.save(path.with_name(path.name + ".npy"), A)
    elif form == ".json":
        path.with_name(path.name + ".json").write_text(json.dumps(A.tolist()))
    else:
        path.with_name(path.name + ".txt").write_text(array_text(A))


def copy_expected(suite_dir, results: Path, form=".npy", only=None) -> Path:
    """Every expected array of the suite, read from its .npy and written in ``form``, plus the header."""
    results.mkdir(parents=True, exist_ok=True)
    shutil.copy(Path(suite_dir) / "suite.txt", results / "results.txt")
    for case in manifest(suite_dir)["cases"]:
        if only and case["component"] not in only:
            continue
        for n, a in case["arrays"].items():
            if a["role"] == "expected":
                save(results / case["name"] / n, np.load(Path(suite_dir) / a["files"][0]), form)
    return results


def edit(suite_dir, results: Path, case, name, fn):
    A = np.load(Path(suite_dir) / case / f"{name}.npy").astype(np.float64)
    save(results / case / name, fn(A.copy()))


def array_report(rep, case, name):
    c = next(c for c in rep.cases if c.name == case)
    return next(a for a in c.arrays if a.name == name)


# --------------------------------------------------------------------------- the suite


def test_suite_covers_every_component_point_and_dtype(suite):
    m = manifest(suite)
    comps = {c["component"] for c in m["cases"]}
    assert comps >= {
        "identity",
        "step",
        "sigmoid",
        "tanh",
        "relu",
        "leaky_relu",
        "elu",
        "softmax",
        "softmax_cross_entropy",
        "cross_entropy",
        "mse",
        "dense",
        "batchnorm_train",
        "batchnorm_test",
        "dropout_train",
        "network",
        "conv2d",
        "maxpool2d",
        "avgpool2d",
        "spatial_batchnorm_train",
        "spatial_batchnorm_test",
        "layernorm",
        "mul",
        "add",
        "svm",
        "binary_cross_entropy",
        "sigmoid_binary_cross_entropy",
    }
    points = {c["point"] for c in m["cases"]}
    assert points >= {"random", "kink", "saturated", "spread1000", "nearly_constant", "mask", "ties", "ties_overlap"}
    assert {c["dtype"] for c in m["cases"]} == {"float64", "float32"}
    assert m["library_version"] == __version__ and m["layout"] == "rows"
    assert m["content_hash"].startswith("sha256:")
    net = next(c for c in m["cases"] if c["name"] == "network_tanh_softmax_ce-random-float64")
    assert {"out", "loss", "losses", "dW1", "db2", "dW1_per_sample", "db2_per_sample", "J_input"} <= set(net["arrays"])
    for c in m["cases"]:
        assert c["tolerance"]["noise"] > 0 and "measured" in c["tolerance"]["derived"]
        for a in c["arrays"].values():
            assert a["layout"] == KIND_LAYOUT[a["kind"]]["rows"]


def test_writing_is_deterministic_and_refuses_a_used_folder(suite, tmp_path):
    again = write_suite(tmp_path / "again")
    assert again.content_hash == manifest(suite)["content_hash"]
    for f in (Path(suite) / "relu-kink-float64").iterdir():
        assert (tmp_path / "again" / "relu-kink-float64" / f.name).read_bytes() == f.read_bytes()
    used = tmp_path / "used"
    used.mkdir()
    (used / "keep.txt").write_text("mine")
    with pytest.raises(ValueError, match="out: .* not an empty folder"):
        write_suite(used)
    assert sorted(p.name for p in used.iterdir()) == ["keep.txt"]
    with pytest.raises(ValueError, match="layout"):
        write_suite(tmp_path / "x", "nchw")
    assert not (tmp_path / "x").exists()


def test_every_json_and_text_form_reads_back_bit_exact(suite):
    for case in manifest(suite)["cases"]:
        for a in case["arrays"].values():
            npy, js, txt = (Path(suite) / f for f in a["files"])
            A = np.load(npy)
            assert list(A.shape) == a["shape"] and A.dtype.name == a["dtype"]
            for B in (read_json_array(js), read_text_array(txt)):
                assert np.array_equal(B.astype(A.dtype), A) and B.shape == A.shape
                assert np.array_equal(np.signbit(B), np.signbit(A.astype(np.float64)))


@pytest.mark.parametrize("layout", ["rows", "columns"])
def test_vjps_are_the_cotangent_times_the_full_jacobian_in_each_layout(layout, suite, suite_columns):
    """vec(dIn) = vec(G) @ J within every case that has both, in the C order of the arrays as written,
    for the expected values and for the other branch at the kinks."""
    root = Path(suite if layout == "rows" else suite_columns)
    checked = 0
    for case in manifest(root)["cases"]:
        arrays = case["arrays"]
        for n, a in arrays.items():
            if "jacobian_of" not in a or "G" not in arrays:
                continue
            grad = "d" + a["jacobian_of"]["in"]
            if grad not in arrays:
                continue
            for suffix in ("", ".right"):
                if suffix and "right_branch" not in a:
                    continue
                J = np.load(root / case["name"] / f"{n}{suffix}.npy")
                G = np.load(root / case["name"] / "G.npy").reshape(-1)
                d = np.load(root / case["name"] / f"{grad}{suffix}.npy").reshape(-1)
                rtol = 1e-12 if case["dtype"] == "float64" else 1e-5
                assert np.allclose(G.astype(np.float64) @ J, d, rtol=rtol, atol=rtol), (case["name"], n, suffix)
                checked += 1
    assert checked >= 84  # every Jacobian with its VJP, the image layers, layer norm and the graph nodes included


def test_columns_layout_is_the_rows_layout_rearranged(suite, suite_columns):
    rows, cols = manifest(suite), manifest(suite_columns)
    assert cols["layout"] == "columns" and cols["content_hash"] != rows["content_hash"]
    case = "dense_tanh-random-float64"
    r = {n: np.load(Path(suite) / case / f"{n}.npy") for n in ("X", "W", "b", "J_W")}
    c = {n: np.load(Path(suite_columns) / case / f"{n}.npy") for n in ("X", "W", "b", "J_W")}
    assert np.array_equal(c["X"], r["X"].T) and np.array_equal(c["W"], r["W"].T)
    assert c["b"].shape == (2, 1) and np.array_equal(c["b"][:, 0], r["b"])
    po, pi = flat_permutation("batch", (3, 2), "columns"), flat_permutation("weight", (4, 2), "columns")
    assert np.array_equal(c["J_W"], r["J_W"][po][:, pi])
    A = np.arange(6.0).reshape(2, 3)
    assert np.array_equal(
        to_layout(A, "batch", "columns").reshape(-1), A.reshape(-1)[flat_permutation("batch", (2, 3), "columns")]
    )


# --------------------------------------------------------------------------- compare: passes


def test_library_outputs_recomputed_from_the_json_inputs_pass(suite, tmp_path):
    """Every activation case, recomputed from Z.json and G.json with the library and written as JSON lists."""
    results = tmp_path / "r"
    results.mkdir()
    shutil.copy(Path(suite) / "suite.txt", results / "results.txt")
    names = []
    for case in manifest(suite)["cases"]:
        if "Z" not in case["arrays"] or "J" not in case["arrays"]:
            continue
        names.append(case["name"])
        kw = {"leaky_relu": {"alpha": 0.01}, "elu": {"alpha": 1.0}}.get(case["component"], {})
        act = get_activation(case["component"], **kw)
        Z = read_json_array(Path(suite) / case["name"] / "Z.json").astype(np.float64)
        G = read_json_array(Path(suite) / case["name"] / "G.json").astype(np.float64)
        Y = act.forward_batched(Z)
        N, d = Z.shape
        J = np.zeros((N, d, N, d))
        for k in range(N):
            J[k, :, k, :] = act.jacobian(Z[k][:, None])
        save(results / case["name"] / "Y", Y, ".json")
        save(results / case["name"] / "dZ", act.vjp_batched(Z, Y, G), ".json")
        save(results / case["name"] / "J", J.reshape(N * d, N * d), ".json")
    comps = sorted({n.split("-")[0] for n in names})
    rep = compare_results(suite, results, only=names)
    assert rep.verdict == "pass", str(rep)
    assert len(rep.cases) == len(names) >= 20 and len(comps) == 8


@pytest.mark.parametrize("form", [".npy", ".json", ".txt"])
def test_every_expected_array_fed_back_passes_in_each_form(form, suite, tmp_path):
    rep = compare_results(suite, copy_expected(suite, tmp_path / "r", form))
    assert rep.verdict == "pass", str(rep)
    assert len(rep.cases) == len(manifest(suite)["cases"]) and rep.skipped == 0
    assert set(rep.components.values()) == {"pass"}


def test_columns_suite_round_trip_passes(suite_columns, tmp_path):
    rep = compare_results(suite_columns, copy_expected(suite_columns, tmp_path / "r", ".json"))
    assert rep.verdict == "pass", str(rep)


# --------------------------------------------------------------------------- compare: diagnoses and near misses


@pytest.fixture
def results(suite, tmp_path):
    return copy_expected(suite, tmp_path / "r")


CASES = {
    "sign": ("tanh-random-float64", "dZ", lambda A: -A, "sign_flipped"),
    "transposed": ("dense_identity-square-float64", "dW", lambda A: A.T, "transposed"),
    "diagonal": ("softmax-random-float64", "J", lambda A: np.diag(np.diag(A)), "diagonal_only"),
    "missing 1/N": ("softmax_cross_entropy-random-float64", "dZ", lambda A: 4 * A, "missing_batch_scaling"),
    "factor": ("dense_tanh-random-float64", "dX", lambda A: 2 * A, "constant_factor"),
    "kink": ("relu-kink-float64", "dZ", None, "kink_convention"),
    "kink conv": ("conv2d_relu_s1_p0_k2x3-kink-float64", "dW", None, "kink_convention"),
    "kink svm": ("svm-kink-float64", "dS", None, "kink_convention"),
    "kink max-pool ties": ("maxpool2d_2_s2-ties-float64", "dX", None, "kink_convention"),
    "kink max-pool J": ("maxpool2d_2_s1-ties_overlap-float64", "J_X", None, "kink_convention"),
    "sign image": ("conv2d_identity_s2_p1-random-float64", "dX", lambda A: -A, "sign_flipped"),
    "factor image": ("spatial_batchnorm_train-random-float64", "dgamma", lambda A: 0.5 * A, "constant_factor"),
    "missing 1/N svm": ("svm-random-float64", "dS", lambda A: 4 * A, "missing_batch_scaling"),
    "missing 1/N cnn": ("network_cnn-random-float64", "dW1", lambda A: 4 * A, "missing_batch_scaling"),
}


@pytest.mark.parametrize("key", sorted(CASES))
def test_each_slip_is_named_and_located(key, suite, results):
    case, name, fn, diagnosis = CASES[key]
    if fn is None:
        save(results / case / name, np.load(Path(suite) / case / f"{name}.right.npy"))
    else:
        edit(suite, results, case, name, fn)
    rep = compare_results(suite, results)
    a = array_report(rep, case, name)
    assert rep.verdict == "fail" and a.status == "fail" and a.diagnosis == diagnosis, str(rep)
    assert a.worst and a.worst[0].where.startswith(name + "[")
    others = [c for c in rep.cases if c.name != case]
    assert all(c.verdict == "pass" for c in others)


def test_off_at_label_in_both_layouts(suite, suite_columns, tmp_path):
    for root in (suite, suite_columns):
        res = copy_expected(root, tmp_path / Path(root).parent.name)
        case = "softmax_cross_entropy-random-float32"
        y = np.load(Path(root) / case / "y.npy")
        D = np.load(Path(root) / case / "dZ.npy").astype(np.float64)
        rows = D if manifest(root)["layout"] == "rows" else D.T
        rows = rows.copy()
        rows[np.arange(4), y] += 0.25
        save(res / case / "dZ", rows if manifest(root)["layout"] == "rows" else rows.T)
        a = array_report(compare_results(root, res), case, "dZ")
        assert a.diagnosis == "off_at_label", a
        assert a.n_failed == 4


def test_one_wrong_entry_is_not_diagonal_only(suite, results):
    case = "softmax-random-float64"

    def one(A):
        A[1, 2] = 0.0  # one off-diagonal entry of the first sample's block zeroed
        return A

    edit(suite, results, case, "J", one)
    a = array_report(compare_results(suite, results), case, "J")
    assert a.status == "fail" and a.diagnosis == "mismatch" and a.n_failed == 1
    assert a.worst[0].where.startswith("J[1, 2] = dY[0, 1]/dZ[0, 2]")


def test_one_negated_row_is_not_sign_flipped(suite, results):
    case = "tanh-random-float64"

    def row(A):
        A[1] *= -1
        return A

    edit(suite, results, case, "dZ", row)
    a = array_report(compare_results(suite, results), case, "dZ")
    assert a.status == "fail" and a.diagnosis != "sign_flipped" and a.n_failed == 4
    assert {w.where for w in a.worst} == {f"dZ[1, {j}]" for j in range(4)}


def test_a_partly_wrong_array_does_not_pass(suite, results):
    case = "batchnorm_train-nearly_constant-float64"

    def part(A):
        A[:2] *= 1.0 + 1e-5  # two samples off by a relative 1e-5, far beyond float64's tolerance
        return A

    edit(suite, results, case, "dX", part)
    rep = compare_results(suite, results)
    a = array_report(rep, case, "dX")
    assert a.status == "fail" and rep.verdict == "fail" and rep.components["batchnorm_train"] == "fail"
    assert a.diagnosis != "constant_factor"


def test_a_wrong_value_at_a_kink_is_not_a_kink_convention(suite, results):
    case = "relu-kink-float64"
    edit(suite, results, case, "dZ", lambda A: np.where(A == 0, 0.5, A))
    a = array_report(compare_results(suite, results), case, "dZ")
    assert a.status == "fail" and a.diagnosis != "kink_convention"


def test_missing_files_and_cases_fail(suite, results):
    (results / "dense_tanh-random-float64" / "db.npy").unlink()
    shutil.rmtree(results / "step-kink-float64")
    rep = compare_results(suite, results)
    assert rep.verdict == "fail"
    assert array_report(rep, "dense_tanh-random-float64", "db").status == "missing"
    step = next(c for c in rep.cases if c.name == "step-kink-float64")
    assert step.verdict == "fail" and {a.status for a in step.arrays} == {"missing"}
    assert "no results" in str(rep)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_never_passes(bad, suite, results):
    def put(A):
        A[0, 0] = bad
        return A

    edit(suite, results, "mse-random-float64", "dY_hat", put)
    a = array_report(compare_results(suite, results), "mse-random-float64", "dY_hat")
    assert a.status == "fail" and a.diagnosis == "not_finite" and a.worst[0].where == "dY_hat[0, 0]"


def test_wrong_shape_is_refused_with_both_shapes(suite, results):
    edit(suite, results, "dense_tanh-random-float64", "dW", lambda A: A.T)
    rep = compare_results(suite, results)
    a = array_report(rep, "dense_tanh-random-float64", "dW")
    assert a.status == "refused" and "(2, 4)" in a.summary and "(4, 2)" in a.summary
    assert "transposed" in a.notes[0]
    assert rep.verdict == "refused"
    edit(suite, results, "dense_tanh-random-float64", "dW", lambda A: A.reshape(-1))
    assert array_report(compare_results(suite, results), "dense_tanh-random-float64", "dW").status == "refused"


def test_two_forms_of_one_array_are_refused(suite, results):
    case = "relu-random-float64"
    (results / case / "Y.json").write_text(json.dumps(np.load(Path(suite) / case / "Y.npy").tolist()))
    a = array_report(compare_results(suite, results), case, "Y")
    assert a.status == "refused" and "2 forms" in a.summary


def test_a_hostile_npy_header_is_refused_before_allocating(suite, results, tmp_path):
    p = results / "relu-random-float64" / "Y.npy"
    raw = p.read_bytes()
    hostile = raw.replace(b"'shape': (3, 4), }    ", b"'shape': (99999, 4), }")  # same header length
    assert hostile != raw and len(hostile) == len(raw)
    p.write_bytes(hostile)
    a = array_report(compare_results(suite, results), "relu-random-float64", "Y")
    assert a.status == "refused" and "more than the file holds" in a.summary
    q = tmp_path / "obj.npy"
    np.save(q, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(Exception, match="dtype object"):
        read_npy(q)


@pytest.mark.parametrize(
    "key,value,why",
    [
        ("library_version", "0.0.1", "another library version"),
        ("layout", "columns", "another layout"),
        ("content_hash", "sha256:00", "another suite"),
    ],
)
def test_a_results_header_that_disagrees_is_refused(key, value, why, suite, results):
    lines = (results / "results.txt").read_text().splitlines()
    (results / "results.txt").write_text(
        "\n".join(f"{key} {value}" if l.startswith(key + " ") else l for l in lines) + "\n"
    )
    rep = compare_results(suite, results)
    assert rep.verdict == "refused" and why in rep.cause and not rep.cases


def test_no_header_or_a_changed_suite_is_refused(suite, results, tmp_path):
    (results / "results.txt").unlink()
    rep = compare_results(suite, results)
    assert rep.verdict == "refused" and "results.txt" in rep.cause
    changed = tmp_path / "changed"
    shutil.copytree(suite, changed)
    A = np.load(changed / "relu-random-float64" / "dZ.npy")
    np.save(changed / "relu-random-float64" / "dZ.npy", 2 * A)
    shutil.copy(Path(suite) / "suite.txt", results / "results.txt")
    rep = compare_results(changed, results)
    assert rep.verdict == "refused" and "content hash" in rep.cause


# --------------------------------------------------------------------------- command line


def test_cli_exit_codes(suite, results, tmp_path, capsys):
    assert main(["compare", suite, str(results), "--only", "relu"]) == 0
    out = tmp_path / "report.json"
    edit(suite, results, "relu-random-float64", "dZ", lambda A: -A)
    assert main(["compare", suite, str(results), "--json", str(out)]) == 1
    assert json.loads(out.read_text())["components"]["relu"] == "fail"
    assert main(["compare", suite, str(results), "--only", "conv3d"]) == 2
    assert main(["compare", suite, str(results), "--json", str(tmp_path / "no" / "r.json")]) == 2
    assert "conv3d" in capsys.readouterr().err
    (results / "results.txt").unlink()
    assert main(["compare", suite, str(results)]) == 3
    assert main(["vectors", "--out", suite]) == 2


def test_build_suite_writes_nothing_and_names_every_file(tmp_path):
    m, files = build_suite("rows")
    listed = {f for c in m["cases"] for a in c["arrays"].values() for f in a["files"]}
    assert listed <= set(files) and len(files) >= 3 * len(listed) // 3


# --------------------------------------------------------------------------- the worked example in C


def _compiler():
    for cc in ("cc", "gcc", "clang"):
        if shutil.which(cc):
            return cc
    return None


@pytest.mark.skipif(_compiler() is None, reason="no C compiler (cc, gcc or clang) on PATH to build the example")
def test_worked_example_in_c_passes_and_its_planted_slip_is_named(suite, tmp_path):
    cc = _compiler()
    only = ["--only", "relu", "--only", "softmax_cross_entropy", "--only", "dense"]
    for flag, expected in (([], 0), (["-DPLANTED_SLIP"], 1)):
        exe = tmp_path / ("slip" if flag else "ok")
        subprocess.run([cc, "-std=c99", "-O2", *flag, "-o", str(exe), str(EXAMPLE), "-lm"], check=True)
        res = tmp_path / f"results-{exe.name}"
        subprocess.run([str(exe), suite, str(res)], check=True, capture_output=True)
        rep = compare_results(suite, res, only=only[1::2])
        assert main(["compare", suite, str(res), *only]) == expected, str(rep)
        if flag:
            bad = [(c.name, a.name, a.diagnosis) for c in rep.cases for a in c.arrays if a.status != "pass"]
            assert {b[2] for b in bad} == {"missing_batch_scaling"} and {b[1] for b in bad} == {"dZ"}
            assert len(bad) == 3 and all(b[0].startswith("softmax_cross_entropy") for b in bad)
        else:
            assert rep.verdict == "pass" and len(rep.cases) == 11


@pytest.mark.parametrize(
    "text,why",
    [
        ("[[1, 2], [3]]", "ragged"),
        ("[true, false]", "dtype bool"),
        ('["1", "2"]', "dtype <U1"),
        ('{"shape": [3], "data": [1, 2]}', "needs 3"),
        ("[1, 2", "not valid JSON"),
    ],
)
def test_bad_json_results_are_refused_with_the_reason(text, why, suite, results):
    case = "relu-random-float64"
    (results / case / "Y.npy").unlink()
    (results / case / "Y.json").write_text(text)
    a = array_report(compare_results(suite, results), case, "Y")
    assert a.status == "refused" and why in a.summary, a.summary


def test_a_text_result_with_too_few_values_is_refused(suite, results):
    case = "relu-random-float64"
    (results / case / "Y.npy").unlink()
    (results / case / "Y.txt").write_text("dtype float64\nshape 3 4\n" + "0x1p+0\n" * 11)
    a = array_report(compare_results(suite, results), case, "Y")
    assert a.status == "refused" and "needs 12 values, the file has 11" in a.summary


def _node_major():
    node = shutil.which("node")
    if node is None:
        return None
    out = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
    try:
        return int(out.lstrip("v").split(".")[0])
    except ValueError:
        return None


@pytest.mark.skipif((_node_major() or 0) < 18, reason="no Node.js 18 or later on PATH to run the JavaScript example")
def test_worked_example_in_javascript_reads_json_and_passes(suite, tmp_path):
    res = tmp_path / "results-js"
    subprocess.run(["node", str(EXAMPLE.with_suffix(".mjs")), suite, str(res)], check=True, capture_output=True)
    assert sorted(p.suffix for p in (res / "relu-kink-float64").iterdir()) == [".json"] * 3
    rep = compare_results(suite, res, only=["relu", "softmax_cross_entropy", "dense"])
    assert rep.verdict == "pass" and len(rep.cases) == 11, str(rep)


# --------------------------------------------------------------------------- images: NCHW and NHWC


CONV = "conv2d_identity_s2_p1-random-float64"


def test_image_arrays_are_nchw_in_rows_and_nhwc_in_columns(suite, suite_columns):
    """The conv case as written in each layout: images (N, C, H, W) and (N, H, W, C), filters (F, C, FH, FW)
    and (FH, FW, C, F), b (F,) and (1, 1, 1, F); its Jacobians re-indexed by flat_permutation."""
    r = {n: np.load(Path(suite) / CONV / f"{n}.npy") for n in ("X", "W", "b", "Y", "dW", "J_X", "J_W", "J_b")}
    c = {n: np.load(Path(suite_columns) / CONV / f"{n}.npy") for n in r}
    assert r["X"].shape == (2, 2, 5, 5) and c["X"].shape == (2, 5, 5, 2)
    assert np.array_equal(c["X"], r["X"].transpose(0, 2, 3, 1)) and np.array_equal(c["Y"], r["Y"].transpose(0, 2, 3, 1))
    assert c["W"].shape == (3, 3, 2, 3) and np.array_equal(c["W"], r["W"].transpose(2, 3, 1, 0))
    assert np.array_equal(c["dW"], r["dW"].transpose(2, 3, 1, 0))
    assert c["b"].shape == (1, 1, 1, 3) and np.array_equal(c["b"].reshape(-1), r["b"])
    po = flat_permutation("image_batch", r["Y"].shape, "columns")
    pi = {
        n: flat_permutation(k, r[n].shape, "columns")
        for n, k in (("X", "image_batch"), ("W", "conv_weight"), ("b", "channel_vector"))
    }
    for n in ("X", "W", "b"):
        assert np.array_equal(c["J_" + n], r["J_" + n][po][:, pi[n]]), n
    assert not np.array_equal(po, np.arange(po.size))  # the NHWC order really differs
    cols = manifest(suite_columns)
    spec = next(x for x in cols["cases"] if x["name"] == CONV)["arrays"]
    assert spec["X"]["layout"].startswith("(N, H, W, C)") and spec["W"]["layout"].startswith("(FH, FW, C, F)")
    rows = next(x for x in manifest(suite)["cases"] if x["name"] == CONV)["arrays"]
    assert rows["X"]["layout"].startswith("(N, C, H, W)") and rows["W"]["layout"].startswith("(F, C, FH, FW)")


@pytest.mark.parametrize(
    "kind,shape,axes",
    [
        ("image_batch", (2, 3, 4, 5), (0, 2, 3, 1)),
        ("conv_weight", (3, 2, 4, 5), (2, 3, 1, 0)),
        ("per_sample_conv_weight", (2, 3, 2, 4, 5), (0, 3, 4, 2, 1)),
        ("channel_vector", (3,), None),
        ("per_sample_channel_vector", (2, 3), None),
    ],
)
def test_flat_permutation_of_the_image_kinds(kind, shape, axes):
    """to_layout(A).flat[i] == A.flat[perm[i]]; the NHWC and filter orders are the course's axes."""
    A = np.arange(float(np.prod(shape))).reshape(shape) * 1.5 - 7
    written = to_layout(A, kind, "columns")
    assert np.array_equal(
        np.ascontiguousarray(written).reshape(-1), A.reshape(-1)[flat_permutation(kind, shape, "columns")]
    )
    if axes is None:
        assert written.shape == ((1, 1, 1, shape[0]) if len(shape) == 1 else (shape[0], 1, 1, 1, shape[1]))
    else:
        assert np.array_equal(written, A.transpose(axes))
    assert np.array_equal(to_layout(A, kind, "rows"), A)
    assert kind in KIND_LAYOUT and set(KIND_LAYOUT[kind]) == {"rows", "columns"}


def test_a_per_sample_jacobian_of_images_is_reindexed_per_sample():
    """J_input (N, m, C*H*W): in columns each slice runs over one image's (h, w, c), the out vector's order kept."""
    from jacobian_nn.vectors import _case_entry
    from jacobian_nn.vectors_format import Arr, Case

    r = np.random.default_rng(3)
    X, J = r.standard_normal((2, 2, 3, 2)), r.standard_normal((2, 4, 12))
    c = Case("t", "network", "random", "float64", "")
    c.arrays.update(
        X=Arr("input", "image_batch", X),
        out=Arr("expected", "batch", r.standard_normal((2, 4))),
        J_input=Arr("expected", "per_sample_jacobian", J, of=("out", "X")),
    )
    entry, files = _case_entry(c, "columns")
    written = np.load(io.BytesIO(files["t/J_input.npy"]))
    pi = flat_permutation("image_batch", (1, 2, 3, 2), "columns")
    assert np.array_equal(written, J[:, :, pi]) and not np.array_equal(pi, np.arange(12))
    assert entry["arrays"]["J_input"]["per_sample_jacobian_of"] == {"out": "out", "in": "X"}
    assert np.array_equal(np.load(io.BytesIO(_case_entry(c, "rows")[1]["t/J_input.npy"])), J)


@pytest.mark.parametrize("layout", ["rows", "columns"])
def test_two_channels_swapped_are_a_mismatch_not_transposed(layout, suite, suite_columns, tmp_path):
    """The near miss of 'transposed' on image arrays: a result with channels 0 and 1 swapped fails as a
    mismatch located at its entries, never as a transpose; swapping two equal channels would pass."""
    root = suite if layout == "rows" else suite_columns
    res = copy_expected(root, tmp_path / "r", only=["conv2d"])
    axis = 1 if layout == "rows" else 3
    edit(root, res, CONV, "dX", lambda A: np.take(A, [1, 0], axis=axis))
    rep = compare_results(root, res, only=["conv2d"])
    a = array_report(rep, CONV, "dX")
    assert a.status == "fail" and a.diagnosis == "mismatch", str(rep)
    assert a.worst[0].where.startswith("dX[") and a.worst[0].where.count(",") == 3
    assert rep.components["conv2d"] == "fail"


def test_an_nhwc_result_for_an_nchw_suite_is_refused_and_named(suite, tmp_path):
    res = copy_expected(suite, tmp_path / "r", only=["conv2d"])
    edit(suite, res, CONV, "dX", lambda A: A.transpose(0, 2, 3, 1))
    a = array_report(compare_results(suite, res, only=["conv2d"]), CONV, "dX")
    assert a.status == "refused" and a.diagnosis == "wrong_shape" and "(2, 5, 5, 2)" in a.summary
    assert "A.transpose(0, 3, 1, 2)" in a.notes[0] and "NHWC" in a.notes[0]
    # near miss: the same axis order with a wrong value is refused without the note
    edit(
        suite,
        res,
        CONV,
        "dX",
        lambda A: (A + np.where(np.arange(A.size).reshape(A.shape) == 7, 1.0, 0.0)).transpose(0, 2, 3, 1),
    )
    b = array_report(compare_results(suite, res, only=["conv2d"]), CONV, "dX")
    assert b.status == "refused" and b.notes == []


def test_max_pooling_with_the_last_maximal_element_is_not_a_kink_convention(suite, results):
    """The suite records one other branch (every maximal element); a result giving the gradient to the
    LAST maximal element differs from both and is a mismatch."""
    case = "maxpool2d_2_s2-ties-float64"
    X, G = np.load(Path(suite) / case / "X.npy"), np.load(Path(suite) / case / "G.npy")
    win = np.lib.stride_tricks.sliding_window_view(X, (2, 2), axis=(2, 3))[:, :, ::2, ::2]
    dX = np.zeros_like(X)
    for n, c, i, j in np.ndindex(G.shape):
        v = win[n, c, i, j].reshape(-1)
        t = len(v) - 1 - int(np.argmax(v[::-1]))
        dX[n, c, 2 * i + t // 2, 2 * j + t % 2] += G[n, c, i, j]
    save(results / case / "dX", dX)
    a = array_report(compare_results(suite, results), case, "dX")
    assert a.status == "fail" and a.diagnosis != "kink_convention"


def test_binary_losses_read_bool_labels_as_zero_and_one(suite):
    """The suite writes binary labels as float64 0/1; bools give the library bit-identical values."""
    for name, inp in (("binary_cross_entropy", "P"), ("sigmoid_binary_cross_entropy", "Z")):
        case = Path(suite) / f"{name}-saturated-float64"
        A, Y = np.load(case / f"{inp}.npy"), np.load(case / "Y.npy")
        assert set(np.unique(Y)) <= {0.0, 1.0}
        loss = get_loss(name)
        Lf, Gf = loss.forward_and_gradient_batched(A, Y)
        Lb, Gb = loss.forward_and_gradient_batched(A, Y.astype(bool))
        assert Lf == Lb and np.array_equal(Gf, Gb) and np.array_equal(Gf, np.load(case / f"d{inp}.npy"))


# --------------------------------------------------------------------------- versions


def test_a_suite_of_another_library_version_is_compared_with_a_note(tmp_path, monkeypatch, capsys):
    """compare works from the suite's files, so a suite written by another version is compared, not refused,
    and the report says which version wrote it; the suite of this version gets no such note."""
    import jacobian_nn.vectors as vectors

    monkeypatch.setattr(vectors, "__version__", "0.0.9")
    old = write_suite(tmp_path / "old").path
    monkeypatch.undo()
    assert manifest(old)["library_version"] == "0.0.9" != __version__
    res = copy_expected(old, tmp_path / "r", only=["mul"])
    rep = compare_results(old, res, only=["mul"])
    assert rep.verdict == "pass" and len(rep.notes) == 1
    assert "0.0.9" in rep.notes[0] and __version__ in rep.notes[0] and "note: the suite was written" in str(rep)
    assert rep.as_dict()["notes"] == rep.notes
    assert main(["compare", old, str(res), "--only", "mul"]) == 0
    assert "written by jacobian_nn 0.0.9" in capsys.readouterr().out
    # the results still have to answer that suite: a header naming this version is refused
    (res / "results.txt").write_text((res / "results.txt").read_text().replace("0.0.9", __version__))
    refused = compare_results(old, res, only=["mul"])
    assert refused.verdict == "refused" and "another library version" in refused.cause and refused.notes
    # near miss: this version's suite has no note
    new = write_suite(tmp_path / "new").path
    assert compare_results(new, copy_expected(new, tmp_path / "r2", only=["mul"]), only=["mul"]).notes == []


def test_height_and_width_swapped_are_named_and_channels_swapped_are_not(suite, tmp_path):
    """A same-shape result that is the expected array with two equal-length axes swapped (H and W of
    2x2 images) is a mismatch with a note naming the axis order; two channels swapped get no such note."""
    case = "spatial_batchnorm_train-random-float64"
    res = copy_expected(suite, tmp_path / "r", only=["spatial_batchnorm_train"])
    edit(suite, res, case, "dX", lambda A: A.transpose(0, 1, 3, 2))
    a = array_report(compare_results(suite, res, only=[case]), case, "dX")
    assert a.status == "fail" and a.diagnosis == "mismatch"
    assert any("A.transpose(0, 1, 3, 2)" in n for n in a.notes), a.notes
    edit(suite, res, case, "dX", lambda A: A[:, ::-1])
    b = array_report(compare_results(suite, res, only=[case]), case, "dX")
    assert b.status == "fail" and b.diagnosis == "mismatch" and not any("transpose" in n for n in b.notes)


@pytest.mark.parametrize(
    "key,value,why",
    [
        ("layout", None, "'layout' should be a string"),
        ("layout", "nchw", "layout 'nchw'"),
        ("library_version", 3, "string"),
    ],
)
def test_a_manifest_without_a_sound_header_is_refused(key, value, why, suite, tmp_path):
    """Even with its content hash recomputed, a manifest whose version or layout is missing or unknown is refused."""
    from jacobian_nn.vectors import content_hash

    bad = tmp_path / "bad"
    shutil.copytree(suite, bad)
    m = manifest(bad)
    if value is None:
        del m[key]
    else:
        m[key] = value
    files = {
        f: (bad / f).read_bytes()
        for c in m["cases"]
        for a in c["arrays"].values()
        for f in a["files"]
        + ([a["right_branch"][:-4] + s for s in (".npy", ".json", ".txt")] if "right_branch" in a else [])
    }
    m["content_hash"] = content_hash(m, files)
    (bad / "manifest.json").write_text(json.dumps(m))
    rep = compare_results(bad, copy_expected(suite, tmp_path / "r", only=["mul"]))
    assert rep.verdict == "refused" and why in rep.cause and rep.cause.startswith("suite: manifest.json")
