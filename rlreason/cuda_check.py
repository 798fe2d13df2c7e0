"""Can torch use this machine's NVIDIA GPU? The check `make setup` runs after a GPU install, and the
reason a run with device=auto stops instead of quietly training on the CPU.

    python -m rlreason.cuda_check        # exit 0 and one line per GPU, or 1 and an `rlreason:` message

The usual causes, each named in the message: a CPU build of torch (`+cpu`; a CPU wheel index in the pip
configuration can win the resolution, a `+cpu` local version sorting above the plain one), or an NVIDIA
driver older than the CUDA that torch was built for needs. vLLM 0.32-0.34 pin torch 2.13 / 2.14, whose
PyPI wheels are built for CUDA 13.0: driver 580 or newer.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# The oldest Linux driver each CUDA major version runs on (minor-version compatibility; CUDA release notes,
# table 3). A major version missing here is newer than this table: no figure is claimed for it.
MIN_DRIVER = {11: 450, 12: 525, 13: 580}
DRIVER_FILE = Path("/proc/driver/nvidia/version")


def nvidia_driver() -> str | None:
    """The loaded NVIDIA kernel driver's version ("580.65.06"), or None when there is none."""
    try:
        text = DRIVER_FILE.read_text()
    except OSError:
        return None
    for word in text.split():
        parts = word.split(".")
        if len(parts) >= 2 and all(p.isdigit() for p in parts):
            return word
    return "unknown"


def min_driver(cuda: str) -> int | None:
    return MIN_DRIVER.get(int(cuda.split(".")[0]))


def problem(torch_version: str, cuda: str | None, available: bool, driver: str | None) -> str | None:
    """Why torch cannot use the GPU, or None when it can (or when there is no NVIDIA driver at all)."""
    if available or driver is None:  # no NVIDIA driver: a CPU machine, nothing to complain about
        return None
    if cuda is None or "+cpu" in torch_version:
        return (f"torch {torch_version} is a CPU build, so it cannot use this machine's GPU (driver {driver}): a CPU "
                f"wheel index in the pip configuration (`pip config list`, e.g. download.pytorch.org/whl/cpu) "
                f"wins the resolution, as a `+cpu` version sorts above the plain one. Remove it, `make clean "
                f"setup`, and check with `python -m rlreason.cuda_check`")
    need = min_driver(cuda)
    have = driver.split(".")[0]
    if need is not None and have.isdigit() and int(have) < need:
        return (f"torch {torch_version} is built for CUDA {cuda}, which needs NVIDIA driver >= {need}; this machine "
                f"has {driver}. Update the driver, or install a torch/vLLM built for an older CUDA (their "
                f"install pages list the builds)")
    return (f"torch {torch_version} (CUDA {cuda}) sees no usable GPU although NVIDIA driver {driver} is loaded "
            f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r}); `nvidia-smi` and torch.cuda.init() say more")




def current_problem() -> str | None:
    """`problem` for this process's torch and this machine's driver."""
    import torch

    driver = nvidia_driver()
    return problem(torch.__version__, torch.version.cuda, torch.cuda.is_available(), driver)


def main() -> int:
    import torch

    if nvidia_driver() is None:
        print("rlreason: no NVIDIA driver is loaded on this machine (no /proc/driver/nvidia/version)", file=sys.stderr)
        return 1
    if (why := current_problem()) is not None:
        print(f"rlreason: {why}", file=sys.stderr)
        return 1
    x = torch.ones(256, 256, device="cuda")
    assert (x @ x).sum().item() == 256**3  # a kernel runs, not only the context
    for i in range(torch.cuda.device_count()):
        p = torch.cuda.get_device_properties(i)
        print(f"cuda:{i} {p.name}, {p.total_memory / 2**30:.0f} GiB, torch {torch.__version__} CUDA {torch.version.cuda},"
              f" driver {nvidia_driver()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
