"""Docker backend: a pool of warm, locked-down containers, each serving many programs.

A fresh `docker run` costs ~0.3 s; instead each container runs the supervisor as
PID 1 (`supervisor.py --serve`) and receives jobs over its attached stdin (the pool's
rules: sandboxes.base.WarmPool).

Several engines (`hosts`: unix://, tcp://, ssh:// URLs, e.g. machines without GPUs): the pool's
containers are spread over them; the image is built once, on the first, and copied to the others.
An engine that fails (a container dies with it, it stops answering) is set aside for a while and
the program is retried on a container of another engine; replacements go to the engines that
answer, so the pool keeps its size while one of them is down.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import struct
import time

from .base import WarmPool, parse_result
from .image_build import ensure_image, ship_image
from .types import ExecResult, Job, SandboxError

log = logging.getLogger(__name__)
LABEL = "vpd-sandbox"
ENGINE_RETRY_S = 30.0  # a failed engine gets no new containers for this long (then it is asked again)


class _Engine:
    """One Docker engine of the pool, and whether it is to be avoided for now."""

    def __init__(self, client, url: str):
        self.client, self.url = client, url
        self.down_until = 0.0
        self.containers = 0  # live containers on it (balancing)

    @property
    def up(self) -> bool:
        return time.monotonic() >= self.down_until

    def mark_down(self) -> None:
        self.down_until = time.monotonic() + ENGINE_RETRY_S


class _Container:
    def __init__(self, engine: _Engine, image: str, memory_mb: int, pids: int, cpus: float, tmp_mb: int, shm_mb: int,
                 zygote: bool = True):
        self.engine = engine
        client = self.client = engine.client
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


def docker_client(url: str | None = None):
    """A client of a running engine (`url`, else DOCKER_HOST or the default socket), or a SandboxError
    saying what to do."""
    try:
        import docker

        client = docker.DockerClient(base_url=url, timeout=60) if url else docker.from_env(timeout=60)
        client.ping()
    except Exception as e:  # noqa: BLE001 - docker raises many types for "no engine"
        where = url or "DOCKER_HOST / the default socket"
        raise SandboxError(f"docker: no engine reachable at {where} ({e}); start one (scripts/dockerd.sh) or use bwrap") from None
    return client


class DockerSandbox(WarmPool):
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
        hosts: list[str] | None = None,
    ):
        super().__init__(concurrency, retries, recycle_after)
        self.engines = [_Engine(client or docker_client(), "default")] if not hosts else self._reachable(hosts)
        self.client = self.engines[0].client
        self.image = image or ensure_image(self.client, base_image)
        for engine in self.engines[1:]:
            ship_image(self.client, engine.client, self.image)
        # zygote=False: every program starts a fresh interpreter (benchmarks/sandbox.py's `docker-nozygote`)
        self.spec = dict(memory_mb=memory_mb, pids=pids, cpus=cpus, tmp_mb=tmp_mb, shm_mb=shm_mb, zygote=zygote)
        for engine in self.engines:
            atexit.register(_sweep, engine.client)
        self._fill()

    @staticmethod
    def _reachable(hosts: list[str]) -> list[_Engine]:
        engines, errors = [], []
        for url in hosts:
            try:
                engines.append(_Engine(docker_client(url), url))
            except SandboxError as e:
                errors.append(str(e))
        if not engines:
            raise SandboxError("; ".join(errors))
        for e in errors:
            log.warning("%s; the pool uses the other engines", e)
        return engines

    def _pick(self) -> list[_Engine]:
        """Engines to try for a new container: those not set aside, least loaded first."""
        with self.lock:
            up = sorted((e for e in self.engines if e.up), key=lambda e: e.containers)
            return up or sorted(self.engines, key=lambda e: e.down_until)  # all down: try the one back soonest

    def _new(self) -> _Container:
        last = None
        for engine in self._pick():
            with self.lock:
                engine.containers += 1
            try:
                return _Container(engine, self.image, **self.spec)
            except Exception as e:  # noqa: BLE001
                last = e
                with self.lock:
                    engine.containers -= 1
                if len(self.engines) > 1:
                    log.warning("docker: engine %s cannot start a container (%s); trying another", engine.url, e)
                engine.mark_down()
        raise SandboxError(f"docker: cannot start a sandbox container: {last}") from None

    def _usable(self, container: _Container) -> bool:
        return container.engine.up

    def _failed(self, container: _Container) -> None:
        if len(self.engines) > 1 and not _answers(container.engine.client):
            container.engine.mark_down()  # its engine is gone: the retry goes to another

    def _discard(self, container: _Container) -> None:
        with self.lock:
            container.engine.containers -= 1
        super()._discard(container)


def _answers(client) -> bool:
    try:
        client.ping()
        return True
    except Exception:  # noqa: BLE001
        return False


def _sweep(client) -> None:
    """Remove every container this process started that is still there (a crash, a missing close())."""
    try:
        for c in client.containers.list(all=True, filters={"label": f"{LABEL}={os.getpid()}"}):
            c.remove(force=True)
    except Exception:  # noqa: BLE001 - best effort at interpreter exit
        pass
