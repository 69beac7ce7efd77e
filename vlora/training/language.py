"""The language stage: a causal LM (transformers' LlamaForCausalLM, "the tiny Vicuna") trained on text alone,
batch by batch from a curriculum, so that the LLM a multimodal model starts from already reads the world's
question forms and answers them (the paper starts from Vicuna; vlora/foundations.py).

    batches(step) -> [(input ids, labels)]   the step's samples (labels IGNORE_INDEX where nothing is learned)
    loss = mean over learned tokens of CE(logits[t], ids[t + 1])          (the causal LM's shifted loss)
    lr(s) = lr · min(1, (s + 1) / warmup) · (0.05 + 0.95 · ½(1 + cos(π s / steps)))   (cosine to 5 %)

The samples come from the caller (a seeded, per-step source, so any step can be re-drawn alone and a run's
first losses reproduced); `held_out` is scored every `eval_every` steps by greedy exact match of the whole
answer under teacher forcing, per form. The folder is claimed as every writer's (vlora/output_folder.py);
a stage of minutes: a killed run starts over, the log says so.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from vlora.errors import ConfigError
from vlora.prompting import IGNORE_INDEX
from vlora.training.loop import TrainResult
from vlora.training.recipe import TrainingRecipe
from vlora.training.short_stage import StepLog, claim, finish

Sample = tuple[list[int], list[int]]  # (input ids, labels)
BETAS = (0.9, 0.98)
FLOOR = 0.05  # the cosine schedule ends at 5 % of the peak


def pad(samples: Sequence[Sample], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """ids [N, T], labels [N, T], attention [N, T], right-padded to the longest sample."""
    length = max(len(ids) for ids, _ in samples)
    ids = torch.full((len(samples), length), pad_id)
    labels = torch.full((len(samples), length), IGNORE_INDEX)
    attention = torch.zeros((len(samples), length), dtype=torch.long)
    for row, (sample_ids, sample_labels) in enumerate(samples):
        ids[row, :len(sample_ids)] = torch.tensor(sample_ids)
        labels[row, :len(sample_labels)] = torch.tensor(sample_labels)
        attention[row, :len(sample_ids)] = 1
    return ids, labels, attention


def shifted_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy of each learned token given the ones before it. logits [N, T, V], labels [N, T]."""
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1),
                           ignore_index=IGNORE_INDEX)


@torch.no_grad()
def answer_token_hits(llm, samples: Sequence[Sample], pad_id: int, batch: int = 64) -> list[list[bool]]:
    """Per sample, per learned token in order: is the greedy next token right, the tokens before it given
    (teacher forcing)? Where an answer goes wrong: the value it looks up, the word it copies, the verdict."""
    was_training, hits = llm.training, []
    llm.eval()
    for start in range(0, len(samples), batch):
        ids, labels, attention = pad(samples[start:start + batch], pad_id)
        guess = llm(input_ids=ids, attention_mask=attention).logits.argmax(-1)[:, :-1]
        target = labels[:, 1:]
        learned = target != IGNORE_INDEX
        hits += [row[mask].tolist() for row, mask in zip(guess == target, learned, strict=True)]
    llm.train(was_training)
    return hits


def exact_match(llm, samples: Sequence[Sample], pad_id: int, batch: int = 64) -> list[bool]:
    """Per sample: does the greedy next token equal every learned token (= greedy decoding's answer)?"""
    return [all(tokens) for tokens in answer_token_hits(llm, samples, pad_id, batch)]


def schedule(step: int, total: int, warmup: int) -> float:
    """The learning-rate factor of optimizer step `step` (0-based)."""
    return min(1.0, (step + 1) / max(warmup, 1)) * (FLOOR + (1 - FLOOR) * 0.5 * (1 + math.cos(math.pi * step / total)))


def train_language(llm, recipe: TrainingRecipe, batches: Callable[[int], list[Sample]], total: int, out_dir: Path, *,
                   identity: dict, pad_id: int, held_out: Sequence[tuple[Sample, str]] = (), eval_every: int = 0,
                   progress: bool = True, force: bool = False, say: Callable[[str], None] = print) -> TrainResult:
    """Train `llm` (in place) for `total` steps on `batches(step)` (1-based); out_dir gets train_log.jsonl and
    model/ (the LLM). `held_out`: (sample, form) pairs scored every `eval_every` steps and at the end."""
    if recipe.dtype != "float32":
        raise ConfigError("training recipe: the language stage trains in float32 (dtype: float32)")
    out = Path(out_dir)
    folder, done = claim(out, identity, "language stage", force=force, say=say)
    if done is not None:
        return done
    warmup = math.ceil(recipe.warmup_ratio * total)
    optimizer = torch.optim.AdamW(llm.parameters(), lr=recipe.learning_rate, betas=BETAS,
                                  weight_decay=recipe.weight_decay)
    rates = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: schedule(s, total, warmup))
    log = StepLog(out, total, recipe.log_every, progress)

    def scores() -> dict:
        return {"exact_match": exact_match_by_label(llm, held_out, pad_id)}

    llm.train()
    try:
        for step in range(1, total + 1):
            ids, labels, attention = pad(batches(step), pad_id)
            loss = shifted_loss(llm(input_ids=ids, attention_mask=attention).logits, labels)
            scored = held_out and (step % eval_every == 0 or step == total)
            log.step(step, loss, llm.parameters(), optimizer, rates, recipe.max_grad_norm, int(attention.sum()),
                     extra=scores if scored else None)
    finally:
        log.close()
    return finish(llm, out, folder, log, recipe.batch_size)


def exact_match_by_label(llm, held_out: Sequence[tuple[Sample, str]], pad_id: int) -> dict[str, float]:
    """The share of exact matches per label of the (sample, label) pairs (the build log's held-out scores)."""
    return share_by_label(exact_match(llm, [sample for sample, _ in held_out], pad_id), [label for _, label in held_out])


def share_by_label(hits: Sequence[bool], labels: Sequence[str]) -> dict[str, float]:
    """The share of hits per label, rounded to 3 decimals, labels sorted."""
    by_label: dict[str, list[bool]] = {}
    for hit, label in zip(hits, labels, strict=True):
        by_label.setdefault(label, []).append(hit)
    return {label: round(sum(v) / len(v), 3) for label, v in sorted(by_label.items())}
