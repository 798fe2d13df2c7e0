"""Held-out greedy accuracy with rlreason's own eval path (Roller + Grader), for the TRL runs.

rlreason's runs evaluate themselves (the loop's greedy eval on the vLLM engine, `eval_max_questions`
test questions). The TRL policy is evaluated on the same questions through rlreason's `engine=hf`
(left-padded `generate`, greedy, the same max_new_tokens) and rlreason's grader, its weights pushed in
with `sync_weights`. Both frameworks report step 0 on the same start model: equal numbers there show
the two eval paths agree.
"""

from __future__ import annotations

import time

from rlreason.config import EngineConfig
from rlreason.engine import make_engine
from rlreason.reward import Grader
from rlreason.rollout import Roller
from rlreason.trainer.evaluate import score_groups


class GreedyEval:
    def __init__(self, model_dir: str, tokenizer, questions, max_new_tokens: int, task: str, template: str | None,
                 chat: bool = False):
        """`task`, `template` and `chat`: the grader's checker, the prompt template and whether the chat
        template is used, of the run's Source."""
        self.engine = make_engine(EngineConfig(name="hf", hf_batch_size=300), model_dir, tokenizer,
                                  dtype="float32", seed=0, max_model_len=256)
        self.grader = Grader(task)
        self.roller = Roller(self.engine, tokenizer, self.grader, task=task, template=template,
                             use_chat_template=chat, temperature=1.0, top_p=1.0, max_new_tokens=max_new_tokens)
        self.questions = questions
        self.seconds = 0.0

    def __call__(self, model, step: int) -> float:
        """Greedy accuracy of `model` (a torch module with the start model's parameter names)."""
        t0 = time.perf_counter()
        self.engine.sync_weights(((k, v.detach()) for k, v in model.state_dict().items()), step)
        self.roller.version = step
        acc = score_groups(self.roller(self.questions, 1, temperature=0.0))["mean"]
        self.seconds += time.perf_counter() - t0
        return acc

    def close(self) -> None:
        self.grader.close()
        self.engine.close()
