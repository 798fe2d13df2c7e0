"""The tiny chat model (model=tiny_chat): a stand-in for a real instruct model that runs on a CPU.

What a Qwen2.5-Instruct checkpoint looks like to rlreason, at ~1M parameters:

- a byte-level BPE tokenizer (trained here with `tokenizers` on the task's text) with Qwen2's
  pre-tokenizer (digits one by one, a space glued to the word after it) and its special tokens
  `<|endoftext|>` (pad), `<|im_start|>`, `<|im_end|>` (eos: where a response ends);
- a ChatML chat template in tokenizer_config.json that opens with a short default system turn, as
  Qwen2.5's does, so RL's prompt is `apply_chat_template([user turn], add_generation_prompt=True)`
  (data.use_chat_template=true, which model=tiny_chat sets);
- a stock `Qwen2ForCausalLM`: grouped-query attention, RoPE, attention biases, tied embeddings.

Byte-level, so it reads any text (no <unk>), though it was only trained on its task's.
"""

from __future__ import annotations

from typing import Any

ENDOFTEXT, IM_START, IM_END = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
SYSTEM = "You are a helpful assistant."
# Qwen2's pre-tokenizer split (its tokenizer.json): contractions, letters with one leading non-letter,
# single digits, punctuation runs with their newlines, newline runs, other whitespace.
QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
               r"\s*[\r\n]+|\s+(?!\S)|\s+")
# ChatML, as Qwen2.5-Instruct writes it (without tools): a system turn unless the messages bring one.
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{%- if loop.first and message['role'] != 'system' %}"
    "{{- '<|im_start|>system\\n" + SYSTEM + "<|im_end|>\\n' }}"
    "{%- endif %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
# Qwen2Config fields the `build:` dict may set (with model.build.kind=chat).
ARCH_KEYS = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
             "num_key_value_heads", "max_position_embeddings")


def make_tokenizer(corpus: list[str], vocab_size: int):  # -> PreTrainedTokenizerFast
    """Byte-level BPE trained on `corpus` (plus the template's own words). Deterministic: a fixed corpus.
    The 256 byte tokens are always in, so `vocab_size` only caps the merges."""
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, processors, trainers
    from tokenizers import pre_tokenizers as pre
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(byte_fallback=False, fuse_unk=False))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre.Sequence([pre.Split(Regex(QWEN2_SPLIT), behavior="isolated"),
                                      pre.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[ENDOFTEXT, IM_START, IM_END],
                                  initial_alphabet=pre.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator([*corpus, f"system\n{SYSTEM}", "user\n", "assistant\n"], trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token=IM_END, pad_token=ENDOFTEXT, additional_special_tokens=[IM_START],
        clean_up_tokenization_spaces=False, model_max_length=256, chat_template=CHAT_TEMPLATE)


def make_model(build: dict[str, Any], tokenizer, seed: int = 0):  # -> Qwen2ForCausalLM
    """An untrained Qwen2 with the architecture in `build` and the vocabulary of `tokenizer`."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    config = Qwen2Config(
        **{k: build[k] for k in ARCH_KEYS},
        vocab_size=len(tokenizer),  # exactly: an id with no token could be sampled and break detokenising
        bos_token_id=None,  # Qwen2 prompts start with no BOS: the template opens with <|im_start|>
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
        use_sliding_window=False,
        torch_dtype="float32",
    )
    torch.manual_seed(seed)
    return Qwen2ForCausalLM(config)
