"""The batched path never obtains a derivative from the reference path.

A static call graph over every module of ``jacobian_nn`` (``ast``), then a dynamic
check that the graph covers what actually runs.

*Roots* (the batched entry points): every function of the batched driver modules
(:data:`BATCHED_MODULES`) and every function or method, in any module, whose name ends
with ``_batched`` (the suffix rule), with no exemption.
:func:`test_the_suffix_rule` checks that no other name claims the path, and
:func:`test_every_batched_name_is_on_the_batched_path` that every ``_batched`` name sits where
the batched path lives (the driver, a component's batched formulas, the Network's hand-over).

*Edges*: a function reaches every package function it may call. Methods are resolved
**by name across all the package's classes**, because the receiver's type is not known
statically (``self.x()``, ``obj.x()``, ``super().x()``, ``module.x()`` and a bound method
stored or passed on as ``f = obj.x`` all reach every method or function named ``x``):

* an attribute ``<anything>.x`` (called or not) -> every package function or method named ``x``;
* a plain name ``f`` (called, or passed on as a value) -> the module's function ``f``, or the
  package function imported under that name; a class name -> its ``__init__``;
* ``getattr(obj, "x")`` / ``hasattr`` / ``setattr`` / ``operator.methodcaller("x")`` with a
  constant string -> every function named ``x``;
* calling a local name (``f(...)`` where ``f`` is a parameter or variable), or calling an
  instance attribute that holds an object (``self.loss(...)``, any attribute the package
  assigns as ``self.<attr> = ...`` and never defines as a method) -> every ``__call__``;
* a subscript -> every ``__getitem__``/``__setitem__``; a ``with`` -> every
  ``__enter__``/``__exit__``; a ``for`` or comprehension -> every ``__iter__``/``__next__``.

The graph over-approximates (it may follow a method that never runs from a root), never
the other way: :func:`test_every_function_a_batched_call_runs_is_in_the_graph` runs the
batched entry points under ``sys.setprofile`` and fails if a package function executed
inside one of them is not reachable in the static graph.

A reachable function fails the test if it names a reference derivative
(:func:`is_forbidden`): as an attribute (``self.activation.jacobian``), a name
(``backward``), an import, or a string given to ``getattr``. Every violation is reported
as ``file:line`` with the call chain from its root.
"""

from __future__ import annotations

import ast
import builtins
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

import jacobian_nn

PACKAGE = Path(jacobian_nn.__file__).parent


def is_batched_name(name: str) -> bool:
    """The suffix rule: a name ending in ``_batched`` is on the batched path (and nothing else is)."""
    return name.endswith("_batched")


#: Reference derivative names (and reference training steps, which run on them).
FORBIDDEN = frozenset(
    {
        "jacobian",
        "jacobian_x",
        "jacobian_b",
        "jacobian_W",
        "input_jacobian",
        "backward",
        "backward_samples",
        "gradient",
        "loss_and_gradients",
        "train_batch",
        "train_one",
        # the reference driver's backward chain and batch norm's N x N Jacobian builder
        "backward_rows",
        "coupled",
    }
)


def is_forbidden(name: str) -> bool:
    """A name in :data:`FORBIDDEN` (also with leading underscores), or any name that starts
    with ``jacobian`` (after leading underscores) and does not end in ``_batched``
    (``jacobian_x_coupled``, ``jacobian_per_feature``, ``jacobian_gamma``, ...)."""
    bare = name.lstrip("_")
    return bare in FORBIDDEN or (bare.startswith("jacobian") and not is_batched_name(bare))


#: Modules every function of which is batched-path code.
BATCHED_MODULES = ("batched.py",)

#: Modules of components: every ``*_batched`` method of their classes is a batched-path formula.
COMPONENT_MODULES = (
    "activations.py",
    "losses.py",
    "layers.py",
    "normalization.py",
    "layernorm.py",
    "conv.py",
    "graph.py",
)

#: The batched driver's front: methods of these classes named ``*_batched`` hand over to the
#: driver function of the same name (``Network.predict_batched`` -> ``batched.predict_batched``).
DRIVER_FRONTS = {("network.py", "Network")}

#: The checker: it takes batches of *someone else's* code, and says so with ``batch`` inside a
#: name (``check_batch_vjp``), never with the path's suffix.
CHECKER = "check/"

