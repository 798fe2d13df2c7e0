"""model=tiny_countdown: the committed checkpoint in sync with its config, SFT data graded by the checker,
its vocabulary, its start accuracy, and the config-hash resolution shared with the arith model."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from rlreason.data.countdown import CountdownSpec, generate_splits, problem_text
from rlreason.model import build as build_mod
from rlreason.model.load import committed_hash, config_hash, resolve_model_path
from rlreason.model.tasks import Item, Task, task_of
from rlreason.model.tiny import assets_dir, default_build, make_model, make_tokenizer
from rlreason.reward.countdown import countdown_reward
from rlreason.validate import validate
from tests.model.test_hf import compose_cfg

ASSETS = assets_dir("countdown")
INFO = json.loads((ASSETS / "build_info.json").read_text())
BUILD = default_build("countdown")
N_TRAIN = 300  # the first rows of the build's train split (the split is prefix-stable in n_train)


@pytest.fixture(scope="module")
def items() -> tuple[list[Item], list[Item]]:
    return task_of(BUILD).items({**BUILD, "n_train": N_TRAIN})


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(ASSETS)


def test_committed_checkpoint_matches_yaml() -> None:
    assert committed_hash(ASSETS) == config_hash(BUILD), "rerun: python -m rlreason.model.build --task countdown"
    assert INFO["build"] == BUILD and INFO["countdown_spec"]["use_all"] is False
    # The build's test split is data=countdown's: same generator defaults, sizes and seed.
    data = compose_cfg("data=countdown", "model=tiny_countdown").data.countdown
    assert (BUILD["n_test"], BUILD["n_train"], BUILD["data_seed"]) == (data.n_test, data.n_train, data.seed)
    assert INFO["countdown_spec"] == {k: data[k] for k in INFO["countdown_spec"]}


def test_recorded_start_has_headroom() -> None:
    greedy, sampled = INFO["greedy_acc"], INFO["sample8"]
    assert 0.15 <= greedy <= 0.50 and INFO["n_questions"] == 500
    assert sampled["pass_at_8"] >= 1.5 * greedy
    assert set(INFO["greedy_acc_by_level"]) == {"3", "4"}


def test_sft_solutions_pass_the_checker(items) -> None:
    train, _ = items
    rows, _ = generate_splits(N_TRAIN, BUILD["n_test"], CountdownSpec(), BUILD["data_seed"])
    assert [it.problem for it in train] == [problem_text(r) for r in rows]
    for it, row in zip(train, rows):
        assert it.solutions and len(set(it.solutions)) == len(it.solutions)
        for text in it.solutions:
            assert countdown_reward(text, {**row, "use_all": False})["correct"] == 1.0, text
            assert text.splitlines()[-1].startswith("#### ")
    several = sum(len(it.solutions) >= 2 for it in train) / len(train)
    assert several > 0.8, several  # the start policy has real choices between orders


def test_builder_refuses_a_solution_the_checker_rejects(tmp_path, monkeypatch) -> None:
    bad = Item("Q:25 3 2=56", ("25+3=28\n28*2=56\n#### (25+3)*2", "#### 25*3"), 3, lambda t: "25+3" in t)
    task = Task("countdown", CountdownSpec(), "", lambda build: ([bad], []), list)
    monkeypatch.setattr(build_mod, "task_of", lambda build: task)
    with pytest.raises(RuntimeError, match="1 gold solutions fail the checker"):
        build_mod.build(BUILD, tmp_path / "never")
    assert not (tmp_path / "never").exists()


def test_sft_draws_among_the_solutions(monkeypatch) -> None:
    drawn: list[str] = []
    encode = build_mod.encode
    monkeypatch.setattr(build_mod, "encode", lambda tok, it, response: drawn.append(response) or encode(tok, it, response))
    sols = ("3+2=5\n#### 3+2", "2+3=5\n#### 2+3", "#### 2+3")
    tok = make_tokenizer("countdown")
    model = make_model({**BUILD, "hidden_size": 32, "intermediate_size": 32, "num_hidden_layers": 1,
                        "num_attention_heads": 1, "num_key_value_heads": 1}, tok)
    build_mod.sft(model, tok, [Item("Q:3 2=5", sols, 2, bool)], {**BUILD, "sft_steps": 12, "sft_batch_size": 1},
                  progress=False)
    assert set(drawn) == set(sols)  # a fresh draw each time the instance comes up


def test_vocabulary_covers_prompts_and_solutions(items, tokenizer) -> None:
    train, test = items
    assert len(tokenizer) == INFO["vocab_size"] == len(make_tokenizer("countdown"))
    assert tokenizer.get_vocab() == make_tokenizer("countdown").get_vocab()
    newline = tokenizer.convert_tokens_to_ids("\n")
    texts = [f"{it.problem}\n{s}" for it in train for s in it.solutions] + [f"{it.problem}\n" for it in test]
    for text in texts:
        ids = tokenizer.encode(text)
        assert tokenizer.unk_token_id not in ids, text
        assert tokenizer.decode(ids, skip_special_tokens=True) == text
        assert ids.count(newline) == text.count("\n")  # VinePPO's steps end on token boundaries
    assert set("".join(texts)) <= set(task_of(BUILD).alphabet)


def test_rollouts_fit_the_context(items, tokenizer) -> None:
    cfg = compose_cfg("data=countdown", "model=tiny_countdown")
    validate(cfg)
    assert cfg.run_name == "vineppo-countdown-tiny_countdown-uniform-s0"
    train, test = items
    longest = max(len(tokenizer.encode(s, add_special_tokens=False)) + 1 for it in train for s in it.solutions)
    assert longest <= cfg.rollout.max_new_tokens
    longest_prompt = max(len(tokenizer.encode(f"{it.problem}\n")) for it in test)
    assert longest_prompt + cfg.rollout.max_new_tokens <= cfg.model.max_model_len


def test_committed_accuracy_reproduces(tokenizer, items) -> None:
    model = AutoModelForCausalLM.from_pretrained(ASSETS)
    assert model.config.vocab_size == len(tokenizer) and model.config.head_dim == 32
    assert sum(p.numel() for p in model.parameters()) == INFO["params"]
    torch.manual_seed(0)
    result = build_mod.evaluate(model, tokenizer, items[1][:100], samples=0, progress=False)
    assert abs(result["greedy_acc"] - INFO["greedy_acc"]) <= 0.10, (result["greedy_acc"], INFO["greedy_acc"])
    assert 0.10 <= result["greedy_acc"] <= 0.60


def test_resolve_picks_the_committed_checkpoint_then_the_cache(tmp_path, monkeypatch) -> None:
    cfg = SimpleNamespace(path="builtin:tiny-countdown", build=BUILD)
    assert resolve_model_path(cfg, tmp_path) == str(ASSETS)
    assert not list(tmp_path.iterdir())  # nothing built

    built: list[Path] = []

    def fake_build(build, out, replace=True):
        built.append(Path(out))
        Path(out).mkdir(parents=True)
        (Path(out) / "build_info.json").write_text(json.dumps({"hash": config_hash(build)}))

    monkeypatch.setattr(build_mod, "build", fake_build)
    other = {**BUILD, "sft_steps": BUILD["sft_steps"] + 1}
    path = resolve_model_path(SimpleNamespace(path="builtin:tiny-countdown", build=other), tmp_path)
    assert path == str(tmp_path / f"tiny-countdown-{config_hash(other)}") == str(built[0])
    assert resolve_model_path(SimpleNamespace(path="builtin:tiny-countdown", build=other), tmp_path) == path
    assert len(built) == 1  # the second resolution is a cache hit

    with pytest.raises(ValueError, match="for task 'arith'"):
        resolve_model_path(SimpleNamespace(path="builtin:tiny-countdown", build=default_build()), tmp_path)
    with pytest.raises(ValueError, match="for task 'countdown'"):
        resolve_model_path(SimpleNamespace(path="builtin:tiny-arith", build=BUILD), tmp_path)


def test_task_key_and_hashes() -> None:
    arith = default_build()
    assert "task" not in arith  # model=tiny predates the key: its hash (and committed checkpoint) stay
    assert config_hash({**arith, "task": "arith"}) == config_hash(arith) == committed_hash()
    assert config_hash({**BUILD, "task": "arith"}) != config_hash(BUILD)
    with pytest.raises(ValueError, match="model.build.task='chess'"):
        config_hash({**BUILD, "task": "chess"})
