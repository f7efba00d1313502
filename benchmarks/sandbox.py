"""Sandbox throughput: programs/s and tests/s on a fixed corpus, every way of running it.

Corpus: 240 (program, tests) pairs generated from 12 problems (stdin and functional),
each with correct, wrong, runtime-error and slower-but-correct programs (a few ms of real
computation first, no sleeps), 5 tests each.

Ways (all with 2-way concurrency on this 2-core machine, interleaved, median of repeats):
- docker:          DockerSandbox, warm containers (one per worker), many programs each;
                   `docker@4`: 4 at a time (time spent waiting for a CPU is not charged to a program);
                   `docker-nozygote`: a fresh interpreter per program instead of a fork of the zygote
- bwrap:           BwrapSandbox, warm bubblewraps (one per worker), many programs each, as docker;
                   `bwrap-cold`: one bubblewrap per program (warm=False)
- python-per-test: (a) one fresh `python3` per test, no isolation (LiveCodeBench's grader
                   spawns a process per generation; per test is the issue's baseline)
- docker-run:      (b) one `docker run --rm` per program (the same image and supervisor);
                   `docker-run@4`: 4 at a time
- floor:           spawning a bare `python3 -c pass` once per program
- reference:       LiveCodeBench's process model (a Manager and a forked process per program, tests
                   in-process under SIGALRM, no isolation), emulated: `reference_style`

--corpus parity / parity-timeouts: the LiveCodeBench parity corpus (sandboxes/parity.py) in `lcb`
semantics, without / with its time-out pairs: the issue-13 comparison with the reference's way.
--samples PARQUET: model-written programs instead, the responses of an evaluation
(`<run_dir>/eval/<name>/tables/<benchmark>.parquet`, one row per sample) graded on their
problems' tests as the evaluation did (`--source` names the benchmark, default humaneval).

    scripts/with-dockerd.sh .venv/bin/python benchmarks/sandbox.py --out /tmp/sb.json [--repeats 3]
    scripts/with-dockerd.sh .venv/bin/python benchmarks/sandbox.py --out /tmp/sbp.json --corpus parity \
        --ways reference,docker,bwrap
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sandboxes import Job, make_sandbox  # noqa: E402
from sandboxes.base import RUNTIME_DIR  # noqa: E402

WORKERS = 2


def corpus() -> list[Job]:
    stdin_problems = [
        ("sum", lambda xs: sum(xs), "print(sum(map(int, input().split())))", "print(sum(map(int, input().split())) + 1)"),
        ("max", max, "print(max(map(int, input().split())))", "print(min(map(int, input().split())))"),
        ("sorted", lambda xs: " ".join(map(str, sorted(xs))), "print(*sorted(map(int, input().split())))",
         "print(*map(int, input().split()))"),
        ("prod-mod", lambda xs: __import__("math").prod(xs) % 1000003,
         "import math\nprint(math.prod(map(int, input().split())) % 1000003)", "print(0)"),
        ("count-even", lambda xs: sum(x % 2 == 0 for x in xs), "print(sum(int(x) % 2 == 0 for x in input().split()))",
         "print(len(input().split()))"),
        ("prefix", lambda xs: max(__import__("itertools").accumulate(xs)),
         "from itertools import accumulate\nprint(max(accumulate(map(int, input().split()))))", "print(1)"),
    ]
    fn_problems = [
        ("addAll", lambda xs: sum(xs), "class Solution:\n    def addAll(self, nums):\n        return sum(nums)\n",
         "class Solution:\n    def addAll(self, nums):\n        return sum(nums) - 1\n"),
        ("maxOf", max, "def maxOf(nums):\n    return max(nums)\n", "def maxOf(nums):\n    return nums[0]\n"),
        ("sortIt", sorted, "class Solution:\n    def sortIt(self, nums):\n        return sorted(nums)\n",
         "class Solution:\n    def sortIt(self, nums):\n        return nums\n"),
        ("lenOf", len, "def lenOf(nums):\n    return len(nums)\n", "def lenOf(nums):\n    return 0\n"),
        ("firstLast", lambda xs: [xs[0], xs[-1]], "def firstLast(nums):\n    return (nums[0], nums[-1])\n",
         "def firstLast(nums):\n    return [nums[-1], nums[0]]\n"),
        ("evens", lambda xs: [x for x in xs if x % 2 == 0], "def evens(nums):\n    return [x for x in nums if x % 2 == 0]\n",
         "def evens(nums):\n    return nums\n"),
    ]
    inputs = [[(i * 7 + j * 13) % 97 + 1 for j in range(5 + i)] for i in range(5)]
    jobs = []
    crash = "raise ValueError('boom')\n"
    slow = "_warm = sum(i * i for i in range(100000))\n"  # a few ms of real work before answering
    for name, f, good, bad in stdin_problems:
        tests = [{"input": " ".join(map(str, xs)) + "\n", "output": f"{f(xs)}\n"} for xs in inputs]
        for code in (good, bad, crash, slow + good) * 5:
            jobs.append(Job(code=code, tests=tests, time_limit_s=6.0))
    for name, f, good, bad in fn_problems:
        tests = [{"input": json.dumps(xs), "output": json.dumps(f(xs)), "testtype": "functional"} for xs in inputs]
        for code in (good, bad, "def nothing():\n    pass\n", slow + good) * 5:
            jobs.append(Job(code=code, tests=tests, fn_name=name, time_limit_s=6.0))
    return jobs


def parity_corpus(with_timeouts: bool) -> list[Job]:
    """The LiveCodeBench parity corpus (sandboxes/parity.py) in `lcb` semantics, memory_mb null as the
    reference; without the pairs that run into the time limit, or all of them."""
    from sandboxes.parity import PAIRS

    pairs = [p for p in PAIRS if with_timeouts or p.category != "limits"]  # limits: time-outs, sleeps, 640 MB
    return [p.job("lcb", memory_mb=None) for p in pairs]


def model_written(samples: str, source: str) -> list[Job]:
    """The programs a model wrote in an evaluation (its per-sample parquet), as the evaluation ran them:
    the code block of each response on all of its problem's tests; responses without one are left out."""
    import pandas as pd

    from sandboxes.extract import extract_code
    from sandboxes.jobs import job_from_problem
    from vpd_core.config import Params
    from vpd_core.loop import grading_semantics, load_problems

    params = Params.model_validate({"data": {"source": source}})
    problems = {p.id: p for p in load_problems(params, "test")}
    rows = pd.read_parquet(samples)
    jobs = []
    for pid, text, finish in zip(rows["problem_id"], rows["response"], rows["finish_reason"]):
        code = extract_code(text, finish == "length")
        if code.outcome == "ok":
            jobs.append(job_from_problem(problems[pid], code.code, semantics=grading_semantics(params, "all")))
    return jobs


