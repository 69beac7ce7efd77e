"""The commands over vlora_eval/workflows/: train, export, sweep and report. Registered on the app in
vlora_eval/cli/__init__.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from vlora_eval.cli import views
from vlora_eval.cli.common import (
    RESULTS,
    Device,
    DType,
    Dtype,
    Sets,
    Threads,
    check_folder_option,
    console,
    resolve_placement,
    say,
    user_errors,
)


@user_errors
def train(
    model: Annotated[str, typer.Option(help="Model name (see `vlora-eval models`).")],
    stage: Annotated[str, typer.Option(help="A training stage (vlora/training/stages.py): pretrain (captions; the "
                                       "connector learns, LLM and CLIP frozen) or finetune (instructions; connector "
                                       "+ LLM learn).")],
    data: Annotated[Path, typer.Option(help="LLaVA-format JSON: [{id, image, conversations}, ...].")],
    images: Annotated[Path, typer.Option(help="The folder that the records' image paths are relative to.")],
    out: Annotated[Path, typer.Option(help="Output folder: train_log.jsonl, checkpoints/, model/.")],
    init: Annotated[Path | None, typer.Option(help="Start from this checkpoint (needed for the 7B names).")] = None,
    set_: Sets = None,
    resume: Annotated[bool, typer.Option(help="Continue this job's newest intact checkpoint in --out (exactly); "
                                         "--no-resume starts it over.")] = True,
    force: Annotated[bool, typer.Option(help="Use an --out that holds other files or another job's output (only "
                                        "vlora-eval's own files there are deleted).")] = False,
    device: Device = "auto",
    threads: Threads = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Train one stage of the paper's recipe (the release's hyper-parameters; change any with --set,
    e.g. --set learning_rate=1e-4 --set max_steps=200 --set connector.rank=16). Several GPUs or
    machines: start it with `accelerate launch` (DDP, FSDP or DeepSpeed as accelerate is configured)."""
    from vlora_eval.workflows.train import train_stage

    check_folder_option(out, "--out")
    placement = resolve_placement(device, DType.FLOAT32, threads)
    result, tokenizer = train_stage(model, stage, data, images, out, init=init, overrides=set_ or (),
                                    placement=placement, progress=not as_json, resume=resume, force=force, say=say)
    summary = {"model": model, "stage": stage, "steps": result.steps, "resumed_from": result.resumed_from,
               "final_loss": result.final_loss, "seconds": round(result.seconds, 2),
               "samples_per_second": round(result.samples_per_second, 2),
               "tokens_per_second": round(result.tokens_per_second, 1), "model_dir": str(result.model_dir),
               "log": str(result.log_file), "tokenizer": tokenizer, "placement": placement.describe(),
               "already_trained": result.already_trained}
    if as_json:
        print(json.dumps(summary, indent=2))
        return
    views.train_report(summary)


@user_errors
def export(
    checkpoint: Annotated[Path, typer.Argument(help="A VLoRA checkpoint (e.g. the model/ folder `train` wrote).")],
    out: Annotated[Path, typer.Option(help="Folder for the official release layout.")],
    clip_out: Annotated[Path | None, typer.Option(help="Folder for its CLIP tower (default: <out>-clip).")] = None,
    force: Annotated[bool, typer.Option(help="Write into folders that hold other files or another export (only "
                                        "vlora-eval's own files there are deleted).")] = False,
) -> None:
    """Write a VLoRA checkpoint in the official release layout (FeipengMa6/VLoRA), CLIP beside it."""
    from vlora.checkpoints import load_model
    from vlora.checkpoints.files import folder_fingerprint
    from vlora.training import export_official_vlora

    check_folder_option(out, "--out")
    model = load_model(checkpoint)
    folder, already = export_official_vlora(model, out, clip_out, source=folder_fingerprint(checkpoint), force=force)
    if already:
        console.print(f"{folder} already holds this export (nothing written; --force writes it again)")
        return
    console.print(f"wrote the official VLoRA layout to [bold]{folder}[/]; inspect it with vlora-eval inspect {folder}")


