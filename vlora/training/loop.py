"""The training loop, on accelerate: one function, `train`, for the three models and both stages.

    records --(data.py)--> tokenised Dataset --(seeded order, whole steps per epoch)--> micro-batches
    per optimizer step: gradient_accumulation_steps micro-batches (per process) -> summed token
    losses / learned tokens of the whole global batch -> backward -> clip -> AdamW -> cosine lr

The loss is the mean cross-entropy over every learned token of the global batch, however the batch
is split into micro-batches and processes, so 2 x 4 samples accumulated equal one batch of 8.
Each epoch uses floor(records / global batch) whole steps; the remainder of an epoch's seeded order
is left out (an epoch's order is drawn anew, so a different remainder each epoch). Checkpoints
(accelerate's save_state + the step) resume exactly: same order, same RNG, same losses.
"""

from __future__ import annotations

import dataclasses
import math
import pickle
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Sampler

from vlora.errors import CheckpointError, ConfigError
from vlora.output_folder import Job, OutputFolder, State
from vlora.perceptual_weights import recompute_context
from vlora.prompting import IGNORE_INDEX
from vlora.training.data import ImageBatchCollator, load_training_data
from vlora.training.recipe import TrainingRecipe
from vlora.training.resume import (
    Checkpoint,
    CheckpointFolder,
    StepLog,
    check_resumable,
    job_identity,
    private_rng,
)

LOG_FILE = "train_log.jsonl"
OWNED = (LOG_FILE, "checkpoints", "cache", "model")  # what a training run writes in its folder


@dataclass(frozen=True)
class TrainResult:
    final_loss: float  # the last step's loss (mean over its learned tokens); from the log if this run took none
    steps: int  # optimizer steps done in all, resumed ones included
    steps_this_run: int
    resumed_from: int | None  # the step of the checkpoint this run continued, if any
    seconds: float  # wall time of this run's steps
    samples_per_second: float
    tokens_per_second: float  # LLM input positions (visual tokens included) per second
    model_dir: Path  # the trained model, in the project's own layout
    log_file: Path
    checkpoints: tuple[Path, ...]
    already_trained: bool = False  # the output folder held this job's finished training: nothing ran


# --- small pieces ---------------------------------------------------------------------------------
class StepBatchSampler(Sampler[list[int]]):
    """Micro-batches of a seeded permutation of the records, whole optimizer steps per epoch.

    The order of epoch e is drawn from a local generator seeded with (seed, e), never from the
    global RNG, so a resumed run sees the same order. `samples_per_step` is the global batch.
    """

    def __init__(self, records: int, batch_size: int, samples_per_step: int, seed: int):
        self.records, self.batch_size, self.seed = records, batch_size, seed
        self.steps_per_epoch = records // samples_per_step
        self.samples_per_epoch = self.steps_per_epoch * samples_per_step
        self.epoch = 0

    def use_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[list[int]]:
        seed = int(np.random.SeedSequence([self.seed, self.epoch]).generate_state(1)[0])
        order = torch.randperm(self.records, generator=torch.Generator().manual_seed(seed))[:self.samples_per_epoch]
        for start in range(0, self.samples_per_epoch, self.batch_size):
            yield order[start:start + self.batch_size].tolist()

    def __len__(self) -> int:
        return self.samples_per_epoch // self.batch_size


