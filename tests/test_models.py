"""Model loading: local directories, error cases, and the embedded default (slow: downloads ~90 MB)."""

import shutil

import pytest
import torch

from vpd_core.models import EMBEDDED_NAME, ModelError, ensure_embedded_model, load_model, load_tokenizer, resolve_model_path
from vpd_core.rollout import HFRolloutEngine, SamplingParams
from vpd_core.sequences import chat_prompt_ids


def test_not_a_model_dir(tmp_path):
    with pytest.raises(ModelError, match="no config.json"):
        resolve_model_path(str(tmp_path))


def test_tokenizer_without_chat_template_is_refused(tiny_dir, tmp_path):
    d = tmp_path / "m"
    shutil.copytree(tiny_dir, d)
    for f in d.glob("chat_template*"):
        f.unlink()
    cfg = d / "tokenizer_config.json"
    import json

    data = json.loads(cfg.read_text())
    data.pop("chat_template", None)
    cfg.write_text(json.dumps(data))
    with pytest.raises(ModelError, match="no chat template"):
        load_tokenizer(d)


def test_local_dir_round_trip(tiny_dir):
    tok = load_tokenizer(tiny_dir)
    model = load_model(tiny_dir)
    assert model.config.vocab_size == len(tok)
    assert load_model(tiny_dir, "bfloat16").dtype == torch.bfloat16


@pytest.mark.slow
def test_embedded_default_fetch_convert_and_reuse(tmp_path_factory):
    cache = tmp_path_factory.mktemp("models")
    path = ensure_embedded_model(cache)
    assert path == cache / EMBEDDED_NAME and (path / "model.safetensors").is_file()
    assert not [p for p in cache.iterdir() if p.name.startswith(".")]  # no temp leftovers
    mtime = (path / "model.safetensors").stat().st_mtime
    assert ensure_embedded_model(cache) == path and (path / "model.safetensors").stat().st_mtime == mtime
    tok, model = load_tokenizer(path), load_model(path)
    assert model.config.model_type == "llama" and model.config.num_hidden_layers == 30
    msgs = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]
    out = HFRolloutEngine(model, tok).generate([chat_prompt_ids(tok, msgs)], 1, SamplingParams(temperature=0, max_new_tokens=8))
    assert "Paris" in out[0].text  # a real instruction-tuned model, not random weights


def test_chat_template_kwargs_reach_every_prompt_render(tiny_dir, tmp_path):
    """model.chat_template_kwargs (Qwen3's enable_thinking=False) are bound at load: student and teacher prompts."""
    from vpd_core.config import FeedbackParams, TeacherParams
    from vpd_core.sequences import Rollout, Sample
    from vpd_core.teacher import build_teacher_contexts

    d = tmp_path / "m"
    shutil.copytree(tiny_dir, d)
    tok = load_tokenizer(d)
    tok.chat_template = tok.chat_template + "{% if enable_thinking is defined and not enable_thinking %}NOTHINK{% endif %}"
    tok.save_pretrained(d)
    msgs = [{"role": "user", "content": "hi"}]
    assert "NOTHINK" not in tok.decode(chat_prompt_ids(load_tokenizer(d), msgs))
    bound = load_tokenizer(d, {"enable_thinking": False})
    assert tok.decode(chat_prompt_ids(bound, msgs)).endswith("NOTHINK")
    s = Sample(messages=msgs, rollout=Rollout(chat_prompt_ids(bound, msgs), [5, 6], [-1.0, -1.0], "stop"), group=0,
               reward=0.0, feedback="Wrong Answer")
    (ctx,) = build_teacher_contexts([s], bound, TeacherParams(), FeedbackParams())
    assert tok.decode(ctx.prompt_ids).endswith("NOTHINK") and "Wrong Answer" in tok.decode(ctx.prompt_ids)
