"""How `vlora-eval` shows things: rich tables and lines for each command's result (cli.py parses
options and calls; this module only prints)."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Column, Table

console = Console()


def checkpoint_report(report) -> None:
    colour = {"none": "red"}.get(report.kind, "green")
    console.print(f"[bold]{report.path}[/]: [{colour}]{report.summary}[/] (kind: {report.kind})")
    for section, values in report.dims.items():
        table = Table(title=section, show_header=False, title_justify="left")
        for key, value in values.items():
            table.add_row(key, str(value))
        console.print(table)
    if report.parameters:
        table = Table("part", "parameters", title="parameters", title_justify="left")
        for part, count in report.parameters.items():
            table.add_row(part, f"{count:,}")
        table.add_row("total", f"{sum(report.parameters.values()):,}", style="bold")
        console.print(table)
    for note in report.notes:
        console.print(f"note: {note}", highlight=False)
    for problem in report.problems:
        console.print(f"[yellow]problem:[/] {problem}", highlight=False)
    if not report.problems and report.kind != "none":
        console.print("[green]no problems found[/]")


def score_report(report, title: str, meaning: str | None = None, chance: dict[str, float] | None = None) -> None:
    """The headline (what it means, and chance beside it when known), the full table, the notes."""
    console.print(f"[bold]{title}[/]  (extraction rules {report.rules}, answer mode {report.answer_mode}; "
                  f"{report.scored_rows} rows scored, {report.missing_rows} missing)", highlight=False)
    if meaning:
        console.print(f"  headline: {meaning}", highlight=False)
    for name, value in report.headline.items():
        beside = f"   (chance: {chance[name]:.2f}, random answers scored the same way)" if chance and name in chance else ""
        console.print(f"  {name}: [bold green]{value:.2f}[/]{beside}", highlight=False)
    frame = report.table.set_index(report.table.columns[0]) if "split" in report.table else report.table
    if frame.shape[1] > frame.shape[0]:  # wide (many categories): one row per column instead
        frame = frame.T
        if list(frame.columns) == [0]:
            frame.columns = ["value"]
    table = Table("", *[str(c) for c in frame.columns], title="full table", title_justify="left")
    for name, row in frame.iterrows():
        table.add_row(str(name), *[f"{v:.4f}" if isinstance(v, float) else str(v) for v in row])
    console.print(table)
    for note in report.notes:
        console.print(f"note: {note}", highlight=False)


def models_table(rows: list[dict]) -> None:
    table = Table("name", "visual tokens", "total params", "connector", "weights", title="models (--model NAME)")
    for row in rows:
        p = row["parameters"]
        table.add_row(row["name"], str(row["visual_tokens"]), f"{sum(p.values()):,}", f"{p['connector']:,}",
                      "--checkpoint" if row["needs_checkpoint"] else "random")
    console.print(table)


def flops_report(report, timing: list[dict] | None, written: dict, counted: bool) -> None:
    text_len, rows, ratio, exact, spots = (report.settings.text_len, report.table1, report.headline, report.exact,
                                           report.rough_spots)
    table = Table("model", "visual tokens", "paper GFLOPs", "formula", "difference",
                  title=f"Table 1, GFLOPs at C = {text_len}")
    notes = list(dict.fromkeys(r["note"] for r in rows if r["note"]))
    for r in rows:
        mark = f" [{notes.index(r['note']) + 1}]" if r["note"] else ""
        table.add_row(r["model"] + mark, str(r["visual_tokens"]), str(r["paper"]), f"{r['formula']:.1f}",
                      f"{r['difference']:+.1f}")
    console.print(table)
    for i, note in enumerate(notes, 1):
        console.print(f"[{i}] {note}", highlight=False, markup=False)
    console.print(f"VLoRA / LLaVA-v1.5 ({ratio['llava_tokens']} visual tokens) = [bold]{100 * ratio['ratio']:.1f}%[/] "
                  f"({ratio['vlora_gflops']:.1f} / "
                  f"{ratio['llava_gflops']:.1f} GFLOPs; {100 * ratio['ratio_full']:.1f}% with the merge term); "
                  f"factorized branches: {ratio['vlora_factorized_gflops']:.1f} GFLOPs = "
                  f"{100 * ratio['ratio_factorized']:.1f}%; merging pays off above "
                  f"{ratio['merge_crossover_tokens']:.0f} text tokens", highlight=False)
    table = Table(Column("model", no_wrap=True), Column("mode", no_wrap=True), "vis. tok.", "vision", "connector", "LLM",
                  "weights", "total", *(["counted"] if counted else []), title="architecture-exact GFLOPs, one image")
    for r in exact:
        extra = [f"{r['counted_total']:.1f} {'=' if r['counted_matches'] else '!='}"] if counted else []
        table.add_row(r["model"], r["mode"], str(r["visual_tokens"]), f"{r['vision']:.1f}", f"{r['connector']:.1f}",
                      f"{r['llm']:.1f}", f"{r.get('perceptual_weights', 0):.1f}", f"{r['total']:.1f}", *extra)
    console.print(table)
    if timing:
        table = Table("visual tokens", "LLaVA prefill ms", "VLoRA prefill ms", "VLoRA merged ms", "VLoRA/LLaVA",
                      "LLaVA decode ms/tok", "VLoRA decode ms/tok", title="CPU latency, small config, median of 5")
        for r in timing:
            table.add_row(str(r["visual_tokens"]), f"{r['llava_prefill_ms']:.1f}", f"{r['vlora_factorized_prefill_ms']:.1f}",
                          f"{r['vlora_merged_prefill_ms']:.1f}", f"{r['vlora_over_llava_prefill']:.2f}",
                          f"{r['llava_decode_ms']:.1f}", f"{r['vlora_factorized_decode_ms']:.1f}")
        console.print(table)
    console.print("[bold]where the paper's accounting is rough[/]")
    for spot in spots:
        console.print(f"- {spot}", highlight=False, markup=False)
    for name, path in written.items():
        console.print(f"wrote {name}: {path}")


def demo_report(result) -> None:
    for report in result.reports:
        checkpoint_report(report)
    table = Table("mode", "answers (random weights: the words are noise)", "seconds", title="generation")
    for mode, answers in result.answers.items():
        table.add_row(mode, " | ".join(repr(a) for a in answers), f"{result.seconds[mode]:.3f}")
    console.print(table)
    table = Table("check", "max relative logit difference", title="agreement")
    for check, value in result.agreement.items():
        table.add_row(check, f"{value:.2e}", style="green" if value <= 1e-5 else "red")
    console.print(table)
    console.print(f"checkpoints written under [bold]{result.out}[/]; try "
                  f"[bold]vlora-eval inspect {result.out / 'vlora-tiny-official'}[/]")


def mini_suite(paths: dict, seed: int, scale: int, out) -> None:
    table = Table("name", "file", title=f"mini-suite (seed {seed}, scale {scale})")
    for name, path in paths.items():
        table.add_row(name, str(path))
    console.print(table)
    console.print(f"run a model on it: [bold]vlora-eval run --model vlora-tiny --bench mmbench --data-dir {out}[/]")


def train_report(summary: dict) -> None:
    if summary["already_trained"]:
        console.print(f"{summary['model']} · {summary['stage']}: already trained ({summary['steps']} steps, final loss "
                      f"{summary['final_loss']:.4f}); model in [bold]{summary['model_dir']}[/]", highlight=False)
        return
    resumed = f" (resumed from step {summary['resumed_from']})" if summary["resumed_from"] else ""
    console.print(f"{summary['model']} · {summary['stage']}: {summary['steps']} steps{resumed}, final loss "
                  f"[bold]{summary['final_loss']:.4f}[/], {summary['samples_per_second']:.1f} samples/s, "
                  f"{summary['tokens_per_second']:,.0f} tokens/s, {summary['seconds']:.0f} s", highlight=False)
    console.print(f"model in [bold]{summary['model_dir']}[/] (own layout), log in {summary['log']}")


def embedded_caveat(model: Path | None, data: bool = False, answer: bool = False, style: dict | None = None) -> None:
    """Say plainly when a score (or an answer) is of the embedded tiny model (at `model`) or on the embedded
    mini-suite, and what replaces each; and how the embedded model was taught to answer (`style`)."""
    parts = [part for part, used in ((f"the embedded tiny model (not a real checkpoint; it is at {model})", model),
                                      ("the embedded mini-suite (synthetic, not the real benchmark)", data)) if used]
    if not parts:
        return
    instead = " and ".join(how for how, used in (("--checkpoint", model), ("--data-dir (or $LMUData)", data)) if used)
    what = "this answer is" if answer else "these scores are"
    console.print(f"[bold yellow]embedded:[/] {what} of {' on '.join(parts)}; give {instead} for real ones",
                  highlight=False)
    if model is not None and style:
        from evalsuite.mini.items import AnswerStyle

        console.print(f"[bold yellow]embedded:[/] it was taught to answer {AnswerStyle(**style).describe()} "
                      "(README: Answer style)", highlight=False)
