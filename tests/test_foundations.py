"""The foundations: the tiny LLM and CLIP every tiny model starts from (vlora/foundations.py,
vlora_eval/workflows/foundations.py, `vlora-eval foundations build/check`)."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from vlora.errors import CheckpointError
from vlora.foundations import Foundations
from vlora_eval.cli import app
from vlora_eval.workflows import foundations as workflow
from vlora_eval.workflows.foundations import Phase, shipped


def micro_recipe():
    """The shipped recipe cut to seconds: a 1-layer LLM, a 1-layer CLIP at 32 px, tens of steps."""
    full = workflow.recipe()
    language = dataclasses.replace(
        full.language, phases=[Phase(30, {"verdict": 0.5, "question": 0.5}), Phase(30, {"caption": 0.5, "question": 0.5})],
        held_out={"question": 6, "verdict": 6}, eval_every=20,
        recipe={"learning_rate": 5e-3, "batch_size": 8, "warmup_ratio": 0.1, "log_every": 10})
    return dataclasses.replace(
        full, scenes=60, held_out_scenes=10, vocab_size=400,
        avoid_mini_suite=workflow.MiniSuiteRef(seed=0, scale=1),
        llm={"hidden_size": 32, "intermediate_size": 64, "num_layers": 1, "num_heads": 2, "max_position_embeddings": 512},
        language=language, vision={"image_size": 32, "patch_size": 16, "hidden_size": 32, "intermediate_size": 64,
                                   "num_layers": 2, "num_heads": 2, "select_layer": -2},
        text_tower={"hidden_size": 32, "num_layers": 1, "num_heads": 2, "projection_dim": 16, "max_positions": 256},
        contrastive=workflow.ContrastiveSettings(1, {"learning_rate": 3e-3, "batch_size": 16, "max_steps": 30,
                                                     "weight_decay": 0.1, "warmup_ratio": 0.1, "log_every": 10}))


@pytest.fixture(scope="module")
def micro_build(tmp_path_factory):
    out = tmp_path_factory.mktemp("foundations") / "out"
    workflow.build(out, current=micro_recipe(), progress=False, say=lambda message: None)
    return out


def losses(path):
    return [json.loads(line)["loss"] for line in path.read_text().splitlines()]


def test_the_build_lowers_both_stages_losses_and_writes_loadable_foundations(micro_build):
    language, contrastive = losses(micro_build / "logs" / "language.jsonl"), losses(micro_build / "logs" / "contrastive.jsonl")
    assert language[-1] < 0.85 * language[0] and contrastive[-1] < contrastive[0]
    found = Foundations.load(micro_build)
    assert found.reproduces_reference() is None
    manifest = found.manifest
    assert manifest["command"] == "vlora-eval foundations build" and manifest["avoids"]["benchmark_images"] > 100
    held_out = json.loads((micro_build / "logs" / "language.jsonl").read_text().splitlines()[-1])["exact_match"]
    assert {"verdict_yn", "mcq"} <= set(held_out)  # scored per form on held-out scenes


def test_a_finished_build_is_not_redone_and_another_recipe_is_refused(micro_build):
    said = []
    workflow.build(micro_build, current=micro_recipe(), progress=False, say=said.append)
    assert "nothing to do" in said[-1]
    other = dataclasses.replace(micro_recipe(), seed=1)
    with pytest.raises(Exception, match="another foundations job"):
        workflow.build(micro_build, current=other, progress=False, say=said.append)


def test_a_changed_file_is_refused_in_one_line(micro_build, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(micro_build, copy, ignore=shutil.ignore_patterns("stages"))
    weights = copy / "llm" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\0")
    with pytest.raises(CheckpointError, match=r"llm/model.safetensors was changed since the foundations were built"):
        Foundations.load(copy)
    result = CliRunner().invoke(app, ["foundations", "check", str(copy)])
    assert result.exit_code == 2 and "was changed" in result.output and "Traceback" not in result.output


def test_the_shipped_foundations_reproduce_their_recorded_outputs():
    found = Foundations.load(shipped())
    assert found.reproduces_reference() is None
    result = CliRunner().invoke(app, ["foundations", "check"])
    assert result.exit_code == 0 and "reference outputs reproduced" in result.output
    assert all((shipped() / name).stat().st_size < 5 * 2**20 for name in found.manifest["files"])  # each under 5 MB


def test_the_shipped_language_stage_reproduces_its_first_logged_losses(tmp_path):
    """The command's first steps, re-run from the recipe: the same losses as the shipped log."""
    from vlora.training.language import train_language

    found = Foundations.load(shipped())
    current = workflow.recipe()
    assert found.manifest["recipe"]["language"] == dataclasses.asdict(current.language)  # the shipped ones are the recipe's
    scenes, _, _ = workflow.training_scenes(current, tmp_path, lambda message: None)
    tokenizer = found.tokenizer()
    first = 2 * current.language.recipe["log_every"]
    phases = [(p.steps, p.mix) for p in current.language.phases]
    recipe = workflow.language_recipe(current)
    llm = workflow.build_llm(current, tokenizer)
    batches = workflow.text_corpus(current, scenes, tokenizer).batches(phases, recipe.batch_size, current.seed)
    class Stop(Exception):
        pass

    def stopped(step):  # the full schedule's learning rates, stopped after `first` steps
        if step > first:
            raise Stop
        return batches(step)

    with pytest.raises(Stop):
        train_language(llm, recipe, stopped, recipe.max_steps, tmp_path / "language", identity={}, progress=False,
                       pad_id=tokenizer.pad_token_id)
    logged = losses(tmp_path / "language" / "train_log.jsonl")
    shipped_log = losses(shipped() / "logs" / "language.jsonl")[:len(logged)]
    assert len(logged) == 2 and logged == pytest.approx(shipped_log, rel=2e-3)


