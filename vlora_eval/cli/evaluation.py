"""The evaluation commands: inspect, generate, models, run, flops, demo.
Each parses options, calls one function and prints with rich (views.py); registered on the app in
vlora_eval/cli/__init__.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from evalsuite.extraction import AnswerMode, Rules
from vlora.config import ExecutionMode
from vlora_eval.cli import views
from vlora_eval.cli.common import (
    PAPER_RULES,
    RESULTS,
    Device,
    DType,
    Dtype,
    HFConfig,
    HFSplit,
    Mode,
    Sets,
    Threads,
    benchmark_data,
    check_folder_option,
    console,
    resolve_placement,
    say,
    user_errors,
    warn,
)


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


@user_errors
def generate(
    question: Annotated[str, typer.Option(help="The question; wrapped in the model's conversation template.")],
    model: Annotated[str | None, typer.Option(help="Model name (see `vlora-eval models`); checked against "
                                              "the checkpoint. Omitted: whatever the checkpoint holds.")] = None,
    checkpoint: Annotated[Path | None, typer.Option(help="A checkpoint folder (VLoRA, LLaVA or own).")] = None,
    image: Annotated[Path | None, typer.Option(help="Image file; omit for a text-only question.")] = None,
    vision_tower: Annotated[Path | None, typer.Option(help="Local CLIP folder (overrides mm_vision_tower).")] = None,
    mode: Mode = ExecutionMode.AUTO,
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
    placement = resolve_placement(device, dtype, threads, checkpoint)
    options = dict(mode=mode, official_positions=official_positions)
    embedded = False
    if model is not None:
        from vlora_eval.workflows.embedded import checkpoint_for

        checkpoint, embedded = checkpoint_for(model, checkpoint, placement=placement, progress=not as_json, say=say)
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
        views.embedded_caveat(checkpoint if embedded else None, answer=True)


@user_errors
def models(as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False) -> None:
    """List the model names `--model` accepts, with their visual tokens and parameters at preset size."""
    from accelerate import init_empty_weights

    from evalsuite.registry import model_config, model_specs
    from vlora.model import MultimodalLM

    rows = []
    for name, spec in model_specs().items():
        config = model_config(name)
        with init_empty_weights():
            counts = MultimodalLM.from_config(config, tokenizer=object()).parameter_counts()
        rows.append({"name": name, "kind": spec.kind, "visual_tokens": config.visual_tokens,
                     "parameters": counts, "needs_checkpoint": spec.needs_checkpoint, "description": spec.description})
    if as_json:
        print(json.dumps(rows, indent=2))
        return
    views.models_table(rows)



@user_errors
def run(
    model: Annotated[str, typer.Option(help="Model name (see `vlora-eval models`).")],
    bench: Annotated[list[str], typer.Option(help="Benchmark(s): VLMEvalKit name or alias; repeat for several.")],
    checkpoint: Annotated[Path | None, typer.Option(help="Local checkpoint folder.")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Folder of the TSVs (default $LMUData or ~/LMUData).")] = None,
    data: Annotated[Path | None, typer.Option(help="One benchmark's data (with a single --bench): a TSV, or a "
                                              "Hugging Face copy (repo folder, save_to_disk folder, parquet).")] = None,
    hf_config: HFConfig = None,
    hf_split: HFSplit = None,
    vision_tower: Annotated[Path | None, typer.Option(help="Local CLIP folder.")] = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 8,
    limit: Annotated[int | None, typer.Option(min=1, help="Only the first N rows.")] = None,
    shard: Annotated[str | None, typer.Option(help="i/n: this process's share (default: RANK/WORLD_SIZE under "
                                              "torchrun or accelerate launch, else all rows).")] = None,
    rules: Annotated[Rules, typer.Option(help="Answer extraction rules: 2024-05 is the paper's era.")] = PAPER_RULES,
    answer_mode: Annotated[AnswerMode, typer.Option(help="generate: free text; likelihood: the most likely option.")
                           ] = AnswerMode.GENERATE,
    max_new_tokens: Annotated[int, typer.Option(min=1)] = 64,
    mode: Mode = ExecutionMode.AUTO,
    results: Annotated[Path, typer.Option(help="Results root.")] = RESULTS,
    run_name: Annotated[str | None, typer.Option(help="Folder name under the results root (default: model).")] = None,
    fresh: Annotated[bool, typer.Option(help="Discard earlier predictions of this run (default: resume).")] = False,
    device: Device = "auto",
    dtype: Dtype = DType.AUTO,
    threads: Threads = None,
    set_: Sets = None,
    vision_cache: Annotated[bool, typer.Option(help="Decode and encode each distinct image once per run.")] = True,
    shuffle_images: Annotated[bool, typer.Option(help="A control: every row shows another row's image (a model "
                                                 "that reads images falls to about chance); its own run folder.")
                              ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Run a model on benchmarks: batched, resumable, sharded; predictions, scores and a manifest
    under <results>/<run>/<bench>/."""
    from evalsuite.registry import create_model
    from evalsuite.runner import RunOptions, parse_shard, run_benchmark
    from vlora_eval.workflows.embedded import checkpoint_for, origin_of

    if data is not None and len(bench) != 1:
        raise typer.BadParameter("--data names one file: give a single --bench")
    check_folder_option(results, "--results")
    loaded = [benchmark_data(b, data_dir, data, hf_config=hf_config, hf_split=hf_split) for b in bench]
    if shuffle_images:
        from evalsuite.controls import shuffle_images as shuffled

        loaded = [shuffled(d) for d in loaded]
    placement = resolve_placement(device, dtype, threads, checkpoint)
    checkpoint, embedded = checkpoint_for(model, checkpoint, placement=placement, progress=not as_json, say=say)
    options = RunOptions(batch_size=batch_size, limit=limit,
                         shard=parse_shard(shard) if shard else placement.process.shard,
                         rules=Rules(rules).value, answer_mode=AnswerMode(answer_mode).value,
                         max_new_tokens=max_new_tokens, results_root=results,
                         run_name=_run_name(run_name, model, embedded, shuffle_images),
                         fresh=fresh, progress=not as_json, environment=placement.describe(), embedded_model=embedded,
                         model_origin=origin_of(checkpoint) if embedded else None)
    adapter = create_model(model, checkpoint, vision_tower=vision_tower, device=placement.device,
                           dtype=placement.dtype, overrides=set_ or (), batch_size=batch_size,
                           mode=ExecutionMode(mode).value, vision_cache=vision_cache)
    for note in adapter.notes:
        warn(note)
    if options.model_origin:  # the model card says how the embedded model answers and what it started from
        adapter.card.extras.update(answer_style=options.model_origin["answer_style"],
                                   foundations=(options.model_origin["foundations"] or {}).get("fingerprint"),
                                   trained=options.model_origin.get("trained"))
    out = []
    for bench_data in loaded:
        result = run_benchmark(adapter, bench_data, options, str(checkpoint) if checkpoint else None)
        level = chance_of(bench_data, options.rules) if result.report is not None else None
        meaning = bench_data.spec.handler.headline_meaning
        out.append({"benchmark": bench_data.spec.name, "folder": str(result.folder), "complete": result.complete,
                    "rows": result.total, "present": result.present, "predicted_now": result.predicted,
                    "failures": result.failures, "seconds": round(result.seconds, 2), "notes": result.notes,
                    "embedded": {"model": embedded, "data": bench_data.embedded},
                    "checkpoint": str(checkpoint) if checkpoint else None,
                    "scores": result.report.to_dict() if result.report else None, "headline_meaning": meaning,
                    "chance": level})
        for note in result.notes:
            warn(note)
        if as_json:
            continue
        if result.report is not None:
            views.score_report(result.report, f"{adapter.card.name} · {bench_data.spec.name}", meaning, level)
        elif result.complete:
            console.print(f"{bench_data.spec.name} has no answers: submit {result.paths['predictions']} "
                          "to the official evaluation server")
        else:
            console.print(f"{bench_data.spec.name}: {result.present} of {result.total} rows predicted; the other "
                          "shards still run, or use `vlora-eval merge` to score what is there")
        views.embedded_caveat(checkpoint if embedded else None, bench_data.embedded,
                              style=adapter.card.extras.get("answer_style"))
        console.print(f"outputs in [bold]{result.folder}[/]")
    if as_json:
        print(json.dumps(out, indent=2))


