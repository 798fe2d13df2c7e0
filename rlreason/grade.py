"""Grade a JSONL file of responses: `python -m rlreason.grade FILE.jsonl --task math|gsm8k|arith|hash|exact`.

Rows `{"response": str, "gold": str, "truncated": bool (optional)}` in (the completions.jsonl that
`python -m rlreason.eval` writes is one); one JSON verdict per row on stdout, `{"reward": .., "reason":
.., "extracted": ..}`. A malformed row stops everything (exit 2) with an error naming the file and line:
a partial grade would read as a result.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

from rlreason.data.loaders import read_rows
from rlreason.data.record import DataError
from rlreason.reward import Grader
from rlreason.reward.extract import ORDER


def read_jobs(path: str) -> tuple[list[str], list[str], list[bool]]:
    responses, golds, truncated = [], [], []
    for where, row in read_rows(path):
        response, gold, cut = row.get("response"), row.get("gold"), row.get("truncated", False)
        if not isinstance(response, str):
            raise DataError(f"{where}: 'response' should be a string, got {type(response).__name__}")
        if isinstance(gold, int | float) and not isinstance(gold, bool):
            gold = str(gold)  # `"gold": 18` is too natural to refuse
        if not isinstance(gold, str):
            raise DataError(f"{where}: 'gold' should be a string, got {type(gold).__name__}")
        if not isinstance(cut, bool):
            raise DataError(f"{where}: 'truncated' should be true/false, got {type(cut).__name__}")
        responses.append(response)
        golds.append(gold)
        truncated.append(cut)
    return responses, golds, truncated


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m rlreason.grade", description=__doc__.split("\n")[0])
    ap.add_argument("file", help="JSONL with response, gold and optional truncated per row")
    ap.add_argument("--task", required=True, choices=list(ORDER))
    ap.add_argument("--timeout", type=float, default=5.0, help="seconds per response (hard deadline)")
    ap.add_argument("--workers", type=int, default=2, help="math-verify processes")
    args = ap.parse_args(argv)
    if args.timeout <= 0 or args.workers < 1:
        ap.error("need --timeout > 0 and --workers >= 1")
    try:
        responses, golds, truncated = read_jobs(args.file)
    except DataError as e:
        print(f"rlreason.grade: {e}", file=sys.stderr)
        return 2
    with Grader(args.task, timeout_s=args.timeout, workers=args.workers) as grader:
        verdicts = grader.grade(responses, golds, truncated)
    for v in verdicts:
        print(json.dumps(asdict(v)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
