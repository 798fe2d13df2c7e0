"""Bad input -> one clear error, before any compute.

Three layers, each a table: the command line (`python -m rlreason.run ...`: exit status 2, one
`rlreason:` message on stderr, no traceback, no training files), the config checks (`validate`), and
the run's build (`rlreason.trainer.build.build`) with the engine and the learner rigged to fail the test
if they are ever constructed: every input problem must be found before them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from rlreason.config import ConfigError, register_configs
from rlreason.data import DataError
from rlreason.validate import validate
from tests.trainer.conftest import CONF, SMALL

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "rlreason" / "model" / "assets" / "tiny-arith"
GSM8K_ROW = {"question": "Tom has 3 apples and buys 4. How many?", "answer": "3 + 4 = 7\n#### 7"}


def compose_cfg(*overrides: str):
    register_configs()
    with initialize_config_dir(config_dir=CONF, version_base=None):
        return compose("config", overrides=[*SMALL, *overrides])


# --- the command line -------------------------------------------------------------------------------


def cli(tmp_path: Path, *args: str, run_dir: Path | None = None, env: dict[str, str] | None = None,
        engine: str = "hf", module: str = "rlreason.run") -> tuple[subprocess.CompletedProcess, float, Path]:
    """`python -m rlreason.run engine=hf ARGS` (or `module`'s), with `env` added to the environment."""
    run_dir = run_dir or tmp_path / "run"
    env = dict(os.environ, OMP_NUM_THREADS="1", RLREASON_CACHE=str(tmp_path / "cache"), **(env or {}))
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", module, f"engine={engine}", *args, f"hydra.run.dir={run_dir}"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    return proc, time.perf_counter() - start, run_dir


def write_lines(path: Path, lines: list[str | bytes]) -> Path:
    path.write_bytes(b"".join((x if isinstance(x, bytes) else x.encode()) + b"\n" for x in lines))
    return path


GOOD = json.dumps(GSM8K_ROW)

# (id, overrides, substrings of the message). The light ones stop in the preflight (no torch import).
CLI_CASES = [
    ("typo-key", ["trainer.iteratons=3"], ["unknown config key trainer.iteratons", "did you mean trainer.iterations?"]),
    ("appended-typo-key", ["+trainer.iteratons=3"], ["unknown config key trainer.iteratons", "did you mean"]),
    ("appended-top-key", ["+foo=1"], ["unknown config key foo"]),
    ("typo-group-option", ["algo=vinepo"], ["Could not find 'algo/vinepo'", "vineppo"]),
    ("wrong-type", ["trainer.iterations=three"], ["trainer.iterations", "could not be converted to Integer"]),
    ("wrong-node-type", ["trainer=3"], ["trainer", "not a subclass of TrainerConfig"]),
    ("typo-value", ["logger.mode=offine"], ["logger.mode='offine' is not one of", "did you mean offline?"]),
    ("minibatch", ["learner.minibatch_size=7", "learner.micro_batch_size=7"],
     ["learner.minibatch_size=7 does not divide the 128 episodes per iteration"]),
    ("k-zero", ["algo.mc_rollouts=0"], ["algo.mc_rollouts=0 must be >= 1"]),
    ("startup-timeout-zero", ["reward.startup_timeout_s=0"], ["reward.startup_timeout_s=0.0 must be > 0"]),
    ("hf-without-path", ["model=hf"], ["model.path must be set (model=hf model.path=HUB_ID_OR_DIR)"]),
    # vLLM's own TP workers in one process: it used to end in a traceback at engine start (issue 20)
    ("tp-in-one-process", ["engine=vllm", "engine.tensor_parallel_size=2", "trainer.iterations=1"],
     ["engine.tensor_parallel_size=2 needs torchrun", "torchrun --nproc-per-node=2 -m rlreason.run"]),
]


@pytest.mark.parametrize(("overrides", "expected"), [c[1:] for c in CLI_CASES], ids=[c[0] for c in CLI_CASES])
def test_cli_config_errors(tmp_path, overrides, expected):
    proc, elapsed, run_dir = cli(tmp_path, *overrides)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    assert proc.stderr.startswith("rlreason: ") and proc.stderr.count("rlreason: ") == 1, proc.stderr
    for text in expected:
        assert text in proc.stderr, (text, proc.stderr)
    assert "HYDRA_FULL_ERROR" not in proc.stderr  # not Hydra's report: ours, exit 2
    # Nothing ran: no store, metrics or checkpoint; composing and checking takes about a second.
    assert not any((run_dir / name).exists() for name in ("stats.sqlite", "metrics.jsonl", "checkpoints"))
    assert elapsed < 30, elapsed


REWARD_FN_CASES = [
    ("no-file", "tests/no_such_reward.py:f", ["reward.fn:", "tests/no_such_reward.py: no such file"]),
    ("no-name", "rlreason/reward/countdown.py:nope", ["countdown.py has no 'nope' (it has", "countdown_reward"]),
    ("wrong-arity", "rlreason/reward/countdown.py:parse", ["countdown.py:parse(expr: 'str')",
                                                          "cannot take (response: str, record: dict)"]),
    ("import-error", "not_a_module_xyz.rewards:f", ["module not_a_module_xyz.rewards failed to import",
                                                   "ModuleNotFoundError"]),
    ("no-colon", "rewards.py", ["expected PATH.py:NAME or package.module:NAME"]),
]


@pytest.mark.parametrize(("spec", "expected"), [c[1:] for c in REWARD_FN_CASES], ids=[c[0] for c in REWARD_FN_CASES])
def test_cli_unusable_reward_fn_is_one_line_before_any_compute(tmp_path, spec, expected):
    proc, elapsed, run_dir = cli(tmp_path, f"reward.fn={spec}")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("rlreason: ") and proc.stderr.strip().count("\n") == 0, proc.stderr
    for text in expected:
        assert text in proc.stderr, (text, proc.stderr)
    assert not any((run_dir / name).exists() for name in ("stats.sqlite", "metrics.jsonl", "checkpoints"))
    assert elapsed < 30, elapsed


def test_cli_reward_fn_hanging_at_import_is_one_line_naming_it_and_the_deadline(tmp_path):
    hangs = tmp_path / "hangs.py"
    hangs.write_text("import time\ntime.sleep(600)\ndef f(response, record):\n    return 1.0\n")
    proc, elapsed, run_dir = cli(tmp_path, f"reward.fn={hangs}:f", "reward.startup_timeout_s=3")
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("rlreason: ") and proc.stderr.strip().count("\n") == 0, proc.stderr
    assert f"importing {hangs}:f did not finish within reward.startup_timeout_s=3 s" in proc.stderr
    assert not any((run_dir / name).exists() for name in ("stats.sqlite", "metrics.jsonl", "checkpoints"))
    assert elapsed < 3 + 30, elapsed


def test_cli_unwritable_run_dir(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("a regular file, so nothing can be created below it (even as root)")
    proc, _, _ = cli(tmp_path, "trainer.iterations=1", run_dir=blocker / "run")
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"output dir {blocker / 'run'} is not writable" in proc.stderr and "hydra.run.dir=" in proc.stderr


def test_cli_data_error_names_file_and_line(tmp_path):
    bad = write_lines(tmp_path / "train.jsonl", [GOOD, GOOD, '{"question": "q", "answer": '])
    good = write_lines(tmp_path / "test.jsonl", [GOOD])
    proc, _, run_dir = cli(tmp_path, "data=gsm8k", f"data.train_path={bad}", f"data.test_path={good}",
                           "trainer.iterations=1")
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert f"rlreason: {bad}:3: bad JSON" in proc.stderr
    assert not (run_dir / "stats.sqlite").exists() and not (run_dir / "checkpoints").exists()


def test_cli_dry_run_still_works(tmp_path):
    """The preflight does not get in the way of a good command."""
    proc, _, _ = cli(tmp_path, "dry_run=true", "algo=grpo")
    assert proc.returncode == 0, proc.stderr
    assert "dry run: would train algo=grpo" in proc.stdout


# --- validate() -------------------------------------------------------------------------------------

VALIDATE_CASES = [
    ("minibatch", ["learner.minibatch_size=6", "learner.micro_batch_size=6"],
     ["learner.minibatch_size=6 does not divide the 16 episodes per iteration",
      "trainer.questions_per_iteration=4 x rollout.samples_per_question=4"]),
    ("micro", ["learner.micro_batch_size=3"], ["learner.micro_batch_size=3 does not divide learner.minibatch_size=8"]),
    ("k-zero", ["algo.mc_rollouts=0"], ["algo.mc_rollouts=0 must be >= 1"]),
    ("startup-timeout-zero", ["reward.startup_timeout_s=0"], ["reward.startup_timeout_s=0.0 must be > 0"]),
    ("k-negative", ["algo.mc_rollouts=-2"], ["algo.mc_rollouts=-2 must be >= 1"]),
    ("pool-factor", ["curriculum.pool_factor=0"], ["curriculum.pool_factor=0 must be >= 1"]),
    ("samples", ["rollout.samples_per_question=0"], ["rollout.samples_per_question=0 must be >= 1"]),
    ("group-baseline", ["algo=grpo", "rollout.samples_per_question=1", "learner.minibatch_size=4",
                        "learner.micro_batch_size=4"], ["algo=grpo needs rollout.samples_per_question >= 2"]),
    ("choice", ["logger.mode=offine"], ["logger.mode='offine' is not one of", "did you mean offline?"]),
    ("dtype", ["model.dtype=fp16"], ["model.dtype='fp16' is not one of"]),
    ("temperature", ["rollout.temperature=0"], ["rollout.temperature=0.0 must be > 0"]),
    ("top-p", ["rollout.top_p=1.5"], ["rollout.top_p=1.5 must be in (0, 1]"]),
    ("lr", ["learner.lr=-1e-5"], ["learner.lr=-1e-05 must be > 0"]),
    ("eval-subset", ["trainer.eval_max_questions=-3"], ["trainer.eval_max_questions=-3 must be >= 1, or null"]),
    ("max-train", ["data.max_train=0"], ["data.max_train=0 must be >= 1, or null"]),
    ("grader-deadline", ["reward.timeout_s=0"], ["reward.timeout_s=0.0 must be > 0"]),
    ("grader-workers", ["reward.workers=0"], ["reward.workers=0 must be >= 1"]),
    ("model-len", ["rollout.max_new_tokens=256"], ["rollout.max_new_tokens=256 leaves no room for the prompt",
                                                   "model.max_model_len=256"]),
    ("generated", ["data=gsm8k", "data.source=generated"], ["data=gsm8k has no generator"]),
    ("template", ["data.prompt_template=no placeholder"], ["data.prompt_template must contain '{problem}'"]),
    ("tiny-build-on-another-model", ["model.path=/models/mine"],
     ["model.path=/models/mine is not the builtin tiny model", "use model=hf model.path=..."]),
    ("checker", ["reward.checker=regex"], ["reward.checker='regex' is not one of auto, math, hash, exact"]),
    ("jsonl-fields", ["data=jsonl", "data.train_path=a.jsonl", "data.test_path=b.jsonl", "data.fields.answer="],
     ["data=jsonl needs data.fields.answer", "unless a reward function grades from the record: reward.fn="]),
    ("jsonl-no-problem", ["data=jsonl", "data.train_path=a.jsonl", "data.test_path=b.jsonl", "data.fields.problem="],
     ["data=jsonl needs data.fields.problem", "or data.fields.problem_template"]),
    ("weights-without-fn", ["reward.weights={format: 0.5}"], ["reward.weights and reward.batched apply to a reward function"]),
    ("jsonl-no-files", ["data=jsonl"], ["data.train_path is unset and there is no hub id"]),
    ("appended-key", ["+learner.lr_warmup=3"], ["unknown config key learner.lr_warmup"]),
    ("appended-secret-key", ["+logger.api_key=sk-live-0123456789abcdefghij"], ["unknown config key logger.api_key"]),
]


@pytest.mark.parametrize(("overrides", "expected"), [c[1:] for c in VALIDATE_CASES], ids=[c[0] for c in VALIDATE_CASES])
def test_validate_rejects(overrides, expected):
    cfg = compose_cfg(*overrides)
    with pytest.raises(ConfigError) as info:
        validate(cfg)
    message = str(info.value)
    for text in expected:
        assert text in message, (text, message)
    assert "sk-live" not in message  # a rejected value is not echoed when its key looks secret


def test_validate_lists_every_problem_at_once():
    cfg = compose_cfg("algo.mc_rollouts=0", "rollout.temperature=-1", "learner.micro_batch_size=3")
    with pytest.raises(ConfigError) as info:
        validate(cfg)
    assert str(info.value).count("\n  - ") == 3


@pytest.mark.parametrize("overrides", [[], ["algo=ppo"], ["algo=grpo", "curriculum=learnability"], ["logger=wandb"],
                                       ["experiment=paper", "model=rho1b_sft_math", "data=math"]])
def test_validate_accepts_the_shipped_configs(overrides):
    """The new checks (unknown keys, sizes) do not reject what the project ships."""
    register_configs()
    with initialize_config_dir(config_dir=CONF, version_base=None):
        validate(compose("config", overrides=overrides))


# --- build(): data, model, tokenizer, run dir; before the engine and the learner ----------------------


@pytest.fixture
def no_heavy(monkeypatch):
    """Fail the test if build() gets as far as the engine or the learner."""
    import rlreason.engine
    import rlreason.learner.learner

    def heavy(*args, **kwargs):
        raise AssertionError("heavy work started before the input was checked")

    monkeypatch.setattr(rlreason.engine, "make_engine", heavy)
    monkeypatch.setattr(rlreason.learner.learner, "Learner", heavy)


def build_error(tmp_path: Path, *overrides: str, run_dir: Path | None = None) -> Exception:
    from rlreason.trainer.build import build

    cfg = compose_cfg("engine=hf", f"cache_dir={tmp_path / 'cache'}", *overrides)
    validate(cfg)
    with pytest.raises((ConfigError, DataError)) as info:
        build(cfg, run_dir or tmp_path / "run")
    return info.value


def gsm8k(train: Path, test: Path | None = None) -> list[str]:
    return ["data=gsm8k", f"data.train_path={train}", f"data.test_path={test or train}"]


DATA_CASES = [
    ("empty", [], "{f}: empty file, no rows"),
    ("blank-lines", ["", "   ", ""], "{f}: empty file, no rows"),
    ("bad-json", [GOOD, '{"question": "q", "answer": "#### 1"', GOOD], "{f}:2: bad JSON"),
    ("not-an-object", [GOOD, "[1, 2, 3]"], "{f}:2: expected a JSON object, got list"),
    ("missing-field", [GOOD, GOOD, json.dumps({"question": "q"})], "{f}:3: missing field 'answer' (has question)"),
    ("wrong-type", [json.dumps({"question": "q", "answer": 7})], "{f}:1: field 'answer' should be a string, got int"),
    ("no-final-answer", [json.dumps({"question": "q", "answer": "it is 7"})], "{f}:1: field 'answer' has no '#### N'"),
    ("empty-field", [json.dumps({"question": " ", "answer": "#### 7"})], "{f}:1: field 'question' is empty"),
    ("not-utf8", [GOOD, b"\xff\xfe\x00garbage"], "{f}:2: not UTF-8 text"),
]


@pytest.mark.parametrize(("lines", "expected"), [c[1:] for c in DATA_CASES], ids=[c[0] for c in DATA_CASES])
def test_bad_dataset_file(tmp_path, no_heavy, lines, expected):
    bad = write_lines(tmp_path / "train.jsonl", lines) if lines else tmp_path / "train.jsonl"
    if not lines:
        bad.write_bytes(b"")
    good = write_lines(tmp_path / "test.jsonl", [GOOD])
    err = build_error(tmp_path, *gsm8k(bad, good))
    assert isinstance(err, DataError)
    assert expected.format(f=bad) in str(err), str(err)
    assert not (tmp_path / "run" / "stats.sqlite").exists()


def test_missing_dataset_file(tmp_path, no_heavy):
    err = build_error(tmp_path, *gsm8k(tmp_path / "nope.jsonl", write_lines(tmp_path / "t.jsonl", [GOOD])))
    assert f"{tmp_path / 'nope.jsonl'}: no such file" in str(err)


def test_bad_test_split_is_found_too(tmp_path, no_heavy):
    bad = write_lines(tmp_path / "test.jsonl", [GOOD, "{oops"])
    err = build_error(tmp_path, *gsm8k(write_lines(tmp_path / "train.jsonl", [GOOD] * 4), bad))
    assert f"{bad}:2: bad JSON" in str(err)


def test_pool_larger_than_train_split(tmp_path, no_heavy):
    err = build_error(tmp_path, "curriculum=learnability", "data.arith.n_train=8")
    msg = str(err)
    assert "curriculum pool (curriculum.pool_factor=4 x trainer.questions_per_iteration=4) is larger than " \
           "the train split (8 questions)" in msg and "lower one of them" in msg


def test_batch_larger_than_train_split(tmp_path, no_heavy):
    err = build_error(tmp_path, "curriculum=uniform", "data.arith.n_train=3")
    assert "trainer.questions_per_iteration=4 is larger than the train split (3 questions)" in str(err)


@pytest.mark.parametrize("path", ["/nonexistent/model-dir", "./not/here", "builtin:tiny-other"])
def test_missing_model(tmp_path, no_heavy, path):
    err = build_error(tmp_path, *(["model=hf"] if not path.startswith("builtin:") else []), f"model.path={path}")
    assert isinstance(err, ConfigError)
    assert path in str(err) and "set model.path" in str(err)


def test_directory_without_a_model(tmp_path, no_heavy):
    empty = tmp_path / "empty-model"
    empty.mkdir()
    err = build_error(tmp_path, "model=hf", f"model.path={empty}")
    assert f"cannot load model/tokenizer from {str(empty)!r}" in str(err)


def test_tokenizer_bigger_than_model_vocab(tmp_path, no_heavy):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(TINY))
    vocab = len(tok)
    tok.add_tokens([f"<extra_{i}>" for i in range(10)])
    tok.save_pretrained(tmp_path / "big-tokenizer")
    err = build_error(tmp_path, f"model.tokenizer={tmp_path / 'big-tokenizer'}")
    msg = str(err)
    assert f"has {vocab + 10} tokens but model" in msg and f"vocabulary of {vocab}" in msg
    assert "set model.tokenizer" in msg


def test_tokenizer_without_eos(tmp_path, no_heavy):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(TINY))
    tok.eos_token = None
    tok.save_pretrained(tmp_path / "no-eos")
    err = build_error(tmp_path, f"model.tokenizer={tmp_path / 'no-eos'}")
    assert "has no eos token" in str(err) and "set model.tokenizer" in str(err)