def summed_token_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Sum of the cross-entropies of every learned token: position t predicts label t + 1."""
    vocab = logits.shape[-1]
    logits = logits[:, :-1].float().reshape(-1, vocab)  # [n, s, V] -> [n * (s - 1), V]
    targets = labels[:, 1:].reshape(-1)  # [n, s] -> [n * (s - 1)]
    return F.cross_entropy(logits, targets, ignore_index=IGNORE_INDEX, reduction="sum")


def learned_tokens(batch) -> int:
    return int((batch.labels[:, 1:] != IGNORE_INDEX).sum())


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups over the trainable parameters: decay on matrices, none on biases and norms."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    groups = [{"params": [p for p in trainable if p.ndim >= 2], "weight_decay": weight_decay},
              {"params": [p for p in trainable if p.ndim < 2], "weight_decay": 0.0}]
    return [g for g in groups if g["params"]]


@contextmanager
def activation_checkpointing(llm: nn.Module, enabled: bool) -> Iterator[None]:
    """The HF LLM recomputes each decoder layer in the backward pass instead of keeping activations.

    VLoRA's perceptual weights are forward hooks that live only while the model's forward runs,
    but recomputation happens later, in backward; `perceptual_weights.recompute_context` (torch's
    checkpoint `context_fn`) puts back the branches present at each layer's forward, so the layer
    recomputes exactly what it computed. Off again after the block.
    """
    if not enabled:
        yield
        return
    kwargs = {"use_reentrant": False, "context_fn": partial(recompute_context, llm)}
    if hasattr(llm, "activation_checkpointing_enable"):  # transformers >= 5.24; the old name warns
        llm.activation_checkpointing_enable(kwargs)
    else:
        llm.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    try:
        yield
    finally:
        if hasattr(llm, "activation_checkpointing_disable"):
            llm.activation_checkpointing_disable()
        else:
            llm.gradient_checkpointing_disable()


def _accelerator(recipe: TrainingRecipe, device: torch.device):
    """accelerate on `device` (the placement's, resolved at the edge): a GPU index is made the current
    device first, and an accelerate state that chose another device is refused, not followed."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState, is_initialized
    from accelerate.utils import GradientAccumulationPlugin

    precision = "bf16" if recipe.dtype == "bfloat16" else "no"
    if is_initialized() and AcceleratorState().mixed_precision != precision:
        raise ConfigError(f"this process already trained with mixed precision {AcceleratorState().mixed_precision!r}; "
                          f"accelerate keeps one setting per process, so dtype {recipe.dtype} needs a new process")
    if device.type == "cuda" and device.index is not None:
        torch.cuda.set_device(device)
    # the loop counts micro-batches itself (whole steps per epoch), and steps the scheduler per optimizer step
    plugin = GradientAccumulationPlugin(num_steps=recipe.gradient_accumulation_steps, sync_with_dataloader=False)
    accelerator = Accelerator(gradient_accumulation_plugin=plugin, mixed_precision=precision,
                              step_scheduler_with_optimizer=False, cpu=device.type == "cpu")
    placed = accelerator.device
    if placed.type != device.type or (device.index is not None and (placed.index or 0) != device.index):
        raise ConfigError(f"accelerate placed this process on {placed}, not on {device} as asked (a process keeps "
                          "the device of its first training; start a new one)")
    return accelerator


# --- one optimizer step ---------------------------------------------------------------------------
def _optimizer_step(accelerator, model, optimizer, scheduler, group: list, max_grad_norm: float) -> dict:
    """Backward over this process's micro-batches, then one update; the loss is normalised by the
    learned tokens of the whole global batch (all micro-batches, all processes)."""
    device = accelerator.device
    total = accelerator.reduce(torch.tensor(sum(learned_tokens(b) for b in group), device=device), "sum")
    # accelerator.backward divides by the accumulation steps and DDP averages over processes: undo both
    scale = accelerator.gradient_accumulation_steps * accelerator.num_processes / max(int(total), 1)
    parameters = [p for p in model.parameters() if p.requires_grad]
    loss_sum, positions, samples = torch.zeros((), device=device), 0, 0
    for batch in group:
        with accelerator.accumulate(model):
            logits = model(dataclasses.replace(batch, labels=None)).logits  # [n, s, V]; our loss, not HF's mean
            summed = summed_token_loss(logits, batch.labels)
            if summed.requires_grad:  # not so for text-only samples in pre-training: nothing trainable saw them
                accelerator.backward(summed * scale)
            loss_sum += summed.detach()
            positions += int(batch.attention_mask.sum())
            samples += batch.labels.shape[0]
            if accelerator.sync_gradients:
                grad_norm = accelerator.clip_grad_norm_(parameters, max_grad_norm or math.inf)
                lr = optimizer.param_groups[0]["lr"]
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
    if not accelerator.sync_gradients:
        raise RuntimeError("the last micro-batch of an optimizer step did not synchronise gradients")
    counts = accelerator.reduce(torch.tensor([positions, samples], device=device), "sum")
    return {"loss_sum": float(accelerator.reduce(loss_sum, "sum")), "loss_tokens": int(total),
            "lr": lr, "grad_norm": float(grad_norm), "tokens": int(counts[0]), "samples": int(counts[1])}


class _Progress:
    """A rich progress bar (loss, tokens/s, ETA), or nothing."""

    def __init__(self, enabled: bool, total: int, done: int):
        self.bar = None
        if enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(TextColumn("training"), BarColumn(), MofNCompleteColumn(),
                                TextColumn("loss {task.fields[loss]}  {task.fields[speed]} tok/s"),
                                TimeRemainingColumn())
            self.task = self.bar.add_task("train", total=total, completed=done, loss="-", speed="-")
            self.bar.start()

    def update(self, step: int, loss: float, tokens_per_second: float) -> None:
        if self.bar is not None:
            self.bar.update(self.task, completed=step, loss=f"{loss:.4f}", speed=f"{tokens_per_second:,.0f}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


# --- the run --------------------------------------------------------------------------------------
def train(model, recipe: TrainingRecipe, data_file: str | Path, image_dir: str | Path, out_dir: str | Path, *,
          progress: bool = True, resume: bool = True, force: bool = False, cache_dir: str | Path | None = None,
          device: torch.device | str = "cpu", start: str = "the model given", say: Callable[[str], None] = print
          ) -> TrainResult:
    """Train `model` (a MultimodalLM, in place) for one stage; return what the run did.

    out_dir receives train_log.jsonl, checkpoints/step-N (every `recipe.save_every` steps), cache/
    (the tokenised data, unless `cache_dir` is given) and model/ (the trained model, own layout). out_dir
    is claimed for this job (vlora/output_folder.py; `start` says where the model came from): the same
    job's unfinished output resumes from its newest intact checkpoint (exactly; `resume=False` starts it
    over), its finished output is left as it is (nothing to do), anything else is refused unless `force`.
    `device` is where it trains (the placement's; under torchrun each process's own GPU). The caller's
    global RNG is left as it was; on return the model is in eval mode with activation checkpointing off.
    """
    from transformers import get_cosine_schedule_with_warmup

    from vlora.checkpoints import save_model

    positions = model.config.llm.max_position_embeddings
    if recipe.max_length > positions:
        raise ConfigError(f"training recipe: max_length {recipe.max_length} exceeds the LLM's {positions} positions; "
                          f"set max_length to at most {positions}")
    out = Path(out_dir)
    identity = job_identity(model.config.to_dict(), model.tokenizer, recipe, Path(data_file), start)
    accelerator = _accelerator(recipe, torch.device(device))
    ga, main = recipe.gradient_accumulation_steps, accelerator.is_main_process
    folder = OutputFolder(out, Job("train", identity), owned=OWNED)
    with accelerator.main_process_first():
        state = folder.claim(force=force, restart=not resume)
    checkpoints = CheckpointFolder(out / "checkpoints")
    if state is State.FINISHED:
        say(f"{out} holds this job's finished training; nothing to do (--force trains it again)")
        return finished_result(out, tuple(checkpoints.all()))
    begin = _resume_point(checkpoints, identity, say) if state is State.RESUME else None
    with accelerator.main_process_first():
        data = load_training_data(
            data_file, image_dir, model.tokenizer, recipe.stage, max_length=recipe.max_length,
            positions_per_image=model.config.positions_per_image,
            template=model.template, cache_dir=Path(cache_dir) if cache_dir else out / "cache",
            progress=progress and main)
    sampler = StepBatchSampler(len(data), recipe.batch_size, recipe.batch_size * ga * accelerator.num_processes,
                               recipe.seed)
    if sampler.steps_per_epoch == 0:
        raise ConfigError(f"{data.data_file} has {len(data)} records, fewer than one optimizer step takes "
                          f"(batch_size {recipe.batch_size} x accumulation {ga} x {accelerator.num_processes} processes)")
    total = recipe.max_steps or recipe.epochs * sampler.steps_per_epoch

    model.set_trainable(recipe.trains)
    optimizer = torch.optim.AdamW(parameter_groups(model, recipe.weight_decay), lr=recipe.learning_rate)
    scheduler = get_cosine_schedule_with_warmup(optimizer, math.ceil(recipe.warmup_ratio * total), total)
    loader = DataLoader(data.dataset, batch_sampler=sampler, collate_fn=ImageBatchCollator(model.collate, data),
                        generator=torch.Generator())  # worker seeds not drawn from the global RNG

    with private_rng(recipe.seed), activation_checkpointing(model.llm, recipe.gradient_checkpointing):
        prepared, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
        step = 0
        if begin is not None:
            _load_state(accelerator, begin)
            step = begin.step
        prepared.train()
        result = _run_steps(accelerator, prepared, optimizer, scheduler, loader, sampler, recipe, out, identity,
                            step, total, progress and main)
        model = accelerator.unwrap_model(prepared, keep_fp32_wrapper=False)
        model.eval()
    if main:
        save_model(model, out / "model")
        folder.finish(steps=result.steps)
    accelerator.wait_for_everyone()
    return dataclasses.replace(result, resumed_from=begin.step if begin else None,
                               checkpoints=tuple(checkpoints.all()))


def _resume_point(checkpoints: CheckpointFolder, identity: dict, say: Callable[[str], None]) -> Checkpoint | None:
    """The newest intact checkpoint of this job (None: start at step 0); damaged newer ones are named and
    passed over; damaged ones and no intact one are refused (the run would not resume, it would restart)."""
    begin, problems = checkpoints.latest_intact()
    for problem in problems:
        say(f"damaged checkpoint {problem}; " + (f"resuming from the intact {begin.path.name} instead"
                                                 if begin is not None else "no intact checkpoint before it"))
    if problems and begin is None:
        raise ConfigError(f"no intact checkpoint to resume in {checkpoints.folder} ({problems[0]}); start over with "
                          "--no-resume")
    if begin is not None:
        check_resumable(begin, identity)
    return begin


def _load_state(accelerator, checkpoint: Checkpoint) -> None:
    try:
        accelerator.load_state(str(checkpoint.path))
    except (RuntimeError, OSError, ValueError, KeyError, EOFError, pickle.UnpicklingError) as e:
        raise CheckpointError(f"{checkpoint.path} cannot be loaded ({type(e).__name__}: {str(e).splitlines()[0][:200]}); "
                              "start over with --no-resume") from None


def finished_result(out: Path, checkpoints: tuple[Path, ...]) -> TrainResult:
    """What a finished run did, read from its log (nothing is trained)."""
    from vlora.training.resume import read_log

    log = read_log(out / LOG_FILE) if (out / LOG_FILE).is_file() else []
    last = log[-1] if log else {}
    return TrainResult(final_loss=last.get("loss", float("nan")), steps=last.get("step", 0), steps_this_run=0,
                       resumed_from=None, seconds=0.0, samples_per_second=0.0, tokens_per_second=0.0,
                       model_dir=out / "model", log_file=out / LOG_FILE, checkpoints=checkpoints, already_trained=True)


def _run_steps(accelerator, model, optimizer, scheduler, loader, sampler: StepBatchSampler, recipe: TrainingRecipe,
               out: Path, identity: dict, step: int, total: int, show_progress: bool) -> TrainResult:
    ga, main = recipe.gradient_accumulation_steps, accelerator.is_main_process
    checkpoints = CheckpointFolder(out / "checkpoints")
    log = StepLog(out / LOG_FILE, step, write=main)
    bar = _Progress(show_progress, total, step)
    first, since_log, final_loss = step, [], log.last_loss
    run_tokens = run_samples = 0
    began = time.perf_counter()
    try:
        while step < total:
            epoch, done = divmod(step, sampler.steps_per_epoch)
            sampler.use_epoch(epoch)
            batches = accelerator.skip_first_batches(loader, done * ga) if done else loader
            micro = iter(batches)
            for _ in range(done, sampler.steps_per_epoch):
                stats = _optimizer_step(accelerator, model, optimizer, scheduler, [next(micro) for _ in range(ga)],
                                        recipe.max_grad_norm)
                step += 1
                final_loss = stats["loss_sum"] / max(stats["loss_tokens"], 1)
                run_tokens, run_samples = run_tokens + stats["tokens"], run_samples + stats["samples"]
                seconds = time.perf_counter() - began
                since_log.append(stats)
                if step % recipe.log_every == 0 or step == total:
                    log.write(_log_record(step, step / sampler.steps_per_epoch, since_log, seconds))
                    since_log = []
                if recipe.save_every and step % recipe.save_every == 0:
                    checkpoints.save(accelerator, step, identity, recipe.keep_checkpoints)
                bar.update(step, final_loss, run_tokens / max(seconds, 1e-9))
                if step >= total:
                    break
            del micro  # an epoch cut short by max_steps leaves its loader unfinished
    finally:
        bar.close()
    seconds = time.perf_counter() - began
    return TrainResult(final_loss=final_loss, steps=step, steps_this_run=step - first, resumed_from=None,
                       seconds=seconds, samples_per_second=run_samples / max(seconds, 1e-9),
                       tokens_per_second=run_tokens / max(seconds, 1e-9), model_dir=out / "model",
                       log_file=out / LOG_FILE, checkpoints=())


def _log_record(step: int, epoch: float, steps: list[dict], seconds: float) -> dict:
    """One log line for the steps since the last: token-weighted loss, summed counts, the last lr."""
    learned = sum(s["loss_tokens"] for s in steps)
    return {"step": step, "epoch": round(epoch, 6), "loss": sum(s["loss_sum"] for s in steps) / max(learned, 1),
            "lr": steps[-1]["lr"], "grad_norm": steps[-1]["grad_norm"], "tokens": sum(s["tokens"] for s in steps),
            "loss_tokens": learned, "samples": sum(s["samples"] for s in steps), "seconds": round(seconds, 3)}
