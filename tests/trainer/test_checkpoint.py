"""Checkpoint integrity: writes are atomic, a failed write (a full disk) leaves the previous checkpoint
loadable and no half checkpoint visible, a damaged newest checkpoint falls back to the previous one,
and a checkpoint of another model / algo / curriculum is refused with a message before any compute."""

from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from rlreason.config import ConfigError
from rlreason.trainer import checkpoint
from rlreason.trainer.checkpoint import list_checkpoints, load_latest, save

ROOT = Path(__file__).resolve().parents[2]
TINY = ROOT / "rlreason" / "model" / "assets" / "tiny-arith"


@pytest.fixture(scope="module")
def policy(tiny_model_dir):
    return AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)


def state(i: int) -> dict:
    return {"iteration": i, "fingerprint": {}, "payload": torch.arange(1000) * i}


def visible(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir())


def disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def assert_loads(root: Path, iteration: int) -> None:
    path, st = load_latest(root)
    assert path.name == f"iter_{iteration:06d}" and st["iteration"] == iteration
    assert torch.equal(st["payload"], torch.arange(1000) * iteration)
    AutoModelForCausalLM.from_pretrained(path / "policy")  # the weights load too


def test_save_is_a_rename_of_a_complete_dir(tmp_path, policy, monkeypatch):
    """Nothing named iter_* exists until its content is complete and fsynced."""
    root = tmp_path / "ckpt"
    seen = []
    real_fsync = checkpoint._fsync_tree

    def spy(path):
        seen.append((path.name, visible(root), sorted(str(p.relative_to(path)) for p in path.rglob("*"))))
        real_fsync(path)

    monkeypatch.setattr(checkpoint, "_fsync_tree", spy)
    save(root, 1, policy, state(1))
    (tmp, names, content), = seen
    assert tmp.startswith(".tmp-iter_000001") and names == [tmp]  # only the temp dir while writing
    assert {"trainer_state.pt", "manifest.json", "policy/config.json", "policy/model.safetensors"} <= set(content)
    assert visible(root) == ["iter_000001", "latest"]
    assert (root / "latest").read_text() == "iter_000001"
    assert_loads(root, 1)


@pytest.mark.parametrize("where", ["torch.save", "save_pretrained", "half-written", "fsync", "rename"])
def test_full_disk_mid_write_keeps_the_previous_checkpoint(tmp_path, policy, monkeypatch, where):
    root = tmp_path / "ckpt"
    save(root, 1, policy, state(1))
    before = {p.name: p.stat().st_mtime_ns for p in (root / "iter_000001").rglob("*")}
    if where == "torch.save":
        monkeypatch.setattr(checkpoint.torch, "save", disk_full)
    elif where == "save_pretrained":
        monkeypatch.setattr(type(policy), "save_pretrained", disk_full)
    elif where == "half-written":  # some bytes reach the disk, then it is full
        real = torch.save

        def partial(obj, f, *a, **k):
            real(obj, f, *a, **k)
            with open(f, "r+b") as fh:
                fh.truncate(100)
            disk_full()

        monkeypatch.setattr(checkpoint.torch, "save", partial)
    elif where == "fsync":
        monkeypatch.setattr(checkpoint.os, "fsync", disk_full)
    else:
        real_rename = Path.rename

        def rename(self, target):
            if self.name.startswith(".tmp-"):
                disk_full()
            return real_rename(self, target)

        monkeypatch.setattr(Path, "rename", rename)
    with pytest.raises(OSError) as info:
        save(root, 2, policy, state(2))
    assert info.value.errno == errno.ENOSPC
    monkeypatch.undo()
    assert visible(root) == ["iter_000001", "latest"]  # no iter_000002, no temp dir
    assert (root / "latest").read_text() == "iter_000001"
    assert {p.name: p.stat().st_mtime_ns for p in (root / "iter_000001").rglob("*")} == before
    assert_loads(root, 1)
    save(root, 2, policy, state(2))  # space is back: the next save works
    assert_loads(root, 2)


def test_failed_resave_of_the_same_iteration_keeps_it(tmp_path, policy, monkeypatch):
    root = tmp_path / "ckpt"
    save(root, 1, policy, state(1))
    save(root, 2, policy, state(2))
    real_rename = Path.rename

    def rename(self, target):
        if self.name.startswith(".tmp-"):  # the new copy cannot be put in place
            disk_full()
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", rename)
    with pytest.raises(OSError):
        save(root, 2, policy, state(2))
    monkeypatch.undo()
    assert visible(root) == ["iter_000001", "iter_000002", "latest"]
    assert_loads(root, 2)


