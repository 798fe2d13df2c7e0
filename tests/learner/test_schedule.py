"""learner.warmup: transformers' linear warmup (default) and the reference's DeepSpeed log warmup."""

import math

import pytest
import torch
from transformers import get_scheduler

from rlreason.config import LearnerConfig
from rlreason.learner.schedule import make_scheduler


def lrs(cfg: LearnerConfig, total: int, steps: int) -> list[float]:
    """The learning rate each of the first `steps` optimizer steps runs at."""
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=cfg.lr)
    sched = make_scheduler(opt, cfg, total)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def deepspeed_warmup_decay(s: int, warmup_num_steps: int, total: int, lr: float) -> float:
    """DeepSpeed WarmupDecayLR (warmup_type log, warmup_min_lr 0, warmup_max_lr lr), written out."""
    w = max(2, warmup_num_steps)
    if s < w:
        return lr * math.log(s + 1) / math.log(w)
    return lr * max(0.0, (total - s) / max(1, total - w))


def test_log_warmup_then_linear_decay_matches_deepspeed():
    # the paper preset's shape: 1000 iterations x 512 episodes x 2 epochs / 64 = 16,000 steps, ratio 0.03
    cfg = LearnerConfig(lr=1e-6, warmup_ratio=0.03, warmup="log", schedule="linear")
    total = 16_000
    got = lrs(cfg, total, 1200)
    assert math.ceil(0.03 * total) == 480
    for s in (0, 1, 2, 9, 100, 479, 480, 481, 1000, 1199):
        assert got[s] == pytest.approx(deepspeed_warmup_decay(s, 480, total, 1e-6), rel=1e-12, abs=0), s
    assert got[0] == 0 and got[1] == pytest.approx(1e-6 * math.log(2) / math.log(480))
    assert got[480] == pytest.approx(1e-6)  # the peak, then linear to 0 at step 16,000
    # log rises much faster than linear: a tenth of the way into warmup it is at ~63% of the peak
    assert got[47] / 1e-6 == pytest.approx(math.log(48) / math.log(480)) and got[47] > 0.6e-6


def test_log_warmup_ceil_and_floor_of_two_steps():
    got = lrs(LearnerConfig(lr=1.0, warmup_ratio=0.03, warmup="log", schedule="linear"), 100, 100)
    w = 3  # ceil(0.03 x 100)
    assert got[:4] == pytest.approx([0.0, math.log(2) / math.log(w), math.log(3) / math.log(w), 1.0])
    assert got[99] == pytest.approx(1 / 97)
    # 110 steps: W = ceil(3.3) = 4, so step 2 is still warming up (W = int(3.3) = 3 would be at the peak)
    assert lrs(LearnerConfig(lr=1.0, warmup_ratio=0.03, warmup="log", schedule="linear"), 110, 5)[2] == \
        pytest.approx(math.log(3) / math.log(4))
    # no warmup asked: DeepSpeed still warms up over 2 steps (0, then full)
    assert lrs(LearnerConfig(lr=1.0, warmup_ratio=0.0, warmup="log", schedule="constant"), 10, 4) == [0.0, 1, 1, 1]


def test_log_warmup_constant_keeps_the_peak():
    got = lrs(LearnerConfig(lr=2.0, warmup_ratio=0.1, warmup="log", schedule="constant"), 100, 100)
    assert got[5] == pytest.approx(2.0 * math.log(6) / math.log(10)) and set(got[10:]) == {2.0}


@pytest.mark.parametrize("schedule", ["linear", "constant", "cosine"])
def test_linear_warmup_is_transformers_unchanged(schedule):
    cfg = LearnerConfig(lr=1.0, warmup_ratio=0.1, schedule=schedule)
    assert cfg.warmup == "linear"
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    name = {"constant": "constant_with_warmup"}.get(schedule, schedule)
    ref = get_scheduler(name, opt, num_warmup_steps=5, num_training_steps=50)
    expected = []
    for _ in range(50):
        expected.append(opt.param_groups[0]["lr"])
        opt.step()
        ref.step()
    assert lrs(cfg, 50, 50) == expected


def test_log_schedule_resumes_from_its_state():
    cfg = LearnerConfig(lr=1.0, warmup_ratio=0.2, warmup="log", schedule="linear")
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = make_scheduler(opt, cfg, 40)
    for _ in range(5):
        opt.step()
        sched.step()
    opt2 = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    resumed = make_scheduler(opt2, cfg, 40)
    resumed.load_state_dict(sched.state_dict())
    assert resumed.get_last_lr() == sched.get_last_lr() == [pytest.approx(math.log(6) / math.log(8))]


def test_log_warmup_with_cosine_is_refused():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    with pytest.raises(ValueError, match="cosine"):
        make_scheduler(opt, LearnerConfig(warmup="log", schedule="cosine"), 10)
