"""Hydra entry point: `python -m rlreason.run algo=vineppo data=math curriculum=learnability`.

One iteration: sample questions (curriculum) -> roll out (engine) -> grade (reward) -> advantages (algo)
-> PPO update (learner) -> push weights (engine sync) -> periodic eval -> checkpoint.
The loop itself lives in rlreason.trainer.loop; this file only composes, validates and hands over.
"""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig

from rlreason.config import ConfigError, register_configs, validate

register_configs()


def fail(message: str, code: int = 2) -> None:
    print(f"rlreason: {message}", file=sys.stderr)
    sys.exit(code)


@hydra.main(version_base=None, config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> None:
    try:
        validate(cfg)
    except ConfigError as e:
        fail(str(e))
    if cfg.dry_run:
        print(f"dry run: would train algo={cfg.algo.name} on data={cfg.data.name} with model={cfg.model.name} "
              f"(engine={cfg.engine.name}, curriculum={cfg.curriculum.name}) for {cfg.trainer.iterations} iterations")
        return
    # Heavy imports (torch, transformers, vllm) only after the config is known to be good.
    from rlreason.curriculum import StoreError
    from rlreason.data import DataError
    from rlreason.learner.learner import TrainingDiverged
    from rlreason.trainer.loop import train

    try:
        train(cfg)
    except (ConfigError, DataError, StoreError) as e:
        fail(str(e))
    except TrainingDiverged as e:
        fail(f"{e}. The run stopped; the last good checkpoint is intact. Lower learner.lr or check the data.", 3)


if __name__ == "__main__":
    main()
