"""What `vlora-eval flops` reports: Table 1's GFLOPs column beside the paper's, VLoRA's ratio to
LLaVA-v1.5, the architecture-exact costs of the three models part by part (optionally checked
against FlopCounterMode), where the paper's accounting is rough, and the merge crossover.

`build_report` computes everything once (each FlopCounterMode count included); the CLI prints the
result and `write_report` writes the same numbers. The LLaVA and Q-Former of a report share the
VLoRA configuration's LLM and vision tower, so their visual tokens are the configured ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flops.analytic import (
    merge_crossover,
    model_flops,
    paper_input_space,
    paper_vlora_factorized,
    paper_vlora_inference,
)
from flops.settings import FlopsSettings, G
from vlora.atomic import write_text_atomic
from vlora.config import ModelConfig, Space
from vlora.paper import paper_table


def table1_rows(settings: FlopsSettings) -> list[dict[str, Any]]:
    llm, g, C = settings.base.llm, settings.base.connector, settings.text_len
    d, h, k, r = llm.num_layers, llm.hidden_size, settings.k, g.rank
    rows = []
    for name, entry in paper_table("table1").rows.items():
        if entry.vlora:
            ours = paper_vlora_inference(C, d, h, k, r, merge_term=False) / G
            full = paper_vlora_inference(C, d, h, k, r) / G
        else:
            ours = full = paper_input_space(entry.visual_tokens, C, d, h) / G
        rows.append({"model": name, "visual_tokens": entry.visual_tokens, "paper": entry.gflops,
                     "formula": round(ours, 1), "formula_full": round(full, 1),
                     "difference": round(ours - entry.gflops, 1), "note": entry.note})
    return rows


def headline(settings: FlopsSettings) -> dict[str, float]:
    """VLoRA / LLaVA-v1.5 at this text length, in the paper's accounting and factorized."""
    llm, g, C = settings.base.llm, settings.base.connector, settings.text_len
    d, h, k, r = llm.num_layers, llm.hidden_size, settings.k, g.rank
    llava = paper_input_space(settings.llava_tokens, C, d, h)
    return {"llava_tokens": settings.llava_tokens, "llava_gflops": llava / G,
            "vlora_gflops": paper_vlora_inference(C, d, h, k, r, merge_term=False) / G,
            "vlora_full_gflops": paper_vlora_inference(C, d, h, k, r) / G,
            "vlora_factorized_gflops": paper_vlora_factorized(C, d, h, k, r, len(g.types)) / G,
            "ratio": paper_vlora_inference(C, d, h, k, r, merge_term=False) / llava,
            "ratio_full": paper_vlora_inference(C, d, h, k, r) / llava,
            "ratio_factorized": paper_vlora_factorized(C, d, h, k, r, len(g.types)) / llava,
            "merge_crossover_tokens": merge_crossover(h, r)}


def exact_rows(settings: FlopsSettings, count: bool = False) -> list[dict[str, Any]]:
    """Per model and execution mode: vision, connector, LLM, perceptual weights (GFLOPs), analytic and,
    with `count`, FlopCounterMode on the meta device (its parts under "counted")."""
    rows = []
    for name, config in settings.models().items():
        for mode in (("factorized", "merged", "delta") if config.space is Space.PARAMETER else ("-",)):
            exact = model_flops(config, settings.text_len, mode if mode != "-" else "factorized")
            row = {"model": name, "mode": mode, "visual_tokens": config.visual_tokens,
                   **{f"{part}": value / G for part, value in exact.items()}, "total": sum(exact.values()) / G}
            if count:
                from flops.counted import count_model

                counted = count_model(config, settings.text_len, mode if mode != "-" else "factorized")
                row["counted"] = {part: value / G for part, value in counted.items()}
                row["counted_total"] = sum(counted.values()) / G
                row["counted_matches"] = all(abs(counted[p] - exact[p]) < 1 for p in exact)
            rows.append(row)
    return rows


