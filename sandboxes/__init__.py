"""Running untrusted model-written code: Docker first, bubblewrap fallback.

Knows nothing of Prefect or DVC. The trusted in-sandbox code lives in
`sandboxes/runtime/` (stdlib only); everything else runs on the host.
"""

from .types import ExecResult, Job, SandboxError, TestCase, TestResult

__all__ = ["ExecResult", "Job", "SandboxError", "TestCase", "TestResult", "check_available", "make_sandbox"]


def check_available(backend: str = "docker", docker_hosts: list[str] | None = None) -> None:
    """Raise SandboxError (one line, what to do) if the backend cannot run here; cheap (no containers),
    so front ends call it before any work. Several Docker engines: at least one must answer."""
    if backend == "docker":
        from .docker_backend import DockerSandbox, docker_client

        DockerSandbox._reachable(docker_hosts) if docker_hosts else docker_client()
    elif backend == "bwrap":
        import shutil

        if shutil.which("bwrap") is None:
            raise SandboxError("bwrap: bubblewrap is not installed (Debian package 'bubblewrap')")
    elif backend != "rlimit":
        raise ValueError(f"unknown sandbox backend '{backend}' (docker | bwrap | rlimit)")


def make_sandbox(backend: str = "docker", **kwargs):
    """A sandbox by name: 'docker', 'bwrap', or 'rlimit' (no isolation; needs allow_unsafe=True)."""
    if backend == "docker":
        from .docker_backend import DockerSandbox

        return DockerSandbox(**kwargs)
    if backend == "bwrap":
        from .bwrap import BwrapSandbox

        return BwrapSandbox(**kwargs)
    if backend == "rlimit":
        from .bwrap import RlimitSandbox

        return RlimitSandbox(**kwargs)
    raise ValueError(f"unknown sandbox backend '{backend}' (docker | bwrap | rlimit)")
