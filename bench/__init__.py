"""jacobian_nn bench: the reference (per-sample, explicit Jacobians) and batched paths side by side.

``python -m bench`` (or ``jacobian-nn bench``) runs the quick mode (under two
minutes on two cores); ``--full`` runs the wider sweep; ``--smoke`` runs in
seconds for CI. Output: a Markdown report on stdout, ``--json FILE``,
``--plot FILE.png`` (matplotlib, the ``plot`` extra). What is measured and the
targets: :mod:`bench.suite`; the method: :mod:`bench._timing`; the floors:
:mod:`bench.baselines`; PyTorch (optional, never a dependency):
:mod:`bench.torch_baselines`.
"""

from __future__ import annotations

import argparse
import sys


def add_arguments(p: argparse.ArgumentParser) -> None:
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--smoke",
        action="store_const",
        const="smoke",
        dest="mode",
        help="a few seconds: architecture A scaled down, for CI",
    )
    group.add_argument(
        "--full", action="store_const", const="full", dest="mode", help="the wider sweep (several minutes)"
    )
    p.set_defaults(mode="quick")
    p.add_argument("--json", metavar="FILE", help="also write every measurement as JSON to FILE")
    p.add_argument(
        "--plot",
        metavar="FILE.png",
        help="also plot time against size and the speedup (needs matplotlib: the 'plot' extra)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def run_args(args) -> int:
    from . import report, suite

    if args.plot:  # fail before measuring, not after
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print('error: --plot needs matplotlib: pip install "jacobian-nn[plot]"', file=sys.stderr)
            return 2
    log = (lambda *a: None) if args.quiet else (lambda msg: print(msg, file=sys.stderr, flush=True))
    result = suite.run(args.mode, log=log)
    print(report.markdown(result))
    if args.json:
        report.write_json(result, args.json)
        print(f"\nwrote {args.json}")
    if args.plot:
        report.plot(result, args.plot)
        print(f"wrote {args.plot}")
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run_args(parser.parse_args(argv))
