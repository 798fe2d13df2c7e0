"""The one record type every part of rlreason passes around for a question."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Question:
    """A question with its gold answer (empty when a reward function grades from the record alone).

    `id` is stable across runs and machines (the stats store and checkpoints key on it). `record` is the
    row the question was read from, every field, as a user's reward function receives it.
    """

    id: str
    problem: str
    answer: str
    solution: str | None = None
    level: int | None = None
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    record: dict[str, Any] = field(default_factory=dict, compare=False, hash=False, repr=False)

    def row(self) -> dict[str, Any]:
        """What a reward function reads: the record, or for a question built without one its own fields."""
        return self.record or {"id": self.id, "problem": self.problem, "answer": self.answer}


class DataError(ValueError):
    """Malformed dataset input; the message names the file and line."""