#: Names ending in ``_batch`` (not ``_batched``): each names a batch of data, not the path.
BATCH_NOUNS = {
    "train_batch": "seed 000's trainBatch: the reference SGD step on a batch (its own name, kept)",
    "as_batch": "checks an input batch (N, n)",
    "input_batch": "the network's input batch, checked once by either driver",
    "output_batch": "checks a batched network output (N, m) given to a loss",
    "_check_batch": "checks that Z is a 2-D batch",
    "_validated_batch": "CrossEntropy's checks of a batch of probabilities and labels",
    "load_cifar10_batch": "reads one of CIFAR-10's files, which CIFAR-10 calls batches (data_batch_1, ...)",
    "min_train_batch": "the smallest training batch a layer accepts",
    "_act_batch": "the checker's reference for an activation on a batch (check/witnesses.py)",
    "_dense_batch": "the checker's reference for a dense layer on a batch (check/witnesses.py)",
    "_batchnorm_batch": "the checker's reference for batch norm on a batch (check/witnesses.py)",
}

#: Dunder methods that syntax invokes without naming them: node type -> methods.
IMPLICIT = {
    ast.Subscript: ("__getitem__", "__setitem__"),
    ast.With: ("__enter__", "__exit__"),
    ast.For: ("__iter__", "__next__"),
    ast.comprehension: ("__iter__", "__next__"),
}

#: Calls whose constant string argument names a method: function name -> index of the string.
NAME_BY_STRING = {"getattr": 1, "hasattr": 1, "setattr": 1, "methodcaller": 0}


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

    @property
    def key(self) -> tuple:
        return (self.module, self.cls, self.name, self.node.lineno)


def parse_package(root: Path = PACKAGE):
    """``{module: ast.Module}`` for every ``*.py`` of the package (sub-packages included)."""
    return {
        p.relative_to(root).as_posix(): ast.parse(p.read_text(encoding="utf-8"), filename=str(p))
        for p in sorted(root.rglob("*.py"))
    }


def _module_file(mod: str, node: ast.ImportFrom) -> str:
    """The package file a relative ``from ... import`` names (``from .x import y`` in ``a/b.py`` -> ``a/x.py``)."""
    base = Path(mod).parent
    for _ in range(node.level - 1):
        base = base.parent
    target = base / (node.module or "").replace(".", "/")
    return target.as_posix().lstrip("./") + ".py" if node.module else (base / "__init__.py").as_posix()


