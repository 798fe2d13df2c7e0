"""The config keys' descriptions come from the schema's comments, by the rule in rlreason/reference/keys.py."""

from __future__ import annotations

import importlib.util
import sys
import textwrap

from rlreason.config import Config, EvalConfig
from rlreason.reference.keys import schema_keys, undescribed
from rlreason.validate import _schema_keys


def test_every_key_of_both_schemas_has_a_description():
    problems = undescribed(schema_keys()) + undescribed(schema_keys(EvalConfig))
    assert not problems, ("config keys without a description (docs/reference/config.md is generated from the "
                          "comments; then run `python -m rlreason.reference`):\n" + "\n".join(problems))


def test_every_schema_key_is_listed_with_its_type_and_default():
    keys = {k.name: k for k in schema_keys()}
    assert set(keys) == set(_schema_keys(Config))
    assert (keys["algo.clip_eps"].type, keys["algo.clip_eps"].default) == ("float", "0.2")
    assert (keys["algo.name"].default, keys["trainer.eval_top_p"].type) == ("???", "float | None")
    assert keys["learner.betas"].default == "[0.9, 0.999]"
    assert keys["data.steps.answer_prefix"].default == '"\\n#### "'
    assert keys["algo.mc"].group and keys["algo.mc"].doc.startswith("VinePPO's Monte-Carlo cost options")
    assert keys["algo.clip_eps"].source.startswith("rlreason/config/__init__.py:")


SCHEMA = textwrap.dedent('''
    from dataclasses import dataclass, field


    @dataclass
    class Inner:
        """The inner group."""

        x: int = 1  # the inner x


    @dataclass
    class Outer:
        a: int = 0  # a's own
        # Shared by b and c,
        # over two lines
        b: int = 1
        c: int = 2
        # d's block
        d: int = 3  # d's own
        e: int = 4

        f: int = 5
        # g's and the group's block
        g: int = 6
        inner: Inner = field(default_factory=Inner)
        h: int = 7
''')


def test_the_comment_rule(tmp_path, monkeypatch):
    path = tmp_path / "schema_example.py"
    path.write_text(SCHEMA)
    spec = importlib.util.spec_from_file_location("schema_example", path)
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "schema_example", module)
    spec.loader.exec_module(module)
    docs = {k.name: k.doc for k in schema_keys(module.Outer)}
    assert docs == {
        "a": "a's own",
        "b": "Shared by b and c, over two lines",
        "c": "Shared by b and c, over two lines",
        "d": "d's block. d's own",  # a block directly above and its own comment
        "e": "",  # below a field with a comment of its own: nothing carries over
        "f": "",  # after a blank line
        "g": "g's and the group's block",
        "inner": "The inner group.",  # a nested group's docstring before a block shared from above
        "inner.x": "the inner x",
        "h": "g's and the group's block",
    }
    problems = undescribed(schema_keys(module.Outer))
    assert len(problems) == 2 and problems[0].startswith("e: add a comment beside or above the field `e` of Outer (")
    assert f"{path}:" in problems[0]
