"""How much does one policy update move the true values, and the ranking of alternative next steps,
against the noise of VinePPO's K-sample Monte-Carlo estimate of them?

    OMP_NUM_THREADS=1 python experiments/value/drift.py RUN --iterations 10 30 --states 64 --k-truth 256 -o OUTDIR

One step off (trainer.async_level=1), VinePPO's batch, its MC values included, comes from the policy one
update older than the learner's. Per iteration A in --iterations, with B = A + --step (RUN must hold both
checkpoints; any algorithm, no critic is read):

1. states and a pair of alternative next steps (s, s + a1, s + a2) drawn exactly as
   experiments/value_analysis.py draws them (its draw_states, same seeds) from A's policy, the behaviour policy;
2. for every distinct prefix: the truth under A (mean reward of --k-truth continuations), MC-K under A (K
   fresh ones, value_analysis's default) and the truth under B. `--coupling same` (the default) gives B's
   continuations the seeds of A's (common random numbers): a continuation differs between A and B only
   where the update changed a sampled token, so V_B - V_A is estimated without the two truths' independent
   noise; each truth alone is still an unbiased mean. `fresh`: B's continuations seeds of their own;
3. drift = truth B against truth A: mean |V_B - V_A|; mean |D_B - D_A| with D = V(s+a1) - V(s+a2); the
   share of pairs whose order flips, over the pairs A's truth is sure of (|D_A| > the margin of
   experiments/value/metrics.py); the same for the sign of the step advantage V(s+a) - V(s). Beside each,
   the same number for MC-K under A against truth A: the estimator's own noise.
4. resolution: under "no drift" (A and B the same policy) a prefix's A and B continuation j are
   exchangeable, so swapping them at random (--null draws) gives each drift number's null distribution:
   the value the truth's own sampling noise produces. A drift at or below the null's 95th percentile is
   reported as below resolution. Also reported: the standard error of a K_truth mean.

Writes OUTDIR/drift.json (settings, timings, every number, each prefix's values) and OUTDIR/drift.md, the
markdown table it prints. Every sample has its own seed (rlreason.seeds, as value_analysis), so a rerun
gives the same numbers.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # experiments/: value_analysis and `value`

import value_analysis as va  # noqa: E402

from rlreason.config import ConfigError  # noqa: E402
from rlreason.seeds import PHASES, SeedStream  # noqa: E402
from value import estimates, metrics  # noqa: E402

DRIFT = ("value", "difference", "rank_flip", "advantage_flip")  # the numbers the null resolves


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", type=Path, help="a run dir (RUN/.hydra/config.yaml, RUN/checkpoints/iter_N)")
    p.add_argument("--iterations", type=int, nargs="+", required=True, help="the A checkpoints (behaviour policy)")
    p.add_argument("--step", type=int, default=1, help="B = A + step (0: A against itself, the method's control)")
    p.add_argument("--states", type=int, default=64)
    p.add_argument("--questions", type=int, help="training questions to sample trajectories on (default: --states)")
    p.add_argument("--k", type=int, default=4, help="MC-K under A, the estimator VinePPO uses")
    p.add_argument("--k-truth", type=int, default=256)
    p.add_argument("--coupling", choices=("same", "fresh"), default="same", help="B's continuation seeds")
    p.add_argument("--margin", type=float, help="fixed ranking margin (default: 2 x SE of the truth's difference)")
    p.add_argument("--tries", type=int, default=8)
    p.add_argument("--null", type=int, default=200, help="random swaps drawn for the no-drift distribution")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--out", type=Path, default=Path("value-drift"))
    args = p.parse_args(argv)
    args.k, args.mc_source = [args.k], "fresh"  # value_analysis's settings: one MC-K, its own samples
    return args


def check(args: argparse.Namespace, samples_per_question: int = 1) -> None:
    va.check(args, samples_per_question)
    if args.step < 0 or args.null < 1:
        raise ConfigError("--step must be >= 0 and --null >= 1")
    n = 3 * args.states * estimates.samples_needed(args.k_truth, args.k, "fresh")
    if args.coupling == "fresh" and 2 * n > PHASES["mc"][1]:  # B takes a second block of mc seeds
        raise ConfigError(f"{2 * n} samples in seed phase 'mc' with --coupling fresh, more than its "
                          f"{PHASES['mc'][1]}: lower --states or --k-truth")


def drift_stats(A: np.ndarray, B: np.ndarray, mc: np.ndarray, triples: list[tuple[int, int, int]],
                margin: float | None) -> dict:
    """A, B: [prefixes, K_truth] rewards under A and B; mc: MC-K under A per prefix. Pairs are counted as
    value_analysis counts them, on A's truth: A is the policy whose values the batch carries."""
    vA, vB = A.mean(1), B.mean(1)
    seA = A.std(1, ddof=1) / math.sqrt(A.shape[1])
    rank = [(a1, a2) for _, a1, a2 in triples]
    adv = [(a, s) for s, a1, a2 in triples for a in (a1, a2)]  # V(s+a) - V(s): the step's advantage
    out = {"value": float(np.abs(vB - vA).mean()), "value_mc": float(np.abs(mc - vA).mean())}

    def change(est, pairs):
        return float(np.mean([abs((est[a] - est[b]) - (vA[a] - vA[b])) for a, b in pairs]))

    out["difference"], out["difference_mc"] = change(vB, rank), change(mc, rank)
    for name, pairs in (("rank", rank), ("advantage", adv)):
        sure = [(a, b) for a, b in pairs if abs(vA[a] - vA[b]) > metrics.pair_margin(seA[a], seA[b], margin)]
        out[f"{name}_counted"] = len(sure)
        for key, est in ((f"{name}_flip", vB), (f"{name}_flip_mc", mc)):  # ties count 1/2, as rank_score
            out[key] = (float(np.mean([1 - metrics.rank_score(vA[a] - vA[b], est[a] - est[b]) for a, b in sure]))
                        if sure else None)
    return out


