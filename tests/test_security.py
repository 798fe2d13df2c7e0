"""Security: model text is never code, secrets never reach disk, and a run writes only where it should.

- An AST scan of the package: no eval/exec/compile/__import__ of strings, and no sympy parser that
  evaluates (sympify, parse_expr, ...): model text is read only by math-verify's LaTeX parser, in a
  worker process (tests/reward/test_hostile.py runs code-looking answers through it).
- A short real run (`python -m rlreason.run engine=hf logger=wandb logger.mode=offline`) with secrets in
  the environment (WANDB_API_KEY, HF_TOKEN, a *_PASSWORD) and a token-shaped config value: none of them
  appears in any file written (run dir, wandb's offline files, Hydra's saved configs, the cache, HOME),
  nor in the console output.
- The same run, in a scratch HOME, cwd and TMPDIR: every new file is under the run dir or the cache dir.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rlreason.logger import scrub, scrub_text

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "rlreason"

EXEC_BUILTINS = {"eval", "exec", "compile", "__import__"}
# sympy entry points that eval() their input (sympify/parse_expr) or that turn text into callables.
EVALUATING_PARSERS = {"sympify", "parse_expr", "parse_latex", "latex2sympy", "lambdify", "S"}


def violations(source: str, filename: str = "<src>") -> list[str]:
    out = []
    for node in ast.walk(ast.parse(source, filename)):
        where = f"{filename}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Call):
            f = node.func
            if isinstance(f, ast.Name) and f.id in EXEC_BUILTINS:
                out.append(f"{where}: {f.id}()")
            elif isinstance(f, ast.Attribute) and f.attr in EXEC_BUILTINS and isinstance(f.value, ast.Name) \
                    and f.value.id in ("builtins", "__builtins__"):
                out.append(f"{where}: {f.value.id}.{f.attr}()")
            name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None
            if name in EVALUATING_PARSERS - {"S"}:
                out.append(f"{where}: {name}()")
            if isinstance(f, ast.Name) and f.id == "getattr" and len(node.args) >= 2 \
                    and isinstance(node.args[1], ast.Constant) and node.args[1].value in EXEC_BUILTINS | EVALUATING_PARSERS:
                out.append(f"{where}: getattr(..., {node.args[1].value!r})")
            if isinstance(f, ast.Attribute) and f.attr == "system" and isinstance(f.value, ast.Name) and f.value.id == "os":
                out.append(f"{where}: os.system()")
            if any(k.arg == "shell" and isinstance(k.value, ast.Constant) and k.value.value for k in node.keywords):
                out.append(f"{where}: shell=True")
        elif isinstance(node, ast.ImportFrom):
            if (node.module or "").startswith("sympy.parsing"):
                out.append(f"{where}: from {node.module} import ...")
            out += [f"{where}: import {a.name}" for a in node.names if a.name in EVALUATING_PARSERS]
        elif isinstance(node, ast.Import):
            out += [f"{where}: import {a.name}" for a in node.names if a.name.startswith("sympy.parsing")]
    return out


def test_the_scanner_finds_what_it_looks_for():
    bad = """
