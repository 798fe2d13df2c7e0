"""rlreason.cuda_check: a GPU machine whose torch cannot use the GPU is an error with its reason (make
setup's check, and device=auto in a run), never a quiet fall-back to the CPU (issue 20)."""

from __future__ import annotations

import pytest
import torch

from rlreason import cuda_check
from tests.test_errors import build_error, no_heavy  # noqa: F401 (a fixture)

DRIVER_LINE = "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  570.124.06  Release Build  (dvs-builder@U16)\n"


@pytest.fixture
def fake_driver(tmp_path, monkeypatch):
    path = tmp_path / "version"
    path.write_text(DRIVER_LINE + "GCC version:  gcc version 12.3.0 (Ubuntu 12.3.0-1ubuntu1~22.04)\n")
    monkeypatch.setattr(cuda_check, "DRIVER_FILE", path)
    return path


def test_driver_version_is_read_from_the_kernel_module(fake_driver, tmp_path, monkeypatch):
    assert cuda_check.nvidia_driver() == "570.124.06"
    monkeypatch.setattr(cuda_check, "DRIVER_FILE", tmp_path / "absent")
    assert cuda_check.nvidia_driver() is None


@pytest.mark.parametrize("version, cuda, available, driver, expected", [
    ("2.14.0", "13.0", True, "580.65.06", None),
    ("2.13.0+cpu", None, False, None, None),  # a CPU machine: nothing to say
    ("2.13.0+cpu", None, False, "580.65.06", "torch 2.13.0+cpu is a CPU build"),
    ("2.14.0", "13.0", False, "570.124.06", "needs NVIDIA driver >= 580; this machine has 570.124.06"),
    ("2.9.0", "12.8", False, "525.60.13", "sees no usable GPU although NVIDIA driver 525.60.13 is loaded"),
])
def test_the_reason_is_named(version, cuda, available, driver, expected):
    why = cuda_check.problem(version, cuda, available, driver)
    assert why is None if expected is None else expected in why, why


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a torch that cannot use CUDA")
def test_the_setup_check_fails_with_the_reason(fake_driver, capsys):
    assert cuda_check.main() == 1
    err = capsys.readouterr().err
    assert err.startswith("rlreason: torch ") and "download.pytorch.org/whl/cpu" in err, err


def test_the_setup_check_without_a_driver(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cuda_check, "DRIVER_FILE", tmp_path / "absent")
    assert cuda_check.main() == 1
    assert "rlreason: no NVIDIA driver is loaded" in capsys.readouterr().err


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a torch that cannot use CUDA")
def test_a_run_on_a_gpu_machine_does_not_fall_back_to_the_cpu(tmp_path, fake_driver, no_heavy):  # noqa: F811
    err = build_error(tmp_path, "device=auto")
    assert "is a CPU build" in str(err) and "device=cpu to use the CPU on purpose" in str(err)
    with pytest.raises(AssertionError, match="heavy work started"):  # device=cpu: past the check, to the engine
        build_error(tmp_path, "device=cpu")
