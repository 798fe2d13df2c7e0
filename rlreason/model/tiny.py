"""The tiny models: a character-level tokenizer and a ~1M-param Llama per task (rlreason.model.tasks),
or with `kind: chat` in the build dict a byte-level BPE tokenizer and a Qwen2 (rlreason.model.chat).

Every character is its own token (plus `####` as one), so VinePPO's step boundaries -- newlines --
always fall on token boundaries, and decoding gives back the exact text. The model is a stock
`LlamaForCausalLM`, so transformers and vLLM load it like any hub checkpoint.

Each builtin model is `builtin:tiny-KEY`: KEY is its task for the character-level ones (arith,
countdown) and `chat` for the chat model; its committed checkpoint is assets/tiny-KEY, its config
conf/model/YAMLS[KEY].
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rlreason.model.tasks import TASKS, task_of

PAD, BOS, EOS, UNK = "<pad>", "<s>", "</s>", "<unk>"
ASSETS = Path(__file__).parent / "assets" / "tiny-arith"  # the default model's; assets_dir(task) for any
CONF = Path(__file__).parents[2] / "conf" / "model"
# model=tiny, model=tiny_countdown, model=tiny_chat, model=tiny_guess
YAMLS = {"arith": "tiny.yaml", "countdown": "tiny_countdown.yaml", "chat": "tiny_chat.yaml", "guess": "tiny_guess.yaml"}
KINDS = ("char", "chat")  # the build dict's `kind`: char (the default, no key) | chat (rlreason.model.chat)
# LlamaConfig fields the `build:` dict may set; the rest of `build:` configures SFT (rlreason.model.build).
ARCH_KEYS = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
             "num_key_value_heads", "max_position_embeddings")


def assets_dir(key: str) -> Path:
    """Where the committed checkpoint of `builtin:tiny-{key}` lives."""
    return ASSETS.with_name(f"tiny-{key}")


def default_build(key: str = "arith") -> dict[str, Any]:
    """The `build:` dict of a builtin's conf/model yaml (tiny.yaml for arith), as plain Python values."""
    from omegaconf import OmegaConf

    yaml = OmegaConf.load(CONF / YAMLS[key])
    model = yaml.model if "model" in yaml else yaml  # tiny_chat.yaml is a global package: model: and data:
    return OmegaConf.to_container(model.build, resolve=True)  # type: ignore[return-value]


def kind_of(build: Mapping[str, Any]) -> str:
    kind = build.get("kind", "char")
    if kind not in KINDS:
        raise ValueError(f"model.build.kind={kind!r}: expected one of {', '.join(KINDS)}")
    return kind


def builtin_key(build: Mapping[str, Any]) -> str:
    """The KEY of `builtin:tiny-KEY` a build dict makes: its task, or `chat` (on arith, `chat-TASK` else)."""
    task = task_of(build).name
    if kind_of(build) == "char":
        return task
    return "chat" if task == "arith" else f"chat-{task}"


def tokenizer_for(build: Mapping[str, Any]):  # -> PreTrainedTokenizerFast
    """The tokenizer a build trains its model with: character-level, or byte-level BPE (kind: chat)."""
    task = task_of(build)
    if kind_of(build) == "chat":
        from rlreason.model import chat

        return chat.make_tokenizer(task.corpus(), build["vocab_size"])
    return make_tokenizer(task.name)


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


def make_model(build: dict[str, Any], tokenizer, seed: int = 0):  # -> LlamaForCausalLM | Qwen2ForCausalLM
    """An untrained Llama (or with `kind: chat` a Qwen2) with the architecture in `build` and the vocab
    of `tokenizer`."""
    if kind_of(build) == "chat":
        from rlreason.model import chat

        return chat.make_model(build, tokenizer, seed)
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
    # eos is where vLLM and generate() stop: </s>, or the chat model's <|im_end|> (as Qwen2.5-Instruct's).
    model.generation_config = GenerationConfig(
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id)
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    # transformers 5 writes its own class name, which transformers 4.x cannot resolve; both know this one.
    # The chat template goes into tokenizer_config.json, where every transformers version reads it
    # (transformers 5 writes a chat_template.jinja of its own).
    path, jinja = out / "tokenizer_config.json", out / "chat_template.jinja"
    config = {**json.loads(path.read_text()), "tokenizer_class": "PreTrainedTokenizerFast"}
    if tokenizer.chat_template:
        config["chat_template"] = tokenizer.chat_template
        jinja.unlink(missing_ok=True)
    path.write_text(json.dumps(config, indent=2))


def random_tiny_model(out_dir: str | Path, seed: int = 0, task: str = "arith") -> str:
    """Save an untrained model of a builtin's architecture (`task`: its KEY) with its tokenizer (for
    engine tests)."""
    build = default_build(task)
    tokenizer = tokenizer_for(build)
    save(make_model(build, tokenizer, seed), tokenizer, out_dir)
    return str(out_dir)
