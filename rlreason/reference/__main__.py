"""`python -m rlreason.reference`: regenerate docs/reference/config.md and metrics.md from the code.
`--check`: write nothing; exit 1 naming each page that differs from what the code generates."""

from __future__ import annotations

import argparse
import sys

from rlreason.reference.keys import ROOT
from rlreason.reference.pages import PAGES, stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m rlreason.reference", description=__doc__)
    parser.add_argument("--check", action="store_true", help="only report stale pages (exit 1 when any is)")
    args = parser.parse_args(argv)
    if args.check:
        old = stale()
        for path in old:
            print(f"rlreason: {path} is stale: run `python -m rlreason.reference` and commit it", file=sys.stderr)
        return 1 if old else 0
    for path, render in PAGES.items():
        target = ROOT / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(render(), encoding="utf-8")
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
