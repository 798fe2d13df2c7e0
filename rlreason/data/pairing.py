"""Which data goes with which built-in tiny model, and how each task's data is made: config checks before
compute (rlreason.validate). The built-in tiny models read and write their own task's characters only."""

from __future__ import annotations

from typing import Any


def pairing_problems(model: str, d: Any, env_cls: str | None) -> list[str]:
    """One line per mismatch of the model (its conf/model name), the data group `d` and env.cls."""
    problems: list[str] = []
    if model == "tiny" and d.name == "countdown":
        problems.append("model=tiny is the arith model: it cannot write Countdown's / ( ); use model=tiny_countdown")
    if model == "tiny_countdown" and d.name != "countdown":
        problems.append(f"model=tiny_countdown is built for data=countdown only; for data={d.name} use model=tiny "
                        "(arith) or model=hf model.path=...")
    if model in ("tiny", "tiny_countdown") and d.name == "guess":
        problems.append(f"model={model} cannot write the hidden-number game's `guess N` lines; use model=tiny_guess")
    if model == "tiny_guess" and d.name != "guess":
        problems.append(f"model=tiny_guess is built for data=guess only (the hidden-number game); for data={d.name} "
                        "use its own tiny model or model=hf model.path=...")
    if d.name == "guess" and not env_cls:
        problems.append("data=guess is a multi-turn game: set env.cls=rlreason.envs.guess:GuessNumber "
                        "(experiment=guess sets it, with model=tiny_guess)")
    if d.name in ("arith", "guess") and d.source != "generated":
        problems.append(f"data={d.name} is generated: set data.source=generated")
    if d.name not in ("arith", "countdown", "guess", "reasoning_gym") and d.source == "generated":
        problems.append(f"data={d.name} has no generator: use data.source=local or hub")
    return problems