@user_errors
def sweep(
    config: Annotated[str, typer.Argument(help="A shipped sweep (main, types, rank, blocks: the paper's Tables 2-5) "
                                           "or a sweep config file.")],
    set_: Sets = None,
    shard: Annotated[str | None, typer.Option(help="i/n: this process's share of the jobs (default: RANK/WORLD_SIZE "
                                              "under torchrun or accelerate launch, else all).")] = None,
    out: Annotated[Path | None, typer.Option(help="Output folder (default: vlora-eval-results/sweeps/<name>).")] = None,
    force: Annotated[bool, typer.Option(help="Redo jobs whose output was written for another plan (the config "
                                        "changed); only the sweep's own files are replaced.")] = False,
    device: Device = "auto",
    dtype: Dtype = DType.AUTO,
    threads: Threads = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Train and evaluate every variant x seed of an ablation sweep (skipping finished ones, resuming the
    rest), then write the table beside the paper's (CSV + markdown), FLOPs per variant and one plot per
    benchmark. Bad configs are refused before any training."""
    from evalsuite.runner import parse_shard
    from vlora_eval.workflows import sweep_table
    from vlora_eval.workflows.sweeps import load_sweep, run_sweep

    plan = load_sweep(config, set_ or ())
    placement = resolve_placement(device, dtype, threads)
    given = out
    out = out or RESULTS / "sweeps" / plan.name
    check_folder_option(out, "--out")
    records = run_sweep(plan, out, placement=placement, shard=parse_shard(shard) if shard else placement.process.shard,
                        progress=not as_json, force=force, say=say)
    written = {}
    if len(records) == len(plan.jobs):
        command = (f"vlora-eval sweep {config}" + (f" --out {given}" if given else "")
                   + "".join(f" --set {s}" for s in set_ or ()))
        written = sweep_table.write(plan, records, out, command)
    else:
        say(f"{len(records)} of {len(plan.jobs)} jobs are done; the table is written when all are")
    if as_json:
        print(json.dumps({"sweep": plan.name, "jobs": len(plan.jobs), "done": len(records),
                          "written": {k: str(v) for k, v in written.items() if k != "plots"}}, indent=2))
    elif written:
        console.print(Path(written["markdown"]).read_text(encoding="utf-8"), markup=False, highlight=False)
        console.print(f"table and plots in [bold]{out}[/]")


@user_errors
def report(
    results: Annotated[Path, typer.Option(help="The results folder to assemble (the project's committed one: "
                                          "--results results).")] = RESULTS,
    out: Annotated[Path | None, typer.Option(help="The report file (default: <results>/report.md).")] = None,
) -> None:
    """One markdown report of results/: Table 1 (GFLOPs; our scores where runs exist), Tables 2-5 ours
    beside the paper's, Figure 4; every number linked to the manifest or command that produced it."""
    from vlora_eval.workflows.report import build_report

    if not results.is_dir():
        from vlora.errors import InputError

        raise InputError(f"--results {results} is not a folder")
    path = build_report(results, out)
    console.print(f"wrote [bold]{path}[/]")


@user_errors
def foundations_build(
    out: Annotated[Path, typer.Option(help="Output folder: tokenizer/, llm/, clip/, logs/, manifest.json (and the "
                                      "stages' own folders under stages/).")],
    steps_scale: Annotated[float, typer.Option(help="Run every stage this fraction of its steps (a quick trial; the "
                                               "shipped foundations use 1).", min=0.001, max=1.0)] = 1.0,
    force: Annotated[bool, typer.Option(help="Use an --out that holds other files or other foundations (only "
                                        "vlora-eval's own files there are deleted).")] = False,
    threads: Threads = None,
) -> None:
    """Build the foundations every tiny model starts from (vlora_eval/workflows/foundations.yaml): a tokenizer,
    the tiny LLM pretrained on the world's text, the tiny CLIP pretrained contrastively on its images. On the
    CPU; deterministic; a killed build resumes at its stage. About 12 minutes on 2 cores."""
    from vlora_eval.workflows import foundations

    check_folder_option(out, "--out")
    resolve_placement("cpu", DType.FLOAT32, threads)
    current = foundations.recipe()
    if steps_scale != 1.0:
        current = current.with_steps(steps_scale)
    foundations.build(out, current=current, force=force, say=say)


@user_errors
def embedded_build(
    out: Annotated[Path, typer.Option(help="Output folder: <model>/ (the trained tensors), logs/, manifest.json (and "
                                      "the training's own folders under work/).")],
    model: Annotated[list[str] | None, typer.Option(help="An embedded model to build (repeatable; default: all).")
                     ] = None,
    force: Annotated[bool, typer.Option(help="Use an --out that holds other files or other models (only vlora-eval's "
                                        "own files there are deleted).")] = False,
    threads: Threads = None,
) -> None:
    """Train the embedded models by vlora_eval/workflows/embedded.yaml (the paper's two stages from the foundations,
    on the embedded mini-suite) and keep what the stages trained, as shipped in vlora_eval/embedded_models/. On the
    CPU; deterministic; a killed build resumes. About 75 minutes of one core for the three."""
    from vlora_eval.workflows import embedded, embedded_build

    check_folder_option(out, "--out")
    placement = resolve_placement("cpu", DType.FLOAT32, threads)
    embedded_build.build(out, names=model or embedded.names(), placement=placement, force=force, say=say)


@user_errors
def foundations_check(
    folder: Annotated[Path | None, typer.Argument(help="A foundations folder (default: the shipped ones).")] = None,
) -> None:
    """Check foundations: every file against the manifest, and the weights against the recorded reference outputs."""
    from vlora.foundations import Foundations
    from vlora_eval.workflows.foundations import shipped

    found = Foundations.load(folder or shipped())
    problem = found.reproduces_reference()
    if problem:
        console.print(f"[red]{found.folder}: the weights do not reproduce the recorded outputs: {problem}[/]")
        raise typer.Exit(1)
    manifest = found.manifest
    console.print(f"{found.folder}: {len(manifest['files'])} files as built by `{manifest['command']}` "
                  f"(fingerprint {found.fingerprint}); reference outputs reproduced")
