"""Metrics to the console and, with logger=wandb, to Weights & Biases.

W&B runs online when an API key is available and offline otherwise; it never prompts. The config
sent to W&B and saved to disk is scrubbed of anything that looks like a secret.
"""

from __future__ import annotations

import json
import netrc
import os
import re
from pathlib import Path
from typing import Any

from rich.console import Console

SECRET = re.compile(r"(api[_-]?key|token|secret|password)", re.I)


def scrub(obj: Any) -> Any:
    """Copy of a nested dict/list with secret-looking keys replaced by '***'."""
    if isinstance(obj, dict):
        return {k: "***" if SECRET.search(str(k)) and v else scrub(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [scrub(v) for v in obj]
    return obj


def _has_wandb_key() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


class Logger:
    def __init__(self, cfg, run_dir: Path, config: dict[str, Any]):
        self.console = Console(highlight=False)
        self.run = None
        self.jsonl = open(run_dir / "metrics.jsonl", "a")
        if cfg.name == "wandb" and cfg.mode != "disabled":
            import wandb

            mode = cfg.mode if cfg.mode != "auto" else ("online" if _has_wandb_key() else "offline")
            id_file = run_dir / "wandb_id"
            run_id = id_file.read_text().strip() if id_file.exists() else wandb.util.generate_id()
            id_file.write_text(run_id)
            os.environ.setdefault("WANDB_SILENT", "true")
            self.run = wandb.init(project=cfg.project, entity=cfg.entity, dir=str(run_dir), id=run_id,
                                  resume="allow", mode=mode, config=scrub(config))
            self.console.print(f"[dim]wandb: {mode} run {run_id}[/dim]")

    def log(self, metrics: dict[str, float], step: int) -> None:
        self.jsonl.write(json.dumps({"iteration": step, **metrics}) + "\n")
        self.jsonl.flush()
        if self.run is not None:
            self.run.log(metrics, step=step)

    def table(self, name: str, columns: list[str], rows: list[list[Any]], step: int) -> None:
        if self.run is not None:
            import wandb

            self.run.log({name: wandb.Table(columns=columns, data=rows)}, step=step)

    def print(self, *args: Any) -> None:
        self.console.print(*args)

    def close(self) -> None:
        self.jsonl.close()
        if self.run is not None:
            self.run.finish()
