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
