"""The hidden-number game (rlreason.envs.guess): its rules, malformed and hostile actions, determinism and
replay; the scripted player's transcripts; and model=tiny_guess's start band played on the real vLLM engine."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from rlreason.envs.base import Environment, Step
from rlreason.envs.guess import GuessNumber
from rlreason.envs.guess_policy import scripted_game

ROOT = Path(__file__).parents[2]
REC = {"lo": 12, "hi": 47, "target": 30, "turns": 6}


def test_bisection_wins_and_replies_name_the_range_left() -> None:
    env = GuessNumber(REC, seed=0)
    assert isinstance(env, Environment) and env.reset() == "" and env.stop == ("\n",)
    steps = [env.step(a) for a in ("guess 29\n", "guess 38\n", "guess 33\n", "guess 31\n", "guess 30\n")]
    assert [s.observation for s in steps] == ["higher 30-47\n", "lower 30-37\n", "lower 30-32\n", "lower 30-30\n",
                                             "correct\n"]
    assert [s.reward for s in steps] == [{"correct": 0.0}] * 4 + [{"correct": 1.0}]
    assert [s.done for s in steps] == [False] * 4 + [True]
    with pytest.raises(RuntimeError, match="after the game ended"):
        env.step("guess 30\n")


def test_the_budget_ends_a_lost_game() -> None:
    env = GuessNumber({**REC, "turns": 2}, seed=0)
    assert env.step("guess 12\n") == Step("higher 13-47\n", {"correct": 0.0}, False)
    assert env.step("guess 13\n") == Step("higher 14-47\n", {"correct": 0.0}, True)


@pytest.mark.parametrize("action", [
    "", "\n", "guess\n", "guess thirty\n", "30\n", "guess 30 please\n", "guess -30\n", "guess 3O\n",
    "GUESS 30\n", "guess 0030\n", "guess " + "9" * 5000 + "\n", "guess 30\nguess 30\n", "\x00guess 30\n",
    "guess ３０\n", "x" * 100_000, None, 30, b"guess 30\n",
])
def test_a_malformed_or_hostile_action_is_a_wasted_turn(action) -> None:
    env = GuessNumber(REC, seed=0)
    step = env.step(action)
    assert step == Step("invalid 12-47\n", {"correct": 0.0}, False)
    assert env.step("guess 30\n").reward == {"correct": 1.0}  # the game goes on


def test_surrounding_blanks_and_a_missing_newline_are_fine() -> None:
    for action in ("guess 30", "  guess 30 \n", "guess 030\n"):
        assert GuessNumber(REC, 0).step(action).observation == "correct\n"


def test_a_guess_outside_the_range_is_answered_truthfully_and_narrows_nothing() -> None:
    env = GuessNumber(REC, seed=0)
    assert env.step("guess 5\n").observation == "higher 12-47\n"
    assert env.step("guess 999\n").observation == "lower 12-47\n"
    assert env.step("guess 40\n").observation == "lower 12-39\n"
    assert env.step("guess 45\n").observation == "lower 12-39\n"  # already excluded: no widening


@pytest.mark.parametrize("record, match", [
    ({"lo": 1, "hi": 10, "target": 11, "turns": 4}, "lo <= target <= hi"),
    ({"lo": 1, "hi": 10, "target": 5}, "turns must be an int"),
    ({"lo": 1, "hi": 10, "target": 5, "turns": 0}, "turns must be >= 1"),
    ({"lo": "1", "hi": 10, "target": 5, "turns": 4}, "lo must be an int"),
    ({"lo": 1, "hi": 10, "target": True, "turns": 4}, "target must be an int"),
    ([1, 10, 5, 4], "expected a dict"),
])
def test_a_bad_record_is_refused_before_play(record, match) -> None:
    with pytest.raises(ValueError, match=match):
        GuessNumber(record, seed=0)


def _random_actions(rng: random.Random, n: int) -> list[str]:
    return [rng.choice([f"guess {rng.randint(0, 120)}\n", "guess\n", f"guess {rng.randint(12, 47)}"])
            for _ in range(n)]


def test_deterministic_and_a_replay_reproduces_the_observations() -> None:
    rng = random.Random(0)
    for _ in range(200):
        rec = {"lo": 12, "hi": 47, "target": rng.randint(12, 47), "turns": 6}
        actions, observations = _random_actions(rng, 6), []
        env = GuessNumber(rec, seed=rng.randint(0, 10**6))
        for a in actions:
            step = env.step(a)
            observations.append(step.observation)
            if step.done:
                break
        # VinePPO's reset to a mid-episode state: a fresh instance (any seed) replaying a prefix of the actions
        for cut in range(len(observations) + 1):
            again = GuessNumber(rec, seed=cut)
            assert again.reset() == ""
            assert [again.step(a).observation for a in actions[:cut]] == observations[:cut]


def test_scripted_transcripts_are_games_the_environment_plays() -> None:
    rng, wins = random.Random(0), []
    for target in range(12, 48):
        rec = {**REC, "target": target}
        segments, won = scripted_game(rec, rng, p_wander=0.3, p_ignore=0.3)
        env = GuessNumber(rec, 0)
        actions = [t for t, own in segments if own]
        assert all(a.startswith("guess ") and a.endswith("\n") for a in actions)
        assert [env.step(a).observation for a in actions] == [t for t, own in segments if not own]
        assert len(actions) <= rec["turns"] and won == (segments[-1][0] == "correct\n")
        wins.append(won)
    assert 0 < sum(wins) < len(wins)  # noisy: some games lost
    perfect = [scripted_game({**REC, "target": t}, rng, 0.0, 0.0)[1] for t in range(12, 48)]
    assert all(perfect)  # plain bisection always wins within the budget


# --- model=tiny_guess's start on the real engine: a child process with its own vLLM engine ---

@pytest.mark.vllm
@pytest.mark.slow
def test_tiny_guess_starts_with_headroom_on_vllm() -> None:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", "rlreason.model.guess_eval", "--games", "200", "--seed", "0"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stderr[-4000:]
    figures = json.loads(proc.stdout[proc.stdout.index("{"):])
    print(json.dumps(figures))  # pytest -s: the figures docs/guess.md quotes
    assert figures["n_games"] == 200 and figures["engine"] == "vllm"
    assert 0.10 <= figures["sampled_success"] <= 0.60, figures
    assert figures["pass_at_8"] >= 1.5 * figures["greedy_success"], figures
