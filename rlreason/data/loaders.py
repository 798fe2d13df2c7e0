"""Question sets: GSM8K, MATH and any JSONL/parquet (data=jsonl) from local files or the HF hub, arith,
Countdown and reasoning-gym's tasks (rlreason/data/reasoning_gym.py) from their generators.

Every row is checked as it is read, so a malformed file fails here, naming the file and line, before any
model is loaded. Ids are content hashes, so the same question has the same id whether it came from a
local copy or the hub, on any machine.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterator
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

from rlreason.data import countdown, guess
from rlreason.data.arith import ArithSpec, generate_splits
from rlreason.data.countdown import CountdownSpec
from rlreason.data.guess import GuessSpec
from rlreason.data.hub import Why, hub_rows
from rlreason.data.record import DataError, Question
from rlreason.reward.extract import last_boxed

Row = dict[str, Any]
_CALCULATOR = re.compile(r"<<[^<>]*>>")  # GSM8K's `<<48/2=24>>` annotations
_LEVEL = re.compile(r"(?:Level\s*)?(\d+)")


def load_questions(data_cfg: Any, needs_answer: bool = True,
                   held_out: Callable[[list[Question]], list[Question]] | None = None,
                   ) -> tuple[list[Question], list[Question]]:
    """(train, test) for `data_cfg` (a DataConfig node or dataclass), cut to max_train / max_test.
    `needs_answer=False` (a reward function grades from the record): data=jsonl rows need no answer.
    `held_out` cuts the test split before max_test does (rlreason.model.heldout: a tiny model's SFT
    questions out)."""
    if data_cfg.name == "arith":
        a = data_cfg.arith
        spec = ArithSpec(a.min_steps, a.max_steps, a.modulus, a.ops, a.invertible)
        train, test = generate_splits(a.n_train, a.n_test, spec, a.seed)
    elif data_cfg.name == "countdown" and data_cfg.source == "generated":
        c = data_cfg.countdown
        spec = CountdownSpec(c.min_nums, c.max_nums, c.max_num, c.max_target, c.use_all)
        train, test = (countdown_questions(rows, c.use_all) for rows in countdown.generate_splits(
            c.n_train, c.n_test, spec, c.seed))
    elif data_cfg.name == "reasoning_gym":
        from rlreason.data import reasoning_gym  # an optional extra: imported only for its data

        train, test = reasoning_gym.load(data_cfg.reasoning_gym)
    elif data_cfg.name == "guess":
        g = data_cfg.guess
        spec = GuessSpec(g.min_size, g.max_size, g.max_num, g.slack)
        train, test = (guess_questions(rows) for rows in guess.generate_splits(g.n_train, g.n_test, spec, g.seed))
    elif data_cfg.name in NAMES:
        train, test = _load_split(data_cfg, "train", needs_answer), _load_split(data_cfg, "test", needs_answer)
    else:
        raise ValueError(f"data.name={data_cfg.name!r}: no loader (expected {', '.join(NAMES)})")
    if held_out is not None:
        test = held_out(test)
    return _prefix(train, data_cfg.max_train), _prefix(test, data_cfg.max_test)


def load_split(data_cfg: Any, split: str, needs_answer: bool = True,
               held_out: Callable[[list[Question]], list[Question]] | None = None) -> list[Question]:
    """One split (train | test), cut to max_train / max_test: an eval reads only the split it scores.
    `held_out` as in load_questions (the test split only)."""
    if data_cfg.name in ("arith", "guess", "reasoning_gym") or data_cfg.source == "generated":
        return load_questions(data_cfg, needs_answer, held_out)[split == "test"]
    if data_cfg.name not in NAMES:
        raise ValueError(f"data.name={data_cfg.name!r}: no loader (expected {', '.join(NAMES)})")
    questions = _load_split(data_cfg, split, needs_answer)
    if split == "test" and held_out is not None:
        questions = held_out(questions)
    return _prefix(questions, getattr(data_cfg, f"max_{split}"))


def _prefix(questions: list[Question], n: int | None) -> list[Question]:
    return questions if n is None else questions[:n]


def _load_split(cfg: Any, split: str, needs_answer: bool = True) -> list[Question]:
    origin = getattr(cfg, f"{split}_path")
    if origin and cfg.source != "hub":
        rows = read_rows(origin)
    else:
        # The test split comes from hub_test_id/hub_test_config when a separate test set is named,
        # else from the train dataset (and its config).
        own_test = split == "test" and cfg.hub_test_id
        origin = cfg.hub_test_id if own_test else cfg.hub_id
        config = cfg.hub_test_config if own_test else cfg.hub_config
        if not origin:
            raise DataError(f"data.{split}_path is unset and there is no hub id for the {split} split")
        rows = hub_rows(origin, config, getattr(cfg, f"{split}_split"), Why(split, cfg.source == "hub"))
    if cfg.name == "jsonl":
        parse = generic_parser(cfg.fields, needs_answer)
    elif cfg.name == "countdown":
        parse = partial(parse_countdown, use_all=cfg.countdown.use_all)
    else:
        parse = PARSERS[cfg.name]
    questions, seen = [], set()
    for where, row in rows:
        q = parse(row, where)
        if q.id in seen:  # a repeated problem still gets its own id (the stats store keys on it)
            q = replace(q, id=f"{q.id}-{len(questions)}")
        seen.add(q.id)
        questions.append(q)
    if not questions:
        raise DataError(f"{origin}: no rows in the {split} split")
    return questions


# --- row sources: each yields (where, row), `where` being what an error message points at ---


def read_rows(path: str | Path) -> Iterator[tuple[str, Row]]:
    """Rows of a JSONL file (or parquet, by extension) with their `file:line` locations."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    if path.suffix == ".parquet":
        yield from _parquet_rows(path)
        return
    empty = True
    with path.open("rb") as f:
        for n, raw in enumerate(f, 1):
            try:  # line by line, so a bad byte is reported at its line (utf-8-sig: a leading BOM is fine)
                line = raw.decode("utf-8-sig" if n == 1 else "utf-8")
            except UnicodeDecodeError as e:
                raise DataError(f"{path}:{n}: not UTF-8 text (byte {e.start} of the line); is this a JSONL file?") from None
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{n}: bad JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(row, dict):
                raise DataError(f"{path}:{n}: expected a JSON object, got {type(row).__name__}")
            empty = False
            yield f"{path}:{n}", row
    if empty:
        raise DataError(f"{path}: empty file, no rows")


