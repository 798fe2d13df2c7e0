"""The headline command without the Hub, and with data the default model cannot take: one `rlreason:` line,
exit status 2, before any compute.

The Hub is made unreachable explicitly (HF_ENDPOINT at a closed local port, or offline mode with an
empty cache), so these behave the same on a machine with network.
"""

from __future__ import annotations

import json
import os
import re
import socket
from pathlib import Path

import pytest

from tests.test_errors import ROOT, TINY, build_error, cli, no_heavy, write_lines  # noqa: F401 (a fixture)

DATA = Path(os.environ.get("RLREASON_DATA", ROOT.parent / "shared" / "data"))
HEADLINE = ["algo=vineppo", "data=math", "curriculum=learnability", "trainer.iterations=1"]
RETRIES = 23  # huggingface_hub's backoff on an unreachable Hub: 1 + 2 + 4 + 8 + 8 s


def closed_port() -> int:
    with socket.socket() as s:  # bound, then closed: nothing listens there
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def no_hub(tmp_path: Path, offline: bool = False) -> dict[str, str]:
    """An environment where the Hub cannot be reached and `datasets` has no cache to fall back on."""
    flag = "1" if offline else ""  # "": off, whatever the calling shell set
    return {"HF_ENDPOINT": f"http://127.0.0.1:{closed_port()}", "HF_HOME": str(tmp_path / "hf-home"),
            "HF_DATASETS_CACHE": str(tmp_path / "hf-home" / "datasets"), "HF_HUB_OFFLINE": flag,
            "HF_DATASETS_OFFLINE": flag, "TRANSFORMERS_OFFLINE": ""}


def one_line(proc) -> str:
    """The single `rlreason:` line on stderr, checked for: exit status 2, no traceback."""
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr + proc.stdout, proc.stderr[-3000:]
    lines = [x for x in proc.stderr.splitlines() if x.startswith("rlreason: ")]
    assert len(lines) == 1, proc.stderr[-3000:]
    return lines[0]


@pytest.mark.parametrize(("args", "hub_id", "offline"), [
    (HEADLINE, "EleutherAI/hendrycks_math", False),
    (HEADLINE, "EleutherAI/hendrycks_math", True),
    (["data=gsm8k", "data.source=hub", "trainer.iterations=1"], "openai/gsm8k", False),
    (["data=gsm8k", "data.source=hub", "trainer.iterations=1"], "openai/gsm8k", True),
], ids=["math", "math-offline-mode", "gsm8k-hub", "gsm8k-hub-offline-mode"])
def test_run_without_the_hub(tmp_path, args, hub_id, offline):
    proc, elapsed, run_dir = cli(tmp_path, *args, env=no_hub(tmp_path, offline))
    line = one_line(proc)
    assert f"the train split comes from the Hugging Face Hub dataset {hub_id}" in line, line
    assert "data.train_path=FILE data.test_path=FILE" in line and "JSONL or parquet" in line
    if offline:  # nothing to switch on: the cache is what is missing
        assert "offline mode is on" in line and "holds no copy of it" in line and "fill the cache" in line
    else:
        assert "cannot be reached from here" in line and "HF_HUB_OFFLINE=1" in line
        assert "Connection refused" in line
    if "data.source=hub" in args:
        assert line.startswith("rlreason: data.source=hub, so the train split") and "data.source=local " in line
    # At once: huggingface_hub logs each of its retries ("Retrying in 1s [Retry 1/5]", 23 s of them in
    # all); none here. (How long the failure itself takes is timed in-process, tests/data/test_hub.py: the
    # wall clock of a whole CLI run mostly measures importing torch & co. on a busy machine.)
    assert "Retrying in" not in proc.stderr + proc.stdout
    assert elapsed < 3 * RETRIES, elapsed
    assert not (run_dir / "stats.sqlite").exists() and not (run_dir / "checkpoints").exists()


@pytest.mark.parametrize("offline", [False, True], ids=["unreachable", "offline-mode"])
def test_eval_without_the_hub(tmp_path, offline):
    proc, elapsed, _ = cli(tmp_path, "data=gsm8k", "data.source=hub", module="rlreason.eval",
                           env=no_hub(tmp_path, offline))
    line = one_line(proc)
    assert "the test split comes from the Hugging Face Hub dataset openai/gsm8k" in line, line
    assert "data.train_path=FILE data.test_path=FILE" in line and "HF_HUB_OFFLINE" in line
    assert "Retrying in" not in proc.stderr + proc.stdout and elapsed < 3 * RETRIES


needs_math500 = pytest.mark.skipif(not (DATA / "math500_test.jsonl").is_file(),
                                   reason=f"MATH-500 ({DATA / 'math500_test.jsonl'}) is absent")


