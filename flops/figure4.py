"""Figure 4 re-drawn: GFLOPs against the number of visual tokens (input-space alignment for several
text lengths C, VLoRA flat) and the VLoRA / LLaVA ratio; the paper's analytic lines with points
counted by FlopCounterMode (architecture-exact) on the same axes, the paper's headline marked."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from flops.analytic import paper_input_space, paper_vlora_inference
from flops.settings import FlopsSettings, G

TEXT_LENGTHS = (32, 128, 512)
COUNTED_TOKENS = (32, 64, 256, 576)


def figure4_data(settings: FlopsSettings, counted_vlora: float | None = None, max_tokens: int = 1024,
                 step: int = 16) -> pd.DataFrame:
    """Long table: source (paper formula / counted), model, C, L, GFLOPs, ratio to LLaVA. With
    `counted_vlora` (VLoRA's LLM part with its branches, counted, in FLOPs), LLaVA's LLM is counted at
    several L beside it."""
    llm, g = settings.base.llm, settings.base.connector
    d, h, k, r = llm.num_layers, llm.hidden_size, settings.k, g.rank
    rows = []
    for C in TEXT_LENGTHS:
        vlora = paper_vlora_inference(C, d, h, k, r) / G
        for L in range(0, max_tokens + 1, step):
            llava = paper_input_space(L, C, d, h) / G
            rows.append({"source": "paper formula", "model": "LLaVA", "C": C, "L": L, "gflops": llava, "ratio": 1.0})
            rows.append({"source": "paper formula", "model": "VLoRA", "C": C, "L": L, "gflops": vlora,
                         "ratio": vlora / llava})
    if counted_vlora is not None:
        from flops.counted import count_llm, meta_llm

        model = meta_llm(llm)
        C, vlora = settings.text_len, counted_vlora / G
        for L in sorted({*COUNTED_TOKENS, settings.llava_tokens}):
            llava = count_llm(model, L + C) / G
            rows.append({"source": "counted", "model": "LLaVA", "C": C, "L": L, "gflops": llava, "ratio": 1.0})
            rows.append({"source": "counted", "model": "VLoRA", "C": C, "L": L, "gflops": vlora, "ratio": vlora / llava})
    return pd.DataFrame(rows)


def draw_figure4(data: pd.DataFrame, path: Path, text_len: int = 32, llava_tokens: int = 576) -> Path:
    from matplotlib.figure import Figure  # no pyplot: no backend chosen, no global figure state

    fig = Figure(figsize=(12, 4.6))
    left, right = fig.subplots(1, 2)
    colours = dict(zip(TEXT_LENGTHS, ("tab:blue", "tab:orange", "tab:green"), strict=True))
    paper = data[data["source"] == "paper formula"]
    for C, colour in colours.items():
        for model, style in (("LLaVA", "-"), ("VLoRA", "--")):
            line = paper[(paper["C"] == C) & (paper["model"] == model)]
            left.plot(line["L"], line["gflops"], style, color=colour, label=f"{model} (formula), C={C}")
        vl = paper[(paper["C"] == C) & (paper["model"] == "VLoRA")]
        right.plot(vl["L"], 100 * vl["ratio"], color=colour, label=f"C={C} (formula)")
    counted = data[data["source"] == "counted"]
    for model, marker in (("LLaVA", "o"), ("VLoRA", "s")):
        points = counted[counted["model"] == model]
        how = " factorized" if model == "VLoRA" else ""
        left.scatter(points["L"], points["gflops"], marker=marker, color="black", zorder=3,
                     label=f"{model}{how} counted (FlopCounterMode), C={text_len}")
    vl_counted = counted[counted["model"] == "VLoRA"]
    right.scatter(vl_counted["L"], 100 * vl_counted["ratio"], marker="s", color="black", zorder=3,
                  label=f"counted (VLoRA factorized), C={text_len}")
    headline = paper[(paper["C"] == text_len) & (paper["model"] == "VLoRA") & (paper["L"] == llava_tokens)]
    if not headline.empty:
        value = 100 * float(headline["ratio"].iloc[0])
        right.annotate(f"LLaVA-v1.5 ({llava_tokens} tokens), C={text_len}:\nVLoRA = {value:.1f}% (paper: about 8%)",
                       xy=(llava_tokens, value), xytext=(llava_tokens - 16, value + 45), arrowprops={"arrowstyle": "->"})
        left.axvline(llava_tokens, color="grey", lw=0.8, ls=":")
    left.set(xlabel="number of visual tokens L", ylabel="GFLOPs (LLM, one forward)", title="Cost")
    right.set(xlabel="number of visual tokens L", ylabel="VLoRA / LLaVA (%)", title="Ratio", ylim=(0, 105))
    left.legend(fontsize=7)
    right.legend(fontsize=7)
    left.grid(alpha=0.3)
    right.grid(alpha=0.3)
    fig.suptitle("VLoRA paper, Figure 4 re-drawn (Vicuna-7B shape; lines: paper formulas, points: counted)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    return path
