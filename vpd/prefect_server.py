"""One local Prefect server per project, shared by every `vpd` process (DVC stages, CLI commands, `vpd ui`).

Without an API, Prefect starts a temporary server inside every process that runs a flow: ~15-27 s
per process, and a `dvc repro` is five processes. Instead the first process starts a server on
127.0.0.1 (a detached watcher process owns it), records it in `$PREFECT_HOME/server.json`, and
every later process finds it there and only checks its health. The UI therefore sees every run.

Lifetime: each client process holds a shared lock on `$PREFECT_HOME/server.clients` while it
runs (the kernel drops it when the process ends, even by kill -9). The watcher stops the server
once nobody has held that lock for `idle_s` (VPD_PREFECT_IDLE_S, default 900 s); `vpd server
stop` stops it at once. A server that died is noticed by the next client (its health check
fails) and replaced, under an exclusive lock so that concurrent stages start one, not several.
Setting PREFECT_API_URL yourself bypasses all of this; VPD_SHARED_PREFECT=0 goes back to Prefect's
temporary server per process (the baseline of benchmarks/orchestration.py).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

DEFAULT_IDLE_S = 900
START_TIMEOUT_S = 120
_lease = None  # this process's shared lock on the clients file (held until exit)


def home() -> Path:
    return Path(os.environ.get("PREFECT_HOME") or os.path.abspath(".prefect"))


def state_path() -> Path:
    return home() / "server.json"


def healthy(api: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{api}/health", timeout=timeout) as r:
            return r.status == 200
    except (OSError, ValueError):
        return False


def read_state() -> dict | None:
    try:
        state = json.loads(state_path().read_text())
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) and isinstance(state.get("api"), str) else None


def running_api() -> str | None:
    """The shared server's API URL if it answers, else None."""
    state = read_state()
    return state["api"] if state and healthy(state["api"]) else None


def _free_port(preferred: int | None) -> int:
    for port in ([preferred] if preferred else []) + [0]:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise RuntimeError("no free port on 127.0.0.1")


def take_lease() -> None:
    """Mark this process as a client of the shared server until it exits."""
    global _lease
    if _lease is None:
        home().mkdir(parents=True, exist_ok=True)
        _lease = open(home() / "server.clients", "a")
        fcntl.flock(_lease, fcntl.LOCK_SH)


def ensure_server(port: int | None = None, idle_s: float | None = None) -> str | None:
    """The API URL of the project's shared server, started if none answers; sets PREFECT_API_URL.
    None with VPD_SHARED_PREFECT=0 (Prefect then starts a temporary server in this process)."""
    if os.environ.get("PREFECT_API_URL"):
        return os.environ["PREFECT_API_URL"]
    if os.environ.get("VPD_SHARED_PREFECT") == "0":
        return None
    take_lease()  # before any start: a fresh server must not see an idle project and stop
    api = running_api()
    if api is None:
        with open(home() / "server.lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one starter at a time; the others then find its server
            api = running_api() or _start(port, idle_s)
    os.environ["PREFECT_API_URL"] = api
    return api


def _start(port: int | None, idle_s: float | None) -> str:
    port = _free_port(port)
    idle = idle_s if idle_s is not None else float(os.environ.get("VPD_PREFECT_IDLE_S", DEFAULT_IDLE_S))
    log = open(home() / "server.log", "ab")
    subprocess.Popen([sys.executable, "-m", "vpd.prefect_server", "watch", "--port", str(port), "--idle", str(idle)],
                     stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, close_fds=True,
                     env={k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"})
    api = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        state = read_state()
        if state and state["api"] == api and healthy(api):
            return api
        time.sleep(0.25)
    raise RuntimeError(f"the shared Prefect server did not answer on {api} in {START_TIMEOUT_S} s (see {home() / 'server.log'})")


def watch(port: int, idle_s: float) -> int:
    """The watcher: runs `prefect server start` and stops it when no client has held a lease for idle_s."""
    api = f"http://127.0.0.1:{port}/api"
    server = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                               "--port", str(port)], stdin=subprocess.DEVNULL)
    stopping = False

    def stop(signum, frame):
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        while not healthy(api) and server.poll() is None and not stopping:
            time.sleep(0.25)
        if server.poll() is not None or stopping:
            return 1
        tmp = state_path().with_suffix(".tmp")
        tmp.write_text(json.dumps({"api": api, "pid": os.getpid(), "server_pid": server.pid, "port": port}))
        tmp.replace(state_path())
        idle_since = None
        with open(home() / "server.clients", "a") as clients:
            while not stopping and server.poll() is None:
                try:
                    fcntl.flock(clients, fcntl.LOCK_EX | fcntl.LOCK_NB)  # succeeds only when no client holds one
                    fcntl.flock(clients, fcntl.LOCK_UN)
                    idle_since = idle_since or time.monotonic()
                    if time.monotonic() - idle_since >= idle_s:
                        break
                except BlockingIOError:
                    idle_since = None
                time.sleep(min(2.0, max(0.2, idle_s / 4)))
        return 0
    finally:
        state = read_state()
        if state and state.get("pid") == os.getpid():
            state_path().unlink(missing_ok=True)
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


def stop_server(timeout: float = 30) -> bool:
    """Stop the shared server (its watcher); False when none was running."""
    state = read_state()
    if not state or not isinstance(state.get("pid"), int):
        return False
    pid = state["pid"]
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        state_path().unlink(missing_ok=True)
        return False
    if b"vpd.prefect_server" not in cmdline:  # a recycled pid: not ours to signal
        state_path().unlink(missing_ok=True)
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        time.sleep(0.1)
    return True


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m vpd.prefect_server")
    sub = ap.add_subparsers(dest="command", required=True)
    w = sub.add_parser("watch")
    w.add_argument("--port", type=int, required=True)
    w.add_argument("--idle", type=float, default=DEFAULT_IDLE_S)
    args = ap.parse_args(argv)
    return watch(args.port, args.idle)


if __name__ == "__main__":
    sys.exit(main())
