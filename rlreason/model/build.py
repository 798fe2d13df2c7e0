"""Build a tiny model from nothing: tokenizer, SFT warm start on its task, held-out evaluation.

    python -m rlreason.model.build                       # model=tiny (arith) -> its committed assets dir
    python -m rlreason.model.build --task countdown      # model=tiny_countdown -> assets/tiny-countdown
    python -m rlreason.model.build --model tiny_chat     # model=tiny_chat -> assets/tiny-chat
    python -m rlreason.model.build --task guess          # model=tiny_guess -> assets/tiny-guess (multi-turn)
    python -m rlreason.model.build --out /tmp/t sft_steps=30

The task (rlreason.model.tasks, the build dict's `task` key) decides the data, the vocabulary and the
grading; the `kind` key the tokenizer, architecture and prompt (char: a character-level Llama that sees
`{problem}\n`; chat: a byte-level BPE Qwen2 that sees its chat template, rlreason.model.chat);
everything else is shared. Countdown instances have several valid solutions: each time SFT
draws an instance it draws one of them, so the model starts with real choices between orders.

The warm start is deliberately partial: RL needs questions it sometimes solves (0 < p < 1), so the
step count is picked for ~30-50% (arith) or 15-50% (countdown) held-out greedy accuracy, not for the
best model. The results go into `build_info.json` next to the weights, with the config hash
rlreason.model.load matches on.
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

from rlreason.data.prompts import encode_prompts, format_prompt
from rlreason.data.record import Question
from rlreason.model.load import config_hash
from rlreason.model.tasks import Item, answer_item, task_of
from rlreason.model.tiny import YAMLS, assets_dir, builtin_key, default_build, make_model, save, tokenizer_for

PROMPT = "{problem}\n"  # conf/data/{arith,countdown}.yaml's prompt_template: the model must see what RL shows it
WEIGHT_DECAY = 0.01
MODELS = {Path(yaml).stem: key for key, yaml in YAMLS.items()}  # tiny_chat -> chat (--model)
# The longest gold response: arith (8 steps) 59 tokens + EOS, countdown (4 numbers) 51 + EOS.
MAX_NEW_TOKENS = 96


def prompt_ids(tokenizer, problem: str) -> list[int]:
    """The prompt's ids exactly as RL's Roller makes them: `{problem}\n` with BOS, or for a tokenizer
    with a chat template (kind: chat) the problem as the user's turn of it (data.use_chat_template)."""
    chat = bool(tokenizer.chat_template)
    # chat: data.user_template's default (null), the question alone as the user's turn
    text = format_prompt(Question("", problem, ""), None if chat else PROMPT, tokenizer, use_chat_template=chat)
    return encode_prompts([text], tokenizer, chat, batch=False)[0]


def encode(tokenizer, q: Question | Item, response: str | None = None) -> tuple[list[int], list[int]]:
    """(prompt ids, response ids ending in EOS) for one question and a gold response (by default a
    Question's own solution)."""
    prompt = prompt_ids(tokenizer, q.problem)
    text = q.solution if response is None else response  # type: ignore[union-attr]
    response_ids = tokenizer(text, add_special_tokens=False).input_ids + [tokenizer.eos_token_id]
    return prompt, response_ids


def encode_turns(tokenizer, problem: str, segments: tuple[tuple[str, bool], ...]) -> tuple[list[int], list[int], list[bool]]:
    """(prompt ids, transcript ids, which of them are the policy's) for a multi-turn transcript: each
    segment tokenized on its own, as the environment's observations are appended in RL (no EOS: the
    environment ends the episode)."""
    ids: list[int] = []
    own: list[bool] = []
    for text, policy in segments:
        piece = tokenizer(text, add_special_tokens=False).input_ids
        ids += piece
        own += [policy] * len(piece)
    return prompt_ids(tokenizer, problem), ids, own


