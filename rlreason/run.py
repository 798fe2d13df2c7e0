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


@hydra.main(version_base=None, config_path="../conf", config_name="config")
def main(cfg: DictConfig) -> None:
    try:
        validate(cfg)
    except ConfigError as e:
        print(f"rlreason: {e}", file=sys.stderr)
        sys.exit(2)
    from rlreason.trainer.loop import train  # heavy imports only after validation

    train(cfg)


if __name__ == "__main__":
    main()
