"""Multi-turn environments (env.cls): the contract, the loader and adapters (rlreason/envs/skyrl.py: SkyRL-gym)."""
