"""reasoning-gym's scorers as reward functions (data=reasoning_gym sets `reward.fn` to `score`).

    reward.fn=rlreason.reward.reasoning_gym:score          # 1 when score_answer gives 1, else 0
    reward.fn=rlreason.reward.reasoning_gym:score_partial  # score_answer's value as it is (its partial credit)

The answer is read by reasoning-gym's own convention, `reasoning_gym.utils.extract_answer`: the text
between the LAST `<answer>` and `</answer>` (stripped); no such pair is no answer (score_answer(None, ...),
0 on every dataset). The prompt templates of conf/data/reasoning_gym.yaml ask for it;
`rollout.stop='["</answer>"]'` ends a training response there.

The entry scored against is regenerated from the record's `reasoning_gym` spec (task, config, seed, size,
index; rlreason/data/reasoning_gym.py), cached per worker, and checked to be the record's question (a
different reasoning-gym version generating other questions is an `error` verdict, not a silent 0). A
record without the spec (entries exported elsewhere, read with data=jsonl) is scored as it is, by the
dataset its `metadata.source_dataset` names.

Runs in the grader's worker processes under `reward.timeout_s`, as every reward function does. An answer
longer than MAX_ANSWER_CHARS is 0 without a call (some scorers parse it with sympy); a scorer that raises
on a malformed answer (prime_factorization's int(...)) gives 0, the answer being wrong. Some scorers run
the model's answer through Python's `eval` or sympy's `parse_expr` (EVALUATES): data=reasoning_gym refuses
those tasks unless data.reasoning_gym.allow_eval=true.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from reasoning_gym import get_score_answer_fn
from reasoning_gym.utils import extract_answer

from rlreason.data.reasoning_gym import SPEC_KEY, make_dataset

MAX_ANSWER_CHARS = 10_000  # longer than any dataset's gold answer at its defaults (ARC grids: ~2,000)
# Datasets whose score_answer evaluates the model's answer as code (checked by tests/reward/test_reasoning_gym.py
# against the installed version's sources).
EVALUATES = {
    "binary_matrix": "eval", "n_queens": "eval", "spiral_matrix": "eval", "string_insertion": "eval",
    "countdown": "sympy's parse_expr", "puzzle24": "sympy's parse_expr", "simple_integration": "sympy's parse_expr",
    "intermediate_integration": "sympy's parse_expr", "polynomial_multiplication": "sympy's parse_expr",
}


def score(response: str, record: dict) -> float:
    """1.0 when reasoning-gym scores the answer 1 (its success), else 0.0."""
    return 1.0 if score_partial(response, record) >= 1.0 else 0.0


def score_partial(response: str, record: dict) -> float:
    """reasoning-gym's score_answer on the answer in `response`, in [0, 1] (partial credit included: some
    datasets give 0.01-0.05 for a well-formed wrong answer, or len(gold)/len(answer) when it contains the gold)."""
    answer = extract_answer(response)
    if answer is not None and len(answer) > MAX_ANSWER_CHARS:
        return 0.0
    scorer, entry = _scorer(record)
    try:
        value = float(scorer(answer, entry))
    except Exception:  # noqa: BLE001 (a scorer choking on a malformed answer: the answer is wrong)
        return 0.0
    return min(max(value, 0.0), 1.0)


def _scorer(record: dict) -> tuple[Any, dict]:
    spec = record.get(SPEC_KEY)
    if isinstance(spec, dict):
        key = (spec["task"], json.dumps(spec["config"], sort_keys=True), spec["seed"], spec["size"])
        entry = _entry(*key, spec["index"])
        if entry["question"] != record.get("question"):
            raise ValueError(f"reasoning-gym's {spec['task']} (seed {spec['seed']}, index {spec['index']}) now "
                             "generates another question than the record's: a different reasoning-gym version?")
        return _dataset(*key).score_answer, entry
    name = (record.get("metadata") or {}).get("source_dataset")
    if not isinstance(name, str):
        raise ValueError("not a reasoning-gym record: no 'reasoning_gym' spec and no metadata.source_dataset")
    return get_score_answer_fn(name), record


@lru_cache(maxsize=64)
def _dataset(task: str, config_json: str, seed: int, size: int):
    return make_dataset(task, json.loads(config_json), seed, size)


@lru_cache(maxsize=20_000)  # VinePPO grades the same question many times
def _entry(task: str, config_json: str, seed: int, size: int, index: int) -> dict:
    return _dataset(task, config_json, seed, size)[index]
