"""Every dotted key of the config schema (rlreason/config/) with its type, default and meaning, read from the
schema's own source: the meaning is the comment beside or above the field, or a nested group's docstring.

The rule for comments (what a field's description is):
- a comment on the field's own line is its description;
- a block of comment lines directly above a field belongs to it (before its own comment, when it has one);
- a block also applies to the fields below it that have no comment of their own, until a blank line, the
  next comment, or a field with a comment of its own;
- a field holding a nested group (a dataclass) without a comment takes that class's docstring.
A key with none of these has no description: tests/reference/test_keys.py fails, naming the field.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import io
import json
import tokenize
import typing
from dataclasses import dataclass, fields, is_dataclass
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Key:
    name: str  # dotted: algo.mc.tree
    type: str  # as annotated: "float | None"
    default: str  # as YAML would show it: 0.2, null, "token", ???; a nested group: (group)
    doc: str  # the meaning, from the comments (or the group's docstring); "" when there is none
    cls: str  # the dataclass that declares it: AlgoConfig
    source: str  # where to write its comment: rlreason/config/__init__.py:123
    group: bool = False  # a nested dataclass (its keys follow it)


@dataclass(frozen=True)
class _Field:
    type: str
    doc: str
    line: int
    shared: bool  # the doc is a block above shared with the fields before it


def _comments(source: str) -> dict[int, tuple[str, bool]]:
    """line -> (comment text without '#', trailing: code precedes it on its line)."""
    out: dict[int, tuple[str, bool]] = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            trailing = bool(tok.line[: tok.start[1]].strip())
            out[tok.start[0]] = (tok.string.lstrip("#").strip(), trailing)
    return out


def _join(block: list[str], own: list[str]) -> str:
    """A block's lines are one wrapped paragraph; the field's own comment follows it as a sentence of its own."""
    text, mine = " ".join(block).strip(), " ".join(own).strip()
    if text and mine:
        return text + ("" if text[-1] in ".:;" else ".") + " " + mine
    return text or mine


@cache
def _class_fields(path: str, cls_name: str) -> dict[str, _Field]:
    """The fields of dataclass `cls_name` in the module at `path`, with their comment-derived descriptions."""
    source = Path(path).read_text(encoding="utf-8")
    comments = _comments(source)
    lines = source.splitlines()
    node = next(n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.ClassDef) and n.name == cls_name)
    stmts = [s for s in node.body if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)]
    line_of: dict[int, ast.AnnAssign] = {ln: s for s in stmts for ln in range(s.lineno, s.end_lineno + 1)}

    def own(s: ast.AnnAssign) -> list[str]:
        return [comments[ln][0] for ln in range(s.lineno, s.end_lineno + 1) if comments.get(ln, ("", False))[1]]

    out: dict[str, _Field] = {}
    for s in stmts:
        block, direct, ln = [], True, s.lineno - 1
        while ln > node.lineno:
            text = lines[ln - 1].strip()
            if not text:
                break
            if text.startswith("#"):
                block.insert(0, comments[ln][0])
                ln -= 1
                continue
            if block or ln not in line_of or own(line_of[ln]):
                break  # the block ends above here; or a docstring, or a field with a comment of its own
            direct = False  # a field without a comment: the block further up is shared with it
            ln = line_of[ln].lineno - 1
        mine = own(s)
        doc = _join(block, mine) if direct else _join([], mine) or _join(block, [])
        out[s.target.id] = _Field(ast.unparse(s.annotation), doc, s.lineno, not (direct or mine))
    return out


def _default(f: dataclasses.Field) -> str:
    if f.default_factory is not dataclasses.MISSING:
        value = f.default_factory()
    else:
        value = f.default
    return show(value)


def show(value: object) -> str:
    """A value as it reads in YAML or on the command line: null, true, 0.2, "text", [a, b], ??? (must be set)."""
    if value == "???":
        return "???"
    if isinstance(value, tuple):
        value = list(value)
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, float):
        return repr(value)
    return json.dumps(value, ensure_ascii=False)


def schema_keys(cls: type | None = None, prefix: str = "") -> list[Key]:
    """Every key of the schema rooted at `cls` (default: the training config), in declaration order."""
    if cls is None:
        from rlreason.config import Config

        cls = Config
    path = inspect.getsourcefile(cls)
    declared = _class_fields(path, cls.__name__)
    hints = typing.get_type_hints(cls)
    full = Path(path).resolve()
    rel = full.relative_to(ROOT).as_posix() if full.is_relative_to(ROOT) else str(full)
    out: list[Key] = []
    for f in fields(cls):
        d = declared[f.name]
        sub = hints[f.name]
        nested = is_dataclass(sub)
        # a nested group's own docstring says more than a comment shared with the fields above it
        doc = (group_doc(sub) or d.doc) if nested and (d.shared or not d.doc) else d.doc
        out.append(Key(prefix + f.name, d.type, "(group)" if nested else _default(f), doc, cls.__name__,
                       f"{rel}:{d.line}", nested))
        if nested:
            out += schema_keys(sub, f"{prefix}{f.name}.")
    return out


def group_doc(cls: type) -> str:
    """A schema class's own docstring as one paragraph ("" when it has none: not dataclass's generated one)."""
    source = Path(inspect.getsourcefile(cls)).read_text(encoding="utf-8")
    node = next(n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.ClassDef) and n.name == cls.__name__)
    return " ".join((ast.get_docstring(node) or "").split())


def undescribed(keys: list[Key]) -> list[str]:
    """One line per key without a description, saying where to write it."""
    field_ = "{}: add a comment beside or above the field `{}` of {} ({}) saying what it means"
    group = "{}: add a docstring to class {} saying what the group is for (or a comment beside the field `{}` of {}, {})"
    return [group.format(k.name, k.type, k.name.rsplit(".", 1)[-1], k.cls, k.source) if k.group else
            field_.format(k.name, k.name.rsplit(".", 1)[-1], k.cls, k.source) for k in keys if not k.doc]
