"""Models: resolving `model.path` (hub id, local dir, or the builtin tiny model) to a loadable dir.

    tiny.py   character-level tokenizer + ~0.9M-param Llama (model=tiny: arith; model=tiny_countdown;
              model=tiny_guess: the hidden-number game)
    tasks.py  what the builder needs of each task: data, alphabet, graded gold solutions
    build.py  builds a tiny model: SFT warm start and held-out evaluation (python -m rlreason.model.build)
    load.py   config hash, committed-checkpoint match, build cache
    heldout.py  a tiny model's SFT questions kept out of the held-out (test) split
    guess_eval.py  model=tiny_guess's success, played turn by turn (python -m rlreason.model.guess_eval)
"""

from rlreason.model.load import resolve_model_path

__all__ = ["resolve_model_path"]
