"""``compare`` on results folders written by a hostile or careless user: every odd file, link or header is
refused with a named reason, fails, or passes, as decided here; nothing crashes, hangs, fills memory, reads
outside the two folders or passes wrong (or uncomputed) results. Each refusal has a near miss that passes.

Decisions: a file present under a result's name that is not a regular file inside RESULTS (a folder, FIFO,
device, broken link, or a link out of RESULTS) is refused, never "missing"; a link (symbolic or hard) to a
suite file is refused, as it would pass without computing anything, and so is a RESULTS folder that is the
suite or inside it; numbers only (JSON booleans, strings, null, integers beyond 64 bits refused; NaN,
Infinity and 1e999 read as not finite and fail); a JSON object with a duplicate key is refused; files for
cases the suite lacks are ignored (they cannot change a verdict); a case with no results fails, so a run
with nothing exits 1."""

import io
import json
import os
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

from jacobian_nn.cli import main
from jacobian_nn.vectors import array_text, write_suite
from jacobian_nn.vectors_compare import MAX_FILE_BYTES, compare_results
from test_vectors import array_report, copy_expected

CASE, NAME = "relu-random-float64", "Y"  # Y: (3, 4) float64, relu of random points (some entries exactly 0)


@pytest.fixture(scope="module")
def suite(tmp_path_factory):
    return Path(write_suite(tmp_path_factory.mktemp("h") / "suite").path)


@pytest.fixture
def results(suite, tmp_path):
    return copy_expected(suite, tmp_path / "r")


