"""The computed memory figures (docs/scaling.md) rest on a parameter count: it must be the model's."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM

from rlreason.distributed.memory import estimate, kv_bytes_per_token, parameters, root_parameters

TINY = Path(__file__).resolve().parents[2] / "rlreason" / "model" / "assets" / "tiny-arith"
DEEPSEEK = {"hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 30, "vocab_size": 102400,
            "num_attention_heads": 32, "num_key_value_heads": 32}  # DeepSeekMath 7B's config.json


def test_parameter_count_is_the_models():
    config = json.loads((TINY / "config.json").read_text())
    model = AutoModelForCausalLM.from_pretrained(TINY, dtype=torch.float32)
    assert parameters(config)[0] == sum(p.numel() for p in model.parameters())
    tied = config | {"tie_word_embeddings": True}
    assert parameters(config)[0] - parameters(tied)[0] == config["vocab_size"] * config["hidden_size"]


def test_sharding_divides_the_training_state_and_a_7b_needs_several_gpus():
    one, eight = (estimate(DEEPSEEK, gpus=g, micro_batch=4, seq=1300) for g in (1, 8))
    assert round(one["parameters_billion"], 2) == 6.91
    assert one["adam"] == 8 * eight["adam"] and one["logits"] == eight["logits"]
    assert not one["fits"] and eight["fits"]
    assert estimate(DEEPSEEK, gpus=8, micro_batch=4, seq=1300, offload_ref=True)["reference_bf16"] == 0


def test_the_root_unit_is_what_lies_outside_the_decoder_layers():
    """FSDP2's root unit (kept gathered through the backward) is the embeddings, final norm and head."""
    config = json.loads((TINY / "config.json").read_text())
    model = AutoModelForCausalLM.from_pretrained(TINY, dtype=torch.float32)
    outside = sum(p.numel() for name, p in model.named_parameters() if ".layers." not in name)
    assert root_parameters(config) == outside
    sharded, single = (estimate(DEEPSEEK, gpus=g, micro_batch=4, seq=1300) for g in (8, 1))
    assert round(sharded["root_unit"], 1) == 4.7 and sharded["autocast_copies"] == 0  # bf16 params + fp32 grads
    assert single["root_unit"] == 0 and round(single["autocast_copies"], 1) == 12.9  # no FSDP: autocast's copies
    terms = ("weights_fp32", "grads_fp32", "adam", "reference_bf16", "logits", "activations", "gathered_layers",
             "root_unit", "autocast_copies", "runtime", "critic_state", "engine_in_update")
    assert abs(sharded["update_peak"] - sum(sharded[k] for k in terms)) < 1e-9
    assert sharded["runtime"] > single["runtime"]  # NCCL's buffers
    ppo = estimate(DEEPSEEK, gpus=8, micro_batch=4, seq=1300, critic=True)
    n, head = parameters(DEEPSEEK)[0], DEEPSEEK["vocab_size"] * DEEPSEEK["hidden_size"]
    assert ppo["critic_state"] == pytest.approx(2 * sharded["adam"] * (n - head) / n)  # 16 B/param, no LM head
    world_one = estimate(DEEPSEEK, gpus=1, micro_batch=4, seq=1300, fsdp=True)  # FSDP2 at world size 1
    assert world_one["root_unit"] == sharded["root_unit"] and world_one["autocast_copies"] == 0


def test_without_sleep_mode_the_engine_stays_resident_through_the_update():
    """engine.sleep_mode is off by default: the engine's whole budget sits beside the update. A 7B on 4 GPUs
    fits only with sleep mode (~49 GiB in the update asleep, ~81 awake); generation is the same either way."""
    for gpus in (1, 4, 8):
        asleep, awake = (estimate(DEEPSEEK, gpus=gpus, micro_batch=4, seq=1300, sleep_mode=s) for s in (True, False))
        assert asleep["engine_in_update"] == 0 and awake["engine_in_update"] == awake["engine"] == 32.0
        assert awake["update_peak"] == pytest.approx(asleep["update_peak"] + 32.0)
        assert awake["generation_peak"] == asleep["generation_peak"]
    four = {s: estimate(DEEPSEEK, gpus=4, micro_batch=4, seq=1300, sleep_mode=s) for s in (True, False)}
    assert four[True]["fits"] and not four[False]["fits"]
    assert round(four[True]["update_peak"], 1) == 48.7 and round(four[False]["update_peak"], 1) == 80.7
    assert estimate(DEEPSEEK, gpus=4, micro_batch=4, seq=1300) == four[False]  # the default: engine.sleep_mode's


