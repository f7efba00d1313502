"""Nothing crosses from one program to the next, and memory pressure kills the program, never the
supervisor (issue 17, points 3-4). Real dockerd and real bubblewrap; each test uses a sandbox of
one slot, so on Docker every program runs in the same warm container, one after another."""

import errno

import pytest

from sandboxes import Job, make_sandbox
from tests.conftest import SANDBOX_BACKENDS

# Plants data in every IPC facility a warm container shares between its programs.
PLANT = r"""
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
IPC_CREAT = 0o1000
shm = libc.shmget(4242, 1 << 20, IPC_CREAT | 0o666)
if shm >= 0:
    addr = libc.shmat(shm, None, 0)
    ctypes.memmove(addr, b"ANSWER-SYSV", 11)
    libc.shmdt(ctypes.c_void_p(addr))
msg = libc.msgget(4243, IPC_CREAT | 0o666)
buf = ctypes.create_string_buffer(struct_len := 8 + 16)
ctypes.memmove(buf, (1).to_bytes(8, "little") + b"ANSWER-MSG", 18)
libc.msgsnd(msg, buf, 16, 0)
sem = libc.semget(4244, 1, IPC_CREAT | 0o666)
mq = libc.mq_open(b"/answers", os.O_CREAT | os.O_RDWR, 0o666, None)
libc.mq_send(mq, b"ANSWER-MQ", 9, 0)
with open("/dev/shm/answers", "w") as f:
    f.write("ANSWER-SHM")
print(shm >= 0, msg >= 0, sem >= 0, mq >= 0)
"""

# Lists what of the planted data it can still reach.
READ = r"""
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
found = []
if libc.shmget(4242, 0, 0) >= 0: found.append("sysv-shm")
if libc.msgget(4243, 0) >= 0: found.append("sysv-msg")
if libc.semget(4244, 0, 0) >= 0: found.append("sysv-sem")
if libc.mq_open(b"/answers", os.O_RDONLY, 0, None) >= 0: found.append("posix-mq")
found += ["dev-shm:" + n for n in os.listdir("/dev/shm")]
print(found)
"""


@pytest.fixture(params=SANDBOX_BACKENDS)
def one_slot(request):
    sb = make_sandbox(request.param, concurrency=1)
    yield sb
    sb.close()


def test_ipc_objects_do_not_survive_into_the_next_program(one_slot):
    made = "False True True True" if one_slot.backend == "bwrap" else "True True True True"  # bwrap refuses shmget
    planted = one_slot.run(Job(code=PLANT, tests=[{"input": "", "output": made}]))
    assert planted.passed, planted.tests[0]  # the planting itself worked, so the reader's [] means something
    read = one_slot.run(Job(code=READ, tests=[{"input": "", "output": "[]"}]))
    assert read.passed, read.tests[0].output


def test_a_full_dev_shm_does_not_break_the_next_programs_multiprocessing(one_slot):
    fill = ("try:\n    for i in range(1000):\n        with open(f'/dev/shm/fill{i}', 'wb') as f:\n"
            "            for _ in range(8):\n                f.write(b'x' * (1 << 20))\n"
            "except OSError as e:\n    print(e.errno)")  # files of 8 MB: RLIMIT_FSIZE caps each at 16
    full = one_slot.run(Job(code=fill, tests=[{"input": "", "output": "28"}]))  # ENOSPC: the tmpfs is capped
    assert full.passed, full.tests[0]
    uses = "import multiprocessing\nlock = multiprocessing.Lock()\nwith lock:\n    print(int(input()) * 2)"
    after = one_slot.run(Job(code=uses, tests=[{"input": "21", "output": "42"}]))
    assert after.passed, after.tests[0]


def test_programs_run_first_in_line_for_the_oom_killer(one_slot):
    result = one_slot.run(Job(code="print(open('/proc/self/oom_score_adj').read().strip())",
                              tests=[{"input": "", "output": "1000"}]))
    assert result.passed, result.tests[0]


