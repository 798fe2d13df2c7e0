"""hydra/launcher=slurm_torchrun: each node's SLURM task turns into the right torchrun command."""

from __future__ import annotations

import pytest

from rlreason.distributed.slurm import first_host, node_command, per_node_launch_requested


@pytest.mark.parametrize("nodelist, host", [("gpu[07-08,12]", "gpu07"), ("a1,b2", "a1"), ("node3", "node3"),
                                            ("dgx-[001-016]", "dgx-001"), ("n[5,9]", "n5")])
def test_first_host_of_a_slurm_node_list(nodelist, host):
    assert first_host(nodelist) == host


def test_node_command_joins_the_job_rendezvous_with_the_same_overrides_and_run_dir():
    env = {"SLURM_NNODES": "2", "SLURM_JOB_NODELIST": "gpu[07-08]", "SLURM_JOB_ID": "4242",
           "RLREASON_NPROC_PER_NODE": "8"}
    cmd = node_command(["experiment=deepseek7b_math_vineppo", "seed=1"], "/shared/outputs/run", env)
    i = cmd.index("torch.distributed.run")
    assert cmd[i + 1:i + 6] == ["--nnodes=2", "--nproc-per-node=8", "--rdzv-backend=c10d",
                                "--rdzv-endpoint=gpu07:29500", "--rdzv-id=rlreason-4242"]
    assert cmd[-4:] == ["rlreason.run", "experiment=deepseek7b_math_vineppo", "seed=1",
                        "hydra.run.dir=/shared/outputs/run"]


def test_only_a_slurm_task_outside_torchrun_launches():
    assert per_node_launch_requested({"RLREASON_NPROC_PER_NODE": "8"})
    assert not per_node_launch_requested({"RLREASON_NPROC_PER_NODE": "8", "TORCHELASTIC_RUN_ID": "x"})
    assert not per_node_launch_requested({})
    with pytest.raises(RuntimeError, match="SLURM_NNODES"):
        node_command([], "/tmp/x", {"RLREASON_NPROC_PER_NODE": "8"})


@pytest.mark.parametrize("launcher, gpus", [("slurm", 1), ("slurm_torchrun", 8)])
def test_the_slurm_presets_compose_with_the_submitit_plugin(launcher, gpus):
    """Both presets resolve to submitit's SLURM launcher (the plugin is in the dev and slurm extras)."""
    from hydra import compose, initialize_config_dir

    from rlreason.config import register_configs
    from tests.trainer.conftest import CONF

    register_configs()
    with initialize_config_dir(config_dir=CONF, version_base=None):
        cfg = compose("config", overrides=[f"hydra/launcher={launcher}", "experiment=sweep"], return_hydra_config=True)
    assert cfg.hydra.launcher._target_.endswith("SlurmLauncher")
    assert cfg.hydra.launcher.gpus_per_node == gpus
