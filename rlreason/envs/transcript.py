"""One multi-turn episode as played: its turns' texts, rewards and token spans, and its verdict.

Token layout of an episode (Episode.prompt_ids + Episode.response_ids):

    prompt + reset() | action_1  obs_1  action_2  obs_2 ... action_T
                     ^ response_ids start here; action_mask 1 on actions' tokens, 0 on observations'

Actions are the engine's sampled tokens, kept as sampled (never re-tokenised); an observation is
tokenised on its own and appended. The final observation (after the step that ended the episode) is
recorded in `observations` but not appended: nothing follows it to train.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from rlreason.reward.grader import Verdict

FAILED = ("timeout", "error", "mismatch")  # ends that are failures to step (reward 0, as a grading failure)


@dataclass
class Transcript:
    seed: int  # the environment's seed (the episode's first sampling seed)
    observations: list[str] = field(default_factory=list)  # reset()'s, then one per stepped action
    actions: list[str] = field(default_factory=list)  # the action texts stepped (a cut last action is not)
    rewards: list[float | dict[str, float]] = field(default_factory=list)  # one per stepped action
    spans: list[tuple[int, int]] = field(default_factory=list)  # [start, end) of each action in response_ids
    reset_tokens: int = 0  # reset()'s tokens in the prompt: they count against the episode's token budget
    cut_start: int | None = None  # where a last action cut by the token budget starts in response_ids
    end: str = ""  # done | max_turns | budget | timeout | error | mismatch
    detail: str | None = None  # why, for a failure

    @property
    def turns(self) -> int:
        return len(self.spans)

    def turn_totals(self) -> list[float]:
        """Each stepped turn's reward as one number (a dict's components summed); all 0 when the episode
        failed to step, as its return is then 0."""
        if self.end in FAILED:
            return [0.0] * len(self.rewards)
        return [sum(r.values()) if isinstance(r, dict) else r for r in self.rewards]

    def verdict(self, success_threshold: float) -> Verdict:
        """The episode's grade: return = the sum of its turns' rewards; success = the summed `correct`
        component when there is one, else return >= success_threshold. A step that hung or failed is
        `timeout` / `error` (a replay mismatch is an `error`), reward 0; an episode cut by the token
        budget is `truncated`, with the reward of the turns it completed."""
        if self.end in FAILED:
            return Verdict(0.0, "timeout" if self.end == "timeout" else "error", detail=self.detail)
        total = sum(self.turn_totals())
        parts: dict[str, float] = {}
        for r in self.rewards:
            for k, v in (r.items() if isinstance(r, dict) else ()):
                parts[k] = parts.get(k, 0.0) + v
        last = self.actions[-1].strip().splitlines()[-1][:200] if self.actions and self.actions[-1].strip() else None
        if self.end == "budget":
            return Verdict(total, "truncated", last, parts or None)
        ok = parts["correct"] >= 0.5 if "correct" in parts else total >= success_threshold
        return Verdict(total, "correct" if ok else "wrong", last, parts or None)
