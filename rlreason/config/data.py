"""The `data` group's schema (conf/data/*.yaml): which task, where its splits are read from, how prompts and
VinePPO's steps are made. Re-exported by rlreason.config."""

from __future__ import annotations

from dataclasses import dataclass, field

from omegaconf import MISSING


@dataclass
class ArithConfig:
    min_steps: int = 1
    max_steps: int = 8
    modulus: int = 10
    ops: str = "+-*"
    invertible: bool = True  # multipliers coprime to the modulus: a wrong step cannot end right by luck
    n_train: int = 20000
    n_test: int = 500
    seed: int = 0


@dataclass
class CountdownConfig:
    """data=countdown (rlreason/data/countdown.py): generated instances, level = the count of given numbers."""

    min_nums: int = 3
    max_nums: int = 4
    max_num: int = 99  # numbers drawn from 1..max_num
    max_target: int = 999
    use_all: bool = False  # TinyZero's rule, every number exactly once (classic: at most once)
    n_train: int = 20000
    n_test: int = 500
    seed: int = 0


@dataclass
class GuessConfig:
    """data=guess (rlreason/data/guess.py): hidden-number games for env.cls=rlreason.env.guess:GuessNumber;
    level = the turn budget."""

    min_size: int = 8  # the range's size (count of numbers) is drawn uniformly in min_size..max_size
    max_size: int = 50
    max_num: int = 99  # ranges lie within 1..max_num (at most 999)
    slack: int = 0  # turns beyond binary search's worst case, ceil(log2(size + 1))
    n_train: int = 20000
    n_test: int = 500
    seed: int = 0


@dataclass
class StepsConfig:
    """How a response is cut into VinePPO's steps (rlreason/segment.py); conf/data/*.yaml set it per task."""

    rule: str = "auto"  # auto (math: vineppo; gsm8k, arith: lines) | vineppo | lines | sentences
    min_chars: int = 20  # vineppo: a shorter piece not ending a sentence joins the next (reference: 20)
    max_chars: int = 100  # vineppo: a longer piece is halved at , and : to, or in maths at = + (reference: 100)
    answer_prefix: str | None = "\n#### "  # lines: the answer line stays in the last step (reference GSM8K)
    # Values are estimated for the start state and the ends of the first `max_value_steps` steps; later
    # states take the trajectory's own return (reference `max_step_for_value_estimation`: 25 on GSM8K).
    max_value_steps: int | None = None


@dataclass
class FieldsConfig:
    """data=jsonl: which field of a row holds what (null = the row has no such field)."""

    problem: str = "problem"
    # Or the problem text built from the row's fields: "{nums} -> {target}" (a list as its items)
    problem_template: str | None = None
    answer: str | None = "answer"  # the gold final answer (a string or a number); optional with reward.fn
    solution: str | None = None  # a worked solution, kept with the question (not used for grading)
    id: str | None = None  # the row's own id; null = a hash of the problem text
    level: str | None = None  # int or "Level N": per-level eval breakdown
    subject: str | None = None  # per-subject eval breakdown


@dataclass
class DataConfig:
    name: str = MISSING  # arith | countdown | guess | gsm8k | math | jsonl
    # Each split is read from its local path when set (JSONL, or parquet for math), else from the hub
    # through `datasets.load_dataset` (train: hub_id/hub_config; test: hub_test_id or hub_id).
    # source=generated: arith's, countdown's and guess's generators (no files).
    source: str = "local"
    train_path: str | None = None
    test_path: str | None = None
    hub_id: str | None = None
    hub_config: str | None = None
    hub_test_id: str | None = None
    hub_test_config: str | None = None
    train_split: str = "train"
    test_split: str = "test"
    max_train: int | None = None  # subset sizes (None = all)
    max_test: int | None = None
    # `{problem}` is replaced by the question's text; null = the text as is. A file, when set, replaces
    # prompt_template with its content byte for byte (a template with newlines, without shell quoting).
    prompt_template: str | None = "[MATH_TASK] Problem:\n{problem}\n\nSolution:"
    prompt_template_file: str | None = None
    use_chat_template: bool = False  # the tokenizer's chat template, the question as the user's message
    # With use_chat_template (prompt_template is not used then): the user message, `{problem}` replaced by the
    # question's text (an instruction around it, as verl's data preprocessing adds); null = the text as is.
    user_template: str | None = None
    steps: StepsConfig = field(default_factory=StepsConfig)
    arith: ArithConfig = field(default_factory=ArithConfig)
    countdown: CountdownConfig = field(default_factory=CountdownConfig)
    guess: GuessConfig = field(default_factory=GuessConfig)
    fields: FieldsConfig = field(default_factory=FieldsConfig)
