"""experiments/value_analysis.py: the metrics on hand-made numbers, and the whole analysis on a one-iteration
PPO run of the committed tiny model through the session's vLLM engine (4 states, K in {1, 2}, truth K = 8)."""

from __future__ import annotations

import json
import math
import statistics
import sys
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from rlreason.algo.vineppo import plan_steps
from rlreason.config import ConfigError, StepsConfig
from rlreason.learner.batch import pack, unpack
from rlreason.rollout import Episode
from tests.trainer import conftest as trainer_conftest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "experiments"))

import value_analysis  # noqa: E402
from value import estimates, metrics, states  # noqa: E402

make_cfg = trainer_conftest.make_cfg  # the fixture composing the real config tree (tests/trainer)
ARGS = ["--states", "4", "--k", "1", "2", "--k-truth", "8"]


# ----------------------------------------------------------------------------- pure functions
def test_split_estimates_fresh_samples_are_disjoint_and_truth_subsamples_are_the_references():
    rewards = [1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 1.0, 1.0, 1.0]
    fresh = estimates.split_estimates(rewards, 4, [1, 2], "fresh")
    assert fresh["truth"] == 0.75
    assert fresh["truth_se"] == pytest.approx(statistics.stdev(rewards[:4]) / 2)
    assert fresh["mc"] == {1: 0.0, 2: 0.5}  # rewards[4] and rewards[5:7]: none of the truth's
    same = estimates.split_estimates(rewards[:4], 4, [1, 2, 4], "truth")
    assert same["mc"] == {1: 1.0, 2: 0.5, 4: same["truth"]}  # K = K_truth on the same samples is the truth
    assert estimates.samples_needed(4, [1, 2], "fresh") == 7 and estimates.samples_needed(4, [1, 2], "truth") == 4
    with pytest.raises(ValueError):
        estimates.split_estimates(rewards[:6], 4, [1, 2], "fresh")


def test_summarize_mae_margin_ties_and_the_reference_rule():
    # Two states (0; 1, 2) and (3; 4, 5). Truth differences: 0.5 (pair 1, sure) and 0.1 (pair 2).
    values = {
        "truth": [0.5, 1.0, 0.5, 0.2, 0.3, 0.2],
        "truth_se": [0.0, 0.0, 0.0, 0.0, 0.05, 0.05],
        "right": [0.5, 0.9, 0.4, 0.2, 0.4, 0.1],  # both pairs in the truth's order
        "tie": [0.5, 0.7, 0.7, 0.2, 0.3, 0.3],  # ties both pairs
    }
    triples = [(0, 1, 2), (3, 4, 5)]
    # Default margin: 2 sqrt(0.05^2 + 0.05^2) = 0.141 > 0.1, so only the first pair counts.
    s = metrics.summarize(values, triples, ["right", "tie"], None)
    assert (s["pairs"], s["pairs_counted"], s["values"]) == (2, 1, 6)
    assert s["truth_se_mean"] == pytest.approx(0.1 / 6) and s["truth_se_max"] == 0.05
    right, tie = s["estimators"]["right"], s["estimators"]["tie"]
    assert right["mae"] == pytest.approx((0.1 + 0.1 + 0.1 + 0.1) / 6)
    assert right["mae_se"] == pytest.approx(statistics.stdev([0, 0.1, 0.1, 0, 0.1, 0.1]) / math.sqrt(6))
    assert right["rank_acc"] == 1.0 and right["rank_acc_se"] == 0.0
    assert tie["rank_acc"] == 0.5  # a tie scores 1/2 ...
    assert right["rank_acc_reference_rule"] == 1.0 and tie["rank_acc_reference_rule"] == 0.0  # ... the reference: wrong
    # A fixed margin below 0.1 counts both pairs; "wrong" inverts the second.
    values["wrong"] = [0.5, 0.9, 0.4, 0.2, 0.1, 0.4]
    s = metrics.summarize(values, triples, ["wrong"], 0.05)
    assert s["pairs_counted"] == 2 and s["estimators"]["wrong"]["rank_acc"] == 0.5
    assert s["estimators"]["wrong"]["rank_acc_se"] == pytest.approx(0.5 / math.sqrt(2))
    assert metrics.rank_score(0.3, -0.1) == 0.0 and metrics.rank_score(-0.3, -0.1) == 1.0