def test_frozen_parts_stay_bit_identical_through_the_two_stages(tmp_path):
    """Pre-training on the foundations moves only the connector; fine-tuning moves the LLM, never CLIP."""
    from evalsuite.mini import write_mini_suite
    from vlora.placement import Placement
    from vlora.presets import preset
    from vlora.training import official_recipe
    from vlora_eval.workflows.train import TrainingSet, run_stage, starting_model

    found = Foundations.load(shipped())
    suite = write_mini_suite(tmp_path / "mini", seed=0, scale=1)
    data = TrainingSet({"pretrain": suite["pretrain"], "finetune": suite["finetune"]}, tmp_path / "mini" / "train")
    model = starting_model(found.model_config(preset("vlora-tiny").connector), data, foundations=found).model
    llm, clip = load_file(shipped() / "llm" / "model.safetensors"), load_file(shipped() / "clip" / "model.safetensors")

    def same(module, state):
        return all(torch.equal(tensor, state[key]) for key, tensor in module.state_dict().items())

    assert same(model.llm, llm) and same(model.vision.clip, clip)  # every tensor filled from the foundations
    before = {k: v.clone() for k, v in model.connector.state_dict().items()}
    small = {"max_steps": 2, "batch_size": 2, "dtype": "float32", "gradient_checkpointing": False, "save_every": 0,
             "max_length": 512, "learning_rate": 1e-2}
    for stage in ("pretrain", "finetune"):
        run_stage(model, official_recipe(stage, **small), data, tmp_path / stage, placement=Placement.resolve("cpu", "float32"),
                  start="test", progress=False, say=lambda message: None)
        assert same(model.vision.clip, clip)
        assert same(model.llm, llm) == (stage == "pretrain")
    assert not all(torch.equal(v, model.connector.state_dict()[k]) for k, v in before.items())


def test_a_model_on_foundations_refuses_another_llm(tmp_path):
    from vlora.errors import ConfigError
    from vlora.presets import preset
    from vlora_eval.workflows.train import TrainingSet, starting_model

    found = Foundations.load(shipped())
    with pytest.raises(ConfigError, match="llm configuration is not the foundations'"):
        starting_model(preset("vlora-tiny"), TrainingSet({}, tmp_path), foundations=found)


@pytest.mark.parametrize("stage", ["language", "contrastive"])
def test_train_refuses_the_foundations_stages_in_one_line(tmp_path, stage):
    data = tmp_path / "data.json"
    data.write_text("[]")
    result = CliRunner().invoke(app, ["train", "--model", "vlora-tiny", "--stage", stage, "--data", str(data),
                                      "--images", str(tmp_path), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "vlora-eval foundations build" in " ".join(result.output.split())


@pytest.mark.parametrize("change,message", [
    (lambda r: dataclasses.replace(r, language=dataclasses.replace(r.language, phases=[Phase(5, {"verdcit": 1.0})])),
     r"language.phases\[0\].mix: 'verdcit' is not a sample kind"),
    (lambda r: dataclasses.replace(r, language=dataclasses.replace(r.language, answer_style={"mcq": "word"})),
     "language.answer_style: answer style: mcq must be one of"),
    (lambda r: dataclasses.replace(r, contrastive=workflow.ContrastiveSettings(1, {"learning_rat": 1.0})),
     "contrastive.recipe: "),
])
def test_a_bad_recipe_is_refused_before_any_work(tmp_path, change, message):
    from vlora.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        workflow.build(tmp_path / "out", current=change(micro_recipe()), progress=False, say=lambda m: None)
    assert not (tmp_path / "out").exists()


def test_held_out_shares_are_per_label_and_sorted():
    from vlora.training.language import share_by_label

    shares = share_by_label([True, False, True, True, False], ["yn", "mcq", "mcq", "mcq", "yn"])
    assert list(shares) == ["mcq", "yn"] and shares == {"mcq": 0.667, "yn": 0.5}


def test_answer_token_hits_are_greedy_next_tokens_per_learned_token_batched_as_single():
    from transformers import LlamaConfig, LlamaForCausalLM

    from vlora.prompting import IGNORE_INDEX
    from vlora.training.language import answer_token_hits, exact_match

    torch.manual_seed(0)
    llm = LlamaForCausalLM(LlamaConfig(vocab_size=12, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                       num_attention_heads=2, max_position_embeddings=32)).eval()
    generator = torch.Generator().manual_seed(1)
    samples = []
    for length, prompt in ((7, 4), (5, 2), (9, 6)):
        ids = torch.randint(1, 12, (length,), generator=generator).tolist()
        samples.append((ids, [IGNORE_INDEX] * prompt + ids[prompt:]))
    # the first sample's last token made the model's own greedy choice: one hit is certain
    with torch.no_grad():
        samples[0][0][-1] = samples[0][1][-1] = int(llm(torch.tensor([samples[0][0][:-1]])).logits[0, -1].argmax())
    hits = answer_token_hits(llm, samples, pad_id=0, batch=2)  # padded batches
    for (ids, labels), sample_hits in zip(samples, hits, strict=True):
        expected = []
        for t in range(1, len(ids)):
            if labels[t] != IGNORE_INDEX:  # the prefix alone, no padding, no batch
                with torch.no_grad():
                    expected.append(int(llm(torch.tensor([ids[:t]])).logits[0, -1].argmax()) == ids[t])
        assert sample_hits == expected
    assert hits[0][-1] is True
    assert exact_match(llm, samples, pad_id=0) == [all(sample_hits) for sample_hits in hits]
