import pytest

from rlreason.algo.vineppo import StepPlan, dedup_states, step_advantages
from rlreason.data.record import Question
from rlreason.rollout import Episode
from rlreason.seeds import SeedStream, sample_seed

Q = Question(id="q", problem="p", answer="1")


def ep(prompt, response, reward=1.0):
    return Episode(Q, prompt, response, [0.0] * len(response), "", "stop", reward)


def test_step_advantages_hand_computed():
    # V(s0)=0.5, V(s1)=0.75, V(s2)=1.0, terminal 0, reward 1 on the last step
    assert step_advantages([0.5, 0.75, 1.0], 1.0) == pytest.approx([0.25, 0.25, 0.0])
    # wrong answer: the last step pays the whole drop
    assert step_advantages([0.5, 0.25], 0.0) == pytest.approx([-0.25, -0.25])


def test_step_advantages_telescope_to_reward_minus_initial_value():
    values, reward = [0.3, 0.9, 0.1, 0.6], 1.0
    assert sum(step_advantages(values, reward)) == pytest.approx(reward - values[0])


def test_single_step_is_reward_minus_value():
    assert step_advantages([0.4], 1.0) == pytest.approx([0.6])


def test_dedup_shares_identical_prefixes_across_episodes():
    a = ep([1, 2], [5, 6, 7, 8])
    b = ep([1, 2], [5, 6, 9])
    c = ep([3], [5, 6])
    plans = [StepPlan([0, 2], [2, 4], [0, 0], 2), StepPlan([0, 2], [2, 3], [0, 0], 2), StepPlan([0], [2], [0], 1)]
    states, first, per_episode = dedup_states([a, b, c], plans)
    # a and b share the prompt state and the state after their identical first step; c has its own prompt.
    assert states == [[1, 2], [1, 2, 5, 6], [3]]
    assert per_episode == [[0, 1], [0, 1], [2]]
    assert first == [(0, 0), (0, 1), (2, 0)]


# --- the MC phase: per-state budgets, seeds, stop strings, the reference's state cap ---

class Recorder:
    """Wraps an engine (or answers itself) and keeps the per-state SamplingParams of each call."""

    def __init__(self, engine=None, text="x"):
        self.engine, self.text, self.calls = engine, text, []
        self.version = 0

    def continue_from(self, prefixes, params, version=None):
        self.calls.append((prefixes, list(params)))
        if self.engine is not None:
            return self.engine.continue_from(prefixes, params, version=version)
        from rlreason.engine.base import Completion
        return [[Completion([1], self.text, [0.0], "stop") for _ in range(p.n)] for p in params]


class ConstGrader:
    """Every continuation earns `value`."""

    def __init__(self, value):
        self.value = value

    def grade(self, texts, golds, truncated):
        from rlreason.reward.grader import Verdict
        return [Verdict(self.value, "correct" if self.value else "wrong") for _ in texts]


def line_episode(tokenizer, lines: int, reward: float, prompt=(1, 2)):
    text = "\n".join(f"{i}a+1={i + 1}" for i in range(lines)) + f"\n#### {lines}"
    ids = tokenizer.encode(text, add_special_tokens=False)
    return Episode(Q, list(prompt), ids, [0.0] * len(ids), text, "stop", reward)


def test_cap_gives_later_states_the_trajectorys_return(tiny_tokenizer):
    from rlreason.algo.vineppo import assign_vineppo_advantages, plan_steps
    from rlreason.config import StepsConfig

    e = line_episode(tiny_tokenizer, 6, reward=1.0)  # 6 steps: 5 lines, then the last line with `#### 6`
    engine = Recorder()
    m = assign_vineppo_advantages([e], engine, ConstGrader(0.25), tiny_tokenizer, task="arith", k=3,
                                  temperature=1.0, top_p=1.0, max_new_tokens=200,
                                  steps=StepsConfig(max_value_steps=2), seeds=SeedStream(0, 1), version=None)
    prefixes, params = engine.calls[0]
    assert len(prefixes) == 3 and m["mc/capped_states"] == 3  # s_0, s_1, s_2 estimated; s_3..s_5 not
    plan = plan_steps(e, tiny_tokenizer, "arith", StepsConfig(max_value_steps=2))
    assert len(plan.starts) == 6 and plan.estimated == 3
    # V = 0.25 at s_0..s_2, then the return 1.0 (reference: values filled from the end): A_2 = 1 - 0.25
    per_step = [e.advantages[a] for a in plan.starts]
    assert per_step == pytest.approx([0.0, 0.0, 0.75, 0.0, 0.0, 0.0])
    base = sample_seed(0, 1, "mc", 0)  # the iteration's mc block; state i: base + i * k
    assert [p.seed for p in params] == [base, base + 3, base + 6]