def test_multi_turn_seed_check_counts_a_block_per_turn(tmp_path):
    """A multi-turn run's continuations take mc seeds for every turn: what fits one turn may not fit 200."""
    args = value_analysis.parse([str(tmp_path), "--states", "64", "--questions", "4", "--k-truth", "256"])
    value_analysis.check(args, 8)
    value_analysis.check(args, 8, max_turns=6)  # 64 x 270 x 6 mc seeds
    with pytest.raises(ConfigError, match="seed phase 'mc'"):
        value_analysis.check(args, 8, max_turns=200)  # env.max_turns=null: up to rollout.max_new_tokens turns
    cfg = OmegaConf.create({"env": {"max_turns": None}, "rollout": {"max_new_tokens": 200}})
    assert value_analysis.max_turns(cfg) == 200 and value_analysis.max_turns(OmegaConf.merge(
        cfg, {"env": {"max_turns": 6}})) == 6


# ----------------------------------------------------------------------------- a real PPO run
@pytest.fixture(scope="module")
def ppo_run(make_cfg, vllm_engine, tmp_path_factory) -> Path:
    from rlreason.trainer.loop import train

    run = tmp_path_factory.mktemp("ppo-run")
    cfg = make_cfg("algo=ppo", "trainer.iterations=1", "trainer.eval_every=100", "trainer.eval_max_questions=2",
                   "trainer.eval_samples=1")
    train(cfg, run, engine=vllm_engine)
    (run / ".hydra").mkdir()
    OmegaConf.save(cfg, run / ".hydra" / "config.yaml", resolve=True)  # as Hydra writes it for a real run
    return run


