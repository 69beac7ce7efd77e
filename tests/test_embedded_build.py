"""`vlora-eval embedded build` and the shipped embedded models: built, installed equal to what was trained, used by
the main job only when they are the current recipe's, checked against their manifest; the shipped ones are the
recipe's and their first logged losses reproduce."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from test_embedded import MICRO
from typer.testing import CliRunner

import vlora_eval.workflows.embedded as embedded
import vlora_eval.workflows.embedded_build as embedded_build
from vlora.checkpoints import load_model
from vlora.checkpoints.files import iter_tensors, weight_files
from vlora.errors import CheckpointError
from vlora.training import loop
from vlora_eval.cli import app


@pytest.fixture
def micro_shipped(clean_home, monkeypatch):
    """The micro recipe's embedded vlora, built by the command into a folder the package ships from."""
    tmp_path, stages = clean_home
    monkeypatch.setattr(embedded, "recipe", lambda: MICRO)
    out = tmp_path / "built"
    result = CliRunner().invoke(app, ["embedded", "build", "--out", str(out), "--model", "vlora"])
    assert result.exit_code == 0, result.output
    monkeypatch.setattr(embedded_build, "shipped", lambda: out)
    built = load_model(out / "work" / embedded.model_folder("vlora").name / "finetune" / "model")
    stages.clear()
    return out, built, stages


def test_the_build_keeps_only_what_the_stages_trained(micro_shipped):
    out, built, _ = micro_shipped
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["command"] == "vlora-eval embedded build"
    assert manifest["models"]["vlora"]["made_of"] == embedded.model_folder("vlora").name
    assert {"logs/vlora/pretrain.jsonl", "logs/vlora/finetune.jsonl"} <= set(manifest["files"])
    shards = weight_files(out / "vlora")
    assert len(shards) > 1 and all(path.stat().st_size < 5 * 2**20 for path in shards)  # sharded under 5 MB
    assert {f"vlora/{path.name}" for path in shards} <= set(manifest["files"])
    keys = {key for path in shards for key, _ in iter_tensors(path)}
    assert keys == {k for k in built.state_dict() if k.startswith(("llm.", "connector."))}  # no vision.*


def test_the_main_job_installs_a_shipped_model_equal_to_the_trained_one(micro_shipped):
    out, built, stages = micro_shipped
    result = CliRunner().invoke(app, ["run", "--model", "vlora", "--bench", "mmbench", "--max-new-tokens", "2",
                                      "--limit", "4"])
    assert result.exit_code == 0, result.output
    assert stages == []  # nothing trained
    assert "installing the shipped embedded vlora" in " ".join(result.output.split())
    installed = load_model(embedded.model_folder("vlora") / "finetune" / "model")
    theirs = built.state_dict()
    assert all(torch.equal(tensor, theirs[key]) for key, tensor in installed.state_dict().items())
    run = next((out.parent / "vlora-eval-results").rglob("manifest.json"))
    origin = json.loads(run.read_text())["model"]["origin"]
    assert origin["trained"].startswith("shipped: the shipped embedded vlora")


def test_a_shipped_model_of_another_recipe_is_not_used(micro_shipped, monkeypatch):
    other = dataclasses.replace(MICRO, stages={**MICRO.stages, "finetune": {**MICRO.stages["finetune"], "max_steps": 3}})
    monkeypatch.setattr(embedded, "recipe", lambda: other)
    record, why = embedded_build.shipped_record("vlora")
    assert record is None and "was made by another recipe than embedded.yaml's" in why
    _, _, stages = micro_shipped
    result = CliRunner().invoke(app, ["run", "--model", "vlora", "--bench", "mmbench", "--max-new-tokens", "2",
                                      "--limit", "4"])
    assert result.exit_code == 0 and stages == ["pretrain", "finetune"]
    assert "made by another recipe" in " ".join(result.output.split())


