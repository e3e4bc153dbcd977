"""``jacobian-nn check``: the command-line glue of the checker (never imported by the library).

The checked file runs in a child process, so that nothing it does can take the command down
with it: an exception becomes a ``refused`` report naming the function and the exception,
``sys.exit`` in user code is caught, and a check that runs longer than ``--timeout`` seconds
is killed. Exit codes (:data:`EXIT_CODES`): 0 pass, 1 fail, 2 usage error, 3 refused,
4 could not run (the file cannot be imported, the check timed out, or the checked code ended
the process).
"""

from __future__ import annotations

import argparse
import importlib.machinery
import importlib.util
import multiprocessing
import os
import re
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # ForkContext is not defined on Windows
    from multiprocessing.context import ForkContext, SpawnContext

EXIT_PASS, EXIT_FAIL, EXIT_USAGE, EXIT_REFUSED, EXIT_COULD_NOT_RUN = 0, 1, 2, 3, 4
EXIT_CODES = {
    "pass": EXIT_PASS,
    "fail": EXIT_FAIL,
    "usage error": EXIT_USAGE,
    "refused": EXIT_REFUSED,
    "could not run": EXIT_COULD_NOT_RUN,
}
#: Seconds a check may run before it is killed (``--timeout``).
DEFAULT_TIMEOUT = 300.0

_SHAPE = re.compile(r"^[1-9][0-9]*(,[1-9][0-9]*)*$")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class UsageError(Exception):
    """Bad command-line input found after parsing (exit code 2)."""


# --------------------------------------------------------------------------- strict argument types


def shape_arg(text: str) -> tuple:
    """``"4,5"`` -> ``(4, 5)``; positive integers separated by single commas, nothing else."""
    t = text.replace(" ", "")
    if not _SHAPE.match(t):
        raise argparse.ArgumentTypeError(f"expected positive integers separated by commas, like 4,5; got {text!r}")
    return tuple(int(s) for s in t.split(","))


def nonneg_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return v


