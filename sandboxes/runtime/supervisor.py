"""Trusted supervisor inside the sandbox (stdlib only; runs as the sandbox's non-root user).

    python3 -I supervisor.py --serve   # Docker: PID 1 of a warm container, one job after another
    python3 -I supervisor.py --once    # bubblewrap / plain rlimits: one job, then exit

A job is JSON: {"code", "fn_name", "tests": [{"input", "output", "testtype"}],
"time_limit_s", "memory_mb", "stop_at_first_failure"}. The program runs in a child
process (runner.py) that only ever sees the test inputs; this process keeps the
expected outputs, compares, enforces wall-clock limits, and after every program
kills every process it left behind and wipes the scratch space.

--serve framing: stdin carries "<n>\\n" + n bytes of job JSON; stdout carries one
"RESULT <json>\\n" line per job. Nothing else writes to this process's stdout:
children get their own pipes, and the supervisor makes itself non-dumpable so a
program cannot open /proc/<pid>/fd or ptrace it. As PID 1 of a container it
cannot be killed from inside (the kernel drops signals to init that it does not
handle; SIGINT is ignored explicitly).
"""

import ctypes
import json
import os
import resource
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from decimal import Decimal, InvalidOperation

HERE = os.path.dirname(os.path.abspath(__file__))
RUNNER = os.path.join(HERE, "runner.py")
STARTUP_GRACE_S = 3.0  # interpreter start + the import preamble, before the first test's clock
CHANNEL_LIMIT = 8 << 20  # bytes a runner may send us in total (its frames plus anything it writes to fd 1)
EXCERPT = 1000


def harden():
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        ctypes.CDLL(None, use_errno=True).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE = 0
    except (OSError, AttributeError):
        pass


def excerpt(text, limit=EXCERPT):
    if text is None:
        return None
    return text if len(text) <= limit else text[: limit // 2] + "...(truncated)..." + text[-limit // 2 :]


# ----------------------------------------------------------------------------- comparison (LiveCodeBench)


def compare_stdin(pred, expected):
    """Line-by-line after strip; a differing line may still match token-wise as Decimals."""
    p_lines = [line.strip() for line in pred.strip().split("\n")]
    e_lines = [line.strip() for line in expected.strip().split("\n")]
    if len(p_lines) != len(e_lines):
        return False, "Wrong answer: mismatched output length"
    for i, (a, b) in enumerate(zip(p_lines, e_lines)):
        if a == b:
            continue
        try:
            da, db = [Decimal(t) for t in a.split()], [Decimal(t) for t in b.split()]
        except (InvalidOperation, ValueError):
            return False, f"Wrong answer at output_line_idx={i}: {a} != {b}"
        if da != db:
            return False, f"Wrong answer at output_line_idx={i}: {a} != {b}"
    return True, ""


def compare_functional(pred_json, expected):
    try:
        return json.loads(pred_json) == json.loads(expected), ""
    except ValueError:
        return False, "Wrong Answer"


# ----------------------------------------------------------------------------- running one program


def _limits(memory_mb, cpu_s):
    mem = int(memory_mb) << 20

    def preexec():
        os.setsid()  # own process group: killed as a group
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        resource.setrlimit(resource.RLIMIT_STACK, (min(256 << 20, mem), min(256 << 20, mem)))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))
        resource.setrlimit(resource.RLIMIT_FSIZE, (16 << 20, 16 << 20))
        resource.setrlimit(resource.RLIMIT_NPROC, (64, 64))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        try:
            with open("/proc/self/oom_score_adj", "w") as f:
                f.write("1000")  # under memory pressure the program dies, never the supervisor
        except OSError:
            pass

    return preexec


