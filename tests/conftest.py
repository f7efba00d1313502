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