def wilson(share: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson interval of a share of n pairs: with tens of pairs, 0 flips still allows a real rate of
    several percent, which the swap null (0 flips when few continuations changed) does not say."""
    centre, half = share + z * z / (2 * n), z * math.sqrt(share * (1 - share) / n + z * z / (4 * n * n))
    return max(0.0, (centre - half) / (1 + z * z / n)), min(1.0, (centre + half) / (1 + z * z / n))


def null_stats(observed: dict, A, B, mc, triples, margin, draws: int, rng: np.random.Generator) -> dict:
    """Each DRIFT number's distribution when every (prefix, j)'s A and B rewards are swapped with
    probability 1/2: what no drift gives, with this data's noise (with --coupling same, the noise of the
    continuations the update changed). p: the share of draws at least as large as the observed drift;
    resolved: the drift is above the draws' 95th percentile."""
    rows = []
    for _ in range(draws):
        swap = rng.random(A.shape) < 0.5
        rows.append(drift_stats(np.where(swap, B, A), np.where(swap, A, B), mc, triples, margin))
    out = {}
    for key in DRIFT:
        xs = np.array([r[key] for r in rows if r[key] is not None])
        if observed[key] is None or not len(xs):
            out[key] = None
            continue
        p95 = float(np.quantile(xs, 0.95))
        out[key] = {"mean": float(xs.mean()), "p95": p95, "p": float((xs >= observed[key]).mean()),
                    "resolved": bool(observed[key] > p95)}
    return out


