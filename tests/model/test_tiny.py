"""The tiny default model: committed checkpoint in sync with its config, tokenizer, build, caching."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from rlreason.data.arith import ArithSpec, generate_splits
from rlreason.model import build as build_mod
from rlreason.model.load import committed_hash, config_hash, resolve_model_path
from rlreason.model.tiny import ASSETS, default_build, random_tiny_model

INFO = json.loads((ASSETS / "build_info.json").read_text())
_, TEST = generate_splits(0, INFO["build"]["n_test"], ArithSpec(), INFO["build"]["data_seed"])


def test_committed_checkpoint_matches_yaml() -> None:
    # Editing conf/model/tiny.yaml without rebuilding would otherwise ship stale weights.
    assert committed_hash() == config_hash(default_build()), "rerun: python -m rlreason.model.build"
    assert INFO["build"] == default_build()


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(ASSETS)


def test_tokenizer_round_trips_and_newline_is_one_token(tokenizer) -> None:
    newline = tokenizer.convert_tokens_to_ids("\n")
    assert tokenizer.encode("\n", add_special_tokens=False) == [newline]
    for q in TEST[:50]:
        text = f"{q.problem}\n{q.solution}"
        ids = tokenizer.encode(text)
        assert ids[0] == tokenizer.bos_token_id
        assert tokenizer.decode(ids, skip_special_tokens=True) == text
        assert ids.count(newline) == text.count("\n")  # VinePPO steps end on token boundaries
        assert tokenizer.unk_token_id not in ids
    assert tokenizer.decode(tokenizer.encode("#### 7", add_special_tokens=False)) == "#### 7"


def test_committed_model_loads_with_matching_vocab(tokenizer) -> None:
    model = AutoModelForCausalLM.from_pretrained(ASSETS)
    assert model.config.vocab_size == len(tokenizer)
    assert model.config.head_dim == 32  # supported by vLLM's CPU attention
    assert sum(p.numel() for p in model.parameters()) == INFO["params"]


def test_committed_accuracy_reproduces_within_noise(tokenizer) -> None:
    model = AutoModelForCausalLM.from_pretrained(ASSETS)
    result = build_mod.evaluate(model, tokenizer, TEST[:100], samples=0, progress=False)
    assert abs(result["greedy_acc"] - INFO["greedy_acc"]) <= 0.10, (result["greedy_acc"], INFO["greedy_acc"])


def test_short_build_then_cache_hit(tmp_path, monkeypatch) -> None:
    build = {**default_build(), "sft_steps": 5, "n_train": 256, "n_test": 16}
    model_cfg = SimpleNamespace(path="builtin:tiny-arith", build=build)
    path = resolve_model_path(model_cfg, tmp_path)
    assert path == str(tmp_path / f"tiny-arith-{config_hash(build)}")
    info = json.loads((Path(path) / "build_info.json").read_text())
    assert info["hash"] == config_hash(build) and info["n_questions"] == 16
    assert not list(tmp_path.glob(".*tmp*"))  # the temp dir was renamed into place
    AutoModelForCausalLM.from_pretrained(path)
    AutoTokenizer.from_pretrained(path)

    def no_build(*args, **kwargs):
        raise AssertionError("rebuilt a cached model")

    monkeypatch.setattr(build_mod, "build", no_build)
    assert resolve_model_path(model_cfg, tmp_path) == path


def test_resolve_passes_other_paths_through(tmp_path) -> None:
    committed = SimpleNamespace(path="builtin:tiny-arith", build=default_build())
    assert resolve_model_path(committed, tmp_path) == str(ASSETS)
    assert not list(tmp_path.iterdir())  # nothing built
    assert resolve_model_path(SimpleNamespace(path="realtreetune/rho-1b-sft-GSM8K"), tmp_path) == \
        "realtreetune/rho-1b-sft-GSM8K"
    assert resolve_model_path(SimpleNamespace(path=str(tmp_path)), "unused") == str(tmp_path)
    with pytest.raises(FileNotFoundError, match="not an existing directory"):
        resolve_model_path(SimpleNamespace(path="./no/such/model"), tmp_path)
    with pytest.raises(ValueError, match="only builtin"):
        resolve_model_path(SimpleNamespace(path="builtin:huge", build={}), tmp_path)


def test_random_tiny_model(tmp_path, tokenizer) -> None:
    path = random_tiny_model(tmp_path / "rand", seed=1)
    model = AutoModelForCausalLM.from_pretrained(path)
    assert AutoTokenizer.from_pretrained(path).get_vocab() == tokenizer.get_vocab()
    committed = AutoModelForCausalLM.from_pretrained(ASSETS)
    assert model.config.to_diff_dict() == committed.config.to_diff_dict()


def test_sft_schedules():
    from rlreason.model.build import lr_factor

    assert lr_factor(0, 10, 100, "constant") == 0.1 and lr_factor(9, 10, 100, "constant") == 1.0
    assert all(lr_factor(s, 10, 100, "constant") == 1.0 for s in range(10, 200))  # never annealed
    assert lr_factor(100, 10, 100, "cosine") == pytest.approx(0.1)  # cosine ends at 10% of the peak
    assert default_build()["sft_schedule"] == "constant"


def test_token_entropy_counts_tokens_up_to_eos():
    import math

    import torch

    from rlreason.model.build import _token_entropy

    eos, vocab = 2, 4
    tokens = torch.tensor([[5, 2, 0], [5, 5, 2]])  # the first sequence ends at step 1, the second at step 2
    uniform, certain = torch.zeros(2, vocab), torch.tensor([[0.0, -1e9, -1e9, -1e9]] * 2)
    total, count = _token_entropy((uniform, uniform, certain), tokens, eos)
    assert count == 5  # 2 + 3: the pad after the first EOS is not counted
    assert total == pytest.approx(4 * math.log(vocab))  # steps 0-1 uniform, step 2 certain
