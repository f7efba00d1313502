import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# flow processes the tests start share a Prefect server per project directory (vpd/prefect_server.py):
# it stops 30 s after its last client instead of the default 15 min
os.environ.setdefault("VPD_PREFECT_IDLE_S", "30")

import pytest
import torch

from vpd_core.models import load_model, load_tokenizer
from vpd_core.tiny import write_tiny_model


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    return write_tiny_model(tmp_path_factory.mktemp("tiny") / "model")


@pytest.fixture(scope="session")
def tok(tiny_dir):
    return load_tokenizer(tiny_dir)


@pytest.fixture
def model(tiny_dir):
    torch.manual_seed(0)
    return load_model(tiny_dir)


# ----------------------------------------------------------------------------- sandboxes

SANDBOX_BACKENDS = ["docker", "bwrap"]


@pytest.fixture(scope="session")
def _sandboxes():
    """One sandbox per backend for the whole session. Missing engines are errors, not skips:
    `make test` installs bubblewrap and starts a private dockerd (DOCKER_HOST)."""
    from sandboxes import make_sandbox

    made = {}

    def get(name):
        if name not in made:
            made[name] = make_sandbox(name, concurrency=2)
        return made[name]

    yield get
    for sb in made.values():
        sb.close()


@pytest.fixture(params=SANDBOX_BACKENDS)
def sandbox(request, _sandboxes):
    return _sandboxes(request.param)


# ----------------------------------------------------------------------------- orchestration


@pytest.fixture(scope="session")
def prefect_backend(tmp_path_factory):
    """One temporary Prefect API for every flow test of the session."""
    home = tmp_path_factory.mktemp("prefect-home")
    os.environ["PREFECT_HOME"] = str(home)
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    os.environ["PREFECT_RESULTS_LOCAL_STORAGE_PATH"] = str(home / "storage")
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield


@pytest.fixture
def tiny_params(tiny_dir, tmp_path):
    """A params file for a 2-step VPD run of the tiny model on the arithmetic task."""
    return write_tiny_params(tiny_dir, tmp_path)


def write_tiny_params(tiny_dir, directory):
    import yaml

    from vpd_core.config import load_params, read_params_file

    tmp_path = Path(directory)
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    raw = read_params_file(Path(repo) / "params.yaml")  # with prompts.yaml merged in: one self-contained file
    raw.update(run_dir=str(tmp_path / "run"), seed=3)
    raw["model"].update(path=str(tiny_dir))
    raw["data"].update(source="arithmetic", num_problems=16)
    raw["rollout"].update(max_new_tokens=8, problems_per_step=2, group_size=4)
    raw["train"].update(steps=2, checkpoint_every=1)
    raw["optim"].update(lr=1e-3)
    raw["vpd"].update(e_every=2)
    raw["eval"].update(samples=2, max_new_tokens=8)
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    load_params(path)  # valid
    return path
