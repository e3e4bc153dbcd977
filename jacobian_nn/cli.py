"""Command line: ``jacobian-nn <command>`` (also ``python -m jacobian_nn``).

Each command is a module-level pair ``add_<name>(subparsers)`` / ``run_<name>(args)``
registered in :data:`COMMANDS`; ``main`` returns the process exit code.
"""

from __future__ import annotations

import argparse
import sys

from . import train_cli, vectors_cli
from ._bundled import bundled
from ._console import run_main
from .check import cli as check_cli


#: What ``jacobian-nn --help`` says first (plain text: argparse shows it as it is).
DESCRIPTION = (
    "Fully connected neural networks with explicit Jacobian matrices. Start with 'jacobian-nn verify'; "
    "'jacobian-nn COMMAND --help' describes each command."
)


def add_verify(sub) -> None:
    p = sub.add_parser(
        "verify",
        help="check every built-in derivative against an independent witness",
        description="Check every built-in derivative: each component and sample network against "
        "finite differences (scipy.differentiate.jacobian), the batched path against the "
        "per-sample reference, the checker on deliberate slips, and the proofs of the "
        "source tutorials' derivations. Prints one line per group, every failure in "
        "full and the total; the exit code is 1 if any check failed.",
    )
    p.add_argument("--json", metavar="FILE", help="also write every check as JSON to FILE")
    p.add_argument("-v", "--verbose", action="store_true", help="list every check, not only one line per group")


def emit_report(report, json_path, text=None) -> int:
    """Print a report (verify's or check's) or ``text``, write it as JSON if asked; the exit code."""
    print(report if text is None else text)
    if json_path:
        report.to_json(json_path)
        print(f"wrote {json_path}")
    return 0 if report.passed else 1


def run_verify(args) -> int:
    from . import verify

    report = verify.run()
    return emit_report(report, args.json, report.format(verbose=args.verbose))


def add_bench(sub) -> None:
    bundled("bench").add_arguments(
        sub.add_parser(
            "bench",
            help="time the reference and batched paths side by side",
            description="Same as python -m bench: reference against batched, "
            "with floors, GEMM limit and torch (if installed).",
        )
    )


def run_bench(args) -> int:
    return bundled("bench").run_args(args)


def add_proofs(sub) -> None:
    # Only for the command list: main() hands everything after "proofs" to python -m proofs' own parser.
    sub.add_parser(
        "proofs",
        add_help=False,
        help="the derivations of the source tutorials, checked (same as python -m proofs; jacobian-nn proofs --help)",
    )


def run_proofs(argv) -> int:
    return bundled("proofs", "__main__").main(argv)


COMMANDS = {
    "verify": (add_verify, run_verify),
    "train": (train_cli.add_train, train_cli.run_train),
    "bench": (add_bench, run_bench),
    "check": (check_cli.add_check, check_cli.run_check),
    "proofs": (add_proofs, run_proofs),
    "vectors": (vectors_cli.add_vectors, vectors_cli.run_vectors),
    "compare": (vectors_cli.add_compare, vectors_cli.run_compare),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jacobian-nn", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add, _ in COMMANDS.values():
        add(sub)
    return parser


def main(argv=None) -> int:
    """The ``jacobian-nn`` command: its exit code. Quiet when its output is closed early (``| head``)."""
    return run_main(_main, argv)


def _main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["proofs"]:
        return run_proofs(argv[1:])
    args = build_parser().parse_args(argv)
    return COMMANDS[args.command][1](args)


if __name__ == "__main__":
    sys.exit(main())