def positive_seconds(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {text!r}") from None
    if not (v > 0 and np.isfinite(v)):
        raise argparse.ArgumentTypeError(f"expected a number of seconds > 0, got {text!r}")
    return v


def name_arg(text: str) -> str:
    if not _NAME.match(text):
        raise argparse.ArgumentTypeError(f"expected a Python name, got {text!r}")
    return text


def arg_spec(text: str):
    """``--arg``: a shape (``3,4``: a random array) or a name defined in FILE."""
    t = text.replace(" ", "")
    if _SHAPE.match(t):
        return ("shape", shape_arg(t))
    if _NAME.match(text):
        return ("name", text)
    raise argparse.ArgumentTypeError(f"expected a shape like 3,4 or a name defined in FILE, got {text!r}")


def add_check(sub) -> None:
    from .witnesses import REFERENCES

    p = sub.add_parser(
        "check",
        help="check a derivative in your own Python file against finite differences",
        description="Load FILE (any readable Python file) and check the derivative of --forward: a --jacobian "
        "function, a --backward VJP vjp(x, dout), a CS231n pair forward(x, ...) -> (out, cache) with "
        "backward(dout, cache) -> dx or (dx, dw, ...) (every returned gradient is checked), or a "
        "CS231n loss forward(x, y) -> (loss, dx). The input is random of --shape (a batch when it has "
        "two or more sizes) or --input. Exit codes: 0 pass, 1 fail, 2 usage error, 3 refused, "
        "4 could not run.",
    )
    p.add_argument("file", metavar="FILE", help="a readable Python file (any name; its folder is importable)")
    p.add_argument(
        "--forward",
        required=True,
        type=name_arg,
        metavar="NAME",
        help="the function f(x), a CS231n forward, or a CS231n loss",
    )
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--backward", type=name_arg, metavar="NAME", help="a VJP vjp(x, dout), or a CS231n backward(dout, cache)"
    )
    g.add_argument(
        "--jacobian",
        type=name_arg,
        metavar="NAME",
        help="a function returning the Jacobian (m, n) or per-sample (N, m, n)",
    )
    p.add_argument(
        "--shape",
        required=True,
        type=shape_arg,
        metavar="N,D",
        help="input shape; two or more sizes are a batch (N, d1, ..., dk)",
    )
    p.add_argument("--unbatched", action="store_true", help="treat a multi-size --shape as one input, not a batch")
    p.add_argument(
        "--style",
        choices=("auto", "vjp", "cs231n", "loss"),
        default="auto",
        help="how --forward/--backward are called (auto: cs231n when forward returns (out, cache), "
        "loss when it returns (loss, dx))",
    )
    p.add_argument(
        "--arg",
        action="append",
        default=[],
        type=arg_spec,
        metavar="NAME|SHAPE",
        help="an extra argument of a CS231n forward, in order: a name defined in FILE (an array, a dict "
        "such as bn_param, or a function of no arguments returning one) or a shape such as 3,4 "
        "(a random array); repeat for each argument",
    )
    p.add_argument(
        "--labels",
        type=name_arg,
        metavar="NAME",
        help="labels in FILE for a loss: integer classes (N,), or with a binary --reference labels of "
        "--shape in [0, 1] (default: random labels in [0, C), or random 0/1)",
    )
    p.add_argument(
        "--input",
        type=name_arg,
        metavar="NAME",
        help="an array (or a function of no arguments) in FILE to use as x instead of a random one",
    )
    p.add_argument(
        "--reference",
        metavar="NAME",
        choices=sorted(REFERENCES),
        help=f"also compare with the library's {', '.join(REFERENCES)}",
    )
    p.add_argument(
        "--reference-kwargs",
        type=name_arg,
        metavar="NAME",
        help="a dict in FILE with the reference's keyword arguments (dense: W, b, activation; conv2d: "
        "W, b, stride, pad or conv_param; maxpool2d/avgpool2d: pool_size, stride or pool_param; "
        "spatial_batchnorm: gamma, beta, eps, mode, running_mean, running_var or bn_param; layernorm: gamma, "
        "beta, eps or ln_param; svm: delta)",
    )
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    p.add_argument("--seed", type=nonneg_int, default=0, help="seed of the random input, labels and probes")
    p.add_argument("--top", type=nonneg_int, default=5, help="how many worst entries to list")
    p.add_argument(
        "--timeout",
        type=positive_seconds,
        default=DEFAULT_TIMEOUT,
        help=f"seconds before the check is stopped (default {DEFAULT_TIMEOUT:g})",
    )
    p.add_argument("--json", metavar="OUT", help="also write the report as JSON to OUT")


# --------------------------------------------------------------------------- parent


def _usage(msg) -> int:
    print(f"jacobian-nn check: error: {msg}", file=sys.stderr)
    return EXIT_USAGE


def _validate_paths(args) -> str | None:
    path = Path(args.file)
    if not path.is_file():
        return f"FILE: no such file {str(path)!r}"
    if not os.access(path, os.R_OK):
        return f"FILE: {str(path)!r} is not readable"
    if args.json:
        out = Path(args.json)
        folder = out.parent if str(out.parent) else Path(".")
        if out.is_dir():
            return f"--json: {args.json!r} is a folder"
        if not folder.is_dir():
            return f"--json: the folder {str(folder)!r} does not exist"
        if not os.access(folder, os.W_OK) or (out.exists() and not os.access(out, os.W_OK)):
            return f"--json: {args.json!r} is not writable"
    if args.style == "loss" and (args.backward or args.jacobian):
        return "--style loss: the loss function returns dx itself; leave out --backward and --jacobian"
    if args.style in ("vjp", "cs231n") and not (args.backward or args.jacobian):
        return "one of --backward or --jacobian is required"
    if args.arg and args.jacobian:
        return "--arg: extra arguments are for a CS231n forward with --backward"
    if args.labels and args.style not in ("auto", "loss"):
        return "--labels: only for a loss (--style loss)"
    return None


