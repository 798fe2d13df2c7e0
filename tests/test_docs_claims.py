"""What the README and docs tell a user to type, and the files they point at, stay true.

Every `python -m rlreason.run` / `torchrun ... -m rlreason.run` (and `rlreason.eval`) command in README.md
or docs/ is composed with its overrides (what `--cfg job` would print; a multirun's comma lists one value at a
time); so is every `key=value` override written in inline code, in whichever option of its group has the
key; every repository path named in those pages and every relative link exists; and every figure embedded
from experiments/figures/ has the command that regenerates it next to it. A renamed key, a dropped preset,
a moved file or an orphaned figure then fails here instead of failing the user who copies the line.
"""

from __future__ import annotations

import fnmatch
import functools
import re
import shlex
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

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


def shell_lines(block: str) -> list[str]:
    """A code block's commands, one per line: continuations joined, comments cut, and a quoted value with
    a real newline in it (a prompt template) kept whole."""
    lines, pending = [], ""
    for line in block.replace("\\\n", " ").splitlines():
        pending = f"{pending}\n{line}" if pending else line
        try:
            words = shlex.split(pending, comments=True)  # a `#` inside quotes is no comment
        except ValueError:  # an open quote: the value goes on on the next line
            continue
        lines.append(shlex.join(words))
        pending = ""
    return lines


def run_commands(page: Path, module: str = "run") -> list[tuple[str, list[str]]]:
    """(the command as written, its key=value overrides) for every `-m rlreason.<module>` command in `page`:
    in its code blocks and in its inline code."""
    found = []
    text = page.read_text()
    cmd = f"-m rlreason.{module}"
    inline = re.findall(rf"`([^`\n]*{re.escape(cmd)}\b[^`\n]*)`", re.sub(r"^```.*?^```", "", text, flags=re.S | re.M))
    for block in [*code_blocks(text), *inline]:
        for line in shell_lines(block):
            if not re.search(rf"{re.escape(cmd)}(\s|$)", line):
                continue
            args = shlex.split(line.split(cmd, 1)[1])
            overrides = []
            for a in args:
                if PLACEHOLDER.search(a):
                    break  # "data.train_path=..." and whatever follows it is the user's to fill in
                if not a.startswith("-") and "=" in a:
                    overrides.append(a)
            found.append((line, overrides))
    return found


COMMANDS = [(page.relative_to(ROOT).as_posix(), line, ov) for page in PAGES for line, ov in run_commands(page)]
EVAL_COMMANDS = [(page.relative_to(ROOT).as_posix(), line, ov) for page in PAGES
                 for line, ov in run_commands(page, "eval")]


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
def test_every_documented_command_composes(page, line, overrides, config="config"):
    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base=None):
        for ov in one_value_each(overrides):
            compose(config, overrides=ov, return_hydra_config=True)  # raises on an unknown key or option


@pytest.mark.parametrize("page, line, overrides", EVAL_COMMANDS,
                         ids=[f"{p}:{line[:60]}" for p, line, _ in EVAL_COMMANDS])
def test_every_documented_eval_command_composes(page, line, overrides):
    test_every_documented_command_composes(page, line, overrides, config="eval")


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


# --- inline `key=value` overrides -------------------------------------------------------------------------

KEY = re.compile(r"^[+~]?[a-z_][a-z0-9_]*(?:[./][a-z0-9_]+)*$")
# A value a page leaves for the reader to fill in (`model.path=DIR`, `learner.lora.r=R`, `reward.fn=PATH.py:NAME`,
# `data.hub_id=...`): the key must exist, the value is not composed.
PLACEHOLDER_VALUE = re.compile(r"^$|\.\.\.|…|^[A-Z][A-Z0-9_]*$|\b(PATH|NAME|DIR|HUB_ID\w*)\b|^value$|^option$")
GRAMMAR = {"key=value", "group=option", "node.key=value"}  # how overrides are written, not an override