class Graph:
    """The package's functions and the static edges between them (see the module docstring)."""

    def __init__(self, trees):
        self.trees = trees
        self.funcs = {}  # (module, name) -> Func, module level
        self.classes = {}  # (module, class name) -> {method name: Func}
        self.bases = {}  # (module, class name) -> [base class names]
        self.by_name = {}  # name -> [Func], every function and method of the package
        self.imports = {}  # (module, alias) -> (module file, name) for relative imports
        self.external = set()  # (module, alias) for names imported from outside the package
        self.object_attrs = set()  # attributes assigned as self.<attr> = ... and never a method
        for mod, tree in trees.items():
            for node in tree.body:
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    self._add(Func(mod, None, node))
                    self.funcs[(mod, node.name)] = self.by_name[node.name][-1]
                elif isinstance(node, ast.ClassDef):
                    methods = {}
                    for n in ast.walk(node):
                        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n in node.body:
                            methods[n.name] = Func(mod, node.name, n)
                            self._add(methods[n.name])
                    self.classes[(mod, node.name)] = methods
                    self.bases[(mod, node.name)] = [
                        b.id if isinstance(b, ast.Name) else b.attr
                        for b in node.bases
                        if isinstance(b, (ast.Name, ast.Attribute))
                    ]
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom):
                    for alias in node.names:
                        if node.level >= 1:
                            self.imports[(mod, alias.asname or alias.name)] = (_module_file(mod, node), alias.name)
                        else:
                            self.external.add((mod, alias.asname or alias.name))
                elif isinstance(node, ast.Import):
                    for alias in node.names:
                        self.external.add((mod, (alias.asname or alias.name).split(".")[0]))
                elif (
                    isinstance(node, ast.Attribute)
                    and isinstance(node.ctx, ast.Store)
                    and isinstance(node.value, ast.Name)
                    and node.value.id == "self"
                ):
                    self.object_attrs.add(node.attr)
        self.object_attrs -= set(self.by_name)

    def _add(self, f: Func) -> None:
        self.by_name.setdefault(f.name, []).append(f)

    def named(self, name: str):
        return self.by_name.get(name, [])

    def _class(self, mod: str, name: str):
        """The package class ``name`` as seen from ``mod``: ``(module, name)`` or None."""
        if (mod, name) in self.classes:
            return (mod, name)
        if (mod, name) in self.imports:
            src, orig = self.imports[(mod, name)]
            if (src, orig) in self.classes:
                return (src, orig)
            found = [k for k in self.classes if k[1] == orig]  # re-exported by a package __init__
            return found[0] if len(found) == 1 else None
        return None

    def lookup(self, cls, name: str):
        """``name`` on the package class ``cls`` or its package bases (first found, in base order)."""
        seen = set()
        stack = [cls]
        while stack:
            c = stack.pop(0)
            if c is None or c in seen:
                continue
            seen.add(c)
            if name in self.classes[c]:
                return [self.classes[c][name]]
            stack += [self._class(c[0], b) for b in self.bases[c]]
        return []

    def _super(self, f: Func, name: str):
        """``super().name`` inside a method of ``f.cls``: looked up from its bases."""
        if f.cls is None:
            return self.named(name)
        c = (f.module, f.cls)
        out = []
        for b in self.bases[c]:
            out += self.lookup(self._class(c[0], b), name)
        return out[:1]

    def _resolve_name(self, mod: str, name: str, called: bool):
        """What a plain name refers to in ``mod``: package functions; a class called: its
        ``__init__`` (a class only named, as in ``isinstance(x, Dense)``, runs nothing)."""
        if (mod, name) in self.funcs:
            return [self.funcs[(mod, name)]]
        c = self._class(mod, name)
        if c is not None:
            return self.lookup(c, "__init__") if called else []
        if (mod, name) in self.imports:
            src, orig = self.imports[(mod, name)]
            if (src, orig) in self.funcs:
                return [self.funcs[(src, orig)]]
            return self.named(orig)  # re-exported through a package __init__: by name
        return []

    def _is_local_call(self, f: Func, name: str) -> bool:
        mod = f.module
        return not (
            (mod, name) in self.funcs
            or (mod, name) in self.classes
            or (mod, name) in self.imports
            or (mod, name) in self.external
            or hasattr(builtins, name)
        )

    def callees(self, f: Func):
        """Every package function ``f`` may call (over-approximated, see the module docstring)."""
        out = []
        called = {id(n.func) for n in ast.walk(f.node) if isinstance(n, ast.Call)}
        for node in ast.walk(f.node):
            if node is f.node:
                continue
            if isinstance(node, ast.Attribute):
                v = node.value
                if isinstance(v, ast.Call) and isinstance(v.func, ast.Name) and v.func.id == "super":
                    out += self._super(f, node.attr)
                else:
                    out += self.named(node.attr)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                out += self._resolve_name(f.module, node.id, called=id(node) in called)
            for kind, dunders in IMPLICIT.items():
                if isinstance(node, kind):
                    for d in dunders:
                        out += self.named(d)
            if isinstance(node, ast.Call):
                fn = node.func
                fname = fn.id if isinstance(fn, ast.Name) else fn.attr if isinstance(fn, ast.Attribute) else None
                if fname in NAME_BY_STRING:
                    i = NAME_BY_STRING[fname]
                    if (
                        len(node.args) > i
                        and isinstance(node.args[i], ast.Constant)
                        and isinstance(node.args[i].value, str)
                    ):
                        out += self.named(node.args[i].value)
                if (
                    (isinstance(fn, ast.Name) and self._is_local_call(f, fn.id))  # held in a variable
                    or (isinstance(fn, ast.Attribute) and fn.attr in self.object_attrs)  # in an attribute
                    or not isinstance(fn, (ast.Name, ast.Attribute))
                ):  # f(x)(y), d[k](x)
                    out += self.named("__call__") + self.named("__init__")  # an instance, or a class
        return out

    def roots(self):
        found = [f for (mod, _), f in self.funcs.items() if mod in BATCHED_MODULES or is_batched_name(f.name)]
        for (mod, _cls), methods in self.classes.items():
            for name, m in methods.items():
                if mod in BATCHED_MODULES or is_batched_name(name):
                    found.append(m)
        return found

    def reachable(self):
        """``{Func.key: (Func, chain)}``: every function reachable from a root, with one call chain."""
        seen = {}
        stack = [(r, r.label) for r in self.roots()]
        while stack:
            f, chain = stack.pop()
            if f.key in seen:
                continue
            seen[f.key] = (f, chain)
            for g in self.callees(f):
                if g.key not in seen:
                    stack.append((g, f"{chain} -> {g.label}"))
        return seen


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
        elif isinstance(node, ast.Call):
            fn = node.func
            fname = fn.id if isinstance(fn, ast.Name) else fn.attr if isinstance(fn, ast.Attribute) else None
            i = NAME_BY_STRING.get(fname)
            if (
                i is not None
                and len(node.args) > i
                and isinstance(node.args[i], ast.Constant)
                and isinstance(node.args[i].value, str)
                and is_forbidden(node.args[i].value)
            ):
                hit = f"{fname}(..., {node.args[i].value!r})"
        if hit:
            out.append((func.module, getattr(node, "lineno", func.node.lineno), hit))
    return out


def find_violations(root: Path = PACKAGE):
    """Every violation as ``"jacobian_nn/file:line: <root> -> ... -> <function>: what"``."""
    graph = Graph(parse_package(root))
    found = []
    for f, chain in graph.reachable().values():
        for mod, line, what in direct_violations(f):
            found.append(f"jacobian_nn/{mod}:{line}: {chain} uses the reference derivative {what}")
    return sorted(set(found))


