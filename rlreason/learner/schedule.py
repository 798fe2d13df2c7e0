"""The learning-rate schedule of the policy and critic optimizers: `learner.warmup` x `learner.schedule`.

warmup=linear is transformers' schedulers (`get_scheduler`), unchanged. warmup=log is the reference's:
McGill-NLP/VinePPO trains with DeepSpeed's `WarmupDecayLR` (configs/deepspeed/lr_scheduler.jsonnet),
whose default warmup type is log, with warmup_min_lr 0, warmup_max_lr = the learning rate,
warmup_num_steps = ceil(warmup_ratio x total) and total_num_steps = the run's optimizer steps
(treetune trainers/deepspeed_policy_trainer.py `_patch_ds_config_for_lr_scheduler`, arguments.py
`get_warmup_steps`). DeepSpeed's factor at scheduler step s (deepspeed/runtime/lr_schedules.py):

    s < W:  log(s + 1) / log(W)                      W = max(2, warmup_num_steps)
    s >= W: max(0, (T - s) / max(1, T - W))          WarmupDecayLR (schedule=linear); WarmupLR keeps 1

Here step s of the optimizer runs at lr x factor(s) (torch's LambdaLR). The reference's DeepSpeed 0.14.1
steps its scheduler only after each optimizer step and never before the first, so its first step ran at
the full learning rate and step s + 1 at factor(s); this schedule is that sequence without the stray
full-rate first step (DeepSpeed issue #6569, fixed by PR #6597).
"""

from __future__ import annotations

import math
from functools import partial

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR
from transformers import get_scheduler

_HF_NAMES = {"linear": "linear", "constant": "constant_with_warmup", "cosine": "cosine"}


def log_warmup_factor(step: int, warmup: int, total: int, decay: bool) -> float:
    """DeepSpeed WarmupDecayLR's (decay) or WarmupLR's gamma at scheduler step `step`, warmup_min_lr 0."""
    if step < warmup:
        return math.log(step + 1) / math.log(warmup)
    if not decay:
        return 1.0
    return max(0.0, (total - step) / max(1.0, total - warmup))


def make_scheduler(opt: Optimizer, cfg, total_updates: int) -> LambdaLR:
    """`cfg` is the learner node (warmup, warmup_ratio, schedule); `total_updates` the run's optimizer steps."""
    total = max(total_updates, 1)
    if cfg.warmup == "linear":
        return get_scheduler(_HF_NAMES[cfg.schedule], opt, num_warmup_steps=int(cfg.warmup_ratio * total_updates),
                             num_training_steps=total)
    if cfg.schedule not in ("linear", "constant"):  # validate() says so first; this guards direct use
        raise ValueError(f"learner.warmup=log has no {cfg.schedule} decay (DeepSpeed's WarmupDecayLR: linear, "
                         "WarmupLR: constant)")
    # ceil as the reference's get_warmup_steps; at least 2 as DeepSpeed (log(1) would divide by zero)
    warmup = max(2, math.ceil(cfg.warmup_ratio * total))
    return LambdaLR(opt, partial(log_warmup_factor, warmup=warmup, total=total, decay=cfg.schedule == "linear"))
