"""`vpd` command line.

    vpd train [--params params.yaml] [--set key=value ...]
    vpd params [--params params.yaml] [--set key=value ...]   # print the validated params
    vpd model fetch [--cache-dir models]                      # fetch + convert the embedded default
    vpd sandbox check --problem P.json --code S.py [--source livecodebench|humaneval|minicode]
                      [--backend docker|bwrap] [--stop-at-first-failure] [--semantics robust|lcb] [--memory MB|none]
    vpd data inspect FILE|embedded --source BENCHMARK [--split test|train] [--on-error strict|skip]
    vpd server start|stop|status                              # the project's shared local Prefect server

Exit status 2 on bad input (params, paths), with a message naming what is wrong.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import math
import os
import sys

from vpd_core.config import DEFAULT_GRID
from vpd_core.data.registry import names, registry
from vpd_core.memory import return_freed_memory


class _Parser(argparse.ArgumentParser):
    """Usage errors as one `error:` line and exit status 2, like every other bad input."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds > 0, got {text!r}")
    return value


def _memory_mb(text: str) -> int | None:
    if text.lower() in ("none", "null"):
        return None
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected megabytes or 'none', got {text!r}") from None
    if value < 64:
        raise argparse.ArgumentTypeError(f"must be at least 64 MB, got {value}")
    return value


