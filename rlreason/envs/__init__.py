"""Multi-turn environments (`env.cls`): episodes of turns, each an action the policy writes and the
environment's observation and reward (docs/environments.md).

- base.py: the contract (Step, Environment); load.py: loading env.cls and checking it before compute;
- setup.py: the config's checks (torch-free, for validation), the run's Env, the env/* metrics;
- worker.py: steps in the grader's worker processes under reward.timeout_s, replay and its check;
- rollout.py: playing episodes turn by turn, every active episode's turn in one engine call;
- transcript.py: an episode's turns and its verdict; credit.py: VinePPO's values per turn;
- skyrl.py: adapt() wraps a SkyRL-gym BaseTextEnv into the contract (the loader calls it).
"""

from rlreason.envs.base import Environment, Step
from rlreason.envs.load import EnvError

__all__ = ["EnvError", "Environment", "Step"]
