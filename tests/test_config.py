"""params.yaml loading: defaults, overrides, and errors that name the key."""

import shutil
from pathlib import Path

import pytest

from pydantic import BaseModel

from vpd_core.config import Params, ParamsError, load_params

REPO = Path(__file__).resolve().parents[1]


def test_repo_params_yaml_is_valid_and_complete():
    import yaml

    from vpd_core.config import read_params_file

    p = load_params(REPO / "params.yaml")
    raw = read_params_file(REPO / "params.yaml")  # params.yaml and the prompts.yaml it names

    def keys(model, prefix=""):
        for name, field in type(model).model_fields.items():
            value = getattr(model, name)
            if isinstance(value, BaseModel):
                yield from keys(value, prefix + name + ".")
            else:
                yield prefix + name

    def has(d, dotted):
        for part in dotted.split("."):
            if not isinstance(d, dict) or part not in d:
                return False
            d = d[part]
        return True

    missing = [k for k in keys(p) if not has(raw, k)]
    assert not missing, f"params.yaml should spell out every knob; missing {missing}"


def test_overrides_apply_and_parse_yaml_values():
    p = load_params(None, ["distill.alpha=0.5", "feedback.sources=[sibling]", "algorithm=grpo", "optim.grad_clip=null"])
    assert p.distill.alpha == 0.5 and p.feedback.sources == ["sibling"] and p.algorithm == "grpo"
    assert p.optim.grad_clip is None


@pytest.mark.parametrize(
    "text, expected",
    [
        ("distill:\n  alpah: 0.5\n", "unknown key 'distill.alpah'"),
        ("bogus: 1\n", "unknown key 'bogus'"),
        ("distill:\n  alpha: 1.5\n", "distill.alpha: Input should be less than or equal to 1"),
        ("algorithm: ppo\n", "algorithm: Input should be 'vpd', 'sdpo', 'grpo' or 'hybrid'"),
        ("feedback:\n  sources: [env, env]\n", "feedback.sources"),
        ("teacher:\n  template: 'no holes'\n", "teacher.template must contain {prompt}"),
        ("- a\n- b\n", "top level must be a mapping"),
        ("rollout: [\n", "not valid YAML"),
    ],
)
def test_bad_params_name_the_key(tmp_path, text, expected):
    f = tmp_path / "params.yaml"
    f.write_text(text)
    with pytest.raises(ParamsError) as e:
        load_params(f)
    assert expected in str(e.value)
    assert str(f) in str(e.value) or "YAML" in str(e.value)


@pytest.mark.parametrize(
    "override, expected",
    [
        ("distill.nope=1", "unknown key 'distill.nope'"),
        ("seed.x=1", "unknown key 'seed.x'"),
        ("vpd.e_every=0", "vpd.e_every: Input should be greater than or equal to 1"),
        ("noequals", "expected key=value"),
    ],
)
def test_bad_overrides_name_the_key(override, expected):
    with pytest.raises(ParamsError, match=expected.replace(".", r"\.").replace("'", "'")):
        load_params(None, [override])


def test_missing_file():
    with pytest.raises(ParamsError, match="nope.yaml: no such params file"):
        load_params("nope.yaml")


def test_defaults_match_method():
    p = Params()
    assert (p.distill.topk, p.distill.alpha, p.distill.is_clip) == (20, 1.0, 2.0)
    assert (p.vpd.e_every, p.vpd.beta, p.vpd.prior) == (5, 0.1, "current")
    assert (p.grpo.eps_low, p.grpo.eps_high) == (0.2, 0.28)
    assert p.teacher.quote_attempt is False


@pytest.mark.parametrize("path", ["params.yaml", *sorted(str(p.relative_to(REPO)) for p in (REPO / "presets").glob("*.yaml"))])
def test_params_files_survive_dvcs_yaml_round_trip(path, tmp_path):
    """`dvc exp run -S` rewrites params.yaml with ruamel (YAML 1.2); we read with PyYAML (1.1).
    A value such as an unquoted `no` would come back as False."""
    from ruamel.yaml import YAML

    yaml12 = YAML()
    data = yaml12.load((REPO / path).read_text())
    out = tmp_path / "params.yaml"
    with open(out, "w") as f:
        yaml12.dump(data, f)
    if (REPO / "prompts.yaml").exists():
        shutil.copy(REPO / "prompts.yaml", tmp_path / "prompts.yaml")
    assert load_params(out) == load_params(REPO / path)


def test_dvc_exp_set_changes_one_line_of_params_yaml(tmp_path):
    """`dvc exp run -S key=value` rewrites params.yaml through ruamel: every line but the changed
    one must come back byte for byte (long templates live in prompts.yaml, nulls are empty values)."""
    from dvc.utils.serialize import modify_yaml

    out = tmp_path / "params.yaml"
    shutil.copy(REPO / "params.yaml", out)
    with modify_yaml(out) as data:  # what `dvc exp run -S optim.lr=2e-5` calls
        data["optim"]["lr"] = 2e-5
    before, after = (REPO / "params.yaml").read_text().splitlines(), out.read_text().splitlines()
    assert len(before) == len(after)
    changed = [(a, b) for a, b in zip(before, after) if a != b]
    assert len(changed) == 1 and changed[0][1].startswith("  lr: 2e-05 "), changed


