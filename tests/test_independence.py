"""The batched path never obtains a derivative from the reference path.

An ``ast`` walk over every module of ``jacobian_nn``. *Batched code* is

* every function in ``jacobian_nn/batched.py``, and
* every function or method, in any module, whose name ends with ``_batch`` or ``_batched``,

plus, transitively, every helper it calls by a plain name (a module-level
function of the package) or as ``self.<method>`` (a method of the same class or
of a base class in the package). Batched code fails the test if it calls or
references a reference derivative (:data:`FORBIDDEN`), as an attribute
(``self.activation.jacobian``), a name (``backward``), an import, or a string
given to ``getattr``. Every violation is reported as ``file:line``.

Reference-path methods whose *names* end in ``_batch`` (seed 000's
``trainBatch`` and the stacked reference predictions) are listed in
:data:`REFERENCE_NAMED_BATCH` with the reason; the test checks that they still
exist, so the exemption cannot outlive them.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

import jacobian_nn

PACKAGE = Path(jacobian_nn.__file__).parent


def is_batched_name(name: str) -> bool:
    return name.endswith("_batch") or name.endswith("_batched")

#: Reference derivative names (and reference training steps, which run on them).
FORBIDDEN = frozenset({
    "jacobian", "jacobian_x", "jacobian_b", "jacobian_W", "input_jacobian",
    "backward", "backward_samples", "gradient", "loss_and_gradients",
    "train_batch", "train_one",
    # the reference loops' private pieces and batch norm's N x N Jacobian builder
    "forward_and_gradient_samples", "backward_rows", "backward_samples_from_network", "coupled",
})

#: Besides :data:`FORBIDDEN` (also with leading underscores), every name that starts with
#: ``jacobian`` (after leading underscores) and does not end in
#: ``_batch``/``_batched`` is a reference Jacobian (``jacobian_x_samples``,
#: ``jacobian_batch_coupled``, ``jacobian_gamma``, ...): see :func:`is_forbidden`.


def is_forbidden(name: str) -> bool:
    bare = name.lstrip("_")     # private formulas such as _jacobian_column count too
    return bare in FORBIDDEN or (bare.startswith("jacobian") and not is_batched_name(bare))


#: Modules whose ``*_batched`` functions are *witnesses* for someone else's code, not the
#: batched path: module -> reason. Their job is to read the reference derivatives.
WITNESS_MODULES = {
    "check/api.py": "check_*_batched compare a user's batched function with finite differences and the "
                    "library's reference Jacobians; they compute no derivative for the batched path",
    "check/witnesses.py": "the checker's reference witnesses read the library's Jacobians on purpose",
}

#: Reference methods whose names end in ``_batch``: (module, class, method) -> reason.
REFERENCE_NAMED_BATCH = {
    ("network.py", "Network", "train_batch"): "seed 000's trainBatch: the reference SGD step on a batch",
    ("network.py", "Network", "predict_batch"): "reference outputs of a batch, stacked column by column",
}




@dataclass(frozen=True)
class Func:
    module: str
    cls: str | None
    node: ast.AST

    @property
    def name(self) -> str:
        return self.node.name

    @property
    def label(self) -> str:
        return f"{self.cls}.{self.name}" if self.cls else self.name


def parse_package(root: Path = PACKAGE):
    """``{module: ast.Module}`` for every ``*.py`` of the package (sub-packages included)."""
    return {str(p.relative_to(root)): ast.parse(p.read_text(encoding="utf-8"), filename=str(p))
            for p in sorted(root.rglob("*.py"))}


def index(trees):
    """Module-level functions, classes (methods and base names) and ``from .x import y`` aliases."""
    funcs, classes, imports = {}, {}, {}
    for mod, tree in trees.items():
        for node in tree.body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                funcs[(mod, node.name)] = Func(mod, None, node)
            elif isinstance(node, ast.ClassDef):
                methods = {n.name: Func(mod, node.name, n) for n in node.body
                           if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
                bases = [b.id for b in node.bases if isinstance(b, ast.Name)]
                classes[node.name] = (mod, methods, bases)
            elif isinstance(node, ast.ImportFrom) and node.level >= 1:
                src = (node.module or "").replace(".", "/") + ".py"
                for alias in node.names:
                    imports[(mod, alias.asname or alias.name)] = (src, alias.name)
    return funcs, classes, imports


def resolve_method(classes, cls: str | None, name: str):
    seen = set()
    while cls in classes and cls not in seen:
        seen.add(cls)
        _, methods, bases = classes[cls]
        if name in methods:
            return methods[name]
        cls = bases[0] if bases else None
    return None


def direct_violations(func: Func):
    """``(file, line, what)`` for every forbidden reference inside ``func``'s body."""
    out = []
    for node in ast.walk(func.node):
        hit = None
        if isinstance(node, ast.Attribute) and is_forbidden(node.attr):
            hit = f"attribute .{node.attr}"
        elif isinstance(node, ast.Name) and is_forbidden(node.id):
            hit = f"name {node.id}"
        elif isinstance(node, ast.alias) and is_forbidden((node.asname or node.name).split(".")[-1]):
            hit = f"import {node.name}"
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "hasattr")
              and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant)
              and isinstance(node.args[1].value, str) and is_forbidden(node.args[1].value)):
            hit = f"getattr(..., {node.args[1].value!r})"
        if hit:
            out.append((func.module, getattr(node, "lineno", func.node.lineno), hit))
    return out


