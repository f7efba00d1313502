"""Infrastructure failures are retried or raised, never scored; the unsafe mode needs a flag."""

import logging

import pytest

from sandboxes import Job, SandboxError, make_sandbox

GOOD = Job(code="print(int(input()) * 2)", tests=[{"input": "21", "output": "42"}])


def test_killed_containers_are_replaced_and_the_job_retried():
    with make_sandbox("docker", concurrency=1) as sb:
        assert sb.run(GOOD).passed
        victim = sb.idle.queue[0].container
        victim.kill()  # the container dies between two programs
        result = sb.run(GOOD)
        assert result.passed  # retried on a fresh container, not reported as a failure
        assert sb.idle.queue[0].container.id != victim.id


def test_unreachable_engine_is_an_infrastructure_error(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-such.sock")
    with pytest.raises(SandboxError, match="no engine reachable"):
        make_sandbox("docker")


def test_persistent_failure_raises_instead_of_scoring():
    with make_sandbox("docker", concurrency=1, retries=1) as sb:
        sb.spec["memory_mb"] = 6  # new containers cannot even start the supervisor
        for c in list(sb.idle.queue):
            c.container.kill()
        with pytest.raises(SandboxError, match="docker"):
            sb.run(GOOD)


def test_rlimit_mode_needs_an_explicit_flag(caplog):
    with pytest.raises(SandboxError, match="not isolation"):
        make_sandbox("rlimit")
    with caplog.at_level(logging.WARNING):
        sb = make_sandbox("rlimit", allow_unsafe=True)
    assert "WITHOUT isolation" in caplog.text
    assert sb.run(GOOD).passed
    assert [t.status for t in sb.run(Job(code="while True: pass", tests=[{"input": "", "output": ""}], time_limit_s=1)).tests] == ["timeout"]


def test_unknown_backend():
    with pytest.raises(ValueError, match="unknown sandbox backend 'k8s'"):
        make_sandbox("k8s")


# ----------------------------------------------------------------------------- several Docker engines


@pytest.fixture
def second_engine():
    """A second private dockerd on this machine (its own data root and socket), stopped at the end.
    Its state lives in a short /tmp path: containerd's sockets must fit in 104 bytes."""
    import shutil
    import subprocess
    import tempfile
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts" / "dockerd.sh"
    state = tempfile.mkdtemp(prefix="vpd-d2-", dir="/tmp")
    url = subprocess.run([str(script), "start", state], check=True, capture_output=True, text=True).stdout.strip()
    yield url, lambda: subprocess.run([str(script), "stop", state], check=True)
    subprocess.run([str(script), "stop", state], check=True)
    # an engine stopped mid-batch leaves its containers' shims and mounts behind: ours, under `state`
    for pid in subprocess.run(["pgrep", "-f", state], capture_output=True, text=True).stdout.split():
        subprocess.run(["kill", "-9", pid])
    mounts = [line.split()[1] for line in Path("/proc/mounts").read_text().splitlines() if line.split()[1].startswith(state)]
    for mount in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", "-l", mount])
    shutil.rmtree(state, ignore_errors=True)


def test_an_engine_that_dies_mid_batch_has_its_programs_retried_on_the_other(second_engine):
    import os
    import threading
    import time

    url, stop = second_engine
    first = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    slow = Job(code="import time\ntime.sleep(0.2)\nprint(int(input()) * 2)", tests=[{"input": "21", "output": "42"}])
    with make_sandbox("docker", concurrency=4, hosts=[first, url]) as sb:  # the image is copied to the new engine
        assert sorted(c.engine.url for c in sb.idle.queue) == sorted([first, first, url, url])
        assert all(r.passed for r in sb.run_batch([GOOD] * 8))
        stopper = threading.Timer(1.0, stop)
        stopper.start()
        t0 = time.monotonic()
        results = sb.run_batch([slow] * 60)  # ~3 s on 4 containers: the second engine dies in the middle
        stopper.join()
        assert time.monotonic() - t0 > 1.0
        assert all(r.passed for r in results)  # retried elsewhere, never scored as a failure
        assert sb.run_batch([GOOD] * 4)[0].passed
        live = [c.engine.url for c in sb.idle.queue]
        assert live and set(live) == {first}  # replacements went to the engine that answers
    with pytest.raises(SandboxError, match="no engine reachable"):
        make_sandbox("docker", hosts=[url])  # the stopped engine alone: an infrastructure error
