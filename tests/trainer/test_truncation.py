"""rlreason/trainer/truncation.py: cut responses while training runs."""

import pytest

from rlreason.config import ConfigError
from rlreason.trainer.truncation import TruncationWatch


def test_a_warning_past_half_and_a_stop_after_n_iterations_all_cut():
    watch = TruncationWatch(80, stop_after=3)
    assert watch(1, 0.5) is None  # half is not more than half
    assert "iteration 2: 62% of the responses were cut at rollout.max_new_tokens=80" in watch(2, 0.625)
    assert "raise rollout.max_new_tokens (now 80" in watch(3, 1.0)
    assert watch(4, 1.0)  # two in a row: still a warning
    assert watch(5, 0.9)  # the streak breaks
    watch(6, 1.0), watch(7, 1.0)
    with pytest.raises(ConfigError, match=r"every response was cut at rollout.max_new_tokens=80 for 3 iterations "
                                          r"in a row \(iterations 6-8\)"):
        watch(8, 1.0)


def test_zero_never_stops():
    watch = TruncationWatch(12, stop_after=0)
    assert all(watch(i, 1.0) for i in range(1, 20))


def test_a_run_whose_every_response_is_cut_warns_then_stops_with_exit_2(tmp_path):
    """Tried as a new user would: a budget far below the answers (the gold-solution check turned off) used to
    train on nothing but truncated responses and exit 0."""
    import json

    from tests.test_errors import cli
    from tests.trainer.conftest import SMALL

    small = [o for o in SMALL if not o.startswith(("rollout.max_new_tokens", "trainer.eval_every"))]
    proc, _, run_dir = cli(tmp_path, *small, "rollout.max_new_tokens=4", "rollout.max_gold_cut=null",
                           "trainer.iterations=5", "trainer.stop_all_truncated=2", "trainer.eval_every=5",
                           "trainer.eval_max_questions=2")
    assert proc.returncode == 2, proc.stderr[-2000:]
    out = proc.stdout + proc.stderr
    assert "iteration 1: 100% of the responses were cut at rollout.max_new_tokens=4" in out
    assert proc.stderr.strip().splitlines()[-1].startswith(
        "rlreason: every response was cut at rollout.max_new_tokens=4 for 2 iterations in a row (iterations 1-2)")
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["train/truncated"] for r in rows if "train/truncated" in r] == [1.0, 1.0]
    assert (run_dir / "checkpoints").exists()  # stopped after its checkpoint: nothing lost
