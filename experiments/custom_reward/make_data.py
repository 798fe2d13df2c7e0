"""Write arith's questions as JSONL rows with no answer field, for the reward-function example.

    python experiments/custom_reward/make_data.py OUT_DIR   # OUT_DIR/train.jsonl, OUT_DIR/test.jsonl

The questions are data=arith's own (same generator, same seed, same split), so a run on these files
starts from the tiny model's arith accuracy; only the grading differs (arith_reward.py recomputes the
answer from the record's operations instead of comparing with a gold string).
"""

import argparse
import json
import re
from pathlib import Path

from rlreason.config import ArithConfig
from rlreason.data.arith import ArithSpec, generate_splits

_OP = re.compile(r"[a-z]([+\-*])(\d)")


def row(problem: str, modulus: int) -> dict:
    start = int(problem[2])  # "Q:3a+5b*3": the first operand follows "Q:"
    return {"problem": problem, "start": start, "ops": [[op, int(b)] for op, b in _OP.findall(problem[3:])],
            "modulus": modulus}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    args = ap.parse_args()
    a = ArithConfig()
    train, test = generate_splits(a.n_train, a.n_test, ArithSpec(a.min_steps, a.max_steps, a.modulus, a.ops,
                                                                 a.invertible), a.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, questions in (("train", train), ("test", test)):
        with (args.out / f"{name}.jsonl").open("w") as f:
            for q in questions:
                f.write(json.dumps(row(q.problem, a.modulus)) + "\n")
    print(args.out)


if __name__ == "__main__":
    main()