def rough_spots(settings: FlopsSettings, exact: list[dict[str, Any]]) -> list[str]:
    """Where the paper's accounting departs from the architecture, with the numbers at this config
    (`exact`: the rows of `exact_rows`)."""
    from flops.analytic import generator_flops, llm_prefill, paper_input_space, vision_flops

    base, C, L = settings.base, settings.text_len, settings.llava_tokens
    llm, g = base.llm, base.connector
    d, h, k, r = llm.num_layers, llm.hidden_size, settings.k, g.rank
    n = C + L
    exact_llm = llm_prefill(llm, n)
    paper_mlp = 16 * n * h * h * d
    rows = {row["model"]: row for row in exact if row["mode"] in ("-", "factorized")}
    whole = rows["VLoRA"]["total"] / rows["LLaVA-v1.5"]["total"]
    return [
        f"MLP: the formula counts two h x 4h matrices (16nh^2 per block); Vicuna's SwiGLU has three h x "
        f"{llm.intermediate_size}: {exact_llm.mlp / G:.1f} vs {paper_mlp / G:.1f} GFLOPs at n = {n}",
        f"LM head: left out; {exact_llm.lm_head / G:.1f} GFLOPs for logits at every one of {n} positions, "
        f"{2 * h * llm.vocab_size / G:.2f} for the last only (what generation needs)",
        f"Attention: QK^T and AV over the full n x n ({exact_llm.attention_core / G:.1f} GFLOPs at n = {n}); a causal "
        f"kernel needs about half ({llm_prefill(llm, n, causal=True).attention_core / G:.1f})",
        f"Left out: the vision tower ({vision_flops(base.vision) / G:.1f} GFLOPs per image, both models) and the "
        f"connector: VLoRA's generator {sum(generator_flops(base).values()) / G:.1f} GFLOPs per image "
        f"({100 * sum(generator_flops(base).values()) / paper_vlora_inference(C, d, h, k, r, False):.0f}% of "
        f"VLoRA's 619), LLaVA's projector {rows['LLaVA-v1.5']['connector']:.1f}",
        f"24krh^2 materialises Delta W for all 12h^2 of a block ({24 * k * r * h * h / G:.1f} GFLOPs); the release "
        f"gives weights to q, k, v, o (4h^2) and an h x h branch beside the MLP: merged mode (q, k, v, o "
        f"materialised) costs {weights_cost(settings, 'merged') / G:.1f}, factorized branches {rows['VLoRA']['perceptual_weights']:.1f}",
        f"VLoRA's input keeps one masked placeholder position: C + 1 = {C + 1} positions",
        f"Whole models with CLIP and the connector: VLoRA {rows['VLoRA']['total']:.1f} vs LLaVA-v1.5 "
        f"{rows['LLaVA-v1.5']['total']:.1f} GFLOPs = {100 * whole:.1f}% (the paper's conclusion: about 10%); "
        f"input-space formula at L = {L}: {paper_input_space(L, C, d, h) / G:.1f}",
    ]


def weights_cost(settings: FlopsSettings, mode: str) -> float:
    """What the perceptual weights add to the LLM forward in an execution mode (one image)."""
    from flops.analytic import vlora_branches

    return vlora_branches(settings.base, settings.text_len + 1, mode)


@dataclass
class FlopsReport:
    """Everything `vlora-eval flops` shows and writes, computed once."""

    settings: FlopsSettings
    table1: list[dict[str, Any]]
    headline: dict[str, float]
    exact: list[dict[str, Any]]
    rough_spots: list[str]
    figure: Any = None  # Figure 4's data (a DataFrame), when asked for

    def to_dict(self) -> dict[str, Any]:
        return {"table1": self.table1, "headline": self.headline, "architecture_exact": self.exact,
                "rough_spots": self.rough_spots}


def build_report(settings: FlopsSettings, count: bool = False, figure: bool = False) -> FlopsReport:
    """The report; with `count` every part is checked with FlopCounterMode, and Figure 4's counted points
    reuse those counts (one count per model part)."""
    exact = exact_rows(settings, count or figure)
    data = None
    if figure:
        from flops.figure4 import figure4_data

        vlora = next(r for r in exact if r["model"] == "VLoRA" and r["mode"] == "factorized")["counted"]
        data = figure4_data(settings, counted_vlora=vlora["llm"] + vlora["perceptual_weights"])
    if figure and not count:
        exact = [{k: v for k, v in r.items() if not k.startswith("counted")} for r in exact]
    return FlopsReport(settings, table1_rows(settings), headline(settings), exact, rough_spots(settings, exact), data)


