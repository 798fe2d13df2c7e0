"""The learner side of the parity tests: what a plain fp32 torch model says the engine must return."""

from __future__ import annotations

import torch


def perturb(model: torch.nn.Module, seed: int, scale: float = 0.05) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * scale)


def train_a_little(model: torch.nn.Module, tokenizer, texts: list[tuple[str, str]], steps: int = 3) -> None:
    """A few SGD steps on arith solutions: the weights move the way a real update moves them."""
    batch = tokenizer([p + s for p, s in texts[:16]], return_tensors="pt", padding=True)
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        model(**batch, labels=labels).loss.backward()
        opt.step()
    model.eval()


def weights(model: torch.nn.Module) -> list[tuple[str, torch.Tensor]]:
    return [(k, v.detach().clone()) for k, v in model.state_dict().items()]


@torch.no_grad()
def learner_logprobs(model: torch.nn.Module, prompt: list[int], response: list[int], temperature: float) -> torch.Tensor:
    """Teacher-forced fp32 log_softmax(logits / T) at each response token (T = 0 -> 1)."""
    ids = torch.tensor([prompt + response])
    logits = model(ids).logits[0, len(prompt) - 1:-1].float() / (temperature or 1.0)
    return logits.log_softmax(-1).gather(-1, torch.tensor(response)[:, None])[:, 0]


@torch.no_grad()
def learner_greedy(model: torch.nn.Module, prompt: list[int], max_tokens: int, eos: int) -> list[int]:
    """Argmax decoding with a full forward per token: no cache, no batching, nothing to disagree with."""
    out: list[int] = []
    while len(out) < max_tokens and (not out or out[-1] != eos):
        out.append(int(model(torch.tensor([prompt + out])).logits[0, -1].argmax()))
    return out


def mean_abs_logprob_diff(model: torch.nn.Module, prefixes: list[list[int]], outs, temperature: float) -> float:
    diffs = [
        (learner_logprobs(model, prefix, c.token_ids, temperature) - torch.tensor(c.logprobs)).abs()
        for prefix, group in zip(prefixes, outs) for c in group if c.token_ids
    ]
    return torch.cat(diffs).mean().item()


@torch.no_grad()
def learner_nucleus_logprobs(model: torch.nn.Module, prompt: list[int], response: list[int], temperature: float,
                             top_p: float) -> torch.Tensor:
    """Log-probs under the top-p truncated, renormalised distribution (what engines report for top_p < 1)."""
    ids = torch.tensor([prompt + response])
    logits = model(ids).logits[0, len(prompt) - 1:-1].float() / temperature
    probs, order = logits.softmax(-1).sort(-1)  # ascending: drop the low tail summing to <= 1 - top_p
    drop = probs.cumsum(-1) <= 1 - top_p
    drop[:, -1] = False
    logits = logits.scatter(-1, order, logits.gather(-1, order).masked_fill(drop, float("-inf")))
    return logits.log_softmax(-1).gather(-1, torch.tensor(response)[:, None])[:, 0]
