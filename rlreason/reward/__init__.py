"""How a response is scored: the built-in checkers (answer extraction + grading against a gold answer)
and users' reward functions (reward.fn), behind one interface, `grade(responses, questions, truncated)
-> [Verdict]`, that rollouts, VinePPO's Monte-Carlo phase and the eval call without knowing which."""

from rlreason.reward.extract import extract_answer, last_boxed
from rlreason.reward.function import FunctionGrader, RewardFnError
from rlreason.reward.grader import REASONS, Grader, Verdict


class EnvGraded:
    """The grader of an env.cls run: its episodes are graded by the environment's own step rewards
    (rlreason/envs/rollout.py), so nothing may be graded against a gold answer here."""

    def grade(self, responses, golds, truncated=None):
        raise RuntimeError("an env.cls run's episodes are graded by their environment, not by a checker")

    def close(self) -> None:
        pass


def make_grader(reward_cfg, task: str):
    """The grader a config asks for: reward.fn's function when set, else the built-in checker `task`."""
    r = reward_cfg
    startup = getattr(r, "startup_timeout_s", 60.0)  # a run dir's config from before the key has none
    if getattr(r, "fn", None):  # a run dir's config from before reward.fn has no such key
        return FunctionGrader(r.fn, weights=dict(r.weights), success_threshold=r.success_threshold,
                              timeout_s=r.timeout_s, workers=r.workers, batched=r.batched, batch_size=r.batch_size,
                              startup_timeout_s=startup)
    if task == "env":
        return EnvGraded()
    return Grader(task, timeout_s=r.timeout_s, workers=r.workers, startup_timeout_s=startup)


__all__ = ["REASONS", "FunctionGrader", "Grader", "RewardFnError", "Verdict", "extract_answer", "last_boxed",
           "make_grader"]
