"""Kill -9 a short training run at many moments, restart the same command each time, and check that the
result is the run that was never interrupted.

    python tests/trainer/kill_anywhere.py [--kills 13] [--iterations 8] [--seed 0] [--workdir DIR] [--keep]
                                          [--async-level 0|1] [--lora-rank R] [--lora-sync merged|adapter]
                                          [--env counter|dice|guess] [--engine hf|vllm] [--algo vineppo|ppo|grpo]

1. A reference run (`python -m rlreason.run engine=hf algo=vineppo curriculum=learnability ...`, tiny
   sizes, CPU) goes through uninterrupted in WORKDIR/reference; the phase markers it prints give each
   phase's typical duration.
2. The same command runs in WORKDIR/killed and gets SIGKILLed `--kills` times, restarted after each kill
   until it completes. Each kill has a target: a random delay after start (`time:start`: imports, model
   load), a random moment inside a phase (`phase:X`, X = build (resume: checkpoint load, store and
   metrics truncation), selection, rollout, mc, learner, sync, eval, checkpoint) of the first or second
   iteration after the resume point, right after the store commit (`after:commit`: the store is ahead of
   the checkpoint) or after a checkpoint (`after:checkpoint`), or *inside* a write: the child pauses in
   the SQLite transaction just before its COMMIT (`pause:commit`) or with a complete temp checkpoint not
   yet renamed (`pause:ckpt`), and is killed there. A target that does not come up before the run would
   finish falls back to a kill in the final commit. "landed" is the child's last marker before it died.
   With --async-level 1 (both runs one step off) the producer's phases of iteration t+1 run beside the
   learner of t, so a phase:selection/rollout/mc kill lands in the batch in flight, which resume
   regenerates rather than restores.
3. Checks, killed vs reference: the run finished all iterations; stats.sqlite has the same rows
   (question, iteration, phase, reward, length, policy version, in insertion order), so every attempt of
   every completed iteration is there exactly once; the same questions were selected at every
   iteration (curriculum + RNG continued as if uninterrupted); metrics.jsonl has each iteration once with
   the same values (what the process spent aside: kill_checks.cost_metric); the final policy weights, optimizer and sampler state are equal; no
   temp file is left behind.

The child is `python tests/trainer/kill_anywhere.py --child OVERRIDES...`: it runs `rlreason.run`'s Hydra
main unchanged (same argv), after wrapping a few functions to print `@@mark` lines on stderr (phase
entry/exit) and, for the two pause targets only, to sleep at the named point. Exit status 0 = all checks
passed; the last line of output is a JSON summary.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # run as a script: its sibling modules
from kill_checks import compare, resume_point  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]  # the repository (tests/trainer/ -> ..)
MARK = "@@mark"
PAUSE = "@@pause"

SIZES = [
    "engine=hf", "algo=vineppo", "curriculum=learnability", "curriculum.n_select=2",
    "trainer.questions_per_iteration=4", "rollout.samples_per_question=4", "learner.minibatch_size=8",
    "learner.micro_batch_size=8", "algo.mc_rollouts=2", "trainer.eval_max_questions=8",
    "trainer.eval_samples=2", "trainer.eval_every=2", "trainer.checkpoint_every=1", "trainer.progress=false",
    "rollout.max_new_tokens=48", "rollout.max_gold_cut=null",  # short on purpose: the budget check would refuse it
]
# --env: multi-turn runs (docs/environments.md); small budgets, so that a restart is quick
ENVS = {
    "counter": [f"env.cls={ROOT / 'tests' / 'envs' / 'envs.py'}:Counter"],
    "dice": [f"env.cls={ROOT / 'tests' / 'envs' / 'envs.py'}:Dice"],  # its observations come from its seed
    "guess": ["experiment=guess", "env.max_turns=4", "data.guess.n_train=64", "data.guess.n_test=16"],
}
PHASES = ("build", "selection", "rollout", "mc", "learner", "sync", "eval", "checkpoint")
# kind:name. phase:X = a random moment inside phase X; after:commit = right after the store commit
# (before the metrics line and the checkpoint); pause:X = inside a write; time:start = a delay after start.
TARGETS = [*(f"phase:{p}" for p in PHASES), "after:commit", "after:checkpoint", "pause:commit", "pause:ckpt",
           "time:start"]


# ------------------------------------------------------------------------------------------------ child


def _child(overrides: list[str]) -> None:
    """Run rlreason.run's main with phase markers (and an optional pause) on stderr."""
    t0 = time.monotonic()
    state = {"iteration": 0, "count": defaultdict(int)}
    pause = os.environ.get("KILL_ANYWHERE_PAUSE")  # "commit:K" / "ckpt:K": pause at the K-th one

    def mark(event: str) -> None:
        os.write(2, f"{MARK} {event} {state['iteration']} {time.monotonic() - t0:.3f}\n".encode())

    def maybe_pause(point: str) -> None:
        state["count"][point] += 1
        if pause == f"{point}:{state['count'][point]}":
            os.write(2, f"{PAUSE} {point} {state['iteration']}\n".encode())
            time.sleep(60)  # the driver kills us here

    mark("start")
    from contextlib import contextmanager

    import rlreason.trainer.loop as loop
    from rlreason.curriculum.store import StatsStore
    from rlreason.trainer import checkpoint

    phase_call = loop.Phases.__call__

    @contextmanager
    def phases_call(self, name, *args):
        mark(f">{name}")
        with phase_call(self, name, *args):
            yield
        mark(f"<{name}")

    loop.Phases.__call__ = phases_call

    train_iteration = loop.train_iteration

    def traced_iteration(run, it, phases, *args):
        state["iteration"] = it  # at trainer.async_level=1 the producer's phases of it + 1 are marked with it
        return train_iteration(run, it, phases, *args)

    loop.train_iteration = traced_iteration

    build = loop.build

    def traced_build(*args, **kwargs):
        mark(">build")
        out = build(*args, **kwargs)
        mark("<build")
        return out

    loop.build = traced_build

    class PausingConnection:
        """The store's connection, pausing just before COMMIT: the inserts are done, not committed."""

        def __init__(self, con):
            self._con = con

        def execute(self, sql, *args):
            if sql == "COMMIT":
                maybe_pause("commit")
            return self._con.execute(sql, *args)

        def __getattr__(self, name):
            return getattr(self._con, name)

    commit = StatsStore.commit

    def traced_commit(self, iteration):
        mark(">commit")
        con, self.con = self.con, PausingConnection(self.con)
        try:
            commit(self, iteration)
        finally:
            self.con = con
        mark("<commit")

    StatsStore.commit = traced_commit

    fsync_tree = checkpoint._fsync_tree

    def traced_fsync(path):
        fsync_tree(path)
        maybe_pause("ckpt")  # a complete temp checkpoint, not yet renamed into place

    checkpoint._fsync_tree = traced_fsync

    import runpy

    sys.argv = ["rlreason.run", *overrides]
    try:
        runpy.run_module("rlreason.run", run_name="__main__", alter_sys=True)
    finally:
        mark("exit")


