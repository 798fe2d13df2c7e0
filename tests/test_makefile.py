"""`make setup` stops at once, naming the fix, on a Python older than pyproject's 3.11 (Ubuntu 22.04's python3)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="no make on this machine")

PY310 = '#!/bin/sh\ncase "$1" in --version) echo "Python 3.10.12" ;; *) exit 1 ;; esac\n'  # what 3.10 answers


def make(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "--no-print-directory", "-C", str(ROOT), *args], capture_output=True, text=True,
                          timeout=60)


def test_setup_with_python_3_10_stops_before_making_anything(tmp_path):
    py = tmp_path / "python3"
    py.write_text(PY310)
    py.chmod(0o755)
    venv = tmp_path / "venv"
    proc = make("setup", f"PY={py}", f"VENV={venv}")
    assert proc.returncode != 0
    assert f"rlreason needs Python >= 3.11; {py} is Python 3.10.12." in proc.stderr
    assert "make setup PY=python3.11" in proc.stderr and "uv python install 3.11" in proc.stderr
    assert not venv.exists()


def test_a_missing_python_is_named_and_a_recent_one_passes(tmp_path):
    proc = make("check-python", f"PY={tmp_path / 'nope'}", f"VENV={tmp_path / 'venv'}")
    assert proc.returncode != 0 and "is not found." in proc.stderr
    assert make("check-python", f"PY={sys.executable}", f"VENV={tmp_path / 'venv'}").returncode == 0


def test_an_existing_venv_of_an_old_python_is_named(tmp_path):
    """The venv's Python is the one setup would use: a 3.10 one must go, whatever PY says."""
    bin_dir = tmp_path / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").write_text(PY310)
    (bin_dir / "python").chmod(0o755)
    proc = make("check-python", f"PY={sys.executable}", f"VENV={tmp_path / 'venv'}")
    assert proc.returncode != 0 and f"remove it (rm -rf {tmp_path / 'venv'})" in proc.stderr
