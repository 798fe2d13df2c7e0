"""The checks of tests/trainer/kill_anywhere.py: a killed-and-resumed run dir against the reference run dir
(store rows, selections, metrics, weights, optimizer, sampler and RNG state, no temp files left)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path


def resume_point(run_dir: Path) -> int:
    latest = run_dir / "checkpoints" / "latest"
    return int(latest.read_text().removeprefix("iter_")) if latest.exists() else 0


def store_rows(run_dir: Path) -> dict[str, list]:
    con = sqlite3.connect(f"{(run_dir / 'stats.sqlite').resolve().as_uri()}?mode=ro", uri=True)
    try:
        return {
            "counts": con.execute("SELECT iteration, phase, COUNT(*) FROM attempts GROUP BY 1, 2 ORDER BY 1, 2").fetchall(),
            "attempts": con.execute("SELECT question, iteration, phase, reward, length, policy_version "
                                    "FROM attempts ORDER BY rowid").fetchall(),
            "selected": con.execute("SELECT iteration, group_concat(question, ',') FROM "
                                    "(SELECT * FROM selections WHERE selected = 1 ORDER BY rowid) "
                                    "GROUP BY iteration ORDER BY iteration").fetchall(),
            "selections": con.execute("SELECT iteration, question, selected FROM selections ORDER BY rowid").fetchall(),
            "last_committed": con.execute("SELECT value FROM meta WHERE key = 'last_committed'").fetchall(),
        }
    finally:
        con.close()


def cost_metric(key: str) -> bool:
    """A metric of what this process spent, not of what the run computed, so not expected equal: wall-clock
    seconds (time/*, and env/*_s, mc/*_s of env.cls runs) and the environment actions replayed to rebuild
    instances a worker did not hold (which worker gets a job is scheduling; a restart empties the cache)."""
    from rlreason.metrics import lookup

    m = lookup(key)
    return key.startswith("time/") or (m is not None and m.unit == "seconds") or key.endswith("replayed_actions")


def metric_rows(run_dir: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    return [{k: v for k, v in r.items() if not cost_metric(k)} for r in rows]


def compare(ref: Path, killed: Path, iterations: int) -> dict[str, object]:
    import torch
    from safetensors.torch import load_file

    checks: dict[str, object] = {}
    a, b = store_rows(ref), store_rows(killed)
    checks["store_counts_equal"] = a["counts"] == b["counts"]
    checks["store_attempts_equal"] = a["attempts"] == b["attempts"]
    checks["store_selections_equal"] = a["selections"] == b["selections"]
    checks["last_committed"] = int(b["last_committed"][0][0])
    same = sum(x == y for x, y in zip(a["selected"], b["selected"]))
    checks["selected_questions_same"] = f"{same}/{len(a['selected'])} iterations"
    dup = {(it, ph): n for it, ph, n in b["counts"]}
    expected_iters = set(range(iterations + 1))
    checks["store_iterations"] = sorted({it for it, _ in dup})
    ma, mb = metric_rows(ref), metric_rows(killed)
    checks["metrics_iterations"] = [r["iteration"] for r in mb]
    checks["metrics_equal"] = ma == mb
    if not checks["metrics_equal"]:
        diffs = [(x.get("iteration"), k) for x, y in zip(ma, mb) for k in x if x.get(k) != y.get(k)]
        checks["metrics_diffs"] = diffs[:10]
    policy = ref / "checkpoints" / f"iter_{iterations:06d}" / "policy"
    name = "adapter_model.safetensors" if (policy / "adapter_config.json").is_file() else "model.safetensors"  # lora
    wa = load_file(str(policy / name))
    wb = load_file(str(killed / "checkpoints" / f"iter_{iterations:06d}" / "policy" / name))
    checks["weights_equal"] = wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    sa = torch.load(ref / "checkpoints" / f"iter_{iterations:06d}" / "trainer_state.pt", weights_only=False)
    sb = torch.load(killed / "checkpoints" / f"iter_{iterations:06d}" / "trainer_state.pt", weights_only=False)
    oa, ob = sa["learner"]["optimizer"]["state"], sb["learner"]["optimizer"]["state"]
    checks["optimizer_equal"] = oa.keys() == ob.keys() and all(
        torch.equal(oa[i][k], ob[i][k]) for i in oa for k in oa[i])
    checks["learner_version"] = (sa["learner"]["version"], sb["learner"]["version"])
    checks["sampler_state_equal"] = sa["sampler"] == sb["sampler"]
    checks["rng_state_equal"] = (sa["python_rng"] == sb["python_rng"]
                                 and torch.equal(sa["torch_rng"], sb["torch_rng"]))
    evals_a = [{k: v for k, v in e.items()} for e in sa["history"]["evals"]]
    evals_b = [{k: v for k, v in e.items()} for e in sb["history"]["evals"]]
    checks["evals_equal"] = evals_a == evals_b
    summary = json.loads((killed / "summary.json").read_text())
    checks["summary_iterations"] = summary["iterations"]
    leftovers = [p.name for p in (killed / "checkpoints").iterdir() if p.name.startswith(".")]
    leftovers += [p.name for p in killed.iterdir() if p.name.endswith(".tmp")]
    checks["leftover_temp_files"] = leftovers
    checks["ok"] = bool(
        checks["store_counts_equal"] and checks["store_attempts_equal"] and checks["store_selections_equal"]
        and checks["last_committed"] == iterations and set(checks["store_iterations"]) == expected_iters
        and checks["metrics_iterations"] == list(range(iterations + 1)) and checks["metrics_equal"]
        and checks["weights_equal"] and checks["optimizer_equal"] and checks["sampler_state_equal"]
        and checks["rng_state_equal"] and checks["evals_equal"] and summary["iterations"] == iterations
        and resume_point(killed) == iterations and not leftovers
        and same == len(a["selected"]) == iterations)
    return checks