def collate(batch: list[tuple[list[int], list[int]]] | list[tuple[list[int], list[int], list[bool]]],
            pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded input ids, labels on the response tokens only (and of a transcript, on the policy's
    tokens only: an optional third element marks them). Under a causal mask real tokens never see the
    pads, so no attention mask is needed."""
    width = max(len(ex[0]) + len(ex[1]) for ex in batch)
    ids = torch.full((len(batch), width), pad_id)
    labels = torch.full((len(batch), width), -100)
    for row, (p, r, *own) in enumerate(batch):
        ids[row, : len(p) + len(r)] = torch.tensor(p + r)
        target = torch.tensor(r)
        if own:
            target[~torch.tensor(own[0], dtype=torch.bool)] = -100
        labels[row, len(p) : len(p) + len(r)] = target
    return {"input_ids": ids, "labels": labels}


def _example(tokenizer, item: Item, solution):
    if isinstance(solution, str):
        return encode(tokenizer, item, solution)
    return encode_turns(tokenizer, item.problem, solution)


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


def sft(model, tokenizer, train: list[Question] | list[Item], build: dict[str, Any], progress: bool = True) -> float:
    """Teacher-forced cross-entropy on the gold responses; returns the mean loss of the last 20 steps.

    Loss on response tokens only: prompt operands are uniform random, so predicting them teaches
    nothing and only adds noise to the gradient. An item with several solutions gets one of them drawn
    afresh each time it comes up (its own random stream: one-solution tasks draw nothing).
    """
    steps, batch_size, lr = build["sft_steps"], build["sft_batch_size"], build["sft_lr"]
    warmup = max(1, int(build["sft_warmup_ratio"] * steps))
    items = [answer_item(q) if isinstance(q, Question) else q for q in train]
    pick = random.Random(f"solutions-{build['seed']}")
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=WEIGHT_DECAY)
    schedule = build.get("sft_schedule", "cosine")
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, warmup, steps, schedule))
    rng = random.Random(build["seed"])
    order: list[int] = []
    losses: list[float] = []
    model.train()
    bar = tqdm(range(steps), desc=f"tiny-{builtin_key(build)} SFT", disable=not progress, dynamic_ncols=True)
    for _ in bar:
        if len(order) < batch_size:  # epochs: a fresh permutation each time the data runs out
            order += rng.sample(range(len(items)), len(items))
        drawn, order = [items[i] for i in order[:batch_size]], order[batch_size:]
        batch = [_example(tokenizer, it, it.solutions[0] if len(it.solutions) == 1 else pick.choice(it.solutions))
                 for it in drawn]
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


def _token_entropy(logits: tuple[torch.Tensor, ...], tokens: torch.Tensor, eos_id: int) -> tuple[float, int]:
    """(sum, count) of the sampling distribution's entropy (nats) over the generated tokens up to and
    including each sequence's EOS: `logits` are generate's raw per-step logits, `tokens` its new ids."""
    total, count = 0.0, 0
    alive = torch.ones(tokens.shape[0], dtype=torch.bool)
    for step, step_logits in enumerate(logits):
        logp = torch.log_softmax(step_logits.float(), dim=-1)
        entropy = -(logp.exp() * logp).sum(-1)
        total += entropy[alive].sum().item()
        count += int(alive.sum())
        alive &= tokens[:, step] != eos_id
    return total, count


def _sampled(rates: list[float], entropy_sum: float, tokens: int, samples: int) -> dict[str, float]:
    """The sampled figures of questions with these success rates: mean accuracy, the share never /
    always / sometimes solved, pass@samples, and the mean token entropy."""
    n = len(rates)
    figures = {"mean_acc": sum(rates) / n, "frac_p0": sum(x == 0 for x in rates) / n,
               "frac_p1": sum(x == 1 for x in rates) / n, "frac_partial": sum(0 < x < 1 for x in rates) / n,
               f"pass_at_{samples}": sum(x > 0 for x in rates) / n, "token_entropy": entropy_sum / max(1, tokens)}
    return {k: round(v, 4) for k, v in figures.items()}


@torch.no_grad()
def evaluate(model, tokenizer, questions: list[Question] | list[Item], samples: int = 8, seed: int = 0,
             progress: bool = True) -> dict[str, Any]:
    """Greedy accuracy (overall and by level) and, over `samples` draws at temperature 1.0, the mean
    accuracy, pass@samples, the share of questions never / always / sometimes solved, and the mean
    entropy (nats) of the sampling distribution per generated token."""
    torch.manual_seed(seed)
    items = [answer_item(q) if isinstance(q, Question) else q for q in questions]
    prompts = [prompt_ids(tokenizer, it.problem) for it in items]
    groups: dict[tuple[int, int], list[int]] = defaultdict(list)
    for i, (it, ids) in enumerate(zip(items, prompts)):  # one prompt length per batch: no padding needed
        groups[(it.level, len(ids))].append(i)  # (arith: the level fixes the length)
    greedy: dict[int, list[bool]] = defaultdict(list)
    rates: dict[int, list[float]] = defaultdict(list)  # per level: each question's success rate
    entropy: dict[int, list[float]] = defaultdict(lambda: [0.0, 0.0])  # per level: sum, token count
    for key in tqdm(sorted(groups), desc="tiny eval", disable=not progress, dynamic_ncols=True):
        its = [items[i] for i in groups[key]]
        ids = torch.tensor([prompts[i] for i in groups[key]])
        gen = dict(max_new_tokens=MAX_NEW_TOKENS, pad_token_id=tokenizer.pad_token_id,
                   attention_mask=torch.ones_like(ids))
        out = model.generate(ids, do_sample=False, **gen)
        texts = tokenizer.batch_decode(out[:, ids.shape[1]:], skip_special_tokens=True)
        greedy[key[0]] += [it.grade(t) for t, it in zip(texts, its)]
        if samples:
            out = model.generate(ids, do_sample=True, temperature=1.0, top_k=0, top_p=1.0, num_return_sequences=samples,
                                 output_logits=True, return_dict_in_generate=True, **gen)
            new = out.sequences[:, ids.shape[1]:]
            h_sum, h_count = _token_entropy(out.logits, new, tokenizer.eos_token_id)
            entropy[key[0]][0] += h_sum
            entropy[key[0]][1] += h_count
            texts = tokenizer.batch_decode(new, skip_special_tokens=True)
            for i, it in enumerate(its):  # generate returns each prompt's samples contiguously
                rates[key[0]].append(sum(it.grade(t) for t in texts[i * samples:(i + 1) * samples]) / samples)
    flat = [c for cs in greedy.values() for c in cs]
    result: dict[str, Any] = {
        "n_questions": len(items),
        "greedy_acc": sum(flat) / len(flat),
        "greedy_acc_by_level": {str(k): round(sum(v) / len(v), 4) for k, v in sorted(greedy.items())},
    }
    if samples:
        all_rates = [r for level in sorted(rates) for r in rates[level]]
        h_sum, h_count = sum(h for h, _ in entropy.values()), sum(n for _, n in entropy.values())
        result[f"sample{samples}"] = {
            **_sampled(all_rates, h_sum, int(h_count), samples),
            "by_level": {str(k): _sampled(rates[k], entropy[k][0], int(entropy[k][1]), samples) for k in sorted(rates)},
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
    task = task_of(build_cfg)
    # Same generator, spec, sizes and seed as the task's data group, so the test split here is RL's held-out split.
    train, test = task.items(build_cfg)
    wrong = [(it.problem, s) for it in train for s in it.solutions if not it.grade(s)]
    if wrong or not all(it.solutions for it in train):  # every SFT target is graded correct by the checker
        raise RuntimeError(f"tiny-{builtin_key(build_cfg)}: {len(wrong)} gold solutions fail the checker, e.g. {wrong[:3]}, "
                           f"or an instance has none")
    tokenizer = tokenizer_for(build_cfg)
    model = make_model(build_cfg, tokenizer, build_cfg["seed"])
    loss = sft(model, tokenizer, train, build_cfg, progress)
    sft_wall = time.time() - start
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    save(model, tokenizer, tmp)
    if task.evaluate is not None:  # a multi-turn task plays its games through an engine on the saved model
        metrics = task.evaluate(str(tmp), tokenizer, test, build_cfg, progress)
    else:
        metrics = evaluate(model, tokenizer, test, samples=8, seed=build_cfg["seed"], progress=progress)
    n_solutions = [len(it.solutions) for it in train]
    info = {
        "hash": config_hash(build_cfg),
        "build": build_cfg,
        f"{task.name}_spec": asdict(task.spec),
        **({"sft_solutions_per_instance": round(sum(n_solutions) / len(n_solutions), 2)} if task.name != "arith" else {}),
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
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--task", choices=["arith", "countdown", "guess"],
                       help="arith: model=tiny; countdown: model=tiny_countdown; guess: model=tiny_guess")
    which.add_argument("--model", choices=sorted(MODELS), help="the conf/model name of the builtin to build")
    parser.add_argument("--out", help="output dir (default: the model's committed assets dir)")
    parser.add_argument("overrides", nargs="*", help="key=value over the build: dict of the model's conf/model yaml")
    args = parser.parse_args(argv)
    from omegaconf import OmegaConf

    builtin = MODELS[args.model] if args.model else args.task or "arith"
    build_cfg = default_build(builtin)
    args.out = args.out or str(assets_dir(builtin))
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
