"""Outcome rewards: answer extraction and grading against gold answers."""

from rlreason.reward.extract import extract_answer, last_boxed
from rlreason.reward.grader import REASONS, Grader, Verdict

__all__ = ["REASONS", "Grader", "Verdict", "extract_answer", "last_boxed"]
