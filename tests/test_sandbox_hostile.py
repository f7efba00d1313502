"""Hostile programs on every backend: each gets a correct non-pass verdict (or a correct verdict with
no effect outside), the host and the next program are unaffected, and no process survives the run."""

import os
import subprocess
import time

import pytest

from sandboxes import Job

SECRET = "vpd-host-secret-7f3a"
MARKER = "4242.5"  # sleep duration used as a process marker visible in host `ps`


@pytest.fixture(scope="module", autouse=True)
def host_secrets(tmp_path_factory):
    """A secret in the environment of the calling process and in a host file."""
    path = tmp_path_factory.mktemp("host") / "secret.txt"
    path.write_text(SECRET)
    os.environ["VPD_TEST_SECRET"] = SECRET
    yield path
    os.environ.pop("VPD_TEST_SECRET", None)


def survivors() -> list[str]:
    out = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if "runner.py" in line or f"sleep {MARKER}" in line]


def wait_no_survivors(timeout=5.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while (left := survivors()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


HOSTILE = {
    # name: (code, expected statuses accepted)
    "network_connect": ("import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=2)\nprint('connected')", {"runtime_error"}),
    "dns": ("import socket\nprint(socket.getaddrinfo('pypi.org', 443))", {"runtime_error"}),
    "write_outside_scratch": ("open('/etc/vpd_pwned', 'w').write('x')\nprint('ok')", {"runtime_error"}),
    "write_to_root": ("open('/vpd_pwned', 'w').write('x')\nprint('ok')", {"runtime_error"}),
    "write_to_etc_alternatives": ("open('/etc/alternatives/vpd_pwned', 'w').write('x')\nprint('ok')", {"runtime_error"}),
    "overwrite_supervisor": ("open('/opt/sandbox/supervisor.py', 'a').write('#')\nprint('ok')", {"runtime_error"}),
    "read_host_file": ("import glob\nfor p in glob.glob('/tmp/**/secret.txt', recursive=True) + glob.glob('/root/**/secret.txt', recursive=True):\n    print(open(p).read())\nprint('done')", {"wrong_answer"}),
    "read_environment": ("import os\nprint(dict(os.environ))", {"wrong_answer"}),
    "read_supervisor_memory": ("print(open('/proc/1/environ').read())", {"runtime_error"}),
    "supervisor_stdout": ("open('/proc/1/fd/1', 'w').write('RESULT {\"tests\": []}\\n')\nprint('forged')", {"runtime_error"}),
    "fork_bomb": ("import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass", {"timeout", "runtime_error", "memory_limit"}),
    "thread_bomb": ("import threading, time\nts = [threading.Thread(target=time.sleep, args=(60,)) for _ in range(5000)]\nfor t in ts:\n    t.start()\nprint('ok')", {"runtime_error", "memory_limit", "timeout"}),
    "memory_bomb": ("x = []\nwhile True:\n    x.append(bytearray(50 << 20))", {"memory_limit"}),
    "cpu_spin": ("while True:\n    pass", {"timeout"}),
    "sleep_past_limit": ("import time\ntime.sleep(100)\nprint('late')", {"timeout"}),
    "endless_output": ("while True:\n    print('x' * 1000)", {"output_limit"}),
    # stderr is truncated, never a failure by itself (issue 13.3): an endless writer runs out its time
    "endless_stderr": ("import sys\nwhile True:\n    sys.stderr.write('y' * 1000)", {"timeout"}),
    "raw_fd_flood": ("import os\nwhile True:\n    os.write(1, b'z' * 65536)", {"output_limit", "timeout"}),
    "daemonise": (f"import os, subprocess\nif os.fork() == 0:\n    os.setsid()\n    subprocess.Popen(['sleep', '{MARKER}'])\n    os._exit(0)\nprint('bye')", {"wrong_answer"}),
    "setsid_child_survives": (f"import subprocess\nsubprocess.Popen(['sleep', '{MARKER}'], start_new_session=True)\nprint('bye')", {"wrong_answer"}),
    "kill_parent": ("import os\nos.kill(os.getppid(), 9)\nos.kill(1, 9)\nprint('still here')", {"wrong_answer", "runtime_error"}),
    # in a warm sandbox it kills the zygote (restarted for the next program) and prints nothing;
    # with nothing else to kill (a one-program bubblewrap): ProcessLookupError
    "kill_everyone": ("import os\nos.kill(-1, 9)", {"runtime_error", "wrong_answer"}),
    "stop_everyone": ("import os, signal\ntry:\n    os.kill(-1, signal.SIGSTOP)\nexcept ProcessLookupError:\n    pass", {"wrong_answer"}),
    "ignore_sigterm": ("import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\ntime.sleep(100)", {"timeout"}),
    "fill_tmp": ("import os\ni = 0\nwhile True:\n    with open(f'/tmp/fill{i}', 'wb') as f:\n        f.write(b'0' * (8 << 20))\n    i += 1", {"runtime_error"}),
    "huge_file": ("open('big.bin', 'wb').write(b'0' * (200 << 20))", {"runtime_error", "memory_limit"}),
    "ctypes_segfault": ("import ctypes\nctypes.string_at(0)", {"runtime_error"}),
    "ptrace_parent": ("import ctypes, os\nlibc = ctypes.CDLL(None)\nprint(libc.ptrace(16, os.getppid(), 0, 0))", {"wrong_answer"}),
    "raise_limits": ("import resource\nresource.setrlimit(resource.RLIMIT_AS, (-1, -1))\nprint('raised')", {"runtime_error"}),
    "exit_early": ("import os\nos._exit(0)", {"runtime_error"}),
    "forge_frame": ("import os, json\nos.write(1, (json.dumps({'i': 0, 'output': 'ok', 'error': None, 'elapsed': 0}) + '\\n').encode())\nprint('nope')", {"wrong_answer"}),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_program(sandbox, host_secrets, name):
    code, accepted = HOSTILE[name]
    result = sandbox.run(Job(code=code, tests=[{"input": "", "output": "expected-output"}], time_limit_s=2.0))
    status = result.tests[0].status
    assert status in accepted, (status, result.tests[0])
    assert not result.passed
    text = " ".join(t.output + t.stderr + t.exception for t in result.tests)
    assert SECRET not in text  # neither the host file nor the caller's environment is visible
    assert host_secrets.read_text() == SECRET
    assert not os.path.exists("/etc/vpd_pwned")
    # the host and the next program are unaffected, and nothing survives
    assert wait_no_survivors() == []
    follow = sandbox.run(Job(code="import os\nprint(len(os.listdir('.')), input())", tests=[{"input": "7", "output": "0 7"}]))
    assert follow.passed, follow.tests[0]


@pytest.mark.parametrize("backend", ["docker", "bwrap"])
@pytest.mark.parametrize("attack", ["os.kill(-1, signal.SIGKILL)", "os.kill(-1, signal.SIGSTOP)",
                                    "os.kill(os.getppid(), signal.SIGKILL)"])
def test_a_program_that_kills_or_stops_the_zygote_costs_the_next_one_nothing(attack, backend):
    """One warm container (or bubblewrap): the zygote that forks programs is killed or stopped by a
    program; the next programs in the same sandbox are graded normally and promptly (it is restarted)."""
    from sandboxes import make_sandbox

    with make_sandbox(backend, concurrency=1) as sb:
        hostile = sb.run(Job(code=f"import os, signal\ntry:\n    {attack}\nexcept OSError:\n    pass\nprint(input())",
                             tests=[{"input": "1", "output": "1"}]))
        assert hostile.tests[0].status in ("pass", "wrong_answer", "runtime_error")
        for k in range(3):
            t0 = time.monotonic()
            follow = sb.run(Job(code="print(int(input()) * 2)", tests=[{"input": str(k), "output": str(2 * k)}]))
            assert follow.passed, follow.tests[0]
            assert time.monotonic() - t0 < 3.0  # no wait on a stopped zygote
