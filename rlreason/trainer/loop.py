"""The training loop. One iteration, top to bottom:

    sample questions (curriculum) -> roll out N responses each (engine) -> grade (reward)
    -> advantages (algo) -> PPO update (learner) -> push weights into the engine (sync)
    -> periodic eval -> stats store commit -> checkpoint

The first four steps are the producer's (rlreason/trainer/produce.py): with trainer.async_level=1 they
build the next iteration's batch on a thread while the learner updates on this one (`train_iteration`).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import defaultdict
from contextlib import contextmanager
from pathlib import Path

from hydra.core.hydra_config import HydraConfig
from tqdm import tqdm

from rlreason.curriculum import attempts_from_groups as attempts
from rlreason.distributed import SyncMeter
from rlreason.envs.setup import env_metrics
from rlreason.seeds import SeedStream
from rlreason.trainer.build import Run, build, save_checkpoint
from rlreason.trainer.evaluate import component_means, evaluate, headline
from rlreason.trainer.produce import Batch, Producer
from rlreason.trainer.truncation import TruncationWatch

logger = logging.getLogger(__name__)
GRADED = ("selection", "rollout", "mc", "advantages")


class Phases:
    """Wall-clock seconds per phase; training's grading time is split out of whichever phase it happened in.
    The eval keeps its own grading, so the training phases (all but eval and checkpoint) sum to training's
    wall clock (experiments/sweep_report.py's seconds axis)."""

    def __init__(self, grader, seconds: dict[str, float]):
        self.grader, self.seconds = grader, defaultdict(float, seconds)
        # At trainer.async_level=1 the producer's phases end on its thread while the learner's run: each
        # addition to the totals is a read-modify-write, and one thread's must not overwrite the other's.
        self._lock = threading.Lock()

    @contextmanager
    def __call__(self, name: str, tally: dict[str, float] | None = None):
        """`tally`: a dict of one thread's own that gets the phase's seconds too (a batch's, produce.py)."""
        t0, g0 = time.perf_counter(), self.grader.seconds
        yield
        # Only the producer's phases grade; at trainer.async_level=1 they run beside the learner's, whose
        # time must not lose the producer's grading. (At level 1 the phases overlap: they sum to more than
        # the wall clock.)
        graded = self.grader.seconds - g0 if name in GRADED else 0.0
        spent = {name: time.perf_counter() - t0 - graded, "grading": graded}
        with self._lock:
            for k, v in spent.items():
                self.seconds[k] += v
        if tally is not None:
            for k, v in spent.items():
                tally[k] = tally.get(k, 0.0) + v


def run_eval(run: Run, iteration: int, phases: Phases) -> dict[str, float]:
    t = run.cfg.trainer
    # Eval phases have their own seed blocks in the iteration's space (rlreason/seeds.py).
    run.roller.seeds = SeedStream(run.cfg.seed, iteration)
    with phases("eval"):
        metrics, groups, greedy = evaluate(run.roller, run.eval_questions, t.eval_samples, t.eval_temperature, t.eval_greedy,
                                   t.eval_top_p, t.eval_headline)
    run.store.add(attempts(groups, iteration, "eval", run.learner.version))
    run.store.add(attempts(greedy, iteration, "eval_greedy", run.learner.version))
    rows = [[ep.question.problem, ep.text, ep.question.answer, ep.reward] for g in groups[: run.cfg.logger.log_samples]
            for ep in g[:1]]
    run.logger.table("eval/samples", ["problem", "response", "gold", "reward"], rows, iteration)
    run.state["evals"].append({"iteration": iteration, **metrics})
    return metrics


def train_iteration(run: Run, it: int, phases: Phases, producer: Producer | None = None) -> dict[str, float]:
    """One iteration. The schedule (trainer.async_level, rlreason/trainer/produce.py): at 0 the batch is
    produced here and now; at 1 it was produced during the previous iteration, and the next one is
    produced while the learner trains on this one, under the weights the engine still holds."""
    producer = producer or Producer(run, phases, level=0)
    batch = producer.take(it)
    producer.start(it + 1)  # level 1 only: on the producer's thread
    metrics = dict(batch.metrics) | learn(run, batch, phases, producer.level)
    producer.join()  # one behaviour policy per batch: the weights change only once the next one is complete
    with phases("sync"), SyncMeter(metrics):
        run.engine.wake_up()
        run.engine.sync_weights(run.learner.named_weights(), run.learner.version)
        run.roller.version, run.weights_iteration = run.learner.version, it
    if producer.level:
        # Iterations between the weights that sampled the batch and the weights it updated (0 in line, 1
        # one step off after the first), and the learner's pi_old against the behaviour log-probs per token.
        metrics["async/staleness"] = float(it - 1 - batch.weights_iteration)
        metrics["async/logprob_gap"] = metrics.get("learner/logprob_mismatch", 0.0)
    return metrics | outcome_metrics(run, batch, it)


def learn(run: Run, batch: Batch, phases: Phases, level: int) -> dict[str, float]:
    with phases("learner"):
        if not level:  # at level 1 the engine generates through the update: it cannot give up its memory
            run.engine.sleep()  # engine.sleep_mode on GPUs: the update gets the engine's memory (no-op on CPU)
        return {f"learner/{k}": v for k, v in run.learner.update(batch.episodes, batch.tree).items()}


def outcome_metrics(run: Run, batch: Batch, it: int) -> dict[str, float]:
    metrics: dict[str, float] = {}
    groups, episodes = batch.groups, batch.episodes
    run.store.add(attempts(groups, it, "train", batch.behaviour))  # the policy that sampled them
    rewards = [ep.reward for ep in episodes]
    advs = [a for ep in episodes for a in ep.advantages]
    metrics |= component_means(episodes, "reward") | env_metrics(episodes)
    metrics |= {
        "train/reward": sum(rewards) / len(rewards),
        "train/success": sum(ep.solved for ep in episodes) / len(episodes),
        "train/response_tokens": sum(len(ep.response_ids) for ep in episodes) / len(episodes),
        "train/truncated": sum(ep.finish_reason == "length" for ep in episodes) / len(episodes),
        "adv/mean": sum(advs) / max(len(advs), 1),
        "adv/abs_mean": sum(abs(a) for a in advs) / max(len(advs), 1),
    }
    return metrics


def write_summary(run: Run) -> Path:
    evals = run.state["evals"]
    acc = [e["eval/accuracy"] for e in evals]
    summary = {
        "start_accuracy": acc[0] if acc else None,
        "final_accuracy": acc[-1] if acc else None,
        "best_accuracy": max(acc) if acc else None,
        "accuracy_metric": ("greedy" if headline(run.cfg.trainer.eval_greedy, run.cfg.trainer.eval_headline) == "greedy"
                            else f"mean@{run.cfg.trainer.eval_samples}"),
        "eval_questions": len(run.eval_questions),
        "iterations": evals[-1]["iteration"] if evals else 0,
        "wall_clock_s": round(run.state["wall_clock_s"], 1),
        "phase_seconds": {k: round(v, 2) for k, v in run.state["phase_seconds"].items()},
        "skipped_updates": run.learner.skipped_updates,
        "final_eval": evals[-1] if evals else {},
        "evals": evals,
    }
    path = run.run_dir / "summary.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(summary, indent=2))
    tmp.replace(path)
    return path


def train(cfg, run_dir: Path | None = None, engine=None) -> Path:
    """Train to `cfg.trainer.iterations` (resuming from the run dir's checkpoint); returns summary.json.

    `engine`: an already running engine to use instead of starting one (it is left open)."""
    run_dir = Path(run_dir or HydraConfig.get().runtime.output_dir)
    run = build(cfg, run_dir, engine)
    t, log = cfg.trainer, run.logger
    phases = Phases(run.grader, run.state["phase_seconds"])
    start_clock = time.perf_counter() - run.state["wall_clock_s"]
    try:
        if run.start_iteration >= t.iterations:
            log.print(f"Nothing to train: {run_dir} already finished iteration {run.start_iteration} of "
                      f"{t.iterations}. Raise trainer.iterations to continue, or use a new run_name.")
        else:
            _loop(run, phases, start_clock)
        path = run.run_dir / "summary.json"
        if run.dist.main:  # rank 0 writes the run's files; every rank holds the same history
            write_summary(run)
            _report(run, path)
    except BaseException:
        # A failing rank leaves at once, without the closing barrier: torchrun then stops the others,
        # which would otherwise wait in a collective for it (rlreason/distributed/__init__.py).
        run.close(close_engine=engine is None, clean=False)
        raise
    run.close(close_engine=engine is None)
    return path


def _loop(run: Run, phases: Phases, start_clock: float) -> None:
    cfg, t, log = run.cfg, run.cfg.trainer, run.logger
    log.print(f"[bold]rlreason[/bold] algo={cfg.algo.name} data={cfg.data.name} model={cfg.model.name} "
              f"engine={cfg.engine.name} curriculum={cfg.curriculum.name} -> {run.run_dir}")
    if run.start_iteration == 0:
        m = run_eval(run, 0, phases) | run.grader.take()
        run.store.commit(0)
        log.log(m, 0)
        log.print(f"iteration 0 (start): held-out accuracy {m['eval/accuracy']:.1%}")
    bar = tqdm(range(run.start_iteration + 1, t.iterations + 1), initial=run.start_iteration, total=t.iterations,
               desc="train", disable=not (t.progress and run.dist.main), dynamic_ncols=True)
    producer = Producer(run, phases, t.async_level)
    watch = TruncationWatch(cfg.rollout.max_new_tokens, t.stop_all_truncated)
    if run.weights_iteration < run.start_iteration:  # resumed one step off: a batch was in flight (build.py)
        producer.remake(run.start_iteration + 1)
    for it in bar:
        t0 = time.perf_counter()
        metrics = train_iteration(run, it, phases, producer)
        # Training wall-clock (no eval, no checkpoint): one step off, the producer's phases run during the
        # learner's, so the sum of the time/<phase> seconds overstates it.
        run.state["train_wall_s"] = run.state.get("train_wall_s", 0.0) + time.perf_counter() - t0
        if it % t.eval_every == 0 or it == t.iterations:
            metrics |= run_eval(run, it, phases)
        # reward/timeout, reward/error: this iteration's batch's and its eval's
        counts = producer.reward_counts
        metrics |= {k: counts.get(k, 0.0) + v for k, v in run.grader.take().items()}
        if "eval/accuracy" in metrics and run.dist.main:
            bar.write(f"iteration {it}: held-out accuracy {metrics['eval/accuracy']:.1%} ({reward_line(metrics)})")
        run.store.commit(it)
        run.state["wall_clock_s"] = time.perf_counter() - start_clock
        # The checkpoint's seconds leave out the batch in flight: a resume makes it again and counts it then.
        ahead = producer.ahead_seconds()
        run.state["phase_seconds"] = {k: v - ahead.get(k, 0.0) for k, v in phases.seconds.items()}
        metrics |= {f"time/{k}": v for k, v in phases.seconds.items()} | {"time/train_wall": run.state["train_wall_s"]}
        # Log before checkpointing: a kill in between redoes (and re-logs) the iteration, and resume
        # drops the rows after the checkpoint, so metrics.jsonl holds every iteration exactly once.
        log.log(metrics, it)
        if it % t.checkpoint_every == 0 or it == t.iterations:
            with phases("checkpoint"):
                save_checkpoint(run, it, producer.sampler_state(), producer.behaviour)
        bar.set_postfix(reward=f"{metrics['train/reward']:.2f}", refresh=False)
        # after the checkpoint: a run stopped for cut responses resumes from here with a larger budget
        if (warning := watch(it, metrics["train/truncated"])) and run.dist.main:
            logger.warning(warning)


def reward_line(metrics: dict[str, float]) -> str:
    """The eval line's reward part: the train reward, a reward function's components at eval, and the
    responses whose grading timed out or raised, when any did."""
    parts = [f"train reward {metrics['train/reward']:.2f}"]
    held_out = [f"{k.removeprefix('eval/')} {v:.2f}" for k, v in metrics.items() if k.startswith("eval/reward/")]
    if held_out:  # named as eval's: beside the train reward they read as the training batch's otherwise
        parts.append("held-out " + ", ".join(held_out))
    parts += [f"{k} {v:.0f}" for k, v in metrics.items() if k in ("reward/timeout", "reward/error") and v]
    return "; ".join(parts)


def _report(run: Run, path: Path) -> None:
    s = json.loads(path.read_text())
    log = run.logger
    if s["start_accuracy"] is not None:
        delta = 100 * (s["final_accuracy"] - s["start_accuracy"])
        log.print(f"Held-out accuracy ({s['accuracy_metric']}, {s['eval_questions']} {run.cfg.data.name} test "
                  f"questions): {s['start_accuracy']:.1%} at the start -> {s['final_accuracy']:.1%} after "
                  f"{s['iterations']} iterations ({delta:+.1f} points; best {s['best_accuracy']:.1%}) "
                  f"in {s['wall_clock_s'] / 60:.1f} min.")
        total = sum(s["phase_seconds"].values()) or 1.0
        parts = ", ".join(f"{k} {v / total:.0%}" for k, v in sorted(s["phase_seconds"].items(), key=lambda kv: -kv[1]))
        log.print(f"Time by phase: {parts}")
    print(path)