def inline_overrides(page: Path) -> list[str]:
    """Inline code spans outside code blocks made only of Hydra overrides (and flags): `algo=grpo`,
    `algo.mc.v0=group algo.mc_rollouts=2`, `-m algo=vineppo,grpo seed=0,1,2`. Spans that start with a
    command (`make setup PY=...`), pin a package (`torch==2.13.0`) or write Python are not overrides."""
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.S | re.M)
    found = []
    for span in re.findall(r"`([^`\n]+)`", text):
        try:
            tokens = shlex.split(span)
        except ValueError:
            continue
        kv = [t for t in tokens if not t.startswith("-")]
        if (kv and span not in GRAMMAR and "==" not in span
                and all("=" in t and KEY.match(t.split("=", 1)[0]) for t in kv)):
            found.append(span)
    return found


# docs/reference/ is generated from the config itself (tests/reference/ keep it current); its `key=value` spans
# are a preset's values as data, not command lines.
INLINE = sorted({(page.relative_to(ROOT).as_posix(), span) for page in PAGES for span in inline_overrides(page)
                 if "reference" not in page.relative_to(ROOT).parts})
# Keys the pages document ahead of the schema, each with why; strict: the test fails once the key composes, so
# the entry goes when the feature lands.
PENDING: dict[str, str] = {}


def _group_options(group: str) -> list[str]:
    return sorted(p.stem for p in (ROOT / "conf" / group).glob("*.yaml"))


def _group_of(key: str) -> str | None:
    """The Hydra group whose options hold `key` (conf/algo for algo.mc.v0, conf/hydra/launcher for
    hydra.launcher.partition), or None for a plain node."""
    parts = key.lstrip("+~").split(".")
    for n in range(len(parts) - 1, 0, -1):
        if (ROOT / "conf" / "/".join(parts[:n])).is_dir():
            return "/".join(parts[:n])
    return None


@functools.cache
def _all_key_names() -> frozenset[str]:
    """Every key's last name, in every option of every group (for shorthand like `sleep_mode=false`)."""
    names = set()
    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base=None):
        for group in ("algo", "data", "engine", "curriculum", "logger", "model", "experiment"):
            for option in _group_options(group):
                cfg = OmegaConf.to_container(compose("config", overrides=[f"{group}={option}"]))
                stack = [cfg]
                while stack:
                    node = stack.pop()
                    if isinstance(node, dict):
                        names.update(map(str, node))
                        stack.extend(node.values())
    return frozenset(names)


def _has(cfg, key: str) -> bool:
    """`key` is a key of `cfg`, whatever its value (`model.path: ???` included)."""
    parent, _, last = key.rpartition(".")
    node = OmegaConf.select(cfg, parent, throw_on_missing=False) if parent else cfg
    return OmegaConf.is_dict(node) and last in node.keys()  # `in node` is False for a ??? value


def _composes(config: str, overrides: list[str], keys: list[str]) -> bool:
    try:
        cfg = compose(config, overrides=overrides, return_hydra_config=True)
    except Exception:
        return False
    return all(_has(cfg, k) for k in keys)


