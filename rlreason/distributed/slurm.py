"""Several nodes under SLURM: one SLURM task per node starts torchrun for that node's GPUs.

`python -m rlreason.run -m hydra/launcher=slurm_torchrun hydra.launcher.nodes=2 ...` (needs
`pip install hydra-submitit-launcher`) submits one job with one task per node; the preset exports
RLREASON_NPROC_PER_NODE (= hydra.launcher.gpus_per_node) in each task, and rlreason.run's main, seeing
it outside torchrun, runs `node_command` instead of training: torchrun with the job's node count, this
node's rank and a c10d rendezvous on the job's first node, relaunching rlreason.run with the same
overrides in the same run dir. The run dir must be on a filesystem all nodes share.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Mapping, Sequence

NPROC_ENV = "RLREASON_NPROC_PER_NODE"
RDZV_PORT = 29500


def per_node_launch_requested(env: Mapping[str, str] = os.environ) -> bool:
    return bool(env.get(NPROC_ENV)) and "TORCHELASTIC_RUN_ID" not in env  # not yet inside torchrun


def first_host(nodelist: str) -> str:
    """The first host of a SLURM node list: "gpu[07-08,12]" -> "gpu07", "a1,b2" -> "a1"."""
    m = re.match(r"([^,\[]+)(?:\[([^\]]+)\])?", nodelist.strip())
    if not m:
        raise ValueError(f"rlreason: cannot read the SLURM node list {nodelist!r}")
    prefix, ranges = m.group(1), m.group(2)
    return prefix + ranges.split(",")[0].split("-")[0] if ranges else prefix


def node_command(overrides: Sequence[str], run_dir: str, env: Mapping[str, str] = os.environ) -> list[str]:
    """The torchrun command this node runs (see the module doc)."""
    try:
        nnodes, nproc = int(env["SLURM_NNODES"]), int(env[NPROC_ENV])
        head, job = first_host(env["SLURM_JOB_NODELIST"]), env["SLURM_JOB_ID"]
    except KeyError as e:
        raise RuntimeError(f"rlreason: {NPROC_ENV} is set but {e} is not: run this under SLURM (sbatch/srun), "
                           "or launch torchrun yourself") from e
    return [sys.executable, "-m", "torch.distributed.run", f"--nnodes={nnodes}", f"--nproc-per-node={nproc}",
            "--rdzv-backend=c10d", f"--rdzv-endpoint={head}:{RDZV_PORT}", f"--rdzv-id=rlreason-{job}",
            "-m", "rlreason.run", *overrides, f"hydra.run.dir={run_dir}"]


def launch_node(overrides: Sequence[str], run_dir: str) -> int:
    """Run this node's torchrun; its exit status (torchrun stops every rank when one fails)."""
    env = {k: v for k, v in os.environ.items() if k != NPROC_ENV}
    return subprocess.run(node_command(overrides, run_dir), env=env).returncode