def _parquet_rows(path: Path) -> Iterator[tuple[str, Row]]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as e:  # pyarrow raises several types for a corrupt file
        raise DataError(f"{path}: unreadable parquet ({e})") from None
    for n, row in enumerate(table.to_pylist(), 1):
        yield f"{path}: row {n}", row


# --- per-dataset row parsers ---


def _field(row: Row, key: str, where: str, required: bool = True) -> str | None:
    value = row.get(key)
    if value is None:
        if required:
            raise DataError(f"{where}: missing field {key!r} (has {', '.join(sorted(row)) or 'no fields'})")
        return None
    if not isinstance(value, str):
        raise DataError(f"{where}: field {key!r} should be a string, got {type(value).__name__}")
    if required and not value.strip():
        raise DataError(f"{where}: field {key!r} is empty")
    return value


def _hash_id(prefix: str, text: str) -> str:
    return f"{prefix}-{hashlib.sha1(text.encode()).hexdigest()[:12]}"


def parse_gsm8k(row: Row, where: str) -> Question:
    problem, answer = _field(row, "question", where), _field(row, "answer", where)
    assert problem is not None and answer is not None
    if "####" not in answer:
        raise DataError(f"{where}: field 'answer' has no '#### N' final-answer line")
    gold = answer.rsplit("####", 1)[1].strip().replace(",", "")
    if not gold:
        raise DataError(f"{where}: nothing after '####' in field 'answer'")
    return Question(id=_hash_id("gsm8k", problem), problem=problem, answer=gold,
                    solution=_CALCULATOR.sub("", answer), source="gsm8k", record=row)


def parse_math(row: Row, where: str) -> Question:
    problem, solution = _field(row, "problem", where), _field(row, "solution", where)
    assert problem is not None and solution is not None
    gold = _field(row, "answer", where, required=False) or last_boxed(solution)
    if not gold:
        raise DataError(f"{where}: no 'answer' field and no \\boxed{{...}} in 'solution'")
    subject = _field(row, "subject", where, required=False) or _field(row, "type", where, required=False)
    uid = _field(row, "unique_id", where, required=False)
    return Question(id=f"math-{uid}" if uid else _hash_id("math", problem), problem=problem, answer=gold,
                    solution=solution, level=_level(row.get("level"), where), source="math",
                    meta={"subject": subject} if subject else {}, record=row)


