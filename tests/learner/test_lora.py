"""learner.lora (rlreason/learner/lora.py): only the adapters train, the KL's reference is the base with the
adapters disabled (no second model), the engine gets the merged weights under the base model's names, and
bad settings are refused before compute."""

from __future__ import annotations

import copy
import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from rlreason.config import AlgoConfig, ConfigError, LearnerConfig, LoraConfig
from rlreason.learner.batch import pack
from rlreason.learner.learner import Learner, token_logprobs
from rlreason.validate import validate
from tests.learner.test_faults import episodes
from tests.trainer import conftest as trainer_conftest

make_cfg = trainer_conftest.make_cfg


def lora_learner(model_dir: str, pad_id: int, kl_coef: float = 1e-2, **lora_kw) -> Learner:
    cfg = LearnerConfig(lr=1e-2, warmup_ratio=0.0, schedule="constant", epochs=1, minibatch_size=8,
                        micro_batch_size=8, lora=LoraConfig(r=8, **lora_kw))
    return Learner(model_dir, cfg, AlgoConfig(name="grpo", kl_coef=kl_coef), device="cpu", dtype=torch.float32,
                   total_updates=100, pad_id=pad_id, temperature=1.0)


def test_only_the_adapters_train_against_the_base_as_reference(tiny_model_dir, tiny_tokenizer):
    learner = lora_learner(tiny_model_dir, tiny_tokenizer.pad_token_id)
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    assert not isinstance(learner.ref, torch.nn.Module)  # no second copy of the weights
    adapters = {n for n, p in learner.policy.named_parameters() if p.requires_grad}
    assert adapters and all(".lora_A." in n or ".lora_B." in n for n in adapters)
    optimized = [p for g in learner.optimizer.param_groups for p in g["params"]]
    assert len(optimized) == len(adapters)
    frozen = {n: p.clone() for n, p in learner.policy.named_parameters() if not p.requires_grad}
    eps = episodes(8)
    first = learner.update(eps)
    second = learner.update(eps)
    assert first["kl_ref"] == pytest.approx(0.0, abs=1e-9)  # B = 0 at the start: the policy is the base
    assert second["kl_ref"] > 1e-4  # the adapters moved the policy away from it
    assert all(torch.equal(p, frozen[n]) for n, p in learner.policy.named_parameters() if not p.requires_grad)
    # the reference's log-probs are the base model's, exactly, while the policy's have moved
    batch = pack(eps, tiny_tokenizer.pad_token_id)
    with torch.no_grad():
        want, _ = token_logprobs(base, batch, 1.0)
        ref, _ = token_logprobs(learner.ref, batch, 1.0)
        policy, _ = token_logprobs(learner.policy, batch, 1.0)
    assert torch.equal(ref, want)
    assert (policy - want).abs().max() > 1e-3


def test_synced_weights_are_the_merged_model_under_the_base_names(tiny_model_dir, tiny_tokenizer, initial_weights):
    learner = lora_learner(tiny_model_dir, tiny_tokenizer.pad_token_id)
    for _ in range(2):
        learner.update(episodes(8))
    sent = dict(learner.named_weights())
    merged = copy.deepcopy(learner.policy).merge_and_unload().state_dict()
    assert sent.keys() == merged.keys() and set(initial_weights) <= sent.keys()
    assert all(torch.equal(sent[k], merged[k]) for k in sent)
    assert any(not torch.equal(sent[k], initial_weights[k]) for k in initial_weights)  # the adapters are in them
    assert [(n, s) for n, s, _ in learner.named_weights().specs()] == [(n, tuple(t.shape)) for n, t in sent.items()]
    # the policy itself is not merged: it still trains its adapters
    assert any(".lora_A." in n for n, _ in learner.policy.named_parameters())


@pytest.mark.parametrize("override, expected", [
    ("learner.lora.r=-1", "learner.lora.r=-1 must be >= 0"),
    ("learner.lora.dropout=1.0", "learner.lora.dropout=1.0 must be in [0, 1)"),
    ("learner.lora.alpha=0", "learner.lora.alpha=0.0 must be > 0"),
    ("learner.lora.target_modules=[]", "learner.lora.target_modules is empty"),
])
def test_bad_lora_settings_are_refused_before_compute(make_cfg, override, expected):
    with pytest.raises(ConfigError, match=expected.replace("[", r"\[").replace("(", r"\(").replace(")", r"\)")):
        make_cfg("learner.lora.r=8", override)


def test_lora_under_torchrun_is_accepted(make_cfg, monkeypatch):
    """FSDP2 over the adapters (tests/distributed/test_fsdp_lora.py) is no longer refused under torchrun."""
    cfg = make_cfg("learner.lora.r=8")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    validate(cfg)


def test_unknown_target_module_is_refused_naming_the_model_layers(tiny_model_dir, tiny_tokenizer):
    with pytest.raises(ConfigError, match=r"learner.lora.target_modules: \['qkv'\] are not linear layers"):
        lora_learner(tiny_model_dir, tiny_tokenizer.pad_token_id, target_modules=["qkv", "q_proj"])


@pytest.mark.vllm
def test_engine_logprobs_equal_the_learners_after_lora_updates(make_cfg, vllm_engine, tmp_path):
    """The real vLLM engine, synced in place with the merged weights after every update, samples with the
    learner's log-probs (learner/logprob_mismatch, fp32 on CPU), while the adapters move the policy."""
    from rlreason.trainer.loop import train

    cfg = make_cfg("algo=grpo", "trainer.iterations=3", "trainer.eval_every=100", "learner.lr=3e-3",
                   "learner.lora.r=8")
    train(cfg, tmp_path, engine=vllm_engine)
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if "learner/logprob_mismatch" in r]
    print([(r["learner/logprob_mismatch"], r.get("learner/kl_ref")) for r in rows])
    assert len(rows) == 3
    assert all(r["learner/logprob_mismatch_max"] < 1e-4 and r["learner/logprob_mismatch"] < 1e-5 for r in rows)
    assert rows[-1]["learner/kl_ref"] > 1e-6  # the engine's weights did move with the adapters
    policy = tmp_path / "checkpoints" / "iter_000003" / "policy"
    assert sorted(p.name for p in policy.iterdir() if p.suffix != ".md") == ["adapter_config.json",
                                                                               "adapter_model.safetensors"]


