"""docs/reference/config.md: every config key with its type, default and meaning, grouped as the Hydra groups
are, with each group's options and what each changes (rlreason.reference.keys and .presets)."""

from __future__ import annotations

from rlreason.reference import markdown as md
from rlreason.reference.keys import Key, schema_keys
from rlreason.reference.presets import Option, groups, run_defaults

PATH = "docs/reference/config.md"
GLOBAL_GROUPS = {
    "recipe": "The sizes a model is trained at: conf/config.yaml picks `recipe=MODEL` for `model=MODEL` when "
              "conf/recipe/ has a file of that name; `recipe=NAME` picks another. Each sets keys across groups.",
    "experiment": "Complete setups (model, data, sizes) for one command: `experiment=NAME`, applied after "
                  "everything else but the command line.",
    "hydra/launcher": "Where a multirun's (`-m`) runs go: the local launcher runs them one after another; "
                      "these run each as a SLURM job (hydra-submitit-launcher's keys: `hydra.launcher.*`).",
}


def render() -> str:
    keys = schema_keys()
    options = groups()
    lines = [
        md.GENERATED.format(source="rlreason/config/ and conf/"), "",
        "# Configuration reference", "",
        "Every key of the training config (`python -m rlreason.run`) and of the eval command "
        "(`python -m rlreason.eval`), with its type, its default in the schema (rlreason/config/) and what it "
        "means, and every option of each config group with the keys it changes. `???` marks a key that must "
        "be set (a group's option sets it). Override any key on the command line (`algo.clip_eps=0.1`) and "
        "pick an option with `GROUP=NAME` (`algo=grpo`). The same text on the terminal: "
        "`python -m rlreason.describe KEY` (or a prefix: `python -m rlreason.describe algo`).", "",
        "## What a run composes", "",
        "With no overrides, conf/config.yaml composes the schema with these options, in this order (the "
        "command line's overrides come last):", "",
        *[f"- {md.code(d.split(' ')[0])}{d[len(d.split(' ')[0]):]}" for d in run_defaults()], "",
        "So the defaults a run sees are the schema's below, changed by each chosen option (its row in the "
        "group's options table). `python -m rlreason.run --cfg job` prints the composed config.", "",
    ]
    top = [k for k in keys if "." not in k.name]
    for k in top:
        if k.group:
            lines += _group(k, [s for s in keys if s.name.startswith(k.name + ".")], options.get(k.name, []))
    lines += ["## Top-level keys", "", *_keys_table([k for k in top if not k.group]), ""]
    # groups of conf/ that are not a node of the schema: recipe, experiment, Hydra's launcher, any new one
    for g in [*GLOBAL_GROUPS, *sorted(set(options) - set(GLOBAL_GROUPS) - {k.name for k in top})]:
        if g in options:
            about = GLOBAL_GROUPS.get(g, f"`{g}=NAME` picks one of conf/{g}/.")
            lines += [f"## {g}", "", about, "", *_options_table(options[g], g), ""]
    lines += _eval_section()
    return "\n".join(lines).rstrip() + "\n"


def _group(k: Key, sub: list[Key], opts: list[Option]) -> list[str]:
    lines = [f"## {k.name}", "", md.text(k.doc), ""]
    if opts:
        lines += [f"Options (`{k.name}=NAME`, conf/{k.name}/):", "", *_options_table(opts, k.name), ""]
    lines += ["Keys:", "", *_keys_table(sub), ""]
    return lines


def _keys_table(keys: list[Key]) -> list[str]:
    rows = [[md.code(k.name), md.text(k.type), "(group)" if k.group else md.code(k.default, 60), md.text(k.doc)]
            for k in keys]
    return md.table(["Key", "Type", "Default", "Meaning"], rows)


def _options_table(opts: list[Option], group: str) -> list[str]:
    rows = []
    for o in opts:
        parts = [f"includes {', '.join(md.code(i) for i in o.includes)}"] if o.includes else []
        parts += [f"selects {', '.join(md.code(s) for s in o.selects)}"] if o.selects else []
        name_key = f"{group}.name"
        changed = [md.code(f"{key}={value}", 70) for key, value in o.changes if key != name_key]
        parts += [", ".join(changed)] if changed else []
        rows.append([md.code(o.name), md.text(o.about) or "—", "; ".join(parts) or "nothing else"])
    return md.table(["Option", "What it is", "Changes from the schema's defaults"], rows)


def _eval_section() -> list[str]:
    from rlreason.config import EvalConfig

    keys = schema_keys(EvalConfig)
    shared = [k.name for k in keys if "." not in k.name and k.group and k.name != "eval"]
    return [
        "## python -m rlreason.eval", "",
        "Its config, conf/eval.yaml, shares the nodes " + ", ".join(md.code(s) for s in shared)
        + " with training (their keys as above) and adds:", "",
        *_keys_table([k for k in keys if k.name.startswith("eval") or ("." not in k.name and not k.group)]), "",
    ]
