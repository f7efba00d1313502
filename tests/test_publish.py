"""A run directory mirrored to a shared results location (`run_root`, vpd_core/publish.py): on a
local path, on fsspec's in-memory filesystem, and over FTP on loopback (pyftpdlib, a real server:
a network filesystem without renames-onto-existing-files, as some object-store gateways behave)."""

import json
import logging
import subprocess
import sys
import threading
from pathlib import Path

import fsspec
import pytest

from vpd_core.publish import MANIFEST, PublishError, fetch, mirror_url, publish

REPO = Path(__file__).resolve().parents[1]


def make_run(run_dir: Path) -> None:
    ckpt = run_dir / "checkpoints" / "step-000001"
    (ckpt / "model").mkdir(parents=True)
    (ckpt / "model" / "weights.bin").write_bytes(bytes(range(256)) * 40)
    (ckpt / "manifest.json").write_text("{}\n")
    (run_dir / "checkpoints" / "latest").write_text("step-000001\n")
    (run_dir / "metrics.jsonl").write_text('{"train/step": 1}\n')
    partial = run_dir / "checkpoints" / ".tmp-step-000002-77"  # a checkpoint being written: never sent
    partial.mkdir()
    (partial / "trainer_state.pt").write_bytes(b"half")


def tree(fs, root: str) -> dict[str, bytes]:
    return {f[len(root.rstrip("/")) + 1:]: fs.cat_file(f) for f in fs.find(root)}


@pytest.fixture(params=["local", "memory"])
def mirror(request, tmp_path):
    """(fs, url): a plain local path (the rename path) or memory:// (an atomic-put store)."""
    if request.param == "local":
        fs = fsspec.filesystem("file")
        yield fs, str(tmp_path / "shared" / "runs" / "a")
    else:
        fs = fsspec.filesystem("memory")
        root = f"/vpd-test-{tmp_path.name}"
        yield fs, f"memory://{root}/runs/a"
        fs.rm(root, recursive=True)


def test_publish_sends_only_changes_follows_pruning_and_fetch_restores(mirror, tmp_path):
    fs, url = mirror
    root = fsspec.core.url_to_fs(url)[1]
    run = tmp_path / "run"
    make_run(run)
    assert publish(run, url) == {"sent": 4, "removed": 0, "files": 4}
    got = tree(fs, root)
    assert set(got) == {"checkpoints/step-000001/model/weights.bin", "checkpoints/step-000001/manifest.json",
                        "checkpoints/latest", "metrics.jsonl"}
    assert got["checkpoints/step-000001/model/weights.bin"] == bytes(range(256)) * 40
    assert publish(run, url)["sent"] == 0  # nothing changed, nothing sent

    (run / "metrics.jsonl").write_text('{"train/step": 1}\n{"train/step": 2}\n')
    new = run / "checkpoints" / "step-000002"
    (run / "checkpoints" / ".tmp-step-000002-77").rename(new)
    (run / "checkpoints" / "latest").write_text("step-000002\n")
    import shutil

    shutil.rmtree(run / "checkpoints" / "step-000001")  # pruned (train.keep_checkpoints)
    counts = publish(run, url)
    assert counts == {"sent": 3, "removed": 2, "files": 3}
    got = tree(fs, root)
    assert set(got) == {"checkpoints/step-000002/trainer_state.pt", "checkpoints/latest", "metrics.jsonl"}
    assert not [f for f in fs.find(root) if ".tmp-" in f]  # no temporary left behind
    assert not fs.exists(f"{root}/checkpoints/step-000001")  # nor the pruned checkpoint's directories

    moved = tmp_path / "other-machine" / "run"
    assert fetch(url, moved) == 3
    for rel, data in got.items():
        assert (moved / rel).read_bytes() == data
    assert publish(moved, url)["sent"] == 0  # what was fetched counts as published


