"""`vlora-eval train`: the one training path (vlora_eval/workflows/train.py), with its tokenizer rule: learned
from the data when a tiny model starts from scratch, the checkpoint's own with --init; it says which."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from vlora.checkpoints import load_model
from vlora_eval.cli import app
from vlora_eval.workflows.train import learned_tokenizer

pytestmark = pytest.mark.usefixtures("one_thread")

QUICK = ["--set", "max_steps=2", "--set", "batch_size=4", "--set", "dtype=float32", "--set",
         "gradient_checkpointing=false", "--set", "max_length=512", "--set", "save_every=0"]


@pytest.fixture
def suite(tmp_path, monkeypatch):
    from evalsuite.mini import write_mini_suite

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    write_mini_suite(tmp_path / "suite", seed=0, scale=1)
    return tmp_path / "suite" / "train"


def test_train_from_scratch_learns_the_tokenizer_and_init_keeps_the_checkpoints(suite, tmp_path):
    data = suite / "finetune.json"
    first = CliRunner().invoke(app, ["train", "--model", "llava-tiny", "--stage", "finetune", "--data", str(data),
                                     "--images", str(suite), "--out", str(tmp_path / "a"), *QUICK, "--json"])
    assert first.exit_code == 0, first.output
    summary = json.loads(first.stdout)
    assert summary["tokenizer"].startswith("learned from the training data") and summary["steps"] == 2
    assert summary["placement"]["device"] == "cpu"
    learned, _ = learned_tokenizer([data], 1024, print)  # the rule the embedded default and sweeps use too
    trained = load_model(tmp_path / "a" / "model")
    assert trained.tokenizer.get_vocab() == learned.get_vocab()

    again = CliRunner().invoke(app, ["train", "--model", "llava-v1.5", "--stage", "finetune", "--data", str(data),
                                     "--images", str(suite), "--out", str(tmp_path / "b"),
                                     "--init", str(tmp_path / "a" / "model"), *QUICK, "--json"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["tokenizer"] == f"the checkpoint's own ({tmp_path / 'a' / 'model'})"
    assert load_model(tmp_path / "b" / "model").tokenizer.get_vocab() == learned.get_vocab()


def test_an_unknown_stage_is_one_line(suite, tmp_path):
    result = CliRunner().invoke(app, ["train", "--model", "vlora-tiny", "--stage", "sft", "--data",
                                      str(suite / "finetune.json"), "--images", str(suite), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "unknown training stage 'sft'; known: pretrain, finetune" in " ".join(result.output.split())