# ----------------------------------------------------------------------------------------------- driver


class Child:
    """One child process; its stdout and stderr lines arrive on a queue as (time, stream, line)."""

    def __init__(self, run_dir: Path, iterations: int, log, pause: str | None = None):
        env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", TOKENIZERS_PARALLELISM="false")
        env.pop("KILL_ANYWHERE_PAUSE", None)
        if pause:
            env["KILL_ANYWHERE_PAUSE"] = pause
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", *SIZES,
               f"trainer.iterations={iterations}", f"hydra.run.dir={run_dir}"]
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, errors="replace")
        self.lines: queue.Queue = queue.Queue()
        self.marks: list[tuple[float, str, int]] = []  # (seconds since start, event, iteration)
        self.tail: list[str] = []
        self.log = log
        self.open_streams = 2
        self.threads = [threading.Thread(target=self._read, args=(s,), daemon=True)
                        for s in (self.proc.stdout, self.proc.stderr)]
        for t in self.threads:
            t.start()

    def _read(self, stream) -> None:
        for line in stream:
            self.lines.put((time.monotonic() - self.t0, line.rstrip("\n")))
        self.lines.put(None)

    def events(self, timeout: float):
        """The next (t, line); None on a timeout tick; "eof" once both streams are closed."""
        if not self.open_streams:
            return "eof"
        try:
            item = self.lines.get(timeout=timeout)
        except queue.Empty:
            return None
        if item is None:
            self.open_streams -= 1
            return None if self.open_streams else "eof"
        t, line = item
        if line.startswith(MARK):
            _, event, it, _ = line.split()
            self.marks.append((t, event, int(it)))
        elif line.strip():
            self.tail = (self.tail + [line])[-40:]
        return item

    def kill(self) -> float:
        self.proc.send_signal(signal.SIGKILL)
        return time.monotonic() - self.t0

    def wait(self, timeout: float) -> int:
        rc = self.proc.wait(timeout)
        for t in self.threads:
            t.join(5)
        while self.events(0.1) != "eof":  # every line the child wrote before it died
            pass
        return rc

    def last_mark(self) -> str:
        if not self.marks:
            return "before any marker (interpreter start)"
        _, event, it = self.marks[-1]
        if event.startswith(">"):
            return f"inside {event[1:]} (iteration {it})"
        if event.startswith("<"):
            return f"after {event[1:]} (iteration {it})"
        if event == "start":
            return "in imports / config composition (iteration 0)"
        return f"{event} (iteration {it})"


