"""Child of test_engine_process.py: start engine.separate_process, kill its processes, call it.

    python tests/engine/engine_process_child.py MODEL_DIR

Prints one JSON line: the error the call after the kill raised and how long it took."""

from __future__ import annotations

import json
import os
import signal
import sys
import time


def main(model_dir: str) -> None:
    import psutil
    import torch
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    from rlreason.config import EngineConfig
    from rlreason.engine import make_engine
    from rlreason.engine.base import SamplingParams

    torch.set_num_threads(1)
    tok = AutoTokenizer.from_pretrained(model_dir)
    engine = make_engine(EngineConfig(name="vllm", separate_process=True, cpu_threads=1), model_dir, tok,
                         dtype="float32", seed=0, max_model_len=256)
    engine.sync_weights(load_file(f"{model_dir}/model.safetensors").items(), 1)  # through /dev/shm
    prompt = [tok("1+2=")["input_ids"]]
    before = engine.generate(prompt, SamplingParams(n=2, max_tokens=8, seed=1), version=1)
    children = psutil.Process().children(recursive=True)
    for child in children:
        os.kill(child.pid, signal.SIGKILL)
    time.sleep(1.0)
    t = time.perf_counter()
    try:
        engine.generate(prompt, SamplingParams(n=2, max_tokens=8, seed=1), version=1)
        error = None
    except Exception as e:  # noqa: BLE001 - reported to the test
        error = f"{type(e).__name__}: {e}"
    print(json.dumps({"error": error, "seconds": time.perf_counter() - t, "scratch": engine._scratch,
                      "generated_before": len(before[0]), "killed": len(children)}), flush=True)
    os._exit(0)  # the engine's shutdown would wait on processes that are gone


if __name__ == "__main__":  # the engine process is spawned: it re-imports this module
    main(sys.argv[1])