def test_each_state_asks_for_the_budget_it_has_left_and_the_stop_strings(tiny_tokenizer):
    from rlreason.algo.vineppo import assign_vineppo_advantages, plan_steps

    eps = [line_episode(tiny_tokenizer, 4, 1.0), line_episode(tiny_tokenizer, 3, 0.0, prompt=(3,))]
    engine = Recorder()
    m = assign_vineppo_advantages(eps, engine, ConstGrader(0.5), tiny_tokenizer, task="arith", k=2,
                                  temperature=1.0, top_p=1.0, max_new_tokens=64, steps=None, seeds=None,
                                  version=None, stop=("\n\n\nProblem:",))
    prefixes, params = engine.calls[0]
    starts = {tuple(ep.prompt_ids) + tuple(ep.response_ids[:s]): s for ep in eps
              for s in plan_steps(ep, tiny_tokenizer, "arith").starts}
    assert [p.max_tokens for p in params] == [64 - starts[tuple(x)] for x in prefixes]
    assert len({p.max_tokens for p in params}) > 2  # the budgets really differ per state
    assert all(p.stop == ("\n\n\nProblem:",) and p.seed is None for p in params)
    assert m["mc/requested_tokens"] == 2 * sum(p.max_tokens for p in params)


def test_per_state_budget_generates_fewer_tokens_on_the_real_engine(vllm_engine, tiny_tokenizer):
    """Same episodes, same seed: the full budget generates continuations past the trajectory's budget
    (graded truncated, thrown away); the per-state budget stops them there."""
    from rlreason.algo.vineppo import assign_vineppo_advantages

    eps = [line_episode(tiny_tokenizer, n, 1.0, prompt=tiny_tokenizer.encode("2a+3=", add_special_tokens=False))
           for n in (3, 5)]
    max_new = max(len(ep.response_ids) for ep in eps) + 4
    out = {}
    for per_state in (False, True):
        engine = Recorder(vllm_engine)
        m = assign_vineppo_advantages(eps, engine, ConstGrader(1.0), tiny_tokenizer, task="arith", k=2,
                                      temperature=1.0, top_p=1.0, max_new_tokens=max_new, steps=None, seeds=SeedStream(3, 1),
                                      version=vllm_engine.version, per_state_budget=per_state)
        out[per_state] = m
    assert out[True]["mc/requested_tokens"] < out[False]["mc/requested_tokens"]
    assert out[True]["mc/tokens"] <= out[False]["mc/tokens"]
    assert out[True]["mc/unique_states"] == out[False]["mc/unique_states"]


# --- the cost options (algo.mc) ---

def two_groups(tokenizer, rewards_a, rewards_b):
    qa, qb = Question(id="a", problem="p", answer="1"), Question(id="b", problem="p", answer="1")
    out = []
    for q, rewards, prompt in ((qa, rewards_a, (1, 2)), (qb, rewards_b, (3,))):
        for i, r in enumerate(rewards):
            e = line_episode(tokenizer, 2 + i, r, prompt=prompt)
            e.question = q
            out.append(e)
    return out


def assign(eps, tokenizer, engine, grader, **mc):
    from rlreason.algo.vineppo import assign_vineppo_advantages
    from rlreason.config import MCConfig

    tree = []
    m = assign_vineppo_advantages(eps, engine, grader, tokenizer, task="arith", k=2, temperature=1.0, top_p=1.0,
                                  max_new_tokens=200, steps=None, seeds=SeedStream(0, 1), version=None,
                                  mc=MCConfig(**mc), tree_out=tree)
    return m, tree


def test_v0_from_the_group_is_the_leave_one_out_mean_and_the_prompts_get_no_continuations(tiny_tokenizer):
    from rlreason.algo.vineppo import plan_steps

    eps = two_groups(tiny_tokenizer, [1.0, 0.0, 0.0, 1.0], [0.0, 1.0, 1.0])
    engine = Recorder()
    m, _ = assign(eps, tiny_tokenizer, engine, ConstGrader(0.25), v0="group")
    prefixes, _ = engine.calls[0]
    assert not {(1, 2), (3,)} & {tuple(p) for p in prefixes}  # s_0 of either question is never continued
    for e in eps:
        group = [x.reward for x in eps if x.question.id == e.question.id and x is not e]
        v0 = sum(group) / len(group)
        first_step = e.advantages[0]
        assert first_step == pytest.approx(0.25 - v0)  # A_0 = V(s_1) - V(s_0), V(s_1) from MC (0.25)
        assert len(plan_steps(e, tiny_tokenizer, "arith").starts) > 1
    assert m["mc/states"] == sum(len(plan_steps(e, tiny_tokenizer, "arith").starts) for e in eps)