def test_kill_while_resaving_restores_the_set_aside_copy(tmp_path, policy):
    """A kill between setting the old copy aside and renaming the new one in: the next start puts the
    old copy back instead of deleting it."""
    root = tmp_path / "ckpt"
    save(root, 1, policy, state(1))
    save(root, 2, policy, state(2))
    (root / "iter_000002").rename(root / ".old-iter_000002-4242")
    shutil.copytree(root / ".old-iter_000002-4242", root / ".tmp-iter_000002-4242")  # the unfinished new one
    assert_loads(root, 2)
    assert visible(root) == ["iter_000001", "iter_000002", "latest"]


def test_leftovers_of_a_killed_write_are_cleaned(tmp_path, policy):
    root = tmp_path / "ckpt"
    save(root, 1, policy, state(1))
    (root / ".tmp-iter_000002-999" / "policy").mkdir(parents=True)
    (root / ".tmp-iter_000002-999" / "trainer_state.pt").write_bytes(b"\x80half")
    (root / ".latest.tmp").write_text("iter_000002")
    assert_loads(root, 1)
    assert visible(root) == ["iter_000001", "latest"]


@pytest.mark.parametrize("damage", ["truncated-state", "garbage-state", "truncated-weights", "missing-weights",
                                    "missing-config", "empty-dir", "bad-manifest"])
def test_damaged_newest_checkpoint_falls_back_to_the_previous(tmp_path, policy, damage, capsys):
    root = tmp_path / "ckpt"
    save(root, 1, policy, state(1))
    save(root, 2, policy, state(2))
    newest = root / "iter_000002"
    if damage == "truncated-state":
        f = newest / "trainer_state.pt"
        f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    elif damage == "garbage-state":  # same size, other bytes: torch.load itself must refuse it
        f = newest / "trainer_state.pt"
        f.write_bytes(b"\x00" * f.stat().st_size)
    elif damage == "truncated-weights":
        f = newest / "policy" / "model.safetensors"
        f.write_bytes(f.read_bytes()[:-100])
    elif damage == "missing-weights":
        (newest / "policy" / "model.safetensors").unlink()
    elif damage == "missing-config":
        (newest / "policy" / "config.json").unlink()
    elif damage == "empty-dir":
        shutil.rmtree(newest)
        newest.mkdir()
    else:
        (newest / "manifest.json").write_text("{not json")
    assert_loads(root, 1)
    assert f"checkpoint {newest} is damaged" in capsys.readouterr().out


def test_all_damaged_means_no_checkpoint(tmp_path, policy):
    root = tmp_path / "ckpt"
    save(root, 1, policy, state(1))
    (root / "iter_000001" / "trainer_state.pt").write_bytes(b"")
    assert load_latest(root) is None


def test_only_the_last_two_are_kept(tmp_path, policy):
    root = tmp_path / "ckpt"
    for i in range(1, 5):
        save(root, i, policy, state(i))
    assert [p.name for p in list_checkpoints(root)] == ["iter_000003", "iter_000004"]


# --- through the trainer ------------------------------------------------------------------------------


