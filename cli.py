"""`vlora-eval`: a thin typer app. Each command parses options, calls one function, prints with rich.

User errors (`VLoRAEvalError`) are printed as one red line with exit code 2; anything else is a bug
and keeps its traceback.
"""

from __future__ import annotations

import functools
import json
from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

import cli_views as views
from evalsuite.extraction import DEFAULT_RULES, AnswerMode, Rules
from vlora.config import ExecutionMode

app = typer.Typer(help="Evaluate and cost multimodal LLMs that see through their weights (VLoRA).\n\n"
                  "Exit codes: 0 done; 1 `inspect` found no readable checkpoint; 2 bad input (one line says "
                  "what); 130 interrupted (run the same command again to resume).",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False, rich_markup_mode=None)
console = views.console
PAPER_RULES = Rules(DEFAULT_RULES)  # VLMEvalKit's extraction rules of the paper's era


class DType(str, Enum):
    AUTO = "auto"
    FLOAT32 = "float32"
    BFLOAT16 = "bfloat16"
    FLOAT16 = "float16"
    FLOAT64 = "float64"


Device = Annotated[str, typer.Option(help="auto (the GPU of this process's LOCAL_RANK when CUDA is present, else "
                                            "the CPU) | cpu | cuda | cuda:N")]
Dtype = Annotated[DType, typer.Option(help="auto: the checkpoint's dtype on a GPU, float32 on the CPU.")]
Sets = Annotated[list[str] | None, typer.Option("--set", help="Override a setting of the model's configuration: "
                                                "KEY=VALUE with a dotted key (connector.rank=16); repeatable.")]
Threads = Annotated[int | None, typer.Option(min=1, help="CPU threads (default: this process's cores, shared among "
                                             "the processes of this machine).")]


def warn(message: str) -> None:
    Console(stderr=True).print(f"[yellow]warning:[/] {message}", highlight=False, soft_wrap=True)


def user_errors(command):
    """Print a `VLoRAEvalError` as one line and exit 2; an interrupt exits 130 without a traceback."""
    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from vlora.errors import VLoRAEvalError

        try:
            return command(*args, **kwargs)
        except VLoRAEvalError as e:
            Console(stderr=True).print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            Console(stderr=True).print("[bold yellow]interrupted:[/] what was written is kept; run the same "
                                       "command again to resume", highlight=False, soft_wrap=True)
            raise typer.Exit(130) from None
    return wrapper


def _placement(device: str, dtype: DType, threads: int | None, checkpoint: Path | None = None):
    """Process, device, dtype and CPU threads, resolved once here and passed down."""
    from vlora.checkpoints import stored_dtype
    from vlora.placement import Placement

    stored = stored_dtype(checkpoint) if checkpoint is not None else None
    placement = Placement.resolve(device, DType(dtype).value, threads, stored)
    placement.apply()
    return placement


def _folder_option(path: Path | None, option: str) -> None:
    """An output folder option must not name a file."""
    from vlora.errors import InputError

    if path is not None and path.exists() and not path.is_dir():
        raise InputError(f"{option} {path} is a file, not a folder")


