"""Trusted supervisor inside the sandbox (stdlib only; runs as the sandbox's non-root user).

    python3 -I supervisor.py --serve   # Docker: PID 1 of a warm container, one job after another
    python3 -I supervisor.py --once    # bubblewrap / plain rlimits: one job, then exit

A job is JSON: {"code", "fn_name", "tests": [{"input", "output", "testtype"}], "setup",
"time_limit_s", "memory_mb", "stop_at_first_failure", "semantics": "robust"|"lcb"} (`lcb` always
stops at the first failure, as the reference does, and compares functional results with
Python's == as it does: `lcb_equal`). The program runs in a child
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
import math
import os
import resource
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
from decimal import Decimal, InvalidOperation
from fractions import Fraction

HERE = os.path.dirname(os.path.abspath(__file__))
RUNNER = os.path.join(HERE, "runner.py")
# Interpreter start + the import preamble, at most, before the first test's clock starts: the
# clock starts when the runner says it is ready, so a restarted attempt costs the start-up it
# really took, not this cap (a whole program's time is tests x limit + real start-ups).
STARTUP_GRACE_S = 3.0
MAX_TIMEOUTS = 2  # after this many time-outs a program's remaining tests are not run
# Time a program spent runnable but waiting for a CPU (other programs had them) is not charged to
# it, so programs can run more at a time than there are cores (a sleeping or blocked program needs
# none) without a CPU-bound one timing out for its neighbours; a test never waits past this many limits
MAX_CONTENTION = 3
CHANNEL_LIMIT = 8 << 20  # bytes a runner may send us beyond its tests' output limits (frames, anything written to fd 1)
STREAM_LIMIT = 1 << 20  # a stdin program's stdout per test, at least; runner.py keeps the same floor
EXCERPT = 1000


def output_limit(test):
    """Bytes of stdout a stdin program may print on one test: the floor, or twice the expected
    output when that is longer (a correct answer always fits; the program learns only a size)."""
    return max(STREAM_LIMIT, 2 * len(test["output"].encode()) + 4096)


LIBC = ctypes.CDLL(None, use_errno=True)
PR_SET_DUMPABLE = 4
PR_SET_CHILD_SUBREAPER = 36
PROGRAM_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}  # + HOME and TMPDIR: the program's scratch
IPC_RMID = 0


def _prctl(option, value):
    if LIBC.prctl(option, value, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), f"prctl({option}, {value}) failed")


def harden():
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _prctl(PR_SET_DUMPABLE, 0)


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
            # NaNs never equal anything; comparing a signalling NaN ('sNaN') raises InvalidOperation
            same = len(da) == len(db) and not any(d.is_nan() for d in da + db) and da == db
        except (InvalidOperation, ValueError, ArithmeticError):
            same = False
        if not same:
            return False, f"Wrong answer at output_line_idx={i}: {a} != {b}"
    return True, ""


def compare_functional(pred_json, expected):
    try:
        return json.loads(pred_json) == json.loads(expected), ""
    except (ValueError, RecursionError, TypeError):  # a result nested too deep to read is not the answer
        return False, "Wrong Answer"


def lcb_equal(got, expected):
    """The reference's `prediction == expected` for a result the runner encoded (encode_value in
    runner.py) and the JSON-decoded expected value. -> True | False | "ambiguous" (a numpy array
    of several elements: its truth value raises there, a runtime error)."""
    if isinstance(got, dict) and "array" in got:
        if not isinstance(got["array"], int):
            return False
        if got["array"] > 1:
            return "ambiguous"
        if got["array"] == 0:
            return False
        item = got.get("item")
        if isinstance(expected, list):  # elementwise against a one-element list
            return len(expected) == 1 and lcb_equal(item, expected[0]) is True
        return lcb_equal(item, expected) is True
    if isinstance(expected, (bool, int, float)):
        want, have = _number(expected), _number(got)
        return want is not None and have is not None and want == have
    if expected is None or isinstance(expected, str):
        return type(got) is type(expected) and got == expected
    if isinstance(expected, list):
        return isinstance(got, list) and len(got) == len(expected) and all(
            lcb_equal(g, e) is True for g, e in zip(got, expected))
    if isinstance(expected, dict):
        if not (isinstance(got, dict) and isinstance(got.get("dict"), list)):
            return False
        pairs = got["dict"]
        if not all(isinstance(p, list) and len(p) == 2 and isinstance(p[0], str) for p in pairs):
            return False  # a key that is not a string never equals a JSON object's key
        have = dict(pairs)
        return len(have) == len(expected) and set(have) == set(expected) and all(
            lcb_equal(have[k], v) is True for k, v in expected.items())
    return False


def _number(value):
    """An encoded or JSON number as an exact Fraction, ("inf", sign), or None (NaN, not a number)."""
    if isinstance(value, bool):
        return Fraction(int(value))
    if isinstance(value, int):
        return Fraction(value)
    if isinstance(value, float):
        if value != value:
            return None
        return ("inf", value > 0) if math.isinf(value) else Fraction(value)
    if isinstance(value, dict):
        q = value.get("q")
        if isinstance(q, list) and len(q) == 2 and all(isinstance(x, int) and not isinstance(x, bool) for x in q) and q[1]:
            return Fraction(q[0], q[1])
        if value.get("inf") in (1, -1):
            return ("inf", value["inf"] > 0)
    return None


def valid_frame(frame):
    """A runner frame of the expected shape. Anything the program itself wrote to fd 1 may look
    like JSON: frames of the wrong shape are ignored, never trusted, never a crash."""
    text_or_none = (str, type(None))
    if not isinstance(frame, dict):
        return False
    if frame == {"ready": True}:
        return True
    if "compile_error" in frame:
        return valid_error(frame["compile_error"])
    if not isinstance(frame.get("i"), int) or isinstance(frame.get("i"), bool):
        return False
    if not all(isinstance(frame.get(k), text_or_none) for k in ("output", "printed", "stderr")):
        return False
    err = frame.get("error")
    return err is None or valid_error(err)


def valid_error(err):
    return (isinstance(err, dict) and isinstance(err.get("message"), str) and isinstance(err.get("type"), str)
            and isinstance(err.get("traceback"), list) and all(isinstance(t, str) for t in err["traceback"]))


def finite_elapsed(value, measured):
    """The runner's per-test time if it is a plausible number, else what the supervisor measured
    (a program can patch time.perf_counter to return NaN)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and 0 <= value <= measured + 1:
        return round(float(value), 4)
    return round(measured, 4)


