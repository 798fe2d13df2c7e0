"""What the README and docs tell a user to type, and the files they point at, stay true.

Every `python -m rlreason.run` / `torchrun ... -m rlreason.run` command in a code block of README.md or
docs/ is composed with its overrides (what `--cfg job` would print; a multirun's comma lists one value at a
time), and every repository path named anywhere in those pages exists. A renamed key, a dropped preset
or a moved file then fails here instead of failing the user who copies the line.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from rlreason.config import register_configs

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
# Placeholders the pages use for a user's own values; lines with an unfinished override are cut there.
PLACEHOLDER = re.compile(r"\.\.\.|…")
# Paths under these top-level folders are the repository's own; anything else (outputs/, /data/...) is a
# user's or a run's.
TOP = ("rlreason", "conf", "tests", "experiments", "scripts", "bench", "docs")
PATH = re.compile(r"(?<![\w./$-])((?:" + "|".join(TOP) + r")/[\w.*/-]*[\w*/])")


def code_blocks(text: str) -> list[str]:
    return re.findall(r"^```[^\n]*\n(.*?)^```", text, flags=re.S | re.M)


def run_commands(page: Path) -> list[tuple[str, list[str]]]:
    """(the command as written, its key=value overrides) for every rlreason.run command in `page`: in its
    code blocks and in its inline code."""
    found = []
    text = page.read_text()
    inline = re.findall(r"`([^`\n]*-m rlreason\.run[^`\n]*)`", re.sub(r"^```.*?^```", "", text, flags=re.S | re.M))
    for block in [*code_blocks(text), *inline]:
        for line in block.replace("\\\n", " ").splitlines():
            line = " ".join(line.split(" #")[0].split())
            if "-m rlreason.run" not in line:
                continue
            args = shlex.split(line.split("-m rlreason.run", 1)[1])
            overrides = []
            for a in args:
                if PLACEHOLDER.search(a):
                    break  # "data.train_path=..." and whatever follows it is the user's to fill in
                if not a.startswith("-") and "=" in a:
                    overrides.append(a)
            found.append((line, overrides))
    return found


COMMANDS = [(page.relative_to(ROOT).as_posix(), line, ov) for page in PAGES for line, ov in run_commands(page)]


def one_value_each(overrides: list[str]) -> list[list[str]]:
    """A multirun's `key=a,b` as one list of overrides per value, the other keys at their first value."""
    sweeps = [(i, o.split("=", 1)) for i, o in enumerate(overrides)
              if "," in o.split("=", 1)[1] and not o.split("=", 1)[1].startswith(("[", "{"))]
    first = [o if not any(i == j for j, _ in sweeps) else f"{kv[0]}={kv[1].split(',')[0]}"
             for i, (o, kv) in enumerate(zip(overrides, [o.split("=", 1) for o in overrides]))]
    out = [first]
    for i, (key, value) in sweeps:
        for v in value.split(",")[1:]:
            out.append([*first[:i], f"{key}={v}", *first[i + 1:]])
    return out


def test_the_pages_have_commands_to_check():
    # the README's own examples are among them: a parser that found nothing would pass everything
    assert sum(page == "README.md" for page, _, _ in COMMANDS) >= 5


@pytest.mark.parametrize("page, line, overrides", COMMANDS, ids=[f"{p}:{line[:60]}" for p, line, _ in COMMANDS])
def test_every_documented_command_composes(page, line, overrides):
    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base=None):
        for ov in one_value_each(overrides):
            compose("config", overrides=ov, return_hydra_config=True)  # raises on an unknown key or option


def named_paths(page: Path) -> set[str]:
    return {m.rstrip("/.") for m in PATH.findall(page.read_text())}


PATHS = sorted({(page.relative_to(ROOT).as_posix(), p) for page in PAGES for p in named_paths(page)})


@pytest.mark.parametrize("page, path", PATHS, ids=[f"{pg}:{p}" for pg, p in PATHS])
def test_every_named_path_exists(page, path):
    if "*" in path:
        assert list(ROOT.glob(path)), f"{page} names {path}: nothing matches"
    else:
        assert (ROOT / path).exists(), f"{page} names {path}, which does not exist"


def test_the_checks_catch_a_stale_claim(tmp_path):
    page = tmp_path / "p.md"
    page.write_text("See `rlreason/nope.py`, `python -m rlreason.run data=x`.\n```bash\n"
                    "python -m rlreason.run algo=nope \\\n  seed=1 # c\n```\n")
    assert run_commands(page) == [("python -m rlreason.run algo=nope seed=1", ["algo=nope", "seed=1"]),
                                  ("python -m rlreason.run data=x", ["data=x"])]
    with pytest.raises(Exception, match="nope"):
        test_every_documented_command_composes("p.md", "", ["algo=nope"])
    assert named_paths(page) == {"rlreason/nope.py"}
    assert one_value_each(["algo=ppo,vineppo", "seed=0,1"]) == [
        ["algo=ppo", "seed=0"], ["algo=vineppo", "seed=0"], ["algo=ppo", "seed=1"]]
