"""Scoring choices after a shared prefix: the prompt runs through the LLM once, the choices after it.

For R prompt rows (a left-padded batch) and, per row, choices given as the token ids that follow the
row's prefix: one prefill fills the KV cache and gives the distribution of each choice's first token;
choice j of every row then runs as one short forward over the cached prefix (the cache cut back to
the prefix after it). A choice of a single token (an option letter) needs no forward of its own.
The sums equal those of a full forward over prefix + choice, up to floating-point rounding. With
`greedy`, each sum comes with whether every scored token is the most likely one at its position (the
choice is what greedy decoding gives after the prefix: lm-eval's `is_greedy`).
Shapes: R rows, P prefix positions, T continuation tokens, V vocabulary.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class Choice:
    """A continuation of a prefix: its token ids, the last `scored` of which are summed."""

    tokens: tuple[int, ...]
    scored: int


def choice_logprobs(llm: nn.Module, prefill: dict[str, torch.Tensor], attention_mask: torch.Tensor,
                    position_ids: torch.Tensor, choices: Sequence[Sequence[Choice]],
                    greedy: bool = False) -> list[list[float]] | list[list[tuple[float, bool]]]:
    """Per row and choice, the summed log-probabilities of the choice's scored tokens after the row's prefix
    (with `greedy`: pairs of that sum and whether each scored token is its position's argmax)."""
    from transformers import DynamicCache

    cache = DynamicCache(config=llm.config)
    out = llm(**prefill, attention_mask=attention_mask, position_ids=position_ids, cache=cache,
              use_cache=True, logits_to_keep=1)
    first = torch.log_softmax(out.logits[:, -1].float(), dim=-1)  # [R, V]: each choice's first token
    start = position_ids[:, -1] + 1  # [R]
    scores: list[list] = [[] for _ in choices]
    for j in range(max((len(c) for c in choices), default=0)):
        step = [row[j] if j < len(row) else None for row in choices]
        later = _later_logprobs(llm, cache, attention_mask, start, step)  # [R, T-1, V] or None
        for r, (total, argmax) in enumerate(zip(*_sums(step, first, later), strict=True)):
            if step[r] is not None:
                scores[r].append((total, argmax) if greedy else total)
    return scores


def _later_logprobs(llm: nn.Module, cache, attention_mask: torch.Tensor, start: torch.Tensor,
                    step: Sequence[Choice | None]) -> torch.Tensor | None:
    """Log-probabilities [R, T-1, V] of the tokens after each choice's first one (one forward of the rows'
    choices but their last token over the cached prefix; the cache is cut back afterwards); None when
    every choice is a single token."""
    width = max((len(c.tokens) - 1 for c in step if c is not None), default=0)
    if width <= 0:
        return None
    rows = len(step)
    ids = attention_mask.new_zeros(rows, width)  # [R, T-1], right-padded with id 0 (masked)
    mask = attention_mask.new_zeros(rows, width)
    for r, choice in enumerate(step):
        if choice is not None and len(choice.tokens) > 1:
            inputs = torch.tensor(choice.tokens[:-1], dtype=ids.dtype)
            ids[r, :len(inputs)] = inputs
            mask[r, :len(inputs)] = 1
    positions = start[:, None] + torch.arange(width, device=start.device)  # [R, T-1]
    out = llm(input_ids=ids, attention_mask=torch.cat([attention_mask, mask], dim=1), position_ids=positions,
              cache=cache, use_cache=True)
    cache.crop(-width)  # back to the prefix for the next choice
    return torch.log_softmax(out.logits.float(), dim=-1)


def _sums(step: Sequence[Choice | None], first: torch.Tensor,
          later: torch.Tensor | None) -> tuple[list[float], list[bool]]:
    """Per row, the sum of the log-probabilities of its choice's scored tokens: token 0 from the prefix's
    last position (`first` [R, V]), token i > 0 from the choice's position i - 1 (`later` [R, T-1, V]);
    and whether every scored token is the argmax of its distribution."""
    picks = [(r, i, c.tokens[i]) for r, c in enumerate(step) if c is not None
             for i in range(len(c.tokens) - c.scored, len(c.tokens))]
    heads = [(r, t) for r, i, t in picks if i == 0]
    tails = [(r, i - 1, t) for r, i, t in picks if i > 0]
    values, best = [], []
    if heads:
        rows, tokens = [r for r, _ in heads], [t for _, t in heads]
        values += first[rows, tokens].tolist()
        best += (first[rows].argmax(-1) == torch.tensor(tokens, device=first.device)).tolist()
    if tails:
        rows, at, tokens = [r for r, _, _ in tails], [i for _, i, _ in tails], [t for _, _, t in tails]
        values += later[rows, at, tokens].tolist()
        best += (later[rows, at].argmax(-1) == torch.tensor(tokens, device=later.device)).tolist()
    totals, greedy = [0.0] * len(step), [True] * len(step)
    for (r, *_), value, top in zip(heads + tails, values, best, strict=True):
        totals[r] += value
        greedy[r] = greedy[r] and top
    return totals, greedy
