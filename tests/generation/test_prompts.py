import pytest

from datagen.errors import TemplateError
from datagen.generation.prompts import PACKAGED_TEMPLATES, load_templates, render_requests
from datagen.tasks import joint_schema

ALL = [("nli", "separate"), ("nli", "joint"), ("sts", "separate"), ("sts", "joint")]


@pytest.mark.parametrize("task, mode", ALL)
def test_packaged_templates_have_paper_structure(task, mode):
    templates = load_templates(task, mode)
    for template in templates.values():
        roles = [m["role"] for m in template.prefix]
        # system, then three few-shot user/assistant turns
        assert roles == ["system"] + ["user", "assistant"] * 3
        system = template.prefix[0]["content"]
        assert "In the following examples" in system
        assert "without any" in system  # the closing constraint


@pytest.mark.parametrize("task, mode", ALL)
def test_prefix_is_byte_identical_across_rows_and_anchor_is_last(task, mode):
    templates = load_templates(task, mode)
    requests = render_requests(templates, task, mode, [("0", "A cat sleeps."), ("1", "Rain falls on the roof.")])
    per_template = len(templates)
    first, second = requests[0], requests[per_template]
    assert first.messages[:-1] == second.messages[:-1]
    assert first.messages[-1] == {"role": "user", "content": "A cat sleeps."}
    assert second.messages[-1]["content"] == "Rain falls on the roof."
    assert (first.json_schema == joint_schema(task)) == (mode == "joint")


@pytest.mark.parametrize("seed", ["{{ 7*7 }}", "{% for x in y %}{% endfor %}", "{{ ''.__class__.__mro__ }}", "{# c #}"])
def test_seed_with_template_syntax_reaches_llm_verbatim(seed):
    templates = load_templates("nli", "separate")
    requests = render_requests(templates, "nli", "separate", [("0", seed)])
    assert all(r.messages[-1]["content"] == seed for r in requests)


def test_joint_few_shot_answers_are_valid_json_in_tier_order():
    import json

    prefix = load_templates("sts", "joint")["joint"].prefix
    answer = prefix[2]["content"]
    assert list(json.loads(answer)) == ["positive", "intermediate", "negative"]


def _copy_templates(tmp_path, task="nli"):
    target = tmp_path / task
    target.mkdir(parents=True)
    for path in (PACKAGED_TEMPLATES / task).glob("*.jinja"):
        (target / path.name).write_text(path.read_text())
    return target


def test_user_templates_dir_is_used(tmp_path):
    target = _copy_templates(tmp_path)
    source = (target / "entailment.jinja").read_text()
    (target / "entailment.jinja").write_text(source.replace("{{ sentence }}", "Premise: {{ sentence }}"))
    requests = render_requests(load_templates("nli", "separate", tmp_path), "nli", "separate", [("0", "Hi there.")])
    assert requests[0].messages[-1]["content"] == "Premise: Hi there."


def test_sandbox_refuses_template_reaching_for_internals(tmp_path):
    target = _copy_templates(tmp_path)
    source = (target / "entailment.jinja").read_text()
    evil = source.replace("{{ sentence }}", "{{ sentence.__class__.__mro__[1].__subclasses__() }}")
    (target / "entailment.jinja").write_text(evil)
    # The few-shot turns render at load time, so the sandbox stops it before any seed is seen.
    with pytest.raises(TemplateError, match="__class__.*unsafe"):
        load_templates("nli", "separate", tmp_path)


@pytest.mark.parametrize(
    "source, message",
    [
        ("{% macro system() %}x{% endmacro %}", "shots"),
        ("{%- set shots = [{'sentence': 'a', 'output': 'b'}] -%}{% macro system() %}x{% endmacro %}", "user"),
        ("{% set shots = [", "failed to load"),
    ],
)
def test_broken_user_templates_give_template_error(tmp_path, source, message):
    target = _copy_templates(tmp_path)
    (target / "entailment.jinja").write_text(source)
    with pytest.raises(TemplateError, match=message):
        load_templates("nli", "separate", tmp_path)


def test_missing_template_names_the_file(tmp_path):
    (tmp_path / "nli").mkdir()
    with pytest.raises(TemplateError, match="entailment.jinja is missing"):
        load_templates("nli", "separate", tmp_path)


def _packaged_prompts():
    for task in ("nli", "sts"):
        yield pytest.param(None, task, "joint", id=f"default-{task}-joint")
    for variant_dir in sorted((PACKAGED_TEMPLATES / "variants").iterdir()):
        for task_dir in sorted(p for p in variant_dir.iterdir() if p.is_dir()):
            modes = ["joint"] if (task_dir / "joint.jinja").is_file() else []
            if any((task_dir / f"{field}.jinja").is_file() for field in ("entailment", "positive")):
                modes.append("separate")
            for mode in modes:
                yield pytest.param(variant_dir.name, task_dir.name, mode, id=f"{variant_dir.name}-{task_dir.name}-{mode}")


@pytest.mark.parametrize("variant, task, mode", list(_packaged_prompts()))
def test_packaged_prompts_load_and_their_joint_shots_are_rows_the_checks_keep(variant, task, mode):
    """A few-shot answer teaches the model what to write, so it must be a row the strictest shipped checks keep
    (pipelines/sts_checked.yaml, pipelines/nli_checked.yaml): a shot that drops a detail or a hedge would teach
    exactly what validation later rejects."""
    import json

    from datagen.config import ValidationConfig
    from datagen.tasks import get_task
    from datagen.workflow import load_pipeline

    templates = load_templates(task, mode, variant=variant)
    if mode != "joint":
        assert set(templates) == set(get_task(task).fields)
        return
    checked = PACKAGED_TEMPLATES.parent / "pipelines" / f"{task}_checked.yaml"
    validation = load_pipeline(checked).generate.config.validation if checked.is_file() else ValidationConfig()
    prefix = templates["joint"].prefix
    shots = [(prefix[i]["content"], prefix[i + 1]["content"]) for i in range(1, len(prefix), 2)]
    assert shots
    record = get_task(task).record
    for anchor, answer in shots:
        outputs = json.loads(answer)
        assert list(outputs) == list(get_task(task).fields)
        record.model_validate({"anchor": anchor, **outputs}, context=validation)