@pytest.fixture(scope="module")
def analysis(ppo_run, vllm_engine, tmp_path_factory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("value-analysis")
    return value_analysis.run(value_analysis.parse([str(ppo_run), *ARGS, "-o", str(out)]), engine=vllm_engine), out


@pytest.mark.vllm
def test_analysis_writes_every_number_and_is_reproducible(analysis, ppo_run, vllm_engine, tmp_path):
    results, out = analysis
    assert json.loads((out / "value_analysis.json").read_text()) == results
    assert (out / "value_analysis.png").stat().st_size > 1000
    assert results["settings"]["k"] == [1, 2] and results["settings"]["k_truth"] == 8
    [ck] = results["checkpoints"]
    assert ck["iteration"] == 1
    c = ck["counts"]
    assert c["states_drawn"] == 4 and c["states"] + c["dropped"] == 4 and c["states"] >= 1
    assert c["continuations"] == c["prefixes"] * (8 + 1 + 2) and c["prefixes"] <= 3 * c["states"]
    sm = ck["summary"]
    assert list(sm["estimators"]) == ["critic", "MC-1", "MC-2"]
    assert sm["values"] == 3 * c["states"] and sm["pairs"] == c["states"] and 0 <= sm["pairs_counted"] <= sm["pairs"]
    for p in ck["prefixes"]:  # means of 0/1 rewards over 8, 1 and 2 samples
        assert p["truth"] * 8 == round(p["truth"] * 8) and p["MC-1"] in (0.0, 1.0) and p["MC-2"] in (0.0, 0.5, 1.0)
        assert p["truth_se"] == pytest.approx(math.sqrt(p["truth"] * (1 - p["truth"]) * 8 / 7 / 8))
    for s in ck["states"]:
        st, a1, a2 = (ck["prefixes"][i]["response"] for i in s["prefixes"])
        assert a1 != a2 and a1.startswith(st) and a2.startswith(st) and len(a1) > len(st)
    for e in sm["estimators"].values():
        assert e["mae"] is not None and 0 <= e["mae"]
    assert set(ck["timings"]) >= {"trajectories_s", "alternatives_s", "continuations_s", "critic_s", "total_s"}
    # Every sample has its own seed: a second run gives the same numbers.
    again = value_analysis.run(value_analysis.parse([str(ppo_run), *ARGS, "-o", str(tmp_path)]), engine=vllm_engine)
    assert again["checkpoints"][0]["prefixes"] == ck["prefixes"] and again["checkpoints"][0]["summary"] == sm


@pytest.mark.vllm
def test_states_end_at_step_boundaries_and_alternatives_are_one_distinct_step(ppo_run, vllm_engine):
    from rlreason.data.arith import generate_splits
    from rlreason.eval import load_weights
    from rlreason.rollout import Roller

    cfg = OmegaConf.load(ppo_run / ".hydra" / "config.yaml")
    tok = _tokenizer(cfg)
    steps = StepsConfig(**OmegaConf.to_container(cfg.data.steps))
    policy = ppo_run / "checkpoints" / "iter_000001" / "policy"
    vllm_engine.sync_weights(load_weights(str(policy)), vllm_engine.version + 1)
    roller = Roller(vllm_engine, tok, _Grader(), task="arith", template="{problem}\n", use_chat_template=False,
                    temperature=1.0, top_p=1.0, max_new_tokens=64)
    roller.version = vllm_engine.version
    questions, _ = generate_splits(6, 0, seed=3)
    episodes = [ep for g in roller(questions, 2) for ep in g]
    pool = states.boundary_states(episodes, tok, "arith", steps)
    assert pool and len({s.prefix.key for s in pool}) == len(pool)
    for s in pool:
        plan = plan_steps(s.trajectory, tok, "arith", steps)
        assert s.boundary in plan.starts[1:]  # an intermediate boundary: not the prompt, not the end
        assert s.prefix.response_ids == tuple(s.trajectory.response_ids[:s.boundary])
        assert s.prefix.text == s.trajectory.text[:plan.char_starts[plan.starts.index(s.boundary)]]
    chosen = pool[:4]
    states.draw_alternatives(vllm_engine, chosen, tok, task="arith", steps=steps, temperature=1.0, top_p=1.0,
                             max_new_tokens=64, stop=(), tries=8, seed=123, version=vllm_engine.version)
    assert any(s.actions for s in chosen)
    for s in chosen:
        for a in s.actions or ():
            n = len(s.prefix.response_ids)
            assert a.key[:len(s.prefix.key)] == s.prefix.key and len(a.response_ids) > n
            assert tok.eos_token_id not in a.response_ids
            # s + a is s and exactly one step more: segmented alone, no boundary falls inside a
            plan = plan_steps(Episode(a.question, list(a.prompt_ids), list(a.response_ids), [], a.text, "stop"),
                              tok, "arith", steps)
            assert not [b for b in plan.starts if n < b < len(a.response_ids)]
        if s.actions:
            assert s.actions[0].key != s.actions[1].key and 1 <= s.draws <= 8


@pytest.mark.vllm
def test_critic_is_read_where_the_learner_reads_it(ppo_run):
    """V(prompt + response[:j]) from critic_values equals the learner's value of response token j (the
    critic's forward on the whole episode, unpacked as Learner.values does), for every j at once."""
    cfg = OmegaConf.load(ppo_run / ".hydra" / "config.yaml")
    tok = _tokenizer(cfg)
    critic = estimates.load_critic(ppo_run / "checkpoints" / "iter_000001", "cpu")
    prompt = tok("3a+4*2-1\n")["input_ids"]
    response = tok("3a+4=7\n7b*2=4\n4c-1=3\n#### 3", add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    ep = Episode(None, prompt, response, [], "", "stop")
    batch = pack([ep], tok.pad_token_id)
    with torch.no_grad():
        learner_view = unpack(critic(batch.input_ids, batch.attention_mask), [ep])[0]
    ours = estimates.critic_values(critic, [prompt + response[:j] for j in range(len(response))], tok.pad_token_id,
                                   "cpu", batch_size=5)  # mixed lengths in a batch: the padding must not matter
    assert ours == pytest.approx(learner_view, abs=1e-5)
    assert max(learner_view) - min(learner_view) > 1e-3  # the values vary, so an index off by one would show


@pytest.mark.vllm
def test_bad_input_fails_before_any_compute(ppo_run, tmp_path, capsys):
    with pytest.raises(ConfigError, match=r"iteration\(s\) \[7\]"):
        value_analysis.run(value_analysis.parse([str(ppo_run), "--iterations", "7", "-o", str(tmp_path)]))
    other = tmp_path / "vine"
    (other / ".hydra").mkdir(parents=True)
    cfg = OmegaConf.load(ppo_run / ".hydra" / "config.yaml")
    cfg.algo.name = "vineppo"
    OmegaConf.save(cfg, other / ".hydra" / "config.yaml")
    with pytest.raises(SystemExit) as e:
        value_analysis.main([str(other), "-o", str(tmp_path)])
    assert e.value.code == 2 and "algo=vineppo run" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="seed phase 'mc'"):  # 3 x 1000 x (256 + 14) samples: more than its seeds
        value_analysis.check(value_analysis.parse([str(ppo_run), "--states", "1000"]))
    with pytest.raises(ConfigError, match="--k-truth"):
        value_analysis.check(value_analysis.parse([str(ppo_run), "--k", "9", "--k-truth", "4", "--mc-source", "truth"]))


def _tokenizer(cfg):
    import os

    from rlreason.model.load import resolve_model_path
    from rlreason.trainer.build import load_tokenizer

    return load_tokenizer(cfg, resolve_model_path(cfg.model, os.path.expanduser(cfg.cache_dir)))


class _Grader:
    """The states need no rewards."""

    def grade(self, responses, golds, truncated=None):
        from rlreason.reward.grader import Verdict

        return [Verdict(0.0, "wrong") for _ in responses]


@pytest.mark.vllm
def test_continuations_are_graded_against_the_question_as_vineppo_grades_them(vllm_engine, make_cfg):
    """A reward function grades from the question's record (Countdown has no gold answer string): the MC
    continuations must reach the grader as the Question, as in training, not as its `answer` string."""
    from rlreason.data.loaders import load_split
    from rlreason.reward.grader import Verdict

    question = load_split(make_cfg().data, "test")[0]
    seen: list = []

    class Recording:
        def grade(self, responses, golds, truncated=None):
            seen.extend(golds)
            return [Verdict(1.0, "correct") for _ in responses]

    prompt = tuple(vllm_engine.tokenizer.encode(question.problem + "\n"))
    prefix = states.Prefix(question, prompt, (), "")
    rewards, tokens = estimates.continuation_rewards(
        vllm_engine, Recording(), [prefix], n=2, temperature=1.0, top_p=1.0, max_new_tokens=16, stop=(), seed=0,
        version=vllm_engine.version)
    assert rewards == [[1.0, 1.0]] and tokens > 0
    assert seen == [question, question] and all(g is question for g in seen)


# ----------------------------------------------------------------------------- a multi-turn PPO run (env.cls)
COUNTER = Path(__file__).resolve().parents[1] / "envs" / "envs.py"  # reward 1 per action holding a "1", 3 turns


@pytest.fixture(scope="module")
def env_ppo_run(make_cfg, vllm_engine, tmp_path_factory) -> Path:
    from rlreason.trainer.loop import train

    run = tmp_path_factory.mktemp("env-ppo-run")
    cfg = make_cfg("algo=ppo", f"env.cls={COUNTER}:Counter", "trainer.iterations=1", "trainer.eval_every=100",
                   "trainer.eval_max_questions=2", "trainer.eval_samples=1")
    train(cfg, run, engine=vllm_engine)
    (run / ".hydra").mkdir()
    OmegaConf.save(cfg, run / ".hydra" / "config.yaml", resolve=True)
    return run


@pytest.mark.vllm
def test_env_run_is_analysed_per_turn_with_returns_to_go_and_the_learners_critic(env_ppo_run, vllm_engine,
                                                                                 tmp_path):
    """Turn starts of Counter's 3-turn episodes: MC values are returns-to-go (at most 3 - turn: one reward
    of at most 1 per turn left; the whole return would exceed it), continuations replay the environment
    without a mismatch, the critic is read on prompt + response up to the turn's start, and a rerun gives
    the same numbers."""
    argv = [str(env_ppo_run), "--states", "12", "--questions", "4", "--k", "1", "2", "--k-truth", "8"]
    results = value_analysis.run(value_analysis.parse([*argv, "-o", str(tmp_path / "a")]), engine=vllm_engine)
    [ck] = results["checkpoints"]
    c = ck["counts"]
    assert c["trajectories"] == 4 * 4 and c["states"] == min(12, c["candidate_states"]) and c["states"] >= 4
    assert c["continuations"] == c["states"] * (8 + 1 + 2) and c["replay_mismatch"] == 0 == c["env_failures"]
    assert results["settings"]["env"].endswith("envs.py:Counter")
    turns = {s["turn"] for s in ck["states"]}
    assert turns <= {0, 1, 2} and len(turns) >= 2
    assert set(ck["per_turn"]) == {"all", *map(str, turns)}
    assert sum(ck["per_turn"][str(t)]["states"] for t in turns) == ck["per_turn"]["all"]["states"] == c["states"]
    for s in ck["states"]:
        assert 0 <= s["truth"] <= 3 - s["turn"] and s["truth"] * 8 == round(s["truth"] * 8)
        assert s["MC-1"] <= 3 - s["turn"] and s["MC-1"] == round(s["MC-1"])
        assert (s["position"] == 0) == (s["turn"] == 0)
    assert any(s["truth"] > 0 for s in ck["states"])  # the tiny model writes digits: some turns pay
    row = ck["per_turn"]["all"]
    mae = [abs(s["critic"] - s["truth"]) for s in ck["states"]]
    assert row["estimators"]["critic"]["mae"] == pytest.approx(sum(mae) / len(mae))
    assert list(row["estimators"]) == ["critic", "MC-1", "MC-2"]
    # The critic at a turn start is the learner's value at that turn's first action token.
    cfg = OmegaConf.load(env_ppo_run / ".hydra" / "config.yaml")
    critic = estimates.load_critic(env_ppo_run / "checkpoints" / "iter_000001", "cpu")
    tok = _tokenizer(cfg)
    assert len({s["critic"] for s in ck["states"]}) > 1  # read at each state's own prefix
    prompt = tok("1+1\n" + "go\n")["input_ids"]
    action = tok("12\n", add_special_tokens=False)["input_ids"]
    obs = tok("n1\n", add_special_tokens=False)["input_ids"]
    ep = Episode(None, prompt, action + obs + action, [], "", "stop")  # Counter's turn, its reply, a turn
    batch = pack([ep], tok.pad_token_id)
    with torch.no_grad():
        learner_view = unpack(critic(batch.input_ids, batch.attention_mask), [ep])[0]
    [ours] = estimates.critic_values(critic, [prompt + action + obs], tok.pad_token_id, "cpu")
    assert ours == pytest.approx(learner_view[len(action) + len(obs)], abs=1e-5)
    again = value_analysis.run(value_analysis.parse([*argv, "-o", str(tmp_path / "b")]), engine=vllm_engine)
    assert again["checkpoints"][0]["states"] == ck["states"] and again["checkpoints"][0]["per_turn"] == ck["per_turn"]
    assert "| 1 | all |" in value_analysis.turns.markdown(results)
