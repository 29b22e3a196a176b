"""The task registry: every task is one module plus its templates and default YAML."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from datagen.config import ValidationConfig, load_config, packaged
from datagen.errors import ConfigError
from datagen.generation.prompts import load_templates
from datagen.tasks import all_tasks, get_task


def test_the_three_tasks_are_found_by_listing_the_package():
    assert [spec.name for spec in all_tasks()] == ["nli", "pairs", "sts"]


def test_fields_are_the_record_models_outputs_in_tier_order():
    assert get_task("sts").fields == ("positive", "intermediate", "negative")
    assert get_task("nli").fields == ("entailment", "contradiction")
    assert get_task("pairs").fields == ("positive",)


def test_unknown_task_names_the_known_ones():
    with pytest.raises(ConfigError, match="unknown task 'qa'; use one of: nli, pairs, sts"):
        get_task("qa")


@pytest.mark.parametrize("spec", all_tasks(), ids=lambda spec: spec.name)
def test_every_task_ships_templates_for_both_modes_and_a_default_config(spec):
    for mode in ("separate", "joint"):
        templates = load_templates(spec.name, mode)
        assert set(templates) == ({"joint"} if mode == "joint" else set(spec.fields))
    config = load_config(spec.default_config(), {"task": spec.name})
    assert config.task == spec.name
    assert spec.positive in spec.fields and set(spec.hierarchy) <= set(spec.fields)
    assert set(spec.ngcse_keys.values()) == set(spec.fields)
    assert spec.joint_schema()["required"] == list(spec.fields)
    assert (packaged("prompts") / spec.name).is_dir()


def test_pairs_record_rejects_a_copy_and_keeps_a_paraphrase():
    record = get_task("pairs").record
    anchor = "Heavy snow closed the mountain pass for two days."
    kept = record.model_validate({"anchor": anchor, "positive": "For two days the mountain pass was shut by heavy snow."},
                                 context=ValidationConfig())
    assert kept.outputs() == {"positive": "For two days the mountain pass was shut by heavy snow."}
    with pytest.raises(ValidationError) as caught:
        record.model_validate({"anchor": anchor, "positive": anchor}, context=ValidationConfig())
    assert caught.value.errors()[0]["type"] == "copies_anchor"


def test_meaning_changing_outputs_are_rejected_only_as_exact_copies():
    assert get_task("sts").meaning_changing == {"negative"}
    assert get_task("nli").meaning_changing == {"contradiction"}
    assert get_task("pairs").meaning_changing == frozenset()