def test_export_of_a_lora_checkpoint_is_the_merged_policy_and_its_adapter(make_cfg, tmp_path):
    """python -m rlreason.distributed.export on a LoRA checkpoint: OUT is an HF model of the base's
    architecture holding exactly the weights the learner syncs to the engine, OUT/adapter the adapter; eval
    of the checkpoint goes through that export (its policy/ alone is no model)."""
    from omegaconf import OmegaConf
    from safetensors.torch import load_file

    from rlreason.distributed.export import export
    from rlreason.eval import resolve_target
    from rlreason.model.load import resolve_model_path
    from rlreason.trainer.loop import train

    cfg = make_cfg("engine=hf", "algo=grpo", "trainer.iterations=1", "trainer.eval_every=100",
                   "learner.lr=3e-3", "learner.lora.r=4")
    train(cfg, tmp_path / "run")
    ckpt = tmp_path / "run" / "checkpoints" / "iter_000001"
    base = resolve_model_path(cfg.model, cfg.cache_dir)
    out = export(ckpt, tmp_path / "out", base=base)
    learner = Learner(base, cfg.learner, cfg.algo, device="cpu", dtype=torch.float32, total_updates=1, pad_id=0,
                      temperature=1.0, init_path=str(ckpt / "policy"))
    want = dict(learner.named_weights())
    got = load_file(str(out / "model.safetensors"))
    assert set(got) <= set(want) and all(torch.equal(got[k], want[k]) for k in got)
    assert AutoModelForCausalLM.from_pretrained(out).config.model_type == "llama"
    assert (out / "adapter" / "adapter_model.safetensors").is_file()
    assert json.loads((out / "export.json").read_text())["lora"] is True
    (tmp_path / "run" / ".hydra").mkdir()
    OmegaConf.save(cfg, tmp_path / "run" / ".hydra" / "config.yaml")  # as `python -m rlreason.run` leaves it
    target = resolve_target(OmegaConf.create({"model": {"path": str(ckpt), "tokenizer": None},
                                              "cache_dir": cfg.cache_dir}))
    assert target.base == base and target.checkpoint == str(ckpt)


def test_ppo_critic_stays_a_full_model_of_its_own_beside_the_adapters(tiny_model_dir, tiny_tokenizer):
    """algo=ppo with learner.lora: the critic is today's separate value model, fully trained (docs/lora.md);
    the policy's optimizer still holds the adapters alone."""
    cfg = LearnerConfig(lr=1e-2, warmup_ratio=0.0, schedule="constant", epochs=1, minibatch_size=8,
                        micro_batch_size=8, lora=LoraConfig(r=4))
    learner = Learner(tiny_model_dir, cfg, AlgoConfig(name="ppo", kl_coef=1e-2), device="cpu", dtype=torch.float32,
                      total_updates=10, pad_id=tiny_tokenizer.pad_token_id, temperature=1.0)
    critic = list(learner.critic.parameters())
    assert all(p.requires_grad for p in critic)
    assert sum(len(g["params"]) for g in learner.critic_optimizer.param_groups) == len(critic)
    adapters = [p for g in learner.optimizer.param_groups for p in g["params"]]
    assert len(adapters) == sum(p.requires_grad for p in learner.policy.parameters())
    assert sum(p.numel() for p in adapters) < sum(p.numel() for p in critic) / 5
    before = [p.clone() for p in critic]
    metrics = learner.update(episodes(8))
    assert metrics["value_loss"] > 0 and any(not torch.equal(a, b) for a, b in zip(before, critic))


def test_adapters_train_under_gradient_checkpointing(tiny_model_dir, tiny_tokenizer):
    """model.gradient_checkpointing: the checkpointed blocks' frozen inputs still carry the adapters' gradients."""
    cfg = LearnerConfig(lr=1e-2, warmup_ratio=0.0, schedule="constant", epochs=1, minibatch_size=8,
                        micro_batch_size=8, lora=LoraConfig(r=4))
    learner = Learner(tiny_model_dir, cfg, AlgoConfig(name="grpo", kl_coef=0.0), device="cpu", dtype=torch.float32,
                      total_updates=10, pad_id=tiny_tokenizer.pad_token_id, temperature=1.0,
                      gradient_checkpointing=True)
    metrics = learner.update(episodes(8))
    assert metrics["grad_norm"] > 0
    assert all(p.abs().max() > 0 for n, p in learner.policy.named_parameters() if n.endswith("lora_B.default.weight"))


def test_unknown_target_module_is_refused_before_the_engine_starts(make_cfg, tmp_path, monkeypatch):
    import rlreason.engine
    from rlreason.trainer.build import build

    def heavy(*args, **kwargs):
        raise AssertionError("the engine started before learner.lora.target_modules was checked")

    monkeypatch.setattr(rlreason.engine, "make_engine", heavy)
    with pytest.raises(ConfigError, match=r"learner.lora.target_modules: \['c_attn'\] are not linear layers"):
        build(make_cfg("engine=hf", "algo=grpo", "learner.lora.r=4", "learner.lora.target_modules=[c_attn]"),
              tmp_path)