def check_inline(span: str) -> None:
    """Raise AssertionError unless the span composes, in the default config or in an option of the group its
    keys live in (`algo.normalize_std=false` needs algo=grpo; `data.countdown.use_all=true` data=countdown)."""
    overrides = [t for t in shlex.split(span) if not t.startswith("-")]
    concrete, keys = [], []
    for o in overrides:
        key, value = o.split("=", 1)
        if "." not in key and "/" not in key and not (ROOT / "conf" / key).is_dir() and key not in _top_keys():
            # shorthand for a key of the node the sentence is about: it must name one
            assert key in _all_key_names(), f"`{span}`: no config key is named {key!r}"
        elif (ROOT / "conf" / key).is_dir() and "*" in value:  # `model=rho1b_sft_*`: some option matches
            assert fnmatch.filter(_group_options(key), value), f"`{span}`: no option of {key} matches"
        elif (ROOT / "conf" / key).is_dir() and PLACEHOLDER_VALUE.search(value):
            pass  # `experiment=`, `algo=NAME`: the group exists
        elif PLACEHOLDER_VALUE.search(value):
            keys.append(key.lstrip("+~").replace("/", "."))
        else:
            concrete.append(o)
    if not concrete and not keys:
        return
    chosen = {o.split("=", 1)[0] for o in concrete}
    groups = sorted({g for o in concrete + keys if (g := _group_of(o.split("=", 1)[0])) and g not in chosen})
    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base=None):
        for config in ("config", "eval"):
            for ov in one_value_each(concrete):
                tries = [ov] + [[f"{g}={opt}", *ov] for g in groups for opt in _group_options(g)]
                if not any(_composes(config, t, keys) for t in tries):
                    break
            else:
                return
    raise AssertionError(f"`{span}` does not compose (tried the defaults and every option of {groups or 'no group'})")


@functools.cache
def _top_keys() -> frozenset[str]:
    register_configs()
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base=None):
        return frozenset(map(str, compose("config")))


def _pending(span: str) -> list:
    reasons = [why for key, why in PENDING.items() if re.search(rf"(^|\s){re.escape(key)}=", span)]
    return [pytest.mark.xfail(reason=reasons[0], strict=True)] if reasons else []


@pytest.mark.parametrize("page, span", [pytest.param(p, s, marks=_pending(s)) for p, s in INLINE],
                         ids=[f"{p}:{s[:60]}" for p, s in INLINE])
def test_every_inline_override_composes(page, span):
    check_inline(span)


# --- links and figures ------------------------------------------------------------------------------------

LINK = re.compile(r"(!?)\[(?:[^\[\]]|\[[^\]]*\])*\]\(([^)\s]+)\)")


def relative_links(page: Path) -> list[tuple[bool, str]]:
    """(is an image, target) for every relative link outside code blocks."""
    text = re.sub(r"^```.*?^```", "", page.read_text(), flags=re.S | re.M)
    return [(m.group(1) == "!", m.group(2)) for m in LINK.finditer(text)
            if not re.match(r"^[a-z][a-z0-9+.-]*:|^#|^/", m.group(2))]


LINKS = sorted({(page.relative_to(ROOT).as_posix(), target) for page in PAGES for _, target in relative_links(page)})


@pytest.mark.parametrize("page, target", LINKS, ids=[f"{p}:{t}" for p, t in LINKS])
def test_every_relative_link_resolves(page, target):
    """On the forge the pages are read as they are: a link is a path from the page's own folder."""
    assert (ROOT / page).parent.joinpath(target.split("#")[0]).resolve().exists(), f"{page} links to {target}"


def make_results_outputs() -> set[str]:
    """The figure dirs `make results` writes (its sweep_report.py lines' -o)."""
    make = (ROOT / "Makefile").read_text()
    block = make[make.index("\nresults:"):].split("\n\n")[0]
    return set(re.findall(r"-o (experiments/figures/[\w.-]+)", block))


def figures_without_command(page: Path, window: int = 15) -> list[str]:
    """Figures embedded from experiments/figures/ with no command writing their dir (`-o DIR`, or
    `make results` for the dirs it writes) within `window` lines of the image."""
    lines = page.read_text().splitlines()
    bad = []
    for i, line in enumerate(lines):
        for m in re.finditer(r"!\[[^\]]*\]\(([^)\s]+)\)", line):
            target = (page.parent / m.group(1)).resolve()
            if not target.is_relative_to(ROOT / "experiments" / "figures"):
                continue
            fig_dir = target.parent.relative_to(ROOT).as_posix()
            near = "\n".join(lines[max(0, i - window):i + window + 1])
            if not (re.search(rf"-o {re.escape(fig_dir)}(?![\w.-])", near)
                    or ("make results" in near and fig_dir in make_results_outputs())):
                bad.append(m.group(1))
    return bad


