"""model=tiny_guess's success on the hidden-number game, played turn by turn (rlreason.envs.play).

    python -m rlreason.model.guess_eval                      # committed model, vLLM, 200 held-out games
    python -m rlreason.model.guess_eval --engine hf --model DIR --games 500

Greedy success, mean success over 8 samples at temperature 1.0 and pass@8, on the first `games` records
of data=guess's held-out split (the build's test split). The builder records the same figures
(engine hf) in build_info.json; tests/envs/test_guess.py checks the band with vLLM.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from typing import Any

from rlreason.envs.guess import GuessNumber
from rlreason.envs.play import play, success_figures

SAMPLES = 8
MAX_LEN = 256  # conf/model/tiny_guess.yaml's max_model_len: the longest game is ~170 tokens


def guess_figures(engine, tokenizer, records: Sequence[dict], samples: int = SAMPLES, seed: int = 0) -> dict[str, Any]:
    """Greedy success, sampled success and pass@samples of the model behind `engine` on these games."""
    from rlreason.data.guess import problem_text
    from rlreason.model.build import prompt_ids

    prompts = [prompt_ids(tokenizer, problem_text(r)) for r in records]
    common = dict(seed=seed, max_len=MAX_LEN)
    greedy = play(engine, tokenizer, GuessNumber, records, prompts, samples=1, temperature=0.0, **common)
    sampled = play(engine, tokenizer, GuessNumber, records, prompts, samples=samples, temperature=1.0, **common)
    return success_figures(greedy, sampled)


def evaluate_guess(model_dir: str, tokenizer, records: Sequence[dict], seed: int = 0, engine: str = "hf",
                   progress: bool = True) -> dict[str, Any]:
    """guess_figures on a saved model, through a fresh engine (`hf`: the builder's; `vllm`)."""
    from rlreason.config import EngineConfig
    from rlreason.engine import make_engine

    eng = make_engine(EngineConfig(name=engine, hf_batch_size=256), model_dir, tokenizer, dtype="float32", seed=seed,
                      max_model_len=MAX_LEN)
    try:
        return guess_figures(eng, tokenizer, records, seed=seed)
    finally:
        eng.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model dir (default: the committed builtin:tiny-guess)")
    parser.add_argument("--engine", choices=["vllm", "hf"], default="vllm")
    parser.add_argument("--games", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    from transformers import AutoTokenizer

    from rlreason.data.guess import generate_splits
    from rlreason.model.tiny import assets_dir, default_build

    build = default_build("guess")
    model = args.model or str(assets_dir("guess"))
    _, test = generate_splits(build["n_train"], build["n_test"], seed=build["data_seed"])
    figures = evaluate_guess(model, AutoTokenizer.from_pretrained(model), test[:args.games], args.seed, args.engine)
    print(json.dumps({"model": model, "engine": args.engine, "seed": args.seed, **figures}, indent=2))


if __name__ == "__main__":
    main()
