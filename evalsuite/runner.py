"""The runner: benchmark rows -> requests -> batches (rows sharing an image together, sorted by length) -> adapter
predictions -> (when every row is there) merged outputs and scores.

Resume is the default: rows already in the folder's predictions files are skipped, so a killed run
goes on where it stopped. A shard (i, n), resolved by the caller from `--shard i/n` or the process's
rank and world size, takes rows i, i+n, i+2n, ... of the benchmark; whichever shard finishes last
merges and scores.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from evalsuite.adapter import Adapter, Failure
from evalsuite.data import BenchmarkData
from evalsuite.extraction import DEFAULT_RULES, check_rules
from evalsuite.predictions import WriterLock, append_records, read_folder, shard_file
from evalsuite.requests import ANSWER_MODES, row_prompt, to_request
from evalsuite.results import check_run, clear_run, config_hash, library_versions, run_folder, write_outputs
from evalsuite.scoring import ScoreReport, score_predictions
from vlora.errors import ConfigError


@dataclass(frozen=True)
class RunOptions:
    batch_size: int = 8
    limit: int | None = None  # the first N rows of the benchmark
    shard: tuple[int, int] = (0, 1)  # (i, n): this process's share of the rows
    rules: str = DEFAULT_RULES
    answer_mode: str = "generate"
    max_new_tokens: int = 64
    results_root: Path = Path("results")
    run_name: str | None = None  # default: the model's name
    fresh: bool = False  # delete earlier predictions of this run and benchmark first
    progress: bool = True
    environment: Mapping[str, Any] = field(default_factory=dict)  # device, dtype, threads, process: for the manifest
    embedded_model: bool = False  # the model is the embedded tiny one (workflows/embedded.py), not a real checkpoint
    model_origin: dict[str, Any] | None = None  # what made the model (the embedded one's foundations, answer style)

    def __post_init__(self) -> None:
        check_rules(self.rules)
        if self.answer_mode not in ANSWER_MODES:
            raise ConfigError(f"unknown answer mode {self.answer_mode!r}; choose from {', '.join(ANSWER_MODES)}")
        if self.batch_size < 1 or self.max_new_tokens < 1:
            raise ConfigError("batch size and max new tokens must be at least 1")


@dataclass
class RunResult:
    folder: Path
    predicted: int  # rows predicted by this call
    total: int  # rows of the benchmark in this run (after --limit)
    present: int  # rows with a prediction, over all shards
    failures: int
    report: ScoreReport | None = None
    predictions: pd.DataFrame | None = None  # index + prediction of every row, once all are there (as scored)
    paths: dict[str, Path] = field(default_factory=dict)
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)  # what the user should know (damaged lines, empty answers)

    @property
    def complete(self) -> bool:
        return self.present == self.total


def parse_shard(text: str) -> tuple[int, int]:
    try:
        index, count = (int(x) for x in text.split("/"))
    except ValueError:
        raise ConfigError(f"--shard {text!r} is not i/n (e.g. 0/4)") from None
    if not (count >= 1 and 0 <= index < count):
        raise ConfigError(f"--shard {text!r}: need 0 <= i < n")
    return index, count


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _predict(adapter: Adapter, requests: list, answer_mode: str) -> list[dict[str, Any]]:
    """One record per request: prediction text (or the chosen option), or the failure."""
    scored = [i for i, r in enumerate(requests) if answer_mode == "likelihood" and r.choices]
    generated = [i for i in range(len(requests)) if i not in set(scored)]
    records: list[dict[str, Any]] = [{} for _ in requests]
    for i, result in zip(generated, adapter.generate([requests[i] for i in generated]) if generated else [], strict=True):
        records[i] = {"prediction": "", "error": result.message} if isinstance(result, Failure) else {"prediction": result}
    for i, result in zip(scored, adapter.loglikelihood([requests[i] for i in scored]) if scored else [], strict=True):
        if isinstance(result, Failure):
            records[i] = {"prediction": "", "error": result.message}
        else:
            best = max(range(len(result)), key=result.__getitem__)
            records[i] = {"prediction": requests[i].choices[best], "loglikelihoods": result}
    return records


def _progress(enabled: bool):
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                    disable=not enabled)


def max_new_tokens_allowed(card, max_new_tokens: int) -> None:
    """New tokens are bounded by the model's positions (`max_position_embeddings`)."""
    positions = card.max_positions
    if positions is not None and max_new_tokens >= positions:
        raise ConfigError(f"--max-new-tokens {max_new_tokens} does not fit the model's {positions} positions "
                          "(max_position_embeddings), prompt included")


