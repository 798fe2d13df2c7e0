"""The one record type every part of rlreason passes around for a question."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Question:
    """A maths question with its gold answer.

    `id` is stable across runs and machines (the stats store and checkpoints key on it).
    """

    id: str
    problem: str
    answer: str
    solution: str | None = None
    level: int | None = None
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


class DataError(ValueError):
    """Malformed dataset input; the message names the file and line."""
