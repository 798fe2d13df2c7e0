"""Bring your own task and model: `data=jsonl ... model=hf model.path=DIR` trains, end to end."""

from __future__ import annotations

import json

from tests.data.test_loaders import write_jsonl


def test_one_command_trains_on_it(tmp_path, make_cfg, hf_engine):
    """`data=jsonl ... model=hf model.path=DIR` trains: the tiny model on its task as a user's file."""
    from rlreason.data.arith import ArithSpec, generate_splits
    from rlreason.model.tiny import ASSETS
    from rlreason.trainer.loop import train

    tr, te = generate_splits(40, 8, ArithSpec(max_steps=3), seed=5)

    def rows(questions):
        return [{"prompt": q.problem + "\n", "answer": q.answer} for q in questions]

    cfg = make_cfg("data=jsonl", f"data.train_path={write_jsonl(tmp_path / 'train.jsonl', rows(tr))}",
                   f"data.test_path={write_jsonl(tmp_path / 'test.jsonl', rows(te))}", "data.fields.problem=prompt",
                   "reward.checker=hash", "model=hf", f"model.path={ASSETS}", "engine=hf", "algo=grpo",
                   "trainer.iterations=1")
    assert cfg.run_name == "grpo-jsonl-tiny-arith-uniform-s0"
    summary = json.loads(train(cfg, tmp_path / "run", engine=hf_engine).read_text())
    assert summary["iterations"] == 1 and summary["eval_questions"] == 8
    assert summary["start_accuracy"] > 0.25  # the committed model solves its own task from a user's file