def loo_baseline_given_own_outcome(p, n=8, keep=lambda rewards: True):
    """E[trajectory 0's v0=group baseline | its own reward, the group kept], exactly: every one of the 2^n
    outcome vectors of n Bernoulli(p) rollouts, weighted by its probability, through group_loo_values."""
    import itertools

    from rlreason.algo.vineppo import group_loo_values

    mass, total = {0.0: 0.0, 1.0: 0.0}, {0.0: 0.0, 1.0: 0.0}
    for rewards in itertools.product((0.0, 1.0), repeat=n):
        if not keep(rewards):
            continue
        pr = p ** sum(rewards) * (1 - p) ** (n - sum(rewards))
        mass[rewards[0]] += pr
        total[rewards[0]] += pr * group_loo_values([ep([1], [2], r) for r in rewards])[0]
    return {r: total[r] / mass[r] for r in mass}


@pytest.mark.parametrize("p", [0.2, 0.5, 0.7])
def test_v0_group_is_unbiased_only_when_the_group_is_not_chosen_by_its_own_rewards(p):
    """Unconditioned, the leave-one-out mean does not depend on the trajectory's own outcome (its
    baseline is p either way). Keep only mixed groups (filter_groups; learnability when its selection
    rollouts are the training group) and it does: a right trajectory's siblings are the group less one
    success, a wrong one's the group less one failure. RLOO's baseline is the same number, and GRPO's
    r - mean(group) is (N - 1)/N times RLOO's advantage, so they share it."""
    free = loo_baseline_given_own_outcome(p)
    assert free[1.0] == pytest.approx(p) and free[0.0] == pytest.approx(p)
    mixed = loo_baseline_given_own_outcome(p, keep=lambda rs: len(set(rs)) > 1)
    # the 7 siblings, given the group is mixed: not all right (own right) / not all wrong (own wrong)
    assert mixed[1.0] == pytest.approx((p - p ** 7) / (1 - p ** 7))
    assert mixed[0.0] == pytest.approx(p / (1 - (1 - p) ** 7))
    assert mixed[1.0] < p < mixed[0.0]
    half = loo_baseline_given_own_outcome(p, keep=lambda rs: sum(rs) == 4)  # LILO's favourite: 4 of 8
    assert half[1.0] == pytest.approx(3 / 7) and half[0.0] == pytest.approx(4 / 7)


def test_skip_uniform_groups_gives_zero_advantages_and_spends_no_mc_on_them(tiny_tokenizer):
    eps = two_groups(tiny_tokenizer, [1.0, 1.0, 1.0], [0.0, 1.0])
    engine = Recorder()
    m, _ = assign(eps, tiny_tokenizer, engine, ConstGrader(0.5), skip_uniform_groups=True)
    prefixes, _ = engine.calls[0]
    assert all(tuple(p[:1]) == (3,) for p in prefixes)  # only question b's states
    assert all(a == 0.0 for e in eps[:3] for a in e.advantages) and m["mc/skipped_episodes"] == 3
    assert any(a != 0.0 for e in eps[3:] for a in e.advantages)


class AlternatingGrader:
    """Continuations alternate right / wrong: every state is mixed after its first two."""

    def grade(self, texts, golds, truncated):
        from rlreason.reward.grader import Verdict
        return [Verdict(float(i % 2), "") for i in range(len(texts))]


def test_adaptive_k_and_the_tree_through_the_mc_phase(tiny_tokenizer):
    eps = two_groups(tiny_tokenizer, [1.0, 0.0], [0.0, 1.0])
    engine = Recorder()
    m, tree = assign(eps, tiny_tokenizer, engine, AlternatingGrader(), max_rollouts=6, new_rollouts=2, tree=True,
                     tree_max=5)
    assert len(engine.calls) == 3 and m["mc/rounds"] == 3 and m["mc/continuations_per_state"] == 6
    assert m["tree/eligible"] == 6 * m["mc/unique_states"] and len(tree) == m["tree/episodes"] == 5
    assert {tuple(t.prompt_ids) for t in tree} <= {tuple(p) for p in engine.calls[0][0]}


def test_cap_last_round_reaches_the_mc_phase(tiny_tokenizer):
    """K0 = 2, 4 new, cap 4: every state here is mixed after its first two, so it ends at 4 (default) or
    at 6 (cap_last_round=false, the reference's full last round)."""
    for cap_last_round, n in ((True, 4), (False, 6)):
        eps = two_groups(tiny_tokenizer, [1.0, 0.0], [0.0, 1.0])
        m, _ = assign(eps, tiny_tokenizer, Recorder(), AlternatingGrader(), max_rollouts=4, new_rollouts=4,
                      cap_last_round=cap_last_round)
        assert m["mc/rounds"] == 2 and m["mc/continuations_per_state"] == n
