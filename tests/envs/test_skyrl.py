"""SkyRL-gym's own environments through rlreason's environment contract (rlreason/envs/skyrl.py): its gsm8k
env (single turn) and gsm8k_multi_turn (per-turn rewards, observations, its max_turns), with records as
rlreason's GSM8K loader and SkyRL's own parquet rows give them, and replay determinism."""

from __future__ import annotations

import pytest

pytest.importorskip("skyrl_gym")

from skyrl_gym.envs.aime.env import AIMEEnv  # noqa: E402
from skyrl_gym.envs.base_text_env import BaseTextEnv, BaseTextEnvStepOutput  # noqa: E402
from skyrl_gym.envs.gsm8k.env import GSM8kEnv  # noqa: E402
from skyrl_gym.envs.gsm8k.multi_turn_env import GSM8kMultiTurnEnv  # noqa: E402

from rlreason.data.loaders import parse_gsm8k  # noqa: E402
from rlreason.envs.skyrl import adapt, extras, render  # noqa: E402

GSM8K_ROW = {  # GSM8K's first train row, as the JSONL has it
    "question": "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
                "How many clips did Natalia sell altogether in April and May?",
    "answer": "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nNatalia sold 48+24 = <<48+24=72>>72 clips "
              "altogether in April and May.\n#### 72",
}
SKYRL_ROW = {  # the row SkyRL's examples/gsm8k/gsm8k_dataset.py writes for it
    "data_source": "openai/gsm8k",
    "prompt": [{"role": "user", "content": GSM8K_ROW["question"] + " Let's think step by step and output the "
                "final answer after \"####\"."}],
    "env_class": "gsm8k",
    "reward_spec": {"method": "rule", "ground_truth": "72"},
    "extra_info": {"split": "train", "index": 0},
}


def play(cls: type, record: dict, actions: list[str], seed: int = 0) -> list[tuple[str, float, bool]]:
    env = cls(record, seed)
    first = env.reset()
    return [(first, 0.0, False)] + [env.step(a) for a in actions]


@pytest.mark.parametrize("record", [parse_gsm8k(GSM8K_ROW, "row").row(), SKYRL_ROW], ids=["rlreason_gsm8k", "skyrl_row"])
def test_gsm8k_gold_scores_one_wrong_scores_zero(record):
    Env = adapt(GSM8kEnv)
    assert Env.stop == () and Env.__name__ == "SkyRL_GSM8kEnv"
    assert play(Env, record, ["48 + 24 = 72\n#### 72"]) == [("", 0.0, False), ("", 1.0, True)]
    assert play(Env, record, ["48 + 48 = 96\n#### 96"])[-1] == ("", 0.0, True)
    assert play(Env, record, ["seventy-two"])[-1] == ("", 0.0, True)
    assert Env(record, 0).max_turns == 1  # BaseTextEnv's default: a single-turn environment


def test_extras_as_skyrl_builds_them():
    row = parse_gsm8k(GSM8K_ROW, "row").row()
    got = extras(row)
    assert got["reward_spec"] == {"method": "rule", "ground_truth": "72"}
    assert got["extra_info"] == {} and got["question"] == row["question"]
    own = extras(SKYRL_ROW)  # a SkyRL row's own columns win; prompt and env_class are not extras
    assert own["reward_spec"] == SKYRL_ROW["reward_spec"] and own["extra_info"] == SKYRL_ROW["extra_info"]
    assert "prompt" not in own and "env_class" not in own
    assert extras({"answer": "1,234"})["reward_spec"]["ground_truth"] == "1,234"  # only a #### tail is cleaned
    assert extras({"answer": "x\n#### 1,234"})["reward_spec"]["ground_truth"] == "1234"
    assert "reward_spec" not in extras({"problem": "no gold"})


def test_aime_reads_reward_model():
    Env = adapt(AIMEEnv)
    record = {"problem": "What is 6 * 7?", "answer": "42"}
    assert play(Env, record, ["6 * 7 = 42\nAnswer: 42"])[-1][1:] == (1.0, True)  # its Minerva format
    assert play(Env, record, ["6 * 7 = 41\nAnswer: 41"])[-1][1:] == (-1.0, True)  # AIMEEnv's wrong is -1


