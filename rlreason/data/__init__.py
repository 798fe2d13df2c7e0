"""Datasets: the Question record, loaders (GSM8K, MATH, any JSONL, arith) and prompt formatting.

Kept import-light (no `datasets` until a hub split is actually read).
"""

from rlreason.data.loaders import load_questions, load_split, read_rows
from rlreason.data.prompts import format_prompt, prompt_template
from rlreason.data.record import DataError, Question

__all__ = ["DataError", "Question", "format_prompt", "load_questions", "load_split", "prompt_template", "read_rows"]
