"""FLOPs: the paper's formulas against Table 1 and closed forms, counted = architecture-exact analytic,
fvcore = half, the CPU SDPA formula, Figure 4 and the CLI."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from flops.analytic import (
    llm_prefill,
    merge_crossover,
    model_flops,
    paper_input_space,
    paper_vlora_factorized,
    paper_vlora_inference,
    paper_vlora_training,
    vlora_branches,
)
from flops.counted import count, count_llm, count_model, fvcore_count, meta_llm
from flops.report import headline, table1_rows
from flops.settings import FlopsSettings
from vlora.config import LLMConfig, ModelConfig
from vlora.presets import preset
from vlora_eval.cli import app

D, H, C, K, R = 32, 4096, 32, 8, 64


def test_paper_formulas_reproduce_table1():
    assert paper_input_space(32, C, D, H) / 1e9 == pytest.approx(826.8, abs=0.05)
    assert paper_input_space(64, C, D, H) / 1e9 == pytest.approx(1241.8, abs=0.05)
    assert paper_input_space(256, C, D, H) / 1e9 == pytest.approx(3754.3, abs=0.05)
    assert paper_input_space(576, C, D, H) / 1e9 == pytest.approx(8027.8, abs=0.05)
    assert paper_vlora_inference(C, D, H, K, R) / 1e9 == pytest.approx(620.6, abs=0.05)
    assert paper_vlora_inference(C, D, H, K, R, merge_term=False) / 1e9 == pytest.approx(619.0, abs=0.05)
    rows = {r["model"]: r for r in table1_rows(FlopsSettings())}
    assert all(abs(r["difference"]) <= 1.0 for name, r in rows.items() if name not in ("Idefics-instruct", "OpenFlamingo v2"))
    assert rows["OpenFlamingo v2"]["formula"] == pytest.approx(1241.8) and rows["OpenFlamingo v2"]["paper"] == 1362


def test_formulas_against_hand_expanded_closed_forms():
    # 24(L+C)dh^2 + 4(L+C)^2dh with L = 0 is the text-only LLM; VLoRA adds exactly its weight terms
    base = paper_input_space(0, C, D, H)
    assert paper_vlora_inference(C, D, H, K, R) - base == 24 * K * R * H**2 + 12 * K * H**2
    assert paper_vlora_training(C, D, H, K, R) - base == 24 * K * R * H**2 + 12 * C * K * H**2 + 14 * C * K * H
    assert paper_vlora_factorized(C, D, H, K, R) - base == 4 * C * K * 5 * H * R
    assert paper_vlora_factorized(C, D, H, K, R) / 1e9 == pytest.approx(414.2, abs=0.05)
    ratio = headline(FlopsSettings())
    assert ratio["ratio"] == pytest.approx(619.0 / 8027.8, abs=1e-4) and 0.07 < ratio["ratio"] < 0.09


def test_merge_crossover_is_where_the_costs_meet():
    n = merge_crossover(H, R)
    assert n == pytest.approx((2 * R + 1) * H / (4 * R))
    assert n * 4 * H * R == pytest.approx(2 * H * H * R + H * H)  # factorized branch == materialise + add


def test_architecture_exact_llm_closed_forms():
    llm = preset("vlora-7b").llm
    count_608 = llm_prefill(llm, 608)
    assert count_608.attention_projections == 8 * 608 * 32 * 4096**2
    assert count_608.mlp == 6 * 608 * 32 * 4096 * 11008
    assert count_608.attention_core == 4 * 608**2 * 32 * 4096
    assert count_608.lm_head == 2 * 608 * 4096 * 32000
    assert count_608.total / 1e9 == pytest.approx(8228.0, abs=0.05)
    assert llm_prefill(llm, 608, logits="last").total / 1e9 == pytest.approx(8068.9, abs=0.05)
    assert llm_prefill(llm, 608, causal=True).attention_core == 2 * 608 * 609 * 32 * 4096


def test_flop_counter_on_the_vicuna_7b_shape_equals_the_analytic_count():
    model = meta_llm(preset("vlora-7b").llm)
    assert count_llm(model, 608) / 1e9 == pytest.approx(8228.0, abs=0.05)
    assert count_llm(model, 608, logits="last") / 1e9 == pytest.approx(8068.9, abs=0.05)
    assert count_llm(model, 608) == llm_prefill(preset("vlora-7b").llm, 608).total


def test_grouped_query_attention_counts():
    llm = LLMConfig(hidden_size=256, intermediate_size=688, num_layers=3, num_heads=8, num_kv_heads=2, vocab_size=500)
    assert count_llm(meta_llm(llm), 40) == llm_prefill(llm, 40).total


@pytest.mark.parametrize("name,modes", [("vlora-tiny", ("factorized", "merged", "delta")),
                                        ("llava-tiny", ("factorized",)), ("llava-qformer-tiny", ("factorized",))])
def test_counted_model_parts_equal_the_analytic_parts(name, modes):
    config = preset(name)
    for mode in modes:
        assert count_model(config, 20, mode) == pytest.approx(model_flops(config, 20, mode), rel=0, abs=0.5)


def test_counted_vlora_7b_parts_and_gqa_branches():
    config = preset("vlora-7b")
    counted = count_model(config, 32, "factorized")
    assert counted == model_flops(config, 32, "factorized")
    assert counted["connector"] / 1e9 == pytest.approx(38.2, abs=0.05)  # the generator the paper leaves out
    gqa = ModelConfig(LLMConfig(hidden_size=128, intermediate_size=344, num_layers=4, num_heads=4, num_kv_heads=2,
                                vocab_size=300), preset("vlora-tiny").vision, preset("vlora-tiny").connector)
    assert vlora_branches(gqa, 10, "factorized") == pytest.approx(count_model(gqa, 9)["perceptual_weights"])


def test_cpu_sdpa_attention_is_counted_on_real_tensors():
    from transformers import LlamaForCausalLM

    llm = LLMConfig(hidden_size=64, intermediate_size=160, num_layers=2, num_heads=4, num_kv_heads=4, vocab_size=100)
    ids = torch.randint(0, 100, (1, 24))
    totals = {}
    for implementation in ("sdpa", "eager"):
        model = LlamaForCausalLM(llm.to_hf(implementation)).eval()
        with torch.no_grad():
            totals[implementation] = count(model, input_ids=ids)[0]
    assert totals["sdpa"] == totals["eager"] == llm_prefill(llm, 24).total


def test_fvcore_counts_half_of_flop_counter():
    from transformers import LlamaForCausalLM

    llm = LLMConfig(hidden_size=64, intermediate_size=160, num_layers=2, num_heads=4, num_kv_heads=4, vocab_size=100)
    model = LlamaForCausalLM(llm.to_hf("eager")).eval()

    class Logits(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, ids):
            return self.inner(input_ids=ids, use_cache=False).logits

    ids = torch.randint(0, 100, (1, 16))
    with torch.no_grad():
        counted = count(model, input_ids=ids, use_cache=False)[0]
    macs, unsupported = fvcore_count(Logits(model), ids)
    assert 2 * macs == counted
    assert "aten::softmax" in unsupported or "aten::silu" in unsupported  # what neither counts, fvcore names


def test_flops_command_json_and_plot(tmp_path):
    runner = CliRunner()
    result = runner.invoke(app, ["flops", "--text-len", "32", "--json", "--plot", str(tmp_path)])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["headline"]["vlora_gflops"] == pytest.approx(619.0, abs=0.05)
    assert {r["model"]: r["formula"] for r in out["table1"]}["LLaVA-v1.5"] == pytest.approx(8027.8, abs=0.05)
    image = Image.open(tmp_path / "figure4.png")
    assert image.size[0] > 1000 and image.size[1] > 400
    csv = (tmp_path / "figure4.csv").read_text().splitlines()
    assert csv[0] == "source,model,C,L,gflops,ratio" and any(line.startswith("counted,VLoRA,32,576,") for line in csv)
    assert "Where the paper's accounting is rough" in (tmp_path / "table1.md").read_text()


def test_flops_command_generator_settings():
    runner = CliRunner()
    result = runner.invoke(app, ["flops", "--set", "connector.rank=16", "--set", "connector.skip=8", "--json"])
    out = json.loads(result.stdout)
    assert out["headline"]["vlora_gflops"] == pytest.approx(paper_vlora_inference(32, D, H, 4, 16, False) / 1e9)
    bad = runner.invoke(app, ["flops", "--set", "connector.skip=64"])
    assert bad.exit_code == 2 and "exceeds the LLM's 32 layers" in " ".join(bad.output.split())


def test_flops_report_uses_the_configured_visual_tokens():
    out = json.loads(CliRunner().invoke(app, ["flops", "--model", "vlora-tiny", "--json"]).stdout)
    tiny = preset("vlora-tiny")
    assert out["headline"]["llava_tokens"] == tiny.vision.num_patches == 16
    llava = next(r for r in out["architecture_exact"] if r["model"] == "LLaVA-v1.5")
    assert llava["visual_tokens"] == 16
    assert llava["llm"] == pytest.approx(llm_prefill(tiny.llm, 32 + 16).total / 1e9)


def test_each_count_is_made_once(monkeypatch, tmp_path):
    import flops.counted

    calls = []
    real = flops.counted.count_model
    monkeypatch.setattr(flops.counted, "count_model", lambda *a, **k: calls.append(a) or real(*a, **k))
    result = CliRunner().invoke(app, ["flops", "--model", "vlora-tiny", "--count", "--plot", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    assert len(calls) == len(set(calls)) == 5  # LLaVA, Q-Former, VLoRA x 3 modes: each once
    assert (tmp_path / "figure4.png").is_file() and (tmp_path / "table1.md").is_file()