# --------------------------------------------------------------------------- the real package


def test_batched_code_never_uses_a_reference_derivative():
    violations = find_violations()
    assert not violations, "batched code uses the reference path:\n" + "\n".join(violations)


def test_the_walk_sees_the_batched_code():
    """Guard against a walk that checks nothing: the known batched entry points are roots,
    and the hot methods a batched training step runs are reachable."""
    graph = Graph(parse_package())
    roots = {f"{f.module}:{f.label}" for f in graph.roots()}
    for expected in (
        "batched.py:loss_and_gradients_batched",
        "batched.py:per_sample_gradients_batched",
        "batched.py:input_jacobian_batched",
        "layers.py:Dense.backward_batched",
        "layers.py:Dense.jacobian_x_batched",
        "activations.py:Softmax.vjp_batched",
        "activations.py:ElementwiseActivation.jacobian_batched",
        "losses.py:CrossEntropy.gradient_batched",
        "conv.py:Conv2D.backward_batched",
        "conv.py:MaxPool2D.backward_batched",
        "conv.py:AvgPool2D.backward_batched",
        "conv.py:SpatialBatchNorm.backward_batched",
        "conv.py:_ImageLayer.input_vjp_rows_batched",
    ):
        assert expected in roots
    reached = {f"{f.module}:{f.label}" for f, _ in graph.reachable().values()}
    for expected in (
        "activations.py:ReLU.vjp_batched",
        "batched.py:Workspace.array",
        "layers.py:column_sums",
        "network.py:Network.add_penalty_gradients",
        "network.py:Network.input_batch",
        "conv.py:windows",
        "conv.py:add_windows",
        "conv.py:_Pool2D._add_to_windows",
        "conv.py:_Pool2D._window_view",
    ):
        assert expected in reached


def test_the_suffix_rule():
    """``_batched`` marks the batched path and nothing else: the reference driver defines no such
    name, and every name ending in ``_batch`` is a documented noun (a batch of data)."""
    graph = Graph(parse_package())
    funcs = [f for fs in graph.by_name.values() for f in fs]
    assert not [f.label for f in funcs if f.module == "reference.py" and is_batched_name(f.name)]
    nouns = {f.name for f in funcs if f.name.endswith("_batch")}
    attrs = {
        n.attr
        for tree in graph.trees.values()
        for n in ast.walk(tree)
        if isinstance(n, ast.Attribute) and n.attr.endswith("_batch")
    }
    assert nouns | (attrs & set(BATCH_NOUNS)) <= set(BATCH_NOUNS), sorted(nouns - set(BATCH_NOUNS))
    assert "train_batch" in nouns and "forward_batched" in graph.by_name  # the rule's two sides exist


def _hands_over(node: ast.AST, receiver: str | None = None) -> bool:
    """The function ``node`` calls ``<receiver>.<its own name>(...)`` (any receiver when None):
    it hands over to the batched entry point of its name, itself a root of the walk."""
    return any(
        isinstance(n, ast.Call)
        and isinstance(n.func, ast.Attribute)
        and n.func.attr == node.name
        and (receiver is None or (isinstance(n.func.value, ast.Name) and n.func.value.id == receiver))
        for n in ast.walk(node)
    )


def _nested_functions(tree: ast.Module):
    """Functions defined inside another function (closures): not in the graph's tables."""
    outer = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    outer += [
        m
        for c in tree.body
        if isinstance(c, ast.ClassDef)
        for m in c.body
        if isinstance(m, (ast.FunctionDef, ast.AsyncFunctionDef))
    ]
    for f in outer:
        for n in ast.walk(f):
            if n is not f and isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield n


def _names_defined(tree: ast.AST):
    """``(line, name)`` for every name a module defines: functions and classes at any depth,
    parameters, and assigned names."""
    for n in ast.walk(tree):
        if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            yield n.lineno, n.name
        elif isinstance(n, ast.arg):
            yield n.lineno, n.arg
        elif isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store):
            yield n.lineno, n.id