def kill_everything_else():
    """SIGKILL every process in this sandbox except ourselves, PID 1 and our ancestors; reap."""
    me = os.getpid()
    keep = {me, 1}
    pid = os.getppid()
    while pid > 1:
        keep.add(pid)
        try:
            with open(f"/proc/{pid}/stat") as f:
                pid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    uid = os.getuid()
    for _ in range(3):  # a fork loop may spawn while we sweep
        found = False
        for name in os.listdir("/proc"):
            if not name.isdigit() or int(name) in keep:
                continue
            try:
                if os.stat(f"/proc/{name}").st_uid != uid:
                    continue
                os.kill(int(name), signal.SIGKILL)
                found = True
            except (ProcessLookupError, PermissionError, FileNotFoundError):
                pass
        reap()
        if not found:
            break


def reap():
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def wipe(path):
    for name in os.listdir(path):
        p = os.path.join(path, name)
        try:
            if os.path.isdir(p) and not os.path.islink(p):
                shutil.rmtree(p, ignore_errors=True)
            else:
                os.unlink(p)
        except OSError:
            pass


class Attempt:
    """One runner process over tests[start:]; yields per-test frames or a failure."""

    def __init__(self, job, start, scratch):
        self.start = start
        mode = "functional" if job.get("fn_name") else "stdin"
        payload = json.dumps({"code": job["code"], "fn_name": job.get("fn_name"), "mode": mode,
                              "inputs": [t["input"] for t in job["tests"][start:]]}).encode()
        cpu = int(job["time_limit_s"] * (len(job["tests"]) - start) + STARTUP_GRACE_S + 1)
        self.proc = subprocess.Popen(
            [sys.executable, "-I", RUNNER],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            cwd=scratch, env={"PATH": "/usr/bin:/bin", "HOME": scratch, "LANG": "C.UTF-8", "TMPDIR": scratch},
            preexec_fn=_limits(job["memory_mb"], cpu), close_fds=True,
        )
        self.buf = b""
        self.received = 0
        try:
            self.proc.stdin.write(payload)
            self.proc.stdin.close()
        except BrokenPipeError:
            pass

    def next_frame(self, deadline):
        """('frame', dict) | ('timeout', None) | ('exit', returncode) | ('flood', None)"""
        fd = self.proc.stdout.fileno()
        while True:
            nl = self.buf.find(b"\n")
            if nl >= 0:
                line, self.buf = self.buf[:nl], self.buf[nl + 1 :]
                try:
                    frame = json.loads(line)
                except ValueError:
                    continue  # bytes the program wrote to fd 1 itself: not a frame
                if isinstance(frame, dict):
                    return "frame", frame
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return "timeout", None
            ready, _, _ = select.select([fd], [], [], remaining)
            if not ready:
                return "timeout", None
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                return "exit", self.proc.wait()
            self.received += len(chunk)
            if self.received > CHANNEL_LIMIT:
                return "flood", None
            self.buf += chunk

    def kill(self):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        self.proc.stdout.close()


def result_for(test, frame, mode):
    base = {"input": excerpt(test["input"]), "expected": excerpt(test["output"]),
            "size": len(test["input"]) + len(test["output"]),
            "elapsed": round(frame.get("elapsed", 0.0), 4), "stderr": excerpt(frame.get("stderr") or "")}
    err = frame.get("error")
    if err:
        status = "memory_limit" if err.get("memory") else "output_limit" if err.get("output_limit") else "runtime_error"
        return dict(base, status=status, output=excerpt(frame.get("printed") or ""), exception=err["message"],
                    traceback=err["traceback"], message=err["type"])
    output = frame.get("output") or ""
    ok, message = (compare_functional if mode == "functional" else compare_stdin)(output, test["output"])
    return dict(base, status="pass" if ok else "wrong_answer", output=excerpt(output), message=message)


def failure(test, status, message, elapsed=None):
    return {"status": status, "input": excerpt(test["input"]), "expected": excerpt(test["output"]),
            "size": len(test["input"]) + len(test["output"]),
            "output": "", "message": message, "elapsed": elapsed}