# ----------------------------------------------------------------------------- running one program


def run_delay(pid):
    """Seconds the process's main thread has spent runnable but waiting for a CPU (schedstat);
    0.0 where the kernel does not report it."""
    try:
        with open(f"/proc/{pid}/schedstat") as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return 0.0


def _limits(memory_mb, cpu_s, preloaded=0):
    """memory_mb: the program's address space (RLIMIT_AS); None: no limit beyond the sandbox's own
    (the Docker container's memory cgroup, or the machine's for bubblewrap). preloaded: bytes of
    address space a zygote's child starts with beyond a fresh runner's (numpy), not the program's."""
    mem = None if memory_mb is None else (int(memory_mb) << 20) + preloaded

    def preexec():
        os.setsid()  # own process group: killed as a group
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        if mem is not None:
            resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        stack = 256 << 20 if mem is None else min(256 << 20, mem)
        resource.setrlimit(resource.RLIMIT_STACK, (stack, stack))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))
        resource.setrlimit(resource.RLIMIT_FSIZE, (16 << 20, 16 << 20))
        resource.setrlimit(resource.RLIMIT_NPROC, (64, 64))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        # Under memory pressure the program dies, never the supervisor. The fork inherited our
        # non-dumpable flag, which makes /proc/self/* root-owned and unwritable: become dumpable
        # first (the exec that follows would reset the flag anyway; no program code runs before it).
        _prctl(PR_SET_DUMPABLE, 1)
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write("1000")

    return preexec


def kill_everything_else(spare=()):
    """SIGKILL every process in this sandbox except ourselves, PID 1, our ancestors and `spare`
    (the zygote); reap."""
    me = os.getpid()
    keep = {me, 1, *spare}
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