def measure(ctx: va.Context, engine, a: int, ckpt_a: Path, b: int, ckpt_b: Path) -> dict:
    from rlreason.eval import load_weights

    args = ctx.args
    timings: dict[str, float] = {}
    tokens: dict[str, int] = {}
    t0 = time.perf_counter()
    engine.sync_weights(load_weights(str(ckpt_a / "policy")), engine.version + 1)
    stream = SeedStream(args.seed, a)  # A's seeds, as value_analysis at iteration A
    drawn = va.draw_states(ctx, engine, stream, a, tokens, timings)
    prefixes, triples = drawn["prefixes"], drawn["triples"]
    n = estimates.samples_needed(args.k_truth, args.k, "fresh")
    seed_a = stream.take("mc", len(prefixes) * n)
    # B asks for the same n per prefix, so that with --coupling same prefix i's sample j has A's seed.
    seed_b = seed_a if args.coupling == "same" else stream.take("mc", len(prefixes) * n)
    rewards, outs = {}, {"A": [], "B": []}
    for name, ckpt, seed in (("A", ckpt_a, seed_a), ("B", ckpt_b, seed_b)):
        t = time.perf_counter()
        if name == "B":
            engine.sync_weights(load_weights(str(ckpt / "policy")), engine.version + 1)
        rewards[name], tokens[f"continuations_{name}"] = estimates.continuation_rewards(
            engine, ctx.grader, prefixes, n=n, seed=seed, version=engine.version, completions=outs[name],
            **ctx.sampling)
        timings[f"continuations_{name}_s"] = time.perf_counter() - t
    A = np.array(rewards["A"], dtype=float)[:, :args.k_truth]
    B = np.array(rewards["B"], dtype=float)[:, :args.k_truth]
    mc = np.array([estimates.split_estimates(r, args.k_truth, args.k, "fresh")["mc"][args.k[0]]
                   for r in rewards["A"]])
    t = time.perf_counter()
    observed = drift_stats(A, B, mc, triples, args.margin)
    null = null_stats(observed, A, B, mc, triples, args.margin, args.null, np.random.default_rng([args.seed, a]))
    timings["null_s"] = time.perf_counter() - t
    intervals = {key: list(wilson(observed[key], observed[f"{key.split('_flip')[0]}_counted"]))
                 for key in ("rank_flip", "advantage_flip", "rank_flip_mc", "advantage_flip_mc")
                 if observed[key] is not None}
    timings["total_s"] = time.perf_counter() - t0
    K = args.k_truth
    se_a = A.std(1, ddof=1) / math.sqrt(K)
    # The standard error of V_B - V_A: paired under common seeds, two independent means otherwise.
    se_d = ((B - A).std(1, ddof=1) / math.sqrt(K) if args.coupling == "same"
            else np.sqrt(se_a ** 2 + (B.std(1, ddof=1) / math.sqrt(K)) ** 2))
    kept = drawn["kept"]
    return {
        "a": a, "b": b, "checkpoints": [str(ckpt_a), str(ckpt_b)],
        "observed": observed, "null": null, "intervals": intervals,
        "noise": {"truth_se_mean": float(se_a.mean()), "delta_se_mean": float(se_d.mean()),
                  # shares of the truth's continuations whose reward / whose tokens differ between A and B
                  "discordant": float((A != B).mean()), "tokens_differ": float(np.mean(
                      [ca.token_ids != cb.token_ids for xa, xb in zip(outs["A"], outs["B"])
                       for ca, cb in zip(xa[:K], xb[:K])]))},
        "counts": {"candidate_states": len(drawn["pool"]), "states_drawn": len(drawn["chosen"]),
                   "states": len(kept), "dropped": len(drawn["chosen"]) - len(kept), "prefixes": len(prefixes),
                   "continuations": 2 * len(prefixes) * n},
        "tokens": tokens, "timings": {k: round(v, 2) for k, v in timings.items()},
        "states": [list(tr) for tr in triples],
        "prefixes": [{"response": p.text, "response_tokens": len(p.response_ids), "truth_A": float(A[i].mean()),
                      "truth_B": float(B[i].mean()), "truth_se_A": float(se_a[i]), f"MC-{args.k[0]}_A": float(mc[i])}
                     for i, p in enumerate(prefixes)],
    }


def _fmt(x: float, pct: bool) -> str:
    return f"{100 * x:.1f}%" if pct else f"{x:.4f}"


def _drift(r: dict, key: str, pct: bool = False) -> str:
    o, nl = r["observed"][key], r["null"][key]
    if o is None or nl is None:
        return "no pair"
    ci = f"; 95% ≤ {_fmt(r['intervals'][key][1], pct)}" if key in r["intervals"] else ""
    return f"{'' if nl['resolved'] else 'below resolution: '}{_fmt(o, pct)} (p {nl['p']:.2f}{ci})"