@pytest.mark.parametrize("page", [p.relative_to(ROOT).as_posix() for p in PAGES])
def test_every_embedded_figure_has_its_command_next_to_it(page):
    assert not figures_without_command(ROOT / page), f"{page}: no regenerating command near these figures"


def test_the_pages_embed_figures_and_inline_overrides():
    # a parser that found nothing would pass everything
    assert sum("![" in line for line in (ROOT / "README.md").read_text().splitlines()) >= 1
    assert len(INLINE) >= 50 and len(LINKS) >= 30


def test_the_new_checks_catch_stale_claims(tmp_path):
    # an override whose key was renamed, in no option of its group; a good one needs its group's option
    with pytest.raises(AssertionError, match="does not compose"):
        check_inline("algo.mc.v00=group")
    check_inline("algo.normalize_std=false")
    with pytest.raises(AssertionError, match="does not compose"):
        check_inline("algo.normalize_std=maybe")
    with pytest.raises(AssertionError, match="no config key"):
        check_inline("sleep_modes=false")
    check_inline("learner.lora.r=R")  # a placeholder value: the key must exist
    with pytest.raises(AssertionError, match="does not compose"):
        check_inline("learner.lorax.r=R")
    page = tmp_path / "p.md"
    page.write_text("Try `trainer.iterations=3 algo=grpo` and `make setup PY=python3.11`.\n\n"
                    "![c](../figures/countdown/curves.png)\n")
    assert inline_overrides(page) == ["trainer.iterations=3 algo=grpo"]
    assert relative_links(page) == [(True, "../figures/countdown/curves.png")]
    # a figure of experiments/figures with no command that writes its dir nearby
    fig = ROOT / "experiments" / "figures" / "countdown" / "curves.png"
    page.write_text(f"![c]({fig})\n\nSee the results.\n")
    assert figures_without_command(page) == [str(fig)]
    page.write_text(f"![c]({fig})\n\n`python experiments/sweep_report.py D -o experiments/figures/countdown`\n")
    assert figures_without_command(page) == []
    assert "experiments/figures/default" in make_results_outputs()


# --- the site ---------------------------------------------------------------------------------------------


def nav_pages(nav) -> list[str]:
    """Every page file in mkdocs.yml's nav, depth first."""
    if isinstance(nav, str):
        return [nav]
    if isinstance(nav, dict):
        return [p for v in nav.values() for p in nav_pages(v)]
    return [p for item in nav for p in nav_pages(item)]


def test_every_docs_page_is_in_the_site_nav_and_opens_with_its_purpose():
    """`make docs` (--strict) fails on a page left out of the nav; this says so in the test run too, and
    keeps each page's first paragraph, after its title, saying what the page is for."""
    import yaml

    nav = nav_pages(yaml.safe_load((ROOT / "mkdocs.yml").read_text())["nav"])
    pages = sorted(p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md"))
    assert not set(pages) - set(nav), f"docs pages missing from mkdocs.yml's nav: {sorted(set(pages) - set(nav))}"
    assert not set(nav) - set(pages), f"mkdocs.yml's nav names missing pages: {sorted(set(nav) - set(pages))}"
    for page in pages:
        text = re.sub(r"^<!--.*?-->\s*", "", (ROOT / "docs" / page).read_text(), flags=re.S)  # a generated page's note
        blocks = text.split("\n\n")
        assert blocks[0].startswith("# ") and "\n" not in blocks[0].strip(), f"docs/{page}: no title line first"
        assert blocks[1].strip() and not blocks[1].lstrip().startswith(("#", "```", "|", "-", "!")), \
            f"docs/{page}: the title is not followed by a sentence saying what the page is for"
