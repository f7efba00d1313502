"""The pieces of a training run, and the single-machine loop that chains them.

rollouts -> grading -> trainer step -> checkpoint. Each piece is a plain function
so the orchestration layer (flows/) wraps the same functions one task at a time;
`run_training` is the loop for a notebook, a test or `vpd train --no-prefect`.

Grading is passed in (`Grader`): code needs a sandbox, which the core does not
import; text benchmarks are graded in-process by their registry entry's `grade_text`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import random
import time
from pathlib import Path
from typing import Callable

import pandas as pd
import torch

from .checkpoint import export_final, latest_checkpoint, load_latest_intact, recover, resume_candidates, save_checkpoint
from .config import Params, ParamsError, resume_conflicts
from .critique import write_critiques
from .diagnostics import probe_problems, teacher_diagnostics
from .data.registry import benchmark
from .data.schema import DataError, Problem
from .distributed import SINGLE, Dist
from .fileio import read_jsonl, write_jsonl_atomic, write_text_atomic
from .data.evaluation import write_results
from .models import ModelError, load_model, load_tokenizer, resolve_model_path
from .publish import fetch_run, publish_run
from .rollout import check_fits_model, make_engine
from .sampling import SamplingParams
from .sequences import Rollout, Sample, chat_prompt_ids
from .trainer import Trainer

# (problem, rollout) pairs -> (reward, feedback) for each
Grader = Callable[[list[tuple[Problem, Rollout]]], list[tuple[float, str]]]


def text_grader(items: list[tuple[Problem, Rollout]]) -> list[tuple[float, str]]:
    return [benchmark(p.source).grade_text(p, r.text) for p, r in items]


def check_sandbox(params: Params) -> None:
    """A code task needs its sandbox engine: refuse before any work (not after a model load)."""
    if benchmark(params.data.source).grading == "sandbox":
        from sandboxes import check_available

        check_available(params.sandbox.backend, params.sandbox.docker_hosts)


def make_grader(params: Params, split: str, processes: int = 1):
    """Code problems go to the sandbox (split: "train" tests or "all"); the rest are graded in-process.

    `processes`: how many training processes share this machine's cores (one sandbox each)."""
    if benchmark(params.data.source).grading == "text":
        return text_grader, None
    from sandboxes import make_sandbox
    from sandboxes.base import default_concurrency
    from sandboxes.grading import code_grader

    s = params.sandbox
    hosts = {"hosts": s.docker_hosts} if s.backend == "docker" and s.docker_hosts else {}
    sandbox = make_sandbox(s.backend, concurrency=s.concurrency or default_concurrency(processes), **hosts)
    return code_grader(sandbox, split=split, time_limit_s=s.time_limit_s, memory_mb=s.memory_mb,
                       semantics=grading_semantics(params, split)), sandbox


def grading_semantics(params: Params, split: str) -> str:
    """sandbox.semantics resolved: `auto` grades LiveCodeBench's evaluation (all tests) as its own
    grader does, and everything else (training rewards, other benchmarks) robustly."""
    if params.sandbox.semantics != "auto":
        return params.sandbox.semantics
    return "lcb" if split == "all" and benchmark(params.data.source).lcb_semantics else "robust"


def step_seed(seed: int, step: int) -> int:
    """A distinct, reproducible seed per step (independent of how many steps ran in this process)."""
    return (seed * 1_000_003 + step * 7919) % (2**31)


