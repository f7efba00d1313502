"""`vpd` command line.

    vpd train [--params params.yaml] [--set key=value ...]
    vpd params [--params params.yaml] [--set key=value ...]   # print the validated params
    vpd model fetch [--cache-dir models]                      # fetch + convert the embedded default
    vpd sandbox check --problem P.json --code S.py [--backend docker|bwrap] [--stop-at-first-failure]
    vpd data inspect FILE --source livecodebench|sciknoweval|math500 [--on-error strict|skip]

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
    sandbox = sub.add_parser("sandbox", help="run code in the sandbox")
    sandbox_sub = sandbox.add_subparsers(dest="sandbox_command", required=True)
    check = sandbox_sub.add_parser("check", help="grade one program on one LiveCodeBench problem; prints one JSON object")
    check.add_argument("--problem", required=True, help="one code_generation_lite record (JSON)")
    check.add_argument("--code", required=True, help="the program (a .py file)")
    check.add_argument("--backend", choices=["docker", "bwrap"], default="docker")
    check.add_argument("--stop-at-first-failure", action="store_true", help="the official evaluation's early exit")
    check.add_argument("--time-limit", type=float, default=6.0, help="seconds per test (default 6)")
    data = sub.add_parser("data", help="dataset utilities")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    inspect = data_sub.add_parser("inspect", help="read a benchmark file; print one JSON summary")
    inspect.add_argument("file", help="a JSONL/JSON file (or a directory of LiveCodeBench shards)")
    inspect.add_argument("--source", required=True, choices=["livecodebench", "sciknoweval", "math500"])
    inspect.add_argument("--on-error", choices=["strict", "skip"], default="strict",
                         help="strict: a malformed record is an error (exit 2); skip: count and list it")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    from vpd_core.config import load_params
    from vpd_core.errors import VPDError

    try:
        if args.command == "data":
            from vpd_core.data.readers import inspect_summary, read_source

            result = read_source(args.source, args.file, on_error=args.on_error)
            print(json.dumps(inspect_summary(args.source, result)))
            return 0
        if args.command == "sandbox":
            return sandbox_check(args)
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


def sandbox_check(args) -> int:
    from pathlib import Path

    from sandboxes import SandboxError, make_sandbox
    from sandboxes.feedback import feedback_text
    from sandboxes.lcb import job_from_record
    from vpd_core.errors import VPDError

    def read(path: str, what: str) -> str:
        try:
            return Path(path).read_text()
        except OSError as e:
            raise VPDError(f"{path}: cannot read {what}: {e.strerror}") from None

    text = read(args.problem, "the problem")
    try:
        record = json.loads(text)
    except json.JSONDecodeError as e:
        raise VPDError(f"{args.problem}: not valid JSON: {e}") from None
    code = read(args.code, "the program")
    try:
        job = job_from_record(record, code, stop_at_first_failure=args.stop_at_first_failure,
                              time_limit_s=args.time_limit)
    except VPDError as e:
        raise VPDError(f"{args.problem}: {e}") from None
    try:
        with make_sandbox(args.backend) as sandbox:
            result = sandbox.run(job)
    except SandboxError as e:
        print(f"error: sandbox infrastructure: {e}", file=sys.stderr)
        return 1
    print(json.dumps({**result.to_dict(), "feedback": feedback_text(result)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