CORPORA = {"synthetic": corpus, "parity": lambda: parity_corpus(False), "parity-timeouts": lambda: parity_corpus(True)}


# ----------------------------------------------------------------------------- LiveCodeBench's process model


def reference_style(jobs: list[Job]) -> list[bool]:
    """LiveCodeBench's way of running programs, emulated with our own code (its cost model, not its
    source): WORKERS worker processes that imported numpy (ProcessPoolExecutor); per program a
    multiprocessing.Manager (a server process) and a forked Process running all the program's tests
    in-process (SIGALRM per test, stop at the first failure, no isolation), joined with the global
    timeout (limit + 1) x tests + 5 s. The tests run with the same lcb harness as our runner
    (sandboxes/runtime/runner.py), so verdicts can be compared."""
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(WORKERS, initializer=_reference_worker_init) as pool:
        return list(pool.map(_reference_program, [j.to_wire() for j in jobs]))


def _reference_worker_init():
    import numpy  # noqa: F401 - the reference's grader module imports numpy

    sys.path.insert(0, str(RUNTIME_DIR))


def _reference_program(job: dict) -> bool:
    import multiprocessing

    manager = multiprocessing.Manager()
    try:
        result = manager.list()
        proc = multiprocessing.Process(target=_reference_child, args=(job, result))
        proc.start()
        proc.join(timeout=(job["time_limit_s"] + 1) * len(job["tests"]) + 5)
        if proc.is_alive():
            proc.kill()
            proc.join()
        return bool(result) and result[0]
    finally:
        manager.shutdown()


