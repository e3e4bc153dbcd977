"""Command line: ``jacobian-nn <command>`` (also ``python -m jacobian_nn``).

Each command is a module-level pair ``add_<name>(subparsers)`` / ``run_<name>(args)``
registered in :data:`COMMANDS`; ``main`` returns the process exit code.
"""

from __future__ import annotations

import argparse
import sys

from . import train_cli
from .check import cli as check_cli


def add_verify(sub) -> None:
    p = sub.add_parser("verify", help="check every built-in derivative against finite differences",
                       description="Check every built-in component and sample network against "
                                   "finite differences (scipy.differentiate.jacobian) and print one table.")
    p.add_argument("--json", metavar="FILE", help="also write the report as JSON to FILE")


def emit_report(report, json_path) -> int:
    """Print a report (verify's or check's), write it as JSON if asked; the exit code."""
    print(report)
    if json_path:
        report.to_json(json_path)
        print(f"wrote {json_path}")
    return 0 if report.passed else 1


def run_verify(args) -> int:
    from . import verify

    return emit_report(verify.run(), args.json)


def add_bench(sub) -> None:
    from bench import add_arguments  # the top-level bench/ package (python -m bench)

    add_arguments(sub.add_parser("bench", help="time the reference and batched paths side by side",
                                 description="Same as python -m bench: reference against batched, "
                                             "with floors, GEMM limit and torch (if installed)."))


def run_bench(args) -> int:
    from bench import run_args

    return run_args(args)


COMMANDS = {
    "verify": (add_verify, run_verify),
    "train": (train_cli.add_train, train_cli.run_train),
    "bench": (add_bench, run_bench),
    "check": (check_cli.add_check, check_cli.run_check),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jacobian-nn", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add, _ in COMMANDS.values():
        add(sub)
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    return COMMANDS[args.command][1](args)


if __name__ == "__main__":
    sys.exit(main())
