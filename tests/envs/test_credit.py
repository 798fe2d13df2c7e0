"""VinePPO's credit per turn: MC values at turn boundaries from continuations that replay and play on."""

import pytest

from rlreason.config import MCConfig, StepsConfig
from rlreason.envs.credit import assign_env_vineppo_advantages, continuation, states_of, step_rewards
from rlreason.seeds import SeedStream
from tests.envs.helpers import QUESTIONS, env_roller


@pytest.fixture
def engine(vllm_engine, initial_weights):
    vllm_engine.sync_weights(initial_weights.items(), 0)
    return vllm_engine


def test_turn_values_are_the_mean_of_the_continuations_returns(engine, tiny_tokenizer):
    roller = env_roller(engine, tiny_tokenizer, "Counter", budget=160)
    roller.seeds = SeedStream(0, 2)
    played = []
    original = roller.env.turns.play

    def spy(plays, **kw):  # keep the continuations the MC phase plays
        played.append((list(plays), kw))
        return original(plays, **kw)

    try:
        episodes = [ep for g in roller(QUESTIONS, 3) for ep in g]
        roller.env.turns.play = spy
        metrics = assign_env_vineppo_advantages(
            episodes, roller.env.turns, tiny_tokenizer, task="fn", k=3, temperature=1.0, top_p=1.0,
            steps=StepsConfig(), seeds=roller.seeds, version=0, mc=MCConfig(), grader=roller.grader)
    finally:
        roller.env.close()
    (plays, kw), = played  # one batched play for every continuation of every state
    assert kw["phase"] == "mc" and metrics["mc/replay_mismatch"] == 0
    multi = [ep for ep in episodes if ep.env.turns >= 2]
    assert multi, [ep.env.turns for ep in episodes]
    states = [(ep, s) for ep in episodes for s in states_of(ep, tiny_tokenizer, "fn", StepsConfig())]
    assert len(plays) == 3 * len(states)
    boundary = []
    for i, (ep, s) in enumerate(states):
        conts = plays[3 * i:3 * i + 3]
        # each continuation starts from the episode's own tokens up to the state, its recorded turns replayed
        assert all(c.response_ids[:s.position] == ep.response_ids[:s.position] for c in conts)
        assert all(c.transcript.actions[:s.turn] == ep.env.actions[:s.turn] for c in conts)
        value = sum(sum(c.transcript.turn_totals()[s.turn:]) for c in conts) / 3
        rewards = step_rewards(ep, states_of(ep, tiny_tokenizer, "fn", StepsConfig()))
        j = states_of(ep, tiny_tokenizer, "fn", StepsConfig()).index(s)
        # A_j = r_j + V(s_{j+1}) - V(s_j): the advantage at the state's first token reads V(s_j) back
        nxt = [st for st in states if st[0] is ep]
        v_next = 0.0
        if j + 1 < len(nxt):
            k = states.index(nxt[j + 1])
            v_next = sum(sum(c.transcript.turn_totals()[nxt[j + 1][1].turn:]) for c in plays[3 * k:3 * k + 3]) / 3
        assert ep.advantages[s.position] == pytest.approx(rewards[j] + v_next - value)
        if s.turn > 0 and s.chars == 0:
            boundary.append(value)
    assert boundary and "mc/turn_value/1" in metrics and "mc/turn_advantage/0" in metrics
    # observation tokens carry the advantage of their step but are masked: only action tokens train
    ep = multi[0]
    assert len(ep.advantages) == len(ep.response_ids)


def test_a_replay_that_does_not_reproduce_is_a_mismatch(engine, tiny_tokenizer):
    roller = env_roller(engine, tiny_tokenizer, "Counter", budget=160)
    try:
        episodes = [ep for g in roller(QUESTIONS[:1], 2) for ep in g]
        ep = next(e for e in episodes if e.env.turns >= 2)
        ep.env.observations[1] = "n7\n"  # as if the environment had answered otherwise when played
        state = next(s for s in states_of(ep, tiny_tokenizer, "fn", StepsConfig()) if s.turn == 1 and s.chars == 0)
        play = continuation(ep, state)
        roller.env.turns.play([play], temperature=1.0, top_p=1.0, version=None)
    finally:
        roller.env.close()
    assert play.transcript.end == "mismatch" and "recorded 'n7\\n'" in play.transcript.detail
    assert play.transcript.verdict(1.0).reason == "error"
