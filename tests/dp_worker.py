"""Run by tests/test_distributed.py under torchrun: two training steps of each case on this
rank's slice of the fixed batch; rank 0 saves the full weights and the metrics."""

import sys

import torch
from dp_cases import CASES, case_params, dp_batch

from vpd_core import distributed
from vpd_core.config import parse_params
from vpd_core.models import load_model, load_tokenizer
from vpd_core.trainer import Trainer


def main(model_dir: str, out_dir: str) -> None:
    dist = distributed.init()
    tok = load_tokenizer(model_dir)
    for name in CASES:
        trainer = Trainer(load_model(model_dir), tok, parse_params(case_params(name)), dist)
        metrics = []
        for step in range(2):
            batch = dp_batch(tok, step)
            share = len(batch) // dist.world
            metrics.append(trainer.train_step(batch[dist.rank * share : (dist.rank + 1) * share]))
        state = distributed.full_state_dict(trainer.model)
        if dist.is_main:
            torch.save({"state": state, "metrics": metrics}, f"{out_dir}/{name}.pt")
    distributed.finish(dist)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
