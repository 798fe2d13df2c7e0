"""`python tests/engine/tp_child.py MODEL_DIR`: a vLLM engine with tensor_parallel_size=2 in ONE process
(vLLM's multiprocess executor), generating before, between and after two weight syncs. Prints one line
`tp-child {json}`. A script, not a test: this engine's shutdown must not touch the test process's engine."""

from __future__ import annotations

import json
import sys

import torch


def main(model_dir: str) -> None:
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    from rlreason.config import EngineConfig
    from rlreason.engine import SamplingParams, make_engine
    from rlreason.engine import _vllm_compat as compat

    torch.set_num_threads(1)
    tok = AutoTokenizer.from_pretrained(model_dir)
    engine = make_engine(EngineConfig(name="vllm", tensor_parallel_size=2), model_dir, tok, dtype="float32",
                         seed=0, max_model_len=256)
    prompts = [tok("12+3=")["input_ids"], tok("7*8=")["input_ids"]]
    greedy = SamplingParams(temperature=0.0, max_tokens=8)
    weights = load_file(f"{model_dir}/model.safetensors")
    zeroed = {k: (v * 0 if "embed" in k or "lm_head" in k else v) for k, v in weights.items()}
    before = engine.generate(prompts, greedy)
    engine.sync_weights(zeroed.items(), 1)
    zero = engine.generate(prompts, greedy, version=1)
    engine.sync_weights(weights.items(), 2)
    after = engine.generate(prompts, greedy, version=2)
    report = {"in_process": compat.in_process(engine.llm),
              "backend": engine.llm.llm_engine.vllm_config.parallel_config.distributed_executor_backend,
              **{name: [[c.token_ids, c.logprobs] for (c,) in out]
                 for name, out in (("before", before), ("zero", zero), ("after", after))}}
    engine.close()
    print("tp-child", json.dumps(report), flush=True)


if __name__ == "__main__":  # vLLM's workers are spawned: they re-import this file
    main(sys.argv[1])
