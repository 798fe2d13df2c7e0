import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def grade(path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "rlreason.grade", str(path), *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_grades_each_row(tmp_path):
    rows = [
        {"response": "so $\\boxed{\\frac{1}{2}}$", "gold": "0.5"},  # through math-verify
        {"response": "\\boxed{42}", "gold": 42},
        {"response": "\\boxed{41}", "gold": "42"},
        {"response": "I give up", "gold": "1"},
        {"response": "\\boxed{42}", "gold": "42", "truncated": True},
    ]
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = grade(path, "--task", "math", "--workers", "1", "--timeout", "10")
    assert out.returncode == 0, out.stderr
    verdicts = [json.loads(line) for line in out.stdout.splitlines()]
    assert [v["reason"] for v in verdicts] == ["correct", "correct", "wrong", "no_answer", "truncated"]
    assert [v["reward"] for v in verdicts] == [1.0, 1.0, 0.0, 0.0, 0.0]
    assert verdicts[0] == {"reward": 1.0, "reason": "correct", "extracted": "\\frac{1}{2}"}


def test_malformed_row_names_file_and_line(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"response": "#### 1", "gold": "1"}\n{"response": ["x"], "gold": "1"}\n')
    out = grade(path, "--task", "gsm8k")
    assert out.returncode == 2 and out.stdout == ""
    assert f"{path}:2: 'response' should be a string, got list" in out.stderr
    path.write_text('{"response": "#### 1", "gold": "1"}\n{"response": "#### 1"\n')
    out = grade(path, "--task", "arith")
    assert out.returncode == 2 and f"{path}:2: bad JSON" in out.stderr


def test_grades_with_a_reward_function(tmp_path):
    fn = tmp_path / "fn.py"
    fn.write_text("def f(response, record):\n    return {'correct': float(response == str(record['t'])), 'len': len(response)}\n"
                  "def g(response):\n    return 1.0\n")
    rows = [{"response": "7", "record": {"t": 7}}, {"response": "8", "record": {"t": 7}},
            {"response": "77", "record": {"t": 7}, "truncated": True}]
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    out = grade(path, "--reward.fn", f"{fn}:f", "--reward.weights", '{"len": 0.5}')
    assert out.returncode == 0, out.stderr
    verdicts = [json.loads(line) for line in out.stdout.splitlines()]
    assert [(v["reward"], v["reason"]) for v in verdicts] == [(1.5, "correct"), (0.5, "wrong"), (0.0, "truncated")]
    assert verdicts[0]["components"] == {"correct": 1.0, "len": 1.0}
    missing = tmp_path / "norecord.jsonl"
    missing.write_text(json.dumps({"response": "7", "gold": "7"}) + "\n")
    out = grade(missing, "--reward.fn", f"{fn}:f")
    assert out.returncode == 2 and "norecord.jsonl:1: a reward function grades from the row's 'record'" in out.stderr
    out = grade(path, "--reward.fn", f"{fn}:g")
    assert out.returncode == 2 and "cannot take (response: str, record: dict)" in out.stderr