def select_problems(problems: list, k: int, seed: int, step: int) -> list:
    """Step `step`'s k problems (step counts from 0): epochs over the training set, each a fresh
    seeded shuffle cut into steps (a data loader with drop_last). Every problem is drawn once per
    epoch before any is drawn twice, so two epochs' rewards are measured on the same problems."""
    k = min(k, len(problems))
    epoch, slot = divmod(step, len(problems) // k)
    order = random.Random(f"{seed}/epoch/{epoch}").sample(problems, k=len(problems))
    return order[slot * k : (slot + 1) * k]


def training_pool(problems: list[Problem], size: int | None, seed: int) -> list[Problem]:
    """A seeded subset of `size` training problems (None: all), in the split's order."""
    if size is None or size >= len(problems):
        return problems
    keep = set(random.Random(f"{seed}/pool").sample(range(len(problems)), k=size))
    return [p for i, p in enumerate(problems) if i in keep]


def load_problems(params: Params, split: str) -> list[Problem]:
    """The configured benchmark's train or test split (embedded set, or the files at data.path)."""
    d = params.data
    problems = benchmark(d.source).problems(d, params.prompts, split, params.seed)
    if not problems:
        where = "the embedded set" if d.path == "embedded" else d.path
        raise DataError(f"{where}: no {d.source} problems for the {split} split with the data.* filters")
    return training_pool(problems, d.train_problems, params.seed) if split == "train" else problems


def load_prepared(path: str | Path) -> list[Problem]:
    """A split written by the prepare stage; a damaged file is named with its record."""
    path = Path(path)
    try:
        rows = read_jsonl(path)
    except ValueError as e:
        raise DataError(f"{e} (a prepared split: rerun `vpd prepare`)") from None
    problems = []
    for n, row in enumerate(rows, 1):
        try:
            problems.append(Problem.from_dict(row))
        except TypeError as e:
            raise DataError(f"{path}: record {n}: {e} (a prepared split: rerun `vpd prepare`)") from None
    return problems


def run_problems(params: Params, split: str) -> list[Problem]:
    """The split written by the prepare stage into <run_dir>/data/, else read from the source."""
    prepared = Path(params.run_dir) / "data" / f"{split}.jsonl"
    return load_prepared(prepared) if prepared.exists() else load_problems(params, split)


def generate(engine, tok, problems: list[Problem], n: int, sampling: SamplingParams, max_prompt_tokens: int,
             progress: Callable[[int], None] | None = None) -> list[Rollout]:
    prompts = [chat_prompt_ids(tok, p.messages) for p in problems]
    for p, ids in zip(problems, prompts):
        if len(ids) > max_prompt_tokens:
            raise DataError(f"problem {p.id}: prompt is {len(ids)} tokens, over rollout.max_prompt_tokens={max_prompt_tokens}")
    return engine.generate(prompts, n, sampling, progress)


def rollout_step(engine, tok, problems: list[Problem], params: Params, step: int, dist: Dist = SINGLE
                 ) -> tuple[list[Problem], list[Rollout]]:
    """The step's problems (this rank's share of them) and G rollouts of each."""
    r = params.rollout
    batch = select_problems(problems, r.problems_per_step, params.seed, step)
    share = len(batch) // dist.world  # problems_per_step divides evenly (validated); fewer problems: floor
    batch = batch[dist.rank * share : (dist.rank + 1) * share]
    sampling = SamplingParams(r.temperature, r.top_p, r.max_new_tokens, step_seed(params.seed, step) + 7_777 * dist.rank,
                              tuple(r.stop))
    return batch, generate(engine, tok, batch, r.group_size, sampling, r.max_prompt_tokens)


def make_samples(batch: list[Problem], rollouts: list[Rollout], graded: list[tuple[float, str]], group_size: int,
                 step: int) -> list[Sample]:
    return [
        Sample(messages=batch[i // group_size].messages, rollout=ro, group=i // group_size, reward=reward,
               feedback=feedback, problem_id=batch[i // group_size].id, step=step)
        for i, (ro, (reward, feedback)) in enumerate(zip(rollouts, graded))
    ]


def expand(batch: list[Problem], rollouts: list[Rollout], group_size: int) -> list[tuple[Problem, Rollout]]:
    return [(batch[i // group_size], ro) for i, ro in enumerate(rollouts)]


def evaluate_problems(engine, tok, problems: list[Problem], params: Params, grade: Grader, seed: int = 0,
                      progress: Callable[[int], None] | None = None) -> pd.DataFrame:
    """k samples per problem at the evaluation temperature -> one row per (problem, sample);
    `progress(k)` as k more samples are generated (grading follows in one batch)."""
    e = params.eval
    sampling = SamplingParams(e.temperature, e.top_p, e.max_new_tokens, seed, tuple(params.rollout.stop))
    rollouts = generate(engine, tok, problems, e.samples, sampling, params.rollout.max_prompt_tokens, progress)
    graded = grade(expand(problems, rollouts, e.samples))
    rows = []
    for i, (ro, (reward, feedback)) in enumerate(zip(rollouts, graded)):
        p = problems[i // e.samples]
        rows.append({"problem_id": p.id, "sample": i % e.samples, "correct": reward >= 0.5, "reward": reward,
                     "response_tokens": len(ro.response_ids), "finish_reason": ro.finish_reason,
                     "difficulty": p.difficulty, "domain": p.domain, "platform": p.platform,
                     "response": ro.text, "feedback": feedback})
    return pd.DataFrame(rows)


def eval_name(checkpoint: str) -> str:
    """The directory under <run_dir>/eval/ of a checkpoint's evaluation: base, final, or the checkpoint's name."""
    return "base" if checkpoint == "base" else "final" if checkpoint == "latest" else Path(checkpoint).name


def base_eval_cache(params: Params) -> Path:
    """Where the base model's evaluation is kept, keyed by everything it depends on: the numbers
    depend on (model, data, prompts, eval params, seed, sandbox), not on the run."""
    key = {"model": str(resolve_model_path(params.model.path, params.model.cache_dir)), "dtype": params.model.dtype,
           "chat": params.model.chat_template_kwargs, "data": params.data.model_dump(mode="json"),
           "prompts": params.prompts.model_dump(), "eval": params.eval.model_dump(), "seed": params.seed,
           "stop": params.rollout.stop, "max_prompt": params.rollout.max_prompt_tokens,
           "sandbox": params.sandbox.model_dump(exclude={"concurrency", "docker_hosts"})}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    return Path(".cache") / "base-eval" / digest


def evaluate_checkpoint(params: Params, checkpoint: str = "latest", progress: Callable[[int], None] | None = None) -> dict:
    """Evaluate a checkpoint ("base" = the initial model, "latest", or a checkpoint directory) on
    the test split: writes <run_dir>/eval/<name>/{tables/, metrics.json} and returns
    {"metrics", "tables", "reused"}. The base model's evaluation is reused from .cache/base-eval
    when one with the same inputs exists (`reused` names it)."""
    name = eval_name(checkpoint)
    out = Path(params.run_dir) / "eval" / name
    cache = base_eval_cache(params) if checkpoint == "base" else None
    if cache is not None and (cache / "metrics.json").exists():
        shutil.copytree(cache, out, dirs_exist_ok=True)
        publish_run(params)
        return {"metrics": json.loads((out / "metrics.json").read_text()), "tables": None, "reused": str(cache)}
    if checkpoint == "base":
        model_dir = resolve_model_path(params.model.path, params.model.cache_dir)
    else:
        ckpt = latest_checkpoint(Path(params.run_dir) / "checkpoints") if checkpoint == "latest" else Path(checkpoint)
        if ckpt is None:
            raise ModelError(f"{params.run_dir}/checkpoints: no checkpoint to evaluate")
        model_dir = resolve_model_path(str(ckpt / "model"))  # a wrong path or a damaged checkpoint: one clear error
    tok = load_tokenizer(model_dir, params.model.chat_template_kwargs)
    # a vLLM engine loads the weights itself; the HF copy then only answers config questions, off the GPU
    device = "cpu" if params.rollout.backend == "vllm" else params.model.device
    model = load_model(model_dir, params.model.dtype, device)
    problems = run_problems(params, "test")
    grader, sandbox = make_grader(params, "all")
    try:
        samples = evaluate_problems(make_engine(params, model, tok, model_dir), tok, problems, params, grader,
                                    params.seed + 10_000, progress)
    finally:
        if sandbox is not None:
            sandbox.close()
    tables = {k: t.to_dict(orient="records") for k, t in
              write_results(samples, out / "tables", params.data.source, groups=["difficulty", "domain", "platform"]).items()}
    source = "base model" if checkpoint == "base" else str(model_dir.parent)
    metrics = {"checkpoint": source, **tables["overall"][0]}
    write_text_atomic(out / "metrics.json", json.dumps(metrics, indent=2))
    if cache is not None:
        tmp = cache.with_name(cache.name + f".tmp-{os.getpid()}")
        shutil.copytree(out, tmp, dirs_exist_ok=True)
        tmp.replace(cache) if not cache.exists() else shutil.rmtree(tmp)
    publish_run(params)
    return {"metrics": metrics, "tables": tables, "reused": None}


def claim_run_dir(params: Params, run_dir: Path, write: bool = True) -> None:
    """A run directory's checkpoints belong to the params they were trained with (`params.json`):
    resuming them with another algorithm, data or learning rate would silently mix two experiments.
    (Without checkpoints, e.g. after DVC removed a stage's outputs, the run starts fresh.)"""
    recorded = run_dir / "params.json"
    current = params.model_dump(mode="json")
    if recorded.is_file() and resume_candidates(run_dir / "checkpoints"):  # no checkpoint: a fresh start, nothing mixes
        saved = json.loads(recorded.read_text())
        conflicts = resume_conflicts(saved, current)
        if conflicts:
            shown = ", ".join(f"{k} ({lookup(saved, k)!r} -> {lookup(current, k)!r})"
                              for k in conflicts[:6]) + (f" and {len(conflicts) - 6} more" if len(conflicts) > 6 else "")
            raise ParamsError(f"{run_dir} was started with other params: {shown}; resume it with its own params "
                              f"or start a new run (--set run_dir=...)")
    if write:  # (a run directory from before params.json existed is adopted as it is)
        write_text_atomic(recorded, json.dumps(current, indent=1, sort_keys=True) + "\n")


def lookup(tree: dict, dotted: str):
    """tree['a']['b'] for 'a.b' (None where a level is missing)."""
    for part in dotted.split("."):
        tree = tree.get(part) if isinstance(tree, dict) else None
    return tree


class Run:
    """Model, tokenizer, trainer and rollout engine of one run directory, resumed if possible."""

    def __init__(self, params: Params, log: Callable[[str], None] = print, dist: Dist = SINGLE):
        self.params = params
        self.dist = dist
        self.run_dir = Path(params.run_dir)
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.metrics_path = self.run_dir / "metrics.jsonl"
        torch.manual_seed(params.seed)
        path = resolve_model_path(params.model.path, params.model.cache_dir)
        self.tok = load_tokenizer(path, params.model.chat_template_kwargs)
        self.model = load_model(path, params.model.dtype, dist.device if dist.world > 1 else params.model.device)
        self.model.train()
        check_fits_model(params, self.model)
        self.trainer = Trainer(self.model, self.tok, params, dist)
        if dist.is_main:
            fetch_run(params, log)  # a run moving to this machine resumes from the shared location
        dist.barrier()
        claim_run_dir(params, self.run_dir, write=dist.is_main)  # every rank refuses together
        if dist.is_main:
            recover(self.ckpt_dir, log)
        dist.barrier()
        latest = load_latest_intact(self.trainer, self.ckpt_dir, log)
        if latest is not None:
            log(f"resumed from {latest} (step {self.trainer.step})")
        self.rows = [r for r in read_jsonl(self.metrics_path) if r["train/step"] <= self.trainer.step]
        self.engine = make_engine(params, self.model, self.tok, path, dist)
        if latest is not None:
            self.engine.sync_weights(self.model)  # the engine loaded the base weights from `path`
        self.critic, self.critic_tok = self._critic(params, dist)

    def _critic(self, params: Params, dist: Dist):
        """Who writes critiques (feedback.sources: [critique]): the policy's own engine, or a judge model."""
        c = params.feedback.critique
        if "critique" not in params.feedback.sources:
            return None, None
        if c.model_path is None:
            return self.engine, self.tok
        path = resolve_model_path(c.model_path, params.model.cache_dir)
        tok = load_tokenizer(path, params.model.chat_template_kwargs)
        judge = load_model(path, params.model.dtype, dist.device if dist.world > 1 else params.model.device).eval()
        judge.requires_grad_(False)
        return make_engine(params, judge, tok, path, dist), tok

    def diagnose(self, problems: list[Problem], grade: Grader) -> dict[str, float]:
        """Teacher diagnostics when due (every diagnostics.every steps), on the weights the coming
        step starts from; every rank measures its share of the probe set."""
        d = self.params.diagnostics
        if not d.every or self.trainer.step % d.every:
            return {}
        probe = probe_problems(problems, d.problems, self.params.seed)
        mine = probe[self.dist.rank :: self.dist.world]
        m = teacher_diagnostics(self.engine, self.tok, mine, self.params, grade, self.trainer.step) if mine else {}
        # rank-weighted means: each rank's rates times its sample counts, summed
        n_student = len(mine) * d.samples
        n_teacher = m.get("diagnostics/contexts", 0.0) * n_student
        s_sum, t_sum, ns, nt = self.dist.sum([m.get("student/pass_rate", 0.0) * n_student,
                                              m.get("teacher/pass_rate", 0.0) * n_teacher, n_student, n_teacher])
        out = {"student/pass_rate": s_sum / max(ns, 1), "diagnostics/contexts": nt / max(ns, 1),
               "diagnostics/at_step": float(self.trainer.step), "time/diagnostics": m.get("time/diagnostics", 0.0)}
        if nt:
            out |= {"teacher/pass_rate": t_sum / nt, "teacher/gap": t_sum / nt - s_sum / max(ns, 1)}
        if self.dist.world == 1 and "teacher/pass_rate_after_failure" in m:
            out["teacher/pass_rate_after_failure"] = m["teacher/pass_rate_after_failure"]
        return out

    def update(self, samples: list[Sample]) -> dict[str, float]:
        """Critiques (when configured), then one trainer step; the rollout engine sleeps through the
        step and samples from the new weights after."""
        metrics = {}
        if self.critic is not None:
            seed = step_seed(self.params.seed, samples[0].step) + 3_333 + 7_777 * self.dist.rank
            metrics = write_critiques(self.critic, self.critic_tok, samples, self.params.feedback.critique, seed)
        self.engine.sleep()
        metrics |= self.trainer.train_step(samples)
        self.engine.sync_weights(self.model)
        return metrics

    @property
    def done(self) -> bool:
        return self.trainer.step >= self.params.train.steps

    def record(self, metrics: dict[str, float]) -> Path | None:
        """Append the step's metrics (atomically) and checkpoint when due; returns the checkpoint."""
        self.rows.append(metrics)
        if self.dist.is_main:
            write_jsonl_atomic(self.metrics_path, self.rows)
            write_plots(self.run_dir, self.rows)
        p = self.params
        if self.trainer.step % p.train.checkpoint_every == 0 or self.trainer.step == p.train.steps:
            ckpt = save_checkpoint(self.trainer, self.ckpt_dir, keep=p.train.keep_checkpoints)
            if self.dist.is_main:
                publish_run(p)
            return ckpt
        return None

    def step(self, problems: list[Problem], grade: Grader, phases: "Phases | None" = None) -> dict[str, float]:
        """One training step: teacher diagnostics when due -> rollouts -> grading -> update ->
        metrics and checkpoint. Returns the step's metrics (with the time of each phase)."""
        phases = phases or DIRECT
        step = self.trainer.step
        diagnostics = phases.diagnose(self, problems, grade)
        t0 = time.perf_counter()
        batch, rollouts = phases.rollouts(self, problems, step)
        t1 = time.perf_counter()
        graded = phases.grade(self, grade, batch, rollouts, step)
        t2 = time.perf_counter()
        metrics = phases.update(self, batch, rollouts, graded)
        metrics |= {"time/rollout": t1 - t0, "time/execution": t2 - t1, "time/step": time.perf_counter() - t0}
        phases.record(self, metrics | diagnostics)
        return metrics


class Phases:
    """How a training step's phases are called: directly (the plain loop), or each wrapped by an
    orchestrator (the train flow makes every phase a Prefect task, with per-step caching of the
    rollouts and grades and retries of sandbox failures). `Run.step` owns their order."""

    def diagnose(self, run: "Run", problems: list[Problem], grade: Grader) -> dict[str, float]:
        return run.diagnose(problems, grade)

    def rollouts(self, run: "Run", problems: list[Problem], step: int) -> tuple[list[Problem], list[Rollout]]:
        return rollout_step(run.engine, run.tok, problems, run.params, step, run.dist)

    def grade(self, run: "Run", grade: Grader, batch: list[Problem], rollouts: list[Rollout], step: int
              ) -> list[tuple[float, str]]:
        return grade(expand(batch, rollouts, run.params.rollout.group_size))

    def update(self, run: "Run", batch: list[Problem], rollouts: list[Rollout], graded: list[tuple[float, str]]
               ) -> dict[str, float]:
        return run.update(make_samples(batch, rollouts, graded, run.params.rollout.group_size, run.trainer.step))

    def record(self, run: "Run", metrics: dict[str, float]) -> Path | None:
        return run.record(metrics)


DIRECT = Phases()


def run_training(params: Params, grade: Grader = text_grader, log: Callable[[str], None] = print,
                 dist: Dist = SINGLE) -> Path:
    """Train for params.train.steps steps, resuming from the run directory's latest checkpoint.

    Under torchrun (several ranks) every rank runs this loop on its share of each step's
    problems; rank 0 logs and writes metrics and checkpoints.
    """
    log = log if dist.is_main else (lambda _: None)
    run = Run(params, log, dist)
    problems = run_problems(params, "train")
    if run.done:
        log(f"{run.run_dir}: already at step {run.trainer.step} of {params.train.steps}; nothing to do")
    while not run.done:
        log(format_metrics(run.step(problems, grade)))
    if dist.is_main:
        export_final(run.run_dir)
        publish_run(params, log)
    return run.run_dir


def completed_steps(run_dir: Path) -> int:
    """Training steps a run directory has recorded (its metrics.jsonl rows): the progress of a run
    in another process, e.g. the torchrun children."""
    rows = read_jsonl(run_dir / "metrics.jsonl")
    return int(rows[-1]["train/step"]) if rows else 0


# DVC plot files: every row of a file carries the same keys (DVC draws nothing from mixed rows), a
# step enters a file only when it logged all of the file's metrics, and a file an algorithm never
# fills is written as [] (DVC skips it; a missing file or field is an error).
PLOTS = {
    "training": {"reward": "reward/mean", "problems_solved": "reward/problems_solved",
                 "truncated": "response/truncated_frac"},
    "distillation": {"divergence": "distill/divergence", "entropy": "student/entropy"},
    "estep": {"accuracy": "estep/accuracy", "delta": "estep/delta"},
    "teacher": {"student_pass_rate": "student/pass_rate", "teacher_pass_rate": "teacher/pass_rate"},
}


def plot_rows(rows: list[dict]) -> dict[str, list[dict]]:
    """metrics.jsonl rows -> {plot file name: rows with `step` and that file's keys}."""
    return {name: [{"step": int(r["train/step"]), **{k: r[v] for k, v in keys.items()}}
                   for r in rows if all(v in r for v in keys.values())]
            for name, keys in PLOTS.items()}


def write_plots(run_dir: Path, rows: list[dict]) -> None:
    for name, data in plot_rows(rows).items():
        write_text_atomic(run_dir / "plots" / f"{name}.json", json.dumps(data, indent=1))


def format_metrics(m: dict[str, float]) -> str:
    parts = [f"step {int(m['train/step'])}", f"reward {m['reward/mean']:.3f}", f"solved {m['reward/problems_solved']:.2f}"]
    if "distill/divergence" in m:
        parts.append(f"div {m['distill/divergence']:.4f}")
    if "grpo/loss" in m:
        parts.append(f"grpo {m['grpo/loss']:.4f}")
    if "estep/loss" in m:
        parts.append(f"E-step loss {m['estep/loss']:.4f} acc {m['estep/accuracy']:.2f} delta {m['estep/delta']:.4f}")
    parts.append(f"{m['time/step']:.1f}s")
    return " | ".join(parts)
