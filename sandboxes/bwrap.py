"""Bubblewrap backend (machines without Docker), and a plain-rlimit mode that is NOT isolation."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys

from .base import RUNTIME_DIR, Sandbox, host_timeout, parse_result
from .seccomp import filter_program
from .types import ExecResult, Job, SandboxError

log = logging.getLogger(__name__)


def bwrap_supports(flag: str) -> bool:
    try:
        out = subprocess.run(["bwrap", "--help"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return flag in out.stdout + out.stderr


class BwrapSandbox(Sandbox):
    """One `bwrap` per program (~6 ms): new user, pid, net, ipc, uts, cgroup namespaces, the
    supervisor as PID 1 (so the program cannot signal it; bubblewrap installs no reaper); only
    /usr, /etc/alternatives and the supervisor visible (read-only); read-only /dev; empty environment; fresh
    size-capped /tmp and /dev/shm; uid 1000; a seccomp filter (sandboxes/seccomp.py).
    Memory, CPU, file size and process count are rlimits set by the supervisor per program."""

    backend = "bwrap"

    def __init__(self, python: str = "/usr/bin/python3", tmp_size_mb: int = 64, shm_size_mb: int = 64,
                 concurrency: int | None = None):
        super().__init__(concurrency)
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
            "--proc", "/proc", "--dev", "/dev", *shm, "--remount-ro", "/dev", *tmp,
            # the root is bwrap's own tmpfs: read-only once the mount points exist (a program must
            # not fill host memory with files in /etc or /)
            "--remount-ro", "/",
            "--uid", "1000", "--gid", "1000", "--hostname", "sandbox",
            "--clearenv", "--setenv", "PATH", "/usr/bin:/bin", "--chdir", "/tmp",
        ]
        self.command = [self.python, "-I", "/opt/sandbox/supervisor.py", "--once"]
        try:
            self.seccomp = filter_program()
        except ValueError as e:
            raise SandboxError(f"bwrap: {e}") from None

    def run(self, job: Job) -> ExecResult:
        read, write = os.pipe()  # bwrap reads the filter from a descriptor, once per sandbox
        try:
            os.write(write, self.seccomp)
            os.close(write)
            return self._run([*self.prefix, "--seccomp", str(read), *self.command], job, pass_fds=(read,))
        finally:
            os.close(read)

    def _run(self, cmd: list[str], job: Job, pass_fds: tuple[int, ...] = ()) -> ExecResult:
        try:
            proc = subprocess.run(cmd, input=json.dumps(job.to_wire()), capture_output=True, text=True,
                                  timeout=host_timeout(job), env={}, pass_fds=pass_fds)
        except subprocess.TimeoutExpired:
            raise SandboxError(f"{self.backend}: supervisor did not answer in {host_timeout(job):.0f} s") from None
        except OSError as e:
            raise SandboxError(f"{self.backend}: cannot start: {e}") from None
        if proc.returncode != 0 and "RESULT " not in proc.stdout:
            raise SandboxError(f"{self.backend}: exited {proc.returncode}: {proc.stderr[-500:]}")
        return parse_result(proc.stdout, self.backend)


class RlimitSandbox(BwrapSandbox):
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
        return self._run(self.prefix, job)