def durations(marks: list[tuple[float, str, int]]) -> dict[str, float]:
    """Mean seconds per phase from one run's markers."""
    open_at: dict[str, float] = {}
    spans: dict[str, list[float]] = defaultdict(list)
    for t, event, _ in marks:
        if event.startswith(">"):
            open_at[event[1:]] = t
        elif event.startswith("<") and event[1:] in open_at:
            spans[event[1:]].append(t - open_at.pop(event[1:]))
    return {k: sum(v) / len(v) for k, v in spans.items()}


def run_reference(run_dir: Path, iterations: int, log) -> tuple[dict[str, float], float]:
    child = Child(run_dir, iterations, log)
    while child.events(1.0) != "eof":
        pass
    rc = child.wait(60)
    if rc != 0:
        raise SystemExit(f"reference run failed (rc {rc}):\n" + "\n".join(child.tail))
    return durations(child.marks), time.monotonic() - child.t0


def one_kill(run_dir: Path, iterations: int, target: str, occurrence: int, typical: dict[str, float],
             rng: random.Random, log, child_timeout: float) -> dict:
    """Start the run, kill it at `target` (its `occurrence`-th time in this process), wait for it."""
    kind, name = target.split(":")
    pause = f"{name}:{occurrence}" if kind == "pause" else None
    before = resume_point(run_dir)
    child = Child(run_dir, iterations, log, pause)
    seen = 0
    deadline = None  # child-relative time to kill at
    delay = 0.0
    if kind == "time":
        delay = rng.uniform(0.5, 6.0)  # imports, model load, resume
        deadline = delay
    killed_at = None
    while True:
        item = child.events(0.005)
        now = time.monotonic() - child.t0
        if item == "eof":
            break
        if deadline is not None and now >= deadline:
            killed_at = child.kill()
            break
        if now > child_timeout:
            child.kill()
            raise SystemExit(f"child did not reach its kill target {target} in {child_timeout} s:\n"
                             + "\n".join(child.tail))
        if not isinstance(item, tuple):
            continue
        line = item[1]
        if kind == "pause" and line.startswith(PAUSE):
            killed_at = child.kill()
            break
        if not line.startswith(MARK):
            continue
        _, event, it, _ = line.split()
        still_to_come = kind == "pause" or name in ("commit", "checkpoint") or (kind == "phase" and deadline is not None)
        if event == ">commit" and int(it) == iterations and not still_to_come:
            # The target did not come up (e.g. no second eval left): kill in the final commit rather
            # than let the run finish with a kill unspent.
            target, delay = f"{target} -> fallback", 0.0
            killed_at = child.kill()
            break
        if kind == "phase" and event == f">{name}":
            seen += 1
            if seen == occurrence:
                delay = rng.uniform(0.0, 0.5 * typical.get(name, 0.05))  # early in the phase: it may run short
                deadline = now + delay
        elif kind == "after" and event == f"<{name}":
            seen += 1
            if seen == occurrence:
                killed_at = child.kill()
                break
    rc = child.wait(60)
    return {"target": target, "occurrence": occurrence, "delay_s": round(delay, 3),
            "killed_at_s": None if killed_at is None else round(killed_at, 2), "rc": rc,
            "landed": child.last_mark(), "resume_before": before, "resume_after": resume_point(run_dir),
            "tail": child.tail}


