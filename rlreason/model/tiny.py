"""The tiny default model: a character-level tokenizer and a ~1M-param Llama for the arith task.

Every character is its own token (plus `####` as one), so VinePPO's step boundaries -- newlines --
always fall on token boundaries, and decoding gives back the exact text. The model is a stock
`LlamaForCausalLM`, so transformers and vLLM load it like any hub checkpoint.
"""

from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Any

from rlreason.data.arith import LETTERS, OPS, ArithSpec, generate_splits

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
ASSETS = Path(__file__).parent / "assets" / "tiny-arith"
TINY_YAML = Path(__file__).parents[2] / "conf" / "model" / "tiny.yaml"
# Every symbol the arith task can print, whatever its spec, so the vocab never depends on the spec.
ALPHABET = string.digits + LETTERS + OPS + "=:#Q \n"
# LlamaConfig fields the `build:` dict may set; the rest of `build:` configures SFT (rlreason.model.build).
ARCH_KEYS = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
             "num_key_value_heads", "max_position_embeddings")


def default_build() -> dict[str, Any]:
    """The `build:` dict of conf/model/tiny.yaml, as plain Python values."""
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.load(TINY_YAML).build, resolve=True)  # type: ignore[return-value]


def make_tokenizer():  # -> PreTrainedTokenizerFast
    """Train the character-level tokenizer on arith text. Deterministic: a fixed corpus and seed."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    train, _ = generate_splits(2000, 0, ArithSpec(), seed=0)
    corpus = [f"{q.problem}\n{q.solution}" for q in train] + [ALPHABET]
    tok = Tokenizer(models.WordLevel(unk_token=UNK))
    # `[\s\S]` rather than `.`: the regex engine's `.` skips "\n", which must be a token of its own.
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"####|[\s\S]"), behavior="isolated")
    tok.decoder = decoders.Fuse()  # concatenate tokens as they are: no spaces between characters
    tok.train_from_iterator(corpus, trainers.WordLevelTrainer(special_tokens=[PAD, BOS, EOS, UNK]))
    # Prepend BOS like Llama tokenizers do, so `encode(prompt)` means the same for every model.
    tok.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A", pair=f"{BOS} $A {BOS} $B", special_tokens=[(BOS, tok.token_to_id(BOS))])
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD, unk_token=UNK,
        clean_up_tokenization_spaces=False, model_max_length=256)


def make_model(build: dict[str, Any], tokenizer, seed: int = 0):  # -> LlamaForCausalLM
    """An untrained Llama with the architecture in `build` and the vocab of `tokenizer`."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        **{k: build[k] for k in ARCH_KEYS},
        # Exactly the tokenizer's size: an id with no token could be sampled and break detokenising.
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        # Untied: every weight is its own named parameter, one-to-one with vLLM's weight sync.
        tie_word_embeddings=False,
        torch_dtype="float32",
    )
    torch.manual_seed(seed)
    return LlamaForCausalLM(config)


def save(model, tokenizer, out_dir: str | Path) -> None:
    """Save weights (safetensors), config, generation config and tokenizer files to `out_dir`."""
    from transformers import GenerationConfig

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # Only the special ids: any sampling default here would silently become vLLM's default too.
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    # transformers 5 writes its own class name, which transformers 4.x cannot resolve; both know this one.
    path = out / "tokenizer_config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "tokenizer_class": "PreTrainedTokenizerFast"}, indent=2))


def random_tiny_model(out_dir: str | Path, seed: int = 0) -> str:
    """Save an untrained model of the default architecture with the tiny tokenizer (for engine tests)."""
    tokenizer = make_tokenizer()
    save(make_model(default_build(), tokenizer, seed), tokenizer, out_dir)
    return str(out_dir)
