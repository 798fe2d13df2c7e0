"""`python -m rlreason.describe KEY ...`: what a config key or a metric means, from the same source as
docs/reference/ (the schema's comments in rlreason/config/, the registry in rlreason/metrics.py).

    python -m rlreason.describe algo.clip_eps     # type, default, meaning
    python -m rlreason.describe algo              # the group: its options and every key under it
    python -m rlreason.describe mc/dedup_ratio    # a metric: unit, meaning, when it is logged
    python -m rlreason.describe eval.n            # a key of `python -m rlreason.eval`'s config
"""

from __future__ import annotations

import difflib
import sys
import textwrap

from rlreason.reference.keys import Key, schema_keys

WIDTH = 100


def _wrap(text: str, indent: str = "    ") -> str:
    return textwrap.fill(text or "(no description)", WIDTH, initial_indent=indent, subsequent_indent=indent)


def _keys() -> dict[str, Key]:
    from rlreason.config import EvalConfig

    keys = {k.name: k for k in schema_keys()}
    for k in schema_keys(EvalConfig):  # the eval command's own keys (the shared nodes are training's)
        keys.setdefault(k.name, k)
    return keys


def _key_line(k: Key) -> str:
    return f"{k.name}: {k.type}" + ("" if k.group else f" = {k.default}")


def describe_key(name: str) -> str:
    """A key's description, or for a group or prefix, its options and every key under it. Raises KeyError
    with a one-line message (and a suggestion) for an unknown name."""
    if "/" in name:
        return describe_metric(name)
    keys = _keys()
    under = [k for k in keys.values() if k.name.startswith(name + ".")]
    options = _options(name)  # recipe, experiment: groups of conf/ that set keys across the schema
    if name not in keys and not under and not options:
        from rlreason.config import EvalConfig
        from rlreason.validate import suggest

        raise KeyError(f"unknown config key {name}{suggest(name) or suggest(name, EvalConfig)}: "
                       "`python -m rlreason.describe` lists the groups")
    out = []
    if name in keys:
        k = keys[name]
        out += [_key_line(k), _wrap(k.doc), f"    ({k.source}, {k.cls})"]
    out += options[1:] if name not in keys else options  # no blank line above a group's options alone
    if under:
        out += ["", "Keys:"]
        for k in under:
            out += [f"  {_key_line(k)}", _wrap(k.doc, "      ")]
    return "\n".join(out)


def _options(group: str) -> list[str]:
    from rlreason.reference.presets import groups

    opts = groups().get(group)
    if not opts:
        return []
    out = ["", f"Options ({group}=NAME, conf/{group}/):"]
    for o in opts:
        changes = ", ".join(f"{k}={v}" for k, v in o.changes if k != f"{group}.name")
        out.append(textwrap.fill(f"{o.name}: {o.about}".rstrip(": "), WIDTH, initial_indent="  ",
                                 subsequent_indent="      "))
        pulls = [f"includes {', '.join(o.includes)}"] if o.includes else []
        pulls += [f"selects {', '.join(o.selects)}"] if o.selects else []
        for line in [*pulls, f"sets {changes}" if changes else ""]:
            if line:
                out.append(_wrap(line, "      "))
    return out


def describe_metric(name: str) -> str:
    from rlreason.metrics import METRICS, lookup

    m = lookup(name)
    if m is None:
        under = [x for x in METRICS if x.name.startswith(name.rstrip("/") + "/")]
        if not under:
            raise KeyError(f"unknown metric {name}{_suggest(name, [x.name for x in METRICS])}: "
                           "docs/reference/metrics.md lists them")
        return "\n".join(f"{x.name} ({x.unit}): {x.meaning}" for x in under)
    return "\n".join([f"{m.name} ({m.unit})", _wrap(m.meaning), _wrap(f"logged: {m.when}")])


def _suggest(name: str, names: list[str]) -> str:
    close = difflib.get_close_matches(name, names, n=1, cutoff=0.75)
    return f" (did you mean {close[0]}?)" if close else ""


def overview() -> str:
    keys = _keys()
    lines = ["python -m rlreason.describe KEY: a config key (algo.clip_eps), a group (algo) or a metric "
             "(mc/dedup_ratio). The groups and top-level keys:", ""]
    lines += [textwrap.fill(f"{k.name}: {k.doc}", WIDTH, initial_indent="  ", subsequent_indent="      ")
              if k.group else f"  {_key_line(k)}" for k in keys.values() if "." not in k.name]
    lines += ["", "Metrics: python -m rlreason.describe train/ (a prefix lists its metrics); "
              "docs/reference/config.md and metrics.md have all of it."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(overview())
        return 0
    status = 0
    for i, name in enumerate(args):
        try:
            print(("\n" if i else "") + describe_key(name))
        except KeyError as e:
            print(f"rlreason: {e.args[0]}", file=sys.stderr)
            status = 2
    return status


if __name__ == "__main__":
    sys.exit(main())
