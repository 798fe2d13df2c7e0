"""Grade a JSONL file of responses: `python -m rlreason.grade FILE.jsonl --task math|gsm8k|arith|hash|exact`,
or with your own reward function: `python -m rlreason.grade FILE.jsonl --reward.fn PATH.py:NAME`.

Rows `{"response": str, "gold": str, "truncated": bool (optional)}` in, plus `"record": {...}` (the
question's row, what a reward function reads) with --reward.fn; the completions.jsonl that
`python -m rlreason.eval` writes is such a file. One JSON verdict per row on stdout, `{"reward": ..,
"reason": .., "extracted": ..}` (with a function's `components`, and the `detail` of an error or timeout).
A malformed row stops everything (exit 2) with an error naming the file and line: a partial grade would
read as a result.
"""

from __future__ import annotations

import argparse
import json
import sys

from rlreason.data.loaders import read_rows
from rlreason.data.record import DataError, Question
from rlreason.reward import make_grader
from rlreason.reward.extract import ORDER
from rlreason.reward.function import RewardFnError, check


def read_jobs(path: str, with_record: bool = False) -> tuple[list[str], list[Question], list[bool]]:
    responses, questions, truncated = [], [], []
    for where, row in read_rows(path):
        response, gold, cut = row.get("response"), row.get("gold", "" if with_record else None), row.get("truncated", False)
        if not isinstance(response, str):
            raise DataError(f"{where}: 'response' should be a string, got {type(response).__name__}")
        if isinstance(gold, int | float) and not isinstance(gold, bool):
            gold = str(gold)  # `"gold": 18` is too natural to refuse
        if not isinstance(gold, str):
            raise DataError(f"{where}: 'gold' should be a string, got {type(gold).__name__}")
        if not isinstance(cut, bool):
            raise DataError(f"{where}: 'truncated' should be true/false, got {type(cut).__name__}")
        record = row.get("record")
        if with_record and not isinstance(record, dict):
            raise DataError(f"{where}: a reward function grades from the row's 'record' (the question's fields), "
                            f"got {type(record).__name__}")
        responses.append(response)
        # A row's question is its id (else its line), so identical responses to one question grade once.
        questions.append(Question(id=str(row.get("id", where)), problem=str(row.get("problem", "")), answer=gold,
                                  record=record or {}))
        truncated.append(cut)
    return responses, questions, truncated


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m rlreason.grade", description=__doc__.split("\n")[0])
    ap.add_argument("file", help="JSONL with response, gold (or record) and optional truncated per row")
    how = ap.add_mutually_exclusive_group(required=True)
    how.add_argument("--task", choices=list(ORDER), help="a built-in checker")
    how.add_argument("--reward.fn", "--fn", dest="fn", metavar="PATH.py:NAME", help="your reward function")
    ap.add_argument("--reward.weights", "--weights", dest="weights", default="{}",
                    help='JSON weights of the function\'s components, e.g. \'{"format": 0.1}\'')
    ap.add_argument("--reward.success_threshold", dest="success_threshold", type=float, default=1.0)
    ap.add_argument("--reward.batched", dest="batched", action="store_true")
    ap.add_argument("--reward.batch_size", dest="batch_size", type=int, default=64)
    ap.add_argument("--timeout", "--reward.timeout_s", type=float, default=5.0,
                    help="seconds per response (hard deadline)")
    ap.add_argument("--workers", "--reward.workers", type=int, default=2, help="grading processes")
    ap.add_argument("--reward.startup_timeout_s", dest="startup_timeout", type=float, default=60.0,
                    help="seconds to import the reward function (the check, then each grading process)")
    args = ap.parse_args(argv)
    if args.timeout <= 0 or args.startup_timeout <= 0 or args.workers < 1 or args.batch_size < 1:
        ap.error("need --timeout > 0, --reward.startup_timeout_s > 0, --workers >= 1 and --reward.batch_size >= 1")
    try:
        weights = json.loads(args.weights)
        if not isinstance(weights, dict) or not all(isinstance(v, int | float) for v in weights.values()):
            raise ValueError
    except ValueError:
        ap.error(f"--reward.weights={args.weights!r}: expected a JSON object of numbers")
    cfg = argparse.Namespace(fn=args.fn, weights=weights, success_threshold=args.success_threshold,
                             batched=args.batched, batch_size=args.batch_size, timeout_s=args.timeout,
                             workers=args.workers, startup_timeout_s=args.startup_timeout)
    try:
        responses, questions, truncated = read_jobs(args.file, with_record=bool(args.fn))
        if args.fn:
            check(args.fn, args.batched, args.startup_timeout)  # imported in a spawned process, under a deadline
        grader = make_grader(cfg, args.task or "fn")
    except (DataError, RewardFnError) as e:
        print(f"rlreason.grade: {e}", file=sys.stderr)
        return 2
    with grader:
        verdicts = grader.grade(responses, questions, truncated)
    for v in verdicts:
        out = {"reward": v.reward, "reason": v.reason, "extracted": v.extracted}
        out |= {k: getattr(v, k) for k in ("components", "detail") if getattr(v, k) is not None}
        print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