def markdown(report: FlopsReport) -> str:
    """The short markdown report committed under results/flops/."""
    settings, rows, ratio, exact = report.settings, report.table1, report.headline, report.exact
    C = settings.text_len
    lines = [f"# FLOPs at C = {C} text tokens (d = {settings.base.llm.num_layers}, h = {settings.base.llm.hidden_size}; "
             f"k = {settings.k}, r = {settings.base.connector.rank}; LLaVA-v1.5: {settings.llava_tokens} visual tokens)",
             "",
             "Regenerate: `vlora-eval flops --text-len 32 --count --plot results/flops`", "",
             "## Table 1, GFLOPs column: the paper's formulas against the printed numbers", "",
             "| model | visual tokens | paper | formula | difference | note |", "|---|---:|---:|---:|---:|---|"]
    lines += [f"| {r['model']} | {r['visual_tokens']} | {r['paper']} | {r['formula']:.1f} | {r['difference']:+.1f} | "
              f"{r['note']} |" for r in rows]
    lines += ["", f"VLoRA / LLaVA-v1.5: **{100 * ratio['ratio']:.1f}%** ({ratio['vlora_gflops']:.1f} / "
              f"{ratio['llava_gflops']:.1f}; with the merge term {100 * ratio['ratio_full']:.1f}%). Run with "
              f"factorized x.A.B^T branches instead of a merged Delta W: {ratio['vlora_factorized_gflops']:.1f} "
              f"GFLOPs, {100 * ratio['ratio_factorized']:.1f}%. Merging one branch pays off above "
              f"{ratio['merge_crossover_tokens']:.0f} text tokens.", "",
              "## Architecture-exact (what FlopCounterMode counts), one image, GFLOPs", "",
              "SwiGLU with its real width, the LM head for every position, VLoRA's masked placeholder position, "
              "the vision tower and the connector, which the paper leaves out.", "",
              "| model | mode | visual tokens | vision | connector | LLM | perceptual weights | total | counted |",
              "|---|---|---:|---:|---:|---:|---:|---:|---|"]
    for r in exact:
        counted = (f"{r['counted_total']:.1f} ({'=' if r['counted_matches'] else '!='})" if "counted_total" in r else "")
        lines.append(f"| {r['model']} | {r['mode']} | {r['visual_tokens']} | {r['vision']:.1f} | {r['connector']:.1f} | "
                     f"{r['llm']:.1f} | {r.get('perceptual_weights', 0):.1f} | {r['total']:.1f} | {counted} |")
    lines += ["", "## Where the paper's accounting is rough", ""] + [f"- {spot}" for spot in report.rough_spots]
    return "\n".join(lines) + "\n"


def write_report(out, report: FlopsReport) -> dict[str, Any]:
    """results/flops/: figure4.png, figure4.csv (when the report has Figure 4's data), table1.md."""
    from pathlib import Path

    from flops.figure4 import draw_figure4

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    if report.figure is not None:
        report.figure.round(4).to_csv(out / "figure4.csv", index=False)
        written["figure"] = draw_figure4(report.figure, out / "figure4.png", report.settings.text_len,
                                         report.settings.llava_tokens)
        written["csv"] = out / "figure4.csv"
    write_text_atomic(out / "table1.md", markdown(report))
    written["markdown"] = out / "table1.md"
    return written


def flops_config(model: str, llm_config: Path | None = None, overrides: Sequence[str] = ()) -> ModelConfig:
    """The VLoRA model the FLOPs are about: a VLoRA `--model` name's configuration (vlora: the paper's 7B;
    vlora-tiny), its LLM replaced by a Llama config.json when one is given; then the dotted `overrides`."""
    import json

    from vlora.config import LLMConfig
    from vlora.errors import ConfigError
    from vlora.overrides import apply_overrides
    from vlora.presets import model_preset

    config = model_preset(model)
    if config.space is not Space.PARAMETER:
        raise ConfigError(f"--model {model}: the FLOPs report is about a VLoRA model (vlora, vlora-tiny); it builds "
                          "LLaVA and the Q-Former on the same LLM and vision tower")
    if llm_config is not None:
        try:
            fields = json.loads(llm_config.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"LLM config {llm_config} does not exist") from None
        except (ValueError, UnicodeDecodeError, OSError) as e:
            raise ConfigError(f"LLM config {llm_config}: not readable JSON ({type(e).__name__})") from None
        if not isinstance(fields, dict):
            raise ConfigError(f"LLM config {llm_config}: expected a JSON object of Llama fields, found a "
                              f"{type(fields).__name__}")
        config = ModelConfig(LLMConfig.from_hf_dict(fields), config.vision, config.connector)
    return apply_overrides(config, overrides)
