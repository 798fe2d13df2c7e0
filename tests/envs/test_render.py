"""How an observation becomes tokens: verbatim for plain text, a template user turn for chat models."""

from pathlib import Path

import pytest
from transformers import AutoTokenizer

from rlreason.envs.rollout import Renderer

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


def test_a_chat_model_plays_turns_as_template_turns(chat_tokenizer):
    """The tiny chat model on the HF engine: reset() ends the user message, observations are user turns."""
    from rlreason.config import EngineConfig
    from rlreason.engine import make_engine
    from tests.envs.helpers import QUESTIONS, env_roller

    engine = make_engine(EngineConfig(name="hf", hf_batch_size=8), str(ASSETS / "tiny-chat"), chat_tokenizer,
                         dtype="float32", seed=0, max_model_len=512)
    roller = env_roller(engine, chat_tokenizer, "Counter", budget=200, chat=True)
    try:
        episodes = [ep for g in roller(QUESTIONS[:1], 4) for ep in g]
    finally:
        roller.env.close()
        engine.close()
    prompt = chat_tokenizer.decode(episodes[0].prompt_ids)
    assert prompt.endswith("0+0\ngo\n<|im_end|>\n<|im_start|>assistant\n"), prompt
    assert any(ep.env.turns >= 2 for ep in episodes), [ep.env.end for ep in episodes]
    for ep in episodes:
        for (_, e), (s2, _), obs in zip(ep.env.spans, ep.env.spans[1:], ep.env.observations[1:]):
            on_eos = ep.response_ids[e - 1] == chat_tokenizer.eos_token_id
            text = chat_tokenizer.decode(ep.response_ids[e:s2])
            assert text == ("\n" if on_eos else "<|im_end|>\n") + f"<|im_start|>user\n{obs}<|im_end|>\n<|im_start|>assistant\n"
            assert ep.action_mask[e:s2] == [0] * (s2 - e)