def test_templates_file_merges_and_a_key_in_both_files_is_refused(tmp_path):
    (tmp_path / "t.yaml").write_text('prompts:\n  minicode_user: "Q: {question}"\nteacher:\n  template: "{prompt}{solution}{feedback}"\n')
    (tmp_path / "p.yaml").write_text("templates: t.yaml\nteacher:\n  quote_attempt: true\n")
    p = load_params(tmp_path / "p.yaml")
    assert p.prompts.minicode_user == "Q: {question}" and p.teacher.template == "{prompt}{solution}{feedback}" and p.teacher.quote_attempt
    (tmp_path / "p.yaml").write_text('templates: t.yaml\nteacher:\n  template: "{prompt}{solution}{feedback}!"\n')
    with pytest.raises(ParamsError, match=r"t.yaml: teacher.template is also set in .*p.yaml"):
        load_params(tmp_path / "p.yaml")
    (tmp_path / "p.yaml").write_text("templates: missing.yaml\n")
    with pytest.raises(ParamsError, match="missing.yaml"):
        load_params(tmp_path / "p.yaml")


def test_resumable_keys_name_real_params():
    # a misspelt entry would silently refuse a harmless change on resume (it once named
    # train.gradient_checkpointing, which does not exist)
    from vpd_core.config import RESUMABLE

    def exists(model: type[BaseModel], dotted: str) -> bool:
        head, _, rest = dotted.partition(".")
        field = model.model_fields.get(head)
        if field is None:
            return False
        sub = field.annotation
        return not rest or (isinstance(sub, type) and issubclass(sub, BaseModel) and exists(sub, rest))

    assert [k for k in RESUMABLE if not exists(Params, k)] == []


def test_every_param_is_read_somewhere():
    # a field that nothing reads is a setting that silently does nothing (sandbox.memory_mb once
    # was one): each leaf's name must be read as an attribute (or key) outside config.py
    import re

    def leaves(model: type[BaseModel], prefix: str = ""):
        for name, field in model.model_fields.items():
            sub = field.annotation
            if isinstance(sub, type) and issubclass(sub, BaseModel):
                yield from leaves(sub, f"{prefix}{name}.")
            else:
                yield prefix + name

    code = "".join(f.read_text() for d in ("vpd_core", "vpd", "flows", "tasks", "sandboxes")
                   for f in (REPO / d).rglob("*.py") if f.name != "config.py")
    unread = [k for k in leaves(Params) if not re.search(rf"\.{k.rsplit('.', 1)[-1]}\b|[\"']{k.rsplit('.', 1)[-1]}[\"']", code)]
    assert unread == []


# ----------------------------------------------------------------------------- every parameter does something


def _leaf_fields(model, prefix=""):
    from pydantic import BaseModel

    for name, info in model.model_fields.items():
        if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
            yield from _leaf_fields(info.annotation, f"{prefix}{name}.")
        else:
            yield prefix + name


def unread_fields(model, roots=("vpd", "vpd_core", "sandboxes", "tasks", "flows")) -> list[str]:
    """Leaf fields of `model` whose name is never read outside vpd_core/config.py: no attribute access
    `.name` and no dotted key string ending in it ("train.steps"), anywhere in the project's code."""
    import ast

    project = Path(__file__).resolve().parents[1]
    read = set()
    for root in roots:
        for path in (project / root).rglob("*.py"):
            if path == project / "vpd_core" / "config.py":
                continue
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Attribute):
                    read.add(node.attr)
                elif isinstance(node, ast.Constant) and isinstance(node.value, str) and "." in node.value:
                    read.add(node.value.rsplit(".", 1)[-1])
    return [f for f in _leaf_fields(model) if f.rsplit(".", 1)[-1] not in read]


def test_every_params_field_is_read_somewhere():
    assert unread_fields(Params) == []


def test_the_unread_field_check_finds_a_field_nobody_reads():
    from pydantic import create_model

    section = create_model("Section", knob_nobody_reads_xq=(int, 1))
    fake = create_model("FakeParams", sandbox=(Params.model_fields["sandbox"].annotation, None), extra=(section, None))
    assert unread_fields(fake) == ["extra.knob_nobody_reads_xq"]


def test_resuming_a_run_from_before_a_key_existed_is_not_a_conflict():
    import copy

    from vpd_core.config import resume_conflicts

    current = Params().model_dump(mode="json")
    saved = copy.deepcopy(current)
    del saved["data"]["train_on_evaluation_set"]  # a run directory written before the key was added
    assert resume_conflicts(saved, current) == []
    flagged = copy.deepcopy(current)
    flagged["data"]["train_on_evaluation_set"] = True  # but not a different value than the old behaviour
    assert resume_conflicts(saved, flagged) == ["data.train_on_evaluation_set"]
    saved["optim"]["lr"] = current["optim"]["lr"] * 2
    assert resume_conflicts(saved, current) == ["optim.lr"]