def test_system_v_memory_cannot_starve_the_grader(caplog):
    """SysV segments, attached and detached one by one, hold memory that RLIMIT_AS never sees and
    that outlives the program. Uncapped, they fill the container's memory cgroup and the OOM killer
    takes the grader (the container is replaced, the program retried). Capped at a quarter of the
    container, the program gets a verdict and the next one runs in the same container."""
    hog = r"""
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
held = 0
for key in range(1, 64):
    shm = libc.shmget(key, 32 << 20, 0o1000 | 0o600)
    if shm < 0:
        break
    addr = libc.shmat(shm, None, 0)
    ctypes.memset(ctypes.c_void_p(addr), 1, 32 << 20)
    libc.shmdt(ctypes.c_void_p(addr))
    held += 32
print(held)
"""
    with make_sandbox("docker", concurrency=1, memory_mb=512) as sb, caplog.at_level("WARNING"):
        hit = sb.run(Job(code=hog, memory_mb=256, tests=[{"input": "", "output": "-1"}]))
        assert hit.tests[0].status == "wrong_answer" and 0 < int(hit.tests[0].output) <= 128, hit.tests[0]
        after = sb.run(Job(code=READ.replace("4242", "1"), tests=[{"input": "", "output": "[]"}]))
        assert after.passed, after.tests[0]
    assert "replacing the container" not in caplog.text


def probe_syscalls(names):
    """A program that calls each syscall (namespace flags where it takes flags) and prints
    [(name, errno or 0)]; a clone that succeeds exits its child at once."""
    from sandboxes.seccomp import CLONE_NAMESPACES, syscall_numbers

    calls = [(n, syscall_numbers()[n]) for n in names]
    return f"""
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
out = []
for name, nr in {calls!r}:
    ctypes.set_errno(0)
    flags = 0x10000000 if name == "unshare" else ({CLONE_NAMESPACES} | 17) if name == "clone" else 0
    r = libc.syscall(nr, flags, 0, 0, 0, 0)
    if name == "clone" and r == 0:
        os._exit(0)
    out.append((name, ctypes.get_errno() if r == -1 else 0))
print(out)
"""


# What Docker's default profile refuses an unprivileged container; bubblewrap must refuse it too
DOCKER_REFUSES = ("mount", "umount2", "pivot_root", "unshare", "setns", "keyctl", "add_key", "request_key", "bpf",
                  "perf_event_open", "userfaultfd")


def test_both_backends_refuse_the_kernel_surface_dockers_profile_refuses(sandbox):
    result = sandbox.run(Job(code=probe_syscalls(DOCKER_REFUSES), tests=[{"input": "", "output": "x"}]))
    assert result.tests[0].output.strip() == str([(n, errno.EPERM) for n in DOCKER_REFUSES])


def test_bwrap_refuses_memory_outside_rlimits_and_namespaces_in_clone():
    """Without a memory cgroup per program, memfd and System V segments would hold host memory
    past RLIMIT_AS: refused. clone with namespace flags is refused, clone3 says ENOSYS (the C
    library falls back to clone); plain fork, threads and multiprocessing still work."""
    from sandboxes.seccomp import DENIED

    names = (*DENIED, "clone", "clone3")
    code = probe_syscalls(names) + ("import multiprocessing, subprocess, threading\n"
                                    "t = threading.Thread(target=print, args=('thread',)); t.start(); t.join()\n"
                                    "print(subprocess.run(['echo', 'child'], capture_output=True, text=True).stdout.strip())\n"
                                    "with multiprocessing.Lock():\n    print('lock')")
    expected = [(n, errno.ENOSYS if n == "clone3" else errno.EPERM) for n in names]
    with make_sandbox("bwrap", concurrency=1) as sb:
        result = sb.run(Job(code=code, tests=[{"input": "", "output": "x"}]))
    assert result.tests[0].output.split("\n")[:4] == [str(expected), "thread", "child", "lock"], result.tests[0]


def test_the_filter_is_built_per_architecture():
    from sandboxes.seccomp import filter_program

    for machine in ("x86_64", "aarch64"):
        program = filter_program(machine)
        assert len(program) % 8 == 0 and len(program) // 8 < 64
    with pytest.raises(ValueError, match="no seccomp filter for riscv64"):
        filter_program("riscv64")