def parse_countdown(row: Row, where: str, use_all: bool = False) -> Question:
    """A Countdown row, `{"nums": [...], "target": N}` (Countdown-Tasks-3to4's as it is); no gold answer:
    the checker (rlreason.reward.countdown) grades from the record. `use_all` (data.countdown.use_all)
    goes into the record, where the checker reads the rule."""
    if problem := countdown.record_error(row):
        raise DataError(f"{where}: not a Countdown record ({problem})")
    record = {**row, "use_all": bool(row.get("use_all", use_all))}
    text = countdown.problem_text(record)
    return Question(id=_hash_id("countdown", f"{text}|{record['use_all']}"), problem=text, answer="",
                    level=len(record["nums"]), source="countdown", record=record)


def countdown_questions(rows: list[Row], use_all: bool) -> list[Question]:
    return [parse_countdown(row, f"generated countdown row {i}", use_all) for i, row in enumerate(rows, 1)]


def guess_questions(rows: list[Row]) -> list[Question]:
    """data=guess's records as questions: the environment (rlreason.envs.guess) plays from the record; the
    answer is the hidden number (a single-turn grader without env.cls could only check a one-shot guess)."""
    return [Question(id=_hash_id("guess", json.dumps(r, sort_keys=True)), problem=guess.problem_text(r),
                     answer=str(r["target"]), level=r["turns"], source="guess", record=r) for r in rows]


def generic_parser(fields: Any, needs_answer: bool = True) -> Callable[[Row, str], Question]:
    """data=jsonl: a parser reading the fields named by `data.fields`. The gold answer may be a number
    (`"answer": 9`); the id is the row's own (`fields.id`) or a hash of the problem text.

    `fields.problem_template` ("{nums} -> {target}") builds the problem text from the row's fields, for
    rows that have none (Countdown-Tasks-3to4). Without `needs_answer` (a reward function grades from the
    row) the answer field may be missing or `fields.answer` null: the gold is then ""."""

    def parse(row: Row, where: str) -> Question:
        if fields.problem_template:
            problem = fill_template(fields.problem_template, row, where)
        else:
            problem = _field(row, fields.problem, where)
        assert problem is not None
        if needs_answer or fields.answer and row.get(fields.answer) is not None:
            gold = _text(row, fields.answer, where)
        else:
            gold = ""
        solution = _field(row, fields.solution, where, required=False) if fields.solution else None
        own_id = _text(row, fields.id, where) if fields.id else None
        subject = _field(row, fields.subject, where, required=False) if fields.subject else None
        level = _level(row.get(fields.level), where) if fields.level else None
        return Question(id=f"jsonl-{own_id}" if own_id else _hash_id("jsonl", problem), problem=problem,
                        answer=gold.strip(), solution=solution, level=level, source="jsonl",
                        meta={"subject": subject} if subject else {}, record=row)

    return parse


_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def fill_template(template: str, row: Row, where: str) -> str:
    """`template` with each `{field}` replaced by the row's value (a list as its items, space-separated)."""

    def value(m: re.Match) -> str:
        if m.group(1) not in row:
            raise DataError(f"{where}: data.fields.problem_template names {{{m.group(1)}}}, a field the row "
                            f"does not have (it has {', '.join(sorted(row)) or 'no fields'})")
        v = row[m.group(1)]
        return " ".join(map(str, v)) if isinstance(v, list | tuple) else str(v)

    return _PLACEHOLDER.sub(value, template)


def _text(row: Row, key: str, where: str) -> str:
    """A required string field that may also be written as a number (an answer, an id)."""
    value = row.get(key)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    text = _field(row, key, where)
    assert text is not None
    return text


def _level(value: Any, where: str) -> int | None:
    if value is None or isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        m = _LEVEL.fullmatch(value.strip())
        return int(m.group(1)) if m else None  # MATH train has a few "Level ?"
    raise DataError(f"{where}: field 'level' should be an int or 'Level N', got {type(value).__name__}")


PARSERS: dict[str, Callable[[Row, str], Question]] = {"gsm8k": parse_gsm8k, "math": parse_math}
NAMES = ("arith", "countdown", "guess", "jsonl", "reasoning_gym", *PARSERS)
