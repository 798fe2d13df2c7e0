"""The metrics registry (rlreason/metrics.py) against what the code logs: statically, every metric-shaped
string in rlreason/ must have an entry; dynamically, every key real runs of each algorithm and curriculum
write to metrics.jsonl must match one."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from rlreason.metrics import METRICS, PREFIXES, lookup, overlaps

ROOT = Path(__file__).resolve().parents[1]
ADD = ("add an entry Metric(\"{key}\", UNIT, MEANING, WHEN) for it to METRICS in rlreason/metrics.py (under "
       "its prefix's comment), then run `python -m rlreason.reference` and commit docs/reference/metrics.md")
KEY = re.compile(r"[a-z_]+/[A-Za-z0-9_@{}/.-]*[A-Za-z0-9_}]")


def _pattern(node: ast.AST) -> str | None:
    """A string constant as is; an f-string with `{}` where it varies."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
    return None


def metric_strings(root: Path = ROOT / "rlreason") -> list[tuple[str, str]]:
    """(where, key pattern) for every string in the package shaped like a metric of a known prefix."""
    out = []
    for path in sorted(root.rglob("*.py")):
        if path.name == "metrics.py" and path.parent.name == "rlreason":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        inner = {id(v) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for v in n.values}
        for node in ast.walk(tree):
            if id(node) in inner:
                continue  # an f-string's constant pieces: the whole f-string is checked
            s = _pattern(node)
            if s and KEY.fullmatch(s) and s.split("/", 1)[0] in PREFIXES:
                out.append((f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}:{node.lineno}", s))
    return out


def unregistered(found: list[tuple[str, str]]) -> list[str]:
    problems = []
    for where, key in found:
        # a key, or the prefix a helper completes (group_metrics(groups, "curriculum/pool"))
        ok = (overlaps(key) if "{" in key else lookup(key)) or overlaps(key + "/{}")
        if not ok:
            problems.append(f"{where} logs {key!r}, which no entry of rlreason/metrics.py matches: "
                            + ADD.format(key=key))
    return problems


def test_every_metric_named_in_the_code_has_an_entry():
    found = metric_strings()
    assert len(found) > 50  # the scan sees the loop's, the learner's, MC's and the curricula's names
    assert not unregistered(found), "\n".join(unregistered(found))


def test_the_scan_catches_a_new_metric(tmp_path):
    (tmp_path / "m.py").write_text('metrics = {"mc/new_thing": 1.0, f"learner/{k}": 2.0, "train/reward": 0}\n'
                                   'path = "mc/"\n')
    problems = unregistered(metric_strings(tmp_path))
    assert len(problems) == 1 and "'mc/new_thing'" in problems[0] and "rlreason/metrics.py" in problems[0]


def test_entries_are_unique_with_known_prefixes_and_patterns_match_their_examples():
    names = [m.name for m in METRICS]
    assert len(names) == len(set(names))
    assert {n.split("/", 1)[0] for n in names} <= set(PREFIXES)
    assert lookup("eval/mean@16").name == "eval/mean@{n}"
    assert lookup("curriculum/pool/hit_3_of_8").name == "curriculum/{set}/hit_{i}_of_{n}"
    assert lookup("reward/timeout").name == "reward/timeout"  # a name before a pattern
    assert lookup("reward/format").name == "reward/{component}"
    assert lookup("eval/reward/format").name == "eval/reward/{component}"
    assert lookup("mc/unknown") is None and lookup("train/reward/x") is None
    assert [m.name for m in overlaps("curriculum/pool/{}")] == [
        "curriculum/{set}/learnability", "curriculum/{set}/hit_{i}_of_{n}", "curriculum/{set}/all_solved",
        "curriculum/{set}/none_solved"]
    assert not overlaps("curriculum/pool/{}/x") and not overlaps("tree/{}/x")
    assert [m.name for m in overlaps("mc/{}/1")] == ["mc/turn_value/{t}", "mc/turn_advantage/{t}"]