import builtins, os, subprocess
from sympy import sympify, S
from sympy.parsing.latex import parse_latex
eval(text); exec(text); compile(text, "f", "exec"); __import__(text)
builtins.eval(text); getattr(builtins, "exec")(text)
sympify(text); sympy.sympify(text); parse_expr(text)
os.system(text); subprocess.run(text, shell=True)
"""
    found = violations(bad)
    for needle in ("eval()", "exec()", "compile()", "__import__()", "builtins.eval()", "getattr(..., 'exec')",
                   "sympify()", "parse_expr()", "import sympify", "import S", "from sympy.parsing.latex",
                   "os.system()", "shell=True"):
        assert any(needle in v for v in found), (needle, found)
    ok = "import re\nre.compile('x')\nmodel.eval()\nself.ref.eval()\nsubprocess.run(['ls'])\n"
    assert violations(ok) == []


def test_package_never_evaluates_strings():
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 20  # the scan covers the package, not an empty dir
    found = [v for f in files for v in violations(f.read_text(encoding="utf-8"), str(f.relative_to(ROOT)))]
    assert found == []


# --- scrubbing ---------------------------------------------------------------------------------------

FAKE = {
    "WANDB_API_KEY": "0123456789abcdef0123456789abcdef7e57cafe",
    "HF_TOKEN": "hf_ENVSECRETenvsecretENVSECRETenvsecret42",
    "DB_PASSWORD": "correct-horse-battery-staple-9000",
}
CONFIG_SECRET = "hf_CONFIGsecretCONFIGsecretCONFIGsecret7"


def test_scrub(monkeypatch):
    for k, v in FAKE.items():
        monkeypatch.setenv(k, v)
    cfg = {"logger": {"api_key": "abc", "project": "p"}, "data": {"hub_id": CONFIG_SECRET, "token": None},
           "list": [f"x={FAKE['DB_PASSWORD']}", 3, ("sk-" + "A" * 30,)], "auth_token": "t0ken-value"}
    out = scrub(cfg)
    assert out["logger"] == {"api_key": "***", "project": "p"}
    assert out["data"] == {"hub_id": "***", "token": None}
    assert out["list"] == ["x=***", 3, ["***"]] and out["auth_token"] == "***"
    assert scrub_text(f"--key {FAKE['WANDB_API_KEY']} and {FAKE['HF_TOKEN']}") == "--key *** and ***"
    assert scrub_text("plain text, git sha 4b825dc642cb6eb9a060e54bf8d69288fbee4904 stays") == \
        "plain text, git sha 4b825dc642cb6eb9a060e54bf8d69288fbee4904 stays"


# --- a real run --------------------------------------------------------------------------------------

RUN_ARGS = [
    "engine=hf", "logger=wandb", "logger.mode=offline", "algo=grpo", "trainer.iterations=1",
    "trainer.questions_per_iteration=4", "rollout.samples_per_question=4", "learner.minibatch_size=8",
    "learner.micro_batch_size=8", "trainer.eval_max_questions=4", "trainer.eval_samples=1",
    "trainer.eval_every=1", "rollout.max_new_tokens=24", "rollout.max_gold_cut=null",  # short on purpose: fast
    "trainer.progress=false",
    f"data.hub_id={CONFIG_SECRET}",  # a token-shaped value in a config field (unused by arith)
]


def snapshot(*roots: Path) -> set[Path]:
    return {p for r in roots for p in r.rglob("*")}


@pytest.fixture(scope="module")
def secret_run(tmp_path_factory):
    base = tmp_path_factory.mktemp("security")
    home, cwd, tmp = base / "home", base / "cwd", base / "tmp"
    for d in (home, cwd, tmp):
        d.mkdir()
    (home / ".netrc").write_text("")  # no real credentials to find
    run_dir, cache = cwd / "outputs" / "run", base / "cache"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(FAKE, HOME=str(home), TMPDIR=str(tmp), RLREASON_CACHE=str(cache), OMP_NUM_THREADS="1",
               XDG_CACHE_HOME=str(home / ".cache"), XDG_CONFIG_HOME=str(home / ".config"),
               XDG_DATA_HOME=str(home / ".local" / "share"))
    env.pop("HF_HOME", None)
    before = snapshot(home, cwd, tmp)
    proc = subprocess.run([sys.executable, "-m", "rlreason.run", *RUN_ARGS, f"hydra.run.dir={run_dir}"],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {"proc": proc, "run_dir": run_dir, "cache": cache, "home": home, "cwd": cwd, "tmp": tmp,
            "before": before, "base": base}


def test_no_secret_in_any_file_or_output(secret_run):
    r = secret_run
    files = [p for p in r["base"].rglob("*") if p.is_file()]
    assert any(p.suffix == ".wandb" for p in files), "the wandb offline run wrote nothing: the test would be vacuous"
    secrets = [*FAKE.values(), CONFIG_SECRET]
    leaks = [(str(p.relative_to(r["base"])), s[:8]) for p in files for s in secrets
             if s.encode() in p.read_bytes()]
    assert leaks == []
    out = r["proc"].stdout + r["proc"].stderr
    assert not [s[:8] for s in secrets if s in out]
    # the value was there to be found: the saved overrides show it scrubbed
    assert "data.hub_id=***" in (r["run_dir"] / ".hydra" / "overrides.yaml").read_text()
    assert (r["run_dir"] / "metrics.jsonl").read_text().count("\n") == 2  # iterations 0 and 1


def test_files_only_under_run_dir_and_cache(secret_run):
    r = secret_run
    new = snapshot(r["home"], r["cwd"], r["tmp"]) - r["before"]
    allowed = (r["run_dir"], r["cache"])
    stray = sorted(str(p) for p in new if not any(p == a or a in p.parents for a in allowed)
                   and not (p.is_dir() and (p in r["run_dir"].parents)))
    # torch creates an empty TMPDIR/torchinductor_<user> dir at import: a dir, never a file
    stray_files = [s for s in stray if Path(s).is_file()]
    stray_dirs = [s for s in stray if Path(s).is_dir() and not Path(s).parent == r["tmp"]]
    assert stray_files == [] and stray_dirs == [], stray
    assert not list(r["home"].rglob("*wandb*"))  # wandb's caches and logs went to the cache dir
    assert any(p.is_file() for p in (r["cache"] / "wandb").rglob("*"))


def test_rejected_secret_config_key_is_not_echoed_or_saved(tmp_path):
    secret = "sk-live-" + "Q" * 32
    env = dict(os.environ, OMP_NUM_THREADS="1", RLREASON_CACHE=str(tmp_path / "cache"))
    proc = subprocess.run([sys.executable, "-m", "rlreason.run", f"+logger.api_key={secret}",
                           f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2 and "unknown config key logger.api_key" in proc.stderr
    assert secret not in proc.stdout + proc.stderr
    assert not [p for p in tmp_path.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]