def callees(func: Func, funcs, classes, imports):
    """Package functions that ``func`` calls by plain name or as ``self.<method>``."""
    for node in ast.walk(func.node):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        if isinstance(f, ast.Name):
            if (func.module, f.id) in funcs:
                yield funcs[(func.module, f.id)]
            elif (func.module, f.id) in imports:
                src, name = imports[(func.module, f.id)]
                if (src, name) in funcs:
                    yield funcs[(src, name)]
        elif isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id == "self" and func.cls:
            m = resolve_method(classes, func.cls, f.attr)
            if m is not None:
                yield m


def batched_roots(trees, funcs, classes):
    roots = [f for (mod, _), f in funcs.items()
             if mod not in WITNESS_MODULES and (mod == "batched.py" or is_batched_name(f.name))]
    for cls, (mod, methods, _) in classes.items():
        if mod in WITNESS_MODULES:
            continue
        for name, m in methods.items():
            if (mod == "batched.py" or is_batched_name(name)) and (mod, cls, name) not in REFERENCE_NAMED_BATCH:
                roots.append(m)
    return roots


def find_violations(root: Path = PACKAGE):
    """Every violation as ``"file:line: <batched function> -> [helper ->] ...: what"``."""
    trees = parse_package(root)
    funcs, classes, imports = index(trees)
    found = []
    for start in batched_roots(trees, funcs, classes):
        stack, seen = [(start, start.label)], set()
        while stack:
            f, chain = stack.pop()
            key = (f.module, f.cls, f.name)
            if key in seen:
                continue
            seen.add(key)
            for mod, line, what in direct_violations(f):
                found.append(f"jacobian_nn/{mod}:{line}: {chain} uses the reference derivative {what}")
            for g in callees(f, funcs, classes, imports):
                stack.append((g, f"{chain} -> {g.label}"))
    return sorted(set(found))


# --------------------------------------------------------------------------- tests


def test_batched_code_never_uses_a_reference_derivative():
    violations = find_violations()
    assert not violations, "batched code uses the reference path:\n" + "\n".join(violations)


def test_the_walk_sees_the_batched_code():
    """Guard against a walk that checks nothing: the known batched entry points are roots."""
    trees = parse_package()
    funcs, classes, _ = index(trees)
    labels = {f"{f.module}:{f.label}" for f in batched_roots(trees, funcs, classes)}
    for expected in ("batched.py:loss_and_gradients_batched", "batched.py:per_sample_gradients_batched",
                     "batched.py:input_jacobian_batched", "layers.py:Dense.backward_batch",
                     "layers.py:Dense.jacobian_x_batch", "activations.py:Softmax.vjp_batch",
                     "activations.py:ElementwiseActivation.jacobian_batch", "losses.py:CrossEntropy.gradient_batch"):
        assert expected in labels


def test_reference_named_exemptions_still_exist():
    trees = parse_package()
    assert set(WITNESS_MODULES) <= set(trees)
    _, classes, _ = index(trees)
    for (mod, cls, name), reason in REFERENCE_NAMED_BATCH.items():
        assert cls in classes and classes[cls][0] == mod and name in classes[cls][1], (mod, cls, name, reason)


@pytest.mark.parametrize("body, expected", [
    ("return G @ self.jacobian(Z)", "attribute .jacobian"),
    ("return self._helper(Z, G)", "attribute .jacobian"),        # via a helper method
    ("return helper(self, Z, G)", "attribute .gradient"),        # via a module-level helper
    ("return getattr(self, 'jacobian')(Z)", "getattr(..., 'jacobian')"),
    ("from .network import backward\n        return backward", "name backward"),
    ("return self.jacobian_x_samples(Z)", "attribute .jacobian_x_samples"),   # any reference jacobian*
    ("return G @ self._jacobian_column(Z)", "attribute ._jacobian_column"),  # private ones too
])
def test_the_walk_catches_planted_violations(tmp_path, body, expected):
    """The detector on a synthetic package: each planted use is reported with file:line."""
    (tmp_path / "acts.py").write_text(
        "def helper(obj, Z, G):\n"
        "    return obj.loss.gradient(Z, G)\n\n"
        "class Base:\n"
        "    def _helper(self, Z, G):\n"
        "        return G @ self.jacobian(Z)\n\n"
        "class Act(Base):\n"
        "    def jacobian(self, z):\n"
        "        return z\n\n"
        "    def vjp_batch(self, Z, A, G):\n"
        f"        {body}\n",
        encoding="utf-8")
    violations = find_violations(tmp_path)
    assert any(v.startswith("jacobian_nn/acts.py:") and expected in v and "Act.vjp_batch" in v
               for v in violations), violations


def test_clean_synthetic_package_passes(tmp_path):
    (tmp_path / "acts.py").write_text(
        "class Act:\n"
        "    def jacobian(self, z):\n"
        "        return z\n\n"
        "    def vjp_batch(self, Z, A, G):\n"
        "        return G * A\n",
        encoding="utf-8")
    assert find_violations(tmp_path) == []