def _reference_child(job: dict, result) -> None:
    import builtins
    import io
    import signal

    import runner
    from supervisor import compare_stdin, lcb_equal

    class Timeout(Exception):
        pass

    def alarm(*_):
        raise Timeout()

    signal.signal(signal.SIGALRM, alarm)
    null = os.open(os.devnull, os.O_WRONLY)  # what programs write past the capture (bare `stdout`, fd 1, stderr)
    os.dup2(null, 1)
    os.dup2(null, 2)
    limit = max(1, int(job["time_limit_s"]))
    runner.lcb_guard()
    functional = bool(job["fn_name"])
    base = {"__builtins__": builtins, "__name__": runner.LCB_MODULE}
    host_stdin, real_open = runner.HostStdin(""), builtins.open
    sys.stdin, real_stdout = host_stdin, sys.stdout
    try:
        exec(compile(runner.PREAMBLE, "<preamble>", "exec"), base)
        signal.alarm(limit)
        compiled = runner.lcb_compile(job["code"], functional)
        exec(compiled, base)
        signal.alarm(0)
        if functional:
            entry = getattr(base["Solution"](), job["fn_name"]) if "class Solution" in job["code"] else base[job["fn_name"]]
        else:
            entry = base["wrapped_function"]
    except BaseException:  # noqa: BLE001
        signal.alarm(0)
        result.append(False)
        return
    ok = True
    for t in job["tests"]:
        capture = runner.LcbCapture(1 << 30)
        sys.stdin, sys.stdout = (host_stdin, capture) if functional else (io.StringIO(t["input"]), capture)
        host_stdin.set(t["input"])
        builtins.open = lambda *a, _text=t["input"], **k: io.StringIO(_text)  # mock_open(read_data=input)
        signal.alarm(limit)
        try:
            if functional:
                value = entry(*[json.loads(line) for line in t["input"].split("\n")])
                ok = lcb_equal(runner.encode_value(list(value) if isinstance(value, tuple) else value),
                               json.loads(t["output"])) is True
            else:
                try:
                    entry()
                except SystemExit:
                    pass
                ok = compare_stdin(capture.getvalue(), t["output"])[0]
        except BaseException:  # noqa: BLE001 - time-outs and the program's errors
            ok = False
        finally:
            signal.alarm(0)
            builtins.open = real_open
            sys.stdin, sys.stdout = host_stdin, real_stdout
        if not ok:
            break
    result.append(ok)


def run_sandbox(backend: str, jobs: list[Job], concurrency: int = WORKERS) -> list[bool]:
    kwargs = {"docker-nozygote": {"zygote": False}, "bwrap-cold": {"warm": False}}.get(backend, {})
    with make_sandbox(backend.split("-")[0], concurrency=concurrency, **kwargs) as sb:
        # warm-up: every worker's container (started once per training run) and the page cache
        sb.run_batch([jobs[0]] * concurrency)
        t0 = time.perf_counter()
        results = sb.run_batch(jobs)
        run_sandbox.elapsed = time.perf_counter() - t0
    return [r.passed for r in results]


def python_per_test(jobs: list[Job]) -> list[bool]:
    """(a) a fresh interpreter per test: the runner with a single input, compared on the host."""
    sys.path.insert(0, str(RUNTIME_DIR))
    from supervisor import compare_functional, compare_stdin  # noqa: PLC0415

    def one(job: Job) -> bool:
        ok = True
        for t in job.tests:
            payload = json.dumps({"code": job.code, "fn_name": job.fn_name, "inputs": [t.input],
                                  "mode": "functional" if job.fn_name else "stdin"})
            p = subprocess.run([sys.executable, "-I", str(RUNTIME_DIR / "runner.py")], input=payload,
                               capture_output=True, text=True, timeout=30, env={"PATH": "/usr/bin:/bin"})
            frames = [json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")]
            frame = next((f for f in frames if "i" in f), None)
            if frame is None or frame.get("error"):
                ok = False
                continue
            cmp = compare_functional if job.fn_name else compare_stdin
            ok &= cmp(frame["output"], t.output)[0]
        return ok

    with ThreadPoolExecutor(WORKERS) as pool:
        return list(pool.map(one, jobs))


def docker_run_per_program(jobs: list[Job], image: str, workers: int = WORKERS) -> list[bool]:
    """(b) a fresh locked-down container per program, same supervisor in --once mode."""
    base = ["docker", "run", "--rm", "-i", "--network", "none", "--read-only", "--tmpfs", "/tmp:size=64m",
            "--cap-drop", "ALL", "--security-opt", "no-new-privileges", "--user", "1000:1000", "--memory", "1g",
            "--pids-limit", "128", "--entrypoint", "python3", image, "-I", "/opt/sandbox/supervisor.py", "--once"]

    def one(job: Job) -> bool:
        p = subprocess.run(base, input=json.dumps(job.to_wire()), capture_output=True, text=True, timeout=120)
        line = next(x for x in p.stdout.splitlines() if x.startswith("RESULT "))
        return all(t["status"] == "pass" for t in json.loads(line[7:])["tests"])

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(one, jobs))


