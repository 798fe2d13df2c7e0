"""Metrics to the console and, with logger=wandb, to Weights & Biases.

W&B runs online when an API key is available and offline otherwise; it never prompts. The config
sent to W&B and saved to disk is scrubbed of anything that looks like a secret.
"""

from __future__ import annotations

import json
import netrc
import os
import re
import sys
import uuid
from pathlib import Path
from typing import Any

from rich.console import Console

SECRET = re.compile(r"(api[_-]?key|token|secret|password)", re.I)
# Credentials recognisable by their format (Hugging Face, OpenAI-style, GitHub, Slack, AWS key ids).
TOKEN = re.compile(r"(?:hf_[A-Za-z0-9]{30,}|sk-[A-Za-z0-9_-]{20,}|gh[pousr]_[A-Za-z0-9]{30,}"
                   r"|github_pat_[A-Za-z0-9_]{30,}|xox[abprs]-[A-Za-z0-9-]{10,}|AKIA[0-9A-Z]{16})")


def _env_secrets() -> list[str]:
    """Values of secret-named environment variables (WANDB_API_KEY, HF_TOKEN, ...), longest first."""
    values = {v for k, v in os.environ.items() if SECRET.search(k) and len(v) >= 8}
    return sorted(values, key=len, reverse=True)


def scrub_text(text: str) -> str:
    """`text` with secret env values and token-shaped strings replaced by '***'."""
    for value in _env_secrets():
        text = text.replace(value, "***")
    return TOKEN.sub("***", text)


def scrub(obj: Any) -> Any:
    """Copy of a nested dict/list with secret-looking keys, and secret-looking values, replaced."""
    if isinstance(obj, dict):
        return {k: "***" if SECRET.search(str(k)) and v else scrub(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [scrub(v) for v in obj]
    if isinstance(obj, str):
        return scrub_text(obj)
    return obj


def _has_wandb_key() -> bool:
    if os.environ.get("WANDB_API_KEY"):
        return True
    try:
        return netrc.netrc().authenticators("api.wandb.ai") is not None
    except (FileNotFoundError, netrc.NetrcParseError):
        return False


def sweep_name() -> str | None:
    """The sweep dir's name when Hydra runs a multirun (`-m`), else None."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return None
    hc = HydraConfig.get()
    return Path(hc.sweep.dir).name if hc.mode == RunMode.MULTIRUN else None


def grouping(cfg, config: dict[str, Any]) -> dict[str, Any]:
    """W&B group / job_type / tags: a sweep is one group, its runs grouped by algo and curriculum."""
    names = {k: (config.get(k) or {}).get("name") for k in ("algo", "curriculum", "data")}
    return {"group": cfg.get("group") or sweep_name(),
            "job_type": f"{names['algo']}-{names['curriculum']}",
            "tags": [f"{k}={v}" for k, v in names.items() if v]}


class Logger:
    def __init__(self, cfg, run_dir: Path, config: dict[str, Any]):
        self.console = Console(highlight=False)
        self.run = None
        self.jsonl = open(run_dir / "metrics.jsonl", "a")
        if cfg.name == "wandb" and cfg.mode != "disabled":
            # wandb keeps caches, staging files and debug logs under ~/.cache, ~/.local/share and ~/.config;
            # a run writes only into its run dir and rlreason's cache dir (unless WANDB_* say otherwise).
            if config.get("cache_dir"):
                wandb_home = Path(str(config["cache_dir"])).expanduser() / "wandb"
                for var, sub in (("WANDB_CACHE_DIR", "cache"), ("WANDB_DATA_DIR", "data"),
                                 ("WANDB_CONFIG_DIR", "config")):
                    os.environ.setdefault(var, str(wandb_home / sub))
            import wandb

            mode = cfg.mode if cfg.mode != "auto" else ("online" if _has_wandb_key() else "offline")
            id_file = run_dir / "wandb_id"
            # Our own id (wandb.util.generate_id is gone from recent wandb); os.urandom, no RNG touched.
            run_id = id_file.read_text().strip() if id_file.exists() else uuid.uuid4().hex[:8]
            id_file.write_text(run_id)
            os.environ.setdefault("WANDB_SILENT", "true")
            # wandb records the command line (sys.argv) in the run's metadata: scrub it first.
            sys.argv[:] = [scrub_text(a) for a in sys.argv]
            self.run = wandb.init(project=cfg.project, entity=cfg.entity, dir=str(run_dir), id=run_id,
                                  resume="allow", mode=mode, config=scrub(config), **grouping(cfg, config))
            self.console.print(f"[dim]wandb: {mode} run {run_id}[/dim]")

    def truncate_after(self, iteration: int) -> None:
        """Forget metrics rows of iterations > `iteration` (and a line cut by a kill): the resume point.

        The loop logs an iteration before checkpointing it, so a run killed in between redoes the
        iteration and logs it again; without this metrics.jsonl would hold it twice."""
        path = Path(self.jsonl.name)
        self.jsonl.close()
        kept = []
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # the tail of a write interrupted by a kill
            if isinstance(row, dict) and isinstance(row.get("iteration"), int) and row["iteration"] <= iteration:
                kept.append(line + "\n")
        tmp = path.with_suffix(".jsonl.tmp")
        tmp.write_text("".join(kept), encoding="utf-8")
        tmp.replace(path)
        self.jsonl = open(path, "a")

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
