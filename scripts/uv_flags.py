"""Print the `uv pip install` flags equivalent to this machine's pip configuration.

uv reads no pip.conf, so `make setup` passes pip's package sources to it explicitly: every configured
find-links, index-url, extra-index-url and constraint (pip.conf files and PIP_* variables alike, as
`pip config list` shows them), plus pip's rule of taking the best version across all indexes.
Standard library only: it runs before anything is installed. Usage: python scripts/uv_flags.py [PIP]
"""

from __future__ import annotations

import ast
import shlex
import subprocess
import sys

FLAGS = {"find-links": "--find-links", "index-url": "--index-url", "extra-index-url": "--extra-index-url",
         "constraint": "--constraint"}


def uv_flags(pip_config_list: str) -> list[str]:
    values: dict[str, list[str]] = {}
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
    pip = sys.argv[1:] or [sys.executable, "-m", "pip"]
    out = subprocess.run([*pip, "config", "list"], capture_output=True, text=True, check=False).stdout
    print(shlex.join(uv_flags(out)))


if __name__ == "__main__":
    main()