def run_check(args) -> int:
    problem = _validate_paths(args)
    if problem:
        return _usage(problem)
    ctx: ForkContext | SpawnContext
    if "fork" in multiprocessing.get_all_start_methods():
        ctx = multiprocessing.get_context("fork")
    else:
        ctx = multiprocessing.get_context("spawn")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(send, vars(args)), daemon=True)
    proc.start()
    send.close()
    message = None
    try:
        if recv.poll(args.timeout):
            try:
                message = recv.recv()
            except EOFError:
                message = None
        else:
            proc.kill()
            proc.join()
            print(
                f"jacobian-nn check: could not run: the check did not finish within --timeout {args.timeout:g} s "
                f"(an endless loop in the checked code?)",
                file=sys.stderr,
            )
            return EXIT_COULD_NOT_RUN
    finally:
        recv.close()
    proc.join(5)
    if proc.is_alive():
        proc.kill()
        proc.join()
    if message is None:
        print(
            f"jacobian-nn check: could not run: the checked code ended the process (exit code "
            f"{proc.exitcode}) before a report was made",
            file=sys.stderr,
        )
        return EXIT_COULD_NOT_RUN
    kind = message[0]
    if kind == "usage":
        return _usage(message[1])
    if kind == "could not run":
        print(f"jacobian-nn check: could not run: {message[1]}", file=sys.stderr)
        return EXIT_COULD_NOT_RUN
    _, text, data, verdict = message
    print(text)
    if args.json:
        from .report import write_json_atomic

        try:
            write_json_atomic(data, args.json)
        except OSError as exc:
            print(f"jacobian-nn check: could not write --json {args.json!r}: {exc}", file=sys.stderr)
            return EXIT_COULD_NOT_RUN
        print(f"wrote {args.json}")
    return EXIT_CODES[verdict]


# --------------------------------------------------------------------------- child


def _child(conn, opts) -> None:
    message: tuple[str, str] | tuple[str, str, dict, str]
    try:
        try:
            report = _report(argparse.Namespace(**opts))
            message = ("report", str(report), report.as_dict(), report.verdict)
        except UsageError as exc:
            message = ("usage", str(exc))
        except _CouldNotRun as exc:
            message = ("could not run", str(exc))
        except (Exception, SystemExit) as exc:  # a bug of ours or a hostile object: still a message
            message = ("could not run", f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=4)}")
        conn.send(message)
    finally:
        conn.close()


class _CouldNotRun(Exception):
    pass


