"""The package survives the usual Python .gitignore: no directory of it is named like build output."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Directory names that the standard Python .gitignore (github/gitignore Python.gitignore) ignores anywhere.
BUILD_OUTPUT = {"build", "dist", "develop-eggs", "downloads", "eggs", ".eggs", "lib", "lib64", "parts", "sdist",
                "var", "wheels", "env", "venv", "ENV"}


def test_no_package_or_test_dir_is_named_like_build_output():
    dirs = [p for top in ("rlreason", "tests", "conf", "experiments", "bench") for p in (ROOT / top).rglob("*")
            if p.is_dir() and "__pycache__" not in p.parts]
    assert dirs, "the package tree was not found"
    assert [str(p.relative_to(ROOT)) for p in dirs if p.name in BUILD_OUTPUT] == []