FLOOR_PYTHON = "/usr/bin/python3"  # sandboxes.bwrap.BwrapSandbox's default interpreter


def floor(jobs: list[Job]) -> list[bool]:
    """The interpreter the bwrap backend starts per program, started bare: isolated mode (-I, as the
    backend runs it) and the system Python, not the virtualenv's (whose site setup costs ~3x)."""
    def one(_job):
        subprocess.run([FLOOR_PYTHON, "-I", "-c", "pass"], check=True)
        return True

    with ThreadPoolExecutor(WORKERS) as pool:
        return list(pool.map(one, jobs))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--ways", default="docker,bwrap,python-per-test,docker-run,floor")
    ap.add_argument("--corpus", choices=sorted(CORPORA), default="synthetic",
                    help="synthetic: the 240-program corpus above; parity / parity-timeouts: the LiveCodeBench "
                         "parity corpus in lcb semantics without / with its time-out pairs")
    ap.add_argument("--samples", help="model-written programs: an evaluation's per-sample parquet (replaces --corpus)")
    ap.add_argument("--source", default="humaneval", help="the benchmark of --samples")
    ap.add_argument("--limit", type=int, default=0, help="a seeded sample of N programs of the corpus (0 = all)")
    ap.add_argument("--out", required=True, help="JSON file for the results (kept out of the repository)")
    args = ap.parse_args()
    jobs = model_written(args.samples, args.source) if args.samples else CORPORA[args.corpus]()
    if args.limit and args.limit < len(jobs):
        import random

        jobs = random.Random(0).sample(jobs, args.limit)
    n_tests = sum(len(j.tests) for j in jobs)
    import docker

    from sandboxes.image_build import ensure_image

    image = ensure_image(docker.from_env())
    expected = None
    times: dict[str, list[float]] = {}
    for r in range(args.repeats):
        for way in args.ways.split(","):
            t0 = time.perf_counter()
            if way.split("@")[0] in ("docker", "docker-nozygote", "bwrap", "bwrap-cold"):  # docker@4: 4 at a time
                backend, _, conc = way.partition("@")
                passed = run_sandbox(backend, jobs, int(conc or WORKERS))
                elapsed = run_sandbox.elapsed  # pool start-up excluded: it happens once per training run
            elif way.split("@")[0] == "docker-run":  # docker-run@4: 4 `docker run`s at a time
                passed = docker_run_per_program(jobs, image, int(way.partition("@")[2] or WORKERS))
                elapsed = time.perf_counter() - t0
            else:
                passed = {"python-per-test": python_per_test, "floor": floor, "reference": reference_style}[way](jobs)
                elapsed = time.perf_counter() - t0
            if way != "floor":
                expected = expected or passed
                assert passed == expected, f"{way} disagrees with the other ways on some verdicts"
            times.setdefault(way, []).append(elapsed)
            print(f"repeat {r} {way}: {elapsed:.2f} s ({len(jobs) / elapsed:.1f} programs/s)", file=sys.stderr)
    summary = {w: {"seconds_median": statistics.median(t), "programs_per_s": len(jobs) / statistics.median(t),
                   "tests_per_s": n_tests / statistics.median(t), "runs": t} for w, t in times.items()}
    meta = {"corpus": args.samples or args.corpus, "limit": args.limit, "programs": len(jobs), "tests": n_tests, "passing_programs": sum(expected or []), "workers": WORKERS,
            "cpus": os.cpu_count(), "repeats": args.repeats}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"meta": meta, "summary": summary}, indent=2))
    print(f"\n{meta}\n\n| way | programs/s | tests/s | s (median) |\n|---|---|---|---|")
    for w, s in summary.items():
        print(f"| {w} | {s['programs_per_s']:.1f} | {s['tests_per_s']:.1f} | {s['seconds_median']:.2f} |")


if __name__ == "__main__":
    main()
