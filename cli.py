"""`vlora-eval`: a thin typer app. Each command parses options, calls one function, prints with rich.

User errors (`VLoRAEvalError`) are printed as one red line with exit code 2; anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Evaluate and cost multimodal LLMs that see through their weights (VLoRA).",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
console = Console()
DTYPES = {"auto": None, "float32": "float32", "bfloat16": "bfloat16", "float16": "float16", "float64": "float64"}


def user_errors(command):
    """Print a `VLoRAEvalError` as one line and exit 2."""
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from vlora.errors import VLoRAEvalError

        try:
            return command(*args, **kwargs)
        except VLoRAEvalError as e:
            Console(stderr=True).print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
    return wrapper


def _dtype(name: str):
    import torch

    if name not in DTYPES:
        from vlora.errors import ConfigError

        raise ConfigError(f"unknown dtype {name!r}; choose from {sorted(DTYPES)}")
    return None if DTYPES[name] is None else getattr(torch, DTYPES[name])


def _print_report(report) -> None:
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


@app.command()
@user_errors
def inspect(
    path: Annotated[Path, typer.Argument(help="A checkpoint folder.")],
    vision_tower: Annotated[Path | None, typer.Option(help="Local CLIP folder (overrides mm_vision_tower).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Say what a checkpoint folder is: official VLoRA, our own, or not a checkpoint; its dimensions,
    parameters per part and any problem found."""
    from vlora.checkpoints import describe

    report = describe(path, vision_tower=vision_tower)
    if as_json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        _print_report(report)
    if report.kind == "none":
        raise typer.Exit(1)


@app.command()
@user_errors
def generate(
    question: Annotated[str, typer.Option(help="The question; wrapped in the model's conversation template.")],
    model: Annotated[str | None, typer.Option(help="Model name (see `vlora-eval models`); checked against "
                                              "the checkpoint. Omitted: whatever the checkpoint holds.")] = None,
    checkpoint: Annotated[Path | None, typer.Option(help="A checkpoint folder (VLoRA, LLaVA or own).")] = None,
    image: Annotated[Path | None, typer.Option(help="Image file; omit for a text-only question.")] = None,
    vision_tower: Annotated[Path | None, typer.Option(help="Local CLIP folder (overrides mm_vision_tower).")] = None,
    mode: Annotated[str, typer.Option(help="VLoRA execution: factorized | merged | delta")] = "factorized",
    max_new_tokens: Annotated[int, typer.Option(min=1)] = 64,
    official_positions: Annotated[bool, typer.Option(help="Copy the VLoRA release's decoding positions.")] = False,
    dtype: Annotated[str, typer.Option(help="auto (as stored) | float32 | bfloat16 | float16 | float64")] = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Answer one question about one image (greedy decoding)."""
    from evalsuite.adapter import Failure, MultimodalAdapter, Request
    from evalsuite.registry import create_model
    from vlora.checkpoints import load_model
    from vlora.errors import InputError
    from vlora.perceptual_weights import ExecutionMode

    if mode not in {m.value for m in ExecutionMode}:
        raise InputError(f"unknown mode {mode!r}; choose factorized, merged or delta")
    if model is None and checkpoint is None:
        raise InputError("give --model NAME, --checkpoint PATH, or both")
    options = dict(mode=mode, official_positions=official_positions)
    if model is None:
        loaded = load_model(checkpoint, vision_tower=vision_tower, dtype=_dtype(dtype))
        adapter = MultimodalAdapter(loaded, loaded.config.kind, **options)
    else:
        adapter = create_model(model, checkpoint, vision_tower=vision_tower, dtype=_dtype(dtype), **options)
    request = Request("cli", question, (image,) if image is not None else (), max_new_tokens=max_new_tokens)
    (answer,) = adapter.generate([request])
    if isinstance(answer, Failure):
        raise InputError(answer.message)
    if as_json:
        print(json.dumps({"model": adapter.card.name, "checkpoint": str(checkpoint) if checkpoint else None,
                          "question": question, "answer": answer, "mode": mode}))
    else:
        console.print(answer, highlight=False)


@app.command()
@user_errors
def models(as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False) -> None:
    """List the model names `--model` accepts, with their visual tokens and parameters at preset size."""
    from accelerate import init_empty_weights

    from evalsuite.registry import MODELS
    from vlora.config import preset
    from vlora.model import MultimodalLM

    rows = []
    for name, spec in MODELS.items():
        config = preset(spec.preset)
        with init_empty_weights():
            counts = MultimodalLM.from_config(config, tokenizer=object(), empty=True).parameter_counts()
        rows.append({"name": name, "kind": spec.kind, "visual_tokens": config.visual_tokens,
                     "parameters": counts, "needs_checkpoint": spec.needs_checkpoint, "description": spec.description})
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    table = Table("name", "visual tokens", "total params", "connector", "weights", title="models (--model NAME)")
    for row in rows:
        p = row["parameters"]
        table.add_row(row["name"], str(row["visual_tokens"]), f"{sum(p.values()):,}", f"{p['connector']:,}",
                      "--checkpoint" if row["needs_checkpoint"] else "random")
    console.print(table)


@app.command()
@user_errors
def demo(
    out: Annotated[Path, typer.Option(help="Where the tiny checkpoints are written.")] = Path("out/demo"),
    seed: Annotated[int, typer.Option()] = 0,
) -> None:
    """Build a tiny random VLoRA, save it in the official and own layouts, inspect both, and answer
    questions about generated images in every execution mode (no downloads; seconds on a CPU)."""
    from vlora.demo import run_demo

    with console.status("building, saving, reloading and running a tiny VLoRA"):
        result = run_demo(out, seed)
    for report in result.reports:
        _print_report(report)
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


if __name__ == "__main__":
    app()
