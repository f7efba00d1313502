"""A seccomp filter for the bubblewrap backend, as a classic BPF program (bwrap --seccomp FD).

Refuses (EPERM) the kernel surface Docker's default profile refuses to unprivileged containers —
namespaces, mounts, keyrings, BPF, perf events, userfaultfd, io_uring — plus the two ways a
program could hold memory that RLIMIT_AS never sees and that, without a memory cgroup per
program, nothing else would cap: memfd_create and System V shared memory. (/dev/shm, the third,
is a size-capped tmpfs.) clone is allowed without namespace flags; clone3, whose flags live in
memory the filter cannot read, answers ENOSYS so that the C library falls back to clone — what
Docker does too. Other architectures are refused whole (the filter kills the process), and on
x86-64 the x32 ABI is refused.
"""

from __future__ import annotations

import errno
import platform
import struct

# (AUDIT_ARCH, syscall numbers) per machine; numbers from the kernel's unistd tables
ARCHES = {
    "x86_64": (0xC000003E, {
        "mount": 165, "umount2": 166, "pivot_root": 155, "unshare": 272, "setns": 308, "keyctl": 250,
        "add_key": 248, "request_key": 249, "bpf": 321, "perf_event_open": 298, "userfaultfd": 323,
        "memfd_create": 319, "memfd_secret": 447, "shmget": 29, "io_uring_setup": 425, "io_uring_enter": 426,
        "io_uring_register": 427, "clone": 56, "clone3": 435,
    }),
    "aarch64": (0xC00000B7, {
        "mount": 40, "umount2": 39, "pivot_root": 41, "unshare": 97, "setns": 268, "keyctl": 219,
        "add_key": 217, "request_key": 218, "bpf": 280, "perf_event_open": 241, "userfaultfd": 282,
        "memfd_create": 279, "memfd_secret": 447, "shmget": 194, "io_uring_setup": 425, "io_uring_enter": 426,
        "io_uring_register": 427, "clone": 220, "clone3": 435,
    }),
}
DENIED = ("mount", "umount2", "pivot_root", "unshare", "setns", "keyctl", "add_key", "request_key", "bpf",
          "perf_event_open", "userfaultfd", "memfd_create", "memfd_secret", "shmget", "io_uring_setup",
          "io_uring_enter", "io_uring_register")
# CLONE_NEWNS | NEWCGROUP | NEWUTS | NEWIPC | NEWUSER | NEWPID | NEWNET | NEWTIME
CLONE_NAMESPACES = 0x00020000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000 | 0x80
X32_BIT = 0x40000000

LD_W_ABS, JEQ_K, JSET_K, RET_K = 0x20, 0x15, 0x45, 0x06
RET_ALLOW, RET_KILL_PROCESS, RET_ERRNO = 0x7FFF0000, 0x80000000, 0x00050000
NR, ARCH, ARG0 = 0, 4, 16  # offsets in struct seccomp_data (args[0]'s low word on little-endian)


def syscall_numbers(machine: str | None = None) -> dict[str, int]:
    machine = machine or platform.machine()
    if machine not in ARCHES:
        raise ValueError(f"no seccomp filter for {machine} (known: {', '.join(ARCHES)})")
    return ARCHES[machine][1]


def filter_program(machine: str | None = None) -> bytes:
    """The BPF program, as the bytes of its struct sock_filter array."""
    machine = machine or platform.machine()
    syscall_numbers(machine)
    audit_arch, nr = ARCHES[machine]
    checks = [(JEQ_K, nr[name], "eperm") for name in DENIED] + [(JEQ_K, nr["clone3"], "enosys"),
                                                                 (JEQ_K, nr["clone"], "clone")]
    if machine == "x86_64":
        checks.insert(0, (JSET_K, X32_BIT, "eperm"))
    head = [(LD_W_ABS, 0, 0, ARCH), (JEQ_K, 1, 0, audit_arch), (RET_K, 0, 0, RET_KILL_PROCESS), (LD_W_ABS, 0, 0, NR)]
    start = len(head)
    # after the checks: allow; the clone block (ld args[0]; jset namespaces -> eperm; allow); eperm; enosys
    allow = start + len(checks)
    target = {"clone": allow + 1, "eperm": allow + 4, "enosys": allow + 5}
    body = [(code, target[where] - (start + i + 1), 0, k) for i, (code, k, where) in enumerate(checks)]
    tail = [(RET_K, 0, 0, RET_ALLOW), (LD_W_ABS, 0, 0, ARG0), (JSET_K, 1, 0, CLONE_NAMESPACES), (RET_K, 0, 0, RET_ALLOW),
            (RET_K, 0, 0, RET_ERRNO | errno.EPERM), (RET_K, 0, 0, RET_ERRNO | errno.ENOSYS)]
    program = head + body + tail
    assert all(0 <= jt <= 255 for _, jt, _, _ in program)
    return b"".join(struct.pack("=HBBI", code, jt, jf, k) for code, jt, jf, k in program)