@app.command()
@user_errors
def inspect(
    path: Annotated[Path, typer.Argument(help="A checkpoint folder.")],
    vision_tower: Annotated[Path | None, typer.Option(help="Local CLIP folder (overrides mm_vision_tower).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Say what a checkpoint folder is: official VLoRA, our own, or not a checkpoint; its dimensions,
    parameters per part and any problem found. Exit code 0: a checkpoint without problems; 1: not a
    checkpoint, unreadable, or a checkpoint with problems (they are listed)."""
    from vlora.checkpoints import describe

    report = describe(path, vision_tower=vision_tower)
    if as_json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        views.checkpoint_report(report)
    if report.kind == "none" or report.problems:
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
    mode: Annotated[ExecutionMode, typer.Option(help="VLoRA execution: auto picks factorized or merged per call from "
                                                "the measured crossover (vlora/crossover.yaml); the others fix it.")
                    ] = ExecutionMode.AUTO,
    max_new_tokens: Annotated[int, typer.Option(min=1)] = 64,
    official_positions: Annotated[bool, typer.Option(help="Copy the VLoRA release's decoding positions.")] = False,
    device: Device = "auto",
    dtype: Dtype = DType.AUTO,
    threads: Threads = None,
    set_: Sets = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Answer one question about one image (greedy decoding)."""
    from evalsuite.adapter import Failure, Request
    from evalsuite.multimodal import MultimodalAdapter
    from evalsuite.registry import create_model
    from evalsuite.runner import max_new_tokens_allowed
    from vlora.checkpoints import load_model
    from vlora.errors import InputError

    mode = ExecutionMode(mode).value
    if model is None and checkpoint is None:
        raise InputError("give --model NAME, --checkpoint PATH, or both")
    placement = _placement(device, dtype, threads, checkpoint)
    options = dict(mode=mode, official_positions=official_positions)
    embedded = False
    if model is not None:
        from workflows.embedded import checkpoint_for

        checkpoint, embedded = checkpoint_for(model, checkpoint, cpu=placement.device.type == "cpu",
                                              progress=not as_json, say=say)
    if model is None:
        if set_:
            raise InputError("--set changes a model name's preset; a checkpoint's configuration is fixed")
        loaded = load_model(checkpoint, vision_tower=vision_tower, dtype=placement.dtype).to(placement.device)
        adapter = MultimodalAdapter(loaded, loaded.config.kind, **options)
    else:
        adapter = create_model(model, checkpoint, vision_tower=vision_tower, device=placement.device,
                               dtype=placement.dtype, overrides=set_ or (), **options)
    max_new_tokens_allowed(adapter.card, max_new_tokens)
    request = Request("cli", question, (image,) if image is not None else (), max_new_tokens=max_new_tokens)
    (answer,) = adapter.generate([request])
    if isinstance(answer, Failure):
        raise InputError(answer.message)
    if as_json:
        print(json.dumps({"model": adapter.card.name, "checkpoint": str(checkpoint) if checkpoint else None,
                          "embedded": embedded, "question": question, "answer": answer, "mode": mode,
                          "execution": adapter.run_stats()}))
    else:
        console.print(answer, highlight=False)
        views.embedded_caveat(embedded, False)


@app.command()
@user_errors
def models(as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False) -> None:
    """List the model names `--model` accepts, with their visual tokens and parameters at preset size."""
    from accelerate import init_empty_weights

    from evalsuite.registry import MODELS, model_config
    from vlora.model import MultimodalLM

    rows = []
    for name, spec in MODELS.items():
        config = model_config(name)
        with init_empty_weights():
            counts = MultimodalLM.from_config(config, tokenizer=object()).parameter_counts()
        rows.append({"name": name, "kind": spec.kind, "visual_tokens": config.visual_tokens,
                     "parameters": counts, "needs_checkpoint": spec.needs_checkpoint, "description": spec.description})
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    views.models_table(rows)


def say(message: str) -> None:
    Console(stderr=True).print(f"[cyan]note:[/] {message}", highlight=False, soft_wrap=True)


def _benchmark_data(bench: str, data_dir: Path | None, data: Path | None, check_images: bool = True):
    """The benchmark's checked table: the user's data, else ~/LMUData's, else the embedded mini-suite's."""
    from evalsuite.benchmarks import benchmark
    from evalsuite.data import load_benchmark_data
    from workflows.embedded import benchmark_tsv

    spec = benchmark(bench)
    path, embedded = benchmark_tsv(spec, data_dir, data, say, warn)
    loaded = load_benchmark_data(spec, path, check_images=check_images, embedded=embedded)
    for warning in loaded.warnings:
        warn(warning)
    return loaded


@app.command()
@user_errors
def run(
    model: Annotated[str, typer.Option(help="Model name (see `vlora-eval models`).")],
    bench: Annotated[list[str], typer.Option(help="Benchmark(s): VLMEvalKit name or alias; repeat for several.")],
    checkpoint: Annotated[Path | None, typer.Option(help="Local checkpoint folder.")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Folder of the TSVs (default $LMUData or ~/LMUData).")] = None,
    data: Annotated[Path | None, typer.Option(help="One TSV file (with a single --bench).")] = None,
    vision_tower: Annotated[Path | None, typer.Option(help="Local CLIP folder.")] = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 8,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N rows.")] = None,
    shard: Annotated[str | None, typer.Option(help="i/n: this process's share (default: RANK/WORLD_SIZE under "
                                              "torchrun or accelerate launch, else all rows).")] = None,
    rules: Annotated[Rules, typer.Option(help="Answer extraction rules: 2024-05 is the paper's era.")] = PAPER_RULES,
    answer_mode: Annotated[AnswerMode, typer.Option(help="generate: free text; likelihood: the most likely option.")
                           ] = AnswerMode.GENERATE,
    max_new_tokens: Annotated[int, typer.Option(min=1)] = 64,
    mode: Annotated[ExecutionMode, typer.Option(help="VLoRA execution: auto picks factorized or merged per call from "
                                                "the measured crossover (vlora/crossover.yaml); the others fix it.")
                    ] = ExecutionMode.AUTO,
    results: Annotated[Path, typer.Option(help="Results root.")] = Path("results"),
    run_name: Annotated[str | None, typer.Option(help="Folder name under the results root (default: model).")] = None,
    fresh: Annotated[bool, typer.Option(help="Discard earlier predictions of this run (default: resume).")] = False,
    device: Device = "auto",
    dtype: Dtype = DType.AUTO,
    threads: Threads = None,
    set_: Sets = None,
    vision_cache: Annotated[bool, typer.Option(help="Decode and encode each distinct image once per run.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Run a model on benchmarks: batched, resumable, sharded; predictions, scores and a manifest
    under results/<run>/<bench>/."""
    from evalsuite.registry import create_model
    from evalsuite.runner import RunOptions, parse_shard, run_benchmark
    from workflows.embedded import checkpoint_for

    if data is not None and len(bench) != 1:
        raise typer.BadParameter("--data names one file: give a single --bench")
    _folder_option(results, "--results")
    loaded = [_benchmark_data(b, data_dir, data) for b in bench]
    placement = _placement(device, dtype, threads, checkpoint)
    checkpoint, embedded = checkpoint_for(model, checkpoint, cpu=placement.device.type == "cpu",
                                          progress=not as_json, say=say)
    options = RunOptions(batch_size=batch_size, limit=limit,
                         shard=parse_shard(shard) if shard else placement.process.shard,
                         rules=Rules(rules).value, answer_mode=AnswerMode(answer_mode).value,
                         max_new_tokens=max_new_tokens, results_root=results,
                         run_name=run_name if run_name is not None or not embedded else f"{model}-embedded",
                         fresh=fresh, progress=not as_json, environment=placement.describe(), embedded_model=embedded)
    adapter = create_model(model, checkpoint, vision_tower=vision_tower, device=placement.device,
                           dtype=placement.dtype, overrides=set_ or (), batch_size=batch_size,
                           mode=ExecutionMode(mode).value, vision_cache=vision_cache)
    out = []
    for benchmark_data in loaded:
        result = run_benchmark(adapter, benchmark_data, options, str(checkpoint) if checkpoint else None)
        out.append({"benchmark": benchmark_data.spec.name, "folder": str(result.folder), "complete": result.complete,
                    "rows": result.total, "present": result.present, "predicted_now": result.predicted,
                    "failures": result.failures, "seconds": round(result.seconds, 2), "notes": result.notes,
                    "embedded": {"model": embedded, "data": benchmark_data.embedded},
                    "scores": result.report.to_dict() if result.report else None})
        for note in result.notes:
            warn(note)
        if as_json:
            continue
        if result.report is not None:
            views.score_report(result.report, f"{adapter.card.name} · {benchmark_data.spec.name}")
        elif result.complete:
            console.print(f"{benchmark_data.spec.name} has no answers: submit {result.paths['predictions']} "
                          "to the official evaluation server")
        else:
            console.print(f"{benchmark_data.spec.name}: {result.present} of {result.total} rows predicted; the other "
                          "shards still run, or use `vlora-eval merge` to score what is there")
        views.embedded_caveat(embedded, benchmark_data.embedded)
        console.print(f"outputs in [bold]{result.folder}[/]")
    if as_json:
        print(json.dumps(out, indent=2))


@app.command()
@user_errors
def score(
    bench: Annotated[str, typer.Option(help="Benchmark: VLMEvalKit name or alias.")],
    predictions: Annotated[Path, typer.Option(help="Predictions: index + prediction (.tsv .csv .jsonl .xlsx).")],
    data: Annotated[Path | None, typer.Option(help="The benchmark TSV (default: from --data-dir / $LMUData).")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Folder of the TSVs.")] = None,
    rules: Annotated[Rules, typer.Option(help="Answer extraction rules.")] = PAPER_RULES,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Score any predictions file in VLMEvalKit's layout, exactly as VLMEvalKit scores it."""
    from evalsuite.scoring import read_predictions, score_predictions

    benchmark_data = _benchmark_data(bench, data_dir, data, check_images=False)
    report = score_predictions(benchmark_data.spec, benchmark_data.table, read_predictions(predictions),
                               Rules(rules).value, source=str(predictions))
    for note in report.notes:
        if "predictions are empty" in note:
            warn(note)
    if as_json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        views.score_report(report, f"{predictions} · {benchmark_data.spec.name}")


@app.command()
@user_errors
def merge(
    bench: Annotated[str, typer.Option(help="Benchmark: VLMEvalKit name or alias.")],
    run_name: Annotated[str, typer.Option(help="The run's folder name under the results root.")],
    results: Annotated[Path, typer.Option(help="Results root.")] = Path("results"),
    data_dir: Annotated[Path | None, typer.Option(help="Folder of the TSVs.")] = None,
    data: Annotated[Path | None, typer.Option(help="The benchmark TSV.")] = None,
    rules: Annotated[Rules, typer.Option(help="Answer extraction rules.")] = PAPER_RULES,
    force: Annotated[bool, typer.Option(help="Score even if some rows have no prediction yet.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Merge the shards of a run and score them (runs do this themselves when the last shard ends)."""
    from evalsuite.adapter import ModelCard
    from evalsuite.results import run_folder, stored_run
    from evalsuite.runner import RunOptions, finish

    benchmark_data = _benchmark_data(bench, data_dir, data, check_images=False)
    folder = run_folder(results, run_name, benchmark_data.spec.name)
    stored = stored_run(folder, data_md5=benchmark_data.md5)
    card = ModelCard.from_dict(stored["card"])
    options = RunOptions(rules=Rules(rules).value, answer_mode=stored["answer_mode"],
                         max_new_tokens=stored["max_new_tokens"], results_root=results, run_name=run_name, progress=False)
    result = finish(folder, card, benchmark_data, options, checkpoint=stored.get("checkpoint"), force=force)
    for note in result.notes:
        warn(note)
    if result.report is None:
        raise typer.BadParameter(f"{result.present} of {result.total} rows have predictions; pass --force to score them")
    if as_json:
        print(json.dumps(result.report.to_dict(), indent=2))
    else:
        views.score_report(result.report, f"{run_name} · {benchmark_data.spec.name}")


data_app = typer.Typer(help="Benchmark data.", no_args_is_help=True)
app.add_typer(data_app, name="data")


@data_app.command("mini")
@user_errors
def data_mini(
    out: Annotated[Path, typer.Option(help="Folder to write the mini-suite to.")] = Path("out/mini"),
    seed: Annotated[int, typer.Option()] = 0,
    scale: Annotated[int, typer.Option(min=1, help="Multiplies the number of questions and samples.")] = 1,
    force: Annotated[bool, typer.Option(help="Replace files in --out that vlora-eval did not write.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Write the mini-suite: small synthetic versions of the six benchmarks in VLMEvalKit's TSV format,
    plus pre-training captions and instruction data, from a deterministic synthetic world."""
    from contextlib import nullcontext

    from evalsuite.mini import write_mini_suite

    with nullcontext() if as_json else console.status(f"drawing the synthetic world into {out}"):
        paths = write_mini_suite(out, seed=seed, scale=scale, force=force)
    if as_json:
        print(json.dumps({name: str(path) for name, path in paths.items()}, indent=2))
        return
    views.mini_suite(paths, seed, scale, out)


@app.command()
@user_errors
def flops(
    text_len: Annotated[int, typer.Option(min=1, help="Text tokens C.")] = 32,
    llm: Annotated[str, typer.Option(help="A VLoRA preset name or an LLM config.json (Llama fields).")] = "vlora-7b",
    set_: Sets = None,
    count: Annotated[bool, typer.Option(help="Check every part with FlopCounterMode (meta device).")] = False,
    time_it: Annotated[bool, typer.Option("--time", help="Time prefill/decode on a small config (CPU).")] = False,
    plot: Annotated[Path | None, typer.Option(help="Write figure4.png, figure4.csv and table1.md here.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """The paper's FLOPs: Table 1's GFLOPs column beside the paper's numbers, VLoRA's ratio to
    LLaVA-v1.5, architecture-exact costs of the three models part by part, Figure 4. Change the
    model with --set (connector.rank=16, connector.skip=8 for k = d/8, connector.types=qkv)."""
    from flops.report import build_report, flops_config, write_report
    from flops.settings import FlopsSettings

    _folder_option(plot, "--plot")
    settings = FlopsSettings(text_len, flops_config(llm, set_ or ()))
    report = build_report(settings, count=count, figure=plot is not None)
    timing = None
    if time_it:
        from flops.timing import latency_sweep

        with console.status("timing LLaVA-v1.5 and VLoRA on a small configuration"):
            timing = latency_sweep()
    written = write_report(plot, report) if plot is not None else {}
    if as_json:
        print(json.dumps({**report.to_dict(), "timing": timing, "written": {k: str(v) for k, v in written.items()}},
                         indent=2))
        return
    views.flops_report(report, timing, written, count)


class Stage(str, Enum):
    PRETRAIN = "pretrain"
    FINETUNE = "finetune"


@app.command()
@user_errors
def train(
    model: Annotated[str, typer.Option(help="Model name (see `vlora-eval models`).")],
    stage: Annotated[Stage, typer.Option(help="pretrain: captions, the connector learns (LLM and CLIP frozen); "
                                         "finetune: instructions, connector + LLM learn.")],
    data: Annotated[Path, typer.Option(help="LLaVA-format JSON: [{id, image, conversations}, ...].")],
    images: Annotated[Path, typer.Option(help="The folder that the records' image paths are relative to.")],
    out: Annotated[Path, typer.Option(help="Output folder: train_log.jsonl, checkpoints/, model/.")],
    init: Annotated[Path | None, typer.Option(help="Start from this checkpoint (needed for the 7B names).")] = None,
    set_: Sets = None,
    resume: Annotated[bool, typer.Option(help="Continue the newest checkpoint in --out (exactly).")] = True,
    device: Device = "auto",
    threads: Threads = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Train one stage of the paper's recipe (the release's hyper-parameters; change any with --set,
    e.g. --set learning_rate=1e-4 --set max_steps=200 --set connector.rank=16). Several GPUs or
    machines: start it with `accelerate launch` (DDP, FSDP or DeepSpeed as accelerate is configured)."""
    from workflows.train import train_stage

    _folder_option(out, "--out")
    placement = _placement(device, DType.FLOAT32, threads)
    result = train_stage(model, Stage(stage).value, data, images, out, init=init, overrides=set_ or (),
                         placement=placement, progress=not as_json, resume=resume)
    summary = {"model": model, "stage": Stage(stage).value, "steps": result.steps, "resumed_from": result.resumed_from,
               "final_loss": result.final_loss, "seconds": round(result.seconds, 2),
               "samples_per_second": round(result.samples_per_second, 2),
               "tokens_per_second": round(result.tokens_per_second, 1), "model_dir": str(result.model_dir),
               "log": str(result.log_file)}
    if as_json:
        print(json.dumps(summary, indent=2))
        return
    views.train_report(summary)


@app.command()
@user_errors
def export(
    checkpoint: Annotated[Path, typer.Argument(help="A VLoRA checkpoint (e.g. the model/ folder `train` wrote).")],
    out: Annotated[Path, typer.Option(help="Folder for the official release layout.")],
    clip_out: Annotated[Path | None, typer.Option(help="Folder for its CLIP tower (default: <out>-clip).")] = None,
) -> None:
    """Write a VLoRA checkpoint in the official release layout (FeipengMa6/VLoRA), CLIP beside it."""
    from vlora.checkpoints import load_model
    from vlora.training import export_official_vlora

    _folder_option(out, "--out")
    folder = export_official_vlora(load_model(checkpoint), out, clip_out)
    console.print(f"wrote the official VLoRA layout to [bold]{folder}[/]; inspect it with vlora-eval inspect {folder}")


@app.command()
@user_errors
def sweep(
    config: Annotated[Path, typer.Argument(help="A sweep config (configs/main.yaml, types, rank, blocks).")],
    set_: Sets = None,
    shard: Annotated[str | None, typer.Option(help="i/n: this process's share of the jobs (default: RANK/WORLD_SIZE "
                                              "under torchrun or accelerate launch, else all).")] = None,
    out: Annotated[Path | None, typer.Option(help="Output folder (default: results/sweeps/<name>).")] = None,
    device: Device = "auto",
    threads: Threads = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Train and evaluate every variant x seed of an ablation sweep (skipping finished ones, resuming the
    rest), then write the table beside the paper's (CSV + markdown), FLOPs per variant and one plot per
    benchmark. Bad configs are refused before any training."""
    from evalsuite.runner import parse_shard
    from workflows import sweep_table
    from workflows.sweeps import load_sweep, run_sweep

    plan = load_sweep(config, set_ or ())
    placement = _placement(device, DType.FLOAT32, threads)
    out = out or Path("results") / "sweeps" / plan.name
    _folder_option(out, "--out")
    records = run_sweep(plan, out, shard=parse_shard(shard) if shard else placement.process.shard,
                        cpu=placement.device.type == "cpu", progress=not as_json, say=say)
    written = {}
    if len(records) == len(plan.jobs):
        command = f"vlora-eval sweep {config}" + "".join(f" --set {s}" for s in set_ or ())
        written = sweep_table.write(plan, records, out, command)
    else:
        say(f"{len(records)} of {len(plan.jobs)} jobs are done; the table is written when all are")
    if as_json:
        print(json.dumps({"sweep": plan.name, "jobs": len(plan.jobs), "done": len(records),
                          "written": {k: str(v) for k, v in written.items() if k != "plots"}}, indent=2))
    elif written:
        console.print(Path(written["markdown"]).read_text(encoding="utf-8"), markup=False, highlight=False)
        console.print(f"table and plots in [bold]{out}[/]")


@app.command()
@user_errors
def report(
    results: Annotated[Path, typer.Option(help="The results folder to assemble.")] = Path("results"),
    out: Annotated[Path | None, typer.Option(help="The report file (default: <results>/report.md).")] = None,
) -> None:
    """One markdown report of results/: Table 1 (GFLOPs; our scores where runs exist), Tables 2-5 ours
    beside the paper's, Figure 4; every number linked to the manifest or command that produced it."""
    from workflows.report import build_report

    if not results.is_dir():
        from vlora.errors import InputError

        raise InputError(f"--results {results} is not a folder")
    path = build_report(results, out)
    console.print(f"wrote [bold]{path}[/]")


@app.command()
@user_errors
def demo(
    out: Annotated[Path, typer.Option(help="Where the tiny checkpoints are written.")] = Path("out/demo"),
    seed: Annotated[int, typer.Option()] = 0,
    device: Device = "auto",
    threads: Threads = None,
) -> None:
    """Build a tiny random VLoRA, save it in the official and own layouts, inspect both, and answer
    questions about generated images in every execution mode (no downloads; seconds on a CPU)."""
    from vlora.demo import run_demo

    _folder_option(out, "--out")
    placement = _placement(device, DType.FLOAT32, threads)
    with console.status("building, saving, reloading and running a tiny VLoRA"):
        result = run_demo(out, seed, placement.device)
    views.demo_report(result)


if __name__ == "__main__":
    app()