def _run_name(given: str | None, model: str, embedded: bool, shuffled: bool) -> str | None:
    """The run's folder name: the given one, else the model's (None: the adapter's name), marked for the
    embedded model and the shuffled-images control."""
    if given is not None:
        return given
    if not (embedded or shuffled):
        return None
    return model + ("-embedded" if embedded else "") + ("-shuffled-images" if shuffled else "")


def chance_of(data, rules: str) -> dict[str, float]:
    """The benchmark's chance level (random answers, scored by its own rules) to print beside a score."""
    from evalsuite.baselines import chance, draws_for

    return chance(data, rules, draws=draws_for(len(data.table)))


@user_errors
def flops(
    text_len: Annotated[int, typer.Option(min=1, help="Text tokens C.")] = 32,
    model: Annotated[str, typer.Option(help="A VLoRA model name (vlora: the paper's 7B; vlora-tiny).")] = "vlora",
    llm_config: Annotated[Path | None, typer.Option(help="Replace its LLM: a Llama config.json.")] = None,
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

    check_folder_option(plot, "--plot")
    settings = FlopsSettings(text_len, flops_config(model, llm_config, set_ or ()))
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


@user_errors
def demo(
    out: Annotated[Path, typer.Option(help="Where the tiny checkpoints are written.")] = Path("out/demo"),
    seed: Annotated[int, typer.Option()] = 0,
    force: Annotated[bool, typer.Option(help="Write into an --out that holds other files or another demo's "
                                        "(only vlora-eval's own files there are deleted).")] = False,
    device: Device = "auto",
    threads: Threads = None,
) -> None:
    """Build a tiny random VLoRA, save it in the official and own layouts, inspect both, and answer
    questions about generated images in every execution mode (no downloads; seconds on a CPU)."""
    from vlora.demo import run_demo

    check_folder_option(out, "--out")
    placement = resolve_placement(device, DType.FLOAT32, threads)
    with console.status("building, saving, reloading and running a tiny VLoRA"):
        result = run_demo(out, seed, placement.device, force=force)
    views.demo_report(result)