# ------------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kills", type=int, default=len(TARGETS), help="default: each target once")
    ap.add_argument("--iterations", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0, help="seed of the kill schedule (not of the run)")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--keep", action="store_true", help="keep the work dir")
    ap.add_argument("--child-timeout", type=float, default=150.0)
    ap.add_argument("--async-level", type=int, default=0, help="trainer.async_level of both runs")
    ap.add_argument("--lora-rank", type=int, default=0, help="learner.lora.r of both runs (0: full fine-tuning)")
    ap.add_argument("--lora-sync", choices=("merged", "adapter"), default="merged",
                    help="learner.lora.sync of both runs; adapter runs engine=vllm (vLLM's LoRA), not engine=hf")
    ap.add_argument("--env", choices=tuple(ENVS), default=None,
                    help="a multi-turn run (env.cls): counter / dice = tests/envs/envs.py:Counter / Dice (seeded) "
                         "on the arithmetic task, guess = experiment=guess (the hidden-number game, model=tiny_guess)")
    ap.add_argument("--engine", choices=("hf", "vllm"), default="hf",
                    help="engine of both runs (vllm: each restart starts one, ~30-60 s on a CPU)")
    ap.add_argument("--algo", choices=("vineppo", "ppo", "grpo"), default="vineppo", help="algo of both runs")
    ap.add_argument("--targets", default=",".join(TARGETS),
                    help=f"comma-separated kill targets, cycled (default: all of {', '.join(TARGETS)})")
    args = ap.parse_args(argv)
    if args.kills < 1 or args.iterations < 2:
        ap.error("need --kills >= 1 and --iterations >= 2")
    SIZES.append(f"trainer.async_level={args.async_level}")  # the children's command line
    if args.lora_rank:  # a checkpoint of adapters + their optimizer only; lr x 10 (docs/lora.md)
        SIZES.extend([f"learner.lora.r={args.lora_rank}", "learner.lr=3e-4", f"learner.lora.sync={args.lora_sync}"])
    if args.lora_sync == "adapter":  # the engine serves the adapter: vLLM's LoRA, each child starts one
        if not args.lora_rank:
            ap.error("--lora-sync adapter needs --lora-rank > 0")
        args.engine = "vllm"
    SIZES[SIZES.index("engine=hf")] = f"engine={args.engine}"
    SIZES[SIZES.index("algo=vineppo")] = f"algo={args.algo}"
    if args.env:
        SIZES.extend(ENVS[args.env])
    targets = args.targets.split(",")
    if unknown := set(targets) - set(TARGETS):
        ap.error(f"unknown targets {sorted(unknown)}")

    work = args.workdir or Path(tempfile.mkdtemp(prefix="kill-anywhere-"))
    work.mkdir(parents=True, exist_ok=True)
    ref, killed = work / "reference", work / "killed"
    for d in (ref, killed):
        if d.exists():
            raise SystemExit(f"{d} exists: use a fresh --workdir")

    def log(msg: str) -> None:
        print(msg, flush=True)

    t_start = time.monotonic()
    typical, ref_s = run_reference(ref, args.iterations, log)
    log(f"reference run: {ref_s:.1f} s; mean phase seconds: "
        + ", ".join(f"{k} {v:.3f}" for k, v in sorted(typical.items())))

    rng = random.Random(args.seed)
    schedule = [targets[i % len(targets)] for i in range(args.kills)]
    rng.shuffle(schedule)
    kills: list[dict] = []
    for n, target in enumerate(schedule, 1):
        remaining = args.iterations - resume_point(killed)
        kills_left = args.kills - n + 1
        # Progress is needed to use every kill and still finish: the second iteration after the resume
        # point lets one complete; the first makes none. Never complete the run before the last kill.
        p_progress = min(1.0, max(0.0, (remaining - 1) / kills_left))
        occurrence = 2 if rng.random() < p_progress else 1
        if target in ("phase:build", "time:start") or (target == "after:commit" and remaining <= 1):
            occurrence = 1  # once per process / the last iteration's commit
        result = one_kill(killed, args.iterations, target, occurrence, typical, rng, log, args.child_timeout)
        kills.append(result)
        log(f"kill {n:2d}: {result['target']:<16} #{occurrence} delay {result['delay_s']:6.3f}s -> landed "
            f"{result['landed']:<34} resume {result['resume_before']} -> {result['resume_after']}"
            + ("" if result["rc"] == -signal.SIGKILL else f"  (rc {result['rc']}: NOT killed)"))
        if result["rc"] != -signal.SIGKILL:
            if result["rc"] != 0:
                log("\n".join(result["tail"]))
                raise SystemExit(f"child exited with {result['rc']} instead of being killed")
            break  # finished before the kill landed

    restarts = 0
    while resume_point(killed) < args.iterations or not (killed / "summary.json").exists():
        restarts += 1
        if restarts > 3:
            raise SystemExit("the killed run did not finish after 3 clean restarts")
        child = Child(killed, args.iterations, log)
        while child.events(1.0) != "eof":
            pass
        rc = child.wait(60)
        if rc != 0:
            raise SystemExit(f"resumed run failed (rc {rc}):\n" + "\n".join(child.tail))
        log(f"final restart: rc 0 from iteration {kills[-1]['resume_after'] if kills else 0}, "
            f"{time.monotonic() - child.t0:.1f} s")

    checks = compare(ref, killed, args.iterations)
    n_killed = sum(k["rc"] == -signal.SIGKILL for k in kills)
    landed = defaultdict(int)
    for k in kills:
        if k["rc"] == -signal.SIGKILL:
            landed[k["landed"].split(" (")[0]] += 1
    for k, v in checks.items():
        if k != "ok":
            log(f"check {k}: {v}")
    ok = checks["ok"] and n_killed >= args.kills
    summary = {"ok": ok, "kills": n_killed, "landed": dict(landed), "wall_s": round(time.monotonic() - t_start, 1),
               "workdir": str(work)}
    log(json.dumps(summary))
    if not args.keep and ok:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child(sys.argv[2:])
    else:
        sys.exit(main())
