"""model=tiny_chat: the committed Qwen2 + byte-level BPE + ChatML stand-in (rlreason/model/chat.py), in sync
with its config, loaded through model=hf's code path, and end to end on its own vLLM engine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from rlreason.data.arith import ArithSpec, generate_splits
from rlreason.data.prompts import encode_prompts, format_prompt
from rlreason.model import build as build_mod
from rlreason.model.chat import CHAT_TEMPLATE, IM_END, IM_START, QWEN2_SPLIT
from rlreason.model.load import committed_hash, config_hash, resolve_model_path
from rlreason.model.tiny import assets_dir, default_build, tokenizer_for
from rlreason.validate import validate
from tests.model.test_hf import compose_cfg
from tests.test_segment import check_ends, check_offsets

ROOT = Path(__file__).resolve().parents[2]
ASSETS = assets_dir("chat")
INFO = json.loads((ASSETS / "build_info.json").read_text())
BUILD = default_build("chat")
_, TEST = generate_splits(0, BUILD["n_test"], ArithSpec(), BUILD["data_seed"])


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(ASSETS)


def chat_ids(tokenizer, problem: str) -> list[int]:
    return tokenizer.apply_chat_template([{"role": "user", "content": problem}], tokenize=True,
                                         add_generation_prompt=True, return_dict=False)


def test_committed_checkpoint_matches_yaml() -> None:
    assert committed_hash(ASSETS) == config_hash(BUILD), "rerun: python -m rlreason.model.build --model tiny_chat"
    assert INFO["build"] == BUILD and BUILD["kind"] == "chat" and "task" not in BUILD  # arith
    assert config_hash(BUILD) not in (config_hash(default_build()), committed_hash())  # not model=tiny's
    assert config_hash({**default_build(), "kind": "char"}) == committed_hash()  # the default kind, spelled out
    with pytest.raises(ValueError, match="model.build.kind='bpe'"):
        config_hash({**BUILD, "kind": "bpe"})


def test_recorded_start_has_headroom() -> None:
    assert INFO["n_questions"] == 500 and 0.10 <= INFO["greedy_acc"] <= 0.70, INFO["greedy_acc"]
    assert INFO["sample8"]["frac_partial"] > 0.3  # questions RL can learn from: solved sometimes


def test_a_qwen2_with_gqa_rope_and_tied_embeddings() -> None:
    config = AutoConfig.from_pretrained(ASSETS)
    assert config.architectures == ["Qwen2ForCausalLM"] and config.model_type == "qwen2"
    assert config.num_key_value_heads < config.num_attention_heads  # grouped-query attention
    assert config.tie_word_embeddings and config.rope_parameters["rope_type"] == "default"
    assert config.hidden_size // config.num_attention_heads == 32  # supported by vLLM's CPU attention
    from safetensors import safe_open

    with safe_open(str(ASSETS / "model.safetensors"), "pt") as f:
        names = set(f.keys())
    assert "model.embed_tokens.weight" in names and "lm_head.weight" not in names  # tied: stored once
    assert any(n.endswith("q_proj.bias") for n in names)  # Qwen2's attention biases
    size = sum(p.stat().st_size for p in ASSETS.iterdir())
    assert size < 4_000_000, size  # comparable to tiny-arith's 3.4 MB


def test_byte_level_bpe_tokenizer_with_chatml_tokens(tokenizer) -> None:
    spec = json.loads((ASSETS / "tokenizer.json").read_text())
    assert spec["model"]["type"] == "BPE" and spec["model"]["merges"]
    split, byte = spec["pre_tokenizer"]["pretokenizers"]
    assert split["pattern"]["Regex"] == QWEN2_SPLIT and byte["type"] == "ByteLevel"  # Qwen2's pre-tokenizer
    assert 256 < len(tokenizer) <= BUILD["vocab_size"] == 1000 and len(tokenizer) == INFO["vocab_size"]
    assert tokenizer.eos_token == IM_END and tokenizer.pad_token == "<|endoftext|>" and tokenizer.bos_token is None
    assert {IM_START, IM_END, "<|endoftext|>"} <= set(tokenizer.all_special_tokens)
    assert AutoConfig.from_pretrained(ASSETS).eos_token_id == tokenizer.eos_token_id
    assert json.loads((ASSETS / "generation_config.json").read_text())["eos_token_id"] == tokenizer.eos_token_id
    # Byte-level: any text round-trips, no <unk>
    for text in ("Q:8a+6b+8", "Find $\\frac{1}{2}$ of 10.\n\nSo the answer is 5.", "Ünïcødé ∑ 😀\t\r\n", "#### (25+3)*2"):
        assert tokenizer.decode(tokenizer.encode(text, add_special_tokens=False)) == text
    # The build is deterministic: the tokenizer trained again is the committed one
    fresh = json.loads(tokenizer_for(BUILD).backend_tokenizer.to_str())
    assert fresh["model"] == spec["model"] and fresh["pre_tokenizer"] == spec["pre_tokenizer"]


def test_chat_template_is_chatml_in_the_tokenizer_config(tokenizer) -> None:
    assert json.loads((ASSETS / "tokenizer_config.json").read_text())["chat_template"] == CHAT_TEMPLATE
    assert not (ASSETS / "chat_template.jinja").exists()
    user = [{"role": "user", "content": "Q:8a+6"}]
    assert tokenizer.apply_chat_template(user, tokenize=False, add_generation_prompt=True) == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nQ:8a+6<|im_end|>\n"
        "<|im_start|>assistant\n")
    own = [{"role": "system", "content": "Be brief."}, *user, {"role": "assistant", "content": "8a+6=4\n#### 4"}]
    assert tokenizer.apply_chat_template(own, tokenize=False) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nQ:8a+6<|im_end|>\n"
        "<|im_start|>assistant\n8a+6=4\n#### 4<|im_end|>\n")


def test_sft_trains_on_the_prompt_rl_sends_and_a_response_ending_in_im_end(tokenizer) -> None:
    q = TEST[7]
    prompt, response = build_mod.encode(tokenizer, q)
    assert prompt == chat_ids(tokenizer, q.problem)  # what the Roller sends (the vLLM test checks that side)
    assert prompt == encode_prompts([format_prompt(q, None, tokenizer, True)], tokenizer, True)[0]
    assert response[-1] == tokenizer.convert_tokens_to_ids(IM_END) and IM_END not in tokenizer.decode(response[:-1])
    assert tokenizer.decode(response[:-1]) == q.solution
    # The whole SFT sequence is the chat template's rendering of the conversation, token for token
    turn = [{"role": "user", "content": q.problem}, {"role": "assistant", "content": q.solution}]
    whole = tokenizer.apply_chat_template(turn, tokenize=True, return_dict=False)
    assert whole[: len(prompt) + len(response)] == prompt + response


def test_model_tiny_chat_config(tmp_path) -> None:
    cfg = compose_cfg("model=tiny_chat")
    validate(cfg)
    assert cfg.data.use_chat_template and cfg.model.path == "builtin:tiny-chat"
    assert cfg.run_name == "vineppo-arith-tiny_chat-uniform-s0"
    assert not compose_cfg("model=tiny_chat", "data.use_chat_template=false").data.use_chat_template
    assert not compose_cfg().data.use_chat_template  # model=tiny: unchanged
    assert compose_cfg("model=tiny_chat", config="eval").data.use_chat_template
    assert resolve_model_path(cfg.model, tmp_path) == str(ASSETS) and not list(tmp_path.iterdir())
    # model=hf's code path: the tokenizer checks and the context come from the resolved dir
    from rlreason.trainer.build import context_length, load_tokenizer

    tokenizer = load_tokenizer(cfg, str(ASSETS))
    assert tokenizer.pad_token == "<|endoftext|>" and context_length(cfg, str(ASSETS)) == 256
    longest = max(len(chat_ids(tokenizer, q.problem)) for q in TEST)
    assert longest + cfg.rollout.max_new_tokens <= cfg.model.max_model_len
    assert max(len(build_mod.encode(tokenizer, q)[1]) for q in TEST) <= cfg.rollout.max_new_tokens
    with pytest.raises(ValueError, match="builds builtin:tiny-chat"):
        resolve_model_path(SimpleNamespace(path="builtin:tiny-arith", build=BUILD), tmp_path)


def test_build_cli_builds_the_chat_model(tmp_path) -> None:
    out = tmp_path / "chat"
    build_mod.main(["--model", "tiny_chat", "--out", str(out), "sft_steps=2", "n_train=64", "n_test=4",
                    "num_hidden_layers=1"])
    info = json.loads((out / "build_info.json").read_text())
    assert info["build"]["kind"] == "chat" and info["n_questions"] == 4
    assert AutoConfig.from_pretrained(out).architectures == ["Qwen2ForCausalLM"]
    assert AutoTokenizer.from_pretrained(out).chat_template == CHAT_TEMPLATE


def test_committed_accuracy_reproduces(tokenizer) -> None:
    model = AutoModelForCausalLM.from_pretrained(ASSETS)
    result = build_mod.evaluate(model, tokenizer, TEST[:100], samples=0, progress=False)
    assert abs(result["greedy_acc"] - INFO["greedy_acc"]) <= 0.10, (result["greedy_acc"], INFO["greedy_acc"])


@pytest.mark.parametrize("text", [
    "8a+6=4\n4b+8=2\n#### 2",
    "8a+6=4 \n4b+8=2.\n\n#### 2",  # whitespace and punctuation before a newline: Qwen2 pre-tokens across a cut
    "é=4\nü+8=2\n#### 😀",  # multi-byte characters split over byte tokens
])
def test_states_fall_on_token_boundaries(tokenizer, text) -> None:
    ids = tokenizer.encode(text, add_special_tokens=False) + [tokenizer.eos_token_id]
    assert any(len(tokenizer.decode([t])) > 1 for t in ids)  # merged tokens in the response ("####")
    decoded, offsets = check_offsets(tokenizer, ids)
    assert decoded == text
    for end in check_ends(decoded, offsets, "arith"):  # a state never splits a token (nor a character)
        state = tokenizer.decode(ids[:end], skip_special_tokens=True)
        assert text.startswith(state) and "\ufffd" not in state


# --- end to end on the real vLLM engine: one child process, its own engine (tiny_chat_child.py) ---

@pytest.fixture(scope="module")
def e2e(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("tiny-chat-e2e")
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, str(Path(__file__).with_name("tiny_chat_child.py")), str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-6000:]
    return json.loads((out / "result.json").read_text())


@pytest.mark.vllm
@pytest.mark.slow
def test_e2e_prompt_is_exactly_the_chat_template(e2e) -> None:
    assert e2e["model_path"] == str(ASSETS) and e2e["use_chat_template"]
    assert e2e["prompts"]["roller"] == e2e["prompts"]["chat_template"]
    assert e2e["prompts"]["text"].startswith("<|im_start|>system\n")
    assert e2e["prompts"]["text"].endswith("<|im_end|>\n<|im_start|>assistant\n")


@pytest.mark.vllm
@pytest.mark.slow
def test_e2e_generation_stops_at_im_end_and_trains_on_it(e2e) -> None:
    stop = e2e["stop"]
    assert stop["eos"] == stop["im_end"]
    stopped = [ep for ep in stop["episodes"] if ep["finish"] == "stop"]
    assert len(stopped) >= 0.8 * len(stop["episodes"])
    for ep in stopped:
        assert ep["ids"][-1] == stop["im_end"] and stop["im_end"] not in ep["ids"][:-1]
        assert ep["text"] == ep["decoded"] and "<|im_end|>" not in ep["text"]
        # The stop token is a trained token: the learner scores it as the engine sampled it
        assert abs(ep["engine_last_logp"] - ep["learner_last_logp"]) < 1e-3, ep
    assert any(ep["reward"] == 1.0 for ep in stopped) and any(ep["reward"] == 0.0 for ep in stopped)


@pytest.mark.vllm
@pytest.mark.slow
def test_e2e_vineppo_states_are_the_step_texts(e2e) -> None:
    merged = 0
    for ep, st in zip(e2e["stop"]["episodes"], e2e["states"]):
        text, ends = ep["text"], st["ends"]
        assert ends[-1] == len(ep["ids"]) and all(a < b for a, b in zip(ends, ends[1:]))
        # Every state is a step boundary exactly: its tokens decode to the steps' text, nothing more
        assert st["decoded"][:-1] == [text[:b] for b in st["step_ends"][:-1]]
        assert st["decoded"][-1] == text
        assert st["char_starts"] == [0] + st["step_ends"][:-1]
        merged += sum(len(t) > 1 for t in st["tokens"])
    assert merged > 0  # BPE merges ("####") inside the step text
    assert e2e["mc_states"] > 0 and all(e2e["advantages"])


@pytest.mark.vllm
@pytest.mark.slow
def test_e2e_run_eval_grade_and_reload(e2e) -> None:
    run = e2e["run"]
    assert run["iterations"] == 2
    trained = [r for r in e2e["run_metrics"] if "train/reward" in r]
    assert [r["iteration"] for r in trained] == [1, 2]
    assert all(r["learner/logprob_mismatch"] < 1e-3 for r in trained)  # tied weights synced both ways
    ev = e2e["eval"]
    assert ev["metrics"]["questions"] == 16 and len(ev["rows"]) == 16 * 3
    assert ev["grade_rc"] == 0, ev["grade_stderr"]
    assert [(v["reward"], v["reason"]) for v in ev["verdicts"]] == [(r["reward"], r["reason"]) for r in ev["rows"]]
    assert all("<|im_end|>" not in r["response"] for r in ev["rows"])
    reload = e2e["reload"]
    assert reload["tied"] and "model.safetensors" in reload["files"] and "config.json" in reload["files"]
    assert reload["vllm"] == reload["hf"]  # the same greedy tokens, <|im_end|> included


def test_every_builtin_checkpoint_is_package_data() -> None:
    import tomllib

    from rlreason.model.tiny import YAMLS

    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["rlreason"]
    assert sorted(data) == sorted(f"model/assets/tiny-{key}/*" for key in YAMLS)  # an installed copy has them all


def test_a_tiny_chat_run_is_evaluated_on_its_chat_prompt(tmp_path) -> None:
    from omegaconf import OmegaConf

    from rlreason.config import ConfigError
    from rlreason.eval import check_prompt_format, evaluate_model, resolve_target
    from rlreason.trainer import checkpoint

    run = tmp_path / "vineppo-arith-tiny_chat-uniform-s0"
    (run / ".hydra").mkdir(parents=True)
    OmegaConf.save(compose_cfg("model=tiny_chat"), run / ".hydra" / "config.yaml")
    checkpoint.save(run / "checkpoints", 1, AutoModelForCausalLM.from_pretrained(ASSETS), {"iteration": 1})
    plain = compose_cfg("model=hf", f"model.path={run}", f"cache_dir={tmp_path}", config="eval")
    with pytest.raises(ConfigError, match="trained with data.use_chat_template=true: .* data.use_chat_template=true"):
        evaluate_model(plain, tmp_path / "out")  # before any compute
    assert not (tmp_path / "out").exists()
    chat = compose_cfg("model=hf", f"model.path={run}", f"cache_dir={tmp_path}", "data.use_chat_template=true",
                       config="eval")
    target = resolve_target(chat)
    check_prompt_format(chat, target)
    assert target.tokenizer == str(ASSETS)
