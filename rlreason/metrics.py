"""Every metric a run logs (metrics.jsonl in the run dir, and W&B with logger=wandb): name, unit, meaning.

The one list of them: docs/reference/metrics.md is generated from it (`python -m rlreason.reference`), and
tests/test_metrics.py (the names in the code) and tests/trainer/test_logged_metrics.py (what real runs log)
fail when a key matches no entry here. A `{placeholder}` in a name stands for one path segment or part of one
(`eval/mean@{n}`: eval/mean@16); a name without one matches itself only, and is looked up before any pattern.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache


@dataclass(frozen=True)
class Metric:
    name: str  # `time/{phase}`: {placeholders} stand for a part of the key
    unit: str  # fraction, count, tokens, seconds, reward, nats, ...
    meaning: str
    when: str = "every iteration"  # when it is logged (the option it needs, the iterations it appears at)


# What each prefix is about; a metric's prefix must be one of these (tests/test_metrics.py).
PREFIXES = {
    "train": "the iteration's training batch: its responses and their grades",
    "reward": "grading: failures to grade, and a reward function's components",
    "eval": "the held-out evaluation (every trainer.eval_every iterations, at 0 and at the last)",
    "adv": "the advantages the policy update uses",
    "mc": "VinePPO's Monte-Carlo value estimates (algo=vineppo)",
    "tree": "VinePPO's vine tree: the MC continuations trained on (algo.mc.tree=true)",
    "learner": "the policy (and critic) update: the mean over the iteration's optimizer steps (`_max`: the largest)",
    "curriculum": "which questions the curriculum chose, and what choosing cost",
    "async": "one step off (trainer.async_level=1): how far the batch's policy lags the learner's",
    "time": "wall-clock seconds",
    "sync": "the weight push into the engine",
    "env": "multi-turn episodes (env.cls): their turns and how they ended",
}

EVAL = "eval iterations"
VINEPPO = "algo=vineppo"
HISTORY = "curriculum=learnability_history, skip_zero_variance"
ENV = "env.cls"
ENV_VINEPPO = "env.cls with algo=vineppo"
SELECTION = "curricula that roll out to select (learnability, sfl, filter_groups)"

METRICS: tuple[Metric, ...] = (
    # train/
    Metric("train/reward", "reward", "mean reward of the batch's responses (with reward.overlong's penalty)"),
    Metric("train/success", "fraction", "share of the batch's responses graded correct"),
    Metric("train/response_tokens", "tokens", "mean response length"),
    Metric("train/truncated", "fraction", "share of responses cut at rollout.max_new_tokens"),
    # reward/
    Metric("reward/timeout", "count", "responses (training batch and eval) whose grading ran past "
           "reward.timeout_s; they score 0"),
    Metric("reward/error", "count", "responses (training batch and eval) whose grading raised; they score 0"),
    Metric("reward/{component}", "reward", "mean of a reward component over the batch's responses (those "
           "without it count 0): each key of reward.fn's dict, and `overlong` (reward.overlong's penalty)",
           "reward.fn returning a dict, or reward.overlong.penalty > 0"),
    # eval/
    Metric("eval/accuracy", "fraction", "the headline accuracy: eval/greedy, or eval/mean@n "
           "(trainer.eval_headline)", EVAL),
    Metric("eval/greedy", "fraction", "share of test questions answered correctly by greedy decoding",
           f"{EVAL}, trainer.eval_greedy=true"),
    Metric("eval/mean@{n}", "fraction", "mean accuracy over n = trainer.eval_samples samples per question at "
           "trainer.eval_temperature", EVAL),
    Metric("eval/maj@{n}", "fraction", "share of questions whose most frequent answer among the n samples "
           "is correct", EVAL),
    Metric("eval/pass@{n}", "fraction", "share of questions with at least one correct sample of n", EVAL),
    Metric("eval/reward/{component}", "reward", "a reward component's mean over the eval samples",
           f"{EVAL}, reward.fn returning a dict"),
    Metric("eval/samples", "table", "a few eval completions (problem, response, gold, reward); W&B only",
           f"{EVAL}, logger=wandb (logger.log_samples)"),
    # adv/
    Metric("adv/mean", "advantage", "mean advantage over the batch's response tokens (before whitening)"),
    Metric("adv/abs_mean", "advantage", "mean absolute advantage over the batch's response tokens"),
    Metric("adv/zero_variance_groups", "fraction", "share of questions whose responses all got the same "
           "reward: advantage 0, no gradient", "algo=grpo, rloo"),
    # mc/
    Metric("mc/states", "count", "states valued by MC (step boundaries, before deduplication)", VINEPPO),
    Metric("mc/unique_states", "count", "distinct states rolled out from (equal prefixes share their "
           "continuations)", VINEPPO),
    Metric("mc/dedup_ratio", "ratio", "mc/states over mc/unique_states", VINEPPO),
    Metric("mc/continuations", "count", "MC continuations generated", VINEPPO),
    Metric("mc/continuations_per_state", "count", "mean continuations per unique state (K; more with "
           "adaptive K)", VINEPPO),
    Metric("mc/rounds", "count", "rounds of continuations (1 with fixed K; adaptive K adds rounds)", VINEPPO),
    Metric("mc/tokens", "tokens", "tokens generated by the continuations", VINEPPO),
    Metric("mc/requested_tokens", "tokens", "the continuations' token budgets summed (what the engine was "
           "allowed to generate)", VINEPPO),
    Metric("mc/value_mean", "reward", "mean MC value of the unique states", VINEPPO),
    Metric("mc/steps_per_episode", "count", "mean steps per valued response (data.steps)", VINEPPO),
    Metric("mc/capped_states", "count", "states past data.steps.max_value_steps, given the response's own "
           "return instead of an MC value", VINEPPO),
    Metric("mc/skipped_episodes", "count", "responses given no MC (algo.mc.skip_uniform_groups)", VINEPPO),
    Metric("mc/uniform_groups", "fraction", "share of questions whose responses all got the same reward",
           VINEPPO),
    Metric("mc/uniform_group_abs_adv_share", "fraction", "share of the absolute advantage mass inside those "
           "questions: what skip_uniform_groups drops (0 when it is on)", VINEPPO),
    Metric("mc/turn_value/{t}", "reward", "mean MC value at the start of turn t (0-based, t < 8) over the "
           "episodes that reached it: the expected return-to-go there", ENV_VINEPPO),
    Metric("mc/turn_advantage/{t}", "reward", "mean over episodes of turn t's advantage (the sum of its steps' "
           "advantages)", ENV_VINEPPO),
    Metric("mc/replay_mismatch", "count", "continuations whose replay of the recorded actions gave other "
           "observations than recorded (a non-deterministic environment); each is an error, return 0", ENV_VINEPPO),
    Metric("mc/env_failures", "count", "continuations ended by an environment step's timeout or error",
           ENV_VINEPPO),
    Metric("mc/engine_s", "seconds", "this iteration's engine time writing the continuations' turns (the "
           "engine's calls, wall clock)", ENV_VINEPPO),
    Metric("mc/env_step_s", "seconds", "this iteration's wait for the environment workers on the continuations' "
           "steps (wall clock, replays included)", ENV_VINEPPO),
    Metric("mc/env_worker_s", "seconds", "the workers' own seconds on those jobs, summed over workers",
           ENV_VINEPPO),
    Metric("mc/env_replay_s", "seconds", "of mc/env_worker_s, rebuilding environments: constructor, reset() and "
           "the replayed recorded actions", ENV_VINEPPO),
    Metric("mc/env_replayed_actions", "count", "recorded actions replayed to rebuild the continuations' "
           "environments", ENV_VINEPPO),
    Metric("mc/env_step_jobs", "count", "environment steps the continuations asked for (replays not counted)",
           ENV_VINEPPO),
    # env/
    Metric("env/turns", "count", "mean turns (stepped actions) per episode of the batch", ENV),
    Metric("env/observation_tokens", "tokens", "mean observation tokens per episode (masked out of the loss)",
           ENV),
    Metric("env/end_{end}", "fraction", "share of the batch's episodes that ended so: done, max_turns, budget "
           "(rollout.max_new_tokens), timeout, error, mismatch (a replay that did not reproduce)", ENV),
    Metric("env/engine_s", "seconds", "this iteration's engine time writing the batch's turns (the engine's "
           "calls, wall clock)", ENV),
    Metric("env/step_s", "seconds", "this iteration's wait for the environment workers on the batch's resets and "
           "steps (wall clock)", ENV),
    Metric("env/worker_s", "seconds", "the workers' own seconds on those jobs, summed over workers", ENV),
    Metric("env/replay_s", "seconds", "of env/worker_s, rebuilding environments a worker did not hold (a step "
           "sent to another worker than the last one): constructor, reset(), replayed actions", ENV),
    Metric("env/replayed_actions", "count", "recorded actions replayed to rebuild those environments", ENV),
    Metric("env/step_jobs", "count", "environment steps the batch's episodes asked for (resets and replays not "
           "counted)", ENV),
    # tree/
    Metric("tree/eligible", "count", "MC continuations with a non-zero advantage", "algo.mc.tree=true"),
    Metric("tree/episodes", "count", "continuations trained on (at most algo.mc.tree_max)", "algo.mc.tree=true"),
    Metric("tree/tokens", "tokens", "their response tokens", "algo.mc.tree=true"),
    # learner/
    Metric("learner/pg_loss", "loss", "the clipped policy loss"),
    Metric("learner/ratio_mean", "ratio", "mean pi/pi_old over response tokens"),
    Metric("learner/clip_frac", "fraction", "share of tokens whose ratio was clipped"),
    Metric("learner/entropy", "nats", "mean token entropy of the policy on the batch"),
    Metric("learner/kl_ref", "nats", "k3 KL to the reference model (algo.kl_reduction)", "algo.kl_coef > 0"),
    Metric("learner/value_loss", "loss", "the critic's clipped value loss", "algo=ppo"),
    Metric("learner/critic_grad_norm", "norm", "the critic's gradient norm before clipping", "algo=ppo"),
    Metric("learner/grad_norm", "norm", "the policy's gradient norm before clipping (learner.grad_clip)"),
    Metric("learner/lr", "learning rate", "the learning rate, mean over the iteration's steps"),
    Metric("learner/logprob_mismatch", "nats", "mean |log pi_learner - log pi_engine| per token on the "
           "sampled responses (the first epoch): training-inference mismatch"),
    Metric("learner/logprob_mismatch_max", "nats", "the largest such gap on one token"),
    Metric("learner/tis_capped_frac", "fraction", "share of tokens whose importance weight hit algo.tis_cap",
           "algo.tis_cap set"),
    Metric("learner/tis_weight_mean", "ratio", "mean truncated importance weight per token", "algo.tis_cap set"),
    Metric("learner/skipped_update", "fraction", "share of steps skipped for a non-finite loss or gradient"),
    Metric("learner/ratio_skipped", "fraction", "share of steps whose policy step was skipped for a mean "
           "ratio above algo.ratio_threshold"),
    # curriculum/
    Metric("curriculum/rollouts_selection", "count", "responses generated to choose the batch"),
    Metric("curriculum/rollouts_train", "count", "responses the batch trains on"),
    Metric("curriculum/rollouts_reused", "count", "selection responses trained on instead of generated "
           "again"),
    Metric("curriculum/{set}/learnability", "p(1-p)", "mean learnability p(1-p) of the questions in the "
           "set (pool: the candidates, selected: the batch, buffer: SFL's buffer), from their rollouts or, "
           "for history curricula, from the stats store", f"{SELECTION}; {HISTORY}"),
    Metric("curriculum/{set}/hit_{i}_of_{n}", "fraction", "share of the set's questions with i of n "
           "responses correct", SELECTION),
    Metric("curriculum/{set}/all_solved", "fraction", "share of the set's questions all of whose responses "
           "were correct", SELECTION),
    Metric("curriculum/{set}/none_solved", "fraction", "share of the set's questions none of whose "
           "responses were correct", SELECTION),
    Metric("curriculum/selected/seen_frac", "fraction", "share of the batch with a history in the stats "
           "store's window", HISTORY),
    Metric("curriculum/selected/zero_variance_frac", "fraction", "share of the batch whose recent attempts "
           "were all right or all wrong", "curriculum=skip_zero_variance"),
    Metric("curriculum/skipped", "count", "questions skipped for all-equal recent attempts",
           "curriculum=skip_zero_variance"),
    Metric("curriculum/explore_frac", "fraction", "share of the batch drawn among unseen or stale questions",
           "curriculum=learnability_history"),
    Metric("curriculum/from_buffer", "fraction", "share of the batch drawn from SFL's buffer", "curriculum=sfl"),
    Metric("curriculum/buffer_age", "iterations", "iterations since SFL's buffer was refreshed",
           "curriculum=sfl"),
    Metric("curriculum/refill_rounds", "count", "extra sampling rounds to refill the batch",
           "curriculum=filter_groups"),
    Metric("curriculum/shortfall", "count", "questions the batch is short of mixed groups after the last "
           "round (topped up with uniform ones)", "curriculum=filter_groups"),
    # async/
    Metric("async/staleness", "iterations", "iterations between the weights that sampled the batch and "
           "the weights it updates (1 once running)", "trainer.async_level=1"),
    Metric("async/logprob_gap", "nats", "learner/logprob_mismatch at one step off: the behaviour policy's "
           "distance from pi_old", "trainer.async_level=1"),
    # time/
    Metric("time/selection", "seconds", "the curriculum's choice (its rollouts included), summed over the run"),
    Metric("time/rollout", "seconds", "generating the batch's responses, summed over the run"),
    Metric("time/mc", "seconds", "VinePPO's MC continuations, summed over the run", VINEPPO),
    Metric("time/advantages", "seconds", "advantages of the other algorithms, summed over the run",
           "algo=ppo, grpo, rloo"),
    Metric("time/learner", "seconds", "the policy update, summed over the run"),
    Metric("time/sync", "seconds", "pushing the weights into the engine, summed over the run"),
    Metric("time/grading", "seconds", "grading training responses, summed over the run (taken out of the "
           "phases it happened in)"),
    Metric("time/eval", "seconds", "evaluation (its grading included), summed over the run"),
    Metric("time/checkpoint", "seconds", "writing checkpoints, summed over the run", "from the first checkpoint on"),
    Metric("time/train_wall", "seconds", "training wall clock so far, evals and checkpoints left out"),
    Metric("time/sync_last_s", "seconds", "this iteration's weight push"),
    # sync/
    Metric("sync/peak_added_mib", "MiB", "GPU memory the weight push allocated on top of what was in use",
           "on GPUs"),
)


def _regex(name: str) -> re.Pattern[str]:
    return re.compile("".join("[^/]+" if part.startswith("{") else re.escape(part)
                              for part in re.split(r"(\{[^}]*\})", name)))


@cache
def _table() -> tuple[dict[str, Metric], list[tuple[re.Pattern[str], Metric]]]:
    exact = {m.name: m for m in METRICS if "{" not in m.name}
    patterns = [(_regex(m.name), m) for m in METRICS if "{" in m.name]
    return exact, patterns


def lookup(key: str) -> Metric | None:
    """The registry entry a logged key belongs to, or None."""
    exact, patterns = _table()
    if key in exact:
        return exact[key]
    return next((m for rx, m in patterns if rx.fullmatch(key)), None)


def overlaps(pattern: str) -> list[Metric]:
    """The entries a key pattern from the code can produce: in `pattern`, `{...}` stands for any text
    (an f-string's variable part); an entry's `{placeholder}` for any text without a slash."""
    return [m for m in METRICS if _unify(_tokens(pattern, True), _tokens(m.name, False))]


def _tokens(name: str, slashes: bool) -> tuple:
    """Literal characters, and a wildcard (True: it may span a slash) per {placeholder}."""
    out: list = []
    for part in re.split(r"(\{[^}]*\})", name):
        out += [slashes] if part.startswith("{") else list(part)
    return tuple(out)


def _unify(a: tuple, b: tuple) -> bool:
    """Whether some key matches both token patterns."""

    @cache
    def match(i: int, j: int) -> bool:
        if i == len(a) or j == len(b):
            return all(isinstance(t, bool) for t in a[i:] + b[j:])
        x, y = a[i], b[j]
        if isinstance(x, bool):  # a wildcard ends here, or takes one more character of b's
            return match(i + 1, j) or (isinstance(y, bool) or x or y != "/") and match(i, j + 1)
        if isinstance(y, bool):
            return match(i, j + 1) or (y or x != "/") and match(i + 1, j)
        return x == y and match(i + 1, j + 1)

    return match(0, 0)
