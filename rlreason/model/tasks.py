"""The tasks a tiny model is built for: data, alphabet and graded gold solutions (rlreason.model.build).

    arith      one gold solution per question (rlreason.data.arith)
    countdown  several valid solutions per instance (rlreason.data.countdown.solutions): SFT draws one
               each time the instance comes up, so the start policy has real choices between orders
    guess      multi-turn: transcripts of a noisy scripted player of the hidden-number game
               (rlreason.envs.guess_policy), SFT's loss on the player's lines only; evaluated by playing

A `build:` dict picks one with its `task` key; without it the task is arith (the arith model's build
dict, and so its config hash, predate the key). Each task's data are its `data=` group's defaults (the
spec here, the sizes and seed in the build dict), so the build's test split is RL's held-out split.
"""

from __future__ import annotations

import random
import string
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from rlreason.data import arith, countdown, guess
from rlreason.data.record import Question
from rlreason.envs.guess import GuessNumber
from rlreason.envs.guess_policy import scripted_game
from rlreason.reward.countdown import countdown_reward


@dataclass(frozen=True)
class Item:
    """One question as the builder sees it: the prompt is `{problem}\\n` (both data groups' template)."""

    problem: str
    # gold responses without EOS, each graded correct (SFT reads the train items'); a multi-turn task's are
    # transcripts: (text, is it the policy's) segments, trained on the policy's text only, no EOS
    solutions: tuple[str, ...] | tuple[tuple[tuple[str, bool], ...], ...]
    level: int
    grade: Callable[[Any], bool] = field(compare=False, repr=False)
    record: dict | None = field(default=None, compare=False, repr=False)  # an environment's record


@dataclass(frozen=True)
class Task:
    name: str
    spec: Any  # the data spec (ArithSpec / CountdownSpec defaults): hashed and recorded with the build
    alphabet: str  # every character the task can print: the vocabulary never depends on the spec
    items: Callable[[Mapping[str, Any]], tuple[list[Item], list[Item]]]  # build dict -> (train, test)
    corpus: Callable[[], list[str]]  # the text the tokenizer is trained on (token ids follow frequency)
    # The instances SFT trains on (items' train split), each as `key` names a question of the task's
    # data: rlreason.model.heldout keeps them out of RL's held-out split. None: not done (arith, below).
    sft_keys: Callable[[Mapping[str, Any]], frozenset] | None = None
    key: Callable[[Question], Hashable] | None = None
    # A multi-turn task's own evaluation: (saved model dir, tokenizer, test items, build dict, progress) ->
    # the build_info figures. None: rlreason.model.build.evaluate (single-turn, graded by Item.grade).
    evaluate: Callable[..., dict[str, Any]] | None = None


# --- arith (and any question with a gold answer string) ---

def answer_correct(text: str, answer: str) -> bool:
    return "####" in text and text.rsplit("####", 1)[1].strip() == answer


def answer_item(q: Question) -> Item:
    """A question with a gold answer and solution (arith's, any spec) as an Item: `#### ANSWER` is correct."""
    return Item(q.problem, (q.solution,) if q.solution else (), q.level or 0, partial(answer_correct, answer=q.answer))


def _arith_items(build: Mapping[str, Any]) -> tuple[list[Item], list[Item]]:
    train, test = arith.generate_splits(build["n_train"], build["n_test"], arith.ArithSpec(), build["data_seed"])
    return [answer_item(q) for q in train], [answer_item(q) for q in test]


def _arith_corpus() -> list[str]:
    train, _ = arith.generate_splits(2000, 0, arith.ArithSpec(), seed=0)
    return [f"{q.problem}\n{q.solution}" for q in train]


# --- countdown ---

def countdown_response(lines: list[str], expr: str) -> str:
    """The response for one solution: its work lines, one operation each, then `#### EXPRESSION`."""
    return "\n".join([*lines, f"#### {expr}"])


def _countdown_grade(text: str, record: dict) -> bool:
    return countdown_reward(text, record)["correct"] == 1.0


def _countdown_item(row: dict, use_all: bool, limit: int | None) -> Item:
    record = {**row, "use_all": use_all}  # as rlreason.data.loaders hands it to the checker
    sols = () if limit is None else tuple(
        countdown_response(lines, expr) for lines, expr in countdown.solutions(
            row["nums"], row["target"], use_all=use_all, limit=limit))
    return Item(countdown.problem_text(record), sols, len(row["nums"]), partial(_countdown_grade, record=record))