def remove_tree(path, keep_root=False):
    """Delete a directory tree without recursion and without long paths: a program may leave
    a chain of thousands of nested directories (shutil.rmtree recurses and builds full paths).
    Walks by chdir, one name at a time; the program is dead by now, so nothing moves under us."""
    try:
        if not os.path.isdir(path) or os.path.islink(path):
            os.unlink(path)
            return
    except OSError:
        return
    home = os.open(".", os.O_RDONLY)
    stuck = set()  # (dev, inode) of directories that could not be emptied
    try:
        os.chdir(path)
        names = []  # the directory names from `path` down to the current directory
        while True:
            descended = False
            with os.scandir(".") as entries:
                for entry in entries:
                    try:
                        st = entry.stat(follow_symlinks=False)
                        if entry.is_dir(follow_symlinks=False):
                            if (st.st_dev, st.st_ino) in stuck:
                                continue
                            os.chmod(entry.name, 0o700)
                            os.chdir(entry.name)
                            names.append(entry.name)
                            descended = True
                            break
                        os.unlink(entry.name)
                    except OSError:
                        continue
            if descended:
                continue
            if not names:
                break
            here = os.stat(".")
            os.chdir("..")
            name = names.pop()
            try:
                os.rmdir(name)
            except OSError:
                stuck.add((here.st_dev, here.st_ino))
    except OSError:
        pass
    finally:
        os.fchdir(home)
        os.close(home)
    if not keep_root:
        try:
            os.rmdir(path)
        except OSError:
            pass


def wipe(path):
    remove_tree(path, keep_root=True)


def wipe_ipc():
    """Remove every IPC object a program left: System V shared memory, message queues and
    semaphore sets, POSIX message queues and /dev/shm (POSIX shared memory and semaphores).
    A warm container keeps one IPC namespace for all its programs: a leftover would let a later
    program read an earlier one's data (its answers), or find memory or /dev/shm already full."""
    removers = {"shm": lambda i: LIBC.shmctl(i, IPC_RMID, None), "msg": lambda i: LIBC.msgctl(i, IPC_RMID, None),
                "sem": lambda i: LIBC.semctl(i, 0, IPC_RMID, 0)}
    for kind, remove in removers.items():
        try:
            with open(f"/proc/sysvipc/{kind}") as f:
                rows = f.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:  # "key id perms ...": everything in our namespace is the program's
            fields = row.split()
            if len(fields) > 1 and fields[1].isdigit():
                remove(int(fields[1]))
    for directory in ("/dev/shm", "/dev/mqueue"):  # unlink on the mqueue filesystem is mq_unlink
        if os.path.isdir(directory):
            wipe(directory)