def test_multi_turn_rewards_per_turn_and_observations():
    Env = adapt(GSM8kMultiTurnEnv)
    record = {**SKYRL_ROW, "env_class": "gsm8k_multi_turn"}
    env = Env(record, seed=3)
    assert env.max_turns == 5 and env.seed == 3
    assert env.reset() == ""
    obs, reward, done = env.step("I think it is\n#### 70")  # well formatted, wrong: 0.2 / 5
    assert (reward, done) == (pytest.approx(0.04), False)
    assert obs.startswith("\nPlease provide your step-by-step reasoning") and obs.endswith("'#### ANSWER'.\n")
    assert env.messages[0]["role"] == "user"
    assert env.step("no format at all") == (obs, 0.0, False)
    obs, reward, done = env.step("48 + 24\n#### 72")
    assert (obs, reward, done) == ("", 1.0, True)
    # the record's max_turns (SkyRL's extras) caps it; the last turn's prompt differs
    short = Env({**record, "max_turns": 2}, seed=0)
    assert short.max_turns == 2
    short.reset()
    obs, _, _ = short.step("#### 1")
    assert obs.startswith("\nNow provide only the final numeric answer")
    assert short.step("#### 2") == ("", pytest.approx(0.1), True)
    # a data=gsm8k record (no extra_info, no reward_spec: both filled in) runs it as well
    assert play(Env, parse_gsm8k(GSM8K_ROW, "row").row(), ["#### 72"])[-1] == ("", 1.0, True)


def test_replay_is_deterministic():
    """VinePPO resets an episode mid-way by building a new instance and replaying its actions."""
    Env = adapt(GSM8kMultiTurnEnv)
    actions = ["#### 70", "hmm", "#### 71", "#### 72"]
    first = play(Env, SKYRL_ROW, actions, seed=1)
    assert play(Env, SKYRL_ROW, actions, seed=1) == first
    assert play(Env, SKYRL_ROW, actions[:2], seed=1) == first[:3]
    assert sum(r for _, r, _ in first) == pytest.approx(0.04 + 0 + 0.04 + 1.0)


class Greeter(BaseTextEnv):
    """A SkyRL env whose init appends a message after the prompt (as one adding instructions would)."""

    def __init__(self, env_config=None, extras=None):
        super().__init__()
        self.max_turns = 2

    def init(self, prompt):
        return prompt + [{"role": "user", "content": "You have 2 tries."}], {"greeted": True}

    def step(self, action):
        self.turns += 1
        done = self.turns >= self.max_turns
        return BaseTextEnvStepOutput(observations=[] if done else [{"role": "tool", "content": "a"},
                                                                  {"role": "user", "content": "b"}],
                                     reward=1, done=done, metadata={})


class Rewriter(Greeter):
    def init(self, prompt):
        return [{"role": "system", "content": "new"}], {}


def test_init_messages_and_observations_as_text():
    env = adapt(Greeter)({"problem": "hi"}, 0)
    assert env.reset() == "\nYou have 2 tries.\n" and env.metadata == {"greeted": True}
    assert env.step("x") == ("\na\nb\n", 1.0, False)
    assert render([]) == ""
    with pytest.raises(ValueError, match="Rewriter.init rewrote the prompt"):
        adapt(Rewriter)({"problem": "hi"}, 0).reset()


def test_not_a_skyrl_env_and_bad_outputs():
    with pytest.raises(TypeError, match="is not a SkyRL-gym environment: it needs init"):
        adapt(dict)

    class Broken(Greeter):
        def step(self, action):
            return {"observations": [], "reward": "lots", "done": True}

    env = adapt(Broken)({"problem": "hi"}, 0)
    env.reset()
    with pytest.raises(TypeError, match="Broken.step returned reward 'lots'"):
        env.step("x")
    assert adapt(Greeter, stop=("</sql>",)).stop == ("</sql>",)