def load_module(path):
    """Import a user's Python file by path, whatever its suffix; its folder goes first on ``sys.path``
    so that it can import the modules beside it."""
    path = Path(path).resolve()
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    name = "_jacobian_nn_user_" + re.sub(r"\W", "_", path.stem)
    loader = importlib.machinery.SourceFileLoader(name, str(path))
    spec = importlib.util.spec_from_loader(name, loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        loader.exec_module(module)
    except SystemExit as exc:
        raise _CouldNotRun(f"importing {path.name} called sys.exit({exc.code!r})") from None
    except Exception as exc:
        raise _CouldNotRun(f"importing {path.name} raised {type(exc).__name__}: {exc}") from None
    return module


def _lookup(module, name, what):
    if name not in vars(module):
        public = sorted(k for k in vars(module) if not k.startswith("_"))
        raise UsageError(f"{what}: {name!r} is not defined in {module.__file__}; it defines {public}")
    return vars(module)[name]


def _value(module, name, what):
    value = _lookup(module, name, what)
    if callable(value) and not isinstance(value, np.ndarray):
        try:
            value = value()
        except (Exception, SystemExit) as exc:
            raise _CouldNotRun(f"{what}: {name}() raised {type(exc).__name__}: {exc}") from None
    return value


def _report(args):
    from . import api
    from .probes import Refusal, Calls
    from .report import CheckReport, Probe, Tolerance

    module = load_module(args.file)
    shape, dtype = tuple(args.shape), np.dtype(args.dtype)
    batched = len(shape) >= 2 and not args.unbatched
    rng = np.random.default_rng(args.seed)
    if args.input:
        x = np.asarray(_value(module, args.input, "--input"))
        if x.shape != shape:
            raise UsageError(f"--input: {args.input} has shape {x.shape}, --shape says {shape}")
        if x.dtype.kind not in "fiub":
            raise UsageError(f"--input: {args.input} has dtype {x.dtype}, expected a real array")
        x = x.astype(dtype)
    else:
        x = rng.standard_normal(shape).astype(dtype)
    forward = _lookup(module, args.forward, "--forward")
    extra = []
    for kind, spec in args.arg:
        if kind == "shape":
            extra.append(rng.standard_normal(spec).astype(dtype))
        else:
            v = _value(module, spec, "--arg")
            if isinstance(v, np.ndarray) and v.dtype.kind == "f":
                v = v.astype(dtype)
            extra.append(v)
    backward = _lookup(module, args.backward, "--backward") if args.backward else None
    jac = _lookup(module, args.jacobian, "--jacobian") if args.jacobian else None
    ref_kw = _value(module, args.reference_kwargs, "--reference-kwargs") if args.reference_kwargs else None
    labels = np.asarray(_value(module, args.labels, "--labels")) if args.labels else None
    common = dict(dtype=dtype, seed=args.seed, top_k=args.top)
    style = args.style
    if style == "auto" and (labels is not None or (backward is None and jac is None)):
        style = "loss"  # a loss returns its own gradient: the only style without --backward
    if style == "auto":
        try:
            out = Calls().call(forward, args.forward, [x] + extra, ["x"] + [f"arg{i + 1}" for i in range(len(extra))])
        except Refusal as exc:
            return CheckReport(
                name=args.forward,
                kind="check",
                verdict="refused",
                diagnosis=exc.key,
                summary="calling --forward once to see its style failed",
                cause=exc.text,
                input_shape=shape,
                output_shape=None,
                dtype=dtype.name,
                tolerance=Tolerance.for_dtype(dtype),
                probes=[Probe(exc.key, False, exc.text)],
            )
        pair = isinstance(out, tuple) and len(out) == 2
        if pair and backward is not None:
            style = "cs231n"
        else:
            style = "vjp"
    if style == "loss":
        if backward is not None or jac is not None:
            raise UsageError("a loss returns dx itself; leave out --backward and --jacobian")
        if not batched or len(shape) != 2:
            raise UsageError(
                "without --backward or --jacobian, --forward is checked as a CS231n loss, "
                "loss, dx = f(x, y), which needs --shape N,C (scores of N samples, C classes)"
            )
        try:
            return api.check_loss(
                forward, x, labels, name=args.forward, reference=args.reference, reference_kwargs=ref_kw, **common
            )
        except (ValueError, TypeError) as exc:
            raise UsageError(str(exc)) from None
    if backward is None and jac is None:
        raise UsageError(
            "one of --backward or --jacobian is required (or --forward must be a CS231n loss returning (loss, dx))"
        )
    if args.arg and style != "cs231n":
        raise UsageError("--arg: extra arguments are for a CS231n forward returning (out, cache)")
    kw = dict(common, reference=args.reference, reference_kwargs=ref_kw)
    try:
        if style == "cs231n":
            if backward is None:
                raise UsageError("--style cs231n needs --backward")
            f, vjp = api.from_cs231n(forward, backward, *extra)
            runner = api.check_batch_vjp if batched else api.check_vjp
            return runner(f, vjp, x, name=args.backward, **kw)
        if jac is not None:
            runner = api.check_batch_jacobian if batched else api.check_jacobian
            return runner(forward, jac, x, name=args.jacobian, **kw)
        runner = api.check_batch_vjp if batched else api.check_vjp
        return runner(forward, backward, x, name=args.backward, **kw)
    except (ValueError, TypeError) as exc:  # the API's own argument checks (reference kwargs, dtypes)
        raise UsageError(str(exc)) from None
