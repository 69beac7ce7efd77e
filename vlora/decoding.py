"""KV-cached decoding with explicit positions, written once for every connector.

Not `GenerationMixin.generate`: the positions must be explicit (left padding, VLoRA's masked
placeholder position, and the official release's cached-decoding quirk).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class Sampling:
    """Sampling settings; decoding is greedy when none are given."""

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int | None = None


def token_picker(sampling: Sampling | None, device: torch.device):
    """logits [B, V] -> next token [B]: argmax, or a sample after temperature / top-k / top-p."""
    if sampling is None:
        return lambda logits: logits.argmax(-1)
    from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    warpers = LogitsProcessorList()
    if sampling.temperature != 1.0:
        warpers.append(TemperatureLogitsWarper(sampling.temperature))
    if sampling.top_k > 0:
        warpers.append(TopKLogitsWarper(sampling.top_k))
    if sampling.top_p < 1.0:
        warpers.append(TopPLogitsWarper(sampling.top_p))
    generator = torch.Generator(device=device)
    if sampling.seed is not None:
        generator.manual_seed(sampling.seed)

    def pick(logits: torch.Tensor) -> torch.Tensor:
        probs = torch.softmax(warpers(None, logits), dim=-1)
        return torch.multinomial(probs, 1, generator=generator).squeeze(-1)

    return pick


def decode(llm: nn.Module, prefill: dict[str, torch.Tensor], attention_mask: torch.Tensor,
           position_ids: torch.Tensor, eos_token_id: int, max_new_tokens: int, sampling: Sampling | None = None,
           position_shift: torch.Tensor | None = None, stop_at_eos: bool = True,
           keep_rows: Callable[[torch.Tensor], None] | None = None, drop_finished: bool = True) -> list[list[int]]:
    """New token ids per row (EOS excluded) after a prefill of `prefill` (input_ids or inputs_embeds).

    Token k after the prompt takes position last + 1 + k - position_shift (the shift reproduces the
    official release's decode positions; zero otherwise). With `drop_finished`, a row that reaches EOS
    leaves the loop: its cache rows, mask and positions are dropped, and `keep_rows(rows)` (rows indexing
    the running batch) narrows whatever else holds per-row state (VLoRA's branches), so finished rows
    cost nothing. The tokens are the same either way.
    """
    from transformers import DynamicCache

    pick = token_picker(sampling, attention_mask.device)
    cache = DynamicCache(config=llm.config)
    out = llm(**prefill, attention_mask=attention_mask, position_ids=position_ids, cache=cache,
              use_cache=True, logits_to_keep=1)
    position = position_ids[:, -1] + 1  # [B]
    if position_shift is not None:
        position = position - position_shift
    mask, eos = attention_mask, eos_token_id
    running = torch.arange(mask.shape[0], device=mask.device)  # [b]: the original row of each running row
    finished = torch.zeros(mask.shape[0], dtype=torch.bool, device=mask.device)  # [b]
    new: list[list[int]] = [[] for _ in range(mask.shape[0])]
    for step in range(max_new_tokens):
        token = pick(out.logits[:, -1].float()).masked_fill(finished, eos)  # [b]
        for row, value in zip(running.tolist(), token.tolist(), strict=True):
            new[row].append(value)
        finished |= (token == eos) & stop_at_eos
        if finished.all() or step == max_new_tokens - 1:
            break
        if drop_finished and finished.any():
            keep = (~finished).nonzero().squeeze(1)  # [b']
            cache.batch_select_indices(keep)
            if keep_rows is not None:
                keep_rows(keep)
            running, token, mask, position, finished = (t[keep] for t in (running, token, mask, position, finished))
        mask = torch.cat([mask, mask.new_ones(mask.shape[0], 1)], dim=1)
        out = llm(input_ids=token[:, None], attention_mask=mask, position_ids=position[:, None],
                  cache=cache, use_cache=True)
        position = position + 1
    return [row[:row.index(eos)] if stop_at_eos and eos in row else row for row in new]
