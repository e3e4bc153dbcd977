"""``jacobian-nn vectors`` and ``jacobian-nn compare``: the command-line glue of the conformance suite.

Exit codes are ``check``'s (:data:`jacobian_nn.check.cli.EXIT_CODES`): 0 pass, 1 fail, 2 usage error,
3 refused, 4 could not run (the suite could not be written).
"""

from __future__ import annotations

import sys
import time

from .check.cli import EXIT_CODES, EXIT_COULD_NOT_RUN, EXIT_PASS, EXIT_USAGE, nonneg_int


def add_vectors(sub) -> None:
    from .vectors_format import LAYOUTS

    p = sub.add_parser(
        "vectors",
        help="write conformance vectors: inputs and expected derivatives for any language",
        description="Write a conformance suite to --out: for every activation, loss (softmax "
        "cross-entropy, cross-entropy, MSE, SVM, binary cross-entropy on probabilities and on "
        "logits), dense layer, batch norm, layer norm, dropout, Mul and Add, convolution, max and "
        "average pooling, spatial batch norm and a few whole networks (a CNN among them), the "
        "inputs, parameters, cotangents, expected outputs, VJPs and full Jacobians, at random "
        "points, kinks (relu at 0, SVM margins of 0, max-pooling ties), saturation and in float32, "
        "as .npy, JSON and C99-hex text, with manifest.json and suite.txt. Check another program's "
        "results with 'jacobian-nn compare'.",
    )
    p.add_argument("--out", required=True, metavar="DIR", help="a new (or empty) folder")
    p.add_argument(
        "--layout",
        choices=LAYOUTS,
        default="rows",
        help="rows: a batch is (N, n), W (n_in, n_out), images NCHW, filters (F, C, FH, FW), as in "
        "CS231n (default); columns: a batch is (n, N), W (n_out, n_in), b (n_out, 1), images NHWC, "
        "filters (FH, FW, C, F), as in the deeplearning.ai course",
    )


def run_vectors(args) -> int:
    from .vectors import write_suite

    start = time.perf_counter()
    try:
        info = write_suite(args.out, args.layout)
    except ValueError as exc:
        print(f"jacobian-nn vectors: error: --{exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:
        print(f"jacobian-nn vectors: could not write --out {args.out!r}: {exc}", file=sys.stderr)
        return EXIT_COULD_NOT_RUN
    print(f"{info} in {time.perf_counter() - start:.1f} s")
    return EXIT_PASS


def add_compare(sub) -> None:
    p = sub.add_parser(
        "compare",
        help="compare your program's results with a conformance suite",
        description="Compare RESULTS (a folder of the suite's case names holding every expected array "
        "as .npy, .json or .txt, plus results.txt: a copy of the suite's suite.txt) with "
        "the suite in DIR. Every mismatch is diagnosed (sign flipped, transposed, constant "
        "factor, missing 1/N, diagonal only, off at the label, kink convention) and located "
        "(dW[4, 0]); missing files fail, NaN fails, a wrong shape is refused. Exit codes: "
        "0 pass, 1 fail, 2 usage error, 3 refused.",
    )
    p.add_argument("suite", metavar="DIR", help="the suite written by 'jacobian-nn vectors'")
    p.add_argument("results", metavar="RESULTS", help="your program's results")
    p.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help="compare only this component (relu, dense, ...) or case; repeat for several",
    )
    p.add_argument("--top", type=nonneg_int, default=5, metavar="K", help="how many worst entries to list per array")
    p.add_argument("--json", metavar="OUT", help="also write the report as JSON to OUT")


def run_compare(args) -> int:
    from pathlib import Path

    from .vectors_compare import compare_results

    if args.json:  # checked before any work, as check does
        out = Path(args.json)
        folder = out.parent if str(out.parent) else Path(".")
        if out.is_dir() or not folder.is_dir():
            print(
                f"jacobian-nn compare: error: --json: {args.json!r} is a folder or its folder does not exist",
                file=sys.stderr,
            )
            return EXIT_USAGE
    try:
        report = compare_results(args.suite, args.results, only=args.only, top=args.top)
    except ValueError as exc:
        print(f"jacobian-nn compare: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(report)
    if args.json:
        try:
            report.to_json(args.json)
        except OSError as exc:
            print(f"jacobian-nn compare: could not write --json {args.json!r}: {exc}", file=sys.stderr)
            return EXIT_COULD_NOT_RUN
        print(f"wrote {args.json}")
    return EXIT_CODES[report.verdict]