class Attempt:
    """One runner process over tests[start:]; yields per-test frames or a failure."""

    def __init__(self, job, start, scratch, zygote=None):
        self.start = start
        mode = job_mode(job)
        tests = job["tests"][start:]
        limits = [output_limit(t) for t in tests]
        # a frame carries the output JSON-escaped (at most 6 bytes per byte) plus excerpts
        self.channel_limit = CHANNEL_LIMIT + sum(6 * n for n in limits)
        payload = json.dumps({"code": job["code"], "fn_name": job.get("fn_name"), "mode": mode,
                              "semantics": job["semantics"], "setup": job.get("setup") or "",
                              "inputs": [t["input"] for t in tests],
                              "output_limits": limits}).encode()
        cpu = int(job["time_limit_s"] * (len(job["tests"]) - start) + STARTUP_GRACE_S + 1)
        env = dict(PROGRAM_ENV, HOME=scratch, TMPDIR=scratch)
        self.proc = zygote.spawn(scratch, env, job["memory_mb"], cpu) if zygote is not None else None
        if self.proc is None:  # no zygote (one program per sandbox), or it failed: a fresh interpreter
            self.proc = subprocess.Popen(
                [sys.executable, "-I", RUNNER],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                cwd=scratch, env=env, preexec_fn=_limits(job["memory_mb"], cpu), close_fds=True,
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
                except (ValueError, RecursionError):
                    continue  # bytes the program wrote to fd 1 itself (maybe nested past any limit): not a frame
                if valid_frame(frame):
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
            if self.received > self.channel_limit:
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


def job_mode(job):
    """How the runner calls the program: assertion tests (check(candidate) in its process),
    functional (the entry point per input), or stdin."""
    if job["tests"] and job["tests"][0].get("testtype") == "assertion":
        return "assertion"
    return "functional" if job.get("fn_name") else "stdin"


def result_for(test, frame, mode, measured, memory_mb, semantics="robust"):
    base = {"input": excerpt(test["input"]), "expected": excerpt(test["output"]),
            "size": len(test["input"]) + len(test["output"]),
            "elapsed": finite_elapsed(frame.get("elapsed"), measured), "stderr": excerpt(frame.get("stderr") or "")}
    err = frame.get("error")
    if mode == "assertion":  # the test is its code; what a person needs is the assertion that failed
        check = err.get("check") if isinstance(err, dict) and isinstance(err.get("check"), dict) else {}
        line = check.get("line") if isinstance(check.get("line"), str) and check.get("line") else test["input"]
        expected = check.get("expected") if isinstance(check.get("expected"), str) else ""
        got = check.get("got") if isinstance(check.get("got"), str) else ""
        base.update(input=excerpt(line), expected=excerpt(expected), size=len(line) + len(expected))
        if not err:
            return dict(base, status="pass", output="", message="")
        if check.get("failed") is True:
            return dict(base, status="wrong_answer", output=excerpt(got), message="Wrong Answer",
                        exception=excerpt(str(err.get("message", ""))))
    if err:
        status = "memory_limit" if err.get("memory") else "output_limit" if err.get("output_limit") else "runtime_error"
        message = f"{err['type']} (over the program's {memory_mb} MB address space)" if status == "memory_limit" \
            else err["type"]
        return dict(base, status=status, output=excerpt(frame.get("printed") or ""), exception=excerpt(err["message"]),
                    traceback=[excerpt(t) for t in err["traceback"][:3]], message=excerpt(message, 200))
    output = frame.get("output") or ""
    if mode == "functional" and semantics == "lcb":
        try:
            same = lcb_equal(frame.get("value"), json.loads(test["output"]))
        except (ValueError, RecursionError):
            same = False
        if same == "ambiguous":
            message = "The truth value of an array with more than one element is ambiguous"
            return dict(base, status="runtime_error", output=excerpt(output), exception=f"ValueError: {message}",
                        message="ValueError")
        ok, message = same, "" if same else "Wrong Answer"
    else:
        ok, message = (compare_functional if mode == "functional" else compare_stdin)(output, test["output"])
    return dict(base, status="pass" if ok else "wrong_answer", output=excerpt(output), message=message)


def failure(test, status, message, elapsed=None):
    return {"status": status, "input": excerpt(test["input"]), "expected": excerpt(test["output"]),
            "size": len(test["input"]) + len(test["output"]),
            "output": "", "message": message, "elapsed": elapsed}


def run_job(job, isolated=True, zygote=None):
    """Run one program on all its tests (or until the first failure). -> {"tests": [...]}

    isolated: we are alone in a sandbox (container / bubblewrap) whose /tmp is ours, so
    every other process of our user is the program's and /tmp can be wiped. Without
    isolation only the program's process group is killed and only its scratch removed.
    """
    job = dict({"time_limit_s": 6.0, "memory_mb": 512, "stop_at_first_failure": False, "semantics": "robust"}, **job)
    if job["semantics"] == "lcb":  # the reference returns at the first failed test
        job["stop_at_first_failure"] = True
    tests, limit = job["tests"], float(job["time_limit_s"])
    mode = job_mode(job)
    results = []
    scratch = tempfile.mkdtemp(prefix="run-", dir="/tmp" if isolated else None)
    os.chmod(scratch, 0o700)
    try:
        while len(results) < len(tests):
            attempt = Attempt(job, len(results), scratch, zygote)
            deadline = time.monotonic() + limit + STARTUP_GRACE_S
            test_started = time.monotonic()
            waited_before, credited = run_delay(attempt.proc.pid), 0.0
            restart = ready = False
            while len(results) < len(tests) and not restart:
                test = tests[len(results)]
                kind, frame = attempt.next_frame(deadline)
                now = time.monotonic()
                if kind == "frame" and "ready" in frame:
                    if not ready:  # the runner's first word; a program's forged copies change nothing
                        ready = True
                        deadline, test_started = min(deadline, now + limit), now
                        waited_before, credited = run_delay(attempt.proc.pid), 0.0
                    continue
                if kind == "frame" and "compile_error" in frame:
                    err = frame["compile_error"]
                    n = 1 if job["stop_at_first_failure"] else len(tests) - len(results)
                    for t in tests[len(results) : len(results) + n]:
                        results.append(dict(failure(t, "compile_error", err["type"]), exception=err["message"],
                                            traceback=err["traceback"]))
                    return {"tests": results}
                if kind == "frame" and frame.get("i") == len(results) - attempt.start:
                    results.append(result_for(test, frame, mode, now - test_started, job["memory_mb"], job["semantics"]))
                    if results[-1]["status"] == "memory_limit":
                        restart = True  # the runner's heap is suspect after a MemoryError
                    deadline, test_started = now + limit, now
                    waited_before, credited = run_delay(attempt.proc.pid), 0.0
                elif kind == "frame":
                    continue  # a forged or stale frame: ignore it
                elif kind == "timeout":
                    waited = run_delay(attempt.proc.pid) - waited_before
                    allowed = limit + (0.0 if ready else STARTUP_GRACE_S)
                    extended = min(test_started + allowed + waited, test_started + MAX_CONTENTION * allowed)
                    if waited > credited + 0.01 and extended > now:  # it waited for a CPU: not its own time
                        credited, deadline = waited, extended
                        continue
                    results.append(failure(test, "timeout", "Time Limit Exceeded", round(now - test_started, 4)))
                    restart = True
                    if sum(r["status"] == "timeout" for r in results) == MAX_TIMEOUTS and not job["stop_at_first_failure"]:
                        # each time-out waits out the whole limit; two say enough for the verdict and feedback
                        results += [failure(t, "not_run", f"not run: {MAX_TIMEOUTS} earlier tests exceeded the time limit")
                                    for t in tests[len(results):]]
                        attempt.kill()
                        return {"tests": results}
                elif kind == "flood":
                    results.append(failure(test, "output_limit", "Output Limit Exceeded"))
                    restart = True
                else:  # the runner died before answering this test
                    code = frame
                    if code == -signal.SIGKILL:  # not by us: the kernel's OOM killer
                        status, msg = "memory_limit", "killed by the sandbox's memory limit (out of memory)"
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
            kill_everything_else(spare=zygote.pids() if zygote is not None else ())
        remove_tree(scratch)
        if isolated:
            wipe("/tmp")
            wipe_ipc()


# ----------------------------------------------------------------------------- the zygote


class Program:
    """A program the zygote started: the supervisor is its parent (reparented as PID 1, or as a
    child subreaper), so it waits for it like a Popen."""

    def __init__(self, pid, stdin, stdout):
        self.pid, self.stdin, self.stdout, self.returncode = pid, stdin, stdout, None

    def wait(self, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = 0.0001
        while self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, 0 if deadline is None else os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere (kill_everything_else): it is gone
                self.returncode = -signal.SIGKILL
                break
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
            elif time.monotonic() > deadline:
                raise subprocess.TimeoutExpired("program", timeout)
            else:  # a killed program is reaped within ~0.1 ms: poll fast first
                time.sleep(pause)
                pause = min(2 * pause, 0.005)
        return self.returncode


class Zygote:
    """A warm parent for programs (`--serve` only: a container runs many programs). It imported
    the runner, the preamble's modules and numpy once; each program is a fork of it, so a program
    starts in ~2 ms instead of an interpreter start and imports (~30 ms of CPU, ~100 ms with numpy).

    It never holds a job: it receives only a program's two pipe ends and its limits, and the
    program reads its job from its stdin as a fresh runner does. It is not dumpable (a program of
    the same uid cannot ptrace it or read its memory) and is spared by kill_everything_else; a
    program that kills or stops it only costs a restart (every spawn checks it first)."""

    def __init__(self):
        self.proc, self.sock = None, None

    def pids(self):
        return (self.proc.pid,) if self.proc is not None else ()

    def _start(self):
        _prctl(PR_SET_CHILD_SUBREAPER, 1)  # the programs, orphaned by the zygote's double fork, become ours
        ours, theirs = socket.socketpair()
        self.proc = subprocess.Popen([sys.executable, "-I", os.path.abspath(__file__), "--zygote", str(theirs.fileno())],
                                     pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, cwd="/", env=PROGRAM_ENV)
        theirs.close()
        self.sock = ours
        self.sock.settimeout(5.0)

    def _healthy(self):
        if self.proc is None or self.proc.poll() is not None:
            return False
        try:
            with open(f"/proc/{self.proc.pid}/stat") as f:
                return f.read().rsplit(")", 1)[1].split()[0] not in ("T", "t", "Z")  # stopped or dead
        except (OSError, IndexError):
            return False

    def close(self):
        if self.proc is not None:
            try:
                self.proc.kill()
                self.proc.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                pass
            self.sock.close()
            self.proc = None

    def spawn(self, scratch, env, memory_mb, cpu_s):
        """A started program (Program), or None if the zygote failed (it is restarted next time)."""
        if not self._healthy():
            self.close()
            self._start()
        in_r, in_w = os.pipe()
        out_r, out_w = os.pipe()
        try:
            request = json.dumps({"cwd": scratch, "env": env, "memory_mb": memory_mb, "cpu_s": cpu_s}).encode()
            socket.send_fds(self.sock, [request], [in_r, out_w])
            reply = b""
            while not reply.endswith(b"\n"):
                chunk = self.sock.recv(64)
                if not chunk:
                    raise OSError("zygote closed its socket")
                reply += chunk
            pid = int(reply)
        except (OSError, ValueError):
            self.close()
            for fd in (in_w, out_r):
                os.close(fd)
            return None
        finally:
            os.close(in_r)
            os.close(out_w)
        return Program(pid, os.fdopen(in_w, "wb"), os.fdopen(out_r, "rb"))


def _vm_size():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) << 10
    return 0


def zygote_main(fd):
    """`--zygote FD`: serve spawn requests on the socket FD until the supervisor goes away."""
    import importlib.util
    import random

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _prctl(PR_SET_DUMPABLE, 0)
    spec = importlib.util.spec_from_file_location("runner", RUNNER)
    runner = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(runner)
    exec(compile(runner.PREAMBLE, "<preamble>", "exec"), {})  # import the preamble's modules once
    import shutil  # noqa: F401 - and those of lcb semantics' guard (subprocess: imported above)
    before = _vm_size()
    os.environ["OPENBLAS_NUM_THREADS"] = "1"  # no BLAS threads: they would not survive the fork
    try:  # LiveCodeBench programs import numpy often (~100 ms each); its ~35 MB of address space is
        import numpy  # noqa: F401  - added to each child's RLIMIT_AS, so the program's budget is unchanged
    except ImportError:
        pass
    preloaded = max(0, _vm_size() - before)
    sock = socket.socket(fileno=fd)
    while True:
        try:
            message, fds, _, _ = socket.recv_fds(sock, 1 << 16, 2)
        except OSError:
            return
        if not message or len(fds) != 2:
            return
        request = json.loads(message)
        r, w = os.pipe()
        middle = os.fork()
        if middle == 0:  # a double fork: the program is orphaned to the supervisor, which waits for it
            try:
                pid = os.fork()
                if pid == 0:
                    status = 1
                    try:
                        os.dup2(fds[0], 0)
                        os.dup2(fds[1], 1)
                        null = os.open(os.devnull, os.O_WRONLY)
                        os.dup2(null, 2)
                        os.closerange(3, 1 << 16)
                        os.chdir(request["cwd"])
                        os.environ.clear()
                        os.environ.update(request["env"])
                        _limits(request["memory_mb"], request["cpu_s"], preloaded)()
                        random.seed()  # a fresh interpreter's PRNG state, not the zygote's
                        sys.argv = [RUNNER]  # and its argv (fileinput reads files named there)
                        runner.main()
                        sys.stdout.flush()
                        status = 0
                    finally:
                        os._exit(status)
                os.write(w, f"{pid}\n".encode())
            finally:
                os._exit(0)
        os.close(w)
        for f in fds:
            os.close(f)
        reply = os.read(r, 64)
        os.close(r)
        os.waitpid(middle, 0)
        try:
            sock.sendall(reply or b"x\n")
        except OSError:
            return


# ----------------------------------------------------------------------------- entry points


def serve():
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    zygote = None if "--no-zygote" in sys.argv else Zygote()
    while True:
        header = stdin.readline()
        if not header:
            if zygote is not None:
                zygote.close()
            return
        job = json.loads(stdin.read(int(header)))
        try:
            result = run_job(job, zygote=zygote)
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
    if "--zygote" in sys.argv:
        zygote_main(int(sys.argv[sys.argv.index("--zygote") + 1]))
        sys.exit(0)
    harden()
    if "--serve" in sys.argv:
        serve()
    else:
        once(isolated="--unisolated" not in sys.argv)
