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
