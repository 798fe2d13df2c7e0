"""Hydra entry point: `python -m rlreason.run algo=vineppo data=math curriculum=learnability`.

One iteration: sample questions (curriculum) -> roll out (engine) -> grade (reward) -> advantages (algo)
-> PPO update (learner) -> push weights (engine sync) -> periodic eval -> checkpoint.
The loop itself lives in rlreason.trainer.loop; this file only composes, validates and hands over.
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig

from rlreason.config import ConfigError, check_run_dir, register_configs
from rlreason.validate import suggest, validate

register_configs()
CONF = str(Path(__file__).resolve().parents[1] / "conf")

# Exit status: 0 done, 2 bad input (config, data, run dir; the message says what to change),
# 3 training diverged, 1 anything else (a bug: Hydra prints the traceback).


def fail(message: str, code: int = 2) -> None:
    print(f"rlreason: {message}", file=sys.stderr)
    sys.exit(code)


def preflight(args: list[str], config_name: str = "config", check=validate) -> None:
    """Compose and check the config the way Hydra's main will, before Hydra runs.

    Hydra reports a mistyped key, value or group option itself, with exit status 1 (the status of a
    crash), and fails with a traceback on an unwritable run dir. Here they become one message and
    status 2, like every other input error. Flags (--multirun, --cfg, --help ...) are left to Hydra."""
    if any(a.startswith("-") for a in args):
        return
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import ConfigAttributeError, ConfigKeyError, OmegaConfBaseException

    try:
        with initialize_config_dir(config_dir=CONF, version_base=None):
            cfg = compose(config_name, overrides=args, return_hydra_config=True)
    except (HydraException, OmegaConfBaseException) as e:
        cause = e.__cause__
        if isinstance(cause, ConfigAttributeError | ConfigKeyError) and getattr(cause, "full_key", None):
            key = cause.full_key
            fail(f"unknown config key {key}{suggest(key)}: see rlreason/config/ for the schema")
        detail = f"\n{cause}" if isinstance(cause, OmegaConfBaseException) else ""
        fail(f"{e}{detail}".split("\nConfig search path:")[0].rstrip())
    try:
        check(cfg)
    except ConfigError as e:
        fail(str(e))
    try:
        run_dir = OmegaConf.select(cfg, "hydra.run.dir", throw_on_resolution_failure=True)
    except OmegaConfBaseException:
        return  # an interpolation only Hydra's main can resolve: its own checks apply
    if run_dir and not cfg.get("dry_run"):
        try:
            check_run_dir(Path(run_dir))
        except ConfigError as e:
            fail(str(e))


def scrub_saved_configs() -> None:
    """Hydra saved the config and the command-line overrides under the run dir: take secrets out."""
    from hydra.core.hydra_config import HydraConfig

    from rlreason.logger import scrub_text

    hc = HydraConfig.get()
    if not hc.output_subdir:
        return
    for path in (Path(hc.runtime.output_dir) / hc.output_subdir).glob("*.yaml"):
        text = path.read_text(encoding="utf-8")
        clean = scrub_text(text)
        if clean != text:
            tmp = path.with_suffix(".yaml.tmp")
            tmp.write_text(clean, encoding="utf-8")
            tmp.replace(path)


@hydra.main(version_base=None, config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> None:
    try:
        validate(cfg)
    except ConfigError as e:
        fail(str(e))
    scrub_saved_configs()
    from rlreason.distributed import slurm

    if slurm.per_node_launch_requested():  # a SLURM task of hydra/launcher=slurm_torchrun: start torchrun
        from hydra.core.hydra_config import HydraConfig

        hc = HydraConfig.get()
        sys.exit(slurm.launch_node(list(hc.overrides.task), hc.runtime.output_dir))
    if cfg.dry_run:
        print(f"dry run: would train algo={cfg.algo.name} on data={cfg.data.name} with model={cfg.model.name} "
              f"(engine={cfg.engine.name}, curriculum={cfg.curriculum.name}) for {cfg.trainer.iterations} iterations")
        return
    # Heavy imports (torch, transformers, vllm) only after the config is known to be good.
    from rlreason.curriculum import StoreError
    from rlreason.data import DataError
    from rlreason.learner.learner import TrainingDiverged
    from rlreason.reward import RewardFnError
    from rlreason.reward.meter import RewardFailed
    from rlreason.trainer.loop import train

    try:
        train(cfg)
    except (ConfigError, DataError, StoreError, RewardFnError) as e:
        fail(str(e))
    except RewardFailed as e:
        fail(f"reward.fn={cfg.reward.fn}: {e}" if cfg.reward.fn else str(e))
    except TrainingDiverged as e:
        fail(f"{e}. The run stopped; the last good checkpoint is intact. Lower learner.lr or check the data.", 3)


def quiet_other_ranks() -> None:
    """Under torchrun every rank runs Hydra's main on the same run dir: only rank 0 writes Hydra's files
    (.hydra/, run.log); the others log to their console only."""
    import os

    if int(os.environ.get("RANK", "0")) > 0 and not any(a.startswith("-") for a in sys.argv[1:]):
        sys.argv += ["hydra.output_subdir=null", "hydra/job_logging=stdout"]


if __name__ == "__main__":
    quiet_other_ranks()
    preflight(sys.argv[1:])
    main()
