"""A builtin tiny model's SFT questions, kept out of the held-out (test) split by construction.

The build (rlreason.model.build via rlreason.model.tasks) draws its test split first and its SFT (train)
split after, from one stream (the generators' generate_splits). RL's test split is the build's, so
disjoint from SFT, only at the build's exact data settings: with data.countdown.n_test=1000 (the build's
500) the stream runs on into what the build fine-tuned on, and 485 of the 1000 held-out questions are
SFT instances; another seed, spec or data file can share instances by chance. So under
model=tiny_countdown the test split leaves out every question the model was fine-tuned on: the SFT set
is regenerated from the model's `build:` dict (the call the build made: its n_train, n_test, data_seed
and the task's spec, so also for a model rebuilt from another build dict) and matched by instance
(Task.key: the sorted numbers and the target, whatever the rule). At the default settings nothing is
left out: the default held-out questions are the build's test split.

The train split is left as it is: RL training on questions the model saw in SFT is SFT data trained on
again (at the defaults RL's train split is the SFT set itself), not a leak into the evaluation.

model=tiny (arith) has the same stream (data.arith.n_test=1000: 500 of the 1000 are SFT questions) but
is not cut here: its short chains have few distinct texts (about 300 of one step), so any other spec
shares some with SFT by construction (max_steps=12, the long-chain results' setting: 56 of its 500,
all of 1-3 steps), and leaving them out would change those held-out sets and their mix of lengths.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from rlreason.data.record import DataError, Question
from rlreason.model.tasks import task_of

Filter = Callable[[list[Question]], list[Question]]


@lru_cache(maxsize=4)
def _sft_keys(task: str, n_train: int, n_test: int, data_seed: int) -> frozenset:
    # a few seconds for Countdown's 20000: once per process
    sft_keys = task_of({"task": task}).sft_keys
    assert sft_keys is not None
    return sft_keys({"n_train": n_train, "n_test": n_test, "data_seed": data_seed})


def held_out_filter(model_cfg: Any, data_name: str) -> Filter | None:
    """For a builtin tiny model on its own task's data: a function that cuts a test split to the questions
    the model was not fine-tuned on (it says how many it left out, and refuses a split with none left).
    None for any other model or data."""
    build = model_cfg.build
    if not build or not str(model_cfg.path).startswith("builtin:"):
        return None
    task = task_of(build)
    if task.name != data_name or task.sft_keys is None or task.key is None:
        return None
    settings = {k: build[k] for k in ("n_train", "n_test", "data_seed")}
    keys = _sft_keys(task.name, *settings.values())
    made = f"model={model_cfg.name} was fine-tuned on (its build's train split: " + \
        ", ".join(f"model.build.{k}={v}" for k, v in settings.items()) + ")"

    def cut(questions: list[Question]) -> list[Question]:
        kept = [q for q in questions if task.key(q) not in keys]
        if questions and not kept:
            raise DataError(f"all {len(questions)} test questions of data={data_name} are ones {made}: none is "
                            f"held out; use data.{data_name}'s defaults or another test split")
        if len(kept) < len(questions):
            print(f"rlreason: left {len(questions) - len(kept)} of the {len(questions)} test questions out of the "
                  f"held-out split: {made}", file=sys.stderr)
        return kept

    return cut
