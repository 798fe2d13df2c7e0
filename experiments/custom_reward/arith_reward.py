"""A reward function for a task with no gold answer string: the chain's operations are in the record,
and the function computes the answer itself.

    python -m rlreason.run data=jsonl data.train_path=... data.test_path=... \
        reward.fn=experiments/custom_reward/arith_reward.py:reward

Records (experiments/custom_reward/make_data.py writes them): {"problem": "Q:3a+5b*3", "start": 3,
"ops": [["+", 5], ["*", 3]], "modulus": 10}; no "answer" field. The model's response is arith's format,
one line per step ("3a+5=8") then "#### N".

Components: `correct` (the `#### N` line holds the chain's value: success) and `steps` (the share of the
work lines that are right: dense partial credit, weighted 1 like every component unless
reward.weights.steps says otherwise; reward.weights.steps=0 trains on the outcome alone). Model text is
never evaluated: digits are read with a regex and the arithmetic is done here.
"""

import re

_LINE = re.compile(r"(\d)[a-z]([+\-*])(\d)=(\d)", re.ASCII)


def chain(record: dict) -> list[int]:
    """The running value after each operation."""
    m, acc, out = record["modulus"], record["start"], []
    for op, b in record["ops"]:
        acc = (acc + b if op == "+" else acc - b if op == "-" else acc * b) % m
        out.append(acc)
    return out


def reward(response: str, record: dict) -> dict[str, float]:
    values = chain(record)
    lines = [line.strip() for line in response.strip().splitlines()]
    final = lines[-1] if lines else ""
    correct = final.startswith("####") and final[4:].strip() == str(values[-1])
    work = [_LINE.fullmatch(line) for line in lines[:-1]]
    right = sum(1 for w, v in zip(work, values) if w is not None and int(w.group(4)) == v)
    return {"correct": float(correct), "steps": right / len(values)}