def misplaced_batched_names(graph: Graph):
    """Every ``*_batched`` definition that is not on the batched path, as ``"file:line name: why"``.

    On the path means one of: a module-level function of the batched driver
    (:data:`BATCHED_MODULES`); a method of a class of a component module
    (:data:`COMPONENT_MODULES`), i.e. that component's batched formula; a method of a driver
    front (:data:`DRIVER_FRONTS`) that hands over to the driver function of the same name; a
    closure that hands over to the batched entry point of its name (the Solver's, which adds
    the run's workspace). Nothing in the checker (:data:`CHECKER`) defines a ``*_batched``
    name at all."""
    out = []
    for mod, tree in graph.trees.items():
        if mod.startswith(CHECKER):
            out += [
                f"{mod}:{line} {name}: the checker takes batches, it is not the batched path"
                for line, name in _names_defined(tree)
                if is_batched_name(name)
            ]
            continue
        out += [
            f"{mod}:{n.lineno} {n.name}: a *_batched closure that does not call the entry point .{n.name}"
            for n in _nested_functions(tree)
            if is_batched_name(n.name) and not _hands_over(n)
        ]
    for f in (g for fs in graph.by_name.values() for g in fs):
        if not is_batched_name(f.name) or f.module.startswith(CHECKER):
            continue
        where = f"{f.module}:{f.node.lineno} {f.label}"
        if f.cls is None and f.module not in BATCHED_MODULES:
            out.append(f"{where}: a module-level *_batched function outside the batched driver")
        elif f.cls is not None and (f.module, f.cls) in DRIVER_FRONTS and not _hands_over(f.node, "batched"):
            out.append(f"{where}: a driver front's *_batched method that does not call batched.{f.name}")
        elif (
            f.cls is not None
            and f.module not in COMPONENT_MODULES + BATCHED_MODULES
            and (f.module, f.cls) not in DRIVER_FRONTS
        ):
            out.append(f"{where}: a *_batched method outside the components and the driver's front")
    return sorted(out)


def test_every_batched_name_is_on_the_batched_path():
    """The suffix rule's other half: every ``*_batched`` name of the package is the batched
    driver, a component's batched formula or the Network's hand-over to the driver, and the
    checker defines none (``check_batch_vjp`` takes a batch; it is not the batched path). The
    walk above makes each of them a root, so none reaches a reference derivative."""
    graph = Graph(parse_package())
    assert misplaced_batched_names(graph) == []
    fronts = [f for (mod, cls), ms in graph.classes.items() if (mod, cls) in DRIVER_FRONTS for f in ms.values()]
    assert len([f for f in fronts if is_batched_name(f.name)]) >= 8  # the front is really checked


#: Synthetic packages for the rule above: file -> source, and the one misplacement each must report.
MISPLACED = {
    "checker function": ("check/api.py", "def check_vjp_batched(f, vjp, X):\n    return f\n", "check_vjp_batched"),
    "checker private helper": ("check/witnesses.py", "def _act_batched(name):\n    return name\n", "_act_batched"),
    "checker variable": ("check/cli.py", "def run(shape):\n    is_batched = len(shape) > 1\n", "is_batched"),
    "checker parameter": ("check/api.py", "def run(x, as_batched=False):\n    return x\n", "as_batched"),
    "module function outside the driver": (
        "network.py",
        "def predict_batched(net, X):\n    return X\n",
        "predict_batched",
    ),
    "front method not handing over": (
        "network.py",
        "from . import batched\n\nclass Network:\n    def predict_batched(self, X):\n        return X\n",
        "Network.predict_batched",
    ),
    "front method handing over to another name": (
        "network.py",
        "from . import batched\n\nclass Network:\n    def predict_batched(self, X):\n"
        "        return batched.forward_batched(self, X)\n",
        "Network.predict_batched",
    ),
    "method outside the components": (
        "solver.py",
        "class Solver:\n    def step_batched(self, X):\n        return X\n",
        "Solver.step_batched",
    ),
    "closure not handing over": (
        "solver.py",
        "def paths(net):\n    def loss_batched(X):\n        return net.loss(X)\n\n    return loss_batched\n",
        "loss_batched",
    ),
}

#: The near misses: the same places, each on the path (or not ending in the suffix).
WELL_PLACED = {
    "batched.py": "def predict_batched(net, X):\n    return X\n\ndef _helper_batched(X):\n    return X\n\n"
    "class Buffers:\n    def lend_batched(self, shape):\n        return None\n",
    "network.py": "from . import batched\n\nclass Network:\n    def predict_batched(self, X):\n"
    "        return batched.predict_batched(self, X)[0]\n\n    def predict_batch(self, X):\n        return X\n",
    "activations.py": "class Tanh:\n    def vjp_batched(self, Z, A, G):\n        return G\n\n"
    "    def _terms_batched(self, Z):\n        return Z\n",
    "check/api.py": "def check_batch_vjp(f, vjp, X, batched=True):\n    return f\n\n"
    "def run(act, X):\n    return act.forward_batched(X)\n",
    "solver.py": "def paths(net, ws):\n    def loss_batched(X):\n        return net.loss_batched(X, workspace=ws)\n\n"
    "    return loss_batched\n",
}


def _synthetic(root: Path, files: dict) -> Graph:
    for name, src in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(src, encoding="utf-8")
    return Graph(parse_package(root))


def test_well_placed_batched_names_pass(tmp_path):
    assert misplaced_batched_names(_synthetic(tmp_path, WELL_PLACED)) == []


