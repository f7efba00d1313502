"""The sandbox image: built from sandboxes/image/Dockerfile, tagged by the hash of what goes in.

Base: a local Debian bookworm base built once by `sandboxes/image/build-base.sh` (debootstrap +
docker import; needs root, no registry): Python 3.11 and the packages LiveCodeBench programs
import (`sandboxes/image/python-packages.txt`: numpy, sortedcontainers), the same Debian packages
the bubblewrap backend finds on the host. Its tag hashes the script and the package list, so a
change rebuilds it. `base=` names another image (it must provide python3 and those packages).
"""

from __future__ import annotations

import hashlib
import logging
import subprocess
from pathlib import Path

from .types import SandboxError

log = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent
IMAGE_REPO = "vpd-sandbox"
BASE_INPUTS = [HERE / "image" / "build-base.sh", HERE / "image" / "python-packages.txt"]


def local_base() -> str:
    """The local base's tag: bookworm plus a hash of how it is built and which packages it holds."""
    h = hashlib.sha256(b"".join(f.read_bytes() for f in BASE_INPUTS))
    return f"vpd-sandbox-base:bookworm-{h.hexdigest()[:8]}"


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
    """A usable base image name: the one asked for, or the local Debian base (built once)."""
    if base is not None:
        if not _has(client, base):
            raise SandboxError(f"docker: base image '{base}' not found")
        return base
    name = local_base()
    if _has(client, name):
        return name
    log.info("sandbox base image: building %s once (Debian bookworm + %s, ~2 min)", name,
             ", ".join((HERE / "image" / "python-packages.txt").read_text().split()))
    try:  # the script talks to the same engine through DOCKER_HOST, inherited from our environment
        subprocess.run([str(HERE / "image" / "build-base.sh"), name], check=True, capture_output=True, text=True)
    except subprocess.CalledProcessError as e:
        raise SandboxError(f"docker: building the local base image failed: {e.stderr[-800:]}") from None
    return name


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


def ship_image(source, target, tag: str) -> None:
    """Copy an image from one engine to another (docker save | docker load over their APIs): an
    engine of a multi-host pool gets the image built once on the first, whatever its transport."""
    if _has(target, tag):
        return
    log.info("copying %s to another Docker engine", tag)
    try:
        target.images.load(source.images.get(tag).save(named=True))  # streamed, not held in memory
    except Exception as e:  # noqa: BLE001 - docker raises many types for a failed transfer
        raise SandboxError(f"docker: copying {tag} to another engine failed: {e}") from None


if __name__ == "__main__":  # python -m sandboxes.image_build: build (if needed) and print the image tag
    import docker

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    print(ensure_image(docker.from_env(timeout=120)))
