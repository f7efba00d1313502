"""Docker backend: a pool of warm, locked-down containers, each serving many programs.

A fresh `docker run` costs ~0.3 s; instead each container runs the supervisor as
PID 1 (`supervisor.py --serve`) and receives jobs over its attached stdin. Every
program runs in its own process group and scratch directory and everything it
left behind is killed and wiped after it. A container that saw a timeout, an
out-of-memory kill, an output flood or anything odd is replaced. Infrastructure
failures (daemon gone, container died, no answer) are retried on a fresh
container and, if they persist, raised as SandboxError — never scored.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import queue
import struct
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from .base import Sandbox, host_timeout, parse_result
from .image_build import ensure_image
from .types import ExecResult, Job, SandboxError

log = logging.getLogger(__name__)
LABEL = "vpd-sandbox"
REPLACE_AFTER_STATUSES = {"timeout", "memory_limit", "output_limit"}


class _Container:
    def __init__(self, client, image: str, memory_mb: int, pids: int, cpus: float, tmp_mb: int, shm_mb: int,
                 zygote: bool = True):
        self.client = client
        self.container = client.containers.run(
            image,
            command=[] if zygote else ["--no-zygote"],  # appended to the image's `supervisor.py --serve`
            detach=True,
            stdin_open=True,
            tty=False,
            network_mode="none",
            read_only=True,
            tmpfs={"/tmp": f"size={tmp_mb}m,mode=1777,noexec,nosuid,nodev"},
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            user="1000:1000",
            mem_limit=f"{memory_mb}m",
            memswap_limit=f"{memory_mb}m",
            pids_limit=pids,
            nano_cpus=int(cpus * 1e9),
            environment={},  # nothing from the host environment reaches the sandbox
            ipc_mode="private",  # the container's own IPC objects, wiped by the supervisor after every program
            shm_size=f"{shm_mb}m",
            # System V shared memory lives outside any address space (RLIMIT_AS never sees it) and
            # outlives its process: capped at a quarter of the container, so a program that fills it
            # cannot leave the supervisor without memory (the memory cgroup would then kill it)
            sysctls={"kernel.shmmax": str(sysv_bytes := (memory_mb << 20) // 4), "kernel.shmall": str(sysv_bytes // 4096)},
            labels={LABEL: str(os.getpid())},  # the owner: swept at exit if close() was never called
        )
        self.sock = client.api.attach_socket(self.container.id, params={"stdin": 1, "stdout": 1, "stderr": 1, "stream": 1})
        self.raw = self.sock._sock
        self.buf = b""
        self.jobs = 0

    def execute(self, job: Job, timeout: float) -> ExecResult:
        payload = json.dumps(job.to_wire()).encode()
        self.raw.settimeout(timeout)
        self.raw.sendall(b"%d\n" % len(payload) + payload)
        deadline = time.monotonic() + timeout
        out = b""
        while b"\n" not in out:
            self.raw.settimeout(max(0.01, deadline - time.monotonic()))
            stream, data = self._frame()
            if stream == 1:
                out += data
        self.jobs += 1
        return parse_result(out.decode("utf-8", "replace"), "docker")

    def _frame(self) -> tuple[int, bytes]:
        """One multiplexed attach frame: 8-byte header (stream, 0, 0, 0, size BE) + payload."""
        header = self._read(8)
        stream, size = header[0], struct.unpack(">I", header[4:])[0]
        return stream, self._read(size)

    def _read(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.raw.recv(max(65536, n - len(self.buf)))
            if not chunk:
                raise ConnectionError("container closed its output (it exited)")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def destroy(self) -> None:
        try:
            self.sock.close()
        except Exception:  # noqa: BLE001
            pass
        try:
            self.container.remove(force=True)
        except Exception as e:  # noqa: BLE001 - best effort; the label lets close() sweep leftovers
            log.debug("removing %s: %s", self.container.short_id, e)


def docker_client():
    """A client of a running engine (DOCKER_HOST or the default socket), or a SandboxError saying what to do."""
    try:
        import docker

        client = docker.from_env(timeout=60)
        client.ping()
    except Exception as e:  # noqa: BLE001 - docker raises many types for "no engine"
        raise SandboxError(f"docker: no engine reachable ({e}); start one (scripts/dockerd.sh) or use bwrap") from None
    return client


class DockerSandbox(Sandbox):
    backend = "docker"

    def __init__(
        self,
        concurrency: int | None = None,
        image: str | None = None,
        base_image: str | None = None,
        memory_mb: int = 1024,
        pids: int = 128,
        cpus: float = 1.0,
        tmp_mb: int = 64,
        shm_mb: int = 64,
        retries: int = 2,
        recycle_after: int = 500,
        zygote: bool = True,
        client=None,
    ):
        super().__init__(concurrency)
        self.client = client or docker_client()
        self.image = image or ensure_image(self.client, base_image)
        # zygote=False: every program starts a fresh interpreter (benchmarks/sandbox.py's `docker-nozygote`)
        self.spec = dict(memory_mb=memory_mb, pids=pids, cpus=cpus, tmp_mb=tmp_mb, shm_mb=shm_mb, zygote=zygote)
        self.retries = retries
        self.recycle_after = recycle_after
        self.idle: queue.Queue[_Container] = queue.Queue()
        self.lock = threading.Lock()
        self.closed = False
        self.background: list[threading.Thread] = []
        atexit.register(_sweep, self.client)
        with ThreadPoolExecutor(max_workers=min(8, self.concurrency)) as pool:  # ~0.3 s each: start them together
            for container in pool.map(lambda _: self._new(), range(self.concurrency)):
                self.idle.put(container)

    def _new(self) -> _Container:
        try:
            return _Container(self.client, self.image, **self.spec)
        except Exception as e:  # noqa: BLE001
            raise SandboxError(f"docker: cannot start a sandbox container: {e}") from None

    def run(self, job: Job) -> ExecResult:
        if self.closed:
            raise SandboxError("docker: sandbox is closed")
        try:
            container: _Container | None = self.idle.get(timeout=600)
        except queue.Empty:
            raise SandboxError("docker: no sandbox container became free in 600 s") from None
        try:
            last: Exception | None = None
            for attempt in range(self.retries + 1):
                if container is None:
                    container = self._new()
                try:
                    result = container.execute(job, host_timeout(job))
                except (OSError, ConnectionError, SandboxError, ValueError) as e:
                    last = e
                    log.warning("docker: attempt %d failed (%s); replacing the container", attempt + 1, e)
                    self._discard(container)
                    container = None
                    continue
                if self._odd(result) or container.jobs >= self.recycle_after:
                    self._discard(container)
                    container = None
                return result
            raise SandboxError(f"docker: infrastructure failure after {self.retries + 1} attempts: {last}")
        finally:
            self._return(container)

    def _return(self, container: _Container | None) -> None:
        if container is not None:
            self.idle.put(container)
        elif not self.closed:  # a replacement starts in the background (~0.2 s): the caller's result is ready now
            self._in_background(self._replace)

    def _replace(self) -> None:
        try:
            container = self._new()
        except SandboxError as e:
            log.error("%s; the pool shrinks by one", e)
            return
        if self.closed:
            container.destroy()
        else:
            self.idle.put(container)

    @staticmethod
    def _odd(result: ExecResult) -> bool:
        return any(t.status in REPLACE_AFTER_STATUSES for t in result.tests)

    def _discard(self, container: _Container) -> None:
        self._in_background(container.destroy)  # removal takes ~0.2 s; don't wait

    def _in_background(self, work) -> None:
        """Start `work` in a thread that close() waits for."""
        t = threading.Thread(target=work, daemon=True)
        t.start()
        with self.lock:
            self.background = [r for r in self.background if r.is_alive()] + [t]

    def close(self) -> None:
        self.closed = True
        for t in list(self.background):  # removals, and replacements that may still put a container back
            t.join(timeout=30)
        while True:
            try:
                self.idle.get_nowait().destroy()
            except queue.Empty:
                break


def _sweep(client) -> None:
    """Remove every container this process started that is still there (a crash, a missing close())."""
    try:
        for c in client.containers.list(all=True, filters={"label": f"{LABEL}={os.getpid()}"}):
            c.remove(force=True)
    except Exception:  # noqa: BLE001 - best effort at interpreter exit
        pass
