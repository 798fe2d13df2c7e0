"""The tiny models: a character-level tokenizer and a ~1M-param Llama per task (rlreason.model.tasks).

Every character is its own token (plus `####` as one), so VinePPO's step boundaries -- newlines --
always fall on token boundaries, and decoding gives back the exact text. The model is a stock
`LlamaForCausalLM`, so transformers and vLLM load it like any hub checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rlreason.model.tasks import TASKS

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
ASSETS = Path(__file__).parent / "assets" / "tiny-arith"  # the default model's; assets_dir(task) for any
CONF = Path(__file__).parents[2] / "conf" / "model"
YAMLS = {"arith": "tiny.yaml", "countdown": "tiny_countdown.yaml"}  # model=tiny, model=tiny_countdown
# LlamaConfig fields the `build:` dict may set; the rest of `build:` configures SFT (rlreason.model.build).
ARCH_KEYS = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
             "num_key_value_heads", "max_position_embeddings")


def assets_dir(task: str) -> Path:
    """Where the committed checkpoint of `builtin:tiny-{task}` lives."""
    return ASSETS.with_name(f"tiny-{task}")


def default_build(task: str = "arith") -> dict[str, Any]:
    """The `build:` dict of the task's conf/model yaml (tiny.yaml for arith), as plain Python values."""
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.load(CONF / YAMLS[task]).build, resolve=True)  # type: ignore[return-value]


def make_tokenizer(task: str = "arith"):  # -> PreTrainedTokenizerFast
    """Train the character-level tokenizer on the task's text. Deterministic: a fixed corpus."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = TASKS[task].corpus() + [TASKS[task].alphabet]
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


def random_tiny_model(out_dir: str | Path, seed: int = 0, task: str = "arith") -> str:
    """Save an untrained model of the task's architecture with its tokenizer (for engine tests)."""
    tokenizer = make_tokenizer(task)
    save(make_model(default_build(task), tokenizer, seed), tokenizer, out_dir)
    return str(out_dir)
