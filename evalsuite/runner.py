"""The runner: benchmark rows -> requests -> batches sorted by length -> adapter -> append-only
predictions -> (when every row is there) merged outputs and scores.

Resume is the default: rows already in the folder's predictions files are skipped, so a killed run
goes on where it stopped. `--shard i/n` (or RANK / WORLD_SIZE under torchrun or accelerate launch)
takes rows i, i+n, i+2n, ... of the benchmark; whichever shard finishes last merges and scores.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from evalsuite.adapter import Adapter, Failure
from evalsuite.data import BenchmarkData
from evalsuite.extraction import DEFAULT_RULES, check_rules
from evalsuite.requests import ANSWER_MODES, row_prompt, to_request
from evalsuite.results import (
    all_records,
    append_records,
    check_run,
    config_hash,
    library_versions,
    run_folder,
    shard_file,
    write_outputs,
)
from evalsuite.scoring import ScoreReport, score_predictions
from vlora.errors import ConfigError


@dataclass(frozen=True)
class RunOptions:
    batch_size: int = 8
    limit: int | None = None  # the first N rows of the benchmark
    shard: tuple[int, int] | None = None  # (i, n); None: RANK / WORLD_SIZE from the environment, else (0, 1)
    rules: str = DEFAULT_RULES
    answer_mode: str = "generate"
    max_new_tokens: int = 64
    results_root: Path = Path("results")
    run_name: str | None = None  # default: the model's name
    fresh: bool = False  # delete earlier predictions of this run and benchmark first
    progress: bool = True

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
    paths: dict[str, Path] = field(default_factory=dict)
    seconds: float = 0.0

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


def environment_shard() -> tuple[int, int]:
    """(RANK, WORLD_SIZE) as torchrun and accelerate launch set them, else (0, 1)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return (int(os.environ.get("RANK", "0")), world) if world > 1 else (0, 1)


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


def run_benchmark(adapter: Adapter, data: BenchmarkData, options: RunOptions = RunOptions(),
                  checkpoint: str | None = None) -> RunResult:
    spec, card = data.spec, adapter.card
    shard = options.shard or environment_shard()
    positions = list(range(len(data.table)))[: options.limit]
    mine = positions[shard[0]::shard[1]]
    folder = run_folder(options.results_root, options.run_name or card.name, spec.name)
    if options.fresh and folder.exists():
        shutil.rmtree(folder)
    check_run(folder, {"card": asdict(card), "config_hash": config_hash(card.config), "checkpoint": checkpoint,
                       "data_md5": data.md5, "prompt_style": card.prompt_style(spec.type),
                       "answer_mode": options.answer_mode, "max_new_tokens": options.max_new_tokens})
    done = all_records(folder)
    lines = data.table.to_dict("records")
    todo = [p for p in mine if str(lines[p]["index"]) not in done]
    prompts = {p: row_prompt(spec, lines[p], data.image_count(p), card, options.answer_mode) for p in todo}
    order = sorted(todo, key=lambda p: -prompts[p].text_length)  # long first: similar lengths share a batch
    start, predicted = time.perf_counter(), 0
    with _progress(options.progress) as progress:
        task = progress.add_task(f"{card.name} · {spec.name} · shard {shard[0]}/{shard[1]}", total=len(mine),
                                 completed=len(mine) - len(todo), rate="")
        for at in range(0, len(order), options.batch_size):
            batch = order[at:at + options.batch_size]
            requests = [to_request(prompts[p], data.images(p), options.max_new_tokens) for p in batch]
            records = _predict(adapter, requests, options.answer_mode)
            for p, record in zip(batch, records, strict=True):
                record.update(index=_plain(lines[p]["index"]), images_dropped=prompts[p].images_dropped)
            append_records(shard_file(folder, shard), records)
            predicted += len(batch)
            rate = predicted / (time.perf_counter() - start)
            progress.update(task, advance=len(batch), rate=f"{rate:.2f} samples/s")
    seconds = time.perf_counter() - start
    return finish(folder, adapter.card, data, options, shard, checkpoint, predicted, seconds)


def finish(folder: Path, card, data: BenchmarkData, options: RunOptions, shard: tuple[int, int] = (0, 1),
           checkpoint: str | None = None, predicted: int = 0, seconds: float = 0.0, force: bool = False) -> RunResult:
    """Merge the shards' predictions; when every row is there (or `force`), write the outputs and score."""
    spec = data.spec
    table = data.table.iloc[: options.limit] if options.limit else data.table
    records = {k: v for k, v in all_records(folder).items() if k in set(table["index"].astype(str))}
    failures = sum(1 for r in records.values() if r.get("error"))
    result = RunResult(folder, predicted, len(table), len(records), failures, seconds=seconds)
    if not records or not (result.complete or force):
        return result
    predictions = pd.DataFrame({"index": list(records), "prediction": [r["prediction"] for r in records.values()]})
    if spec.answers:
        result.report = score_predictions(spec, table, predictions, options.rules, options.answer_mode, str(folder))
    manifest = {
        "model": {k: v for k, v in asdict(card).items() if k != "config"}, "config_hash": config_hash(card.config),
        "model_config": card.config, "checkpoint": checkpoint,
        "benchmark": spec.name, "data": {"path": str(data.path), "md5": data.md5, "known_release": spec.md5.get(data.md5),
                                         "rows": len(table), "dropped_without_image": data.dropped_without_image,
                                         "warnings": data.warnings},
        "extraction_rules": options.rules, "answer_mode": options.answer_mode,
        "prompt_style": card.prompt_style(spec.type), "max_new_tokens": options.max_new_tokens,
        "counts": {"predicted": len(records), "failures": failures,
                   "images_dropped": sum(r.get("images_dropped", 0) for r in records.values())},
        "shard": f"{shard[0]}/{shard[1]}", "timings": {"seconds": round(seconds, 3), "rows_this_call": predicted,
                                                       "samples_per_second": round(predicted / seconds, 3) if seconds else None},
        "libraries": library_versions(),
        "scores": result.report.headline if result.report else None,
    }
    result.paths = write_outputs(folder, spec, table, records, result.report, manifest)
    return result
