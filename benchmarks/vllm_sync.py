"""Weight sync into a running vLLM engine vs restarting the engine, on a real model.

Colocated RL trainers load the updated tensors into the running engine after every
update; the alternative is to save a checkpoint and start a new engine on it. This
measures both on the same model (the embedded SmolLM2-135M-Instruct by default):
engine start (median of --starts fresh engines, each in this process), in-place sync
(`VLLMRolloutEngine.sync_weights`, median of --syncs), and a save_pretrained of the
weights (what a restart would also need). Needs vLLM (.venv-vllm on CPU).

    .venv-vllm/bin/python benchmarks/vllm_sync.py
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
for key, value in {"VLLM_CPU_KVCACHE_SPACE": "1", "VLLM_HOST_IP": "127.0.0.1", "VLLM_LOOPBACK_IP": "127.0.0.1"}.items():
    os.environ.setdefault(key, value)
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="embedded", help='a local HF directory, or "embedded"')
    ap.add_argument("--starts", type=int, default=3)
    ap.add_argument("--syncs", type=int, default=5)
    ap.add_argument("--out", required=True, help="JSON file for the results (kept out of the repository)")
    args = ap.parse_args()

    import torch

    from vpd_core.models import load_model, load_tokenizer, resolve_model_path, stop_token_ids
    from vpd_core.rollout import HFRolloutEngine, SamplingParams
    from vpd_core.rollout_vllm import VLLMRolloutEngine
    from vpd_core.sequences import chat_prompt_ids

    path = resolve_model_path(args.model)
    tok, model = load_tokenizer(path), load_model(path)
    n_params = sum(p.numel() for p in model.parameters())

    def start():
        t0 = time.perf_counter()
        engine = VLLMRolloutEngine(path, tok, stop_token_ids(tok, model), max_model_len=1024, enforce_eager=True)
        return engine, time.perf_counter() - t0

    starts = []
    for _ in range(args.starts):
        engine, s = start()
        starts.append(s)
        del engine
        gc.collect()
    engine, s = start()
    starts.append(s)
    with torch.no_grad():  # a stand-in update: every tensor changes
        for p in model.parameters():
            p.mul_(1.001)
    syncs = []
    for _ in range(args.syncs):
        t0 = time.perf_counter()
        engine.sync_weights(model)
        syncs.append(time.perf_counter() - t0)
    saves = []
    for _ in range(args.syncs):
        with tempfile.TemporaryDirectory() as d:
            t0 = time.perf_counter()
            model.save_pretrained(d)
            saves.append(time.perf_counter() - t0)
    prompt = [chat_prompt_ids(tok, [{"role": "user", "content": "Write a haiku about the sea."}])]
    sp = SamplingParams(temperature=0, max_new_tokens=32)
    parity = engine.generate(prompt, 1, sp)[0].response_ids == HFRolloutEngine(model, tok).generate(prompt, 1, sp)[0].response_ids
    result = {"model": str(path), "params": n_params, "torch": torch.__version__,
              "engine_start_s": statistics.median(starts), "engine_starts": starts,
              "sync_s": statistics.median(syncs), "syncs": syncs,
              "save_pretrained_s": statistics.median(saves),
              "greedy_parity_after_sync": parity}
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({k: v for k, v in result.items() if not isinstance(v, list)}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
