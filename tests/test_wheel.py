"""Packaging: the wheel carries the published tables and bundled recipes, and a non-editable install runs
`corrbench report --table` and `corrbench run NAME --dry-run` from an empty folder (offline)."""
from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

from corrbench.bundled import paper_tables_dir, recipes_dir

REPO = Path(__file__).resolve().parents[1]


def build_wheel(out: Path) -> Path:
    """Build from a copy of the source, so the build leaves nothing in the working tree."""
    source = out / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(REPO / "corrbench", source / "corrbench", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "--wheel-dir", str(out / "dist"), str(source)], check=True, timeout=300)
    (wheel,) = (out / "dist").glob("corrbench-*.whl")
    return wheel


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, Path]:
    """(wheel, venv bin folder): a fresh venv holding only the wheel; the dependencies (torch …) are seen
    through a .pth line naming this interpreter's site-packages, so nothing is downloaded."""
    root = tmp_path_factory.mktemp("wheel")
    wheel = build_wheel(root)
    env_dir = root / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    # .pth lines only extend sys.path: this environment's editable-install hook is not run, so `corrbench`
    # can only come from the wheel.
    (Path(site) / "corrbench_test_deps.pth").write_text("\n".join(sorted(ours)) + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps",
                    "--no-index", str(wheel)], check=True, timeout=300)
    return wheel, env_dir / "bin"


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "CORRBENCH_DATA")}
    env.update(OMP_NUM_THREADS="1", COLUMNS="200")
    return env


def test_wheel_ships_tables_and_recipes(installed):
    wheel, _ = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder, pattern in ((paper_tables_dir(), "*"), (recipes_dir(), "*.toml")):
        expected = {f"corrbench/{folder.name}/{p.name}" for p in folder.glob(pattern) if p.is_file()}
        assert expected and expected <= names, sorted(expected - names)


def test_installed_wheel_runs_from_an_empty_folder(installed, tmp_path):
    _, bin_dir = installed
    empty = tmp_path / "empty"
    empty.mkdir()
    where = subprocess.run([str(bin_dir / "python"), "-c", "import corrbench; print(corrbench.__file__)"],
                           cwd=empty, env=clean_env(), check=True, capture_output=True, text=True).stdout
    assert Path(where.strip()).is_relative_to(bin_dir.parent), where

    table = subprocess.run([str(bin_dir / "corrbench"), "report", "--table", "magn_table1", "--format", "csv"],
                           cwd=empty, env=clean_env(), capture_output=True, text=True, timeout=300)
    assert table.returncode == 0, table.stderr
    published = (paper_tables_dir() / "magn_table1.csv").read_text()
    assert "85.97" in published and "85.97" in table.stdout   # a published cell (spatter, MAGN) reaches the table

    plan = subprocess.run([str(bin_dir / "corrbench"), "run", "quickstart", "--dry-run"],
                          cwd=empty, env=clean_env(), capture_output=True, text=True, timeout=300)
    assert plan.returncode == 0, plan.stderr
    assert "quickstart" in plan.stdout and "todo" in plan.stdout
    assert not any(empty.iterdir()), "a dry run and a report must write nothing"


def test_sources_parse_as_python_3_10():
    """pyproject promises Python >= 3.10: no 3.11-only syntax (grammar check of every module)."""
    for path in sorted((REPO / "corrbench").rglob("*.py")):
        ast.parse(path.read_text(), str(path), feature_version=(3, 10))


def test_recipes_resolve_by_name_legacy_path_or_file(tmp_path, monkeypatch):
    from corrbench.errors import MissingDataError, UnknownNameError
    from corrbench.recipes import load_recipe

    monkeypatch.chdir(tmp_path)      # no recipes/ folder here: names resolve to the bundled files
    bundled = recipes_dir() / "magn_table1.toml"
    assert load_recipe("magn_table1").path == bundled
    assert load_recipe("recipes/magn_table1.toml").path == bundled     # the README's former spelling
    own = tmp_path / "magn_table1.toml"
    own.write_text(bundled.read_text().replace('name = "magn_table1"', 'name = "mine"'))
    assert load_recipe(own).name == "mine"                            # an existing file wins over the bundled one
    with pytest.raises(UnknownNameError, match="Did you mean 'magn_table1'"):
        load_recipe("magn_tabel1")
    with pytest.raises(MissingDataError, match="quickstart"):
        load_recipe(tmp_path / "elsewhere" / "magn_table1.toml")      # a path elsewhere is never replaced
