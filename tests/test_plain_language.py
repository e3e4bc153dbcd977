"""Users never saw the source documents under their working names: help texts, error messages and the
printed output name things as users know them ("the CS231n-style FullyConnectedNet"), never "seed 004";
the help shows no raw reST; the README points to no path that exists only where the project is developed."""

import ast
import re
from pathlib import Path

import pytest

from jacobian_nn import cli

ROOT = Path(__file__).resolve().parents[1]
INSIDER = re.compile(r"seed\s*0\d\d|shared/seeds", re.IGNORECASE)
REST = re.compile(r"``|:(func|class|mod|meth|attr|data):`")
#: calls whose string arguments reach a user: argparse texts, warnings, printed lines, exceptions
USER_CALLS = {
    "add_argument",
    "add_parser",
    "ArgumentParser",
    "add_argument_group",
    "add_mutually_exclusive_group",
    "warn",
    "print",
    "write",
    "error",
    "exit",
}


def _strings(node) -> list[str]:
    return [n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)]


def _user_facing_strings(path: Path) -> set[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and node.exc is not None:
            out += [(node.lineno, s) for s in _strings(node.exc)]
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if name in USER_CALLS or (name.endswith("Error") and name[:1].isupper()):
                out += [(node.lineno, s) for arg in node.args for s in _strings(arg)]
            out += [
                (node.lineno, s)
                for kw in node.keywords
                if kw.arg in ("help", "description", "epilog")
                for s in _strings(kw.value)
            ]
    return set(out)


def _sources():
    return sorted(p for top in ("jacobian_nn", "bench") for p in (ROOT / top).rglob("*.py"))


def test_no_insider_names_in_errors_help_or_printed_text():
    hits = [
        f"{p.relative_to(ROOT)}:{line}: {s!r}"
        for p in _sources()
        for line, s in _user_facing_strings(p)
        if INSIDER.search(s)
    ]
    assert not hits, "\n".join(hits)


def test_the_scan_sees_errors_help_and_prints():
    """Near miss for the scan itself: each kind of user-facing string is found."""
    src = (
        "def f(p):\n    p.add_argument('--x', help='seed 004 help')\n    print(f'seed 001 {p}')\n"
        "    raise ValueError(f'seed 002 {p}')\n"
    )
    path = Path(__file__).with_name("_scan_probe.py")
    try:
        path.write_text(src, encoding="utf-8")
        found = [s for _, s in _user_facing_strings(path) if INSIDER.search(s)]
    finally:
        path.unlink()
    assert len(found) == 3
    assert not INSIDER.search("CS231n-style FullyConnectedNet, seed 0 of the Generator")  # a real seed


def _all_help() -> dict[str, str]:
    parser = cli.build_parser()
    texts = {"jacobian-nn": parser.format_help()}
    sub = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction")
    for name, p in sub.choices.items():
        texts[name] = p.format_help()
    return texts


def test_help_texts_are_plain(capsys):
    texts = _all_help()
    assert set(texts) >= {"jacobian-nn", "verify", "train", "bench", "check", "proofs"}
    with pytest.raises(SystemExit):
        cli.main(["proofs", "--help"])  # handed to python -m proofs' own parser
    texts["proofs --help"] = capsys.readouterr().out
    for name, text in texts.items():
        assert not INSIDER.search(text), (name, text)
        assert not REST.search(text), (name, text)


def test_readme_speaks_to_users():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "../shared" not in text and "shared/seeds" not in text
    assert not re.search(r"\bissue \d", text, re.IGNORECASE)
    sources = text.split("## Sources", 1)[1]
    for name in ("Made With ML", "CS231n", "Deep Learning from Scratch", "numpy", "2024-06-17", "Goku Mohandas"):
        assert name in sources, name


def test_readme_cites_the_sources_by_the_names_the_proofs_use():
    from jacobian_nn._bundled import bundled

    sources = (ROOT / "README.md").read_text(encoding="utf-8").split("## Sources", 1)[1]
    names = {seed: entry["name"] for seed, entry in bundled("proofs", "_registry").SOURCES.items()}
    assert len(names) == 5
    for seed, name in names.items():
        assert f"| {seed} | {name} |" in sources, (seed, name)
