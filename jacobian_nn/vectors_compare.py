"""``jacobian-nn compare DIR RESULTS``: check another program's results against a conformance suite.

``RESULTS`` mirrors the suite: ``RESULTS/<case>/<name>.npy``, ``.json`` or ``.txt`` for every
``expected`` array of the manifest (exactly one form per name), and a header ``RESULTS/results.json``
(``{"library_version": ..., "layout": ..., "content_hash": ...}``) or ``RESULTS/results.txt`` (the same
``key value`` lines as the suite's ``suite.txt``; copying that file is enough).

Every expected array gets a status:

``pass``     every entry within the case's tolerance: this library version's rule
             (:class:`SuiteTolerance`, ``14 * condition * eps * max|expected|``) with the condition and
             ``tolerance_scale`` the suite's manifest states;
``fail``     a value is wrong, with the checker's diagnosis (sign_flipped, transposed, diagonal_only,
             missing_batch_scaling, constant_factor, off_at_label, mismatch; here also
             ``kink_convention``: wrong only at kinks, where it takes the other branch, and
             ``not_finite``: NaN or inf, which never passes) and its worst entries, named ``dW[4, 0]``;
``missing``  no result file (a fail: nothing is passed silently);
``refused``  the result cannot be compared: the wrong shape (both shapes are given, and a note when
             the array with its axes reordered matches: transposed, or NHWC for NCHW), not a real array,
             unreadable, or written in two forms.

Files are read as written by anyone (:func:`_read_bytes`): only a regular file inside its folder once
links are resolved, at most :data:`MAX_FILE_BYTES`, without blocking (a FIFO or device is refused, never
read); ``.npy`` is never unpickled. A result that is one of the suite's own files (a symbolic or hard
link) and a RESULTS folder that is the suite or inside it are refused: they would pass without computing
anything. JSON is numbers only (booleans, strings, null, integers beyond 64 bits refused), without
duplicate keys, and no shape may have more than :data:`MAX_NDIM` axes. Folders and files of cases the
suite lacks are ignored.

Image arrays (NCHW in the ``rows`` layout, NHWC in ``columns``) are compared entry by entry like any
other: the checker's ``transposed`` hypothesis is a square matrix's transpose and never fires for a
4-D image array (a result with two channels swapped is a ``mismatch`` located at its entries). A
mismatch that is the expected array with two equal-length axes swapped (H and W) gets a note naming
the axis order.

A case fails if any array fails or is missing; otherwise it is refused if any array is refused, and it
passes only when every array passes. Components and the whole comparison combine their cases the same
way. The whole comparison is refused before any array is read when the suite's files no longer match
its content hash, or the results header disagrees with the suite on the library version, the layout
or the content hash. A suite written by another library version than the one installed is *not*
refused: the comparison works from the suite's files and the conventions its manifest states, so its
verdicts hold for the version that wrote it; the report says so in a note (``notes``). Exit codes are
``check``'s: 0 pass, 1 fail, 2 usage error, 3 refused.
"""

from __future__ import annotations

import dataclasses
import io
import itertools
import json
import math
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .check.diagnosis import EXPLAIN, Layout, analyse_full
from ._validation import eps_of, is_integer, is_real
from .check.report import Tolerance, index_name, nice, write_json_atomic
from . import __version__
from .vectors import content_hash
from .vectors_format import FORMAT, LAYOUTS, SUITE_EPS_FACTOR, CaseId

#: Largest result or suite file read (bytes): the suite's largest array is a few kB.
MAX_FILE_BYTES = 64 * 2**20
FORMS = (".npy", ".json", ".txt")

EXPLAIN_MORE = {
    "kink_convention": "wrong only at kinks, where the result takes the other branch: relu'(0) = 1 instead of the "
    "suite's z <= 0 branch (relu'(0) = 0, leaky_relu'(0) = elu'(0) = alpha), an SVM margin of exactly 0 counted "
    "instead of left out, or a max-pooling tie's gradient given to every maximal element instead of the first in "
    "C order. A convention, not a calculus error, but it differs from the suite",
    "not_finite": "the result holds NaN or inf where the expected value is finite (NaN never passes)",
    "missing": "no result file for this expected array",
}


def _words(text: str) -> str:
    """The checker's explanations speak of analytic and numeric values; here they are result and expected."""
    for a, b in (
        ("the analytic derivative", "the result"),
        ("the numeric one", "the expected one"),
        ("analytic - numeric", "result - expected"),
        ("in the analytic Jacobian", "in the result"),
        ("analytic", "result"),
        ("numeric", "expected"),
    ):
        text = text.replace(a, b)
    return text