def run_benchmark(adapter: Adapter, data: BenchmarkData, options: RunOptions = RunOptions(),
                  checkpoint: str | None = None) -> RunResult:
    spec, card = data.spec, adapter.card
    max_new_tokens_allowed(card, options.max_new_tokens)
    shard = options.shard
    folder = run_folder(options.results_root, card.name if options.run_name is None else options.run_name, spec.name)
    folder.mkdir(parents=True, exist_ok=True)
    own = shard_file(folder, shard)
    with WriterLock(own):  # one writer per predictions file; the holder is named to a second one
        notes = []
        if options.fresh and (gone := clear_run(folder, keep=own)):
            notes.append(f"--fresh: deleted {len(gone)} file(s) of the earlier run in {folder}")
        check_run(folder, {"card": card.to_dict(), "config_hash": config_hash(card.config.to_dict()), "checkpoint": checkpoint,
                           "data_md5": data.md5, "prompt_style": card.prompt_style(spec.type),
                           "answer_mode": options.answer_mode, "max_new_tokens": options.max_new_tokens,
                           "control": data.control})
        done, read_notes = read_folder(folder, own)
        predicted, seconds, counts = _predict_rows(adapter, data, options, shard, done, own)
        result = finish(folder, card, data, options, shard, checkpoint, predicted, seconds,
                        execution=_execution(adapter, counts))
    result.notes = notes + read_notes + [n for n in result.notes if n not in read_notes]
    return result


def batch_order(rows: list[int], length: Callable[[int], int], group: Callable[[int], Hashable]) -> list[int]:
    """`rows` in the order they are batched: rows that show the same images next to each other (a batch
    reuses one image's vision outputs, and the vision cache's working set stays small), groups by their
    longest prompt and members by theirs, longest first, so similar lengths still share a batch."""
    groups: dict[Hashable, list[int]] = {}
    for row in rows:
        groups.setdefault(group(row), []).append(row)
    members = [sorted(g, key=lambda p: -length(p)) for g in groups.values()]
    members.sort(key=lambda g: -length(g[0]))
    return [row for g in members for row in g]


def _counts(adapter: Adapter) -> dict[str, int]:
    """The adapter's counts (LLM calls per mode, vision passes) when it keeps them (`run_stats`)."""
    stats = getattr(adapter, "run_stats", None)
    return stats()["counts"] if stats is not None else {}


def _execution(adapter: Adapter, counts: dict[str, int]) -> dict[str, Any] | None:
    """The manifest's `execution`: the adapter's `run_stats` (mode, crossover, vision cache) with this
    call's counts; None for an adapter that keeps none."""
    stats = getattr(adapter, "run_stats", None)
    return None if stats is None else {**stats(), "counts": counts}


def _predict_rows(adapter: Adapter, data: BenchmarkData, options: RunOptions, shard: tuple[int, int],
                  done: dict, out: Path) -> tuple[int, float, dict[str, int]]:
    """Predict this shard's rows that `done` lacks, appending each batch to `out`; rows that show the
    same image together, longest prompts first (`batch_order`). Returns rows, seconds and the adapter's
    counts over this call."""
    spec, card = data.spec, adapter.card
    mine = list(range(len(data.table)))[: options.limit][shard[0]::shard[1]]
    lines = data.table.to_dict("records")
    todo = [p for p in mine if str(lines[p]["index"]) not in done]
    prompts = {p: row_prompt(spec, lines[p], data.image_count(p), card, options.answer_mode) for p in todo}
    order = batch_order(todo, lambda p: prompts[p].text_length, data.image_group)
    start, predicted, before = time.perf_counter(), 0, _counts(adapter)
    # an adapter that decodes on demand (MultimodalAdapter, through its vision cache) gets keyed sources;
    # any other gets the decoded images the contract names
    images = data.image_sources if getattr(adapter, "takes_image_sources", False) else data.images
    with _progress(options.progress) as progress:
        task = progress.add_task(f"{card.name} · {spec.name} · shard {shard[0]}/{shard[1]}", total=len(mine),
                                 completed=len(mine) - len(todo), rate="")
        for at in range(0, len(order), options.batch_size):
            batch = order[at:at + options.batch_size]
            requests = [to_request(prompts[p], images(p), options.max_new_tokens) for p in batch]
            records = _predict(adapter, requests, options.answer_mode)
            for p, record in zip(batch, records, strict=True):
                record.update(index=_plain(lines[p]["index"]), images_dropped=prompts[p].images_dropped)
                if prompts[p].unknown_images:
                    record["unknown_images"] = prompts[p].unknown_images
            append_records(out, records)
            predicted += len(batch)
            rate = predicted / (time.perf_counter() - start)
            progress.update(task, advance=len(batch), rate=f"{rate:.2f} samples/s")
    counts = {k: v - before.get(k, 0) for k, v in _counts(adapter).items()}
    return predicted, time.perf_counter() - start, counts


