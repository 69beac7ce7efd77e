"""A new connector kind and a new training stage are each one declaration: registered here, in the test,
then trained, saved, reloaded, evaluated on a benchmark and costed through the project's own paths."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import pytest
import torch
from torch import nn

from evalsuite.benchmarks import benchmark
from evalsuite.data import load_benchmark_data
from evalsuite.registry import create_model, model_specs
from evalsuite.runner import RunOptions, run_benchmark
from flops.analytic import model_flops
from vlora.config import ConnectorConfig, ModelConfig, Space, VisionConfig
from vlora.connector_kinds import KINDS, ConnectorKind, register_connector, unregister_connector
from vlora.errors import ConfigError
from vlora.placement import Placement
from vlora.presets import preset
from vlora.training import TrainingPlan, official_recipe
from vlora.training.stages import PRETRAIN, Stage, register_stage, unregister_stage
from vlora_eval.workflows.train import TrainingSet, train_plan

pytestmark = pytest.mark.usefixtures("one_thread")


@dataclass(frozen=True)
class PooledConfig(ConnectorConfig):
    """A test-only connector: CLIP's patches average-pooled into `tokens` visual tokens, then one linear."""

    kind: ClassVar[str] = "pooled"
    space: ClassVar[Space] = Space.INPUT
    tokens: int = 2

    def visual_tokens(self, vision: VisionConfig) -> int:
        return self.tokens


class PooledConnector(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.tokens = config.connector.tokens
        self.proj = nn.Linear(config.vision.hidden_size, config.llm.hidden_size)

    def forward(self, features: torch.Tensor) -> torch.Tensor:  # [N, c, d_v] -> [N, tokens, h]
        pooled = nn.functional.adaptive_avg_pool1d(features.transpose(1, 2), self.tokens).transpose(1, 2)
        return self.proj(pooled)


@pytest.fixture
def pooled_kind():
    kind = register_connector(ConnectorKind(
        PooledConfig, f"{__name__}:PooledConnector", "Pooled", "pooled-llava", "a test connector (pooled patches)",
        {"7b": PooledConfig(tokens=64), "small": PooledConfig(tokens=16), "tiny": PooledConfig(tokens=2)}))
    yield kind
    unregister_connector(kind.name)


@pytest.fixture
def caption_llm_stage():
    stage = register_stage(Stage("captions-llm", "plain", "captions; the connector and the LLM learn",
                                 {**PRETRAIN.defaults, "trains": (("connector", "llm"), "a test stage")}))
    yield stage
    unregister_stage(stage.name)


def test_a_registered_connector_has_names_presets_config_and_cost(pooled_kind):
    assert "pooled" in KINDS and model_specs()["pooled-llava"].kind == "pooled"
    assert model_specs()["pooled-tiny"].needs_checkpoint is False
    config = preset("pooled-tiny")
    assert config.visual_tokens == 2 and config.positions_per_image == 2 and config.space is Space.INPUT
    assert ModelConfig.from_dict(config.to_dict()) == config  # a checkpoint's config names it by kind
    parts = model_flops(config, 32)
    assert parts["connector"] == 2 * 2 * config.vision.hidden_size * config.llm.hidden_size  # counted: one linear
    with pytest.raises(ConfigError, match="already registered"):
        register_connector(pooled_kind)


def test_a_new_stage_and_connector_train_and_evaluate_end_to_end(pooled_kind, caption_llm_stage, tmp_path):
    from evalsuite.mini import write_mini_suite

    suite = tmp_path / "suite"
    write_mini_suite(suite, seed=0, scale=1)
    recipe = official_recipe("captions-llm", learning_rate=1e-3, batch_size=4, max_steps=3, dtype="float32",
                             gradient_checkpointing=False, max_length=512, save_every=0, warmup_ratio=0.0)
    assert recipe.trains == ("connector", "llm")
    plan = TrainingPlan(model=preset("pooled-tiny"), stages={"captions-llm": recipe})
    data = TrainingSet({"captions-llm": suite / "train" / "pretrain.json"}, suite / "train")
    placement = Placement.resolve("cpu", "float32", 1)
    model_dir, tokenizer = train_plan(plan, data, tmp_path / "train", placement=placement, label="pooled",
                                      progress=False, say=lambda m: None)
    assert model_dir == tmp_path / "train" / "captions-llm" / "model" and "learned from the training data" in tokenizer
    log = (tmp_path / "train" / "captions-llm" / "train_log.jsonl").read_text().splitlines()
    assert len(log) == 3
    adapter = create_model("pooled-llava", model_dir, batch_size=4)
    assert adapter.card.kind == "pooled" and adapter.card.config.visual_tokens == 2
    data = load_benchmark_data(benchmark("MME"), suite / "MME.tsv", embedded=True)
    result = run_benchmark(adapter, data, RunOptions(batch_size=4, max_new_tokens=2, limit=8, results_root=tmp_path / "r",
                                                     run_name="pooled", progress=False), str(model_dir))
    assert result.complete and result.report is not None and result.failures == 0
    with pytest.raises(ConfigError, match="unknown training stage 'nope'"):
        official_recipe("nope")