@dataclass(frozen=True)
class SuiteTolerance(Tolerance):
    """The suite's rule (:func:`jacobian_nn.vectors_format.tolerance`) in the checker's form: ``atol = rtol = 0`` and
    ``noise = SUITE_EPS_FACTOR * condition * eps(dtype)``, so the checker's per-entry bound becomes
    ``noise * max|expected|`` over the whole expected array."""

    condition: float = 1.0
    floor: float = 0.0  # the array's tolerance_scale: the size of the terms of an exactly-zero sum

    @classmethod
    def for_case(cls, case: dict) -> "SuiteTolerance":
        """The rule of this library version for ``case`` (a manifest entry): its dtype, and the condition its
        manifest states (1 when it states none); a suite of another version is held to this version's rule."""
        dtype = case["dtype"]
        if dtype not in ("float64", "float32"):
            raise Refused(f"case {case.get('name')!r}: dtype {dtype!r}, expected float64 or float32")
        cond = case.get("tolerance", {}).get("condition", 1.0)
        if not (is_real(cond) and math.isfinite(cond) and cond >= 1):
            raise Refused(f"case {case.get('name')!r}: tolerance condition {cond!r}, expected a finite number >= 1")
        return cls(atol=0.0, rtol=0.0, err_factor=0.0, dtype=np.dtype(dtype).name, condition=float(cond))

    def for_array(self, name: str, spec: dict) -> "SuiteTolerance":
        """This rule for one expected array: ``max|expected|`` raised to its ``tolerance_scale`` if it states one."""
        floor = spec.get("tolerance_scale", 0.0)
        if not (is_real(floor) and math.isfinite(floor) and floor >= 0):
            raise Refused(f"{name}: tolerance_scale {floor!r}, expected a finite number >= 0")
        return dataclasses.replace(self, floor=float(floor))

    @property
    def noise(self) -> float:
        return SUITE_EPS_FACTOR * self.condition * eps_of(self.dtype)

    def bound(self, witness, err=None, scale=None, top=None) -> np.ndarray:
        """The checker's bound with ``top`` (``max|witness|`` by default) raised to :attr:`floor`."""
        if top is None:
            w = np.abs(np.asarray(witness, dtype=np.float64))
            top = float(w.max()) if w.size else 0.0
        return super().bound(witness, err, scale, max(top, self.floor))

    def within(self, A: np.ndarray, B: np.ndarray) -> bool:
        """Every entry of ``A`` within the rule of ``B``."""
        return bool(np.all(np.abs(A - B) <= self.bound(B)))


class Refused(Exception):
    """The comparison (or one array) cannot be made; the message says why."""


# --------------------------------------------------------------------------- reading files


#: Most axes a result may declare (numpy's historical limit; the suite's arrays have at most 4).
MAX_NDIM = 32


