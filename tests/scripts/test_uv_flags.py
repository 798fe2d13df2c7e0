"""scripts/uv_flags.py: pip's configured package sources become uv's flags (uv reads no pip.conf)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SPEC = importlib.util.spec_from_file_location("uv_flags", Path(__file__).resolve().parents[2] / "scripts" / "uv_flags.py")
uv_flags = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(uv_flags)


def test_pip_config_to_uv_flags():
    listing = "\n".join([
        "global.cert='/etc/ssl/certs/ca-certificates.crt'",
        "global.constraint='/etc/xdg/pip/constraints.txt'",
        "global.extra-index-url='file:///opt/pypi/simple file:///opt/pypi-more/simple'",
        "global.find-links='/opt/wheels'",
        "user.index-url='https://mirror.example/simple'",
        ":env:.find-links='/opt/wheels'",  # the same source set twice is passed once
        ":env:.default-timeout='180'",
    ])
    assert uv_flags.uv_flags(listing) == [
        "--find-links", "/opt/wheels", "--index-url", "https://mirror.example/simple",
        "--extra-index-url", "file:///opt/pypi/simple", "--extra-index-url", "file:///opt/pypi-more/simple",
        "--constraint", "/etc/xdg/pip/constraints.txt", "--index-strategy", "unsafe-best-match", "--native-tls"]


def test_no_pip_config_no_flags():
    assert uv_flags.uv_flags("") == []


def test_a_gpu_install_leaves_out_the_cpu_torch_index():
    """With PyTorch's CPU index among the sources, torch==2.13.0+cpu would meet vLLM's torch==2.13.0 pin."""
    listing = "\n".join([
        "global.extra-index-url='https://download.pytorch.org/whl/cpu https://mirror.example/simple'",
        "user.find-links='https://download.pytorch.org/whl/cpu/torch_stable.html'",
    ])
    cpu = uv_flags.uv_flags(listing)
    assert "https://download.pytorch.org/whl/cpu" in cpu
    assert uv_flags.uv_flags(listing, gpu=True) == [
        "--extra-index-url", "https://mirror.example/simple", "--index-strategy", "unsafe-best-match"]
