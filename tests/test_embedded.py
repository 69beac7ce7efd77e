"""The embedded default: the main job on a fresh machine (empty home, no $LMUData), with a micro recipe."""

from __future__ import annotations

import dataclasses
import json

import pytest
from typer.testing import CliRunner

import vlora_eval.workflows.embedded as embedded
from vlora.foundations import Foundations
from vlora_eval.cli import app
from vlora_eval.workflows.foundations import shipped as shipped_foundations

MICRO = embedded.EmbeddedRecipe(
    version=2, foundations="shipped", models={},
    mini_suite=embedded.MiniSuiteSettings(seed=0, scale=1, answer_style={"mcq": "text", "yes_no": "desc"}),
    stages={stage: {"learning_rate": 1e-3, "batch_size": 4, "max_steps": 2, "dtype": "float32",
                    "gradient_checkpointing": False, "max_length": 1024, "save_every": 0, "epochs": 1}
            for stage in ("pretrain", "finetune")},
)


@pytest.fixture
def fresh_machine(clean_home, monkeypatch):
    """An empty home and cache, no $LMUData, the micro recipe; counts the training stages run."""
    monkeypatch.setattr(embedded, "recipe", lambda: MICRO)
    return clean_home


def test_the_main_job_works_on_a_fresh_machine(fresh_machine):
    tmp_path, stages = fresh_machine
    result = CliRunner().invoke(app, ["run", "--model", "vlora", "--bench", "mmbench", "--max-new-tokens", "2"])
    assert result.exit_code == 0, result.output
    flat = " ".join(result.output.split())
    assert "training the embedded tiny vlora" in flat and "using the embedded mini-suite's MMBench_DEV_EN" in flat
    assert "these scores are of the embedded tiny model (not a real checkpoint; it is at" in flat
    assert "on the embedded mini-suite (synthetic, not the real benchmark); give --checkpoint and --data-dir" in flat
    assert "headline: accuracy in % under CircularEval" in flat and "(chance: " in flat  # what the number is, chance
    assert stages == ["pretrain", "finetune"]
    manifest = json.loads((tmp_path / "vlora-eval-results" / "vlora-embedded" / "MMBench_DEV_EN" / "manifest.json"
                           ).read_text())  # the default results root: outside a checkout's committed results/
    assert manifest["model"]["embedded"] is True and manifest["data"]["embedded_mini_suite"] is True
    origin = manifest["model"]["origin"]  # it started from the shipped foundations, and says how it answers
    shipped = Foundations.load(shipped_foundations())
    assert origin["foundations"]["shipped"] is True and origin["foundations"]["fingerprint"] == shipped.fingerprint
    assert origin["answer_style"] == {"mcq": "text", "yes_no": "desc"}
    assert "the foundations' own" in origin["tokenizer"]
    assert manifest["model"]["extras"]["answer_style"] == origin["answer_style"]  # the model card says it too
    assert "it was taught to answer multiple choice: the option's text; yes/no: what is seen, then Yes or No" in flat
    assert "training the embedded tiny vlora" in flat and "foundations" in flat
    assert str(tmp_path / "cache") in manifest["checkpoint"]  # cached under the user cache directory
    again = CliRunner().invoke(app, ["run", "--model", "vlora", "--bench", "mmbench", "--max-new-tokens", "2",
                                     "--json"])
    assert again.exit_code == 0 and stages == ["pretrain", "finetune"]  # prepared once
    out = json.loads(again.stdout)[0]
    assert out["embedded"] == {"model": True, "data": True} and out["checkpoint"] == manifest["checkpoint"]
    inspected = CliRunner().invoke(app, ["inspect", str(tmp_path / "cache" / "vlora-eval" / "embedded"), "--json"])
    assert manifest["checkpoint"] in json.loads(inspected.stdout)["notes"][0]  # where the embedded model is
    assert 0 <= out["chance"]["Overall"] < 50 and out["headline_meaning"].startswith("accuracy in %")


@pytest.mark.parametrize("name,bench", [("llava-v1.5", "MME"), ("llava-v1.5-qformer", "MMBench_TEST_EN")])
def test_every_model_and_benchmark_name_has_an_embedded_stand_in(fresh_machine, name, bench):
    result = CliRunner().invoke(app, ["run", "--model", name, "--bench", bench, "--max-new-tokens", "2", "--json"])
    assert result.exit_code == 0, result.output
    (out,) = json.loads(result.stdout)
    assert out["embedded"] == {"model": True, "data": True} and out["complete"]


def test_real_data_replaces_the_embedded_part_it_names(fresh_machine):
    from tsv_fixtures import write_tsv, yes_no_table

    tmp_path, _ = fresh_machine
    write_tsv(yes_no_table(2), tmp_path / "home" / "LMUData" / "MME.tsv")  # the user's ~/LMUData
    result = CliRunner().invoke(app, ["run", "--model", "vlora", "--bench", "MME", "--max-new-tokens", "2", "--json"])
    assert result.exit_code == 0, result.output
    (out,) = json.loads(result.stdout)
    assert out["embedded"] == {"model": True, "data": False} and out["rows"] == 4


def test_embedded_plans_go_through_the_one_override_path(monkeypatch):
    with_rank = dataclasses.replace(MICRO, models={"vlora": embedded.EmbeddedModel({"connector.rank": 2})})
    monkeypatch.setattr(embedded, "recipe", lambda: with_rank)
    plan = embedded.plan("vlora")
    assert plan.model.connector.rank == 2
    assert plan.stages["pretrain"].trains == ("connector",)  # the paper's stages: LLM frozen in pre-training
    assert plan.stages["finetune"].trains == ("connector", "llm")
    found = Foundations.load(shipped_foundations())  # on the foundations' LLM and vision tower
    assert plan.model.llm == found.llm_config and plan.model.vision == found.vision_config
    assert plan.stages["finetune"].max_steps == 2
    monkeypatch.setattr(embedded, "recipe", lambda: dataclasses.replace(
        MICRO, models={"vlora": embedded.EmbeddedModel({"connector.ranq": 2})}))
    with pytest.raises(Exception, match="ranq"):
        embedded.plan("vlora")


def test_generate_says_its_answer_is_the_embedded_models_and_where_it_is(fresh_machine):
    result = CliRunner().invoke(app, ["generate", "--model", "vlora", "--question", "What is shown?",
                                      "--max-new-tokens", "2"])
    assert result.exit_code == 0, result.output
    flat = " ".join(result.output.split())
    assert "embedded: this answer is of the embedded tiny model (not a real checkpoint; it is at" in flat
    assert "give --checkpoint for real ones" in flat and "numbers" not in flat and "--data-dir" not in flat