def _read_bytes(path: Path, root: Path | None = None) -> bytes:
    """The bytes of ``path``, which must be a regular file of at most :data:`MAX_FILE_BYTES` inside the
    folder ``root`` (default: its own folder) once every symbolic link is resolved. It is opened without
    blocking and checked with ``fstat`` on the open descriptor, so a FIFO, a device (``/dev/zero``) or a
    folder named like a file is refused instead of hanging or filling memory, and at most
    ``MAX_FILE_BYTES + 1`` bytes are ever read (a file whose size ``stat`` misreports included)."""
    root = path.parent if root is None else root
    real, top = Path(os.path.realpath(path)), Path(os.path.realpath(root))
    if not real.is_relative_to(top):
        raise Refused(
            f"{path.name}: it resolves to {str(real)!r}, outside {str(root)!r}; links out of the folder are not read"
        )
    fd = os.open(real, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise Refused(f"{path.name}: not a regular file (a folder, FIFO or device)")
        if st.st_size > MAX_FILE_BYTES:
            raise Refused(f"{path.name}: {st.st_size} bytes, more than the limit {MAX_FILE_BYTES}")
        chunks, n = [], 0
        while n <= MAX_FILE_BYTES:
            chunk = os.read(fd, min(2**20, MAX_FILE_BYTES + 1 - n))
            if not chunk:
                break
            chunks.append(chunk)
            n += len(chunk)
        if n > MAX_FILE_BYTES:
            raise Refused(f"{path.name}: more than the limit {MAX_FILE_BYTES} bytes")
        return b"".join(chunks)
    finally:
        os.close(fd)


def _check_shape(name: str, shape) -> int:
    """The number of entries of ``shape`` (Python integers: no int64 overflow), at most :data:`MAX_NDIM` axes."""
    if len(shape) > MAX_NDIM:
        raise Refused(f"{name}: {len(shape)} axes, more than {MAX_NDIM}")
    return math.prod(int(s) for s in shape)


def read_npy(path: Path, root: Path | None = None) -> np.ndarray:
    """A ``.npy`` file (read as by :func:`_read_bytes`), its header checked (real dtype, size within the
    file) before the data is read; never unpickled."""
    data = _read_bytes(path, root)
    fh = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(fh)
        reader = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
        if version not in reader:
            raise Refused(f"{path.name}: .npy version {version} is not supported")
        shape, fortran, dtype = reader[version](fh)
    except Refused:
        raise
    except Exception as exc:  # a malformed header: numpy raises ValueError or others
        raise Refused(f"{path.name}: not a readable .npy file ({exc})") from None
    if dtype.kind not in "fiu" or dtype.hasobject:
        raise Refused(f"{path.name}: dtype {dtype}, expected a real (float or integer) array")
    need = _check_shape(path.name, shape) * dtype.itemsize
    if need > len(data) - fh.tell():
        raise Refused(f"{path.name}: its header declares shape {shape} ({need} bytes), more than the file holds")
    try:
        return np.lib.format.read_array(io.BytesIO(data), allow_pickle=False)
    except Exception as exc:
        raise Refused(f"{path.name}: not a readable .npy file ({exc})") from None


def _real(A, name) -> np.ndarray:
    if A.dtype.kind not in "fiu":
        raise Refused(
            f"{name}: expected numbers, got an array of dtype {A.dtype} (strings, booleans or nesting are not accepted)"
        )
    return A


def _no_duplicates(pairs) -> dict:
    keys = [k for k, _ in pairs]
    dup = sorted({k for k in keys if keys.count(k) > 1})
    if dup:
        raise Refused(f"duplicate key {dup[0]!r} in a JSON object: which one counts is ambiguous")
    return dict(pairs)


def _load_json(path: Path, root: Path | None = None):
    """JSON text of ``path`` (read as by :func:`_read_bytes`): objects with a duplicate key and nesting
    deeper than the interpreter's recursion limit are refused."""
    try:
        return json.loads(_read_bytes(path, root).decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise Refused(f"{path.name}: not valid JSON ({exc})") from None
    except RecursionError:
        raise Refused(f"{path.name}: not valid JSON here (nested too deeply)") from None
    except Refused as exc:
        raise Refused(f"{path.name}: {exc}") from None


def _json_booleans(obj, name: str) -> bool:
    """Whether the nested lists ``obj`` hold a boolean (numpy reads ``[1.5, true]`` as ``[1.5, 1.0]``);
    nesting deeper than :data:`MAX_NDIM` is refused. Iterative, so no recursion limit applies."""
    stack, seen = [(obj, 0)], False
    while stack:
        x, depth = stack.pop()
        if isinstance(x, list):
            if depth >= MAX_NDIM:
                raise Refused(f"{name}: lists nested more than {MAX_NDIM} deep")
            stack.extend((v, depth + 1) for v in x)
        else:
            seen = seen or isinstance(x, bool)
    return seen


def read_json_array(path: Path, root: Path | None = None) -> np.ndarray:
    """A nested list, a number, or ``{"shape": [...], "data": nested or flat}``."""
    obj = _load_json(path, root)
    shape = None
    if isinstance(obj, dict):
        if "data" not in obj:
            raise Refused(f"{path.name}: a JSON object needs a 'data' entry (and optionally 'shape')")
        shape, obj = obj.get("shape"), obj["data"]
    booleans = _json_booleans(obj, path.name)
    try:
        A = np.array(obj)
    except ValueError as exc:
        raise Refused(f"{path.name}: the nested lists are ragged ({exc})") from None
    A = _real(A, path.name)  # strings, null and integers beyond 64 bits make a non-numeric dtype
    if booleans:
        raise Refused(f"{path.name}: expected numbers, got booleans among them (true and false are not 1 and 0)")
    if shape is not None:
        if not (isinstance(shape, list) and all(is_integer(s) and s >= 0 for s in shape)):
            raise Refused(f"{path.name}: 'shape' must be a list of integers >= 0, got {shape!r}")
        n = _check_shape(path.name, shape)
        if A.size != n:
            raise Refused(f"{path.name}: 'shape' {tuple(shape)} needs {n} values, 'data' has {A.size}")
        A = A.reshape(shape)
    return A


def read_text_array(path: Path, root: Path | None = None) -> np.ndarray:
    """The suite's ``.txt`` form: ``dtype D``, ``shape d0 d1 ...``, then one value per line (hex or decimal);
    with an integer dtype every value must be an integer."""
    try:
        lines = _read_bytes(path, root).decode("ascii").split("\n")
    except UnicodeDecodeError:
        raise Refused(f"{path.name}: not an ASCII text file") from None
    if (
        len(lines) < 2
        or not lines[0].startswith("dtype ")
        or not (lines[1] == "shape" or lines[1].startswith("shape "))
    ):
        raise Refused(f"{path.name}: expected a 'dtype D' line and a 'shape d0 d1 ...' line first")
    dtype = lines[0].split(None, 1)[1].strip()
    if dtype not in ("float64", "float32", "int64", "int32"):
        raise Refused(f"{path.name}: dtype {dtype!r}, expected float64, float32, int64 or int32")
    try:
        shape = tuple(int(s) for s in lines[1].split()[1:])
    except ValueError:
        raise Refused(f"{path.name}: the shape line {lines[1]!r} is not integers") from None
    if any(s < 0 for s in shape):
        raise Refused(f"{path.name}: negative size in shape {shape}")
    values = [v.strip() for v in lines[2:] if v.strip()]
    n = _check_shape(path.name, shape)
    if len(values) != n:
        raise Refused(f"{path.name}: shape {shape} needs {n} values, the file has {len(values)}")
    out = np.empty(n, dtype=np.float64)
    for i, v in enumerate(values):
        try:
            out[i] = float.fromhex(v) if "0x" in v.lower() else float(v)
        except ValueError:
            raise Refused(f"{path.name}: value {i + 1} ({v!r}) is not a number") from None
        if dtype.startswith("int") and not float(out[i]).is_integer():
            raise Refused(f"{path.name}: value {i + 1} ({v!r}) is not an integer, but the dtype line says {dtype}")
    return out.reshape(shape)


READERS = {".npy": read_npy, ".json": read_json_array, ".txt": read_text_array}


def read_result(base: Path, root: Path | None = None, suite_files: frozenset = frozenset()):
    """``(array, file name)`` from exactly one of ``base.npy/.json/.txt``; ``(None, None)`` if none exists.
    Anything present under such a name counts (a folder, FIFO or broken link is refused, never "missing");
    the file must lie inside ``root`` (the results folder) and must not be one of the suite's own files
    (``suite_files``: their ``(st_dev, st_ino)``, so a symbolic or hard link to the expected array, which
    would pass without computing anything, is refused)."""
    found = [base.with_name(base.name + s) for s in FORMS if os.path.lexists(base.with_name(base.name + s))]
    if not found:
        return None, None
    if len(found) > 1:
        raise Refused(f"written in {len(found)} forms ({', '.join(p.name for p in found)}); keep exactly one")
    p = found[0]
    root = p.parent if root is None else root
    A = READERS[p.suffix](p, root)
    st = os.stat(p)
    if (st.st_dev, st.st_ino) in suite_files:
        raise Refused(f"{p.name}: it is a link to one of the suite's own files, not a result")
    return A, p.name


def read_header(folder: Path, stem: str) -> dict:
    """``<stem>.json`` (an object) or ``<stem>.txt`` (``key value`` lines); both present is refused."""
    j, t = folder / f"{stem}.json", folder / f"{stem}.txt"
    if os.path.lexists(j) and os.path.lexists(t):
        raise Refused(f"both {j.name} and {t.name}: keep exactly one header")
    if os.path.lexists(j):
        obj = _load_json(j, folder)
        if not isinstance(obj, dict):
            raise Refused(f"{j.name}: expected a JSON object")
        return {str(k): str(v) for k, v in obj.items()}
    if os.path.lexists(t):
        out = {}
        for line in _read_bytes(t, folder).decode("utf-8", errors="replace").splitlines():
            if line.strip():
                k, _, v = line.strip().partition(" ")
                out[k] = v.strip()
        return out
    raise Refused(
        f"no {stem}.json or {stem}.txt in {str(folder)!r}: the results must say which suite they answer "
        f"(copy the suite's suite.txt to {stem}.txt)"
    )


# --------------------------------------------------------------------------- results


@dataclass
class Worst:
    where: str
    result: float
    expected: float
    abs_error: float
    tolerance: float


@dataclass
class ArrayResult:
    name: str
    status: str  # pass | fail | missing | refused
    diagnosis: str
    summary: str
    file: str | None = None
    n_failed: int = 0
    n_entries: int = 0
    factor: float | None = None
    worst: list = field(default_factory=list)
    notes: list = field(default_factory=list)


@dataclass
class CaseResult(CaseId):
    verdict: str
    arrays: list = field(default_factory=list)


def combine(statuses) -> str:
    """fail if anything fails or is missing; else refused if anything is refused; else pass."""
    s = list(statuses)
    if any(v in ("fail", "missing") for v in s):
        return "fail"
    if any(v == "refused" for v in s):
        return "refused"
    return "pass"


@dataclass
class ConformanceReport:
    verdict: str
    suite: str
    results: str
    cause: str | None = None
    cases: list = field(default_factory=list)
    skipped: int = 0
    notes: list = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"

    @property
    def components(self) -> dict:
        comp: dict = {}
        for c in self.cases:
            comp.setdefault(c.component, []).append(c.verdict)
        return {k: combine(v) for k, v in comp.items()}

    def as_dict(self) -> dict:
        def ad(a):
            d = dict(vars(a))
            d["worst"] = [vars(w) for w in a.worst]
            return d

        return {
            "verdict": self.verdict,
            "suite": self.suite,
            "results": self.results,
            "cause": self.cause,
            "notes": list(self.notes),
            "components": self.components,
            "skipped_cases": self.skipped,
            "cases": [
                {**{k: v for k, v in vars(c).items() if k != "arrays"}, "arrays": [ad(a) for a in c.arrays]}
                for c in self.cases
            ],
        }

    def __str__(self) -> str:
        word = {"pass": "pass", "fail": "FAIL", "refused": "REFUSED", "missing": "MISSING"}
        notes = [f"  note: {n}" for n in self.notes]
        if self.cause:
            return "\n".join(
                [f"compare {self.results} against {self.suite}: REFUSED", f"  refused: {self.cause}", *notes]
            )
        lines = [f"compare {self.results} against {self.suite}: {word[self.verdict]}", *notes]
        for comp, v in self.components.items():
            cs = [c for c in self.cases if c.component == comp]
            lines.append(f"  {comp:<24} {word[v]:<8} ({len(cs)} case{'s' if len(cs) > 1 else ''})")
        for c in self.cases:
            if c.verdict == "pass":
                continue
            if all(a.status == "missing" for a in c.arrays):
                lines.append(f"case {c.name}: FAIL: no results (the folder {c.name}/ or every file in it is missing)")
                continue
            lines.append(f"case {c.name}: {word[c.verdict]}")
            for a in c.arrays:
                if a.status == "pass":
                    continue
                lines.append(
                    f"  {a.name}: {word[a.status]} ({a.diagnosis}): {a.summary}" + (f" [{a.file}]" if a.file else "")
                )
                if a.factor is not None:
                    lines.append(f"    factor: result = {nice(a.factor)} x expected")
                if a.n_entries:
                    lines.append(f"    {a.n_failed}/{a.n_entries} entries beyond tolerance")
                for w in a.worst:
                    lines.append(
                        f"    {w.where:<16} result {w.result:>12.5g}  expected {w.expected:>12.5g}  "
                        f"abs err {w.abs_error:.2e}  tol {w.tolerance:.2e}"
                    )
                for n in a.notes:
                    lines.append(f"    note: {n}")
        counts = {k: sum(c.verdict == k for c in self.cases) for k in ("pass", "fail", "refused")}
        lines.append(
            f"{len(self.cases)} cases compared: {counts['pass']} pass, {counts['fail']} fail, "
            f"{counts['refused']} refused" + (f"; {self.skipped} not selected" if self.skipped else "")
        )
        return "\n".join(lines)

    def to_json(self, path) -> None:
        write_json_atomic(self.as_dict(), path)


# --------------------------------------------------------------------------- comparing


def load_suite(suite: Path) -> dict:
    """The manifest, after checking its format and that every file matches its content hash."""
    mpath = suite / "manifest.json"
    if not os.path.lexists(mpath):
        raise Refused(
            f"{str(suite)!r} has no manifest.json: not a conformance suite (write one with "
            f"'jacobian-nn vectors --out DIR')"
        )
    manifest = _load_json(mpath, suite)
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        got = manifest.get("format") if isinstance(manifest, dict) else None
        raise Refused(f"manifest.json: format {got!r}, this compare reads {FORMAT!r}")
    for key in ("library_version", "layout", "content_hash"):
        if not isinstance(manifest.get(key), str):
            raise Refused(f"manifest.json: malformed: {key!r} should be a string, got {manifest.get(key)!r}")
    if manifest["layout"] not in LAYOUTS:
        raise Refused(f"manifest.json: layout {manifest['layout']!r}, this compare reads {LAYOUTS}")
    _check_cases(manifest.get("cases"))  # the fields' types first: the files it names are read next
    files = {}
    try:
        for case in manifest["cases"]:
            for a in case["arrays"].values():
                names = list(a["files"]) + ([a["right_branch"]] if "right_branch" in a else [])
                for f in names:
                    files[f] = _read_bytes(suite / f, suite)
                if "right_branch" in a:
                    for s in (".json", ".txt"):
                        f = a["right_branch"][:-4] + s
                        files[f] = _read_bytes(suite / f, suite)
    except (KeyError, TypeError) as exc:
        raise Refused(f"manifest.json: malformed ({type(exc).__name__}: {exc})") from None
    except OSError as exc:
        raise Refused(f"the suite is incomplete: {exc}") from None
    if content_hash(manifest, files) != manifest.get("content_hash"):
        raise Refused(
            "the suite's files do not match its content hash: it was changed after it was written; "
            "write it again with 'jacobian-nn vectors'"
        )
    return manifest


def _check_cases(cases) -> None:
    """The fields of every case and array that :func:`load_suite` and :func:`compare_results` read, with their
    types, checked before any file the manifest names is read: a manifest with a valid hash can still be
    written by hand, and a malformed field is a refusal naming it, never a crash."""

    def bad(where, what):
        raise Refused(f"manifest.json: malformed: {where}: {what}")

    if not isinstance(cases, list):
        bad("cases", f"expected a list, got {type(cases).__name__}")
    for k, case in enumerate(cases):
        where = f"cases[{k}]"
        if not isinstance(case, dict):
            bad(where, f"expected an object, got {type(case).__name__}")
        for key in ("name", "component", "point", "dtype"):
            if not isinstance(case.get(key), str):
                bad(f"{where}.{key}", f"expected a string, got {case.get(key)!r}")
        if case["dtype"] not in ("float64", "float32"):
            bad(f"{where}.dtype", f"expected float64 or float32, got {case['dtype']!r}")
        if "tolerance" in case and not isinstance(case["tolerance"], dict):
            bad(f"{where}.tolerance", "expected an object")
        arrays = case.get("arrays")
        if not isinstance(arrays, dict) or not arrays:
            bad(f"{where}.arrays", "expected a non-empty object")
        for n, spec in arrays.items():
            w = f"{where}.arrays[{n!r}]"
            if not isinstance(spec, dict):
                bad(w, f"expected an object, got {type(spec).__name__}")
            for key in ("role", "kind", "dtype"):
                if not isinstance(spec.get(key), str):
                    bad(f"{w}.{key}", f"expected a string, got {spec.get(key)!r}")
            try:
                np.dtype(spec["dtype"])
            except TypeError:
                bad(f"{w}.dtype", f"not a dtype: {spec['dtype']!r}")
            files = spec.get("files")
            if not (isinstance(files, list) and files and all(isinstance(f, str) for f in files)):
                bad(f"{w}.files", f"expected a non-empty list of file names, got {files!r}")
            shape = spec.get("shape")
            if not (isinstance(shape, list) and all(is_integer(d) and d >= 0 for d in shape)):
                bad(f"{w}.shape", f"expected a list of integers >= 0, got {shape!r}")
            _check_shape(f"{w}.shape", shape)
            if "right_branch" in spec and not isinstance(spec["right_branch"], str):
                bad(f"{w}.right_branch", "expected a file name")
            of = spec.get("jacobian_of")
            if of is not None and not (
                isinstance(of, dict) and isinstance(of.get("out"), str) and isinstance(of.get("in"), str)
            ):
                bad(f"{w}.jacobian_of", f"expected {{'out': name, 'in': name}}, got {of!r}")
            if of is not None and not (of["out"] in arrays and of["in"] in arrays):
                bad(f"{w}.jacobian_of", f"names an array the case does not have: {of!r}")
            labels = spec.get("labels")
            if labels is not None and not (isinstance(labels, str) and labels in arrays):
                bad(f"{w}.labels", f"expected the name of one of the case's arrays, got {labels!r}")
            bm = spec.get("batch_mean")
            if bm is not None and not (is_integer(bm) and bm >= 1):
                bad(f"{w}.batch_mean", f"expected an integer >= 1, got {bm!r}")


def _worst(A, B, bound, fail, where, k) -> list:
    diff = np.abs(A - B)
    key = np.where(fail, diff - bound, -np.inf)
    out = []
    for flat in np.argsort(-key, axis=None, kind="stable")[:k]:
        r, c = np.unravel_index(int(flat), A.shape)
        if not fail[r, c]:
            break
        out.append(
            Worst(where(int(flat)), float(A[r, c]) + 0.0, float(B[r, c]) + 0.0, float(diff[r, c]), float(bound[r, c]))
        )
    return out


def _reordered_axes(A, B, tol: SuiteTolerance) -> tuple | None:
    """The first axis order ``p`` other than the identity (itertools order) with ``A.transpose(p)`` of
    ``B``'s shape and within the case's tolerance ``tol`` of ``B`` (the suite's rule); None if there is
    none. Asked about a result of the wrong shape, and about a mismatch of 3 or more axes (two
    equal-length axes swapped); only a note follows from it, never a verdict."""
    if A.ndim != B.ndim or A.ndim < 2 or sorted(A.shape) != sorted(B.shape):
        return None
    A = A.astype(np.float64)
    for p in itertools.permutations(range(A.ndim)):
        T = A.transpose(p)
        if p != tuple(range(A.ndim)) and T.shape == B.shape and tol.within(T, B):
            return p
    return None


def compare_array(name, spec, A, expected, right, case, arrays_in_suite, top) -> ArrayResult:
    """One expected array against its result ``A`` (already read)."""
    B = expected.astype(np.float64)
    shape = tuple(spec["shape"])
    tol = SuiteTolerance.for_case(case).for_array(name, spec)
    if A.shape != shape:
        notes = []
        axes = _reordered_axes(A, B, tol)
        if A.ndim == 2 and axes:
            notes.append("transposed back, it equals the expected array (within tolerance): the array is transposed")
        elif axes:
            notes.append(
                f"with its axes reordered, A.transpose{axes}, it equals the expected array: it is written in "
                f"another axis order (for images: NHWC for NCHW or the reverse; --layout picks the suite's order)"
            )
        elif A.size == B.size and A.ndim != len(shape):
            notes.append(f"it has the expected number of entries; write it with shape {shape}, not reshaped")
        return ArrayResult(
            name, "refused", "wrong_shape", f"shape {A.shape}, expected {shape} ({spec['layout']})", notes=notes
        )
    A = A.astype(np.float64)
    if not np.all(np.isfinite(A)):
        bad = np.flatnonzero(~np.isfinite(A.reshape(-1)))
        return ArrayResult(
            name,
            "fail",
            "not_finite",
            EXPLAIN_MORE["not_finite"],
            n_failed=int(bad.size),
            n_entries=int(A.size),
            worst=[
                Worst(index_name(name, int(i), shape), float(A.flat[i]), float(B.flat[i]), math.inf, 0.0)
                for i in bad[:top]
            ],
        )
    transpose_view = False
    if "jacobian_of" in spec:
        o, i = spec["jacobian_of"]["out"], spec["jacobian_of"]["in"]
        layout = Layout(
            in_shape=tuple(arrays_in_suite[i]["shape"]),
            out_shape=tuple(arrays_in_suite[o]["shape"]),
            batch=None,
            name=i,
            out_name=o,
        )
        A2, B2, R2 = A, B, right

        def where(flat):
            r, c = np.unravel_index(flat, shape)
            return f"{name}[{r}, {c}] = d{index_name(o, int(r), layout.out_shape)}/d{index_name(i, int(c), layout.in_shape)}"
    else:
        labels = spec.get("labels")
        lab = case["_labels"].get(labels) if labels else None
        transpose_view = lab is not None and case["_layout"] == "columns" and len(shape) == 2
        view = (lambda X: X.T) if transpose_view else (lambda X: X)
        vshape = shape[::-1] if transpose_view else shape
        layout = Layout(
            in_shape=vshape,
            out_shape=(),
            batch=spec.get("batch_mean"),
            name=name,
            labels=None if lab is None else tuple(int(v) for v in lab),
        )
        A2, B2 = view(A).reshape(1, -1), view(B).reshape(1, -1)
        R2 = None if right is None else view(right.astype(np.float64)).reshape(1, -1)

        def where(flat):
            idx = np.unravel_index(flat, vshape)
            idx = idx[::-1] if transpose_view else idx
            return f"{name}[{', '.join(str(int(v)) for v in idx)}]" if idx else name

    A2 = np.ascontiguousarray(A2, dtype=np.float64)
    B2 = np.ascontiguousarray(B2.reshape(A2.shape), dtype=np.float64)
    an = analyse_full(A2, B2, None, tol, layout)
    if an.passed:
        return ArrayResult(name, "pass", "rounding", EXPLAIN["rounding"], n_entries=int(A.size))
    diagnosis, summary, notes = an.diagnosis, _words(EXPLAIN.get(an.diagnosis, "")), [_words(n) for n in an.notes]
    if R2 is not None:
        R2 = np.asarray(R2, dtype=np.float64).reshape(A2.shape)
        at_kink = R2 != B2
        if np.all(at_kink[an.fail]) and np.all((np.abs(A2 - R2) <= an.bound)[an.fail]):
            diagnosis, summary = "kink_convention", EXPLAIN_MORE["kink_convention"]
            notes = [f"{int(an.fail.sum())} of the {int(at_kink.sum())} entries at a kink take the other branch"]
    if an.fail.sum() == 1 and diagnosis == "mismatch":
        notes.append("exactly one entry is wrong")
    if diagnosis == "mismatch" and "jacobian_of" not in spec and A.ndim >= 3:
        axes = _reordered_axes(A, B, tol)  # axes of equal length swapped: H and W of an image
        if axes:
            notes.append(
                f"with its axes reordered, A.transpose{axes}, it equals the expected array: two axes of equal "
                f"length are swapped ({spec['layout']})"
            )
    return ArrayResult(
        name,
        "fail",
        diagnosis,
        summary,
        n_failed=int(an.fail.sum()),
        n_entries=int(A.size),
        factor=an.factor if diagnosis in ("constant_factor", "missing_batch_scaling") else None,
        worst=_worst(A2, B2, an.bound, an.fail, where, top),
        notes=notes,
    )


def compare_results(suite, results, *, only=None, top: int = 5) -> ConformanceReport:
    """Compare the results folder with the suite folder; see the module docstring. ``only``: component or
    case names to compare (default all; a name the suite does not have is a ``ValueError``)."""
    suite, results = Path(suite), Path(results)
    for what, p in (("DIR", suite), ("RESULTS", results)):
        if not p.is_dir():
            raise ValueError(f"{what}: {str(p)!r} is not a folder")
    if not (is_integer(top) and top >= 0):
        raise ValueError(f"top: expected an integer >= 0, got {top!r}")
    rep = ConformanceReport("refused", str(suite), str(results))
    try:
        manifest = load_suite(suite)
    except Refused as exc:
        rep.cause = f"suite: {exc}"
        return rep
    if manifest["library_version"] != __version__:
        rep.notes.append(
            f"the suite was written by jacobian_nn {manifest['library_version']}, this is {__version__}: the "
            f"comparison reads the suite's own files and conventions, so it stands for that version; write the "
            f"suite again with 'jacobian-nn vectors' to check against this version"
        )
    names = {c["name"] for c in manifest["cases"]} | {c["component"] for c in manifest["cases"]}
    only = None if only is None else list(only)
    if only is not None:
        unknown = [n for n in only if n not in names]
        if unknown:
            comps = sorted({c["component"] for c in manifest["cases"]})
            raise ValueError(f"only: {unknown} not in the suite; its components are {comps} (case names also work)")
    real_suite, real_results = Path(os.path.realpath(suite)), Path(os.path.realpath(results))
    if real_results.is_relative_to(real_suite):
        rep.cause = "results: RESULTS is the suite folder or inside it: its files would be compared with themselves"
        return rep
    try:
        head = read_header(results, "results")
    except Refused as exc:
        rep.cause = f"results: {exc}"
        return rep
    except OSError as exc:
        rep.cause = f"results: the header could not be read: {exc}"
        return rep
    suite_files = frozenset(
        (st.st_dev, st.st_ino)
        for st in (
            os.stat(suite / f)
            for c in manifest["cases"]
            for a in c["arrays"].values()
            for f in [*a["files"], *([a["right_branch"]] if "right_branch" in a else [])]
        )
    )
    for key, label in (("library_version", "library version"), ("layout", "layout"), ("content_hash", "content hash")):
        if key not in head:
            rep.cause = f"results: the header has no {key!r} (copy the suite's suite.txt to results.txt)"
            return rep
        if head[key] != str(manifest[key]):
            why = {
                "library_version": "the results answer a suite written by another library version; write the "
                "suite again with this version, or compare with the version that wrote it",
                "layout": "the results were computed in another layout than this suite's (rows: (N, n) as in "
                "CS231n; columns: (n, N) as in deeplearning.ai); compare against a suite written with "
                f"--layout {head[key]}",
                "content_hash": "the results answer another suite (its arrays differ from this one's)",
            }[key]
            rep.cause = f"{label}: the suite says {manifest[key]!r}, the results say {head[key]!r}: {why}"
            return rep
    for case in manifest["cases"]:
        if only is not None and case["name"] not in only and case["component"] not in only:
            rep.skipped += 1
            continue
        case = dict(case, _layout=manifest["layout"], _labels={})
        for n, spec in case["arrays"].items():
            if spec["role"] == "input" and spec["kind"] == "samples" and np.dtype(spec["dtype"]).kind == "i":
                case["_labels"][n] = read_npy(suite / spec["files"][0], suite)
        cr = CaseResult(case["name"], case["component"], case["point"], case["dtype"], "pass")
        for n, spec in case["arrays"].items():
            if spec["role"] != "expected":
                continue
            try:
                A, fname = read_result(results / case["name"] / n, results, suite_files)
            except Refused as exc:
                cr.arrays.append(ArrayResult(n, "refused", "unreadable", str(exc)))
                continue
            except OSError as exc:
                cr.arrays.append(ArrayResult(n, "refused", "unreadable", f"could not be read: {exc}"))
                continue
            if A is None:
                cr.arrays.append(
                    ArrayResult(
                        n,
                        "missing",
                        "missing",
                        EXPLAIN_MORE["missing"] + f" (write {case['name']}/{n}.npy, .json or .txt)",
                    )
                )
                continue
            expected = read_npy(suite / spec["files"][0], suite)
            right = read_npy(suite / spec["right_branch"], suite) if "right_branch" in spec else None
            try:
                res = compare_array(n, spec, A, expected, right, case, case["arrays"], top)
            except Refused as exc:
                res = ArrayResult(n, "refused", "no_tolerance", str(exc))
            res.file = fname
            cr.arrays.append(res)
        cr.verdict = combine(a.status for a in cr.arrays)
        rep.cases.append(cr)
    if not rep.cases:
        rep.cause = "no case selected"
        return rep
    rep.verdict = combine(c.verdict for c in rep.cases)
    return rep
