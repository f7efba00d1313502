"""`vpd` command line.

    vpd train [--params params.yaml] [--set key=value ...]
    vpd params [--params params.yaml] [--set key=value ...]   # print the validated params
    vpd model fetch [--cache-dir models]                      # fetch + convert the embedded default

Exit status 2 on bad input (params, paths), with a message naming what is wrong.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys


def _params_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key of the params file (repeatable), e.g. --set distill.alpha=0.5")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vpd", description="Variational Policy Distillation experiments")
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="run the training loop (resumes from the run directory)")
    _params_args(train)
    show = sub.add_parser("params", help="print the validated params as JSON")
    _params_args(show)
    model = sub.add_parser("model", help="model utilities")
    model_sub = model.add_subparsers(dest="model_command", required=True)
    fetch = model_sub.add_parser("fetch", help="fetch and convert the embedded default model")
    fetch.add_argument("--cache-dir", default="models")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from vpd_core.config import load_params
    from vpd_core.errors import VPDError

    try:
        if args.command == "model":
            from vpd_core.models import ensure_embedded_model

            print(ensure_embedded_model(args.cache_dir))
            return 0
        params = load_params(args.params, args.overrides)
        if args.command == "params":
            print(json.dumps(params.model_dump(mode="json"), indent=2))
            return 0
        if args.command == "train":
            from vpd_core.loop import run_training

            run_dir = run_training(params, log=lambda s: print(s, flush=True))
            print(f"done: metrics in {run_dir / 'metrics.jsonl'}, checkpoints in {run_dir / 'checkpoints'}")
            return 0
    except VPDError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 1


if __name__ == "__main__":
    sys.exit(main())
