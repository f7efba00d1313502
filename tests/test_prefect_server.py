"""The project's shared Prefect server: started by the first flow process, reused by the next ones
(whose runs the same API shows), replaced when it died, one for concurrent starters, stopped when
idle or by `vpd server stop`. Real `prefect server start` processes on loopback."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import write_tiny_params


def vpd(cwd, *args, idle="60", wait=True, **extra_env):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update(VPD_PREFECT_IDLE_S=idle, HF_HUB_OFFLINE="1", **extra_env)
    cmd = [sys.executable, "-m", "vpd.cli", *args]
    if not wait:
        return subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    r = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def state(project: Path) -> dict | None:
    path = project / ".prefect" / "server.json"
    return json.loads(path.read_text()) if path.exists() else None


def flow_runs(api: str) -> list[str]:
    req = urllib.request.Request(f"{api}/flow_runs/filter", data=b"{}", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return [run["name"] for run in json.loads(r.read())]


def alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]


@pytest.fixture
def project(tiny_dir, tmp_path):
    write_tiny_params(tiny_dir, tmp_path)
    yield tmp_path
    vpd(tmp_path, "server", "stop")


def test_flow_processes_share_one_server_that_sees_every_run(project):
    assert json.loads(vpd(project, "server", "status").stdout) == {"running": False}
    vpd(project, "prepare", "--params", "params.yaml")
    first = state(project)
    assert first is not None and alive(first["pid"]) and alive(first["server_pid"])
    vpd(project, "prepare", "--params", "params.yaml", "--set", "seed=4")
    assert state(project) == first  # the second process found it: no new server
    assert len(flow_runs(first["api"])) == 2
    assert json.loads(vpd(project, "server", "status").stdout) == {"running": True, **first}
    assert json.loads(vpd(project, "server", "stop").stdout) == {"stopped": True}
    assert state(project) is None and not alive(first["pid"]) and not alive(first["server_pid"])
    assert json.loads(vpd(project, "server", "stop").stdout) == {"stopped": False}


def test_a_dead_server_is_replaced_and_concurrent_starters_get_one(project):
    starters = [vpd(project, "server", "start", wait=False) for _ in range(3)]
    outs = [json.loads(p.communicate(timeout=180)[0]) for p in starters]
    assert len({o["api"] for o in outs}) == 1 and len({o["pid"] for o in outs}) == 1
    dead = state(project)
    os.kill(dead["server_pid"], signal.SIGKILL)
    os.kill(dead["pid"], signal.SIGKILL)
    time.sleep(0.5)
    vpd(project, "prepare", "--params", "params.yaml")
    fresh = state(project)
    assert fresh["pid"] != dead["pid"] and alive(fresh["server_pid"])


def test_the_server_stops_when_no_process_has_used_it_for_the_idle_time(project):
    vpd(project, "prepare", "--params", "params.yaml", idle="3")
    s = state(project)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and (alive(s["pid"]) or alive(s["server_pid"])):
        time.sleep(0.5)
    assert not alive(s["pid"]) and not alive(s["server_pid"]) and state(project) is None


def test_short_flows_run_without_a_heartbeat_thread_and_long_ones_keep_it(project):
    """prepare and report (seconds of work) skip the heartbeat thread, whose join costs up to 1 s
    per stage; evaluate and train (minutes to hours) keep theirs, so crashed runs can be detected."""
    started = "Started flow run heartbeat context"
    debug = {"PREFECT_LOGGING_LEVEL": "DEBUG"}
    short = vpd(project, "prepare", "--params", "params.yaml", "--verbose", **debug)
    assert "Finished in state Completed" in short.stderr and started not in short.stderr
    long = vpd(project, "evaluate", "--params", "params.yaml", "--checkpoint", "base", "--verbose", **debug)
    assert started in long.stderr
