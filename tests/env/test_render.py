"""How an observation becomes tokens: verbatim for plain text, a template user turn for chat models."""

from pathlib import Path

import pytest
from transformers import AutoTokenizer

from rlreason.env.rollout import Renderer

ASSETS = Path(__file__).resolve().parents[2] / "rlreason" / "model" / "assets"


@pytest.fixture(scope="module")
def chat_tokenizer():
    return AutoTokenizer.from_pretrained(ASSETS / "tiny-chat")


def test_plain_text_is_verbatim():
    tok = AutoTokenizer.from_pretrained(ASSETS / "tiny-arith")
    assert Renderer(tok, False).ids("12\n", True) == tok("12\n", add_special_tokens=False).input_ids


def test_chat_observation_is_the_templates_user_turn(chat_tokenizer):
    r = Renderer(chat_tokenizer, True)
    # the action ended on eos (<|im_end|>, which the model wrote): the template's newline after it, the
    # user turn, and the next assistant header
    ids = r.ids("higher", ended_on_eos=True)
    assert chat_tokenizer.decode(ids) == "\n<|im_start|>user\nhigher<|im_end|>\n<|im_start|>assistant\n"
    # the action ended on a stop string: the template's own end of the assistant turn comes first
    ids = r.ids("higher", ended_on_eos=False)
    assert chat_tokenizer.decode(ids) == "<|im_end|>\n<|im_start|>user\nhigher<|im_end|>\n<|im_start|>assistant\n"
    # and it is what the template renders for the whole conversation, token for token after the action
    messages = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"},
                {"role": "user", "content": "higher"}]
    whole = chat_tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert whole.endswith(chat_tokenizer.decode(ids))