def test_order_and_a_failure_midway(tmp_path, monkeypatch):
    """Checkpoint files first, then the `latest` pointer, then the rest; a failure names the URL,
    and the next publish sends only what had not arrived."""
    fs = fsspec.filesystem("memory")
    url = f"memory:///vpd-order-{tmp_path.name}"
    run = tmp_path / "run"
    make_run(run)
    (run / "eval" / "final").mkdir(parents=True)
    (run / "eval" / "final" / "metrics.json").write_text("{}")
    sent, real_put = [], type(fs).put_file

    def put_file(self, lpath, rpath, **kw):
        if len(sent) == 3 and fail["on"]:
            raise OSError("connection reset")
        sent.append(Path(lpath).relative_to(run).as_posix())
        return real_put(self, lpath, rpath, **kw)

    fail = {"on": True}
    monkeypatch.setattr(type(fs), "put_file", put_file)
    with pytest.raises(PublishError, match=f"{run} to {url}: connection reset"):
        publish(run, url)
    assert sent == ["checkpoints/step-000001/manifest.json", "checkpoints/step-000001/model/weights.bin",
                    "checkpoints/latest"]
    assert set(json.loads((run / MANIFEST).read_text())) == set(sent)
    fail["on"] = False
    assert publish(run, url)["sent"] == 2
    assert sent[3:] == ["eval/final/metrics.json", "metrics.jsonl"]
    fs.rm(f"/vpd-order-{tmp_path.name}", recursive=True)


def test_bad_locations_are_named():
    with pytest.raises(PublishError, match="run_root 'nosuchproto://x/runs/a'"):
        publish(".", "nosuchproto://x/runs/a")
    with pytest.raises(PublishError, match=r"'\.\.' has no place under run_root"):
        mirror_url("s3://b/vpd", "../elsewhere")
    assert mirror_url("s3://b/vpd/", "runs/sweep/algorithm_vpd/seed0") == "s3://b/vpd/runs/sweep/algorithm_vpd/seed0"
    assert mirror_url("/shared", "/scratch/run") == "/shared/scratch/run"


@pytest.fixture
def ftp_root(tmp_path):
    """A real FTP server on loopback serving tmp_path/ftp; yields ftp://user:pw@127.0.0.1:port."""
    from pyftpdlib.authorizers import DummyAuthorizer
    from pyftpdlib.handlers import FTPHandler
    from pyftpdlib.servers import FTPServer

    logging.getLogger("pyftpdlib").setLevel(logging.WARNING)
    home = tmp_path / "ftp"
    home.mkdir()
    auth = DummyAuthorizer()
    auth.add_user("vpd", "secret", str(home), perm="elradfmwMT")
    handler = type("Handler", (FTPHandler,), {"authorizer": auth})
    server = FTPServer(("127.0.0.1", 0), handler)
    port = server.socket.getsockname()[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"timeout": 0.2}, daemon=True)
    thread.start()
    yield f"ftp://vpd:secret@127.0.0.1:{port}", home
    server.close_all()
    thread.join(timeout=10)


def test_a_run_publishes_over_ftp_and_resumes_on_a_machine_without_its_directory(ftp_root, tiny_params, tmp_path):
    """`vpd train` with run_root on an FTP server: every checkpoint and the metrics reach the
    mirror; with the local run directory gone (another machine), the next `vpd train` fetches the
    mirror and resumes at step 2 instead of starting over."""
    url, home = ftp_root
    run_dir = tmp_path / "run"

    def train(steps):
        r = subprocess.run([sys.executable, "-m", "vpd.cli", "train", "--no-prefect", "--params", str(tiny_params),
                            "--set", f"run_root={url}/shared", "--set", f"train.steps={steps}"],
                           cwd=REPO, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
        return r.stdout

    train(2)
    mirror = home / "shared" / Path(*run_dir.parts[1:])  # <run_root>/<run_dir>, its leading / dropped
    assert (mirror / "checkpoints" / "step-000002" / "trainer_state.pt").read_bytes() == \
        (run_dir / "checkpoints" / "step-000002" / "trainer_state.pt").read_bytes()
    assert (mirror / "metrics.jsonl").read_text() == (run_dir / "metrics.jsonl").read_text()
    assert (mirror / "final" / "model" / "config.json").is_file()

    import shutil

    shutil.rmtree(run_dir)
    out = train(3)
    assert "fetched" in out and "resumed from" in out and "step-000002" in out
    steps = [json.loads(x)["train/step"] for x in (mirror / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1.0, 2.0, 3.0]
    assert (mirror / "checkpoints" / "step-000003" / "trainer_state.pt").is_file()
    assert not list(mirror.rglob("*.tmp-*"))