@pytest.mark.parametrize("kind", sorted(MISPLACED))
def test_misplaced_batched_names_are_caught(tmp_path, kind):
    """Each kind of misplacement, added to the well-placed package, is reported, and alone."""
    module, src, label = MISPLACED[kind]
    files = dict(WELL_PLACED)
    # the misplaced network.py replaces the well-placed one (one Network class); others are appended
    files[module] = src if module == "network.py" else files.get(module, "") + "\n\n" + src
    found = misplaced_batched_names(_synthetic(tmp_path, files))
    assert len(found) == 1 and found[0].startswith(f"{module}:") and f" {label}:" in found[0], found


def _batched_workload():
    """Every batched entry point, on small problems: a Solver run on the batched path (with its
    workspace), the Network's batched methods, per-sample gradients, batched Jacobians, and the
    batch-norm/dropout network of CS231n's FullyConnectedNet."""
    import jacobian_nn as jn
    from jacobian_nn import batched, data

    rng = np.random.default_rng(0)
    ds = data.spiral(n_per_class=10, seed=0)
    for act in ("relu", "tanh", "sigmoid", "elu", "leaky_relu", "identity"):
        net = jn.Network.build([2, 5, 3], act, seed=1, l2=1e-3, l1=1e-4)
        jn.Solver(net, ds, jn.Adam(0.01), epochs=1, batch_size=7, seed=2, path="batched").train()
    for loss in (
        "softmax_cross_entropy",
        "cross_entropy",
        "mse",
        "svm",
        "binary_cross_entropy",
        "sigmoid_binary_cross_entropy",
    ):
        net = jn.Network.build([3, 4, 4, 3], "tanh", loss=loss, seed=3, l2=1e-3)
        X = rng.standard_normal((6, 3))
        Y = (
            rng.standard_normal((6, 3))
            if loss == "mse"
            else rng.random((6, 3)) < 0.5
            if "binary" in loss
            else rng.integers(0, 3, 6)
        )
        net.loss_and_gradients_batched(X, Y)
        net.train_step_batched(X, Y, 0.1)
        net.predict_batched(X)
        net.accuracy_batched(X, Y)  # the labels the loss takes (yes/no per output for a binary loss)
        net.per_sample_gradients_batched(X, Y)
        net.per_sample_losses_batched(X, Y)
        net.input_jacobian_batched(X)
        batched.activation_jacobians_batched(net, X)
    fc = jn.FullyConnectedNet(
        [5, 4], input_dim=3, num_classes=3, dropout=0.2, use_batchnorm=True, reg=1e-3, weight_scale=0.3, seed=0
    )
    X, y = rng.standard_normal((6, 3)), rng.integers(0, 3, 6)
    fc.loss_and_gradients_batched(X, y)
    fc.train_step_batched(X, y, 0.1)
    fc.predict_batched(X)
    fc.per_sample_gradients_batched(X, y, mode="test")
    fc.input_jacobian_batched(X)
    batched.activation_jacobians_batched(fc, X)
    ln = jn.Network(
        [jn.Dense(3, 4, "identity", seed=0), jn.LayerNorm(4), jn.ActivationLayer(4, "tanh"), jn.Dense(4, 3, seed=1)],
        "softmax_cross_entropy",
    )
    ln.loss_and_gradients_batched(X, y)
    ln.per_sample_gradients_batched(X, y)
    ln.input_jacobian_batched(X)
    for node in (jn.Mul(), jn.Add()):  # the two-input graph nodes
        out, ctx = node.forward_batched(X, 2 * X)
        node.backward_batched(out, ctx)
        node.jacobian_x_batched(X, X)
        node.jacobian_y_batched(X, X)
    # images: conv (relu, pad, stride) - spatial batch norm - max-pool - avg-pool - affine
    from jacobian_nn.conv import AvgPool2D, Conv2D, MaxPool2D, SpatialBatchNorm, build_cnn

    conv = Conv2D((2, 6, 6), 3, 3, pad=1, activation="relu", seed=4)
    layers = [
        conv,
        SpatialBatchNorm(conv.output_shape),
        MaxPool2D(conv.output_shape, 2),
        AvgPool2D((3, 3, 3), 3, stride=1),
    ]
    layers.append(jn.Dense(layers[-1].n_out, 3, seed=5))
    img = jn.Network(layers, "softmax_cross_entropy", l2=1e-3)
    X4, y = rng.standard_normal((4, 2, 6, 6)), rng.integers(0, 3, 4)
    img.loss_and_gradients_batched(X4, y)
    img.train_step_batched(X4, y, 0.1)
    img.input_jacobian_batched(X4)
    cnn = build_cnn((1, 4, 4), 3, filters=(2,), seed=6)
    cnn.per_sample_gradients_batched(rng.standard_normal((3, 16)), rng.integers(0, 3, 3))