def _floor(r: dict, key: str, pct: bool = False) -> str:
    nl = r["null"][key]
    return f"{_fmt(nl['mean'], pct)} / {_fmt(nl['p95'], pct)}" if nl else "-"


def _mc(r: dict, key: str, pct: bool = False) -> str:
    x, ci = r["observed"][key], r["intervals"].get(key)
    if x is None:
        return "no pair"
    return _fmt(x, pct) + (f" (95% {_fmt(ci[0], pct)}–{_fmt(ci[1], pct)})" if ci else "")


def markdown(results: dict) -> str:
    st = results["settings"]
    lines = []
    for r in results["pairs"]:
        o, c, nz = r["observed"], r["counts"], r["noise"]
        lines += [
            f"### iteration {r['a']} (A, behaviour) → {r['b']} (B): {c['states']} states ({c['dropped']} of "
            f"{c['states_drawn']} dropped), {c['prefixes']} prefixes, K_truth {st['k_truth']}, "
            f"coupling {st['coupling']}, {r['timings']['total_s']:.0f} s", "",
            f"| | truth B vs truth A (one update) | no-drift null: mean / 95th pct | MC-{st['k'][0]} under A vs "
            "truth A |", "|---|---|---|---|",
            f"| mean \\|V\\| change | {_drift(r, 'value')} | {_floor(r, 'value')} | {_mc(r, 'value_mc')} |",
            f"| mean \\|Δ(V(s+a1) − V(s+a2))\\| | {_drift(r, 'difference')} | {_floor(r, 'difference')} | "
            f"{_mc(r, 'difference_mc')} |",
            f"| a1/a2 order flipped ({o['rank_counted']} pairs past the margin) | {_drift(r, 'rank_flip', True)} | "
            f"{_floor(r, 'rank_flip', True)} | {_mc(r, 'rank_flip_mc', True)} |",
            f"| sign of V(s+a) − V(s) flipped ({o['advantage_counted']} past the margin) | "
            f"{_drift(r, 'advantage_flip', True)} | {_floor(r, 'advantage_flip', True)} | "
            f"{_mc(r, 'advantage_flip_mc', True)} |",
            "", f"Truth's own noise: mean SE of a K_truth mean {nz['truth_se_mean']:.4f}; mean SE of V_B − V_A "
            f"{nz['delta_se_mean']:.4f}; truth continuations whose tokens / reward differ between A and B "
            f"{100 * nz['tokens_differ']:.2f}% / {100 * nz['discordant']:.2f}%.", "",
        ]
    return "\n".join(lines)


def run(args: argparse.Namespace, engine=None) -> dict:
    """`engine`: an already running engine (left open; tests share one)."""
    check(args)
    cfg = va.load_config(args.run_dir, critic=False)
    check(args, cfg.rollout.samples_per_question)
    wanted = sorted({i for a in args.iterations for i in (a, a + args.step)})
    ckpts = dict(va.find_checkpoints(args.run_dir, wanted, critic=False))
    ctx = va.make_context(cfg, args)
    results = {"settings": {**va.base_settings(ctx), "iterations": args.iterations, "step": args.step,
                            "coupling": args.coupling, "null": args.null}, "pairs": []}
    args.out.mkdir(parents=True, exist_ok=True)
    own_engine = engine is None
    try:
        if own_engine:
            engine = va.start_engine(ctx, ckpts[args.iterations[0]])
        for a in args.iterations:
            record = measure(ctx, engine, a, ckpts[a], a + args.step, ckpts[a + args.step])
            results["pairs"].append(record)
            va._write(args.out / "drift.json", results)
            print(f"iteration {a} -> {a + args.step}: {record['counts']['prefixes']} prefixes in "
                  f"{record['timings']['total_s']:.0f} s", flush=True)
    finally:
        ctx.grader.close()
        if own_engine and engine is not None:
            engine.close()
    table = markdown(results)
    (args.out / "drift.md").write_text(table + "\n")
    print(table)
    print(args.out / "drift.json")
    return results


def main(argv: list[str] | None = None) -> None:
    va.cli(run, parse, argv)


if __name__ == "__main__":
    main()