def test_the_command_line_takes_sleep_mode(tmp_path, capsys, monkeypatch):
    from rlreason.distributed import memory

    config = tmp_path / "config.json"
    config.write_text(json.dumps(DEEPSEEK))
    peaks = {}
    for flag in ([], ["--sleep-mode"]):
        monkeypatch.setattr("sys.argv", ["memory", str(config), "--gpus", "4", "--micro-batch", "4", "--seq", "1300",
                                         *flag])
        memory.main()
        peaks[bool(flag)] = json.loads(capsys.readouterr().out)["update_peak"]
    assert peaks == {False: 80.72, True: 48.72}  # rounded to 2 places


def test_a_7b_engine_at_40_percent_is_preemption_bound():
    """KV cache left in the engine's budget: ~40k tokens, ~31 episodes of 1,300 tokens against 512 asked."""
    est = estimate(DEEPSEEK, gpus=8, micro_batch=4, seq=1300)
    assert kv_bytes_per_token(DEEPSEEK) == 2 * 30 * 32 * 128 * 2
    assert 35_000 < est["kv_cache_tokens"] < 45_000 and 25 < est["kv_sequences"] < 35
    assert est["preemption_bound"] == 1.0 and est["engine_fraction_for_max_num_seqs"] > 1
    tp2 = estimate(DEEPSEEK, gpus=8, micro_batch=4, seq=1300, tensor_parallel=2)
    assert tp2["kv_sequences"] > 2 * est["kv_sequences"]  # half the weights and half of each token per GPU
    assert not estimate(DEEPSEEK, gpus=8, micro_batch=4, seq=1300, max_num_seqs=16)["preemption_bound"]
    assert round(est["host_load_per_rank"], 1) == 25.7  # one full fp32 model at a time, before sharding it


@pytest.mark.vllm
def test_kv_bytes_per_token_is_what_vllm_allocates(vllm_engine, tiny_model_dir):
    """vLLM's own KV cache of 256 MiB (the CPU default here) holds as many tokens as the formula says."""
    config = json.loads((Path(tiny_model_dir) / "config.json").read_text())
    cache = vllm_engine.llm.llm_engine.vllm_config.cache_config
    tokens = cache.num_gpu_blocks * cache.block_size
    expected = (256 << 20) / kv_bytes_per_token(config, dtype_bytes=4)  # the CPU engine runs float32
    assert abs(tokens - expected) <= cache.block_size, (tokens, expected)


def test_lora_counts_the_adapters_peft_builds_and_drops_the_reference_and_most_adam_state():
    from peft import LoraConfig, get_peft_model

    from rlreason.distributed.memory import lora_parameters

    config = json.loads((TINY / "config.json").read_text())
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(TINY, dtype=torch.float32),
                           LoraConfig(r=8, target_modules=targets))
    assert lora_parameters(config, 8) == sum(p.numel() for p in model.parameters() if p.requires_grad)
    full, lora = (estimate(DEEPSEEK, gpus=1, micro_batch=4, seq=1300, lora_rank=r) for r in (0, 16))
    assert lora["reference_bf16"] == 0 and full["reference_bf16"] > 12
    assert lora["adam"] < full["adam"] / 100 and lora["weights_fp32"] > full["weights_fp32"]
    assert full["update_peak"] - lora["update_peak"] > 12 * 7  # gradients + Adam (12 B/param) + the reference


def test_a_7b_with_lora_fits_one_gpu_where_full_fine_tuning_needs_four():
    """The memory table's LoRA rows (docs/scaling.md, docs/lora.md), engine asleep in the update (the presets):
    full fine-tuning fits 4 GPUs, not 2 with room for the runtime, not 1; learner.lora.r=16 fits 1. Under
    FSDP the LoRA root unit is gathered bf16 only (frozen: no fp32 gradient)."""
    def run(gpus, rank, sleep=True):
        return estimate(DEEPSEEK, gpus=gpus, micro_batch=4, seq=1300, lora_rank=rank, sleep_mode=sleep)

    assert [bool(run(g, 0)["fits"]) for g in (1, 4)] == [False, True]
    assert bool(run(1, 16)["fits"]) and round(run(1, 16)["update_peak"], 1) == 53.0
    assert not run(1, 16, sleep=False)["fits"] and run(2, 16, sleep=False)["fits"]  # engine awake: 2 GPUs
    assert run(8, 16)["root_unit"] == pytest.approx(run(8, 0)["root_unit"] / 3)  # bf16 only, no fp32 gradient
