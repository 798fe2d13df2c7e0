"""Export a checkpoint to a model dir that eval, vLLM, transformers and a new run can open:

    python -m rlreason.distributed.export RUN/checkpoints/iter_N [OUT]      # OUT defaults to RUN/export/iter_N

A checkpoint dir is never written into (its manifest is verified whenever it is loaded), so the export
goes elsewhere. OUT is the policy as an HF model dir (config, model.safetensors, tokenizer), plus
export.json (where it came from) and, for a PPO run, critic/critic.safetensors (the value model's state
dict, as in a single-process checkpoint; in a subdir because vLLM and `rlreason.eval` load every
*.safetensors file at the top of a model dir). It is written into a temp dir and renamed into place, so OUT is whole or absent.

A single-process checkpoint's policy/ is a model dir already: it is copied, with the run's tokenizer (and
its chat template) added. A sharded one (torchrun) needs one process and no process group:
torch.distributed.checkpoint reads the shards offline (`no_dist=True`)
straight into a plain model built from the run's base model (its .hydra/config.yaml), reading only the
model tensors, not the optimizer state. The tensors are the fp32 master weights, as a single-process
checkpoint saves them. A LoRA checkpoint (learner.lora: policy/ is a peft adapter) becomes the base with the
adapter merged in, and the adapter itself in OUT/adapter (for PeftModel.from_pretrained or vLLM's LoRA).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import warnings
from pathlib import Path

from rlreason.config import ConfigError
from rlreason.distributed.checkpoint import DCP_DIR
from rlreason.trainer import checkpoint

PREFIX = "learner.model."  # DCP's flattened key of a model tensor: learner.model.<policy|critic>.<name>


def is_sharded(path: Path) -> bool:
    """`path` is the dir of a checkpoint written under torchrun."""
    return (path / DCP_DIR).is_dir() and (path / "trainer_state.pt").is_file()


def is_adapter(path: Path) -> bool:
    """`path` is the dir of a learner.lora checkpoint: its policy/ is a peft adapter, not a model."""
    from rlreason.learner.lora import is_adapter_dir

    return is_adapter_dir(path / "policy") and (path / "trainer_state.pt").is_file()


def default_out(ckpt: Path) -> Path:
    return ckpt.parent.parent / "export" / ckpt.name  # RUN/checkpoints/iter_N -> RUN/export/iter_N


def base_model(ckpt: Path, cache_dir: str | None = None) -> tuple[str, str]:
    """(model dir or hub id, tokenizer source) of the model the checkpoint's run started from."""
    from omegaconf import OmegaConf

    from rlreason.model.load import resolve_model_path

    saved = ckpt.parent.parent / ".hydra" / "config.yaml"
    if not saved.is_file():
        raise ConfigError(f"{saved} is missing, so the model checkpoint {ckpt} was trained from is unknown: "
                          f"export it with python -m rlreason.distributed.export {ckpt} OUT --base MODEL and use OUT")
    run_cfg = OmegaConf.load(saved)
    try:
        path = resolve_model_path(run_cfg.model, os.path.expanduser(cache_dir or run_cfg.cache_dir))
    except (FileNotFoundError, ValueError) as e:
        raise ConfigError(f"the base model of checkpoint {ckpt} ({saved}): {e}") from e
    return path, run_cfg.model.tokenizer or path


def _load(reader, meta: dict, module, prefix: str, ckpt: Path, base: str) -> None:
    """Read the checkpoint's `prefix`* tensors into `module`'s own tensors (in place), after checking
    that the names and shapes are exactly the module's: a checkpoint of another model fails here."""
    import torch.distributed.checkpoint as dcp

    own = module.state_dict()
    theirs = {k.removeprefix(prefix): m for k, m in meta.items() if k.startswith(prefix)}
    # Tied weights (embeddings = output layer) share one tensor: any one of their names will do.
    present = {own[k].data_ptr() for k in own if k in theirs}
    missing = [k for k in own if k not in theirs and own[k].data_ptr() not in present]
    extra = [k for k in theirs if k not in own]
    shapes = [f"{k} {tuple(theirs[k].size)} vs {tuple(own[k].shape)}" for k in own
              if k in theirs and tuple(theirs[k].size) != tuple(own[k].shape)]
    if missing or extra or shapes:
        detail = "; ".join(f"{what}: {', '.join(names[:3])}{' ...' if len(names) > 3 else ''}"
                           for what, names in (("missing", missing), ("unexpected", extra), ("shapes", shapes))
                           if names)
        raise ConfigError(f"checkpoint {ckpt} does not hold a {prefix.split('.')[-2]} of model {base} ({detail}); "
                          "it was trained from another model")
    wanted = {prefix + k: v for k, v in own.items() if k in theirs}
    try:
        with warnings.catch_warnings():  # "... assuming the intent is to load in a single process": it is
            warnings.filterwarnings("ignore", message="torch.distributed is disabled")
            dcp.load(wanted, storage_reader=reader, no_dist=True)
    except Exception as e:  # noqa: BLE001 - a damaged shard file fails inside DCP in many ways
        raise ConfigError(f"checkpoint {ckpt}: cannot read its {DCP_DIR}/ files ({type(e).__name__}: "
                          f"{str(e).strip()[:300]}); export another checkpoint") from e


