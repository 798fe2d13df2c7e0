"""Child of test_group_sync.py: one engine.separate_process engine with engine.weight_transfer=group.

    python tests/engine/group_sync_child.py MODEL_DIR OUT_JSON

On the one engine (a start costs 20-30 s): push perturbed weights A over the group (version 1), generate;
push other weights B over the group (version 2), generate; push A through the file path
(`weight_transfer=file`'s `push_weights`), generate. Then kill the engine's processes and sync twice: once
with the client's dead-engine flag hidden (the sender's deadline must catch it) and once as is. Writes
what it saw to OUT_JSON.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
import time


def main(model_dir: str, out: str) -> None:
    import psutil
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rlreason.config import EngineConfig
    from rlreason.engine import _vllm_compat as compat
    from rlreason.engine import make_engine
    from rlreason.engine.base import SamplingParams
    from tests.engine.reference import learner_greedy, perturb, weights

    torch.set_num_threads(1)
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    perturb(model, seed=1)
    a = weights(model)
    perturb(model, seed=2, scale=0.5)
    b = weights(model)
    model.load_state_dict(dict(a))
    prompts = [tok(p)["input_ids"] for p in ("1+2=", "7*3-4=", "12+9=")]
    greedy = SamplingParams(n=1, temperature=0.0, max_tokens=12)
    record: dict = {"reference_a": [learner_greedy(model, p, 12, tok.eos_token_id) for p in prompts]}

    def run(engine, version):
        outs = engine.generate(prompts, greedy, version=version)
        return {"tokens": [g[0].token_ids for g in outs], "logprobs": [g[0].logprobs for g in outs]}

    t = time.perf_counter()
    engine = make_engine(EngineConfig(name="vllm", separate_process=True, cpu_threads=1, weight_transfer="group",
                                      transfer_timeout_s=5.0), model_dir, tok, dtype="float32", seed=0,
                         max_model_len=256)
    record["start_s"] = time.perf_counter() - t
    t = time.perf_counter()
    engine.sync_weights(iter(a), 1)
    record["sync_s"] = time.perf_counter() - t
    record["acks"] = [engine._group.acks]
    record["group_a"] = run(engine, 1)
    t = time.perf_counter()
    engine.sync_weights(iter(b), 2)  # streams: the header reuses the first sync's shapes
    record["stream_sync_s"] = time.perf_counter() - t
    record["acks"].append(engine._group.acks)
    record["group_b"] = run(engine, 2)
    with tempfile.TemporaryDirectory(dir="/dev/shm" if os.path.isdir("/dev/shm") else None) as scratch:
        compat.push_weights(engine.llm, iter(a), scratch)  # what engine.weight_transfer=file does
    engine.reset_prefix_cache()
    record["file_a"] = run(engine, 2)

    for child in psutil.Process().children(recursive=True):
        os.kill(child.pid, signal.SIGKILL)
    time.sleep(1.0)
    record["errors"] = {}
    for case in ("flag_hidden", "as_is"):
        seen = compat.engine_dead
        if case == "flag_hidden":  # as if the client had not noticed yet: the sender's deadline must hold
            compat.engine_dead = lambda llm: False
            engine._group.connected = True
        t = time.perf_counter()
        try:
            engine.sync_weights(iter(a), 3)
            error = None
        except Exception as e:  # noqa: BLE001 - reported to the test
            error = f"{type(e).__name__}: {e}"
        compat.engine_dead = seen
        record["errors"][case] = {"error": error, "seconds": time.perf_counter() - t}
    with open(out, "w") as f:
        json.dump(record, f)
    os._exit(0)  # the engine's shutdown would wait on processes that are gone


if __name__ == "__main__":  # the engine process is spawned: it re-imports this module
    main(sys.argv[1], sys.argv[2])
