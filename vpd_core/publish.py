"""A run directory mirrored to a shared results location (`run_root`: a local path or any fsspec
URL: s3://, gs://, az://, ssh://, ftp://, file://).

Training needs a local directory (checkpoints are memory-mapped, renamed into place, pruned), so a
run always works in its `run_dir` and publishes it: after every checkpoint and after each stage
that writes results (evaluation, report). Publishing is incremental (a manifest of what was sent,
by size and mtime, lives in <run_dir>/.published.json) and never shows a half-written file (a
file goes to a temporary name and is renamed, except on object stores, where an upload is atomic
already); checkpoints pruned locally are removed from the mirror. A run that starts on a machine
without its run directory fetches the mirror first, so it resumes where another machine stopped.

The mirror of run_dir `runs/sweep/algorithm_vpd/seed0` under run_root `s3://b/vpd` is
`s3://b/vpd/runs/sweep/algorithm_vpd/seed0` (an absolute run_dir loses its leading slash).
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path, PurePosixPath

from .checkpoint import STEP_PREFIX
from .errors import VPDError
from .fileio import atomic_output, write_text_atomic

MANIFEST = ".published.json"
# an object store's PUT is all-or-nothing, and a rename there is a copy (a checkpoint twice)
_ATOMIC_PUT = {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "adl", "oss", "memory"}


class PublishError(VPDError):
    """The results location cannot be read or written (names the URL and the file)."""


def mirror_url(run_root: str, run_dir: str | Path) -> str:
    rel = PurePosixPath(Path(run_dir).as_posix())
    parts = [p for p in rel.parts if p not in ("/", ".")]
    if ".." in parts:
        raise PublishError(f"run_dir {run_dir!r}: '..' has no place under run_root {run_root!r}")
    return "/".join([run_root.rstrip("/"), *parts])


def _fs(url: str):
    import fsspec

    try:
        fs, path = fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as e:  # an unknown protocol, or its package (s3fs, gcsfs, ...) missing
        raise PublishError(f"run_root {url!r}: {e}") from None
    return fs, path.rstrip("/")


def _local_files(run_dir: Path, recursive: bool = True) -> dict[str, list[int]]:
    """Every file under run_dir (relative POSIX path -> [size, mtime_ns]), the manifest and
    unfinished temporaries left out."""
    out = {}
    for root, dirs, files in os.walk(run_dir):
        # not into a checkpoint being swapped in, nor (recursive=False) into any subdirectory
        dirs[:] = [d for d in dirs if recursive and not d.startswith((".tmp-", ".old-"))]
        for name in files:
            if name == MANIFEST or ".tmp-" in name:  # atomic_output's and our uploads' temporaries
                continue
            p = Path(root) / name
            st = p.stat()
            out[p.relative_to(run_dir).as_posix()] = [st.st_size, st.st_mtime_ns]
    return out


def publish(run_dir: str | Path, url: str, recursive: bool = True) -> dict[str, int]:
    """Send what changed in run_dir since the last publish to `url`; remove from `url` what was
    published before and is gone locally (pruned checkpoints). recursive=False: the files directly
    in run_dir only (a sweep's comparison, whose run directories publish themselves). Returns counts."""
    run_dir = Path(run_dir)
    fs, root = _fs(url)
    manifest_path = run_dir / MANIFEST
    sent = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    now = _local_files(run_dir, recursive)
    # checkpoint directories first, then the `latest` pointer, then the rest: a mirror whose
    # metrics name step N already holds checkpoint N
    first = f"checkpoints/{STEP_PREFIX}"
    todo = sorted((k for k, v in now.items() if sent.get(k) != v),
                  key=lambda k: (not k.startswith(first), not k.startswith("checkpoints/"), k))
    atomic = set(fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)) & _ATOMIC_PUT
    try:
        for rel in todo:
            dest = f"{root}/{rel}"
            fs.makedirs(dest.rsplit("/", 1)[0], exist_ok=True)
            if atomic:
                fs.put_file(str(run_dir / rel), dest)
            else:
                tmp = f"{dest}.tmp-{uuid.uuid4().hex[:8]}"
                fs.put_file(str(run_dir / rel), tmp)
                if fs.exists(dest):  # a rename onto an existing file fails on some servers (FTP)
                    fs.rm_file(dest)
                fs.mv(tmp, dest)
            sent[rel] = now[rel]
        gone = [rel for rel in sent if rel not in now]
        for rel in gone:
            if fs.exists(f"{root}/{rel}"):
                fs.rm_file(f"{root}/{rel}")
            del sent[rel]
        # a pruned checkpoint leaves no empty directory (object stores have none to remove)
        for d in sorted({str(PurePosixPath(rel).parent) for rel in gone} - {"."}, key=len, reverse=True):
            for parent in [PurePosixPath(d), *PurePosixPath(d).parents][:-1]:
                path = f"{root}/{parent}"
                if fs.exists(path) and not fs.ls(path, detail=False):
                    fs.rmdir(path)
    except OSError as e:
        raise PublishError(f"publishing {run_dir} to {url}: {e}") from e
    finally:  # what did reach the mirror is recorded even when a later file failed
        write_text_atomic(manifest_path, json.dumps(sent, sort_keys=True))
    return {"sent": len(todo), "removed": len(gone), "files": len(now)}


def fetch(url: str, run_dir: str | Path) -> int:
    """Copy the mirror at `url` into run_dir (absent or empty); returns the files fetched (0 when
    there is no mirror). The manifest then says everything is published, as it is."""
    run_dir = Path(run_dir)
    fs, root = _fs(url)
    try:
        if not fs.exists(root):
            return 0
        files = [f for f in fs.find(root) if ".tmp-" not in f]
        for f in files:
            rel = PurePosixPath(f).relative_to(PurePosixPath(root)).as_posix()
            with atomic_output(run_dir / rel) as tmp:
                fs.get_file(f, str(tmp))
    except OSError as e:
        raise PublishError(f"fetching {url} into {run_dir}: {e}") from e
    write_text_atomic(run_dir / MANIFEST, json.dumps(_local_files(run_dir), sort_keys=True))
    return len(files)


def publish_run(params, log=None) -> str | None:
    """Publish params.run_dir to its mirror under params.run_root (nothing when run_root is unset);
    returns the mirror's URL."""
    if not params.run_root:
        return None
    url = mirror_url(params.run_root, params.run_dir)
    counts = publish(params.run_dir, url)
    if log is not None and counts["sent"] + counts["removed"]:
        log(f"published {params.run_dir} to {url}: {counts['sent']} files sent, {counts['removed']} removed")
    return url


def fetch_run(params, log=None) -> int:
    """A run directory without checkpoints takes its mirror's files when the mirror has a
    checkpoint (a run moving between machines)."""
    if not params.run_root or any((Path(params.run_dir) / "checkpoints").glob(f"{STEP_PREFIX}*")):
        return 0
    url = mirror_url(params.run_root, params.run_dir)
    fs, root = _fs(url)
    try:
        if not fs.exists(f"{root}/checkpoints"):
            return 0
    except OSError as e:
        raise PublishError(f"reading {url}: {e}") from e
    n = fetch(url, params.run_dir)
    if n and log is not None:
        log(f"fetched {n} files of {params.run_dir} from {url}")
    return n
