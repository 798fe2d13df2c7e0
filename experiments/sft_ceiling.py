"""How far can the tiny model move at RL-sized budgets when the signal is perfect?

    python experiments/sft_ceiling.py --lr 3e-4 --batch 64 --steps 50 --eval-every 25

Continues supervised training of the committed tiny checkpoint on *gold* arith solutions, with what an
RL run would use (fresh AdamW, constant learning rate, `--batch` questions per step), and prints held-out
greedy accuracy on the first `--eval-questions` test questions (the loop's eval set) as it goes. Gold
solutions are the best signal RL could ever get from these questions, so this bounds what RL can show
within the same number of steps: if this barely moves, the start point, not the RL loop, is what limits.
"""

from __future__ import annotations

import argparse
import json
import random

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from rlreason.data.arith import generate_splits
from rlreason.model.build import collate, encode, evaluate
from rlreason.model.tiny import ASSETS, default_build


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--batch", type=int, default=16, help="gold examples per optimizer step")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--eval-every", type=int, default=25)
    parser.add_argument("--eval-questions", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default=str(ASSETS), help="HF model dir (default: the committed tiny model)")
    args = parser.parse_args()

    build = default_build()
    train, test = generate_splits(build["n_train"], build["n_test"], seed=build["data_seed"])
    test = test[: args.eval_questions]
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)  # the learner's defaults
    rng = random.Random(args.seed)

    def report(step: int) -> None:
        acc = evaluate(model, tokenizer, test, samples=0, progress=False)["greedy_acc"]
        print(json.dumps({"step": step, "examples": step * args.batch, "greedy_acc": acc}), flush=True)

    report(0)
    for step in range(1, args.steps + 1):
        batch = [encode(tokenizer, q) for q in rng.sample(train, args.batch)]
        model.train()
        loss = model(**collate(batch, tokenizer.pad_token_id)).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        model.eval()
        if step % args.eval_every == 0:
            report(step)


if __name__ == "__main__":
    main()
