"""A finished sweep as one table beside the paper's: mean over seeds, spread, uncertainty, FLOPs, plots.

Each table carries chance (uniformly random answers on the same questions), the floor that toy-scale
scores are read against.

Uncertainty of a variant's score: each run carries a bootstrap 95% interval over the benchmark's
questions; the variant's mean over seeds gets a standard error that combines the seeds' spread
(training noise) with the runs' question noise (interval half-width / 1.96). A variant's difference
from the reference variant is marked outside the noise when it exceeds 1.96 times the two standard
errors combined.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from vlora.atomic import write_text_atomic
from vlora.paper import paper_table, paper_tables
from vlora_eval.workflows.sweeps import Sweep, chance_levels

Z = 1.96


def summary(sweep: Sweep, records: list[dict]) -> pd.DataFrame:
    """One row per (variant, benchmark): mean, seed spread, standard error, runs, GFLOPs, paper score."""
    columns = list(paper_tables().columns)
    paper = {name: row.scores for name, row in paper_table(sweep.paper).rows.items()}
    rows = []
    for variant in sweep.variants:
        runs = [r for r in records if r["variant"] == variant]
        if not runs:
            continue
        for bench in sweep.benchmarks:
            metric = next(iter(runs[0]["scores"][bench]["headline"]))
            values = [r["scores"][bench]["headline"][metric] for r in runs]
            halves = [(r["scores"][bench]["interval"][metric][1] - r["scores"][bench]["interval"][metric][0]) / 2
                      for r in runs]
            mean = sum(values) / len(values)
            spread = _std(values)
            question_se = math.sqrt(sum((h / Z) ** 2 for h in halves)) / len(halves)
            stderr = math.sqrt(spread ** 2 / len(values) + question_se ** 2)
            rows.append({"variant": variant, "benchmark": bench, "metric": metric, "mean": mean, "seed_std": spread,
                         "stderr": stderr, "seeds": len(values), "gflops": runs[0]["gflops"],
                         "branch_scale": runs[0]["branch_scale"],
                         "paper": paper.get(variant, [None] * len(columns))[columns.index(bench)]
                         if bench in columns else None})
    table = pd.DataFrame(rows)
    return _mark_noise(table, sweep.reference)


def _std(values: list[float]) -> float:
    if len(values) < 2:
        return 0.0
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))


def _mark_noise(table: pd.DataFrame, reference: str) -> pd.DataFrame:
    """`vs_reference`: the difference from the reference variant; `outside_noise`: beyond 1.96 SE."""
    if table.empty:
        return table
    ref = table[table["variant"] == reference].set_index("benchmark")
    diffs, outside = [], []
    for _, row in table.iterrows():
        if row["variant"] == reference or row["benchmark"] not in ref.index:
            diffs.append(0.0)
            outside.append(False)
            continue
        base = ref.loc[row["benchmark"]]
        diff = row["mean"] - base["mean"]
        diffs.append(diff)
        outside.append(abs(diff) > Z * math.sqrt(row["stderr"] ** 2 + base["stderr"] ** 2))
    return table.assign(vs_reference=diffs, outside_noise=outside)


def markdown(sweep: Sweep, table: pd.DataFrame, command: str, chance: dict[str, dict[str, float]]) -> str:
    lines = [f"# {sweep.title} — ours (mini-suite scale) beside the paper's", "",
             f"Regenerate: `{command}` (config: `{sweep.source}`; every number comes from the runs' manifests under "
             f"`runs/<variant>/seed-<s>/eval/`).", "",
             f"Ours: mean over {int(table['seeds'].max()) if not table.empty else 0} seeds ± standard error (seeds' "
             "spread and the bootstrap 95% interval over questions combined); **bold** = the difference from the "
             f"reference variant `{sweep.reference}` is outside the noise (> 1.96 SE). GFLOPs: the variant's own "
             "architecture-exact cost at C = 32 text tokens (flops.analytic, one image). *chance*: the mean of "
             "uniformly random answers on the same questions (evalsuite.baselines).", ""]
    benches = list(dict.fromkeys(table["benchmark"]))
    lines.append("| variant | GFLOPs | " + " | ".join(f"{b} ours | paper" for b in benches) + " |")
    lines.append("|---|---:|" + "---:|---:|" * len(benches))
    for variant in dict.fromkeys(table["variant"]):
        rows = table[table["variant"] == variant].set_index("benchmark")
        cells = []
        for bench in benches:
            row = rows.loc[bench]
            value = f"{row['mean']:.1f} ± {row['stderr']:.1f}"
            cells += [f"**{value}**" if row["outside_noise"] else value,
                      "" if row["paper"] is None or pd.isna(row["paper"]) else f"{row['paper']}"]
        lines.append(f"| {variant} | {rows['gflops'].iloc[0]:.4g} | " + " | ".join(cells) + " |")
    metrics = dict(zip(table["benchmark"], table["metric"], strict=True))
    lines.append("| *chance* | | " + " | ".join(f"{chance[b][metrics[b]]:.1f} | " for b in benches) + "|")
    return "\n".join(lines) + "\n"


def plots(sweep: Sweep, table: pd.DataFrame, out: Path, chance: dict[str, dict[str, float]]) -> list[Path]:
    """One plot per benchmark: ours (mean ± 1.96 SE) against the swept parameter, chance, the paper's on a
    twin axis."""
    from matplotlib.figure import Figure  # no pyplot: no backend chosen, no global figure state

    written = []
    for bench in dict.fromkeys(table["benchmark"]):
        rows = table[table["benchmark"] == bench]
        fig = Figure(figsize=(5, 3.4))
        ax = fig.subplots()
        x = range(len(rows))
        ax.errorbar(x, rows["mean"], yerr=Z * rows["stderr"], fmt="o-", capsize=3, label="ours (mini-suite)")
        ax.axhline(chance[bench][rows["metric"].iloc[0]], color="grey", ls=":", lw=1, label="chance")
        ax.set_xticks(list(x), list(rows["variant"]))
        ax.set_xlabel(sweep.parameter)
        ax.set_ylabel(f"{bench} {rows['metric'].iloc[0]} (ours)")
        if rows["paper"].notna().any():
            twin = ax.twinx()
            twin.plot(list(x), rows["paper"], "s--", color="tab:orange", label="paper")
            twin.set_ylabel("paper", color="tab:orange")
        ax.set_title(f"{sweep.title}: {bench}", fontsize=9)
        fig.tight_layout()
        path = out / f"{bench}.png"
        fig.savefig(path, dpi=100)
        written.append(path)
    return written


def write(sweep: Sweep, records: list[dict], out: Path, command: str) -> dict[str, Path]:
    table = summary(sweep, records)
    chance = chance_levels(sweep)
    table = table.assign(chance=[chance[b][m] for b, m in zip(table["benchmark"], table["metric"], strict=True)])
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "table.csv", index=False)
    write_text_atomic(out / "table.md", markdown(sweep, table, command, chance))
    return {"csv": out / "table.csv", "markdown": out / "table.md", "plots": plots(sweep, table, out, chance)}
