"""The plain training loop as a process: `python -m vpd_core.train_main --params P [--set k=v ...]`.

This is what `vpd train --no-prefect` runs, and the entry point torchrun starts on every rank
(vpd_core.distributed.train_command); it imports neither Prefect nor DVC. With
train.distributed.nproc > 1 outside torchrun, it relaunches itself under torchrun.
"""

from __future__ import annotations

import argparse
import os
import sys

from .config import Params, load_params
from .errors import VPDError
from .memory import return_freed_memory


def train(params_path: str, overrides: list[str], params: Params | None = None) -> int:
    """Train (resuming) in this process, or launch train.distributed's processes and wait for them."""
    from . import distributed
    from .loop import make_grader, run_training

    params = params or load_params(params_path, overrides)
    d = params.train.distributed
    if d.world > 1 and "WORLD_SIZE" not in os.environ:
        if os.environ.get(distributed.LAUNCHED):
            raise VPDError(f"train.distributed.nproc={d.nproc} but the launcher started this process without WORLD_SIZE")
        return distributed.launch_training(params_path, overrides, d).wait()
    dist = distributed.init()
    # the sandbox's cores are this machine's: split between its own training processes
    grader, sandbox = make_grader(params, params.sandbox.train_tests, processes=min(d.nproc, dist.world))
    try:
        run_dir = run_training(params, grader, log=lambda s: print(s, flush=True), dist=dist)
    finally:
        if sandbox is not None:
            sandbox.close()
        distributed.finish(dist)
    if dist.is_main:
        print(f"done: metrics in {run_dir / 'metrics.jsonl'}, checkpoints in {run_dir / 'checkpoints'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vpd_core.train_main", description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--verbose", action="store_true", help="the libraries' progress bars and warnings")
    args = ap.parse_args(argv)
    return_freed_memory()
    if not args.verbose:
        from .models import quiet_libraries

        quiet_libraries()
    try:
        return train(args.params, args.overrides)
    except VPDError as e:
        print("error: " + " ".join(str(e).split()), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
