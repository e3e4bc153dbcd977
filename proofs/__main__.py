"""``python -m proofs``: run every proof's checks and print the table of verdicts.

Options: ``--numeric-only`` / ``--symbolic-only``; ``--errata`` prints the errata rows
(verdict other than *holds*) as a Markdown table; ``--index`` prints the index as Markdown;
``--write-readme`` regenerates both tables inside ``proofs/README.md``.
Exit status 1 if any check fails (a skipped symbolic check, sympy missing, is not a failure).
"""

from __future__ import annotations

import argparse
import os
import sys

from ._registry import HOLDS, LIBRARY, SOURCES, load_all, run, source_name


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _index_markdown(proofs) -> str:
    lines = ["| id | source | location | verdict | checks | file |", "|---|---|---|---|---|---|"]
    for p in _sorted(proofs):
        kinds = "+".join(sorted({c.kind for c in p.checks}))
        lines.append(
            f"| `{p.id}` | {_source(p)} | {_cell(p.location)} | {_verdict(p)} | {kinds} | "
            f"`{p.module.split('.')[-1]}.py::{p.function}` |"
        )
    return "\n".join(lines)


def _source(p) -> str:
    if p.seed == LIBRARY:
        return f"{source_name(p.seed)} (no seed)"
    return f"{source_name(p.seed)} ({p.seed})"


def _verdict(p) -> str:
    return p.verdict + (" (prose)" if p.prose else "")


def _sources_markdown() -> str:
    lines = ["| seed | cited as | title | author | date |", "|---|---|---|---|---|"]
    for k, v in SOURCES.items():
        lines.append(f"| {k} | **{v['name']}** | {_cell(v['title'])} | {_cell(v['author'])} | {_cell(v['date'])} |")
    return "\n".join(lines)


def _sorted(proofs):
    return sorted(proofs.values(), key=lambda p: (p.seed, p.id))


def _errata_markdown(proofs) -> str:
    lines = ["| source | location | what it says | what is right | check |", "|---|---|---|---|---|"]
    for p in _sorted(proofs):
        if p.verdict != HOLDS:
            lines.append(
                f"| {_source(p)} | {_cell(p.location)} | {_cell(p.statement)} | {_cell(p.corrected)} | "
                f"`{p.module.split('.')[-1]}.py::{p.function}` ({_verdict(p)}) |"
            )
    return "\n".join(lines)


README = os.path.join(os.path.dirname(os.path.abspath(__file__)), "README.md")


def render_readme(text: str, proofs) -> str:
    """``text`` with the blocks between ``<!-- sources:start/end -->``, ``<!-- index:start/end -->`` and
    ``<!-- errata:start/end -->`` regenerated."""
    for name, table in (
        ("sources", _sources_markdown()),
        ("index", _index_markdown(proofs)),
        ("errata", _errata_markdown(proofs)),
    ):
        start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
        i, j = text.index(start) + len(start), text.index(end)
        text = text[:i] + "\n" + table + "\n" + text[j:]
    return text


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m proofs", description=__doc__.splitlines()[0].replace("``", ""))
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--numeric-only", action="store_true")
    g.add_argument("--symbolic-only", action="store_true")
    g.add_argument("--errata", action="store_true", help="print the errata table (Markdown) and exit")
    g.add_argument("--index", action="store_true", help="print the index of proofs (Markdown) and exit")
    g.add_argument(
        "--write-readme",
        action="store_true",
        help="regenerate the index and errata tables between the markers of proofs/README.md",
    )
    args = ap.parse_args(argv)
    if args.write_readme:
        path = README
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(render_readme(text, load_all()))
        print(f"wrote {path}")
        return 0
    if args.errata or args.index:
        proofs = load_all()
        print(_errata_markdown(proofs) if args.errata else _index_markdown(proofs))
        return 0
    kinds = ("numeric",) if args.numeric_only else ("symbolic",) if args.symbolic_only else ("numeric", "symbolic")
    results = run(kinds)
    by_proof: dict = {}
    for r in results:
        by_proof.setdefault(r.proof.id, []).append(r)
    head = f"{'proof':<34} {'source':<24} {'verdict':<31} {'numeric':<8} {'symbolic':<8}"
    print(head)
    print("-" * len(head))
    for pid, rs in by_proof.items():
        p = rs[0].proof
        cell = {k: ",".join(r.status for r in rs if r.check.kind == k) or "-" for k in ("numeric", "symbolic")}
        print(f"{pid:<34} {_source(p):<24} {p.verdict:<31} {cell['numeric']:<8} {cell['symbolic']:<8}")
    print("-" * len(head))
    failed = [r for r in results if r.status == "fail"]
    for r in failed:
        print(f"FAIL {r.proof.id} {r.check.name}: {r.message}")
    n = {s: sum(r.status == s for r in results) for s in ("pass", "fail", "skip")}
    n_wrong = sum(rs[0].proof.verdict != HOLDS for rs in by_proof.values())
    print(
        f"{len(by_proof)} proofs ({n_wrong} errata); checks: {n['pass']} passed, {n['fail']} failed, "
        f"{n['skip']} skipped" + (" (sympy not installed)" if n["skip"] else "")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    from jacobian_nn._console import run_main  # quiet when the output is closed early (| head)

    sys.exit(run_main(main))
