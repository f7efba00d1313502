"""Checkpoints that never go bad (issue 17.6): a diverged step writes nothing, a damaged latest
checkpoint is reported and the run falls back to an intact one, a kill mid-write leaves nothing
behind at the next start, and every checkpoint carries checksums."""

import json
import math

import pytest
import torch

from tests.test_trainer import params, synthetic_batch
from vpd_core.checkpoint import (MANIFEST, CheckpointError, list_checkpoints, load_latest_intact, recover,
                                 save_checkpoint, verify_checkpoint)
from vpd_core.config import load_params
from vpd_core.fileio import read_jsonl
from vpd_core.loop import run_training
from vpd_core.models import load_model
from vpd_core.trainer import Trainer, TrainingDiverged


def trained(tiny_dir, tok, root, steps=3):
    tr = Trainer(load_model(tiny_dir), tok, params())
    for _ in range(steps):
        tr.train_step(synthetic_batch(tok))
        save_checkpoint(tr, root, keep=None)
    return tr


def test_a_nan_gradient_stops_the_step_before_the_update(model, tok):
    tr = Trainer(model, tok, params())
    with torch.no_grad():
        next(model.parameters())[0, 0] = float("nan")
    before = [w.detach().clone() for w in model.parameters()]
    with pytest.raises(TrainingDiverged, match="step 1: gradient norm is nan"):
        tr.train_step(synthetic_batch(tok))
    after = list(model.parameters())
    assert all(torch.equal(a, b) or (a.isnan() == b.isnan()).all() for a, b in zip(before, after))


def test_non_finite_weights_after_an_update_stop_the_run_before_anything_is_written(tiny_params, tmp_path):
    """An infinite learning rate (params refuse one; here it is set on the optimizer behind their
    back) makes the weights non-finite: no metrics row and no checkpoint of that step."""
    p = load_params(tiny_params, [f"run_dir={tmp_path / 'run'}", "train.steps=3", "vpd.e_every=5"])
    run_training(p.model_copy(update={"train": p.train.model_copy(update={"steps": 1})}), log=lambda _: None)
    rows_before = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    ckpts_before = [c.name for c in list_checkpoints(tmp_path / "run" / "checkpoints")]

    import vpd_core.trainer as trainer_module

    original = trainer_module.Trainer._optimizer_step

    def infinite_lr(self, update, lr_scale=1.0):
        for g in self.optimizer.param_groups:
            g["lr"] = math.inf
        return original(self, update, lr_scale)

    trainer_module.Trainer._optimizer_step = infinite_lr
    try:
        with pytest.raises(TrainingDiverged, match="step 2: parameter .* is non-finite"):
            run_training(p, log=lambda _: None)
    finally:
        trainer_module.Trainer._optimizer_step = original
    assert read_jsonl(tmp_path / "run" / "metrics.jsonl") == rows_before
    assert [c.name for c in list_checkpoints(tmp_path / "run" / "checkpoints")] == ckpts_before == ["step-000001"]


def test_every_checkpoint_carries_a_manifest_of_checksums(tiny_dir, tok, tmp_path):
    trained(tiny_dir, tok, tmp_path / "ckpt", steps=1)
    ckpt = tmp_path / "ckpt" / "step-000001"
    listed = json.loads((ckpt / MANIFEST).read_text())
    assert {"trainer_state.pt", "model/model.safetensors", "model/config.json"} <= set(listed)
    assert all(len(v["sha256"]) == 64 and v["bytes"] > 0 for v in listed.values())
    verify_checkpoint(ckpt)  # intact
    weights = ckpt / "model" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="model.safetensors: SHA-256 differs"):
        verify_checkpoint(ckpt)


@pytest.mark.parametrize("damage", ["truncated_weights", "truncated_state", "deleted_state_listed"])
def test_a_damaged_latest_checkpoint_is_reported_and_the_run_falls_back(tiny_dir, tok, tmp_path, damage):
    root = tmp_path / "ckpt"
    trained(tiny_dir, tok, root, steps=3)
    latest = root / "step-000003"
    if damage == "truncated_weights":
        f = latest / "model" / "model.safetensors"
        f.write_bytes(f.read_bytes()[: f.stat().st_size // 3])
    elif damage == "truncated_state":
        f = latest / "trainer_state.pt"
        f.write_bytes(f.read_bytes()[:1000])
    else:
        (latest / "model" / "config.json").unlink()
    logged = []
    fresh = Trainer(load_model(tiny_dir), tok, params())
    assert load_latest_intact(fresh, root, logged.append) == root / "step-000002"
    assert fresh.step == 2
    assert len(logged) == 1 and str(latest) in logged[0] and "cannot be used" in logged[0]


def test_no_intact_checkpoint_is_an_error_not_a_silent_restart(tiny_dir, tok, tmp_path):
    root = tmp_path / "ckpt"
    trained(tiny_dir, tok, root, steps=2)
    for c in list_checkpoints(root):
        (c / "trainer_state.pt").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="no usable checkpoint: .*step-000002.*step-000001"):
        load_latest_intact(Trainer(load_model(tiny_dir), tok, params()), root, lambda _: None)


def test_leftovers_of_a_killed_write_are_removed_at_the_next_start(tiny_dir, tok, tmp_path):
    root = tmp_path / "ckpt"
    trained(tiny_dir, tok, root, steps=2)
    (root / ".tmp-step-000003-4242").mkdir()
    (root / ".tmp-step-000003-4242" / "trainer_state.pt").write_bytes(b"half")
    (root / ".latest.tmp-4242").write_text("step-000003\n")
    (root / "step-000002").rename(root / ".old-step-000002-4243")  # killed between the two renames of a re-save
    logged = []
    recover(root, logged.append)
    assert sorted(p.name for p in root.iterdir()) == ["latest", "step-000001", "step-000002"]
    assert any("restored" in line for line in logged) and sum("removed" in line for line in logged) == 2
    verify_checkpoint(root / "step-000002")


def test_resuming_a_run_with_other_params_refuses_naming_the_keys(tiny_params, tmp_path):
    """Runs never mix (issue 12.4): a run directory records its params; resuming it with another
    algorithm or learning rate is refused before any work, naming each key; what may change on
    resume (more steps, evaluation settings) is accepted."""
    from vpd_core.config import ParamsError

    run = [f"run_dir={tmp_path / 'run'}", "train.steps=1", "algorithm=grpo"]
    run_training(load_params(tiny_params, run), log=lambda _: None)
    assert json.loads((tmp_path / "run" / "params.json").read_text())["algorithm"] == "grpo"
    with pytest.raises(ParamsError, match=r"other params: algorithm \('grpo' -> 'sdpo'\), optim.lr \(0.001 -> 0.002\)"):
        run_training(load_params(tiny_params, run + ["algorithm=sdpo", "optim.lr=2e-3"]), log=lambda _: None)
    assert [c.name for c in list_checkpoints(tmp_path / "run" / "checkpoints")] == ["step-000001"]
    run_training(load_params(tiny_params, run + ["train.steps=2", "eval.samples=4"]), log=lambda _: None)
    assert [c.name for c in list_checkpoints(tmp_path / "run" / "checkpoints")][-1] == "step-000002"
    # without checkpoints (DVC removes a stage's outputs before re-running it) other params start fresh
    import shutil

    shutil.rmtree(tmp_path / "run" / "checkpoints")
    run_training(load_params(tiny_params, run + ["algorithm=sdpo"]), log=lambda _: None)
    assert json.loads((tmp_path / "run" / "params.json").read_text())["algorithm"] == "sdpo"