def test_context_longer_than_the_model(tmp_path, no_heavy):
    err = build_error(tmp_path, "model=hf", f"model.path={TINY}", "model.max_model_len=4096")
    assert "model.max_model_len=4096 is more than model" in str(err)
    assert "(max_position_embeddings=256): set model.max_model_len=256 or less, or null" in str(err)


def test_unwritable_run_dir(tmp_path, no_heavy):
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    err = build_error(tmp_path, run_dir=blocker / "run")
    assert f"output dir {blocker / 'run'} is not writable" in str(err)


def test_resume_must_without_checkpoint(tmp_path, no_heavy):
    err = build_error(tmp_path, "resume=must")
    assert "resume=must but" in str(err) and "holds no checkpoint" in str(err)


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu(tmp_path, no_heavy):
    err = build_error(tmp_path, "device=cuda")
    assert "device=cuda but no CUDA device is visible" in str(err)


@pytest.mark.parametrize("overrides, share", [(["rollout.max_new_tokens=12"], "99%"),
                                              (["data=countdown", "model=tiny_countdown", "rollout.max_new_tokens=12"],
                                               "100%")])
def test_a_budget_that_cuts_the_gold_solutions_stops_before_compute(tmp_path, no_heavy, overrides, share):
    """Tried as a new user would: Countdown at 12 tokens used to train a whole iteration on cut responses."""
    err = build_error(tmp_path, *overrides)
    assert isinstance(err, ConfigError)
    data = "countdown" if "data=countdown" in overrides else "arith"
    assert f"rollout.max_new_tokens=12 cuts {share} of data={data}'s gold solutions" in str(err), str(err)
    # rollout.max_gold_cut=null trains at that budget anyway: the build goes on to the engine
    from rlreason.trainer.build import build

    with pytest.raises(AssertionError, match="heavy work started"):
        build(compose_cfg("engine=hf", f"cache_dir={tmp_path / 'cache'}", *overrides, "rollout.max_gold_cut=null"),
              tmp_path / "run2")