def _params_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a key of the params file (repeatable), e.g. --set distill.alpha=0.5")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="vpd", description="Variational Policy Distillation experiments")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for name, text in [("prepare", "fetch the model, write the train/test problems"),
                       ("train", "train (resumes from the run directory's latest checkpoint)"),
                       ("evaluate", "evaluate a checkpoint on the test split"),
                       ("report", "learning curves and a markdown report"),
                       ("pipeline", "prepare -> evaluate base -> train -> evaluate -> report"),
                       ("sweep", "a grid of overrides x seeds -> one pipeline each -> a comparison table")]:
        cmd = sub.add_parser(name, help=text)
        _params_args(cmd)
        cmd.add_argument("-v", "--verbose", action="store_true",
                         help="library output too: progress bars of model loading/saving, every Prefect task's end")
        if name in ("train", "evaluate"):
            cmd.add_argument("--no-prefect", action="store_true", help="run the core directly (no Prefect)")
        if name == "evaluate":
            cmd.add_argument("--checkpoint", default="latest", help='"base", "latest" or a checkpoint directory')
        if name == "sweep":
            cmd.add_argument("--grid", default=None, help=f"JSON {{key: [values]}} (default: {json.dumps(DEFAULT_GRID)})")
            cmd.add_argument("--seeds", default=None, help="replicate seeds, e.g. 0,1,2 (default: the params' seed)")
    compare = sub.add_parser("compare", help="rebuild a sweep's comparison table and figure from its runs, "
                                              "or merge several sweeps into one comparison")
    compare.add_argument("sweep_dirs", nargs="+", metavar="sweep_dir",
                         help="a sweep's output directory (<run_dir>/sweep, holding runs.json)")
    compare.add_argument("--out", help="where the merged comparison goes (required with several sweeps)")
    server = sub.add_parser("server", help="the project's shared local Prefect server (every vpd process uses it)")
    server.add_argument("action", choices=["start", "stop", "status"])
    ui = sub.add_parser("ui", help="start a local Prefect server (127.0.0.1) and serve the deployments")
    ui.add_argument("--port", type=int, default=4200)
    show = sub.add_parser("params", help="print the validated params as JSON")
    _params_args(show)
    model = sub.add_parser("model", help="model utilities")
    model_sub = model.add_subparsers(dest="model_command", required=True, parser_class=_Parser)
    fetch = model_sub.add_parser("fetch", help="fetch and convert the embedded default model")
    fetch.add_argument("--cache-dir", default=None, help="where the embedded default is kept (default: model.cache_dir)")
    fetch.add_argument("--params", default=None, help="resolve model.path from a params file (and --set overrides)")
    fetch.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    fetch.add_argument("--out", default=None, help="write {path, sha256 of the weights} here (the DVC stage's output)")
    sandbox = sub.add_parser("sandbox", help="run code in the sandbox")
    sandbox_sub = sandbox.add_subparsers(dest="sandbox_command", required=True, parser_class=_Parser)
    check = sandbox_sub.add_parser("check", help="grade one program on one problem record; prints one JSON object")
    check.add_argument("--problem", required=True, help="one released record (JSON) of the --source benchmark")
    check.add_argument("--source", default="livecodebench",
                       choices=[n for n, b in registry().items() if b.grading == "sandbox"],
                       help="the benchmark the record comes from (default livecodebench)")
    check.add_argument("--code", required=True, help="the program (a .py file)")
    check.add_argument("--backend", choices=["docker", "bwrap"], default="docker")
    check.add_argument("--stop-at-first-failure", action="store_true", help="the official evaluation's early exit")
    check.add_argument("--time-limit", type=_seconds, default=6.0, help="seconds per test (default 6)")
    check.add_argument("--semantics", choices=["robust", "lcb"], default="robust",
                       help="robust (default, training rewards) or lcb (LiveCodeBench's grader, quirks included; "
                            "stops at the first failure); README 'Sandbox semantics'")
    check.add_argument("--memory", type=_memory_mb, default=512, metavar="MB",
                       help="per-program address space in MB, or 'none' (default 512)")
    data = sub.add_parser("data", help="dataset utilities")
    data_sub = data.add_subparsers(dest="data_command", required=True, parser_class=_Parser)
    inspect = data_sub.add_parser("inspect", help="read a benchmark file; print one JSON summary")
    inspect.add_argument("file", help="a JSONL/JSON file (or a directory of LiveCodeBench shards), or 'embedded': "
                         "the set the tool ships or installs")
    inspect.add_argument("--source", required=True, choices=[n for n in names() if n != "arithmetic"],
                         help="; ".join(b.description for n, b in registry().items() if n != "arithmetic"))
    inspect.add_argument("--split", choices=["test", "train"], default="test", help="of the embedded set (default test)")
    inspect.add_argument("--on-error", choices=["strict", "skip"], default="strict",
                         help="strict: a malformed record is an error (exit 2); skip: count and list it")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return_freed_memory()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    from sandboxes import SandboxError
    from vpd_core.config import load_params
    from vpd_core.errors import VPDError

    try:
        if args.command == "data":
            from vpd_core.data.registry import embedded_path, inspect_summary, read_source

            path = embedded_path(args.source, args.split) if args.file == "embedded" else args.file
            result = read_source(args.source, path, on_error=args.on_error)
            print(json.dumps({**inspect_summary(args.source, result), "path": str(path)}))
            return 0
        if args.command == "sandbox":
            return sandbox_check(args)
        if args.command == "model":
            return model_fetch(args)
        if args.command == "compare":
            from vpd_core.compare import recompare

            if len(args.sweep_dirs) > 1 and not args.out:
                raise VPDError("compare: merging several sweeps needs --out DIR")
            try:
                files = recompare(args.sweep_dirs, args.out)
            except (OSError, ValueError, KeyError, IndexError) as e:
                raise VPDError(f"{' '.join(args.sweep_dirs)}: cannot compare ({e})") from None
            print(files["table_md"].read_text())
            print(json.dumps({k: str(v) for k, v in files.items()}))
            return 0
        if args.command == "ui":
            from vpd.ui import serve_ui

            return serve_ui(args.port)
        if args.command == "server":
            return server_command(args.action)
        params = load_params(args.params, args.overrides)  # bad params fail here, before any work
        if args.command in ("train", "evaluate", "pipeline", "sweep"):
            from vpd_core.loop import check_sandbox

            check_sandbox(params)  # and a missing sandbox engine, before a model load
            if params.model.path != "embedded":  # and a wrong model directory, before any server starts
                from vpd_core.models import resolve_model_path

                resolve_model_path(params.model.path, params.model.cache_dir)
        if args.command == "evaluate" and args.checkpoint not in ("base", "latest"):
            from pathlib import Path

            from vpd_core.models import resolve_model_path

            resolve_model_path(str(Path(args.checkpoint) / "model"))  # a wrong or damaged checkpoint, now
        if args.command == "sweep":
            args.grid, args.seeds = sweep_args(args.grid, args.seeds)
        if args.command == "params":
            print(json.dumps(params.model_dump(mode="json"), indent=2))
            return 0
        if args.command == "train" and args.no_prefect:
            return train_plain(args, params)
        if args.command == "evaluate" and args.no_prefect:
            from vpd_core.loop import evaluate_checkpoint

            quiet_console(args.verbose)
            print(json.dumps(evaluate_checkpoint(params, args.checkpoint)["metrics"]))
            return 0
        return run_flow(args)
    except VPDError as e:
        print("error: " + " ".join(str(e).split()), file=sys.stderr)  # one line, whatever the message held
        return 2
    except SandboxError as e:  # the environment (no engine, no bubblewrap), not the input
        print("error: sandbox: " + " ".join(str(e).split()), file=sys.stderr)
        return 1


def server_command(action: str) -> int:
    from vpd import prefect_server
    from vpd.ui import prefect_env

    prefect_env()
    if action == "start":
        os.environ.pop("PREFECT_API_URL", None)  # the project's own server, whatever the shell points at
        print(json.dumps({"api": prefect_server.ensure_server(), **(prefect_server.read_state() or {})}))
    elif action == "stop":
        print(json.dumps({"stopped": prefect_server.stop_server()}))
    else:
        api = prefect_server.running_api()
        print(json.dumps({"running": api is not None, **(prefect_server.read_state() or {})}))
    return 0


def train_plain(args, params) -> int:
    """The plain loop (vpd_core.train_main); with several processes it relaunches itself under torchrun."""
    from vpd_core.train_main import train

    quiet_console(args.verbose)
    return train(args.params, args.overrides, params)


