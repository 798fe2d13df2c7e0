"""What ranks other than 0 hold instead of the run's shared files: rank 0 alone writes the stats store,
metrics.jsonl, W&B, the console and summary.json (every rank holds the same metrics, so nothing is lost)."""

from __future__ import annotations

from typing import Any


class NullStore:
    """Stands in for the stats store off rank 0. Samplers never run there (dist/select.py), so only the
    loop's writes reach it."""

    def add(self, attempts: list) -> None:
        pass

    def record_selection(self, iteration: int, pool: list[str], selected: list[str]) -> None:
        pass

    def commit(self, iteration: int) -> None:
        pass

    def truncate_after(self, iteration: int) -> None:
        pass

    def close(self) -> None:
        pass

    def __getattr__(self, name: str) -> Any:  # a read here would be a bug: the history lives on rank 0
        raise RuntimeError(f"rlreason: the stats store lives on rank 0; {name}() was called on another rank")


class QuietLogger:
    def truncate_after(self, iteration: int) -> None:
        pass

    def log(self, metrics: dict[str, float], step: int) -> None:
        pass

    def table(self, name: str, columns: list[str], rows: list[list[Any]], step: int) -> None:
        pass

    def print(self, *args: Any) -> None:
        pass

    def close(self) -> None:
        pass
