"""Models: resolving `model.path` (hub id, local dir, or the builtin tiny model) to a loadable dir.

    tiny.py   character-level tokenizer + ~0.9M-param Llama for the arith task
    build.py  builds the tiny model: SFT warm start and held-out evaluation (python -m rlreason.model.build)
    load.py   config hash, committed-checkpoint match, build cache
"""

from rlreason.model.load import resolve_model_path

__all__ = ["resolve_model_path"]
