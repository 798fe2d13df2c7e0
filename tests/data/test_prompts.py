import pytest

from rlreason.data import Question, format_prompt
from rlreason.data.prompts import ARITH_TEMPLATE, VINEPPO_TEMPLATE

Q = Question(id="q", problem="Find $\\frac{1}{2}$ of {x}.", answer="x/2")


def test_templates():
    assert format_prompt(Q) == "[MATH_TASK] Problem:\nFind $\\frac{1}{2}$ of {x}.\n\nSolution:"
    assert format_prompt(Q, VINEPPO_TEMPLATE) == format_prompt(Q)
    assert format_prompt(Question("a", "Q:3a+5", "8"), ARITH_TEMPLATE) == "Q:3a+5\n"


def test_chat_template():
    from rlreason.model.tiny import make_tokenizer

    tok = make_tokenizer()
    tok.chat_template = ("{% for m in messages %}<{{ m.role }}>{{ m.content }}\n{% endfor %}"
                         "{% if add_generation_prompt %}<assistant>{% endif %}")
    assert format_prompt(Q, None, tok, use_chat_template=True) == f"<user>{Q.problem}\n<assistant>"
    # data.user_template: the user message around the question (what prompt_template() hands over in chat mode)
    assert format_prompt(Q, "{problem} Think.", tok, use_chat_template=True) == f"<user>{Q.problem} Think.\n<assistant>"
    with pytest.raises(ValueError, match="needs a tokenizer"):
        format_prompt(Q, VINEPPO_TEMPLATE, None, use_chat_template=True)


def test_in_chat_mode_the_user_template_is_the_template():
    from types import SimpleNamespace

    from rlreason.data.prompts import prompt_template

    d = SimpleNamespace(use_chat_template=True, user_template="{problem} Go.", prompt_template=VINEPPO_TEMPLATE,
                        prompt_template_file=None)
    assert prompt_template(d) == "{problem} Go."
    assert prompt_template(SimpleNamespace(**{**vars(d), "user_template": None})) is None  # the question as is
    assert prompt_template(SimpleNamespace(**{**vars(d), "use_chat_template": False})) == VINEPPO_TEMPLATE