def test_every_function_a_batched_call_runs_is_in_the_graph():
    """No blind spot: every package function that executes inside a batched entry point
    (traced with ``sys.setprofile``) is reachable in the static graph from a root."""
    graph = Graph(parse_package())
    reachable = graph.reachable()
    # every function of the package by (file, line range), innermost first when nested
    spans = []
    for f in [g for fs in graph.by_name.values() for g in fs]:
        start = min([f.node.lineno] + [d.lineno for d in f.node.decorator_list])
        spans.append((str(PACKAGE / f.module), start, f.node.end_lineno, f))
    spans.sort(key=lambda s: s[2] - s[1])
    root_codes = {
        (str(PACKAGE / r.module), min([r.node.lineno] + [d.lineno for d in r.node.decorator_list]))
        for r in graph.roots()
    }

    def owner(code):
        for path, start, end, f in spans:
            if path == code.co_filename and start <= code.co_firstlineno <= end:
                return f
        return None

    ran = {}

    def profile(frame, event, arg):
        if event != "call" or not frame.f_code.co_filename.startswith(str(PACKAGE)):
            return
        back = frame
        while back is not None:  # inside a batched entry point?
            if (back.f_code.co_filename, back.f_code.co_firstlineno) in root_codes:
                f = owner(frame.f_code)
                if f is not None:
                    ran[f.key] = f
                return
            back = back.f_back

    sys.setprofile(profile)
    try:
        _batched_workload()
    finally:
        sys.setprofile(None)
    assert len(ran) > 20, "the trace saw almost nothing: the workload does not reach the batched path"
    missed = sorted(f"{f.module}:{f.label}" for k, f in ran.items() if k not in reachable)
    assert not missed, "run inside a batched entry point but not in the static graph:\n" + "\n".join(missed)


# --------------------------------------------------------------------------- planted violations


SYNTHETIC = """
import operator

def helper(obj, Z, G):
    return G

def uses_reference(net, Z, G):
    return net.loss.gradient(Z, G)

class Base:
    def _helper(self, Z, G):
        return G @ self.jacobian(Z)

    def vjp_batched(self, Z, A, G):
        return G

class Other:
    def __init__(self, Z=None):
        self.value = Z

    def derivative(self, Z):
        return self.jacobian(Z)

    def __call__(self, Z):
        return self.jacobian(Z)

    def __getitem__(self, k):
        return self.jacobian(k)

    def __enter__(self):
        return self.jacobian(0)

    def __exit__(self, *exc):
        return False

    def __iter__(self):
        return iter(self.jacobian(0))

    @property
    def prop(self):
        return self.jacobian(0)

    def jacobian(self, z):
        return z

class Maker:
    def __init__(self):
        self.jacobian(0)

    def jacobian(self, z):
        return z

class Act(Base):
    def __init__(self):
        self.other = Other()

    def jacobian(self, z):
        return z

    def vjp_batched(self, Z, A, G):
        {body}
"""

#: One planted violation per kind of edge the graph must follow: (body, what is reported).
PLANTED = {
    "direct attribute": ("return G @ self.jacobian(Z)", "attribute .jacobian"),
    "self.method()": ("return self._helper(Z, G)", "attribute .jacobian"),
    "obj.method() of another class": ("return self.other.derivative(Z)", "attribute .jacobian"),
    "super().method()": ("return super()._helper(Z, G)", "attribute .jacobian"),
    "module-level function": ("return uses_reference(self, Z, G)", "attribute .gradient"),
    "function passed by name": ("return list(map(uses_reference, [self], [Z], [G]))", "attribute .gradient"),
    "bound method stored": ("f = self.other.derivative\n        return f(Z)", "attribute .jacobian"),
    "getattr with a constant": ("return getattr(self, 'jacobian')(Z)", "getattr(..., 'jacobian')"),
    "getattr of a helper": ("return getattr(self.other, 'derivative')(Z)", "attribute .jacobian"),
    "operator.methodcaller": ("return operator.methodcaller('derivative', Z)(self.other)", "attribute .jacobian"),
    "import inside the function": ("from .network import backward\n        return backward", "name backward"),
    "callable object in an attribute": ("return self.other(Z)", "attribute .jacobian"),
    "callable object in a variable": ("o = Other()\n        return o(Z)", "attribute .jacobian"),
    "constructor": ("return Maker()", "attribute .jacobian"),
    "subscript": ("return self.other[0]", "attribute .jacobian"),
    "with block": ("with self.other:\n            return G", "attribute .jacobian"),
    "for loop": ("return [g for g in self.other]", "attribute .jacobian"),
    "property": ("return self.other.prop", "attribute .jacobian"),
    "lambda": ("f = lambda z: self._helper(z, G)\n        return f(Z)", "attribute .jacobian"),
    "any reference jacobian*": ("return self.jacobian_x_coupled(Z)", "attribute .jacobian_x_coupled"),
    "private formula": ("return G @ self._jacobian_column(Z)", "attribute ._jacobian_column"),
}