def export(ckpt: Path, out: Path, base: str | None = None, tokenizer: str | None = None,
           cache_dir: str | None = None, with_critic: bool = True) -> Path:
    """Write checkpoint `ckpt` (single-process or sharded) as a model dir `out` (see the module doc); returns `out`.
    `base`/`tokenizer`: the model the run started from (default: the run's saved config)."""
    import torch
    from torch.distributed.checkpoint import FileSystemReader
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rlreason.learner.critic import ValueModel

    ckpt, out = Path(ckpt).absolute(), Path(out).absolute()
    single = not is_sharded(ckpt) and (ckpt / "policy" / "config.json").is_file()
    if not is_sharded(ckpt) and not single and not is_adapter(ckpt):
        raise ConfigError(f"{ckpt} is not a checkpoint (no {DCP_DIR}/ and no policy/)")
    problem = checkpoint.verify(ckpt)
    if problem:
        raise ConfigError(f"checkpoint {ckpt} is damaged ({problem}); export another one")
    if out == ckpt or ckpt in out.parents:
        raise ConfigError(f"{out} is inside checkpoint {ckpt}, which must stay as it was written (its manifest is "
                          "verified on load): export elsewhere")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ConfigError(f"{out} already exists: remove it or name another OUT")
    if base is None:
        base, run_tokenizer = base_model(ckpt, cache_dir)
        tokenizer = tokenizer or run_tokenizer
    if is_adapter(ckpt):
        return _write(out, merged_adapter(ckpt, base, tokenizer, with_critic), {
            "checkpoint": str(ckpt), "base_model": base, "tokenizer": tokenizer or base, "lora": True})
    if single:  # its policy/ is the model dir already, without the tokenizer (nor a chat template)
        tok = AutoTokenizer.from_pretrained(tokenizer or base)
        critic_file = ckpt / "critic.safetensors"

        def fill(tmp: Path) -> bool:
            for f in (ckpt / "policy").iterdir():
                shutil.copy2(f, tmp / f.name)
            tok.save_pretrained(tmp)
            if with_critic and critic_file.is_file():
                (tmp / "critic").mkdir()
                shutil.copy2(critic_file, tmp / "critic" / "critic.safetensors")
                return True
            return False

        return _write(out, fill, {"checkpoint": str(ckpt), "base_model": base, "tokenizer": tokenizer or base})
    reader = FileSystemReader(str(ckpt / DCP_DIR))
    try:
        meta = reader.read_metadata().state_dict_metadata
    except Exception as e:  # noqa: BLE001
        raise ConfigError(f"checkpoint {ckpt}: unreadable {DCP_DIR}/.metadata ({e}); export another one") from e
    try:
        policy = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
        tok = AutoTokenizer.from_pretrained(tokenizer or base)
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot load base model {base} of checkpoint {ckpt}: {e}") from e
    _load(reader, meta, policy, PREFIX + "policy.", ckpt, base)
    critic = None
    if with_critic and any(k.startswith(PREFIX + "critic.") for k in meta):
        critic = ValueModel(base)
        _load(reader, meta, critic, PREFIX + "critic.", ckpt, base)

    def fill(tmp: Path) -> bool:
        policy.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        if critic is not None:
            (tmp / "critic").mkdir()
            critic.save(tmp / "critic" / "critic.safetensors")
        return critic is not None

    return _write(out, fill, {"checkpoint": str(ckpt), "base_model": base, "tokenizer": tokenizer or base})


def merged_adapter(ckpt: Path, base: str, tokenizer: str | None, with_critic: bool = True):
    """The `fill` of LoRA checkpoint `ckpt`'s export: its adapter loaded onto the base and merged into it
    (peft's merge_and_unload, an HF model of the base's architecture), the adapter itself in OUT/adapter (a
    subdir, as critic/: loaders read the top level's files), the critic as a single-process checkpoint's."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
        tok = AutoTokenizer.from_pretrained(tokenizer or base)
        policy = PeftModel.from_pretrained(model, str(ckpt / "policy")).merge_and_unload()
    except (OSError, ValueError, RuntimeError) as e:
        raise ConfigError(f"cannot load the adapter of checkpoint {ckpt} onto base model {base}: {e}") from e
    critic_file = ckpt / "critic.safetensors"

    def fill(tmp: Path) -> bool:
        policy.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        shutil.copytree(ckpt / "policy", tmp / "adapter")
        if with_critic and critic_file.is_file():
            (tmp / "critic").mkdir()
            shutil.copy2(critic_file, tmp / "critic" / "critic.safetensors")
            return True
        return False

    return fill


def _write(out: Path, fill, info: dict) -> Path:
    """`fill(tmp)` writes the model dir (returns whether a critic went with it); then export.json, and the
    dir is renamed into place: `out` is whole or absent."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".tmp-{out.name}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir()
        critic = fill(tmp)
        (tmp / "export.json").write_text(json.dumps({**info, "critic": critic}, indent=1))
        if out.exists():
            out.rmdir()  # empty (checked above)
        tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", type=Path, help="RUN/checkpoints/iter_N")
    ap.add_argument("out", type=Path, nargs="?", help="the model dir to write (default RUN/export/iter_N)")
    ap.add_argument("--base", help="the model the run started from (default: the run's .hydra/config.yaml)")
    ap.add_argument("--tokenizer", help="the tokenizer to save with it (default: the run's, else --base's)")
    args = ap.parse_args(argv)
    try:
        out = export(args.checkpoint, args.out or default_out(args.checkpoint.absolute()), args.base, args.tokenizer)
    except ConfigError as e:
        print(f"rlreason: {e}", file=sys.stderr)
        sys.exit(2)
    print(out)


if __name__ == "__main__":
    main()
