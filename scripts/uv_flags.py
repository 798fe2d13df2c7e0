"""Print the `uv pip install` flags equivalent to this machine's pip configuration.

uv reads no pip.conf, so `make setup` passes pip's package sources to it explicitly: every configured
find-links, index-url, extra-index-url and constraint (pip.conf files and PIP_* variables alike, as
`pip config list` shows them), plus pip's rule of taking the best version across all indexes.
Standard library only: it runs before anything is installed. Usage: python scripts/uv_flags.py [--gpu] [--add-index URL] [PIP]

--gpu (a GPU install) leaves out PyTorch's CPU wheel index (`.../whl/cpu`, which docs/installation.md tells CPU users
to add): across all sources `torch==2.13.0+cpu` sorts above `torch==2.13.0`, so with it uv (and pip) would
meet vLLM's `torch==` pin with a CPU build. `python -m rlreason.cuda_check` after the install catches
what this cannot (a CPU build from any other source).
"""

from __future__ import annotations

import ast
import shlex
import subprocess
import sys

FLAGS = {"find-links": "--find-links", "index-url": "--index-url", "extra-index-url": "--extra-index-url",
         "constraint": "--constraint"}


def cpu_only(source: str) -> bool:
    return "/whl/cpu" in source.rstrip("/") + "/"


def uv_flags(pip_config_list: str, gpu: bool = False, add_index: str | None = None) -> list[str]:
    values: dict[str, list[str]] = {"extra-index-url": [add_index]} if add_index else {}
    for line in pip_config_list.splitlines():
        key, sep, raw = line.partition("=")
        name = key.rsplit(".", 1)[-1]
        if not sep or (name not in FLAGS and name != "cert"):
            continue
        try:
            value = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            value = raw
        for item in str(value).split():
            if gpu and name != "cert" and cpu_only(item):
                print(f"uv_flags: GPU install, leaving out the CPU-only source {item}", file=sys.stderr)
                continue
            if item not in values.setdefault(name, []):
                values[name].append(item)
    flags: list[str] = []
    for name, flag in FLAGS.items():
        items = values.get(name, [])
        if name == "index-url":
            items = items[-1:]  # one index; pip lists its settings lowest priority first
        flags += [part for item in items for part in (flag, item)]
    if values.get("extra-index-url") or values.get("find-links"):
        flags += ["--index-strategy", "unsafe-best-match"]  # pip's rule: the best match over all sources
    if values.get("cert"):
        flags.append("--native-tls")  # pip trusts a configured CA bundle; uv then uses the system's
    return flags


def main() -> None:
    args = sys.argv[1:]
    gpu = "--gpu" in args
    add_index = None
    if "--add-index" in args:  # an index this install needs beyond pip's (scripts/torch_source.py)
        i = args.index("--add-index")
        add_index, args = args[i + 1], args[:i] + args[i + 2:]
    pip = [a for a in args if a != "--gpu"] or [sys.executable, "-m", "pip"]
    out = subprocess.run([*pip, "config", "list"], capture_output=True, text=True, check=False).stdout
    print(shlex.join(uv_flags(out, gpu=gpu, add_index=add_index)))


if __name__ == "__main__":
    main()
