"""What ``pip install .`` puts into site-packages: ``jacobian_nn`` alone, with py.typed, and bench/ and
proofs/ inside it as ``jacobian_nn._bench`` and ``jacobian_nn._proofs``."""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from jacobian_nn._bundled import BUNDLED, bundled

ROOT = Path(__file__).resolve().parents[1]
tomllib = pytest.importorskip("tomllib")  # Python >= 3.11


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _packages_on_disk() -> set[str]:
    """Every package of the checkout under the name it installs as."""
    names = set()
    for top, installed in [("jacobian_nn", "jacobian_nn")] + [(b, f"jacobian_nn._{b}") for b in BUNDLED]:
        for init in (ROOT / top).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / top).parts
            names.add(".".join((installed,) + rel))
    return names


def test_pyproject_lists_every_package_under_its_installed_name():
    cfg = _pyproject()["tool"]["setuptools"]
    assert set(cfg["packages"]) == _packages_on_disk(), "list every subpackage in pyproject's [tool.setuptools]"
    assert cfg["package-dir"] == {f"jacobian_nn._{b}": b for b in BUNDLED}
    assert "py.typed" in cfg["package-data"]["jacobian_nn"]


def test_version_lives_in_one_place():
    import jacobian_nn

    project = _pyproject()["project"]
    assert "version" not in project and project["dynamic"] == ["version"]
    assert _pyproject()["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "jacobian_nn.__version__"}
    assert jacobian_nn.__version__.count(".") == 2
    assert f"## {jacobian_nn.__version__}" in (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")


def test_bundled_falls_back_to_the_checkout_and_refuses_other_names():
    # from a checkout there is no jacobian_nn._proofs: the top-level package is used
    assert bundled("proofs").__name__ in ("proofs", "jacobian_nn._proofs")
    assert bundled("bench", "report").__name__.endswith("bench.report")
    with pytest.raises(ValueError, match="expected one of"):
        bundled("tests")
    with pytest.raises(ModuleNotFoundError):  # a missing module inside the package is not hidden
        bundled("proofs", "no_such_module")


def _setuptools_new_enough() -> bool:
    major = int(importlib.metadata.version("setuptools").split(".")[0])
    return major >= 77


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel built from a copy of the checkout (so no build/ or egg-info lands in it), offline."""
    if not _setuptools_new_enough():
        pytest.skip("building the wheel needs setuptools>=77 (in the 'test' extra)")
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "dist", ".hypothesis")
    for name in ("jacobian_nn", "bench", "proofs"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, src / name)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--quiet",
            "-w",
            str(tmp / "dist"),
            str(src),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (path,) = (tmp / "dist").glob("jacobian_nn-*.whl")
    return path


def test_wheel_has_one_top_level_package_and_py_typed(wheel):
    import jacobian_nn

    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
    dist_info = f"jacobian_nn-{jacobian_nn.__version__}.dist-info"
    assert {n.split("/")[0] for n in names} == {"jacobian_nn", dist_info}
    assert "jacobian_nn/py.typed" in names
    with zipfile.ZipFile(wheel) as zf:
        top_level = f"{dist_info}/top_level.txt"
        if top_level in names:
            assert zf.read(top_level).decode().split() == ["jacobian_nn"]
    # every module of the checkout is in the wheel, under its installed name
    for top, installed in [("jacobian_nn", "jacobian_nn")] + [(b, f"jacobian_nn/_{b}") for b in BUNDLED]:
        for py in (ROOT / top).rglob("*.py"):
            assert f"{installed}/{py.relative_to(ROOT / top).as_posix()}" in names


def test_installed_copy_reaches_bench_and_proofs_through_the_package(wheel, tmp_path):
    target = tmp_path / "site"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-index",
            "--quiet",
            "--target",
            str(target),
            str(wheel),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert {p.name for p in target.iterdir()} - {"bin"} == {"jacobian_nn", wheel.name.split("-py")[0] + ".dist-info"}
    code = (
        "import jacobian_nn, sys\n"
        "from jacobian_nn._bundled import bundled\n"
        "from jacobian_nn.cli import main\n"
        f"assert jacobian_nn.__file__.startswith({str(target)!r}), jacobian_nn.__file__\n"
        "assert bundled('proofs').__name__ == 'jacobian_nn._proofs'\n"
        "assert bundled('bench').__name__ == 'jacobian_nn._bench'\n"
        "assert bundled('proofs', '_verify').__name__ == 'jacobian_nn._proofs._verify'\n"
        "assert main(['proofs', '--errata']) == 0\n"
        "assert 'proofs' not in sys.modules and 'bench' not in sys.modules\n"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "| location | what it says |" in proc.stdout  # the errata table, from the installed proofs
