"""Bubblewrap backend (machines without Docker), and a plain-rlimit mode that is NOT isolation."""

from __future__ import annotations

import json
import logging
import os
import select
import shutil
import subprocess
import sys
import time

from .base import RUNTIME_DIR, Sandbox, WarmPool, host_timeout, parse_result
from .seccomp import filter_program
from .types import ExecResult, Job, SandboxError

log = logging.getLogger(__name__)


def bwrap_supports(flag: str) -> bool:
    try:
        out = subprocess.run(["bwrap", "--help"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return flag in out.stdout + out.stderr


class _WarmBwrap:
    """One long-lived bubblewrap running `supervisor.py --serve` (the Docker container's framing on
    its stdin and stdout pipes): many programs, one interpreter start each at most (the zygote forks them)."""

    def __init__(self, cmd: list[str], seccomp: bytes):
        read, write = os.pipe()  # bwrap reads the filter from a descriptor, once per sandbox
        try:
            os.write(write, seccomp)
            os.close(write)
            self.proc = subprocess.Popen(cmd[:1] + ["--seccomp", str(read)] + cmd[1:], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env={}, pass_fds=(read,))
        except OSError as e:
            raise SandboxError(f"bwrap: cannot start: {e}") from None
        finally:
            os.close(read)
        self.buf = b""
        self.jobs = 0

    def execute(self, job: Job, timeout: float) -> ExecResult:
        payload = json.dumps(job.to_wire()).encode()
        self.proc.stdin.write(b"%d\n" % len(payload) + payload)
        self.proc.stdin.flush()
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while b"\n" not in self.buf:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                raise SandboxError(f"bwrap: supervisor did not answer in {timeout:.0f} s")
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                raise ConnectionError("the sandbox closed its output (it exited)")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        self.jobs += 1
        return parse_result(line.decode("utf-8", "replace"), "bwrap")

    def destroy(self) -> None:
        self.proc.kill()  # bubblewrap's PID 1 is the supervisor: the namespace and all in it go with it
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                stream.close()
            except OSError:
                pass


class BwrapSandbox(WarmPool):
    """Bubblewrap sandboxes: new user, pid, net, ipc, uts, cgroup namespaces, the supervisor as PID 1
    (so the program cannot signal it; bubblewrap installs no reaper); only /usr, /etc/alternatives
    and the supervisor visible (read-only); read-only /dev; empty environment; size-capped /tmp and
    /dev/shm; uid 1000; a seccomp filter (sandboxes/seccomp.py). Memory, CPU, file size and process
    count are rlimits set by the supervisor per program.

    warm (default): a pool of long-lived sandboxes, each serving many programs as a Docker container
    does (`supervisor.py --serve` with its zygote; everything a program left behind is killed and
    wiped after it; sandboxes.base.WarmPool's replacement rules). warm=False: one bubblewrap per
    program (~6 ms more, two interpreter starts), torn down after it."""

    backend = "bwrap"

    def __init__(self, python: str = "/usr/bin/python3", tmp_size_mb: int = 64, shm_size_mb: int = 64,
                 concurrency: int | None = None, warm: bool = True, retries: int = 2, recycle_after: int = 500):
        super().__init__(concurrency, retries, recycle_after)
        if shutil.which("bwrap") is None:
            raise SandboxError("bwrap: bubblewrap is not installed (Debian package 'bubblewrap')")
        self.python = python
        if bwrap_supports("--size"):
            tmp = ["--size", str(tmp_size_mb << 20), "--tmpfs", "/tmp"]
            shm = ["--size", str(shm_size_mb << 20), "--tmpfs", "/dev/shm"]
        else:
            log.warning("bwrap without --size: /tmp is capped by RLIMIT_FSIZE per file only, and /dev/shm stays "
                        "read-only (no POSIX shared memory for programs)")
            tmp, shm = ["--tmpfs", "/tmp"], []
        mqueue = ["--mqueue", "/dev/mqueue"] if bwrap_supports("--mqueue") else []
        if warm and not mqueue:
            raise SandboxError("bwrap: this bubblewrap cannot mount /dev/mqueue (--mqueue), which a warm sandbox needs "
                               "to remove a program's message queues; use warm=False")
        self.prefix = [
            "bwrap", "--unshare-all", "--as-pid-1", "--die-with-parent", "--new-session",
            "--ro-bind", "/usr", "/usr",
            "--symlink", "usr/lib", "/lib", "--symlink", "usr/lib64", "/lib64",
            "--symlink", "usr/bin", "/bin", "--symlink", "usr/sbin", "/sbin",
            "--ro-bind", str(RUNTIME_DIR), "/opt/sandbox",
            # Debian resolves shared libraries such as numpy's BLAS through /etc/alternatives
            # symlinks (names of other /usr paths, nothing else): the rest of /etc stays hidden
            "--ro-bind-try", "/etc/alternatives", "/etc/alternatives",
            # /dev is a tmpfs that uid 1000 owns: read-only, or files there would hold host memory
            # without limit; /dev/shm (multiprocessing's semaphores) a capped tmpfs of its own
            # POSIX message queues live in the IPC namespace: mounted, so that the supervisor can list and
            # unlink what a program left there before the next one runs (a warm sandbox serves many)
            "--proc", "/proc", "--dev", "/dev", *shm, *mqueue, "--remount-ro", "/dev", *tmp,
            # the root is bwrap's own tmpfs: read-only once the mount points exist (a program must
            # not fill host memory with files in /etc or /)
            "--remount-ro", "/",
            "--uid", "1000", "--gid", "1000", "--hostname", "sandbox",
            "--clearenv", "--setenv", "PATH", "/usr/bin:/bin", "--chdir", "/tmp",
        ]
        self.command = [self.python, "-I", "/opt/sandbox/supervisor.py", "--serve" if warm else "--once"]
        self.warm = warm
        try:
            self.seccomp = filter_program()
        except ValueError as e:
            raise SandboxError(f"bwrap: {e}") from None
        if warm:
            self._fill()

    def _new(self) -> _WarmBwrap:
        return _WarmBwrap([*self.prefix, *self.command], self.seccomp)

    def run(self, job: Job) -> ExecResult:
        if self.warm:
            return super().run(job)
        read, write = os.pipe()  # bwrap reads the filter from a descriptor, once per sandbox
        try:
            os.write(write, self.seccomp)
            os.close(write)
            return run_once([*self.prefix, "--seccomp", str(read), *self.command], job, self.backend, pass_fds=(read,))
        finally:
            os.close(read)


def run_once(cmd: list[str], job: Job, backend: str, pass_fds: tuple[int, ...] = ()) -> ExecResult:
    """One supervisor process for one program (`--once`)."""
    try:
        proc = subprocess.run(cmd, input=json.dumps(job.to_wire()), capture_output=True, text=True,
                              timeout=host_timeout(job), env={}, pass_fds=pass_fds)
    except subprocess.TimeoutExpired:
        raise SandboxError(f"{backend}: supervisor did not answer in {host_timeout(job):.0f} s") from None
    except OSError as e:
        raise SandboxError(f"{backend}: cannot start: {e}") from None
    if proc.returncode != 0 and "RESULT " not in proc.stdout:
        raise SandboxError(f"{backend}: exited {proc.returncode}: {proc.stderr[-500:]}")
    return parse_result(proc.stdout, backend)


class RlimitSandbox(Sandbox):
    """Plain rlimits and a scratch directory: NOT isolation (the program sees the network,
    the filesystem and processes of this user). Only with allow_unsafe=True."""

    backend = "rlimit"

    def __init__(self, allow_unsafe: bool = False, concurrency: int | None = None):
        Sandbox.__init__(self, concurrency)
        if not allow_unsafe:
            raise SandboxError("rlimit: plain rlimits are not isolation; pass allow_unsafe=True to use them")
        log.warning("rlimit sandbox: programs run WITHOUT isolation (network, files and processes are reachable)")
        self.prefix = [sys.executable, "-I", str(RUNTIME_DIR / "supervisor.py"), "--once", "--unisolated"]

    def run(self, job: Job) -> ExecResult:
        return run_once(self.prefix, job, self.backend)