@pytest.mark.parametrize("kind", sorted(PLANTED))
def test_the_walk_catches_planted_violations(tmp_path, kind):
    """The detector on a synthetic package: each kind of call path to a planted reference
    derivative is reported with file:line and the chain from ``Act.vjp_batched``."""
    body, expected = PLANTED[kind]
    (tmp_path / "acts.py").write_text(SYNTHETIC.replace("{body}", body), encoding="utf-8")
    violations = find_violations(tmp_path)
    assert any(v.startswith("jacobian_nn/acts.py:") and expected in v and "Act.vjp_batched" in v for v in violations), (
        violations
    )


def test_clean_synthetic_package_passes(tmp_path):
    """The near miss: the same synthetic classes, the batched method reaching none of them."""
    (tmp_path / "acts.py").write_text(SYNTHETIC.replace("{body}", "return G * A"), encoding="utf-8")
    assert find_violations(tmp_path) == []


def _plant(root: Path, module: str, cls: str, method: str, line: str) -> None:
    """Insert ``line`` as the first statement of ``cls.method`` in a copy of the package."""
    path = root / module
    src = path.read_text(encoding="utf-8")
    tree = ast.parse(src)
    scope = (
        tree.body if cls is None else next(c.body for c in tree.body if isinstance(c, ast.ClassDef) and c.name == cls)
    )
    target = next(n for n in scope if isinstance(n, ast.FunctionDef) and n.name == method)
    first = target.body[0]
    lines = src.splitlines(keepends=True)
    lines.insert(first.lineno - 1, " " * first.col_offset + line + "\n")
    path.write_text("".join(lines), encoding="utf-8")


#: Violations planted in copies of the real package, in the methods a batched training
#: step runs: (module, class, method, planted statement).
PLANTED_IN_PACKAGE = [
    ("activations.py", "ReLU", "vjp_batched", "_ = self.jacobian(Z[:1].T)"),
    ("activations.py", "Tanh", "vjp_batched", "_ = self.jacobian(Z[:1].T)"),
    ("activations.py", "Softmax", "vjp_batched", "_ = self.jacobian(Z[:1].T)"),
    ("layers.py", "Dense", "backward_batched", "_ = self.activation.jacobian(ctx[1][:1].T)"),
    ("layers.py", None, "column_sums", "_ = delta.jacobian"),
    ("network.py", "Network", "add_penalty_gradients", "_ = self.loss_and_gradients"),
    ("network.py", "Network", "input_batch", "_ = self.input_jacobian"),
    ("batched.py", "Workspace", "array", "_ = self.jacobian"),
    ("_validation.py", None, "lend", "_ = out.backward"),
    ("layers.py", "Dense", "forward_batched", "_ = self.jacobian_x(X[:1].T)"),
    ("losses.py", "SoftmaxCrossEntropy", "forward_and_gradient_batched", "_ = self.gradient(Z[:1].T, 0)"),
    ("normalization.py", "BatchNorm", "backward_batched", "_ = self.jacobian_x_coupled([])"),
    ("normalization.py", "Dropout", "backward_batched", "_ = self.backward(G[:1], None)"),
    ("conv.py", "Conv2D", "backward_batched", "_ = self.jacobian_x(ctx[0][:1].T)"),
    ("conv.py", "Conv2D", "forward_batched", "_ = self._jacobian_conv()"),
    ("conv.py", None, "add_windows", "_ = cols.jacobian_W"),
    ("conv.py", None, "windows", "_ = X4.backward"),
    ("conv.py", "MaxPool2D", "backward_batched", "_ = self._jacobian_pool(G[:1].T)"),
    ("conv.py", "AvgPool2D", "backward_batched", "_ = self.jacobian_x(G[:1].T)"),
    ("conv.py", "_Pool2D", "_add_to_windows", "_ = self.backward"),
    ("conv.py", "SpatialBatchNorm", "backward_batched", "_ = self.bn.backward_samples"),
]


@pytest.mark.parametrize(
    "module, cls, method, line", PLANTED_IN_PACKAGE, ids=[f"{c}.{m}" if c else m for _, c, m, _ in PLANTED_IN_PACKAGE]
)
def test_violations_planted_in_the_real_package_are_caught(tmp_path, module, cls, method, line):
    root = tmp_path / "jacobian_nn"
    shutil.copytree(PACKAGE, root, ignore=shutil.ignore_patterns("__pycache__"))
    assert find_violations(root) == []
    _plant(root, module, cls, method, line)
    violations = find_violations(root)
    label = method if cls is None else f"{cls}.{method}"
    assert any(v.startswith(f"jacobian_nn/{module}:") and label in v for v in violations), violations
