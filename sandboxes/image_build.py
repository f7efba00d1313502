"""The sandbox image: built from sandboxes/image/Dockerfile, tagged by the hash of what goes in.

Base: `python:3.11-slim` when it can be pulled; otherwise a local Debian base built
by `sandboxes/image/build-base.sh` (debootstrap + docker import), which needs root.
"""

from __future__ import annotations

import hashlib
import logging
import subprocess
from pathlib import Path

from .types import SandboxError

log = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent
REGISTRY_BASE = "python:3.11-slim"
LOCAL_BASE = "vpd-sandbox-base:bookworm"
IMAGE_REPO = "vpd-sandbox"


def content_tag(base: str) -> str:
    h = hashlib.sha256(base.encode())
    for f in sorted([HERE / "image" / "Dockerfile", *(HERE / "runtime").glob("*.py")]):
        h.update(f.name.encode() + b"\0" + f.read_bytes())
    return f"{IMAGE_REPO}:{h.hexdigest()[:12]}"


def _has(client, name: str) -> bool:
    import docker

    try:
        client.images.get(name)
        return True
    except docker.errors.ImageNotFound:
        return False


def ensure_base(client, base: str | None = None) -> str:
    """A usable base image name: the one asked for, the registry's, or a locally built one."""
    import docker

    if base is not None:
        if not _has(client, base):
            raise SandboxError(f"docker: base image '{base}' not found")
        return base
    for name in (REGISTRY_BASE, LOCAL_BASE):
        if _has(client, name):
            return name
    try:
        client.images.pull(REGISTRY_BASE)
        return REGISTRY_BASE
    except docker.errors.APIError as e:
        # no registry is the normal case on an offline machine: one calm line (the cause at debug level)
        log.info("sandbox base image: %s is not reachable; building a local Debian base once (~1.5 min)",
                 REGISTRY_BASE)
        log.debug("pull %s failed: %s", REGISTRY_BASE, e)
    try:  # the script talks to the same engine through DOCKER_HOST, inherited from our environment
        subprocess.run([str(HERE / "image" / "build-base.sh"), LOCAL_BASE], check=True, capture_output=True, text=True)
    except subprocess.CalledProcessError as e:
        raise SandboxError(f"docker: building the local base image failed: {e.stderr[-800:]}") from None
    return LOCAL_BASE


def ensure_image(client, base: str | None = None) -> str:
    """Build the sandbox image if this content has not been built yet; return its tag."""
    import docker

    base = ensure_base(client, base)
    tag = content_tag(base)
    if _has(client, tag):
        return tag
    log.info("building %s from %s", tag, base)
    try:
        client.images.build(path=str(HERE), dockerfile="image/Dockerfile", buildargs={"BASE": base}, tag=tag,
                            rm=True, forcerm=True, network_mode="none", pull=False)
    except (docker.errors.BuildError, docker.errors.APIError) as e:
        raise SandboxError(f"docker: building {tag} failed: {e}") from None
    return tag


if __name__ == "__main__":  # python -m sandboxes.image_build: build (if needed) and print the image tag
    import docker

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    print(ensure_image(docker.from_env(timeout=120)))