def _record_notes(records: dict[str, dict[str, Any]]) -> list[str]:
    """One note per kind of trouble over the run's records, with the count."""
    notes = []
    failures = [r for r in records.values() if r.get("error")]
    if failures:
        notes.append(f"{len(failures)} row(s) failed, e.g. index {failures[0]['index']}: {failures[0]['error']}")
    unknown = [r for r in records.values() if r.get("unknown_images")]
    if unknown:
        notes.append(f"{len(unknown)} row(s) name an <image N> the row does not have (kept as text), "
                     f"e.g. index {unknown[0]['index']}")
    return notes


def finish(folder: Path, card, data: BenchmarkData, options: RunOptions, shard: tuple[int, int] = (0, 1),
           checkpoint: str | None = None, predicted: int = 0, seconds: float = 0.0, force: bool = False,
           execution: dict[str, Any] | None = None) -> RunResult:
    """Merge the shards' predictions; when every row is there (or `force`), write the outputs and score.
    Outputs are written by one process at a time (the last shards of a run may finish together).
    `execution`: what the adapter ran in this call (mode, crossover, vision cache, counts) for the manifest."""
    spec = data.spec
    table = data.table.iloc[: options.limit] if options.limit else data.table
    keys = set(table["index"].astype(str))
    with WriterLock(folder / "outputs", what="merged", timeout=600):
        merged, notes = read_folder(folder)
        records = {k: v for k, v in merged.items() if k in keys}
        failures = sum(1 for r in records.values() if r.get("error"))
        result = RunResult(folder, predicted, len(table), len(records), failures, seconds=seconds,
                           notes=notes + _record_notes(records))
        if not records or not (result.complete or force):
            return result
        predictions = pd.DataFrame({"index": list(records), "prediction": [r["prediction"] for r in records.values()]})
        result.predictions = predictions
        if spec.answers:
            result.report = score_predictions(spec, table, predictions, options.rules, options.answer_mode, str(folder))
            result.notes += [n for n in result.report.notes if "predictions are empty" in n]
        result.paths = write_outputs(folder, spec, table, records, result.report,
                                     _manifest(card, checkpoint, data, table, options, records, result, shard,
                                               execution))
    return result


def _manifest(card, checkpoint, data: BenchmarkData, table: pd.DataFrame, options: RunOptions,
              records: dict[str, dict[str, Any]], result: RunResult, shard: tuple[int, int],
              execution: dict[str, Any] | None = None) -> dict[str, Any]:
    spec, seconds, predicted = data.spec, result.seconds, result.predicted
    return {
        "model": {**{k: v for k, v in card.to_dict().items() if k != "config"}, "embedded": options.embedded_model,
                  "origin": options.model_origin},
        "config_hash": config_hash(card.config.to_dict()), "model_config": card.config.to_dict(), "checkpoint": checkpoint,
        "benchmark": spec.name, "data": {"path": str(data.path), "md5": data.md5, "known_release": spec.md5.get(data.md5),
                                         "embedded_mini_suite": data.embedded, "mini_suite": data.mini_suite,
                                         "control": data.control, "hf_copy": data.source,
                                         "rows": len(table), "dropped_without_image": data.dropped_without_image,
                                         "warnings": data.warnings},
        "extraction_rules": options.rules, "answer_mode": options.answer_mode,
        "prompt_style": card.prompt_style(spec.type), "max_new_tokens": options.max_new_tokens,
        "counts": {"predicted": len(records), "failures": result.failures,
                   "images_dropped": sum(r.get("images_dropped", 0) for r in records.values())},
        "shard": f"{shard[0]}/{shard[1]}", "timings": {"seconds": round(seconds, 3), "rows_this_call": predicted,
                                                       "samples_per_second": round(predicted / seconds, 3) if seconds else None},
        "execution": execution,  # this call's: mode (auto: the crossover and its source), vision cache, counts
        "environment": dict(options.environment), "libraries": library_versions(),
        "notes": result.notes,
        "scores": result.report.headline if result.report else None,
    }