def test_a_changed_shipped_file_is_refused_in_one_line(micro_shipped):
    out, _, _ = micro_shipped
    weights = weight_files(out / "vlora")[0]
    weights.write_bytes(weights.read_bytes()[:-1] + b"\0")
    with pytest.raises(CheckpointError, match=rf"vlora/{weights.name} was changed since the embedded models were built"):
        embedded_build.shipped_record("vlora")
    result = CliRunner().invoke(app, ["run", "--model", "vlora", "--bench", "mmbench", "--limit", "2"])
    assert result.exit_code != 0 and "was changed since" in result.output and "Traceback" not in result.output


def test_the_build_refuses_an_unknown_model_and_a_foreign_folder(clean_home, tmp_path, monkeypatch):
    monkeypatch.setattr(embedded, "recipe", lambda: MICRO)
    result = CliRunner().invoke(app, ["embedded", "build", "--out", str(tmp_path / "b"), "--model", "gpt"])
    assert result.exit_code == 2 and "no embedded model 'gpt'" in result.output
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    result = CliRunner().invoke(app, ["embedded", "build", "--out", str(foreign), "--model", "vlora"])
    assert result.exit_code == 2 and (foreign / "notes.txt").read_text() == "mine" and "Traceback" not in result.output


# --- the shipped ones ---------------------------------------------------------------------------------------
def test_the_shipped_embedded_models_are_the_current_recipes():
    manifest = embedded_build.read_manifest(embedded_build.shipped())  # every file checked
    assert set(manifest["models"]) == set(embedded.names())
    for name in embedded.names():
        record, why = embedded_build.shipped_record(name)
        assert record is not None, why
    assert all((embedded_build.shipped() / name).stat().st_size < 5 * 2**20 for name in manifest["files"])


def test_the_shipped_vlora_pretrain_reproduces_its_first_logged_losses(clean_home, monkeypatch):
    """The command's first steps, re-run from the recipe: the same losses as the shipped log."""
    from vlora_eval.workflows.train import TrainingSet, train_plan

    tmp_path, _ = clean_home
    current = embedded.plan("vlora")
    first = 2 * current.stages["pretrain"].log_every
    real, calls = loop._optimizer_step, []

    def step_or_stop(*args, **kwargs):
        calls.append(1)
        if len(calls) > first:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(loop, "_optimizer_step", step_or_stop)
    data = TrainingSet.folder(embedded.mini_suite(lambda message: None, training=True) / "train", list(current.stages))
    with pytest.raises(KeyboardInterrupt):
        train_plan(current, data, tmp_path / "work", placement=embedded_placement(), label="check",
                   foundations=embedded.foundations(), progress=False, say=lambda message: None)
    now = [json.loads(line)["loss"] for line in (tmp_path / "work" / "pretrain" / "train_log.jsonl").read_text().splitlines()]
    logged = (embedded_build.shipped() / "logs" / "vlora" / "pretrain.jsonl").read_text().splitlines()
    then = [json.loads(line)["loss"] for line in logged[:len(now)]]
    assert len(now) == 2 and now == pytest.approx(then, rel=1e-4)


def embedded_placement():
    from vlora.placement import Placement

    return Placement.resolve("cpu", "float32")


def test_the_main_job_on_a_fresh_machine_uses_the_shipped_vlora(clean_home):
    tmp_path, stages = clean_home
    result = CliRunner().invoke(app, ["run", "--model", "vlora", "--bench", "mmbench", "--limit", "8", "--json"])
    assert result.exit_code == 0, result.output
    assert stages == []  # installed, not trained
    suite = embedded.mini_suite(lambda message: None)
    assert (suite / "MMBench_DEV_EN.tsv").is_file() and not (suite / "train").exists()  # no training set written
    out = json.loads(result.stdout)[0]
    manifest = json.loads((tmp_path / "vlora-eval-results" / "vlora-embedded" / "MMBench_DEV_EN" / "manifest.json"
                           ).read_text())
    origin = manifest["model"]["origin"]
    assert origin["trained"].startswith("shipped: the shipped embedded vlora") and origin["foundations"]["shipped"]
    assert manifest["model"]["extras"]["trained"] == origin["trained"]  # the model card says it too
    assert out["embedded"] == {"model": True, "data": True}
