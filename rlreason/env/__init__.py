"""Multi-turn environments (env.cls): the contract, the loader and adapters (rlreason/env/skyrl.py: SkyRL-gym)."""