def model_fetch(args) -> int:
    import hashlib
    from pathlib import Path

    from vpd_core.config import load_params
    from vpd_core.fileio import write_text_atomic
    from vpd_core.models import resolve_model_path

    params = load_params(args.params, args.overrides) if args.params else load_params(None, args.overrides)
    path = resolve_model_path(params.model.path, args.cache_dir or params.model.cache_dir)
    print(path)
    if args.out:
        h = hashlib.sha256()
        for f in sorted(Path(path).glob("*.safetensors")):
            with open(f, "rb") as fh:
                for block in iter(lambda: fh.read(1 << 24), b""):
                    h.update(block)
        write_text_atomic(args.out, json.dumps({"path": str(Path(path).resolve()), "sha256": h.hexdigest()}, indent=2) + "\n")
    return 0


class _QuietPrefect(logging.Filter):
    """Prefect logs a bare "Finished in state Completed()" per task and flow: a flow's says which
    flow finished, a task's is dropped (a failed or crashed task's state still shows)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.getMessage().startswith("Finished in state Completed"):
            if record.name == "prefect.task_runs":
                return False
            record.msg, record.args = f"{getattr(record, 'flow_name', 'flow')}: finished", ()
        return True


def quiet_console(verbose: bool) -> None:
    """The console shows the run's own lines (steps, evaluations, what finished); --verbose adds
    the libraries' progress bars and Prefect's per-task lines."""
    if verbose:
        return
    for name in ("prefect.task_runs", "prefect.flow_runs"):
        logging.getLogger(name).addFilter(_QuietPrefect())
    from vpd_core.models import quiet_libraries

    quiet_libraries()


def run_flow(args) -> int:
    from vpd.prefect_server import ensure_server
    from vpd.ui import prefect_env

    prefect_env()
    ensure_server()  # the project's shared local server (started once, reused by every later process)
    from flows import vpd_flows as f

    quiet_console(getattr(args, "verbose", False))

    common = {"params_path": args.params, "overrides": args.overrides}
    if args.command in ("prepare", "report"):
        # Seconds of work: no heartbeat thread (its first beat is all such a flow would send,
        # and joining it costs up to 1 s at the end of every stage). Long flows keep theirs.
        from prefect.settings import temporary_settings

        with temporary_settings(updates={"flows.heartbeat_frequency": None}):
            out = f.prepare(**common) if args.command == "prepare" else f.report(**common)
    elif args.command == "train":
        out = f.train(**common)
    elif args.command == "evaluate":
        out = f.evaluate(**common, checkpoint=args.checkpoint)
    elif args.command == "pipeline":
        out = f.pipeline(**common)
        print(f"report: {out['report']}")
        return 0
    else:
        f.sweep_points(args.params, args.overrides, args.grid or DEFAULT_GRID, args.seeds or [load_seed(args)])
        out = f.sweep(**common, grid=args.grid, seeds=args.seeds)
    print(json.dumps(out, default=str))
    return 0


def sweep_args(grid: str | None, seeds: str | None) -> tuple[dict | None, list[int] | None]:
    from vpd_core.errors import VPDError

    parsed_grid = None
    if grid is not None:
        try:
            parsed_grid = json.loads(grid)
        except (json.JSONDecodeError, RecursionError) as e:
            raise VPDError(f"--grid: not valid JSON: {e}") from None
        if not isinstance(parsed_grid, dict):
            raise VPDError(f'--grid: expected a JSON object {{"key": [values]}}, got {type(parsed_grid).__name__}')
    parsed_seeds = None
    if seeds is not None:
        try:
            parsed_seeds = [int(s) for s in seeds.split(",") if s.strip()]
        except ValueError:
            raise VPDError(f"--seeds: expected comma-separated integers, got {seeds!r}") from None
    return parsed_grid, parsed_seeds


def load_seed(args) -> int:
    from vpd_core.config import load_params

    return load_params(args.params, args.overrides).seed


def sandbox_check(args) -> int:
    from sandboxes import SandboxError, make_sandbox
    from sandboxes.feedback import feedback_text
    from sandboxes.jobs import job_from_record
    from vpd_core.errors import VPDError
    from vpd_core.fileio import read_text_input

    text = read_text_input(args.problem, "problem file")
    try:
        record = json.loads(text)
    except json.JSONDecodeError as e:
        raise VPDError(f"{args.problem}: not valid JSON: {e}") from None
    except RecursionError:
        raise VPDError(f"{args.problem}: not valid JSON: nested too deep") from None
    code = read_text_input(args.code, "program file")
    try:
        job = job_from_record(record, code, args.source, stop_at_first_failure=args.stop_at_first_failure,
                              time_limit_s=args.time_limit, memory_mb=args.memory, semantics=args.semantics)
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


def run() -> None:
    """The `vpd` command. Before the interpreter shuts down, every object is moved out of the
    garbage collector's reach (gc.freeze): the collections at exit would walk torch's,
    transformers' and Prefect's whole heap, ~1 s per process, and each DVC stage is a process.
    Nothing is skipped that matters: atexit handlers and reference-count finalisers still run,
    and the memory goes back to the system with the process."""
    code = main()
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":
    run()