def test_run_resumes_from_the_previous_checkpoint_when_the_newest_is_damaged(make_cfg, tmp_path):
    from rlreason.trainer.loop import train

    overrides = ("engine=hf", "algo=grpo", "trainer.eval_every=100")
    ref = tmp_path / "ref"
    train(make_cfg(*overrides, "trainer.iterations=3"), ref)
    run = tmp_path / "run"
    train(make_cfg(*overrides, "trainer.iterations=2"), run)
    f = run / "checkpoints" / "iter_000002" / "policy" / "model.safetensors"
    f.write_bytes(f.read_bytes()[:-1000])
    train(make_cfg(*overrides, "trainer.iterations=3"), run)  # resumes from iteration 1, redoes 2
    a = load_file(str(ref / "checkpoints" / "iter_000003" / "policy" / "model.safetensors"))
    b = load_file(str(run / "checkpoints" / "iter_000003" / "policy" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    rows = [json.loads(line)["iteration"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert rows == [0, 1, 2, 3]


def test_lora_checkpoint_holds_the_adapter_and_resumes_as_the_uninterrupted_run(make_cfg, tmp_path):
    """learner.lora: policy/ is the adapter alone (no base weights), the optimizer state covers the adapter
    alone, and 3 iterations in one go == 2, stop, resume, 1 more."""
    from rlreason.trainer.loop import train

    overrides = ("engine=hf", "algo=grpo", "trainer.eval_every=100", "learner.lora.r=4", "learner.lr=3e-3")
    full, split = tmp_path / "full", tmp_path / "split"
    train(make_cfg(*overrides, "trainer.iterations=3"), full)
    train(make_cfg(*overrides, "trainer.iterations=2"), split)
    train(make_cfg(*overrides, "trainer.iterations=3"), split)
    a, b = (run / "checkpoints" / "iter_000003" for run in (full, split))
    assert not (a / "policy" / "model.safetensors").exists()
    wa, wb = (load_file(str(c / "policy" / "adapter_model.safetensors")) for c in (a, b))
    assert wa and all(".lora_A." in k or ".lora_B." in k for k in wa)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    assert any(k.endswith("lora_B.weight") and v.abs().max() > 0 for k, v in wa.items())  # the adapter trained
    sa, sb = (torch.load(c / "trainer_state.pt", weights_only=False)["learner"]["optimizer"]["state"] for c in (a, b))
    assert len(sa) == len(wa)  # Adam's moments for the adapter's tensors, none for the base's
    assert all(torch.equal(sa[i]["exp_avg"], sb[i]["exp_avg"]) for i in sa)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, make_cfg):
    from rlreason.trainer.loop import train

    run = tmp_path_factory.mktemp("grpo-run")
    train(make_cfg("engine=hf", "algo=grpo", "trainer.iterations=1", "trainer.eval_every=100"), run)
    return run


@pytest.mark.parametrize(("overrides", "expected"), [
    (["algo=rloo"], "algo.name: checkpoint 'grpo' vs now 'rloo'"),
    (["model=hf", "model.path=" + str(TINY)], f"model.path: checkpoint 'builtin:tiny-arith' vs now '{TINY}'"),
    (["curriculum=learnability"], "curriculum.name: checkpoint 'uniform' vs now 'learnability'"),
    (["curriculum.with_replacement=true"], "curriculum.with_replacement: checkpoint False vs now True"),
    (["data=gsm8k", "data.train_path=/x.jsonl", "data.test_path=/y.jsonl"], "data.name: checkpoint 'arith' vs now 'gsm8k'"),
    (["learner.lora.r=8"], "learner.lora.r: checkpoint 0 vs now 8"),  # a full policy is no adapter
])
def test_incompatible_checkpoint_is_refused_before_compute(finished_run, make_cfg, monkeypatch, overrides, expected):
    import rlreason.data
    import rlreason.engine
    import rlreason.learner.learner
    from rlreason.trainer.build import build

    def heavy(*args, **kwargs):
        raise AssertionError("work started before the checkpoint was checked")

    for mod, name in ((rlreason.engine, "make_engine"), (rlreason.learner.learner, "Learner"),
                      (rlreason.data, "load_questions")):
        monkeypatch.setattr(mod, name, heavy)
    cfg = make_cfg("engine=hf", "algo=grpo", "trainer.iterations=2", *overrides)
    with pytest.raises(ConfigError) as info:
        build(cfg, finished_run)
    msg = str(info.value)
    assert f"checkpoint {finished_run / 'checkpoints' / 'iter_000001'} is incompatible with this config" in msg
    assert expected in msg and "run_name=" in msg
    assert load_latest(finished_run / "checkpoints")[0].name == "iter_000001"  # left as it was


def test_resume_never_refuses_an_existing_run(finished_run, make_cfg):
    from rlreason.trainer.build import build

    with pytest.raises(ConfigError, match="already holds checkpoints and resume=never"):
        build(make_cfg("engine=hf", "algo=grpo", "resume=never"), finished_run)


def test_a_copied_run_dir_resumes_and_another_run_name_is_refused(finished_run, make_cfg, tmp_path, monkeypatch):
    import shutil
    import sqlite3

    import rlreason.engine
    from rlreason.trainer.build import build, store_ids
    from rlreason.trainer.loop import train

    overrides = ("engine=hf", "algo=grpo", "trainer.eval_every=100")
    copy = tmp_path / "moved"
    shutil.copytree(finished_run, copy)
    train(make_cfg(*overrides, "trainer.iterations=2"), copy)  # resumes at the new path
    rows = [json.loads(line)["iteration"] for line in (copy / "metrics.jsonl").read_text().splitlines()]
    assert rows == [0, 1, 2]
    # A store written before the id left the path resumes where it began (its id: run_name | that path)...
    legacy = tmp_path / "legacy"
    shutil.copytree(finished_run, legacy)
    run_name = make_cfg(*overrides).run_name
    con = sqlite3.connect(legacy / "stats.sqlite")
    con.execute("UPDATE meta SET value = ? WHERE key = 'run_id'", (store_ids(run_name, legacy)[1][0],))
    con.commit()
    con.close()
    train(make_cfg(*overrides, "trainer.iterations=2"), legacy)
    assert (legacy / "checkpoints" / "iter_000002").is_dir()
    # ...and a run dir still holds one run: another run_name's store is refused, before any engine starts.
    monkeypatch.setattr(rlreason.engine, "make_engine", lambda *a, **k: pytest.fail("engine started"))
    with pytest.raises(ConfigError, match="a run dir holds one run's stats"):
        build(make_cfg(*overrides, "trainer.iterations=3", "run_name=other"), copy)
