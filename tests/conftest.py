import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

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
