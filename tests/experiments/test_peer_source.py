"""experiments/peer_trl.py on a user's files: both frameworks read the same rows and grade the same way,
a bad file or field stops it before compute, and the child processes get the user's data and algo."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from rlreason.config import grader_task, register_configs
from rlreason.data import load_questions, prompt_template

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "experiments"))

import peer_trl  # noqa: E402
from peer import rl_run, task  # noqa: E402
from peer.source import Source, prompt  # noqa: E402

ROWS = [{"q": f"Q:{i}a+{i % 7}\n", "gold": (i + i % 7) % 10, "note": "x"} for i in range(20)]


def write(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


@pytest.fixture
def files(tmp_path: Path) -> Source:
    d = tmp_path / "a dir with 'quotes'"  # paths must survive Hydra's override grammar
    d.mkdir()
    return Source(write(d / "train.jsonl", ROWS), write(d / "test.jsonl", ROWS[:5]), "q", "gold", "hash")


def composed(overrides: list[str]):
    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base=None):
        return compose("config", overrides=overrides)


def test_rlreason_and_trl_read_the_same_rows_and_grade_alike(files):
    train, test, template = files.load()  # what TRL's dataset and evals are built from
    cfg = composed(rl_run.overrides("/some/model", 0, 2, 1, task.SETTINGS, algo="rloo", source=files))
    rl_train, rl_test = load_questions(cfg.data)  # what rlreason's run loads
    assert [(q.id, q.problem, q.answer) for q in train] == [(q.id, q.problem, q.answer) for q in rl_train]
    assert [q.id for q in test] == [q.id for q in rl_test] and len(test) == 5
    assert train[3].answer == "6"  # a number in the file, a string to the grader
    # The prompt is the field's text as it is, on both sides
    assert template is None and prompt_template(cfg.data) is None
    assert [prompt(q, template) for q in train] == [r["q"] for r in ROWS]
    assert grader_task(cfg) == files.grader_task() == "hash"


def test_builtin_task_is_the_default():
    train, test, template = Source().load()
    ref_train, ref_test = task.splits()
    assert [q.id for q in train[:50]] == [q.id for q in ref_train[:50]] and len(test) == len(ref_test)
    assert template == "{problem}\n" and Source().grader_task() == "arith"
    cfg = composed(rl_run.overrides("/m", 0, 2, 1, task.SETTINGS, algo="grpo"))
    assert cfg.data.name == "arith" and cfg.data.arith.invertible is False and grader_task(cfg) == "arith"


def test_rloo_overrides_match_trl_settings(files):
    cfg = composed(rl_run.overrides("/m", 3, 7, 1, task.SETTINGS | {"lr": 2e-4}, algo="rloo", source=files))
    assert cfg.algo.name == "rloo" and cfg.algo.kl_coef == 0.0  # conf/algo/rloo.yaml has 1e-4
    assert cfg.learner.lr == 2e-4 and cfg.learner.minibatch_size == 128 and cfg.learner.epochs == 1
    assert cfg.rollout.samples_per_question == 8 and cfg.trainer.questions_per_iteration == 16


def test_trl_configs_override_trls_defaults():
    pytest.importorskip("trl")
    from peer.trl_run import trl_config

    s = task.SETTINGS | {"lr": 3e-4, "schedule": "linear"}
    rloo = trl_config("rloo", "/tmp/unused", 1, 10, s)
    # RLOOConfig's own defaults are beta=0.05, lr=1e-6, num_generations=2, 512 tokens, bf16 and checkpointing on
    assert (rloo.beta, rloo.learning_rate, rloo.num_generations, rloo.max_completion_length) == (0.0, 3e-4, 8, 96)
    assert not rloo.bf16 and not rloo.gradient_checkpointing and rloo.normalize_advantages is False
    assert rloo.generation_batch_size == 128 and rloo.steps_per_generation == 1 and rloo.logging_steps == 1
    assert rloo.lr_scheduler_type == "linear" and rloo.max_grad_norm == 1.0
    grpo = trl_config("grpo", "/tmp/unused", 1, 10, s)
    assert (grpo.loss_type, grpo.scale_rewards, grpo.beta) == ("dapo", "group", 0.0)
    with pytest.raises(ValueError, match="ppo"):
        trl_config("ppo", "/tmp/unused", 1, 10, s)


@pytest.mark.parametrize("change, message", [
    ({"problem_field": "question"}, "missing field 'question'"),
    ({"test": "/nonexistent/test.jsonl"}, "no such file"),
])
def test_bad_file_or_field_stops_before_compute(files, tmp_path, capsys, change, message):
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    s = Source(**{**files.__dict__, **change})
    out = tmp_path / "out"
    argv = ["--model", str(model), "--train", s.train, "--test", s.test, "--problem-field", s.problem_field,
            "--answer-field", s.answer_field, "--frameworks", "rlreason", "--out", str(out)]
    with pytest.raises(SystemExit, match=message):
        peer_trl.main(argv)
    assert not out.exists()  # no run was started


def test_missing_model_dir_is_refused_for_a_users_task(files, tmp_path):
    argv = ["--model", str(tmp_path / "none"), "--train", files.train, "--test", files.test, "--problem-field", "q",
            "--answer-field", "gold", "--frameworks", "rlreason", "--out", str(tmp_path / "out")]
    with pytest.raises(SystemExit, match="no HF model"):
        peer_trl.main(argv)


def test_runs_alternate_frameworks_and_children_get_the_users_data(files):
    args = peer_trl.parse(["--algo", "grpo,rloo", "--frameworks", "trl,rlreason,rlreason-vineppo",
                           "--train", files.train, "--test", files.test, "--problem-field", "q",
                           "--answer-field", "gold", "--checker", "exact", "--lr", "5e-5", "--schedule", "linear"])
    assert peer_trl.run_names(args) == ["trl-grpo", "rlreason-grpo", "trl-rloo", "rlreason-rloo", "rlreason-vineppo"]
    child = peer_trl.parse(["--one", "trl-rloo", "--seed", "2", *peer_trl.passthrough(args)])
    assert child.source == args.source and peer_trl.settings(child) == peer_trl.settings(args)
    assert peer_trl.settings(child)["lr"] == 5e-5 and child.source.checker == "exact"
    builtin = peer_trl.parse(["--one", "rlreason-grpo", *peer_trl.passthrough(peer_trl.parse([]))])
    assert builtin.source.builtin


def test_resuming_an_old_comparison_skips_its_runs(tmp_path, monkeypatch):
    # Runs written before --algo were "trl-s0.json" and "rlreason-s0.json": GRPO, not to be run again.
    model, runs = tmp_path / "model", tmp_path / "out" / "runs"
    model.mkdir()
    (model / "config.json").write_text("{}")
    runs.mkdir(parents=True)
    for fw, name in (("trl", "trl"), ("rlreason-grpo", "rlreason")):
        (runs / f"{name}-s0.json").write_text(json.dumps(
            {"framework": fw, "seed": 0, "evals": [{"step": 0, "accuracy": 0.3}], "s_per_step": 1.0}))
    started = []
    # The children are not started, so TRL need not be installed (CI has no `.[peer]` extra).
    find_spec = peer_trl.importlib.util.find_spec
    monkeypatch.setattr(peer_trl.importlib.util, "find_spec", lambda name, *a: object() if name == "trl" else find_spec(name, *a))
    monkeypatch.setattr(peer_trl.subprocess, "run",
                        lambda cmd, **kw: started.append(cmd) or subprocess.CompletedProcess(cmd, 1))
    peer_trl.main(["--model", str(model), "--algo", "grpo", "--seeds", "2", "--out", str(tmp_path / "out")])
    assert [c[c.index("--one") + 1:c.index("--one") + 4:2] for c in started] == [["trl-grpo", "1"], ["rlreason-grpo", "1"]]


def test_chat_model_gets_its_chat_template_on_both_sides(tmp_path):
    """--chat (a chat model such as model=tiny_chat's): rlreason's run, TRL's prompts and the eval path
    TRL's policy goes through all render the model's chat template; the children get the flag."""
    from peer.evaluation import GreedyEval
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rlreason.data.prompts import format_prompt
    from rlreason.model.tiny import assets_dir

    model_dir = str(assets_dir("chat"))
    chat = Source(chat=True)
    assert "data.use_chat_template=true" in chat.overrides() and "data.use_chat_template=false" in Source().overrides()
    assert composed(rl_run.overrides(model_dir, 0, 2, 1, task.SETTINGS, source=chat)).data.use_chat_template
    args = peer_trl.parse(["--chat", "--model", model_dir])
    assert args.source.chat and peer_trl.parse(["--one", "trl-grpo", *peer_trl.passthrough(args)]).source.chat
    _, test, template = chat.load()
    tok = AutoTokenizer.from_pretrained(model_dir)
    # TRL applies the tokenizer's template to the conversation: the text rlreason's Roller sends
    assert tok.apply_chat_template(prompt(test[0], template, chat=True), tokenize=False, add_generation_prompt=True) \
        == format_prompt(test[0], template, tok, use_chat_template=True)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    accuracy = {}
    for use in (True, False):
        ev = GreedyEval(model_dir, tok, test[:40], 80, chat.grader_task(), template, chat=use)
        accuracy[use] = ev(model, 1)
        ev.close()
    assert accuracy[True] >= 0.1 and accuracy[True] > accuracy[False], accuracy  # the model reads its template


def test_chat_needs_a_model_with_a_chat_template(tmp_path, files):
    argv = ["--chat", "--model", str(tmp_path / "none"), "--frameworks", "rlreason", "--out", str(tmp_path / "out")]
    with pytest.raises(SystemExit, match="--chat needs --model to be a model dir whose tokenizer has a chat template"):
        peer_trl.main(argv)
    assert not (tmp_path / "none").exists()  # not built as the built-in task's start model