def _countdown_splits(build: Mapping[str, Any]) -> tuple[list[dict], list[dict]]:
    return countdown.generate_splits(build["n_train"], build["n_test"], countdown.CountdownSpec(), build["data_seed"])


def _countdown_items(build: Mapping[str, Any]) -> tuple[list[Item], list[Item]]:
    train, test = _countdown_splits(build)
    use_all = countdown.CountdownSpec().use_all
    return ([_countdown_item(r, use_all, build["sft_solutions"]) for r in train],
            [_countdown_item(r, use_all, None) for r in test])


def countdown_key(record: Mapping[str, Any]) -> tuple:
    """An instance whatever the order of its numbers and the rule (the model reads the same question):
    the key generate_splits draws distinct instances by."""
    return tuple(sorted(record["nums"])), record["target"]


def _countdown_corpus() -> list[str]:
    train, _ = countdown.generate_splits(500, 0, countdown.CountdownSpec(), seed=0)
    return [f"{countdown.problem_text(r)}\n{countdown_response(*countdown.solutions(r['nums'], r['target'], limit=1)[0])}"
            for r in train]


# --- guess (multi-turn: rlreason.envs.guess) ---

def _guess_splits(build: Mapping[str, Any]) -> tuple[list[dict], list[dict]]:
    return guess.generate_splits(build["n_train"], build["n_test"], guess.GuessSpec(), build["data_seed"])


def _guess_replays(segments: tuple[tuple[str, bool], ...], record: dict) -> bool:
    """A transcript is a game the environment would play: its replies are the environment's own."""
    env, replies = GuessNumber(record, 0), [text for text, own in segments if not own]
    actions = [text for text, own in segments if own]
    return [env.step(a).observation for a in actions] == replies


def _guess_item(record: dict, rng: random.Random | None, build: Mapping[str, Any]) -> Item:
    sols = () if rng is None else tuple(
        tuple(scripted_game(record, rng, build["p_wander"], build["p_ignore"])[0]) for _ in range(build["sft_solutions"]))
    return Item(guess.problem_text(record), sols, record["turns"], partial(_guess_replays, record=record), record)


def _guess_items(build: Mapping[str, Any]) -> tuple[list[Item], list[Item]]:
    train, test = _guess_splits(build)
    rng = random.Random(f"guess-policy-{build['seed']}")
    return [_guess_item(r, rng, build) for r in train], [_guess_item(r, None, build) for r in test]


def guess_key(record: Mapping[str, Any]) -> tuple:
    return record["lo"], record["hi"], record["target"]


def _guess_corpus() -> list[str]:
    rng = random.Random(0)
    # Fixed text (not the build's noise): the token ids follow its character frequencies.
    return [guess.problem_text(r) + "\n" + "".join(t for t, _ in scripted_game(r, rng, 0.3, 0.1)[0])
            for r in guess.generate_splits(200, 0, guess.GuessSpec(), seed=0)[0]]


EVAL_GAMES = 200  # the build's evaluation plays the first 200 held-out games (minutes on a busy CPU)


def _guess_evaluate(model_dir: str, tokenizer, items: list[Item], build: Mapping[str, Any],
                    progress: bool = True) -> dict[str, Any]:
    from rlreason.model.guess_eval import evaluate_guess

    records = [it.record for it in items][:EVAL_GAMES]
    return {"eval_engine": "hf", **evaluate_guess(model_dir, tokenizer, records, seed=build["seed"], progress=progress)}


TASKS: dict[str, Task] = {
    "arith": Task("arith", arith.ArithSpec(), string.digits + arith.LETTERS + arith.OPS + "=:#Q \n",
                  _arith_items, _arith_corpus),  # no SFT set left out: rlreason/model/heldout.py says why
    "countdown": Task("countdown", countdown.CountdownSpec(), string.digits + "+-*/()=:#Q \n",
                      _countdown_items, _countdown_corpus,
                      lambda build: frozenset(map(countdown_key, _countdown_splits(build)[0])),
                      lambda q: countdown_key(q.record)),
    "guess": Task("guess", guess.GuessSpec(), string.ascii_lowercase + string.digits + "- \n",
                  _guess_items, _guess_corpus,
                  lambda build: frozenset(map(guess_key, _guess_splits(build)[0])),
                  lambda q: guess_key(q.record), _guess_evaluate),
}


def task_of(build: Mapping[str, Any]) -> Task:
    name = build.get("task", "arith")
    if name not in TASKS:
        raise ValueError(f"model.build.task={name!r}: expected one of {', '.join(TASKS)}")
    return TASKS[name]
