"""The data and scoring commands: score, merge, data mini, data convert. Registered on the app in
vlora_eval/cli/__init__.py."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from evalsuite.extraction import Rules
from vlora_eval.cli import views
from vlora_eval.cli.common import (
    PAPER_RULES,
    RESULTS,
    HFConfig,
    HFSplit,
    benchmark_data,
    console,
    user_errors,
    warn,
)


@user_errors
def score(
    bench: Annotated[str, typer.Option(help="Benchmark: VLMEvalKit name or alias.")],
    predictions: Annotated[Path, typer.Option(help="Predictions: index + prediction (.tsv .csv .jsonl .xlsx), or "
                                              "lmms-eval's --log_samples file (<date>_samples_<task>.jsonl).")],
    data: Annotated[Path | None, typer.Option(help="The benchmark: a TSV, or a Hugging Face copy (for lmms-eval's "
                                              "samples: the copy it read). Default: --data-dir / $LMUData.")] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Folder of the TSVs.")] = None,
    hf_config: HFConfig = None,
    hf_split: HFSplit = None,
    rules: Annotated[Rules, typer.Option(help="Answer extraction rules.")] = PAPER_RULES,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Score any predictions file in VLMEvalKit's layout, or lmms-eval's samples, exactly as VLMEvalKit scores
    them (no judge)."""
    from evalsuite.lmms_samples import is_lmms_samples, read_lmms_samples
    from evalsuite.scoring import read_predictions, score_predictions

    samples = is_lmms_samples(predictions)
    bench_data = benchmark_data(bench, data_dir, data, check_images=False, hf_config=hf_config,
                                hf_split=None if samples else hf_split)
    table, read_notes = (read_lmms_samples(predictions, bench_data, hf_split) if samples
                         else read_predictions(predictions))
    report = score_predictions(bench_data.spec, bench_data.table, table, Rules(rules).value, source=str(predictions))
    for note in read_notes + [n for n in report.notes if "predictions are empty" in n]:
        warn(note)
    if as_json:
        print(json.dumps({**report.to_dict(), "notes": read_notes + report.notes}, indent=2))
    else:
        views.score_report(report, f"{predictions} · {bench_data.spec.name}", bench_data.spec.handler.headline_meaning)


@user_errors
def merge(
    bench: Annotated[str, typer.Option(help="Benchmark: VLMEvalKit name or alias.")],
    run_name: Annotated[str, typer.Option(help="The run's folder name under the results root.")],
    results: Annotated[Path, typer.Option(help="Results root.")] = RESULTS,
    data_dir: Annotated[Path | None, typer.Option(help="Folder of the TSVs.")] = None,
    data: Annotated[Path | None, typer.Option(help="The benchmark: a TSV or a Hugging Face copy.")] = None,
    hf_config: HFConfig = None,
    hf_split: HFSplit = None,
    rules: Annotated[Rules, typer.Option(help="Answer extraction rules.")] = PAPER_RULES,
    force: Annotated[bool, typer.Option(help="Score even if some rows have no prediction yet.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Merge the shards of a run and score them (runs do this themselves when the last shard ends)."""
    from evalsuite.adapter import ModelCard
    from evalsuite.results import run_folder, stored_run
    from evalsuite.runner import RunOptions, finish

    bench_data = benchmark_data(bench, data_dir, data, check_images=False, hf_config=hf_config, hf_split=hf_split)
    folder = run_folder(results, run_name, bench_data.spec.name)
    stored = stored_run(folder, data_md5=bench_data.md5)
    card = ModelCard.from_dict(stored["card"])
    options = RunOptions(rules=Rules(rules).value, answer_mode=stored["answer_mode"],
                         max_new_tokens=stored["max_new_tokens"], results_root=results, run_name=run_name, progress=False)
    result = finish(folder, card, bench_data, options, checkpoint=stored.get("checkpoint"), force=force)
    for note in result.notes:
        warn(note)
    if result.report is None:
        raise typer.BadParameter(f"{result.present} of {result.total} rows have predictions; pass --force to score them")
    if as_json:
        print(json.dumps(result.report.to_dict(), indent=2))
    else:
        views.score_report(result.report, f"{run_name} · {bench_data.spec.name}")


@user_errors
def data_mini(
    out: Annotated[Path, typer.Option(help="Folder to write the mini-suite to.")] = Path("out/mini"),
    seed: Annotated[int, typer.Option()] = 0,
    scale: Annotated[int, typer.Option(min=1, help="Multiplies the number of benchmark questions.")] = 1,
    train_scale: Annotated[int | None, typer.Option(min=1, help="Multiplies the number of training scenes "
                                                     "(1,000 each); default: --scale.")] = None,
    force: Annotated[bool, typer.Option(help="Replace files in --out that vlora-eval did not write.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print machine-readable JSON.")] = False,
) -> None:
    """Write the mini-suite: small synthetic versions of the six benchmarks in VLMEvalKit's TSV format,
    plus pre-training captions and instruction data, from a deterministic synthetic world."""
    from contextlib import nullcontext

    from evalsuite.mini import write_mini_suite

    with nullcontext() if as_json else console.status(f"drawing the synthetic world into {out}"):
        paths = write_mini_suite(out, seed=seed, scale=scale, force=force, train_scale=train_scale)
    if as_json:
        print(json.dumps({name: str(path) for name, path in paths.items()}, indent=2))
        return
    views.mini_suite(paths, seed, scale, out)




@user_errors
def data_convert(
    bench: Annotated[str, typer.Option(help="Benchmark: VLMEvalKit name or alias.")],
    hf: Annotated[Path, typer.Option(help="Its Hugging Face copy: a repo folder, a save_to_disk folder or parquet.")],
    out: Annotated[Path, typer.Option(help="The TSV to write (VLMEvalKit's layout; e.g. $LMUData/MME.tsv).")],
    hf_config: HFConfig = None,
    hf_split: HFSplit = None,
    force: Annotated[bool, typer.Option(help="Replace --out if it exists.")] = False,
) -> None:
    """Write a benchmark's Hugging Face copy as a VLMEvalKit TSV (images as base64, circular copies as
    references). Identity with VLMEvalKit's own TSV is not guaranteed (it re-encodes some images)."""
    from evalsuite.benchmarks import benchmark
    from evalsuite.data import load_benchmark_data
    from vlora.atomic import write_text_atomic
    from vlora.errors import InputError

    spec = benchmark(bench)
    if out.exists() and (out.is_dir() or not force):
        raise InputError(f"--out {out} " + ("is a folder" if out.is_dir() else "exists; pass --force to replace it"))
    loaded = load_benchmark_data(spec, hf, hf_config=hf_config, hf_split=hf_split)
    table = loaded.table.drop(columns=["line", "hf_split", "hf_row"])
    out.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out, table.to_csv(sep="\t", index=False))
    console.print(f"wrote [bold]{out}[/]: {len(table)} rows of {spec.name} from {hf} ({loaded.source['form']}, "
                  f"content sha256 {loaded.source['content_sha256'][:12]}...)")
