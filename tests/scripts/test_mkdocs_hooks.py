"""scripts/mkdocs_hooks.py: a page's links to repository files outside docs/ build under --strict (images
copied into the site, other files shown as their path), and a link to a missing file fails the build."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("material", reason="the docs extra (mkdocs-material) is not installed: make docs installs it")
HOOK = Path(__file__).resolve().parents[2] / "scripts" / "mkdocs_hooks.py"


def build(repo: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(repo / "mkdocs.yml")],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})


@pytest.fixture
def repo(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "figs").mkdir()
    (tmp_path / "src").mkdir()
    shutil.copy(HOOK, tmp_path / "hooks.py")
    (tmp_path / "figs" / "curve.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (tmp_path / "src" / "x.py").write_text("")
    (tmp_path / "mkdocs.yml").write_text("site_name: t\nhooks:\n  - hooks.py\nnav:\n  - index.md\n")
    return tmp_path


def test_links_outside_docs_build_and_a_missing_one_fails(repo):
    page = repo / "docs" / "index.md"
    page.write_text("# T\n\n![a curve](../figs/curve.png) and [the code](../src/x.py), [`src/x.py`](../src/x.py).\n\n"
                    "```\n[in code](../nowhere.py)\n```\n")
    proc = build(repo)
    assert proc.returncode == 0, proc.stderr
    html = (repo / "site" / "index.html").read_text()
    assert (repo / "site" / "_repo" / "figs" / "curve.png").exists() and 'src="_repo/figs/curve.png"' in html
    assert "the code (<code>src/x.py</code>)" in html and ", <code>src/x.py</code>." in html
    page.write_text("# T\n\nSee [gone](../src/gone.py).\n")
    proc = build(repo)
    assert proc.returncode != 0 and "index.md links to ../src/gone.py, which does not exist" in proc.stderr