class Unpickled:
    """Unpickling it creates the folder named by ``marker``: a witness that nothing was ever unpickled."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def npy_header(shape, descr="<f8") -> bytes:
    fh = io.BytesIO()
    np.lib.format.write_array_header_1_0(fh, {"descr": descr, "fortran_order": False, "shape": shape})
    return fh.getvalue()


def sparse(path: Path, size: int) -> None:
    """A file of ``size`` bytes that takes no disk space."""
    with open(path, "wb") as fh:
        fh.truncate(size)


def write(d: Path, suffix: str, content) -> None:
    p = d / (NAME + suffix)
    if isinstance(content, np.ndarray):
        np.save(p, content, allow_pickle=False)
    elif isinstance(content, bytes):
        p.write_bytes(content)
    else:
        p.write_text(content)


def zeros_to(E, value):
    assert (E == 0).any()
    return np.where(E == 0, value, E)


def json_zeros_as(E, token: str) -> str:
    """``E`` as JSON with every entry equal to 0 written as ``token``."""
    assert (E == 0).any()
    rows = [["@" if v == 0 else v for v in row] for row in E.tolist()]
    return json.dumps(rows).replace('"@"', token)


def with_nan(E):
    F = E.copy()
    F[0, 0] = np.nan
    return F


# (id, maker(case folder, expected Y, tmp_path), status, text in the summary or diagnosis)
HOSTILE = [
    # .npy
    (
        "npy huge shape, tiny file",
        lambda d, E, t: write(d, ".npy", npy_header((10**6, 4))),
        "refused",
        "more than the file holds",
    ),
    (
        "npy shape overflowing int64",
        lambda d, E, t: write(d, ".npy", npy_header((2**33, 2**31))),
        "refused",
        "more than the file holds",
    ),
    ("npy 40 axes", lambda d, E, t: write(d, ".npy", npy_header((1,) * 40) + b"\0" * 8), "refused", "40 axes"),
    ("npy truncated data", lambda d, E, t: write(d, ".npy", _npy_bytes(E)[:-8]), "refused", "more than the file holds"),
    ("npy not npy", lambda d, E, t: write(d, ".npy", b"hello"), "refused", "not a readable .npy"),
    ("npy fortran order", lambda d, E, t: write(d, ".npy", np.asfortranarray(E)), "pass", "rounding"),
    ("npy big-endian", lambda d, E, t: write(d, ".npy", E.astype(">f8")), "pass", "rounding"),
    ("npy longdouble", lambda d, E, t: write(d, ".npy", E.astype(np.longdouble)), "pass", "rounding"),
    ("npy float16", lambda d, E, t: write(d, ".npy", E.astype(np.float16)), "fail", ""),
    ("npy float32", lambda d, E, t: write(d, ".npy", E.astype(np.float32)), "fail", ""),
    ("npy complex", lambda d, E, t: write(d, ".npy", E.astype(complex)), "refused", "complex128"),
    ("npy bool", lambda d, E, t: write(d, ".npy", E > 0), "refused", "dtype bool"),
    ("npy structured", lambda d, E, t: write(d, ".npy", np.zeros((3, 4), "f8,f8")), "refused", "expected a real"),
    ("npy 0-d", lambda d, E, t: write(d, ".npy", np.array(E[0, 0])), "refused", "shape ()"),
    ("npy NaN", lambda d, E, t: write(d, ".npy", with_nan(E)), "fail", "not_finite"),
    ("npy -0.0 for 0.0", lambda d, E, t: write(d, ".npy", zeros_to(E, -0.0)), "pass", "rounding"),
    ("npy subnormal for 0.0", lambda d, E, t: write(d, ".npy", zeros_to(E, 5e-324)), "pass", "rounding"),
    (
        "npy over the size cap",
        lambda d, E, t: sparse(d / "Y.npy", MAX_FILE_BYTES + 1),
        "refused",
        "more than the limit",
    ),
    # .json
    ("json nested 10**5 deep", lambda d, E, t: write(d, ".json", "[" * 10**5 + "]" * 10**5), "refused", "nested"),
    (
        "json nested 40 deep",
        lambda d, E, t: write(d, ".json", "[" * 40 + "1" + "]" * 40),
        "refused",
        "nested more than 32",
    ),
    ("json NaN literal", lambda d, E, t: write(d, ".json", json.dumps(with_nan(E).tolist())), "fail", "not_finite"),
    (
        "json Infinity literal",
        lambda d, E, t: write(d, ".json", json.dumps(zeros_to(E, np.inf).tolist())),
        "fail",
        "not_finite",
    ),
    (
        "json 1e999",
        lambda d, E, t: write(d, ".json", json.dumps(E.tolist()).replace("0.0", "1e999", 1)),
        "fail",
        "not_finite",
    ),
    (
        "json integer beyond 64 bits",
        lambda d, E, t: write(d, ".json", json_zeros_as(E, str(10**400))),
        "refused",
        "dtype object",
    ),
    ("json boolean among numbers", lambda d, E, t: write(d, ".json", json_zeros_as(E, "false")), "refused", "booleans"),
    (
        "json null among numbers",
        lambda d, E, t: write(d, ".json", json.dumps(E.tolist()).replace("0.0", "null")),
        "refused",
        "dtype object",
    ),
    ("json integers among floats", lambda d, E, t: write(d, ".json", json_zeros_as(E, "0")), "pass", "rounding"),
    (
        "json shape disagrees",
        lambda d, E, t: write(d, ".json", json.dumps({"shape": [4, 4], "data": E.ravel().tolist()})),
        "refused",
        "needs 16 values",
    ),
    (
        "json shape overflowing int64",
        lambda d, E, t: write(d, ".json", json.dumps({"shape": [2**32, 2**32], "data": []})),
        "refused",
        "needs 18446744073709551616 values",
    ),
    (
        "json shape of 40 axes",
        lambda d, E, t: write(d, ".json", json.dumps({"shape": [1] * 40, "data": [1.0]})),
        "refused",
        "40 axes",
    ),
    (
        "json shape of booleans",
        lambda d, E, t: write(d, ".json", json.dumps({"shape": [True, 12], "data": E.ravel().tolist()})),
        "refused",
        "'shape' must be",
    ),
    (
        "json flat data with shape",
        lambda d, E, t: write(d, ".json", json.dumps({"shape": [3, 4], "data": E.ravel().tolist()})),
        "pass",
        "rounding",
    ),
    (
        "json duplicate data key",
        lambda d, E, t: write(
            d,
            ".json",
            f'{{"shape": [3, 4], "data": {json.dumps((E + 1).tolist())}, "data": {json.dumps(E.tolist())}}}',
        ),
        "refused",
        "duplicate key 'data'",
    ),
    (
        "json over the size cap",
        lambda d, E, t: sparse(d / "Y.json", MAX_FILE_BYTES + 1),
        "refused",
        "more than the limit",
    ),
    ("json not UTF-8", lambda d, E, t: write(d, ".json", b"[\xff]"), "refused", "not valid JSON"),
    # .txt
    (
        "txt malformed hex",
        lambda d, E, t: write(d, ".txt", array_text(E).replace("0x", "0xz", 1)),
        "refused",
        "is not a number",
    ),
    ("txt nan", lambda d, E, t: write(d, ".txt", "dtype float64\nshape 3 4\n" + "nan\n" * 12), "fail", "not_finite"),
    ("txt inf", lambda d, E, t: write(d, ".txt", "dtype float64\nshape 3 4\n" + "inf\n" * 12), "fail", "not_finite"),
    (
        "txt one value too many",
        lambda d, E, t: write(d, ".txt", array_text(E) + "0x0p+0\n"),
        "refused",
        "needs 12 values, the file has 13",
    ),
    (
        "txt int dtype, fractional values",
        lambda d, E, t: write(d, ".txt", array_text(E).replace("float64", "int64", 1)),
        "refused",
        "not an integer",
    ),
    (
        "txt shape overflowing int64",
        lambda d, E, t: write(d, ".txt", "dtype float64\nshape 4294967296 4294967296\n"),
        "refused",
        "needs 18446744073709551616 values",
    ),
    (
        "txt 40 axes",
        lambda d, E, t: write(d, ".txt", "dtype float64\nshape" + " 1" * 40 + "\n0x1p+0\n"),
        "refused",
        "40 axes",
    ),
    (
        "txt unknown dtype",
        lambda d, E, t: write(d, ".txt", array_text(E).replace("float64", "complex128", 1)),
        "refused",
        "dtype 'complex128'",
    ),
    (
        "txt not ASCII",
        lambda d, E, t: write(d, ".txt", "dtype float64\nshape 3 4\n" + "\uff11\n" * 12),
        "refused",
        "not an ASCII",
    ),
    (
        "txt float32 dtype line, float64 values",
        lambda d, E, t: write(d, ".txt", array_text(E).replace("float64", "float32", 1)),
        "pass",
        "rounding",
    ),
    (
        "txt decimal values",
        lambda d, E, t: write(
            d, ".txt", "dtype float64\nshape 3 4\n" + "".join(f"{v!r}\n" for v in E.ravel().tolist())
        ),
        "pass",
        "rounding",
    ),
    # the folder
    (
        "two forms that disagree",
        lambda d, E, t: (write(d, ".npy", E), write(d, ".json", json.dumps((E + 1).tolist()))),
        "refused",
        "2 forms",
    ),
    ("a folder named Y.npy", lambda d, E, t: (d / "Y.npy").mkdir(), "refused", "not a regular file"),
    ("a FIFO named Y.npy", lambda d, E, t: os.mkfifo(d / "Y.npy"), "refused", "not a regular file"),
    ("a link to /dev/zero", lambda d, E, t: (d / "Y.npy").symlink_to("/dev/zero"), "refused", "outside"),
    ("a link to /etc/passwd", lambda d, E, t: (d / "Y.txt").symlink_to("/etc/passwd"), "refused", "outside"),
    ("a broken link", lambda d, E, t: (d / "Y.npy").symlink_to(d / "nowhere.npy"), "refused", "could not be read"),
    (
        "a link to a right result outside",
        lambda d, E, t: (d / "Y.npy").symlink_to(_outside(t, E)),
        "refused",
        "outside",
    ),
    ("a link to a right result inside", lambda d, E, t: (d / "Y.npy").symlink_to(_inside(d, E)), "pass", "rounding"),
    (
        "a hard link to the suite's file",
        lambda d, E, t: os.link(t / "suite-Y.npy", d / "Y.npy"),
        "refused",
        "suite's own files",
    ),
]


def _npy_bytes(E) -> bytes:
    fh = io.BytesIO()
    np.save(fh, E)
    return fh.getvalue()


def _outside(tmp: Path, E) -> Path:
    (tmp / "outside").mkdir()
    np.save(tmp / "outside" / "Y.npy", E)
    return tmp / "outside" / "Y.npy"


def _inside(d: Path, E) -> Path:
    (d.parent / "mine").mkdir()
    np.save(d.parent / "mine" / "Y.npy", E)
    return d.parent / "mine" / "Y.npy"


def compare_within(suite, results, seconds=60.0, **kw):
    """``compare_results`` in a thread that must finish within ``seconds`` (a hang fails, not blocks)."""
    out: list = []
    th = threading.Thread(target=lambda: out.append(compare_results(suite, results, **kw)), daemon=True)
    th.start()
    th.join(seconds)
    assert not th.is_alive(), "compare hung"
    assert out, "compare raised"
    return out[0]


@pytest.mark.parametrize("key,make,status,text", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_a_hostile_result_file_gets_its_decided_status(key, make, status, text, suite, results, tmp_path):
    E = np.load(suite / CASE / f"{NAME}.npy")
    d = results / CASE
    (d / f"{NAME}.npy").unlink()
    if "hard link" in key:
        os.link(suite / CASE / f"{NAME}.npy", tmp_path / "suite-Y.npy")  # same file system as tmp_path
    make(d, E, tmp_path)
    rep = compare_within(suite, results, only=["relu"])
    a = array_report(rep, CASE, NAME)
    assert a.status == status, (a.status, a.diagnosis, a.summary)
    assert text in a.summary or text == a.diagnosis, (a.diagnosis, a.summary)
    others = [x for c in rep.cases for x in c.arrays if (c.name, x.name) != (CASE, NAME)]
    assert others and all(x.status == "pass" for x in others)
    assert rep.verdict == {"pass": "pass", "fail": "fail", "refused": "refused"}[status]
    assert not (tmp_path / "unpickled").exists()


def test_a_pickled_object_array_is_never_unpickled(suite, results, tmp_path):
    marker = tmp_path / "unpickled"
    p = results / CASE / f"{NAME}.npy"
    np.save(p, np.array([Unpickled(marker)] * 12, dtype=object).reshape(3, 4), allow_pickle=True)
    a = array_report(compare_within(suite, results, only=["relu"]), CASE, NAME)
    assert a.status == "refused" and "dtype object" in a.summary
    assert not marker.exists()
    np.save(p, np.load(suite / CASE / f"{NAME}.npy"))  # near miss: the same array written plainly passes
    assert array_report(compare_within(suite, results, only=["relu"]), CASE, NAME).status == "pass"


def test_integer_results_are_read_as_numbers(suite, results):
    case = "step-kink-float64"  # step's derivative is exactly 0: an integer array of zeros is right
    E = np.load(suite / case / "dZ.npy")
    assert np.all(E == 0)
    (results / case / "dZ.npy").unlink()
    np.save(results / case / "dZ.npy", E.astype(np.int32))
    assert array_report(compare_within(suite, results, only=[case]), case, "dZ").status == "pass"
    np.save(results / case / "dZ.npy", np.ones_like(E, dtype=np.int64))
    assert array_report(compare_within(suite, results, only=[case]), case, "dZ").status == "fail"


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file whatever its permissions")
def test_an_unreadable_result_is_refused(suite, results):
    p = results / CASE / f"{NAME}.npy"
    p.chmod(0)
    try:
        a = array_report(compare_within(suite, results, only=["relu"]), CASE, NAME)
    finally:
        p.chmod(0o644)
    assert a.status == "refused" and "could not be read" in a.summary


def test_links_to_the_suite_are_refused(suite, results):
    names = [f.name for f in (suite / CASE).glob("*.npy") if (results / CASE / f.name).exists()]
    assert NAME + ".npy" in names
    for n in names:  # every result of the case a symbolic link to the suite's own file
        (results / CASE / n).unlink()
        (results / CASE / n).symlink_to(suite / CASE / n)
    rep = compare_within(suite, results, only=["relu"])
    arrays = next(c for c in rep.cases if c.name == CASE).arrays
    assert all(a.status == "refused" and "outside" in a.summary for a in arrays) and rep.verdict == "refused"
    # the case folder a link to a folder inside RESULTS of hard links to the suite's files
    shutil.rmtree(results / CASE)
    inner = results / "suite-copy" / CASE
    inner.mkdir(parents=True)
    for n in names:
        os.link(suite / CASE / n, inner / n)
    (results / CASE).symlink_to(inner)
    arrays = next(c for c in compare_within(suite, results, only=["relu"]).cases if c.name == CASE).arrays
    assert all(a.status == "refused" and "suite's own files" in a.summary for a in arrays)
    # near miss: the same folder of copies (not links) passes, linked or not
    for n in names:
        (inner / n).unlink()
        shutil.copy(suite / CASE / n, inner / n)
    assert compare_within(suite, results, only=["relu"]).verdict == "pass"
    (results / CASE).unlink()
    shutil.copytree(inner, results / CASE)
    assert compare_within(suite, results, only=["relu"]).verdict == "pass"


def test_the_suite_as_its_own_results_is_refused(suite, tmp_path):
    own = tmp_path / "own"
    shutil.copytree(suite, own)
    shutil.copy(own / "suite.txt", own / "results.txt")
    rep = compare_within(own, own)
    assert rep.verdict == "refused" and "RESULTS is the suite folder" in rep.cause
    assert main(["compare", str(own), str(own)]) == 3
    inner = own / "results"  # RESULTS inside the suite
    copy_expected(own, inner)
    assert compare_within(own, inner).verdict == "refused"
    # near miss: the same results beside the suite pass
    assert compare_within(own, copy_expected(own, tmp_path / "beside")).verdict == "pass"


def test_nothing_computed_fails_and_extra_cases_are_ignored(suite, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    shutil.copy(suite / "suite.txt", empty / "results.txt")
    rep = compare_within(suite, empty)
    assert rep.verdict == "fail" and all(c.verdict == "fail" for c in rep.cases)
    assert main(["compare", str(suite), str(empty)]) == 1
    full = copy_expected(suite, tmp_path / "full")
    (full / "conv3d-random-float64").mkdir()
    np.save(full / "conv3d-random-float64" / "Y.npy", np.zeros(3))
    np.save(full / CASE / "extra.npy", np.zeros(3))
    assert compare_within(suite, full).verdict == "pass"
    assert main(["compare", str(suite), str(full)]) == 0
    capsys.readouterr()


# (id, header files to write, text in the cause); each replaces results.txt
HEADERS = [
    ("json and txt both", {"results.json": "SUITE_JSON", "results.txt": "SUITE_TXT"}, "keep exactly one header"),
    ("json of another layout", {"results.json": "COLUMNS_JSON"}, "another layout"),
    ("json of another version", {"results.json": "OLD_JSON"}, "another library version"),
    ("json nested deeply", {"results.json": "[" * 10**5 + "]" * 10**5}, "nested"),
    ("json with a duplicate key", {"results.json": "DUP_JSON"}, "duplicate key 'layout'"),
    ("json not an object", {"results.json": "[1, 2]"}, "expected a JSON object"),
    ("txt linked outside", {"results.txt": "LINK_OUT"}, "outside"),
    ("txt a FIFO", {"results.txt": "FIFO"}, "not a regular file"),
    ("txt a folder", {"results.txt": "DIR"}, "not a regular file"),
]


@pytest.mark.parametrize("key,files,text", HEADERS, ids=[h[0] for h in HEADERS])
def test_a_hostile_results_header_is_refused(key, files, text, suite, results, tmp_path):
    txt = (suite / "suite.txt").read_text()
    head = dict(line.split(" ", 1) for line in txt.splitlines())
    (results / "results.txt").unlink()
    for name, content in files.items():
        p = results / name
        if content == "LINK_OUT":
            (tmp_path / "outside.txt").write_text(txt)
            p.symlink_to(tmp_path / "outside.txt")
        elif content == "FIFO":
            os.mkfifo(p)
        elif content == "DIR":
            p.mkdir()
        else:
            content = {
                "SUITE_JSON": json.dumps(head),
                "SUITE_TXT": txt,
                "COLUMNS_JSON": json.dumps({**head, "layout": "columns"}),
                "OLD_JSON": json.dumps({**head, "library_version": "0.0.1"}),
                "DUP_JSON": json.dumps(head)[:-1] + ', "layout": "columns"}',
            }.get(content, content)
            p.write_text(content)
    rep = compare_within(suite, results, only=["relu"])
    assert rep.verdict == "refused" and text in rep.cause, rep.cause
    assert not rep.cases
    for p in results.glob("results.*"):  # near miss: the suite's header as JSON alone passes
        p.rmdir() if p.is_dir() and not p.is_symlink() else p.unlink()
    (results / "results.json").write_text(json.dumps(head))
    assert compare_within(suite, results, only=["relu"]).verdict == "pass"


def _tamper(suite: Path, tmp: Path, how: str) -> Path:
    t = tmp / "tampered"
    shutil.copytree(suite, t)
    m = json.loads((t / "manifest.json").read_text())
    first = next(iter(m["cases"][0]["arrays"].values()))
    if how == "a listed file is /dev/zero":
        first["files"][0] = "/dev/zero"
    elif how == "a listed file escapes":
        first["files"][0] = "../../../../../../../../etc/passwd"
    elif how == "a listed file is a FIFO":
        (t / first["files"][0]).unlink()
        os.mkfifo(t / first["files"][0])
    elif how == "a listed file is a link out":
        (t / first["files"][0]).unlink()
        (t / first["files"][0]).symlink_to(suite / first["files"][0])
    elif how == "an expected array changed":
        E = np.load(t / CASE / "Y.npy")
        np.save(t / CASE / "Y.npy", 2 * E)
    elif how == "manifest nested deeply":
        (t / "manifest.json").write_text("[" * 10**5 + "]" * 10**5)
        return t
    (t / "manifest.json").write_text(json.dumps(m))
    return t


@pytest.mark.parametrize(
    "how,text",
    [
        ("a listed file is /dev/zero", "outside"),
        ("a listed file escapes", "outside"),
        ("a listed file is a FIFO", "not a regular file"),
        ("a listed file is a link out", "outside"),
        ("an expected array changed", "content hash"),
        ("manifest nested deeply", "nested"),
    ],
)
def test_a_tampered_suite_stays_refused(how, text, suite, results, tmp_path):
    t = _tamper(suite, tmp_path, how)
    rep = compare_within(t, results, only=["relu"])
    assert rep.verdict == "refused" and rep.cause.startswith("suite:") and text in rep.cause, rep.cause
    assert main(["compare", str(t), str(results)]) == 3
    # near miss: an untouched copy of the suite passes the same results
    shutil.rmtree(t)
    shutil.copytree(suite, t)
    assert compare_within(t, results, only=["relu"]).verdict == "pass"


@pytest.mark.parametrize(
    "field, value, words",
    [
        ("cases", "x", "cases: expected a list"),
        ("case.name", 3, "name: expected a string"),
        ("case.dtype", "float16", "expected float64 or float32"),
        ("case.arrays", [], "arrays: expected a non-empty object"),
        ("array.shape", "3,4", "shape: expected a list of integers"),
        ("array.shape", [2, -1], "shape: expected a list of integers"),
        ("array.files", [], "files: expected a non-empty list"),
        ("array.dtype", "no such dtype", "not a dtype"),
        ("array.jacobian_of", {"out": "nope", "in": "X"}, "names an array the case does not have"),
        ("array.batch_mean", 0, "batch_mean: expected an integer >= 1"),
    ],
)
def test_a_hand_written_manifest_with_a_valid_hash_but_malformed_fields_is_refused(tmp_path, field, value, words):
    """The content hash is plain SHA-256, so anyone can write a manifest whose hash matches: its fields are
    checked after the hash, and a malformed one is a refusal naming the field, never a crash. Near miss: the
    same manifest re-hashed unchanged still compares (missing results: fail, not refused)."""
    import json

    from jacobian_nn.vectors import content_hash, write_suite
    from jacobian_nn.vectors_compare import compare_results

    suite = tmp_path / "suite"
    write_suite(suite)
    manifest = json.loads((suite / "manifest.json").read_text())
    files = {}
    for c in manifest["cases"]:
        for a in c["arrays"].values():
            for f in [*a["files"], *([a["right_branch"]] if "right_branch" in a else [])]:
                files[f] = (suite / f).read_bytes()
            if "right_branch" in a:
                for ext in (".json", ".txt"):
                    f = a["right_branch"][:-4] + ext
                    files[f] = (suite / f).read_bytes()

    def rehash_and_compare(m):
        m = dict(m)
        m.pop("content_hash")
        m["content_hash"] = content_hash(m, files)
        (suite / "manifest.json").write_text(json.dumps(m))
        results = tmp_path / "results"
        results.mkdir(exist_ok=True)
        header = {"library_version": m["library_version"], "layout": m["layout"], "content_hash": m["content_hash"]}
        (results / "results.json").write_text(json.dumps(header))
        return compare_results(suite, results)

    assert rehash_and_compare(manifest).verdict == "fail"  # the near miss: well formed, nothing computed
    case = next(c for c in manifest["cases"] if any("jacobian_of" in a for a in c["arrays"].values()))
    jac = next(a for a in case["arrays"].values() if "jacobian_of" in a)
    target = {"cases": manifest, "case.name": case, "case.dtype": case, "case.arrays": case}.get(field, jac)
    key = field.split(".")[-1]
    target[key] = value
    rep = rehash_and_compare(manifest)
    assert rep.verdict == "refused" and words in rep.cause, rep.cause
