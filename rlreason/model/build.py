"""Build the tiny model from nothing: tokenizer, SFT warm start on arith, held-out evaluation.

    python -m rlreason.model.build                       # default config -> the committed assets dir
    python -m rlreason.model.build --out /tmp/t sft_steps=30

The warm start is deliberately partial: RL needs questions it sometimes solves (0 < p < 1), so the
step count is picked for ~30-50% held-out greedy accuracy, not for the best model. The results go
into `build_info.json` next to the weights, with the config hash rlreason.model.load matches on.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import time
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import transformers
from tqdm import tqdm

from rlreason.data.arith import ArithSpec, generate_splits
from rlreason.data.record import Question
from rlreason.model.load import config_hash
from rlreason.model.tiny import ASSETS, default_build, make_model, make_tokenizer, save

PROMPT = "{problem}\n"  # conf/data/arith.yaml's prompt_template: the model must see what RL shows it
WEIGHT_DECAY = 0.01
MAX_NEW_TOKENS = 96  # the longest gold response (8 steps) is 59 tokens + EOS


def encode(tokenizer, q: Question) -> tuple[list[int], list[int]]:
    """(prompt ids with BOS, response ids ending in EOS) for one question's gold solution."""
    prompt = tokenizer(PROMPT.format(problem=q.problem)).input_ids
    response = tokenizer(q.solution, add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
    return prompt, response


def collate(batch: list[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded input ids, labels on the response tokens only. Under a causal mask real tokens
    never see the pads, so no attention mask is needed."""
    width = max(len(p) + len(r) for p, r in batch)
    ids = torch.full((len(batch), width), pad_id)
    labels = torch.full((len(batch), width), -100)
    for row, (p, r) in enumerate(batch):
        ids[row, : len(p) + len(r)] = torch.tensor(p + r)
        labels[row, len(p) : len(p) + len(r)] = torch.tensor(r)
    return {"input_ids": ids, "labels": labels}


def lr_factor(step: int, warmup: int, total: int, schedule: str = "cosine") -> float:
    """Linear warmup, then constant, or cosine decay to 10% of the peak at `total`."""
    if schedule not in ("constant", "cosine"):
        raise ValueError(f"sft_schedule must be constant or cosine, got {schedule!r}")
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.1 + 0.45 * (1 + math.cos(math.pi * progress))


def sft(model, tokenizer, train: list[Question], build: dict[str, Any], progress: bool = True) -> float:
    """Teacher-forced cross-entropy on the gold responses; returns the mean loss of the last 20 steps.

    Loss on response tokens only: prompt operands are uniform random, so predicting them teaches
    nothing and only adds noise to the gradient.
    """
    steps, batch_size, lr = build["sft_steps"], build["sft_batch_size"], build["sft_lr"]
    warmup = max(1, int(build["sft_warmup_ratio"] * steps))
    examples = [encode(tokenizer, q) for q in train]
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=WEIGHT_DECAY)
    schedule = build.get("sft_schedule", "cosine")
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, warmup, steps, schedule))
    rng = random.Random(build["seed"])
    order: list[int] = []
    losses: list[float] = []
    model.train()
    bar = tqdm(range(steps), desc="tiny-arith SFT", disable=not progress, dynamic_ncols=True)
    for _ in bar:
        if len(order) < batch_size:  # epochs: a fresh permutation each time the data runs out
            order += rng.sample(range(len(examples)), len(examples))
        batch, order = [examples[i] for i in order[:batch_size]], order[batch_size:]
        loss = model(**collate(batch, tokenizer.pad_token_id)).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
        bar.set_postfix(loss=f"{loss.item():.3f}", lr=f"{sched.get_last_lr()[0]:.1e}")
    model.eval()
    return sum(losses[-20:]) / len(losses[-20:])


def is_correct(text: str, answer: str) -> bool:
    return "####" in text and text.rsplit("####", 1)[1].strip() == answer


@torch.no_grad()
def evaluate(model, tokenizer, questions: list[Question], samples: int = 8, seed: int = 0,
             progress: bool = True) -> dict[str, Any]:
    """Greedy accuracy (overall and by level) and the spread of per-question success over `samples`
    draws at temperature 1.0: the share of questions never / always / sometimes solved."""
    torch.manual_seed(seed)
    by_level: dict[int, list[Question]] = defaultdict(list)
    for q in questions:  # a level fixes the prompt length (one char per token): batches need no padding
        by_level[q.level].append(q)
    greedy: dict[int, list[bool]] = {}
    rates: list[float] = []
    for level in tqdm(sorted(by_level), desc="tiny-arith eval", disable=not progress, dynamic_ncols=True):
        qs = by_level[level]
        ids = torch.tensor([tokenizer(PROMPT.format(problem=q.problem)).input_ids for q in qs])
        gen = dict(max_new_tokens=MAX_NEW_TOKENS, pad_token_id=tokenizer.pad_token_id,
                   attention_mask=torch.ones_like(ids))
        out = model.generate(ids, do_sample=False, **gen)
        texts = tokenizer.batch_decode(out[:, ids.shape[1]:], skip_special_tokens=True)
        greedy[level] = [is_correct(t, q.answer) for t, q in zip(texts, qs)]
        if samples:
            out = model.generate(ids, do_sample=True, temperature=1.0, top_k=0, top_p=1.0,
                                 num_return_sequences=samples, **gen)
            texts = tokenizer.batch_decode(out[:, ids.shape[1]:], skip_special_tokens=True)
            for i, q in enumerate(qs):  # generate returns each prompt's samples contiguously
                rates.append(sum(is_correct(t, q.answer) for t in texts[i * samples:(i + 1) * samples]) / samples)
    flat = [c for cs in greedy.values() for c in cs]
    result: dict[str, Any] = {
        "n_questions": len(questions),
        "greedy_acc": sum(flat) / len(flat),
        "greedy_acc_by_level": {str(k): round(sum(v) / len(v), 4) for k, v in greedy.items()},
    }
    if samples:
        result[f"sample{samples}"] = {
            "mean_acc": sum(rates) / len(rates),
            "frac_p0": sum(r == 0 for r in rates) / len(rates),
            "frac_p1": sum(r == 1 for r in rates) / len(rates),
            "frac_partial": sum(0 < r < 1 for r in rates) / len(rates),
        }
    return result


def build(build_cfg: dict[str, Any], out_dir: str | Path, progress: bool = True,
          replace: bool = True) -> dict[str, Any]:
    """Train and evaluate the tiny model into `out_dir`, atomically: a reader sees the whole
    checkpoint or none of it. An existing `out_dir` is replaced, or with `replace=False` kept (a
    concurrent build of the same config finished first; both are equivalent)."""
    out = Path(out_dir).expanduser()
    start = time.time()
    torch.manual_seed(build_cfg["seed"])
    spec = ArithSpec()
    # Same generator, sizes and seed as data=arith, so the test split here is RL's held-out split.
    train, test = generate_splits(build_cfg["n_train"], build_cfg["n_test"], spec, build_cfg["data_seed"])
    tokenizer = make_tokenizer()
    model = make_model(build_cfg, tokenizer, build_cfg["seed"])
    loss = sft(model, tokenizer, train, build_cfg, progress)
    sft_wall = time.time() - start
    metrics = evaluate(model, tokenizer, test, samples=8, seed=build_cfg["seed"], progress=progress)
    info = {
        "hash": config_hash(build_cfg),
        "build": build_cfg,
        "arith_spec": asdict(spec),
        "params": sum(p.numel() for p in model.parameters()),
        "vocab_size": len(tokenizer),
        "final_loss": round(loss, 4),
        **metrics,
        "sft_wall_s": round(sft_wall, 1),
        "total_wall_s": round(time.time() - start, 1),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    save(model, tokenizer, tmp)
    (tmp / "build_info.json").write_text(json.dumps(info, indent=2) + "\n")
    if out.exists() and replace:
        shutil.rmtree(out)
    if out.exists():
        shutil.rmtree(tmp)
    else:
        os.replace(tmp, out)
    return info


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(ASSETS), help="output dir (default: the committed assets dir)")
    parser.add_argument("overrides", nargs="*", help="key=value over conf/model/tiny.yaml's build: dict")
    args = parser.parse_args(argv)
    from omegaconf import OmegaConf

    build_cfg = default_build()
    for item in args.overrides:
        key, _, value = item.removeprefix("build.").partition("=")
        if key not in build_cfg:
            parser.error(f"unknown build key {key!r}; known: {', '.join(build_cfg)}")
        build_cfg[key] = OmegaConf.from_dotlist([f"v={value}"]).v  # YAML typing: 30 -> int, 3e-3 -> float
    info = build(build_cfg, args.out)
    print(json.dumps({k: v for k, v in info.items() if k != "build"}, indent=2))
    print(f"saved to {args.out}")


if __name__ == "__main__":
    main()
