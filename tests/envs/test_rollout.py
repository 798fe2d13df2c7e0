"""Rollouts with turns on the real engine (vLLM, the tiny model) and a deterministic test environment."""

import pytest

from rlreason.engine.base import SamplingParams
from rlreason.learner.batch import pack
from rlreason.seeds import SeedStream
from tests.envs.helpers import QUESTIONS, env_roller


@pytest.fixture
def engine(vllm_engine, initial_weights):
    vllm_engine.sync_weights(initial_weights.items(), 0)
    return vllm_engine


def test_observations_are_appended_as_tokens_and_masked(engine, tiny_tokenizer):
    roller = env_roller(engine, tiny_tokenizer, "Counter")
    roller.seeds = SeedStream(0, 1)
    try:
        groups = roller(QUESTIONS, 4)
    finally:
        roller.env.close()
    episodes = [ep for g in groups for ep in g]
    assert {ep.env.end for ep in episodes} <= {"done", "budget"} and any(ep.env.end == "done" for ep in episodes)
    # The cost timers (bench/multiturn.py): one step job per stepped action, the engine and the workers timed;
    # a take empties them.
    timing = roller.env.turns.take_timing()
    assert timing["env/step_jobs"] == sum(ep.env.turns for ep in episodes)
    assert timing["env/engine_s"] > 0 and timing["env/step_s"] > timing["env/worker_s"] > 0
    assert 0 <= timing["env/replay_s"] <= timing["env/worker_s"] and not any(k.startswith("mc/") for k in timing)
    assert roller.env.turns.take_timing() == {}
    for q, g in zip(QUESTIONS, groups):
        for ep in g:
            t = ep.env
            assert ep.prompt_ids == roller.prompt_ids(q) + tiny_tokenizer("go\n", add_special_tokens=False).input_ids
            assert len(ep.response_ids) <= 120 and len(ep.action_mask) == len(ep.response_ids) == len(ep.logprobs)
            # between two actions: exactly the tokens of the observation that followed the first, mask 0
            for i, ((s, e), (s2, _)) in enumerate(zip(t.spans, t.spans[1:])):
                assert ep.action_mask[s:e] == [1] * (e - s)
                obs = tiny_tokenizer(t.observations[i + 1], add_special_tokens=False).input_ids
                assert ep.response_ids[e:s2] == obs and ep.action_mask[e:s2] == [0] * len(obs)
                assert ep.logprobs[e:s2] == [0.0] * len(obs)
                assert t.observations[i + 1] == f"n{i + 1}\n"
            assert sum(ep.action_mask) == ep.action_tokens
            assert ep.reward == sum(t.rewards)  # the return: the turns' rewards summed
            assert ep.reason == ("truncated" if t.end == "budget" else "correct" if ep.reward >= 1 else "wrong")
            if t.end == "done":
                assert t.turns == 3 and ep.action_mask[-1] == 1  # the last observation is not appended
    # The trained tokens are the sampled ones: the first turn again from the same seed gives the same tokens.
    ep = episodes[0]
    (c,), = engine.continue_from([ep.prompt_ids], SamplingParams(n=1, temperature=1.0, max_tokens=120,
                                                                 stop=("\n",), seed=ep.env.seed))
    assert c.token_ids == ep.response_ids[:ep.env.spans[0][1]] or ep.env.end == "budget"
    # The learner's mask is the action mask: observation tokens are out of the loss, KL and entropy.
    batch = pack([ep], tiny_tokenizer.pad_token_id)
    p = len(ep.prompt_ids)
    assert batch.response_mask[0, p - 1:p - 1 + len(ep.response_ids)].tolist() == [float(m) for m in ep.action_mask]


def test_turn_cap_budget_and_components(engine, tiny_tokenizer):
    roller = env_roller(engine, tiny_tokenizer, "Echo", max_turns=2, budget=200)
    short = env_roller(engine, tiny_tokenizer, "Echo", budget=8)
    try:
        episodes = [ep for g in roller(QUESTIONS, 3) for ep in g]
        cut = [ep for g in short(QUESTIONS, 3) for ep in g]
    finally:
        roller.env.close()
        short.env.close()
    for ep in episodes:
        if ep.env.end != "budget":
            assert ep.env.end == "max_turns" and ep.env.turns == 2
            assert ep.components["correct"] == sum(r["correct"] for r in ep.env.rewards)
            assert ep.reason == ("correct" if ep.components["correct"] >= 0.5 else "wrong")
            assert ep.reward == pytest.approx(sum(r["correct"] + r["len"] for r in ep.env.rewards))
    assert all(ep.env.end == "budget" and len(ep.response_ids) <= 8 and ep.finish_reason == "length" for ep in cut)


def test_a_hung_step_is_a_timeout_verdict(engine, tiny_tokenizer):
    roller = env_roller(engine, tiny_tokenizer, "Hang", timeout_s=0.5, budget=200)
    try:
        episodes = [ep for g in roller(QUESTIONS[:1], 3) for ep in g]
    finally:
        roller.env.close()
    hung = [ep for ep in episodes if ep.env.end == "timeout"]
    assert hung, [ep.env.end for ep in episodes]
    assert all(ep.reason == "timeout" and ep.reward == 0.0 and ep.env.turns == 2 for ep in hung)
    assert roller.grader.take()["reward/timeout"] == len(hung)