def math500_lengths(n: int | None = None) -> list[int]:
    """Token counts of MATH-500's prompts as the tiny model reads them (one tokenizer call each)."""
    import json

    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(TINY))
    rows = [json.loads(x) for x in (DATA / "math500_test.jsonl").read_text().splitlines() if x.strip()][:n]
    return [len(tok(f"[MATH_TASK] Problem:\n{r['problem']}\n\nSolution:", verbose=False)["input_ids"]) for r in rows]


@needs_math500
def test_math_with_the_tiny_model(tmp_path):
    """Local MATH files and the default model=tiny (a 256-token context, an arith vocabulary): stopped
    before vLLM starts (engine=vllm, the default), with the counts and the way out."""
    math500 = str(DATA / "math500_test.jsonl")
    proc, _, run_dir = cli(tmp_path, *HEADLINE, f"data.train_path={math500}", f"data.test_path={math500}",
                           "trainer.eval_max_questions=200", engine="vllm", env=no_hub(tmp_path))
    line = one_line(proc)
    train, test = math500_lengths(), math500_lengths(200)
    room = 256 - 80
    assert "the model's context of 256 tokens leaves 176 for a prompt after rollout.max_new_tokens=80" in line, line
    assert (f"train has {sum(n > room for n in train):,} of 500 longer (the longest {max(train):,} tokens)" in line)
    assert f"test has {sum(n > room for n in test):,} of 200 longer (the longest {max(test):,} tokens)" in line
    assert "500 of 500 train, 200 of 200 test prompts hold characters the tokenizer cannot encode" in line
    found = re.search(r"cannot encode \(it reads them as its unknown token\): (.*) in the questions, (.*) in the "
                      r"prompt template\.", line)
    assert found, line
    assert "'$'" in found.group(1) and "'\\\\'" in found.group(1) and "'{'" in found.group(1)  # LaTeX
    assert found.group(2) == "'A' 'H' 'K' 'M' 'P' 'S' 'T' '[' ']' '_'"  # [MATH_TASK] Problem:
    assert "model=hf model.path=" in line and "model=rho1b_sft_math" in line
    # vLLM never started: none of its log lines (it logs its config and the engine's start on stdout/stderr).
    assert "vllm" not in (proc.stdout + proc.stderr).lower(), (proc.stdout + proc.stderr)[-3000:]
    assert not (run_dir / "stats.sqlite").exists() and not (run_dir / "checkpoints").exists()


@needs_math500
def test_eval_math_with_the_tiny_model(tmp_path):
    proc, _, _ = cli(tmp_path, "data=math", f"data.test_path={DATA / 'math500_test.jsonl'}", "eval.max_new_tokens=40",
                     module="rlreason.eval", engine="vllm")
    line = one_line(proc)
    lengths = math500_lengths()
    assert "the model's context of 256 tokens leaves 216 for a prompt after eval.max_new_tokens=40" in line, line
    assert f"test has {sum(n > 216 for n in lengths):,} of 500 longer (the longest {max(lengths):,} tokens)" in line
    assert "500 of 500 test prompts hold characters the tokenizer cannot encode" in line
    assert "model=hf model.path=" in line and "vllm" not in (proc.stdout + proc.stderr).lower()


@pytest.mark.usefixtures("no_heavy")
def test_build_checks_the_prompts_before_the_engine(tmp_path):
    """In-process, on a small file: build() stops before the engine and the learner are made."""
    rows = [json.dumps({"question": f"What is $\\frac{{1}}{{2}}$ of {'4' * n}?", "answer": "#### 2"})
            for n in (1, 2, 300, 3, 400)]
    path = write_lines(tmp_path / "q.jsonl", rows)
    err = build_error(tmp_path, "data=gsm8k", f"data.train_path={path}", f"data.test_path={path}")
    msg = str(err)
    longest = 1 + len("[MATH_TASK] Problem:\nWhat is $\\frac{1}{2}$ of ?\n\nSolution:") + 400  # BOS + one per char
    assert msg.startswith("prompts too long: the model's context of 256 tokens leaves 192 for a prompt after "
                          f"rollout.max_new_tokens=64 for the response, and train has 2 of 5 longer (the longest {longest} "
                          f"tokens), test has 2 of 5 longer (the longest {longest} tokens). 5 of 5 train, 5 of 5 test "
                          "prompts hold characters the tokenizer cannot encode"), msg
    assert "for data=gsm8k use another model: model=hf model.path=HUB_ID_OR_DIR" in msg and "rho1b_sft_gsm8k" in msg