def run_job(job, isolated=True):
    """Run one program on all its tests (or until the first failure). -> {"tests": [...]}

    isolated: we are alone in a sandbox (container / bubblewrap) whose /tmp is ours, so
    every other process of our user is the program's and /tmp can be wiped. Without
    isolation only the program's process group is killed and only its scratch removed.
    """
    job = dict({"time_limit_s": 6.0, "memory_mb": 512, "stop_at_first_failure": False}, **job)
    tests, limit = job["tests"], float(job["time_limit_s"])
    mode = "functional" if job.get("fn_name") else "stdin"
    results = []
    scratch = tempfile.mkdtemp(prefix="run-", dir="/tmp" if isolated else None)
    os.chmod(scratch, 0o700)
    try:
        while len(results) < len(tests):
            attempt = Attempt(job, len(results), scratch)
            deadline = time.monotonic() + limit + STARTUP_GRACE_S
            test_started = time.monotonic()
            restart = False
            while len(results) < len(tests) and not restart:
                test = tests[len(results)]
                kind, frame = attempt.next_frame(deadline)
                now = time.monotonic()
                if kind == "frame" and "compile_error" in frame:
                    err = frame["compile_error"]
                    n = 1 if job["stop_at_first_failure"] else len(tests) - len(results)
                    for t in tests[len(results) : len(results) + n]:
                        results.append(dict(failure(t, "compile_error", err["type"]), exception=err["message"],
                                            traceback=err["traceback"]))
                    return {"tests": results}
                if kind == "frame" and frame.get("i") == len(results) - attempt.start:
                    results.append(result_for(test, frame, mode))
                    if results[-1]["status"] == "memory_limit":
                        restart = True  # the runner's heap is suspect after a MemoryError
                    deadline, test_started = now + limit, now
                elif kind == "frame":
                    continue  # a forged or stale frame: ignore it
                elif kind == "timeout":
                    results.append(failure(test, "timeout", "Time Limit Exceeded", round(now - test_started, 4)))
                    restart = True
                elif kind == "flood":
                    results.append(failure(test, "output_limit", "Output Limit Exceeded"))
                    restart = True
                else:  # the runner died before answering this test
                    code = frame
                    if code == -signal.SIGKILL:  # not by us: the kernel's OOM killer
                        status, msg = "memory_limit", "killed (out of memory)"
                    elif code == -signal.SIGXCPU:
                        status, msg = "timeout", "CPU time limit exceeded"
                    elif code == -signal.SIGXFSZ:
                        status, msg = "runtime_error", "File size limit exceeded"
                    elif code == -signal.SIGSEGV:
                        status, msg = "runtime_error", "Segmentation fault (stack overflow?)"
                    else:
                        status, msg = "runtime_error", f"program exited with status {code} before finishing"
                    results.append(dict(failure(test, status, msg), exception=msg))
                    restart = True
                if results and results[-1]["status"] != "pass" and job["stop_at_first_failure"]:
                    attempt.kill()
                    return {"tests": results}
            attempt.kill()
        return {"tests": results}
    finally:
        if isolated:
            kill_everything_else()
        shutil.rmtree(scratch, ignore_errors=True)
        if isolated:
            wipe("/tmp")


# ----------------------------------------------------------------------------- entry points


def serve():
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while True:
        header = stdin.readline()
        if not header:
            return
        job = json.loads(stdin.read(int(header)))
        try:
            result = run_job(job)
        except Exception as e:  # noqa: BLE001 - reported to the host as an infrastructure error
            result = {"infra_error": f"{type(e).__name__}: {e}"}
        stdout.write(b"RESULT " + json.dumps(result).encode() + b"\n")
        stdout.flush()


def once(isolated):
    job = json.loads(sys.stdin.buffer.read())
    try:
        result = run_job(job, isolated)
    except Exception as e:  # noqa: BLE001
        result = {"infra_error": f"{type(e).__name__}: {e}"}
    sys.stdout.write("RESULT " + json.dumps(result) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    harden()
    if "--serve" in sys.argv:
        serve()
    else:
        once(isolated="--unisolated" not in sys.argv)
