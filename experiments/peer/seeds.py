"""Seed audit: which samples of a run share a sampling seed, and which of those replay a training sample.

    python experiments/peer/seeds.py --model DIR [--iterations 100] [--replay]

Under the current seeding (rlreason/trainer/loop.py `seed_for(base, iteration, phase)`, the Roller's +1
per call, the vLLM engine's `seed + i * n` per prompt and vLLM's own `+ j` per sample of a request),
one engine call uses the consecutive seeds [s, s + n * len(prompts)). This lists every sample's seed
for a run of the given shape and counts collisions between (iteration, phase) blocks. A collision only
replays a sample when prompt (or prefix) and weights are the same too: `--replay` checks that on the
real vLLM engine for VinePPO's first MC call, whose states start with each question's bare prompt.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rlreason.trainer.loop import seed_for  # noqa: E402


def block(start: int, n: int, prompts: int) -> range:
    """The seeds one engine call uses: request i gets start + i * n, its samples + 0..n-1."""
    return range(start, start + n * prompts)


def audit(base: int, iterations: int, q: int, n: int, eval_every: int, eval_q: int, eval_n: int,
          mc_states: int = 0, k: int = 4) -> dict[str, float]:
    """Shares of training samples whose seed was used by another block (phase, iteration) of the run."""
    owner: dict[int, list[tuple[str, int]]] = {}

    def add(name: str, it: int, seeds: range) -> None:
        for s in seeds:
            owner.setdefault(s, []).append((name, it))

    for it in range(1, iterations + 1):
        add("train", it, block(seed_for(base, it, 0), n, q))
        if mc_states:
            add("mc", it, block(seed_for(base, it, 1), k, mc_states))
    for it in [0, *range(eval_every, iterations + 1, eval_every)]:
        add("eval", it, block(seed_for(base, it, 9), eval_n, eval_q))
    kinds: Counter[str] = Counter()
    total = 0
    for uses in owner.values():
        for name, it in uses:
            if name != "train":
                continue
            total += 1
            others = {f"{n2}_{'same' if it2 == it else 'other'}_iteration" for n2, it2 in uses if (n2, it2) != (name, it)}
            kinds.update(others)
    return {"train_samples": total, **{f"share_seeded_like_{k}": round(v / total, 4) for k, v in sorted(kinds.items())}}


def replay(model_dir: str, seed: int = 0, q: int = 16, n: int = 8, k: int = 4) -> dict[str, float]:
    """One GRPO/VinePPO-shaped iteration on the real engine: training groups at seed_for(seed, 1, 0),
    then VinePPO's MC continuations of the deduplicated states at seed_for(seed, 1, 1), as the loop does.
    Counts continuations whose tokens equal a training response of the same question (a replay)."""
    from peer import task
    from transformers import AutoTokenizer

    from rlreason.algo.vineppo import dedup_states, plan_steps
    from rlreason.config import EngineConfig
    from rlreason.data.prompts import ARITH_TEMPLATE
    from rlreason.engine import make_engine
    from rlreason.engine.base import SamplingParams
    from rlreason.reward import Grader
    from rlreason.rollout import Roller

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    engine = make_engine(EngineConfig(name="vllm"), model_dir, tokenizer, dtype="float32", seed=seed,
                         max_model_len=256)
    grader = Grader("arith")
    try:
        roller = Roller(engine, tokenizer, grader, task="arith", template=ARITH_TEMPLATE, use_chat_template=False,
                        temperature=1.0, top_p=1.0, max_new_tokens=96)
        roller.seed = seed_for(seed, 1, 0)
        groups = roller(task.splits()[0][:q], n)
        episodes = [ep for g in groups for ep in g]
        states, first, _ = dedup_states(episodes, [plan_steps(ep, tokenizer, "arith", None) for ep in episodes])
        outs = engine.continue_from(states, SamplingParams(n=k, temperature=1.0, max_tokens=96,
                                                           seed=seed_for(seed, 1, 1)))
        # Seed of every training sample (engine rule: request i -> base + i * n, sample j -> + j).
        base, mc_base = seed_for(seed, 1, 0), seed_for(seed, 1, 1)
        train_by_seed = {base + e: ep for e, ep in enumerate(episodes)}
        same_seed = same_seed_equal = other = other_equal = 0
        for i, state in enumerate(states):
            own = [ep for ep in episodes if tuple(ep.prompt_ids) == tuple(state)]
            if not own:  # a state inside a response: it cannot replay a whole training response
                continue
            responses = {tuple(ep.response_ids) for ep in own}
            for c, cont in enumerate(outs[i]):
                twin = train_by_seed.get(mc_base + i * k + c)
                if twin is not None and tuple(twin.prompt_ids) == tuple(state):
                    same_seed += 1
                    same_seed_equal += tuple(cont.token_ids) == tuple(twin.response_ids)
                else:
                    other += 1
                    other_equal += tuple(cont.token_ids) in responses
        return {"states": len(states), "continuations_from_bare_prompts": same_seed + other,
                "seeded_like_a_training_sample_of_the_same_question": same_seed,
                "of_which_identical": same_seed_equal,
                "other_continuations_identical_to_some_training_sample_of_the_question": f"{other_equal}/{other}"}
    finally:
        grader.close()
        engine.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="peer-model")
    p.add_argument("--iterations", type=int, default=100)
    p.add_argument("--eval-every", type=int, default=25)
    p.add_argument("--eval-questions", type=int, default=300)
    p.add_argument("--mc-states", type=int, default=500, help="VinePPO unique states per iteration (mc/unique_states)")
    p.add_argument("--replay", action="store_true", help="also check exact replays on the vLLM engine")
    a = p.parse_args()
    shape = dict(base=0, iterations=a.iterations, q=16, n=8, eval_every=a.eval_every, eval_q=a.eval_questions)
    print("grpo   (eval_samples=1):", audit(**shape, eval_n=1))
    print("vineppo (K=4, eval_samples=4):", audit(**shape, eval_n=4, mc_states=a.mc_states))
    if a.replay:
        print("replay check:", replay(a.model))


if __name__ == "__main__":
    main()
