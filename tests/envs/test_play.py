"""rlreason.envs.play: episodes played turn by turn through an engine keep the exact sampled tokens, append
the observations' tokens, replay, and reproduce under the same seed (transformers engine: fast here; the
vLLM band is tests/envs/test_guess.py's)."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from rlreason.config import EngineConfig
from rlreason.data.guess import generate_splits, problem_text
from rlreason.engine import make_engine
from rlreason.envs.guess import GuessNumber
from rlreason.envs.play import Episode, play, success_figures
from rlreason.model.build import prompt_ids
from rlreason.model.tiny import assets_dir

ASSETS = str(assets_dir("guess"))


@pytest.fixture(scope="module")
def setup():
    tok = AutoTokenizer.from_pretrained(ASSETS)
    engine = make_engine(EngineConfig(name="hf", hf_batch_size=64), ASSETS, tok, dtype="float32", seed=0, max_model_len=256)
    records = generate_splits(0, 12)[1]
    yield engine, tok, records, [prompt_ids(tok, problem_text(r)) for r in records]
    engine.close()


def test_episodes_are_exact_transcripts_that_replay(setup) -> None:
    engine, tok, records, prompts = setup
    episodes = play(engine, tok, GuessNumber, records, prompts, samples=2, temperature=1.0, seed=3)
    for rec, prompt, group in zip(records, prompts, episodes):
        for e in group:
            assert e.done and 1 <= len(e.actions) <= rec["turns"]
            assert e.ids[:len(prompt)] == prompt
            text = tok.decode(e.ids[len(prompt):])
            assert text == "".join(a + o for a, o in zip(e.actions, e.observations))
            env = GuessNumber(rec, 0)
            assert [env.step(a).observation for a in e.actions] == e.observations
            assert e.success == (e.observations[-1] == "correct\n")
    again = play(engine, tok, GuessNumber, records, prompts, samples=2, temperature=1.0, seed=3)
    assert [[e.actions for e in g] for g in again] == [[e.actions for e in g] for g in episodes]


def test_success_follows_the_correct_component_or_the_return() -> None:
    won = Episode(None, [], rewards=[{"correct": 0.0}, {"correct": 1.0}])
    lost = Episode(None, [], rewards=[{"correct": 0.0, "format": 1.0}])
    assert won.success and not lost.success and Episode(None, [], rewards=[0.5, 0.5]).success
    figures = success_figures([[won], [lost]], [[won, lost], [lost, lost]])
    assert figures == {"n_games": 2, "greedy_success": 0.5, "sampled_success": 0.25, "pass_at_2": 0.5,
                       "frac_partial": 0.5}
